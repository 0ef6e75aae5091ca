package promptvault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The test workers' misbehaviour, chosen by a template's text. Set while
// package variables initialise, so before init turns a re-executed test
// binary into a worker.
var _ = func() int {
	testWorkerHook = func(req *workerRequest) {
		if len(req.Templates) == 0 {
			return
		}
		switch req.Templates[0].Source {
		case "crash: stack":
			var f func(int) int
			f = func(n int) int { return f(n+1) + 1 }
			f(0)
		case "crash: memory":
			// Address space, not touched pages, is what RLIMIT_AS
			// bounds: one byte per page would only spend the CPU a
			// starved worker lacks.
			var keep [][]byte
			for {
				keep = append(keep, make([]byte, 16<<20))
				keep[len(keep)-1][0] = 1
			}
		case "crash: spin":
			for {
			}
		case "{{ pid }}":
			// Which worker rendered: its process ID as a variable.
			req.Variables["pid"] = os.Getpid()
		}
	}
	return 0
}()

// newTestPool is a pool of this test binary re-executed as workers (the
// package's init turns it into one), closed when the test ends.
func newTestPool(tb testing.TB, opts PoolOptions) (*Pool, *exitLog) {
	tb.Helper()
	exits := &exitLog{}
	opts.OnExit = exits.add
	p := NewPool(opts)
	tb.Cleanup(func() { p.Close() })
	return p, exits
}

type exitLog struct {
	mu      sync.Mutex
	reasons []string
}

func (e *exitLog) add(r string) {
	e.mu.Lock()
	e.reasons = append(e.reasons, r)
	e.mu.Unlock()
}

func (e *exitLog) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.reasons, ",")
}

// procStat returns fields of /proc/PID/stat after the command name:
// index 0 is field 3 (state).
func procStat(tb testing.TB, pid int) []string {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		tb.Fatal(err)
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
}

func TestPoolRenders(t *testing.T) {
	// The test may itself run niced (make test under nice, a CI runner):
	// what must hold is that starting workers leaves the server's own
	// priority where it was.
	startNice := procStat(t, os.Getpid())[16]
	pool, exits := newTestPool(t, PoolOptions{Size: 2})
	p := mustParse(t, `template: "{{ greeting }}, {{ name|upper }}! {{ n }}"
system: "sys {{ n + n }}"
input_schema:
  type: object
  properties:
    greeting: {type: string, default: Hello}
    n: {type: integer}
  required: [n]
`)
	for i := range 5 {
		r, err := p.Render(context.Background(), map[string]any{"name": "ada", "n": i}, relaxed(pool))
		if err != nil {
			t.Fatal(err)
		}
		want := []Message{{"system", "sys " + strconv.Itoa(2*i)}, {"user", "Hello, ADA! " + strconv.Itoa(i)}}
		if len(r.Messages) != 2 || r.Messages[0] != want[0] || r.Messages[1] != want[1] {
			t.Fatalf("got %+v, want %+v", r.Messages, want)
		}
	}
	_, err := p.Render(context.Background(), map[string]any{"n": "x"}, relaxed(pool))
	var ve *VariablesError
	if !errors.As(err, &ve) || ve.List[0].Path != "/n" {
		t.Fatalf("err = %v, want a variables error at /n", err)
	}
	if e := exits.String(); e != "" {
		t.Errorf("workers ended: %s", e)
	}
	pids := pool.Workers()
	if len(pids) == 0 {
		t.Fatal("no workers")
	}
	for _, pid := range pids {
		// Field 19 of stat is nice.
		// An unprivileged process cannot lower its nice: a server already
		// niced past workerNice keeps its workers at its own level.
		want := max(workerNice, atoi(t, startNice))
		if nice := procStat(t, pid)[16]; nice != strconv.Itoa(want) {
			t.Errorf("worker %d runs at nice %s, want %d", pid, nice, want)
		}
		lim, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(lim), "Max address space") || strings.Contains(string(lim), "Max address space         unlimited") {
			t.Errorf("worker %d has no address-space limit:\n%s", pid, lim)
		}
	}
	if nice := procStat(t, os.Getpid())[16]; nice != startNice {
		t.Errorf("the server's own nice changed from %s to %s", startNice, nice)
	}
}

// TestPoolBounds: each template breaks a bound only the process boundary
// can hold; its render fails alone, the worker is replaced, and the next
// render succeeds. A render stopped at its deadline is answered within
// 50 ms of it, plus whatever time this process's threads spent waiting
// for a CPU meanwhile (from the kernel's schedstat): on an idle machine
// that is the plain bound, on a busy one the test measures what the pool
// does after the deadline (a kill and a hand-over, nothing that waits)
// rather than how busy the machine is.
func TestPoolBounds(t *testing.T) {
	pool, exits := newTestPool(t, PoolOptions{Size: 1, MaxMemory: 64 << 20, Wait: time.Minute})
	ok := mustParse(t, "template: \"ok {{ x }}\"\n")
	if _, err := ok.Render(context.Background(), map[string]any{"x": 1}, relaxed(pool)); err != nil {
		t.Fatal(err) // the pool is in use, so it starts its spare
	}
	for _, tt := range []struct {
		name, template string
		vars           map[string]any
		want, exit     string
	}{
		{"stack overflow", "crash: stack", nil, "recursed too deeply", "died"},
		{"memory bound", "crash: memory", nil, "more than 64 MB of memory", "died"},
		{"ignores its deadline", "crash: spin", nil, "longer than", "timeout"},
		{"quadratic in test",
			`{{ tags|select("in", allowed)|join(", ") }}`, map[string]any{"tags": seq(12000), "allowed": seq(12000)}, "longer than", "timeout"},
		{"quadratic loop filter",
			`{% for x in tags if x in allowed %}{{ x }}{% endfor %}`, map[string]any{"tags": seq(12000), "allowed": seq(12000)}, "longer than", "timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := exits.String()
			p := mustParse(t, "template: '"+strings.ReplaceAll(tt.template, "'", "''")+"'\n")
			timeout := 200 * time.Millisecond
			if tt.exit == "died" {
				// Dying takes its own CPU time, which a worker at
				// nice 10 on a busy machine gets slowly: the bound
				// under test must stop it, not the deadline.
				timeout = 10 * time.Minute
			}
			// The hand-over after a kill is the spare's.
			waitSpare(t, pool)
			wait0 := runQueueWait(t)
			start := time.Now()
			_, err := p.Render(context.Background(), tt.vars, Limits{Pool: pool, Timeout: timeout})
			elapsed, waited := time.Since(start), runQueueWait(t)-wait0
			if !errors.Is(err, ErrRender) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrRender containing %q", err, tt.want)
			}
			if tt.exit == "timeout" {
				if over := elapsed - timeout; over > 50*time.Millisecond+waited {
					t.Errorf("answered %v after the %v deadline; want within 50ms plus the %v this process waited for a CPU", over, timeout, waited)
				} else {
					t.Logf("answered %v after the deadline; %v waiting for a CPU", over, waited)
				}
			}
			if got := strings.TrimPrefix(strings.TrimPrefix(exits.String(), before), ","); got != tt.exit {
				t.Errorf("worker exits %q, want %q", got, tt.exit)
			}
			r, err := ok.Render(context.Background(), map[string]any{"x": 1}, relaxed(pool))
			if err != nil || r.Messages[0].Content != "ok 1" {
				t.Fatalf("next render: %v, %v", r, err)
			}
		})
	}
}

// waitSpare waits until pool has a spare ready; starting one may take
// seconds on a busy machine.
func waitSpare(t testing.TB, pool *Pool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !spareReady(pool) {
		if time.Now().After(deadline) {
			t.Fatal("no spare worker after 2 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runQueueWait is the time this process's threads have spent runnable
// but waiting for a CPU: the second field of each thread's
// /proc/self/task/TID/schedstat, in nanoseconds. (A thread that exited
// takes its share with it, so a difference can only undercount.)
func runQueueWait(t testing.TB) time.Duration {
	t.Helper()
	dirs, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var sum time.Duration
	for _, d := range dirs {
		b, err := os.ReadFile("/proc/self/task/" + d.Name() + "/schedstat")
		if err != nil {
			continue // the thread exited
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			sum += time.Duration(n)
		}
	}
	return sum
}

func seq(n int) []any {
	l := make([]any, n)
	for i := range l {
		l[i] = "item" + strconv.Itoa(i)
	}
	return l
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// relaxed are limits for renders that test something other than the time
// bound: a worker's first render includes its start, which on a busy
// machine can take longer than the 100 ms default.
func relaxed(pool *Pool) Limits { return Limits{Pool: pool, Timeout: 30 * time.Second} }

// TestRenderValidatesBeforeWorker: variables that break the input schema
// are answered with every schema error without a worker process being
// involved, so the answer cannot depend on one getting CPU in time. The
// pool here cannot start a worker at all: had the render reached it, the
// error would be a start failure.
func TestRenderValidatesBeforeWorker(t *testing.T) {
	var starts atomic.Int32
	pool := NewPool(PoolOptions{Size: 1, NoSpare: true, Command: func() *exec.Cmd {
		starts.Add(1)
		return exec.Command("/nonexistent/render-worker")
	}})
	t.Cleanup(func() { pool.Close() })
	src := `template: "{{ n }} {{ tags|join }}"
input_schema:
  type: object
  properties:
    n: {type: integer, minimum: 1}
    tags: {type: array, items: {type: string}}
  required: [n]
`
	p := mustParse(t, src)
	// A server keeps prompts from Decode, whose schema is compiled on use.
	decoded, err := Decode("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		vars map[string]any
		want string
	}{
		{"wrong type", map[string]any{"n": "x"}, "[{/n got string, want integer}]"},
		{"missing and out of range",
			map[string]any{"tags": []any{"a", 2}}, "[{ missing property 'n'} {/tags/1 got number, want string}]"},
		{"every error of a larger request", map[string]any{"n": 0, "tags": append(seq(1000), 1)},
			"[{/n minimum: got 0, want 1} {/tags/1000 got number, want string}]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range []*Prompt{p, decoded} {
				_, err := p.Render(context.Background(), tt.vars, Limits{Pool: pool, Timeout: time.Millisecond})
				var ve *VariablesError
				if !errors.As(err, &ve) {
					t.Fatalf("err = %v, want a *VariablesError", err)
				}
				if got := fmt.Sprint(ve.List); got != tt.want {
					t.Errorf("errors %s, want %s", got, tt.want)
				}
			}
		})
	}
	if n := starts.Load(); n != 0 {
		t.Errorf("%d worker starts for renders whose variables are invalid; want none", n)
	}
	// Valid variables do go to a worker (which here cannot start).
	if _, err := p.Render(context.Background(), map[string]any{"n": 1}, Limits{Pool: pool}); err == nil || starts.Load() == 0 {
		t.Errorf("valid render: %v after %d starts; want a failed worker start", err, starts.Load())
	}
}

// TestRenderValidatesInWorker: where validating in the server could cost
// more than inlineValidationBudget (a recursive schema, variables with
// many values), the worker validates, within the render's bounds, and
// the answer is the same list of errors.
func TestRenderValidatesInWorker(t *testing.T) {
	var starts atomic.Int32
	pool, _ := newTestPool(t, PoolOptions{Size: 1, NoSpare: true, Command: func() *exec.Cmd {
		starts.Add(1)
		cmd := exec.Command("/proc/self/exe")
		cmd.Args = []string{"promptvault-render-worker"}
		return cmd
	}})
	tree := mustParse(t, `template: "{{ t }}"
input_schema:
  $defs:
    node:
      type: object
      properties:
        children: {type: array, items: {$ref: "#/$defs/node"}}
  type: object
  properties:
    t: {$ref: "#/$defs/node"}
`)
	_, err := tree.Render(context.Background(), map[string]any{"t": map[string]any{"children": []any{1}}}, relaxed(pool))
	var ve *VariablesError
	if !errors.As(err, &ve) || fmt.Sprint(ve.List) != "[{/t/children/0 got number, want object}]" {
		t.Fatalf("recursive schema: err = %v, want a variables error at /t/children/0", err)
	}
	if starts.Load() != 1 {
		t.Errorf("recursive schema: %d worker starts, want the worker to validate", starts.Load())
	}
	flat := mustParse(t, "template: \"{{ tags|length }}\"\ninput_schema: {type: object, properties: {tags: {type: array, items: {type: string}}}}\n")
	big := append(seq(inlineValidationBudget), 1)
	_, err = flat.Render(context.Background(), map[string]any{"tags": big}, relaxed(pool))
	if !errors.As(err, &ve) || fmt.Sprint(ve.List) != fmt.Sprintf("[{/tags/%d got number, want string}]", len(big)-1) {
		t.Fatalf("large variables: err = %v, want a variables error at the last tag", err)
	}
	r, err := flat.Render(context.Background(), map[string]any{"tags": big[:len(big)-1]}, relaxed(pool))
	if err != nil || r.Messages[0].Content != strconv.Itoa(len(big)-1) {
		t.Fatalf("large valid variables: %v, %v", r, err)
	}
}

func TestSchemaCost(t *testing.T) {
	for _, tt := range []struct {
		name, schema string
		want         int // -1: unbounded
	}{
		{"one node", `{type: string}`, 1},
		{"properties and items",
			`{type: object, properties: {a: {type: string}, b: {type: array, items: {type: integer}}}}`, 4},
		{"a shared definition counts at each use",
			`{$defs: {s: {type: string}}, properties: {a: {$ref: "#/$defs/s"}, b: {$ref: "#/$defs/s"}}}`, 5},
		{"recursion through properties",
			`{$defs: {n: {properties: {next: {$ref: "#/$defs/n"}}}}, $ref: "#/$defs/n"}`, -1},
		{"references doubling past the budget", doublingRefs(20), -1},
		{"dynamic reference", `{$dynamicAnchor: x, properties: {a: {$dynamicRef: "#x"}}}`, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var v map[string]any
			if err := yaml.Unmarshal([]byte(tt.schema), &v); err != nil {
				t.Fatal(err)
			}
			c, err := compileSchema(v)
			if err != nil {
				t.Fatal(err)
			}
			got := c.cost
			if tt.want > 0 && got != tt.want || tt.want < 0 && got >= 0 {
				t.Errorf("cost %d, want %d", got, tt.want)
			}
		})
	}
}

// doublingRefs is a schema whose definition i refers twice to i+1: small
// to write, 2^n schemas to apply.
func doublingRefs(n int) string {
	var b strings.Builder
	b.WriteString("{$defs: {")
	for i := range n {
		fmt.Fprintf(&b, "d%d: {allOf: [{$ref: \"#/$defs/d%d\"}, {$ref: \"#/$defs/d%d\"}]}, ", i, i+1, i+1)
	}
	fmt.Fprintf(&b, "d%d: {type: string}}, $ref: \"#/$defs/d0\"}", n)
	return b.String()
}

// TestPoolSpare: a slot whose worker was killed gets the ready spare at
// once (the next render runs on the spare's process), and a new spare
// starts in the background; NoSpare keeps no worker beyond Size.
func TestPoolSpare(t *testing.T) {
	pid := mustParse(t, "template: \"{{ pid }}\"\n")
	spin := mustParse(t, "template: \"crash: spin\"\n")
	renderPid := func(t *testing.T, pool *Pool) int {
		t.Helper()
		r, err := pid.Render(context.Background(), map[string]any{}, relaxed(pool))
		if err != nil {
			t.Fatal(err)
		}
		return atoi(t, r.Messages[0].Content)
	}
	// waitWorkers waits for n ready workers, none of them gone; starting
	// one may take seconds on a busy machine, and a killed one is listed
	// until it has been reaped.
	waitWorkers := func(t *testing.T, pool *Pool, n int, gone ...int) []int {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if w := pool.Workers(); len(w) == n && !slices.ContainsFunc(w, func(p int) bool { return slices.Contains(gone, p) }) {
				return w
			}
			if time.Now().After(deadline) {
				t.Fatalf("ready workers %v, want %d", pool.Workers(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Run("spare", func(t *testing.T) {
		pool, exits := newTestPool(t, PoolOptions{Size: 1})
		first := renderPid(t, pool)
		workers := waitWorkers(t, pool, 2)
		spare := workers[0]
		if spare == first {
			spare = workers[1]
		}
		if _, err := spin.Render(context.Background(), nil, Limits{Pool: pool, Timeout: 100 * time.Millisecond}); !errors.Is(err, ErrRender) {
			t.Fatalf("spinning render: %v", err)
		}
		if got := renderPid(t, pool); got != spare {
			t.Errorf("render after the kill ran on worker %d; want the spare %d (first worker %d)", got, spare, first)
		}
		// A new spare replaces the one taken.
		waitWorkers(t, pool, 2, first)
		if e := exits.String(); e != "timeout" {
			t.Errorf("worker exits %q, want timeout", e)
		}
	})
	t.Run("no spare", func(t *testing.T) {
		pool, _ := newTestPool(t, PoolOptions{Size: 1, NoSpare: true})
		first := renderPid(t, pool)
		if _, err := spin.Render(context.Background(), nil, Limits{Pool: pool, Timeout: 100 * time.Millisecond}); !errors.Is(err, ErrRender) {
			t.Fatalf("spinning render: %v", err)
		}
		if second := renderPid(t, pool); second == first {
			t.Fatalf("render after the kill ran on the killed worker %d", first)
		}
		waitWorkers(t, pool, 1, first)
		pool.mu.Lock()
		spare, starting := pool.spare, pool.spareStarting
		pool.mu.Unlock()
		if spare != nil || starting {
			t.Errorf("a pool with NoSpare has a spare (%v) or is starting one (%v)", spare != nil, starting)
		}
	})
}
