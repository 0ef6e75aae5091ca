package githubtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/webhook"
	"github.com/promptvault/promptvault/webhook/githubtest"
)

const token = "ghp_fake_token_for_tests"

// receiver records the deliveries it gets, refusing bad signatures as
// promptvault does.
type receiver struct {
	mu     sync.Mutex
	events []string // "event action" or "push REF"
	srv    *httptest.Server
}

func newReceiver(t *testing.T, secret string) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !webhook.Verify([]byte(secret), r.Header.Get("X-Hub-Signature-256"), body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		ev := r.Header.Get("X-GitHub-Event")
		var p struct {
			Action, Ref string
		}
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.events = append(rc.events, strings.TrimSpace(ev+" "+p.Action+p.Ref))
		rc.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.events...)
}

// waitDeliveries waits until the fake has sent n deliveries and checks
// each was accepted. The limit only keeps a broken build from hanging.
func waitDeliveries(t *testing.T, g *githubtest.GitHub, n int) []githubtest.Delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(g.Deliveries()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries sent, want %d: %+v", len(g.Deliveries()), n, g.Deliveries())
		}
		time.Sleep(5 * time.Millisecond)
	}
	ds := g.Deliveries()
	for _, d := range ds {
		if d.Status != http.StatusAccepted {
			t.Errorf("delivery %s %s answered %d %s", d.Event, d.Action, d.Status, d.Err)
		}
	}
	return ds
}

func newClient(t *testing.T, g *githubtest.GitHub) *webhook.Client {
	t.Helper()
	c, err := webhook.NewClient(g.APIURL, "acme", "prompts", webhook.StaticToken(token), false)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func draft(content string, expect string) webhook.DraftCommit {
	return webhook.DraftCommit{Branch: "warmer", BaseBranch: "main", Expect: expect, Path: "prompts/greet.yaml",
		Content: []byte(content), Message: "Warmer greeting\n\nFor new users.", AuthorName: "Ada Admin", AuthorEmail: "ada@example.com"}
}

// TestDraftThroughTheAPIIsARealCommit: promptvault's GitHub client commits
// a draft through the fake: the commit is on branch warmer in the bare
// repository with the content sent, the pull request is opened with that
// head (refs/pull/1/head too), a second commit moves the same pull
// request, a stale base is refused, Git over HTTP serves the commits to a
// token holder only, and every change was delivered, signed.
func TestDraftThroughTheAPIIsARealCommit(t *testing.T) {
	g := githubtest.New(t, githubtest.Options{Token: token})
	rc := newReceiver(t, "s3cret")
	main := g.Commit("main", "Add greet", map[string]string{"prompts/greet.yaml": "template: Hello\n", "README.md": "x\n"})
	g.SetWebhook(rc.srv.URL, "s3cret")
	c := newClient(t, g)
	ctx := context.Background()

	sha, n, url, err := c.CommitDraft(ctx, draft("template: Hello there\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || url != g.URL+"/acme/prompts/pull/1" {
		t.Errorf("pull request #%d at %s", n, url)
	}
	if got := g.Git("show", "warmer:prompts/greet.yaml"); got != "template: Hello there" {
		t.Errorf("branch holds %q", got)
	}
	if got := g.Git("rev-parse", "warmer", "warmer^", "refs/pull/1/head"); got != sha+"\n"+main+"\n"+sha {
		t.Errorf("warmer, its parent, the pull request ref = %q; want %s, %s, %s", got, sha, main, sha)
	}
	if got := g.Git("log", "-1", "--format=%an <%ae>|%s", "warmer"); got != "Ada Admin <ada@example.com>|Warmer greeting" {
		t.Errorf("commit: %q", got)
	}
	prs := g.PullRequests()
	if len(prs) != 1 || prs[0].State != "open" || prs[0].Head != "warmer" || prs[0].Base != "main" || prs[0].HeadSHA != sha || prs[0].Title != "Warmer greeting" {
		t.Fatalf("pull requests: %+v", prs)
	}

	// A second commit continues the branch and the same pull request.
	sha2, n2, _, err := c.CommitDraft(ctx, draft("template: Hello there, friend\n", sha))
	if err != nil || n2 != 1 {
		t.Fatalf("second commit: #%d %v", n2, err)
	}
	if got := g.Git("rev-parse", "warmer^", "refs/pull/1/head"); got != sha+"\n"+sha2 {
		t.Errorf("second commit's parent and the pull request ref = %q", got)
	}
	// A base the branch has moved past is refused, and nothing is committed.
	if _, _, _, err := c.CommitDraft(ctx, draft("template: Stale\n", sha)); !errors.Is(err, index.ErrConflict) {
		t.Errorf("stale base: %v", err)
	}
	if got := g.Git("rev-parse", "warmer"); got != sha2 {
		t.Errorf("a refused commit moved warmer to %s", got)
	}

	// Real Git over HTTP, for the token only.
	dir := t.TempDir()
	withToken := strings.Replace(g.GitURL, "http://", "http://x-access-token:"+token+"@", 1)
	if out, err := exec.Command("git", "clone", "-q", "--no-checkout", withToken, filepath.Join(dir, "ok")).CombinedOutput(); err != nil {
		t.Fatalf("clone with the token: %v\n%s", err, out)
	}
	if out, err := exec.Command("git", "-C", filepath.Join(dir, "ok"), "rev-parse", "origin/warmer").Output(); err != nil || strings.TrimSpace(string(out)) != sha2 {
		t.Errorf("clone has origin/warmer %q %v, want %s", out, err, sha2)
	}
	wrong := strings.Replace(g.GitURL, "http://", "http://x-access-token:nope@", 1)
	cmd := exec.Command("git", "clone", "-q", wrong, filepath.Join(dir, "no"))
	cmd.Env = append(cmd.Environ(), "GIT_TERMINAL_PROMPT=0")
	if err := cmd.Run(); err == nil {
		t.Error("a wrong token cloned the repository")
	}

	waitDeliveries(t, g, 5)
	want := "push refs/heads/warmer,pull_request opened,push refs/heads/warmer,pull_request synchronize"
	if got := strings.Join(rc.got(), ","); !strings.HasSuffix(got, want) {
		t.Errorf("received %s, want … %s", got, want)
	}
}

// TestMergeThroughTheAPI: a merge is a real merge commit on main (parents
// main and the head, the draft's content), the pull request is closed as
// merged and the push and closed deliveries go out; a merge branch
// protection refuses, and one Git cannot do cleanly, is refused the way
// GitHub refuses (promptvault's client makes both a conflict with
// GitHub's reason) and leaves main alone.
func TestMergeThroughTheAPI(t *testing.T) {
	g := githubtest.New(t, githubtest.Options{Token: token})
	rc := newReceiver(t, "s3cret")
	g.Commit("main", "Add greet", map[string]string{"prompts/greet.yaml": "template: Hello\n", "prompts/other.yaml": "template: Other\n"})
	g.SetWebhook(rc.srv.URL, "s3cret")
	c := newClient(t, g)
	ctx := context.Background()
	head, _, _, err := c.CommitDraft(ctx, draft("template: Hello there\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	// main moves on in another file: still a clean merge.
	main := g.Commit("main", "Other change", map[string]string{"prompts/other.yaml": "template: Other 2\n"})

	g.RefuseMerges(&githubtest.Refusal{Status: http.StatusMethodNotAllowed, Message: "At least 1 approving review is required by reviewers with write access."})
	if _, err := c.MergeDraft(ctx, "pr-1", ""); !errors.Is(err, index.ErrConflict) || !strings.Contains(err.Error(), "approving review") {
		t.Errorf("refused merge: %v", err)
	}
	if got := g.Git("rev-parse", "main"); got != main {
		t.Errorf("a refused merge moved main")
	}
	g.RefuseMerges(nil)

	sha, err := c.MergeDraft(ctx, "pr-1", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Git("rev-parse", "main", "main^1", "main^2"); got != sha+"\n"+main+"\n"+head {
		t.Errorf("main, its parents = %q; want %s, %s, %s", got, sha, main, head)
	}
	if got := g.Git("show", "main:prompts/greet.yaml") + "|" + g.Git("show", "main:prompts/other.yaml"); got != "template: Hello there|template: Other 2" {
		t.Errorf("merged files: %q", got)
	}
	if pr := g.PullRequests()[0]; pr.State != "closed" || !pr.Merged || pr.MergeCommitSHA != sha {
		t.Errorf("after the merge: %+v", pr)
	}
	if _, err := c.MergeDraft(ctx, "pr-1", ""); !errors.Is(err, index.ErrConflict) {
		t.Errorf("merging a merged pull request: %v", err)
	}

	// A second draft that conflicts with main: not mergeable.
	d := draft("template: Hi\n", "")
	d.Branch = "terse"
	if _, _, _, err := c.CommitDraft(ctx, d); err != nil {
		t.Fatal(err)
	}
	main = g.Commit("main", "Meanwhile on main", map[string]string{"prompts/greet.yaml": "template: Good day\n"})
	if _, err := c.MergeDraft(ctx, "pr-2", ""); !errors.Is(err, index.ErrConflict) || !strings.Contains(err.Error(), "not mergeable") {
		t.Errorf("conflicting merge: %v", err)
	}
	if got := g.Git("rev-parse", "main"); got != main {
		t.Errorf("a conflicting merge moved main")
	}

	ds := waitDeliveries(t, g, 10)
	var closed int
	for _, d := range ds {
		if d.Event == "pull_request" && d.Action == "closed" {
			closed++
		}
	}
	if closed != 1 {
		t.Errorf("%d closed deliveries, want 1: %v", closed, rc.got())
	}
}
