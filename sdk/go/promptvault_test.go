package promptvault

// Unit tests against an httptest server at the HTTP boundary, for what a
// real server cannot be made to do on demand: hostile event streams, a
// reset event, non-JSON answers. The behaviour shared with the Python and
// TypeScript SDKs is held against a real serve by sdk/conformance in the
// server's module.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type fake struct {
	mu       sync.Mutex
	docs     map[string]string // key -> version
	frames   chan string       // written to the current event stream; "CLOSE" ends it
	lastIDs  []string          // Last-Event-ID of each stream connection
	requests []string          // prompt reads: key + " " + If-None-Match
}

func newFake(t testing.TB) (*fake, *httptest.Server) {
	f := &fake{docs: map[string]string{"greet": "v1", "team/bye": "v1"}, frames: make(chan string, 64)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/events" {
			f.mu.Lock()
			f.lastIDs = append(f.lastIDs, r.Header.Get("Last-Event-ID"))
			f.mu.Unlock()
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, ": connected\n\n")
			w.(http.Flusher).Flush()
			for {
				select {
				case fr := <-f.frames:
					if fr == "CLOSE" {
						return
					}
					fmt.Fprint(w, fr)
					w.(http.Flusher).Flush()
				case <-r.Context().Done():
					return
				}
			}
		}
		key := strings.TrimPrefix(r.URL.Path, "/v1/prompts/")
		f.mu.Lock()
		f.requests = append(f.requests, key+" "+r.Header.Get("If-None-Match"))
		v, ok := f.docs[key]
		f.mu.Unlock()
		switch {
		case key == "bad":
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html>bad gateway</html>")
			return
		case !ok:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error": {"code": "not_found", "message": "no such prompt"}}`)
			return
		}
		etag := fmt.Sprintf(`"%s-%s"`, strings.ReplaceAll(key, "/", "-"), v)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		json.NewEncoder(w).Encode(map[string]any{"key": key, "env": "live", "version": v,
			"commit": fmt.Sprintf("%040x", 1), "sha256": fmt.Sprintf("%x", sha256.Sum256([]byte(key+v))), "prompt": map[string]any{"template": "Hi"}})
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fake) set(key, v string) {
	f.mu.Lock()
	f.docs[key] = v
	f.mu.Unlock()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// The limit only keeps a broken build from hanging.
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func open(t *testing.T, url string, opts ...Option) *Client {
	c, err := New(url, "pv_live_"+strings.Repeat("x", 32), append([]Option{WithBackoff(10*time.Millisecond, 100*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func version(t *testing.T, c *Client, key string) string {
	t.Helper()
	p, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	return p.Version
}

func TestHostileStreamIsSurvived(t *testing.T) {
	f, srv := newFake(t)
	c := open(t, srv.URL)
	waitFor(t, "stream", c.Connected)
	version(t, c, "greet")
	for _, fr := range []string{
		"event: pointer\ndata: not json\n\n",
		"event: pointer\ndata: [1, 2]\n\n",
		"event: pointer\ndata: {\"key\": 5}\n\n",
		"event: pointer\ndata: \xff\xfe\n\n",
		"id\nevent\ndata\n\n",
		"id: 41\nevent: pointer\ndata: {\"key\": \"team/bye\"}\n\n",
		// A line longer than 1 MiB ends the connection; the client redials.
		"data: " + strings.Repeat("x", 1<<20) + "\n\n",
	} {
		f.frames <- fr
	}
	waitFor(t, "redial", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.lastIDs) >= 2 })
	if got := f.lastIDs[1]; got != "41" {
		t.Errorf("redial Last-Event-ID = %q, want 41", got)
	}
	if v := version(t, c, "greet"); v != "v1" {
		t.Fatalf("after a hostile stream: %s", v)
	}
	f.set("greet", "v2")
	f.frames <- "id: 42\nevent: pointer\ndata: {\"key\": \"greet\"}\n\n"
	waitFor(t, "v2 after the redial", func() bool { return version(t, c, "greet") == "v2" })
	f.mu.Lock()
	defer f.mu.Unlock()
	if last := f.requests[len(f.requests)-1]; last != `greet "greet-v1"` {
		t.Errorf("refetch = %q, want If-None-Match of v1", last)
	}
}

func TestResetRevalidatesEverything(t *testing.T) {
	f, srv := newFake(t)
	c := open(t, srv.URL)
	waitFor(t, "stream", c.Connected)
	version(t, c, "greet")
	version(t, c, "team/bye")
	f.set("greet", "v2")
	f.set("team/bye", "v3")
	f.frames <- "event: reset\ndata: {}\n\n"
	waitFor(t, "both refetched", func() bool { return version(t, c, "greet") == "v2" && version(t, c, "team/bye") == "v3" })
}

func TestErrorsAreTyped(t *testing.T) {
	f, srv := newFake(t)
	if _, err := New("127.0.0.1:8080", "k"); err == nil {
		t.Error("New accepted a base URL without a scheme")
	}
	c := open(t, srv.URL, WithoutEvents())
	var e *Error
	for _, key := range []string{"", "Greet", "../x", "a//b", "a/", "/a", "a b", strings.Repeat("x", 129), "é"} {
		if _, err := c.Get(context.Background(), key); !errors.As(err, &e) || e.Status != 0 || e.Code != "invalid_key" {
			t.Errorf("Get(%q) = %v, want invalid_key", key, err)
		}
		if _, err := c.Render(context.Background(), key, nil); !errors.As(err, &e) || e.Code != "invalid_key" {
			t.Errorf("Render(%q) = %v, want invalid_key", key, err)
		}
	}
	if len(f.requests) != 0 {
		t.Errorf("invalid keys reached the server: %q", f.requests)
	}
	if _, err := c.Get(context.Background(), "bad"); !errors.As(err, &e) || e.Status != 502 || e.Code != "http_502" || !strings.Contains(e.Message, "bad gateway") {
		t.Errorf("502: %v", err)
	}
	if _, err := c.Get(context.Background(), "missing"); !errors.As(err, &e) || e.Status != 404 || e.Code != "not_found" {
		t.Errorf("404: %v", err)
	}
	srv.Close()
	if _, err := c.Get(context.Background(), "team/bye"); !errors.As(err, &e) || e.Status != 0 || e.Code != "unavailable" || e.Unwrap() == nil {
		t.Errorf("server down: %v", err)
	}
}

func TestSnapshotIgnoresInvalidEntries(t *testing.T) {
	_, srv := newFake(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "prompts.json")
	c := open(t, srv.URL, WithSnapshotFile(path))
	version(t, c, "greet")
	c.Close()
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("files left beside the snapshot: %v", ents)
	}
	var sf snapshotFile
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &sf); err != nil {
		t.Fatal(err)
	}
	sf.Prompts["../evil"] = json.RawMessage(`{"key": "../evil", "version": "v9"}`)
	sf.Prompts["other"] = sf.Prompts["greet"] // a document under the wrong key
	b, _ = json.Marshal(sf)
	os.WriteFile(path, b, 0o644)
	srv.Close()
	cold := open(t, srv.URL, WithSnapshotFile(path))
	if v := version(t, cold, "greet"); v != "v1" {
		t.Errorf("cold start: %s", v)
	}
	for _, key := range []string{"../evil", "other"} {
		if p, err := cold.Get(context.Background(), key); err == nil {
			t.Errorf("snapshot entry %q served: %+v", key, p)
		}
	}
}

// BenchmarkGet compares a cached Get with a mutex-guarded map read, the
// least a concurrency-safe cache can cost.
func BenchmarkGet(b *testing.B) {
	b.Run("baseline", func(b *testing.B) {
		var mu sync.Mutex
		m := map[string]*Prompt{"greet": {}}
		for b.Loop() {
			mu.Lock()
			_ = m["greet"]
			mu.Unlock()
		}
	})
	b.Run("cached", func(b *testing.B) {
		_, srv := newFake(b)
		c, _ := New(srv.URL, "k")
		defer c.Close()
		ctx := context.Background()
		if _, err := c.Get(ctx, "greet"); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			c.Get(ctx, "greet")
		}
	})
}
