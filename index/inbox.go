package index

import (
	"context"
	"fmt"
	"time"
)

// Delivery states in the webhook inbox.
const (
	DeliveryPending    = "pending"
	DeliveryProcessing = "processing"
	DeliveryDone       = "done"
	DeliveryFailed     = "failed"
)

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
}

// Accept records deliveries in one transaction (one fsync for the batch:
// the webhook receiver groups concurrent requests). dup[i] reports that
// ds[i]'s GUID was seen before (or earlier in the batch); such a delivery is
// not stored again and will not be processed again.
func (db *DB) Accept(ctx context.Context, ds []Delivery) (dup []bool, err error) {
	dup = make([]bool, len(ds))
	at := now()
	err = db.Update(ctx, func(tx *Tx) error {
		st, err := tx.tx.PrepareContext(ctx, `INSERT INTO deliveries(guid, event, action, hook_id, body, received_at)
			VALUES(?,?,?,?,?,?) ON CONFLICT(guid) DO NOTHING`)
		if err != nil {
			return err
		}
		defer st.Close()
		for i, d := range ds {
			r, err := st.ExecContext(ctx, d.GUID, d.Event, d.Action, d.HookID, d.Body, at)
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

// NextDelivery returns the oldest pending delivery; ok is false when none
// is pending. The caller checks NextAt: the oldest one waits for its retry
// time before any later one runs (deliveries are processed in order).
func (db *DB) NextDelivery(ctx context.Context) (d Delivery, ok bool, err error) {
	err = db.View(ctx, func(tx *Tx) error {
		err := tx.queryRow(ctx, `SELECT seq, guid, event, action, hook_id, body, received_at, state, attempts,
			next_at, last_error, result FROM deliveries WHERE state IN ('pending', 'processing') ORDER BY seq LIMIT 1`).
			Scan(&d.Seq, &d.GUID, &d.Event, &d.Action, &d.HookID, &d.Body, &d.ReceivedAt, &d.State, &d.Attempts,
				&d.NextAt, &d.LastError, &d.Result)
		if isNoRows(err) {
			return nil
		}
		ok = err == nil
		return err
	})
	if err != nil {
		return d, false, fmt.Errorf("next delivery: %w", err)
	}
	return d, ok, nil
}

// Delivery returns one delivery by GUID.
func (tx *Tx) Delivery(ctx context.Context, guid string) (Delivery, error) {
	var d Delivery
	err := tx.queryRow(ctx, `SELECT seq, guid, event, action, hook_id, body, received_at, state, attempts,
		next_at, last_error, result FROM deliveries WHERE guid = ?`, guid).
		Scan(&d.Seq, &d.GUID, &d.Event, &d.Action, &d.HookID, &d.Body, &d.ReceivedAt, &d.State, &d.Attempts,
			&d.NextAt, &d.LastError, &d.Result)
	if isNoRows(err) {
		return d, fmt.Errorf("delivery %s: %w", guid, ErrNotFound)
	}
	return d, err
}

// CountDeliveries counts deliveries by state (all states when state is "").
func (tx *Tx) CountDeliveries(ctx context.Context, state string) (int, error) {
	var n int
	err := tx.queryRow(ctx, "SELECT count(*) FROM deliveries WHERE ? = '' OR state = ?", state, state).Scan(&n)
	return n, err
}

// StartDelivery marks a delivery processing.
func (db *DB) StartDelivery(ctx context.Context, seq int64) error {
	return db.Update(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, "UPDATE deliveries SET state = 'processing', attempts = attempts + 1 WHERE seq = ?", seq)
		return err
	})
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
func (db *DB) RetryDelivery(ctx context.Context, seq int64, next time.Time, why string) error {
	return db.Update(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, "UPDATE deliveries SET state = 'pending', next_at = ?, last_error = ? WHERE seq = ?",
			next.UnixMilli(), why, seq)
		return err
	})
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
