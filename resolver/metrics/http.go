package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Instrument wraps the server's root handler, counting every request in
// http_requests_total and timing it in http_request_duration_seconds under
// the route template route returns (a constant such as
// "/v1/prompts/{key}", never the raw path, so series stay bounded).
//
// It allocates nothing per request once a (route, method, code) series has
// been seen: the response recorder comes from a pool and the series are
// resolved once into a map keyed by comparable values.
func Instrument(next http.Handler, route func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := recorders.Get().(*recorder)
		rec.ResponseWriter, rec.code = w, 0
		defer func() {
			code := rec.code
			if code == 0 {
				code = http.StatusOK // nothing written: net/http sends 200
			}
			rec.ResponseWriter = nil
			recorders.Put(rec)
			rt := route(r)
			requestCounter(rt, r.Method, code).Inc()
			durationObserver(rt).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(rec, r)
	})
}

var recorders = sync.Pool{New: func() any { return new(recorder) }}

// recorder remembers the status a handler sends. It unwraps (for
// http.NewResponseController) and flushes (for handlers that assert
// http.Flusher), so event streams work through it.
type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 && code >= 200 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

type seriesKey struct {
	route, method string
	code          int
}

var (
	seriesMu  sync.RWMutex
	counters  = map[seriesKey]prometheus.Counter{}
	observers = map[string]prometheus.Observer{}
)

func requestCounter(route, method string, code int) prometheus.Counter {
	k := seriesKey{route, methodLabel(method), code}
	seriesMu.RLock()
	c := counters[k]
	seriesMu.RUnlock()
	if c != nil {
		return c
	}
	c = httpRequests.WithLabelValues(k.route, k.method, statusLabel(code))
	seriesMu.Lock()
	counters[k] = c
	seriesMu.Unlock()
	return c
}

func durationObserver(route string) prometheus.Observer {
	seriesMu.RLock()
	o := observers[route]
	seriesMu.RUnlock()
	if o != nil {
		return o
	}
	o = httpDuration.WithLabelValues(route)
	seriesMu.Lock()
	observers[route] = o
	seriesMu.Unlock()
	return o
}
