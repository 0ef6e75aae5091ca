package resolver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver/metrics"
)

// EventsPath is the Server-Sent Events route (SPEC §3).
const EventsPath = "/v1/events"

// Defaults for Options.
const (
	DefaultEventPing   = 15 * time.Second
	DefaultEventBuffer = 256
	// eventRetain is how many events the hub keeps for Last-Event-ID
	// resumes; a client further behind gets a "reset" event.
	eventRetain = 100_000
	// eventWriteWait bounds one write to a subscriber: a client that stops
	// reading is dropped rather than holding its goroutine forever.
	eventWriteWait = 10 * time.Second
)

// Why the events come from the audit log: every pointer move writes an
// audit row in the same transaction, from any process (CLI, admin API,
// webhook worker, auto-promotion during sync), and the row's sequence
// number is a durable, gap-free event id, so Last-Event-ID resumes are
// exact. The hub reads the log once at start (to know, for test keys,
// which prompts have staging at each point) and then follows it whenever
// Run has applied a change to the snapshot, never ahead of it: a client
// that refetches on an event must get the new document, not the old one.

// hub fans pointer events out to /v1/events subscribers.
type hub struct {
	log  *slog.Logger
	ping time.Duration
	buf  int

	hw     atomic.Int64 // audit seq the snapshot is known to reflect
	tickle chan struct{}

	mu    sync.Mutex // guards everything below
	subs  map[*subscriber]struct{}
	ring  []*frame // events, oldest first
	floor int64    // events at or below floor were trimmed from ring
	last  int64    // audit seq processed
	st    model
}

// frame is one audit entry's events, encoded once for every subscriber:
// live is what live and admin keys see, test what test keys see; nil when
// that kind of key sees nothing.
type frame struct {
	seq        int64
	live, test []byte
}

// model is what each kind of key reads, replayed from the audit log.
type model struct {
	live, staging map[string]pointerState
	staging0      bool // the staging switch
}

type pointerState struct{ version, commit, sha256 string }

// eventData is an event's JSON (SPEC §3). env and version say what the
// receiving key reads after the change: a test key whose staging was
// cleared is told it now reads live.
type eventData struct {
	Key     string `json:"key"`
	Env     string `json:"env"`
	Version string `json:"version"`
	Commit  string `json:"commit"`
	SHA256  string `json:"sha256"`
	Action  string `json:"action"`
}

type subscriber struct {
	key    *apiKey
	test   bool
	ch     chan *frame
	done   chan struct{}
	once   sync.Once
	reason string // set before done closes
}

func (s *subscriber) drop(reason string) {
	s.once.Do(func() {
		s.reason = reason
		close(s.done)
	})
}

func newHub(log *slog.Logger, ping time.Duration, buf int) *hub {
	if ping <= 0 {
		ping = DefaultEventPing
	}
	if buf <= 0 {
		buf = DefaultEventBuffer
	}
	return &hub{log: log, ping: ping, buf: buf, tickle: make(chan struct{}, 1), subs: map[*subscriber]struct{}{},
		st: model{live: map[string]pointerState{}, staging: map[string]pointerState{}, staging0: true}}
}

// advance records that the snapshot reflects the audit log up to seq and
// wakes the hub.
func (hb *hub) advance(seq int64) {
	for {
		cur := hb.hw.Load()
		if seq <= cur || hb.hw.CompareAndSwap(cur, seq) {
			break
		}
	}
	select {
	case hb.tickle <- struct{}{}:
	default:
	}
}

// load replays the audit log up to the snapshot's position (New calls it
// once, before anyone subscribes).
func (hb *hub) load(ctx context.Context, db *index.DB) error {
	if err := hb.catchUp(ctx, db); err != nil {
		return fmt.Errorf("replay audit log: %w", err)
	}
	return nil
}

// run follows advances until ctx ends.
func (hb *hub) run(ctx context.Context, db *index.DB) {
	for {
		select {
		case <-ctx.Done():
			hb.closeAll("server shutting down")
			return
		case <-hb.tickle:
		}
		backoff := 100 * time.Millisecond
		for {
			err := hb.catchUp(ctx, db)
			if err == nil || ctx.Err() != nil {
				break
			}
			hb.log.Error("read audit log for events", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

const auditPage = 1000

// catchUp processes audit entries up to the high-water mark and publishes
// their events.
func (hb *hub) catchUp(ctx context.Context, db *index.DB) error {
	hw := hb.hw.Load()
	for {
		hb.mu.Lock()
		from := hb.last
		hb.mu.Unlock()
		if from >= hw {
			return nil
		}
		var entries []index.AuditEntry
		err := db.View(ctx, func(tx *index.Tx) error {
			var err error
			entries, err = tx.AuditSince(ctx, from, auditPage)
			return err
		})
		if err != nil {
			return err
		}
		hb.mu.Lock()
		for _, e := range entries {
			if e.Seq > hw {
				break
			}
			if f := hb.st.apply(e); f != nil {
				hb.publishLocked(f)
			}
			hb.last = e.Seq
		}
		if len(entries) < auditPage || hb.last >= hw {
			hb.last = max(hb.last, hw)
			hb.mu.Unlock()
			return nil
		}
		hb.mu.Unlock()
	}
}

// apply updates the model with e and returns its events, or nil when e
// moves no pointer (promotion_refused, draft_delete, keys, ...).
func (m *model) apply(e index.AuditEntry) *frame {
	cur := pointerState{version: e.Version, commit: e.Commit, sha256: e.SHA256}
	f := &frame{seq: e.Seq}
	ev := func(key, env string, p pointerState) eventData {
		return eventData{Key: key, Env: env, Version: p.version, Commit: p.commit, SHA256: p.sha256, Action: e.Action}
	}
	switch {
	case e.Action == index.ActPromotionRefused || e.Key == "" && e.Action != index.ActSettings:
		return nil
	case e.Action == index.ActSettings:
		on, ok := strings.CutPrefix(e.Detail, "staging_enabled=")
		if !ok || (on == "true") == m.staging0 {
			return nil
		}
		m.staging0 = on == "true"
		// Test keys now read staging (on) or live (off) wherever staging
		// is set: one event per such prompt, all under this entry's id.
		keys := make([]string, 0, len(m.staging))
		for k := range m.staging {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var evs []eventData
		for _, k := range keys {
			if m.staging0 {
				evs = append(evs, ev(k, index.EnvStaging, m.staging[k]))
			} else {
				evs = append(evs, ev(k, index.EnvLive, m.live[k]))
			}
		}
		f.test = encodeFrames(e.Seq, evs)
	case e.Env == index.EnvLive:
		m.live[e.Key] = cur
		f.live = encodeFrames(e.Seq, []eventData{ev(e.Key, index.EnvLive, cur)})
		if _, shadowed := m.staging[e.Key]; !(m.staging0 && shadowed) {
			f.test = f.live
		}
	case e.Env == index.EnvStaging && e.Action == index.ActStagingClear:
		delete(m.staging, e.Key)
		if m.staging0 {
			f.test = encodeFrames(e.Seq, []eventData{ev(e.Key, index.EnvLive, m.live[e.Key])})
		}
	case e.Env == index.EnvStaging:
		m.staging[e.Key] = cur
		if m.staging0 {
			f.test = encodeFrames(e.Seq, []eventData{ev(e.Key, index.EnvStaging, cur)})
		}
	default:
		return nil
	}
	if f.live == nil && f.test == nil {
		return nil
	}
	return f
}

// encodeFrames writes evs as SSE events. Only the last carries the id, so a
// client cut off inside a group resumes before it and gets it all again.
func encodeFrames(seq int64, evs []eventData) []byte {
	if len(evs) == 0 {
		return nil
	}
	var b strings.Builder
	for i, e := range evs {
		if i == len(evs)-1 {
			b.WriteString("id: ")
			b.WriteString(strconv.FormatInt(seq, 10))
			b.WriteByte('\n')
		}
		data, _ := json.Marshal(e) // strings only: cannot fail
		b.WriteString("event: pointer\ndata: ")
		b.Write(data)
		b.WriteString("\n\n")
	}
	return []byte(b.String())
}

// publishLocked keeps f for resumes and hands it to every subscriber that
// sees it, without ever blocking: a subscriber whose buffer is full is
// dropped (it can resume from its Last-Event-ID). Needs hb.mu.
func (hb *hub) publishLocked(f *frame) {
	hb.ring = append(hb.ring, f)
	if len(hb.ring) > eventRetain {
		cut := len(hb.ring) - eventRetain/2
		hb.floor = hb.ring[cut-1].seq
		hb.ring = append([]*frame(nil), hb.ring[cut:]...)
	}
	for s := range hb.subs {
		if s.frameFor(f) == nil {
			continue
		}
		select {
		case s.ch <- f:
		default:
			delete(hb.subs, s)
			s.drop(fmt.Sprintf("slow_consumer: more than %d events waited for this client; reconnect with Last-Event-ID to resume", hb.buf))
		}
	}
}

func (s *subscriber) frameFor(f *frame) []byte {
	if s.test {
		return f.test
	}
	return f.live
}

// subscribe registers a subscriber and returns the events after lastID it
// missed (lastID < 0: none wanted). reset is true when they are no longer
// kept: the client must refetch what it caches.
func (hb *hub) subscribe(k *apiKey, lastID int64) (s *subscriber, backlog []*frame, reset bool, at int64) {
	s = &subscriber{key: k, test: k.env == index.KeyTest, ch: make(chan *frame, hb.buf), done: make(chan struct{})}
	hb.mu.Lock()
	defer hb.mu.Unlock()
	hb.subs[s] = struct{}{}
	if lastID >= 0 && lastID < hb.last {
		if lastID < hb.floor {
			reset = true
		} else {
			i := sort.Search(len(hb.ring), func(i int) bool { return hb.ring[i].seq > lastID })
			backlog = append(backlog, hb.ring[i:]...)
		}
	}
	return s, backlog, reset, hb.last
}

func (hb *hub) unsubscribe(s *subscriber) {
	hb.mu.Lock()
	delete(hb.subs, s)
	hb.mu.Unlock()
}

// checkKeys drops subscribers whose key is no longer usable (revoked or
// deleted). keys is the new snapshot's key map.
func (hb *hub) checkKeys(keys map[[32]byte]*apiKey) {
	live := make(map[*apiKey]bool, len(keys))
	for _, k := range keys {
		live[k] = true
	}
	hb.mu.Lock()
	defer hb.mu.Unlock()
	for s := range hb.subs {
		if !live[s.key] {
			delete(hb.subs, s)
			s.drop("unauthorized: the API key was revoked")
		}
	}
}

func (hb *hub) closeAll(reason string) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	for s := range hb.subs {
		delete(hb.subs, s)
		s.drop(reason)
	}
}

// Subscribers is the number of open /v1/events streams.
func (h *Handler) Subscribers() int {
	h.hub.mu.Lock()
	defer h.hub.mu.Unlock()
	return len(h.hub.subs)
}

var (
	hdrEventStream = []string{"text/event-stream"}
	hdrNoBuffering = []string{"no"}
)

// events answers GET /v1/events with a Server-Sent Events stream of the
// pointer changes the key can see. Last-Event-ID (or ?last_event_id=, for
// clients that cannot set headers) resumes after that event.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	k, err := authenticate(h.snap.Load(), r)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	lastID := int64(-1)
	idText := r.Header.Get("Last-Event-ID")
	if idText == "" {
		idText = r.URL.Query().Get("last_event_id")
	}
	if idText != "" {
		if lastID, err = strconv.ParseInt(strings.TrimSpace(idText), 10, 64); err != nil || lastID < 0 {
			h.WriteError(w, r, fmt.Errorf("%w: Last-Event-ID %q: want an event id (a non-negative integer)", index.ErrInvalid, idText))
			return
		}
	}
	rc := http.NewResponseController(w)
	// The server's read and write timeouts are for requests, not streams:
	// without clearing them the stream is cut when they expire. Each write
	// gets its own deadline below instead.
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		h.log.Debug("events: clear read deadline", "err", err)
	}
	s, backlog, reset, at := h.hub.subscribe(k, lastID)
	defer h.hub.unsubscribe(s)
	defer metrics.SSESubscribe()()

	hdr := w.Header()
	hdr["Content-Type"] = hdrEventStream
	hdr["Cache-Control"] = hdrNoStore
	hdr["X-Accel-Buffering"] = hdrNoBuffering // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	write := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(eventWriteWait))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return true
	}
	flush := func() bool {
		rc.SetWriteDeadline(time.Now().Add(eventWriteWait))
		return rc.Flush() == nil
	}
	// retry: how long EventSource clients wait before reconnecting.
	if !write([]byte("retry: 1000\n: connected\n\n")) {
		return
	}
	if reset {
		msg, _ := json.Marshal(map[string]string{"reason": "events since Last-Event-ID are no longer kept; refetch cached prompts"})
		if !write([]byte(fmt.Sprintf("id: %d\nevent: reset\ndata: %s\n\n", at, msg))) {
			return
		}
	}
	for _, f := range backlog {
		if b := s.frameFor(f); b != nil && !write(b) {
			return
		}
	}
	if !flush() {
		return
	}
	ping := time.NewTicker(h.hub.ping)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			msg, _ := json.Marshal(map[string]string{"code": strings.SplitN(s.reason, ":", 2)[0], "message": s.reason})
			write([]byte("event: error\ndata: " + string(msg) + "\n\n"))
			flush()
			return
		case f := <-s.ch:
			ok := write(s.frameFor(f))
			// Send whatever else is queued in the same flush.
			for more := true; ok && more; {
				select {
				case f := <-s.ch:
					ok = write(s.frameFor(f))
				default:
					more = false
				}
			}
			if !ok || !flush() {
				return
			}
		case <-ping.C:
			if !write([]byte(": ping\n\n")) || !flush() {
				return
			}
		}
	}
}
