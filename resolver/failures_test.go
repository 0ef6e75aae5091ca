package resolver

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver/metrics"
)

// rawExec runs SQL on the index file directly, as a damaged or
// half-migrated index would look to the server.
func (env *testEnv) rawExec(tb testing.TB, q string, args ...any) {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+env.dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q, args...); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

func (env *testEnv) versionOf(tb testing.TB, key, label string) index.Version {
	tb.Helper()
	var v index.Version
	err := env.db.View(context.Background(), func(tx *index.Tx) (err error) {
		v, err = tx.Version(context.Background(), key, label)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// metricLine returns the exposition line of a series ("" when absent).
func metricLine(tb testing.TB, series string) string {
	tb.Helper()
	rec := httptest.NewRecorder()
	metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, series+" ") {
			return l
		}
	}
	return ""
}

// TestFailedBuildKeepsThePreviousDocument moves live to a version whose
// content the index lacks: reads keep the previous good document (never an
// error), /readyz reports the pointer, the failure is counted, and once the
// content arrives the retry loop serves the new version with no further
// change to the index.
func TestFailedBuildKeepsThePreviousDocument(t *testing.T) {
	env := newTestEnv(t, Options{})
	if err := env.h.SetReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	const key = "support/summarize"
	v1 := env.versionOf(t, key, "v1")
	content, err := env.db.Content(context.Background(), v1.BlobSHA)
	if err != nil {
		t.Fatal(err)
	}
	env.rawExec(t, "DELETE FROM contents WHERE blob_sha = ?", v1.BlobSHA)
	before := metricLine(t, `promptvault_document_build_failures_total{env="live"}`)

	env.otherProcess(t, rollback(key, "v1"))
	// The rollback is in the index; the server notices it, fails to build
	// v1 and keeps v2. Wait until it has noticed, reading all along.
	eventually(t, time.Minute, func() string {
		r := env.read(t, index.KeyLive, key)
		if r.status != http.StatusOK {
			t.Fatalf("read during a failed build: %d %s", r.status, r.body)
		}
		if b := decodeRead(t, r); b.Version != "v2" {
			t.Fatalf("served %s, want the previous good v2", b.Version)
		}
		if len(env.h.snap.Load().failing) == 0 {
			return "rollback not noticed yet"
		}
		return ""
	})
	var ready struct {
		Status  string
		Failing []struct{ Key, Env, Version, Serving, Reason string }
	}
	r := env.get(t, http.MethodGet, "/readyz", "")
	if err := json.Unmarshal(r.body, &ready); r.status != http.StatusOK || err != nil {
		t.Fatalf("readyz = %d %s", r.status, r.body)
	}
	if ready.Status != "degraded" || len(ready.Failing) != 1 || ready.Failing[0].Key != key ||
		ready.Failing[0].Version != "v1" || ready.Failing[0].Serving != "v2" || !strings.Contains(ready.Failing[0].Reason, "not in the index") {
		t.Errorf("readyz body = %s", r.body)
	}
	if got := metricLine(t, `promptvault_documents_failing{served="previous"}`); got != `promptvault_documents_failing{served="previous"} 1` {
		t.Errorf("gauge = %q", got)
	}
	if after := metricLine(t, `promptvault_document_build_failures_total{env="live"}`); after == before {
		t.Errorf("failure not counted: %q", after)
	}

	// The content arrives (as a backfill would write it): the retry loop
	// serves v1 without any change-feed entry.
	env.rawExec(t, "INSERT INTO contents(blob_sha, data) VALUES(?, ?)", v1.BlobSHA, content)
	eventually(t, time.Minute, func() string {
		if b := decodeRead(t, env.read(t, index.KeyLive, key)); b.Version != "v1" {
			return "still " + b.Version
		}
		return ""
	})
	if r := env.get(t, http.MethodGet, "/readyz", ""); r.status != http.StatusOK || !strings.HasPrefix(string(r.body), `{"status":"ok"`) {
		t.Errorf("readyz after recovery = %d %s", r.status, r.body)
	}
	if got := metricLine(t, `promptvault_documents_failing{served="previous"}`); got != `promptvault_documents_failing{served="previous"} 0` {
		t.Errorf("gauge after recovery = %q", got)
	}
}

// TestReadyOnlyWhenEveryLivePointerIsServed starts a resolver on an index
// where one live pointer's content is missing: it has no previous document,
// so reads of it answer 503 (retryable, never 500) and /readyz stays 503
// naming it until the content is there.
func TestReadyOnlyWhenEveryLivePointerIsServed(t *testing.T) {
	env := newTestEnv(t, Options{})
	greet := env.versionOf(t, "greet", "v1")
	content, err := env.db.Content(context.Background(), greet.BlobSHA)
	if err != nil {
		t.Fatal(err)
	}
	env.rawExec(t, "DELETE FROM contents WHERE blob_sha = ?", greet.BlobSHA)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := New(ctx, Options{DB: env.db})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv := httptest.NewServer(h)
	defer srv.Close()
	if err := h.SetReady(ctx); err != nil {
		t.Fatal(err)
	}
	get := func(path, auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/readyz", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "greet v1") {
		t.Errorf("readyz with an unserved live pointer = %d %s", code, body)
	}
	code, body := get(PromptsPrefix+"greet", env.keys[index.KeyLive])
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"unavailable"`) || strings.Contains(body, greet.BlobSHA) {
		t.Errorf("read of an unbuildable document = %d %s", code, body)
	}
	if code, _ := get(PromptsPrefix+"support/summarize", env.keys[index.KeyLive]); code != http.StatusOK {
		t.Errorf("other prompts: %d", code)
	}

	env.rawExec(t, "INSERT INTO contents(blob_sha, data) VALUES(?, ?)", greet.BlobSHA, content)
	eventually(t, time.Minute, func() string {
		if code, body := get("/readyz", ""); code != http.StatusOK {
			return body
		}
		return ""
	})
	if code, body := get(PromptsPrefix+"greet", env.keys[index.KeyLive]); code != http.StatusOK {
		t.Errorf("greet after its content arrived = %d %s", code, body)
	}
}
