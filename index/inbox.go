package index

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Delivery states in the webhook inbox.
const (
	DeliveryPending    = "pending"
	DeliveryProcessing = "processing"
	DeliveryDone       = "done"
	DeliveryFailed     = "failed"
	// DeliveryIgnored: about another repository; acknowledged, kept, never
	// processed.
	DeliveryIgnored = "ignored"
)

// DeliveryStates are the states a delivery can be in, in list order.
var DeliveryStates = []string{DeliveryPending, DeliveryProcessing, DeliveryDone, DeliveryFailed, DeliveryIgnored}

// Delivery is one accepted GitHub webhook delivery.
type Delivery struct {
	Seq        int64  `json:"seq"`
	GUID       string `json:"guid"`
	Event      string `json:"event"`
	Action     string `json:"action,omitempty"`
	HookID     string `json:"hook_id,omitempty"`
	Body       []byte `json:"-"`
	ReceivedAt string `json:"received_at"`
	State      string `json:"state"`
	Attempts   int    `json:"attempts"`
	NextAt     int64  `json:"next_at,omitempty"` // unix ms
	LastError  string `json:"last_error,omitempty"`
	Result     string `json:"result,omitempty"`
	// Subject orders deliveries: those of one subject ("pr:7",
	// "branch:main") run one at a time in arrival order; different subjects
	// never wait for each other.
	Subject string `json:"subject"`
	DoneAt  string `json:"done_at,omitempty"`
}

const deliveryCols = `seq, guid, event, action, hook_id, body, received_at, state, attempts, next_at, last_error,
	result, subject, done_at`

func scanDelivery(sc scanner) (d Delivery, err error) {
	err = sc.Scan(&d.Seq, &d.GUID, &d.Event, &d.Action, &d.HookID, &d.Body, &d.ReceivedAt, &d.State, &d.Attempts,
		&d.NextAt, &d.LastError, &d.Result, &d.Subject, &d.DoneAt)
	return d, err
}

// Accept records deliveries in one transaction (one fsync for the batch:
// the webhook receiver groups concurrent requests). dup[i] reports that
// ds[i]'s GUID was seen before (or earlier in the batch); such a delivery is
// not stored again and will not be processed again.
func (db *DB) Accept(ctx context.Context, ds []Delivery) (dup []bool, err error) {
	dup = make([]bool, len(ds))
	at := now()
	err = db.Update(ctx, func(tx *Tx) error {
		for i, d := range ds {
			state, doneAt := DeliveryPending, ""
			if d.State == DeliveryIgnored {
				state, doneAt = DeliveryIgnored, at
			}
			subject := d.Subject
			if subject == "" {
				subject = "delivery:" + d.GUID
			}
			r, err := tx.exec(ctx, `INSERT INTO deliveries(guid, event, action, hook_id, body, received_at,
				subject, state, result, done_at) VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT(guid) DO NOTHING`,
				d.GUID, d.Event, d.Action, d.HookID, d.Body, at, subject, state, d.Result, doneAt)
			if err != nil {
				return fmt.Errorf("record delivery %s: %w", d.GUID, err)
			}
			n, err := r.RowsAffected()
			if err != nil {
				return err
			}
			dup[i] = n == 0
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("accept deliveries: %w", err)
	}
	return dup, nil
}

// ResetProcessing puts deliveries a previous process left mid-processing
// back to pending, so they are processed again (their effects either
// committed together with the done mark or not at all).
func (db *DB) ResetProcessing(ctx context.Context) (int64, error) {
	var n int64
	err := db.Update(ctx, func(tx *Tx) error {
		r, err := tx.exec(ctx, "UPDATE deliveries SET state = 'pending' WHERE state = 'processing'")
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("reset deliveries: %w", err)
	}
	return n, nil
}

// ClaimDelivery takes the oldest pending delivery that is due at now and
// whose subject has no earlier delivery pending or processing, and marks it
// processing (one more attempt). ok is false when none is ready; wait > 0
// then says when the earliest waiting one is due. Deliveries of one subject
// run in arrival order; other subjects never wait for them.
func (db *DB) ClaimDelivery(ctx context.Context, now time.Time) (d Delivery, ok bool, wait time.Duration, err error) {
	const head = `FROM deliveries d WHERE d.state = 'pending' AND NOT EXISTS (SELECT 1 FROM deliveries e
		WHERE e.subject = d.subject AND e.state IN ('pending', 'processing') AND e.seq < d.seq)`
	ms := now.UnixMilli()
	err = db.Update(ctx, func(tx *Tx) error {
		var seq int64
		err := tx.queryRow(ctx, "SELECT d.seq "+head+" AND d.next_at <= ? ORDER BY d.seq LIMIT 1", ms).Scan(&seq)
		if isNoRows(err) {
			var next *int64
			if err := tx.queryRow(ctx, "SELECT min(d.next_at) "+head).Scan(&next); err != nil {
				return err
			}
			if next != nil {
				wait = max(time.Duration(*next-ms)*time.Millisecond, time.Millisecond)
			}
			return nil
		}
		if err != nil {
			return err
		}
		// The state guard: another instance (PostgreSQL) may have taken it.
		r, err := tx.exec(ctx, "UPDATE deliveries SET state = 'processing', attempts = attempts + 1 WHERE seq = ? AND state = 'pending'", seq)
		if err != nil {
			return err
		}
		if n, err := r.RowsAffected(); err != nil || n == 0 {
			wait = time.Millisecond
			return err
		}
		d, err = scanDelivery(tx.queryRow(ctx, "SELECT "+deliveryCols+" FROM deliveries WHERE seq = ?", seq))
		ok = err == nil
		return err
	})
	if err != nil {
		return Delivery{}, false, 0, fmt.Errorf("claim delivery: %w", err)
	}
	return d, ok, wait, nil
}

// Delivery returns one delivery by GUID.
func (tx *Tx) Delivery(ctx context.Context, guid string) (Delivery, error) {
	d, err := scanDelivery(tx.queryRow(ctx, "SELECT "+deliveryCols+" FROM deliveries WHERE guid = ?", guid))
	if isNoRows(err) {
		return d, fmt.Errorf("delivery %s: %w", guid, ErrNotFound)
	}
	return d, err
}

// Deliveries lists deliveries newest first, without their bodies: those in
// state (all when ""), with seq below before (no bound when 0), at most
// limit.
func (tx *Tx) Deliveries(ctx context.Context, state string, before int64, limit int) ([]Delivery, error) {
	if state != "" && !slices.Contains(DeliveryStates, state) {
		return nil, fmt.Errorf("%w: delivery state %q: want one of %s", ErrInvalid, state, strings.Join(DeliveryStates, ", "))
	}
	if before <= 0 {
		before = math.MaxInt64
	}
	return queryAll(ctx, tx, func(sc scanner) (d Delivery, err error) {
		err = sc.Scan(&d.Seq, &d.GUID, &d.Event, &d.Action, &d.HookID, &d.ReceivedAt, &d.State, &d.Attempts,
			&d.NextAt, &d.LastError, &d.Result, &d.Subject, &d.DoneAt)
		return d, err
	}, `SELECT seq, guid, event, action, hook_id, received_at, state, attempts,
		next_at, last_error, result, subject, done_at FROM deliveries WHERE (? = '' OR state = ?) AND seq < ?
		ORDER BY seq DESC LIMIT ?`, state, state, before, limit)
}

// RedeliverWebhook puts a GitHub delivery back to pending with a fresh attempt budget, so
// the worker processes it again (the promotion rules still apply: a merge
// is promoted at most once). A delivery being processed is a conflict.
func (tx *Tx) RedeliverWebhook(ctx context.Context, guid string) (Delivery, error) {
	cur, err := tx.Delivery(ctx, guid)
	if err != nil {
		return Delivery{}, err
	}
	if cur.State == DeliveryProcessing {
		return Delivery{}, fmt.Errorf("%w: delivery %s is being processed", ErrConflict, guid)
	}
	if _, err := tx.exec(ctx, `UPDATE deliveries SET state = 'pending', attempts = 0, next_at = 0, done_at = ''
		WHERE seq = ?`, cur.Seq); err != nil {
		return Delivery{}, fmt.Errorf("redeliver %s: %w", guid, err)
	}
	d, err := tx.Delivery(ctx, guid)
	d.Body = nil
	return d, err
}

// CountDeliveries counts deliveries by state (all states when state is "").
func (tx *Tx) CountDeliveries(ctx context.Context, state string) (int, error) {
	var n int
	err := tx.queryRow(ctx, "SELECT count(*) FROM deliveries WHERE ? = '' OR state = ?", state, state).Scan(&n)
	return n, err
}

// FinishDelivery marks a delivery done inside the transaction that applied
// its effects, so both commit together.
func (tx *Tx) FinishDelivery(ctx context.Context, seq int64, result string) error {
	_, err := tx.exec(ctx, "UPDATE deliveries SET state = 'done', result = ?, last_error = '', done_at = ? WHERE seq = ?",
		result, now(), seq)
	if err != nil {
		return fmt.Errorf("finish delivery %d: %w", seq, err)
	}
	return nil
}

// RetryDelivery puts a delivery back to pending until next, recording why.
// refund gives the attempt back: a rate limit pauses a delivery without
// using up its attempts.
func (db *DB) RetryDelivery(ctx context.Context, seq int64, next time.Time, why string, refund bool) error {
	back := 0
	if refund {
		back = 1
	}
	return db.Update(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, `UPDATE deliveries SET state = 'pending', next_at = ?, last_error = ?,
			attempts = attempts - ? WHERE seq = ?`, next.UnixMilli(), why, back, seq)
		return err
	})
}

// IgnoreDelivery records that a delivery is not ours to process (another
// repository's), in the transaction of the caller.
func (tx *Tx) IgnoreDelivery(ctx context.Context, seq int64, why string) error {
	_, err := tx.exec(ctx, "UPDATE deliveries SET state = 'ignored', result = ?, done_at = ? WHERE seq = ?", why, now(), seq)
	if err != nil {
		return fmt.Errorf("ignore delivery %d: %w", seq, err)
	}
	return nil
}

// FailDelivery gives up on a delivery; it stays in the inbox for operators
// (reconcile heals merged pull requests it would have promoted).
func (db *DB) FailDelivery(ctx context.Context, seq int64, why string) error {
	return db.Update(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, "UPDATE deliveries SET state = 'failed', last_error = ?, done_at = ? WHERE seq = ?",
			why, now(), seq)
		return err
	})
}
