package conformance_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/promptvault/promptvault/cmd/promptvault/pvtest"
	"github.com/promptvault/promptvault/gitstore/gittest"
	client "github.com/promptvault/promptvault/sdk/go"
)

func pv(t testing.TB, args ...string) string { return pvtest.Run(t, args...) }

// serve starts `promptvault serve` on addr and returns its base URL and
// process; it is killed by PID when the test ends.
func serve(t testing.TB, data, addr string) (string, *exec.Cmd) {
	t.Helper()
	s := pvtest.Serve(t, "--data", data, "--addr", addr, "--reconcile-every", "1h")
	return s.URL, s.Cmd
}

func waitFor(t testing.TB, what string, cond func() bool) time.Duration {
	t.Helper()
	return pvtest.WaitFor(t, 15*time.Second, what, cond)
}

func version(t testing.TB, c *client.Client, key string) string {
	t.Helper()
	p, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	return p.Version
}

// TestClientAgainstServe runs the SDK against a real server process:
// cache refresh on a CLI rollback, render, serving the last good copy once
// the server is killed, a cold start from the snapshot file with the
// server down, and resuming the stream (with what was missed) after a
// restart.
func TestClientAgainstServe(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git CLI not installed")
	}
	g := gittest.New(t)
	g.Write("prompts/greet.yaml", "template: \"Hello {{ name }}\"\ninput_schema: {type: object, properties: {name: {type: string, default: you}}}\n")
	g.Commit("greet v1")
	g.Write("prompts/greet.yaml", "template: \"Hi {{ name }}\"\n")
	g.Commit("greet v2")
	g.Write("prompts/greet.yaml", "template: \"Hey {{ name }}\"\n")
	g.Commit("greet v3")
	data := filepath.Join(t.TempDir(), "data")
	pv(t, "sync", "--data", data, "--repo", g.Dir)
	pv(t, "rollback", "greet", "v2", "--data", data)
	var k struct{ Key string }
	if err := json.Unmarshal([]byte(pv(t, "keys", "create", "--env", "live", "--json", "--data", data)), &k); err != nil {
		t.Fatal(err)
	}
	base, proc := serve(t, data, "127.0.0.1:0")
	snap := filepath.Join(t.TempDir(), "prompts.json")

	c, err := client.New(base, k.Key, client.WithSnapshotFile(snap), client.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
		client.WithRevalidateEvery(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v := version(t, c, "greet"); v != "v2" {
		t.Fatalf("first Get: %s", v)
	}
	waitFor(t, "stream connected", c.Connected)

	// A CLI rollback in another process reaches the cache through the
	// event stream.
	pv(t, "rollback", "greet", "v1", "--data", data)
	d := waitFor(t, "cache serving v1", func() bool { return version(t, c, "greet") == "v1" })
	t.Logf("CLI rollback served from the SDK cache after %v", d)

	r, err := c.Render(context.Background(), "greet", map[string]any{})
	if err != nil || r.Version != "v1" || len(r.Messages) != 1 || r.Messages[0].Content != "Hello you" {
		t.Fatalf("Render: %+v %v", r, err)
	}
	_, err = c.Render(context.Background(), "greet", map[string]any{"name": 5})
	var se *client.Error
	if !errors.As(err, &se) || se.Status != 422 || se.Code != "validation_failed" || len(se.Errors) != 1 || se.Errors[0].Path != "/name" {
		t.Fatalf("Render with a wrong type: %v", err)
	}
	if p, err := c.Refresh(context.Background(), "greet"); err != nil || p.Version != "v1" || p.ETag == "" {
		t.Fatalf("Refresh (304 path): %+v %v", p, err)
	}
	if _, err := c.Get(context.Background(), "nope"); !errors.As(err, &se) || se.Status != 404 {
		t.Fatalf("Get unknown: %v", err)
	}

	// The server dies: the last good copy keeps being served.
	syscall.Kill(proc.Process.Pid, syscall.SIGKILL)
	proc.Wait()
	waitFor(t, "stream down", func() bool { return !c.Connected() })
	for range 5 {
		if v := version(t, c, "greet"); v != "v1" {
			t.Fatalf("with the server dead, Get = %s", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.Refresh(context.Background(), "greet"); err == nil {
		t.Error("Refresh with the server dead succeeded")
	}

	// A new process starts from the snapshot file while the server is down.
	cold, err := client.New(base, k.Key, client.WithSnapshotFile(snap), client.WithBackoff(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cold.Close()
	if v := version(t, cold, "greet"); v != "v1" {
		t.Fatalf("cold start from snapshot: %s", v)
	}

	// A promotion while the server is down; the restarted server replays
	// it to the resuming stream.
	pv(t, "promote", "greet", "v3", "--data", data)
	u, _ := url.Parse(base)
	serve(t, data, u.Host)
	d = waitFor(t, "cache serving v3 after restart", func() bool { return version(t, c, "greet") == "v3" })
	t.Logf("promotion made while the server was down served %v after restart", d)
	waitFor(t, "cold client catches up", func() bool { return version(t, cold, "greet") == "v3" })
}
