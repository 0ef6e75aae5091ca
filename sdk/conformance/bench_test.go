package conformance_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// BenchmarkSDK measures each SDK against a real serve: a cached get
// (ns/op, with a lock-guarded map read in the same language as the
// baseline) and the time from a promotion (admin API) until the SDK's get
// serves the new version, p50/p99 over b.N promotions, beside the time the
// same event takes to reach a bare SSE subscriber in this process (the
// baseline: what is left is the SDK's refetch). Run:
//
//	go test -run '^$' -bench BenchmarkSDK -benchtime 100x ./sdk/conformance/
func BenchmarkSDK(b *testing.B) {
	s := loadSuite(b)
	for _, l := range languages(b) {
		b.Run(l.name, func(b *testing.B) { benchSDK(b, s, l) })
	}
}

func benchSDK(b *testing.B, s *suite, l language) {
	e := newEnv(b, s)
	d := l.start(b)
	const key = "greet"
	if a := d.call(b, map[string]any{"op": "open", "client": "a", "base_url": e.url, "api_key": e.keys["live"],
		"revalidate_ms": 3600000}); !a.OK {
		b.Fatalf("open: %+v", a.Error)
	}
	a := d.call(b, map[string]any{"op": "bench_get", "client": "a", "key": key, "n": 200000})
	var g struct{ SDKNs, BaselineNs float64 }
	if err := json.Unmarshal(a.Result, &struct {
		SDK  *float64 `json:"sdk_ns"`
		Base *float64 `json:"baseline_ns"`
	}{&g.SDKNs, &g.BaselineNs}); err != nil || !a.OK {
		b.Fatalf("bench_get: %s %+v", a.Result, a.Error)
	}
	for !connected(b, d) {
		time.Sleep(time.Millisecond)
	}
	events := subscribe(b, e.url, e.keys["live"])

	var sdkLat, evLat []time.Duration
	want := "v3" // live is v2: promote to v3, roll back to v2, and so on
	b.ResetTimer()
	for range b.N {
		action := map[string]string{"v3": "promote", "v2": "rollback"}[want]
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/admin/prompts/"+key+"/"+action, strings.NewReader(`{"version":"`+want+`"}`))
		req.Header.Set("Authorization", "Bearer "+e.keys["admin"])
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("%s %s: %s", action, want, res.Status)
		}
		if a := d.call(b, map[string]any{"op": "wait_version", "client": "a", "key": key, "version": want}); !a.OK {
			b.Fatalf("wait_version: %+v", a.Error)
		}
		sdkLat = append(sdkLat, time.Since(start))
		for ev := range events {
			if ev.version == want {
				evLat = append(evLat, ev.at.Sub(start))
				break
			}
		}
		want = map[string]string{"v3": "v2", "v2": "v3"}[want]
	}
	b.StopTimer()
	p50, p99 := percentiles(sdkLat)
	e50, e99 := percentiles(evLat)
	b.ReportMetric(g.SDKNs, "get-ns/op")
	b.ReportMetric(g.BaselineNs, "baseline-get-ns/op")
	b.ReportMetric(g.SDKNs/g.BaselineNs, "get-vs-baseline-x")
	b.ReportMetric(p50, "promote-p50-ms")
	b.ReportMetric(p99, "promote-p99-ms")
	b.ReportMetric(e50, "event-p50-ms")
	b.ReportMetric(e99, "event-p99-ms")
	b.ReportMetric(p50/e50, "p50-vs-event-x")
}

func connected(b testing.TB, d *driver) bool {
	a := d.call(b, map[string]any{"op": "connected", "client": "a"})
	var r struct{ Connected bool }
	json.Unmarshal(a.Result, &r)
	return r.Connected
}

func percentiles(d []time.Duration) (p50, p99 float64) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	return ms(d[len(d)/2]), ms(d[(len(d)*99)/100])
}

type event struct {
	version string
	at      time.Time
}

// subscribe follows /v1/events as a bare client: the baseline for how
// soon a promotion can be known at all.
func subscribe(b testing.TB, base, key string) <-chan event {
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { res.Body.Close() })
	ch := make(chan event, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev struct{ Version string }
				if json.Unmarshal([]byte(v), &ev) == nil {
					ch <- event{ev.Version, time.Now()}
				}
			}
		}
	}()
	return ch
}
