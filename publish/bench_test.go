package publish_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/publish"
)

// arrivals is a receiver that records when each webhook-id first arrived.
type arrivals struct {
	*httptest.Server
	mu   sync.Mutex
	at   map[string]time.Time
	cond *sync.Cond
}

func newArrivals(b testing.TB) *arrivals {
	a := &arrivals{at: map[string]time.Time{}}
	a.cond = sync.NewCond(&a.mu)
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		var buf bytes.Buffer
		buf.ReadFrom(r.Body)
		id := r.Header.Get("webhook-id") + r.URL.Path
		a.mu.Lock()
		if _, seen := a.at[id]; !seen {
			a.at[id] = now
		}
		a.cond.Broadcast()
		a.mu.Unlock()
	}))
	b.Cleanup(a.Close)
	return a
}

// waitN blocks until n distinct deliveries have arrived.
func (a *arrivals) waitN(n int) {
	a.mu.Lock()
	for len(a.at) < n {
		a.cond.Wait()
	}
	a.mu.Unlock()
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

// baselines holds each benchmark's baseline figure of this run, so the
// measured sub-benchmark reports its ratio next to it.
var baselines sync.Map // benchmark name → float64

func ratio(b *testing.B, name string, v float64) {
	if base, ok := baselines.Load(name); ok && base.(float64) > 0 {
		b.ReportMetric(v/base.(float64), "x-baseline")
	}
}

// percentiles reports p50 and p99 and returns p50 in ms.
func percentiles(b *testing.B, lat []time.Duration) float64 {
	slices.Sort(lat)
	if len(lat) == 0 {
		return 0
	}
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	return p(0.50)
}

// BenchmarkChangeToDelivered: a pointer change committed, then delivered to
// a local receiver. baseline commits the change and posts a signed body
// itself in the same goroutine (no outbox, no retries, nothing durable);
// outbox is the real path: the event row commits with the change and the
// worker, woken by the change feed, sends it. Run with -benchtime=1000x for
// the 1,000-change p50/p99.
func BenchmarkChangeToDelivered(b *testing.B) {
	b.Run("baseline", func(b *testing.B) {
		e := newEnv(b)
		a := newArrivals(b)
		const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		client := &http.Client{}
		var lat []time.Duration
		for i := 0; b.Loop(); i++ {
			start := time.Now()
			e.flip(b)
			body := []byte(`{"type":"prompt.promoted","timestamp":"` + start.UTC().Format(time.RFC3339Nano) + `","data":{}}`)
			id := "msg_" + strconv.Itoa(i)
			sig, _ := publish.Sign(secret, id, strconv.FormatInt(start.Unix(), 10), body)
			req, _ := http.NewRequest("POST", a.URL, bytes.NewReader(body))
			req.Header.Set("webhook-id", id)
			req.Header.Set("webhook-signature", sig)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			lat = append(lat, time.Since(start))
		}
		baselines.Store("change", percentiles(b, lat))
	})
	b.Run("outbox", func(b *testing.B) {
		e := newEnv(b)
		a := newArrivals(b)
		e.addHook(b, index.NewHook{URL: a.URL})
		e.run(b, publish.Options{})
		var lat []time.Duration
		for i := 0; b.Loop(); i++ {
			start := time.Now()
			e.flip(b)
			a.waitN(i + 1)
			lat = append(lat, time.Since(start))
		}
		ratio(b, "change", percentiles(b, lat)) // p50 against the baseline's p50
	})
}

// BenchmarkSustained: changes committed back to back while the worker
// drains them to one endpoint; events/s is deliveries per second of wall
// time until the last arrives. baseline posts the same number of bodies
// sequentially without the index.
func BenchmarkSustained(b *testing.B) {
	const n = 500
	b.Run("baseline", func(b *testing.B) {
		a := newArrivals(b)
		client := &http.Client{}
		for b.Loop() {
			start := time.Now()
			base := a.count()
			for i := range n {
				req, _ := http.NewRequest("POST", a.URL, bytes.NewReader([]byte(`{}`)))
				req.Header.Set("webhook-id", fmt.Sprintf("msg_%d_%d", base, i))
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
			a.waitN(base + n)
			rate := n / time.Since(start).Seconds()
			b.ReportMetric(rate, "events/s")
			baselines.Store("sustained", rate)
		}
	})
	b.Run("outbox", func(b *testing.B) {
		e := newEnv(b)
		a := newArrivals(b)
		e.addHook(b, index.NewHook{URL: a.URL})
		e.run(b, publish.Options{})
		for b.Loop() {
			start := time.Now()
			base := a.count()
			for range n {
				e.flip(b)
			}
			a.waitN(base + n)
			rate := n / time.Since(start).Seconds()
			b.ReportMetric(rate, "events/s")
			ratio(b, "sustained", rate)
		}
	})
}

// BenchmarkDrain: 500 events already queued (committed while no worker
// ran, as after an outage), then one worker drains them to one endpoint:
// the sender's own rate, without the producer's commits in the way.
func BenchmarkDrain(b *testing.B) {
	const n = 500
	for b.Loop() {
		b.StopTimer()
		e := newEnv(b)
		a := newArrivals(b)
		e.addHook(b, index.NewHook{URL: a.URL})
		for range n {
			e.flip(b)
		}
		b.StartTimer()
		start := time.Now()
		e.run(b, publish.Options{})
		a.waitN(n)
		b.ReportMetric(n/time.Since(start).Seconds(), "events/s")
	}
}

// BenchmarkFanOut: 100 endpoints (each its own path on one local server,
// so each has its own queue and sender); one op is one pointer change
// until all 100 have it. baseline is the same with 1 endpoint.
func BenchmarkFanOut(b *testing.B) {
	for _, endpoints := range []int{1, 100} {
		b.Run(fmt.Sprintf("endpoints=%d", endpoints), func(b *testing.B) {
			e := newEnv(b)
			a := newArrivals(b)
			for i := range endpoints {
				e.addHook(b, index.NewHook{URL: fmt.Sprintf("%s/e%d", a.URL, i)})
			}
			e.run(b, publish.Options{})
			var lat []time.Duration
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				e.flip(b)
				a.waitN((i + 1) * endpoints)
				lat = append(lat, time.Since(start))
			}
			p50 := percentiles(b, lat)
			if endpoints == 1 {
				baselines.Store("fanout", p50)
			} else {
				ratio(b, "fanout", p50)
			}
			b.ReportMetric(float64(endpoints*len(lat))/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
