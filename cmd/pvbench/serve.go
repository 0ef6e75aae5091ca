package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/promptvault/promptvault/index"
)

// runServe measures a running `promptvault serve` on a generated repository
// (by default the 2,000-prompt × 40,000-commit one of pvbench index):
// resident memory once it serves every prompt, CPU while idle, and how long
// a pointer move made by the CLI in another process takes to be served.
func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	bin := fs.String("bin", "bin/promptvault", "promptvault binary")
	prompts := fs.Int("prompts", envInt("PV_BENCH_PROMPTS", 2000), "prompt files (env PV_BENCH_PROMPTS)")
	commits := fs.Int("commits", envInt("PV_BENCH_COMMITS", 40000), "commits (env PV_BENCH_COMMITS)")
	cache := fs.String("cache", filepath.Join(os.TempDir(), "pv-bench"), "where generated repositories are kept between runs")
	data := fs.String("data", "", "an already synced data directory of that repository (default: sync a new one, not timed)")
	idle := fs.Duration("idle", time.Minute, "how long to measure idle CPU")
	changes := fs.Int("changes", 200, "CLI pointer moves to time")
	fs.Parse(args)
	ctx := context.Background()

	src, err := generated(ctx, *cache, *prompts, *commits)
	if err != nil {
		return err
	}
	if *data == "" {
		work, err := os.MkdirTemp(*cache, "serve-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(work)
		*data = filepath.Join(work, "data")
		fmt.Printf("syncing %s into %s ...\n", src, *data)
		if out, err := exec.Command(*bin, "sync", "--data", *data, "--repo", src, "--log-level", "warn").CombinedOutput(); err != nil {
			return fmt.Errorf("sync: %v\n%s", err, out)
		}
	}
	apiKey, err := createKey(ctx, *bin, *data)
	if err != nil {
		return err
	}
	key, labels, err := twoVersions(ctx, *data)
	if err != nil {
		return err
	}

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	logf, err := os.CreateTemp("", "pvbench-serve-*.log")
	if err != nil {
		return err
	}
	defer logf.Close()
	serve := exec.Command(*bin, "serve", "--data", *data, "--addr", addr, "--log-level", "warn")
	serve.Stdout, serve.Stderr = logf, logf
	if err := serve.Start(); err != nil {
		return fmt.Errorf("start serve: %w", err)
	}
	pid := serve.Process.Pid
	defer stop(serve, 10*time.Second)
	url := "http://" + addr
	if err := waitReady(ctx, url+"/readyz", 10*time.Minute); err != nil {
		return fmt.Errorf("serve (pid %d, log %s): %w", pid, logf.Name(), err)
	}
	// Read every prompt once, as traffic would.
	keys, err := allKeys(ctx, *data)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, err := fetch(ctx, url+"/v1/prompts/"+k, apiKey); err != nil {
			return err
		}
	}
	rss, hwm, err := procMemory(pid)
	if err != nil {
		return err
	}
	fmt.Printf("serve pid %d, %d prompts served\n", pid, len(keys))
	fmt.Printf("%-44s %8.1f MB (peak %.1f MB; goal ≤ 100 MB)\n", "RSS after reading every prompt", rss, hwm)
	// Render workers are processes of their own (started at the first
	// render, one kept warm): their memory is the deployment's too.
	kids, n := childrenRSS(pid)
	fmt.Printf("%-44s %8.1f MB in %d processes\n", "RSS of render workers (serve's children)", kids, n)

	// Idle: let start-up work settle, then count CPU ticks.
	time.Sleep(5 * time.Second)
	before, err := procCPU(pid)
	if err != nil {
		return err
	}
	start := time.Now()
	time.Sleep(*idle)
	after, err := procCPU(pid)
	if err != nil {
		return err
	}
	used := after - before
	fmt.Printf("%-44s %8.3f s over %v = %.3f%% of a core (goal < 0.5%%)\n", "idle CPU (serve + children, /proc/PID/stat)",
		used.Seconds(), time.Since(start).Round(time.Second), 100*used.Seconds()/time.Since(start).Seconds())

	// CLI → read: each move is a separate promptvault process; the clock
	// starts when it exits (its commit is durable) and stops at the first
	// read that serves the new version.
	var lat []time.Duration
	for i := 0; i < *changes; i++ {
		want := labels[i%2]
		if out, err := exec.Command(*bin, "promote", key, want, "--data", *data).CombinedOutput(); err != nil {
			return fmt.Errorf("promote: %v\n%s", err, out)
		}
		t0 := time.Now()
		for {
			b, err := fetch(ctx, url+"/v1/prompts/"+key, apiKey)
			if err != nil {
				return err
			}
			var d struct{ Version string }
			if json.Unmarshal(b, &d) == nil && d.Version == want {
				break
			}
			if time.Since(t0) > 30*time.Second {
				return fmt.Errorf("%s %s not served after 30 s", key, want)
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(10 * time.Microsecond)
	}
	fmt.Printf("%-44s p50 %v  p99 %v  max %v over %d moves (goal p99 < 50 ms)\n", "CLI promote → read serves it",
		q(0.50), q(0.99), lat[len(lat)-1].Round(10*time.Microsecond), len(lat))
	rss, hwm, err = procMemory(pid)
	if err != nil {
		return err
	}
	fmt.Printf("%-44s %8.1f MB (peak %.1f MB)\n", "RSS at the end", rss, hwm)
	return nil
}

// twoVersions finds a prompt with two valid published versions to move
// live between.
func twoVersions(ctx context.Context, data string) (string, [2]string, error) {
	db, err := index.Open(ctx, filepath.Join(data, "index.db"))
	if err != nil {
		return "", [2]string{}, err
	}
	defer db.Close()
	var key string
	var labels [2]string
	err = db.View(ctx, func(tx *index.Tx) error {
		ps, err := tx.Prompts(ctx)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.Versions < 2 || p.Archived {
				continue
			}
			vs, err := tx.Versions(ctx, p.Key, index.VersionQuery{Limit: 10})
			if err != nil {
				return err
			}
			var valid []string
			for _, v := range vs {
				if v.Valid {
					valid = append(valid, v.Label)
				}
			}
			if len(valid) >= 2 {
				key, labels = p.Key, [2]string{valid[1], valid[0]}
				return nil
			}
		}
		return fmt.Errorf("no prompt with two valid versions")
	})
	return key, labels, err
}

func allKeys(ctx context.Context, data string) ([]string, error) {
	db, err := index.Open(ctx, filepath.Join(data, "index.db"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var keys []string
	err = db.View(ctx, func(tx *index.Tx) error {
		ps, err := tx.Prompts(ctx)
		for _, p := range ps {
			if !p.Archived && p.Versions > 0 {
				keys = append(keys, p.Key)
			}
		}
		return err
	})
	return keys, err
}

// procMemory reads VmRSS and VmHWM (peak) of pid, in MB.
func procMemory(pid int) (rss, hwm float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[0], 64)
		switch name {
		case "VmRSS":
			rss = kb / 1024
		case "VmHWM":
			hwm = kb / 1024
		}
	}
	return rss, hwm, sc.Err()
}

// children lists pid's live children (a render worker pool, say).
func children(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if _, ppid, err := statCPU(child); err == nil && ppid == pid {
			out = append(out, child)
		}
	}
	return out
}

// childrenRSS sums VmRSS over pid's live children, in MB.
func childrenRSS(pid int) (mb float64, n int) {
	for _, c := range children(pid) {
		if rss, _, err := procMemory(c); err == nil {
			mb += rss
			n++
		}
	}
	return mb, n
}

// procCPU is the user plus system time of pid and its live children, from
// /proc/PID/stat in clock ticks of 10 ms.
func procCPU(pid int) (time.Duration, error) {
	total, _, err := statCPU(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range children(pid) {
		if t, _, err := statCPU(c); err == nil {
			total += t
		}
	}
	return total, nil
}

func statCPU(pid int) (cpu time.Duration, ppid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces; fields start after its ")".
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ppid, _ = strconv.Atoi(fields[1])
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on every Linux platform Go supports
	return time.Duration(ut+st) * time.Second / ticksPerSecond, ppid, nil
}
