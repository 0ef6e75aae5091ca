package admin

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/promptvault/promptvault/gitstore/gittest"
)

func jsonBody(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestValidateAndPreview(t *testing.T) {
	e := newTestEnv(t)
	src := "model: gpt-4o\ntemperature: 7\ntemplate: Hi {{ name }}\n"
	var v struct {
		Valid    bool
		Problems []struct {
			Line, Column int
			Message      string
		}
	}
	e.expect(t, http.StatusOK, request{method: "POST", path: "/v1/admin/validate", body: jsonBody(t, map[string]any{"key": "greet", "source": src})}).decode(t, &v)
	if v.Valid || len(v.Problems) != 1 || v.Problems[0].Line != 2 || !strings.Contains(v.Problems[0].Message, "temperature") {
		t.Fatalf("validate = %+v", v)
	}
	src = strings.Replace(src, "temperature: 7", "temperature: 0.5", 1)
	e.expect(t, http.StatusOK, request{method: "POST", path: "/v1/admin/validate", body: jsonBody(t, map[string]any{"key": "brand/new", "source": src})}).decode(t, &v)
	if !v.Valid || len(v.Problems) != 0 {
		t.Fatalf("validate fixed = %+v", v)
	}
	var out struct {
		Env, Version string
		Messages     []struct{ Role, Content string }
	}
	e.expect(t, http.StatusOK, request{method: "POST", path: "/v1/admin/preview",
		body: jsonBody(t, map[string]any{"key": "greet", "source": src, "variables": map[string]any{"name": "Ada"}})}).decode(t, &out)
	if out.Env != "preview" || len(out.Messages) != 1 || out.Messages[0].Content != "Hi Ada" {
		t.Fatalf("preview = %+v", out)
	}
	// Render's rules: an undefined variable is an error, invalid source 422.
	r := e.expect(t, http.StatusUnprocessableEntity, request{method: "POST", path: "/v1/admin/preview", body: jsonBody(t, map[string]any{"key": "greet", "source": src})})
	if !strings.Contains(string(r.body), "name") {
		t.Errorf("preview without variables: %s", r.body)
	}
	e.expect(t, http.StatusUnprocessableEntity, request{method: "POST", path: "/v1/admin/preview", body: jsonBody(t, map[string]any{"key": "greet", "source": "template: [\n"})})
	e.expect(t, http.StatusBadRequest, request{method: "POST", path: "/v1/admin/validate", body: `{"key": "Bad Key", "source": "x"}`})
	e.expect(t, http.StatusBadRequest, request{method: "POST", path: "/v1/admin/validate", body: `{"key": "greet"}`})
	e.expect(t, http.StatusRequestEntityTooLarge, request{method: "POST", path: "/v1/admin/validate",
		body: jsonBody(t, map[string]any{"key": "greet", "source": strings.Repeat("x", 3<<20)})})
}

func TestDraftCommitStageAndMerge(t *testing.T) {
	e := newTestEnv(t)
	// A pushed-to working copy must not have the pushed branch checked
	// out (git refuses that too): work on a scratch branch.
	e.g.Git("checkout", "-q", "-b", "scratch")
	var v struct {
		versionView
		Branch string
		Source string
	}
	e.expect(t, http.StatusOK, request{method: "GET", path: "/v1/admin/prompts/greet/versions/v1"}).decode(t, &v)
	base := v.Commit
	src := gittest.Prompt("Hello from the dashboard")

	// Invalid source commits nothing.
	e.expect(t, http.StatusUnprocessableEntity, request{method: "PUT", path: "/v1/admin/prompts/greet/drafts/dash-edit",
		body: jsonBody(t, map[string]any{"source": "temperature: 9\n", "message": "broken"})})
	if strings.Contains(e.g.Git("branch", "--list"), "dash-edit") {
		t.Fatal("invalid source created the branch")
	}
	e.expect(t, http.StatusBadRequest, request{method: "PUT", path: "/v1/admin/prompts/greet/drafts/main",
		body: jsonBody(t, map[string]any{"source": src})})

	e.expect(t, http.StatusOK, request{method: "PUT", path: "/v1/admin/prompts/greet/drafts/dash-edit",
		body: jsonBody(t, map[string]any{"source": src, "message": "Warmer greeting\n\nasked by support", "base": base})}).decode(t, &v)
	if v.Version != "draft:dash-edit" || v.Branch != "dash-edit" || !v.Valid || v.Author != "test admin <admin-"+e.keyIDs["admin"]+"@promptvault.invalid>" {
		t.Fatalf("committed draft = %+v", v)
	}
	if got := e.g.Git("show", "dash-edit:prompts/greet.yaml"); got+"\n" != src {
		t.Fatalf("branch file = %q", got)
	}
	first := v.Commit
	// The draft is listed, can be staged and read with a test key.
	e.expect(t, http.StatusOK, request{method: "PUT", path: "/v1/admin/prompts/greet/staging", body: `{"version": "draft:dash-edit"}`})
	// An edit from the old base is a conflict; from the draft's head it
	// lands on top.
	r := e.expect(t, http.StatusConflict, request{method: "PUT", path: "/v1/admin/prompts/greet/drafts/dash-edit",
		body: jsonBody(t, map[string]any{"source": src + "# again\n", "base": base})})
	if !strings.Contains(r.errMessage(), "moved since you opened it") {
		t.Errorf("conflict message: %s", r.body)
	}
	e.expect(t, http.StatusOK, request{method: "PUT", path: "/v1/admin/prompts/greet/drafts/dash-edit",
		body: jsonBody(t, map[string]any{"source": src + "# again\n", "base": first})}).decode(t, &v)
	if e.g.Git("rev-parse", "dash-edit~1") != first {
		t.Fatal("second commit is not on top of the first")
	}
	var audit struct {
		Entries []struct{ Action, Key, Version, Commit string }
	}
	e.expect(t, http.StatusOK, request{method: "GET", path: "/v1/admin/audit"}).decode(t, &audit)
	n := 0
	for _, a := range audit.Entries {
		if a.Action == "draft_commit" && a.Key == "greet" && a.Version == "draft:dash-edit" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("draft_commit rows = %d, want 2: %+v", n, audit.Entries)
	}

	// A brand-new prompt is a draft too.
	e.expect(t, http.StatusOK, request{method: "PUT", path: "/v1/admin/prompts/team/new-one/drafts/new-prompt",
		body: jsonBody(t, map[string]any{"source": gittest.Prompt("New"), "message": "add new-one"})}).decode(t, &v)
	if v.Path != "prompts/team/new-one.yaml" || v.Version != "draft:new-prompt" {
		t.Fatalf("new prompt draft = %+v", v)
	}

	// Merge: a clean merge into main becomes the next version.
	var m struct {
		Merged bool
		Commit string
	}
	e.expect(t, http.StatusOK, request{method: "POST", path: "/v1/admin/prompts/greet/drafts/dash-edit/merge"}).decode(t, &m)
	if !m.Merged || e.g.Git("rev-parse", "main") != m.Commit || e.g.Git("rev-parse", m.Commit+"^2") != e.g.Git("rev-parse", "dash-edit") {
		t.Fatalf("merge = %+v, main at %s", m, e.g.Git("rev-parse", "main"))
	}
	e.expect(t, http.StatusOK, request{method: "GET", path: "/v1/admin/prompts/greet/versions/v2"}).decode(t, &v)
	if !strings.Contains(v.Source, "Hello from the dashboard") {
		t.Fatalf("v2 after merge: %+v", v)
	}
	e.expect(t, http.StatusOK, request{method: "POST", path: "/v1/admin/prompts/greet/promote", body: `{"version": "v2"}`})

	// Not a clean merge: main changed the same file since the branch forked.
	e.g.Git("checkout", "-q", "-b", "clash", "main")
	e.g.Write("prompts/greet.yaml", gittest.Prompt("Branch side"))
	e.g.Commit("branch side")
	e.g.Git("checkout", "-q", "main")
	e.g.Write("prompts/greet.yaml", gittest.Prompt("Main side"))
	e.g.Commit("main side")
	r = e.expect(t, http.StatusConflict, request{method: "POST", path: "/v1/admin/prompts/greet/drafts/clash/merge"})
	if !strings.Contains(r.errMessage(), "checked out") && !strings.Contains(r.errMessage(), "not a clean merge") {
		t.Errorf("clash with main checked out: %s", r.body)
	}
	e.g.Git("checkout", "-q", "scratch")
	r = e.expect(t, http.StatusConflict, request{method: "POST", path: "/v1/admin/prompts/greet/drafts/clash/merge"})
	if !strings.Contains(r.errMessage(), "not a clean merge") {
		t.Errorf("clash: %s", r.body)
	}
	e.expect(t, http.StatusNotFound, request{method: "POST", path: "/v1/admin/prompts/greet/drafts/nope/merge"})
}

func TestPromoteStagingAPI(t *testing.T) {
	e := newTestEnv(t)
	e.expect(t, http.StatusOK, request{method: "PUT", path: "/v1/admin/prompts/support/summarize/staging", body: `{"version": "v1"}`})
	var res struct{ From, To string }
	e.expect(t, http.StatusOK, request{method: "POST", path: "/v1/admin/prompts/support/summarize/promote", body: `{"version": "staging"}`}).decode(t, &res)
	if res.From != "v2" || res.To != "v1" {
		t.Fatalf("promote staging = %+v", res)
	}
	e.expect(t, http.StatusOK, request{method: "PUT", path: "/v1/admin/prompts/greet/staging", body: `{"version": "tone"}`})
	e.expect(t, http.StatusConflict, request{method: "POST", path: "/v1/admin/prompts/greet/promote", body: `{"version": "staging"}`})
}
