package admin

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/promptvault/promptvault/resolver/metrics"
)

// BenchmarkRead compares a prompt read through the bare resolver with the
// same read through serve's metrics middleware (route label, status,
// latency): the instrumentation must add no allocation.
func BenchmarkRead(b *testing.B) {
	e := newTestEnv(b)
	req, _ := http.NewRequest(http.MethodGet, "/v1/prompts/support/summarize", nil)
	req.Header.Set("Authorization", "Bearer "+e.keys["live"])
	for _, bm := range []struct {
		name string
		h    http.Handler
	}{{"resolver", e.res}, {"instrumented", metrics.Instrument(e.res, Route)}} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bm.h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
