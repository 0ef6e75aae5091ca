package resolver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promptvault/promptvault/index"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	id, event string
	data      eventData
	raw       string
	at        time.Time
}

// sseClient is a real HTTP client reading /v1/events.
type sseClient struct {
	res    *http.Response
	events chan sseEvent
	cancel context.CancelFunc
	done   chan struct{}
}

func (env *testEnv) subscribe(tb testing.TB, keyEnv, lastID string) *sseClient {
	tb.Helper()
	return subscribeTo(tb, env.srv.URL, env.srv.Client(), env.keys[keyEnv], lastID)
}

func subscribeTo(tb testing.TB, base string, hc *http.Client, key, lastID string) *sseClient {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+EventsPath, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := hc.Do(req)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		tb.Fatalf("events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	c := &sseClient{res: res, events: make(chan sseEvent, 10000), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.events)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		var raw strings.Builder
		for sc.Scan() {
			line := sc.Text()
			raw.WriteString(line + "\n")
			switch {
			case line == "":
				if ev.event != "" {
					ev.raw, ev.at = raw.String(), time.Now()
					c.events <- ev
				}
				ev = sseEvent{}
				raw.Reset()
			case strings.HasPrefix(line, ":"):
				if line == ": ping" {
					c.events <- sseEvent{event: "ping", at: time.Now()}
				}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				json.Unmarshal([]byte(line[6:]), &ev.data)
				if ev.event == "" {
					ev.event = "?"
				}
			}
		}
	}()
	tb.Cleanup(c.close)
	return c
}

func (c *sseClient) close() {
	c.cancel()
	<-c.done
	c.res.Body.Close()
}

// next returns the next event other than a ping.
func (c *sseClient) next(tb testing.TB) sseEvent {
	tb.Helper()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				tb.Fatal("event stream ended")
			}
			if ev.event == "ping" {
				continue
			}
			return ev
		case <-time.After(time.Minute):
			tb.Fatal("no event within a minute")
		}
	}
}

// expect reads the next event and checks it.
func (c *sseClient) expect(tb testing.TB, key, env, version, action string) sseEvent {
	tb.Helper()
	ev := c.next(tb)
	d := ev.data
	if ev.event != "pointer" || d.Key != key || d.Env != env || d.Version != version || d.Action != action || ev.id == "" {
		tb.Fatalf("event %q %+v, want pointer %s %s %s %s", ev.event, d, key, env, version, action)
	}
	return ev
}

// quiet checks no event other than pings arrives for a moment.
func (c *sseClient) quiet(tb testing.TB) {
	tb.Helper()
	deadline := time.After(200 * time.Millisecond)
	for {
		select {
		case ev := <-c.events:
			if ev.event != "ping" {
				tb.Fatalf("unexpected event %s %+v", ev.event, ev.data)
			}
		case <-deadline:
			return
		}
	}
}

func promote(key, label string) func(context.Context, *index.Tx) error {
	return func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.Promote(ctx, key, label, "test")
		return err
	}
}

func rollback(key, label string) func(context.Context, *index.Tx) error {
	return func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.Rollback(ctx, key, label, "test")
		return err
	}
}

func TestEventsPointerMoves(t *testing.T) {
	env := newTestEnv(t, Options{})
	live := env.subscribe(t, index.KeyLive, "")
	test := env.subscribe(t, index.KeyTest, "")
	admin := env.subscribe(t, index.KeyAdmin, "")
	const sum = "support/summarize"

	// The CLI path: another process writing the same index file.
	env.otherProcess(t, rollback(sum, "v1"))
	for _, c := range []*sseClient{live, test, admin} {
		ev := c.expect(t, sum, "live", "v1", "rollback")
		if ev.data.Commit == "" || len(ev.data.SHA256) != 64 {
			t.Errorf("event without commit or sha256: %+v", ev.data)
		}
	}
	// The admin API path: index Tx calls in the server's own process.
	env.update(t, promote(sum, "v2"))
	live.expect(t, sum, "live", "v2", "promote")
	test.expect(t, sum, "live", "v2", "promote")

	// Staging: only test keys see it; live moves under it are hidden from
	// test keys (they keep reading staging).
	env.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.SetStaging(ctx, sum, "draft:feature", "test")
		return err
	})
	test.expect(t, sum, "staging", "draft:feature", "staging_set")
	env.otherProcess(t, rollback(sum, "v1"))
	live.expect(t, sum, "live", "v1", "rollback")

	// Staging off: test keys now read live.
	env.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.SetStagingEnabled(ctx, false, "test")
		return err
	})
	test.expect(t, sum, "live", "v1", "settings")
	// ...so a live move reaches them again.
	env.update(t, promote(sum, "v2"))
	live.expect(t, sum, "live", "v2", "promote")
	test.expect(t, sum, "live", "v2", "promote")
	env.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.SetStagingEnabled(ctx, true, "test")
		return err
	})
	test.expect(t, sum, "staging", "draft:feature", "settings")
	env.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.ClearStaging(ctx, sum, "test")
		return err
	})
	test.expect(t, sum, "live", "v2", "staging_clear")

	// Auto-promotion: a new commit synced in push mode.
	env.commit(t, "greet v2", map[string]string{"prompts/greet.yaml": "template: Hi {{ name }}\n"})
	env.sync(t)
	live.expect(t, "greet", "live", "v2", "promote")
	test.expect(t, "greet", "live", "v2", "promote")

	// A refused promotion (invalid version) moves nothing.
	env.commit(t, "greet broken", map[string]string{"prompts/greet.yaml": "template: Hi {{ name }\n"})
	env.sync(t)
	live.quiet(t)

	// The event is published only once reads serve the change.
	env.update(t, rollback("greet", "v1"))
	live.expect(t, "greet", "live", "v1", "rollback")
	if b := decodeRead(t, env.read(t, index.KeyLive, "greet")); b.Version != "v1" {
		t.Errorf("after the event, reads serve %s", b.Version)
	}
	admin.expect(t, sum, "live", "v2", "promote") // admin keys read as live keys do
}

// TestEventsResume disconnects a subscriber, moves pointers, and
// reconnects with Last-Event-ID: it gets exactly the missed events, in
// order, then live ones.
func TestEventsResume(t *testing.T) {
	env := newTestEnv(t, Options{})
	const sum = "support/summarize"
	c := env.subscribe(t, index.KeyLive, "")
	env.update(t, rollback(sum, "v1"))
	first := c.expect(t, sum, "live", "v1", "rollback")
	c.close()

	env.update(t, promote(sum, "v2"))
	env.otherProcess(t, rollback(sum, "v1"))
	env.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.CreateKey(ctx, index.KeyLive, "", "t")
		return err
	})
	env.update(t, promote(sum, "v2"))
	// Wait until the hub has published them all.
	eventually(t, time.Minute, func() string {
		if b := decodeRead(t, env.read(t, index.KeyLive, sum)); b.Version != "v2" {
			return "not yet"
		}
		return ""
	})
	time.Sleep(50 * time.Millisecond)

	c = env.subscribe(t, index.KeyLive, first.id)
	a := c.expect(t, sum, "live", "v2", "promote")
	b := c.expect(t, sum, "live", "v1", "rollback")
	d := c.expect(t, sum, "live", "v2", "promote")
	if !(first.id < a.id && a.id < b.id && b.id < d.id) && !(len(first.id) <= len(a.id)) {
		t.Errorf("ids not increasing: %s %s %s %s", first.id, a.id, b.id, d.id)
	}
	c.quiet(t)
	env.update(t, rollback(sum, "v1"))
	c.expect(t, sum, "live", "v1", "rollback")

	// Resuming from the start replays the whole history, bootstrap first.
	all := env.subscribe(t, index.KeyLive, "0")
	ev := all.next(t)
	if ev.data.Action != "bootstrap" {
		t.Errorf("first replayed event %+v", ev.data)
	}
	r := env.get(t, http.MethodGet, EventsPath, "Bearer "+env.keys[index.KeyLive], "Last-Event-ID", "x")
	errorCode(t, r, 400, "invalid_request")
	errorCode(t, env.get(t, http.MethodGet, EventsPath, ""), 401, "unauthorized")
}

func TestEventsPingSlowClientAndRevocation(t *testing.T) {
	env := newTestEnv(t, Options{EventPing: 20 * time.Millisecond, EventBuffer: 2})
	c := env.subscribe(t, index.KeyLive, "")
	select {
	case ev := <-c.events:
		if ev.event != "ping" {
			t.Fatalf("want a ping first, got %+v", ev)
		}
	case <-time.After(time.Minute):
		t.Fatal("no ping")
	}

	// A subscriber that stops reading: its buffer (2) fills, it is
	// dropped, and promotions carry on regardless.
	slow := env.h.hub
	k := env.h.snap.Load().keys
	var someKey *apiKey
	for _, v := range k {
		if v.env == index.KeyLive {
			someKey = v
		}
	}
	s, _, _, _ := slow.subscribe(someKey, -1)
	for i := range 6 {
		label := []string{"v1", "v2"}[i%2]
		if i%2 == 0 {
			env.update(t, rollback("support/summarize", label))
		} else {
			env.update(t, promote("support/summarize", label))
		}
	}
	select {
	case <-s.done:
		if !strings.HasPrefix(s.reason, "slow_consumer") {
			t.Errorf("dropped for %q", s.reason)
		}
	case <-time.After(time.Minute):
		t.Fatal("slow subscriber not dropped")
	}
	slow.unsubscribe(s)

	// Revoking the key ends its stream with an error event.
	var id string
	env.update(t, func(ctx context.Context, tx *index.Tx) error {
		keys, err := tx.Keys(ctx)
		for _, k := range keys {
			if k.Env == index.KeyTest {
				id = k.ID
			}
		}
		return err
	})
	tc := env.subscribe(t, index.KeyTest, "")
	env.otherProcess(t, func(ctx context.Context, tx *index.Tx) error { _, err := tx.RevokeKey(ctx, id, "t"); return err })
	for {
		ev := tc.next(t)
		if ev.event == "error" {
			if !strings.Contains(ev.raw, "revoked") {
				t.Errorf("error event %q", ev.raw)
			}
			break
		}
	}
	select {
	case _, ok := <-tc.events:
		for ok {
			_, ok = <-tc.events
		}
	case <-time.After(time.Minute):
		t.Fatal("revoked stream not closed")
	}
}

// TestEvents1000Subscribers opens 1,000 streams, moves a pointer, checks
// every one gets the event, then closes them all and checks the hub let go.
func TestEvents1000Subscribers(t *testing.T) {
	env := newTestEnv(t, Options{})
	tr := &http.Transport{MaxIdleConnsPerHost: 1000, MaxConnsPerHost: 0}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	const n = 1000
	subs := make([]*sseClient, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := subscribeTo(t, env.srv.URL, hc, env.keys[index.KeyLive], "")
			mu.Lock()
			subs[i] = c
			mu.Unlock()
		}()
	}
	wg.Wait()
	eventually(t, time.Minute, func() string {
		if got := env.h.Subscribers(); got != n {
			return fmt.Sprintf("%d subscribers", got)
		}
		return ""
	})
	start := time.Now()
	env.update(t, rollback("support/summarize", "v1"))
	lat := make([]time.Duration, n)
	for i, c := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := c.expect(t, "support/summarize", "live", "v1", "rollback")
			lat[i] = ev.at.Sub(start)
		}()
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("promote → event at %d subscribers: p50 %v p99 %v max %v", n, lat[n/2], lat[n*99/100], lat[n-1])
	for _, c := range subs {
		c.close()
	}
	eventually(t, time.Minute, func() string {
		if got := env.h.Subscribers(); got != 0 {
			return fmt.Sprintf("%d subscribers still registered", got)
		}
		return ""
	})
}
