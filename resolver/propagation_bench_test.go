package resolver

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/promptvault/promptvault/index"
	client "github.com/promptvault/promptvault/sdk/go"
)

// BenchmarkPropagation measures, with 100 SSE subscribers and one SDK
// client on a real HTTP server, the time from a promotion committed to the
// index (as the admin API does) to (a) the event at every subscriber and
// (b) the SDK's cache serving the new version. It reports p50/p99 over the
// iterations; "poll" is the resolver's change-feed poll interval, which
// dominates. Peers' SDKs poll on a 60–300 s TTL.
func BenchmarkPropagation(b *testing.B) {
	for _, poll := range []time.Duration{DefaultPollInterval, 50 * time.Millisecond} {
		b.Run("poll="+poll.String(), func(b *testing.B) { benchPropagation(b, poll) })
	}
}

func benchPropagation(b *testing.B, poll time.Duration) {
	env := newTestEnv(b, Options{PollInterval: poll})
	const n = 100
	tr := &http.Transport{MaxIdleConnsPerHost: n + 10}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	subs := make([]*sseClient, n)
	for i := range subs {
		subs[i] = subscribeTo(b, env.srv.URL, hc, env.keys[index.KeyLive], "")
	}
	const key = "support/summarize"
	updated := make(chan string, 16)
	sdk, err := client.New(env.srv.URL, env.keys[index.KeyLive], client.WithHTTPClient(hc),
		client.WithOnUpdate(func(p *client.Prompt) {
			if p.Key == key {
				updated <- p.Version
			}
		}))
	if err != nil {
		b.Fatal(err)
	}
	defer sdk.Close()
	if _, err := sdk.Get(context.Background(), key); err != nil {
		b.Fatal(err)
	}
	<-updated
	for !sdk.Connected() {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	// A changed stream may first revalidate everything once.
	for len(updated) > 0 {
		<-updated
	}

	var evLat, sdkLat []time.Duration
	label := "v1"
	for b.Loop() {
		start := time.Now()
		if label == "v1" {
			env.update(b, rollback(key, "v1"))
		} else {
			env.update(b, promote(key, "v2"))
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var slowest time.Duration
		for _, c := range subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ev := c.next(b)
				if ev.data.Version != label {
					b.Errorf("event %+v, want %s", ev.data, label)
				}
				mu.Lock()
				slowest = max(slowest, ev.at.Sub(start))
				mu.Unlock()
			}()
		}
		for v := range updated {
			if v == label {
				break
			}
		}
		sdkLat = append(sdkLat, time.Since(start))
		wg.Wait()
		evLat = append(evLat, slowest)
		if p, _ := sdk.Get(context.Background(), key); p.Version != label {
			b.Fatalf("SDK serves %s after its update to %s", p.Version, label)
		}
		label = map[string]string{"v1": "v2", "v2": "v1"}[label]
	}
	report := func(name string, d []time.Duration) {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(d[(len(d)*99)/100].Microseconds())/1000, name+"-p99-ms")
	}
	report("event", evLat)
	report("sdk", sdkLat)
}
