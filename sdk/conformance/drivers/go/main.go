// Command go is the Go SDK's conformance driver: it reads one JSON request
// per line on stdin (open, get, render, connected, close), runs it with
// sdk/go and writes one JSON answer per line on stdout. The harness in
// sdk/conformance speaks the same protocol to the Python and TypeScript
// drivers, so all three SDKs are held to one list of scenarios.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	promptvault "github.com/promptvault/promptvault/sdk/go"
)

type request struct {
	Op           string         `json:"op"`
	Client       string         `json:"client"`
	BaseURL      string         `json:"base_url"`
	APIKey       string         `json:"api_key"`
	SnapshotPath string         `json:"snapshot_path"`
	Events       *bool          `json:"events"`
	RevalidateMS int            `json:"revalidate_ms"`
	BackoffMS    []int          `json:"backoff_ms"`
	Key          string         `json:"key"`
	Variables    map[string]any `json:"variables"`
	N            int            `json:"n"`
	Version      string         `json:"version"`
}

type answer struct {
	OK     bool       `json:"ok"`
	Result any        `json:"result,omitempty"`
	Error  *errAnswer `json:"error,omitempty"`
}

type errAnswer struct {
	Status  int                         `json:"status"`
	Code    string                      `json:"code"`
	Message string                      `json:"message"`
	Errors  []promptvault.VariableError `json:"errors"`
}

func main() {
	clients := map[string]*promptvault.Client{}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			out.Encode(answer{Error: &errAnswer{Code: "driver", Message: err.Error()}})
			continue
		}
		res, err := do(clients, req)
		a := answer{OK: err == nil, Result: res}
		if err != nil {
			var pe *promptvault.Error
			if errors.As(err, &pe) {
				a.Error = &errAnswer{Status: pe.Status, Code: pe.Code, Message: pe.Message, Errors: pe.Errors}
			} else {
				a.Error = &errAnswer{Code: "driver", Message: err.Error()}
			}
		}
		if err := out.Encode(a); err != nil {
			os.Exit(1)
		}
	}
	for _, c := range clients {
		c.Close()
	}
}

func do(clients map[string]*promptvault.Client, req request) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if req.Op == "open" {
		opts := []promptvault.Option{}
		if req.SnapshotPath != "" {
			opts = append(opts, promptvault.WithSnapshotFile(req.SnapshotPath))
		}
		if req.Events != nil && !*req.Events {
			opts = append(opts, promptvault.WithoutEvents())
		}
		if req.RevalidateMS > 0 {
			opts = append(opts, promptvault.WithRevalidateEvery(time.Duration(req.RevalidateMS)*time.Millisecond))
		}
		if len(req.BackoffMS) == 2 {
			opts = append(opts, promptvault.WithBackoff(time.Duration(req.BackoffMS[0])*time.Millisecond, time.Duration(req.BackoffMS[1])*time.Millisecond))
		}
		c, err := promptvault.New(req.BaseURL, req.APIKey, opts...)
		if err != nil {
			return nil, err
		}
		clients[req.Client] = c
		return map[string]any{}, nil
	}
	c := clients[req.Client]
	if c == nil {
		return nil, fmt.Errorf("no client %q", req.Client)
	}
	switch req.Op {
	case "get":
		p, err := c.Get(ctx, req.Key)
		if err != nil {
			return nil, err
		}
		return map[string]any{"key": p.Key, "env": p.Env, "version": p.Version, "number": p.Number, "commit": p.Commit,
			"sha256": p.SHA256, "template": p.Prompt.Template, "attributes": p.TraceAttributes()}, nil
	case "render":
		return c.Render(ctx, req.Key, req.Variables)
	case "connected":
		return map[string]any{"connected": c.Connected()}, nil
	case "bench_get":
		// n cached reads, and n reads of a mutex-guarded map (the least a
		// thread-safe cache can cost) as the baseline.
		if _, err := c.Get(ctx, req.Key); err != nil {
			return nil, err
		}
		start := time.Now()
		for range req.N {
			c.Get(ctx, req.Key)
		}
		sdk := time.Since(start)
		var mu sync.Mutex
		m := map[string]*promptvault.Prompt{req.Key: {}}
		start = time.Now()
		for range req.N {
			mu.Lock()
			_ = m[req.Key]
			mu.Unlock()
		}
		base := time.Since(start)
		return map[string]any{"sdk_ns": float64(sdk.Nanoseconds()) / float64(req.N), "baseline_ns": float64(base.Nanoseconds()) / float64(req.N)}, nil
	case "wait_version":
		// What an application sees: Get, until the new version is served.
		for {
			p, err := c.Get(ctx, req.Key)
			if err == nil && p.Version == req.Version {
				return map[string]any{}, nil
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s never served %s", req.Key, req.Version)
			}
			time.Sleep(100 * time.Microsecond)
		}
	case "close":
		delete(clients, req.Client)
		return map[string]any{}, c.Close()
	}
	return nil, fmt.Errorf("unknown op %q", req.Op)
}
