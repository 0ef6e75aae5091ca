package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver"
	"github.com/promptvault/promptvault/resolver/metrics"
)

// Receiver is the http.Handler of POST /webhooks/github. It verifies each
// delivery, commits it to the inbox and answers 202 once it is on disk.
type Receiver struct {
	db     *index.DB
	secret []byte
	log    *slog.Logger
	notify func()                                                // wakes the worker
	errfn  func(w http.ResponseWriter, r *http.Request, e error) // writes JSON errors
	repo   string                                                // served OWNER/NAME; "" accepts any

	slots    chan struct{} // one per unverified body being read
	slotWait time.Duration
	spoolDir string

	// Group commit: concurrent requests share one transaction (one fsync).
	// The first request to find no commit running becomes the leader and
	// commits batches until none is waiting; the others wait for the batch
	// that holds theirs. Guarded by mu.
	mu      sync.Mutex
	queue   []*accept
	running bool
}

// ReceiverOptions configures NewReceiver.
type ReceiverOptions struct {
	DB     *index.DB
	Secret string // required: there is no unsigned mode
	Logger *slog.Logger
	// Notify is called after deliveries were stored (Worker.Notify).
	Notify func()
	// WriteError writes an error response; nil: resolver.WriteError.
	WriteError func(w http.ResponseWriter, r *http.Request, err error)
	// Repository is the served repository, OWNER/NAME: deliveries about
	// another one are recorded as ignored. Empty: not known (a local
	// --repo without --github-repo), every repository is accepted.
	Repository string
	// MaxUnverified caps bodies read before their signature is checked
	// (DefaultMaxUnverified); UnverifiedWait is how long a request waits
	// for a slot (DefaultUnverifiedWait). SpoolDir holds bodies past 64 KiB
	// while they are hashed (os.TempDir()).
	MaxUnverified  int
	UnverifiedWait time.Duration
	SpoolDir       string
}

// Errors a Receiver answers with; they wrap resolver's sentinels so the
// service's one status table (resolver/errors.go) picks the status.
var (
	ErrBadDelivery = fmt.Errorf("%w: bad webhook delivery", index.ErrInvalid)
	ErrTooLarge    = fmt.Errorf("%w: webhook body", resolver.ErrTooLarge)
)

// NewReceiver returns the webhook intake handler.
func NewReceiver(opts ReceiverOptions) (*Receiver, error) {
	if opts.Secret == "" {
		return nil, errors.New("webhook: a secret is required (--webhook-secret)")
	}
	if opts.DB == nil {
		return nil, errors.New("webhook: ReceiverOptions.DB is required")
	}
	if opts.MaxUnverified <= 0 {
		opts.MaxUnverified = DefaultMaxUnverified
	}
	if opts.UnverifiedWait <= 0 {
		opts.UnverifiedWait = DefaultUnverifiedWait
	}
	r := &Receiver{db: opts.DB, secret: []byte(opts.Secret), log: opts.Logger, notify: opts.Notify, errfn: opts.WriteError,
		repo: opts.Repository, slots: make(chan struct{}, opts.MaxUnverified), slotWait: opts.UnverifiedWait,
		spoolDir: opts.SpoolDir}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.notify == nil {
		r.notify = func() {}
	}
	if r.errfn == nil {
		r.errfn = resolver.WriteError
	}
	return r, nil
}

// Verify checks an X-Hub-Signature-256 value against body in constant time.
// There is deliberately no SHA-1 fallback.
func Verify(secret []byte, header string, body []byte) bool {
	got, ok := signature(header)
	if !ok {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// Sign returns the X-Hub-Signature-256 value GitHub sends for body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := rc.readVerified(w, r)
	if err != nil {
		if errors.Is(err, ErrSignature) {
			rc.log.Warn("webhook signature rejected", logDelivery, r.Header.Get("X-GitHub-Delivery"))
		}
		rc.reject(w, r, err)
		return
	}
	d := index.Delivery{
		GUID:   r.Header.Get("X-GitHub-Delivery"),
		Event:  r.Header.Get("X-GitHub-Event"),
		HookID: r.Header.Get("X-GitHub-Hook-ID"),
	}
	if d.GUID == "" || d.Event == "" {
		rc.reject(w, r, fmt.Errorf("%w: X-GitHub-Delivery and X-GitHub-Event are required", ErrBadDelivery))
		return
	}
	if d.Body, err = payload(r.Header.Get("Content-Type"), raw); err != nil {
		rc.reject(w, r, err)
		return
	}
	var head envelope
	if err := json.Unmarshal(d.Body, &head); err != nil {
		rc.reject(w, r, fmt.Errorf("%w: payload is not a JSON object: %v", ErrBadDelivery, err))
		return
	}
	d.Action = head.Action
	d.Subject = head.subject(d.Event)
	if why := otherRepository(rc.repo, head); why != "" {
		// Acknowledged (GitHub would only retry) and kept for operators,
		// never processed: another repository's PR #N is not ours.
		d.State, d.Result = index.DeliveryIgnored, why
	}
	dup, err := rc.accept(d)
	if err != nil {
		rc.log.Error("webhook inbox", logDelivery, d.GUID, logErr, err)
		rc.errfn(w, r, fmt.Errorf("webhook inbox: %w", err))
		return
	}
	if dup {
		metrics.WebhookDelivery("duplicate")
		rc.log.Info("duplicate delivery acknowledged", logDelivery, d.GUID, logEvent, d.Event)
	} else {
		metrics.WebhookDelivery("accepted")
		rc.log.Debug("delivery accepted", logDelivery, d.GUID, logEvent, d.Event, "action", d.Action)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, "{\"delivery\":%q,\"duplicate\":%t}\n", d.GUID, dup)
}

// reject answers a delivery that is not accepted (bad signature, too large,
// malformed) and counts it.
func (rc *Receiver) reject(w http.ResponseWriter, r *http.Request, err error) {
	metrics.WebhookDelivery("rejected")
	rc.errfn(w, r, err)
}

// payload extracts the JSON document: the body itself, or the "payload"
// field of a form-encoded body (the default of repository webhooks).
func payload(contentType string, raw []byte) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if contentType == "" {
		mt, err = "application/json", nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: content type %q: %v", ErrBadDelivery, contentType, err)
	}
	switch mt {
	case "application/json":
		return raw, nil
	case "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: form body: %v", ErrBadDelivery, err)
		}
		p := vals.Get("payload")
		if p == "" {
			return nil, fmt.Errorf("%w: form body has no payload field", ErrBadDelivery)
		}
		return []byte(p), nil
	}
	return nil, fmt.Errorf("%w: content type %q: want application/json or application/x-www-form-urlencoded", ErrBadDelivery, mt)
}

type accept struct {
	d    index.Delivery
	dup  bool
	err  error
	done chan struct{}
}

// accept stores d durably, batched with concurrent requests; it returns
// after the batch holding d committed.
func (rc *Receiver) accept(d index.Delivery) (dup bool, err error) {
	a := &accept{d: d, done: make(chan struct{})}
	rc.mu.Lock()
	rc.queue = append(rc.queue, a)
	if rc.running {
		rc.mu.Unlock()
		<-a.done
		return a.dup, a.err
	}
	rc.running = true
	for len(rc.queue) > 0 {
		batch := rc.queue
		rc.queue = nil
		rc.mu.Unlock()
		rc.commit(batch)
		rc.mu.Lock()
	}
	rc.running = false
	rc.mu.Unlock()
	<-a.done
	return a.dup, a.err
}

// maxBatch bounds one transaction; a burst larger than this commits in
// several batches.
const maxBatch = 512

func (rc *Receiver) commit(batch []*accept) {
	for len(batch) > 0 {
		part := batch[:min(len(batch), maxBatch)]
		batch = batch[len(part):]
		ds := make([]index.Delivery, len(part))
		for i, a := range part {
			ds[i] = a.d
		}
		// Not the request's context: the batch is shared, and a delivery
		// whose sender hung up may still be committed (GitHub redelivers
		// with the same GUID, which is then a duplicate).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		dups, err := rc.db.Accept(ctx, ds)
		cancel()
		for i, a := range part {
			if err != nil {
				a.err = err
			} else {
				a.dup = dups[i]
			}
			close(a.done)
		}
		if err == nil {
			rc.notify()
		}
	}
}
