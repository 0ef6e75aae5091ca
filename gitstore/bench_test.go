package gitstore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/promptvault/promptvault/gitstore/gitgen"
)

// benchRepo generates (once, cached in PV_BENCH_DIR) a flat repository of
// PV_BENCH_PROMPTS × PV_BENCH_COMMITS and a gitstore mirror of it, and
// returns the mirror's directory and main's head.
func benchRepo(b testing.TB) (src, mirror, head string) {
	b.Helper()
	env := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
			return v
		}
		return def
	}
	prompts, commits := env("PV_BENCH_PROMPTS", 200), env("PV_BENCH_COMMITS", 4000)
	root := os.Getenv("PV_BENCH_DIR")
	if root == "" {
		root = filepath.Join(os.TempDir(), "pv-bench")
	}
	base := filepath.Join(root, fmt.Sprintf("flat-%d-%d", prompts, commits))
	src, mirror = base+".git", base+".mirror"
	ready := base + ".ready"
	if _, err := os.Stat(ready); err != nil {
		os.RemoveAll(src)
		os.RemoveAll(mirror)
		start := time.Now()
		if err := gitgen.Generate(context.Background(), src, prompts, commits, 0); err != nil {
			b.Fatal(err)
		}
		r, err := Open(mirror, src, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Fetch(context.Background()); err != nil {
			b.Fatal(err)
		}
		r.Close()
		if err := os.WriteFile(ready, nil, 0o644); err != nil {
			b.Fatal(err)
		}
		b.Logf("generated %s in %v", base, time.Since(start))
	}
	r, err := Open(mirror, src, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	head, err = r.Resolve("refs/remotes/origin/main")
	if err != nil {
		b.Fatal(err)
	}
	return src, mirror, head
}

// BenchmarkWalk indexes the whole first-parent history of prompts/: git
// log --name-only on the mirror is the baseline. Both read the same pack.
func BenchmarkWalk(b *testing.B) {
	src, mirror, head := benchRepo(b)
	var gitTime, ourTime time.Duration
	b.Run("git-log", func(b *testing.B) {
		start := time.Now()
		for b.Loop() {
			cmd := exec.Command("git", "-C", mirror, "log", "--format=%H", "--name-only", head)
			out, err := cmd.Output()
			if err != nil || !bytes.Contains(out, []byte("prompts/")) {
				b.Fatal(err)
			}
		}
		gitTime = time.Since(start) / time.Duration(b.N)
	})
	b.Run("gitstore", func(b *testing.B) {
		start := time.Now()
		for b.Loop() {
			// A fresh Repo each time: a cold object cache, as at start-up.
			r, err := Open(mirror, src, Options{})
			if err != nil {
				b.Fatal(err)
			}
			cs, err := r.FirstParent(context.Background(), head, nil)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			err = r.WalkChanges(context.Background(), cs, "prompts", func(_ Commit, ch []Change) error {
				n += len(ch)
				return nil
			})
			if err != nil || n < len(cs) {
				b.Fatal(n, err)
			}
			r.Close()
		}
		ourTime = time.Since(start) / time.Duration(b.N)
		b.ReportMetric(float64(ourTime.Nanoseconds())/1e6, "ms/walk")
	})
	if gitTime > 0 && ourTime > 0 {
		// Printed, not logged, so `make bench` shows it without -v.
		fmt.Printf("BenchmarkWalk: gitstore %v, git log %v: ratio %.2f×\n", ourTime, gitTime, float64(ourTime)/float64(gitTime))
	}
}

// TestBenchRepoMatchesGit checks the benchmark's walk against git on the
// benchmark repository (PV_BENCH_VERIFY=1; sized like BenchmarkWalk).
func TestBenchRepoMatchesGit(t *testing.T) {
	if os.Getenv("PV_BENCH_VERIFY") == "" {
		t.Skip("set PV_BENCH_VERIFY=1")
	}
	src, mirror, head := benchRepo(t)
	r, err := Open(mirror, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkAgainstGit(t, r, mirror, head)
}
