package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromium finds a Chromium or Chrome binary (Debian's chromium, installed
// by .ci/run, first).
func chromium() string {
	for _, p := range []string{"/usr/lib/chromium/chromium", "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}

// browser is one headless Chromium session for a dashboard test: its
// context, and the script errors (exceptions, console.error, which CSP
// refusals surface as) seen so far.
type browser struct {
	t   testing.TB
	ctx context.Context

	mu     sync.Mutex
	errors []string
	shots  []string // screenshots written, for the closing log line
}

// newBrowser starts Chromium at width x 900, or skips the test without it.
func newBrowser(t testing.TB, width int) *browser {
	t.Helper()
	exe := chromium()
	if exe == "" {
		t.Skip("no Chromium found (tried /usr/lib/chromium/chromium, /usr/bin/chromium, chromium, chromium-browser, google-chrome): " +
			"install Debian's chromium (apt-get install -y chromium; .ci/run does this as root) to run the dashboard test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.WindowSize(width, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	b := &browser{t: t, ctx: bctx}
	if err := chromedp.Listen(bctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.errors = append(b.errors, "exception: "+ev.ExceptionDetails.Text+" "+describeException(ev.ExceptionDetails))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.errors = append(b.errors, "console.error: "+strings.Join(parts, " "))
			}
		}
	}); err != nil {
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	t.Cleanup(func() {
		if len(b.shots) > 0 {
			t.Logf("screenshots:\n%s", strings.Join(b.shots, "\n"))
		}
	})
	return b
}

func describeException(d *runtime.ExceptionDetails) string {
	if d == nil || d.Exception == nil {
		return ""
	}
	b, _ := json.Marshal(d.Exception.Description)
	return string(b)
}

// do runs steps, failing the test on an error.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// wait polls until the JavaScript expression is true.
func (b *browser) wait(what, expr string) {
	b.t.Helper()
	b.waitFor(what, expr, 10*time.Second)
}

// waitFor is wait with its own limit, for steps that wait on another
// process (a webhook delivery, a fetch); the limit only keeps a broken
// build from hanging, it is not what the test checks.
func (b *browser) waitFor(what, expr string, limit time.Duration) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(limit))); err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('main').innerText`))
		b.t.Fatalf("%s: waiting for %s: %v\npage shows:\n%s", what, expr, err, text)
	}
}

// text is the text content of the first element matching sel ("" if none).
func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
	if err != nil {
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

// checkErrors fails the test for every script error the page had.
func (b *browser) checkErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		b.t.Errorf("script errors in the page:\n%s", strings.Join(b.errors, "\n"))
	}
}

// screenshotDir is where dashboard tests write their screenshots:
// $PV_SCREENSHOTS, or pv-dashboard-shots in the temporary directory. Not
// t.TempDir: a reviewer opens them after the test has ended. Each test
// logs the paths it wrote.
func screenshotDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PV_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "pv-dashboard-shots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// screenshot writes the whole page as name.png in screenshotDir.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // 100 gives a PNG; less, a JPEG
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(screenshotDir(b.t), name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	b.shots = append(b.shots, p)
	b.mu.Unlock()
	return p
}

// layoutCheck is JavaScript that reports, for every visible table of the
// page, header cells that do not sit over their column (x of th vs x of
// the first full row's td) and cells that end past the window's right edge
// (in every row, so a wide draft row cannot hide behind a narrow first one).
const layoutCheck = `(() => {
  const out = [];
  for (const t of document.querySelectorAll('main table')) {
    if (!t.offsetParent || !t.tHead) continue;
    const name = t.id || t.className;
    const ths = [...t.tHead.rows[0].cells].filter(c => c.offsetParent);
    const rows = [...t.tBodies[0].rows].filter(r => r.cells.length === t.tHead.rows[0].cells.length);
    if (!rows.length) continue;
    const tds = [...rows[0].cells].filter(c => c.offsetParent);
    if (ths.length !== tds.length) out.push(name + ": " + ths.length + " header cells over " + tds.length + " columns");
    ths.forEach((th, i) => {
      const a = th.getBoundingClientRect(), b = tds[i] && tds[i].getBoundingClientRect();
      if (b && Math.abs(a.left - b.left) > 1) out.push(name + ": header " + th.innerText + " at x=" + a.left + ", its column at x=" + b.left);
    });
    for (const r of rows) {
      for (const c of r.cells) {
        if (!c.offsetParent) continue;
        const x = c.getBoundingClientRect();
        if (x.right > window.innerWidth + 1) out.push(name + ": row " + (r.dataset.label || r.rowIndex) + " cell " + c.className + " ends at x=" + x.right + " past the window (" + window.innerWidth + ")");
      }
    }
  }
  return out;
})()`

// widths screenshots the page as page-W.png at 1024, 1400 and 1920 px
// and fails on headers that misalign with their columns or cells that end
// off the window.
func (b *browser) widths(page string) {
	b.t.Helper()
	for _, w := range []int64{1024, 1400, 1920} {
		b.do("resize", chromedp.EmulateViewport(w, 900))
		b.wait("layout at width", fmt.Sprintf("window.innerWidth === %d", w))
		problems, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](layoutCheck))
		if err != nil {
			b.t.Fatal(err)
		}
		for _, p := range problems {
			b.t.Errorf("%s at %d px: %s", page, w, p)
		}
		b.screenshot(fmt.Sprintf("%s-%d", page, w))
	}
	b.do("reset size", chromedp.EmulateReset())
}

// click clicks the first element matching the CSS selector sel. The
// dashboard may re-render a section between chromedp finding the node and
// clicking it (a list refreshed by the event stream, a page drawn once from
// cache and again from the answer); the click then fails with "Could not
// find node with given id" although the element is there. Such a click is
// tried again on the element as it is now; any other failure is returned.
func click(sel string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		var err error
		for range 5 {
			if _, err = chromedp.Click(chromedp.CSS(sel))(ctx, t); err == nil || !staleNode(err) {
				return chromedp.Void{}, err
			}
		}
		return chromedp.Void{}, fmt.Errorf("click %s: the element kept being replaced: %w", sel, err)
	}
}

// staleNode reports whether err says the node chromedp found is gone from
// the document (replaced by a re-render).
func staleNode(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Could not find node with given id") || strings.Contains(s, "Node is detached from document") ||
		strings.Contains(s, "No node with given id found")
}
