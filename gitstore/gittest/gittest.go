// Package gittest drives real Git repositories for tests: a working
// repository in a temp dir, operated with the git CLI under a fixed identity
// and a deterministic clock, so commit SHAs and times are predictable.
package gittest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Repo is a working repository.
type Repo struct {
	t     testing.TB
	Dir   string
	Clock time.Time // time of the next commit minus one minute
}

// New creates an empty repository on branch main.
func New(t testing.TB) *Repo {
	t.Helper()
	g := &Repo{t: t, Dir: filepath.Join(t.TempDir(), "work"), Clock: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := os.MkdirAll(g.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g.Git("init", "-q", "-b", "main")
	return g
}

// Git runs git in the repository as the default author and returns its
// trimmed output.
func (g *Repo) Git(args ...string) string {
	g.t.Helper()
	return g.GitAs("Ada Lovelace", "ada@example.com", args...)
}

// GitAs runs git with the given author and committer.
func (g *Repo) GitAs(name, email string, args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = g.Dir
	date := g.Clock.Format(time.RFC3339)
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME="+name, "GIT_AUTHOR_EMAIL="+email, "GIT_AUTHOR_DATE="+date,
		"GIT_COMMITTER_NAME="+name, "GIT_COMMITTER_EMAIL="+email, "GIT_COMMITTER_DATE="+date,
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+g.Dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Write writes a file (creating folders).
func (g *Repo) Write(path, content string) {
	g.t.Helper()
	p := filepath.Join(g.Dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		g.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// Remove deletes a tracked file.
func (g *Repo) Remove(path string) {
	g.t.Helper()
	g.Git("rm", "-q", path)
}

// Commit stages everything, commits one minute after the previous commit
// and returns the new head SHA.
func (g *Repo) Commit(msg string) string {
	g.t.Helper()
	return g.CommitAs("Ada Lovelace", "ada@example.com", msg)
}

// CommitAs is Commit with another author.
func (g *Repo) CommitAs(name, email, msg string) string {
	g.t.Helper()
	g.Clock = g.Clock.Add(time.Minute)
	g.GitAs(name, email, "add", "-A")
	g.GitAs(name, email, "commit", "-q", "--allow-empty", "-m", msg)
	return g.Head()
}

// Head is the SHA of HEAD.
func (g *Repo) Head() string { return g.Git("rev-parse", "HEAD") }

// Sample builds the repository most end-to-end tests start from:
// prompts/support/summarize.yaml with v1 "Add prompts", v2 "Shorter
// summaries" (by Grace Hopper) and an invalid v3 "Too hot";
// prompts/greet.yaml with v1; and a branch "tone" changing greet (a draft).
// HEAD is back on main.
func Sample(t testing.TB) *Repo {
	t.Helper()
	g := New(t)
	g.Write("prompts/support/summarize.yaml", Prompt("Summarize"))
	g.Write("prompts/greet.yaml", Prompt("Hello"))
	g.Commit("Add prompts")
	g.Write("prompts/support/summarize.yaml", Prompt("Summarize briefly"))
	g.CommitAs("Grace Hopper", "grace@example.com", "Shorter summaries")
	g.Write("prompts/support/summarize.yaml", "template: hi\ntemperature: 7\n")
	g.Commit("Too hot")
	g.Git("checkout", "-q", "-b", "tone")
	g.Write("prompts/greet.yaml", Prompt("Hi there"))
	g.Commit("Friendlier greeting")
	g.Git("checkout", "-q", "main")
	return g
}

// Prompt is a small valid prompt file whose template starts with text.
func Prompt(text string) string {
	return "model: gpt-4o\ntemperature: 0.2\ntemplate: |\n  " + text + " {{ input }}\n"
}
