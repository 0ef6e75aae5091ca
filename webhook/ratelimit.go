package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MinRateLimitPause is how long GitHub calls pause after a rate limit whose
// answer names no reset (GitHub's advice for secondary limits: a minute).
const MinRateLimitPause = time.Minute

// rateLimited is a rate limit seen (or still in force) at the transport:
// the call was not answered and no call is made before Until.
type rateLimited struct {
	Status  int
	Until   time.Time
	Message string
}

func (e *rateLimited) Error() string {
	return fmt.Sprintf("rate limited until %s: %s", e.Until.UTC().Format(time.RFC3339), e.Message)
}

// pause is the shared "no GitHub call before" time of one API host. Guarded
// by mu.
type pause struct {
	mu    sync.Mutex
	until time.Time
	why   string
}

func (p *pause) get() (time.Time, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.until, p.why
}

func (p *pause) extend(until time.Time, why string) {
	p.mu.Lock()
	if until.After(p.until) {
		p.until, p.why = until, why
	}
	p.mu.Unlock()
}

// rateTransport sits under go-github: it refuses calls while a rate limit
// is in force and turns rate-limited answers (403 or 429 with
// x-ratelimit-remaining 0, retry-after, or the secondary-limit message)
// into *rateLimited, pausing every later call until the reset. go-github
// never sees those answers, so its own rate-limit memory (kept against the
// wall clock, and unaware of 429) never refuses calls behind our back.
type rateTransport struct {
	base  http.RoundTripper
	pause *pause
	now   func() time.Time
}

func (t *rateTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if until, why := t.pause.get(); t.now().Before(until) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &rateLimited{Status: http.StatusTooManyRequests, Until: until, Message: "paused after " + why}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil || (resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests) {
		return resp, err
	}
	// Small error bodies only: the secondary-limit message is in the first
	// bytes; a large 403 is not a rate limit answer.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	until, limited := rateLimitReset(resp, body, t.now())
	if !limited {
		return resp, nil
	}
	msg := fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	if len(msg) > 200 {
		msg = msg[:200]
	}
	t.pause.extend(until, fmt.Sprintf("%s %s: %d", req.Method, req.URL.Path, resp.StatusCode))
	return nil, &rateLimited{Status: resp.StatusCode, Until: until, Message: msg}
}

// rateLimitReset tells whether a 403/429 answer is a rate limit and when it
// ends: retry-after (seconds) first, then x-ratelimit-reset (epoch seconds)
// when the remaining count is 0, else MinRateLimitPause.
func rateLimitReset(resp *http.Response, body []byte, now time.Time) (time.Time, bool) {
	h := resp.Header
	retryAfter := h.Get("Retry-After")
	exhausted := h.Get("X-RateLimit-Remaining") == "0"
	secondary := bytes.Contains(bytes.ToLower(body), []byte("secondary rate limit")) ||
		bytes.Contains(bytes.ToLower(body), []byte("abuse"))
	if resp.StatusCode == http.StatusForbidden && retryAfter == "" && !exhausted && !secondary {
		return time.Time{}, false // a permission refusal
	}
	if s, err := strconv.Atoi(strings.TrimSpace(retryAfter)); err == nil && s >= 0 {
		return now.Add(time.Duration(s) * time.Second), true
	}
	if exhausted {
		if s, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			if t := time.Unix(s, 0); t.After(now) {
				return t, true
			}
		}
	}
	return now.Add(MinRateLimitPause), true
}

// Failure classes of a delivery's error (SPEC §4).
type failure int

const (
	// failTransient: 5xx, timeouts, resets, git objects not there yet:
	// retried with backoff and jitter.
	failTransient failure = iota
	// failPermanent: a permission refused, a repository or pull request not
	// found, an invalid request (422), a malformed payload: failed at once,
	// with the reason stored.
	failPermanent
	// failRateLimited: waits for the reset without using an attempt.
	failRateLimited
)

// classify sorts a processing error into its failure class; until is the
// rate limit's reset.
func classify(err error) (f failure, until time.Time) {
	var ae *APIError
	switch {
	case errors.Is(err, errPermanent):
		return failPermanent, time.Time{}
	case errors.As(err, &ae):
		switch {
		case ae.RateLimited:
			return failRateLimited, ae.ResetAt
		case ae.Status >= 500 || ae.Status == http.StatusRequestTimeout || ae.Status == 0:
			return failTransient, time.Time{}
		case ae.Status >= 400:
			// 401 after the one token refresh, 403, 404, 410, 422: asking
			// again gives the same answer.
			return failPermanent, time.Time{}
		}
	}
	return failTransient, time.Time{}
}
