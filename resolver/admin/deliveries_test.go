package admin

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/promptvault/promptvault/index"
)

// TestDeliveries: the inbox is listed newest first, filtered by state and
// paged; a failed delivery is redelivered (pending again, attempts reset),
// an unknown one is 404, and every answer matches openapi.json.
func TestDeliveries(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	woken := 0
	e.adm.redelivered = func() { woken++ }
	ds := []index.Delivery{
		{GUID: "g-1", Event: "pull_request", Action: "closed", Subject: "pr:1", Body: []byte(`{}`)},
		{GUID: "g-2", Event: "push", Subject: "branch:main", Body: []byte(`{}`)},
		{GUID: "g-3", Event: "pull_request", Action: "opened", Subject: "pr:9", Body: []byte(`{}`),
			State: index.DeliveryIgnored, Result: "ignored: repository other/repo is not the served acme/prompts"},
	}
	if _, err := e.db.Accept(ctx, ds); err != nil {
		t.Fatal(err)
	}
	// g-1 fails permanently, as the worker records it.
	d, ok, _, err := e.db.ClaimDelivery(ctx, time.Now())
	if err != nil || !ok || d.GUID != "g-1" {
		t.Fatalf("claim = %+v %v %v", d, ok, err)
	}
	if err := e.db.FailDelivery(ctx, d.Seq, "github PATCH /repos/acme/prompts/check-runs/1: 403 Resource not accessible by integration"); err != nil {
		t.Fatal(err)
	}

	var page struct {
		Deliveries []deliveryView `json:"deliveries"`
		NextCursor *string        `json:"next_cursor"`
	}
	e.expect(t, http.StatusOK, request{method: "GET", path: "/v1/admin/deliveries?limit=2", key: e.keys["admin"]}).decode(t, &page)
	if len(page.Deliveries) != 2 || page.Deliveries[0].ID != "g-3" || page.NextCursor == nil {
		t.Fatalf("first page = %+v", page)
	}
	e.expect(t, http.StatusOK, request{method: "GET", path: "/v1/admin/deliveries?limit=2&cursor=" + *page.NextCursor,
		key: e.keys["admin"]}).decode(t, &page)
	if len(page.Deliveries) != 1 || page.Deliveries[0].ID != "g-1" || page.NextCursor != nil {
		t.Fatalf("second page = %+v", page)
	}
	e.expect(t, http.StatusOK, request{method: "GET", path: "/v1/admin/deliveries?state=failed", key: e.keys["admin"]}).decode(t, &page)
	if len(page.Deliveries) != 1 || page.Deliveries[0].Attempts != 1 || page.Deliveries[0].LastError == "" {
		t.Fatalf("failed = %+v", page)
	}
	e.expect(t, http.StatusOK, request{method: "GET", path: "/v1/admin/deliveries?state=ignored", key: e.keys["admin"]}).decode(t, &page)
	if len(page.Deliveries) != 1 || page.Deliveries[0].ID != "g-3" || page.Deliveries[0].Result == "" {
		t.Fatalf("ignored = %+v", page)
	}
	e.expect(t, http.StatusBadRequest, request{method: "GET", path: "/v1/admin/deliveries?state=lost", key: e.keys["admin"]})
	e.expect(t, http.StatusForbidden, request{method: "GET", path: "/v1/admin/deliveries", key: e.keys["live"]})

	var got deliveryView
	e.expect(t, http.StatusAccepted, request{method: "POST", path: "/v1/admin/deliveries/g-1/redeliver", key: e.keys["admin"]}).decode(t, &got)
	if got.State != index.DeliveryPending || got.Attempts != 0 || woken != 1 {
		t.Errorf("redelivered = %+v, worker woken %d times", got, woken)
	}
	e.expect(t, http.StatusNotFound, request{method: "POST", path: "/v1/admin/deliveries/nope/redeliver", key: e.keys["admin"]})
	e.expect(t, http.StatusMethodNotAllowed, request{method: "GET", path: "/v1/admin/deliveries/g-1/redeliver", key: e.keys["admin"]})
	// Being processed: 409.
	if _, _, _, err := e.db.ClaimDelivery(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.expect(t, http.StatusConflict, request{method: "POST", path: "/v1/admin/deliveries/g-1/redeliver", key: e.keys["admin"]})
}
