// Package promptvault is the Go SDK for a promptvault server: Get reads a prompt
// from an in-memory cache that the server's event stream (GET /v1/events)
// keeps fresh the moment a pointer moves, and Render renders a prompt on the
// server.
//
// Why push instead of a TTL: hosted prompt managers' SDKs cache for 60–300
// seconds, so a rollback takes minutes to reach production. Here the cache
// is refetched (with If-None-Match) as soon as the server reports a change,
// usually within milliseconds. When the stream is down, cached prompts are
// still served at once while being revalidated in the background
// (stale-while-revalidate); when the server is unreachable or failing, the
// last good copy is served; with WithSnapshotFile the cache survives
// restarts, so an application can start while the server is down.
//
// The package uses only the standard library and is its own module, so an
// application that imports it does not inherit the server's dependencies.
package promptvault

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Prompt is a resolved prompt: GET /v1/prompts/{key}'s answer.
type Prompt struct {
	Key       string `json:"key"`
	Env       string `json:"env"`     // "live" or "staging": the pointer that served it
	Version   string `json:"version"` // "v7", or a draft's label on staging
	Number    *int   `json:"number"`  // nil for drafts
	Commit    string `json:"commit"`
	SHA256    string `json:"sha256"`
	Message   string `json:"message"`
	Author    string `json:"author"`
	CreatedAt string `json:"created_at"`
	Prompt    Body   `json:"prompt"`
	// ETag is the server's entity tag for this document.
	ETag string `json:"-"`
}

// Trace attribute names. The first two are OpenTelemetry's GenAI semantic
// conventions (gen_ai.prompt.name and gen_ai.prompt.version, conditionally
// required on an inference span that used a named prompt template); the
// conventions have no name for the commit or the content hash, so those
// take the vendor namespace OpenTelemetry asks for, promptvault.*.
const (
	AttrPromptName    = "gen_ai.prompt.name"
	AttrPromptVersion = "gen_ai.prompt.version"
	AttrPromptCommit  = "promptvault.prompt.commit"
	AttrPromptSHA256  = "promptvault.prompt.sha256"
	AttrPromptEnv     = "promptvault.prompt.env"
)

// TraceAttributes returns the attributes to put on the LLM span that used
// this prompt, so a generation can be traced to the exact prompt: key,
// version label, commit and the file's SHA-256 (and which pointer served
// it). The map is new on each call; with OpenTelemetry:
//
//	for k, v := range p.TraceAttributes() {
//		span.SetAttributes(attribute.String(k, v))
//	}
func (p *Prompt) TraceAttributes() map[string]string {
	return map[string]string{
		AttrPromptName:    p.Key,
		AttrPromptVersion: p.Version,
		AttrPromptCommit:  p.Commit,
		AttrPromptSHA256:  p.SHA256,
		AttrPromptEnv:     p.Env,
	}
}

// Body is the prompt file's content (SPEC §1).
type Body struct {
	Description   string         `json:"description,omitempty"`
	Model         string         `json:"model,omitempty"`
	FallbackModel string         `json:"fallback_model,omitempty"`
	Temperature   *float64       `json:"temperature,omitempty"`
	MaxTokens     *int           `json:"max_tokens,omitempty"`
	TopP          *float64       `json:"top_p,omitempty"`
	System        string         `json:"system,omitempty"`
	Template      string         `json:"template,omitempty"`
	Messages      []Message      `json:"messages,omitempty"`
	InputSchema   map[string]any `json:"input_schema,omitempty"`
	OutputSchema  map[string]any `json:"output_schema,omitempty"`
	CacheTimeout  *int           `json:"cache_timeout,omitempty"`
	Config        map[string]any `json:"config,omitempty"`
}

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Rendered is POST /v1/prompts/{key}/render's answer.
type Rendered struct {
	Key           string         `json:"key"`
	Env           string         `json:"env"`
	Version       string         `json:"version"`
	Messages      []Message      `json:"messages"`
	Model         *string        `json:"model"`
	FallbackModel *string        `json:"fallback_model"`
	Temperature   *float64       `json:"temperature"`
	MaxTokens     *int           `json:"max_tokens"`
	TopP          *float64       `json:"top_p"`
	OutputSchema  map[string]any `json:"output_schema"`
	CacheTimeout  *int           `json:"cache_timeout"`
	Config        map[string]any `json:"config"`
}

// Error is an error answer from the server, or (Status 0) one the client
// raised itself: Code "unavailable" when the server could not be reached
// or its answer not read, "invalid_key" for a key that breaks SPEC §1's
// pattern (checked before any request, so no hostile path reaches the
// server), "bad_response" for an answer that is not the documented JSON.
type Error struct {
	Status  int
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Errors  []VariableError `json:"errors,omitempty"` // render: each problem with the variables

	err error // the transport error behind "unavailable"
}

// Unwrap returns the transport error behind an "unavailable" error.
func (e *Error) Unwrap() error { return e.err }

// keyPattern is SPEC §1's key: lower-case path segments that start with a
// letter or digit, at most 128 bytes.
var keyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$`)

func checkKey(key string) error {
	if len(key) > 128 || !keyPattern.MatchString(key) {
		return &Error{Code: "invalid_key", Message: fmt.Sprintf("invalid prompt key %q: want lower-case path segments such as support/summarize", key)}
	}
	return nil
}

func unavailable(op, key string, err error) error {
	return &Error{Code: "unavailable", Message: fmt.Sprintf("%s %s: %v", op, key, err), err: err}
}

// VariableError is one problem with a render's variables, at a JSON
// pointer into them.
type VariableError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("promptvault: %s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("promptvault: %d %s: %s", e.Status, e.Code, e.Message)
}

// authoritative reports whether an error answer means the cached copy is
// wrong (the prompt is gone) rather than that the server is unwell or the
// client misconfigured, when the last good copy keeps being served.
func (e *Error) authoritative() bool {
	return e.Status == http.StatusNotFound
}

// Option configures New.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: one with a 10 s timeout for
// requests; the event stream has none).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithSnapshotFile keeps a copy of the cache in path, written atomically
// after each change and read by New, so a restarted application serves the
// last prompts it saw even when the server is down.
func WithSnapshotFile(path string) Option { return func(c *Client) { c.snapPath = path } }

// WithoutEvents turns the event stream off: cached prompts are then
// revalidated (If-None-Match) on Get at most every revalidate interval.
func WithoutEvents() Option { return func(c *Client) { c.noEvents = true } }

// WithBackoff sets the event stream's reconnect delays (default 100 ms
// doubling to 30 s, with jitter).
func WithBackoff(min, max time.Duration) Option {
	return func(c *Client) { c.backoffMin, c.backoffMax = min, max }
}

// WithRevalidateEvery sets how often Get revalidates a cached prompt in the
// background while the event stream is down (default 1 s).
func WithRevalidateEvery(d time.Duration) Option { return func(c *Client) { c.revalidate = d } }

// WithLogger sets where the client logs stream and refresh failures
// (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithOnUpdate calls fn (on a client goroutine) whenever a cached prompt is
// replaced by a newer document.
func WithOnUpdate(fn func(p *Prompt)) Option { return func(c *Client) { c.onUpdate = fn } }

// Client reads prompts from one server with one API key. It is safe for
// concurrent use; Close stops its goroutines.
type Client struct {
	base       string
	key        string
	hc         *http.Client
	stream     *http.Client
	log        *slog.Logger
	snapPath   string
	noEvents   bool
	backoffMin time.Duration
	backoffMax time.Duration
	revalidate time.Duration
	onUpdate   func(*Prompt)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	connected atomic.Bool // the event stream is up: fresh entries need no check

	mu     sync.Mutex
	cache  map[string]*entry
	lastID string // last event id seen; resumes the stream

	snapMu sync.Mutex // serialises snapshot writes
}

type entry struct {
	p        *Prompt
	raw      json.RawMessage
	stale    bool      // an event (or a reconnect) says it may have changed
	checked  time.Time // last revalidation
	inflight bool
}

// New returns a client for the server at baseURL (such as
// "http://127.0.0.1:8080") using API key key, and starts following the
// event stream.
func New(baseURL, key string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("promptvault: base URL %q: want scheme and host, such as http://127.0.0.1:8080", baseURL)
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), key: key, log: slog.New(slog.DiscardHandler),
		backoffMin: 100 * time.Millisecond, backoffMax: 30 * time.Second, revalidate: time.Second,
		cache: map[string]*entry{}}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 10 * time.Second}
	}
	// The stream must not be cut by a request timeout.
	st := *c.hc
	st.Timeout = 0
	c.stream = &st
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if c.snapPath != "" {
		if err := c.loadSnapshot(); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("promptvault: snapshot file unreadable; starting empty", "path", c.snapPath, "err", err)
		}
	}
	if !c.noEvents {
		c.wg.Add(1)
		go c.follow()
	}
	return c, nil
}

// Close stops the event stream and background refreshes.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// Connected reports whether the event stream is up.
func (c *Client) Connected() bool { return c.connected.Load() }

// Get returns prompt key as the client's key reads it. A cached copy is
// returned at once; it is refetched in the background when an event says
// it changed, or (stream down) at most every revalidate interval. Without
// a cached copy Get asks the server.
func (c *Client) Get(ctx context.Context, key string) (*Prompt, error) {
	// A cached key was checked when it was first fetched; the check (a
	// regular expression) would otherwise be most of a cached Get's cost.
	c.mu.Lock()
	e := c.cache[key]
	if e != nil {
		p := e.p
		need := e.stale || !c.connected.Load() && time.Since(e.checked) >= c.revalidate
		if need && !e.inflight {
			e.inflight = true
			c.wg.Add(1)
			go c.refresh(key)
		}
		c.mu.Unlock()
		return p, nil
	}
	c.mu.Unlock()
	if err := checkKey(key); err != nil {
		return nil, err
	}
	p, raw, err := c.fetch(ctx, key, "")
	if err != nil {
		return nil, err
	}
	c.store(key, p, raw)
	return p, nil
}

// Refresh refetches key now (If-None-Match) and returns the result; on a
// failure the cached copy, if any, is kept and the error returned.
func (c *Client) Refresh(ctx context.Context, key string) (*Prompt, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	c.mu.Lock()
	etag := ""
	if e := c.cache[key]; e != nil {
		etag = e.p.ETag
	}
	c.mu.Unlock()
	p, raw, err := c.fetch(ctx, key, etag)
	switch {
	case err == errNotModified:
		c.mu.Lock()
		defer c.mu.Unlock()
		if e := c.cache[key]; e != nil {
			e.stale, e.checked = false, time.Now()
			return e.p, nil
		}
		return nil, err
	case err != nil:
		var se *Error
		if errors.As(err, &se) && se.authoritative() {
			c.mu.Lock()
			delete(c.cache, key)
			c.mu.Unlock()
			c.saveSnapshot()
		}
		return nil, err
	}
	c.store(key, p, raw)
	return p, nil
}

func (c *Client) refresh(key string) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	_, err := c.Refresh(ctx, key)
	c.mu.Lock()
	if e := c.cache[key]; e != nil {
		e.inflight = false
		if err != nil {
			// Last good copy stays; try again after the interval.
			e.checked = time.Now()
		}
	}
	c.mu.Unlock()
	if err != nil && c.ctx.Err() == nil {
		c.log.Debug("promptvault: refresh failed; serving the last good copy", "key", key, "err", err)
	}
}

func (c *Client) store(key string, p *Prompt, raw json.RawMessage) {
	c.mu.Lock()
	old := c.cache[key]
	changed := old == nil || old.p.ETag != p.ETag
	c.cache[key] = &entry{p: p, raw: raw, checked: time.Now()}
	c.mu.Unlock()
	if changed {
		if c.onUpdate != nil {
			c.onUpdate(p)
		}
		c.saveSnapshot()
	}
}

var errNotModified = errors.New("not modified")

func (c *Client) fetch(ctx context.Context, key, etag string) (*Prompt, json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/prompts/"+escapeKey(key), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, unavailable("get", key, err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusNotModified {
		io.Copy(io.Discard, res.Body)
		return nil, nil, errNotModified
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return nil, nil, unavailable("get", key, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, nil, decodeError(res.StatusCode, body)
	}
	var p Prompt
	if err := json.Unmarshal(body, &p); err != nil || p.Key == "" {
		return nil, nil, &Error{Status: res.StatusCode, Code: "bad_response", Message: fmt.Sprintf("get %s: not a prompt document: %v", key, err)}
	}
	p.ETag = res.Header.Get("ETag")
	return &p, body, nil
}

// escapeKey escapes each segment of a key; the slashes stay.
func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func decodeError(status int, body []byte) error {
	var eb struct {
		Error Error `json:"error"`
	}
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code == "" {
		return &Error{Status: status, Code: "http_" + fmt.Sprint(status), Message: strings.TrimSpace(string(body))}
	}
	eb.Error.Status = status
	return &eb.Error
}

// Render renders prompt key on the server with vars. Rendering needs the
// server: there is no local fallback (the templates' engine is the
// server's, and its sandbox and limits decide what a template may do).
func (c *Client) Render(ctx context.Context, key string, vars map[string]any) (*Rendered, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if vars == nil {
		vars = map[string]any{}
	}
	body, err := json.Marshal(map[string]any{"variables": vars})
	if err != nil {
		return nil, fmt.Errorf("promptvault: render %s: encode variables: %w", key, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/prompts/"+escapeKey(key)+"/render", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, unavailable("render", key, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, unavailable("render", key, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, decodeError(res.StatusCode, b)
	}
	var r Rendered
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, &Error{Status: res.StatusCode, Code: "bad_response", Message: fmt.Sprintf("render %s: %v", key, err)}
	}
	return &r, nil
}

// streamIdle is how long the event stream may stay silent: three of the
// server's 15 s pings.
const streamIdle = 45 * time.Second

// follow keeps the event stream open until Close, reconnecting with
// Last-Event-ID after a backoff.
func (c *Client) follow() {
	defer c.wg.Done()
	delay := c.backoffMin
	for c.ctx.Err() == nil {
		gotEvents, err := c.streamOnce()
		c.connected.Store(false)
		if c.ctx.Err() != nil {
			return
		}
		if gotEvents {
			delay = c.backoffMin
		}
		c.log.Debug("promptvault: event stream ended; reconnecting", "err", err, "in", delay)
		// Full jitter keeps a fleet of clients from reconnecting at once.
		wait := delay/2 + rand.N(delay/2+1)
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(wait):
		}
		delay = min(2*delay, c.backoffMax)
	}
}

// streamOnce reads one connection of the stream. gotEvents reports whether
// it got as far as the server's first bytes.
func (c *Client) streamOnce() (gotEvents bool, err error) {
	// The server sends a comment every 15 s; a stream silent for three of
	// them is a dead connection (a peer that vanished without a FIN) and is
	// redialled.
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	idle := time.AfterFunc(streamIdle, cancel)
	defer idle.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/events", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "text/event-stream")
	c.mu.Lock()
	resume := c.lastID
	c.mu.Unlock()
	if resume != "" {
		req.Header.Set("Last-Event-ID", resume)
	}
	res, err := c.stream.Do(req)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		return false, decodeError(res.StatusCode, b)
	}
	c.connected.Store(true)
	if resume == "" {
		// Without a resume point, changes between our fetches and this
		// connection are unknown: revalidate everything once.
		c.markAllStale()
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var id, event string
	var data strings.Builder
	for sc.Scan() {
		idle.Reset(streamIdle)
		line := sc.Text()
		if line == "" {
			if event != "" || data.Len() > 0 {
				c.dispatch(event, data.String())
			}
			if id != "" {
				c.mu.Lock()
				c.lastID = id
				c.mu.Unlock()
			}
			id, event = "", ""
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "event":
			event = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	return true, io.EOF
}

func (c *Client) dispatch(event, data string) {
	switch event {
	case "pointer":
		var ev struct {
			Key     string `json:"key"`
			Version string `json:"version"`
		}
		if json.Unmarshal([]byte(data), &ev) != nil {
			return
		}
		c.mu.Lock()
		e := c.cache[ev.Key]
		if e != nil {
			e.stale = true
			if !e.inflight {
				e.inflight = true
				c.wg.Add(1)
				go c.refresh(ev.Key)
			}
		}
		c.mu.Unlock()
	case "reset":
		c.markAllStale()
	case "error":
		c.log.Info("promptvault: server closed the event stream", "reason", data)
	}
}

// markAllStale refetches every cached prompt in the background.
func (c *Client) markAllStale() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, e := range c.cache {
		e.stale = true
		if !e.inflight {
			e.inflight = true
			c.wg.Add(1)
			go c.refresh(key)
		}
	}
}

// snapshotFile is the on-disk cache.
type snapshotFile struct {
	SavedAt string                     `json:"saved_at"`
	Prompts map[string]json.RawMessage `json:"prompts"` // the server's documents, as received
	ETags   map[string]string          `json:"etags"`
}

func (c *Client) loadSnapshot() error {
	b, err := os.ReadFile(c.snapPath)
	if err != nil {
		return err
	}
	var sf snapshotFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return fmt.Errorf("decode %s: %w", c.snapPath, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, raw := range sf.Prompts {
		var p Prompt
		// Only valid keys enter the cache: Get trusts cached keys.
		if err := json.Unmarshal(raw, &p); err != nil || checkKey(key) != nil || p.Key != key {
			continue
		}
		p.ETag = sf.ETags[key]
		// Stale: served at once, revalidated on first use.
		c.cache[key] = &entry{p: &p, raw: raw, stale: true}
	}
	return nil
}

// saveSnapshot writes the cache to the snapshot file atomically: a
// temporary file in the same directory, synced, then renamed over the old
// one, so a crash leaves either the old or the new file, never half of one.
func (c *Client) saveSnapshot() {
	if c.snapPath == "" {
		return
	}
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	sf := snapshotFile{SavedAt: time.Now().UTC().Format(time.RFC3339Nano), Prompts: map[string]json.RawMessage{}, ETags: map[string]string{}}
	c.mu.Lock()
	for key, e := range c.cache {
		sf.Prompts[key] = e.raw
		sf.ETags[key] = e.p.ETag
	}
	c.mu.Unlock()
	if err := writeAtomic(c.snapPath, sf); err != nil {
		c.log.Warn("promptvault: write snapshot file", "path", c.snapPath, "err", err)
	}
}

func writeAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
