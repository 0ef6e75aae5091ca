package index_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/promptvault/promptvault/index"
)

// TestInboxOrderPerSubject: deliveries are claimed in arrival order per
// subject; a subject with one pending retry or one processing holds back
// only its own later deliveries; rate-limit retries give their attempt
// back; ignored deliveries are never claimed; redelivery starts over. On
// both engines.
func TestInboxOrderPerSubject(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, newTarget(t, t.TempDir()))
	mk := func(guid, subject string) index.Delivery {
		return index.Delivery{GUID: guid, Event: "pull_request", Subject: subject, Body: []byte(`{}`)}
	}
	other := mk("x1", "pr:9")
	other.State, other.Result = index.DeliveryIgnored, "ignored: another repository"
	dups, err := db.Accept(ctx, []index.Delivery{mk("a1", "pr:1"), mk("a2", "pr:1"), mk("b1", "pr:2"), other,
		mk("a1", "pr:1"), {GUID: "p1", Event: "ping", Body: []byte(`{}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if !dups[4] || dups[0] {
		t.Errorf("duplicates = %v", dups)
	}
	now := time.Now()
	claim := func() string {
		t.Helper()
		d, ok, _, err := db.ClaimDelivery(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return ""
		}
		return d.GUID
	}
	a1 := claim()
	if a1 != "a1" {
		t.Fatalf("first claim %q, want a1", a1)
	}
	// a1 processing: a2 waits, b1 and the ping do not.
	if g := claim(); g != "b1" {
		t.Fatalf("second claim %q, want b1 (a2 waits behind a1)", g)
	}
	if g := claim(); g != "p1" {
		t.Fatalf("third claim %q, want p1", g)
	}
	if g := claim(); g != "" {
		t.Fatalf("claimed %q while a1 is processing and x1 is ignored", g)
	}
	var a1d index.Delivery
	db.View(ctx, func(tx *index.Tx) (err error) { a1d, err = tx.Delivery(ctx, "a1"); return err })
	// A rate-limit pause gives the attempt back; a2 still waits behind it.
	if err := db.RetryDelivery(ctx, a1d.Seq, now.Add(time.Minute), "rate limited", true); err != nil {
		t.Fatal(err)
	}
	_, ok, wait, err := db.ClaimDelivery(ctx, now)
	if err != nil || ok || wait < 59*time.Second || wait > time.Minute {
		t.Fatalf("claim during the pause: ok %v wait %v err %v", ok, wait, err)
	}
	d, ok, _, err := db.ClaimDelivery(ctx, now.Add(time.Minute))
	if err != nil || !ok || d.GUID != "a1" || d.Attempts != 1 {
		t.Fatalf("after the pause: %s attempts %d ok %v err %v", d.GUID, d.Attempts, ok, err)
	}
	if err := db.FailDelivery(ctx, d.Seq, "403 Resource not accessible by integration"); err != nil {
		t.Fatal(err)
	}
	if g := claim(); g != "a2" {
		t.Fatalf("after a1 failed: %q, want a2", g)
	}
	var list []index.Delivery
	db.View(ctx, func(tx *index.Tx) (err error) {
		list, err = tx.Deliveries(ctx, index.DeliveryFailed, 0, 10)
		return err
	})
	if len(list) != 1 || list[0].GUID != "a1" || list[0].LastError == "" || list[0].Body != nil {
		t.Fatalf("failed list = %+v", list)
	}
	db.View(ctx, func(tx *index.Tx) (err error) { list, err = tx.Deliveries(ctx, "", 0, 2); return err })
	if len(list) != 2 || list[0].GUID != "p1" {
		t.Fatalf("newest two = %+v", list)
	}
	db.View(ctx, func(tx *index.Tx) (err error) { list, err = tx.Deliveries(ctx, "", list[1].Seq, 10); return err })
	if len(list) != 3 || list[0].GUID != "b1" {
		t.Fatalf("page after the cursor = %+v", list)
	}
	err = db.View(ctx, func(tx *index.Tx) error { _, err := tx.Deliveries(ctx, "lost", 0, 10); return err })
	if !errors.Is(err, index.ErrInvalid) {
		t.Errorf("unknown state: %v", err)
	}
	err = db.Update(ctx, func(tx *index.Tx) error {
		d, err := tx.RedeliverWebhook(ctx, "a1")
		if err == nil && (d.State != index.DeliveryPending || d.Attempts != 0) {
			t.Errorf("redelivered = %+v", d)
		}
		if _, err := tx.RedeliverWebhook(ctx, "a2"); !errors.Is(err, index.ErrConflict) {
			t.Errorf("redeliver while processing: %v", err)
		}
		if _, err := tx.RedeliverWebhook(ctx, "nope"); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("redeliver unknown: %v", err)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
