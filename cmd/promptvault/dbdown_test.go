package main

// Issue 12 (SPEC §8): while an instance cannot reach PostgreSQL, /readyz
// answers 503 and reads keep being served from memory. The shared database
// is never stopped: serve reaches it through a TCP proxy the test cuts.

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/index/indextest"
)

// pgProxy forwards TCP connections from a loopback port to target and can
// cut every one of them at once.
type pgProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startProxy(t *testing.T, addr, target string) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.accept()
	t.Cleanup(p.cut)
	return p
}

func (p *pgProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil { // cut already
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *pgProxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(in) {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		if !p.track(out) {
			in.Close()
			return
		}
		go func() { io.Copy(out, in); out.Close(); in.Close() }()
		go func() { io.Copy(in, out); out.Close(); in.Close() }()
	}
}

// cut closes the listener and every connection it has carried.
func (p *pgProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// readyStatus is /readyz's status and body (0 on a transport error).
func readyStatus(p *serveProc) (int, string) {
	resp, err := http.Get(p.base + "/readyz")
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// dbDown is /readyz's 503 for an unreachable database, not another reason.
func dbDown(p *serveProc) bool {
	code, body := readyStatus(p)
	return code == http.StatusServiceUnavailable && strings.Contains(body, "database_unreachable")
}

func TestServeDatabaseUnreachable(t *testing.T) {
	dbURL := indextest.Postgres(t) // skips when PV_TEST_POSTGRES is unset
	c := &cluster{url: dbURL, g: gittest.Sample(t)}
	live := c.key(t, "live")

	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, "127.0.0.1:0", u.Host)
	u.Host = proxy.ln.Addr().String()
	s := startServe(t, t.TempDir(), "--repo", c.g.Dir, "--database", u.String())

	const prompt = "support/summarize"
	waitFor(t, 30*time.Second, "a live read answering 200", func() bool {
		code, _ := s.get(t, live, "/v1/prompts/"+prompt)
		return code == 200
	})
	want := version(s, live, prompt)
	if want == "" {
		t.Fatal("no version served before the cut")
	}
	if code, body := readyStatus(s); code != 200 {
		t.Fatalf("/readyz %d before the cut, want 200: %s", code, body)
	}

	proxy.cut()
	cutAt := time.Now()
	down := waitFor(t, 30*time.Second, "/readyz 503 with the database unreachable", func() bool {
		return dbDown(s)
	})
	t.Logf("/readyz answered 503 %v after the cut", down)

	readStart := time.Now()
	for i := range 50 {
		code, body := s.get(t, live, "/v1/prompts/"+prompt)
		if code != 200 || body["version"] != want {
			t.Fatalf("read %d with the database down: %d %v, want 200 %s\n%s", i, code, body, want, s.Logs())
		}
	}
	t.Logf("50 reads with the database down: all 200 %s, in %v", want, time.Since(readStart))
	if code, body := readyStatus(s); !dbDown(s) {
		t.Errorf("/readyz %d after the reads, still want 503 database_unreachable: %s", code, body)
	}

	startProxy(t, u.Host, proxy.target)
	up := waitFor(t, 60*time.Second, "/readyz 200 with the database back", func() bool {
		code, _ := readyStatus(s)
		return code == 200
	})
	t.Logf("/readyz answered 200 again %v after the proxy came back (%v after the cut)", up, time.Since(cutAt))
	if got := version(s, live, prompt); got != want {
		t.Errorf("serves %q after the database came back, want %q", got, want)
	}
}
