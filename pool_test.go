package promptvault

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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
			var keep [][]byte
			for {
				keep = append(keep, make([]byte, 16<<20))
				for i := range keep[len(keep)-1] {
					keep[len(keep)-1][i] = 1
				}
			}
		case "crash: spin":
			for {
			}
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
// render succeeds.
func TestPoolBounds(t *testing.T) {
	pool, exits := newTestPool(t, PoolOptions{Size: 1, MaxMemory: 64 << 20, Wait: time.Minute})
	ok := mustParse(t, "template: \"ok {{ x }}\"\n")
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
				// Dying takes its own time, at nice 10 on a busy
				// machine; the deadline must not win.
				timeout = 2 * time.Minute
			}
			_, err := p.Render(context.Background(), tt.vars, Limits{Pool: pool, Timeout: timeout})
			if tt.exit == "died" && errors.Is(err, ErrRender) && strings.Contains(err.Error(), "longer than") {
				// A starved worker (nice 10 on a machine at load 30)
				// can thrash its collector past even this deadline;
				// it was killed, which is the bound holding too.
				t.Skipf("worker killed at the deadline before it died: %v", err)
			}
			if !errors.Is(err, ErrRender) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrRender containing %q", err, tt.want)
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
