// Package pvtest runs the real promptvault binary for tests that need a
// second process: a server beside CLI writers, an SDK against a server that
// gets killed, a crash between two steps. It builds the command once per
// test process, starts `serve` on loopback and kills what it starts by PID.
package pvtest

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary builds the promptvault command once per test process and returns
// its path.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pv-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "promptvault")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/promptvault/promptvault/cmd/promptvault").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// Run runs the binary to completion and returns its combined output,
// failing the test on a non-zero exit.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(Binary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promptvault %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Server is a running `promptvault serve`.
type Server struct {
	Cmd *exec.Cmd
	URL string // http://127.0.0.1:PORT

	mu   sync.Mutex
	logs strings.Builder
}

var listenRE = regexp.MustCompile(`msg=listening addr=(http://[0-9.:]+)`)

// Serve starts `promptvault serve ARGS…` (pass --data, and --addr
// 127.0.0.1:0 for a free port) and waits until /readyz answers 200. The
// process is killed by PID when the test ends.
func Serve(t testing.TB, args ...string) *Server {
	t.Helper()
	s := &Server{Cmd: exec.Command(Binary(t), append([]string{"serve"}, args...)...)}
	stderr, err := s.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs.WriteString(line + "\n")
			s.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case s.URL = <-addr:
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not start:\n%s", s.Logs())
	}
	WaitFor(t, 20*time.Second, "serve ready", func() bool {
		resp, err := http.Get(s.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// Logs returns what the server has written to stderr so far.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// Kill sends SIGKILL and reaps the process; calling it again is harmless.
func (s *Server) Kill() {
	if s.Cmd.Process != nil && s.Cmd.ProcessState == nil {
		syscall.Kill(s.Cmd.Process.Pid, syscall.SIGKILL)
		s.Cmd.Wait()
	}
}

// WaitFor polls cond until it holds and returns how long that took. The
// limit only keeps a broken build from hanging; it is not what a test
// measures.
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
	return 0
}

// CPUWait is the time the threads of the processes pids have spent
// runnable but waiting for a CPU, from the kernel's schedstat (the second
// field of /proc/PID/task/TID/schedstat, in nanoseconds). A test that
// asserts a latency adds the difference over the interval to its bound:
// the bound then holds on an idle machine as written, and on a busy one
// measures the program rather than the machine. A thread that exits takes
// its share along, so a difference can only undercount.
func CPUWait(pids ...int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/task", pid)
		tasks, err := os.ReadDir(dir)
		if err != nil {
			continue // the process is gone
		}
		for _, task := range tasks {
			b, err := os.ReadFile(filepath.Join(dir, task.Name(), "schedstat"))
			if err != nil {
				continue
			}
			if f := strings.Fields(string(b)); len(f) >= 2 {
				var n int64
				fmt.Sscan(f[1], &n)
				sum += time.Duration(n)
			}
		}
	}
	return sum
}
