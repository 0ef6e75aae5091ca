package main

import (
	"context"
	"database/sql"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/promptvault/promptvault/gitstore/gitgen"
)

// TestSyncKilledMidwayResumes kills a real `promptvault sync` process after
// its first batch is committed and checks that the next sync finishes the
// job with the same rows as an uninterrupted sync.
func TestSyncKilledMidwayResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a 6,000-commit repository")
	}
	ctx := context.Background()
	repo := filepath.Join(t.TempDir(), "repo.git")
	if err := gitgen.Generate(ctx, repo, 50, 6000, 0); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(binary(t), "sync", "--data", data, "--repo", repo)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	dbPath := filepath.Join(data, "index.db")
	var indexed int
	killed := false
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		indexed = countCommits(dbPath)
		if indexed > 0 {
			killed = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL) == nil
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Wait()
	after := countCommits(dbPath)
	t.Logf("killed=%v with %d of 6000 commits indexed", killed, after)
	if after >= 6000 {
		t.Skip("sync finished before it could be killed; nothing to resume")
	}
	if after%1000 != 0 {
		t.Fatalf("%d commits indexed: a batch was half-applied", after)
	}
	ok(t, "sync", "--data", data)
	clean := filepath.Join(t.TempDir(), "clean")
	ok(t, "sync", "--data", clean, "--repo", repo)
	for _, q := range []string{
		"SELECT count(*) FROM commits",
		"SELECT count(*) FROM versions",
		"SELECT count(DISTINCT key || number || commit_sha || sha256) FROM versions",
		"SELECT total(number) FROM versions",
	} {
		if a, b := scalar(t, filepath.Join(data, "index.db"), q), scalar(t, filepath.Join(clean, "index.db"), q); a != b {
			t.Errorf("%s: resumed %v, clean %v", q, a, b)
		}
	}
}

func countCommits(path string) int {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(100)")
	if err != nil {
		return 0
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM commits").Scan(&n); err != nil {
		return 0
	}
	return n
}

func scalar(t *testing.T, path, q string) float64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v float64
	if err := db.QueryRow(q).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
