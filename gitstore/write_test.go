package gitstore

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteCommitAndPush(t *testing.T) {
	ctx := context.Background()
	w := newWorkRepo(t)
	base := w.commit("first", map[string]string{"prompts/a.yaml": "template: a\n", "prompts/team/b.yaml": "template: b\n", "README": "x\n"})
	// A bare remote, as a server would be; the working copy is never pushed to.
	bare := filepath.Join(t.TempDir(), "remote.git")
	git(t, "", "clone", "-q", "--bare", w.dir, bare)
	m := openMirror(t, bare)
	if err := m.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sha, err := m.WriteCommit(NewCommit{Base: base, Parents: []string{base}, Message: "edit b, add c\n\nfrom the dashboard",
		Name: "Editor Key", Email: "editor@promptvault.invalid", When: when,
		Changes: []FileChange{
			{Path: "prompts/team/b.yaml", Content: []byte("template: b2\n")},
			{Path: "prompts/new/deep/c.yaml", Content: []byte("template: c\n")},
			{Path: "README", Delete: true},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Push(ctx, sha, "edit"); err != nil {
		t.Fatal(err)
	}
	// Real git agrees: the objects are well formed and the tree is as asked.
	git(t, bare, "fsck", "--strict")
	if got := git(t, bare, "rev-parse", "refs/heads/edit"); got != sha {
		t.Fatalf("remote edit = %s, want %s", got, sha)
	}
	files := git(t, bare, "ls-tree", "-r", "--name-only", "edit")
	if files != "prompts/a.yaml\nprompts/new/deep/c.yaml\nprompts/team/b.yaml" {
		t.Fatalf("tree:\n%s", files)
	}
	if got := git(t, bare, "show", "edit:prompts/team/b.yaml"); got != "template: b2" {
		t.Fatalf("b = %q", got)
	}
	if got := git(t, bare, "log", "-1", "--format=%an <%ae> %s", "edit"); got != "Editor Key <editor@promptvault.invalid> edit b, add c" {
		t.Fatalf("commit = %q", got)
	}

	// The branch moved on the remote: a commit on the old head is refused.
	other, err := m.WriteCommit(NewCommit{Base: base, Parents: []string{base}, Message: "stale",
		Name: "x", Email: "x@y", When: when, Changes: []FileChange{{Path: "prompts/a.yaml", Content: []byte("template: z\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Push(ctx, other, "edit")
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("non-fast-forward push: err = %v, want ErrRejected", err)
	}
	if got := git(t, bare, "rev-parse", "refs/heads/edit"); got != sha {
		t.Fatalf("rejected push moved the branch to %s", got)
	}
	if strings.Contains(git(t, bare, "for-each-ref"), "promptvault") {
		t.Fatal("a temporary ref leaked to the remote")
	}
}

func TestPushRefusesCheckedOutBranch(t *testing.T) {
	ctx := context.Background()
	w := newWorkRepo(t)
	base := w.commit("first", map[string]string{"prompts/a.yaml": "template: a\n"})
	m := openMirror(t, w.dir)
	if err := m.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	sha, err := m.WriteCommit(NewCommit{Base: base, Parents: []string{base}, Message: "x", Name: "a", Email: "a@b", When: time.Now(),
		Changes: []FileChange{{Path: "prompts/a.yaml", Content: []byte("template: z\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	branch := w.git("branch", "--show-current")
	if err := m.Push(ctx, sha, branch); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "checked out") {
		t.Fatalf("push to the checked-out branch: %v", err)
	}
	if w.git("rev-parse", "HEAD") != base {
		t.Fatal("the checked-out branch moved")
	}
	if err := m.Push(ctx, sha, "other"); err != nil {
		t.Fatal(err)
	}
}
