package webhook

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"

	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/resolver/metrics"
)

// scrape reads one sample from the real /metrics handler.
func scrape(t *testing.T, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no sample %s in /metrics", series)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDeliveriesAreCounted(t *testing.T) {
	e := newEnv(t, modeApp)
	e.branch("f", map[string]string{"prompts/greet.yaml": gittest.Prompt("Hi there")})
	pr := e.openPR("f", false)
	body := []byte(mustJSON(t, prPayload("opened", e.gh.pr(pr.Number))))
	state := func(s string) float64 { return scrape(t, `promptvault_webhook_deliveries_total{state="`+s+`"}`) }
	acc, dup, proc, rej := state("accepted"), state("duplicate"), state("processed"), state("rejected")

	e.post("pull_request", "metrics-guid", body, "application/json")
	e.post("pull_request", "metrics-guid", body, "application/json")
	if got := scrape(t, "promptvault_webhook_queue_depth"); got < 0 {
		t.Fatalf("queue depth %v", got)
	}
	e.drain()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", nil)
	req.Header.Set("X-GitHub-Event", "ping")
	rec := httptest.NewRecorder()
	e.rc.ServeHTTP(rec, req) // unsigned: rejected
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("unsigned delivery: %d", rec.Code)
	}

	for _, c := range []struct {
		state string
		delta float64
		from  float64
	}{{"accepted", 1, acc}, {"duplicate", 1, dup}, {"processed", 1, proc}, {"rejected", 1, rej}} {
		if got := state(c.state) - c.from; got != c.delta {
			t.Errorf("%s grew by %v, want %v", c.state, got, c.delta)
		}
	}
	if got := scrape(t, "promptvault_webhook_queue_depth"); got != 0 {
		t.Errorf("queue depth after draining = %v, want 0", got)
	}
}
