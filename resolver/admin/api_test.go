package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/index"
)

// Every endpoint group answers no key and a revoked key with 401, live and
// test keys with 403, and the admin key with what the endpoint does.
func TestAuthMatrix(t *testing.T) {
	e := newTestEnv(t)
	for _, tt := range []struct {
		method, path, body string
		admin              int
	}{
		{"GET", "/v1/admin/prompts", "", 200},
		{"GET", "/v1/admin/prompts/support/summarize/versions", "", 200},
		{"GET", "/v1/admin/prompts/support/summarize/versions/v1", "", 200},
		{"GET", "/v1/admin/prompts/support/summarize/diff?from=v1&to=v2", "", 200},
		{"POST", "/v1/admin/prompts/support/summarize/promote", `{"version":"v2"}`, 200},
		{"POST", "/v1/admin/prompts/support/summarize/rollback", `{"version":"v1"}`, 200},
		{"PUT", "/v1/admin/prompts/greet/staging", `{"version":"draft:tone"}`, 200},
		{"DELETE", "/v1/admin/prompts/greet/staging", "", 200},
		{"DELETE", "/v1/admin/prompts/greet/drafts/v1", "", 409},
		{"GET", "/v1/admin/settings", "", 200},
		{"PATCH", "/v1/admin/settings", `{"staging_enabled":true}`, 200},
		{"GET", "/v1/admin/audit", "", 200},
		{"POST", "/v1/admin/sync", "", 200},
		{"GET", "/v1/admin/keys", "", 200},
		{"POST", "/v1/admin/keys", `{"env":"live","name":"matrix"}`, 201},
		{"DELETE", "/v1/admin/keys/key_doesnotexist", "", 404},
		{"DELETE", "/v1/admin/keys", `{"id":"key_doesnotexist"}`, 404},
		{"GET", "/v1/admin/no/such/route", "", 404},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			for _, c := range []struct {
				key  string
				want int
			}{{"", 401}, {"live", 403}, {"test", 403}, {"revoked", 401}, {"pv_admin_" + strings.Repeat("x", 40), 401}, {"admin", tt.admin}} {
				r := e.do(t, request{method: tt.method, path: tt.path, key: c.key, body: tt.body})
				if r.status != c.want {
					t.Errorf("key %q: status %d, want %d: %s", c.key, r.status, c.want, r.body)
				}
				if c.want == 401 && r.header.Get("Www-Authenticate") == "" {
					t.Errorf("key %q: 401 without WWW-Authenticate", c.key)
				}
			}
		})
	}
}

func TestPromptList(t *testing.T) {
	e := newTestEnv(t)
	var list struct {
		StagingEnabled bool `json:"staging_enabled"`
		Prompts        []struct {
			Key, Newest string
			Versions    int
			Drafts      int
			Live        *struct{ Version string }
			Staging     *struct{ Version string }
		}
	}
	e.expect(t, 200, request{method: "GET", path: "/v1/admin/prompts"}).decode(t, &list)
	if !list.StagingEnabled || len(list.Prompts) != 2 {
		t.Fatalf("prompts = %+v", list)
	}
	g, s := list.Prompts[0], list.Prompts[1]
	if g.Key != "greet" || g.Live == nil || g.Live.Version != "v1" || g.Drafts != 1 || g.Staging != nil {
		t.Errorf("greet = %+v", g)
	}
	if s.Key != "support/summarize" || s.Newest != "v3" || s.Versions != 3 || s.Live == nil || s.Live.Version != "v2" {
		t.Errorf("summarize = %+v (live is the newest valid version after bootstrap)", s)
	}
}

type vpage struct {
	Key, Newest    string
	Live, Staging  *string
	StagingEnabled bool `json:"staging_enabled"`
	Versions       []struct {
		Version, Message, Author string
		Number                   *int
		Draft, Valid             bool
	}
	NextCursor *string `json:"next_cursor"`
}

func (p vpage) labels() []string {
	var out []string
	for _, v := range p.Versions {
		out = append(out, v.Version)
	}
	return out
}

// Paging across 250 versions stays exact while new versions arrive between
// pages: every version present at the first page is seen once, in order.
func TestVersionsPagingWithInserts(t *testing.T) {
	e := newTestEnv(t)
	commitFast(t, e.g, "paged", "edit", 250)
	e.sync(t)
	var seen []string
	path := "/v1/admin/prompts/paged/versions?limit=37"
	for page := 0; ; page++ {
		var p vpage
		e.get(t, path).decode(t, &p)
		if len(p.Versions) > 37 {
			t.Fatalf("page %d has %d versions, limit 37", page, len(p.Versions))
		}
		seen = append(seen, p.labels()...)
		if p.NextCursor == nil {
			break
		}
		// New versions land between pages: they are newer than the first
		// page, so later pages are unaffected.
		commitFast(t, e.g, "paged", fmt.Sprintf("insert-%d", page), 3)
		e.sync(t)
		path = "/v1/admin/prompts/paged/versions?limit=37&cursor=" + url.QueryEscape(*p.NextCursor)
	}
	if len(seen) != 250 {
		t.Fatalf("saw %d versions across pages, want 250", len(seen))
	}
	for i, l := range seen {
		if want := fmt.Sprintf("v%d", 250-i); l != want {
			t.Fatalf("position %d is %s, want %s (duplicate or gap)", i, l, want)
		}
	}
	var first vpage
	e.get(t, "/v1/admin/prompts/paged/versions").decode(t, &first)
	if len(first.Versions) != DefaultLimit || first.Versions[0].Version != fmt.Sprintf("v%d", 250+3*6) {
		t.Errorf("default page: %d versions from %s", len(first.Versions), first.Versions[0].Version)
	}
	var big vpage
	e.get(t, "/v1/admin/prompts/paged/versions?limit=200").decode(t, &big)
	if len(big.Versions) != 200 {
		t.Errorf("limit=200 gave %d versions", len(big.Versions))
	}
}

func TestVersionsDraftsFirstAndSearch(t *testing.T) {
	e := newTestEnv(t)
	var p vpage
	e.get(t, "/v1/admin/prompts/greet/versions").decode(t, &p)
	if got := strings.Join(p.labels(), ","); got != "draft:tone,v1" {
		t.Errorf("greet versions = %s, want the draft first", got)
	}
	if p.Live == nil || *p.Live != "v1" || p.Staging != nil || p.Versions[0].Number != nil || !p.Versions[0].Draft {
		t.Errorf("greet page = %+v", p)
	}
	for _, tt := range []struct{ q, want string }{
		{"grace", "v2"},                      // author, case-insensitive
		{"SHORTER", "v2"},                    // message, case-insensitive
		{"hot", "v3"},                        // an invalid version is listed too
		{"ada@example.com", "v3,v1"},         // author email
		{"Hopper <grace@example.com>", "v2"}, // the whole author
		{"  summar  ", "v2"},                 // trimmed
		{"50%_", ""},                         // LIKE wildcards are literal
		{"nothing matches this", ""},         // an empty page
	} {
		var p vpage
		e.get(t, "/v1/admin/prompts/support/summarize/versions?q="+url.QueryEscape(tt.q)).decode(t, &p)
		if got := strings.Join(p.labels(), ","); got != tt.want {
			t.Errorf("q=%q: %s, want %s", tt.q, got, tt.want)
		}
	}
	// A search pages too, and the draft only matches its own message.
	var d vpage
	e.get(t, "/v1/admin/prompts/greet/versions?q=friendlier").decode(t, &d)
	if got := strings.Join(d.labels(), ","); got != "draft:tone" {
		t.Errorf("q=friendlier on greet: %s", got)
	}
	var s1, s2 vpage
	e.get(t, "/v1/admin/prompts/support/summarize/versions?q=e&limit=2").decode(t, &s1)
	if s1.NextCursor == nil || strings.Join(s1.labels(), ",") != "v3,v2" {
		t.Fatalf("search page 1 = %v cursor %v", s1.labels(), s1.NextCursor)
	}
	e.get(t, "/v1/admin/prompts/support/summarize/versions?q=e&limit=2&cursor="+*s1.NextCursor).decode(t, &s2)
	if s2.NextCursor != nil || strings.Join(s2.labels(), ",") != "v1" {
		t.Errorf("search page 2 = %v cursor %v", s2.labels(), s2.NextCursor)
	}
	e.expect(t, 404, request{method: "GET", path: "/v1/admin/prompts/nope/versions"})
}

func TestVersionWithSource(t *testing.T) {
	e := newTestEnv(t)
	e.dropMirror(t) // sources come from the index
	var v struct {
		Version, Source, Commit string
		Valid                   bool
		Problems                []struct{ Message string }
	}
	e.get(t, "/v1/admin/prompts/support/summarize/versions/v2").decode(t, &v)
	if v.Source != gittest.Prompt("Summarize briefly") || !v.Valid || len(v.Commit) != 40 {
		t.Errorf("v2 = %+v", v)
	}
	e.get(t, "/v1/admin/prompts/support/summarize/versions/v3").decode(t, &v)
	if v.Valid || len(v.Problems) == 0 || !strings.Contains(v.Source, "temperature: 7") {
		t.Errorf("v3 = %+v, want invalid with problems", v)
	}
	// Drafts by plain and percent-encoded label.
	for _, p := range []string{"draft:tone", "draft%3Atone"} {
		e.get(t, "/v1/admin/prompts/greet/versions/"+p).decode(t, &v)
		if v.Version != "draft:tone" || v.Source != gittest.Prompt("Hi there") {
			t.Errorf("%s = %+v", p, v)
		}
	}
	for _, tt := range []struct {
		path string
		code int
	}{
		{"/v1/admin/prompts/support/summarize/versions/v9", 404},
		{"/v1/admin/prompts/nope/versions/v1", 404},
		{"/v1/admin/prompts/greet/versions/draft:gone", 404},
		{"/v1/admin/prompts/greet/versions/latest", 400},
		{"/v1/admin/prompts/Bad..Key/versions/v1", 400},
	} {
		r := e.get(t, tt.path)
		if r.status != tt.code {
			t.Errorf("%s: %d, want %d: %s", tt.path, r.status, tt.code, r.body)
		}
	}
}

func TestDiff(t *testing.T) {
	e := newTestEnv(t)
	// A prompt whose two versions share no line.
	e.g.Write("prompts/disjoint.yaml", "template: one {{ a }}\nmodel: m1\n")
	e.g.Commit("disjoint one")
	e.g.Write("prompts/disjoint.yaml", "description: other\ntemperature: 1\nmessages:\n  - {role: user, content: \"{{ b }}\"}\n")
	e.g.Commit("disjoint two")
	e.sync(t)
	e.dropMirror(t) // diffs read the index's contents

	type diff struct {
		Identical      bool
		Added, Removed int
		Unified        string
		From, To       struct{ Version string }
		Rows           []struct {
			Kind        string
			Left, Right *struct {
				Line int
				Text string
			}
		}
	}
	var same diff
	e.get(t, "/v1/admin/prompts/support/summarize/diff?from=v1&to=v1").decode(t, &same)
	if !same.Identical || same.Unified != "" || len(same.Rows) != 0 || same.From.Version != "v1" {
		t.Errorf("identical diff = %+v", same)
	}
	var dj diff
	e.get(t, "/v1/admin/prompts/disjoint/diff?from=v1&to=v2").decode(t, &dj)
	if dj.Identical || dj.Removed != 2 || dj.Added != 4 {
		t.Errorf("disjoint diff: identical %v, -%d +%d; want -2 +4", dj.Identical, dj.Removed, dj.Added)
	}
	var kinds []string
	for _, r := range dj.Rows {
		kinds = append(kinds, r.Kind)
	}
	if got := strings.Join(kinds, ","); got != "hunk,change,change,insert,insert" {
		t.Errorf("disjoint rows = %s", got)
	}
	if !strings.HasPrefix(dj.Unified, "--- prompts/disjoint.yaml\tv1\n+++ prompts/disjoint.yaml\tv2\n@@ -1,2 +1,4 @@\n") {
		t.Errorf("unified = %q", dj.Unified)
	}
	if r := dj.Rows[1]; r.Left.Text != "template: one {{ a }}" || r.Right.Text != "description: other" || r.Left.Line != 1 {
		t.Errorf("first change row = %+v %+v", r.Left, r.Right)
	}
	// A draft against a version, either way round.
	var dv diff
	e.get(t, "/v1/admin/prompts/greet/diff?from=v1&to=draft:tone").decode(t, &dv)
	if dv.Identical || dv.Added != 1 || dv.Removed != 1 || dv.To.Version != "draft:tone" {
		t.Errorf("v1 → draft:tone = %+v", dv)
	}
	for _, tt := range []struct {
		q    string
		code int
		msg  string
	}{
		{"from=v1", 400, "from and to"},
		{"to=v1", 400, "from and to"},
		{"from=v1&to=v99", 404, "v99"},
		{"from=x&to=v1", 400, "not vN or draft:NAME"},
	} {
		r := e.get(t, "/v1/admin/prompts/support/summarize/diff?"+tt.q)
		if r.status != tt.code || !strings.Contains(r.errMessage(), tt.msg) {
			t.Errorf("diff?%s: %d %s, want %d mentioning %q", tt.q, r.status, r.body, tt.code, tt.msg)
		}
	}
}

// Malformed cursors, limits and bodies are 400 invalid_request with a
// message saying what to do; an oversized body is 413.
func TestBadRequests(t *testing.T) {
	e := newTestEnv(t)
	var audit struct {
		NextCursor *string `json:"next_cursor"`
	}
	e.get(t, "/v1/admin/audit?limit=1").decode(t, &audit)
	if audit.NextCursor == nil {
		t.Fatal("audit page of 1 has no next_cursor")
	}
	big := `{"version":"` + strings.Repeat("v", MaxBodyBytes) + `"}`
	for _, tt := range []struct {
		name   string
		req    request
		status int
		msg    string
	}{
		{"garbage cursor", request{method: "GET", path: "/v1/admin/prompts/greet/versions?cursor=%25%25"}, 400, "invalid cursor"},
		{"base64 but not a cursor", request{method: "GET", path: "/v1/admin/prompts/greet/versions?cursor=aGVsbG8"}, 400, "invalid cursor"},
		{"audit cursor on versions", request{method: "GET", path: "/v1/admin/prompts/greet/versions?cursor=" + *audit.NextCursor}, 400, "another list"},
		{"zero cursor", request{method: "GET", path: "/v1/admin/audit?cursor=" + encodeCursor("a", 0)}, 400, "invalid cursor"},
		{"limit 0", request{method: "GET", path: "/v1/admin/prompts/greet/versions?limit=0"}, 400, "from 1 to 200"},
		{"limit 201", request{method: "GET", path: "/v1/admin/audit?limit=201"}, 400, "from 1 to 200"},
		{"limit text", request{method: "GET", path: "/v1/admin/audit?limit=ten"}, 400, `limit "ten"`},
		{"bad JSON", request{method: "POST", path: "/v1/admin/prompts/greet/promote", body: `{"version": v1}`}, 400, "not valid JSON"},
		{"truncated JSON", request{method: "POST", path: "/v1/admin/prompts/greet/promote", body: `{"version": "v1"`}, 400, "ends early"},
		{"unknown field", request{method: "POST", path: "/v1/admin/prompts/greet/promote", body: `{"version":"v1","force":true}`}, 400, `unknown field "force"`},
		{"wrong type", request{method: "PATCH", path: "/v1/admin/settings", body: `{"staging_enabled":"yes"}`}, 400, `"staging_enabled" is JSON string`},
		{"array body", request{method: "POST", path: "/v1/admin/prompts/greet/promote", body: `["v1"]`}, 400, "want an object"},
		{"two values", request{method: "POST", path: "/v1/admin/prompts/greet/promote", body: `{"version":"v1"} {}`}, 400, "more than one JSON value"},
		{"missing version", request{method: "POST", path: "/v1/admin/prompts/greet/promote", body: `{}`}, 400, `needs "version"`},
		{"missing setting", request{method: "PATCH", path: "/v1/admin/settings", body: `{}`}, 400, `needs "staging_enabled"`},
		{"empty body", request{method: "POST", path: "/v1/admin/prompts/greet/rollback"}, 400, "body is empty"},
		{"form body", request{method: "POST", path: "/v1/admin/keys", body: `{"env":"live"}`, header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}}, 400, "application/json"},
		{"bad key env", request{method: "POST", path: "/v1/admin/keys", body: `{"env":"root"}`}, 400, "want live, test or admin"},
		{"oversized body", request{method: "POST", path: "/v1/admin/prompts/greet/promote", body: big}, 413, "larger than 65536 bytes"},
		{"wrong method", request{method: "GET", path: "/v1/admin/prompts/greet/promote"}, 405, "allowed: POST"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.expect(t, tt.status, tt.req)
			if !strings.Contains(r.errMessage(), tt.msg) {
				t.Errorf("message %q does not mention %q", r.errMessage(), tt.msg)
			}
			wantCode := map[int]string{400: "invalid_request", 413: "too_large", 405: "method_not_allowed"}[tt.status]
			if r.errCode() != wantCode {
				t.Errorf("code %q, want %q", r.errCode(), wantCode)
			}
		})
	}
}

type change struct {
	Key, Env, From, To string
	Changed            bool
	Audit              *index.AuditEntry
}

func TestPointerActionsAndAudit(t *testing.T) {
	e := newTestEnv(t)
	actor := "admin:" + e.keyIDs["admin"]
	post := func(method, path, body string, want int) change {
		t.Helper()
		var c change
		r := e.expect(t, want, request{method: method, path: path, body: body})
		if want == 200 {
			r.decode(t, &c)
		}
		return c
	}
	const s = "/v1/admin/prompts/support/summarize"
	c := post("POST", s+"/rollback", `{"version":"v1"}`, 200)
	if !c.Changed || c.From != "v2" || c.To != "v1" || c.Audit == nil || c.Audit.Action != index.ActRollback || c.Audit.Actor != actor {
		t.Errorf("rollback = %+v %+v", c, c.Audit)
	}
	if r := e.expect(t, 400, request{method: "POST", path: s + "/rollback", body: `{"version":"v2"}`}); !strings.Contains(r.errMessage(), "not older than live") {
		t.Errorf("rollback forward: %s", r.body)
	}
	if r := e.expect(t, 422, request{method: "POST", path: s + "/promote", body: `{"version":"v3"}`}); r.errCode() != "validation_failed" {
		t.Errorf("promote invalid: %s", r.body)
	}
	c = post("POST", s+"/promote", `{"version":"v2"}`, 200)
	if !c.Changed || c.To != "v2" || c.Audit.Action != index.ActPromote {
		t.Errorf("promote = %+v", c)
	}
	if c = post("POST", s+"/promote", `{"version":"v2"}`, 200); c.Changed || c.Audit != nil {
		t.Errorf("promote again = %+v, want unchanged without audit", c)
	}
	e.expect(t, 404, request{method: "POST", path: "/v1/admin/prompts/nope/promote", body: `{"version":"v1"}`})

	c = post("PUT", "/v1/admin/prompts/greet/staging", `{"version":"draft:tone"}`, 200)
	if !c.Changed || c.To != "draft:tone" || c.Env != "staging" {
		t.Errorf("staging set = %+v", c)
	}
	// Test keys read staging now (within the resolver's poll).
	waitRead(t, e, "greet", "test", "draft:tone")
	post("PATCH", "/v1/admin/settings", `{"staging_enabled":false}`, 200)
	waitRead(t, e, "greet", "test", "v1")
	for _, req := range []request{
		{method: "PUT", path: "/v1/admin/prompts/greet/staging", body: `{"version":"v1"}`},
		{method: "DELETE", path: "/v1/admin/prompts/greet/staging"},
	} {
		if r := e.expect(t, 409, req); !strings.Contains(r.errMessage(), "staging is disabled") {
			t.Errorf("%s with staging off: %s", req.method, r.body)
		}
	}
	var st struct {
		StagingEnabled bool `json:"staging_enabled"`
	}
	e.get(t, "/v1/admin/settings").decode(t, &st)
	if st.StagingEnabled {
		t.Error("settings still say staging is enabled")
	}
	post("PATCH", "/v1/admin/settings", `{"staging_enabled":true}`, 200)
	waitRead(t, e, "greet", "test", "draft:tone") // the pointer survived

	if r := e.expect(t, 409, request{method: "DELETE", path: "/v1/admin/prompts/greet/drafts/v1"}); !strings.Contains(r.errMessage(), "immutable") {
		t.Errorf("delete published: %s", r.body)
	}
	c = post("DELETE", "/v1/admin/prompts/greet/drafts/tone", "", 200)
	if !c.Changed || c.Audit.Action != index.ActDraftDelete {
		t.Errorf("draft delete = %+v", c)
	}
	e.expect(t, 404, request{method: "DELETE", path: "/v1/admin/prompts/greet/drafts/tone"})
	var p vpage
	e.get(t, "/v1/admin/prompts/greet/versions").decode(t, &p)
	if p.Staging != nil || strings.Join(p.labels(), ",") != "v1" {
		t.Errorf("after draft delete: staging %v, versions %v", p.Staging, p.labels())
	}

	// The audit log has it all, newest first, by this key's actor, and
	// pages without repeats.
	var all []index.AuditEntry
	path := "/v1/admin/audit?limit=3"
	for {
		var page struct {
			Entries    []index.AuditEntry
			NextCursor *string `json:"next_cursor"`
		}
		e.get(t, path).decode(t, &page)
		all = append(all, page.Entries...)
		if page.NextCursor == nil {
			break
		}
		path = "/v1/admin/audit?limit=3&cursor=" + *page.NextCursor
	}
	var mine []string
	for i, a := range all {
		if i > 0 && a.Seq >= all[i-1].Seq {
			t.Fatalf("audit not strictly newest first: %d after %d", a.Seq, all[i-1].Seq)
		}
		if a.Actor == actor {
			mine = append(mine, a.Action)
		}
	}
	want := []string{"draft_delete", "staging_clear", "settings", "settings", "staging_set", "promote", "rollback"}
	if !slices.Equal(mine, want) {
		t.Errorf("audit by %s = %v, want %v", actor, mine, want)
	}
	if all[len(all)-1].Action != index.ActBootstrap && all[len(all)-1].Action != index.ActKeyRevoke {
		t.Logf("oldest audit entry: %+v", all[len(all)-1])
	}
}

// waitRead polls the read API until key reads version with the env's key.
func waitRead(t *testing.T, e *testEnv, key, env, version string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		r := e.do(t, request{method: "GET", path: "/v1/prompts/" + key, key: env})
		var doc struct{ Version string }
		json.Unmarshal(r.body, &doc)
		if last = doc.Version; last == version {
			return
		}
	}
	t.Fatalf("%s key reads %s %s, want %s", env, key, last, version)
}

func TestKeys(t *testing.T) {
	e := newTestEnv(t)
	r := e.expect(t, 201, request{method: "POST", path: "/v1/admin/keys", body: `{"env":"test","name":"ci"}`})
	var raw map[string]any
	r.decode(t, &raw)
	var fields []string
	for k := range raw {
		fields = append(fields, k)
	}
	slices.Sort(fields)
	if got := strings.Join(fields, ","); got != "created_at,env,id,key,name,prefix" {
		t.Errorf("created key fields = %s; want keys create --json's", got)
	}
	key, id := raw["key"].(string), raw["id"].(string)
	if !strings.HasPrefix(key, "pv_test_") || !strings.HasPrefix(key, raw["prefix"].(string)) || raw["name"] != "ci" {
		t.Errorf("created key = %v", raw)
	}
	waitStatus(t, e, request{method: "GET", path: "/v1/prompts/greet", key: key}, 200)

	var list struct{ Keys []map[string]any }
	e.get(t, "/v1/admin/keys").decode(t, &list)
	found := false
	for _, k := range list.Keys {
		if _, leak := k["key"]; leak {
			t.Errorf("key list shows a key: %v", k)
		}
		if _, leak := k["hash"]; leak {
			t.Errorf("key list shows a hash: %v", k)
		}
		if k["id"] == id {
			found = true
		}
	}
	if !found || len(list.Keys) != 5 {
		t.Errorf("%d keys listed, new one found %v", len(list.Keys), found)
	}
	var rv struct {
		ID      string
		Changed bool
		Audit   *index.AuditEntry
	}
	e.expect(t, 200, request{method: "DELETE", path: "/v1/admin/keys/" + id}).decode(t, &rv)
	if !rv.Changed || rv.Audit == nil || rv.Audit.Action != index.ActKeyRevoke {
		t.Errorf("revoke = %+v", rv)
	}
	waitStatus(t, e, request{method: "GET", path: "/v1/prompts/greet", key: key}, 401)
	e.expect(t, 200, request{method: "DELETE", path: "/v1/admin/keys", body: fmt.Sprintf(`{"id":%q}`, id)}).decode(t, &rv)
	if rv.Changed {
		t.Error("revoking a revoked key changed something")
	}
	// An admin key revoked through the API stops working for the API.
	var ak struct{ Key, ID string }
	e.expect(t, 201, request{method: "POST", path: "/v1/admin/keys", body: `{"env":"admin"}`}).decode(t, &ak)
	waitStatus(t, e, request{method: "GET", path: "/v1/admin/prompts", key: ak.Key}, 200)
	e.expect(t, 200, request{method: "DELETE", path: "/v1/admin/keys/" + ak.ID, key: ak.Key}) // revokes itself
	waitStatus(t, e, request{method: "GET", path: "/v1/admin/prompts", key: ak.Key}, 401)
}

func waitStatus(t *testing.T, e *testEnv, req request, want int) {
	t.Helper()
	var got int
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = e.do(t, req).status; got == want {
			return
		}
	}
	t.Fatalf("%s %s: status %d, want %d", req.method, req.path, got, want)
}

func TestSyncNow(t *testing.T) {
	e := newTestEnv(t)
	e.g.Write("prompts/greet.yaml", gittest.Prompt("Good day"))
	e.g.CommitAs("Grace Hopper", "grace@example.com", "Politer greeting")
	var res struct {
		Commits  int
		Versions []struct{ Key, Version string }
	}
	e.expect(t, 200, request{method: "POST", path: "/v1/admin/sync"}).decode(t, &res)
	if res.Commits != 1 || len(res.Versions) != 1 || res.Versions[0].Key != "greet" || res.Versions[0].Version != "v2" {
		t.Errorf("sync = %+v", res)
	}
	var p vpage
	e.get(t, "/v1/admin/prompts/greet/versions?q=politer").decode(t, &p)
	if strings.Join(p.labels(), ",") != "v2" {
		t.Errorf("after sync: %v", p.labels())
	}
	e.adm.sync = nil
	if r := e.expect(t, 503, request{method: "POST", path: "/v1/admin/sync"}); r.errCode() != "not_ready" {
		t.Errorf("sync without a sync func: %s", r.body)
	}
}

func TestParseAPIPath(t *testing.T) {
	for _, tt := range []struct {
		path, route, key, arg string
	}{
		{"/v1/admin/prompts", routePrompts, "", ""},
		{"/v1/admin/keys/key_abc", routeKey, "", "key_abc"},
		{"/v1/admin/prompts/a/b/versions", routeVersions, "a/b", ""},
		{"/v1/admin/prompts/team/versions/versions", routeVersions, "team/versions", ""},
		{"/v1/admin/prompts/team/diff/diff", routeDiff, "team/diff", ""},
		{"/v1/admin/prompts/a/versions/v3", routeVersion, "a", "v3"},
		{"/v1/admin/prompts/x/versions/y/versions/v2", routeVersion, "x/versions/y", "v2"},
		{"/v1/admin/prompts/a/versions/draft:feature/x", routeVersion, "a", "draft:feature/x"},
		{"/v1/admin/prompts/a/versions/draft%3Afeature%2Fx", routeVersion, "a", "draft:feature/x"},
		{"/v1/admin/prompts/a/drafts/pr-12", routeDraft, "a", "pr-12"},
		{"/v1/admin/prompts/a/drafts/feature%2Fx", routeDraft, "a", "feature/x"},
		{"/v1/admin/prompts/a/drafts/draft:feature/x", routeDraft, "a", "draft:feature/x"},
		{"/v1/admin/prompts/a/staging", routeStaging, "a", ""},
		{"/v1/admin/prompts/support%2Fsummarize/promote", routePromote, "support/summarize", ""},
	} {
		route, p, err := parseAPIPath(tt.path)
		if err != nil || route != tt.route || p.key != tt.key || p.arg != tt.arg {
			t.Errorf("%s: %s %+v %v; want %s key %q arg %q", tt.path, route, p, err, tt.route, tt.key, tt.arg)
		}
	}
	for _, bad := range []string{"/v1/admin/", "/v1/admin/prompts/", "/v1/admin/prompts/a", "/v1/admin/prompts/a/versions/", "/v1/admin/nope", "/v1/admin/prompts/UP/versions"} {
		if route, _, err := parseAPIPath(bad); err == nil {
			t.Errorf("%s: routed to %s", bad, route)
		}
	}
}

func TestRoute(t *testing.T) {
	for _, tt := range []struct{ method, path, want string }{
		{"GET", "/v1/prompts/support/summarize", "/v1/prompts/{key}"},
		{"POST", "/v1/prompts/support/summarize/render", "/v1/prompts/{key}/render"},
		{"GET", "/v1/admin/prompts/a/b/diff", routeDiff},
		{"GET", "/v1/admin/what", routeAdminMiss},
		{"GET", "/ui/", routeUIStatic},
		{"GET", "/ui/app.js", routeUIStatic},
		{"POST", "/ui/session", routeSession},
		{"GET", "/metrics", "/metrics"},
		{"GET", "/v1/events", "/v1/events"},
		{"GET", "/wp-login.php", routeOther},
	} {
		r, _ := http.NewRequest(tt.method, "http://x"+tt.path, nil)
		if got := Route(r); got != tt.want {
			t.Errorf("%s %s: %s, want %s", tt.method, tt.path, got, tt.want)
		}
	}
	r, _ := http.NewRequest("GET", "http://x/v1/prompts/a", nil)
	if n := testing.AllocsPerRun(100, func() { Route(r) }); n != 0 {
		t.Errorf("Route allocates %v times for a read", n)
	}
}

// The OpenAPI document is served as kept in the repository and documents
// exactly the admin routes the handler serves.
func TestOpenAPIDocument(t *testing.T) {
	e := newTestEnv(t)
	r := e.do(t, request{method: "GET", path: "/v1/openapi.json"})
	if r.status != 200 || string(r.body) != string(openAPI) || r.header.Get("Etag") == "" {
		t.Fatalf("GET /v1/openapi.json: %d, %d bytes", r.status, len(r.body))
	}
	loadOpenAPI()
	if v := oa.doc["openapi"]; v != "3.1.0" {
		t.Errorf("openapi = %v", v)
	}
	paths := oa.doc["paths"].(map[string]any)
	for route, methods := range apiRoutes {
		item, _ := paths[route].(map[string]any)
		for m := range methods {
			if item == nil || item[strings.ToLower(m)] == nil {
				t.Errorf("openapi.json lacks %s %s", m, route)
			}
		}
	}
	for p, item := range paths {
		if !strings.HasPrefix(p, APIPrefix) {
			continue
		}
		for m := range item.(map[string]any) {
			if apiRoutes[p][strings.ToUpper(m)] == nil {
				t.Errorf("openapi.json documents %s %s, which is not served", strings.ToUpper(m), p)
			}
		}
	}
	for _, p := range []string{"/v1/prompts/{key}", "/v1/prompts/{key}/render", "/v1/events", "/ui/session"} {
		if paths[p] == nil {
			t.Errorf("openapi.json lacks %s", p)
		}
	}
	// Every component schema compiles.
	for name := range oa.doc["components"].(map[string]any)["schemas"].(map[string]any) {
		if _, err := schemaAt("/components/schemas/" + name); err != nil {
			t.Errorf("schema %s: %v", name, err)
		}
	}
	// The read path's answers match too (checked inside do).
	e.do(t, request{method: "GET", path: "/v1/prompts/support/summarize", key: "live"})
	e.do(t, request{method: "GET", path: "/v1/prompts/support/summarize?version=v1", key: "test"})
	e.do(t, request{method: "GET", path: "/v1/prompts/nope", key: "live"})
	e.do(t, request{method: "GET", path: "/v1/prompts/greet"})
	e.do(t, request{method: "GET", path: "/healthz"})
	rr := e.do(t, request{method: "POST", path: "/v1/prompts/greet/render", key: "live", body: `{"variables":{"input":"x"}}`})
	t.Logf("render answered %d (checked against the document when served)", rr.status)
}

func TestSecurityHeaders(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range []string{"/ui/", "/ui/app.js", "/v1/admin/prompts"} {
		r := e.do(t, request{method: "GET", path: p, key: "admin"})
		if r.status != 200 {
			t.Fatalf("%s: %d", p, r.status)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", p, r.header)
		}
	}
	r := e.do(t, request{method: "GET", path: "/ui/app.js"})
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("app.js Content-Type %q", ct)
	}
	r2 := e.do(t, request{method: "GET", path: "/ui/app.js", header: http.Header{"If-None-Match": {r.header.Get("Etag")}}})
	if r2.status != 304 {
		t.Errorf("If-None-Match on app.js: %d", r2.status)
	}
	if r := e.do(t, request{method: "GET", path: "/ui/nope.html"}); r.status != 404 {
		t.Errorf("/ui/nope.html: %d", r.status)
	}
	if r := e.do(t, request{method: "POST", path: "/ui/app.js", body: "{}"}); r.status != 405 {
		t.Errorf("POST /ui/app.js: %d", r.status)
	}
}
