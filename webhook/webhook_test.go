package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/index"
)

// sharedTestdata is ../shared/testdata from the repository root.
const sharedTestdata = "../../shared/testdata"

func TestVerifyGitHubVector(t *testing.T) {
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	secret, body := []byte("It's a Secret to Everybody"), []byte("Hello, World!")
	if got := Sign(secret, body); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	for _, tt := range []struct {
		name, header string
		ok           bool
	}{
		{"github's vector", want, true},
		{"missing", "", false},
		{"sha1 form", "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59", false},
		{"wrong digest", strings.Replace(want, "7571", "7572", 1), false},
		{"truncated", want[:40], false},
		{"not hex", "sha256=zz", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Verify(secret, tt.header, body); got != tt.ok {
				t.Errorf("Verify(%q) = %v, want %v", tt.header, got, tt.ok)
			}
		})
	}
}

// TestFixturesAccepted posts every real delivery unmodified (as JSON and as
// GitHub's form encoding) and processes them in webhook-only mode.
func TestFixturesAccepted(t *testing.T) {
	var files []string
	for _, dir := range []string{"github-payloads", "octokit-payload-examples"} {
		fs, _ := filepath.Glob(filepath.Join(sharedTestdata, dir, "*.json"))
		files = append(files, fs...)
	}
	if len(files) == 0 {
		t.Skipf("no fixtures in %s (the shared test data is not next to this clone)", sharedTestdata)
	}
	e := newEnv(t, modeSecretOnly)
	for i, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		event := strings.SplitN(filepath.Base(f), ".", 2)[0]
		guid := fmt.Sprintf("fixture-%d", i)
		if code, b := e.post(event, guid, body, "application/json"); code != http.StatusAccepted {
			t.Errorf("%s: %d %s", f, code, b)
		}
		if strings.Contains(f, "github-payloads") {
			form := []byte("payload=" + url.QueryEscape(string(body)))
			if code, b := e.post(event, guid+"-form", form, "application/x-www-form-urlencoded"); code != http.StatusAccepted {
				t.Errorf("%s as form: %d %s", f, code, b)
			}
			if d := e.delivery(guid + "-form"); !bytes.Equal(d.Body, body) {
				t.Errorf("%s as form: stored payload differs from the JSON", f)
			}
		}
	}
	e.drain()
	if n := e.count(index.DeliveryPending); n != 0 {
		t.Errorf("%d deliveries still pending", n)
	}
	if n := e.count(index.DeliveryFailed); n != 0 {
		t.Errorf("%d deliveries failed", n)
	}
}

func TestSignatureRejected(t *testing.T) {
	e := newEnv(t, modeSecretOnly)
	body := []byte(`{"zen":"Design for failure.","hook_id":1}`)
	for _, tt := range []struct{ name, sig string }{
		{"missing", ""},
		{"wrong secret", Sign([]byte("not the secret"), body)},
		{"sha1 only", "sha1=" + strings.Repeat("0", 40)},
		{"garbage", "sha256=xyz"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-GitHub-Event", "ping")
			req.Header.Set("X-GitHub-Delivery", "sig-"+tt.name)
			if tt.sig != "" {
				req.Header.Set("X-Hub-Signature-256", tt.sig)
			}
			if tt.name == "sha1 only" {
				req.Header.Del("X-Hub-Signature-256")
				req.Header.Set("X-Hub-Signature", tt.sig)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", resp.StatusCode)
			}
		})
	}
	if n := e.count(""); n != 0 {
		t.Errorf("%d deliveries stored, want none", n)
	}
}

func TestOversizedBody(t *testing.T) {
	e := newEnv(t, modeSecretOnly)
	body := bytes.Repeat([]byte(" "), MaxBody+1)
	code, _ := e.post("push", "too-big", body, "application/json")
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", code)
	}
	if n := e.count(""); n != 0 {
		t.Errorf("%d deliveries stored, want none", n)
	}
}

func TestDuplicateDeliveryProcessedOnce(t *testing.T) {
	e := newEnv(t, modeApp)
	e.branch("f", map[string]string{"prompts/greet.yaml": gittest.Prompt("Hi there")})
	pr := e.openPR("f", false)
	e.merge(pr.Number, "merge")
	body := []byte(mustJSON(t, prPayload("closed", e.gh.pr(pr.Number))))
	for i := range 2 {
		code, b := e.post("pull_request", "same-guid", body, "application/json")
		if code != http.StatusAccepted || strings.Contains(b, `"duplicate":true`) != (i == 1) {
			t.Fatalf("post %d: %d %s", i, code, b)
		}
	}
	e.drain()
	// Redelivered once more after processing: still acknowledged, not redone.
	if code, _ := e.post("pull_request", "same-guid", body, "application/json"); code != http.StatusAccepted {
		t.Fatalf("redelivery: %d", code)
	}
	e.drain()
	if n := e.count(""); n != 1 {
		t.Errorf("%d deliveries stored, want 1", n)
	}
	if got := e.live("greet"); got != "v2" {
		t.Errorf("live greet = %s, want v2", got)
	}
	promotes := 0
	for _, a := range e.audit(index.ActPromote) {
		if a.Key == "greet" {
			promotes++
		}
	}
	if promotes != 1 {
		t.Errorf("%d promote audit rows for greet, want 1", promotes)
	}
}

// TestMergeMethodsPromoteMergeContent: merge, squash and rebase merges all
// promote what the pull request changed, with the content at the merge
// commit, and nothing it did not change.
func TestMergeMethodsPromoteMergeContent(t *testing.T) {
	for _, method := range []string{"merge", "squash", "rebase"} {
		t.Run(method, func(t *testing.T) {
			e := newEnv(t, modeApp)
			e.work.Git("checkout", "-q", "-B", "f", "main")
			e.work.Write("prompts/greet.yaml", gittest.Prompt("Step one"))
			e.work.Commit("one")
			e.work.Write("prompts/greet.yaml", gittest.Prompt("Step two"))
			e.work.Write("prompts/new/item.yaml", gittest.Prompt("Brand new"))
			e.work.Commit("two")
			e.work.Git("checkout", "-q", "main")
			pr := e.openPR("f", false)
			// main moves on meanwhile (a direct commit the PR does not touch).
			e.commitMain(map[string]string{"prompts/other.yaml": gittest.Prompt("Other, edited on main")})
			e.deliver("pull_request", prPayload("opened", pr))
			e.drain()
			mc := e.merge(pr.Number, method)
			e.deliver("pull_request", prPayload("closed", e.gh.pr(pr.Number)))
			e.drain()
			if got, want := e.liveContent("greet"), gittest.Prompt("Step two"); got != want {
				t.Errorf("live greet = %q, want %q", got, want)
			}
			if got := e.liveContent("new/item"); got != gittest.Prompt("Brand new") {
				t.Errorf("live new/item = %q", got)
			}
			if p, _ := e.pointer("greet", index.EnvLive); !e.w.isAncestor(p.Commit, mc) {
				t.Errorf("live greet at %s, not at or before merge %s", p.Commit, mc)
			}
			// other changed on main only: not promoted by this merge.
			if got := e.live("other"); got != "v1" {
				t.Errorf("live other = %s, want v1 (merged-pr mode: direct commits do not promote)", got)
			}
			if got := mergeState(t, e, mc); got != index.MergeApplied {
				t.Errorf("merge state %q, want applied", got)
			}
			if n := len(draftsOf(t, e, "pr:1")); n != 0 {
				t.Errorf("%d drafts left after merge", n)
			}
		})
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := jsonMarshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mergeState(t testing.TB, e *env, sha string) string {
	t.Helper()
	var st string
	err := e.db.View(e.ctx, func(tx *index.Tx) error {
		var err error
		st, _, err = tx.MergeRecorded(e.ctx, sha)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func draftsOf(t testing.TB, e *env, src string) []index.Version {
	t.Helper()
	var out []index.Version
	err := e.db.View(e.ctx, func(tx *index.Tx) error {
		var err error
		out, err = tx.DraftsOf(e.ctx, src)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestForkPullRequest(t *testing.T) {
	e := newEnv(t, modeApp)
	e.branch("contrib", map[string]string{"prompts/greet.yaml": gittest.Prompt("From a fork")})
	pr := e.openPR("contrib", true) // only refs/pull/1/head exists upstream
	e.deliver("pull_request", prPayload("opened", pr))
	e.drain()
	ds := draftsOf(t, e, "pr:1")
	if len(ds) != 1 || ds[0].Key != "greet" || ds[0].Commit != pr.Head.SHA || !ds[0].Valid {
		t.Fatalf("drafts = %+v", ds)
	}
	runs := e.gh.runsFor(pr.Head.SHA)
	if len(runs) != 1 || runs[0].Conclusion != "success" {
		t.Fatalf("check runs = %+v", runs)
	}
	if s := runs[0].Output.Summary; !strings.Contains(s, "`greet` | v2 | v1") || !strings.Contains(s, "`template`") {
		t.Errorf("summary lacks the version and the field diff:\n%s", s)
	}
	mc := e.merge(pr.Number, "squash")
	e.deliver("pull_request", prPayload("closed", e.gh.pr(pr.Number)))
	e.drain()
	if got := e.liveContent("greet"); got != gittest.Prompt("From a fork") {
		t.Errorf("live greet = %q after fork merge %s", got, mc)
	}
}

func TestForcePush(t *testing.T) {
	e := newEnv(t, modeApp)
	before := e.work.Head()
	c1 := e.commitMain(map[string]string{"prompts/greet.yaml": gittest.Prompt("Pushed then removed")})
	e.deliver("push", map[string]any{"ref": "refs/heads/main", "before": before, "after": c1, "forced": false,
		"created": false, "deleted": false, "commits": []any{}})
	e.drain()
	e.work.Git("reset", "-q", "--hard", before)
	c2 := e.commitMain(map[string]string{"prompts/greet.yaml": gittest.Prompt("After force push")})
	g := e.deliver("push", map[string]any{"ref": "refs/heads/main", "before": c1, "after": c2, "forced": true,
		"created": false, "deleted": false, "commits": []any{}})
	e.drain()
	if d := e.delivery(g); d.State != index.DeliveryDone {
		t.Fatalf("forced push delivery %s: %s", d.State, d.LastError)
	}
	var v2, v3 index.Version
	e.db.View(e.ctx, func(tx *index.Tx) error {
		v2, _ = tx.Version(e.ctx, "greet", "v2")
		v3, _ = tx.Version(e.ctx, "greet", "v3")
		return nil
	})
	if v2.Commit != c1 || v3.Commit != c2 {
		t.Errorf("versions v2 %s v3 %s, want %s (kept after force push) and %s", v2.Commit, v3.Commit, c1, c2)
	}
	// A branch deletion on another branch is acknowledged.
	g = e.deliver("push", map[string]any{"ref": "refs/heads/gone", "before": c2, "after": strings.Repeat("0", 40),
		"deleted": true, "commits": []any{}, "head_commit": nil})
	e.drain()
	if d := e.delivery(g); d.State != index.DeliveryDone {
		t.Errorf("branch deletion delivery %s: %s", d.State, d.LastError)
	}
}

// TestOutOfOrderMerges: a late, older merge is recorded and audited, never
// applied over a newer live.
func TestOutOfOrderMerges(t *testing.T) {
	e := newEnv(t, modeApp)
	e.branch("a", map[string]string{"prompts/greet.yaml": gittest.Prompt("From A")})
	pa := e.openPR("a", false)
	m1 := e.merge(pa.Number, "merge")
	e.branch("b", map[string]string{"prompts/greet.yaml": gittest.Prompt("From B")})
	pb := e.openPR("b", false)
	m2 := e.merge(pb.Number, "merge")
	e.deliver("pull_request", prPayload("closed", e.gh.pr(pb.Number)))
	e.drain()
	e.deliver("pull_request", prPayload("closed", e.gh.pr(pa.Number)))
	e.drain()
	if got := e.liveContent("greet"); got != gittest.Prompt("From B") {
		t.Errorf("live greet = %q, want B's", got)
	}
	if st := mergeState(t, e, m1); st != index.MergeSuperseded {
		t.Errorf("late merge %s state %q, want superseded (recorded, not applied)", m1, st)
	}
	if st := mergeState(t, e, m2); st != index.MergeApplied {
		t.Errorf("merge %s state %q, want applied", m2, st)
	}
	refused := e.audit(index.ActPromotionRefused)
	if len(refused) != 1 || refused[0].Commit != m1 {
		t.Errorf("promotion_refused rows = %+v, want one for %s", refused, m1)
	}
}

func TestStagingAndHoldLabelsReadFromAPI(t *testing.T) {
	e := newEnv(t, modeApp)
	e.branch("s", map[string]string{"prompts/greet.yaml": gittest.Prompt("Staged")})
	pr := e.openPR("s", false, DefaultStagingLabel)
	stale := pr
	stale.Labels = nil // the payload's labels arrived empty
	e.deliver("pull_request", prPayload("labeled", stale))
	e.drain()
	if p, ok := e.pointer("greet", index.EnvStaging); !ok || p.Label() != "draft:pr-1" {
		t.Fatalf("staging = %+v %v, want draft:pr-1", p, ok)
	}
	// Label removed on GitHub; the payload still (stalely) lists it.
	pr.Labels = nil
	e.gh.setPR(pr)
	stale.Labels = []Label{{Name: DefaultStagingLabel}}
	e.deliver("pull_request", prPayload("unlabeled", stale))
	e.drain()
	if p, ok := e.pointer("greet", index.EnvStaging); ok {
		t.Fatalf("staging = %s after the label was removed", p.Label())
	}

	e.branch("h", map[string]string{"prompts/other.yaml": gittest.Prompt("Held")})
	ph := e.openPR("h", false, DefaultHoldLabel)
	mc := e.merge(ph.Number, "merge")
	payload := e.gh.pr(ph.Number)
	payload.Labels = nil
	e.deliver("pull_request", prPayload("closed", payload))
	e.drain()
	if got := e.live("other"); got != "v1" {
		t.Errorf("live other = %s after a held merge, want v1", got)
	}
	if st := mergeState(t, e, mc); st != index.MergeHeld {
		t.Errorf("held merge state %q", st)
	}
	// Reconcile does not promote it later either.
	if err := e.w.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.live("other"); got != "v1" {
		t.Errorf("live other = %s after reconcile, want v1", got)
	}
}

func TestClosedUnmergedEndsDrafts(t *testing.T) {
	e := newEnv(t, modeApp)
	e.branch("x", map[string]string{"prompts/greet.yaml": gittest.Prompt("Abandoned")})
	pr := e.openPR("x", false, DefaultStagingLabel)
	e.deliver("pull_request", prPayload("opened", pr))
	e.drain()
	if _, ok := e.pointer("greet", index.EnvStaging); !ok {
		t.Fatal("staging not set")
	}
	pr.State = "closed"
	e.gh.setPR(pr)
	e.deliver("pull_request", prPayload("closed", pr))
	e.drain()
	if n := len(draftsOf(t, e, "pr:1")); n != 0 {
		t.Errorf("%d drafts after close", n)
	}
	if p, ok := e.pointer("greet", index.EnvStaging); ok {
		t.Errorf("staging still %s", p.Label())
	}
	if got := e.live("greet"); got != "v1" {
		t.Errorf("live = %s", got)
	}
}

// TestDeliveryBeforeObjects: the webhook beats refs/pull/N/head; the
// delivery stays pending and succeeds on a retry.
func TestDeliveryBeforeObjects(t *testing.T) {
	e := newEnv(t, modeApp)
	head := e.branch("late", map[string]string{"prompts/greet.yaml": gittest.Prompt("Late objects")})
	pr := PullRequest{Number: 1, State: "open", Title: "late", Head: PRRef{Ref: "late", SHA: head},
		Base: PRRef{Ref: "main", SHA: e.work.Git("rev-parse", "main")}}
	e.gh.setPR(pr)
	g := e.deliver("pull_request", prPayload("opened", pr))
	if wait, err := e.w.Drain(e.ctx); err != nil || wait <= 0 {
		t.Fatalf("Drain = %v %v, want a retry", wait, err)
	}
	if d := e.delivery(g); d.State != index.DeliveryPending || d.Attempts != 1 || d.LastError == "" {
		t.Fatalf("delivery = %+v, want pending after one attempt", d)
	}
	e.work.Git("push", "-q", e.git.Bare, "late:refs/pull/1/head")
	e.clock.Advance(time.Second)
	e.drain()
	if d := e.delivery(g); d.State != index.DeliveryDone {
		t.Fatalf("delivery %s: %s", d.State, d.LastError)
	}
	if ds := draftsOf(t, e, "pr:1"); len(ds) != 1 || ds[0].Commit != head {
		t.Errorf("drafts = %+v", ds)
	}
}

// TestReconcileHealsMissedMerge: no delivery arrives; reconcile promotes.
func TestReconcileHealsMissedMerge(t *testing.T) {
	e := newEnv(t, modeApp)
	e.branch("m", map[string]string{"prompts/greet.yaml": gittest.Prompt("Never delivered")})
	pr := e.openPR("m", false)
	mc := e.merge(pr.Number, "squash")
	if err := e.w.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.liveContent("greet"); got != gittest.Prompt("Never delivered") {
		t.Errorf("live greet = %q", got)
	}
	if st := mergeState(t, e, mc); st != index.MergeApplied {
		t.Errorf("merge state %q", st)
	}
	// The late delivery afterwards changes nothing.
	e.deliver("pull_request", prPayload("closed", e.gh.pr(pr.Number)))
	e.drain()
	if n := len(e.audit(index.ActPromote)); n != 1 {
		t.Errorf("%d promote rows, want 1", n)
	}
}

func TestCheckRunUpsertAndAnnotationChunks(t *testing.T) {
	e := newEnv(t, modeApp)
	var bad strings.Builder
	bad.WriteString("template: hi\n")
	for i := range 60 {
		fmt.Fprintf(&bad, "unknown_%02d: x\n", i)
	}
	e.branch("bad", map[string]string{"prompts/greet.yaml": bad.String()})
	pr := e.openPR("bad", false)
	e.deliver("pull_request", prPayload("opened", pr))
	e.drain()
	e.deliver("pull_request", prPayload("ready_for_review", pr))
	e.deliver("pull_request", prPayload("labeled", pr))
	e.drain()
	runs := e.gh.runsFor(pr.Head.SHA)
	if len(runs) != 1 {
		t.Fatalf("%d check runs for the head, want 1 (upserted)", len(runs))
	}
	r := runs[0]
	if r.Conclusion != "failure" || len(r.annotations) != 60 {
		t.Fatalf("run conclusion %q with %d annotations, want failure with 60", r.Conclusion, len(r.annotations))
	}
	for _, a := range r.annotations {
		if a.Path != "prompts/greet.yaml" || a.StartLine < 2 || a.AnnotationLevel != "failure" {
			t.Fatalf("annotation %+v", a)
		}
	}
	// synchronize: a new head gets its own (single) run.
	e.work.Git("checkout", "-q", "bad")
	e.work.Write("prompts/greet.yaml", gittest.Prompt("Fixed"))
	e.work.Commit("fix")
	e.work.Git("checkout", "-q", "main")
	pr2 := e.openPRUpdate(pr.Number, "bad")
	e.deliver("pull_request", prPayload("synchronize", pr2))
	e.deliver("pull_request", prPayload("synchronize", pr2))
	e.drain()
	if runs := e.gh.runsFor(pr2.Head.SHA); len(runs) != 1 || runs[0].Conclusion != "success" {
		t.Errorf("runs for new head = %d", len(runs))
	}
}

// openPRUpdate pushes a new head for an open pull request.
func (e *env) openPRUpdate(n int, branch string) PullRequest {
	e.t.Helper()
	e.work.Git("push", "-q", "-f", e.git.Bare, fmt.Sprintf("%s:refs/pull/%d/head", branch, n))
	pr := e.gh.pr(n)
	pr.Head.SHA = e.work.Git("rev-parse", branch)
	e.gh.setPR(pr)
	return pr
}

func TestAppTokenCachedAndRefreshed(t *testing.T) {
	e := newEnv(t, modeApp)
	// git over HTTPS must carry x-access-token and a live installation token.
	e.git.mu.Lock()
	e.git.Auth = func(user, pass string) bool {
		e.gh.mu.Lock()
		defer e.gh.mu.Unlock()
		_, ok := e.gh.tokens[pass]
		return user == "x-access-token" && ok
	}
	e.git.mu.Unlock()
	e.branch("t", map[string]string{"prompts/greet.yaml": gittest.Prompt("Token")})
	pr := e.openPR("t", false)
	e.deliver("pull_request", prPayload("opened", pr))
	e.deliver("pull_request", prPayload("edited", pr))
	e.drain()
	e.gh.mu.Lock()
	calls := e.gh.tokenCalls
	e.gh.mu.Unlock()
	if calls != 1 {
		t.Errorf("%d token requests for several API calls and fetches, want 1", calls)
	}
	// The cached 1-hour token is now within the refresh margin (as it is
	// 55 minutes after minting with the default 5-minute margin); the next
	// token lives 2 hours, so it is minted once and cached again.
	app := e.w.opts.App
	app.mu.Lock()
	app.Refresh = 61 * time.Minute
	app.mu.Unlock()
	e.gh.mu.Lock()
	e.gh.tokenTTL = 2 * time.Hour
	e.gh.mu.Unlock()
	e.deliver("pull_request", prPayload("edited", pr))
	e.drain()
	e.gh.mu.Lock()
	calls = e.gh.tokenCalls
	e.gh.mu.Unlock()
	if calls != 2 {
		t.Errorf("%d token requests after nearing expiry, want 2", calls)
	}
	if n := e.count(index.DeliveryDone); n != 3 {
		t.Errorf("%d deliveries done, want 3", n)
	}
}

func TestTokenModeReportsCommitStatus(t *testing.T) {
	e := newEnv(t, modeToken)
	e.branch("s", map[string]string{"prompts/greet.yaml": "template: {{ broken\n"})
	pr := e.openPR("s", false)
	e.deliver("pull_request", prPayload("opened", pr))
	e.drain()
	e.gh.mu.Lock()
	sts := e.gh.statuses[pr.Head.SHA]
	nruns := len(e.gh.runs)
	e.gh.mu.Unlock()
	if len(sts) != 1 || sts[0].Context != CheckName || sts[0].State != "failure" {
		t.Errorf("statuses = %+v", sts)
	}
	if nruns != 0 {
		t.Errorf("%d check runs in token mode", nruns)
	}
}

// TestWebhookOnlyMode: no App, no token: labels come from the payload.
func TestWebhookOnlyMode(t *testing.T) {
	e := newEnv(t, modeSecretOnly)
	e.branch("w", map[string]string{"prompts/greet.yaml": gittest.Prompt("Payload labels")})
	pr := e.openPR("w", false, DefaultStagingLabel)
	e.deliver("pull_request", prPayload("labeled", pr))
	e.drain()
	if p, ok := e.pointer("greet", index.EnvStaging); !ok || p.Label() != "draft:pr-1" {
		t.Errorf("staging = %+v", p)
	}
	e.merge(pr.Number, "merge")
	e.deliver("pull_request", prPayload("closed", e.gh.pr(pr.Number)))
	e.drain()
	if got := e.liveContent("greet"); got != gittest.Prompt("Payload labels") {
		t.Errorf("live = %q", got)
	}
	e.gh.mu.Lock()
	n := len(e.gh.calls)
	e.gh.mu.Unlock()
	if n != 0 {
		t.Errorf("%d API calls in webhook-only mode", n)
	}
}

func TestAPIBase(t *testing.T) {
	for in, want := range map[string]string{
		"":                                "https://api.github.com/",
		"https://api.github.com":          "https://api.github.com/",
		"https://ghe.example.com":         "https://ghe.example.com/api/v3/",
		"https://ghe.example.com/api/v3/": "https://ghe.example.com/api/v3/",
		"http://127.0.0.1:9999/":          "http://127.0.0.1:9999/api/v3/",
	} {
		u, err := APIBase(in)
		if err != nil || u.String() != want {
			t.Errorf("APIBase(%q) = %v %v, want %s", in, u, err, want)
		}
	}
}

// TestPullRequestURL: the dashboard's link to a draft's pull request is
// on github.com for its API, and on the Enterprise Server's own host.
func TestPullRequestURL(t *testing.T) {
	for api, want := range map[string]string{
		"":                                "https://github.com/acme/prompts/pull/12",
		"https://ghe.example.com/api/v3/": "https://ghe.example.com/acme/prompts/pull/12",
		"http://127.0.0.1:9999":           "http://127.0.0.1:9999/acme/prompts/pull/12",
	} {
		c, err := NewClient(api, "acme", "prompts", StaticToken("t"), false)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.PullRequestURL(12); got != want {
			t.Errorf("API %q: PullRequestURL = %s, want %s", api, got, want)
		}
	}
}

func TestOpenRollbackPR(t *testing.T) {
	e := newEnv(t, modeToken)
	var v index.Version
	e.db.View(e.ctx, func(tx *index.Tx) error {
		var err error
		v, err = tx.Version(e.ctx, "greet", "v1")
		return err
	})
	data, err := e.repo.Blob(v.BlobSHA)
	if err != nil {
		t.Fatal(err)
	}
	url, err := e.w.gh.OpenRollbackPR(e.ctx, "main", v, data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(url, "/pull/99") {
		t.Errorf("url = %s", url)
	}
	e.gh.mu.Lock()
	defer e.gh.mu.Unlock()
	put, _ := e.gh.rollback["put_contents"].(map[string]any)
	pr, _ := e.gh.rollback["create_pr"].(map[string]any)
	if put == nil || pr == nil {
		t.Fatalf("steps = %v", e.gh.rollback)
	}
	content, _ := base64.StdEncoding.DecodeString(fmt.Sprint(put["content"]))
	if string(content) != string(data) || put["sha"] != strings.Repeat("b", 40) || pr["base"] != "main" || pr["head"] != put["branch"] {
		t.Errorf("put %v, pr %v", put, pr)
	}
}

// TestUnknownPullRequestDoesNotBlock: a pull request the API does not know
// fails at once instead of holding back later deliveries for retries.
func TestUnknownPullRequestDoesNotBlock(t *testing.T) {
	e := newEnv(t, modeApp)
	ghost := PullRequest{Number: 404, State: "open", Base: PRRef{Ref: "main"}, Head: PRRef{SHA: strings.Repeat("1", 40)}}
	g1 := e.deliver("pull_request", prPayload("opened", ghost))
	g2 := e.deliver("ping", map[string]any{"zen": "Keep it logically awesome.", "hook_id": 1})
	e.drain()
	if d := e.delivery(g1); d.State != index.DeliveryFailed || d.Attempts != 1 {
		t.Errorf("unknown pull request: %s after %d attempts", d.State, d.Attempts)
	}
	if d := e.delivery(g2); d.State != index.DeliveryDone {
		t.Errorf("ping behind it: %s", d.State)
	}
}

// TestAPIErrors: go-github's errors become *APIError with the status, and
// Temporary holds for server errors, 429 and both rate limits, not for 404
// or a plain 403. Each case uses a fresh client: go-github remembers a rate
// limit and refuses later calls until its reset.
func TestAPIErrors(t *testing.T) {
	type answer struct {
		status int
		header map[string]string
		body   string
	}
	var mu sync.Mutex
	var cur answer
	var paths, auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		a := cur
		paths, auths = append(paths, r.URL.Path), append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	defer srv.Close()
	reset := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	for _, tt := range []struct {
		name              string
		a                 answer
		temporary, rateLt bool
	}{
		{"not found", answer{404, nil, `{"message":"Not Found"}`}, false, false},
		{"bad gateway", answer{502, nil, `{"message":"Server Error"}`}, true, false},
		{"too many requests", answer{429, nil, `{"message":"Too many requests"}`}, true, true},
		{"primary rate limit", answer{403, map[string]string{"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0",
			"X-RateLimit-Reset": reset}, `{"message":"API rate limit exceeded"}`}, true, true},
		{"secondary rate limit", answer{403, map[string]string{"Retry-After": "60"},
			`{"message":"You have exceeded a secondary rate limit.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`}, true, true},
		{"forbidden", answer{403, nil, `{"message":"Resource not accessible by integration"}`}, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			cur = tt.a
			mu.Unlock()
			c, err := NewClient(srv.URL, testOwner, testName, StaticToken("ghp_x"), false)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.PullRequest(context.Background(), 1)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %T %v, want *APIError", err, err)
			}
			if ae.Status != tt.a.status || ae.Temporary() != tt.temporary || ae.RateLimited != tt.rateLt ||
				ae.Method != http.MethodGet || ae.Path != "/api/v3/repos/acme/prompts/pulls/1" {
				t.Errorf("%+v: temporary %v", ae, ae.Temporary())
			}
		})
	}
	mu.Lock()
	for i := range paths {
		if paths[i] != "/api/v3/repos/acme/prompts/pulls/1" || auths[i] != "Bearer ghp_x" {
			t.Errorf("request %d: %s with %q", i, paths[i], auths[i])
		}
	}
	mu.Unlock()

	// A token that cannot be had sends nothing and surfaces as itself.
	errMint := errors.New("mint refused")
	c, _ := NewClient(srv.URL, testOwner, testName, failingToken{errMint}, true)
	mu.Lock()
	before := len(paths)
	mu.Unlock()
	if _, err := c.CheckRuns(context.Background(), strings.Repeat("a", 40), CheckName); !errors.Is(err, errMint) {
		t.Errorf("token failure: %v", err)
	}
	mu.Lock()
	if len(paths) != before {
		t.Errorf("a request was sent without a token")
	}
	mu.Unlock()

	// The client's root is APIBase's: api.github.com as is, /api/v3/ else.
	for _, raw := range []string{"", "https://ghe.example.com", "https://ghe.example.com/api/v3/"} {
		c, err := NewClient(raw, testOwner, testName, StaticToken("x"), false)
		want, _ := APIBase(raw)
		if err != nil || c.gh.BaseURL.String() != want.String() {
			t.Errorf("NewClient(%q) base %v %v, want %s", raw, c.gh.BaseURL, err, want)
		}
	}
}

type failingToken struct{ err error }

func (f failingToken) Token(context.Context) (string, error) { return "", f.err }

// TestIntakeSpoolsLargeVerifiedBodies: a signed body past the in-memory
// spool is hashed while it streams to disk and stored whole.
func TestIntakeSpoolsLargeVerifiedBodies(t *testing.T) {
	e := newEnv(t, modeSecretOnly)
	pad := strings.Repeat("p", 3*memSpool)
	body := []byte(`{"zen":"` + pad + `","hook_id":1}`)
	if code, b := e.post("ping", "big-ping", body, "application/json"); code != http.StatusAccepted {
		t.Fatalf("status %d %s, want 202", code, b)
	}
	var d index.Delivery
	e.db.View(e.ctx, func(tx *index.Tx) (err error) {
		d, err = tx.Delivery(e.ctx, "big-ping")
		return err
	})
	if !bytes.Equal(d.Body, body) {
		t.Errorf("stored body has %d bytes, want the %d sent", len(d.Body), len(body))
	}
	// A wrong signature on a large body: read, hashed, refused.
	bad := append([]byte(nil), body...)
	bad[10] = 'q'
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL, bytes.NewReader(bad))
	req.Header.Set("X-GitHub-Event", "ping")
	req.Header.Set("X-GitHub-Delivery", "bad-big")
	req.Header.Set("X-Hub-Signature-256", Sign([]byte(testSecret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("tampered body: status %d, want 401", resp.StatusCode)
	}
}

// TestIntakeFullAnswers503: with every unverified-body slot taken, a
// delivery waits at most UnverifiedWait and is refused with 503.
func TestIntakeFullAnswers503(t *testing.T) {
	e := newEnv(t, modeSecretOnly)
	rc, err := NewReceiver(ReceiverOptions{DB: e.db, Secret: testSecret, MaxUnverified: 1, UnverifiedWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rc.slots <- struct{}{} // a slow sender holds the only slot
	body := []byte(`{"zen":"z"}`)
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "ping")
	req.Header.Set("X-GitHub-Delivery", "busy")
	req.Header.Set("X-Hub-Signature-256", Sign([]byte(testSecret), body))
	rec := httptest.NewRecorder()
	rc.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", rec.Code)
	}
	<-rc.slots
	rec = httptest.NewRecorder()
	req = httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "ping")
	req.Header.Set("X-GitHub-Delivery", "busy")
	req.Header.Set("X-Hub-Signature-256", Sign([]byte(testSecret), body))
	rc.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Errorf("slot free again: status %d, want 202", rec.Code)
	}
}
