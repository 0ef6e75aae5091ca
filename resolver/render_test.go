package resolver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/index"
)

// Prompts for render tests, committed on top of the standard test repo.
const (
	richFile = `model: gpt-4o
fallback_model: claude-sonnet-4
temperature: 0.2
max_tokens: 300
top_p: 0.9
cache_timeout: 60
config: {team: support}
output_schema: {type: object, properties: {summary: {type: string}}}
system: "You are {{ persona.name }}, tone {{ persona.tone }}."
template: |-
  {% if urgent %}URGENT {% endif %}Summarize in {{ max_sentences }} sentences:
  {% for t in tickets %}{{ loop.index }}. {{ t.title | upper }}{% if not loop.last %}; {% endif %}{% endfor %}
  {{ meta | tojson }}
input_schema:
  type: object
  additionalProperties: false
  properties:
    persona:
      type: object
      properties:
        name: {type: string}
        tone: {type: string, default: neutral}
      default: {name: Ada}
    urgent: {type: boolean, default: false}
    max_sentences: {type: integer, default: 3, minimum: 1}
    tickets:
      type: array
      items: {type: object, properties: {title: {type: string}}, required: [title]}
    meta: {type: object}
  required: [tickets, meta]
`
	chatFile = `messages:
  - {role: system, content: "You answer in {{ lang }}."}
  - {role: user, content: "{{ question }}"}
  - {role: assistant, content: "{% for s in steps %}{{ s }}{{ ', ' if not loop.last }}{% endfor %}"}
input_schema:
  type: object
  properties:
    lang: {type: string, default: English}
    question: {type: string}
    steps: {type: array, default: [read, think]}
  required: [question]
`
	// No schema: extra variables are fine, a missing one is an error.
	looseFile = "template: \"Hi {{ name }}\"\n"
)

// hostile templates that parse (so they become versions) and must fail at
// render within the bounds.
var hostileFiles = map[string]string{
	"hostile/range":     "template: \"{% for i in range(1000000000) %}x{% endfor %}\"\n",
	"hostile/nested":    "template: \"{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}\"\n",
	"hostile/big":       "template: \"{% for i in range(10000) %}{% for j in range(10000) %}{{ pad }}{% endfor %}{% endfor %}\"\n",
	"hostile/divzero":   "template: \"{{ 1 % 0 }}\"\n",
	"hostile/double":    "template: \"{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}\"\n",
	"hostile/self":      "template: \"{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}\"\n",
	"hostile/center":    "template: \"{{ 'x' | center(1000000000) }}\"\n",
	"hostile/deep":      "template: \"" + strings.Repeat("{% if true %}", 45) + "deep" + strings.Repeat("{% endif %}", 45) + "\"\n",
	"hostile/setblock":  "template: \"{% set x %}{% for i in range(100000) %}{% for j in range(100) %}" + strings.Repeat("y", 200) + "{% endfor %}{% endfor %}{% endset %}{{ x | length }}\"\n",
	"hostile/upperloop": "template: \"{% for i in range(100000) if (pad | upper) %}{% endfor %}\"\n",
}

func addRenderPrompts(tb testing.TB, env *testEnv) {
	tb.Helper()
	files := map[string]string{
		"prompts/render/rich.yaml":  richFile,
		"prompts/render/chat.yaml":  chatFile,
		"prompts/render/loose.yaml": looseFile,
	}
	for k, f := range hostileFiles {
		files["prompts/"+k+".yaml"] = f
	}
	env.commit(tb, "render prompts", files)
	env.sync(tb) // auto-promotes (push mode)
	eventually(tb, time.Minute, func() string {
		if r := env.read(tb, index.KeyLive, "render/rich"); r.status != 200 {
			return fmt.Sprintf("render/rich not served yet: %d", r.status)
		}
		return ""
	})
}

func (env *testEnv) post(tb testing.TB, path, auth string, body string) response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, env.srv.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := env.srv.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, b}
}

func (env *testEnv) renderAs(tb testing.TB, keyEnv, key string, vars string) response {
	tb.Helper()
	body := ""
	if vars != "" {
		body = `{"variables": ` + vars + `}`
	}
	return env.post(tb, PromptsPrefix+key+RenderSuffix, "Bearer "+env.keys[keyEnv], body)
}

func TestRender(t *testing.T) {
	// Renders here must succeed: give them time, as workers run at nice
	// 10 and the machine may be busy with other work.
	env := newTestEnv(t, Options{RenderTimeout: time.Minute})
	addRenderPrompts(t, env)
	for _, tt := range []struct {
		name, key, vars string
		want            []promptvault.Message
	}{
		{"defaults nested objects loops conditionals tojson", "render/rich",
			`{"tickets": [{"title": "login fails"}, {"title": "slow"}], "meta": {"b": 1, "a": [true, null]}}`,
			[]promptvault.Message{
				{Role: "system", Content: "You are Ada, tone neutral."},
				{Role: "user", Content: "Summarize in 3 sentences:\n1. LOGIN FAILS; 2. SLOW\n{\"a\": [true, null], \"b\": 1}"},
			}},
		{"given values win over defaults", "render/rich",
			`{"urgent": true, "max_sentences": 2, "persona": {"name": "Bo", "tone": "dry"}, "tickets": [], "meta": {}}`,
			[]promptvault.Message{
				{Role: "system", Content: "You are Bo, tone dry."},
				{Role: "user", Content: "URGENT Summarize in 2 sentences:\n\n{}"},
			}},
		{"chat messages", "render/chat", `{"question": "Why?"}`,
			[]promptvault.Message{
				{Role: "system", Content: "You answer in English."},
				{Role: "user", Content: "Why?"},
				{Role: "assistant", Content: "read, think"},
			}},
		{"extra variables without a schema", "render/loose", `{"name": "Ada", "unused": 1}`,
			[]promptvault.Message{{Role: "user", Content: "Hi Ada"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := env.renderAs(t, index.KeyLive, tt.key, tt.vars)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var got renderResponse
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got.Messages) != fmt.Sprint(tt.want) {
				t.Errorf("messages\n got %q\nwant %q", got.Messages, tt.want)
			}
			if got.Version == "" || got.Key != tt.key || got.Env != "live" {
				t.Errorf("key/env/version = %s/%s/%s", got.Key, got.Env, got.Version)
			}
		})
	}

	t.Run("model parameters and every field present", func(t *testing.T) {
		r := env.renderAs(t, index.KeyLive, "render/rich", `{"tickets": [], "meta": {}}`)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"model": `"gpt-4o"`, "fallback_model": `"claude-sonnet-4"`, "temperature": "0.2",
			"max_tokens": "300", "top_p": "0.9", "cache_timeout": "60", "config": `{"team":"support"}`,
			"output_schema": `{"properties":{"summary":{"type":"string"}},"type":"object"}`, "version": `"v1"`}
		for k, v := range want {
			if string(m[k]) != v {
				t.Errorf("%s = %s, want %s", k, m[k], v)
			}
		}
		r = env.renderAs(t, index.KeyLive, "render/loose", `{"name": "x"}`)
		m = nil
		json.Unmarshal(r.body, &m)
		for _, k := range []string{"model", "fallback_model", "temperature", "max_tokens", "top_p", "output_schema", "cache_timeout", "config"} {
			if v, ok := m[k]; !ok || string(v) != "null" {
				t.Errorf("unset %s = %s, want null", k, v)
			}
		}
	})

	t.Run("staging and pinned versions resolve as reads do", func(t *testing.T) {
		r := env.renderAs(t, index.KeyTest, "support/summarize", `{"text": "t"}`)
		var got renderResponse
		json.Unmarshal(r.body, &got)
		if r.status != 200 || got.Version != "v2" || got.Messages[1].Content != "Summarize v2: t" {
			t.Fatalf("test key render: %d %s", r.status, r.body)
		}
		env.update(t, func(ctx context.Context, tx *index.Tx) error {
			_, err := tx.SetStaging(ctx, "support/summarize", "draft:feature", "test")
			return err
		})
		eventually(t, time.Minute, func() string {
			r := env.renderAs(t, index.KeyTest, "support/summarize", `{"text": "t"}`)
			json.Unmarshal(r.body, &got)
			if got.Env != "staging" || got.Messages[1].Content != "Summarize draft:feature: t" {
				return string(r.body)
			}
			return ""
		})
		r = env.post(t, PromptsPrefix+"support/summarize/render?version=v1", "Bearer "+env.keys[index.KeyLive], `{"variables": {"text": "t"}}`)
		json.Unmarshal(r.body, &got)
		if got.Version != "v1" || got.Messages[1].Content != "Summarize v1: t" {
			t.Fatalf("pinned render: %d %s", r.status, r.body)
		}
	})

	for _, tt := range []struct {
		name, key, vars string
		want            []promptvault.VariableError
	}{
		{"missing required", "render/rich", `{"tickets": [{}]}`, []promptvault.VariableError{
			{Path: "", Message: "missing property 'meta'"},
			{Path: "/tickets/0", Message: "missing property 'title'"},
		}},
		{"wrong types and extra variables, every error with its path", "render/rich",
			`{"tickets": "no", "meta": 1, "max_sentences": 0, "persona": {"name": 5}, "extra": 1}`,
			[]promptvault.VariableError{
				{Path: "", Message: "additional properties 'extra' not allowed"},
				{Path: "/max_sentences", Message: "minimum: got 0, want 1"},
				{Path: "/meta", Message: "got number, want object"},
				{Path: "/persona/name", Message: "got number, want string"},
				{Path: "/tickets", Message: "got string, want array"},
			}},
		{"undefined variable is an error, not an empty string", "render/loose", `{}`, []promptvault.VariableError{
			{Path: "/name", Message: `template uses variable "name", which was not given and has no default`},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := env.renderAs(t, index.KeyLive, tt.key, tt.vars)
			d := errorCode(t, r, 422, "validation_failed")
			if fmt.Sprint(d.Errors) != fmt.Sprint(tt.want) {
				t.Errorf("errors\n got %q\nwant %q", d.Errors, tt.want)
			}
		})
	}

	t.Run("45 nested blocks render", func(t *testing.T) {
		r := env.renderAs(t, index.KeyLive, "hostile/deep", `{}`)
		if r.status != 200 || !strings.Contains(string(r.body), "deep") {
			t.Fatalf("45 nested ifs: %d %s", r.status, r.body)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		auth := "Bearer " + env.keys[index.KeyLive]
		errorCode(t, env.post(t, PromptsPrefix+"render/loose/render", auth, `{"variables": `), 400, "invalid_request")
		errorCode(t, env.post(t, PromptsPrefix+"render/loose/render", auth, `{"vars": {}}`), 400, "invalid_request")
		errorCode(t, env.post(t, PromptsPrefix+"render/loose/render", auth, `{"variables": {"name": "`+strings.Repeat("x", MaxRenderBody)+`"}}`), 413, "too_large")
		errorCode(t, env.post(t, PromptsPrefix+"render/loose/render", "", `{}`), 401, "unauthorized")
		errorCode(t, env.post(t, PromptsPrefix+"nope/render", auth, `{}`), 404, "not_found")
		errorCode(t, env.post(t, PromptsPrefix+"old/render", auth, `{}`), 404, "prompt_archived")
	})
}

// TestRenderHostile renders each hostile template while other clients keep
// reading; each answers 422 render_failed and the reads all succeed.
func TestRenderHostile(t *testing.T) {
	env := newTestEnv(t, Options{})
	addRenderPrompts(t, env)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, failed int64
	var mu sync.Mutex
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, env.srv.URL+PromptsPrefix+"greet", nil)
				req.Header.Set("Authorization", "Bearer "+env.keys[index.KeyLive])
				res, err := env.srv.Client().Do(req)
				mu.Lock()
				reads++
				if err != nil || res.StatusCode != 200 {
					failed++
				}
				mu.Unlock()
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	pad := strings.Repeat("p", 1000)
	for name := range hostileFiles {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			r := env.renderAs(t, index.KeyLive, name, `{"pad": "`+pad+`"}`)
			if name == "hostile/deep" {
				// It renders (TestRender checks with time to spare),
				// unless a busy machine starves it of its 100 ms.
				if r.status == 422 && strings.Contains(string(r.body), "longer than") {
					return
				}
				if r.status != 200 || !strings.Contains(string(r.body), "deep") {
					t.Fatalf("45 nested ifs: %d %s", r.status, r.body)
				}
				return
			}
			d := errorCode(t, r, 422, "render_failed")
			t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), d.Message)
		})
	}
	// Everything at once, twice the concurrency limit: each is refused or
	// fails, none hangs.
	var rwg sync.WaitGroup
	for range 2 {
		for name := range hostileFiles {
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				r := env.renderAs(t, index.KeyLive, name, `{"pad": "`+pad+`"}`)
				if r.status != 422 && r.status != 503 && name != "hostile/deep" {
					t.Errorf("%s: %d %s", name, r.status, r.body)
				}
			}()
		}
	}
	rwg.Wait()
	close(stop)
	wg.Wait()
	if reads == 0 || failed > 0 {
		t.Errorf("reads during hostile renders: %d, failed %d", reads, failed)
	}
	// After the storm, renders succeed again: every killed worker was
	// replaced.
	var last response
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if last = env.renderAs(t, index.KeyLive, "render/loose", `{"name": "still here"}`); last.status == 200 {
			return
		}
		// Busy, or starved of its 100 ms on a busy machine: try again.
		if last.status != 503 && !(last.status == 422 && strings.Contains(string(last.body), "longer than")) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("render after hostile set: %d %s", last.status, last.body)
}

// TestRenderBusy fills every render slot with slow renders: the next one
// waits up to the render timeout, then answers 503 busy with Retry-After.
func TestRenderBusy(t *testing.T) {
	env := newTestEnv(t, Options{RenderWorkers: 1, RenderTimeout: 300 * time.Millisecond})
	addRenderPrompts(t, env)
	done := make(chan response)
	go func() { done <- env.renderAs(t, index.KeyLive, "hostile/nested", `{}`) }()
	eventually(t, time.Minute, func() string {
		if env.h.renderLimits.Pool.Busy() == 0 {
			return "slow render not started"
		}
		return ""
	})
	r := env.renderAs(t, index.KeyLive, "render/loose", `{"name": "x"}`)
	if r.status == 503 {
		errorCode(t, r, 503, "busy")
		if r.header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	} else if r.status != 200 && !(r.status == 422 && strings.Contains(string(r.body), "longer than")) {
		// 200, or on a busy machine its own 300 ms ran out.
		t.Errorf("second render: %d %s", r.status, r.body)
	}
	errorCode(t, <-done, 422, "render_failed")
}

// TestRenderSchemaErrorsWhileBusy: variables that break the input schema
// are answered 422 validation_failed with their errors while the only
// render worker is busy: the server validates them itself, so the answer
// depends on no worker (it used to wait for the slot and answer 503, or
// on a starved worker answer render_failed).
func TestRenderSchemaErrorsWhileBusy(t *testing.T) {
	env := newTestEnv(t, Options{RenderWorkers: 1, RenderTimeout: time.Minute})
	addRenderPrompts(t, env)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		// 100,000 uppercasings of 900 KB: minutes of work in 200,000
		// steps, so it runs until its minute is up or the client leaves.
		body := `{"variables": {"pad": "` + strings.Repeat("p", 900<<10) + `"}}`
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, env.srv.URL+PromptsPrefix+"hostile/upperloop"+RenderSuffix, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+env.keys[index.KeyLive])
		res, err := env.srv.Client().Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	eventually(t, time.Minute, func() string {
		if env.h.renderLimits.Pool.Busy() == 0 {
			return "slow render not started"
		}
		return ""
	})
	r := env.renderAs(t, index.KeyLive, "render/rich", `{"tickets": "no", "meta": {}}`)
	d := errorCode(t, r, 422, "validation_failed")
	if want := "[{/tickets got string, want array}]"; fmt.Sprint(d.Errors) != want {
		t.Errorf("errors %q, want %s", d.Errors, want)
	}
	if env.h.renderLimits.Pool.Busy() == 0 {
		t.Error("the slow render ended before the invalid one was answered; the test proves nothing")
	}
	cancel()
	<-done
}

// TestInvalidTemplateNeverPromoted: a version whose template does not parse
// (a file include, a macro) is indexed invalid; promote refuses it and
// push auto-promotion leaves live where it was.
func TestInvalidTemplateNeverPromoted(t *testing.T) {
	env := newTestEnv(t, Options{})
	env.commit(t, "greet: include a file", map[string]string{"prompts/greet.yaml": "template: \"{% include '/etc/passwd' %}\"\n"})
	env.commit(t, "greet: recursive macro", map[string]string{
		"prompts/greet.yaml": "template: \"{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}\"\n"})
	env.sync(t)
	ctx := context.Background()
	err := env.db.View(ctx, func(tx *index.Tx) error {
		for _, label := range []string{"v2", "v3"} {
			v, err := tx.Version(ctx, "greet", label)
			if err != nil {
				return err
			}
			if v.Valid || len(v.Problems) == 0 {
				t.Errorf("greet %s valid=%v problems=%v", label, v.Valid, v.Problems)
			}
		}
		p, _, err := tx.Pointer(ctx, "greet", index.EnvLive)
		if p.Label() != "v1" {
			t.Errorf("live = %s after syncing invalid versions", p.Label())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = env.db.Update(ctx, func(tx *index.Tx) error {
		_, err := tx.Promote(ctx, "greet", "v3", "test")
		return err
	})
	if !errors.Is(err, index.ErrInvalidVersion) {
		t.Fatalf("promote invalid version: %v, want ErrInvalidVersion", err)
	}
	if b := decodeRead(t, env.read(t, index.KeyLive, "greet")); b.Version != "v1" {
		t.Errorf("served %s", b.Version)
	}
}

// TestRenderPromptCacheBounded: the server keeps at most PromptCache decoded
// prompts (a document keeps only its file's bytes), and a prompt the cache
// dropped renders exactly as before, decoded again from its document.
func TestRenderPromptCacheBounded(t *testing.T) {
	const size, n = 4, 12
	env := newTestEnv(t, Options{RenderTimeout: time.Minute, PromptCache: size})
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("prompts/cache/p%02d.yaml", i)] = fmt.Sprintf(`template: "{{ who }} #%d {{ n * 2 }}"
input_schema:
  type: object
  properties:
    who: {type: string}
    n: {type: integer, default: %d}
  required: [who]
`, i, i)
	}
	env.commit(t, "many prompts", files)
	env.sync(t)
	render := func(i int) string {
		key := fmt.Sprintf("cache/p%02d", i)
		var r response
		eventually(t, 30*time.Second, func() string {
			r = env.renderAs(t, index.KeyLive, key, `{"who": "Ada"}`)
			if r.status == 404 {
				return key + " not served yet"
			}
			return ""
		})
		if r.status != 200 {
			t.Fatalf("render %s: %d %s", key, r.status, r.body)
		}
		var got renderResponse
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		return got.Messages[0].Content
	}
	for round := range 2 {
		for i := range n {
			if got, want := render(i), fmt.Sprintf("Ada #%d %d", i, 2*i); got != want {
				t.Fatalf("round %d: p%02d rendered %q, want %q", round, i, got, want)
			}
			if l := env.h.prompts.Len(); l > size {
				t.Fatalf("%d decoded prompts kept, want at most %d", l, size)
			}
		}
	}
}
