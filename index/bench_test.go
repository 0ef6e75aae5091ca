package index_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/gitstore/gitgen"
	"github.com/promptvault/promptvault/index"
)

func benchSize(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkSyncFull indexes a generated history from scratch into a fresh
// index each iteration (the mirror is cloned once). Sizes come from
// PV_BENCH_PROMPTS / PV_BENCH_COMMITS; cmd/pvbench compares the same work
// with git log.
func BenchmarkSyncFull(b *testing.B) {
	prompts, commits := benchSize("PV_BENCH_PROMPTS", 200), benchSize("PV_BENCH_COMMITS", 2000)
	cache := filepath.Join(os.TempDir(), "pv-bench")
	src := filepath.Join(cache, fmt.Sprintf("src-%d-%d.git", prompts, commits))
	ctx := context.Background()
	if _, err := os.Stat(src); err != nil {
		if err := gitgen.Generate(ctx, src, prompts, commits, 0); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	m, err := gitstore.Open(filepath.Join(dir, "mirror.git"), src, gitstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if err := m.Fetch(ctx); err != nil {
		b.Fatal(err)
	}
	// Named by engine: TestMain runs benchmarks once per engine too.
	b.Run(engine, func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			b.StopTimer()
			target := newTarget(b, filepath.Join(dir, fmt.Sprint(i)))
			b.StartTimer()
			db, err := index.Open(ctx, target)
			if err != nil {
				b.Fatal(err)
			}
			res, err := db.Sync(ctx, m, index.Config{Branch: "main", PromptsDir: "prompts"})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(res.Versions)), "versions")
			db.Close()
		}
	})
}
