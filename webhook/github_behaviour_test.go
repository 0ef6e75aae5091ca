package webhook

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/index"
)

// Issue 11: GitHub as it really behaves. One test per item.

// TestRateLimitsPauseWithoutUsingAttempts: a 403 primary limit, a 403
// secondary limit and a 429 each pause GitHub calls until the reset the
// answer names (no call is made before it), and the delivery waits without
// using an attempt; after the reset it succeeds.
func TestRateLimitsPauseWithoutUsingAttempts(t *testing.T) {
	for _, tt := range []struct {
		kind string
		wait time.Duration // the reset the fake names
	}{
		{"primary", 10 * time.Minute},
		{"secondary", 120 * time.Second},
		{"429", 30 * time.Second},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			e := newEnv(t, modeApp)
			e.branch("f", map[string]string{"prompts/greet.yaml": gittest.Prompt("Hi")})
			pr := e.openPR("f", false)
			e.gh.mu.Lock()
			e.gh.rateLimitNext[tt.kind] = 1
			e.gh.mu.Unlock()
			g := e.deliver("pull_request", prPayload("opened", pr))
			wait, err := e.w.Drain(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			d := e.delivery(g)
			if d.State != index.DeliveryPending || d.Attempts != 0 || !strings.Contains(d.LastError, "rate limit") {
				t.Fatalf("after the limit: %s, %d attempts, %q; want pending with 0 attempts", d.State, d.Attempts, d.LastError)
			}
			if wait < tt.wait-time.Second || wait > tt.wait+time.Second {
				t.Errorf("next attempt in %v, want the reset in %v", wait, tt.wait)
			}
			calls := len(e.gh.calls)
			// Before the reset no call is made, even for another subject.
			e.clock.Advance(tt.wait / 2)
			g2 := e.deliver("pull_request", prPayload("opened", e.openPR("f", false)))
			e.drain()
			if n := len(e.gh.calls); n != calls {
				t.Errorf("%d calls during the pause", n-calls)
			}
			if d := e.delivery(g2); d.State != index.DeliveryPending || d.Attempts != 0 {
				t.Errorf("other subject during the pause: %+v", d)
			}
			e.clock.Advance(tt.wait)
			e.drain()
			for _, id := range []string{g, g2} {
				if d := e.delivery(id); d.State != index.DeliveryDone {
					t.Errorf("after the reset: %s %s (%s)", id, d.State, d.LastError)
				}
			}
		})
	}
}

// TestTransientErrorsRetryWithBackoff: 5xx answers are retried with the
// backoff (attempts counted) until they succeed.
func TestTransientErrorsRetryWithBackoff(t *testing.T) {
	e := newEnv(t, modeApp)
	var asked []int
	e.w.opts.Backoff = func(n int) time.Duration { asked = append(asked, n); return time.Duration(n) * time.Minute }
	e.branch("f", map[string]string{"prompts/greet.yaml": gittest.Prompt("Hi")})
	pr := e.openPR("f", false)
	e.gh.mu.Lock()
	e.gh.failNext["GET /repos/acme/prompts/pulls/1"] = 2
	e.gh.mu.Unlock()
	g := e.deliver("pull_request", prPayload("opened", pr))
	for i := 1; i <= 2; i++ {
		wait, err := e.w.Drain(e.ctx)
		if err != nil || wait != time.Duration(i)*time.Minute {
			t.Fatalf("retry %d: wait %v %v", i, wait, err)
		}
		e.clock.Advance(wait)
	}
	e.drain()
	if d := e.delivery(g); d.State != index.DeliveryDone || d.Attempts != 3 {
		t.Errorf("delivery %+v, want done on the third attempt", d)
	}
	if fmt.Sprint(asked) != "[1 2]" {
		t.Errorf("backoff asked for %v", asked)
	}
	// The default backoff doubles with ±25% jitter.
	for n := 1; n <= 8; n++ {
		base := min(time.Second<<(n-1), 2*time.Minute)
		if d := DefaultBackoff(n); d < base*3/4 || d > base*5/4 {
			t.Errorf("DefaultBackoff(%d) = %v, want %v ±25%%", n, d, base)
		}
	}
}

// TestPermanentErrorsFailAtOnce: a permission refusal (403 without rate
// limit headers) and a 422 fail the delivery on its first attempt with the
// reason; a 401 refreshes the installation token once and then succeeds.
func TestPermanentErrorsFailAtOnce(t *testing.T) {
	e := newEnv(t, modeApp)
	e.branch("f", map[string]string{"prompts/greet.yaml": gittest.Prompt("Hi")})
	pr := e.openPR("f", false)
	e.gh.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/check-runs") {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "Resource not accessible by integration"})
			return true
		}
		return false
	}
	g := e.deliver("pull_request", prPayload("opened", pr))
	e.drain()
	if d := e.delivery(g); d.State != index.DeliveryFailed || d.Attempts != 1 || !strings.Contains(d.LastError, "Resource not accessible") {
		t.Errorf("403: %+v, want failed after 1 attempt with the reason", d)
	}
	e.gh.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/check-runs") {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Validation Failed"})
			return true
		}
		return false
	}
	g = e.deliver("pull_request", prPayload("synchronize", pr))
	e.drain()
	if d := e.delivery(g); d.State != index.DeliveryFailed || d.Attempts != 1 || !strings.Contains(d.LastError, "422") {
		t.Errorf("422: %+v", d)
	}
	// 401: the token was revoked; one refresh, then the call succeeds.
	e.gh.fault = nil
	e.gh.mu.Lock()
	for tok := range e.gh.tokens {
		delete(e.gh.tokens, tok)
	}
	before := e.gh.tokenCalls
	e.gh.mu.Unlock()
	g = e.deliver("pull_request", prPayload("reopened", pr))
	e.drain()
	if d := e.delivery(g); d.State != index.DeliveryDone || d.Attempts != 1 {
		t.Errorf("401 then refresh: %+v", d)
	}
	if n := e.gh.tokenCalls - before; n != 1 {
		t.Errorf("%d tokens minted after the 401, want 1", n)
	}
}

// TestNoHeadOfLineBlocking: one pull request whose API calls keep failing
// never holds back another pull request's deliveries or a push; its own
// later deliveries wait behind it (order per subject).
func TestNoHeadOfLineBlocking(t *testing.T) {
	e := newEnv(t, modeApp)
	e.branch("a", map[string]string{"prompts/greet.yaml": gittest.Prompt("A")})
	e.branch("b", map[string]string{"prompts/other.yaml": gittest.Prompt("B")})
	a, b := e.openPR("a", false), e.openPR("b", false)
	e.gh.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, fmt.Sprintf("/pulls/%d", a.Number)) {
			writeJSON(w, http.StatusBadGateway, map[string]string{"message": "Server Error"})
			return true
		}
		return false
	}
	ga1 := e.deliver("pull_request", prPayload("opened", a))
	ga2 := e.deliver("pull_request", prPayload("labeled", a))
	gb := e.deliver("pull_request", prPayload("opened", b))
	mc := e.merge(b.Number, "squash")
	gm := e.deliver("pull_request", prPayload("closed", e.gh.pr(b.Number)))
	for range 5 { // five rounds of a's retries
		e.drain()
		e.clock.Advance(time.Second)
	}
	for _, g := range []string{gb, gm} {
		if d := e.delivery(g); d.State != index.DeliveryDone {
			t.Errorf("%s behind another subject's failures: %s (%s)", g, d.State, d.LastError)
		}
	}
	if st := mergeState(t, e, mc); st == "" {
		t.Errorf("merge of #%d not handled", b.Number)
	}
	if d := e.delivery(ga1); d.State != index.DeliveryPending || d.Attempts < 5 {
		t.Errorf("failing delivery: %+v", d)
	}
	if d := e.delivery(ga2); d.State != index.DeliveryPending || d.Attempts != 0 {
		t.Errorf("a's later delivery ran before a's earlier one: %+v", d)
	}
	e.gh.fault = nil
	e.clock.Advance(time.Second)
	e.drain()
	for _, g := range []string{ga1, ga2} {
		if d := e.delivery(g); d.State != index.DeliveryDone {
			t.Errorf("%s after recovery: %s", g, d.State)
		}
	}
}

// TestOtherRepositoryIgnored: a delivery about another repository (same PR
// number) is acknowledged, recorded as ignored and never processed.
func TestOtherRepositoryIgnored(t *testing.T) {
	e := newEnv(t, modeApp)
	e.branch("f", map[string]string{"prompts/greet.yaml": gittest.Prompt("Ours")})
	pr := e.openPR("f", false)
	p := prPayload("opened", pr)
	p["repository"] = map[string]any{"full_name": "someone/else", "name": "else"}
	g := e.deliver("pull_request", p)
	calls := len(e.gh.calls)
	e.drain()
	d := e.delivery(g)
	if d.State != index.DeliveryIgnored || !strings.Contains(d.Result, "someone/else") {
		t.Errorf("other repository: %+v", d)
	}
	if len(e.gh.calls) != calls || len(draftsOf(t, e, "pr:1")) != 0 {
		t.Error("another repository's delivery was processed")
	}
	// Same name in other case: ours.
	p["repository"] = map[string]any{"full_name": "ACME/Prompts", "name": "Prompts"}
	g = e.deliver("pull_request", p)
	e.drain()
	if d := e.delivery(g); d.State != index.DeliveryDone {
		t.Errorf("ACME/Prompts: %s", d.State)
	}
}

// TestOwnCheckRunsOnly: a run of the same name owned by another App is
// left alone (ours is created beside it); annotations resume from
// annotations_count after a failed chunk; the summary is cut on a
// character boundary; more than 200 problems are capped with a line.
func TestOwnCheckRunsOnly(t *testing.T) {
	e := newEnv(t, modeApp)
	var bad strings.Builder
	bad.WriteString("template: hi\n")
	for i := range 100 { // the parser reports at most 100 problems a file
		fmt.Fprintf(&bad, "unknown_%03d: x\n", i)
	}
	head := e.branch("bad", map[string]string{"prompts/greet.yaml": bad.String(), "prompts/other.yaml": bad.String(),
		"prompts/third.yaml": bad.String()})
	pr := e.openPR("bad", false)
	e.gh.addForeignRun(head, CheckName, 999)
	// The third chunk fails once: the retry sends the rest, not all again.
	e.gh.mu.Lock()
	n := 0
	e.gh.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPatch {
			n++
			if n == 2 {
				writeJSON(w, http.StatusBadGateway, map[string]string{"message": "Server Error"})
				return true
			}
		}
		return false
	}
	e.gh.mu.Unlock()
	g := e.deliver("pull_request", prPayload("opened", pr))
	e.drain()
	e.clock.Advance(time.Second)
	e.drain()
	if d := e.delivery(g); d.State != index.DeliveryDone {
		t.Fatalf("delivery %s: %s", d.State, d.LastError)
	}
	runs := e.gh.runsFor(head)
	if len(runs) != 2 || runs[0].appID != 999 || runs[0].updates != 0 || runs[1].appID != testAppIDNum {
		t.Fatalf("runs: %d; foreign one updated: %v", len(runs), len(runs) > 0 && runs[0].updates > 0)
	}
	ours := runs[1]
	if len(ours.annotations) != maxReportAnnotations {
		t.Errorf("%d annotations, want %d (capped, none twice)", len(ours.annotations), maxReportAnnotations)
	}
	seen := map[string]bool{}
	for _, a := range ours.annotations {
		k := a.Path + ":" + a.Message
		if seen[k] {
			t.Fatalf("annotation sent twice: %s", k)
		}
		seen[k] = true
	}
	if !strings.Contains(ours.Output.Summary, "… and 100 more problems") {
		t.Errorf("summary does not say how many more problems:\n%.300s", ours.Output.Summary)
	}

	s := strings.Repeat("é", maxSummary) // 2 bytes each
	if got := cutUTF8(s, maxSummary, "…"); len(got) > maxSummary || !strings.HasSuffix(got, "…") || !isValidUTF8(got) {
		t.Errorf("cut summary: %d bytes, valid %v", len(got), isValidUTF8(got))
	}
}

// TestScopedInstallationTokens: the installation token is requested for the
// one repository and the permissions promptvault uses; the request body
// satisfies GitHub's schema (the fake checks it).
func TestScopedInstallationTokens(t *testing.T) {
	e := newEnv(t, modeApp)
	e.gh.mu.Lock()
	defer e.gh.mu.Unlock()
	if len(e.gh.tokenBodies) == 0 {
		t.Fatal("no token minted")
	}
	b := e.gh.tokenBodies[0]
	if fmt.Sprint(b["repositories"]) != "[prompts]" {
		t.Errorf("repositories %v, want [prompts]", b["repositories"])
	}
	perms, _ := b["permissions"].(map[string]any)
	if len(perms) != 4 || perms["checks"] != "write" || perms["contents"] != "read" || perms["pull_requests"] != "read" ||
		perms["metadata"] != "read" {
		t.Errorf("permissions %v", perms)
	}
}

// TestMergeGroupChecksRequested: a merge queue asks for the check on the
// group's head; the prompts the group changes against the tracked branch
// are validated there and the check run is reported on that commit.
func TestMergeGroupChecksRequested(t *testing.T) {
	e := newEnv(t, modeApp)
	e.branch("q", map[string]string{"prompts/greet.yaml": "template: hi\nbogus: 1\n", "prompts/other.yaml": gittest.Prompt("Queued")})
	head := e.work.Git("rev-parse", "q")
	ref := "refs/heads/gh-readonly-queue/main/pr-1-" + e.work.Git("rev-parse", "main")
	e.work.Git("push", "-q", e.git.Bare, "q:"+ref)
	g := e.deliver("merge_group", map[string]any{"action": "checks_requested",
		"merge_group": map[string]any{"head_sha": head, "head_ref": ref, "base_sha": e.work.Git("rev-parse", "main"),
			"base_ref": "refs/heads/main", "head_commit": map[string]any{"id": head, "tree_id": head, "message": "merge queue",
				"timestamp": "2026-01-01T00:00:00Z", "author": map[string]any{"name": "a", "email": "a@example.com"},
				"committer": map[string]any{"name": "a", "email": "a@example.com"}}},
		"repository": map[string]any{"full_name": testOwner + "/" + testName}})
	e.drain()
	if d := e.delivery(g); d.State != index.DeliveryDone {
		t.Fatalf("merge_group: %s %s", d.State, d.LastError)
	}
	runs := e.gh.runsFor(head)
	if len(runs) != 1 || runs[0].Conclusion != "failure" || runs[0].Output.Title != "1 of 2 changed prompts invalid" ||
		len(runs[0].annotations) != 1 || runs[0].annotations[0].Path != "prompts/greet.yaml" {
		t.Fatalf("merge group check: %d runs %+v", len(runs), runs)
	}
}

// TestRerequestedRunsAgain: "Re-run" on our check run (check_run
// rerequested) and on the suite (check_suite rerequested) report the check
// again; another App's check run is not ours to re-run.
func TestRerequestedRunsAgain(t *testing.T) {
	e := newEnv(t, modeApp)
	head := e.branch("f", map[string]string{"prompts/greet.yaml": gittest.Prompt("Again")})
	pr := e.openPR("f", false)
	e.deliver("pull_request", prPayload("opened", pr))
	e.drain()
	if runs := e.gh.runsFor(head); len(runs) != 1 || runs[0].updates != 0 {
		t.Fatalf("first report: %d runs", len(runs))
	}
	run := func(app int64) map[string]any {
		return map[string]any{"id": 1, "name": CheckName, "head_sha": head, "status": "completed", "conclusion": "success",
			"app": map[string]any{"id": app}, "pull_requests": []any{map[string]any{"number": pr.Number, "id": 1, "url": "https://example.com/",
				"head": map[string]any{"ref": "f", "sha": head, "repo": map[string]any{"id": 1, "name": testName, "url": "https://example.com/"}},
				"base": map[string]any{"ref": "main", "sha": head, "repo": map[string]any{"id": 1, "name": testName, "url": "https://example.com/"}}}}}
	}
	repo := map[string]any{"full_name": testOwner + "/" + testName}
	g1 := e.deliver("check_run", map[string]any{"action": "rerequested", "check_run": run(testAppIDNum), "repository": repo})
	g2 := e.deliver("check_suite", map[string]any{"action": "rerequested", "check_suite": map[string]any{"head_sha": head,
		"app": map[string]any{"id": testAppIDNum}, "pull_requests": []any{map[string]any{"number": pr.Number}}}, "repository": repo})
	g3 := e.deliver("check_run", map[string]any{"action": "rerequested", "check_run": run(999), "repository": repo})
	e.drain()
	for _, g := range []string{g1, g2, g3} {
		if d := e.delivery(g); d.State != index.DeliveryDone {
			t.Errorf("%s: %s %s", g, d.State, d.LastError)
		}
	}
	if d := e.delivery(g3); !strings.Contains(d.Result, "not ours") {
		t.Errorf("another App's re-run: %s", d.Result)
	}
	if runs := e.gh.runsFor(head); len(runs) != 1 || runs[0].updates != 2 {
		t.Errorf("after two re-runs: %d runs, %d updates, want 1 run updated twice", len(runs), runs[0].updates)
	}
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// TestReconcileFetchesFirstAndPagesToWatermark: with the API down,
// reconcile still fetches and indexes; with it up, it pages closed pull
// requests back past the first 100 to find an unhandled merge, and the next
// reconcile lists only back to its watermark.
func TestReconcileFetchesFirstAndPagesToWatermark(t *testing.T) {
	e := newEnv(t, modeApp)
	e.branch("f", map[string]string{"prompts/greet.yaml": gittest.Prompt("Missed")})
	pr := e.openPR("f", false)
	mc := e.merge(pr.Number, "merge")
	e.gh.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/pulls") {
			writeJSON(w, http.StatusBadGateway, map[string]string{"message": "Server Error"})
			return true
		}
		return false
	}
	if err := e.w.Reconcile(e.ctx); err != nil {
		t.Fatalf("reconcile with the API down: %v", err)
	}
	var indexed bool
	e.db.View(e.ctx, func(tx *index.Tx) (err error) { _, indexed, err = tx.CommitSeq(e.ctx, mc); return err })
	if !indexed {
		t.Fatal("reconcile did not index the merge commit while the API was down")
	}
	if st := mergeState(t, e, mc); st != "" {
		t.Fatalf("merge applied without the API: %s", st)
	}
	// 120 closed pull requests updated after the merge push it to page 2.
	for n := 100; n < 220; n++ {
		e.gh.setPR(PullRequest{Number: n, State: "closed", Title: "other", Head: PRRef{Ref: "x", SHA: mc},
			Base: PRRef{Ref: "main", SHA: mc}})
	}
	e.gh.fault = nil
	if err := e.w.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	if st := mergeState(t, e, mc); st != "applied" {
		t.Errorf("merge on page 2: state %q, want applied", st)
	}
	if got := e.liveContent("greet"); !strings.Contains(got, "Missed") {
		t.Errorf("live greet = %q", got)
	}
	// The next reconcile lists back to the watermark only: one page.
	e.gh.setPR(PullRequest{Number: 300, State: "closed", Title: "new", Head: PRRef{Ref: "x", SHA: mc}, Base: PRRef{Ref: "main", SHA: mc}})
	pages := func() int {
		e.gh.mu.Lock()
		defer e.gh.mu.Unlock()
		n := 0
		for _, c := range e.gh.calls {
			if strings.HasSuffix(c, "/pulls") && strings.HasPrefix(c, "GET") {
				n++
			}
		}
		return n
	}
	before := pages()
	e.clock.Advance(time.Hour)
	if err := e.w.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	// One page of closed (stops at the watermark) and one of open.
	if n := pages() - before; n != 2 {
		t.Errorf("second reconcile listed %d pages, want 2 (closed back to the watermark, open)", n)
	}
}
