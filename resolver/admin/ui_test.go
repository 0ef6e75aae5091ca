package admin

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/promptvault/promptvault/gitstore/gittest"
)

// TestDashboardInChromium drives the real dashboard in headless Chromium:
// sign in, search versions, open a side-by-side diff, promote, roll back,
// set staging, toggle the staging switch, read the audit log, sign out,
// checking what the page shows and what the index then holds.
func TestDashboardInChromium(t *testing.T) {
	e := newTestEnv(t)
	e.g.Write("prompts/support/summarize.yaml", gittest.Prompt("Summarize warmly, with <care> & detail"))
	e.g.Commit("Friendlier tone")
	e.sync(t) // summarize: v1 Ada, v2 Grace, v3 invalid, v4 Ada; live v2

	b := newBrowser(t, 1440)
	bctx, do, waitJS, text := b.ctx, b.do, b.wait, b.text
	start := time.Now()
	textIs := func(sel, want string) string {
		return fmt.Sprintf(`document.querySelector(%q) && document.querySelector(%q).textContent.trim() === %q`, sel, sel, want)
	}
	rowLabels := func() string {
		s, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`[...document.querySelectorAll('#versions tr')].map(r => r.dataset.label).join(',')`))
		return s
	}
	// Sign in: a wrong key is refused on the page, the admin key gets in.
	do("open the dashboard", chromedp.Navigate(e.srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#signin-key")))
	do("sign in with a live key", chromedp.SendKeys(chromedp.CSS("#signin-key"), e.keys["live"]), click("#signin-submit"))
	waitJS("live key refused", `document.querySelector('#signin-error').textContent.includes('cannot use')`)
	do("sign in", chromedp.Evaluate[chromedp.Void](`document.querySelector('#signin-key').value = ''`), chromedp.SendKeys(chromedp.CSS("#signin-key"), e.keys["admin"]),
		click("#signin-submit"))
	waitJS("prompt list", `document.querySelector('#prompt-list tr[data-key="support/summarize"]') !== null`)
	if got := text("#whoami"); got != e.keyIDs["admin"] {
		t.Errorf("signed in as %q, want %q", got, e.keyIDs["admin"])
	}
	if got := text(`#prompt-list tr[data-key="support/summarize"]`); !strings.Contains(got, "v2") || !strings.Contains(got, "v4") {
		t.Errorf("summarize row %q lacks live v2 and newest v4", got)
	}

	// The Versions tab: newest first, badges.
	do("open the prompt", click(`#prompt-list tr[data-key="support/summarize"] a`))
	waitJS("versions", `document.querySelectorAll('#versions tr').length === 4`)
	if got := rowLabels(); got != "v4,v3,v2,v1" {
		t.Errorf("versions shown %s, want newest first", got)
	}
	if got := text(`#versions tr[data-label="v2"] td.badges`); !strings.Contains(got, "live") {
		t.Errorf("v2 badges %q lack live", got)
	}
	if got := text(`#versions tr[data-label="v3"] td.badges`); !strings.Contains(got, "invalid") {
		t.Errorf("v3 badges %q lack invalid", got)
	}
	if got := text(`#versions tr[data-label="v4"] td.msg`); got != "Friendlier tone" {
		t.Errorf("v4 message %q", got)
	}

	// Search by author, then clear it.
	do("search", chromedp.SendKeys(chromedp.CSS("#version-search"), "grace"))
	waitJS("search results", `[...document.querySelectorAll('#versions tr')].map(r => r.dataset.label).join(',') === 'v2'`)
	do("clear search", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('#version-search'); s.value = ''; s.dispatchEvent(new Event('input')); })()`))
	waitJS("all versions again", `document.querySelectorAll('#versions tr').length === 4`)

	// A side-by-side diff of two chosen versions.
	do("pick v2 and v4", click(`#versions tr[data-label="v2"] td.pick input`),
		click(`#versions tr[data-label="v4"] td.pick input`), click("#compare"))
	waitJS("diff", `document.querySelectorAll('#diff-table tr.change').length === 1`)
	if got := text("#diff-summary"); got != "v2 → v4: +1 −1" {
		t.Errorf("diff summary %q", got)
	}
	left, right := text("#diff-table tr.change td.code.del"), text("#diff-table tr.change td.code.add")
	if left != "  Summarize briefly {{ input }}" || right != "  Summarize warmly, with <care> & detail {{ input }}" {
		t.Errorf("changed row: %q | %q (markup must show as text)", left, right)
	}
	b.screenshot("dashboard-diff")

	// Promote v4, then roll back to v1, confirming each in the dialog.
	do("versions tab", click("#tab-versions"),
		click(`#versions tr[data-label="v4"] button[data-action="promote"]`))
	waitJS("confirm dialog", `document.querySelector('#confirm-dialog').open`)
	if got := text("#confirm-text"); !strings.Contains(got, "from v2 to v4") {
		t.Errorf("promote confirmation says %q", got)
	}
	do("confirm promote", click("#confirm-ok"))
	waitJS("live is v4", textIs("#badge-live", "v4"))
	waitJS("promote toast", `document.querySelector('#toast').textContent === 'Live: v2 → v4'`)

	do("roll back", click(`#versions tr[data-label="v1"] button[data-action="rollback"]`))
	waitJS("confirm dialog", `document.querySelector('#confirm-dialog').open`)
	do("cancel", click("#confirm-cancel"))
	time.Sleep(100 * time.Millisecond)
	if got := text("#badge-live"); got != "v4" {
		t.Errorf("a cancelled rollback moved live to %s", got)
	}
	do("roll back again", click(`#versions tr[data-label="v1"] button[data-action="rollback"]`))
	waitJS("confirm dialog", `document.querySelector('#confirm-dialog').open`)
	do("confirm rollback", click("#confirm-ok"))
	waitJS("live is v1", textIs("#badge-live", "v1"))

	// Staging: point it at v4.
	do("stage v4", click(`#versions tr[data-label="v4"] button[data-action="stage"]`))
	waitJS("confirm dialog", `document.querySelector('#confirm-dialog').open`)
	do("confirm staging", click("#confirm-ok"))
	waitJS("staging is v4", textIs("#badge-staging", "v4"))
	b.screenshot("dashboard-versions")

	// Settings: switch staging off; the prompt page then says so.
	do("settings", click("#nav-settings"))
	waitJS("switch on", `document.querySelector('#staging-toggle').checked === true`)
	do("switch staging off", click("label.switch"))
	waitJS("switch off", `document.querySelector('#staging-state').textContent.includes('Staging is off')`)
	var st struct {
		StagingEnabled bool `json:"staging_enabled"`
	}
	e.get(t, "/v1/admin/settings").decode(t, &st)
	if st.StagingEnabled {
		t.Error("the switch did not turn staging off")
	}
	do("back to the prompt", chromedp.Navigate(e.srv.URL+"/ui/#/p/support/summarize"))
	waitJS("staging shown disabled", textIs("#badge-staging", "v4 (disabled)"))

	// The audit log shows what this session did, newest first, by its key.
	do("audit", click("#nav-audit"))
	waitJS("audit rows", `document.querySelectorAll('#audit tr').length >= 4`)
	rows, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#audit tr')].slice(0, 4).map(r => r.innerText)`))
	if err != nil {
		t.Fatal(err)
	}
	actor := "admin:" + e.keyIDs["admin"]
	for i, want := range []string{"settings", "staging_set", "rollback", "promote"} {
		if !strings.Contains(rows[i], want) || !strings.Contains(rows[i], actor) {
			t.Errorf("audit row %d = %q, want %s by %s", i, rows[i], want, actor)
		}
	}
	b.screenshot("dashboard-audit")

	// What the page did is what the index holds.
	var page vpage
	e.get(t, "/v1/admin/prompts/support/summarize/versions").decode(t, &page)
	if page.Live == nil || *page.Live != "v1" || page.Staging == nil || *page.Staging != "v4" || page.StagingEnabled {
		t.Errorf("index after the session: live %v staging %v enabled %v", page.Live, page.Staging, page.StagingEnabled)
	}

	// Sign out returns to the sign-in form; reloading stays signed out.
	do("sign out", click("#signout"))
	waitJS("signed out", `!document.querySelector('#view-signin').hidden`)
	do("reload", chromedp.Reload())
	waitJS("still signed out", `!document.querySelector('#view-signin').hidden && document.querySelector('#top').hidden`)

	b.checkErrors()
	t.Logf("browser session took %v", time.Since(start).Round(time.Millisecond))
}
