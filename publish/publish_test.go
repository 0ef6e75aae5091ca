package publish_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/publish"
)

// fast is a retry schedule for tests only: the production one spans a day.
var fast = []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}

func (e *env) endpoint(t testing.TB, rc *receiver, n index.NewHook) index.CreatedHook {
	t.Helper()
	n.URL = rc.URL
	h := e.addHook(t, n)
	rc.setSecret(h.Secret)
	return h
}

// The specification's published test vector
// (github.com/standard-webhooks/standard-webhooks, spec/standard-webhooks.md).
func TestSignMatchesSpecificationVector(t *testing.T) {
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		ts     = "1614265330"
		body   = `{"test": 2432232314}`
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	got, err := publish.Sign(secret, id, ts, []byte(body))
	if err != nil || got != want {
		t.Fatalf("Sign = %q, %v; want %q", got, err, want)
	}
	// And the reference library accepts it (ignoring the 2021 timestamp).
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", got)
	if err := wh.VerifyIgnoringTimestamp([]byte(body), h); err != nil {
		t.Fatalf("reference library rejects our signature: %v", err)
	}
	if _, err := publish.Sign("whsec_not base64!", id, ts, nil); err == nil {
		t.Error("a malformed secret signed")
	}
}

func TestDeliversSignedEventWithPayload(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, nil)
	h := e.endpoint(t, rc, index.NewHook{})
	e.run(t, publish.Options{Schedule: fast})
	e.flip(t) // live v2 → v1
	waitFor(t, "delivery", func() bool { return len(rc.requests()) == 1 })
	g := rc.requests()[0]
	if g.Payload.Type != index.EventPromoted || g.Data["key"] != "support/summarize" || g.Data["env"] != "live" ||
		g.Data["version"] != "v1" || g.Data["previous_version"] != "v2" || g.Data["actor"] != "alice" ||
		len(g.Data["commit"].(string)) != 40 || len(g.Data["sha256"].(string)) != 64 || g.Data["audit_id"].(float64) <= 0 {
		t.Errorf("payload = %s", g.Body)
	}
	if _, err := time.Parse(time.RFC3339Nano, g.Payload.Timestamp); err != nil {
		t.Errorf("timestamp %q: %v", g.Payload.Timestamp, err)
	}
	ds := e.deliveries(t, h.ID)
	waitFor(t, "recorded", func() bool { ds = e.deliveries(t, h.ID); return ds[0].State == index.HookDelivered })
	if ds[0].EventID != g.ID || ds[0].LastStatus != 200 || ds[0].Attempts != 1 {
		t.Errorf("delivery = %+v", ds[0])
	}
	if bad := rc.rejected(); len(bad) > 0 {
		t.Errorf("receiver rejected: %v", bad)
	}
}

func TestRetriesWithSameIDAfter5xxAndTimeout(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(n int, w http.ResponseWriter) {
		switch n {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(strings.Repeat("overloaded ", 1000))) // a large error body is cut short in the log
		case 2:
			time.Sleep(500 * time.Millisecond) // past the attempt timeout
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	h := e.endpoint(t, rc, index.NewHook{})
	e.run(t, publish.Options{Schedule: fast, Timeout: 100 * time.Millisecond})
	e.flip(t)
	var d index.HookDelivery
	waitFor(t, "delivered", func() bool { d = e.deliveries(t, h.ID)[0]; return d.State == index.HookDelivered })
	got := rc.requests()
	if len(got) != 3 || got[0].ID != got[1].ID || got[1].ID != got[2].ID || got[0].ID != d.EventID {
		t.Fatalf("requests: %d, ids %v", len(got), ids(got))
	}
	if string(got[0].Body) != string(got[2].Body) {
		t.Error("a retry's body differs from the first attempt's")
	}
	var atts []index.HookAttempt
	e.db.View(context.Background(), func(tx *index.Tx) (err error) {
		atts, err = tx.HookAttempts(context.Background(), d.Seq)
		return err
	})
	if len(atts) != 3 || atts[0].Status != 503 || len(atts[0].Error) > 300 || !strings.HasPrefix(atts[0].Error, "HTTP 503: overloaded") ||
		!strings.Contains(atts[1].Error, "timeout") || atts[2].Status != 204 || atts[2].Error != "" {
		t.Errorf("attempts = %+v", atts)
	}
}

func ids(rs []received) []string {
	var s []string
	for _, r := range rs {
		s = append(s, r.ID)
	}
	return s
}

func TestRetriesRefusedConnectionUntilEndpointComesUp(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	h := e.addHook(t, index.NewHook{URL: "http://" + addr + "/hook"})
	e.run(t, publish.Options{Schedule: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond,
		20 * time.Millisecond, 20 * time.Millisecond, time.Hour}})
	e.flip(t)
	waitFor(t, "refused attempts", func() bool { return e.deliveries(t, h.ID)[0].Attempts >= 2 })
	if d := e.deliveries(t, h.ID)[0]; !strings.Contains(d.LastError, "refused") || d.State != index.HookPending {
		t.Fatalf("delivery = %+v", d)
	}
	// The endpoint comes up on the same address.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s was taken meanwhile: %v", addr, err)
	}
	rc := newReceiver(t, nil)
	rc.Close()
	rc.setSecret(h.Secret)
	srv := &http.Server{Handler: rc.Config.Handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	waitFor(t, "delivered after recovery", func() bool { return e.deliveries(t, h.ID)[0].State == index.HookDelivered })
	if got := rc.requests(); len(got) != 1 || got[0].ID != e.deliveries(t, h.ID)[0].EventID {
		t.Errorf("received %v", ids(got))
	}
}

func TestFailsAfterRetryWindowThenRedelivers(t *testing.T) {
	e := newEnv(t)
	var down atomic.Bool
	down.Store(true)
	rc := newReceiver(t, func(n int, w http.ResponseWriter) {
		if down.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	h := e.endpoint(t, rc, index.NewHook{})
	e.run(t, publish.Options{Schedule: fast})
	e.flip(t)
	var d index.HookDelivery
	waitFor(t, "failed", func() bool { d = e.deliveries(t, h.ID)[0]; return d.State == index.HookFailed })
	if d.Attempts != len(fast)+1 || len(rc.requests()) != len(fast)+1 {
		t.Errorf("attempts = %d, requests = %d, want %d", d.Attempts, len(rc.requests()), len(fast)+1)
	}
	if hk := e.hook(t, h.ID); !hk.Failing || hk.FailingSince == "" {
		t.Errorf("endpoint not flagged: %+v", hk)
	}
	down.Store(false)
	if err := e.db.Update(context.Background(), func(tx *index.Tx) error {
		_, err := tx.Redeliver(context.Background(), h.ID, d.Seq, "admin:x")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "redelivered", func() bool { return e.deliveries(t, h.ID)[0].State == index.HookDelivered })
	got := rc.requests()
	if last := got[len(got)-1]; last.ID != d.EventID {
		t.Errorf("redelivery webhook-id %s, want the event's %s", last.ID, d.EventID)
	}
	if hk := e.hook(t, h.ID); hk.Failing {
		t.Errorf("still flagged after a success: %+v", hk)
	}
}

// A dead endpoint (one that never answers, one that refuses connections)
// beside a healthy one: the healthy one receives every event while the
// dead one's first attempt is still hanging, so it never waited behind it.
func TestDeadEndpointDelaysNoOther(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	var hanging atomic.Int32
	dead := newReceiver(t, func(n int, w http.ResponseWriter) {
		hanging.Add(1)
		<-release
	})
	t.Cleanup(func() { close(release) })
	e.endpoint(t, dead, index.NewHook{})
	e.addHook(t, index.NewHook{URL: "http://127.0.0.1:1/refused"})
	healthy := newReceiver(t, nil)
	e.endpoint(t, healthy, index.NewHook{})
	e.run(t, publish.Options{}) // the real 10 s timeout and schedule
	const changes = 5
	for i := range changes {
		e.flip(t)
		waitFor(t, "healthy delivery", func() bool { return len(healthy.requests()) == i+1 })
	}
	if n := hanging.Load(); n != 1 {
		t.Fatalf("dead endpoint saw %d requests, want its first attempt still hanging", n)
	}
	if got := len(dead.requests()); got != 1 {
		t.Fatalf("dead endpoint recorded %d", got)
	}
}

func TestSlackFormat(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, nil)
	h := e.endpoint(t, rc, index.NewHook{Format: index.FormatSlack})
	e.run(t, publish.Options{BaseURL: "https://pv.example.com/"})
	e.flip(t)
	waitFor(t, "slack message", func() bool { return len(rc.requests()) == 1 })
	want := `{"text":"support/summarize: live v2 → v1 by alice, <https://pv.example.com/ui/#/p/support/summarize?diff=v2..v1|diff>"}`
	if got := string(rc.requests()[0].Body); got != want {
		t.Errorf("body =\n %s\nwant\n %s", got, want)
	}
	_ = h
}

func TestPing(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, nil)
	h := e.endpoint(t, rc, index.NewHook{Events: []string{index.EventStagingSet}})
	e.run(t, publish.Options{})
	if err := e.db.Update(context.Background(), func(tx *index.Tx) error {
		_, err := tx.Ping(context.Background(), h.ID, "admin:key_1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ping", func() bool { return len(rc.requests()) == 1 })
	g := rc.requests()[0]
	if g.Payload.Type != "ping" || g.Data["webhook_id"] != h.ID {
		t.Errorf("ping = %s", g.Body)
	}
	e.flip(t) // a promotion: filtered out
	time.Sleep(50 * time.Millisecond)
	if n := len(rc.requests()); n != 1 {
		t.Errorf("filtered endpoint got %d requests", n)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	e := newEnv(t)
	target := newReceiver(t, nil)
	rc := newReceiver(t, func(n int, w http.ResponseWriter) {
		w.Header().Set("Location", target.URL)
		w.WriteHeader(http.StatusFound)
	})
	h := e.endpoint(t, rc, index.NewHook{})
	e.run(t, publish.Options{Schedule: []time.Duration{time.Hour}})
	e.flip(t)
	waitFor(t, "attempt", func() bool { return e.deliveries(t, h.ID)[0].LastStatus != 0 })
	d := e.deliveries(t, h.ID)[0]
	if d.State != index.HookPending || d.LastStatus != 302 || !strings.Contains(d.LastError, "redirects are not followed") {
		t.Errorf("delivery = %+v", d)
	}
	if n := len(target.requests()) + len(target.rejected()); n != 0 {
		t.Errorf("redirect target got %d requests", n)
	}
}

func TestRemovedEndpointGetsNothingMore(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(n int, w http.ResponseWriter) { w.WriteHeader(500) })
	h := e.endpoint(t, rc, index.NewHook{})
	e.run(t, publish.Options{Schedule: []time.Duration{time.Hour}})
	e.flip(t)
	waitFor(t, "first attempt", func() bool { return len(rc.requests()) == 1 })
	if err := e.db.Update(context.Background(), func(tx *index.Tx) error {
		_, err := tx.RemoveHook(context.Background(), h.ID, "t")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e.flip(t)
	time.Sleep(50 * time.Millisecond)
	if n := len(rc.requests()); n != 1 {
		t.Errorf("removed endpoint got %d requests", n)
	}
}

// Two workers on one database (two serve processes, or two instances on
// PostgreSQL): each event reaches the endpoint exactly once, because a
// claim is a transactional lease that only one of them gets.
func TestTwoWorkersSendEachEventOnce(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			e := newEnvOn(t, engine)
			rc := newReceiver(t, nil)
			h := e.endpoint(t, rc, index.NewHook{})
			e.run(t, publish.Options{})
			e.second(t).run(t, publish.Options{})
			const changes = 20
			for range changes {
				e.flip(t)
			}
			waitFor(t, "all delivered", func() bool {
				for _, d := range e.deliveries(t, h.ID) {
					if d.State != index.HookDelivered {
						return false
					}
				}
				return len(e.deliveries(t, h.ID)) == changes
			})
			seen := map[string]int{}
			for _, r := range rc.requests() {
				seen[r.ID]++
			}
			if len(seen) != changes {
				t.Errorf("%d distinct events received, want %d", len(seen), changes)
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("event %s sent %d times", id, n)
				}
			}
			if bad := rc.rejected(); len(bad) > 0 {
				t.Errorf("rejected: %v", bad)
			}
		})
	}
}

func TestDeliversOnPostgres(t *testing.T) {
	e := newEnvOn(t, "postgres")
	rc := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	h := e.endpoint(t, rc, index.NewHook{})
	e.run(t, publish.Options{Schedule: fast})
	e.flip(t)
	waitFor(t, "delivered after a retry", func() bool { return e.deliveries(t, h.ID)[0].State == index.HookDelivered })
	if got := rc.requests(); len(got) != 2 || got[0].ID != got[1].ID || got[0].Data["previous_version"] != "v2" {
		t.Errorf("requests %v", ids(got))
	}
}
