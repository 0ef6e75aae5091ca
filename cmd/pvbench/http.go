package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/promptvault/promptvault/index"
)

// httpConfig is pvbench http's flags.
type httpConfig struct {
	bin      string
	prompts  int
	rounds   int
	duration time.Duration
	warmup   time.Duration
	threads  int
	conns    int
	goal     float64
	dir      string
	keep     bool
}

// runHTTP measures `promptvault serve` against a bare net/http server that
// answers the same request with the same bytes (notes/perf.md §1's
// ServeMux row: an auth-map lookup, a document-map lookup, a write), under
// wrk on this machine. Rounds interleave the two servers so drift in the
// machine's load hits both alike; it prints each round, the medians, the
// ratio against the goal, and p50/p99.
func runHTTP(args []string) error {
	var c httpConfig
	fs := flag.NewFlagSet("pvbench http", flag.ContinueOnError)
	fs.StringVar(&c.bin, "bin", "", "promptvault binary to run as `serve` (default: promptvault in PATH)")
	fs.IntVar(&c.prompts, "prompts", 200, "prompts in the generated repository")
	fs.IntVar(&c.rounds, "rounds", 3, "interleaved rounds per server")
	fs.DurationVar(&c.duration, "d", 10*time.Second, "wrk duration per round")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "wrk warm-up per server before the rounds")
	fs.IntVar(&c.threads, "t", 1, "wrk threads")
	fs.IntVar(&c.conns, "c", 32, "wrk connections")
	fs.Float64Var(&c.goal, "goal", 0.95, "serve/baseline req/s ratio to reach (issue 10: reads stay ≥ 0.95× the bare ServeMux)")
	fs.StringVar(&c.dir, "dir", "", "work directory (default: a new temporary directory)")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found in PATH; install it (Debian: apt-get install -y wrk) and run again")
	}
	if c.bin == "" {
		p, err := exec.LookPath("promptvault")
		if err != nil {
			return errors.New("no promptvault binary: pass -bin PATH (go build -o /tmp/promptvault ./cmd/promptvault)")
		}
		c.bin = p
	}
	if out, err := exec.Command(c.bin, "serve", "--help").CombinedOutput(); err != nil {
		return fmt.Errorf("%s serve --help: %v (does this build have the serve command?)\n%s", c.bin, err, out)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return benchHTTP(ctx, c)
}

func benchHTTP(ctx context.Context, c httpConfig) (err error) {
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "pvbench-http-"); err != nil {
			return err
		}
		if !c.keep {
			defer os.RemoveAll(c.dir)
		}
	}
	repo, data := filepath.Join(c.dir, "repo"), filepath.Join(c.dir, "data")
	start := time.Now()
	promptKey, err := genRepo(ctx, repo, c.prompts)
	if err != nil {
		return fmt.Errorf("generate repository: %w", err)
	}
	if out, err := exec.CommandContext(ctx, c.bin, "sync", "--data", data, "--repo", repo).CombinedOutput(); err != nil {
		return fmt.Errorf("promptvault sync: %v\n%s", err, out)
	}
	apiKey, err := createKey(ctx, c.bin, data)
	if err != nil {
		return err
	}
	fmt.Printf("repository: %d prompts, data dir %s (%.1fs)\n", c.prompts, data, time.Since(start).Seconds())

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	logPath := filepath.Join(c.dir, "serve.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	serve := exec.Command(c.bin, "serve", "--data", data, "--repo", repo, "--addr", addr)
	serve.Stdout, serve.Stderr = logf, logf
	if err := serve.Start(); err != nil {
		return fmt.Errorf("start serve: %w", err)
	}
	defer stop(serve, 5*time.Second)
	serveURL := "http://" + addr
	if err := waitReady(ctx, serveURL+"/readyz", 60*time.Second); err != nil {
		return fmt.Errorf("serve (pid %d, log %s): %w", serve.Process.Pid, logPath, err)
	}
	path := "/v1/prompts/" + promptKey
	doc, err := fetch(ctx, serveURL+path, apiKey)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}

	base, err := startBaseline(apiKey, path, doc)
	if err != nil {
		return err
	}
	defer base.Close()
	baseURL := "http://" + base.Addr

	targets := []struct{ name, url string }{{"serve", serveURL + path}, {"baseline", baseURL + path}}
	fmt.Printf("document %d bytes; wrk -t%d -c%d -d%v --latency, %d rounds, serve pid %d\n",
		len(doc), c.threads, c.conns, c.duration, c.rounds, serve.Process.Pid)
	for _, t := range targets {
		if _, err := runWrk(ctx, c, t.url, apiKey, c.warmup); err != nil {
			return fmt.Errorf("warm up %s: %w", t.name, err)
		}
	}
	results := map[string][]wrkResult{}
	for i := 0; i < c.rounds; i++ {
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0} // neither server always runs first
		}
		for _, j := range order {
			t := targets[j]
			r, err := runWrk(ctx, c, t.url, apiKey, c.duration)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", t.name, i+1, err)
			}
			results[t.name] = append(results[t.name], r)
			fmt.Printf("round %d %-8s %9.0f req/s  p50 %-9v p99 %v\n", i+1, t.name, r.rps, r.p50, r.p99)
		}
	}
	s, b := summarize(results["serve"]), summarize(results["baseline"])
	ratio := s.rps / b.rps
	fmt.Printf("\nmedian   %-8s %9.0f req/s  p50 %-9v p99 %v\n", "serve", s.rps, s.p50, s.p99)
	fmt.Printf("median   %-8s %9.0f req/s  p50 %-9v p99 %v\n", "baseline", b.rps, b.p50, b.p99)
	verdict := "goal met"
	if ratio < c.goal {
		verdict = "BELOW GOAL"
	}
	fmt.Printf("ratio serve/baseline %.2f× (goal ≥ %.2f×): %s\n", ratio, c.goal, verdict)
	return nil
}

// genRepo writes a repository of n prompts (~1.5 KB each, the shape of
// notes/perf.md's generator) in one commit and returns one prompt's key.
func genRepo(ctx context.Context, dir string, n int) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=pvbench", "GIT_AUTHOR_EMAIL=pvbench@example.com",
			"GIT_COMMITTER_NAME=pvbench", "GIT_COMMITTER_EMAIL=pvbench@example.com",
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := git("init", "-q"); err != nil {
		return "", err
	}
	key := ""
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("team-%02d/prompt-%04d", i%20, i)
		if i == n/2 || key == "" {
			key = k
		}
		p := filepath.Join(dir, "prompts", filepath.FromSlash(k)+".yaml")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(promptYAML(i)), 0o644); err != nil {
			return "", err
		}
	}
	if err := git("add", "-A"); err != nil {
		return "", err
	}
	if err := git("commit", "-q", "-m", fmt.Sprintf("add %d prompts", n)); err != nil {
		return "", err
	}
	return key, nil
}

func promptYAML(i int) string {
	return fmt.Sprintf(`description: Summarise support ticket kind %[1]d for the on-call engineer
model: gpt-4o
fallback_model: claude-sonnet-4
temperature: 0.%[2]d
max_tokens: %[3]d
top_p: 1.0
system: |
  You are a concise technical writer on team %[1]d. You summarise support
  tickets for engineers who have not seen them: what broke, for whom, since
  when, and what was already tried. Never invent facts; say "unknown".
template: |
  Summarize the ticket below in {{ max_sentences }} sentences.
  {%% if audience %%}Write for {{ audience }}.{%% endif %%}
  Ticket:
  {{ text }}
  {%% for note in notes %%}- {{ note | trim }}
  {%% endfor %%}
input_schema:
  type: object
  properties:
    text: {type: string, minLength: 1}
    max_sentences: {type: integer, default: 3, minimum: 1, maximum: 10}
    audience: {type: string, default: "engineers"}
    notes: {type: array, items: {type: string}, default: []}
  required: [text]
output_schema:
  type: object
  properties:
    summary: {type: string}
    severity: {type: string, enum: [low, medium, high]}
  required: [summary]
cache_timeout: 60
config: {team: %[1]d, owner: "support-%[1]d@example.com"}
`, i, i%10, 128+i%512)
}

// createKey makes a live key: through the CLI when this build has `keys`,
// else directly in the data directory's index.
func createKey(ctx context.Context, bin, data string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, "keys", "create", "--env", "live", "--name", "pvbench", "--json", "--data", data).Output()
	if err == nil {
		var k struct{ Key string }
		if json.Unmarshal(out, &k) == nil && k.Key != "" {
			return k.Key, nil
		}
	}
	db, err := index.Open(ctx, filepath.Join(data, "index.db"))
	if err != nil {
		return "", fmt.Errorf("create key: %w", err)
	}
	defer db.Close()
	var k index.CreatedKey
	err = db.Update(ctx, func(tx *index.Tx) (err error) {
		k, err = tx.CreateKey(ctx, index.KeyLive, "pvbench", "pvbench")
		return err
	})
	if err != nil {
		return "", fmt.Errorf("create key: %w", err)
	}
	return k.Key, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			last = res.Status
		} else {
			last = err.Error()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v (last: %s)", url, timeout, last)
}

func fetch(ctx context.Context, url, key string) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, res.Status, b)
	}
	return b, nil
}

// baseline is the bare server: ServeMux, the same route, an auth map and a
// document map, the same bytes with the same headers (SPEC §3's ETag,
// Cache-Control and Vary besides Content-Type and Content-Length) and the
// same http.Server timeouts as serve, so the ratio is promptvault's own cost
// (authentication, snapshot lookup, metrics), not the contract's headers or
// the per-request deadlines a production server sets.
type baseline struct {
	Addr string
	srv  *http.Server
}

func (b *baseline) Close() { b.srv.Close() }

func startBaseline(apiKey, path string, doc []byte) (*baseline, error) {
	auth := map[string]bool{"Bearer " + apiKey: true}
	docs := map[string][]byte{strings.TrimPrefix(path, "/v1/prompts/"): doc}
	sum := sha256.Sum256(doc)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/prompts/{key...}", func(w http.ResponseWriter, r *http.Request) {
		if !auth[r.Header.Get("Authorization")] {
			http.Error(w, `{"error":{"code":"unauthorized","message":"unauthorized"}}`, http.StatusUnauthorized)
			return
		}
		d, ok := docs[r.PathValue("key")]
		if !ok {
			http.Error(w, `{"error":{"code":"not_found","message":"not found"}}`, http.StatusNotFound)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Length", strconv.Itoa(len(d)))
		h.Set("Content-Type", "application/json")
		h.Set("Etag", etag)
		h.Set("Vary", "Authorization")
		w.Write(d)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &baseline{Addr: l.Addr().String(), srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}}
	go b.srv.Serve(l)
	return b, nil
}

type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
}

var (
	wrkRPS     = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkNon2xx  = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSockErr = regexp.MustCompile(`(?m)^\s*Socket errors:.*$`)
)

// runWrk runs wrk once; the process ends by itself after d (or with ctx).
func runWrk(ctx context.Context, c httpConfig, url, key string, d time.Duration) (wrkResult, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, "wrk", fmt.Sprintf("-t%d", c.threads), fmt.Sprintf("-c%d", c.conns),
		fmt.Sprintf("-d%ds", secs), "--latency", "-H", "Authorization: Bearer "+key, url)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out.String())
	}
	text := out.String()
	if m := wrkNon2xx.FindStringSubmatch(text); m != nil {
		return wrkResult{}, fmt.Errorf("wrk saw %s non-2xx responses:\n%s", m[1], text)
	}
	if m := wrkSockErr.FindString(text); m != "" {
		fmt.Fprintf(os.Stderr, "pvbench: %s: %s\n", url, strings.TrimSpace(m))
	}
	m := wrkRPS.FindStringSubmatch(text)
	if m == nil {
		return wrkResult{}, fmt.Errorf("no Requests/sec in wrk output:\n%s", text)
	}
	var r wrkResult
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		p := wrkPct.FindStringSubmatch(sc.Text())
		if p == nil {
			continue
		}
		v, _ := strconv.ParseFloat(p[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[p[3]]
		dur := time.Duration(v * float64(unit)).Round(time.Microsecond)
		if p[1] == "50" {
			r.p50 = dur
		} else {
			r.p99 = dur
		}
	}
	return r, nil
}

// summarize takes the median of each measure separately.
func summarize(rs []wrkResult) wrkResult {
	med := func(f func(wrkResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return wrkResult{
		rps: med(func(r wrkResult) float64 { return r.rps }),
		p50: time.Duration(med(func(r wrkResult) float64 { return float64(r.p50) })),
		p99: time.Duration(med(func(r wrkResult) float64 { return float64(r.p99) })),
	}
}
