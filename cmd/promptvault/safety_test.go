package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/promptvault/promptvault/gitstore/gittest"
)

// auditActions returns the data directory's audit log, newest first.
func auditLog(t *testing.T, data string) []struct{ Action, Key, Version, Detail string } {
	t.Helper()
	var log struct {
		Entries []struct{ Action, Key, Version, Detail string }
	}
	decode(t, ok(t, "audit", "--data", data, "--json", "--limit", "1000"), &log)
	return log.Entries
}

func TestSwitchRepoNeedsFlagAndIsAudited(t *testing.T) {
	a, b := sample(t), gittest.New(t)
	b.Write("prompts/other.yaml", gittest.Prompt("Other"))
	b.Commit("other repository")
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "sync", "--data", data, "--repo", a.Dir)

	r := fails(t, "--switch-repo", "sync", "--data", data, "--repo", b.Dir)
	if !strings.Contains(r.stderr, a.Dir) || !strings.Contains(r.stderr, b.Dir) {
		t.Errorf("refusal should name both repositories:\n%s", r.stderr)
	}
	fails(t, "--switch-repo", "serve", "--data", data, "--repo", b.Dir, "--addr", "127.0.0.1:0")
	for _, e := range auditLog(t, data) {
		if e.Action == "repo_switch" {
			t.Fatalf("refused switch was audited: %+v", e)
		}
	}
	// Still the first repository.
	if out := ok(t, "prompts", "--data", data); strings.Contains(out, "other") || !strings.Contains(out, "greet") {
		t.Fatalf("prompts after a refused switch:\n%s", out)
	}

	ok(t, "sync", "--data", data, "--repo", b.Dir, "--switch-repo")
	log := auditLog(t, data)
	found := false
	for _, e := range log {
		if e.Action == "repo_switch" {
			found = true
			if e.Detail != "from "+a.Dir+" to "+b.Dir {
				t.Errorf("repo_switch detail = %q", e.Detail)
			}
		}
	}
	if !found {
		t.Fatalf("no repo_switch audit row: %+v", log)
	}
	// The same repository again needs no flag.
	ok(t, "sync", "--data", data, "--repo", b.Dir)
}

func TestCommandsRefuseMissingDataDir(t *testing.T) {
	data := filepath.Join(t.TempDir(), "typo")
	for _, args := range [][]string{
		{"prompts"}, {"versions", "greet"}, {"show", "greet"}, {"diff", "greet", "v1", "v2"},
		{"promote", "greet", "v1"}, {"rollback", "greet", "v1"}, {"staging", "set", "greet", "v1"},
		{"staging", "clear", "greet"}, {"drafts", "delete", "greet", "x"}, {"settings"},
		{"settings", "set", "staging", "off"}, {"audit"}, {"keys", "list"}, {"keys", "create", "--env", "live"},
		{"keys", "revoke", "k1"}, {"reindex"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			fails(t, "has no index", append(args, "--data", data)...)
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Fatalf("%s created the data directory (stat: %v)", args[0], err)
			}
		})
	}
}

func TestSyncPrintsOneSummary(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	out := ok(t, "sync", "--data", data, "--repo", g.Dir)
	for _, want := range []string{
		"main at ", "3 new commits, 4 new versions (1 invalid), 1 draft updated",
		"live: greet v1, support/summarize v2 (first sync",
		"invalid: support/summarize v3 (see 'promptvault --data " + data + " show support/summarize v3')",
		"drafts: greet draft:tone",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("first sync lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "  + ") {
		t.Errorf("versions listed without --verbose:\n%s", out)
	}

	// A commit changing two prompts, one invalid: neither goes live, and
	// sync says which and why.
	g.Write("prompts/greet.yaml", gittest.Prompt("Hello again"))
	g.Write("prompts/support/summarize.yaml", "template: hi\ntop_p: 9\n")
	g.Commit("two prompts, one broken")
	out = ok(t, "sync", "--data", data)
	if !strings.Contains(out, "1 new commit, 2 new versions (1 invalid)") {
		t.Errorf("grammar or counts:\n%s", out)
	}
	if !strings.Contains(out, "not promoted: greet v2, support/summarize v4 (commit ") || !strings.Contains(out, "invalid support/summarize v4") {
		t.Errorf("refusal not explained:\n%s", out)
	}
	// Fixing only the broken file promotes it; greet v2 stays behind and
	// sync keeps saying so.
	g.Write("prompts/support/summarize.yaml", gittest.Prompt("Fixed"))
	g.Commit("fix summarize")
	out = ok(t, "sync", "--data", data, "--verbose")
	for _, want := range []string{
		"live: support/summarize v5\n",
		"not live yet: greet v2 (live v1); to promote: promptvault --data " + data + " promote greet v2",
		"  + support/summarize v5",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("after the fix, sync lacks %q:\n%s", want, out)
		}
	}
	var sum struct {
		Promoted []struct{ Key, Version, Action string }
		NotLive  []struct{ Key, Version, Live string } `json:"not_live"`
	}
	decode(t, ok(t, "sync", "--data", data, "--json"), &sum)
	if len(sum.NotLive) != 1 || sum.NotLive[0].Key != "greet" || sum.NotLive[0].Version != "v2" || len(sum.Promoted) != 0 {
		t.Errorf("sync --json summary = %+v", sum)
	}
}

func TestFirstSyncOfLongHistoryIsShort(t *testing.T) {
	g := gittest.New(t)
	for i := range 60 {
		g.Write(fmt.Sprintf("prompts/p%02d.yaml", i), gittest.Prompt(fmt.Sprintf("Prompt %d", i)))
		g.Commit(fmt.Sprintf("add p%02d", i))
	}
	data := filepath.Join(t.TempDir(), "data")
	out := ok(t, "sync", "--data", data, "--repo", g.Dir)
	if n := strings.Count(out, "\n"); n > 3 {
		t.Errorf("first sync of 60 commits printed %d lines:\n%s", n, out)
	}
	if !strings.Contains(out, "60 new commits, 60 new versions") || !strings.Contains(out, "and 55 more (first sync") {
		t.Errorf("summary:\n%s", out)
	}
	if out := ok(t, "sync", "--data", data, "--verbose", "--json"); !strings.Contains(out, `"commits": 0`) {
		t.Errorf("second sync: %s", out)
	}
}

func TestListingsMarkLiveAndStaging(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "sync", "--data", data, "--repo", g.Dir)
	// A bare draft name works as drafts delete takes it.
	ok(t, "staging", "set", "greet", "tone", "--data", data)
	ok(t, "staging", "set", "support/summarize", "1", "--data", data)

	out := ok(t, "prompts", "--data", data)
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "KEY") || !strings.Contains(lines[0], "LIVE") || !strings.Contains(lines[0], "STAGING") {
		t.Fatalf("prompts header:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[0] != "greet" || f[1] != "v1" || f[2] != "draft:tone" {
		t.Errorf("greet row = %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[0] != "support/summarize" || f[1] != "v2" || f[2] != "v1" {
		t.Errorf("summarize row = %q", lines[2])
	}

	out = ok(t, "versions", "support/summarize", "--data", data)
	for _, want := range []string{"v2       live", "v1       staging", "v3       -"} {
		if !strings.Contains(out, want) {
			t.Errorf("versions lacks %q:\n%s", want, out)
		}
	}
	var vs struct {
		Live, Staging string
		Versions      []struct {
			Version  string
			Pointers []string
		}
	}
	decode(t, ok(t, "versions", "greet", "--data", data, "--json"), &vs)
	if vs.Live != "v1" || vs.Staging != "draft:tone" || vs.Versions[0].Version != "draft:tone" || fmt.Sprint(vs.Versions[0].Pointers) != "[staging]" {
		t.Errorf("versions --json = %+v", vs)
	}
	if out := ok(t, "show", "support/summarize", "v2", "--data", data); !strings.Contains(out, "pointers: live (live v2, staging v1)") {
		t.Errorf("show v2:\n%s", out)
	}

	// promote KEY staging: clone staging's published version to live.
	out = ok(t, "promote", "support/summarize", "staging", "--data", data)
	if !strings.Contains(out, "v2 -> v1") {
		t.Errorf("promote staging: %s", out)
	}
	fails(t, "goes live by merging", "promote", "greet", "staging", "--data", data)
	ok(t, "staging", "clear", "greet", "--data", data)
	fails(t, "no staging version", "promote", "greet", "staging", "--data", data)
}

func TestVersionLabelMessages(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "sync", "--data", data, "--repo", g.Dir)
	fails(t, "versions are numbered from v1", "show", "greet", "0", "--data", data)
	fails(t, "versions are numbered from v1", "show", "greet", "v0", "--data", data)
}

func TestJSONErrorsAreJSON(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	for _, tt := range []struct {
		args []string
		code string
	}{
		{[]string{"prompts", "--data", missing, "--json"}, "not_found"},
		{[]string{"show", "bad key!", "--json"}, "validation_failed"},
		{[]string{"audit", "--limit", "0", "--json"}, "error"},
	} {
		r := pv(t, tt.args...)
		var body struct {
			Error struct{ Code, Message string }
		}
		if r.code == 0 || json.Unmarshal([]byte(r.stderr), &body) != nil || body.Error.Code != tt.code || body.Error.Message == "" {
			t.Errorf("%v: exit %d, stderr %q; want a JSON error with code %s", tt.args, r.code, r.stderr, tt.code)
		}
	}
	t.Setenv("PV_JSON", "true")
	r := pv(t, "prompts", "--data", missing)
	if !strings.HasPrefix(r.stderr, `{"error":`) {
		t.Errorf("PV_JSON=true error: %q", r.stderr)
	}
}

func TestHelpListsOnlyTheCommandsFlags(t *testing.T) {
	for _, tt := range []struct {
		cmd           []string
		want, notWant []string
	}{
		{[]string{"prompts"}, []string{"--data", "--json"}, []string{"--github-token", "--addr", "--repo", "--webhook-secret", "--render-timeout", "--auto-promote"}},
		{[]string{"keys", "create"}, []string{"--env", "--name"}, []string{"--github-app-id", "--branch", "--addr"}},
		{[]string{"sync"}, []string{"--repo", "--switch-repo", "--verbose", "--github-token"}, []string{"--addr", "--render-timeout", "--webhook-secret"}},
		{[]string{"serve"}, []string{"--addr", "--webhook-secret", "--github-app-id", "--render-timeout", "--repo"}, nil},
		{[]string{"demo"}, []string{"--addr", "--no-serve"}, []string{"--github-token", "--repo"}},
	} {
		out := ok(t, append(tt.cmd, "--help")...)
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v --help lacks %s", tt.cmd, w)
			}
		}
		for _, w := range tt.notWant {
			if strings.Contains(out, w) {
				t.Errorf("%v --help lists %s", tt.cmd, w)
			}
		}
	}
}

func TestDemoNoServeSaysSo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	out := ok(t, "demo", "--no-serve", "--dir", dir)
	if strings.Contains(out, "Serving on") || strings.Contains(out, "Ctrl-C") {
		t.Errorf("demo --no-serve claims to serve:\n%s", out)
	}
	if !strings.Contains(out, "Not serving (--no-serve)") || !strings.Contains(out, "promptvault --data "+filepath.Join(dir, "data")+" serve") {
		t.Errorf("demo --no-serve should say how to serve:\n%s", out)
	}
}

func TestArchiveHasItsOwnAuditAction(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "sync", "--data", data, "--repo", g.Dir)
	ok(t, "staging", "set", "greet", "v1", "--data", data)
	g.Remove("prompts/greet.yaml")
	g.Commit("drop greet")
	ok(t, "sync", "--data", data)
	var archive bool
	for _, e := range auditLog(t, data) {
		if e.Action == "archive" && e.Key == "greet" && e.Version == "archived" {
			archive = true
		}
		if e.Action == "promote" && e.Version == "archived" {
			t.Errorf("archiving audited as promote: %+v", e)
		}
		if strings.TrimSpace(e.Detail) == "from" {
			t.Errorf("audit detail %q names nothing: %+v", e.Detail, e)
		}
	}
	if !archive {
		t.Errorf("no archive audit row: %+v", auditLog(t, data))
	}
}
