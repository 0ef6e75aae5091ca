package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func TestDashboardEditorInChromium(t *testing.T) {
	b := newBrowser(t, 1400)
	do, waitJS, text, widths := b.do, b.wait, b.text, b.widths
	e := newTestEnv(t)
	e.cfg.BranchDrafts = true
	// The server pushes draft branches to this working copy; it must not
	// have them checked out (git refuses that).
	e.g.Git("checkout", "-q", "-b", "scratch")

	do("open", chromedp.Navigate(e.srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#signin-key")),
		chromedp.SendKeys(chromedp.CSS("#signin-key"), e.keys["admin"]), click("#signin-submit"))
	waitJS("prompt list", `document.querySelector('#prompt-list tr[data-key="greet"]') !== null`)

	// The versions list (a draft row among them) fits at every width.
	do("open greet", chromedp.Navigate(e.srv.URL+"/ui/#/p/greet"))
	waitJS("greet versions", `document.querySelectorAll('#versions tr').length === 2`)
	if got := text(`#versions tr[data-label="v1"] td.sha256`); len(got) != 12 {
		t.Errorf("SHA-256 cell %q", got)
	}
	widths("versions")

	// Clicking a version row opens its source with line numbers and metadata.
	do("open v1", click(`#versions tr[data-label="v1"] td.msg`))
	waitJS("version page", `!document.querySelector('#view-version').hidden && document.querySelectorAll('#version-source tr').length === 4`)
	if got := text(`#version-source tr[data-line="4"]`); !strings.HasPrefix(got, "4") || !strings.Contains(got, "Hello {{ input }}") {
		t.Errorf("source line 4 = %q", got)
	}
	if meta := text("#version-meta"); !strings.Contains(meta, "SHA-256") || !strings.Contains(meta, "prompts/greet.yaml") {
		t.Errorf("metadata: %q", meta)
	}
	if f := text("#version-fields"); !strings.Contains(f, "gpt-4o") || !strings.Contains(f, "0.2") {
		t.Errorf("parsed fields: %q", f)
	}
	widths("source")

	// The audit log's version cells open versions too.
	do("audit", click("#nav-audit"))
	waitJS("audit rows", `document.querySelector('#audit a[href*="?v=v1"]') !== null`)
	widths("audit")

	// Edit: an error shows at its line as you type, then the fix clears it.
	do("edit from v1", chromedp.Navigate(e.srv.URL+"/ui/#/p/greet?v=v1"))
	waitJS("version page", `document.querySelector('#version-edit') !== null`)
	do("open the editor", click("#version-edit"))
	waitJS("editor", `!document.querySelector('#view-editor').hidden && document.querySelector('#editor').shadowRoot?.querySelector('.cm-content') != null`)
	do("type an error", chromedp.Evaluate[chromedp.Void](`edit.cm.setValue("model: gpt-4o\ntemperature: 9\ntemplate: |\n  Hello {{ name }}, welcome.\n")`))
	waitJS("problem at line 2", `document.querySelector('#editor-problems li[data-line="2"]') !== null && document.querySelector('#editor').shadowRoot?.querySelector('.cm-lintRange-error') != null`)
	if got := text("#editor-problems"); !strings.Contains(got, "temperature") {
		t.Errorf("problem list: %q", got)
	}
	widths("editor")
	do("fix it", chromedp.Evaluate[chromedp.Void](`edit.cm.setValue("model: gpt-4o\ntemperature: 0.4\ntemplate: |\n  Hello {{ name }}, welcome.\n")`))
	waitJS("no problems", `document.querySelectorAll('#editor-problems li').length === 0 && document.querySelector('#editor').shadowRoot?.querySelector('.cm-lintRange-error') == null`)

	// Preview with variables.
	do("variables", chromedp.Evaluate[chromedp.Void](`document.querySelector('#editor-vars').value = '{"name": "Ada"}'`),
		click("#editor-preview"))
	waitJS("preview", `document.querySelector('#preview-out pre') !== null`)
	if got := text("#preview-out pre"); strings.TrimSpace(got) != "Hello Ada, welcome." {
		t.Errorf("preview = %q", got)
	}

	// Save the draft on a branch, stage it, read it with a test key.
	do("save", chromedp.Evaluate[chromedp.Void](`document.querySelector('#editor-branch').value = 'welcome-ada'`),
		chromedp.SendKeys(chromedp.CSS("#editor-message"), "Welcome by name"), click("#editor-save"))
	waitJS("saved", `document.querySelector('#editor-result').textContent.includes('Saved draft:welcome-ada')`)
	if got := e.g.Git("log", "-1", "--format=%an %s", "welcome-ada"); got != "test admin Welcome by name" {
		t.Errorf("branch commit: %q", got)
	}
	do("versions", chromedp.Navigate(e.srv.URL+"/ui/#/p/greet"))
	waitJS("draft listed", `document.querySelector('#versions tr[data-label="draft:welcome-ada"] button[data-action="stage"]') !== null`)
	do("stage the draft", click(`#versions tr[data-label="draft:welcome-ada"] button[data-action="stage"]`))
	waitJS("confirm", `document.querySelector('#confirm-dialog').open`)
	do("confirm", click("#confirm-ok"))
	waitJS("staged", `document.querySelector('#badge-staging').textContent === 'draft:welcome-ada'`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/prompts/greet", nil)
		req.Header.Set("Authorization", "Bearer "+e.keys["test"])
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Version string
			Prompt  struct{ Template string }
		}
		json.NewDecoder(res.Body).Decode(&doc)
		res.Body.Close()
		if doc.Version == "draft:welcome-ada" && strings.Contains(doc.Prompt.Template, "Hello {{ name }}") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("test key reads %+v, want the staged draft", doc)
		}
		time.Sleep(20 * time.Millisecond)
	}
	widths("versions-with-draft")

	b.checkErrors()
}

// TestRollbackContinueInEditor: the rollback dialog offers to continue
// from the older version in the editor instead of rolling back; the editor
// shows that version's exact source under a suggested draft name, and
// saving it makes a draft (a commit on a new branch from the tracked
// branch) holding that content, while live stays where it was.
func TestRollbackContinueInEditor(t *testing.T) {
	b := newBrowser(t, 1400)
	do, waitJS, text := b.do, b.wait, b.text
	e := newTestEnv(t) // support/summarize: v1, v2 (live), v3 invalid
	// The server pushes draft branches to this working copy; it must not
	// have them checked out (git refuses that).
	e.g.Git("checkout", "-q", "-b", "scratch")
	var v1 struct{ Source, Commit string }
	e.get(t, "/v1/admin/prompts/support/summarize/versions/v1").decode(t, &v1)
	if v1.Source == "" {
		t.Fatal("v1 has no source")
	}

	do("open", chromedp.Navigate(e.srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#signin-key")),
		chromedp.SendKeys(chromedp.CSS("#signin-key"), e.keys["admin"]), click("#signin-submit"))
	waitJS("prompt list", `document.querySelector('#prompt-list tr[data-key="support/summarize"]') !== null`)
	do("open summarize", chromedp.Navigate(e.srv.URL+"/ui/#/p/support/summarize"))
	waitJS("versions", `document.querySelector('#versions tr[data-label="v1"] button[data-action="rollback"]') !== null`)

	// The rollback dialog offers the editor beside rolling back.
	do("rollback v1", click(`#versions tr[data-label="v1"] button[data-action="rollback"]`))
	waitJS("confirm dialog", `document.querySelector('#confirm-dialog').open && !document.querySelector('#confirm-extra').hidden`)
	if got := text("#confirm-extra"); got != "Continue from v1 in the editor" {
		t.Errorf("third button says %q", got)
	}
	b.screenshot("rollback-dialog")
	do("continue in the editor", click("#confirm-extra"))
	waitJS("editor", `!document.querySelector('#view-editor').hidden && edit.cm != null && document.querySelector('#editor-from').textContent.includes('v1')`)
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`edit.cm.getValue()`))
	if err != nil {
		t.Fatal(err)
	}
	if got != v1.Source {
		t.Errorf("editor holds\n%q\nwant v1's source\n%q", got, v1.Source)
	}
	branch, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('#editor-branch').value`))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^summarize-from-v1-\d{12}$`).MatchString(branch) {
		t.Errorf("suggested draft name %q, want summarize-from-v1-YYYYMMDDHHMM", branch)
	}
	var page vpage
	e.get(t, "/v1/admin/prompts/support/summarize/versions").decode(t, &page)
	if page.Live == nil || *page.Live != "v2" {
		t.Errorf("choosing the editor moved live to %v", page.Live)
	}

	// Save it as it is: the draft holds v1's exact content.
	waitJS("valid", `!document.querySelector('#editor-save').disabled`)
	do("save", chromedp.SendKeys(chromedp.CSS("#editor-message"), "Back to the v1 wording"), click("#editor-save"))
	waitJS("saved", `document.querySelector('#editor-result').textContent.includes('Saved draft:`+branch+`')`)
	if got := e.g.Git("show", branch+":prompts/support/summarize.yaml"); got != strings.TrimSuffix(v1.Source, "\n") {
		t.Errorf("branch %s holds\n%q\nwant\n%q", branch, got, v1.Source)
	}
	if parent, main := e.g.Git("rev-parse", branch+"^"), e.g.Git("rev-parse", "main"); parent != main {
		t.Errorf("the draft's commit sits on %s, want the tracked branch's head %s", parent, main)
	}
	do("versions", chromedp.Navigate(e.srv.URL+"/ui/#/p/support/summarize"))
	label := "draft:" + branch
	waitJS("draft listed", `document.querySelector('#versions tr[data-label="`+label+`"]') !== null`)
	do("open the draft", click(`#versions tr[data-label="`+label+`"] td.msg`))
	waitJS("draft page", `!document.querySelector('#view-version').hidden && document.querySelector('#version-label').textContent === '`+label+`'`)
	lines, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#version-source td.code')].map(c => c.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, "\n") + "\n"; got != v1.Source {
		t.Errorf("the draft's source page shows\n%q\nwant\n%q", got, v1.Source)
	}
	var d struct{ Source string }
	e.get(t, "/v1/admin/prompts/support/summarize/versions/"+url.PathEscape(label)).decode(t, &d)
	if d.Source != v1.Source {
		t.Errorf("the index holds %q for %s, want v1's source", d.Source, label)
	}
	b.checkErrors()
}
