package index_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/promptvault/promptvault/index"
)

// dump renders the derived tables of an index file, for comparing two
// indexes row by row.
func dump(t testing.TB, idx *index.DB) string {
	t.Helper()
	db := index.Raw(idx)
	var b strings.Builder
	for _, q := range []string{
		"SELECT key, path, last_number, archived FROM prompts ORDER BY key",
		"SELECT key, number, commit_sha, path, blob_sha, sha256, size, message, author, committed_at, valid, problems FROM versions ORDER BY key, number",
		"SELECT key, commit_sha, path, message, author, committed_at FROM deletions ORDER BY key, commit_sha",
		"SELECT commit_sha, path, problem FROM skipped_files ORDER BY path, commit_sha",
		"SELECT key, name, source, commit_sha, base_sha, path, blob_sha, sha256, valid, problems FROM drafts ORDER BY key, name",
		"SELECT sha FROM commits ORDER BY seq",
		"SELECT blob_sha, data FROM contents ORDER BY blob_sha",
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		fmt.Fprintf(&b, "-- %s\n", q)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&b, vals...)
		}
		rows.Close()
	}
	return b.String()
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestSyncNumbersVersionsInCommitOrder(t *testing.T) {
	e := newEnv(t)
	e.g.Write("prompts/support/summarize.yaml", prompt("Summarize"))
	e.g.Write("prompts/greet.yaml", prompt("Hello"))
	e.g.Write("README.md", "not a prompt")
	c1 := e.g.Commit("Add summarize and greet")
	e.g.Write("prompts/support/summarize.yaml", prompt("Summarize briefly"))
	e.g.Write("docs/notes.yaml", prompt("outside the prompts dir"))
	c2 := e.g.CommitAs("Grace Hopper", "grace@example.com", "Shorter summaries\n\nBody text.")
	e.g.Write("prompts/notes.txt", "ignored: not yaml")
	e.g.Commit("Add a text file")

	res := e.sync(t)
	if res.Commits != 3 || len(res.Versions) != 3 {
		t.Fatalf("sync: %d commits, %d versions; want 3, 3: %+v", res.Commits, len(res.Versions), res.Versions)
	}
	vs := e.versions(t, "support/summarize")
	if len(vs) != 2 || vs[0].Label != "v2" || vs[1].Label != "v1" {
		t.Fatalf("versions newest first = %+v", vs)
	}
	v2, v1 := vs[0], vs[1]
	if v1.Commit != c1 || v2.Commit != c2 {
		t.Errorf("commits = %s, %s; want %s, %s", v1.Commit, v2.Commit, c1, c2)
	}
	if v2.SHA256 != sum(prompt("Summarize briefly")) {
		t.Errorf("sha256 = %s, want the file's", v2.SHA256)
	}
	if v2.Author != "Grace Hopper <grace@example.com>" || v2.Message != "Shorter summaries\n\nBody text." {
		t.Errorf("author %q message %q", v2.Author, v2.Message)
	}
	if v2.CreatedAt != "2026-01-02T03:06:05Z" {
		t.Errorf("created_at = %s", v2.CreatedAt)
	}
	if !v2.Valid || len(v2.Problems) != 0 || v2.Path != "prompts/support/summarize.yaml" {
		t.Errorf("v2 = %+v", v2)
	}
	blob, err := e.mirror.Blob(v2.BlobSHA)
	if err != nil || string(blob) != prompt("Summarize briefly") {
		t.Errorf("blob %s = %q, %v", v2.BlobSHA, blob, err)
	}
	ps := e.prompts(t)
	if len(ps) != 2 || ps["greet"].Newest != "v1" {
		t.Errorf("prompts = %+v", ps)
	}
}

func TestSyncIsIncrementalAndIdempotent(t *testing.T) {
	e := newEnv(t)
	e.g.Write("prompts/a.yaml", prompt("one"))
	e.g.Commit("one")
	e.sync(t)
	before := dump(t, e.db)
	if res := e.sync(t); res.Commits != 0 || len(res.Versions) != 0 {
		t.Fatalf("second sync changed something: %+v", res)
	}
	if after := dump(t, e.db); after != before {
		t.Fatalf("second sync changed rows:\n%s\nvs\n%s", before, after)
	}
	e.g.Write("prompts/a.yaml", prompt("two"))
	e.g.Commit("two")
	res := e.sync(t)
	if res.Commits != 1 || len(res.Versions) != 1 || res.Versions[0].Label != "v2" {
		t.Fatalf("incremental sync = %+v", res)
	}
}

func TestSyncMergeCommitCountsAgainstFirstParent(t *testing.T) {
	e := newEnv(t)
	e.g.Write("prompts/a.yaml", prompt("a1"))
	e.g.Write("prompts/b.yaml", prompt("b1"))
	e.g.Commit("base")
	e.g.Git("checkout", "-q", "-b", "feature")
	e.g.Write("prompts/a.yaml", prompt("a2"))
	e.g.Commit("feature: a2")
	e.g.Write("prompts/a.yaml", prompt("a3"))
	e.g.Commit("feature: a3")
	e.g.Git("checkout", "-q", "main")
	e.g.Write("prompts/b.yaml", prompt("b2"))
	e.g.Commit("main: b2")
	e.g.Clock = e.g.Clock.Add(60e9)
	e.g.Git("merge", "-q", "--no-ff", "-m", "Merge feature", "feature")
	merge := e.g.Head()
	e.g.Git("branch", "-q", "-D", "feature")

	e.sync(t)
	a := e.versions(t, "a")
	if len(a) != 2 || a[0].Commit != merge || a[0].Message != "Merge feature" {
		t.Fatalf("a's versions = %+v; want v1 and v2 at the merge commit (feature commits are not first-parent)", a)
	}
	if b := e.versions(t, "b"); len(b) != 2 {
		t.Fatalf("b's versions = %d, want 2", len(b))
	}
}

func TestSyncRenameDeleteAndNestedFolders(t *testing.T) {
	e := newEnv(t)
	e.g.Write("prompts/team/deep/x.yaml", prompt("x"))
	e.g.Write("prompts/old.yaml", prompt("old"))
	e.g.Write("prompts/gone.yml", prompt("gone"))
	e.g.Commit("add")
	e.g.Git("mv", "prompts/old.yaml", "prompts/new.yaml")
	e.g.Commit("rename old to new")
	e.g.Remove("prompts/gone.yml")
	e.g.Commit("delete gone")
	res := e.sync(t)
	ps := e.prompts(t)
	if !ps["old"].Archived || ps["new"].Archived || !ps["gone"].Archived || ps["team/deep/x"].Archived {
		t.Fatalf("archive marks wrong: %+v", ps)
	}
	if len(res.Archived) != 2 {
		t.Errorf("archived = %v", res.Archived)
	}
	if vs := e.versions(t, "old"); len(vs) != 1 {
		t.Errorf("history of a deleted prompt must stay: %+v", vs)
	}
	if vs := e.versions(t, "new"); len(vs) != 1 || vs[0].Label != "v1" {
		t.Errorf("a rename is a new prompt: %+v", vs)
	}
	// Re-adding an archived prompt continues its numbering.
	e.g.Write("prompts/gone.yml", prompt("back"))
	e.g.Commit("restore gone")
	e.sync(t)
	if vs := e.versions(t, "gone"); len(vs) != 2 || e.prompts(t)["gone"].Archived {
		t.Errorf("restored prompt: %+v archived=%v", vs, e.prompts(t)["gone"].Archived)
	}
}

func TestSyncRecordsBadFilesWithoutAborting(t *testing.T) {
	bomb := "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		bomb += fmt.Sprintf("%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", n, n, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = n
	}
	bomb += "template: \"{{ x }}\"\nconfig: *i\n"
	e := newEnv(t)
	e.g.Write("prompts/good.yaml", prompt("fine"))
	e.g.Write("prompts/malformed.yaml", "template: [unclosed\n")
	e.g.Write("prompts/unknown.yaml", "template: hi\ntemprature: 0.5\n")
	e.g.Write("prompts/types.yaml", "template: hi\nmax_tokens: 1.5\ntemperature: hot\n")
	e.g.Write("prompts/range.yaml", "template: hi\ntemperature: 3\ntop_p: -1\n")
	e.g.Write("prompts/bomb.yaml", bomb)
	e.g.Write("prompts/huge.yaml", "template: |\n"+strings.Repeat("  lorem ipsum dolor sit amet\n", 10<<20/28))
	e.g.Write("prompts/latin1.yaml", "template: caf\xe9\n")
	e.g.Write("prompts/Upper.yaml", prompt("bad key"))
	e.g.Write("prompts/"+strings.Repeat("k", 129)+".yaml", prompt("long key"))
	e.g.Commit("a mix of good and bad files")
	res := e.sync(t)

	ps := e.prompts(t)
	if _, ok := ps["Upper"]; ok {
		t.Error("a file with an invalid key was indexed as a prompt")
	}
	if len(res.Skipped) != 2 {
		t.Errorf("skipped = %+v, want the two bad keys", res.Skipped)
	}
	if v := e.version(t, "good", "v1"); !v.Valid {
		t.Errorf("good file invalid: %+v", v.Problems)
	}
	for key, want := range map[string]string{
		"malformed": "prompts/malformed.yaml:",
		"unknown":   "temprature",
		"types":     "max_tokens",
		"range":     "temperature",
		"bomb":      "alias",
		"huge":      "limit",
		"latin1":    "utf-8",
	} {
		v := e.version(t, key, "v1")
		if v.Valid || len(v.Problems) == 0 {
			t.Errorf("%s: valid=%v problems=%v", key, v.Valid, v.Problems)
			continue
		}
		var all []string
		for _, p := range v.Problems {
			all = append(all, p.String())
		}
		if !strings.Contains(strings.ToLower(strings.Join(all, "\n")), strings.ToLower(want)) {
			t.Errorf("%s: problems %q do not mention %q", key, all, want)
		}
		if v.Problems[0].Path != v.Path {
			t.Errorf("%s: problem path %q, want %q", key, v.Problems[0].Path, v.Path)
		}
	}
	if v := e.version(t, "types", "v1"); len(v.Problems) < 2 {
		t.Errorf("types: want every problem reported, got %v", v.Problems)
	}
}

func TestSyncResumesAfterACrashMidway(t *testing.T) {
	build := func(e *testEnv) {
		for i := 1; i <= 6; i++ {
			e.g.Write(fmt.Sprintf("prompts/p%d.yaml", i%3), prompt(fmt.Sprint("rev", i)))
			e.g.Commit(fmt.Sprint("commit ", i))
		}
	}
	clean := newEnv(t)
	build(clean)
	clean.sync(t)

	e := newEnv(t)
	e.g = clean.g // same repository, fresh index
	e.cfg.BatchSize = 2
	crash := errors.New("killed")
	n := 0
	e.cfg.AfterCommit = func(ctx context.Context, tx *index.Tx, c index.Indexed) error {
		if n++; n == 4 {
			return crash
		}
		return nil
	}
	if _, err := e.trySync(t); !errors.Is(err, crash) {
		t.Fatalf("sync error = %v, want the injected crash", err)
	}
	var done int
	for _, v := range []string{"p0", "p1", "p2"} {
		done += len(e.versions(t, v))
	}
	if done != 2 {
		t.Fatalf("after the crash %d versions are indexed; want the first batch (2)", done)
	}
	e.cfg.AfterCommit = nil
	res := e.sync(t)
	if res.Commits != 4 {
		t.Errorf("resumed sync indexed %d commits, want the remaining 4", res.Commits)
	}
	if got, want := dumpNoDrafts(t, e.db), dumpNoDrafts(t, clean.db); got != want {
		t.Errorf("resumed index differs from a clean one:\n%s\nvs\n%s", got, want)
	}
}

func dumpNoDrafts(t testing.TB, db *index.DB) string { return dump(t, db) }

func TestForcePushKeepsPublishedVersionsAndReindexIsIdentical(t *testing.T) {
	e := newEnv(t)
	e.g.Write("prompts/a.yaml", prompt("a1"))
	base := e.g.Commit("a1")
	e.g.Write("prompts/a.yaml", prompt("a2 (to be force-pushed away)"))
	e.g.Commit("a2")
	e.sync(t)
	v2 := e.version(t, "a", "v2")

	e.g.Git("reset", "-q", "--hard", base)
	e.g.Write("prompts/b.yaml", prompt("b1"))
	e.g.Commit("b1 after force push")
	e.g.Git("gc", "-q", "--prune=now") // the user's repo no longer has a2 at all
	e.sync(t)

	if got := e.version(t, "a", "v2"); got.Commit != v2.Commit || got.SHA256 != v2.SHA256 {
		t.Fatalf("published v2 changed after force push: %+v", got)
	}
	if blob, err := e.mirror.Blob(v2.BlobSHA); err != nil || string(blob) != prompt("a2 (to be force-pushed away)") {
		t.Fatalf("v2's content not readable after force push: %q, %v", blob, err)
	}
	if vs := e.versions(t, "b"); len(vs) != 1 {
		t.Fatalf("b = %+v", vs)
	}
	e.g.Write("prompts/a.yaml", prompt("a3"))
	e.g.Commit("a3")
	e.sync(t)
	if vs := e.versions(t, "a"); len(vs) != 3 || vs[0].Label != "v3" {
		t.Fatalf("numbering continues after a force push: %+v", vs)
	}

	before := dump(t, e.db)
	if _, err := e.db.Reindex(context.Background(), e.mirror, e.cfg); err != nil {
		t.Fatal(err)
	}
	if after := dump(t, e.db); after != before {
		t.Fatalf("reindex changed rows:\n%s\nvs\n%s", before, after)
	}
}

func TestBranchDrafts(t *testing.T) {
	e := newEnv(t)
	e.g.Write("prompts/a.yaml", prompt("a1"))
	e.g.Write("prompts/b.yaml", prompt("b1"))
	e.g.Commit("base")
	e.g.Git("checkout", "-q", "-b", "feature/tone")
	e.g.Write("prompts/a.yaml", prompt("a draft"))
	e.g.Write("prompts/new.yaml", prompt("brand new"))
	d1 := e.g.Commit("draft a and new")
	e.g.Git("checkout", "-q", "main")
	e.g.Write("prompts/b.yaml", prompt("b2 on main"))
	e.g.Commit("b2")
	res := e.sync(t)
	if len(res.Drafts) != 2 {
		t.Fatalf("drafts = %+v, want a and new (not b, which only main changed)", res.Drafts)
	}
	d := e.version(t, "a", "draft:feature/tone")
	if d.Commit != d1 || !d.Draft || d.SHA256 != sum(prompt("a draft")) {
		t.Fatalf("draft = %+v", d)
	}
	if ps := e.prompts(t); ps["new"].Versions != 0 || ps["new"].Drafts != 1 {
		t.Errorf("a prompt that only exists in a draft: %+v", ps["new"])
	}

	// A new push rewrites the draft; a prompt no longer changed loses it.
	e.g.Git("checkout", "-q", "feature/tone")
	e.g.Write("prompts/a.yaml", prompt("a draft, take two"))
	e.g.Remove("prompts/new.yaml")
	d2 := e.g.Commit("rework")
	e.g.Git("checkout", "-q", "main")
	res = e.sync(t)
	if d := e.version(t, "a", "draft:feature/tone"); d.Commit != d2 || d.SHA256 != sum(prompt("a draft, take two")) {
		t.Fatalf("draft not rewritten: %+v", d)
	}
	if len(res.DraftsEnded) != 1 || res.DraftsEnded[0].Key != "new" {
		t.Errorf("ended = %+v", res.DraftsEnded)
	}
	// A deleted branch ends its drafts.
	e.g.Git("branch", "-q", "-D", "feature/tone")
	res = e.sync(t)
	if len(res.DraftsEnded) != 1 {
		t.Errorf("deleting the branch ended %+v", res.DraftsEnded)
	}
	if ps := e.prompts(t); ps["a"].Drafts != 0 {
		t.Errorf("drafts left: %+v", ps["a"])
	}
}

func TestVersionSearch(t *testing.T) {
	e := newEnv(t)
	for i, who := range []string{"Ada Lovelace", "Grace Hopper", "Ada Lovelace"} {
		e.g.Write("prompts/a.yaml", prompt(fmt.Sprint(i)))
		e.g.CommitAs(who, strings.ToLower(strings.Fields(who)[0])+"@example.com", fmt.Sprintf("Tweak %d: 100%% better_tone", i))
	}
	e.sync(t)
	var got []string
	e.db.View(context.Background(), func(tx *index.Tx) error {
		for _, q := range []string{"grace", "TWEAK 2", "100%", "better_", "nothing"} {
			vs, err := tx.Versions(context.Background(), "a", index.VersionQuery{Search: q})
			if err != nil {
				return err
			}
			var ls []string
			for _, v := range vs {
				ls = append(ls, v.Label)
			}
			got = append(got, q+"="+strings.Join(ls, ","))
		}
		return nil
	})
	want := []string{"grace=v2", "TWEAK 2=v3", "100%=v3,v2,v1", "better_=v3,v2,v1", "nothing="}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("search = %q, want %q", got, want)
	}
}

var _ = filepath.Join
