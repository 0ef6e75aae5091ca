package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/webhook"
)

func TestOwnerName(t *testing.T) {
	for in, want := range map[string]string{
		"https://github.com/acme/prompts.git":       "acme/prompts",
		"https://github.com/acme/prompts":           "acme/prompts",
		"https://ghe.example.com/team/p.git":        "team/p",
		"http://127.0.0.1:4000/acme/prompts.git":    "acme/prompts",
		"git@github.com:acme/prompts.git":           "acme/prompts",
		"https://x-access-token@github.com/a/b.git": "a/b",
	} {
		o, n, err := ownerName(in)
		if err != nil || o+"/"+n != want {
			t.Errorf("ownerName(%q) = %s/%s %v, want %s", in, o, n, err, want)
		}
	}
	if _, _, err := ownerName("/srv/prompts"); err == nil {
		t.Error("ownerName of a local path: want an error")
	}
}

func TestServeRefusesGitHubModeWithoutSecret(t *testing.T) {
	dir := t.TempDir()
	fails(t, "needs --webhook-secret", "serve", "--data", dir, "--addr", "127.0.0.1:0",
		"--repo", "https://github.com/acme/prompts.git", "--github-token", "ghp_x")
}

func TestRollbackOpenPRNeedsGitHubMode(t *testing.T) {
	g := sample(t)
	dir := t.TempDir()
	ok(t, "sync", "--data", dir, "--repo", g.Dir)
	fails(t, "needs GitHub mode", "rollback", "--data", dir, "--open-pr", "greet", "v1")
	// Refused before live moved.
	out := ok(t, "audit", "--data", dir, "--json")
	if strings.Contains(out, `"rollback"`) {
		t.Errorf("rollback audited although --open-pr was refused:\n%s", out)
	}
}

// postDelivery posts a delivery signed with the test secret to serve.
func postDelivery(t *testing.T, p *serveProc, event, guid string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.base+"/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", guid)
	req.Header.Set("X-Hub-Signature-256", webhook.Sign([]byte("s3cret"), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// indexHolds polls the index until cond holds.
func indexHolds(t *testing.T, db *index.DB, what string, cond func(tx *index.Tx) (bool, error)) {
	t.Helper()
	waitFor(t, 30*time.Second, what, func() bool {
		var ok bool
		err := db.View(context.Background(), func(tx *index.Tx) error {
			var err error
			ok, err = cond(tx)
			return err
		})
		return err == nil && ok
	})
}

// TestKilledBetweenAcceptAndProcessing: serve accepts a merged pull request
// delivery (202), starts it, and is killed with SIGKILL before it can
// fetch (the test holds the data directory's sync lock). After a restart
// the delivery is processed exactly once.
func TestKilledBetweenAcceptAndProcessing(t *testing.T) {
	g := gittest.New(t)
	g.Write("prompts/greet.yaml", gittest.Prompt("Hello"))
	g.Commit("initial")
	g.Git("checkout", "-q", "-b", "f")
	g.Write("prompts/greet.yaml", gittest.Prompt("Merged while down"))
	head := g.Commit("change")
	g.Git("update-ref", "refs/pull/7/head", head)
	g.Git("checkout", "-q", "main")

	data := t.TempDir()
	args := []string{"--repo", g.Dir, "--webhook-secret", "s3cret", "--auto-promote", "merged-pr"}
	p := startServe(t, data, args...)
	db, err := index.Open(context.Background(), filepath.Join(data, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	indexHolds(t, db, "bootstrap", func(tx *index.Tx) (bool, error) { return tx.Bootstrapped(context.Background()) })
	// Merged after the first sync, so the promotion is the delivery's.
	g.Git("merge", "-q", "--no-ff", "-m", "Merge pull request #7", "f")
	mc := g.Head()

	lock, err := os.OpenFile(filepath.Join(data, "sync.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{"action": "closed", "number": 7, "pull_request": map[string]any{
		"number": 7, "state": "closed", "merged": true, "merge_commit_sha": mc, "labels": []any{},
		"head": map[string]any{"ref": "f", "sha": head}, "base": map[string]any{"ref": "main", "sha": mc}}})
	if code := postDelivery(t, p, "pull_request", "crash-guid", payload); code != http.StatusAccepted {
		t.Fatalf("delivery: %d", code)
	}
	indexHolds(t, db, "processing", func(tx *index.Tx) (bool, error) {
		d, err := tx.Delivery(context.Background(), "crash-guid")
		return d.State == index.DeliveryProcessing, err
	})
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.Cmd.Wait()
	lock.Close()

	p2 := startServe(t, data, args...)
	indexHolds(t, db, "done", func(tx *index.Tx) (bool, error) {
		d, err := tx.Delivery(context.Background(), "crash-guid")
		return d.State == index.DeliveryDone, err
	})
	// A redelivery after the restart is a duplicate.
	if code := postDelivery(t, p2, "pull_request", "crash-guid", payload); code != http.StatusAccepted {
		t.Fatalf("redelivery: %d", code)
	}
	time.Sleep(200 * time.Millisecond)
	var promotes int
	var live index.Pointer
	db.View(context.Background(), func(tx *index.Tx) error {
		all, _ := tx.AuditLog(context.Background(), 0, 100)
		for _, a := range all {
			if a.Action == index.ActPromote && a.Key == "greet" {
				promotes++
			}
		}
		live, _, _ = tx.Pointer(context.Background(), "greet", index.EnvLive)
		return nil
	})
	if promotes != 1 || live.Label() != "v2" {
		t.Errorf("greet promoted %d times, live %s; want once, v2", promotes, live.Label())
	}
}
