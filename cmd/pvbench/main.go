// Command pvbench measures promptvault against baselines run in the same
// process or script, and prints the ratios (make bench).
//
//	pvbench index [flags]   full and incremental indexing vs git log --name-only
//	pvbench http  [flags]   wrk against serve vs a bare net/http server
//	pvbench serve [flags]   serve's RSS, idle CPU and CLI-change → read latency
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/promptvault/promptvault/gitstore/gitgen"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pvbench index|http|serve [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "index":
		err = runIndex(os.Args[2:])
	case "http":
		err = runHTTP(os.Args[2:])
	case "serve":
		err = runServe(os.Args[2:])
	default:
		err = fmt.Errorf("unknown benchmark %q: want index, http or serve", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pvbench:", err)
		os.Exit(1)
	}
}

// generated is the benchmark repository of prompts x commits under cache,
// generated on first use (into a temporary name, so an interrupted run
// leaves nothing that looks finished) and reused by later runs.
func generated(ctx context.Context, cache string, prompts, commits int) (string, error) {
	src := filepath.Join(cache, fmt.Sprintf("src-%d-%d.git", prompts, commits))
	if _, err := os.Stat(src); err == nil {
		return src, nil
	}
	fmt.Printf("generating %d prompts x %d commits into %s ...\n", prompts, commits, src)
	tmp := src + ".tmp"
	os.RemoveAll(tmp)
	if err := gitgen.Generate(ctx, tmp, prompts, commits, 0); err != nil {
		return "", err
	}
	return src, os.Rename(tmp, src)
}

// stop ends exactly the process started as cmd, by its PID: SIGTERM, then
// SIGKILL after grace.
func stop(cmd *exec.Cmd, grace time.Duration) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}
