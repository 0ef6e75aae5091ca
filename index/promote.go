package index

import (
	"context"
	"fmt"
	"strings"
)

// Auto-promotion modes (--auto-promote).
const (
	AutoPush     = "push"
	AutoMergedPR = "merged-pr"
	AutoNone     = "none"
)

// ValidAutoPromote checks an --auto-promote value.
func ValidAutoPromote(mode string) error {
	switch mode {
	case AutoPush, AutoMergedPR, AutoNone:
		return nil
	}
	return fmt.Errorf("%w: --auto-promote %q: want push, merged-pr or none", ErrInvalid, mode)
}

// promoteCommit applies one tracked-branch commit under --auto-promote=push:
// every prompt it changed goes live, or none when any of them is invalid
// (each refusal is audited).
func (tx *Tx) promoteCommit(ctx context.Context, ix Indexed, actor string) error {
	actor = "auto-promote:" + actor
	var bad []string
	for _, v := range ix.Versions {
		if !v.Valid {
			bad = append(bad, v.Key+" "+v.Label)
		}
	}
	if len(bad) > 0 {
		detail := fmt.Sprintf("commit %s not promoted: invalid %s", ix.Commit.SHA, strings.Join(bad, ", "))
		for _, v := range ix.Versions {
			if _, err := tx.Audit(ctx, AuditEntry{Action: ActPromotionRefused, Actor: actor, Key: v.Key,
				Version: v.Label, Commit: v.Commit, Env: EnvLive, Detail: detail}); err != nil {
				return err
			}
		}
		for _, k := range ix.Archived {
			if _, err := tx.Audit(ctx, AuditEntry{Action: ActPromotionRefused, Actor: actor, Key: k,
				Version: LabelArchived, Commit: ix.Commit.SHA, Env: EnvLive, Detail: detail}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, v := range ix.Versions {
		if _, err := tx.Promote(ctx, v.Key, v.Label, actor); err != nil {
			return fmt.Errorf("auto-promote %s %s: %w", v.Key, v.Label, err)
		}
	}
	for _, k := range ix.Archived {
		if _, err := tx.Archive(ctx, k, ix.Commit.SHA, actor); err != nil {
			return fmt.Errorf("auto-promote archive of %s: %w", k, err)
		}
	}
	return nil
}

// bootstrap makes each prompt's newest valid version live when no live
// pointer exists at all (a repository's first sync), in one transaction.
func (db *DB) bootstrap(ctx context.Context, cfg Config, res *SyncResult) error {
	return db.Update(ctx, func(tx *Tx) error {
		var n int
		if err := tx.queryRow(ctx, "SELECT count(*) FROM pointers WHERE env = 'live'").Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		rows, err := tx.query(ctx, `SELECT p.key, max(v.number) FROM prompts p JOIN versions v ON v.key = p.key AND v.valid = 1
			WHERE p.archived = 0 GROUP BY p.key ORDER BY p.key`)
		if err != nil {
			return err
		}
		type kv struct {
			key string
			n   int
		}
		var todo []kv
		for rows.Next() {
			var x kv
			if err := rows.Scan(&x.key, &x.n); err != nil {
				rows.Close()
				return err
			}
			todo = append(todo, x)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, x := range todo {
			v, err := tx.Version(ctx, x.key, Label(x.n))
			if err != nil {
				return err
			}
			if _, err := tx.setPointer(ctx, pointerTo(v, EnvLive),
				ActBootstrap, cfg.Actor, "newest valid version at first sync"); err != nil {
				return err
			}
			res.Bootstrapped = append(res.Bootstrapped, VersionRef{Key: v.Key, Number: v.Number, Label: v.Label, Commit: v.Commit, Valid: true})
		}
		return nil
	})
}
