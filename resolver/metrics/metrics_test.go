package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func route(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/v1/prompts/") {
		return "/v1/prompts/{key}"
	}
	return "other"
}

func TestInstrumentCountsByRouteMethodAndStatus(t *testing.T) {
	h := Instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/prompts/a":
			w.Write([]byte("{}")) // implicit 200
		case "/v1/prompts/gone":
			w.WriteHeader(http.StatusNotFound)
		default:
			// writes nothing: net/http answers 200
		}
	}), route)
	ok := httpRequests.WithLabelValues("/v1/prompts/{key}", "GET", "200")
	nf := httpRequests.WithLabelValues("/v1/prompts/{key}", "GET", "404")
	other := httpRequests.WithLabelValues("other", "other", "200")
	ok0, nf0, other0 := testutil.ToFloat64(ok), testutil.ToFloat64(nf), testutil.ToFloat64(other)
	for _, p := range []string{"/v1/prompts/a", "/v1/prompts/a", "/v1/prompts/gone"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("BREW", "/x", nil))
	if got := testutil.ToFloat64(ok) - ok0; got != 2 {
		t.Errorf("200s = %v, want 2", got)
	}
	if got := testutil.ToFloat64(nf) - nf0; got != 1 {
		t.Errorf("404s = %v, want 1", got)
	}
	if got := testutil.ToFloat64(other) - other0; got != 1 {
		t.Errorf("unknown method counted as %v under other, want 1", got)
	}
}

func TestInstrumentKeepsFlusherAndUnwrap(t *testing.T) {
	h := Instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); !ok {
			t.Error("wrapped writer is not an http.Flusher")
		}
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("ResponseController.Flush: %v", err)
		}
	}), route)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/events", nil))
	if !rec.Flushed {
		t.Error("flush did not reach the underlying writer")
	}
}

// The read path must stay allocation-free: an instrumented request for a
// series already seen allocates nothing beyond what the handler does.
func TestInstrumentDoesNotAllocate(t *testing.T) {
	body := []byte("{}")
	h := Instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }), route)
	req := httptest.NewRequest("GET", "/v1/prompts/a", nil)
	w := &nopWriter{h: http.Header{}}
	h.ServeHTTP(w, req)
	if n := testing.AllocsPerRun(200, func() { h.ServeHTTP(w, req) }); n != 0 {
		t.Errorf("allocations per instrumented request = %v, want 0", n)
	}
	if n := testing.AllocsPerRun(200, func() { Read(EnvLive); Read(EnvStaging); Read(EnvPinned) }); n != 0 {
		t.Errorf("allocations per Read = %v, want 0", n)
	}
}

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

func TestHelpersAndExposition(t *testing.T) {
	before := testutil.ToFloat64(pointerMoves.WithLabelValues("other", "staging"))
	PointerMove("something_new", "staging")
	if got := testutil.ToFloat64(pointerMoves.WithLabelValues("other", "staging")) - before; got != 1 {
		t.Errorf("unknown action counted %v times under other, want 1", got)
	}
	RenderError("render_failed")
	WebhookDelivery("accepted")
	SetWebhookQueueDepth(3)
	done := SSESubscribe()
	if got := testutil.ToFloat64(sseSubscribers); got != 1 {
		t.Errorf("sse_subscribers = %v, want 1", got)
	}
	done()
	done() // idempotent
	if got := testutil.ToFloat64(sseSubscribers); got != 0 {
		t.Errorf("sse_subscribers after close = %v, want 0", got)
	}
	ObserveSync(time.Now().Add(-time.Second), nil)
	ObserveSync(time.Now(), errors.New("fetch failed"))
	if got := testutil.ToFloat64(syncLastSuccess); got < float64(time.Now().Unix()-5) {
		t.Errorf("sync_last_success_timestamp_seconds = %v", got)
	}

	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"promptvault_http_requests_total", "promptvault_http_request_duration_seconds_bucket",
		"promptvault_reads_total", "promptvault_render_errors_total", "promptvault_pointer_moves_total",
		"promptvault_sync_duration_seconds_bucket", "promptvault_sync_last_success_timestamp_seconds",
		"promptvault_webhook_deliveries_total", "promptvault_webhook_queue_depth 3",
		"promptvault_sse_subscribers 0", "go_goroutines",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
