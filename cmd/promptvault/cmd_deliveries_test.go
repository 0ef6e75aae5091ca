package main

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/index"
)

// TestDeliveriesCLI: deliveries list shows the inbox (state filter, JSON),
// and deliveries redeliver puts a failed one back; a running serve then
// processes it without being told.
func TestDeliveriesCLI(t *testing.T) {
	g := gittest.Sample(t)
	data := t.TempDir()
	p := startServe(t, data, "--repo", g.Dir, "--webhook-secret", "s3cret")
	ctx := context.Background()
	db, err := index.Open(ctx, filepath.Join(data, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if code := postDelivery(t, p, "ping", "ping-1", []byte(`{"zen":"Design for failure.","hook_id":1}`)); code != http.StatusAccepted {
		t.Fatalf("ping: %d", code)
	}
	indexHolds(t, db, "ping done", func(tx *index.Tx) (bool, error) {
		d, err := tx.Delivery(ctx, "ping-1")
		return d.State == index.DeliveryDone, err
	})
	// Recorded failed as the worker would after a permanent error.
	var seq int64
	db.View(ctx, func(tx *index.Tx) error {
		d, err := tx.Delivery(ctx, "ping-1")
		seq = d.Seq
		return err
	})
	if err := db.FailDelivery(ctx, seq, "github GET /x: 403 Resource not accessible by integration"); err != nil {
		t.Fatal(err)
	}

	out := ok(t, "deliveries", "list", "--data", data)
	if !strings.Contains(out, "ping-1") || !strings.Contains(out, "failed") || !strings.Contains(out, "403 Resource not accessible") {
		t.Errorf("deliveries list:\n%s", out)
	}
	var page struct{ Deliveries []index.Delivery }
	if err := json.Unmarshal([]byte(ok(t, "deliveries", "list", "--data", data, "--state", "done", "--json")), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Deliveries) != 0 {
		t.Errorf("--state done: %+v", page.Deliveries)
	}
	fails(t, "delivery state", "deliveries", "list", "--data", data, "--state", "lost")
	fails(t, "not found", "deliveries", "redeliver", "--data", data, "nope")

	if out := ok(t, "deliveries", "redeliver", "--data", data, "ping-1"); !strings.Contains(out, "pending again") {
		t.Errorf("redeliver: %s", out)
	}
	// The server finds it on its own (another process asked) and
	// processes it again.
	indexHolds(t, db, "redelivered ping done", func(tx *index.Tx) (bool, error) {
		d, err := tx.Delivery(ctx, "ping-1")
		return d.State == index.DeliveryDone && d.Attempts == 1, err
	})
}
