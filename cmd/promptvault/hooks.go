package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver"
)

// Extension points. Subsystems that plug into the CLI (GitHub mode in
// github.go, the admin API and dashboard in admin.go) register here from
// init, so each lives in its own file and the core commands stay readable.
var (
	// flagHooks add flags to the root or to commands after they are built.
	flagHooks []func(c *cli, root *cobra.Command)
	// configHooks adjust an opened data directory's configuration (GitHub
	// mode turns branch drafts off, picks merged-pr, sets git credentials).
	configHooks []func(ctx context.Context, c *cli, d *data) error
	// serveHooks mount handlers on the server's router and start loops
	// that end with ctx.
	serveHooks []func(ctx context.Context, c *cli, s *server) error
	// openRollbackPR, when set, opens a pull request restoring a rolled
	// back version's content on the tracked branch (rollback --open-pr).
	openRollbackPR func(ctx context.Context, c *cli, d *data, v index.Version) (url string, err error)
)

// server is what serveHooks get: the running parts of serve.
type server struct {
	Data    *data
	Repo    *gitstore.Repo
	Handler *resolver.Handler
	Log     *slog.Logger
	// SyncNow fetches and indexes under the data directory's sync lock.
	SyncNow func(ctx context.Context) (*index.SyncResult, error)
	// Middleware wrap the root handler, first one innermost (admin.go's
	// HTTP metrics must see every request, reads included, which are
	// answered before the router).
	Middleware []func(http.Handler) http.Handler
	// Leader loops run only on the leader: of several instances sharing
	// a PostgreSQL database exactly one at a time (always this one on
	// SQLite). Their context ends when leadership is lost; they are
	// started again if it is won back.
	Leader []func(ctx context.Context)
}

// gitAuth, when a configHook sets it, supplies credentials for fetches.
type gitAuthFunc = func(ctx context.Context) (transport.AuthMethod, error)
