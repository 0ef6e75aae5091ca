package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver"
	"github.com/promptvault/promptvault/resolver/metrics"
)

// testEnv is a real repository, its mirror, a real index file, the
// resolver with the admin handler mounted as serve mounts it, behind a
// real HTTP server. The repository starts as:
//
//	support/summarize: v1 "Add prompts" (Ada), v2 "Shorter summaries"
//	  (Grace), v3 "Too hot" (invalid); live v2 (bootstrap)
//	greet: v1; draft:tone on branch "tone"; live v1
type testEnv struct {
	g      *gittest.Repo
	repo   *gitstore.Repo
	db     *index.DB
	res    *resolver.Handler
	adm    *Handler
	srv    *httptest.Server
	keys   map[string]string // "live", "test", "admin", "revoked" → key
	keyIDs map[string]string
	cfg    index.Config
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git CLI not installed")
	}
	ctx := context.Background()
	e := &testEnv{g: gittest.Sample(t), keys: map[string]string{}, keyIDs: map[string]string{},
		cfg: index.Config{Branch: "main", PromptsDir: "prompts", BranchDrafts: true, AutoPromote: index.AutoNone}}
	g := e.g

	dir := t.TempDir()
	var err error
	if e.repo, err = gitstore.Open(filepath.Join(dir, "mirror.git"), g.Dir, gitstore.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.repo.Close() })
	if e.db, err = index.Open(ctx, filepath.Join(dir, "index.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	e.sync(t)
	for _, env := range []string{index.KeyLive, index.KeyTest, index.KeyAdmin, "revoked"} {
		kenv := env
		if env == "revoked" {
			kenv = index.KeyAdmin
		}
		err := e.db.Update(ctx, func(tx *index.Tx) error {
			k, err := tx.CreateKey(ctx, kenv, "test "+env, "test")
			e.keys[env], e.keyIDs[env] = k.Key, k.ID
			if err == nil && env == "revoked" {
				_, err = tx.RevokeKey(ctx, k.ID, "test")
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	if e.res, err = resolver.New(ctx, resolver.Options{DB: e.db, PollInterval: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.res.Run(rctx) }()
	e.adm, err = New(Options{DB: e.db, Repo: e.repo, Resolver: e.res, Sync: func(ctx context.Context) (*index.SyncResult, error) {
		if err := e.repo.Fetch(ctx); err != nil {
			return nil, err
		}
		return e.db.Sync(ctx, e.repo, e.cfg)
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.adm.Routes(e.res.Router())
	e.res.Router().Handle("/metrics", metrics.Handler())
	e.srv = httptest.NewServer(metrics.Instrument(e.res, Route))
	t.Cleanup(func() {
		e.srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("resolver Run: %v", err)
		}
	})
	return e
}

// sync fetches the working repository into the mirror and indexes it.
func (e *testEnv) sync(t testing.TB) *index.SyncResult {
	t.Helper()
	ctx := context.Background()
	if err := e.repo.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := e.db.Sync(ctx, e.repo, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// response is one HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errCode is the error code of an error body ("" when none).
func (r response) errCode() string {
	var b resolver.ErrorBody
	json.Unmarshal(r.body, &b)
	return b.Error.Code
}

func (r response) errMessage() string {
	var b resolver.ErrorBody
	json.Unmarshal(r.body, &b)
	return b.Error.Message
}

// request is a request to send; key is an API key name of testEnv.keys, a
// literal key (starting "pv_"), or "" for none.
type request struct {
	method, path, key string
	body              string
	header            http.Header
	cookies           []*http.Cookie
}

// do sends req and checks the response against the OpenAPI document: the
// operation for its route and method must document its status, and a JSON
// body must match that response's schema.
func (e *testEnv) do(t testing.TB, req request) response {
	t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r, err := http.NewRequest(req.method, e.srv.URL+req.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if req.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range req.header {
		r.Header[k] = vs
	}
	if req.key != "" {
		k := req.key
		if !strings.HasPrefix(k, "pv_") {
			k = e.keys[k]
		}
		r.Header.Set("Authorization", "Bearer "+k)
	}
	for _, c := range req.cookies {
		r.AddCookie(c)
	}
	res, err := e.srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := response{status: res.StatusCode, header: res.Header, body: b}
	checkOpenAPI(t, r, out)
	return out
}

func (e *testEnv) get(t testing.TB, path string) response {
	t.Helper()
	return e.do(t, request{method: "GET", path: path, key: "admin"})
}

// ok sends req with the admin key and fails unless the status is want.
func (e *testEnv) expect(t testing.TB, want int, req request) response {
	t.Helper()
	if req.key == "" && req.cookies == nil {
		req.key = "admin"
	}
	r := e.do(t, req)
	if r.status != want {
		t.Fatalf("%s %s: status %d, want %d\n%s", req.method, req.path, r.status, want, r.body)
	}
	return r
}

// ---- OpenAPI validation ----

const openAPIURL = "https://promptvault.invalid/openapi.json"

var oa struct {
	once     sync.Once
	doc      map[string]any
	compiler *jsonschema.Compiler
	err      error
	mu       sync.Mutex
	schemas  map[string]*jsonschema.Schema
}

func loadOpenAPI() {
	oa.once.Do(func() {
		if oa.err = json.Unmarshal(openAPI, &oa.doc); oa.err != nil {
			return
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(openAPI))
		if err != nil {
			oa.err = err
			return
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		if oa.err = c.AddResource(openAPIURL, inst); oa.err != nil {
			return
		}
		oa.compiler = c
		oa.schemas = map[string]*jsonschema.Schema{}
	})
}

// schemaAt compiles the schema at JSON pointer ptr of the document.
func schemaAt(ptr string) (*jsonschema.Schema, error) {
	oa.mu.Lock()
	defer oa.mu.Unlock()
	if s := oa.schemas[ptr]; s != nil {
		return s, nil
	}
	s, err := oa.compiler.Compile(openAPIURL + "#" + ptr)
	if err != nil {
		return nil, err
	}
	oa.schemas[ptr] = s
	return s, nil
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// checkOpenAPI validates a real response against the document.
func checkOpenAPI(t testing.TB, r *http.Request, res response) {
	t.Helper()
	loadOpenAPI()
	if oa.err != nil {
		t.Fatalf("openapi.json: %v", oa.err)
	}
	route := Route(r)
	if route == routeUIStatic || route == routeOther || route == routeAdminMiss {
		return // files, and paths that match no route (404s checked by status)
	}
	paths := oa.doc["paths"].(map[string]any)
	item, _ := paths[route].(map[string]any)
	if item == nil {
		t.Errorf("openapi.json has no path %s", route)
		return
	}
	method := strings.ToLower(r.Method)
	op, _ := item[method].(map[string]any)
	if op == nil {
		if res.status != http.StatusMethodNotAllowed {
			t.Errorf("openapi.json has no %s %s (answered %d)", r.Method, route, res.status)
		}
		return
	}
	status := fmt.Sprint(res.status)
	resp, _ := op["responses"].(map[string]any)[status].(map[string]any)
	if resp == nil {
		t.Errorf("openapi.json: %s %s does not document status %s (body %s)", r.Method, route, status, res.body)
		return
	}
	ptr := "/paths/" + escapePointer(route) + "/" + method + "/responses/" + status
	if ref, ok := resp["$ref"].(string); ok {
		ptr = strings.TrimPrefix(ref, "#")
		name := ref[strings.LastIndex(ref, "/")+1:]
		resp = oa.doc["components"].(map[string]any)["responses"].(map[string]any)[name].(map[string]any)
	}
	content, _ := resp["content"].(map[string]any)
	if content["application/json"] == nil {
		return
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q, documented application/json", r.Method, route, ct)
		return
	}
	s, err := schemaAt(ptr + "/content/application~1json/schema")
	if err != nil {
		t.Fatalf("compile schema of %s %s %s: %v", r.Method, route, status, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(res.body))
	if err != nil {
		t.Errorf("%s %s: body is not JSON: %v\n%s", r.Method, route, err, res.body)
		return
	}
	if err := s.Validate(inst); err != nil {
		t.Errorf("%s %s → %s does not match openapi.json:\n%v\nbody: %s", r.Method, r.URL.Path, status, err, res.body)
	}
}

// commitFast adds n commits that each change prompts/<key>.yaml, with
// messages "<prefix> i", in one git fast-import (250 commits in well
// under a second, where 250 git commit runs take several).
func commitFast(t testing.TB, g *gittest.Repo, key, prefix string, n int) {
	t.Helper()
	var b bytes.Buffer
	parent := g.Head()
	for i := 1; i <= n; i++ {
		g.Clock = g.Clock.Add(time.Minute)
		content := gittest.Prompt(fmt.Sprintf("%s %d", prefix, i))
		msg := fmt.Sprintf("%s %d", prefix, i)
		fmt.Fprintf(&b, "commit refs/heads/main\ncommitter Ada Lovelace <ada@example.com> %d +0000\ndata %d\n%s\n", g.Clock.Unix(), len(msg), msg)
		if i == 1 {
			fmt.Fprintf(&b, "from %s\n", parent)
		}
		fmt.Fprintf(&b, "M 100644 inline prompts/%s.yaml\ndata %d\n%s\n", key, len(content), content)
	}
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = g.Dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+g.Dir)
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git fast-import: %v\n%s", err, out)
	}
	g.Git("reset", "-q", "--hard", "main")
}

// dropMirror closes and deletes the Git mirror: what admin views show from
// then on comes from the index alone.
func (e *testEnv) dropMirror(t testing.TB) {
	t.Helper()
	dir := e.repo.Dir()
	e.repo.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
}
