package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver"
)

// BenchmarkAccept measures deliveries accepted durably per second through
// the real handler over HTTP into SQLite with synchronous=FULL (group
// commit: concurrent requests share a transaction and its fsync). The
// baseline handler verifies the signature and answers 202 without storing.
func BenchmarkAccept(b *testing.B) {
	secret := []byte(testSecret)
	body := []byte(`{"action":"opened","number":1,"pull_request":{"number":1,"state":"open"}}`)
	sig := Sign(secret, body)
	baseline := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
		if !Verify(secret, r.Header.Get("X-Hub-Signature-256"), raw) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	db, err := index.Open(context.Background(), filepath.Join(b.TempDir(), "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rc, err := NewReceiver(ReceiverOptions{DB: db, Secret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"baseline", baseline}, {"inbox", rc}} {
		b.Run(c.name, func(b *testing.B) {
			srv := httptest.NewServer(c.h)
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			var n atomic.Int64
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("X-GitHub-Event", "pull_request")
					req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%s-%d", c.name, n.Add(1)))
					req.Header.Set("X-Hub-Signature-256", sig)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// TestMergeToServedLatency measures the time from posting a merged pull
// request delivery to the read API serving the new live document, with a
// local git server and the worker and resolver running as in serve. It
// prints the figure; it asserts only that the document arrives.
func TestMergeToServedLatency(t *testing.T) {
	e := newEnv(t, modeApp)
	h, err := resolver.New(e.ctx, resolver.Options{DB: e.db})
	if err != nil {
		t.Fatal(err)
	}
	go h.Run(e.ctx)
	if err := h.SetReady(e.ctx); err != nil {
		t.Fatal(err)
	}
	var key index.CreatedKey
	if err := e.db.Update(e.ctx, func(tx *index.Tx) error {
		var err error
		key, err = tx.CreateKey(e.ctx, "live", "latency", "test")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go e.w.Run(e.ctx)
	read := func() string {
		req := httptest.NewRequest(http.MethodGet, "/v1/prompts/greet", nil)
		req.Header.Set("Authorization", "Bearer "+key.Key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Body.String()
	}
	var samples []time.Duration
	for i := range 5 {
		text := fmt.Sprintf("Latency round %d", i)
		e.branch(fmt.Sprintf("l%d", i), map[string]string{"prompts/greet.yaml": gittest.Prompt(text)})
		pr := e.openPR(fmt.Sprintf("l%d", i), false)
		e.merge(pr.Number, "merge")
		start := time.Now()
		e.deliver("pull_request", prPayload("closed", e.gh.pr(pr.Number)))
		for !strings.Contains(read(), text) {
			if time.Since(start) > 30*time.Second {
				t.Fatalf("round %d: not served after 30 s: %s", i, read())
			}
			time.Sleep(time.Millisecond)
		}
		samples = append(samples, time.Since(start))
	}
	t.Logf("merged-PR delivery → new live document served: %v (5 rounds)", samples)
}
