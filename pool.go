package promptvault

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Renders run in worker processes: the same binary, re-executed, fed over
// pipes. A goroutine cannot be stopped from outside, a Go stack overflow is
// fatal to the whole process and gonja allocates inside filters and tests
// where no deadline check reaches; the operating system can stop a process
// and bound its memory. So a worker past its deadline is SIGKILLed, a worker
// that dies (stack overflow, out of memory) fails only its own render, and
// either is replaced. The sandbox checks (sandbox.go) still run inside the
// worker: they give clear messages for the common cases; the process is
// what makes the bounds hold.

// DefaultMaxMemory is SPEC §3's render memory bound.
const DefaultMaxMemory = 64 << 20

// Environment switches a re-executed binary into a render worker. They are
// read in this package's init, before main, so every binary that links
// promptvault (the command, and each package's test binary) can serve as a
// worker without wiring of its own.
const (
	workerEnv    = "_PROMPTVAULT_RENDER_WORKER"
	workerMemEnv = "_PROMPTVAULT_RENDER_MEMORY"
)

// workerStartTimeout bounds how long a new worker may take to say it is
// ready. Workers start at nice 10, so on a machine busy with other work
// their start-up can take seconds; a render waiting for one that never
// comes is answered 503 busy.
const workerStartTimeout = 60 * time.Second

// workerNice is the workers' scheduling priority: under contention reads
// (nice 0) get about ten times their CPU share.
const workerNice = 10

// Frame bounds: a request holds at most the render body (1 MB), the
// templates (a file is at most MaxFileSize) and the schema.
const (
	maxRequestFrame = 4 << 20
	maxFrameSlack   = 1 << 20
)

func init() {
	if os.Getenv(workerEnv) == "1" {
		os.Exit(runWorker(os.Stdin, os.Stdout))
	}
}

// workerRequest is one render sent to a worker.
type workerRequest struct {
	Templates []workerTemplate `json:"templates"`
	// Schema is the input schema when the worker is to validate the
	// variables: only when the server could not do so cheaply
	// (Prompt.Render); otherwise Variables come validated, defaults in.
	Schema    map[string]any `json:"schema,omitempty"`
	Variables map[string]any `json:"variables"`
	Timeout   time.Duration  `json:"timeout"`
	MaxOutput int            `json:"max_output"`
	MaxSteps  int            `json:"max_steps"`
}

type workerTemplate struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Source string `json:"source"`
}

// workerResponse is a render's outcome: messages, or exactly one error.
type workerResponse struct {
	Hello     bool            `json:"hello,omitempty"` // the first frame: the worker is ready
	Messages  []Message       `json:"messages,omitempty"`
	Variables []VariableError `json:"variables,omitempty"` // a *VariablesError
	Render    string          `json:"render,omitempty"`    // an ErrRender's reason
	Internal  string          `json:"internal,omitempty"`  // anything else
}

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := make([]byte, 4, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	_, err = w.Write(append(buf, b...))
	return err
}

var errFrameTooLarge = errors.New("frame too large")

// readFrame reads one length-prefixed JSON frame into v, refusing frames
// longer than limit before reading them. Numbers decode as json.Number,
// so big integers keep their digits.
func readFrame(r io.Reader, limit int, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if int64(n) > int64(limit) {
		return fmt.Errorf("%w: %d bytes", errFrameTooLarge, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	return dec.Decode(v)
}

// runWorker serves renders read from in until in closes. It returns the
// process exit code.
func runWorker(in io.Reader, out io.Writer) int {
	mem := int64(DefaultMaxMemory)
	if v, err := strconv.ParseInt(os.Getenv(workerMemEnv), 10, 64); err == nil && v > 0 {
		mem = v
	}
	if err := limitWorker(mem); err != nil {
		fmt.Fprintf(os.Stderr, "render worker: %v\n", err)
		return 2
	}
	br := bufio.NewReader(in)
	bw := bufio.NewWriter(out)
	send := func(r *workerResponse) bool {
		return writeFrame(bw, r) == nil && bw.Flush() == nil
	}
	if !send(&workerResponse{Hello: true}) {
		return 1
	}
	for {
		var req workerRequest
		if err := readFrame(br, maxRequestFrame, &req); err != nil {
			if errors.Is(err, io.EOF) {
				return 0 // the server closed the pipe or exited
			}
			fmt.Fprintf(os.Stderr, "render worker: read request: %v\n", err)
			return 1
		}
		if !send(serveRender(&req)) {
			return 1
		}
	}
}

// limitWorker applies the bounds a worker process lives under. It runs one
// render at a time, so one P is enough, and a render's CPU time then cannot
// exceed its wall time. The memory limit is enforced twice: softly by the
// garbage collector (collect harder near the limit rather than grow), hard
// by RLIMIT_AS (an allocation past it fails and the runtime dies, killing
// only this worker). The address-space limit is the bound plus what the
// process had mapped before its first render plus one heap arena (the Go
// heap grows in 64 MB reservations).
func limitWorker(mem int64) error {
	runtime.GOMAXPROCS(1)
	debug.SetMemoryLimit(mem)
	// Deep recursion in the engine is fatal either way; a small stack
	// limit makes it fatal quickly rather than after a gigabyte.
	debug.SetMaxStack(16 << 20)
	vm, err := vmSize()
	if err != nil {
		return err
	}
	lim := uint64(vm + mem + 64<<20 + 64<<20)
	return syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: lim, Max: lim})
}

// vmSize is the process's mapped address space in bytes.
func vmSize() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, fmt.Errorf("read statm: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, errors.New("statm is empty")
	}
	pages, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("statm: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// testWorkerHook, set only by this package's tests (before init runs),
// lets a test worker misbehave in ways no template reliably can.
var testWorkerHook func(*workerRequest)

// serveRender renders one request inside the worker.
func serveRender(req *workerRequest) (res *workerResponse) {
	if testWorkerHook != nil {
		testWorkerHook(req)
	}
	defer func() {
		if v := recover(); v != nil {
			res = &workerResponse{Render: fmt.Sprintf("the template engine failed: %v", v)}
		}
	}()
	p := &Prompt{InputSchema: req.Schema}
	if req.Schema != nil {
		s, err := CompileSchema(req.Schema)
		if err != nil {
			return &workerResponse{Internal: fmt.Sprintf("input schema: %v", err)}
		}
		p.input = s
	}
	for _, t := range req.Templates {
		tpl, err := parseTemplateCached(t.Name, t.Source)
		if err != nil {
			return &workerResponse{Internal: fmt.Sprintf("parse %s: %v", t.Name, err)}
		}
		p.templates = append(p.templates, MessageTemplate{Role: t.Role, Template: tpl})
	}
	lim := Limits{Timeout: req.Timeout, MaxOutput: req.MaxOutput, MaxSteps: req.MaxSteps}.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), lim.Timeout)
	defer cancel()
	out, err := p.renderHere(ctx, req.Variables, lim)
	return responseOf(out, err)
}

func responseOf(out *Rendered, err error) *workerResponse {
	var ve *VariablesError
	switch {
	case err == nil:
		return &workerResponse{Messages: out.Messages}
	case errors.As(err, &ve):
		return &workerResponse{Variables: ve.List}
	case errors.Is(err, ErrRender):
		return &workerResponse{Render: strings.TrimPrefix(err.Error(), ErrRender.Error()+": ")}
	default:
		return &workerResponse{Internal: err.Error()}
	}
}

// errorOf is responseOf's inverse, in the server.
func (r *workerResponse) result() (*Rendered, error) {
	switch {
	case len(r.Variables) > 0:
		return nil, &VariablesError{List: r.Variables}
	case r.Render != "":
		return nil, fmt.Errorf("%w: %s", ErrRender, r.Render)
	case r.Internal != "":
		return nil, fmt.Errorf("render worker: %s", r.Internal)
	}
	if r.Messages == nil {
		r.Messages = []Message{}
	}
	return &Rendered{Messages: r.Messages}, nil
}

// PoolOptions configure a Pool. Zero fields take the defaults.
type PoolOptions struct {
	// Size is the number of worker processes, so of renders at once
	// (GOMAXPROCS when 0).
	Size int
	// MaxMemory bounds each worker's memory (DefaultMaxMemory when 0).
	MaxMemory int64
	// Wait is the longest a render waits for a free worker before failing
	// with ErrBusy (DefaultRenderTimeout when 0).
	Wait time.Duration
	// Command builds the command a worker runs; nil re-executes this
	// binary. Its environment gets the worker switches added.
	Command func() *exec.Cmd
	// OnExit, when set, is told why a worker ended: "timeout", "canceled",
	// "died" (a crash or the memory bound), "protocol" (a bad frame),
	// "start" (it never said hello).
	OnExit func(reason string)
	// NoSpare keeps no warm spare. By default, once the pool has started
	// a worker it keeps one more started and ready beyond Size, so a slot
	// whose worker was killed is refilled at once: a process start takes
	// seconds at nice 10 on a busy machine, and the next render would
	// wait for it.
	NoSpare bool
}

// Pool runs renders in a bounded set of worker processes. It is safe for
// concurrent use.
type Pool struct {
	opts PoolOptions
	// free holds one entry per worker slot: a ready worker, or nil for a
	// slot whose worker has yet to be started. Taking an entry is taking
	// the slot.
	free chan *worker

	mu     sync.Mutex // guards live, closed, spare and spareStarting
	live   map[*worker]struct{}
	closed bool
	// spare is a ready worker outside the slots (PoolOptions.NoSpare);
	// spareStarting says one is on its way.
	spare         *worker
	spareStarting bool
}

// NewPool makes a pool; workers start on first use and after each one
// ends.
func NewPool(opts PoolOptions) *Pool {
	if opts.Size <= 0 {
		opts.Size = runtime.GOMAXPROCS(0)
	}
	if opts.MaxMemory <= 0 {
		opts.MaxMemory = DefaultMaxMemory
	}
	if opts.Wait <= 0 {
		opts.Wait = DefaultRenderTimeout
	}
	p := &Pool{opts: opts, free: make(chan *worker, opts.Size), live: map[*worker]struct{}{}}
	for range opts.Size {
		p.free <- nil
	}
	return p
}

// Size is the number of workers the pool may run.
func (p *Pool) Size() int { return p.opts.Size }

// Busy is the number of workers rendering now.
func (p *Pool) Busy() int { return p.opts.Size - len(p.free) }

// Workers are the process IDs of the workers that are running and have
// said they are ready (the spare included).
func (p *Pool) Workers() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pids []int
	for w := range p.live {
		if w.hello.Load() {
			pids = append(pids, w.cmd.Process.Pid)
		}
	}
	return pids
}

// Close kills every worker. Renders in progress fail.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	ws := make([]*worker, 0, len(p.live))
	for w := range p.live {
		ws = append(ws, w)
	}
	p.mu.Unlock()
	for _, w := range ws {
		w.kill()
	}
	return nil
}

// worker is one worker process and the server's ends of its pipes.
type worker struct {
	cmd    *exec.Cmd
	in     *os.File // its stdin
	out    *os.File // its stdout
	r      *bufio.Reader
	stderr *headWriter
	hello  atomic.Bool // it said it is ready
	once   sync.Once
	done   chan struct{} // closed once it has been reaped
}

// start starts one worker. The fork happens on a thread of its own whose
// nice value is raised first: Linux keeps nice per thread and a child
// inherits its creator's, so the worker and every thread it makes run at
// workerNice from their first instruction. The thread is never unlocked,
// so it exits with its goroutine and the server's other threads keep
// their priority.
func (p *Pool) start() (*worker, error) {
	var cmd *exec.Cmd
	if p.opts.Command != nil {
		cmd = p.opts.Command()
	} else {
		// /proc/self/exe is this very binary even after a deploy replaced
		// the file on disk.
		cmd = exec.Command("/proc/self/exe")
		cmd.Args = []string{"promptvault-render-worker"}
	}
	cmd.Env = append(cmd.Environ(), workerEnv+"=1", workerMemEnv+"="+strconv.FormatInt(p.opts.MaxMemory, 10))
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("render worker pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("render worker pipe: %w", err)
	}
	w := &worker{cmd: cmd, in: inW, out: outR, r: bufio.NewReader(outR), stderr: &headWriter{max: 4 << 10}, done: make(chan struct{})}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, w.stderr
	err = startNiced(cmd)
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("start render worker: %w", err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		w.kill()
		return nil, fmt.Errorf("%w: the render pool is closed", ErrBusy)
	}
	p.live[w] = struct{}{}
	p.mu.Unlock()
	go func() {
		cmd.Wait()
		inW.Close()
		outR.Close()
		p.mu.Lock()
		delete(p.live, w)
		p.mu.Unlock()
		close(w.done)
	}()
	return w, nil
}

// startNiced starts cmd from a thread of its own whose nice value is
// raised first. The main thread is skipped: Go cannot end it, so it would
// stay niced, and the process's nice as tools show it is the main
// thread's. A goroutine that lands on it holds it (so the next one cannot)
// until the child has started.
func startNiced(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	release := make(chan struct{})
	defer close(release)
	var spawn func()
	spawn = func() {
		go func() {
			runtime.LockOSThread()
			if syscall.Gettid() == syscall.Getpid() {
				spawn()
				<-release
				runtime.UnlockOSThread()
				return
			}
			// Best effort: without it the worker still runs, at full
			// priority. The thread is never unlocked, so it exits with
			// this goroutine.
			_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), workerNice)
			errc <- cmd.Start()
		}()
	}
	spawn()
	return <-errc
}

// kill ends the worker at once; it is reaped in the background.
func (w *worker) kill() {
	w.once.Do(func() { w.cmd.Process.Kill() })
}

// acquire takes a worker slot, waiting at most the pool's wait, and makes
// sure the slot's worker is running and ready: an empty slot takes the
// spare when there is one, else starts a worker.
func (p *Pool) acquire(ctx context.Context) (*worker, error) {
	var w *worker
	select {
	case w = <-p.free:
	default:
		t := time.NewTimer(p.opts.Wait)
		defer t.Stop()
		select {
		case w = <-p.free:
		case <-t.C:
			return nil, fmt.Errorf("%w: %d renders running; retry shortly", ErrBusy, p.opts.Size)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if w == nil {
		w = p.takeSpare()
	}
	// The pool is in use: have a spare ready for the next slot that
	// needs a worker.
	p.fillSpare()
	if w != nil && w.hello.Load() {
		return w, nil
	}
	if w == nil {
		var err error
		if w, err = p.start(); err != nil {
			p.free <- nil
			return nil, err
		}
	}
	// Waiting for the hello here keeps the worker's start-up out of the
	// render's time bound; a loaded machine may take a while to start a
	// process.
	if err := p.waitHello(w); err != nil {
		p.free <- nil
		return nil, err
	}
	return w, nil
}

// waitHello waits for a new worker's first frame, which says it is
// ready. A worker that fails to send it is killed and reaped.
func (p *Pool) waitHello(w *worker) error {
	w.out.SetReadDeadline(time.Now().Add(max(p.opts.Wait, workerStartTimeout)))
	var hello workerResponse
	if err := readFrame(w.r, 1<<10, &hello); err != nil || !hello.Hello {
		w.kill()
		<-w.done
		if p.opts.OnExit != nil {
			p.opts.OnExit("start")
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("%w: a render worker is still starting", ErrBusy)
		}
		return fmt.Errorf("render worker did not start: %v %s", err, w.stderr.firstLine())
	}
	w.hello.Store(true)
	return nil
}

// takeSpare takes the ready spare, or returns nil when there is none.
func (p *Pool) takeSpare() *worker {
	p.mu.Lock()
	w := p.spare
	p.spare = nil
	p.mu.Unlock()
	if w == nil {
		return nil
	}
	select {
	case <-w.done:
		// It died while idle (killed from outside, say): the caller
		// starts a worker as it would without a spare.
		return nil
	default:
		return w
	}
}

// fillSpare starts a spare in the background unless there is one, one is
// starting, or the pool keeps none. A spare that fails to start is not
// retried until the next call, so a broken worker command cannot make the
// pool spin.
func (p *Pool) fillSpare() {
	if p.opts.NoSpare {
		return
	}
	p.mu.Lock()
	if p.closed || p.spare != nil || p.spareStarting {
		p.mu.Unlock()
		return
	}
	p.spareStarting = true
	p.mu.Unlock()
	go func() {
		w, err := p.start()
		if err == nil {
			err = p.waitHello(w)
		}
		p.mu.Lock()
		p.spareStarting = false
		keep := err == nil && !p.closed
		if keep {
			p.spare = w
		}
		p.mu.Unlock()
		if err == nil && !keep {
			w.kill() // the pool closed while it started
		}
	}()
}

// discard kills w and gives its slot a new worker before returning, so
// the render that failed answers only once its slot is free again: a
// client retrying at once finds a worker, not 503 busy. The new worker is
// the spare, ready at once, and another spare starts in the background;
// without a spare a worker is started here (a fork and exec; its start-up
// runs while the slot waits for its next render).
func (p *Pool) discard(w *worker, reason string) {
	w.kill()
	if p.opts.OnExit != nil {
		p.opts.OnExit(reason)
	}
	nw := p.takeSpare()
	if nw == nil {
		var err error
		if nw, err = p.start(); err != nil {
			nw = nil // the next render tries again, and reports the error
		}
	}
	p.free <- nw
	p.fillSpare()
}

// render runs one render on a worker, bounded by lim.Timeout from the
// moment a worker is free.
func (p *Pool) render(ctx context.Context, req *workerRequest, maxOutput int) (*Rendered, error) {
	w, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(req.Timeout)
	w.in.SetWriteDeadline(deadline)
	w.out.SetReadDeadline(deadline)
	// A client that goes away stops its render: the deadline moves to now.
	stop := context.AfterFunc(ctx, func() {
		w.in.SetWriteDeadline(time.Unix(1, 0))
		w.out.SetReadDeadline(time.Unix(1, 0))
	})
	var res workerResponse
	err = writeFrame(w.in, req)
	if err == nil {
		// JSON may escape each output byte as \u00XX.
		err = readFrame(w.r, 6*maxOutput+maxFrameSlack, &res)
	}
	stop()
	if err == nil {
		p.free <- w
		return res.result()
	}
	switch {
	case ctx.Err() != nil:
		p.discard(w, "canceled")
		return nil, ctx.Err()
	case errors.Is(err, os.ErrDeadlineExceeded):
		p.discard(w, "timeout")
		return nil, timeoutErr(req.Timeout)
	case errors.Is(err, errFrameTooLarge):
		p.discard(w, "protocol")
		return nil, fmt.Errorf("%w: output is larger than %d bytes", ErrRender, maxOutput)
	}
	// The worker died before answering: wait for it, and say why.
	w.kill()
	<-w.done
	p.discard(w, "died")
	return nil, diedErr(w.stderr.String(), p.opts.MaxMemory)
}

// diedErr words a worker's death from what it printed.
func diedErr(stderr string, mem int64) error {
	switch {
	case strings.Contains(stderr, "stack overflow") || strings.Contains(stderr, "stack exceeds"):
		return fmt.Errorf("%w: the template recursed too deeply; want less nesting", ErrRender)
	case strings.Contains(stderr, "out of memory") || strings.Contains(stderr, "cannot allocate memory"):
		return fmt.Errorf("%w: rendering needed more than %d MB of memory; want smaller values", ErrRender, mem>>20)
	}
	return fmt.Errorf("%w: the render stopped abnormally (its worker process died)", ErrRender)
}

// headWriter keeps the first max bytes written to it: a dying Go
// program prints its reason first, then every goroutine's stack.
type headWriter struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *headWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.max - len(t.b); n > 0 {
		t.b = append(t.b, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

func (t *headWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func (t *headWriter) firstLine() string {
	s, _, _ := strings.Cut(t.String(), "\n")
	return s
}
