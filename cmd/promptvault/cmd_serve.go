package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver"
	"github.com/promptvault/promptvault/resolver/metrics"
)

func (c *cli) serveCmd() *cobra.Command {
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve prompts over HTTP and keep the index in sync",
		Long: `serve answers GET /v1/prompts/{key} from memory, /healthz and /readyz
(ready after the first sync). It syncs at start and every --reconcile-every;
run 'promptvault sync' (for example from a Git hook) to index at once.
Changes made with the CLI on the same data directory (promote, rollback,
staging, settings, keys) are served within milliseconds: serve is woken by
writes to the index (inotify on its WAL, or PostgreSQL NOTIFY) and checks
once a second in case a wake-up is lost, so it idles without CPU.

With --database postgres://… several serve instances (each with its own
--data for its Git mirror) are one registry: any of them answers every
request, PostgreSQL LISTEN/NOTIFY carries changes to all of them, and one
leader, elected by an advisory lock, syncs, reconciles and processes
webhook deliveries; /readyz says "leader": true on it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if every <= 0 {
				return fmt.Errorf("--reconcile-every %s: want a positive duration", every)
			}
			d, err := c.openData(ctx, true)
			if err != nil {
				return err
			}
			defer d.Close()
			return c.serve(ctx, d, every, nil)
		},
	}
	c.repoFlags(cmd)
	cmd.Flags().StringVar(&c.addr, "addr", "127.0.0.1:8080", "HTTP listen address")
	cmd.Flags().StringVar(&c.webhookSecret, "webhook-secret", "", "GitHub webhook secret")
	cmd.Flags().DurationVar(&every, "reconcile-every", 5*time.Minute, "how often to fetch and index the repository")
	return cmd
}

// serve runs the HTTP server on d until ctx ends. ready, if set, is called
// once the server is serving and the first sync has completed.
func (c *cli) serve(ctx context.Context, d *data, every time.Duration, ready func(addr string)) error {
	repo, err := c.mirror(d)
	if err != nil {
		return err
	}
	defer repo.Close()
	pool := newRenderPool()
	defer pool.Close()
	h, err := resolver.New(ctx, resolver.Options{DB: d.db, Logger: c.log,
		RenderTimeout: renderFlags.timeout, RenderMaxBytes: renderFlags.maxBytes, RenderPool: pool})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &server{Data: d, Repo: repo, Handler: h, Log: c.log,
		SyncNow: func(ctx context.Context) (*index.SyncResult, error) { return c.syncNow(ctx, d, repo) }}
	for _, hook := range serveHooks {
		if err := hook(ctx, c, s); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", c.addr, err)
	}
	var root http.Handler = h
	for _, mw := range s.Middleware {
		root = mw(root)
	}
	srv := &http.Server{
		Handler:           root,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	addr := ln.Addr().String()
	c.log.Info("listening", "addr", "http://"+addr, "data", d.dir, "repo", d.repo, "branch", d.cfg.Branch)

	var readyOnce sync.Once
	setReady := func() {
		readyOnce.Do(func() {
			// /readyz says 200 once the documents reflect the index as it
			// is now (the first sync's pointers included).
			if err := h.SetReady(ctx); err != nil {
				c.log.Error("set ready", "err", err)
			}
			if ready != nil {
				ready(addr)
			}
		})
	}
	s.Leader = append([]func(context.Context){func(ctx context.Context) { c.syncLoop(ctx, d, repo, every, setReady) }}, s.Leader...)

	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- h.Run(ctx) }()
	go func() {
		errc <- d.db.Lead(ctx, index.LeadOptions{OnChange: func(on bool) {
			h.SetLeader(on)
			metrics.SetLeader(on)
			if d.db.Engine() == "postgres" {
				c.log.Info("leadership", "leader", on)
			}
		}}, func(ctx context.Context) {
			var wg sync.WaitGroup
			for _, loop := range s.Leader {
				wg.Go(func() { loop(ctx) })
			}
			wg.Wait()
		})
	}()
	// A follower is ready once some instance has indexed the repository:
	// it serves from the shared index and never syncs itself.
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			var head string
			err := d.db.View(ctx, func(tx *index.Tx) (err error) { head, err = tx.Meta(ctx, "head"); return err })
			if err == nil && head != "" {
				setReady()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		if errors.Is(runErr, http.ErrServerClosed) {
			runErr = nil
		}
	}
	cancel()
	shut, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	if err := srv.Shutdown(shut); err != nil {
		c.log.Error("shutdown", "err", err)
	}
	c.log.Info("stopped")
	return runErr
}

// syncLoop syncs now and every every, on the leader, calling ready after the
// first sync that succeeds.
func (c *cli) syncLoop(ctx context.Context, d *data, repo *gitstore.Repo, every time.Duration, ready func()) {
	first := true
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := c.syncNow(ctx, d, repo); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Error("sync", "err", err)
		} else if first {
			first = false
			ready()
		}
		// A sync reads the mirror's pack indexes (14 MB for a 40,000-commit
		// history), and the first one follows start-up's build of every
		// document (or, on a new data directory, indexes the whole
		// history): garbage now, which the runtime would hand back to the
		// system over minutes. Reads are served from memory, so return it
		// at once: one full collection per sync, milliseconds.
		debug.FreeOSMemory()
		wait := every
		if first {
			wait = 5 * time.Second // keep trying until the repository answers
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-t.C:
		}
	}
}

// syncNow fetches and indexes under the data directory's sync lock.
// Each call locks on a descriptor (and connection) of its own, not d.lock: the
// sync loop, POST /v1/admin/sync and the webhook worker call it
// concurrently, and a shared d.lock field would race.
func (c *cli) syncNow(ctx context.Context, d *data, repo *gitstore.Repo) (res *index.SyncResult, err error) {
	unlock, err := syncLock(ctx, d)
	if err != nil {
		return nil, err
	}
	defer unlock()
	defer func(start time.Time) { metrics.ObserveSync(start, err) }(time.Now())
	fctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := repo.Fetch(fctx); err != nil {
		return nil, err
	}
	res, err = d.db.Sync(ctx, repo, d.cfg)
	if err != nil {
		return nil, err
	}
	if res.Commits > 0 || len(res.Drafts) > 0 || len(res.DraftsEnded) > 0 {
		c.log.Info("synced", "commit", short(res.Head), "commits", res.Commits, "versions", len(res.Versions),
			"drafts", len(res.Drafts), "drafts_ended", len(res.DraftsEnded), "seconds", res.Seconds)
	}
	return res, nil
}
