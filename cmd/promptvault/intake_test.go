package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/webhook"
)

// peakRSS is a process's high-water resident set (VmHWM) in bytes: the
// kernel keeps the peak, so no sampling can miss it.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc (%v): peak RSS is read from /proc/PID/status", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// filler is an endless body that costs the sender no memory.
type filler struct{}

func (filler) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// TestWebhookIntakeBoundedMemory: 16 concurrent posts of GitHub's largest
// body (25 MB) with a wrong signature raise serve's peak RSS by less than
// 100 MB (reading them whole, as before, took 400 MB) and store nothing.
func TestWebhookIntakeBoundedMemory(t *testing.T) {
	g := gittest.Sample(t)
	data := t.TempDir()
	p := startServe(t, data, "--repo", g.Dir, "--webhook-secret", "s3cret")
	pid := p.Cmd.Process.Pid
	before := peakRSS(t, pid)

	const posts = 16
	var wg sync.WaitGroup
	codes := make([]int, posts)
	for i := range posts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, p.base+"/webhooks/github", io.LimitReader(filler{}, webhook.MaxBody))
			req.ContentLength = webhook.MaxBody
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("big-%d", i))
			req.Header.Set("X-Hub-Signature-256", webhook.Sign([]byte("not the secret"), []byte("x")))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	after := peakRSS(t, pid)
	rejected := 0
	for _, c := range codes {
		switch c {
		case http.StatusUnauthorized:
			rejected++
		case http.StatusServiceUnavailable: // intake full for 10 s on a very busy machine
		default:
			t.Errorf("status %d, want 401 (or 503 when the intake is full)", c)
		}
	}
	if rejected == 0 {
		t.Error("no post was read and rejected")
	}
	growth := after - before
	t.Logf("serve peak RSS %d MB before, %d MB after %d concurrent 25 MB posts with a wrong signature: +%d MB",
		before>>20, after>>20, posts, growth>>20)
	if growth >= 100<<20 {
		t.Errorf("peak RSS grew by %d MB, want < 100 MB", growth>>20)
	}
	db, err := index.Open(context.Background(), filepath.Join(data, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(context.Background(), func(tx *index.Tx) error {
		if n, err := tx.CountDeliveries(context.Background(), ""); err != nil || n != 0 {
			t.Errorf("%d deliveries stored (%v), want none", n, err)
		}
		return nil
	})
}
