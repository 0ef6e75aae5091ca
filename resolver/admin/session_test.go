package admin

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/promptvault/promptvault/index"
)

// signIn exchanges a key for a session and returns its cookie and CSRF
// token.
func (e *testEnv) signIn(t *testing.T, key string) (*http.Cookie, string) {
	t.Helper()
	r := e.do(t, request{method: "POST", path: "/ui/session", body: `{"key":"` + key + `"}`})
	if r.status != 200 {
		t.Fatalf("sign in: %d %s", r.status, r.body)
	}
	var s struct {
		KeyID     string `json:"key_id"`
		CSRFToken string `json:"csrf_token"`
	}
	r.decode(t, &s)
	var ck *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == SessionCookie {
			ck = c
		}
	}
	if ck == nil || s.CSRFToken == "" {
		t.Fatalf("sign in set no session cookie or CSRF token: %v %s", r.header, r.body)
	}
	return ck, s.CSRFToken
}

func TestDashboardSession(t *testing.T) {
	e := newTestEnv(t)
	ck, csrf := e.signIn(t, e.keys["admin"])
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.MaxAge <= 0 {
		t.Errorf("cookie = %+v; want HttpOnly, SameSite=Strict, Path=/", ck)
	}
	if strings.Contains(ck.Value, e.keys["admin"]) || len(ck.Value) < 40 {
		t.Errorf("cookie value %q is not an opaque random token", ck.Value)
	}
	cookies := []*http.Cookie{{Name: SessionCookie, Value: ck.Value}}
	withCSRF := http.Header{CSRFHeader: {csrf}}

	// Reads need only the cookie.
	e.expect(t, 200, request{method: "GET", path: "/v1/admin/prompts", cookies: cookies})
	var who struct {
		KeyID string `json:"key_id"`
	}
	e.expect(t, 200, request{method: "GET", path: "/ui/session", cookies: cookies}).decode(t, &who)
	if who.KeyID != e.keyIDs["admin"] {
		t.Errorf("session key_id %q, want %q", who.KeyID, e.keyIDs["admin"])
	}

	// Writes need the CSRF token and a same-origin request.
	const rollback = "/v1/admin/prompts/support/summarize/rollback"
	for _, tt := range []struct {
		name   string
		header http.Header
		want   int
	}{
		{"no token", nil, 403},
		{"wrong token", http.Header{CSRFHeader: {"nope"}}, 403},
		{"cross-origin", http.Header{CSRFHeader: {csrf}, "Origin": {"https://evil.example"}}, 403},
		{"cross-site fetch", http.Header{CSRFHeader: {csrf}, "Sec-Fetch-Site": {"cross-site"}}, 403},
		{"same origin", http.Header{CSRFHeader: {csrf}, "Origin": {e.srv.URL}, "Sec-Fetch-Site": {"same-origin"}}, 200},
	} {
		r := e.do(t, request{method: "POST", path: rollback, body: `{"version":"v1"}`, cookies: cookies, header: tt.header})
		if r.status != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.body, tt.want)
		}
	}
	var audit struct {
		Entries []struct{ Action, Actor string }
	}
	e.expect(t, 200, request{method: "GET", path: "/v1/admin/audit?limit=1", cookies: cookies}).decode(t, &audit)
	if a := audit.Entries[0]; a.Action != "rollback" || a.Actor != "admin:"+e.keyIDs["admin"] {
		t.Errorf("audit of a dashboard rollback = %+v", a)
	}

	// Sign-in checks the key as a bearer key is checked.
	for _, tt := range []struct {
		key  string
		want int
	}{{e.keys["live"], 403}, {e.keys["test"], 403}, {e.keys["revoked"], 401}, {"pv_admin_short", 401}, {"", 401}} {
		if r := e.do(t, request{method: "POST", path: "/ui/session", body: `{"key":"` + tt.key + `"}`}); r.status != tt.want {
			t.Errorf("sign in with %.12q: %d, want %d", tt.key, r.status, tt.want)
		}
	}
	if r := e.do(t, request{method: "POST", path: "/ui/session", body: `{"key":"` + e.keys["admin"] + `"}`,
		header: http.Header{"Origin": {"https://evil.example"}}}); r.status != 403 {
		t.Errorf("cross-origin sign-in: %d", r.status)
	}
	// A bearer key wins over a cookie, so API clients never need CSRF.
	e.expect(t, 200, request{method: "POST", path: "/v1/admin/prompts/support/summarize/promote", key: "admin", body: `{"version":"v2"}`, cookies: cookies})

	// Sign out ends the session (and needs the token).
	e.expect(t, 403, request{method: "DELETE", path: "/ui/session", cookies: cookies})
	e.expect(t, 204, request{method: "DELETE", path: "/ui/session", cookies: cookies, header: withCSRF})
	if r := e.do(t, request{method: "GET", path: "/v1/admin/prompts", cookies: cookies}); r.status != 401 {
		t.Errorf("after sign-out: %d", r.status)
	}
	if r := e.do(t, request{method: "GET", path: "/v1/admin/prompts", cookies: []*http.Cookie{{Name: SessionCookie, Value: "forged"}}}); r.status != 401 {
		t.Errorf("forged session: %d", r.status)
	}
}

// Revoking the key a session signed in with ends the session at once,
// whether the revocation comes through the API or straight from the index
// (the CLI in another process).
func TestSessionDiesWithItsKey(t *testing.T) {
	e := newTestEnv(t)
	var k struct{ Key, ID string }
	e.expect(t, 201, request{method: "POST", path: "/v1/admin/keys", body: `{"env":"admin","name":"ops"}`}).decode(t, &k)
	waitStatus(t, e, request{method: "GET", path: "/v1/admin/prompts", key: k.Key}, 200)

	ck1, _ := e.signIn(t, k.Key)
	ck2, _ := e.signIn(t, k.Key)
	e.expect(t, 200, request{method: "DELETE", path: "/v1/admin/keys/" + k.ID})
	for _, ck := range []*http.Cookie{ck1, ck2} {
		if r := e.do(t, request{method: "GET", path: "/v1/admin/prompts", cookies: []*http.Cookie{ck}}); r.status != 401 {
			t.Errorf("session after API revocation: %d", r.status)
		}
	}

	// Revoked in the index directly: the next request sees it.
	var k2 struct{ Key, ID string }
	e.expect(t, 201, request{method: "POST", path: "/v1/admin/keys", body: `{"env":"admin"}`}).decode(t, &k2)
	waitStatus(t, e, request{method: "GET", path: "/v1/admin/prompts", key: k2.Key}, 200)
	ck3, _ := e.signIn(t, k2.Key)
	e.expect(t, 200, request{method: "GET", path: "/v1/admin/prompts", cookies: []*http.Cookie{ck3}})
	revokeDirect(t, e, k2.ID)
	r := e.do(t, request{method: "GET", path: "/v1/admin/prompts", cookies: []*http.Cookie{ck3}})
	if r.status != 401 || !strings.Contains(r.errMessage(), "revoked") {
		t.Errorf("session after a direct revocation: %d %s", r.status, r.body)
	}
}

// Sessions live in the index, so a second handler on the same database (as
// another instance, or this one after a restart, would be) knows a session
// the first one created, and revoking the key ends it there too.
func TestSessionIsSharedByInstances(t *testing.T) {
	e := newTestEnv(t)
	ck, _ := e.signIn(t, e.keys["admin"])
	other, err := New(Options{DB: e.db, Repo: e.repo, Resolver: e.res})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := other.lookupSession(t.Context(), ck.Value); err != nil || s.keyID != e.keyIDs["admin"] {
		t.Fatalf("session on a second handler: %+v, %v", s, err)
	}
	if _, err := other.lookupSession(t.Context(), ck.Value+"x"); !errors.Is(err, errNoSession) {
		t.Errorf("unknown token: %v", err)
	}
	revokeDirect(t, e, e.keyIDs["admin"])
	if _, err := other.lookupSession(t.Context(), ck.Value); !errors.Is(err, errNoSession) && !errors.Is(err, errKeyRevoked) {
		t.Errorf("session after revocation: %v", err)
	}
}

func revokeDirect(t *testing.T, e *testEnv, id string) {
	t.Helper()
	ctx := t.Context()
	if err := e.db.Update(ctx, func(tx *index.Tx) error {
		_, err := tx.RevokeKey(ctx, id, "cli:test")
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
