package admin

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/promptvault/promptvault/index"
)

// TestWebhooksPageInChromium drives the dashboard's Webhooks page: add an
// endpoint (the secret is shown once), ping it, open its delivery log,
// remove it; and the Slack messages' diff link opens that diff.
func TestWebhooksPageInChromium(t *testing.T) {
	e := newTestEnv(t)
	b := newBrowser(t, 1440)
	do, waitJS := b.do, b.wait

	do("open the dashboard", chromedp.Navigate(e.srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#signin-key")))
	do("sign in", chromedp.SendKeys(chromedp.CSS("#signin-key"), e.keys["admin"]), click("#signin-submit"))
	waitJS("prompt list", `document.querySelector('#prompt-list tr') !== null`)
	do("webhooks", click("#nav-webhooks"))
	waitJS("event choices", `document.querySelectorAll('#wh-events input').length === 5`)
	do("fill the form", chromedp.SendKeys(chromedp.CSS("#wh-url"), "https://hooks.example.com/pv"),
		chromedp.SendKeys(chromedp.CSS("#wh-description"), "deploy pipeline"),
		click(`#wh-events input[value="prompt.promoted"]`),
		click("#wh-add"))
	waitJS("secret shown", `document.querySelector('#wh-secret-value').textContent.startsWith('whsec_')`)
	hooks := e.hooks(t)
	if len(hooks) != 1 || hooks[0].URL != "https://hooks.example.com/pv" || strings.Join(hooks[0].Events, ",") != index.EventPromoted ||
		hooks[0].Description != "deploy pipeline" {
		t.Fatalf("index holds %+v", hooks)
	}
	id := hooks[0].ID
	waitJS("row listed", `document.querySelector('#wh-list tr[data-webhook="`+id+`"]') !== null`)
	do("test", click(`#wh-list tr[data-webhook="`+id+`"] button`))
	waitJS("ping in the log", `[...document.querySelectorAll('#wh-deliveries tr')].some(r => r.innerText.includes('ping'))`)
	do("remove", chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('#wh-list tr button')].find(b => b.textContent === 'Remove').click()`))
	waitJS("confirm dialog", `document.querySelector('#confirm-dialog').open`)
	do("confirm", click("#confirm-ok"))
	waitJS("row gone", `document.querySelector('#wh-list tr') === null && !document.querySelector('#wh-empty').hidden`)
	if n := len(e.hooks(t)); n != 0 {
		t.Errorf("%d endpoints left after Remove", n)
	}

	// The link a Slack message carries opens the diff of the change.
	do("diff link", chromedp.Navigate(e.srv.URL+"/ui/#/p/support/summarize?diff=v1..v2"))
	waitJS("diff shown", `document.querySelector('#diff-summary').textContent.startsWith('v1 → v2')`)

	b.checkErrors()
}
