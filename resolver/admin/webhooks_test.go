package admin

import (
	"fmt"
	"strings"
	"testing"

	"github.com/promptvault/promptvault/index"
)

// Outbound webhooks are admin-only: live and test keys get 403, none 401.
func TestWebhooksAuth(t *testing.T) {
	e := newTestEnv(t)
	for _, tt := range []struct{ method, path, body string }{
		{"GET", "/v1/admin/webhooks", ""},
		{"POST", "/v1/admin/webhooks", `{"url":"https://example.com/h"}`},
		{"GET", "/v1/admin/webhooks/wh_x", ""},
		{"DELETE", "/v1/admin/webhooks/wh_x", ""},
		{"GET", "/v1/admin/webhooks/wh_x/deliveries", ""},
		{"POST", "/v1/admin/webhooks/wh_x/deliveries/1/redeliver", ""},
		{"POST", "/v1/admin/webhooks/wh_x/test", ""},
	} {
		for _, c := range []struct {
			key  string
			want int
		}{{"", 401}, {"live", 403}, {"test", 403}, {"revoked", 401}} {
			if r := e.do(t, request{method: tt.method, path: tt.path, key: c.key, body: tt.body}); r.status != c.want {
				t.Errorf("%s %s key %q: %d, want %d", tt.method, tt.path, c.key, r.status, c.want)
			}
		}
	}
	if n := len(e.hooks(t)); n != 0 {
		t.Errorf("%d endpoints created without an admin key", n)
	}
}

func (e *testEnv) hooks(t testing.TB) []index.Hook {
	t.Helper()
	var out struct{ Webhooks []index.Hook }
	e.expect(t, 200, request{method: "GET", path: "/v1/admin/webhooks"}).decode(t, &out)
	return out.Webhooks
}

func TestWebhooksLifecycle(t *testing.T) {
	e := newTestEnv(t)
	r := e.expect(t, 201, request{method: "POST", path: "/v1/admin/webhooks",
		body: `{"url":"https://hooks.example.com/x","events":["prompt.promoted","prompt.rolled_back"],"description":"deploys","format":"standard"}`})
	var created index.CreatedHook
	r.decode(t, &created)
	if !strings.HasPrefix(created.ID, "wh_") || !strings.HasPrefix(created.Secret, "whsec_") || len(created.Events) != 2 {
		t.Fatalf("created = %s", r.body)
	}
	list := e.expect(t, 200, request{method: "GET", path: "/v1/admin/webhooks"})
	if strings.Contains(string(list.body), created.Secret) || strings.Contains(string(list.body), "whsec_") {
		t.Errorf("list shows the secret: %s", list.body)
	}
	// A rollback through the API queues an event for the endpoint.
	e.expect(t, 200, request{method: "POST", path: "/v1/admin/prompts/support/summarize/rollback", body: `{"version":"v1"}`})
	path := "/v1/admin/webhooks/" + created.ID
	var page struct {
		Deliveries []struct {
			index.HookDelivery
			AttemptLog []index.HookAttempt `json:"attempt_log"`
		}
		NextCursor *string `json:"next_cursor"`
	}
	e.expect(t, 200, request{method: "GET", path: path + "/deliveries"}).decode(t, &page)
	if len(page.Deliveries) != 1 || page.Deliveries[0].EventType != index.EventRolledBack || page.Deliveries[0].State != index.HookPending {
		t.Fatalf("deliveries = %+v", page)
	}
	// Ping: its own event, for this endpoint only.
	var ping index.HookDelivery
	e.expect(t, 202, request{method: "POST", path: path + "/test"}).decode(t, &ping)
	if ping.EventType != index.EventPing || ping.HookID != created.ID {
		t.Errorf("ping = %+v", ping)
	}
	// Paging.
	e.expect(t, 200, request{method: "GET", path: path + "/deliveries?limit=1"}).decode(t, &page)
	if len(page.Deliveries) != 1 || page.NextCursor == nil || page.Deliveries[0].EventType != index.EventPing {
		t.Fatalf("page 1 = %+v", page)
	}
	e.expect(t, 200, request{method: "GET", path: path + "/deliveries?limit=1&cursor=" + *page.NextCursor}).decode(t, &page)
	if len(page.Deliveries) != 1 || page.Deliveries[0].EventType != index.EventRolledBack {
		t.Fatalf("page 2 = %+v", page)
	}
	var re index.HookDelivery
	e.expect(t, 202, request{method: "POST", path: fmt.Sprintf("%s/deliveries/%d/redeliver", path, page.Deliveries[0].Seq)}).decode(t, &re)
	if re.EventID != page.Deliveries[0].EventID {
		t.Errorf("redelivery changed the event: %+v", re)
	}
	e.expect(t, 404, request{method: "POST", path: path + "/deliveries/999999/redeliver"})
	e.expect(t, 404, request{method: "POST", path: path + "/deliveries/abc/redeliver"})
	e.expect(t, 204, request{method: "DELETE", path: path})
	e.expect(t, 404, request{method: "DELETE", path: path})
	e.expect(t, 404, request{method: "POST", path: path + "/test"})
	var audit struct{ Entries []index.AuditEntry }
	e.expect(t, 200, request{method: "GET", path: "/v1/admin/audit"}).decode(t, &audit)
	var acts []string
	for _, a := range audit.Entries {
		acts = append(acts, a.Action)
	}
	if got := strings.Join(acts, " "); !strings.HasPrefix(got, "webhook_remove rollback webhook_add") {
		t.Errorf("audit = %s", got)
	}
}

func TestWebhooksRefuseBadInput(t *testing.T) {
	e := newTestEnv(t)
	for _, body := range []string{
		`{}`,
		`{"url":"ftp://example.com"}`,
		`{"url":"javascript:alert(1)"}`,
		`{"url":"https://example.com","events":["nope"]}`,
		`{"url":"https://example.com","format":"xml"}`,
		`{"url":"https://example.com","secret":"whsec_mine"}`,
		`{"url":` + `"https://example.com/` + strings.Repeat("a", 5000) + `"}`,
		`[1,2]`,
	} {
		if r := e.do(t, request{method: "POST", path: "/v1/admin/webhooks", key: "admin", body: body}); r.status != 400 {
			t.Errorf("%.60s: %d %s", body, r.status, r.body)
		}
	}
	e.expect(t, 413, request{method: "POST", path: "/v1/admin/webhooks", body: `{"url":"https://e.com","description":"` + strings.Repeat("d", 70<<10) + `"}`})
	e.expect(t, 404, request{method: "GET", path: "/v1/admin/webhooks/wh_x/nope"})
	e.expect(t, 405, request{method: "PUT", path: "/v1/admin/webhooks"})
}
