package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/promptvault/promptvault/cmd/promptvault/pvtest"
	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/webhook/githubtest"
)

// TestDashboardGitHubModeInChromium drives the dashboard of a real serve
// (a subprocess) in GitHub mode against the fake GitHub, which keeps the
// repository in a bare Git repository, serves it over HTTP and sends
// signed webhooks: saving an edit commits it through the API on its branch
// and opens the pull request (the branch in the bare repository holds
// exactly what was typed), the versions list links the draft to its pull
// request (screenshots at three widths, checked for overflow), a merge
// GitHub refuses shows GitHub's reason, and "Merge and promote" merges
// through the API (a real merge commit on main) and then shows the new
// live version, promoted by the merged pull request's webhook; continuing
// from the older version out of the rollback dialog opens a second pull
// request with that version's text.
func TestDashboardGitHubModeInChromium(t *testing.T) {
	b := newBrowser(t, 1400)
	do, waitJS, text := b.do, b.wait, b.text
	const token, secret = "ghp_dashboard_test_token", "dashboard webhook secret"
	gh := githubtest.New(t, githubtest.Options{Token: token})
	gh.Commit("main", "Add prompts", map[string]string{
		"prompts/greet.yaml":             gittest.Prompt("Hello"),
		"prompts/support/summarize.yaml": gittest.Prompt("Summarize"),
	})
	data := t.TempDir()
	srv := pvtest.Serve(t, "--data", data, "--addr", "127.0.0.1:0", "--repo", gh.GitURL,
		"--github-token", token, "--github-api-url", gh.APIURL, "--webhook-secret", secret)
	gh.SetWebhook(srv.URL+"/webhooks/github", secret)
	var key struct{ Key string }
	if out := pvtest.Run(t, "keys", "create", "--data", data, "--env", "admin", "--name", "Ada Admin", "--json"); json.Unmarshal([]byte(out), &key) != nil || key.Key == "" {
		t.Fatalf("keys create: %s", out)
	}
	// getJSON reads an admin API answer as the admin key.
	getJSON := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+key.Key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if err := json.NewDecoder(res.Body).Decode(v); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, res.StatusCode, err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve's log:\n%s\nfake GitHub: calls %v\ndeliveries %+v", srv.Logs(), gh.Calls(), gh.Deliveries())
		}
	})

	do("sign in", chromedp.Navigate(srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#signin-key")),
		chromedp.SendKeys(chromedp.CSS("#signin-key"), key.Key), click("#signin-submit"))
	waitJS("prompt list", `document.querySelector('#prompt-list tr[data-key="greet"]') !== null`)
	do("open greet", chromedp.Navigate(srv.URL+"/ui/#/p/greet"))
	waitJS("live v1", `document.querySelector('#badge-live').textContent === 'v1'`)

	// Edit and save: a commit through the API and a pull request.
	typed := "model: gpt-4o\ntemperature: 0.3\ntemplate: |\n  Hello {{ input }}, and welcome!\n"
	do("edit", click("#edit-prompt"))
	waitJS("editor", `!document.querySelector('#view-editor').hidden && edit.cm != null && edit.cm.getValue().includes('Hello {{ input }}')`)
	do("type", chromedp.Evaluate[chromedp.Void](`edit.cm.setValue(`+jsString(typed)+`)`))
	waitJS("valid", `document.querySelectorAll('#editor-problems li').length === 0 && !document.querySelector('#editor-save').disabled`)
	do("save", chromedp.Evaluate[chromedp.Void](`document.querySelector('#editor-branch').value = 'warmer-greeting'`),
		chromedp.SendKeys(chromedp.CSS("#editor-message"), "Warmer greeting"), click("#editor-save"))
	b.waitFor("saved", `document.querySelector('#editor-result').textContent.includes('Saved draft:pr-1')`, 30*time.Second)
	prURL := gh.URL + "/acme/prompts/pull/1"
	if got := b.text(`#editor-result a[target="_blank"]`); got != "Pull request" {
		t.Errorf("editor result links %q", got)
	}
	if href, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('#editor-result a[target="_blank"]').href`)); href != prURL {
		t.Errorf("editor links the pull request at %q, want %s", href, prURL)
	}
	prs := gh.PullRequests()
	if len(prs) != 1 || prs[0].State != "open" || prs[0].Head != "warmer-greeting" || prs[0].Base != "main" || prs[0].Title != "Warmer greeting" {
		t.Fatalf("fake GitHub's pull requests: %+v", prs)
	}
	mainBefore := gh.Git("rev-parse", "main")
	if got := gh.Git("show", "warmer-greeting:prompts/greet.yaml"); got != strings.TrimSuffix(typed, "\n") {
		t.Errorf("branch warmer-greeting holds\n%q\nwant what was typed\n%q", got, typed)
	}
	if got := gh.Git("rev-parse", "warmer-greeting", "refs/pull/1/head", "warmer-greeting^"); got != prs[0].HeadSHA+"\n"+prs[0].HeadSHA+"\n"+mainBefore {
		t.Errorf("branch head, pull request head, branch parent = %q; want %s twice, then main %s", got, prs[0].HeadSHA, mainBefore)
	}
	if got := gh.Git("log", "-1", "--format=%an|%s", "warmer-greeting"); got != "Ada Admin|Warmer greeting" {
		t.Errorf("commit author and subject: %q", got)
	}

	// The versions list links the draft to its pull request.
	do("versions", chromedp.Navigate(srv.URL+"/ui/#/p/greet"))
	row := `#versions tr[data-label="draft:pr-1"]`
	waitJS("draft row", `document.querySelector('`+row+` a.pr-link') !== null`)
	if href, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('`+row+` a.pr-link').href`)); href != prURL {
		t.Errorf("draft row links %q, want %s", href, prURL)
	}
	if got := text(row + " a.pr-link"); got != "PR #1" {
		t.Errorf("draft row's link says %q", got)
	}
	if res, err := http.Get(prURL); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("the pull request link: %v %v", res, err)
	} else {
		page, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.Contains(string(page), "Warmer greeting") {
			t.Errorf("the pull request page: %s", page)
		}
	}
	b.widths("github-versions-with-pr")

	// GitHub refuses the merge (required reviews): its reason is shown,
	// nothing moves.
	gh.RefuseMerges(&githubtest.Refusal{Status: http.StatusMethodNotAllowed, Message: "At least 1 approving review is required by reviewers with write access."})
	do("merge", click(row+` button[data-action="merge-and-promote"]`))
	waitJS("confirm", `document.querySelector('#confirm-dialog').open`)
	do("confirm", click("#confirm-ok"))
	b.waitFor("refusal shown", `document.querySelector('#toast').classList.contains('error') && document.querySelector('#toast').textContent.includes('approving review')`, 30*time.Second)
	if got := text("#toast"); !strings.Contains(got, "GitHub refused to merge pull request #1") {
		t.Errorf("refusal toast: %q", got)
	}
	b.screenshot("github-merge-refused")
	if got := gh.Git("rev-parse", "main"); got != mainBefore {
		t.Error("a refused merge moved main")
	}
	if got := text("#badge-live"); got != "v1" {
		t.Errorf("after the refusal live is %q", got)
	}

	// Merge and promote: a real merge on main, then the new live version.
	gh.RefuseMerges(nil)
	do("merge again", click(row+` button[data-action="merge-and-promote"]`))
	waitJS("confirm", `document.querySelector('#confirm-dialog').open`)
	do("confirm", click("#confirm-ok"))
	b.waitFor("live v2", `document.querySelector('#badge-live').textContent === 'v2' && document.querySelector('#toast').textContent === 'Merged draft:pr-1: live v1 → v2'`, 30*time.Second)
	merge := gh.Git("rev-parse", "main")
	if got := gh.Git("rev-parse", "main^1", "main^2"); got != mainBefore+"\n"+prs[0].HeadSHA {
		t.Errorf("main's parents %q, want main before %s and the draft %s", got, mainBefore, prs[0].HeadSHA)
	}
	if got := gh.Git("show", "main:prompts/greet.yaml"); got != strings.TrimSuffix(typed, "\n") {
		t.Errorf("main holds %q after the merge", got)
	}
	if pr := gh.PullRequests()[0]; !pr.Merged || pr.MergeCommitSHA != merge {
		t.Errorf("pull request after the merge: %+v", pr)
	}
	waitJS("draft gone", `document.querySelector('`+row+`') === null && document.querySelector('#versions tr[data-label="v2"].is-live') !== null`)
	if got := text(`#versions tr[data-label="v2"] td.sha`); !strings.HasPrefix(merge, got) || got == "" {
		t.Errorf("v2's commit %q, want the merge %s", got, merge)
	}
	// The promotion came from GitHub's side: the merged pull request's
	// delivery (signed, accepted) as the webhook worker applies it.
	var audit struct {
		Entries []struct{ Action, Actor, Key, Version, Commit string }
	}
	getJSON("/v1/admin/audit?limit=10", &audit)
	promoted := false
	for _, e := range audit.Entries {
		if e.Action == "promote" && e.Key == "greet" && e.Version == "v2" {
			promoted = e.Actor == "github:pr-1"
		}
	}
	if !promoted {
		t.Errorf("no promote of greet v2 by github:pr-1 in the audit log: %+v", audit.Entries)
	}
	for _, d := range gh.Deliveries() {
		if d.Status != http.StatusAccepted {
			t.Errorf("delivery %s %s answered %d %s", d.Event, d.Action, d.Status, d.Err)
		}
	}
	b.screenshot("github-merged")

	// Continue from v1 (now older than live) through the rollback dialog:
	// its text becomes a second pull request, branched from main.
	var v1 struct{ Source string }
	getJSON("/v1/admin/prompts/greet/versions/v1", &v1)
	do("rollback v1", click(`#versions tr[data-label="v1"] button[data-action="rollback"]`))
	waitJS("confirm", `document.querySelector('#confirm-dialog').open && !document.querySelector('#confirm-extra').hidden`)
	do("continue in the editor", click("#confirm-extra"))
	waitJS("editor", `!document.querySelector('#view-editor').hidden && document.querySelector('#editor-from').textContent.includes('v1')`)
	if got, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`edit.cm.getValue()`)); got != v1.Source || v1.Source == "" {
		t.Errorf("editor holds %q, want v1's source %q", got, v1.Source)
	}
	branch, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('#editor-branch').value`))
	waitJS("valid", `!document.querySelector('#editor-save').disabled`)
	do("save", chromedp.SendKeys(chromedp.CSS("#editor-message"), "Back to the first greeting"), click("#editor-save"))
	b.waitFor("saved", `document.querySelector('#editor-result').textContent.includes('Saved draft:pr-2')`, 30*time.Second)
	if prs := gh.PullRequests(); len(prs) != 2 || prs[1].Head != branch || prs[1].State != "open" {
		t.Errorf("after continuing from v1, pull requests: %+v", prs)
	}
	if got := gh.Git("show", branch+":prompts/greet.yaml"); got != strings.TrimSuffix(v1.Source, "\n") {
		t.Errorf("branch %s holds %q, want v1's source", branch, got)
	}
	if got := gh.Git("rev-parse", branch+"^"); got != merge {
		t.Errorf("the continued draft is based on %s, want main %s", got, merge)
	}
	if got := text("#badge-live"); got != "v2" {
		t.Errorf("continuing from v1 moved live to %q", got)
	}
	b.checkErrors()
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
