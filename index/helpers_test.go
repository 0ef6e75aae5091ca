package index_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/index"
)

// gitRepo is a real working repository driven by the git CLI, with a
// deterministic clock so commit times are predictable.
type gitRepo struct {
	t     testing.TB
	dir   string
	clock time.Time
}

func newGitRepo(t testing.TB) *gitRepo {
	t.Helper()
	g := &gitRepo{t: t, dir: filepath.Join(t.TempDir(), "work"), clock: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g.git("init", "-q", "-b", "main")
	return g
}

func (g *gitRepo) git(args ...string) string {
	g.t.Helper()
	return g.gitAs("Ada Lovelace", "ada@example.com", args...)
}

func (g *gitRepo) gitAs(name, email string, args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = g.dir
	date := g.clock.Format(time.RFC3339)
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME="+name, "GIT_AUTHOR_EMAIL="+email, "GIT_AUTHOR_DATE="+date,
		"GIT_COMMITTER_NAME="+name, "GIT_COMMITTER_EMAIL="+email, "GIT_COMMITTER_DATE="+date,
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+g.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (g *gitRepo) write(path, content string) {
	g.t.Helper()
	p := filepath.Join(g.dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		g.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gitRepo) remove(path string) {
	g.t.Helper()
	g.git("rm", "-q", path)
}

// commit stages everything and commits; it returns the new head SHA.
func (g *gitRepo) commit(msg string) string {
	g.t.Helper()
	return g.commitAs("Ada Lovelace", "ada@example.com", msg)
}

func (g *gitRepo) commitAs(name, email, msg string) string {
	g.t.Helper()
	g.clock = g.clock.Add(time.Minute)
	g.gitAs(name, email, "add", "-A")
	g.gitAs(name, email, "commit", "-q", "--allow-empty", "-m", msg)
	return g.git("rev-parse", "HEAD")
}

func (g *gitRepo) head() string { return g.git("rev-parse", "HEAD") }

// prompt is a valid prompt file whose template says text.
func prompt(text string) string {
	return fmt.Sprintf("model: gpt-4o\ntemperature: 0.2\ntemplate: |\n  %s {{ input }}\n", text)
}

// testEnv is a repository, its mirror and an index in one temp dir.
type testEnv struct {
	g      *gitRepo
	mirror *gitstore.Repo
	db     *index.DB
	dir    string
	cfg    index.Config
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	g := newGitRepo(t)
	e := &testEnv{g: g, dir: t.TempDir(), cfg: index.Config{Branch: "main", PromptsDir: "prompts", BranchDrafts: true, Actor: "test"}}
	e.db = openDB(t, filepath.Join(e.dir, "index.db"))
	return e
}

func openDB(t testing.TB, path string) *index.DB {
	t.Helper()
	db, err := index.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (e *testEnv) openMirror(t testing.TB) *gitstore.Repo {
	t.Helper()
	if e.mirror == nil {
		m, err := gitstore.Open(filepath.Join(e.dir, "mirror.git"), e.g.dir, gitstore.Options{})
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
