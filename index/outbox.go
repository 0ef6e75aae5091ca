package index

// The outbox of publish events (SPEC §6). Every audited pointer change
// passes through setPointer or clearStaging, and both call enqueue in the
// same transaction, so an event (and one delivery row per subscribed
// endpoint) exists if and only if the change committed. Package publish
// sends the rows; this file only stores, claims and records them, so the
// CLI, the admin API and the delivery worker share one set of rules.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Audit actions of endpoint management.
const (
	ActWebhookAdd    = "webhook_add"
	ActWebhookRemove = "webhook_remove"
)

// ChangeOutbox is the change-feed kind that wakes the delivery worker of a
// running server (an endpoint added or removed, a ping, a redelivery from
// another process). Nothing served changes with it.
const ChangeOutbox = "outbox"

// Event types (SPEC §6).
const (
	EventPromoted       = "prompt.promoted"
	EventRolledBack     = "prompt.rolled_back"
	EventStagingSet     = "prompt.staging_set"
	EventStagingCleared = "prompt.staging_cleared"
	EventArchived       = "prompt.archived"
	EventPing           = "ping"
)

// EventTypes are the types an endpoint can subscribe to; ping is always
// sent to the endpoint it tests.
var EventTypes = []string{EventPromoted, EventRolledBack, EventStagingSet, EventStagingCleared, EventArchived}

// Endpoint formats.
const (
	FormatStandard = "standard" // Standard Webhooks JSON
	FormatSlack    = "slack"    // a Slack incoming-webhook message
)

// Delivery states in the outbound queue.
const (
	HookPending   = "pending"
	HookDelivered = "delivered"
	HookFailed    = "failed"
)

// Limits on endpoint fields.
const (
	maxHookURL         = 2048
	maxHookDescription = 500
	// hookSecretBytes is the secret's entropy; Standard Webhooks asks for
	// 24 to 64 bytes.
	hookSecretBytes = 32
)

// Hook is an outbound webhook endpoint as listed (never its secret).
type Hook struct {
	ID            string   `json:"id"`
	URL           string   `json:"url"`
	Events        []string `json:"events"` // empty: every type
	Description   string   `json:"description"`
	Format        string   `json:"format"`
	CreatedAt     string   `json:"created_at"`
	LastSuccessAt string   `json:"last_success_at,omitempty"`
	FailingSince  string   `json:"failing_since,omitempty"`
	GaveUpAt      string   `json:"gave_up_at,omitempty"`
	// Failing is true when a delivery ran out of retries (about 24 hours
	// of failures) and none has succeeded since: the endpoint needs a look.
	Failing bool   `json:"failing"`
	Pending int    `json:"pending"`
	Secret  string `json:"-"`
}

// CreatedHook is the one answer that carries the secret.
type CreatedHook struct {
	Hook
	Secret string `json:"secret"`
}

// NewHook is what an admin asks for when adding an endpoint.
type NewHook struct {
	URL         string
	Events      []string
	Description string
	Format      string
}

// CheckHookURL accepts absolute http and https URLs only: the delivery
// client follows no redirects and speaks no other scheme.
func CheckHookURL(raw string) error {
	if len(raw) > maxHookURL {
		return fmt.Errorf("%w: url is %d bytes; the limit is %d", ErrInvalid, len(raw), maxHookURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: url %q: %v", ErrInvalid, raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: url %q: want an http or https URL", ErrInvalid, raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%w: url %q has no host", ErrInvalid, raw)
	}
	return nil
}

// RedactURL keeps a URL's scheme and host: a Slack incoming-webhook URL's
// path is itself a credential, so audit rows and logs never hold it.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid url)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

func normalizeEvents(in []string) ([]string, error) {
	var out []string
	for _, e := range in {
		for _, t := range strings.Split(e, ",") {
			t = strings.TrimSpace(t)
			if t == "" || slices.Contains(out, t) {
				continue
			}
			if !slices.Contains(EventTypes, t) {
				return nil, fmt.Errorf("%w: event type %q: want one of %s", ErrInvalid, t, strings.Join(EventTypes, ", "))
			}
			out = append(out, t)
		}
	}
	if len(out) == len(EventTypes) {
		return nil, nil // all of them: stored as "every type", so types added later are included
	}
	slices.Sort(out)
	return out, nil
}

func newHookSecret() (string, error) {
	b := make([]byte, hookSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b), nil
}

// AddHook adds an endpoint and returns it with its secret, the only time
// the secret is shown. The endpoint receives events committed after this
// transaction, not earlier ones.
func (tx *Tx) AddHook(ctx context.Context, n NewHook, actor string) (CreatedHook, error) {
	if err := CheckHookURL(n.URL); err != nil {
		return CreatedHook{}, err
	}
	if len(n.Description) > maxHookDescription {
		return CreatedHook{}, fmt.Errorf("%w: description is %d bytes; the limit is %d", ErrInvalid, len(n.Description), maxHookDescription)
	}
	switch n.Format {
	case "":
		n.Format = FormatStandard
	case FormatStandard, FormatSlack:
	default:
		return CreatedHook{}, fmt.Errorf("%w: format %q: want standard or slack", ErrInvalid, n.Format)
	}
	events, err := normalizeEvents(n.Events)
	if err != nil {
		return CreatedHook{}, err
	}
	secret, err := newHookSecret()
	if err != nil {
		return CreatedHook{}, fmt.Errorf("add webhook: %w", err)
	}
	idPart, err := randomString(16, base62)
	if err != nil {
		return CreatedHook{}, fmt.Errorf("add webhook: %w", err)
	}
	h := CreatedHook{Hook: Hook{ID: "wh_" + idPart, URL: n.URL, Events: orNone(events), Description: n.Description,
		Format: n.Format, CreatedAt: now()}, Secret: secret}
	filter := ""
	if len(events) > 0 {
		filter = "," + strings.Join(events, ",") + ","
	}
	if _, err := tx.exec(ctx, `INSERT INTO hooks(id, url, events, description, format, secret, created_at) VALUES(?,?,?,?,?,?,?)`,
		h.ID, h.URL, filter, h.Description, h.Format, secret, h.CreatedAt); err != nil {
		return CreatedHook{}, fmt.Errorf("add webhook: %w", err)
	}
	if _, err := tx.Audit(ctx, AuditEntry{Action: ActWebhookAdd, Actor: actor,
		Detail: h.ID + " " + RedactURL(h.URL) + " " + h.Format}); err != nil {
		return CreatedHook{}, err
	}
	return h, tx.notify(ctx, ChangeOutbox, "")
}

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// RemoveHook deletes an endpoint with its queue and delivery log.
func (tx *Tx) RemoveHook(ctx context.Context, id, actor string) (Result, error) {
	h, err := tx.Hook(ctx, id)
	if err != nil {
		return Result{}, err
	}
	// Children first: PostgreSQL and SQLite cascade alike, but an explicit
	// delete does not depend on foreign_keys being on.
	if _, err := tx.exec(ctx, `DELETE FROM hook_attempts WHERE delivery_seq IN (SELECT seq FROM hook_deliveries WHERE hook_id = ?)`, id); err != nil {
		return Result{}, fmt.Errorf("remove webhook %s: %w", id, err)
	}
	if _, err := tx.exec(ctx, "DELETE FROM hook_deliveries WHERE hook_id = ?", id); err != nil {
		return Result{}, fmt.Errorf("remove webhook %s: %w", id, err)
	}
	if _, err := tx.exec(ctx, "DELETE FROM hooks WHERE id = ?", id); err != nil {
		return Result{}, fmt.Errorf("remove webhook %s: %w", id, err)
	}
	res := Result{From: h.ID, To: "removed", Changed: true}
	res.Entry, err = tx.Audit(ctx, AuditEntry{Action: ActWebhookRemove, Actor: actor, Detail: h.ID + " " + RedactURL(h.URL)})
	if err != nil {
		return res, err
	}
	return res, tx.notify(ctx, ChangeOutbox, "")
}

const hookCols = `id, url, events, description, format, secret, created_at, last_success_at, failing_since, gave_up_at,
	(SELECT count(*) FROM hook_deliveries d WHERE d.hook_id = hooks.id AND d.state = 'pending')`

func scanHook(sc scanner) (Hook, error) {
	var h Hook
	var events string
	err := sc.Scan(&h.ID, &h.URL, &events, &h.Description, &h.Format, &h.Secret, &h.CreatedAt, &h.LastSuccessAt,
		&h.FailingSince, &h.GaveUpAt, &h.Pending)
	h.Events = []string{}
	for _, e := range strings.Split(events, ",") {
		if e != "" {
			h.Events = append(h.Events, e)
		}
	}
	h.Failing = h.GaveUpAt != ""
	return h, err
}

// Hooks lists the endpoints, oldest first.
func (tx *Tx) Hooks(ctx context.Context) ([]Hook, error) {
	return queryAll(ctx, tx, scanHook, "SELECT "+hookCols+" FROM hooks ORDER BY created_at, id")
}

// Hook returns one endpoint, its secret included (for signing).
func (tx *Tx) Hook(ctx context.Context, id string) (Hook, error) {
	h, err := scanHook(tx.queryRow(ctx, "SELECT "+hookCols+" FROM hooks WHERE id = ?", id))
	if isNoRows(err) {
		return h, fmt.Errorf("webhook %q: %w", id, ErrNotFound)
	}
	return h, err
}

// Event is one row of the outbox.
type Event struct {
	Seq             int64
	ID              string // webhook-id
	Type            string
	At              string
	Key             string
	Env             string
	Version         string // "" for null
	PreviousVersion string // "" for null
	Commit          string
	SHA256          string
	Actor           string
	AuditSeq        int64
}

// eventType names the publish event of an audited pointer change.
func eventType(action string, p Pointer) string {
	switch {
	case action == ActStagingClear:
		return EventStagingCleared
	case p.Archived && p.Env == EnvLive:
		return EventArchived
	case p.Env == EnvStaging:
		return EventStagingSet
	case action == ActRollback:
		return EventRolledBack
	default: // promote, bootstrap, a merged pull request, a push
		return EventPromoted
	}
}

func newEventID() (string, error) {
	s, err := randomString(24, base62)
	return "msg_" + s, err
}

func nowMS() int64 { return time.Now().UnixMilli() }

// enqueue writes the event of audit entry e (pointer p moved from prev) and
// one pending delivery per endpoint subscribed to its type, in the caller's
// transaction. With no subscriber nothing is written.
func (tx *Tx) enqueue(ctx context.Context, e AuditEntry, p Pointer, prev string) error {
	ev := Event{Type: eventType(e.Action, p), At: e.At, Key: e.Key, Env: e.Env, Version: e.Version,
		PreviousVersion: prev, Commit: e.Commit, SHA256: e.SHA256, Actor: e.Actor, AuditSeq: e.Seq}
	if ev.Type == EventStagingCleared {
		ev.Version = ""
	}
	var n int
	if err := tx.queryRow(ctx, "SELECT count(*) FROM hooks WHERE events = '' OR events LIKE ?", "%,"+ev.Type+",%").Scan(&n); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if n == 0 {
		return nil
	}
	_, err := tx.insertEvent(ctx, ev, "")
	return err
}

// insertEvent stores ev and queues it for hookID, or for every subscribed
// endpoint when hookID is "".
func (tx *Tx) insertEvent(ctx context.Context, ev Event, hookID string) (Event, error) {
	var err error
	if ev.ID, err = newEventID(); err != nil {
		return ev, fmt.Errorf("outbox: %w", err)
	}
	if ev.At == "" {
		ev.At = now()
	}
	ev.Seq, err = tx.insertSeq(ctx, `INSERT INTO hook_events(id, type, at, key, env, version, previous_version, commit_sha, sha256, actor, audit_seq)
		VALUES(?,?,?,?,?,?,?,?,?,?,?)`, ev.ID, ev.Type, ev.At, ev.Key, ev.Env, ev.Version, ev.PreviousVersion, ev.Commit,
		ev.SHA256, ev.Actor, ev.AuditSeq)
	if err != nil {
		return ev, fmt.Errorf("outbox: event: %w", err)
	}
	ms := nowMS()
	if hookID != "" {
		_, err = tx.exec(ctx, `INSERT INTO hook_deliveries(hook_id, event_seq, created_ms, next_ms) VALUES(?,?,?,?)`,
			hookID, ev.Seq, ms, ms)
	} else {
		_, err = tx.exec(ctx, `INSERT INTO hook_deliveries(hook_id, event_seq, created_ms, next_ms)
			SELECT id, ?, ?, ? FROM hooks WHERE events = '' OR events LIKE ?`, ev.Seq, ms, ms, "%,"+ev.Type+",%")
	}
	if err != nil {
		return ev, fmt.Errorf("outbox: deliveries: %w", err)
	}
	return ev, nil
}

// Ping queues a ping event for one endpoint (POST …/test).
func (tx *Tx) Ping(ctx context.Context, hookID, actor string) (HookDelivery, error) {
	if _, err := tx.Hook(ctx, hookID); err != nil {
		return HookDelivery{}, err
	}
	ev, err := tx.insertEvent(ctx, Event{Type: EventPing, Actor: actor}, hookID)
	if err != nil {
		return HookDelivery{}, err
	}
	if err := tx.notify(ctx, ChangeOutbox, ""); err != nil {
		return HookDelivery{}, err
	}
	ds, err := tx.hookDeliveries(ctx, "d.hook_id = ? AND d.event_seq = ?", []any{hookID, ev.Seq}, 1)
	if err != nil || len(ds) == 0 {
		return HookDelivery{}, fmt.Errorf("ping %s: queued delivery not found: %v", hookID, err)
	}
	return ds[0], nil
}

// HookDelivery is one (endpoint, event) pair of the queue with its last
// attempt: the delivery log's row.
type HookDelivery struct {
	Seq        int64  `json:"id"`
	HookID     string `json:"webhook_id"`
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	Key        string `json:"key,omitempty"`
	State      string `json:"state"`
	Attempts   int    `json:"attempts"`
	CreatedMS  int64  `json:"-"`
	NextMS     int64  `json:"-"`
	NextAt     string `json:"next_attempt_at,omitempty"` // pending only
	LastStatus int    `json:"status_code,omitempty"`
	LastError  string `json:"error,omitempty"`
	LastMS     int64  `json:"duration_ms"`
	LastAt     string `json:"last_attempt_at,omitempty"`
	CreatedAt  string `json:"created_at"`
	Event      Event  `json:"-"`
}

const hookDeliveryCols = `d.seq, d.hook_id, d.state, d.attempts, d.created_ms, d.next_ms, d.last_status, d.last_error, d.last_ms, d.last_at,
	e.seq, e.id, e.type, e.at, e.key, e.env, e.version, e.previous_version, e.commit_sha, e.sha256, e.actor, e.audit_seq`

func scanHookDelivery(sc scanner) (HookDelivery, error) {
	var d HookDelivery
	e := &d.Event
	err := sc.Scan(&d.Seq, &d.HookID, &d.State, &d.Attempts, &d.CreatedMS, &d.NextMS, &d.LastStatus, &d.LastError, &d.LastMS, &d.LastAt,
		&e.Seq, &e.ID, &e.Type, &e.At, &e.Key, &e.Env, &e.Version, &e.PreviousVersion, &e.Commit, &e.SHA256, &e.Actor, &e.AuditSeq)
	d.EventID, d.EventType, d.Key = e.ID, e.Type, e.Key
	d.CreatedAt = time.UnixMilli(d.CreatedMS).UTC().Format(time.RFC3339Nano)
	if d.State == HookPending {
		d.NextAt = time.UnixMilli(d.NextMS).UTC().Format(time.RFC3339Nano)
	}
	return d, err
}

func (tx *Tx) hookDeliveries(ctx context.Context, where string, args []any, limit int) ([]HookDelivery, error) {
	return queryAll(ctx, tx, scanHookDelivery, "SELECT "+hookDeliveryCols+
		" FROM hook_deliveries d JOIN hook_events e ON e.seq = d.event_seq WHERE "+where+" ORDER BY d.seq DESC LIMIT ?",
		append(args, limit)...)
}

// HookDeliveries lists an endpoint's deliveries newest first: those with
// seq < before (0: from the newest), at most limit.
func (tx *Tx) HookDeliveries(ctx context.Context, hookID string, before int64, limit int) ([]HookDelivery, error) {
	if _, err := tx.Hook(ctx, hookID); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 50
	}
	if before <= 0 {
		before = 1 << 62
	}
	return tx.hookDeliveries(ctx, "d.hook_id = ? AND d.seq < ?", []any{hookID, before}, limit)
}

// HookAttempt is one attempt of a delivery.
type HookAttempt struct {
	At         string `json:"at"`
	Status     int    `json:"status_code,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// HookAttempts lists a delivery's attempts, oldest first.
func (tx *Tx) HookAttempts(ctx context.Context, deliverySeq int64) ([]HookAttempt, error) {
	return queryAll(ctx, tx, func(sc scanner) (a HookAttempt, err error) {
		err = sc.Scan(&a.At, &a.Status, &a.Error, &a.DurationMS)
		return a, err
	}, "SELECT at, status, error, duration_ms FROM hook_attempts WHERE delivery_seq = ? ORDER BY seq", deliverySeq)
}

// Redeliver queues a delivery of hookID again, now, with a fresh retry
// window; its event (and webhook-id) is unchanged.
func (tx *Tx) Redeliver(ctx context.Context, hookID string, deliverySeq int64, actor string) (HookDelivery, error) {
	r, err := tx.exec(ctx, `UPDATE hook_deliveries SET state = 'pending', created_ms = ?, next_ms = ?, lease_ms = 0
		WHERE seq = ? AND hook_id = ?`, nowMS(), nowMS(), deliverySeq, hookID)
	if err != nil {
		return HookDelivery{}, fmt.Errorf("redeliver %d: %w", deliverySeq, err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return HookDelivery{}, err
	} else if n == 0 {
		return HookDelivery{}, fmt.Errorf("delivery %d of webhook %q: %w", deliverySeq, hookID, ErrNotFound)
	}
	if err := tx.notify(ctx, ChangeOutbox, ""); err != nil {
		return HookDelivery{}, err
	}
	ds, err := tx.hookDeliveries(ctx, "d.seq = ?", []any{deliverySeq}, 1)
	if err != nil || len(ds) == 0 {
		return HookDelivery{}, fmt.Errorf("redeliver %d: %v", deliverySeq, err)
	}
	return ds[0], nil
}

// DueHooks returns the endpoints with a delivery due at nowMS (not leased),
// and the earliest time a pending delivery becomes due (0: none pending).
func (tx *Tx) DueHooks(ctx context.Context, at int64) (due []string, next int64, err error) {
	due, err = tx.queryStrings(ctx, `SELECT DISTINCT hook_id FROM hook_deliveries
		WHERE state = 'pending' AND next_ms <= ? AND lease_ms <= ?`, at, at)
	if err != nil {
		return nil, 0, fmt.Errorf("due webhooks: %w", err)
	}
	err = tx.queryRow(ctx, `SELECT coalesce(min(CASE WHEN lease_ms > next_ms THEN lease_ms ELSE next_ms END), 0)
		FROM hook_deliveries WHERE state = 'pending'`).Scan(&next)
	if err != nil {
		return nil, 0, fmt.Errorf("due webhooks: %w", err)
	}
	return due, next, nil
}

// QueueStats are the outbound queue's gauges.
type QueueStats struct {
	Pending      int   // deliveries waiting, in flight included
	OldestMS     int64 // unix ms the oldest pending one was queued (0: none)
	EndpointsDue int
}

// OutboxStats reports the queue depth and the oldest pending delivery.
func (tx *Tx) OutboxStats(ctx context.Context) (QueueStats, error) {
	var s QueueStats
	err := tx.queryRow(ctx, `SELECT count(*), coalesce(min(created_ms), 0) FROM hook_deliveries WHERE state = 'pending'`).
		Scan(&s.Pending, &s.OldestMS)
	return s, err
}

// Claim leases the oldest due delivery of hookID until leaseUntil and
// counts the attempt; ok is false when none is due. The update re-checks
// state and lease in its own WHERE, so of two processes racing for one row
// exactly one gets it, on SQLite (one writer) and PostgreSQL (row lock,
// then re-evaluation) alike.
func (tx *Tx) Claim(ctx context.Context, hookID string, at, leaseUntil int64) (d HookDelivery, ok bool, err error) {
	var seq int64
	err = tx.queryRow(ctx, `SELECT seq FROM hook_deliveries WHERE hook_id = ? AND state = 'pending' AND next_ms <= ? AND lease_ms <= ?
		ORDER BY next_ms, seq LIMIT 1`, hookID, at, at).Scan(&seq)
	if isNoRows(err) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("claim: %w", err)
	}
	r, err := tx.exec(ctx, `UPDATE hook_deliveries SET lease_ms = ?, attempts = attempts + 1
		WHERE seq = ? AND state = 'pending' AND lease_ms <= ?`, leaseUntil, seq, at)
	if err != nil {
		return d, false, fmt.Errorf("claim %d: %w", seq, err)
	}
	if n, err := r.RowsAffected(); err != nil || n == 0 {
		return d, false, err
	}
	ds, err := tx.hookDeliveries(ctx, "d.seq = ?", []any{seq}, 1)
	if err != nil || len(ds) == 0 {
		return d, false, fmt.Errorf("claim %d: %v", seq, err)
	}
	return ds[0], true, nil
}

// AttemptResult is the outcome of one attempt.
type AttemptResult struct {
	At       time.Time
	Status   int    // HTTP status, 0 when no response
	Error    string // "" on success
	Duration time.Duration
	// Next is when to try again; zero means the delivery is done:
	// delivered when Error is "", failed (out of retries) otherwise.
	Next time.Time
}

// RecordAttempt stores an attempt's outcome, releases the lease and keeps
// the endpoint's health columns.
func (tx *Tx) RecordAttempt(ctx context.Context, d HookDelivery, res AttemptResult) error {
	at := res.At.UTC().Format(time.RFC3339Nano)
	state, next := HookPending, res.Next.UnixMilli()
	switch {
	case res.Error == "":
		state, next = HookDelivered, 0
	case res.Next.IsZero():
		state, next = HookFailed, 0
	}
	ms := res.Duration.Milliseconds()
	r, err := tx.exec(ctx, `UPDATE hook_deliveries SET state = ?, next_ms = ?, lease_ms = 0, last_status = ?, last_error = ?,
		last_ms = ?, last_at = ? WHERE seq = ?`, state, next, res.Status, res.Error, ms, at, d.Seq)
	if err != nil {
		return fmt.Errorf("record attempt %d: %w", d.Seq, err)
	}
	if n, err := r.RowsAffected(); err != nil || n == 0 {
		return err // the endpoint was removed meanwhile: nothing to record
	}
	if _, err := tx.exec(ctx, `INSERT INTO hook_attempts(delivery_seq, at, status, error, duration_ms) VALUES(?,?,?,?,?)`,
		d.Seq, at, res.Status, res.Error, ms); err != nil {
		return fmt.Errorf("record attempt %d: %w", d.Seq, err)
	}
	var q string
	var args []any
	switch state {
	case HookDelivered:
		q, args = "UPDATE hooks SET last_success_at = ?, failing_since = '', gave_up_at = '' WHERE id = ?", []any{at, d.HookID}
	case HookFailed:
		q, args = "UPDATE hooks SET gave_up_at = ?, failing_since = CASE WHEN failing_since = '' THEN ? ELSE failing_since END WHERE id = ?",
			[]any{at, at, d.HookID}
	default:
		q, args = "UPDATE hooks SET failing_since = ? WHERE id = ? AND failing_since = ''", []any{at, d.HookID}
	}
	if _, err := tx.exec(ctx, q, args...); err != nil {
		return fmt.Errorf("record attempt %d: endpoint: %w", d.Seq, err)
	}
	return nil
}

// ReleaseLease gives back a claimed delivery without counting the attempt
// (the server is shutting down mid-attempt), so the next process need not
// wait for the lease to expire.
func (tx *Tx) ReleaseLease(ctx context.Context, d HookDelivery) error {
	_, err := tx.exec(ctx, `UPDATE hook_deliveries SET lease_ms = 0, attempts = attempts - 1
		WHERE seq = ? AND state = 'pending' AND lease_ms > 0`, d.Seq)
	return err
}
