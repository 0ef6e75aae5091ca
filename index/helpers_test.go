package index_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/index"
)

// gitRepo is a real working repository (see gittest).
type gitRepo = gittest.Repo

func prompt(text string) string { return gittest.Prompt(text) }

// testEnv is a repository, its mirror and an index in one temp dir.
type testEnv struct {
	g      *gitRepo
	mirror *gitstore.Repo
	db     *index.DB
	dir    string
	target string // the index's SQLite path or PostgreSQL URL
	cfg    index.Config
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	g := gittest.New(t)
	e := &testEnv{g: g, dir: t.TempDir(), cfg: index.Config{Branch: "main", PromptsDir: "prompts", BranchDrafts: true, Actor: "test"}}
	e.target = newTarget(t, e.dir)
	e.db = openDB(t, e.target)
	return e
}

func openDB(t testing.TB, target string) *index.DB {
	t.Helper()
	db, err := index.Open(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (e *testEnv) openMirror(t testing.TB) *gitstore.Repo {
	t.Helper()
	if e.mirror == nil {
		m, err := gitstore.Open(filepath.Join(e.dir, "mirror.git"), e.g.Dir, gitstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		e.mirror = m
	}
	return e.mirror
}

// sync fetches and indexes, failing the test on error.
func (e *testEnv) sync(t testing.TB) *index.SyncResult {
	t.Helper()
	res, err := e.trySync(t)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return res
}

func (e *testEnv) trySync(t testing.TB) (*index.SyncResult, error) {
	t.Helper()
	m := e.openMirror(t)
	if err := m.Fetch(context.Background()); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return e.db.Sync(context.Background(), m, e.cfg)
}

func (e *testEnv) versions(t testing.TB, key string) []index.Version {
	t.Helper()
	var vs []index.Version
	err := e.db.View(context.Background(), func(tx *index.Tx) (err error) {
		vs, err = tx.Versions(context.Background(), key, index.VersionQuery{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func (e *testEnv) version(t testing.TB, key, label string) index.Version {
	t.Helper()
	var v index.Version
	err := e.db.View(context.Background(), func(tx *index.Tx) (err error) {
		v, err = tx.Version(context.Background(), key, label)
		return err
	})
	if err != nil {
		t.Fatalf("version %s %s: %v", key, label, err)
	}
	return v
}

func (e *testEnv) prompts(t testing.TB) map[string]index.Prompt {
	t.Helper()
	out := map[string]index.Prompt{}
	err := e.db.View(context.Background(), func(tx *index.Tx) error {
		ps, err := tx.Prompts(context.Background())
		for _, p := range ps {
			out[p.Key] = p
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// live returns the live pointer's label ("" when unset).
func (e *testEnv) pointer(t testing.TB, key, env string) string {
	t.Helper()
	var label string
	err := e.db.View(context.Background(), func(tx *index.Tx) error {
		p, ok, err := tx.Pointer(context.Background(), key, env)
		if ok {
			label = p.Label()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return label
}

func (e *testEnv) update(t testing.TB, fn func(ctx context.Context, tx *index.Tx) error) error {
	t.Helper()
	ctx := context.Background()
	return e.db.Update(ctx, func(tx *index.Tx) error { return fn(ctx, tx) })
}

func (e *testEnv) audit(t testing.TB) []index.AuditEntry {
	t.Helper()
	var out []index.AuditEntry
	err := e.db.View(context.Background(), func(tx *index.Tx) (err error) {
		out, err = tx.AuditLog(context.Background(), 0, 1000)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
