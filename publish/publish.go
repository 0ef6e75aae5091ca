// Package publish delivers promptvault's publish events (SPEC §6): the
// outbound webhooks integrations receive for every pointer change. The
// events themselves are written by index, into its outbox, in the
// transaction that moves the pointer; publish only reads that queue and
// sends it, signed as the Standard Webhooks specification says, retrying
// with exponential backoff and jitter for about a day.
//
// Each endpoint has its own sender goroutine, started when the endpoint
// has a delivery due and ended when it has none, so a slow or dead
// endpoint holds up only itself. A sender claims a delivery by leasing its
// row in a write transaction; a process killed mid-attempt leaves the
// lease to expire and the delivery is sent again with the same webhook-id
// (at least once). The worker hears of new events through the index's
// change feed, which also carries commits of other processes (the CLI).
//
// publish sits beside webhook and resolver/admin: it imports index and
// resolver/metrics and is wired into serve by cmd.
package publish

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver/metrics"
)

// Defaults of Options.
const (
	DefaultTimeout = 10 * time.Second
	// DefaultPoll is the change feed's fallback check: changes arrive by
	// wake-up (index.Watch), so this only bounds a lost one.
	DefaultPoll = index.DefaultWatchFallback
	// jitter spreads retries by ±20% so endpoints recovering together are
	// not hit by every queued retry at once.
	jitter = 0.2
	// maxErrorBody is how much of a failed response is kept in the log.
	maxErrorBody = 256
	// maxDrain bounds how much of a response is read so the connection
	// can be reused; larger bodies are dropped with the connection.
	maxDrain = 64 << 10
	// idleWait bounds how long the worker sleeps without news. News comes
	// by the change feed's wake-ups (index.Watch), so this is only a safety
	// net, kept long so an idle serve does not query the outbox every second.
	idleWait = 10 * time.Second
)

// DefaultSchedule is the wait before each retry: 8 attempts over about 24
// hours, then the delivery is failed.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 8 * time.Hour, 8 * time.Hour,
}

// slog keys.
const (
	logEndpoint = "endpoint"
	logEvent    = "event"
	logDelivery = "delivery"
)

// Options configures New.
type Options struct {
	DB     *index.DB
	Logger *slog.Logger // nil: discard
	// Timeout bounds one attempt (connect to last byte); default 10 s.
	Timeout time.Duration
	// Schedule is the wait before each retry; after the last, a failing
	// delivery is failed. Default DefaultSchedule. Tests shorten it.
	Schedule []time.Duration
	// Poll bounds the wait for a change-feed wake-up (DefaultPoll when 0).
	Poll time.Duration
	// BaseURL is the dashboard's origin for links in Slack messages
	// (e.g. https://prompts.example.com); empty leaves links out.
	BaseURL string
	// Transport sends the requests; nil: a clone of http.DefaultTransport.
	Transport http.RoundTripper
}

// Worker sends the outbox. Run it once per database (serve does).
type Worker struct {
	db       *index.DB
	log      *slog.Logger
	client   *http.Client
	timeout  time.Duration
	lease    time.Duration
	schedule []time.Duration
	poll     time.Duration
	baseURL  string

	wake    chan struct{}
	commits chan commitReq
	mu      sync.Mutex
	running map[string]bool // endpoints with a sender goroutine
	wg      sync.WaitGroup
}

// New builds a worker.
func New(opts Options) (*Worker, error) {
	if opts.DB == nil {
		return nil, errors.New("publish: Options.DB is required")
	}
	w := &Worker{db: opts.DB, log: opts.Logger, timeout: opts.Timeout, schedule: opts.Schedule, poll: opts.Poll,
		baseURL: strings.TrimRight(opts.BaseURL, "/"), wake: make(chan struct{}, 1), running: map[string]bool{},
		commits: make(chan commitReq)}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.timeout <= 0 {
		w.timeout = DefaultTimeout
	}
	if w.schedule == nil {
		w.schedule = DefaultSchedule
	}
	if w.poll <= 0 {
		w.poll = DefaultPoll
	}
	// The lease outlives an attempt by a margin, so only a dead process's
	// claim ever expires.
	w.lease = w.timeout + 10*time.Second
	tr := opts.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	w.client = &http.Client{
		Transport: tr,
		// A redirect is an answer, not a 2xx: never follow it (it could
		// lead a signed event anywhere).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return w, nil
}

// Tickle wakes the dispatcher (new rows may be due).
func (w *Worker) Tickle() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then waits for attempts in flight to give
// back their leases.
func (w *Worker) Run(ctx context.Context) error {
	var from int64
	if err := w.db.View(ctx, func(tx *index.Tx) (err error) {
		from, err = tx.LastChange(ctx)
		return err
	}); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	go w.watch(ctx, from)
	go w.committer(ctx)
	defer w.wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := w.dispatch(ctx)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		case <-timer.C:
		}
	}
}

// watch tickles the dispatcher on every change-feed batch: a pointer move
// (with its outbox rows) or an outbox change, from this or another process.
func (w *Worker) watch(ctx context.Context, from int64) {
	for ctx.Err() == nil {
		err := w.db.Watch(ctx, from, index.WatchOptions{Fallback: w.poll}, func(cs []index.Change) {
			from = cs[len(cs)-1].Seq
			w.Tickle()
		})
		if ctx.Err() != nil {
			return
		}
		w.log.Error("publish: change feed; retrying in 1s", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// dispatch starts a sender for each endpoint with a due delivery, reports
// the queue gauges, and returns how long to sleep.
func (w *Worker) dispatch(ctx context.Context) time.Duration {
	now := time.Now()
	var due []string
	var next int64
	var st index.QueueStats
	err := w.db.View(ctx, func(tx *index.Tx) (err error) {
		if due, next, err = tx.DueHooks(ctx, now.UnixMilli()); err != nil {
			return err
		}
		st, err = tx.OutboxStats(ctx)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			w.log.Error("publish: read queue", "err", err)
		}
		return idleWait
	}
	var age time.Duration
	if st.OldestMS > 0 {
		age = now.Sub(time.UnixMilli(st.OldestMS))
	}
	metrics.SetPublishQueue(st.Pending, age)
	w.mu.Lock()
	for _, id := range due {
		if !w.running[id] {
			w.running[id] = true
			w.wg.Add(1)
			go w.send(ctx, id)
		}
	}
	w.mu.Unlock()
	wait := idleWait
	if next > 0 {
		// A due row whose sender is busy reports a time in the past; the
		// sender tickles when it ends, so a short sleep suffices.
		if d := time.Until(time.UnixMilli(next)); d < wait {
			wait = max(d, 50*time.Millisecond)
		}
	}
	return wait
}

// send is one endpoint's sender: claim the oldest due delivery, attempt
// it, record the outcome together with the next claim, until none is due.
func (w *Worker) send(ctx context.Context, hookID string) {
	defer w.wg.Done()
	defer func() {
		w.mu.Lock()
		delete(w.running, hookID)
		w.mu.Unlock()
		w.Tickle() // rows that arrived after the last claim
	}()
	var prev *index.HookDelivery
	var prevRes index.AttemptResult
	for {
		var d index.HookDelivery
		var hook index.Hook
		var ok bool
		err := w.update(ctx, func(tx *index.Tx) error {
			if prev != nil {
				if err := tx.RecordAttempt(ctx, *prev, prevRes); err != nil {
					return err
				}
			}
			var err error
			if hook, err = tx.Hook(ctx, hookID); err != nil {
				if errors.Is(err, index.ErrNotFound) {
					return nil // removed: nothing more to send
				}
				return err
			}
			now := time.Now()
			d, ok, err = tx.Claim(ctx, hookID, now.UnixMilli(), now.Add(w.lease).UnixMilli())
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				w.log.Error("publish: claim", logEndpoint, hookID, "err", err)
			}
			// An unrecorded attempt is sent again when its lease expires.
			return
		}
		if prev != nil {
			w.report(*prev, prevRes)
		}
		if !ok {
			return
		}
		res := w.attempt(ctx, hook, d)
		if ctx.Err() != nil {
			w.release(d)
			return
		}
		prev, prevRes = &d, res
	}
}

// commitReq is one sender's transaction body, run by the committer.
type commitReq struct {
	fn   func(*index.Tx) error
	done chan error
}

// maxGroup bounds how many senders' records and claims share one commit.
const maxGroup = 256

// committer runs the senders' transaction bodies, all those waiting at
// once in one write transaction: with many endpoints, one fsync records
// every attempt that finished meanwhile and claims each one's next
// delivery, instead of one fsync per endpoint. A failing body fails its
// whole group; those senders stop, and their unrecorded attempts are sent
// again when the leases expire.
func (w *Worker) committer(ctx context.Context) {
	for {
		var group []commitReq
		select {
		case <-ctx.Done():
			return
		case r := <-w.commits:
			group = append(group, r)
		}
	more:
		for len(group) < maxGroup {
			select {
			case r := <-w.commits:
				group = append(group, r)
			default:
				break more
			}
		}
		err := w.db.Update(ctx, func(tx *index.Tx) error {
			for _, r := range group {
				if err := r.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
		for _, r := range group {
			r.done <- err
		}
	}
}

// update runs fn in the committer's next group transaction.
func (w *Worker) update(ctx context.Context, fn func(*index.Tx) error) error {
	r := commitReq{fn: fn, done: make(chan error, 1)}
	select {
	case w.commits <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-r.done
}

// release gives a lease back on shutdown, with a context of its own (ctx
// has ended).
func (w *Worker) release(d index.HookDelivery) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.db.Update(ctx, func(tx *index.Tx) error { return tx.ReleaseLease(ctx, d) }); err != nil {
		w.log.Warn("publish: release lease (the delivery is retried when it expires)", logDelivery, d.Seq, "err", err)
	}
}

func (w *Worker) report(d index.HookDelivery, res index.AttemptResult) {
	switch {
	case res.Error == "":
		metrics.PublishDelivery(d.HookID, "delivered")
		w.log.Debug("publish: delivered", logEndpoint, d.HookID, logEvent, d.EventID, logDelivery, d.Seq,
			"status", res.Status, "attempts", d.Attempts)
	case res.Next.IsZero():
		metrics.PublishDelivery(d.HookID, "failed")
		w.log.Error("publish: delivery failed, out of retries", logEndpoint, d.HookID, logEvent, d.EventID,
			logDelivery, d.Seq, "attempts", d.Attempts, "err", res.Error)
	default:
		metrics.PublishDelivery(d.HookID, "retry")
		w.log.Info("publish: attempt failed; will retry", logEndpoint, d.HookID, logEvent, d.EventID, logDelivery, d.Seq,
			"attempts", d.Attempts, "next", res.Next.UTC().Format(time.RFC3339), "err", res.Error)
	}
}

// attempt sends d once and says what happened and when to retry.
func (w *Worker) attempt(ctx context.Context, hook index.Hook, d index.HookDelivery) index.AttemptResult {
	start := time.Now()
	res := index.AttemptResult{At: start}
	status, err := w.post(ctx, hook, d, start)
	res.Duration = time.Since(start)
	res.Status = status
	if err == nil {
		return res
	}
	res.Error = err.Error()
	if d.Attempts <= len(w.schedule) {
		wait := w.schedule[d.Attempts-1]
		wait += time.Duration((rand.Float64()*2 - 1) * jitter * float64(wait))
		res.Next = time.Now().Add(wait)
	}
	return res
}

func (w *Worker) post(ctx context.Context, hook index.Hook, d index.HookDelivery, now time.Time) (int, error) {
	body, err := Body(d, hook.Format, w.baseURL)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("request: %v", errors.Unwrap(err))
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	sig, err := Sign(hook.Secret, d.EventID, ts, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "promptvault-webhooks/1")
	req.Header.Set("webhook-id", d.EventID)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", sig)
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, describe(err, w.timeout)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		return resp.StatusCode, nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	msg := fmt.Sprintf("HTTP %d", resp.StatusCode)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		msg += " (redirects are not followed)"
	}
	if s := strings.TrimSpace(strings.ToValidUTF8(string(snippet), "?")); s != "" {
		msg += ": " + s
	}
	return resp.StatusCode, errors.New(msg)
}

// describe words a transport error without the URL, which for Slack is a
// credential.
func describe(err error, timeout time.Duration) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return fmt.Errorf("timeout: no answer within %s", timeout)
	case errors.Is(err, context.Canceled):
		return errors.New("canceled: the server is shutting down")
	}
	return err
}

// Sign computes the Standard Webhooks signature header value "v1,<base64
// HMAC-SHA256 of id.timestamp.body>" keyed with the base64 part of a
// whsec_ secret.
func Sign(secret, id, timestamp string, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", fmt.Errorf("webhook secret is not whsec_ plus base64: %v", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}
