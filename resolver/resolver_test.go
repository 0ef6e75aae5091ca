package resolver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promptvault/promptvault/index"
)

// within is how soon a change made in the index must be served (SPEC §5).
const within = time.Second

func TestReadLive(t *testing.T) {
	env := newTestEnv(t, Options{})
	for _, keyEnv := range []string{index.KeyLive, index.KeyTest, index.KeyAdmin} {
		t.Run(keyEnv+" key", func(t *testing.T) {
			r := env.read(t, keyEnv, "support/summarize")
			b := decodeRead(t, r)
			if b.Key != "support/summarize" || b.Env != "live" || b.Version != "v2" || b.Number == nil || *b.Number != 2 {
				t.Errorf("got %s %s %s %v", b.Key, b.Env, b.Version, b.Number)
			}
			if err := env.consistent(b); err != nil {
				t.Error(err)
			}
			if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(b.Commit) {
				t.Errorf("commit %q", b.Commit)
			}
			if b.Message != testMessage || b.Author != gitAuthor+" <"+gitEmail+">" || b.CreatedAt != "2026-11-24T10:02:00Z" {
				t.Errorf("message %q author %q created_at %q", b.Message, b.Author, b.CreatedAt)
			}
			for h, want := range map[string]string{
				"Content-Type": "application/json", "Cache-Control": "no-cache", "Vary": "Authorization",
				"Content-Length": fmt.Sprint(len(r.body)),
			} {
				if got := r.header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			if et := r.header.Get("ETag"); !regexp.MustCompile(`^"[0-9a-f]{32}"$`).MatchString(et) {
				t.Errorf("ETag %q is not a strong tag", et)
			}
		})
	}
	t.Run("body fields in contract order", func(t *testing.T) {
		r := env.read(t, index.KeyLive, "support/summarize")
		var order []string
		dec := json.NewDecoder(strings.NewReader(string(r.body)))
		dec.Token()
		for dec.More() {
			k, _ := dec.Token()
			order = append(order, k.(string))
			var skip json.RawMessage
			dec.Decode(&skip)
		}
		want := "key env version number commit sha256 message author created_at prompt"
		if got := strings.Join(order, " "); got != want {
			t.Errorf("fields %s, want %s", got, want)
		}
		var p map[string]any
		json.Unmarshal(decodeRead(t, r).Prompt, &p)
		if p["model"] != "gpt-4o" || p["temperature"] != 0.5 || p["system"] != "You are concise & <precise>." || p["input_schema"] == nil {
			t.Errorf("prompt = %v", p)
		}
		if strings.Contains(string(r.body), `\u003c`) {
			t.Errorf("body HTML-escapes: %s", r.body)
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		r := env.get(t, http.MethodHead, PromptsPrefix+"greet", "Bearer "+env.keys[index.KeyLive])
		if r.status != http.StatusOK || len(r.body) != 0 || r.header.Get("ETag") == "" {
			t.Errorf("HEAD: %d %q %v", r.status, r.body, r.header)
		}
	})
	t.Run("encoded slash names the same prompt", func(t *testing.T) {
		r := env.raw(t, "/v1/prompts/support%2Fsummarize", "Bearer "+env.keys[index.KeyLive])
		if b := decodeRead(t, r); b.Key != "support/summarize" {
			t.Errorf("key %q", b.Key)
		}
	})
}

func TestStaging(t *testing.T) {
	env := newTestEnv(t, Options{})
	const key = "support/summarize"
	// Steps run in order on one index; each waits for the server to show
	// its effect (the change loop runs as in production).
	for _, tt := range []struct {
		name        string
		change      func(ctx context.Context, tx *index.Tx) error
		testVersion string // what a test key reads
		testEnv     string
	}{
		{"unset: test key reads live", nil, "v2", "live"},
		{"set to a version", func(ctx context.Context, tx *index.Tx) error {
			_, err := tx.SetStaging(ctx, key, "v1", "test")
			return err
		}, "v1", "staging"},
		{"set to a draft", func(ctx context.Context, tx *index.Tx) error {
			_, err := tx.SetStaging(ctx, key, "draft:feature", "test")
			return err
		}, "draft:feature", "staging"},
		{"disabled: test key reads live", func(ctx context.Context, tx *index.Tx) error {
			_, err := tx.SetStagingEnabled(ctx, false, "test")
			return err
		}, "v2", "live"},
		{"enabled again: the draft is back", func(ctx context.Context, tx *index.Tx) error {
			_, err := tx.SetStagingEnabled(ctx, true, "test")
			return err
		}, "draft:feature", "staging"},
		{"cleared: test key reads live", func(ctx context.Context, tx *index.Tx) error {
			_, err := tx.ClearStaging(ctx, key, "test")
			return err
		}, "v2", "live"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.change != nil {
				env.update(t, tt.change)
			}
			servedWithin(t, func() string {
				b := decodeRead(t, env.read(t, index.KeyTest, key))
				if b.Version != tt.testVersion || b.Env != tt.testEnv {
					return fmt.Sprintf("test key reads %s (%s), want %s (%s)", b.Version, b.Env, tt.testVersion, tt.testEnv)
				}
				if err := env.consistent(b); err != nil {
					return err.Error()
				}
				if strings.HasPrefix(b.Version, "draft:") && b.Number != nil {
					return "draft has a number"
				}
				return ""
			})
			r := env.read(t, index.KeyTest, key)
			if tt.testVersion == "draft:feature" && !strings.Contains(string(r.body), `"number":null`) {
				t.Errorf("draft body lacks \"number\":null: %s", r.body)
			}
			for _, k := range []string{index.KeyLive, index.KeyAdmin} {
				if b := decodeRead(t, env.read(t, k, key)); b.Version != "v2" || b.Env != "live" {
					t.Errorf("%s key reads %s (%s); staging must not change live", k, b.Version, b.Env)
				}
			}
		})
	}
}

func TestPinnedVersion(t *testing.T) {
	env := newTestEnv(t, Options{})
	for _, tt := range []struct {
		name, keyEnv, path string
		status             int
		code, version      string
	}{
		{"published version, live key", index.KeyLive, "support/summarize?version=v1", 200, "", "v1"},
		{"published version, test key", index.KeyTest, "support/summarize?version=v1", 200, "", "v1"},
		{"bare number", index.KeyLive, "support/summarize?version=2", 200, "", "v2"},
		{"other parameters are ignored", index.KeyLive, "support/summarize?x=1&version=v1", 200, "", "v1"},
		{"draft label", index.KeyTest, "support/summarize?version=draft:feature", 400, "invalid_request", ""},
		{"garbage", index.KeyLive, "support/summarize?version=latest", 400, "invalid_request", ""},
		{"empty", index.KeyLive, "support/summarize?version=", 400, "invalid_request", ""},
		{"twice", index.KeyLive, "support/summarize?version=v1&version=v2", 400, "invalid_request", ""},
		{"bad query", index.KeyLive, "support/summarize?version=%zz", 400, "invalid_request", ""},
		{"unknown version", index.KeyLive, "support/summarize?version=v9", 404, "not_found", ""},
		{"unknown prompt", index.KeyLive, "nope?version=v1", 404, "not_found", ""},
		{"invalid version", index.KeyLive, "broken?version=v2", 422, "validation_failed", ""},
		{"archived prompt", index.KeyLive, "old?version=v1", 404, "prompt_archived", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i := 0; i < 2; i++ { // the second read comes from the pinned cache
				r := env.get(t, http.MethodGet, PromptsPrefix+tt.path, "Bearer "+env.keys[tt.keyEnv])
				if tt.code != "" {
					e := errorCode(t, r, tt.status, tt.code)
					if tt.code == "validation_failed" && (len(e.Problems) == 0 || !strings.Contains(e.Problems[0].Message, "tempurature")) {
						t.Errorf("problems = %+v", e.Problems)
					}
					continue
				}
				b := decodeRead(t, r)
				if b.Version != tt.version || b.Env != "live" {
					t.Errorf("read %s (%s), want %s (live)", b.Version, b.Env, tt.version)
				}
				if err := env.consistent(b); err != nil {
					t.Error(err)
				}
			}
		})
	}
	t.Run("pinned ETag", func(t *testing.T) {
		r := env.get(t, http.MethodGet, PromptsPrefix+"support/summarize?version=v1", "Bearer "+env.keys[index.KeyLive])
		r2 := env.get(t, http.MethodGet, PromptsPrefix+"support/summarize?version=v1", "Bearer "+env.keys[index.KeyLive],
			"If-None-Match", r.header.Get("ETag"))
		if r2.status != http.StatusNotModified {
			t.Errorf("status %d, want 304", r2.status)
		}
	})
}

func TestETag(t *testing.T) {
	env := newTestEnv(t, Options{})
	auth := "Bearer " + env.keys[index.KeyLive]
	path := PromptsPrefix + "support/summarize"
	etag := env.get(t, http.MethodGet, path, auth).header.Get("ETag")
	for _, tt := range []struct {
		name, inm string
		status    int
	}{
		{"same tag", etag, 304},
		{"weak form of the tag", "W/" + etag, 304},
		{"in a list", `"nope", ` + etag, 304},
		{"in a list without spaces", `W/"a",` + etag + `,"b"`, 304},
		{"star", "*", 304},
		{"other tag", `"0123"`, 200},
		{"unquoted tag", strings.Trim(etag, `"`), 200},
		{"garbage then tag", `xyz, ` + etag, 304},
		{"unterminated", `"abc`, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := env.get(t, http.MethodGet, path, auth, "If-None-Match", tt.inm)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d", r.status, tt.status)
			}
			if tt.status == 304 {
				if len(r.body) != 0 || r.header.Get("ETag") != etag || r.header.Get("Cache-Control") != "no-cache" {
					t.Errorf("304: body %q ETag %q Cache-Control %q", r.body, r.header.Get("ETag"), r.header.Get("Cache-Control"))
				}
			}
		})
	}
	t.Run("two header lines", func(t *testing.T) {
		r := env.get(t, http.MethodGet, path, auth, "If-None-Match", `"x"`, "If-None-Match", etag)
		if r.status != 304 {
			t.Errorf("status %d, want 304", r.status)
		}
	})
	t.Run("changes when live moves", func(t *testing.T) {
		env.update(t, func(ctx context.Context, tx *index.Tx) error {
			_, err := tx.Rollback(ctx, "support/summarize", "v1", "test")
			return err
		})
		servedWithin(t, func() string {
			r := env.get(t, http.MethodGet, path, auth, "If-None-Match", etag)
			if r.status != 200 || r.header.Get("ETag") == etag {
				return fmt.Sprintf("status %d, ETag %s after live moved", r.status, r.header.Get("ETag"))
			}
			return ""
		})
	})
	t.Run("differs between live and staging docs", func(t *testing.T) {
		env.update(t, func(ctx context.Context, tx *index.Tx) error {
			_, err := tx.SetStaging(ctx, "support/summarize", "v1", "test")
			return err
		})
		servedWithin(t, func() string {
			l := env.read(t, index.KeyLive, "support/summarize")
			s := env.read(t, index.KeyTest, "support/summarize")
			if decodeRead(t, s).Env != "staging" {
				return "staging not served yet"
			}
			if l.header.Get("ETag") == s.header.Get("ETag") {
				return "live and staging documents share an ETag"
			}
			return ""
		})
	})
}

func TestNotServed(t *testing.T) {
	env := newTestEnv(t, Options{})
	for _, tt := range []struct {
		name, key string
		status    int
		code      string
	}{
		{"archived", "old", 404, "prompt_archived"},
		{"unknown", "nope", 404, "not_found"},
		{"unknown nested", "support/nope", 404, "not_found"},
		{"invalid newest version keeps the older live", "broken", 200, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := env.read(t, index.KeyLive, tt.key)
			if tt.code == "" {
				if b := decodeRead(t, r); b.Version != "v1" {
					t.Errorf("version %s, want v1", b.Version)
				}
				return
			}
			errorCode(t, r, tt.status, tt.code)
		})
	}
	t.Run("archived for test keys too", func(t *testing.T) {
		errorCode(t, env.read(t, index.KeyTest, "old"), 404, "prompt_archived")
	})
}

func TestUnauthorized(t *testing.T) {
	env := newTestEnv(t, Options{})
	unknown := "pv_live_" + strings.Repeat("A", 43)
	for _, tt := range []struct{ name, auth string }{
		{"no header", ""},
		{"basic", "Basic dXNlcjpwYXNz"},
		{"bearer without token", "Bearer"},
		{"bearer with empty token", "Bearer    "},
		{"scheme run into token", "Bearer" + env.keys[index.KeyLive]},
		{"malformed key", "Bearer pv_live_short"},
		{"unknown prefix", "Bearer sk_" + strings.Repeat("a", 40)},
		{"bad characters", "Bearer pv_live_" + strings.Repeat("-", 40)},
		{"unknown key", "Bearer " + unknown},
		{"env prefix swapped", "Bearer pv_test_" + strings.TrimPrefix(env.keys[index.KeyLive], "pv_live_")},
		{"overlong key", "Bearer pv_live_" + strings.Repeat("a", 5000)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := env.get(t, http.MethodGet, PromptsPrefix+"greet", tt.auth)
			errorCode(t, r, 401, "unauthorized")
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("scheme is case-insensitive", func(t *testing.T) {
		r := env.get(t, http.MethodGet, PromptsPrefix+"greet", "bearer "+env.keys[index.KeyLive])
		decodeRead(t, r)
	})
	t.Run("two Authorization headers", func(t *testing.T) {
		k := "Bearer " + env.keys[index.KeyLive]
		r := env.get(t, http.MethodGet, PromptsPrefix+"greet", k, "Authorization", k)
		errorCode(t, r, 401, "unauthorized")
	})
	t.Run("revoked by another process while running", func(t *testing.T) {
		var k index.CreatedKey
		env.otherProcess(t, func(ctx context.Context, tx *index.Tx) (err error) {
			k, err = tx.CreateKey(ctx, index.KeyLive, "doomed", "cli")
			return err
		})
		auth := "Bearer " + k.Key
		servedWithin(t, func() string {
			if r := env.get(t, http.MethodGet, PromptsPrefix+"greet", auth); r.status != 200 {
				return fmt.Sprintf("new key: status %d", r.status)
			}
			return ""
		})
		env.otherProcess(t, func(ctx context.Context, tx *index.Tx) error {
			_, err := tx.RevokeKey(ctx, k.ID, "cli")
			return err
		})
		servedWithin(t, func() string {
			if r := env.get(t, http.MethodGet, PromptsPrefix+"greet", auth); r.status != 401 {
				return fmt.Sprintf("revoked key: status %d", r.status)
			}
			return ""
		})
		// Other keys are unaffected.
		decodeRead(t, env.read(t, index.KeyLive, "greet"))
	})
}

func TestHostilePaths(t *testing.T) {
	env := newTestEnv(t, Options{})
	auth := "Bearer " + env.keys[index.KeyLive]
	long := strings.Repeat("a", 10<<10)
	for _, tt := range []struct {
		name, target string
		status       int
		code         string
	}{
		{"dot dot", "/v1/prompts/../greet", 400, "invalid_request"},
		{"dot dot inside", "/v1/prompts/support/../greet", 400, "invalid_request"},
		{"encoded slash and dot dot", "/v1/prompts/..%2Fgreet", 400, "invalid_request"},
		{"encoded dots", "/v1/prompts/%2e%2e/greet", 400, "invalid_request"},
		{"encoded dot segment", "/v1/prompts/support/%2E/summarize", 400, "invalid_request"},
		{"NUL", "/v1/prompts/greet%00", 400, "invalid_request"},
		{"NUL then valid suffix", "/v1/prompts/greet%00.yaml", 400, "invalid_request"},
		{"newline", "/v1/prompts/greet%0A", 400, "invalid_request"},
		{"very long key", "/v1/prompts/" + long, 400, "invalid_request"},
		{"very long unknown nested", "/v1/prompts/a/" + long, 400, "invalid_request"},
		{"upper case", "/v1/prompts/Greet", 400, "invalid_request"},
		{"upper case encoded", "/v1/prompts/%47reet", 400, "invalid_request"},
		{"empty key", "/v1/prompts/", 400, "invalid_request"},
		{"trailing slash", "/v1/prompts/greet/", 400, "invalid_request"},
		{"double slash", "/v1/prompts/support//summarize", 400, "invalid_request"},
		{"backslash", "/v1/prompts/support%5Csummarize", 400, "invalid_request"},
		{"yaml suffix", "/v1/prompts/greet.yaml", 404, "not_found"},
		{"non-ASCII", "/v1/prompts/gr%C3%A9et", 400, "invalid_request"},
		{"no prompts prefix", "/v1/prompts", 404, "not_found"},
		{"unknown route", "/v2/prompts/greet", 404, "not_found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := env.raw(t, tt.target, auth)
			e := errorCode(t, r, tt.status, tt.code)
			if len(e.Message) > 400 {
				t.Errorf("message is %d bytes; it must not echo the whole path", len(e.Message))
			}
		})
	}
	t.Run("without a key every path is 401", func(t *testing.T) {
		errorCode(t, env.raw(t, "/v1/prompts/../greet", "Basic x"), 401, "unauthorized")
	})
}

func TestRoutes(t *testing.T) {
	env := newTestEnv(t, Options{})
	t.Run("healthz", func(t *testing.T) {
		r := env.get(t, http.MethodGet, "/healthz", "")
		if r.status != 200 || string(r.body) != "{\"status\":\"ok\"}\n" {
			t.Errorf("%d %s", r.status, r.body)
		}
	})
	t.Run("readyz", func(t *testing.T) {
		errorCode(t, env.get(t, http.MethodGet, "/readyz", ""), 503, "not_ready")
		if err := env.h.SetReady(context.Background()); err != nil {
			t.Fatal(err)
		}
		if r := env.get(t, http.MethodGet, "/readyz", ""); r.status != 200 {
			t.Errorf("after SetReady: %d %s", r.status, r.body)
		}
	})
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		t.Run(m+" is 405", func(t *testing.T) {
			errorCode(t, env.get(t, m, PromptsPrefix+"greet", "Bearer "+env.keys[index.KeyLive]), 405, "method_not_allowed")
		})
	}
	t.Run("POST healthz is 405", func(t *testing.T) {
		errorCode(t, env.get(t, http.MethodPost, "/healthz", ""), 405, "method_not_allowed")
	})
	t.Run("unknown route is a JSON 404", func(t *testing.T) {
		errorCode(t, env.get(t, http.MethodGet, "/nope", ""), 404, "not_found")
	})
	t.Run("mounting beside the resolver", func(t *testing.T) {
		env.h.Router().PathPrefix("/v1/admin/").HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := env.h.Authorize(r, index.KeyAdmin); err != nil {
				env.h.WriteError(w, r, err)
				return
			}
			w.Write([]byte("admin"))
		})
		errorCode(t, env.get(t, http.MethodGet, "/v1/admin/prompts", "Bearer "+env.keys[index.KeyLive]), 403, "forbidden")
		errorCode(t, env.get(t, http.MethodGet, "/v1/admin/prompts", ""), 401, "unauthorized")
		if r := env.get(t, http.MethodGet, "/v1/admin/prompts", "Bearer "+env.keys[index.KeyAdmin]); string(r.body) != "admin" {
			t.Errorf("admin route: %d %s", r.status, r.body)
		}
		// The read route still wins for its prefix.
		decodeRead(t, env.read(t, index.KeyLive, "greet"))
	})
}

func TestChangeFromOtherProcess(t *testing.T) {
	env := newTestEnv(t, Options{})
	env.otherProcess(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.Rollback(ctx, "support/summarize", "v1", "cli")
		return err
	})
	start := time.Now()
	servedWithin(t, func() string {
		if b := decodeRead(t, env.read(t, index.KeyLive, "support/summarize")); b.Version != "v1" {
			return "still " + b.Version
		}
		return ""
	})
	t.Logf("served after %v", time.Since(start))
	t.Run("a new sync's promotion", func(t *testing.T) {
		env.commit(t, "greet v2", map[string]string{"prompts/greet.yaml": "template: Hi {{ name }}\n"})
		env.sync(t) // auto-promotes under the default "push" mode
		servedWithin(t, func() string {
			if b := decodeRead(t, env.read(t, index.KeyLive, "greet")); b.Version != "v2" {
				return "greet still " + b.Version
			}
			return ""
		})
	})
}

func TestKeyLastUsed(t *testing.T) {
	env := newTestEnv(t, Options{TouchInterval: 20 * time.Millisecond})
	decodeRead(t, env.read(t, index.KeyTest, "greet"))
	eventually(t, time.Minute, func() string {
		var keys []index.APIKey
		env.update(t, func(ctx context.Context, tx *index.Tx) (err error) {
			keys, err = tx.Keys(ctx)
			return err
		})
		for _, k := range keys {
			if k.Env == index.KeyTest && k.LastUsedAt != "" {
				return ""
			}
		}
		return "test key's last_used_at not recorded"
	})
}

// TestNoMixedDocuments flips live between two versions while readers
// hammer the prompt; every body must be one whole version (run with -race).
func TestNoMixedDocuments(t *testing.T) {
	env := newTestEnv(t, Options{PollInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var reads, bad atomic.Int64
	seen := sync.Map{}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		keyEnv := []string{index.KeyLive, index.KeyTest}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				r := env.read(t, keyEnv, "support/summarize")
				var b readBody
				if err := json.Unmarshal(r.body, &b); err != nil || r.status != 200 {
					bad.Add(1)
					t.Errorf("status %d body %s: %v", r.status, r.body, err)
					return
				}
				if err := env.consistent(b); err != nil {
					bad.Add(1)
					t.Errorf("mixed document: %v", err)
					return
				}
				if sum := sha256.Sum256(r.body); r.header.Get("ETag") != `"`+hex.EncodeToString(sum[:16])+`"` {
					t.Errorf("ETag %s does not belong to the body", r.header.Get("ETag"))
					return
				}
				seen.Store(b.Version, true)
				reads.Add(1)
			}
		}()
	}
	for i := 0; i < 40; i++ {
		label := []string{"v1", "v2"}[i%2]
		env.update(t, func(ctx context.Context, tx *index.Tx) error {
			if _, err := tx.Promote(ctx, "support/summarize", label, "test"); err != nil {
				return err
			}
			_, err := tx.SetStaging(ctx, "support/summarize", []string{"draft:feature", "v1"}[i%2], "test")
			return err
		})
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	n := 0
	seen.Range(func(_, _ any) bool { n++; return true })
	t.Logf("%d reads, %d distinct versions seen", reads.Load(), n)
	if n < 2 {
		t.Errorf("readers saw %d versions; the flips were not served", n)
	}
}

// TestReadAllocs guards the hot path: a read allocates nothing of its own.
func TestReadAllocs(t *testing.T) {
	env := newTestEnv(t, Options{})
	req, _ := http.NewRequest(http.MethodGet, PromptsPrefix+"support/summarize", nil)
	req.Header.Set("Authorization", "Bearer "+env.keys[index.KeyLive])
	w := &discardWriter{h: http.Header{}}
	allocs := testing.AllocsPerRun(100, func() {
		clear(w.h)
		env.h.ServeHTTP(w, req)
	})
	if w.status != 0 && w.status != 200 {
		t.Fatalf("status %d", w.status)
	}
	if allocs > 0 {
		t.Errorf("a read allocates %.1f times; want 0", allocs)
	}
}

type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

// TestReadsNeverTouchGit deletes the Git mirror under a running resolver:
// documents for pointers moved afterwards (live to another version, staging
// to a draft, a pinned read) are built from the index's contents alone.
func TestReadsNeverTouchGit(t *testing.T) {
	env := newTestEnv(t, Options{})
	env.repo.Close()
	if err := os.RemoveAll(filepath.Join(filepath.Dir(env.dbPath), "mirror.git")); err != nil {
		t.Fatal(err)
	}
	env.otherProcess(t, func(ctx context.Context, tx *index.Tx) error {
		if _, err := tx.Rollback(ctx, "support/summarize", "v1", "cli"); err != nil {
			return err
		}
		_, err := tx.SetStaging(ctx, "support/summarize", "draft:feature", "cli")
		return err
	})
	for _, tt := range []struct{ keyEnv, path, want string }{
		{index.KeyLive, "support/summarize", "v1"},
		{index.KeyTest, "support/summarize", "draft:feature"},
		{index.KeyLive, "support/summarize?version=v2", "v2"},
	} {
		servedWithin(t, func() string {
			r := env.read(t, tt.keyEnv, tt.path)
			if r.status != http.StatusOK {
				return fmt.Sprintf("%s: %d %s", tt.path, r.status, r.body)
			}
			if b := decodeRead(t, r); b.Version != tt.want {
				return tt.path + " still " + b.Version
			} else if err := env.consistent(b); err != nil {
				return err.Error()
			}
			return ""
		})
	}
}
