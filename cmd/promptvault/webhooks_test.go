package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/promptvault/promptvault/index"
)

// hookReceiver is a real endpoint that verifies each request with the
// Standard Webhooks reference library and records it.
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	secret string
	ids    []string
	types  []string
	bad    int
	// hold, when set, is called (outside the lock) before answering.
	hold func(n int)
}

func newHookReceiver(t testing.TB) *hookReceiver {
	t.Helper()
	rc := &hookReceiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		wh, err := standardwebhooks.NewWebhook(rc.secret)
		if err == nil {
			err = wh.Verify(body, r.Header)
		}
		if err != nil {
			rc.bad++
			rc.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p struct{ Type string }
		json.Unmarshal(body, &p)
		rc.ids = append(rc.ids, r.Header.Get("webhook-id"))
		rc.types = append(rc.types, p.Type)
		n, hold := len(rc.ids), rc.hold
		rc.mu.Unlock()
		if hold != nil {
			hold(n)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *hookReceiver) got() (ids, types []string, bad int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.ids...), append([]string(nil), rc.types...), rc.bad
}

// addHook runs `webhooks add` and gives the receiver the secret.
func addHook(t testing.TB, data string, rc *hookReceiver, extra ...string) index.CreatedHook {
	t.Helper()
	var h index.CreatedHook
	decode(t, ok(t, append([]string{"webhooks", "add", rc.URL + "/hook", "--json", "--data", data}, extra...)...), &h)
	rc.mu.Lock()
	rc.secret = h.Secret
	rc.mu.Unlock()
	return h
}

func hookDeliveries(t testing.TB, data, id string) []index.HookDelivery {
	t.Helper()
	var out struct{ Deliveries []index.HookDelivery }
	decode(t, ok(t, "webhooks", "deliveries", id, "--json", "--data", data), &out)
	return out.Deliveries
}

// CLI pointer changes in this process are delivered by serve in another.
func TestWebhooksCLIAndServe(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "sync", "--data", data, "--repo", g.Dir)
	rc := newHookReceiver(t)
	h := addHook(t, data, rc, "--description", "deploys")
	startServe(t, data)

	ok(t, "rollback", "support/summarize", "v1", "--data", data)
	waitFor(t, 20*time.Second, "rollback delivered", func() bool { ids, _, _ := rc.got(); return len(ids) == 1 })
	out := ok(t, "webhooks", "test", h.ID, "--data", data)
	if !strings.Contains(out, "queued delivery") {
		t.Errorf("test printed %q", out)
	}
	waitFor(t, 20*time.Second, "ping delivered", func() bool { ids, _, _ := rc.got(); return len(ids) == 2 })
	if _, types, bad := rc.got(); strings.Join(types, " ") != "prompt.rolled_back ping" || bad != 0 {
		t.Errorf("received %v (bad signatures: %d)", types, bad)
	}
	ds := hookDeliveries(t, data, h.ID)
	waitFor(t, 20*time.Second, "recorded", func() bool { ds = hookDeliveries(t, data, h.ID); return ds[1].State == index.HookDelivered })
	// Redeliver the rollback: same webhook-id.
	ok(t, "webhooks", "redeliver", h.ID, strconv.FormatInt(ds[1].Seq, 10), "--data", data)
	waitFor(t, 20*time.Second, "redelivered", func() bool { ids, _, _ := rc.got(); return len(ids) == 3 })
	if ids, _, _ := rc.got(); ids[2] != ids[0] {
		t.Errorf("redelivery id %s, want %s", ids[2], ids[0])
	}
	list := ok(t, "webhooks", "list", "--data", data)
	if !strings.Contains(list, h.ID) || !strings.Contains(list, "deploys") || strings.Contains(list, "whsec_") {
		t.Errorf("list:\n%s", list)
	}
	fails(t, "not found", "webhooks", "remove", "wh_nope", "--data", data)
	fails(t, "http or https", "webhooks", "add", "ftp://x", "--data", data)
	fails(t, "event type", "webhooks", "add", "https://x", "--events", "prompt.nope", "--data", data)
	ok(t, "webhooks", "remove", h.ID, "--data", data)
	var audit struct{ Entries []index.AuditEntry }
	decode(t, ok(t, "audit", "--json", "--data", data), &audit)
	if a := audit.Entries[0]; a.Action != index.ActWebhookRemove {
		t.Errorf("last audit = %+v", a)
	}
}

// kill -9 of serve between the pointer change and its delivery: the
// change's event is in the database and the next serve delivers it.
func TestWebhookDeliveredAfterServeKilledBeforeDelivery(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "sync", "--data", data, "--repo", g.Dir)
	rc := newHookReceiver(t)
	h := addHook(t, data, rc)
	srv := startServe(t, data)
	srv.Kill() // SIGKILL
	ok(t, "rollback", "support/summarize", "v1", "--data", data)
	if ids, _, _ := rc.got(); len(ids) != 0 {
		t.Fatalf("delivered with no server running: %v", ids)
	}
	startServe(t, data)
	waitFor(t, 20*time.Second, "delivered after restart", func() bool { ids, _, _ := rc.got(); return len(ids) == 1 })
	ds := hookDeliveries(t, data, h.ID)
	if ids, _, _ := rc.got(); ids[0] != ds[0].EventID {
		t.Errorf("webhook-id %s, event %s", ids[0], ds[0].EventID)
	}
}

// kill -9 of serve while an attempt is in flight: after restart the
// delivery is sent again (its lease expired) with the same webhook-id.
func TestWebhookRetriedAfterServeKilledDuringAttempt(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "sync", "--data", data, "--repo", g.Dir)
	rc := newHookReceiver(t)
	inFlight := make(chan struct{})
	release := make(chan struct{})
	rc.hold = func(n int) {
		if n == 1 {
			close(inFlight)
			<-release // the first attempt hangs until serve is dead
		}
	}
	h := addHook(t, data, rc)
	// A short attempt timeout keeps the lease (timeout + 10 s) short.
	srv := startServe(t, data, "--publish-timeout", "1s")
	ok(t, "rollback", "support/summarize", "v1", "--data", data)
	select {
	case <-inFlight:
	case <-time.After(20 * time.Second):
		t.Fatal("no attempt")
	}
	srv.Kill()
	close(release)
	startServe(t, data, "--publish-timeout", "1s")
	waitFor(t, 60*time.Second, "delivered after restart", func() bool {
		ds := hookDeliveries(t, data, h.ID)
		return len(ds) == 1 && ds[0].State == index.HookDelivered
	})
	ids, _, bad := rc.got()
	if len(ids) < 2 || bad != 0 {
		t.Fatalf("requests %v (bad %d), want the killed attempt and its retry", ids, bad)
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Errorf("duplicate with another webhook-id: %v", ids)
		}
	}
}
