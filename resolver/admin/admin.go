// Package admin is promptvault's management surface: the /v1/admin/* JSON
// API of SPEC §5 for pv_admin_ keys, the dashboard under /ui/ (static files
// embedded in the binary, talking to the same API with a session cookie),
// and the OpenAPI document at /v1/openapi.json.
//
// Every change goes through the index's Tx methods the CLI uses (Promote,
// Rollback, SetStaging, ...), in one db.Update each, so the API, CLI and
// webhook apply the same rules and write the same audit rows; admin adds
// only HTTP: authentication, paging, request decoding. Errors reach clients
// through resolver.WriteError, the one place statuses are chosen.
//
// admin sits beside webhook above resolver: it uses resolver's key check
// (Authorize), the index and gitstore (for sources), and never the read
// path's snapshot.
package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver"
)

// Path prefixes this package serves.
const (
	APIPrefix   = "/v1/admin/"
	UIPrefix    = "/ui/"
	OpenAPIPath = "/v1/openapi.json"
)

// Limits of the API.
const (
	MaxBodyBytes = 64 << 10 // JSON request bodies; larger is 413
	DefaultLimit = 50       // page size when ?limit= is absent
	MaxLimit     = 200      // largest ?limit=
	// SessionTTL is how long a dashboard sign-in lasts.
	SessionTTL = 12 * time.Hour
	// maxSessions bounds the session table; the sessions closest to expiry
	// are dropped past it.
	maxSessions = 1000
)

// slog keys (STYLE: keys are constants).
const (
	logKey   = "key"
	logKeyID = "key_id"
	logActor = "actor"
)

// ErrNoSync is returned by POST /v1/admin/sync when the server was built
// without a sync function.
var ErrNoSync = fmt.Errorf("%w: this server cannot sync", resolver.ErrNotReady)

// Options configures New.
type Options struct {
	DB       *index.DB
	Repo     *gitstore.Repo    // commits the editor's drafts; sources and diffs come from the index
	Resolver *resolver.Handler // checks API keys
	Logger   *slog.Logger      // nil: discard
	// Sync fetches and indexes now (POST /v1/admin/sync); nil answers 503.
	Sync func(ctx context.Context) (*index.SyncResult, error)
	// Redelivered wakes the webhook worker after a redelivery; nil: it
	// finds the delivery on its own within seconds.
	Redelivered func()
	// Config is what the server indexes (tracked branch, prompts
	// directory): where dashboard edits go.
	Config index.Config
	// Host commits and merges drafts through GitHub (GitHub mode); nil:
	// drafts are branches pushed to the repository, merged here.
	Host DraftHost
}

// Handler serves /v1/admin/*, /ui/ and /v1/openapi.json. It is safe for
// concurrent use.
type Handler struct {
	db     *index.DB
	repo   *gitstore.Repo
	res    *resolver.Handler
	log    *slog.Logger
	sync   func(ctx context.Context) (*index.SyncResult, error)
	static map[string]*staticFile
	// redelivered wakes the webhook worker (Options.Redelivered).
	redelivered func()
	cfg         index.Config
	host        DraftHost
	editMu      sync.Mutex // one dashboard commit or merge at a time
}

// New builds the handler.
func New(opts Options) (*Handler, error) {
	if opts.DB == nil || opts.Repo == nil || opts.Resolver == nil {
		return nil, errors.New("admin: Options.DB, Repo and Resolver are required")
	}
	h := &Handler{db: opts.DB, repo: opts.Repo, res: opts.Resolver, log: opts.Logger, sync: opts.Sync,
		redelivered: opts.Redelivered, cfg: opts.Config, host: opts.Host}
	if h.cfg.Branch == "" {
		h.cfg.Branch = "main"
	}
	if h.cfg.PromptsDir == "" {
		h.cfg.PromptsDir = "prompts"
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if h.static, err = loadStatic(); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	return h, nil
}

// Routes mounts the API, the dashboard and the OpenAPI document on r.
func (h *Handler) Routes(r *mux.Router) {
	r.PathPrefix(APIPrefix).Handler(http.HandlerFunc(h.serveAPI))
	r.Handle(OpenAPIPath, http.HandlerFunc(serveOpenAPI)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/ui", http.RedirectHandler(UIPrefix, http.StatusMovedPermanently)).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix(UIPrefix).Handler(http.HandlerFunc(h.serveUI))
}

// ServeHTTP serves the three prefixes without a router (tests, or callers
// that mount h under their own).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == OpenAPIPath:
		serveOpenAPI(w, r)
	case len(p) >= len(APIPrefix) && p[:len(APIPrefix)] == APIPrefix:
		h.serveAPI(w, r)
	default:
		h.serveUI(w, r)
	}
}

// securityHeaders are sent with every admin, dashboard and OpenAPI
// response: nothing here may be framed, sniffed into another type, or run
// script from anywhere but this origin's own files.
func securityHeaders(w http.ResponseWriter) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// hashToken is the stored form of a session token: a lookup by hash keeps
// the table from holding usable tokens.
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}
