package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/index"
)

func (c *cli) syncCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Fetch the repository into the mirror and index new versions and drafts",
		Long: `sync fetches the repository (--repo) into the data directory's own bare
mirror (your working copy is never touched) and indexes what is new: every
commit on the tracked branch that adds or changes a prompt file becomes the
next version of that prompt; other branches become drafts (draft:<branch>).
It is incremental and safe to run again or after an interruption.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.runSync(cmd.Context(), false)
		},
	}
	c.repoFlags(cmd)
	cmd.Flags().BoolVarP(&c.verbose, "verbose", "v", false, "also list every new version, draft and ended draft")
	return cmd
}

func (c *cli) reindexCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reindex",
		Short: "Rebuild every version and draft row from the mirror",
		Long: `reindex fetches, then rebuilds the index's versions, drafts and archive
marks from the Git mirror, replaying the recorded order of tracked-branch
commits so every version keeps its number (also versions whose commits a
force push removed). Pointers, keys and the audit log are kept.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.runSync(cmd.Context(), true)
		},
	}
	c.repoFlags(cmd)
	cmd.Flags().BoolVarP(&c.verbose, "verbose", "v", false, "also list every version and draft")
	return cmd
}

func (c *cli) runSync(ctx context.Context, rebuild bool) error {
	// reindex rebuilds an existing index: like other non-sync commands it
	// refuses a data directory without one.
	return c.withRepo(ctx, !rebuild, func(d *data, repo *gitstore.Repo) error {
		var before int64
		if err := d.db.View(ctx, func(tx *index.Tx) error {
			es, err := tx.AuditLog(ctx, 0, 1)
			if len(es) > 0 {
				before = es[0].Seq
			}
			return err
		}); err != nil {
			return err
		}
		var res *index.SyncResult
		var err error
		if rebuild {
			res, err = c.reindexNow(ctx, d, repo)
		} else {
			res, err = c.syncNow(ctx, d, repo)
		}
		if err != nil {
			return err
		}
		sum, err := summarize(ctx, d, res, before)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(sum)
		}
		c.printSync(sum)
		return nil
	})
}

// syncSummary is what sync reports: the index's result plus what it did to
// live (from the audit rows it wrote) and what is still not live.
type syncSummary struct {
	*index.SyncResult
	Promoted []index.AuditEntry `json:"promoted"` // bootstrap, promote and archive rows
	Refused  []index.AuditEntry `json:"refused"`  // promotion_refused rows, with why
	// NotLive lists prompts whose newest valid version is newer than live
	// under --auto-promote=push: a refused commit's valid prompts stay
	// behind until someone promotes them, and sync says so every time.
	NotLive []notLive `json:"not_live"`
}

type notLive struct {
	Key     string `json:"key"`
	Version string `json:"version"`
	Live    string `json:"live"`
}

// summarize collects sync's own audit rows written after seq before and
// the prompts left behind live.
func summarize(ctx context.Context, d *data, res *index.SyncResult, before int64) (*syncSummary, error) {
	sum := &syncSummary{SyncResult: res, Promoted: []index.AuditEntry{}, Refused: []index.AuditEntry{}, NotLive: []notLive{}}
	actors := map[string]bool{d.cfg.Actor: true, "auto-promote:" + d.cfg.Actor: true}
	err := d.db.View(ctx, func(tx *index.Tx) error {
		for after := before; ; {
			es, err := tx.AuditSince(ctx, after, 1000)
			if err != nil {
				return err
			}
			for _, e := range es {
				after = e.Seq
				if !actors[e.Actor] {
					continue // another process's change during the sync
				}
				switch e.Action {
				case index.ActBootstrap, index.ActPromote, index.ActArchive:
					sum.Promoted = append(sum.Promoted, e)
				case index.ActPromotionRefused:
					sum.Refused = append(sum.Refused, e)
				}
			}
			if len(es) < 1000 {
				break
			}
		}
		if d.cfg.AutoPromote != index.AutoPush {
			return nil
		}
		ps, err := tx.Prompts(ctx)
		if err != nil {
			return err
		}
		for _, p := range ps {
			live, ok, err := tx.Pointer(ctx, p.Key, index.EnvLive)
			if err != nil {
				return err
			}
			if p.Archived || !ok || live.Archived || live.Draft != "" || p.Versions <= live.Number {
				continue
			}
			vs, err := tx.Versions(ctx, p.Key, index.VersionQuery{Limit: p.Versions - live.Number})
			if err != nil {
				return err
			}
			for _, v := range vs {
				if v.Valid && v.Number > live.Number {
					sum.NotLive = append(sum.NotLive, notLive{Key: p.Key, Version: v.Label, Live: live.Label()})
					break
				}
			}
		}
		return nil
	})
	return sum, err
}

// reindexNow fetches and rebuilds the index under the sync lock.
func (c *cli) reindexNow(ctx context.Context, d *data, repo *gitstore.Repo) (*index.SyncResult, error) {
	unlock, err := syncLock(ctx, d)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := repo.Fetch(ctx); err != nil {
		return nil, err
	}
	return d.db.Reindex(ctx, repo, d.cfg)
}

// printSync prints one summary: counts, then what went live, what was
// refused and why, what is still not live, and drafts. Lists are cut at
// listMax names so a first sync of a large history stays a few lines;
// --verbose lists every version and draft.
func (c *cli) printSync(sum *syncSummary) {
	res := sum.SyncResult
	invalid := []string{}
	for _, v := range res.Versions {
		if !v.Valid {
			invalid = append(invalid, v.Key+" "+v.Label)
		}
	}
	head := fmt.Sprintf("%s at %s: %s, %s", res.Branch, short(res.Head), plural(res.Commits, "new commit"), plural(len(res.Versions), "new version"))
	if len(invalid) > 0 {
		head += fmt.Sprintf(" (%d invalid)", len(invalid))
	}
	if len(res.Archived) > 0 {
		head += fmt.Sprintf(", %d archived", len(res.Archived))
	}
	if len(res.Drafts) > 0 {
		head += ", " + plural(len(res.Drafts), "draft") + " updated"
	}
	if len(res.DraftsEnded) > 0 {
		head += ", " + plural(len(res.DraftsEnded), "draft") + " ended"
	}
	fmt.Fprintf(c.stdout, "%s (%.2fs)\n", head, res.Seconds)

	if len(sum.Promoted) > 0 {
		var names []string
		how := map[string]bool{}
		for _, e := range sum.Promoted {
			names = append(names, e.Key+" "+e.Version)
			how[e.Action] = true
		}
		note := ""
		if how[index.ActBootstrap] {
			note = " (first sync: each prompt's newest valid version)"
		}
		fmt.Fprintf(c.stdout, "live: %s%s\n", list(names), note)
	}
	if len(sum.Refused) > 0 {
		// One line per refused commit: its prompts and the reason.
		var order []string
		byWhy := map[string][]string{}
		for _, e := range sum.Refused {
			if byWhy[e.Detail] == nil {
				order = append(order, e.Detail)
			}
			byWhy[e.Detail] = append(byWhy[e.Detail], e.Key+" "+e.Version)
		}
		for _, why := range order {
			fmt.Fprintf(c.stdout, "not promoted: %s (%s)\n", list(byWhy[why]), why)
		}
	}
	if len(invalid) > 0 {
		first := strings.Fields(invalid[0])
		fmt.Fprintf(c.stdout, "invalid: %s (see '%s --data %s show %s %s')\n", list(invalid), progName(), c.data, first[0], first[1])
	}
	if len(sum.NotLive) > 0 {
		var names []string
		for _, n := range sum.NotLive {
			names = append(names, fmt.Sprintf("%s %s (live %s)", n.Key, n.Version, n.Live))
		}
		n := sum.NotLive[0]
		fmt.Fprintf(c.stdout, "not live yet: %s; to promote: %s --data %s promote %s %s\n", list(names), progName(), c.data, n.Key, n.Version)
	}
	if len(res.Drafts) > 0 || len(res.DraftsEnded) > 0 {
		var names []string
		for _, dr := range res.Drafts {
			n := dr.Key + " " + dr.Label
			if !dr.Valid {
				n += " (invalid)"
			}
			names = append(names, n)
		}
		for _, dr := range res.DraftsEnded {
			names = append(names, dr.Key+" "+dr.Label+" (ended)")
		}
		fmt.Fprintf(c.stdout, "drafts: %s\n", list(names))
	}
	if c.verbose {
		for _, v := range res.Versions {
			state := ""
			if !v.Valid {
				state = "  (invalid)"
			}
			fmt.Fprintf(c.stdout, "  + %s %s  %s%s\n", v.Key, v.Label, short(v.Commit), state)
		}
		for _, k := range res.Archived {
			fmt.Fprintf(c.stdout, "  - %s archived\n", k)
		}
		for _, dr := range res.Drafts {
			fmt.Fprintf(c.stdout, "  ~ %s %s  %s\n", dr.Key, dr.Label, short(dr.Commit))
		}
		for _, dr := range res.DraftsEnded {
			fmt.Fprintf(c.stdout, "  x %s %s ended\n", dr.Key, dr.Label)
		}
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(c.stderr, "warning: %s (commit %s): %s\n", s.Path, short(s.Commit), s.Problem)
	}
}

// listMax is how many names a summary line lists before "and N more".
const listMax = 5

func list(names []string) string {
	if len(names) <= listMax {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:listMax], ", "), len(names)-listMax)
}

// progName is how to run this binary again in printed commands: the path
// it was started by (bin/promptvault under make demo), or "promptvault"
// when it is on $PATH or a test binary.
func progName() string {
	p := os.Args[0]
	if strings.HasSuffix(p, ".test") || !strings.ContainsRune(p, filepath.Separator) {
		return "promptvault"
	}
	return p
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// plural writes "1 commit", "2 commits".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
