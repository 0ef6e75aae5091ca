package main

import (
	"context"
	"fmt"
	"os/user"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/index"
)

// actor names the person behind a CLI change in the audit log.
func actor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

// change runs one pointer/settings command in a write transaction and
// prints its result.
func (c *cli) change(ctx context.Context, what string, fn func(ctx context.Context, tx *index.Tx) (index.Result, error)) error {
	var res index.Result
	err := c.update(ctx, func(ctx context.Context, tx *index.Tx) (err error) {
		res, err = fn(ctx, tx)
		return err
	})
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(res)
	}
	switch {
	case !res.Changed:
		fmt.Fprintf(c.stdout, "%s: unchanged (%s)\n", what, res.To)
	case res.From != "":
		fmt.Fprintf(c.stdout, "%s: %s -> %s (audit #%d)\n", what, res.From, res.To, res.Entry.Seq)
	default:
		fmt.Fprintf(c.stdout, "%s: %s (audit #%d)\n", what, res.To, res.Entry.Seq)
	}
	return nil
}

func keyArg(args []string) (string, error) {
	return args[0], promptvault.ValidateKey(args[0])
}

func (c *cli) promoteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "promote KEY VERSION|staging",
		Short: "Point live at any valid published version",
		Long: `promote points live at a valid published version (vN or N), newer or
older than the current one. "promote KEY staging" makes live the published
version staging points at; a draft on staging goes live by merging it.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := keyArg(args)
			if err != nil {
				return err
			}
			return c.change(cmd.Context(), key+" live", func(ctx context.Context, tx *index.Tx) (index.Result, error) {
				return tx.Promote(ctx, key, args[1], actor())
			})
		},
	}
}

func (c *cli) rollbackCmd() *cobra.Command {
	var openPR bool
	cmd := &cobra.Command{
		Use:   "rollback KEY VERSION",
		Short: "Point live back at an older published version",
		Long: `rollback points live at a published version older than the current live
one. Newer versions stay in history and can be promoted again. Rolling
"back" to a newer version is refused: use promote.

With --open-pr (GitHub mode) it also opens a pull request that restores the
rolled-back content on the tracked branch, so the branch does not drift
from live.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := keyArg(args)
			if err != nil {
				return err
			}
			if openPR && openRollbackPR == nil {
				return fmt.Errorf("rollback --open-pr needs GitHub mode (--github-token or --github-app-id)")
			}
			ctx := cmd.Context()
			if err := c.change(ctx, key+" live", func(ctx context.Context, tx *index.Tx) (index.Result, error) {
				return tx.Rollback(ctx, key, args[1], actor())
			}); err != nil || !openPR {
				return err
			}
			d, err := c.openData(ctx, false)
			if err != nil {
				return err
			}
			defer d.Close()
			v, err := c.lookupVersion(ctx, d, key, args[1])
			if err != nil {
				return err
			}
			url, err := openRollbackPR(ctx, c, d, v)
			if err != nil {
				return fmt.Errorf("live was rolled back, but opening the pull request failed: %w", err)
			}
			fmt.Fprintf(c.stdout, "opened %s\n", url)
			return nil
		},
	}
	cmd.Flags().BoolVar(&openPR, "open-pr", false, "also open a pull request restoring this content on the tracked branch (GitHub mode)")
	return cmd
}

func (c *cli) stagingCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "staging", Short: "Set or clear a prompt's staging pointer (read by pv_test_ keys)"}
	cmd.AddCommand(&cobra.Command{
		Use:   "set KEY VERSION|draft:NAME|NAME",
		Short: "Point staging at a valid version or draft; live is untouched",
		Long: `set points staging at a valid published version (vN or N) or a draft
(draft:NAME, or the bare NAME as drafts delete takes it). pv_test_ keys
read it; live is untouched.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := keyArg(args)
			if err != nil {
				return err
			}
			return c.change(cmd.Context(), key+" staging", func(ctx context.Context, tx *index.Tx) (index.Result, error) {
				return tx.SetStaging(ctx, key, args[1], actor())
			})
		},
	}, &cobra.Command{
		Use:   "clear KEY",
		Short: "Unset staging: pv_test_ keys read live again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := keyArg(args)
			if err != nil {
				return err
			}
			return c.change(cmd.Context(), key+" staging", func(ctx context.Context, tx *index.Tx) (index.Result, error) {
				res, err := tx.ClearStaging(ctx, key, actor())
				if res.To == "" {
					res.To = "cleared"
				}
				return res, err
			})
		},
	})
	return cmd
}

func (c *cli) draftsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "drafts", Short: "Manage drafts"}
	cmd.AddCommand(&cobra.Command{
		Use:   "delete KEY NAME",
		Short: "Delete a draft (published versions are immutable and refused)",
		Long: `delete removes a draft (NAME or draft:NAME). If staging points at it,
staging is cleared. The draft comes back only when its branch or pull
request gets a new commit.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := keyArg(args)
			if err != nil {
				return err
			}
			return c.change(cmd.Context(), key+" draft", func(ctx context.Context, tx *index.Tx) (index.Result, error) {
				res, err := tx.DeleteDraft(ctx, key, args[1], actor())
				res.To = "deleted"
				return res, err
			})
		},
	})
	return cmd
}

func (c *cli) settingsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "settings",
		Short: "Show or change settings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var on bool
			if err := c.view(cmd.Context(), func(ctx context.Context, tx *index.Tx) (err error) { on, err = tx.StagingEnabled(ctx); return err }); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(map[string]bool{"staging_enabled": on})
			}
			fmt.Fprintf(c.stdout, "staging: %s\n", map[bool]string{true: "on", false: "off"}[on])
			return nil
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "set staging on|off",
		Short: "Turn staging on or off (off: pv_test_ keys read live; pointers are kept)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "staging" {
				return fmt.Errorf("unknown setting %q: the only setting is staging", args[0])
			}
			var on bool
			switch args[1] {
			case "on", "true":
				on = true
			case "off", "false":
			default:
				return fmt.Errorf("staging %q: want on or off", args[1])
			}
			return c.change(cmd.Context(), "staging", func(ctx context.Context, tx *index.Tx) (index.Result, error) {
				return tx.SetStagingEnabled(ctx, on, actor())
			})
		},
	})
	return cmd
}

func (c *cli) auditCmd() *cobra.Command {
	var limit int
	var before int64
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log, newest first",
		Long: `audit prints the append-only audit log, newest first, --limit entries at
a time. To page, pass --before with the smallest SEQ shown.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if limit < 1 || limit > 1000 {
				return fmt.Errorf("--limit %d: want 1 to 1000", limit)
			}
			if before < 0 {
				return fmt.Errorf("--before %d: want a positive sequence number", before)
			}
			var log []index.AuditEntry
			if err := c.view(ctx, func(ctx context.Context, tx *index.Tx) (err error) {
				log, err = tx.AuditLog(ctx, before, limit)
				return err
			}); err != nil {
				return err
			}
			if c.json {
				next := ""
				if len(log) == limit {
					next = strconv.FormatInt(log[len(log)-1].Seq, 10)
				}
				if log == nil {
					log = []index.AuditEntry{}
				}
				return c.printJSON(map[string]any{"entries": log, "next_before": next})
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tACTION\tACTOR\tKEY\tENV\tVERSION\tCOMMIT\tDETAIL")
			for _, e := range log {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.At, e.Action, e.Actor, e.Key, e.Env, e.Version, short(e.Commit), e.Detail)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "entries per page (1 to 1000)")
	cmd.Flags().Int64Var(&before, "before", 0, "show entries older than this SEQ (paging)")
	return cmd
}

func (c *cli) keysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Create, list and revoke API keys"}
	var env, name string
	create := &cobra.Command{
		Use:   "create --env live|test|admin [--name N]",
		Short: "Create an API key; the key is printed once and only its hash is stored",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var k index.CreatedKey
			if err := c.update(cmd.Context(), func(ctx context.Context, tx *index.Tx) (err error) {
				k, err = tx.CreateKey(ctx, env, name, actor())
				return err
			}); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(k)
			}
			fmt.Fprintf(c.stdout, "%s\n", k.Key)
			fmt.Fprintf(c.stderr, "created %s key %s (%s); store it now: it is not shown again\n", k.Env, k.ID, k.Prefix)
			return nil
		},
	}
	create.Flags().StringVar(&env, "env", "", "live (reads live), test (reads staging, else live) or admin (manages)")
	create.Flags().StringVar(&name, "name", "", "a name to recognise the key by")
	_ = create.MarkFlagRequired("env")
	list := &cobra.Command{
		Use:   "list",
		Short: "List keys (id, env, prefix, created, last used, revoked)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var keys []index.APIKey
			if err := c.view(cmd.Context(), func(ctx context.Context, tx *index.Tx) (err error) { keys, err = tx.Keys(ctx); return err }); err != nil {
				return err
			}
			if c.json {
				if keys == nil {
					keys = []index.APIKey{}
				}
				return c.printJSON(map[string]any{"keys": keys})
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tENV\tNAME\tPREFIX\tCREATED\tLAST USED\tREVOKED")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s…\t%s\t%s\t%s\n", k.ID, k.Env, k.Name, k.Prefix, k.CreatedAt, dash(k.LastUsedAt), dash(k.RevokedAt))
			}
			return tw.Flush()
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key; a running server refuses it within milliseconds",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.change(cmd.Context(), "key "+args[0], func(ctx context.Context, tx *index.Tx) (index.Result, error) {
				return tx.RevokeKey(ctx, args[0], actor())
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
