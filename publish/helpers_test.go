package publish_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/index/indextest"
	"github.com/promptvault/promptvault/publish"
)

// env is a synced sample repository (support/summarize live v2, v1 also
// valid; greet live v1) and its index.
type env struct {
	db     *index.DB
	target string
}

func newEnv(t testing.TB) *env { return newEnvOn(t, "sqlite") }

// newEnvOn builds the env on engine "sqlite" or "postgres" (a fresh schema
// on PV_TEST_POSTGRES; the test skips when it is unset).
func newEnvOn(t testing.TB, engine string) *env {
	t.Helper()
	g := gittest.Sample(t)
	dir := t.TempDir()
	target := indextest.Target(t, engine, dir)
	db, err := index.Open(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m, err := gitstore.Open(filepath.Join(dir, "mirror.git"), g.Dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Sync(context.Background(), m, index.Config{Branch: "main", PromptsDir: "prompts", Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	return &env{db: db, target: target}
}

// second opens another handle on the same database, as a second process
// would.
func (e *env) second(t testing.TB) *env {
	t.Helper()
	db, err := index.Open(context.Background(), e.target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &env{db: db, target: e.target}
}

func (e *env) addHook(t testing.TB, n index.NewHook) index.CreatedHook {
	t.Helper()
	var h index.CreatedHook
	if err := e.db.Update(context.Background(), func(tx *index.Tx) (err error) {
		h, err = tx.AddHook(context.Background(), n, "admin:key_test")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

// flip moves support/summarize's live pointer between v1 and v2 (one
// pointer change, one event) and returns the new version.
func (e *env) flip(t testing.TB) string {
	t.Helper()
	var to string
	err := e.db.Update(context.Background(), func(tx *index.Tx) error {
		p, _, err := tx.Pointer(context.Background(), "support/summarize", index.EnvLive)
		if err != nil {
			return err
		}
		to = "v1"
		if p.Number == 1 {
			to = "v2"
		}
		_, err = tx.Promote(context.Background(), "support/summarize", to, "alice")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

func (e *env) deliveries(t testing.TB, hookID string) []index.HookDelivery {
	t.Helper()
	var ds []index.HookDelivery
	if err := e.db.View(context.Background(), func(tx *index.Tx) (err error) {
		ds, err = tx.HookDeliveries(context.Background(), hookID, 0, 1000)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ds
}

func (e *env) hook(t testing.TB, id string) index.Hook {
	t.Helper()
	var h index.Hook
	if err := e.db.View(context.Background(), func(tx *index.Tx) (err error) {
		h, err = tx.Hook(context.Background(), id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

// run starts a worker until the test ends.
func (e *env) run(t testing.TB, opts publish.Options) *publish.Worker {
	t.Helper()
	opts.DB = e.db
	w, err := publish.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// received is one request a receiver got, after verification.
type received struct {
	ID, Timestamp string
	Body          []byte
	Payload       publish.Payload
	Data          map[string]any
	At            time.Time
}

// receiver is a real HTTP endpoint that checks every request with the
// Standard Webhooks reference library (independent of publish.Sign) and
// answers with what respond says (200 when nil).
type receiver struct {
	*httptest.Server
	t       testing.TB
	mu      sync.Mutex
	secret  string
	got     []received
	bad     []string
	respond func(n int, w http.ResponseWriter) // n counts requests from 1
	notify  chan struct{}
}

func newReceiver(t testing.TB, respond func(n int, w http.ResponseWriter)) *receiver {
	t.Helper()
	rc := &receiver{t: t, respond: respond, notify: make(chan struct{}, 1000)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.got) + len(rc.bad) + 1
		rc.mu.Unlock()
		rc.record(r, body)
		if rc.respond != nil {
			rc.respond(n, w)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// setSecret gives the receiver its endpoint's secret (the endpoint is
// added after the receiver, whose URL it needs).
func (rc *receiver) setSecret(s string) {
	rc.mu.Lock()
	rc.secret = s
	rc.mu.Unlock()
}

func (rc *receiver) record(r *http.Request, body []byte) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	wh, err := standardwebhooks.NewWebhook(rc.secret)
	if err == nil {
		err = wh.Verify(body, r.Header)
	}
	if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		rc.bad = append(rc.bad, r.Method+" "+r.Header.Get("Content-Type")+": "+errString(err))
		return
	}
	g := received{ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"), Body: body, At: time.Now()}
	if err := json.Unmarshal(body, &g.Payload); err == nil {
		g.Data, _ = g.Payload.Data.(map[string]any)
	}
	rc.got = append(rc.got, g)
	select {
	case rc.notify <- struct{}{}:
	default:
	}
}

func errString(err error) string {
	if err == nil {
		return "bad request"
	}
	return err.Error()
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func (rc *receiver) rejected() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.bad...)
}

// waitFor polls cond; the limit only stops a broken build from hanging.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
