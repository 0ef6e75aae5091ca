package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver/metrics"
)

// A pointer whose document cannot be built (its content is not in the index
// yet, or a parser grown stricter refuses its file) must not turn a good
// answer into an error: the snapshot keeps the pointer's previous good
// document, the failure is logged once and counted, a retry loop rebuilds
// it with backoff, and /readyz reports it (503 while a live pointer has no
// document at all).

// Retry backoff for failed documents: quick first (content may be on its
// way), then slow, so a broken prompt costs nothing while the server idles.
const (
	retryFirst = 500 * time.Millisecond
	retryMax   = 30 * time.Second
)

type failKey struct{ key, env string }

// failure is one pointer whose document could not be built.
type failure struct {
	Key     string `json:"key"`
	Env     string `json:"env"`
	Want    string `json:"version"`           // the pointer's target
	Serving string `json:"serving,omitempty"` // the older version still served; "" = nothing
	Reason  string `json:"reason"`
	Since   string `json:"since"`
	src     index.Pointer
}

// failSet collects the failures of the snapshot being built, next to the
// published snapshot's (prev), so each failure is logged and counted once.
type failSet struct {
	prev, next map[failKey]*failure
}

func newFailSet(prev map[failKey]*failure) *failSet {
	return &failSet{prev: prev, next: map[failKey]*failure{}}
}

// add records that p's document d failed; old is the good document served
// instead (nil: none).
func (fs *failSet) add(h *Handler, p index.Pointer, d *doc, old *doc) {
	k := failKey{p.Key, p.Env}
	f := &failure{Key: p.Key, Env: p.Env, Want: p.Label(), Reason: "the document could not be built; see the server log",
		Since: time.Now().UTC().Format(time.RFC3339), src: source(p)}
	if errors.Is(d.cause, index.ErrNotFound) {
		f.Reason = "the file's content is not in the index yet"
	}
	if old != nil {
		f.Serving = old.src.Label()
	}
	if pf := fs.prev[k]; pf != nil && pf.src == f.src {
		f.Since = pf.Since // the same failure, retried: logged and counted already
	} else {
		metrics.DocumentBuildFailed(p.Env)
		h.log.Error("build document; serving the previous one and retrying", logKey, p.Key, logEnv, p.Env,
			logVersion, p.Label(), logCommit, p.Commit, "serving", f.Serving, "err", d.cause)
	}
	fs.next[k] = f
}

// publish stores next with fs's failures as the snapshot reads see, and
// reports the failures: recoveries logged, gauges set, the retry loop woken.
// Needs h.reloadMu.
func (h *Handler) publish(next *snapshot, fs *failSet) {
	next.failing = fs.next
	h.snap.Store(next)
	for k, f := range fs.prev {
		if _, still := fs.next[k]; !still {
			h.log.Info("document built after failing", logKey, k.key, logEnv, k.env, "since", f.Since)
		}
	}
	var previous, none int
	for _, f := range fs.next {
		if f.Serving != "" {
			previous++
		} else {
			none++
		}
	}
	metrics.SetDocumentsFailing(previous, none)
	if len(fs.next) > 0 {
		select {
		case h.retryKick <- struct{}{}:
		default:
		}
	}
}

// retryLoop rebuilds failing documents with backoff until none fail, then
// sleeps until publish reports a new failure. It returns when ctx ends.
func (h *Handler) retryLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.retryKick:
		}
		for wait := retryFirst; ; wait = min(2*wait, retryMax) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			if !h.retryFailed(ctx) {
				break
			}
		}
		// Drain a kick publish sent for failures just retried.
		select {
		case <-h.retryKick:
		default:
		}
	}
}

// retryFailed rebuilds the prompts whose documents fail and reports whether
// any still do.
func (h *Handler) retryFailed(ctx context.Context) bool {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	failing := h.snap.Load().failing
	if len(failing) == 0 {
		return false
	}
	prompts := map[string]bool{}
	for k := range failing {
		prompts[k.key] = true
	}
	if err := h.rebuildLocked(ctx, prompts, false, false, h.seq); err != nil && ctx.Err() == nil {
		h.log.Error("retry failed documents", "err", err)
	}
	return len(h.snap.Load().failing) > 0
}

// SetReady marks the first sync done: /readyz answers 200 once the snapshot
// has caught up with everything the index held at this call (the sync's
// own pointer moves included, so a load balancer is never told "ready"
// before the documents exist) and every live pointer has a document.
func (h *Handler) SetReady(ctx context.Context) error {
	var seq int64
	err := h.db.View(ctx, func(tx *index.Tx) (err error) {
		seq, err = tx.LastChange(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("set ready: %w", err)
	}
	h.readyAt.Store(seq)
	h.ready.Store(true)
	h.wake()
	return nil
}

// readyBody is /readyz's 200 body: "ok", or "degraded" with the pointers
// served by an older document than they point at.
type readyBody struct {
	Status  string     `json:"status"`
	Leader  bool       `json:"leader"`
	Failing []*failure `json:"failing,omitempty"`
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	if !h.ready.Load() {
		h.WriteError(w, r, fmt.Errorf("%w: the first sync has not finished", ErrNotReady))
		return
	}
	// Reads keep coming from memory while the database is away, but an
	// instance that cannot see changes or take writes is taken out of the
	// load balancer until it can.
	ctx, cancel := context.WithTimeout(r.Context(), readyDBTimeout)
	defer cancel()
	if err := h.db.Ping(ctx); err != nil {
		h.log.Warn("readyz: database", "err", err)
		h.WriteError(w, r, ErrDatabaseDown)
		return
	}
	s := h.snap.Load()
	if at := h.readyAt.Load(); s.seq < at {
		h.WriteError(w, r, fmt.Errorf("%w: applying index changes (at %d of %d)", ErrNotReady, s.seq, at))
		return
	}
	failing := make([]*failure, 0, len(s.failing))
	var unserved []string
	for _, f := range s.failing {
		failing = append(failing, f)
		if f.Env == index.EnvLive && f.Serving == "" {
			unserved = append(unserved, fmt.Sprintf("%s %s", f.Key, f.Want))
		}
	}
	if len(unserved) > 0 {
		sort.Strings(unserved)
		if len(unserved) > 10 {
			unserved = append(unserved[:10], fmt.Sprintf("and %d more", len(unserved)-10))
		}
		h.WriteError(w, r, fmt.Errorf("%w: live pointers without a document (retrying): %s", ErrNotReady, strings.Join(unserved, ", ")))
		return
	}
	if len(failing) == 0 {
		if h.leader.Load() {
			writeJSONBytes(w, readyLeader)
		} else {
			writeJSONBytes(w, readyFollows)
		}
		return
	}
	sort.Slice(failing, func(i, j int) bool {
		return failing[i].Key < failing[j].Key || failing[i].Key == failing[j].Key && failing[i].Env < failing[j].Env
	})
	b, err := encodeJSON(readyBody{Status: "degraded", Leader: h.leader.Load(), Failing: failing})
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	writeJSONBytes(w, b)
}
