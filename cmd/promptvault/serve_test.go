package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promptvault/promptvault/cmd/promptvault/pvtest"
	"github.com/promptvault/promptvault/gitstore/gittest"
)

func binary(t testing.TB) string { return pvtest.Binary(t) }

// serveProc is a running `promptvault serve` subprocess.
type serveProc struct {
	*pvtest.Server
	base string
}

// startServe runs serve on a free loopback port and waits until /readyz
// answers 200; the process is killed by PID when the test ends.
func startServe(t testing.TB, data string, extra ...string) *serveProc {
	t.Helper()
	s := pvtest.Serve(t, append([]string{"--data", data, "--addr", "127.0.0.1:0"}, extra...)...)
	return &serveProc{Server: s, base: s.URL}
}

func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return pvtest.WaitFor(t, limit, what, cond)
}

// get reads a prompt with key and returns the status and decoded body.
func (p *serveProc) get(t testing.TB, key, path string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", p.base+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET %s: %d, body not JSON: %q", path, resp.StatusCode, body)
	}
	return resp.StatusCode, m
}

func createKey(t testing.TB, data, env string) (id, key string) {
	t.Helper()
	var k struct{ ID, Key string }
	decode(t, ok(t, "keys", "create", "--env", env, "--json", "--data", data), &k)
	return k.ID, k.Key
}

func TestServeSeesCLIChangesWithinASecond(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "sync", "--data", data, "--repo", g.Dir)
	liveID, live := createKey(t, data, "live")
	_, test := createKey(t, data, "test")
	srv := startServe(t, data)
	const path = "/v1/prompts/support/summarize"

	if code, doc := srv.get(t, live, path); code != 200 || doc["version"] != "v2" || doc["env"] != "live" {
		t.Fatalf("live read: %d %v", code, doc)
	}
	served := func(key, field, want string) func() bool {
		return func() bool { _, doc := srv.get(t, key, path); return doc[field] == want }
	}
	// Every CLI change below runs in this test process, a different
	// process from the server; the server must notice on its own.
	ok(t, "rollback", "support/summarize", "v1", "--data", data)
	d := waitFor(t, 10*time.Second, "rollback served", served(live, "version", "v1"))
	t.Logf("rollback served after %v", d)

	ok(t, "staging", "set", "support/summarize", "v2", "--data", data)
	d = waitFor(t, 10*time.Second, "staging served", served(test, "env", "staging"))
	t.Logf("staging set served after %v", d)
	if _, doc := srv.get(t, live, path); doc["version"] != "v1" {
		t.Errorf("setting staging changed live: %v", doc["version"])
	}

	ok(t, "settings", "set", "staging", "off", "--data", data)
	d = waitFor(t, 10*time.Second, "staging off served", served(test, "env", "live"))
	t.Logf("staging off served after %v", d)

	ok(t, "keys", "revoke", liveID, "--data", data)
	d = waitFor(t, 10*time.Second, "revocation", func() bool { code, _ := srv.get(t, live, path); return code == 401 })
	t.Logf("revocation enforced after %v", d)

	_, fresh := createKey(t, data, "live")
	d = waitFor(t, 10*time.Second, "new key accepted", func() bool { code, _ := srv.get(t, fresh, path); return code == 200 })
	t.Logf("new key accepted after %v", d)

	if code, _ := srv.get(t, "", "/healthz"); code != 200 {
		t.Errorf("healthz = %d", code)
	}
}

func TestConcurrentPointerMovesFromTwoProcesses(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "sync", "--data", data, "--repo", g.Dir)
	_, live := createKey(t, data, "live")
	srv := startServe(t, data)
	bin := binary(t)
	for round := 0; round < 5; round++ {
		ctx := context.Background()
		a := exec.CommandContext(ctx, bin, "promote", "support/summarize", "v2", "--data", data)
		b := exec.CommandContext(ctx, bin, "rollback", "support/summarize", "v1", "--data", data)
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		a.Wait()
		b.Wait() // rollback may be refused when promote ran second; either order is fine
	}
	var log struct {
		Entries []struct{ Action, Key, Env, Version string }
	}
	decode(t, ok(t, "audit", "--json", "--limit", "1000", "--data", data), &log)
	var last string
	for _, e := range log.Entries {
		if e.Key == "support/summarize" && e.Env == "live" && (e.Action == "promote" || e.Action == "rollback") {
			last = e.Version
			break
		}
	}
	if last != "v1" && last != "v2" {
		t.Fatalf("newest audit entry = %q", last)
	}
	waitFor(t, 10*time.Second, "server agrees with the audit log", func() bool {
		_, doc := srv.get(t, live, "/v1/prompts/support/summarize")
		return doc["version"] == last
	})
}

func TestDemoBuildsARealisticSample(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	out := ok(t, "demo", "--dir", dir, "--no-serve")
	for _, want := range []string{"6 commits, 7 versions, 1 draft)", "curl -s -H 'Authorization: Bearer pv_live_", "pv_test_", "pv_admin_"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	data := filepath.Join(dir, "data")
	var vs struct {
		Versions []struct {
			Version string
			Valid   bool
			Author  string
		}
	}
	decode(t, ok(t, "versions", "marketing/tagline", "--json", "--data", data), &vs)
	if len(vs.Versions) != 2 || vs.Versions[0].Valid || !strings.HasPrefix(vs.Versions[0].Author, "Linus") {
		t.Errorf("tagline versions = %+v", vs)
	}
	if out := ok(t, "versions", "support/summarize", "--data", data); !strings.Contains(out, "draft:tone-experiment") {
		t.Errorf("no branch draft:\n%s", out)
	}
	// Running demo again starts over; a directory demo did not make is refused.
	ok(t, "demo", "--dir", dir, "--no-serve")
	other := t.TempDir()
	fails(t, "not made by demo", "demo", "--dir", other, "--no-serve")
}

// TestServeFollowsEveryCLIChange runs serve as a subprocess and makes every
// kind of change from this process, as an operator's CLI would beside it:
// a sync of new commits (auto-promoted on push), staging on a draft, the
// draft's branch moving, promote, rollback, staging clear and a key
// revocation. Each must be served within a second of the command
// returning, and a reader hammering the server all along must never get a
// 5xx.
func TestServeFollowsEveryCLIChange(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "sync", "--data", data, "--repo", g.Dir)
	liveID, live := createKey(t, data, "live")
	_, test := createKey(t, data, "test")
	srv := startServe(t, data)

	// The reader: both prompts with both keys, in a loop, until the end.
	var (
		mu     sync.Mutex
		bad    []string
		reads  int
		stopCh = make(chan struct{})
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		hc := &http.Client{Timeout: 10 * time.Second}
		for i := 0; ; i++ {
			select {
			case <-stopCh:
				return
			default:
			}
			key := []string{live, test}[i%2]
			path := []string{"/v1/prompts/support/summarize", "/v1/prompts/greet"}[(i/2)%2]
			req, _ := http.NewRequest("GET", srv.base+path, nil)
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := hc.Do(req)
			if err != nil {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("GET %s: %v", path, err))
				mu.Unlock()
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			reads++
			if resp.StatusCode >= 500 {
				bad = append(bad, fmt.Sprintf("GET %s: %d %s", path, resp.StatusCode, body))
			}
			mu.Unlock()
		}
	}()
	stop := func() {
		select {
		case <-stopCh:
		default:
			close(stopCh)
		}
		<-done
	}
	defer stop()

	doc := func(key, path string) (int, map[string]any) { return srv.get(t, key, path) }
	field := func(key, path, name string) string {
		_, d := doc(key, path)
		switch v := d[name].(type) {
		case string:
			return v
		case map[string]any:
			return fmt.Sprint(v["template"])
		}
		return ""
	}
	const summarize, greet = "/v1/prompts/support/summarize", "/v1/prompts/greet"
	for _, step := range []struct {
		name   string
		change func()
		served func() bool
	}{
		{"sync of a new commit, auto-promoted", func() {
			g.Write("prompts/support/summarize.yaml", gittest.Prompt("Summarize in one line"))
			g.Commit("One line")
			ok(t, "sync", "--data", data)
		}, func() bool {
			return field(live, summarize, "version") == "v4" && strings.Contains(field(live, summarize, "prompt"), "one line")
		}},
		{"staging set to a draft", func() {
			ok(t, "staging", "set", "greet", "draft:tone", "--data", data)
		}, func() bool {
			return field(test, greet, "version") == "draft:tone" && strings.Contains(field(test, greet, "prompt"), "Hi there")
		}},
		{"the draft's branch moves; staging follows", func() {
			g.Git("checkout", "-q", "tone")
			g.Write("prompts/greet.yaml", gittest.Prompt("Hey there"))
			g.Commit("Even friendlier")
			g.Git("checkout", "-q", "main")
			ok(t, "sync", "--data", data)
		}, func() bool { return strings.Contains(field(test, greet, "prompt"), "Hey there") }},
		{"rollback", func() {
			ok(t, "rollback", "support/summarize", "v1", "--data", data)
		}, func() bool { return field(live, summarize, "version") == "v1" }},
		{"promote", func() {
			ok(t, "promote", "support/summarize", "v2", "--data", data)
		}, func() bool { return field(live, summarize, "version") == "v2" }},
		{"staging clear", func() {
			ok(t, "staging", "clear", "greet", "--data", data)
		}, func() bool { return field(test, greet, "env") == "live" && field(test, greet, "version") == "v1" }},
		{"keys revoke", func() {
			ok(t, "keys", "revoke", liveID, "--data", data)
		}, func() bool { code, _ := doc(live, summarize); return code == http.StatusUnauthorized }},
	} {
		step.change()
		// SPEC §5: served within a second, plus whatever time serve and
		// this test (the reader polling) spent waiting for a CPU: on a
		// busy machine the bound is on what serve does, not on how busy
		// the machine is.
		start, wait0 := time.Now(), pvtest.CPUWait(srv.Cmd.Process.Pid, os.Getpid())
		var waited time.Duration
		for !step.served() {
			waited = pvtest.CPUWait(srv.Cmd.Process.Pid, os.Getpid()) - wait0
			if time.Since(start) > time.Second+waited {
				t.Fatalf("%s: not served within a second plus the %v serve and this test waited for a CPU", step.name, waited)
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Logf("%s: served after %v (%v waiting for a CPU)", step.name, time.Since(start).Round(time.Millisecond), waited.Round(time.Millisecond))
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("%d of %d reads failed, first: %s", len(bad), reads, bad[0])
	}
	t.Logf("%d reads during the changes, none 5xx", reads)
}
