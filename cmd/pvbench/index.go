package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/promptvault/promptvault/gitstore/gitgen"
)

// measured is one timed process.
type measured struct {
	wall  time.Duration
	rssMB float64
	out   []byte
}

// timed runs a command and reports its wall time and peak RSS.
func timed(name string, args ...string) (measured, error) {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	start := time.Now()
	out, err := cmd.Output()
	m := measured{wall: time.Since(start), out: out}
	if err != nil {
		return m, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.rssMB = float64(ru.Maxrss) / 1024
	}
	return m, nil
}

// runIndex times promptvault's full first index and incremental syncs
// against git on the same generated repository, in one run.
func runIndex(args []string) error {
	fs := flag.NewFlagSet("index", flag.ExitOnError)
	bin := fs.String("bin", "bin/promptvault", "promptvault binary")
	prompts := fs.Int("prompts", envInt("PV_BENCH_PROMPTS", 2000), "prompt files (env PV_BENCH_PROMPTS)")
	commits := fs.Int("commits", envInt("PV_BENCH_COMMITS", 40000), "commits (env PV_BENCH_COMMITS)")
	cache := fs.String("cache", filepath.Join(os.TempDir(), "pv-bench"), "where generated repositories are kept between runs")
	fs.Parse(args)
	ctx := context.Background()

	src, err := generated(ctx, *cache, *prompts, *commits)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(*cache, "run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// The benchmark appends commits, so it works on a copy of the source.
	repo := filepath.Join(work, "repo.git")
	if _, err := timed("git", "clone", "-q", "--bare", "--no-local", src, repo); err != nil {
		return err
	}
	gitMirror := filepath.Join(work, "git-mirror.git")
	data := filepath.Join(work, "data")

	fmt.Printf("repository: %d prompts x %d commits (flat prompts/ directory)\n\n", *prompts, *commits)
	fmt.Printf("%-44s %10s %10s %9s\n", "step", "wall", "peak RSS", "ratio")
	row := func(name string, m measured, base *measured) {
		ratio := ""
		if base != nil {
			ratio = fmt.Sprintf("%.2fx", m.wall.Seconds()/base.wall.Seconds())
		}
		fmt.Printf("%-44s %9.2fs %8.0fMB %9s\n", name, m.wall.Seconds(), m.rssMB, ratio)
	}

	// Full first index.
	gclone, err := timed("git", "clone", "-q", "--mirror", "--no-local", repo, gitMirror)
	if err != nil {
		return err
	}
	glog, err := timed("git", "--git-dir", gitMirror, "log", "--format=%H", "--name-only", "main")
	if err != nil {
		return err
	}
	row("git clone --mirror", gclone, nil)
	row("git log --format=%H --name-only (baseline)", glog, nil)
	full, err := timed(*bin, "sync", "--json", "--data", data, "--repo", repo, "--log-level", "warn")
	if err != nil {
		return err
	}
	idx, err := indexSeconds(full.out)
	if err != nil {
		return err
	}
	row("promptvault sync, first (clone + index)", full, nil)
	idxOnly := measured{wall: time.Duration(idx * float64(time.Second)), rssMB: full.rssMB}
	row("  of which indexing (vs git log)", idxOnly, &glog)
	fmt.Println()

	// Incremental: +1 and +100 commits.
	start := *commits
	for _, n := range []int{1, 100} {
		old := strings.TrimSpace(string(must(timed("git", "--git-dir", gitMirror, "rev-parse", "main")).out))
		if err := (gitgen.Config{Prompts: *prompts, Commits: n, Start: start}).Generate(ctx, repo); err != nil {
			return err
		}
		start += n
		gf, err := timed("git", "--git-dir", gitMirror, "fetch", "-q", "origin")
		if err != nil {
			return err
		}
		gl, err := timed("git", "--git-dir", gitMirror, "log", "--format=%H", "--name-only", old+"..main")
		if err != nil {
			return err
		}
		base := measured{wall: gf.wall + gl.wall, rssMB: max(gf.rssMB, gl.rssMB)}
		inc, err := timed(*bin, "sync", "--json", "--data", data, "--log-level", "warn")
		if err != nil {
			return err
		}
		row(fmt.Sprintf("+%d: git fetch + git log old..main", n), base, nil)
		row(fmt.Sprintf("+%d: promptvault sync (process)", n), inc, &base)
	}
	return nil
}

func indexSeconds(out []byte) (float64, error) {
	var res struct {
		Seconds  float64 `json:"seconds"`
		Versions []any   `json:"versions"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, fmt.Errorf("decode sync output: %w", err)
	}
	if len(res.Versions) == 0 {
		return 0, fmt.Errorf("sync indexed no versions")
	}
	return res.Seconds, nil
}

func must(m measured, err error) measured {
	if err != nil {
		panic(err)
	}
	return m
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err == nil && n > 0 {
		return n
	}
	return def
}
