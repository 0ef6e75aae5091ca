package githubtest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
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
)

// Options configure a fake GitHub.
type Options struct {
	Owner, Name string // the repository; default acme/prompts
	Branch      string // its default branch; default main
	// Token is what API calls (Authorization: Bearer or token) and Git
	// (the basic-auth password) must carry; "" takes any.
	Token string
	// User is the login that opens and merges pull requests made through
	// the API (the token's user); default octocat.
	User string
}

// GitHub is a running fake. Its exported fields are fixed after New.
type GitHub struct {
	URL    string // web root: http://127.0.0.1:PORT
	APIURL string // URL + "/api/v3/", for --github-api-url
	GitURL string // URL + "/OWNER/NAME.git", for --repo
	Bare   string // the bare repository's directory

	t    testing.TB
	opts Options
	spec *Spec
	srv  *httptest.Server
	api  *http.ServeMux
	cgi  *cgi.Handler

	mu         sync.Mutex // guards what follows, and serializes changes to the repository
	prs        map[int]*pull
	nextNumber int
	statuses   map[string][]map[string]any // commit → statuses created
	calls      []string                    // "METHOD path" of each API call
	refusal    *Refusal
	hookURL    string
	hookSecret string
	deliveries []Delivery
	seq        int64 // ids and update order

	hooks   chan delivery // to the sender, in order
	hooksWG sync.WaitGroup
}

// Refusal is how the fake answers merges it is told to refuse, as GitHub
// does when branch protection blocks one: 405 and a message such as "At
// least 1 approving review is required by reviewers with write access.".
type Refusal struct {
	Status  int
	Message string
}

// Delivery is one webhook delivery the fake sent.
type Delivery struct {
	GUID, Event, Action string
	Status              int    // the receiver's answer; 0 when it could not be sent
	Err                 string // why it could not be sent
}

type delivery struct {
	Delivery
	body []byte
}

type pull struct {
	number               int
	title, body          string
	head, base           string // branch names
	headSHA, baseSHA     string
	state                string // open, closed
	merged               bool
	mergeCommit          string
	mergedBy             string
	created, updated     time.Time
	closedAt, mergedAt   *time.Time
	updateSeq            int64
	labels               []string
	user                 string
	additions, deletions int
}

// PullRequest is a pull request as a test reads it.
type PullRequest struct {
	Number             int
	State, Title, Body string
	Head, Base         string // branch names
	HeadSHA            string
	Merged             bool
	MergeCommitSHA     string
	HTMLURL            string
}

// New starts a fake GitHub with an empty repository (see Commit) and
// stops it when the test ends, after sending the deliveries it queued.
func New(t testing.TB, opts Options) *GitHub {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git CLI not installed")
	}
	if opts.Owner == "" {
		opts.Owner = "acme"
	}
	if opts.Name == "" {
		opts.Name = "prompts"
	}
	if opts.Branch == "" {
		opts.Branch = "main"
	}
	if opts.User == "" {
		opts.User = "octocat"
	}
	root := t.TempDir()
	g := &GitHub{t: t, opts: opts, spec: DefaultSpec(t), prs: map[int]*pull{}, nextNumber: 1,
		statuses: map[string][]map[string]any{}, hooks: make(chan delivery, 1000),
		Bare: filepath.Join(root, opts.Owner, opts.Name+".git")}
	for _, args := range [][]string{
		{"init", "-q", "--bare", "-b", opts.Branch, g.Bare},
		{"-C", g.Bare, "config", "uploadpack.allowAnySHA1InWant", "true"},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	// Read-only over HTTP, as for a token without push rights: changes go
	// through the API (or Commit), which keeps pull request refs and
	// deliveries right.
	g.cgi = &cgi.Handler{Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"}}
	g.routes()
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	g.URL = g.srv.URL
	g.APIURL = g.URL + "/api/v3/"
	g.GitURL = g.URL + "/" + opts.Owner + "/" + opts.Name + ".git"
	g.hooksWG.Add(1)
	go g.sendHooks()
	t.Cleanup(func() {
		g.srv.Close() // no request queues a delivery after this
		close(g.hooks)
		g.hooksWG.Wait()
	})
	return g
}

func (g *GitHub) routes() {
	g.api = http.NewServeMux()
	repo := "/api/v3/repos/{owner}/{repo}/"
	for pattern, h := range map[string]http.HandlerFunc{
		"GET " + repo + "git/ref/{ref...}":         g.getRef,
		"POST " + repo + "git/refs":                g.createRef,
		"GET " + repo + "contents/{path...}":       g.getContents,
		"PUT " + repo + "contents/{path...}":       g.putContents,
		"GET " + repo + "pulls":                    g.listPulls,
		"POST " + repo + "pulls":                   g.createPull,
		"GET " + repo + "pulls/{n}":                g.getPull,
		"PUT " + repo + "pulls/{n}/merge":          g.mergePull,
		"POST " + repo + "statuses/{sha}":          g.createStatus,
		"GET " + repo + "commits/{ref}/check-runs": g.listCheckRuns,
	} {
		g.api.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("owner") != g.opts.Owner || r.PathValue("repo") != g.opts.Name {
				writeJSON(w, http.StatusNotFound, notFound)
				return
			}
			h(w, r)
		})
	}
}

// serve routes the host: API, Git, pull request pages.
func (g *GitHub) serve(w http.ResponseWriter, r *http.Request) {
	repoPath := "/" + g.opts.Owner + "/" + g.opts.Name
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/v3/"):
		g.mu.Lock()
		g.calls = append(g.calls, r.Method+" "+strings.TrimPrefix(r.URL.Path, "/api/v3"))
		g.mu.Unlock()
		if !g.authorized(r) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
			return
		}
		g.spec.Serve(g.t, w, r, g.api)
	case strings.HasPrefix(r.URL.Path, repoPath+".git/"):
		if _, pass, ok := r.BasicAuth(); g.opts.Token != "" && (!ok || pass != g.opts.Token) {
			w.Header().Set("WWW-Authenticate", `Basic realm="GitHub"`)
			http.Error(w, "Invalid username or token.", http.StatusUnauthorized)
			return
		}
		if r.URL.Query().Get("service") == "git-receive-pack" || strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			http.Error(w, "push through the fake's API or Commit", http.StatusForbidden)
			return
		}
		g.cgi.ServeHTTP(w, r)
	case strings.HasPrefix(r.URL.Path, repoPath+"/pull/"):
		g.pullPage(w, r)
	default:
		http.NotFound(w, r)
	}
}

var notFound = map[string]string{"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}

func (g *GitHub) authorized(r *http.Request) bool {
	if g.opts.Token == "" {
		return true
	}
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "token ")
	}
	return ok && tok == g.opts.Token
}

// ---- what tests read and set ----

// SetWebhook makes the fake deliver push and pull_request events to url,
// signed with secret (X-Hub-Signature-256), from now on.
func (g *GitHub) SetWebhook(url, secret string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hookURL, g.hookSecret = url, secret
}

// RefuseMerges makes merges answer with r (nil: merge again).
func (g *GitHub) RefuseMerges(r *Refusal) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refusal = r
}

// PullRequests lists every pull request, by number.
func (g *GitHub) PullRequests() []PullRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []PullRequest
	for _, p := range g.prs {
		out = append(out, PullRequest{Number: p.number, State: p.state, Title: p.title, Body: p.body, Head: p.head, Base: p.base,
			HeadSHA: p.headSHA, Merged: p.merged, MergeCommitSHA: p.mergeCommit, HTMLURL: g.pullURL(p.number)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}

// Deliveries lists the webhook deliveries sent so far, in order.
func (g *GitHub) Deliveries() []Delivery {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Delivery(nil), g.deliveries...)
}

// Statuses lists the commit statuses created for sha.
func (g *GitHub) Statuses(sha string) []map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]map[string]any(nil), g.statuses[sha]...)
}

// Calls lists the API calls so far ("METHOD /repos/…", without /api/v3).
func (g *GitHub) Calls() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.calls...)
}

// Git runs git in the bare repository and returns its trimmed output,
// failing the test on an error. Call it from the test's goroutine.
func (g *GitHub) Git(args ...string) string {
	g.t.Helper()
	out, err := g.git(nil, nil, args...)
	if err != nil {
		g.t.Fatal(err)
	}
	return out
}

// Commit commits files (path → content) on branch, as a person pushing
// would, and delivers the push (and a synchronize to the branch's open
// pull request). It returns the commit.
func (g *GitHub) Commit(branch, message string, files map[string]string) string {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	parent, _ := g.resolve("refs/heads/" + branch)
	change := map[string][]byte{}
	for p, c := range files {
		change[p] = []byte(c)
	}
	who := signature{"Ada Lovelace", "ada@example.com", time.Now()}
	sha, err := g.commitFiles(parent, change, message, who, who)
	if err == nil {
		err = g.moveRef(branch, parent, sha)
	}
	if err != nil {
		g.t.Fatal(err)
	}
	return sha
}

// ---- Git ----

func (g *GitHub) git(stdin []byte, env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), append([]string{"GIT_DIR=" + g.Bare, "GIT_CONFIG_NOSYSTEM=1"}, env...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(out.String()), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// resolve is the commit name points at; ok false when it does not exist.
func (g *GitHub) resolve(name string) (string, bool) {
	sha, err := g.git(nil, nil, "rev-parse", "-q", "--verify", name+"^{commit}")
	return sha, err == nil && sha != ""
}

type signature struct {
	name, email string
	when        time.Time
}

func (s signature) env(role string) []string {
	return []string{"GIT_" + role + "_NAME=" + s.name, "GIT_" + role + "_EMAIL=" + s.email,
		"GIT_" + role + "_DATE=" + s.when.Format(time.RFC3339)}
}

// commitFiles writes a commit on parent ("" for a root commit) that sets
// each file (nil content deletes it). Needs g.mu.
func (g *GitHub) commitFiles(parent string, files map[string][]byte, message string, author, committer signature) (string, error) {
	idx, err := os.CreateTemp("", "fake-github-index-")
	if err != nil {
		return "", err
	}
	idx.Close()
	os.Remove(idx.Name()) // git wants to create it
	defer os.Remove(idx.Name())
	env := []string{"GIT_INDEX_FILE=" + idx.Name()}
	if parent != "" {
		_, err = g.git(nil, env, "read-tree", parent+"^{tree}")
	} else {
		_, err = g.git(nil, env, "read-tree", "--empty")
	}
	if err != nil {
		return "", err
	}
	var info strings.Builder
	for p, content := range files {
		if content == nil {
			fmt.Fprintf(&info, "0 %s\t%s\n", strings.Repeat("0", 40), p)
			continue
		}
		blob, err := g.git(content, nil, "hash-object", "-w", "--stdin")
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&info, "100644 %s\t%s\n", blob, p)
	}
	if _, err := g.git([]byte(info.String()), env, "update-index", "--index-info"); err != nil {
		return "", err
	}
	tree, err := g.git(nil, env, "write-tree")
	if err != nil {
		return "", err
	}
	args := []string{"commit-tree", tree}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	return g.git([]byte(message), append(author.env("AUTHOR"), committer.env("COMMITTER")...), append(args, "-F", "-")...)
}

var errMoved = errors.New("the branch moved")

// moveRef moves branch from old ("" = must not exist) to sha, atomically,
// updates the head of the branch's open pull requests and queues the
// deliveries GitHub would send. Needs g.mu.
func (g *GitHub) moveRef(branch, old, sha string) error {
	if _, err := g.git(nil, nil, "update-ref", "refs/heads/"+branch, sha, old); err != nil {
		return fmt.Errorf("%w: %v", errMoved, err)
	}
	g.queuePush(branch, old, sha)
	for _, p := range g.sortedPulls() {
		if p.state == "open" && p.head == branch && p.headSHA != sha {
			before := p.headSHA
			if err := g.setHead(p, sha); err != nil {
				return err
			}
			g.queuePull("synchronize", p, map[string]any{"before": before, "after": sha})
		}
	}
	return nil
}

// setHead moves a pull request's head and its refs/pull/N/head. Needs g.mu.
func (g *GitHub) setHead(p *pull, sha string) error {
	if _, err := g.git(nil, nil, "update-ref", fmt.Sprintf("refs/pull/%d/head", p.number), sha); err != nil {
		return err
	}
	p.headSHA = sha
	g.touch(p)
	return nil
}

func (g *GitHub) touch(p *pull) {
	g.seq++
	p.updateSeq = g.seq
	p.updated = time.Now().UTC().Truncate(time.Second)
}

func (g *GitHub) sortedPulls() []*pull {
	var out []*pull
	for _, p := range g.prs {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].number < out[j].number })
	return out
}

// ---- JSON as the API answers it ----

func (g *GitHub) repoAPI() string {
	return g.APIURL + "repos/" + g.opts.Owner + "/" + g.opts.Name
}

func (g *GitHub) pullURL(n int) string {
	return fmt.Sprintf("%s/%s/%s/pull/%d", g.URL, g.opts.Owner, g.opts.Name, n)
}

func (g *GitHub) userJSON(login string) map[string]any {
	id := 1
	for _, c := range login {
		id = id*31 + int(c)%1000
	}
	return map[string]any{"login": login, "id": id%1000000 + 1, "node_id": "U_" + login, "type": "User", "site_admin": false,
		"url": g.APIURL + "users/" + login, "html_url": g.URL + "/" + login}
}

func (g *GitHub) repoJSON() map[string]any {
	return map[string]any{"id": 4242, "node_id": "R_fake", "name": g.opts.Name, "full_name": g.opts.Owner + "/" + g.opts.Name,
		"private": false, "owner": g.userJSON(g.opts.Owner), "html_url": g.URL + "/" + g.opts.Owner + "/" + g.opts.Name,
		"url": g.repoAPI(), "clone_url": g.GitURL, "default_branch": g.opts.Branch}
}

func (g *GitHub) refJSON(ref, sha string) map[string]any {
	return map[string]any{"ref": ref, "node_id": "REF_" + sha[:8], "url": g.repoAPI() + "/git/" + ref,
		"object": map[string]any{"type": "commit", "sha": sha, "url": g.repoAPI() + "/git/commits/" + sha}}
}

func stamp(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

// pullJSON is a pull request as GET pulls/{n} (full) or the list answers.
func (g *GitHub) pullJSON(p *pull, full bool) map[string]any {
	labels := []any{}
	for i, l := range p.labels {
		labels = append(labels, map[string]any{"id": i + 1, "name": l, "color": "ededed"})
	}
	branch := func(ref, sha string) map[string]any {
		return map[string]any{"label": g.opts.Owner + ":" + ref, "ref": ref, "sha": sha, "user": g.userJSON(g.opts.Owner), "repo": g.repoJSON()}
	}
	var mergeCommit any
	if p.mergeCommit != "" {
		mergeCommit = p.mergeCommit
	}
	url := fmt.Sprintf("%s/pulls/%d", g.repoAPI(), p.number)
	m := map[string]any{
		"url": url, "id": 1000 + p.number, "node_id": fmt.Sprintf("PR_%d", p.number), "number": p.number,
		"html_url": g.pullURL(p.number), "diff_url": g.pullURL(p.number) + ".diff", "patch_url": g.pullURL(p.number) + ".patch",
		"issue_url": fmt.Sprintf("%s/issues/%d", g.repoAPI(), p.number), "state": p.state, "locked": false, "title": p.title,
		"body": p.body, "user": g.userJSON(p.user), "labels": labels, "draft": false,
		"created_at": p.created.Format(time.RFC3339), "updated_at": p.updated.Format(time.RFC3339),
		"closed_at": stamp(p.closedAt), "merged_at": stamp(p.mergedAt), "merge_commit_sha": mergeCommit,
		"head": branch(p.head, p.headSHA), "base": branch(p.base, p.baseSHA), "author_association": "MEMBER",
	}
	if full {
		m["merged"] = p.merged
		m["mergeable"] = nil
		m["merged_by"] = nil
		if p.mergedBy != "" {
			m["merged_by"] = g.userJSON(p.mergedBy)
		}
		m["commits"], m["additions"], m["deletions"], m["changed_files"] = 1, p.additions, p.deletions, 1
	}
	return m
}

// commitJSON is a commit as the contents API's answer carries it.
func (g *GitHub) commitJSON(sha string) (map[string]any, error) {
	out, err := g.git(nil, nil, "show", "-s", "--format=%T%n%P%n%an%n%ae%n%aI%n%cn%n%ce%n%cI%n%B", sha)
	if err != nil {
		return nil, err
	}
	f := strings.SplitN(out, "\n", 9)
	for len(f) < 9 {
		f = append(f, "")
	}
	parents := []any{}
	for _, p := range strings.Fields(f[1]) {
		parents = append(parents, map[string]any{"sha": p, "url": g.repoAPI() + "/git/commits/" + p,
			"html_url": g.URL + "/" + g.opts.Owner + "/" + g.opts.Name + "/commit/" + p})
	}
	return map[string]any{"sha": sha, "node_id": "C_" + sha[:8], "url": g.repoAPI() + "/git/commits/" + sha,
		"html_url":  g.URL + "/" + g.opts.Owner + "/" + g.opts.Name + "/commit/" + sha,
		"author":    map[string]any{"name": f[2], "email": f[3], "date": f[4]},
		"committer": map[string]any{"name": f[5], "email": f[6], "date": f[7]},
		"message":   strings.TrimSpace(f[8]), "tree": map[string]any{"sha": f[0], "url": g.repoAPI() + "/git/trees/" + f[0]},
		"parents":      parents,
		"verification": map[string]any{"verified": false, "reason": "unsigned", "signature": nil, "payload": nil, "verified_at": nil},
	}, nil
}

// fileJSON is a file as the contents API describes it; withContent adds
// its base64 text, wrapped at 60 characters as GitHub wraps it.
func (g *GitHub) fileJSON(ref, path, blob string, withContent bool) (map[string]any, error) {
	size, err := g.git(nil, nil, "cat-file", "-s", blob)
	if err != nil {
		return nil, err
	}
	n, _ := strconv.Atoi(size)
	self := g.repoAPI() + "/contents/" + path + "?ref=" + ref
	html := g.URL + "/" + g.opts.Owner + "/" + g.opts.Name + "/blob/" + ref + "/" + path
	m := map[string]any{"type": "file", "name": filepath.Base(path), "path": path, "sha": blob, "size": n,
		"url": self, "git_url": g.repoAPI() + "/git/blobs/" + blob, "html_url": html,
		"download_url": g.URL + "/" + g.opts.Owner + "/" + g.opts.Name + "/raw/" + ref + "/" + path,
		"_links":       map[string]any{"self": self, "git": g.repoAPI() + "/git/blobs/" + blob, "html": html}}
	if withContent {
		raw, err := exec.Command("git", "--git-dir", g.Bare, "cat-file", "blob", blob).Output()
		if err != nil {
			return nil, err
		}
		enc := base64.StdEncoding.EncodeToString(raw)
		var wrapped strings.Builder
		for len(enc) > 60 {
			wrapped.WriteString(enc[:60] + "\n")
			enc = enc[60:]
		}
		wrapped.WriteString(enc + "\n")
		m["content"], m["encoding"] = wrapped.String(), "base64"
	}
	return m, nil
}

// ---- REST operations ----

func (g *GitHub) fail(w http.ResponseWriter, err error) {
	g.t.Errorf("fake GitHub: %v", err)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "Server Error"})
}

func validation(w http.ResponseWriter, message string, errs ...map[string]any) {
	body := map[string]any{"message": message, "documentation_url": "https://docs.github.com/rest"}
	if len(errs) > 0 {
		body["errors"] = errs
	}
	writeJSON(w, http.StatusUnprocessableEntity, body)
}

func (g *GitHub) getRef(w http.ResponseWriter, r *http.Request) {
	ref := "refs/" + r.PathValue("ref")
	g.mu.Lock()
	defer g.mu.Unlock()
	sha, ok := g.resolve(ref)
	if !ok || !strings.HasPrefix(ref, "refs/heads/") && !strings.HasPrefix(ref, "refs/tags/") {
		writeJSON(w, http.StatusNotFound, notFound)
		return
	}
	writeJSON(w, http.StatusOK, g.refJSON(ref, sha))
}

func (g *GitHub) createRef(w http.ResponseWriter, r *http.Request) {
	var in struct{ Ref, SHA string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		validation(w, "Problems parsing JSON")
		return
	}
	branch, ok := strings.CutPrefix(in.Ref, "refs/heads/")
	if !ok || branch == "" {
		validation(w, "Reference name is invalid (only refs/heads/ here)")
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.resolve(in.SHA); !ok || len(in.SHA) != 40 {
		validation(w, "Object does not exist")
		return
	}
	if _, exists := g.resolve(in.Ref); exists {
		validation(w, "Reference already exists")
		return
	}
	if err := g.moveRef(branch, "", in.SHA); err != nil {
		validation(w, "Reference already exists")
		return
	}
	writeJSON(w, http.StatusCreated, g.refJSON(in.Ref, in.SHA))
}

// blobAt is the blob at path in ref ("" when there is none).
func (g *GitHub) blobAt(ref, path string) string {
	sha, err := g.git(nil, nil, "rev-parse", "-q", "--verify", ref+":"+path)
	if err != nil {
		return ""
	}
	if t, _ := g.git(nil, nil, "cat-file", "-t", sha); t != "blob" {
		return ""
	}
	return sha
}

func (g *GitHub) getContents(w http.ResponseWriter, r *http.Request) {
	ref := r.URL.Query().Get("ref")
	if ref == "" {
		ref = g.opts.Branch
	}
	path := r.PathValue("path")
	g.mu.Lock()
	defer g.mu.Unlock()
	commit, ok := g.resolve(ref)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "No commit found for the ref " + ref, "documentation_url": "https://docs.github.com/rest/repos/contents", "status": "404"})
		return
	}
	blob := g.blobAt(commit, path)
	if blob == "" {
		writeJSON(w, http.StatusNotFound, notFound)
		return
	}
	m, err := g.fileJSON(ref, path, blob, true)
	if err != nil {
		g.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

type person struct {
	Name, Email string
	Date        string
}

func (g *GitHub) putContents(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Message, Content, SHA, Branch string
		Author, Committer             *person
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		validation(w, "Problems parsing JSON")
		return
	}
	content, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(in.Content, "\n", ""))
	if err != nil {
		validation(w, "content is not valid Base64")
		return
	}
	path := r.PathValue("path")
	if in.Branch == "" {
		in.Branch = g.opts.Branch
	}
	now := time.Now()
	committer := signature{"GitHub", "noreply@github.com", now}
	if in.Committer != nil {
		committer = signature{in.Committer.Name, in.Committer.Email, now}
	}
	author := committer
	if in.Author != nil {
		author = signature{in.Author.Name, in.Author.Email, now}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	parent, ok := g.resolve("refs/heads/" + in.Branch)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Branch " + in.Branch + " not found", "documentation_url": "https://docs.github.com/rest/repos/contents", "status": "404"})
		return
	}
	cur := g.blobAt(parent, path)
	switch {
	case cur != "" && in.SHA == "":
		validation(w, "Invalid request.\n\n\"sha\" wasn't supplied.")
		return
	case cur != in.SHA:
		// GitHub's answer when the file changed since the caller read it.
		writeJSON(w, http.StatusConflict, map[string]any{"message": path + " does not match " + in.SHA,
			"documentation_url": "https://docs.github.com/rest/repos/contents#create-or-update-file-contents", "status": "409"})
		return
	}
	sha, err := g.commitFiles(parent, map[string][]byte{path: content}, in.Message, author, committer)
	if err != nil {
		g.fail(w, err)
		return
	}
	if err := g.moveRef(in.Branch, parent, sha); err != nil {
		writeJSON(w, http.StatusConflict, map[string]any{"message": "Branch " + in.Branch + " moved; try again", "status": "409"})
		return
	}
	file, err := g.fileJSON(in.Branch, path, g.blobAt(sha, path), false)
	if err != nil {
		g.fail(w, err)
		return
	}
	commit, err := g.commitJSON(sha)
	if err != nil {
		g.fail(w, err)
		return
	}
	status := http.StatusOK
	if cur == "" {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]any{"content": file, "commit": commit})
}

// listPulls filters by state (default open), head (OWNER:BRANCH) and base,
// sorts (created by default, or updated; desc unless asked) and pages as
// GitHub does (Page).
func (g *GitHub) listPulls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	if state != "open" && state != "closed" && state != "all" {
		validation(w, "Validation Failed", map[string]any{"resource": "Search", "field": "state", "code": "invalid"})
		return
	}
	head, base := q.Get("head"), q.Get("base")
	g.mu.Lock()
	var match []*pull
	for _, p := range g.sortedPulls() {
		if (state == "all" || p.state == state) && (base == "" || p.base == base) &&
			(head == "" || head == g.opts.Owner+":"+p.head) {
			match = append(match, p)
		}
	}
	desc := q.Get("direction") != "asc"
	less := func(a, b *pull) bool { return a.number < b.number }
	if q.Get("sort") == "updated" {
		less = func(a, b *pull) bool { return a.updateSeq < b.updateSeq }
		if q.Get("direction") == "" {
			desc = false // GitHub: desc only for sort=created (or none)
		}
	}
	sort.SliceStable(match, func(i, j int) bool {
		if desc {
			return less(match[j], match[i])
		}
		return less(match[i], match[j])
	})
	out := []map[string]any{}
	lo, hi := Page(w, r, len(match))
	for _, p := range match[lo:hi] {
		out = append(out, g.pullJSON(p, false))
	}
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// Page pages a list of total items as GitHub does: per_page (default 30,
// at most 100) and page (from 1) from r's query, and a Link header naming
// the next and last pages while there are more. It returns the bounds of
// the page's items.
func Page(w http.ResponseWriter, r *http.Request, total int) (lo, hi int) {
	q := r.URL.Query()
	perPage, page := 30, 1
	if v, err := strconv.Atoi(q.Get("per_page")); err == nil && v > 0 {
		perPage = min(v, 100)
	}
	if v, err := strconv.Atoi(q.Get("page")); err == nil && v > 0 {
		page = v
	}
	last := max((total+perPage-1)/perPage, 1)
	link := func(p int, rel string) string {
		u := *r.URL
		u.Scheme, u.Host = "http", r.Host
		v := u.Query()
		v.Set("page", strconv.Itoa(p))
		v.Set("per_page", strconv.Itoa(perPage))
		u.RawQuery = v.Encode()
		return fmt.Sprintf("<%s>; rel=%q", u.String(), rel)
	}
	if page < last {
		w.Header().Set("Link", link(page+1, "next")+", "+link(last, "last"))
	}
	lo = min((page-1)*perPage, total)
	return lo, min(lo+perPage, total)
}

func (g *GitHub) createPull(w http.ResponseWriter, r *http.Request) {
	var in struct{ Title, Head, Base, Body string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		validation(w, "Problems parsing JSON")
		return
	}
	head := in.Head
	if owner, branch, ok := strings.Cut(in.Head, ":"); ok {
		if owner != g.opts.Owner {
			validation(w, "Validation Failed", map[string]any{"resource": "PullRequest", "field": "head", "code": "invalid"})
			return
		}
		head = branch
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	headSHA, ok := g.resolve("refs/heads/" + head)
	if !ok {
		validation(w, "Validation Failed", map[string]any{"resource": "PullRequest", "field": "head", "code": "invalid"})
		return
	}
	baseSHA, ok := g.resolve("refs/heads/" + in.Base)
	if !ok {
		validation(w, "Validation Failed", map[string]any{"resource": "PullRequest", "field": "base", "code": "invalid"})
		return
	}
	for _, p := range g.prs {
		if p.state == "open" && p.head == head && p.base == in.Base {
			validation(w, "Validation Failed", map[string]any{"resource": "PullRequest", "code": "custom",
				"message": fmt.Sprintf("A pull request already exists for %s:%s.", g.opts.Owner, head)})
			return
		}
	}
	if _, err := g.git(nil, nil, "merge-base", "--is-ancestor", headSHA, baseSHA); err == nil {
		validation(w, "Validation Failed", map[string]any{"resource": "PullRequest", "code": "custom",
			"message": fmt.Sprintf("No commits between %s and %s", in.Base, head)})
		return
	}
	now := time.Now().UTC().Truncate(time.Second)
	p := &pull{number: g.nextNumber, title: in.Title, body: in.Body, head: head, base: in.Base, baseSHA: baseSHA,
		state: "open", created: now, user: g.opts.User}
	g.nextNumber++
	if err := g.setHead(p, headSHA); err != nil {
		g.fail(w, err)
		return
	}
	g.prs[p.number] = p
	g.queuePull("opened", p, nil)
	writeJSON(w, http.StatusCreated, g.pullJSON(p, true))
}

func (g *GitHub) pullOf(w http.ResponseWriter, r *http.Request) *pull {
	n, _ := strconv.Atoi(r.PathValue("n"))
	p := g.prs[n]
	if p == nil {
		writeJSON(w, http.StatusNotFound, notFound)
	}
	return p
}

func (g *GitHub) getPull(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p := g.pullOf(w, r); p != nil {
		writeJSON(w, http.StatusOK, g.pullJSON(p, true))
	}
}

// mergePull merges for real: merge_method merge (default) makes a merge
// commit of base and head, squash one commit on base with head's tree;
// either only when Git merges the two cleanly (else 405, as GitHub
// answers a pull request that is not mergeable).
func (g *GitHub) mergePull(w http.ResponseWriter, r *http.Request) {
	var in struct {
		CommitTitle   string `json:"commit_title"`
		CommitMessage string `json:"commit_message"`
		SHA           string `json:"sha"`
		MergeMethod   string `json:"merge_method"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			validation(w, "Problems parsing JSON")
			return
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.pullOf(w, r)
	if p == nil {
		return
	}
	notMergeable := func(msg string) {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"message": msg, "documentation_url": "https://docs.github.com/rest/pulls/pulls#merge-a-pull-request"})
	}
	switch {
	case p.state != "open":
		notMergeable("Pull Request is not mergeable")
		return
	case in.SHA != "" && in.SHA != p.headSHA:
		writeJSON(w, http.StatusConflict, map[string]any{"message": "Head branch was modified. Review and try the merge again.",
			"documentation_url": "https://docs.github.com/rest/pulls/pulls#merge-a-pull-request"})
		return
	case g.refusal != nil:
		writeJSON(w, g.refusal.Status, map[string]any{"message": g.refusal.Message,
			"documentation_url": "https://docs.github.com/articles/about-protected-branches"})
		return
	case in.MergeMethod == "rebase":
		notMergeable("Rebase merges are not allowed on this repository.")
		return
	}
	base, ok := g.resolve("refs/heads/" + p.base)
	if !ok {
		notMergeable("Pull Request is not mergeable")
		return
	}
	tree, err := g.git(nil, nil, "merge-tree", "--write-tree", "--no-messages", base, p.headSHA)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 1 { // conflicts
			notMergeable("Pull Request is not mergeable")
			return
		}
		g.fail(w, err)
		return
	}
	tree, _, _ = strings.Cut(tree, "\n")
	title := in.CommitTitle
	if title == "" {
		title = fmt.Sprintf("Merge pull request #%d from %s/%s", p.number, g.opts.Owner, p.head)
	}
	msg := in.CommitMessage
	if msg == "" {
		msg = p.title
	}
	now := time.Now()
	merger := signature{g.opts.User, g.opts.User + "@users.noreply.github.com", now}
	args := []string{"commit-tree", tree, "-p", base}
	if in.MergeMethod != "squash" {
		args = append(args, "-p", p.headSHA)
	}
	sha, err := g.git([]byte(title+"\n\n"+msg+"\n"), append(merger.env("AUTHOR"), signature{"GitHub", "noreply@github.com", now}.env("COMMITTER")...), append(args, "-F", "-")...)
	if err != nil {
		g.fail(w, err)
		return
	}
	if err := g.moveRef(p.base, base, sha); err != nil {
		notMergeable("Base branch was modified. Review and try the merge again.")
		return
	}
	at := now.UTC().Truncate(time.Second)
	p.state, p.merged, p.mergeCommit, p.mergedBy, p.closedAt, p.mergedAt = "closed", true, sha, g.opts.User, &at, &at
	g.touch(p)
	g.queuePull("closed", p, nil)
	writeJSON(w, http.StatusOK, map[string]any{"sha": sha, "merged": true, "message": "Pull Request successfully merged"})
}

func (g *GitHub) createStatus(w http.ResponseWriter, r *http.Request) {
	var in map[string]any
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		validation(w, "Problems parsing JSON")
		return
	}
	sha := r.PathValue("sha")
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.resolve(sha); !ok {
		validation(w, "No commit found for SHA: "+sha)
		return
	}
	g.seq++
	st := map[string]any{"id": g.seq, "node_id": fmt.Sprintf("S_%d", g.seq), "url": g.repoAPI() + "/statuses/" + sha,
		"state": in["state"], "description": in["description"], "target_url": in["target_url"], "context": in["context"],
		"created_at": time.Now().UTC().Format(time.RFC3339), "updated_at": time.Now().UTC().Format(time.RFC3339),
		"creator": g.userJSON(g.opts.User)}
	if st["context"] == nil {
		st["context"] = "default"
	}
	g.statuses[sha] = append(g.statuses[sha], st)
	writeJSON(w, http.StatusCreated, st)
}

// listCheckRuns answers that a commit has none: the fake has no Apps.
func (g *GitHub) listCheckRuns(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"total_count": 0, "check_runs": []any{}})
}

// pullPage is the pull request's page, for a person following the link.
func (g *GitHub) pullPage(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"+g.opts.Owner+"/"+g.opts.Name+"/pull/"))
	g.mu.Lock()
	p := g.prs[n]
	var title, state string
	if p != nil {
		title, state = p.title, p.state
	}
	g.mu.Unlock()
	if p == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!doctype html><title>%s · Pull Request #%d</title><h1>%s #%d</h1><p>%s</p>",
		html.EscapeString(title), n, html.EscapeString(title), n, state)
}

// ---- webhook deliveries ----

// queuePull queues a pull_request delivery. Needs g.mu.
func (g *GitHub) queuePull(action string, p *pull, extra map[string]any) {
	payload := map[string]any{"action": action, "number": p.number, "pull_request": g.pullJSON(p, true),
		"repository": g.repoJSON(), "sender": g.userJSON(g.opts.User)}
	for k, v := range extra {
		payload[k] = v
	}
	g.queue("pull_request", action, payload)
}

// queuePush queues the push delivery of branch moving from before ("" for
// a new branch) to after, listing its new commits. Needs g.mu.
func (g *GitHub) queuePush(branch, before, after string) {
	zero := strings.Repeat("0", 40)
	rng := after
	if before != "" {
		rng = before + ".." + after
	}
	list, _ := g.git(nil, nil, "rev-list", "--reverse", "--max-count=20", rng)
	commits := []any{}
	var head any
	for _, sha := range strings.Fields(list) {
		c := g.pushCommit(sha)
		commits = append(commits, c)
		head = c
	}
	if head == nil {
		head = g.pushCommit(after)
	}
	if before == "" {
		before = zero
	}
	payload := map[string]any{"ref": "refs/heads/" + branch, "before": before, "after": after,
		"created": before == zero, "deleted": false, "forced": false, "base_ref": nil,
		"compare": fmt.Sprintf("%s/%s/%s/compare/%.12s...%.12s", g.URL, g.opts.Owner, g.opts.Name, before, after),
		"commits": commits, "head_commit": head, "repository": g.repoJSON(),
		"pusher": map[string]any{"name": g.opts.User, "email": g.opts.User + "@users.noreply.github.com"},
		"sender": g.userJSON(g.opts.User)}
	g.queue("push", "", payload)
}

// pushCommit is one commit as a push payload lists it, with the files it
// added, removed and modified against its first parent.
func (g *GitHub) pushCommit(sha string) map[string]any {
	out, _ := g.git(nil, nil, "show", "-s", "--format=%T%n%an%n%ae%n%cn%n%ce%n%cI%n%B", sha)
	f := strings.SplitN(out, "\n", 7)
	for len(f) < 7 {
		f = append(f, "")
	}
	changes, _ := g.git(nil, nil, "diff-tree", "-r", "--root", "--no-commit-id", "--name-status", "-m", "--first-parent", sha)
	added, removed, modified := []any{}, []any{}, []any{}
	for _, line := range strings.Split(changes, "\n") {
		st, path, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		switch st[:1] {
		case "A":
			added = append(added, path)
		case "D":
			removed = append(removed, path)
		default:
			modified = append(modified, path)
		}
	}
	return map[string]any{"id": sha, "tree_id": f[0], "distinct": true, "message": strings.TrimSpace(f[6]), "timestamp": f[5],
		"url":    g.URL + "/" + g.opts.Owner + "/" + g.opts.Name + "/commit/" + sha,
		"author": map[string]any{"name": f[1], "email": f[2]}, "committer": map[string]any{"name": f[3], "email": f[4]},
		"added": added, "removed": removed, "modified": modified}
}

// queue builds and checks a delivery and hands it to the sender (in
// order). Needs g.mu.
func (g *GitHub) queue(event, action string, payload map[string]any) {
	if g.hookURL == "" {
		return
	}
	body, err := g.spec.Payload(event, payload)
	if err != nil {
		g.t.Errorf("fake GitHub: %v", err)
		return
	}
	id := make([]byte, 16)
	rand.Read(id)
	guid := fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:])
	g.hooks <- delivery{Delivery: Delivery{GUID: guid, Event: event, Action: action}, body: body}
}

// sendHooks posts deliveries in order, one at a time, as GitHub signs
// them, to the URL and secret set when the delivery is sent.
func (g *GitHub) sendHooks() {
	defer g.hooksWG.Done()
	client := &http.Client{Timeout: 10 * time.Second}
	for d := range g.hooks {
		g.mu.Lock()
		url, secret := g.hookURL, g.hookSecret
		g.mu.Unlock()
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(d.body)
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(d.body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", "GitHub-Hookshot/fake")
			req.Header.Set("X-GitHub-Event", d.Event)
			req.Header.Set("X-GitHub-Delivery", d.GUID)
			req.Header.Set("X-GitHub-Hook-ID", "1")
			req.Header.Set("X-GitHub-Hook-Installation-Target-Type", "repository")
			req.Header.Set("X-GitHub-Hook-Installation-Target-ID", "4242")
			req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
			var res *http.Response
			if res, err = client.Do(req); err == nil {
				d.Status = res.StatusCode
				res.Body.Close()
			}
		}
		if err != nil {
			d.Err = err.Error()
		}
		g.mu.Lock()
		g.deliveries = append(g.deliveries, d.Delivery)
		g.mu.Unlock()
	}
}
