package gitstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"maps"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var gitEnv = []string{
	"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
	"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com",
	"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
}

// git runs the git CLI in dir and returns its trimmed output.
func git(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	return gitAt(tb, dir, "", args...)
}

// gitAt is git with a fixed author/committer date, so commits get
// distinct, ordered times.
func gitAt(tb testing.TB, dir, date string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("git", append([]string{"-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), gitEnv...)
	if date != "" {
		cmd.Env = append(cmd.Env, "GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// workRepo is a user's working copy.
type workRepo struct {
	tb   testing.TB
	dir  string
	tick int
}

func newWorkRepo(tb testing.TB) *workRepo {
	tb.Helper()
	w := &workRepo{tb: tb, dir: filepath.Join(tb.TempDir(), "work")}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	git(tb, w.dir, "init", "-q")
	return w
}

func (w *workRepo) git(args ...string) string {
	w.tb.Helper()
	w.tick++
	return gitAt(w.tb, w.dir, fmt.Sprintf("@%d +0100", 1700000000+w.tick*60), args...)
}

func (w *workRepo) write(path, content string) {
	w.tb.Helper()
	p := filepath.Join(w.dir, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		w.tb.Fatal(err)
	}
}

// commit writes files (content "" deletes) and commits; returns the SHA.
func (w *workRepo) commit(msg string, files map[string]string) string {
	w.tb.Helper()
	// Deletions first, in a fixed order: a step may replace a file by a
	// folder of the same name, and map order is random.
	paths := slices.Sorted(maps.Keys(files))
	for _, path := range paths {
		if files[path] == "" {
			w.git("rm", "-q", path)
		}
	}
	for _, path := range paths {
		if content := files[path]; content != "" {
			w.write(path, content)
			w.git("add", path)
		}
	}
	w.git("commit", "-q", "--allow-empty", "-m", msg)
	return w.git("rev-parse", "HEAD")
}

// fingerprint summarises every file of the working copy, .git included.
func (w *workRepo) fingerprint() string {
	w.tb.Helper()
	h := sha256.New()
	err := filepath.WalkDir(w.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d %s\n", p, info.Size(), info.ModTime())
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		w.tb.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// openMirror opens a mirror of url in a fresh directory and fetches it.
func openMirror(tb testing.TB, url string) *Repo {
	tb.Helper()
	r, err := Open(filepath.Join(tb.TempDir(), "mirror"), url, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	if err := r.Fetch(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return r
}

// httpGit serves the bare repositories under root over smart HTTP with
// git http-backend; httptest listens on 127.0.0.1.
func httpGit(tb testing.TB, root string) *httptest.Server {
	tb.Helper()
	execPath := git(tb, root, "--exec-path")
	srv := httptest.NewServer(&cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
	})
	tb.Cleanup(srv.Close)
	return srv
}
