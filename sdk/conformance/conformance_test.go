// Package conformance holds every SDK to one list of scenarios
// (scenarios.json) against a real `promptvault serve` built from this tree.
// Each SDK has a small driver under drivers/ that speaks JSON lines on
// stdin/stdout; this test sets up a repository, index and keys per
// scenario, starts serve as a subprocess, performs the server actions
// (CLI promote and rollback from another process, kill, restart) and sends
// the client steps to every driver in turn, so the three SDKs face the same
// server at the same time.
//
// PV_SDK_LANGS=go,python,typescript picks languages (default all). A
// language whose runtime is missing is skipped with a message saying what
// to install; CI has them all.
package conformance_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/promptvault/promptvault/cmd/promptvault/pvtest"
	"github.com/promptvault/promptvault/gitstore/gittest"
)

// eventually is the most a polled expectation may take. It only keeps a
// broken build from hanging: the scenarios measure nothing.
const eventually = 30 * time.Second

type suite struct {
	Setup struct {
		Prompts   map[string][]string          `json:"prompts"`
		Drafts    map[string]map[string]string `json:"drafts"`
		AfterSync [][]string                   `json:"after_sync"`
	} `json:"setup"`
	Scenarios []scenario `json:"scenarios"`
}

type scenario struct {
	Name  string `json:"name"`
	Steps []step `json:"steps"`
}

type step struct {
	// client steps
	Open         string         `json:"open"`
	KeyKind      string         `json:"key"`
	Snapshot     string         `json:"snapshot"`
	Events       *bool          `json:"events"`
	RevalidateMS int            `json:"revalidate_ms"`
	Close        string         `json:"close"`
	Get          string         `json:"get"`
	Render       string         `json:"render"`
	Variables    map[string]any `json:"variables"`
	Client       string         `json:"client"`
	Times        int            `json:"times"`
	Expect       *expect        `json:"expect"`
	Eventually   *expect        `json:"eventually"`
	ExpectError  *expectErr     `json:"expect_error"`
	EventuallyEr *expectErr     `json:"eventually_error"`
	Wait         string         `json:"wait"`
	// server steps
	CLI           []string `json:"cli"`
	Server        string   `json:"server"`
	DeletePrompt  string   `json:"delete_prompt"`
	WriteSnapshot string   `json:"write_snapshot"`
	Content       string   `json:"content"`
}

type expect struct {
	Key          string            `json:"key"`
	Env          string            `json:"env"`
	Version      string            `json:"version"`
	Template     *string           `json:"template"`
	Attributes   map[string]string `json:"attributes"`
	Messages     []message         `json:"messages"`
	SameAsServer bool              `json:"same_as_server"`
}

type expectErr struct {
	Status int      `json:"status"`
	Code   string   `json:"code"`
	Paths  []string `json:"paths"`
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// answer is a driver's reply to one request.
type answer struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Status  int    `json:"status"`
		Code    string `json:"code"`
		Message string `json:"message"`
		Errors  []struct {
			Path    string `json:"path"`
			Message string `json:"message"`
		} `json:"errors"`
	} `json:"error"`
}

// gotPrompt is a driver's answer to get.
type gotPrompt struct {
	Key        string            `json:"key"`
	Env        string            `json:"env"`
	Version    string            `json:"version"`
	Commit     string            `json:"commit"`
	SHA256     string            `json:"sha256"`
	Template   string            `json:"template"`
	Attributes map[string]string `json:"attributes"`
}

type gotRendered struct {
	Key      string    `json:"key"`
	Env      string    `json:"env"`
	Version  string    `json:"version"`
	Messages []message `json:"messages"`
}

func TestConformance(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git CLI not installed")
	}
	s := loadSuite(t)
	langs := languages(t)
	if len(langs) == 0 {
		t.Fatal("no SDK to test")
	}
	for _, sc := range s.Scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			env := newEnv(t, s)
			var drivers []*driver
			for _, l := range langs {
				drivers = append(drivers, l.start(t))
			}
			for i, st := range sc.Steps {
				env.run(t, drivers, i, st)
			}
		})
	}
}

func loadSuite(t testing.TB) *suite {
	b, err := os.ReadFile("scenarios.json")
	if err != nil {
		t.Fatal(err)
	}
	var s suite
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("scenarios.json: %v", err)
	}
	return &s
}

// language is one SDK's driver command.
type language struct {
	name string
	argv []string
	env  []string
}

// languages builds or locates each SDK's driver. A missing runtime skips
// that language with a message; a broken build fails the test.
func languages(t testing.TB) []language {
	want := map[string]bool{"go": true, "python": true, "typescript": true}
	if v := os.Getenv("PV_SDK_LANGS"); v != "" {
		want = map[string]bool{}
		for _, l := range strings.Split(v, ",") {
			want[strings.TrimSpace(l)] = true
		}
	}
	var out []language
	if want["go"] {
		bin := filepath.Join(t.TempDir(), "go-driver")
		if b, err := exec.Command("go", "build", "-o", bin, "./drivers/go").CombinedOutput(); err != nil {
			t.Fatalf("build the Go driver: %v\n%s", err, b)
		}
		out = append(out, language{name: "go", argv: []string{bin}})
	}
	if want["python"] {
		if py, err := exec.LookPath("python3"); err != nil {
			t.Log("SKIP python: python3 is not installed (the Python SDK needs 3.9+)")
		} else {
			src, _ := filepath.Abs("../python/src")
			out = append(out, language{name: "python", argv: []string{py, "-X", "dev", "drivers/python/driver.py"},
				env: []string{"PYTHONPATH=" + src, "PYTHONUNBUFFERED=1"}})
		}
	}
	if want["typescript"] {
		node, err := exec.LookPath("node")
		tsc := "../typescript/node_modules/.bin/tsc"
		switch {
		case err != nil:
			t.Log("SKIP typescript: node is not installed (the TypeScript SDK needs Node 18+)")
		case !exists(tsc):
			t.Log("SKIP typescript: run `npm ci` in sdk/typescript first (make test does)")
		default:
			// Compile the SDK as `npm test` does, so the driver runs this tree.
			cmd := exec.Command(tsc, "-p", ".")
			cmd.Dir = "../typescript"
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("tsc in sdk/typescript: %v\n%s", err, b)
			}
			out = append(out, language{name: "typescript", argv: []string{node, "drivers/typescript/driver.mjs"}})
		}
	}
	return out
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// driver is one running driver process.
type driver struct {
	lang  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan []byte
	mu    sync.Mutex
	errs  strings.Builder
}

func (l language) start(t testing.TB) *driver {
	t.Helper()
	d := &driver{lang: l.name, cmd: exec.Command(l.argv[0], l.argv[1:]...), lines: make(chan []byte, 1)}
	d.cmd.Env = append(os.Environ(), l.env...)
	d.cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.errs.Write(p)
	})
	var err error
	if d.in, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s driver: %v", l.name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			d.lines <- append([]byte(nil), sc.Bytes()...)
		}
		close(d.lines)
	}()
	t.Cleanup(func() {
		// EOF on stdin closes the driver's clients and ends it; a driver
		// that hangs is killed by PID so nothing outlives the test.
		d.in.Close()
		done := make(chan struct{})
		go func() { d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			syscall.Kill(d.cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Errorf("%s driver did not exit after stdin closed; killed\n%s", d.lang, d.stderr())
		}
	})
	return d
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (d *driver) stderr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.errs.String()
}

// call sends one request and waits for its answer.
func (d *driver) call(t testing.TB, req map[string]any) answer {
	t.Helper()
	b, _ := json.Marshal(req)
	if _, err := d.in.Write(append(b, '\n')); err != nil {
		t.Fatalf("%s driver: write: %v\n%s", d.lang, err, d.stderr())
	}
	select {
	case line, ok := <-d.lines:
		if !ok {
			t.Fatalf("%s driver exited\n%s", d.lang, d.stderr())
		}
		var a answer
		if err := json.Unmarshal(line, &a); err != nil {
			t.Fatalf("%s driver: bad answer %q: %v", d.lang, line, err)
		}
		if a.Error != nil && a.Error.Code == "driver" {
			t.Fatalf("%s driver: %s", d.lang, a.Error.Message)
		}
		return a
	case <-time.After(eventually):
		t.Fatalf("%s driver: no answer to %s\n%s", d.lang, b, d.stderr())
	}
	return answer{}
}

// env is one scenario's repository, index, keys and server.
type env struct {
	dir  string
	data string
	git  *gittest.Repo
	keys map[string]string
	srv  *pvtest.Server
	url  string
	// opened maps a client's name to the kind of key it was opened with.
	opened map[string]string
}

func newEnv(t testing.TB, s *suite) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), git: gittest.New(t), keys: map[string]string{}, opened: map[string]string{}}
	e.data = filepath.Join(e.dir, "data")
	names := make([]string, 0, len(s.Setup.Prompts))
	most := 0
	for k, vs := range s.Setup.Prompts {
		names = append(names, k)
		most = max(most, len(vs))
	}
	sort.Strings(names)
	// Commit i holds version i of every prompt that has one.
	for i := range most {
		for _, k := range names {
			if vs := s.Setup.Prompts[k]; i < len(vs) {
				e.git.Write("prompts/"+k+".yaml", vs[i])
			}
		}
		e.git.Commit(fmt.Sprintf("version %d", i+1))
	}
	for branch, files := range s.Setup.Drafts {
		e.git.Git("checkout", "-q", "-b", branch)
		for k, src := range files {
			e.git.Write("prompts/"+k+".yaml", src)
		}
		e.git.Commit("draft " + branch)
		e.git.Git("checkout", "-q", "main")
	}
	e.pv(t, "sync", "--repo", e.git.Dir)
	for _, args := range s.Setup.AfterSync {
		e.pv(t, args...)
	}
	for _, kind := range []string{"live", "test", "admin"} {
		var k struct{ Key string }
		if err := json.Unmarshal([]byte(e.pv(t, "keys", "create", "--env", kind, "--json")), &k); err != nil {
			t.Fatal(err)
		}
		e.keys[kind] = k.Key
	}
	// Well formed, never issued: the server must answer 401.
	e.keys["bad"] = "pv_live_" + strings.Repeat("x", 40)
	e.srv = pvtest.Serve(t, e.serveArgs("127.0.0.1:0")...)
	e.url = e.srv.URL
	return e
}

// serveArgs starts serve for the SDKs: the render bound is raised from
// 100 ms because these scenarios test what the SDKs do with render answers,
// not the bound, and a busy 2-core machine can take longer than 100 ms to
// hand a render to its worker.
func (e *env) serveArgs(addr string) []string {
	return []string{"--data", e.data, "--addr", addr, "--reconcile-every", "1h", "--render-timeout", "20s"}
}

func (e *env) pv(t testing.TB, args ...string) string {
	t.Helper()
	return pvtest.Run(t, append(args, "--data", e.data)...)
}

func (e *env) run(t *testing.T, drivers []*driver, i int, st step) {
	t.Helper()
	where := fmt.Sprintf("step %d", i+1)
	switch {
	case st.CLI != nil:
		e.pv(t, st.CLI...)
	case st.Server == "kill":
		e.srv.Kill()
	case st.Server == "restart":
		u, _ := url.Parse(e.url)
		e.srv = pvtest.Serve(t, e.serveArgs(u.Host)...)
	case st.Server != "":
		t.Fatalf("%s: unknown server action %q", where, st.Server)
	case st.DeletePrompt != "":
		e.git.Remove("prompts/" + st.DeletePrompt + ".yaml")
		e.git.Commit("delete " + st.DeletePrompt)
		e.pv(t, "sync")
	case st.WriteSnapshot != "":
		for _, d := range drivers {
			if err := os.WriteFile(e.snapshot(d, st.WriteSnapshot), []byte(st.Content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	default:
		for _, d := range drivers {
			e.clientStep(t, d, where, st)
		}
	}
}

func (e *env) snapshot(d *driver, name string) string {
	return filepath.Join(e.dir, d.lang+"-"+name+".json")
}

func (e *env) clientStep(t *testing.T, d *driver, where string, st step) {
	t.Helper()
	where = d.lang + " " + where
	switch {
	case st.Open != "":
		req := map[string]any{"op": "open", "client": st.Open, "base_url": e.url, "api_key": e.keys[st.KeyKind],
			"backoff_ms": []int{10, 200}, "revalidate_ms": 10}
		if st.Snapshot != "" {
			req["snapshot_path"] = e.snapshot(d, st.Snapshot)
		}
		if st.Events != nil {
			req["events"] = *st.Events
		}
		if st.RevalidateMS > 0 {
			req["revalidate_ms"] = st.RevalidateMS
		}
		if a := d.call(t, req); !a.OK {
			t.Fatalf("%s: open: %+v", where, a.Error)
		}
		e.opened[st.Open] = st.KeyKind
	case st.Close != "":
		if a := d.call(t, map[string]any{"op": "close", "client": st.Close}); !a.OK {
			t.Fatalf("%s: close: %+v", where, a.Error)
		}
	case st.Wait != "":
		want := st.Wait == "connected"
		pvtest.WaitFor(t, eventually, where+" "+st.Wait, func() bool {
			a := d.call(t, map[string]any{"op": "connected", "client": st.Client})
			var r struct{ Connected bool }
			json.Unmarshal(a.Result, &r)
			return a.OK && r.Connected == want
		})
	case st.Get != "" || st.Render != "":
		req := map[string]any{"op": "get", "client": st.Client, "key": st.Get}
		if st.Render != "" {
			vars := st.Variables
			if vars == nil {
				vars = map[string]any{}
			}
			req = map[string]any{"op": "render", "client": st.Client, "key": st.Render, "variables": vars}
		}
		check := func() string {
			a := d.call(t, req)
			switch {
			case st.Expect != nil || st.Eventually != nil:
				ex := st.Expect
				if ex == nil {
					ex = st.Eventually
				}
				if !a.OK {
					return fmt.Sprintf("error %+v", *a.Error)
				}
				if st.Render != "" {
					return e.checkRendered(a.Result, ex)
				}
				return e.checkPrompt(st.Client, a.Result, ex)
			default:
				ex := st.ExpectError
				if ex == nil {
					ex = st.EventuallyEr
				}
				if a.OK {
					return fmt.Sprintf("succeeded with %s", a.Result)
				}
				var paths []string
				for _, v := range a.Error.Errors {
					paths = append(paths, v.Path)
				}
				if a.Error.Status != ex.Status || ex.Code != "" && a.Error.Code != ex.Code ||
					ex.Paths != nil && !reflect.DeepEqual(paths, ex.Paths) {
					return fmt.Sprintf("error %+v, want status %d code %q paths %v", *a.Error, ex.Status, ex.Code, ex.Paths)
				}
				if a.Error.Message == "" {
					return "error without a message"
				}
				return ""
			}
		}
		if st.Eventually != nil || st.EventuallyEr != nil {
			var last string
			start := time.Now()
			for {
				if last = check(); last == "" {
					break
				}
				if time.Since(start) > eventually {
					t.Fatalf("%s: %s %s%s never held: %s\n%s", where, req["op"], st.Get, st.Render, last, d.stderr())
				}
				time.Sleep(5 * time.Millisecond)
			}
			return
		}
		for range max(st.Times, 1) {
			if msg := check(); msg != "" {
				t.Fatalf("%s: %s %s%s: %s\n%s", where, req["op"], st.Get, st.Render, msg, d.stderr())
			}
		}
	default:
		t.Fatalf("%s: step does nothing: %+v", where, st)
	}
}

func (e *env) checkPrompt(client string, raw json.RawMessage, ex *expect) string {
	var p gotPrompt
	if err := json.Unmarshal(raw, &p); err != nil {
		return err.Error()
	}
	switch {
	case ex.Key != "" && p.Key != ex.Key:
		return fmt.Sprintf("key %q, want %q", p.Key, ex.Key)
	case ex.Env != "" && p.Env != ex.Env:
		return fmt.Sprintf("env %q, want %q", p.Env, ex.Env)
	case ex.Version != "" && p.Version != ex.Version:
		return fmt.Sprintf("version %q, want %q", p.Version, ex.Version)
	case ex.Template != nil && p.Template != *ex.Template:
		return fmt.Sprintf("template %q, want %q", p.Template, *ex.Template)
	case len(p.Commit) != 40 || len(p.SHA256) != 64:
		return fmt.Sprintf("commit %q sha256 %q: want 40 and 64 hex digits", p.Commit, p.SHA256)
	}
	// Every SDK's trace attributes name the exact prompt.
	want := map[string]string{"gen_ai.prompt.name": p.Key, "gen_ai.prompt.version": p.Version,
		"promptvault.prompt.commit": p.Commit, "promptvault.prompt.sha256": p.SHA256, "promptvault.prompt.env": p.Env}
	for k, v := range ex.Attributes {
		want[k] = v
	}
	if !reflect.DeepEqual(p.Attributes, want) {
		return fmt.Sprintf("attributes %v, want %v", p.Attributes, want)
	}
	if ex.SameAsServer {
		// What the SDK serves is what the server answers this key now.
		req, _ := http.NewRequest(http.MethodGet, e.url+"/v1/prompts/"+p.Key, nil)
		req.Header.Set("Authorization", "Bearer "+e.keys[e.opened[client]])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer res.Body.Close()
		var s gotPrompt
		if err := json.NewDecoder(res.Body).Decode(&s); err != nil || res.StatusCode != http.StatusOK {
			return fmt.Sprintf("server: %d %v", res.StatusCode, err)
		}
		if s.Version != p.Version || s.Env != p.Env || s.Commit != p.Commit || s.SHA256 != p.SHA256 {
			return fmt.Sprintf("SDK serves %s %s %s %s, server %s %s %s %s", p.Env, p.Version, p.Commit, p.SHA256, s.Env, s.Version, s.Commit, s.SHA256)
		}
	}
	return ""
}

func (e *env) checkRendered(raw json.RawMessage, ex *expect) string {
	var r gotRendered
	if err := json.Unmarshal(raw, &r); err != nil {
		return err.Error()
	}
	switch {
	case ex.Key != "" && r.Key != ex.Key:
		return fmt.Sprintf("key %q, want %q", r.Key, ex.Key)
	case ex.Env != "" && r.Env != ex.Env:
		return fmt.Sprintf("env %q, want %q", r.Env, ex.Env)
	case ex.Version != "" && r.Version != ex.Version:
		return fmt.Sprintf("version %q, want %q", r.Version, ex.Version)
	case ex.Messages != nil && !reflect.DeepEqual(r.Messages, ex.Messages):
		return fmt.Sprintf("messages %+v, want %+v", r.Messages, ex.Messages)
	}
	return ""
}
