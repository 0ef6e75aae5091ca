package resolver

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/index/indextest"
)

// BenchmarkRead compares a read through the resolver with a handler that
// only writes the same bytes with Content-Type and Content-Length, the
// floor any handler pays. Both run on httptest.NewRecorder, so the
// difference in allocs/op is the resolver's own.
func BenchmarkRead(b *testing.B) {
	env := newTestEnv(b, Options{})
	req := readRequest(b, env)
	rec := httptest.NewRecorder()
	env.h.ServeHTTP(rec, req)
	doc := rec.Body.Bytes()
	fixed := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
		w.Write(doc)
	})
	type benchCase struct {
		name string
		h    http.Handler
		req  *http.Request
	}
	cases := []benchCase{{"baseline", fixed, req}, {"resolver", env.h, req}}
	// Reads come from memory whatever the engine: on PostgreSQL they must
	// cost what they cost on SQLite.
	if os.Getenv(indextest.Env) != "" {
		pg := newTestEnvAt(b, Options{}, indextest.Postgres(b))
		cases = append(cases, benchCase{"resolver-postgres", pg.h, readRequest(b, pg)})
	}
	for _, bm := range cases {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				bm.h.ServeHTTP(httptest.NewRecorder(), bm.req)
			}
		})
	}
}

// readRequest is a live read of support/summarize with env's live key,
// checked to answer 200.
func readRequest(b *testing.B, env *testEnv) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, PromptsPrefix+"support/summarize", nil)
	req.Header.Set("Authorization", "Bearer "+env.keys[index.KeyLive])
	rec := httptest.NewRecorder()
	env.h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		b.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	return req
}

// BenchmarkReadParallel is BenchmarkRead's resolver case from all CPUs at
// once: the snapshot is shared read-only, so it should scale.
func BenchmarkReadParallel(b *testing.B) {
	env := newTestEnv(b, Options{})
	req, _ := http.NewRequest(http.MethodGet, PromptsPrefix+"support/summarize", nil)
	req.Header.Set("Authorization", "Bearer "+env.keys[index.KeyLive])
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			env.h.ServeHTTP(httptest.NewRecorder(), req)
		}
	})
}
