package index

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/promptvault/promptvault/gitstore"
)

// DraftSource says where a set of drafts comes from and what they are called.
type DraftSource struct {
	Source string // "branch:<name>" or "pr:<n>"
	Name   string // draft name; the label is "draft:" + Name
	Head   string // commit the drafts are taken at
}

// BranchSource is the draft source of a branch in local mode.
func BranchSource(branch string) DraftSource {
	return DraftSource{Source: "branch:" + branch, Name: branch}
}

// syncBranchDrafts makes every non-tracked branch a draft source and ends
// the drafts of branches that are gone.
func (db *DB) syncBranchDrafts(ctx context.Context, st *syncState, tracked string, res *SyncResult) error {
	branches, err := st.repo.Branches()
	if err != nil {
		return fmt.Errorf("sync drafts: list branches: %w", err)
	}
	names := make([]string, 0, len(branches))
	for b := range branches {
		if b != st.cfg.Branch && b != "HEAD" {
			names = append(names, b)
		}
	}
	sort.Strings(names)
	live := map[string]bool{}
	for _, b := range names {
		src := BranchSource(b)
		src.Head = branches[b]
		live[src.Source] = true
		if err := db.syncDraftSource(ctx, st, tracked, src, res); err != nil {
			return err
		}
	}
	var gone []string
	err = db.View(ctx, func(tx *Tx) error {
		sources, err := tx.queryStrings(ctx, "SELECT source FROM draft_sources WHERE source LIKE 'branch:%'")
		for _, s := range sources {
			if !live[s] {
				gone = append(gone, s)
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sync drafts: %w", err)
	}
	for _, s := range gone {
		err := db.Update(ctx, func(tx *Tx) error {
			ended, err := tx.EndDrafts(ctx, s, st.cfg.Actor)
			res.DraftsEnded = append(res.DraftsEnded, ended...)
			return err
		})
		if err != nil {
			return fmt.Errorf("sync drafts: end %s: %w", s, err)
		}
	}
	return nil
}

// syncDraftSource (re)computes the drafts of one source: each prompt the
// head changes relative to its merge base with the tracked branch.
func (db *DB) syncDraftSource(ctx context.Context, st *syncState, tracked string, src DraftSource, res *SyncResult) error {
	var seen string
	err := db.View(ctx, func(tx *Tx) error {
		err := tx.queryRow(ctx, "SELECT head_sha FROM draft_sources WHERE source = ?", src.Source).Scan(&seen)
		if isNoRows(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sync drafts %s: %w", src.Source, err)
	}
	if seen == src.Head {
		return nil
	}
	base, err := st.repo.MergeBase(tracked, src.Head)
	if err != nil && !errors.Is(err, gitstore.ErrNotFound) {
		return fmt.Errorf("sync drafts %s: merge base: %w", src.Source, err)
	}
	changes, err := st.repo.Diff(ctx, base, src.Head, st.cfg.PromptsDir)
	if err != nil {
		return fmt.Errorf("sync drafts %s: diff: %w", src.Source, err)
	}
	c, err := st.repo.Commit(src.Head)
	if err != nil {
		return fmt.Errorf("sync drafts %s: %w", src.Source, err)
	}
	type row struct {
		key, path, blob string
		chk             *checked
	}
	var rows []row
	seenKey := map[string]bool{}
	for _, ch := range changes {
		key, ok, kerr := st.keyOf(ch.Path)
		if !ok || kerr != nil || seenKey[key] {
			continue
		}
		r := row{key: key, path: ch.Path, blob: ch.To}
		if ch.To != "" {
			r.chk = st.check(ch.Path, ch.To)
			if r.chk.err != nil {
				return fmt.Errorf("sync drafts %s: %w", src.Source, r.chk.err)
			}
		} else {
			// A delete only counts when no other file of the change adds the key back.
			if hasAdd(changes, st, key) {
				continue
			}
		}
		seenKey[key] = true
		rows = append(rows, r)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	return db.Update(ctx, func(tx *Tx) error {
		keep := map[string]bool{}
		for _, r := range rows {
			var dismissed string
			err := tx.queryRow(ctx, "SELECT commit_sha FROM draft_dismissals WHERE key = ? AND name = ?", r.key, src.Name).Scan(&dismissed)
			if err != nil && !isNoRows(err) {
				return err
			}
			if dismissed == src.Head {
				continue
			}
			keep[r.key] = true
			sum, size, valid, probs := "", int64(0), true, "[]"
			if r.chk != nil {
				if err := st.storeChecked(ctx, tx, r.blob, r.chk); err != nil {
					return err
				}
				pj, _ := json.Marshal(nonNil(problemsFor(r.path, r.chk)))
				sum, size, valid, probs = r.chk.sum, r.chk.size, len(r.chk.problems) == 0, string(pj)
			}
			_, err = tx.exec(ctx, `INSERT INTO drafts(key, name, source, commit_sha, base_sha, path, blob_sha, sha256, size,
				message, author, committed_at, valid, problems, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
				ON CONFLICT(key, name) DO UPDATE SET source=excluded.source, commit_sha=excluded.commit_sha,
				base_sha=excluded.base_sha, path=excluded.path, blob_sha=excluded.blob_sha, sha256=excluded.sha256,
				size=excluded.size, message=excluded.message, author=excluded.author, committed_at=excluded.committed_at,
				valid=excluded.valid, problems=excluded.problems, updated_at=excluded.updated_at`,
				r.key, src.Name, src.Source, src.Head, base, r.path, r.blob, sum, size,
				strings.TrimRight(c.Message, "\n"), formatAuthor(c.AuthorName, c.AuthorEmail),
				c.CommitTime.UTC().Format(time.RFC3339), valid, probs, now)
			if err != nil {
				return fmt.Errorf("record draft %s %s: %w", r.key, src.Name, err)
			}
			res.Drafts = append(res.Drafts, DraftRef{Key: r.key, Label: "draft:" + src.Name, Commit: src.Head, Valid: valid})
			if err := tx.followDraft(ctx, r.key, src.Name, st.cfg.Actor); err != nil {
				return err
			}
		}
		// Prompts the source no longer changes lose their draft.
		existing, err := tx.draftKeys(ctx, src.Source)
		if err != nil {
			return err
		}
		for _, k := range existing {
			if !keep[k] {
				if err := tx.dropDraft(ctx, k, src.Name, st.cfg.Actor, "no longer changed by "+src.Source); err != nil {
					return err
				}
				res.DraftsEnded = append(res.DraftsEnded, DraftRef{Key: k, Label: "draft:" + src.Name})
			}
		}
		_, err = tx.exec(ctx, `INSERT INTO draft_sources(source, head_sha) VALUES(?, ?)
			ON CONFLICT(source) DO UPDATE SET head_sha = excluded.head_sha`, src.Source, src.Head)
		return err
	})
}

func hasAdd(changes []gitstore.Change, st *syncState, key string) bool {
	for _, ch := range changes {
		if k, ok, err := st.keyOf(ch.Path); ok && err == nil && k == key && ch.To != "" {
			return true
		}
	}
	return false
}

func (tx *Tx) draftKeys(ctx context.Context, source string) ([]string, error) {
	return tx.queryStrings(ctx, "SELECT key FROM drafts WHERE source = ? ORDER BY key", source)
}

// deleteDraft removes one draft row. Pointer clean-up is the caller's.
func (tx *Tx) deleteDraft(ctx context.Context, key, name string) error {
	if _, err := tx.exec(ctx, "DELETE FROM drafts WHERE key = ? AND name = ?", key, name); err != nil {
		return fmt.Errorf("delete draft %s %s: %w", key, name, err)
	}
	return nil
}

// followDraft keeps a staging pointer on a rewritten draft: it moves to the
// new content when that is valid, and stays on the last valid content
// (with an audited refusal) when it is not.
func (tx *Tx) followDraft(ctx context.Context, key, name, actor string) error {
	if err := tx.notify(ctx, ChangeDraft, key); err != nil {
		return err
	}
	cur, ok, err := tx.Pointer(ctx, key, EnvStaging)
	if err != nil || !ok || cur.Draft != name {
		return err
	}
	v, err := tx.Version(ctx, key, "draft:"+name)
	if err != nil {
		return err
	}
	if v.Commit == cur.Commit && v.SHA256 == cur.SHA256 {
		return nil
	}
	if !v.Valid {
		_, err := tx.Audit(ctx, AuditEntry{Action: ActPromotionRefused, Actor: actor, Key: key, Version: v.Label,
			Commit: v.Commit, SHA256: v.SHA256, Env: EnvStaging,
			Detail: "rewritten draft is invalid; staging keeps commit " + cur.Commit + ": " + problemSummary(v)})
		return err
	}
	_, err = tx.setPointer(ctx, pointerTo(v, EnvStaging), ActStagingSet, actor, "draft rewritten at "+v.Commit)
	return err
}

// dropDraft deletes a draft that ended, clearing staging if it pointed there.
func (tx *Tx) dropDraft(ctx context.Context, key, name, actor, why string) error {
	if cur, ok, err := tx.Pointer(ctx, key, EnvStaging); err != nil {
		return err
	} else if ok && cur.Draft == name {
		if _, err := tx.clearStaging(ctx, key, actor, "draft:"+name+" ended: "+why); err != nil {
			return err
		}
	}
	if err := tx.deleteDraft(ctx, key, name); err != nil {
		return err
	}
	return tx.notify(ctx, ChangeDraft, key)
}

// EndDrafts ends every draft of a source (a deleted branch, a closed pull
// request) and forgets the source.
func (tx *Tx) EndDrafts(ctx context.Context, source, actor string) ([]DraftRef, error) {
	rows, err := tx.query(ctx, "SELECT key, name, commit_sha FROM drafts WHERE source = ? ORDER BY key", source)
	if err != nil {
		return nil, err
	}
	var ended []DraftRef
	for rows.Next() {
		var d DraftRef
		var name string
		if err := rows.Scan(&d.Key, &name, &d.Commit); err != nil {
			rows.Close()
			return nil, err
		}
		d.Label = "draft:" + name
		ended = append(ended, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, d := range ended {
		if err := tx.dropDraft(ctx, d.Key, strings.TrimPrefix(d.Label, "draft:"), actor, source+" ended"); err != nil {
			return nil, err
		}
	}
	if _, err := tx.exec(ctx, "DELETE FROM draft_sources WHERE source = ?", source); err != nil {
		return nil, err
	}
	return ended, nil
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
