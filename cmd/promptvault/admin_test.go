package main

import (
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDiffCommand(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "sync", "--data", data, "--repo", g.Dir)

	out := ok(t, "diff", "support/summarize", "v1", "v2", "--data", data)
	want := "--- prompts/support/summarize.yaml\tv1\n+++ prompts/support/summarize.yaml\tv2\n@@ -1,3 +1,3 @@\n" +
		" model: gpt-4o\n temperature: 0.2\n template: |\n-  Summarize {{ input }}\n+  Summarize briefly {{ input }}\n"
	if !strings.HasPrefix(out, "--- prompts/support/summarize.yaml\tv1\n") || !strings.Contains(out, "-  Summarize {{ input }}\n+  Summarize briefly {{ input }}\n") {
		t.Errorf("diff v1 v2:\n%s\nwant like:\n%s", out, want)
	}
	if out := ok(t, "diff", "support/summarize", "v2", "2", "--data", data); out != "" {
		t.Errorf("identical versions printed %q", out)
	}
	var doc struct {
		Key       string
		Identical bool
		Added     int
		Removed   int
		From, To  struct{ Version string }
		Rows      []struct {
			Kind        string
			Left, Right *struct {
				Line int
				Text string
			}
		}
	}
	decode(t, ok(t, "diff", "greet", "v1", "draft:tone", "--json", "--data", data), &doc)
	if doc.Key != "greet" || doc.Identical || doc.Added != 1 || doc.Removed != 1 || doc.From.Version != "v1" || doc.To.Version != "draft:tone" {
		t.Errorf("diff --json = %+v", doc)
	}
	var change int
	for _, r := range doc.Rows {
		if r.Kind == "change" {
			change++
			if r.Left.Text != "  Hello {{ input }}" || r.Right.Text != "  Hi there {{ input }}" {
				t.Errorf("change row = %+v %+v", r.Left, r.Right)
			}
		}
	}
	if change != 1 {
		t.Errorf("%d change rows, want 1: %+v", change, doc.Rows)
	}
	fails(t, "v9", "diff", "greet", "v1", "v9", "--data", data)
	fails(t, "not vN or draft:NAME", "diff", "greet", "v1", "latest", "--data", data)
	fails(t, "accepts 3 arg(s)", "diff", "greet", "v1", "--data", data)
}

// serve mounts the admin API, the dashboard, the OpenAPI document and
// /metrics, and the metrics count what the server and the CLI beside it do.
func TestServeAdminAndMetrics(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "sync", "--data", data, "--repo", g.Dir)
	_, live := createKey(t, data, "live")
	_, adminKey := createKey(t, data, "admin")
	srv := startServe(t, data)

	call := func(method, path, key, body string) (int, http.Header, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, srv.base+path, rd)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}

	if code, hdr, body := call("GET", "/ui/", "", ""); code != 200 || !strings.Contains(body, "promptvault") ||
		!strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("GET /ui/: %d %v", code, hdr)
	}
	if code, _, body := call("GET", "/v1/openapi.json", "", ""); code != 200 || !strings.Contains(body, `"openapi": "3.1.0"`) {
		t.Errorf("GET /v1/openapi.json: %d", code)
	}
	if code, _, _ := call("GET", "/v1/admin/prompts", live, ""); code != 403 {
		t.Errorf("live key on the admin API: %d", code)
	}
	if code, _, body := call("GET", "/v1/admin/prompts", adminKey, ""); code != 200 || !strings.Contains(body, `"support/summarize"`) {
		t.Errorf("admin prompts: %d %s", code, body)
	}
	// Sync now picks up a new commit.
	g.Write("prompts/greet.yaml", "template: Good day {{ input }}\n")
	g.Commit("Politer greeting")
	if code, _, body := call("POST", "/v1/admin/sync", adminKey, ""); code != 200 || !strings.Contains(body, `"version": "v2"`) && !strings.Contains(body, `"version":"v2"`) {
		t.Errorf("admin sync: %d %s", code, body)
	}
	// A promotion through the API and a rollback from the CLI process.
	if code, _, body := call("POST", "/v1/admin/prompts/greet/promote", adminKey, `{"version":"v2"}`); code != 200 {
		t.Errorf("promote: %d %s", code, body)
	}
	ok(t, "rollback", "greet", "v1", "--data", data)
	for i := 0; i < 3; i++ {
		call("GET", "/v1/prompts/support/summarize", live, "")
	}
	call("GET", "/v1/prompts/support/summarize?version=v1", live, "")

	metric := func(body, name string, labels ...string) float64 {
		for _, line := range strings.Split(body, "\n") {
			if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
				continue
			}
			match := true
			for _, l := range labels {
				match = match && strings.Contains(line, l)
			}
			if match {
				v, _ := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
				return v
			}
		}
		return -1
	}
	var body string
	waitFor(t, 10*time.Second, "pointer moves counted", func() bool {
		_, _, body = call("GET", "/metrics", "", "")
		return metric(body, "promptvault_pointer_moves_total", `action="rollback"`, `env="live"`) >= 1 &&
			metric(body, "promptvault_pointer_moves_total", `action="promote"`, `env="live"`) >= 1
	})
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"promptvault_reads_total", []string{`env="live"`}, 3},
		{"promptvault_reads_total", []string{`env="pinned"`}, 1},
		{"promptvault_http_requests_total", []string{`route="/v1/prompts/{key}"`, `method="GET"`, `code="200"`}, 4},
		{"promptvault_http_requests_total", []string{`route="/v1/admin/prompts"`, `code="403"`}, 1},
		{"promptvault_http_requests_total", []string{`route="/v1/admin/prompts/{key}/promote"`, `method="POST"`, `code="200"`}, 1},
		{"promptvault_http_request_duration_seconds_count", []string{`route="/v1/prompts/{key}"`}, 4},
		{"promptvault_sync_duration_seconds_count", []string{`result="ok"`}, 2},
		{"promptvault_sync_last_success_timestamp_seconds", nil, float64(time.Now().Add(-time.Hour).Unix())},
		{"promptvault_webhook_queue_depth", nil, 0},
		{"promptvault_sse_subscribers", nil, 0},
	} {
		if got := metric(body, c.name, c.labels...); got < c.min {
			t.Errorf("%s%v = %v, want ≥ %v", c.name, c.labels, got, c.min)
		}
	}
	// No key material in the metrics.
	for _, k := range []string{live, adminKey, "pv_live_", "pv_admin_"} {
		if strings.Contains(body, k) {
			t.Errorf("/metrics contains %q", k)
		}
	}
	if regexp.MustCompile(`route="/v1/prompts/support`).MatchString(body) {
		t.Error("a raw path became a route label")
	}
}
