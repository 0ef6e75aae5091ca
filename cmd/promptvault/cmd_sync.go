package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/index"
)

func (c *cli) syncCmd() *cobra.Command {
	return &cobra.Command{
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
}

func (c *cli) reindexCmd() *cobra.Command {
	return &cobra.Command{
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
}

func (c *cli) runSync(ctx context.Context, rebuild bool) error {
	return c.withRepo(ctx, true, func(d *data, repo *gitstore.Repo) error {
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
		if c.json {
			return c.printJSON(res)
		}
		c.printSync(res)
		return nil
	})
}

// reindexNow fetches and rebuilds the index under the sync lock.
func (c *cli) reindexNow(ctx context.Context, d *data, repo *gitstore.Repo) (*index.SyncResult, error) {
	unlock, err := flockSync(d.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := repo.Fetch(ctx); err != nil {
		return nil, err
	}
	return d.db.Reindex(ctx, repo, d.cfg)
}

func (c *cli) printSync(res *index.SyncResult) {
	invalid := 0
	for _, v := range res.Versions {
		if !v.Valid {
			invalid++
		}
	}
	fmt.Fprintf(c.stdout, "%s at %s: %d new commits, %d new versions (%d invalid), %d archived, %d drafts updated, %d drafts ended (%.2fs)\n",
		res.Branch, short(res.Head), res.Commits, len(res.Versions), invalid, len(res.Archived),
		len(res.Drafts), len(res.DraftsEnded), res.Seconds)
	for _, v := range res.Versions {
		state := ""
		if !v.Valid {
			state = "  (invalid: see 'promptvault show " + v.Key + " " + v.Label + "')"
		}
		fmt.Fprintf(c.stdout, "  + %s %s  %s%s\n", v.Key, v.Label, short(v.Commit), state)
	}
	for _, k := range res.Archived {
		fmt.Fprintf(c.stdout, "  - %s archived\n", k)
	}
	for _, dr := range res.Drafts {
		state := ""
		if !dr.Valid {
			state = "  (invalid)"
		}
		fmt.Fprintf(c.stdout, "  ~ %s %s  %s%s\n", dr.Key, dr.Label, short(dr.Commit), state)
	}
	for _, dr := range res.DraftsEnded {
		fmt.Fprintf(c.stdout, "  x %s %s ended\n", dr.Key, dr.Label)
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(c.stderr, "warning: %s (commit %s): %s\n", s.Path, short(s.Commit), s.Problem)
	}
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
