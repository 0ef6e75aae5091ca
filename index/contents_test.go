package index_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/index"
)

// content reads a version's or draft's file from the index.
func (e *testEnv) content(t testing.TB, key, label string) string {
	t.Helper()
	v := e.version(t, key, label)
	data, err := e.db.Content(context.Background(), v.BlobSHA)
	if err != nil {
		t.Fatalf("content of %s %s: %v", key, label, err)
	}
	return string(data)
}

func TestSyncStoresEachVersionsAndDraftsContent(t *testing.T) {
	e := newEnv(t)
	e.g.Write("prompts/a.yaml", prompt("one"))
	e.g.Commit("a1")
	e.g.Write("prompts/a.yaml", prompt("two"))
	e.g.Commit("a2")
	e.g.Write("prompts/a.yaml", prompt("one")) // a revert: same blob as v1
	e.g.Commit("a3")
	e.g.Write("prompts/big.yaml", "template: x\n"+strings.Repeat("#", promptvault.MaxFileSize))
	e.g.Commit("too big")
	e.g.Git("checkout", "-q", "-b", "feature")
	e.g.Write("prompts/a.yaml", prompt("draft"))
	e.g.Commit("draft")
	e.g.Git("checkout", "-q", "main")
	e.sync(t)

	for label, want := range map[string]string{"v1": "one", "v2": "two", "v3": "one", "draft:feature": "draft"} {
		if got := e.content(t, "a", label); got != prompt(want) {
			t.Errorf("%s content = %q, want %q", label, got, prompt(want))
		}
	}
	if n := dumpRaw(t, e.db, "SELECT count(*) FROM contents"); n != "3\n" {
		t.Errorf("contents rows = %s, want 3 (one, two, draft: content-addressed, the oversized file not kept)", n)
	}
	big := e.version(t, "big", "v1")
	if big.Valid {
		t.Fatal("oversized file is valid")
	}
	if _, err := e.db.Content(context.Background(), big.BlobSHA); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("oversized file's content: err = %v, want ErrNotFound", err)
	}
}

// TestMigrationBackfillsContentOnNextSync puts an index in the state
// migration 0004 leaves an older index in (rows, an empty contents table,
// the backfill mark) and checks that the next sync fills every version's,
// draft's and pointer's content from the mirror, including a staging
// pointer whose draft has ended, and writes a change so running servers
// rebuild.
func TestMigrationBackfillsContentOnNextSync(t *testing.T) {
	e := newEnv(t)
	e.g.Write("prompts/a.yaml", prompt("one"))
	e.g.Commit("a1")
	e.g.Git("checkout", "-q", "-b", "feature")
	e.g.Write("prompts/a.yaml", prompt("draft"))
	e.g.Commit("draft")
	e.g.Git("checkout", "-q", "main")
	e.sync(t)
	if err := e.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.SetStaging(ctx, "a", "draft:feature", "test")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	draftBlob := e.version(t, "a", "draft:feature").BlobSHA
	e.g.Git("branch", "-q", "-D", "feature")
	e.sync(t) // the draft ends; staging had been cleared with it, so point it back by hand below
	e.db.Close()

	// As migrated from schema 3: no content yet, the mark set; a staging
	// pointer on content no version or draft row refers to any more.
	raw := rawDB(t, e.target)
	for _, q := range []string{
		"DELETE FROM contents",
		"INSERT INTO meta(name, value) VALUES('contents_backfill', 'pending')",
		"INSERT INTO pointers(key, env, number, draft, commit_sha, sha256, blob_sha, audit_seq, updated_at) VALUES('a', 'staging', 0, 'feature', 'c', 's', '" + draftBlob + "', 1, 'now') " +
			"ON CONFLICT(key, env) DO UPDATE SET number = excluded.number, draft = excluded.draft, commit_sha = excluded.commit_sha, " +
			"sha256 = excluded.sha256, blob_sha = excluded.blob_sha, audit_seq = excluded.audit_seq, updated_at = excluded.updated_at",
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	e.db = openDB(t, e.target)
	if _, err := e.db.Content(context.Background(), e.version(t, "a", "v1").BlobSHA); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("before the sync: err = %v, want ErrNotFound", err)
	}
	var before int64
	e.db.View(context.Background(), func(tx *index.Tx) (err error) { before, err = tx.LastChange(context.Background()); return err })
	res := e.sync(t)
	if res.ContentsFilled != 2 || len(res.ContentsMissing) != 0 {
		t.Errorf("filled %d, missing %v; want 2 and none", res.ContentsFilled, res.ContentsMissing)
	}
	if got := e.content(t, "a", "v1"); got != prompt("one") {
		t.Errorf("v1 = %q", got)
	}
	if got, err := e.db.Content(context.Background(), draftBlob); err != nil || string(got) != prompt("draft") {
		t.Errorf("staging pointer's content = %q, %v", got, err)
	}
	var changes []string
	e.db.View(context.Background(), func(tx *index.Tx) error {
		cs, err := tx.ChangesSince(context.Background(), before)
		for _, c := range cs {
			changes = append(changes, c.Kind)
		}
		return err
	})
	if strings.Join(changes, ",") != index.ChangeContents {
		t.Errorf("changes after backfill = %v, want one %q", changes, index.ChangeContents)
	}
	// Done once: the next sync writes nothing.
	if res := e.sync(t); res.ContentsFilled != 0 {
		t.Errorf("second sync filled %d again", res.ContentsFilled)
	}
	if n := dumpRaw(t, e.db, "SELECT count(*) FROM meta WHERE name = 'contents_backfill'"); n != "0\n" {
		t.Errorf("backfill mark left behind: %s", n)
	}
}
