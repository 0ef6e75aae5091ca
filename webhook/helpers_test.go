package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/golang-jwt/jwt/v5"

	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/webhook/githubtest"
)

const (
	testSecret = "It's a Secret to Everybody"
	testOwner  = "acme"
	testName   = "prompts"
	testAppID  = "4242"
	testInstID = 77
)

// gitServer is real git over smart HTTP (git http-backend behind
// net/http/cgi) serving one bare repository at /acme/prompts.git. Tests push
// into the bare repository's directory; promptvault fetches over HTTP.
type gitServer struct {
	URL  string // repository URL
	Bare string // bare repository directory
	// Auth, when set, must accept each request's basic credentials.
	mu   sync.Mutex
	Auth func(user, pass string) bool
}

func newGitServer(t testing.TB) *gitServer {
	t.Helper()
	root := t.TempDir()
	bare := filepath.Join(root, testOwner, testName+".git")
	run(t, "", "git", "init", "-q", "--bare", "-b", "main", bare)
	run(t, bare, "git", "config", "http.receivepack", "true")
	run(t, bare, "git", "config", "uploadpack.allowAnySHA1InWant", "true")
	execPath := strings.TrimSpace(run(t, "", "git", "--exec-path"))
	gs := &gitServer{Bare: bare}
	h := &cgi.Handler{Path: filepath.Join(execPath, "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gs.mu.Lock()
		check := gs.Auth
		gs.mu.Unlock()
		if check != nil {
			u, p, ok := r.BasicAuth()
			if !ok || !check(u, p) {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	gs.URL = srv.URL + "/" + testOwner + "/" + testName + ".git"
	return gs
}

func run(t testing.TB, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fakeGitHub answers the REST endpoints promptvault calls, in their
// documented shapes, at / and at /api/v3/ (GitHub Enterprise Server).
type fakeGitHub struct {
	t   testing.TB
	srv *httptest.Server
	key *rsa.PrivateKey

	mu          sync.Mutex
	prs         map[int]*PullRequest
	runs        []*fakeRun
	statuses    map[string][]Status
	tokens      map[string]time.Time // issued installation token → expiry
	tokenCalls  int
	tokenTTL    time.Duration
	staticToken string
	calls       []string // "METHOD path"
	failNext    map[string]int
	clock       *fakeClock
	spec        *githubtest.Spec
	// fault, when set, may answer a call instead of the API (chaos).
	fault func(w http.ResponseWriter, r *http.Request) bool
	// rateLimitNext answers the next n calls with a rate limit of kind
	// "primary" (403, x-ratelimit-remaining 0), "secondary" (403 with
	// retry-after) or "429".
	rateLimitNext map[string]int
	tokenBodies   []map[string]any // access token request bodies
	updated       map[int]time.Time
	tick          int            // orders PR updates
	rollback      map[string]any // rollback --open-pr requests by step
}

type fakeRun struct {
	CheckRun
	appID       int64
	annotations []Annotation
	updates     int
}

// testAppIDNum is testAppID as GitHub's app_id.
const testAppIDNum = 4242

func newFakeGitHub(t testing.TB) *fakeGitHub {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeGitHub{t: t, key: key, prs: map[int]*PullRequest{}, statuses: map[string][]Status{},
		tokens: map[string]time.Time{}, tokenTTL: time.Hour, failNext: map[string]int{}, rollback: map[string]any{},
		spec: githubSpec(t), rateLimitNext: map[string]int{}, updated: map[int]time.Time{}}
	mux := http.NewServeMux()
	for _, p := range []string{"", "/api/v3"} {
		repo := p + "/repos/{owner}/{repo}/"
		mux.HandleFunc("GET "+repo+"pulls/{n}", f.auth(f.getPR))
		mux.HandleFunc("GET "+repo+"pulls", f.auth(f.listPRs))
		mux.HandleFunc("POST "+repo+"pulls", f.auth(f.createPR))
		mux.HandleFunc("GET "+repo+"commits/{ref}/check-runs", f.auth(f.listRuns))
		mux.HandleFunc("POST "+repo+"check-runs", f.auth(f.createRun))
		mux.HandleFunc("PATCH "+repo+"check-runs/{id}", f.auth(f.updateRun))
		mux.HandleFunc("POST "+repo+"statuses/{sha}", f.auth(f.createStatus))
		mux.HandleFunc("GET "+repo+"git/ref/heads/{branch...}", f.auth(f.getRef))
		mux.HandleFunc("POST "+repo+"git/refs", f.auth(f.record("create_ref")))
		mux.HandleFunc("GET "+repo+"contents/{path...}", f.auth(f.getContents))
		mux.HandleFunc("PUT "+repo+"contents/{path...}", f.auth(f.record("put_contents")))
		mux.HandleFunc("GET "+repo+"installation", f.app(f.installation))
		mux.HandleFunc("POST "+p+"/app/installations/{id}/access_tokens", f.app(f.accessToken))
	}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls = append(f.calls, r.Method+" "+r.URL.Path)
		key := r.Method + " " + strings.TrimPrefix(r.URL.Path, "/api/v3")
		fail := f.failNext[key] > 0
		if fail {
			f.failNext[key]--
		}
		limit := ""
		for k, n := range f.rateLimitNext {
			if n > 0 {
				limit = k
				f.rateLimitNext[k]--
				break
			}
		}
		fault := f.fault
		f.mu.Unlock()
		if fail {
			writeJSON(w, http.StatusBadGateway, map[string]string{"message": "Server Error"})
			return
		}
		if limit != "" {
			f.writeRateLimit(w, limit)
			return
		}
		if fault != nil && fault(w, r) {
			return
		}
		f.serveChecked(w, r, mux)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// writeRateLimit answers as GitHub does when a limit is hit.
func (f *fakeGitHub) writeRateLimit(w http.ResponseWriter, kind string) {
	now := f.now()
	switch kind {
	case "primary":
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(10*time.Minute).Unix(), 10))
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "API rate limit exceeded for installation ID 77.",
			"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})
	case "secondary":
		w.Header().Set("Retry-After", "120")
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
			"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"})
	case "429":
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "Too Many Requests"})
	}
}

func (f *fakeGitHub) now() time.Time {
	if f.clock != nil {
		return f.clock.Now()
	}
	return time.Now()
}

// serveChecked answers through the API mux, holding both directions to
// GitHub's description (githubtest.Spec.Serve).
func (f *fakeGitHub) serveChecked(w http.ResponseWriter, r *http.Request, mux *http.ServeMux) {
	f.spec.Serve(f.t, w, r, mux)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// auth accepts an installation token it issued (unexpired) or the static
// token.
func (f *fakeGitHub) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		exp, issued := f.tokens[tok]
		ok := (issued && time.Now().Before(exp)) || (f.staticToken != "" && tok == f.staticToken)
		f.mu.Unlock()
		if !ok {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials"})
			return
		}
		h(w, r)
	}
}

// app accepts only a valid App JWT: RS256, iss = App ID, iat in the past,
// exp at most 10 minutes ahead.
func (f *fakeGitHub) app(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		var claims jwt.RegisteredClaims
		_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return &f.key.PublicKey, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(testAppID), jwt.WithIssuedAt())
		if err == nil && (claims.ExpiresAt == nil || claims.ExpiresAt.After(time.Now().Add(10*time.Minute+time.Second)) ||
			claims.IssuedAt == nil || !claims.IssuedAt.Before(time.Now().Add(-30*time.Second))) {
			err = fmt.Errorf("bad iat/exp %v %v", claims.IssuedAt, claims.ExpiresAt)
		}
		if err != nil {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "A JSON web token could not be decoded: " + err.Error()})
			return
		}
		h(w, r)
	}
}

func (f *fakeGitHub) installation(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"id": testInstID, "app_id": 4242})
}

func (f *fakeGitHub) accessToken(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("id") != strconv.Itoa(testInstID) {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	var in map[string]any
	json.NewDecoder(r.Body).Decode(&in)
	f.mu.Lock()
	f.tokenBodies = append(f.tokenBodies, in)
	f.tokenCalls++
	tok := fmt.Sprintf("ghs_%s_%d", testAppID, f.tokenCalls)
	exp := time.Now().Add(f.tokenTTL).UTC().Truncate(time.Second)
	f.tokens[tok] = exp
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "expires_at": exp.Format(time.RFC3339),
		"permissions": map[string]string{"checks": "write", "contents": "read"}})
}

func (f *fakeGitHub) getPR(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.PathValue("n"))
	f.mu.Lock()
	defer f.mu.Unlock()
	pr, ok := f.prs[n]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	writeJSON(w, http.StatusOK, prJSON(*pr, true))
}

// prJSON renders a pull request as the API does; lists omit "merged".
func prJSON(pr PullRequest, full bool) map[string]any {
	labels := []map[string]any{}
	for i, l := range pr.Labels {
		labels = append(labels, map[string]any{"id": i + 1, "name": l.Name, "color": "ededed"})
	}
	m := map[string]any{
		"url": "", "id": pr.Number * 1000, "number": pr.Number, "state": pr.State, "title": pr.Title,
		"html_url": fmt.Sprintf("https://github.com/%s/%s/pull/%d", testOwner, testName, pr.Number),
		"labels":   labels, "merged_at": pr.MergedAt, "merge_commit_sha": pr.MergeCommitSHA,
		"head": map[string]any{"ref": pr.Head.Ref, "sha": pr.Head.SHA, "repo": map[string]any{"full_name": headRepo(pr)}},
		"base": map[string]any{"ref": pr.Base.Ref, "sha": pr.Base.SHA, "repo": map[string]any{"full_name": testOwner + "/" + testName}},
	}
	if full {
		m["merged"] = pr.Merged
	}
	return m
}

func headRepo(pr PullRequest) string {
	if pr.Head.Repo != nil {
		return pr.Head.Repo.FullName
	}
	return testOwner + "/" + testName
}

// listPRs pages as GitHub does (githubtest.Page), sorted as the worker
// asks: sort=updated&direction=desc.
func (f *fakeGitHub) listPRs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state, base := q.Get("state"), q.Get("base")
	f.mu.Lock()
	var match []*PullRequest
	for _, pr := range f.prs {
		if (state == "all" || pr.State == state) && (base == "" || pr.Base.Ref == base) {
			match = append(match, pr)
		}
	}
	sort.Slice(match, func(i, j int) bool { return f.updated[match[i].Number].After(f.updated[match[j].Number]) })
	out := []map[string]any{}
	lo, hi := githubtest.Page(w, r, len(match))
	for _, pr := range match[lo:hi] {
		m := prJSON(*pr, false)
		m["updated_at"] = f.updated[pr.Number].UTC().Format(time.RFC3339)
		out = append(out, m)
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (f *fakeGitHub) createPR(w http.ResponseWriter, r *http.Request) {
	var in map[string]any
	json.NewDecoder(r.Body).Decode(&in)
	f.mu.Lock()
	f.rollback["create_pr"] = in
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"number": 99, "state": "open",
		"html_url": fmt.Sprintf("https://github.com/%s/%s/pull/99", testOwner, testName)})
}

func (f *fakeGitHub) record(step string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		json.NewDecoder(r.Body).Decode(&in)
		f.mu.Lock()
		f.rollback[step] = in
		f.mu.Unlock()
		if step == "put_contents" {
			// PUT contents answers with the new file and its commit.
			writeJSON(w, http.StatusOK, map[string]any{
				"content": map[string]any{"type": "file", "path": r.PathValue("path"), "sha": strings.Repeat("c", 40)},
				"commit":  map[string]any{"sha": strings.Repeat("d", 40), "message": in["message"]}})
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"ref": in["ref"], "object": map[string]any{"type": "commit", "sha": in["sha"]}})
	}
}

func (f *fakeGitHub) getRef(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"ref": "refs/heads/" + r.PathValue("branch"),
		"object": map[string]any{"type": "commit", "sha": strings.Repeat("a", 40)}})
}

func (f *fakeGitHub) getContents(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"type": "file", "path": r.PathValue("path"), "sha": strings.Repeat("b", 40)})
}

// runJSON is a check run as the API answers it, with its owning App.
func runJSON(run *fakeRun) map[string]any {
	m := map[string]any{"id": run.ID, "name": run.Name, "head_sha": run.HeadSHA, "status": run.Status,
		"conclusion": run.Conclusion, "app": map[string]any{"id": run.appID},
		"output": map[string]any{"title": "", "summary": "", "annotations_count": len(run.annotations)}}
	if run.Conclusion == "" {
		m["conclusion"] = nil
	}
	if run.Output != nil {
		m["output"] = map[string]any{"title": run.Output.Title, "summary": run.Output.Summary,
			"annotations_count": len(run.annotations)}
	}
	return m
}

// listRuns filters by check_name and app_id as GitHub does.
func (f *fakeGitHub) listRuns(w http.ResponseWriter, r *http.Request) {
	sha, name := r.PathValue("ref"), r.URL.Query().Get("check_name")
	app, _ := strconv.ParseInt(r.URL.Query().Get("app_id"), 10, 64)
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []map[string]any{}
	for _, run := range f.runs {
		if run.HeadSHA == sha && (name == "" || run.Name == name) && (app == 0 || run.appID == app) {
			out = append(out, runJSON(run))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(out), "check_runs": out})
}

func (f *fakeGitHub) createRun(w http.ResponseWriter, r *http.Request) {
	var in CheckRun
	json.NewDecoder(r.Body).Decode(&in)
	if in.Name == "" || in.HeadSHA == "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "name and head_sha are required"})
		return
	}
	if in.Output != nil && len(in.Output.Annotations) > 50 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Only 50 annotations are allowed per request"})
		return
	}
	f.mu.Lock()
	run := &fakeRun{CheckRun: in, appID: testAppIDNum}
	run.ID = int64(len(f.runs) + 1)
	if in.Output != nil {
		run.annotations = in.Output.Annotations
	}
	f.runs = append(f.runs, run)
	out := runJSON(run)
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

// addForeignRun records a run of the same name owned by another App.
func (f *fakeGitHub) addForeignRun(sha, name string, app int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	run := &fakeRun{CheckRun: CheckRun{Name: name, HeadSHA: sha, Status: "completed", Conclusion: "neutral",
		Output: &CheckOutput{Title: "theirs", Summary: "theirs"}}, appID: app}
	run.ID = int64(len(f.runs) + 1)
	f.runs = append(f.runs, run)
}

func (f *fakeGitHub) updateRun(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.Atoi(r.PathValue("id"))
	var in CheckRun
	json.NewDecoder(r.Body).Decode(&in)
	if in.Output != nil && len(in.Output.Annotations) > 50 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Only 50 annotations are allowed per request"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if id < 1 || id > len(f.runs) {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	run := f.runs[id-1]
	if run.appID != testAppIDNum {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": fmt.Sprintf(
			"Invalid app_id `%d` - check run can only be modified by the GitHub App that created it.", testAppIDNum)})
		return
	}
	run.updates++
	if in.Status != "" {
		run.Status = in.Status
	}
	if in.Conclusion != "" {
		run.Conclusion = in.Conclusion
	}
	if in.Output != nil {
		run.Output = &CheckOutput{Title: in.Output.Title, Summary: in.Output.Summary}
		run.annotations = append(run.annotations, in.Output.Annotations...)
	}
	writeJSON(w, http.StatusOK, runJSON(run))
}

func (f *fakeGitHub) createStatus(w http.ResponseWriter, r *http.Request) {
	var in Status
	json.NewDecoder(r.Body).Decode(&in)
	f.mu.Lock()
	f.statuses[r.PathValue("sha")] = append(f.statuses[r.PathValue("sha")], in)
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, in)
}

func (f *fakeGitHub) setPR(pr PullRequest) {
	now := f.now()
	f.mu.Lock()
	f.prs[pr.Number] = &pr
	f.tick++ // distinct update times, in the order of updates
	f.updated[pr.Number] = now.Add(time.Duration(f.tick) * time.Minute)
	f.mu.Unlock()
}

func (f *fakeGitHub) pr(n int) PullRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.prs[n]
}

func (f *fakeGitHub) runsFor(sha string) []*fakeRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fakeRun
	for _, r := range f.runs {
		if r.HeadSHA == sha {
			out = append(out, r)
		}
	}
	return out
}

// env is one promptvault instance against the fake GitHub and git server:
// a real index file, a real mirror, the real receiver and worker.
type env struct {
	t     testing.TB
	ctx   context.Context
	work  *gittest.Repo
	git   *gitServer
	gh    *fakeGitHub
	db    *index.DB
	repo  *gitstore.Repo
	w     *Worker
	rc    *Receiver
	srv   *httptest.Server
	nextN int
	seq   int
	clock *fakeClock
	// noPush: merge leaves the result in the working repository (a test
	// pushes many refs at once).
	noPush bool
}

// fakeClock is the worker's and the fake GitHub's clock: retries and
// rate-limit pauses are due when a test advances it, never after real
// waiting.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type envMode int

const (
	modeApp envMode = iota
	modeToken
	modeSecretOnly
)

func newEnv(t testing.TB, mode envMode) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, work: gittest.New(t), git: newGitServer(t), gh: newFakeGitHub(t), clock: newFakeClock()}
	e.gh.clock = e.clock
	e.work.Write("prompts/greet.yaml", gittest.Prompt("Hello"))
	e.work.Write("prompts/other.yaml", gittest.Prompt("Other"))
	e.work.Write("README.md", "prompts\n")
	e.work.Commit("initial prompts")
	e.pushMain()
	e.start(mode)
	e.nextN = 1
	return e
}

// fork is a second promptvault instance (its own index and mirror) on the
// same repository, fake GitHub and clock; it reconciles at once.
func (e *env) fork(mode envMode) *env {
	e.t.Helper()
	f := *e
	f.start(mode)
	return &f
}

// start opens a fresh index, mirror, worker and receiver and reconciles
// (the first sync bootstraps live pointers).
func (e *env) start(mode envMode) {
	t, ctx := e.t, e.ctx
	t.Helper()
	var err error
	dir := t.TempDir()
	if e.db, err = index.Open(ctx, filepath.Join(dir, "index.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	var client *Client
	var app *AppAuth
	var gitAuth func(context.Context) (transport.AuthMethod, error)
	switch mode {
	case modeApp:
		if app, err = NewAppAuth(e.gh.srv.URL, testAppID, e.gh.key, testOwner, testName); err != nil {
			t.Fatal(err)
		}
		client, err = NewClient(e.gh.srv.URL, testOwner, testName, app, true)
	case modeToken:
		e.gh.staticToken = "ghp_test_token"
		client, err = NewClient(e.gh.srv.URL, testOwner, testName, StaticToken("ghp_test_token"), false)
	}
	if err != nil {
		t.Fatal(err)
	}
	if client != nil {
		client.SetClock(e.clock.Now)
		c := client
		gitAuth = func(ctx context.Context) (transport.AuthMethod, error) {
			tok, err := c.Token(ctx)
			if err != nil {
				return nil, err
			}
			return &githttp.BasicAuth{Username: "x-access-token", Password: tok}, nil
		}
	}
	if e.repo, err = gitstore.Open(filepath.Join(dir, "mirror.git"), e.git.URL, gitstore.Options{Auth: gitAuth}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.repo.Close() })
	cfg := index.Config{Branch: "main", PromptsDir: "prompts", AutoPromote: index.AutoMergedPR, Actor: "test"}
	if mode == modeSecretOnly {
		cfg.AutoPromote = index.AutoMergedPR
	}
	e.w, err = NewWorker(Options{DB: e.db, Repo: e.repo, Config: cfg, GitHub: client, App: app,
		Backoff: func(int) time.Duration { return time.Millisecond }, MaxAttempts: 1000, FetchTimeout: 30 * time.Second,
		Now: e.clock.Now, Workers: 4, Repository: testOwner + "/" + testName})
	if err != nil {
		t.Fatal(err)
	}
	if e.rc, err = NewReceiver(ReceiverOptions{DB: e.db, Secret: testSecret, Notify: e.w.Notify,
		Repository: testOwner + "/" + testName}); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.rc)
	t.Cleanup(e.srv.Close)
	if err := e.w.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
}

func (e *env) pushMain() {
	e.t.Helper()
	e.work.Git("push", "-q", "-f", e.git.Bare, "main:refs/heads/main")
}

// branch starts a branch from main with the given file contents committed.
func (e *env) branch(name string, files map[string]string) string {
	e.t.Helper()
	e.work.Git("checkout", "-q", "-B", name, "main")
	for p, c := range files {
		if c == "" {
			e.work.Remove(p)
		} else {
			e.work.Write(p, c)
		}
	}
	sha := e.work.Commit("change on " + name)
	e.work.Git("checkout", "-q", "main")
	return sha
}

// openPR pushes a branch's head to refs/pull/N/head (and, unless fork, to
// refs/heads/<branch>) and records the pull request in the fake API.
func (e *env) openPR(branch string, fork bool, labels ...string) PullRequest {
	e.t.Helper()
	n := e.nextN
	e.nextN++
	head := e.work.Git("rev-parse", branch)
	e.work.Git("push", "-q", "-f", e.git.Bare, fmt.Sprintf("%s:refs/pull/%d/head", branch, n))
	if !fork {
		e.work.Git("push", "-q", "-f", e.git.Bare, branch+":refs/heads/"+branch)
	}
	pr := PullRequest{Number: n, State: "open", Title: "change " + branch,
		Head: PRRef{Ref: branch, SHA: head}, Base: PRRef{Ref: "main", SHA: e.work.Git("rev-parse", "main")}}
	if fork {
		pr.Head.Repo = &struct {
			FullName string `json:"full_name"`
		}{"contributor/prompts"}
	}
	for _, l := range labels {
		pr.Labels = append(pr.Labels, Label{Name: l})
	}
	e.gh.setPR(pr)
	return pr
}

// merge merges pull request n into main the way GitHub's method does and
// records it merged; it returns the merge commit SHA.
func (e *env) merge(n int, method string) string {
	e.t.Helper()
	pr := e.gh.pr(n)
	e.work.Clock = e.work.Clock.Add(time.Minute)
	switch method {
	case "merge":
		e.work.Git("merge", "-q", "--no-ff", "-m", fmt.Sprintf("Merge pull request #%d", n), pr.Head.SHA)
	case "squash":
		e.work.Git("merge", "-q", "--squash", pr.Head.SHA)
		e.work.Commit(fmt.Sprintf("%s (#%d)", pr.Title, n))
	case "rebase":
		e.work.Git("checkout", "-q", "-B", "rebase-tmp", pr.Head.SHA)
		e.work.Git("rebase", "-q", "--force-rebase", "main")
		e.work.Git("checkout", "-q", "main")
		e.work.Git("merge", "-q", "--ff-only", "rebase-tmp")
	default:
		e.t.Fatalf("merge method %q", method)
	}
	mc := e.work.Head()
	if !e.noPush {
		e.pushMain()
	}
	now := time.Now().UTC().Truncate(time.Second)
	pr.State, pr.Merged, pr.MergedAt, pr.MergeCommitSHA = "closed", true, &now, mc
	e.gh.setPR(pr)
	return mc
}

// commitMain commits files directly on main and pushes.
func (e *env) commitMain(files map[string]string) string {
	e.t.Helper()
	e.work.Git("checkout", "-q", "main")
	for p, c := range files {
		e.work.Write(p, c)
	}
	sha := e.work.Commit("direct change")
	e.pushMain()
	return sha
}

// prPayload is a pull_request delivery body in GitHub's shape.
func prPayload(action string, pr PullRequest) map[string]any {
	return map[string]any{"action": action, "number": pr.Number, "pull_request": prJSON(pr, true),
		"repository": map[string]any{"full_name": testOwner + "/" + testName, "default_branch": "main"},
		"sender":     map[string]any{"login": "octocat"}}
}

// post signs and posts a delivery; it returns the status and body.
func (e *env) post(event, guid string, body []byte, contentType string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", guid)
	req.Header.Set("X-GitHub-Hook-ID", "123")
	req.Header.Set("User-Agent", "GitHub-Hookshot/test")
	req.Header.Set("X-Hub-Signature-256", Sign([]byte(testSecret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// deliver posts a JSON delivery (must be accepted) and returns its GUID.
func (e *env) deliver(event string, payload any) string {
	e.t.Helper()
	body := completePayload(e.t, event, payload)
	e.seq++
	guid := fmt.Sprintf("guid-%d-%d", time.Now().UnixNano(), e.seq)
	if code, b := e.post(event, guid, body, "application/json"); code != http.StatusAccepted {
		e.t.Fatalf("deliver %s: %d %s", event, code, b)
	}
	return guid
}

// drain processes every ready delivery.
func (e *env) drain() {
	e.t.Helper()
	if _, err := e.w.Drain(e.ctx); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) delivery(guid string) index.Delivery {
	e.t.Helper()
	var d index.Delivery
	err := e.db.View(e.ctx, func(tx *index.Tx) error {
		var err error
		d, err = tx.Delivery(e.ctx, guid)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) pointer(key, env string) (index.Pointer, bool) {
	e.t.Helper()
	var p index.Pointer
	var ok bool
	err := e.db.View(e.ctx, func(tx *index.Tx) error {
		var err error
		p, ok, err = tx.Pointer(e.ctx, key, env)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return p, ok
}

// live is key's live label ("" when unset).
func (e *env) live(key string) string {
	e.t.Helper()
	p, ok := e.pointer(key, index.EnvLive)
	if !ok {
		return ""
	}
	return p.Label()
}

// liveContent is the content live serves for key.
func (e *env) liveContent(key string) string {
	e.t.Helper()
	p, ok := e.pointer(key, index.EnvLive)
	if !ok {
		return ""
	}
	b, err := e.repo.Blob(p.BlobSHA)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

func (e *env) audit(action string) []index.AuditEntry {
	e.t.Helper()
	var out []index.AuditEntry
	err := e.db.View(e.ctx, func(tx *index.Tx) error {
		all, err := tx.AuditLog(e.ctx, 0, 1000)
		for _, a := range all {
			if a.Action == action {
				out = append(out, a)
			}
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) count(state string) int {
	e.t.Helper()
	var n int
	err := e.db.View(e.ctx, func(tx *index.Tx) error {
		var err error
		n, err = tx.CountDeliveries(e.ctx, state)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
