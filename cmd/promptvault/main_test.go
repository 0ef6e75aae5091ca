package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/promptvault/promptvault/gitstore/gittest"
)

// result is one CLI invocation's outcome.
type result struct {
	code           int
	stdout, stderr string
}

// pv runs the real CLI in-process.
func pv(t testing.TB, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// ok runs the CLI and fails the test unless it exits 0.
func ok(t testing.TB, args ...string) string {
	t.Helper()
	r := pv(t, args...)
	if r.code != 0 {
		t.Fatalf("promptvault %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs the CLI, expects a non-zero exit and an error mentioning want.
func fails(t testing.TB, want string, args ...string) result {
	t.Helper()
	r := pv(t, args...)
	if r.code == 0 {
		t.Fatalf("promptvault %s: exit 0, want an error\nstdout: %s", strings.Join(args, " "), r.stdout)
	}
	if !strings.Contains(r.stderr+r.stdout, want) {
		t.Fatalf("promptvault %s: output does not mention %q\nstdout: %s\nstderr: %s", strings.Join(args, " "), want, r.stdout, r.stderr)
	}
	return r
}

func decode(t testing.TB, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}

// sample is gittest.Sample: two prompts, three versions of one (the last
// invalid) and a branch draft.
func sample(t testing.TB) *gittest.Repo { return gittest.Sample(t) }

func TestSyncListShowWithRememberedConfig(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	out := ok(t, "sync", "--data", data, "--repo", g.Dir)
	if !strings.Contains(out, "3 new commits, 4 new versions (1 invalid)") || !strings.Contains(out, "greet draft:tone") {
		t.Fatalf("sync output:\n%s", out)
	}
	// The data directory remembers the repository: only --data from now on.
	var prompts struct {
		Prompts []struct {
			Key, Newest string
			Versions    int
			Drafts      int
		}
	}
	decode(t, ok(t, "prompts", "--data", data, "--json"), &prompts)
	if len(prompts.Prompts) != 2 || prompts.Prompts[1].Key != "support/summarize" || prompts.Prompts[1].Versions != 3 || prompts.Prompts[0].Drafts != 1 {
		t.Fatalf("prompts = %+v", prompts)
	}
	var vs struct {
		Versions []struct {
			Version string
			Number  *int
			Author  string
			Valid   bool
		}
	}
	decode(t, ok(t, "versions", "support/summarize", "--data", data, "--json"), &vs)
	if len(vs.Versions) != 3 || vs.Versions[0].Version != "v3" || vs.Versions[0].Valid || *vs.Versions[2].Number != 1 {
		t.Fatalf("versions = %+v", vs)
	}
	decode(t, ok(t, "versions", "support/summarize", "--data", data, "--json", "--search", "grace"), &vs)
	if len(vs.Versions) != 1 || vs.Versions[0].Version != "v2" {
		t.Fatalf("search grace = %+v", vs)
	}
	decode(t, ok(t, "versions", "greet", "--data", data, "--json"), &vs)
	if vs.Versions[0].Version != "draft:tone" || vs.Versions[0].Number != nil {
		t.Fatalf("greet versions = %+v", vs)
	}

	text := ok(t, "show", "support/summarize", "v2", "--data", data)
	for _, want := range []string{"version:  v2", "Grace Hopper <grace@example.com>", "Summarize briefly {{ input }}", "valid:    yes"} {
		if !strings.Contains(text, want) {
			t.Errorf("show v2 lacks %q:\n%s", want, text)
		}
	}
	text = ok(t, "show", "support/summarize", "--data", data)
	if !strings.Contains(text, "version:  v3") || !strings.Contains(text, "prompts/support/summarize.yaml:2:14: ") {
		t.Errorf("show (newest) should be the invalid v3 with its problem at line:col:\n%s", text)
	}
	var shown struct {
		Version, Source string
	}
	decode(t, ok(t, "show", "greet", "draft:tone", "--data", data, "--json"), &shown)
	if shown.Version != "draft:tone" || !strings.Contains(shown.Source, "Hi there") {
		t.Errorf("show draft = %+v", shown)
	}

	fails(t, "not found", "show", "nope", "--data", data)
	fails(t, "not found", "show", "greet", "v9", "--data", data)
	fails(t, "vN or draft:NAME", "show", "greet", "latest", "--data", data)
	fails(t, "key", "versions", "Bad/Key", "--data", data)
	fails(t, "cannot switch", "sync", "--data", data, "--branch", "tone")
	fails(t, "no repository configured", "sync", "--data", filepath.Join(t.TempDir(), "empty"))
	fails(t, "unknown command", "frobnicate")
}

func TestEnvironmentFallbacks(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	t.Setenv("PV_DATA", data)
	t.Setenv("PV_REPO", g.Dir)
	ok(t, "sync")
	if out := ok(t, "prompts"); !strings.Contains(out, "support/summarize") {
		t.Fatalf("PV_DATA not used:\n%s", out)
	}
	// A flag wins over the environment.
	other := filepath.Join(t.TempDir(), "other")
	ok(t, "sync", "--data", other)
	if _, err := os.Stat(filepath.Join(other, "index.db")); err != nil {
		t.Errorf("--data did not win over PV_DATA: %v", err)
	}
	t.Setenv("PV_JSON", "maybe")
	fails(t, "PV_JSON", "prompts")
	t.Setenv("PV_JSON", "true")
	if out := ok(t, "prompts"); !strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Errorf("PV_JSON=true did not give JSON: %s", out)
	}
}

func TestValidate(t *testing.T) {
	g := gittest.New(t)
	g.Write("prompts/good.yaml", gittest.Prompt("fine"))
	g.Write("prompts/team/bad.yaml", "template: hi\ntemprature: 0.5\nmax_tokens: -1\n")
	g.Write("prompts/Upper.yaml", gittest.Prompt("bad key"))
	g.Write("prompts/notes.txt", "ignored")
	big := filepath.Join(g.Dir, "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("# x\n"), 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(g.Dir, "prompts", "link.yaml")); err != nil {
		t.Fatal(err)
	}

	r := pv(t, "validate", filepath.Join(g.Dir, "prompts"))
	if r.code != 1 {
		t.Fatalf("validate exit %d, want 1:\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`prompts/team/bad.yaml:2:1: .*temprature`),
		regexp.MustCompile(`prompts/team/bad.yaml:3:13: .*max_tokens`),
		regexp.MustCompile(`prompts/Upper.yaml:0:0: .*key`),
		regexp.MustCompile(`prompts/link.yaml:0:0: not a regular file`),
		regexp.MustCompile(`4 files checked, 3 invalid`),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("validate output lacks %s:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "root:") {
		t.Error("validate followed a symlink out of the repository")
	}

	var rep struct {
		Valid bool
		Files []struct {
			Path, Key string
			Valid     bool
			Problems  []struct {
				Line, Column int
				Message      string
			}
		}
	}
	r = pv(t, "validate", "--json", filepath.Join(g.Dir, "prompts", "good.yaml"), big)
	decode(t, r.stdout, &rep)
	if r.code != 1 || rep.Valid || len(rep.Files) != 2 || !rep.Files[0].Valid || rep.Files[0].Key != "good" ||
		!strings.Contains(rep.Files[1].Problems[0].Message, "limit") {
		t.Fatalf("validate --json = %d %+v", r.code, rep)
	}

	// Without PATH: the prompts directory of the working tree around us.
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	os.Remove(filepath.Join(g.Dir, "prompts", "link.yaml"))
	os.Remove(filepath.Join(g.Dir, "prompts", "Upper.yaml"))
	os.Remove(filepath.Join(g.Dir, "prompts", "team", "bad.yaml"))
	if err := os.Chdir(filepath.Join(g.Dir, "prompts", "team")); err != nil {
		t.Fatal(err)
	}
	if out := ok(t, "validate"); !strings.Contains(out, "1 file checked, 0 invalid") {
		t.Errorf("validate with no args:\n%s", out)
	}
	fails(t, "no such file", "validate", "does-not-exist.yaml")
}

func TestPointerCommands(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "sync", "--data", data, "--repo", g.Dir)
	d := []string{"--data", data}
	args := func(a ...string) []string { return append(a, d...) }

	if out := ok(t, args("rollback", "support/summarize", "v1")...); !strings.Contains(out, "v2 -> v1") {
		t.Errorf("rollback: %s", out)
	}
	fails(t, "not older", args("rollback", "support/summarize", "v2")...)
	fails(t, "failed validation", args("promote", "support/summarize", "v3")...)
	ok(t, args("promote", "support/summarize", "v2")...)
	if out := ok(t, args("promote", "support/summarize", "v2")...); !strings.Contains(out, "unchanged") {
		t.Errorf("promote again: %s", out)
	}
	ok(t, args("staging", "set", "greet", "draft:tone")...)
	fails(t, "published version", args("drafts", "delete", "greet", "v1")...)
	ok(t, args("settings", "set", "staging", "off")...)
	fails(t, "staging is disabled", args("staging", "clear", "greet")...)
	fails(t, "want on or off", args("settings", "set", "staging", "maybe")...)
	var st map[string]bool
	decode(t, ok(t, args("settings", "--json")...), &st)
	if st["staging_enabled"] {
		t.Errorf("settings = %v", st)
	}
	ok(t, args("settings", "set", "staging", "on")...)
	ok(t, args("drafts", "delete", "greet", "tone")...)

	var log struct {
		Entries []struct {
			Seq                         int64
			Action, Key, Version, Actor string
		}
		NextBefore string `json:"next_before"`
	}
	decode(t, ok(t, args("audit", "--json", "--limit", "3")...), &log)
	if len(log.Entries) != 3 || log.Entries[0].Action != "draft_delete" || log.Entries[1].Action != "staging_clear" ||
		!strings.HasPrefix(log.Entries[0].Actor, "cli") || log.NextBefore == "" {
		t.Fatalf("audit = %+v", log)
	}
	decode(t, ok(t, args("audit", "--json", "--before", log.NextBefore)...), &log)
	if last := log.Entries[len(log.Entries)-1]; last.Action != "bootstrap" {
		t.Errorf("oldest entry = %+v", last)
	}
	fails(t, "--limit", args("audit", "--limit", "0")...)

	var key struct{ ID, Env, Key, Prefix string }
	decode(t, ok(t, args("keys", "create", "--env", "test", "--name", "ci", "--json")...), &key)
	if !regexp.MustCompile(`^pv_test_[0-9A-Za-z]{32,}$`).MatchString(key.Key) || key.Env != "test" {
		t.Fatalf("key = %+v", key)
	}
	list := ok(t, args("keys", "list")...)
	if strings.Contains(list, key.Key) || !strings.Contains(list, key.ID) {
		t.Errorf("keys list shows the key or misses its id:\n%s", list)
	}
	fails(t, "want live, test or admin", args("keys", "create", "--env", "root")...)
	fails(t, "required flag", args("keys", "create")...)
	ok(t, args("keys", "revoke", key.ID)...)
	fails(t, "not found", args("keys", "revoke", "key_nope")...)
}

func TestReindexKeepsNumbersAndPointers(t *testing.T) {
	g := sample(t)
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "sync", "--data", data, "--repo", g.Dir)
	ok(t, "rollback", "support/summarize", "v1", "--data", data)
	before := ok(t, "versions", "support/summarize", "--json", "--data", data)
	var res struct {
		Commits  int
		Versions []struct{ Key, Version string }
	}
	decode(t, ok(t, "reindex", "--json", "--data", data), &res)
	if res.Commits != 3 || len(res.Versions) != 4 {
		t.Errorf("reindex replayed %d commits, %d versions; want 3, 4", res.Commits, len(res.Versions))
	}
	if after := ok(t, "versions", "support/summarize", "--json", "--data", data); after != before {
		t.Errorf("versions changed across reindex:\n%s\nvs\n%s", before, after)
	}
	var log struct {
		Entries []struct{ Action, Version string }
	}
	decode(t, ok(t, "audit", "--json", "--limit", "1", "--data", data), &log)
	if log.Entries[0].Action != "rollback" {
		t.Errorf("reindex wrote to the audit log: %+v", log.Entries[0])
	}
	if out := ok(t, "show", "support/summarize", "v1", "--data", data); !strings.Contains(out, "Summarize {{ input }}") {
		t.Errorf("v1 source after reindex:\n%s", out)
	}
}
