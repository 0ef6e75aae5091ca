// Package resolver is promptvault's read path: GET /v1/prompts/{key} for
// applications holding pv_live_, pv_test_ or pv_admin_ keys, plus /healthz
// and /readyz, the API-key check and the error table every HTTP handler of
// the service answers with.
//
// Reads touch neither Git nor SQLite. New loads every pointer, key and the
// staging switch from the index and renders each (prompt, env) response
// document once, with its ETag and Content-Length, into an immutable
// snapshot; Run follows the index's change feed (db.Watch, which sees CLI
// writes from other processes too) and swaps in a copy-on-write snapshot in
// which only the changed prompts were rebuilt. A read is a map lookup and a
// write of ready bytes: notes/perf.md §1 measured per-request JSON encoding
// at 19% of throughput and gorilla/mux's matching plus request cloning at
// 11%, so the prompt route is dispatched before the router.
//
// Mounting: Handler is the root http.Handler of the server. Other handlers
// (admin API, webhook, metrics) are added to its gorilla/mux router:
//
//	h, err := resolver.New(ctx, resolver.Options{DB: db, Logger: log})
//	h.Router().PathPrefix("/v1/admin/").Handler(admin)
//	h.Router().Handle("/webhooks/github", hook).Methods(http.MethodPost)
//	go h.Run(ctx)
//	srv := &http.Server{Handler: h}
//	... first sync ...; h.SetReady()
//
// Unknown routes answer 404 and known paths with a wrong method 405, both as
// JSON error bodies. Routes registers the resolver's routes on another
// router instead, for callers that must own the router (reads then pay for
// gorilla's matching).
//
// Resolver knows the index (pointers, versions, keys, file contents by blob
// SHA) and promptvault (parsing a file into the "prompt" object), not Git:
// serving needs no Git objects. It writes to the index only the keys'
// last-used times.
package resolver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/gorilla/mux"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver/metrics"
)

// PromptsPrefix is the path prefix of the read route; the rest of the path
// is the prompt key.
const PromptsPrefix = "/v1/prompts/"

// Defaults for Options.
const (
	// DefaultPollInterval is the change feed's fallback check. Changes
	// arrive by wake-up (inotify on the index's WAL, confirmed by PRAGMA
	// data_version) within milliseconds; this only bounds how late one is
	// seen if a wake-up is lost, and costs nothing while idle.
	DefaultPollInterval  = index.DefaultWatchFallback
	DefaultTouchInterval = 10 * time.Second
	DefaultPinnedDocs    = 1024
	// DefaultPromptCache bounds the decoded prompts kept for renders and
	// document builds. A decoded prompt's schemas and config are maps, some
	// kilobytes each; the prompts rendered most recently stay decoded, the
	// rest are decoded again (about 100 µs) from the file each document
	// keeps.
	DefaultPromptCache = 256
)

// slog keys (STYLE: keys are constants).
const (
	logKey     = "key"
	logVersion = "version"
	logCommit  = "commit"
	logEnv     = "env"
)

// Header values assigned straight into w.Header(): one shared slice per
// value instead of a Set call allocating a new one per response. Nothing in
// net/http writes into a header value slice, and each has len == cap, so an
// append by a later middleware copies rather than mutates it.
var (
	hdrJSON    = []string{"application/json"}
	hdrNoCache = []string{"no-cache"}
	hdrNoStore = []string{"no-store"}
	hdrVary    = []string{"Authorization"}
	hdrBearer  = []string{`Bearer realm="promptvault"`}
)

// Options configures New.
type Options struct {
	DB     *index.DB
	Logger *slog.Logger // nil: discard
	// PollInterval is the longest Run waits for a change wake-up before it
	// checks the index anyway (DefaultPollInterval when 0).
	PollInterval time.Duration
	// TouchInterval is how often Run writes keys' last-used times
	// (DefaultTouchInterval when 0).
	TouchInterval time.Duration
	// PinnedDocs bounds the documents of ?version= reads kept in memory
	// (DefaultPinnedDocs when 0).
	PinnedDocs int
	// PromptCache bounds the decoded prompts kept for renders
	// (DefaultPromptCache when 0).
	PromptCache int
	// RenderTimeout and RenderMaxBytes bound each render (promptvault's
	// defaults, 100 ms and 256 KB, when 0).
	RenderTimeout  time.Duration
	RenderMaxBytes int
	// RenderPool runs renders in worker processes. When nil, New makes
	// one of RenderWorkers workers (GOMAXPROCS when 0) and Run closes it
	// when it returns. A render finding no free worker waits up to
	// RenderTimeout, then 503.
	RenderPool    *promptvault.Pool
	RenderWorkers int
	// EventPing is the interval of the keep-alive comment on /v1/events
	// (DefaultEventPing when 0).
	EventPing time.Duration
	// EventBuffer is how many events may wait for one slow subscriber
	// before it is dropped (DefaultEventBuffer when 0).
	EventBuffer int
}

// Handler serves the read API. It is safe for concurrent use; Run must run
// for it to follow changes.
type Handler struct {
	db      *index.DB
	log     *slog.Logger
	poll    time.Duration
	touch   time.Duration
	router  *mux.Router
	snap    atomic.Pointer[snapshot]
	ready   atomic.Bool // SetReady was called
	leader  atomic.Bool
	readyAt atomic.Int64 // the change position the snapshot must reach to be ready
	// wakeCh makes the change watcher check at once; retryKick wakes the
	// loop that rebuilds failed documents.
	wakeCh    chan struct{}
	retryKick chan struct{}
	pinned    *pinnedCache
	// prompts are decoded prompts by blob SHA, most recently used kept:
	// document builds and renders consult it.
	prompts *lru.Cache[string, *promptvault.Prompt]
	// renderLimits bound every render; their Pool is shared.
	renderLimits promptvault.Limits
	ownPool      bool // New made renderLimits.Pool, so Run closes it
	hub          *hub
	reloadMu     sync.Mutex // serialises snapshot rebuilds; guards seq and retired
	seq          int64      // change feed position the snapshot reflects
	// retired keys were revoked or deleted since the last flush; their
	// last-used times are written once more.
	retired []*apiKey
}

// New loads every pointer, key and the staging switch from the index and
// renders the documents reads are answered with.
func New(ctx context.Context, opts Options) (*Handler, error) {
	if opts.DB == nil {
		return nil, errors.New("resolver: Options.DB is required")
	}
	h := &Handler{
		db:        opts.DB,
		log:       opts.Logger,
		poll:      opts.PollInterval,
		touch:     opts.TouchInterval,
		pinned:    newPinnedCache(opts.PinnedDocs),
		wakeCh:    make(chan struct{}, 1),
		retryKick: make(chan struct{}, 1),
	}
	var err error
	if h.prompts, err = lru.New[string, *promptvault.Prompt](cmp.Or(opts.PromptCache, DefaultPromptCache)); err != nil {
		return nil, fmt.Errorf("resolver: prompt cache: %w", err)
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.poll <= 0 {
		h.poll = DefaultPollInterval
	}
	if h.touch <= 0 {
		h.touch = DefaultTouchInterval
	}
	pool := opts.RenderPool
	if pool == nil {
		pool = promptvault.NewPool(promptvault.PoolOptions{Size: opts.RenderWorkers, Wait: opts.RenderTimeout,
			OnExit: metrics.RenderWorkerExit})
		h.ownPool = true
	}
	h.renderLimits = promptvault.Limits{Timeout: opts.RenderTimeout, MaxOutput: opts.RenderMaxBytes, Pool: pool}
	h.hub = newHub(h.log, opts.EventPing, opts.EventBuffer)
	h.router = mux.NewRouter()
	h.router.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.WriteError(w, r, fmt.Errorf("%w: no route %s", index.ErrNotFound, r.URL.Path))
	})
	h.router.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.WriteError(w, r, fmt.Errorf("%w: %s %s", ErrMethodNotAllowed, r.Method, r.URL.Path))
	})
	h.Routes(h.router)
	if err := h.loadAll(ctx); err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	if err := h.hub.load(ctx, h.db); err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	return h, nil
}

// Router is the router behind the read route: mount the service's other
// handlers on it and serve h.
func (h *Handler) Router() *mux.Router { return h.router }

// Routes registers /healthz, /readyz, GET/HEAD /v1/prompts/{key}, POST
// /v1/prompts/{key}/render and GET /v1/events on r.
func (h *Handler) Routes(r *mux.Router) {
	r.HandleFunc("/healthz", h.healthz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", h.readyz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc(EventsPath, h.events).Methods(http.MethodGet)
	// Before the read route, so a POST to a render path is not a 405 from
	// the GET route's prefix match.
	r.MatcherFunc(func(r *http.Request, _ *mux.RouteMatch) bool { return isRender(r) }).
		Methods(http.MethodPost).HandlerFunc(h.render)
	r.PathPrefix(PromptsPrefix).Methods(http.MethodGet, http.MethodHead).HandlerFunc(h.read)
}

// ServeHTTP answers prompt reads directly and hands everything else to the
// router. Dispatching before gorilla/mux keeps a read free of its regexp
// match and of the two request clones it makes to store route variables.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(r.URL.Path, PromptsPrefix) {
		h.read(w, r)
		return
	}
	h.router.ServeHTTP(w, r)
}

// SetLeader records whether this instance is the leader, for /readyz.
func (h *Handler) SetLeader(on bool) { h.leader.Store(on) }

// readyDBTimeout bounds /readyz's database check: a load balancer's probe
// must get an answer, not hang on a dead connection.
const readyDBTimeout = time.Second

var (
	okBody       = []byte(`{"status":"ok"}` + "\n")
	readyLeader  = []byte(`{"status":"ok","leader":true}` + "\n")
	readyFollows = []byte(`{"status":"ok","leader":false}` + "\n")
)

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSONBytes(w, okBody)
}

func writeJSONBytes(w http.ResponseWriter, b []byte) {
	hdr := w.Header()
	hdr["Content-Type"] = hdrJSON
	hdr["Cache-Control"] = hdrNoStore
	w.Write(b)
}
