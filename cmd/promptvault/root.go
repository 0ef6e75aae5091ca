package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/index"
)

// cli holds the common flags and the streams of one invocation.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	data          string
	repo          string
	branch        string
	promptsDir    string
	addr          string
	webhookSecret string
	json          bool
	logLevel      string
	autoPromote   string
	database      string
	db            index.Options
	verbose       bool
	// switchRepo lets sync/serve point an existing data directory at
	// another repository (audited as repo_switch).
	switchRepo bool

	explicit map[string]bool // flags given on the command line or by env
	log      *slog.Logger
	gitAuth  gitAuthFunc // credentials for fetches; set by a configHook
}

const longHelp = `promptvault is a Git-backed prompt registry for LLM applications.

Prompts are YAML files under prompts/ in a Git repository; every commit on
the tracked branch that changes one is a new immutable version (v1, v2, ...).
Other branches are drafts. Applications read prompts over HTTP by key.

Every common flag can also be set through an environment variable named
PV_ plus the flag's name in upper snake case (--prompts-dir: PV_PROMPTS_DIR);
a flag on the command line wins over the variable, the variable over the
default. The data directory remembers --repo, --branch and --prompts-dir
from the first sync, so later commands need only --data.`

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, branch: "main", promptsDir: "prompts"}
	root := &cobra.Command{
		Use:           "promptvault",
		Short:         "Git-backed prompt registry",
		Long:          longHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return c.setup(cmd)
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Only the flags every command uses are global; the others are added
	// to the commands that read them, so each command's --help lists
	// what it takes (repoFlags, serve's own).
	pf := root.PersistentFlags()
	pf.StringVar(&c.data, "data", ".promptvault", "data directory (index and Git mirror)")
	pf.BoolVar(&c.json, "json", false, "machine-readable JSON output (errors too)")
	pf.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&c.database, "database", "", "where the registry lives: empty for SQLite in --data, or a postgres:// URL shared by several instances")
	pf.IntVar(&c.db.MaxConns, "db-max-conns", 0, "most database connections this process opens (0: 8)")
	pf.DurationVar(&c.db.ConnectTimeout, "db-connect-timeout", 0, "how long to wait connecting to PostgreSQL (0: no limit)")
	pf.DurationVar(&c.db.StatementTimeout, "db-statement-timeout", 0, "longest a PostgreSQL statement may run (0: no limit)")

	root.AddCommand(
		c.syncCmd(), c.reindexCmd(), c.validateCmd(),
		c.promptsCmd(), c.versionsCmd(), c.showCmd(),
		c.promoteCmd(), c.rollbackCmd(), c.stagingCmd(), c.draftsCmd(),
		c.settingsCmd(), c.auditCmd(), c.keysCmd(),
		c.serveCmd(), c.demoCmd(), c.migrateCmd(),
	)
	for _, h := range flagHooks {
		h(c, root)
	}
	return root
}

// repoFlags adds the flags that say which repository and branch to index
// and how new commits promote: commands that sync (sync, reindex, serve).
func (c *cli) repoFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&c.repo, "repo", "", "prompts repository: a local path or a URL (remembered by the data directory)")
	fs.StringVar(&c.branch, "branch", "main", "tracked branch (remembered by the data directory)")
	fs.StringVar(&c.promptsDir, "prompts-dir", "prompts", "directory of prompt files in the repository (remembered by the data directory)")
	fs.StringVar(&c.autoPromote, "auto-promote", "", "what promotes to live: push (local default), merged-pr (GitHub default) or none")
	fs.BoolVar(&c.switchRepo, "switch-repo", false, "allow --repo to replace the repository an indexed data directory remembers (audited)")
}

// setup applies PV_ environment variables to flags not set on the command
// line and remembers which flags the user gave.
func (c *cli) setup(cmd *cobra.Command) error {
	c.explicit = map[string]bool{}
	var err error
	visit := func(f *pflag.Flag) {
		env := "PV_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if f.Changed {
			c.explicit[f.Name] = true
			return
		}
		if v, ok := os.LookupEnv(env); ok && err == nil {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
				return
			}
			c.explicit[f.Name] = true
		}
	}
	cmd.Flags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	if err != nil {
		return err
	}
	var lvl slog.Level
	if e := lvl.UnmarshalText([]byte(c.logLevel)); e != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	c.log = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: lvl}))
	return nil
}

// printJSON writes v as indented JSON to stdout.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// data is an opened data directory.
type data struct {
	dir  string
	db   *index.DB
	cfg  index.Config
	repo string // remembered repository path or URL
}

func (d *data) Close() error { return d.db.Close() }

// ErrNoData is returned when a command that only reads or changes an
// index finds none: a typo in --data must not answer with an empty table.
var ErrNoData = errors.New("no such data directory")

// openData opens the data directory's index and settles the repository
// configuration: explicit flags win; otherwise what the directory remembers;
// otherwise defaults. remember stores the result and may create the data
// directory (sync, serve and demo); every other command refuses a data
// directory that holds no index.
func (c *cli) openData(ctx context.Context, remember bool) (*data, error) {
	if !remember {
		// With PostgreSQL the data directory still holds the mirror.
		must := filepath.Join(c.data, "index.db")
		if c.database != "" {
			must = c.data
		}
		if _, err := os.Stat(must); err != nil {
			return nil, fmt.Errorf("%w: %s has no index (%s); run 'promptvault sync --data %s --repo PATH|URL' first, or pass the right --data",
				ErrNoData, c.data, must, c.data)
		}
	}
	if err := os.MkdirAll(c.data, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", c.data, err)
	}
	db, err := c.openIndex(ctx)
	if err != nil {
		return nil, err
	}
	d := &data{dir: c.data, db: db}
	// Only commands that remember take the write lock; read-only commands
	// must not queue behind a long sync or reindex in another process.
	txn := db.View
	if remember {
		txn = db.Update
	}
	err = txn(ctx, func(tx *index.Tx) error {
		indexed, err := tx.Meta(ctx, "head")
		if err != nil {
			return err
		}
		for _, s := range []struct {
			flag, meta string
			val        *string
		}{
			{"repo", "repo", &c.repo},
			{"branch", "branch", &c.branch},
			{"prompts-dir", "prompts_dir", &c.promptsDir},
		} {
			stored, err := tx.Meta(ctx, s.meta)
			if err != nil {
				return err
			}
			if s.flag == "repo" && c.explicit[s.flag] {
				*s.val = normalizeRepo(*s.val)
			}
			switch {
			case !c.explicit[s.flag] && stored != "":
				*s.val = stored
			case c.explicit[s.flag] && stored != "" && stored != *s.val && indexed != "":
				if s.flag != "repo" {
					return fmt.Errorf("data directory %s indexes --%s %q; it cannot switch to %q (use another --data)",
						c.data, s.flag, stored, *s.val)
				}
				// Switching the repository archives every prompt the new
				// one lacks and clears staging: never by accident.
				if !c.switchRepo || !remember {
					return fmt.Errorf("%w: data directory %s indexes repository %s, not %s; pass --switch-repo to switch it "+
						"(prompts the new repository lacks are archived), or use another --data", index.ErrConflict, c.data, stored, *s.val)
				}
				if _, err := tx.Audit(ctx, index.AuditEntry{Action: index.ActRepoSwitch, Actor: actor(),
					Detail: "from " + stored + " to " + *s.val}); err != nil {
					return err
				}
			}
			if remember && *s.val != "" {
				if err := tx.SetMeta(ctx, s.meta, *s.val); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	d.repo = c.repo
	mode := c.autoPromote
	if mode == "" {
		mode = index.AutoPush
	}
	if err := index.ValidAutoPromote(mode); err != nil {
		db.Close()
		return nil, err
	}
	d.cfg = index.Config{Branch: c.branch, PromptsDir: c.promptsDir, BranchDrafts: true, AutoPromote: mode, Actor: "sync"}
	for _, h := range configHooks {
		if err := h(ctx, c, d); err != nil {
			db.Close()
			return nil, err
		}
	}
	return d, nil
}

// openIndex opens the index --database names, or the SQLite file in --data.
func (c *cli) openIndex(ctx context.Context) (*index.DB, error) {
	target := c.database
	switch {
	case target == "":
		target = filepath.Join(c.data, "index.db")
	case !index.IsPostgres(target):
		return nil, fmt.Errorf("--database %q: want a postgres:// URL, or nothing for SQLite in --data", redactURL(target))
	}
	return index.Open(ctx, target, c.db)
}

// redactURL hides a password in a database URL, for errors and logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// view opens the data directory and runs fn in one read transaction.
func (c *cli) view(ctx context.Context, fn func(ctx context.Context, tx *index.Tx) error) error {
	d, err := c.openData(ctx, false)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.db.View(ctx, func(tx *index.Tx) error { return fn(ctx, tx) })
}

// update opens the data directory and runs fn in one write transaction.
func (c *cli) update(ctx context.Context, fn func(ctx context.Context, tx *index.Tx) error) error {
	d, err := c.openData(ctx, false)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.db.Update(ctx, func(tx *index.Tx) error { return fn(ctx, tx) })
}

// mirror opens the data directory's Git mirror of the repository.
func (c *cli) mirror(d *data) (*gitstore.Repo, error) {
	if d.repo == "" {
		return nil, fmt.Errorf("no repository configured: pass --repo PATH|URL (or set PV_REPO) on the first sync")
	}
	return gitstore.Open(filepath.Join(d.dir, "mirror.git"), d.repo, gitstore.Options{Logger: c.log, Auth: c.gitAuth})
}

// flockSync takes the data directory's sync lock on a file descriptor of
// its own (flock locks are per open file, so this also excludes serve's own
// sync loop in this process), returning its release.
func flockSync(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "sync.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sync lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// syncLock takes both sync locks a fetch-and-index needs: the data
// directory's (its mirror) and the database's (on PostgreSQL, shared by
// every instance and CLI on it; nothing more on SQLite). It returns their
// release.
func syncLock(ctx context.Context, d *data) (func(), error) {
	unlock, err := flockSync(d.dir)
	if err != nil {
		return nil, err
	}
	unlockDB, err := d.db.SyncLock(ctx)
	if err != nil {
		unlock()
		return nil, err
	}
	return func() { unlockDB(); unlock() }, nil
}

// withRepo opens the data directory and its Git mirror for fn.
func (c *cli) withRepo(ctx context.Context, remember bool, fn func(d *data, repo *gitstore.Repo) error) error {
	d, err := c.openData(ctx, remember)
	if err != nil {
		return err
	}
	defer d.Close()
	repo, err := c.mirror(d)
	if err != nil {
		return err
	}
	defer repo.Close()
	return fn(d, repo)
}

// normalizeRepo makes a local path absolute so the remembered value works
// from any directory; URLs pass through.
func normalizeRepo(repo string) string {
	if repo == "" || strings.Contains(repo, "://") || isSCPLike(repo) {
		return repo
	}
	if abs, err := filepath.Abs(repo); err == nil {
		return abs
	}
	return repo
}

// isSCPLike reports git's user@host:path form.
func isSCPLike(s string) bool {
	at := strings.Index(s, "@")
	colon := strings.Index(s, ":")
	return at > 0 && colon > at && !strings.Contains(s[:colon], "/")
}
