package gitstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/promptvault/promptvault/gitstore/gitgen"
)

var ctx = context.Background()

func TestOpenLocalFetch(t *testing.T) {
	w := newWorkRepo(t)
	c1 := w.commit("one", map[string]string{"prompts/a.yaml": "a: 1\n"})
	before := w.fingerprint()
	r := openMirror(t, w.dir)

	if got, _ := r.Branches(); !reflect.DeepEqual(got, map[string]string{"main": c1}) {
		t.Fatalf("branches = %v, want main=%s", got, c1)
	}
	t.Run("already up to date is success", func(t *testing.T) {
		if err := r.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("incremental", func(t *testing.T) {
		c2 := w.commit("two", map[string]string{"prompts/a.yaml": "a: 2\n"})
		w.git("branch", "feature")
		before = w.fingerprint()
		if err := r.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"main": c2, "feature": c2}
		if got, _ := r.Branches(); !reflect.DeepEqual(got, want) {
			t.Fatalf("branches = %v, want %v", got, want)
		}
		if got, err := r.Resolve("refs/remotes/origin/main"); err != nil || got != c2 {
			t.Fatalf("resolve = %s, %v; want %s", got, err, c2)
		}
	})
	t.Run("working copy untouched", func(t *testing.T) {
		if after := w.fingerprint(); after != before {
			t.Error("fetch changed the working copy")
		}
		if st := w.git("status", "--porcelain"); st != "" {
			t.Errorf("status = %q", st)
		}
	})
	t.Run("reopen and repoint", func(t *testing.T) {
		other := newWorkRepo(t)
		oc := other.commit("other", map[string]string{"x": "x"})
		r2, err := Open(r.dir, other.dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close()
		if err := r2.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ := r2.Branches(); got["main"] != oc || len(got) != 1 {
			t.Fatalf("branches after repoint = %v, want main=%s only", got, oc)
		}
		// The old main's commits are pinned: the ref moved to unrelated history.
		if got, err := r2.Resolve(keepPrefix + w.git("rev-parse", "main")); err != nil || got == "" {
			t.Errorf("old head not pinned: %v", err)
		}
	})
}

func TestOpenHTTP(t *testing.T) {
	w := newWorkRepo(t)
	c1 := w.commit("one", map[string]string{"prompts/a.yaml": "a: 1\n"})
	root := t.TempDir()
	git(t, root, "clone", "-q", "--bare", w.dir, "repo.git")
	bare := filepath.Join(root, "repo.git")
	srv := httpGit(t, root)

	var asked atomic.Int32
	r, err := Open(filepath.Join(t.TempDir(), "mirror"), srv.URL+"/repo.git", Options{
		Auth: func(context.Context) (transport.AuthMethod, error) { asked.Add(1); return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Branches(); got["main"] != c1 {
		t.Fatalf("branches = %v", got)
	}
	if asked.Load() != 1 {
		t.Errorf("auth asked %d times, want 1", asked.Load())
	}
	if _, data, err := r.ReadFile(c1, "prompts/a.yaml"); err != nil || string(data) != "a: 1\n" {
		t.Fatalf("read = %q, %v", data, err)
	}

	t.Run("pull request ref by extra refspec", func(t *testing.T) {
		w.git("checkout", "-q", "-b", "pr")
		pr := w.commit("draft", map[string]string{"prompts/a.yaml": "a: draft\n"})
		w.git("push", "-q", bare, "pr:refs/pull/7/head")
		if err := r.Fetch(ctx, "+refs/pull/7/head:refs/remotes/origin/pr/7"); err != nil {
			t.Fatal(err)
		}
		if got, err := r.Resolve("refs/remotes/origin/pr/7"); err != nil || got != pr {
			t.Fatalf("pr/7 = %s, %v; want %s", got, err, pr)
		}
		if _, data, _ := r.ReadFile(pr, "prompts/a.yaml"); string(data) != "a: draft\n" {
			t.Errorf("draft content = %q", data)
		}
	})
	t.Run("auth error stops the fetch", func(t *testing.T) {
		r.opts.Auth = func(context.Context) (transport.AuthMethod, error) { return nil, errors.New("no token") }
		defer func() { r.opts.Auth = nil }()
		if err := r.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "fetch origin: credentials: no token") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestFirstParent(t *testing.T) {
	w := newWorkRepo(t)
	c1 := w.commit("one", map[string]string{"prompts/a.yaml": "1"})
	c2 := w.commit("two", map[string]string{"prompts/a.yaml": "2"})
	w.git("checkout", "-q", "-b", "feature", c1)
	f1 := w.commit("f1", map[string]string{"prompts/f.yaml": "f1"})
	f2 := w.commit("f2", map[string]string{"prompts/f.yaml": "f2"})
	w.git("checkout", "-q", "main")
	c3 := w.commit("three", map[string]string{"prompts/b.yaml": "b"})
	w.git("merge", "-q", "--no-ff", "-m", "merge feature", "feature")
	m := w.git("rev-parse", "HEAD")
	c4 := w.commit("four\n\nbody", map[string]string{"prompts/a.yaml": "4"})
	r := openMirror(t, w.dir)

	shas := func(cs []Commit) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.SHA)
		}
		return out
	}
	for _, tt := range []struct {
		name string
		stop func(string) bool
		want []string
	}{
		{"to the root, oldest first, first parents only", nil, []string{c1, c2, c3, m, c4}},
		{"stops before the stop commit", func(s string) bool { return s == c2 }, []string{c3, m, c4}},
		{"stop at head is empty", func(s string) bool { return s == c4 }, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.FirstParent(ctx, c4, tt.stop)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(shas(got), tt.want) {
				t.Errorf("got %v, want %v", shas(got), tt.want)
			}
		})
	}
	t.Run("commit fields", func(t *testing.T) {
		got, err := r.Commit(m)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Parents, []string{c3, f2}) || got.Message != "merge feature\n" ||
			got.AuthorName != "Ada" || got.AuthorEmail != "ada@example.com" {
			t.Errorf("commit = %+v", got)
		}
		ct, _ := strconv.ParseInt(w.git("show", "-s", "--format=%ct", m), 10, 64)
		want := time.Unix(ct, 0)
		if !got.CommitTime.Equal(want) || !got.AuthorTime.Equal(want) {
			t.Errorf("times = %v %v, want %v", got.AuthorTime, got.CommitTime, want)
		}
		if _, off := got.CommitTime.Zone(); off != 3600 {
			t.Errorf("zone offset = %d, want +0100", off)
		}
		c, _ := r.Commit(c4)
		if c.Message != "four\n\nbody\n" {
			t.Errorf("message = %q", c.Message)
		}
	})
	t.Run("merge diffs against first parent only", func(t *testing.T) {
		cs, _ := r.FirstParent(ctx, m, func(s string) bool { return s == c3 })
		var got []Change
		r.WalkChanges(ctx, cs, "prompts", func(c Commit, ch []Change) error { got = ch; return nil })
		want := []Change{{Path: "prompts/f.yaml", To: blobSHA(t, w, f2, "prompts/f.yaml")}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("merge changes = %v, want %v", got, want)
		}
		if d, _ := r.Diff(ctx, c3, m, "prompts"); !reflect.DeepEqual(d, want) {
			t.Errorf("diff = %v, want %v", d, want)
		}
		checkAgainstGit(t, r, w.dir, c4)
	})
	t.Run("merge base and ancestry", func(t *testing.T) {
		if got, err := r.MergeBase(c3, f2); err != nil || got != c1 {
			t.Errorf("merge-base(c3, f2) = %s, %v; want %s", got, err, c1)
		}
		if got, err := r.MergeBase(c4, f1); err != nil || got != f1 {
			t.Errorf("merge-base(c4, f1) = %s, %v; want %s", got, err, f1)
		}
		for _, tt := range []struct {
			a, b string
			want bool
		}{{c1, c4, true}, {f1, c4, true}, {c4, c4, true}, {c3, f2, false}, {c4, c1, false}} {
			if got, err := r.IsAncestor(tt.a, tt.b); err != nil || got != tt.want {
				t.Errorf("IsAncestor(%.7s, %.7s) = %v, %v; want %v", tt.a, tt.b, got, err, tt.want)
			}
		}
	})
}

func blobSHA(tb testing.TB, w *workRepo, commit, path string) string {
	tb.Helper()
	return w.git("rev-parse", commit+":"+path)
}

func TestDiff(t *testing.T) {
	w := newWorkRepo(t)
	type step struct {
		name  string
		files map[string]string
		want  []string // "A path", "M path", "D path"
	}
	steps := []step{
		{"root commit against empty tree, outside dir ignored", map[string]string{
			"prompts/a.yaml": "a", "prompts/team/b.yaml": "b", "README.md": "r", "promptsx/c.yaml": "c",
		}, []string{"A prompts/a.yaml", "A prompts/team/b.yaml"}},
		{"modify", map[string]string{"prompts/a.yaml": "a2"}, []string{"M prompts/a.yaml"}},
		{"delete", map[string]string{"prompts/team/b.yaml": ""}, []string{"D prompts/team/b.yaml"}},
		{"rename is delete plus add", map[string]string{"prompts/a.yaml": "", "prompts/c.yaml": "a2"},
			[]string{"D prompts/a.yaml", "A prompts/c.yaml"}},
		{"nested folders", map[string]string{"prompts/x/y/z.yaml": "z", "prompts/x/w.yaml": "w", "prompts/x-y.yaml": "xy"},
			[]string{"A prompts/x-y.yaml", "A prompts/x/w.yaml", "A prompts/x/y/z.yaml"}},
		{"change outside dir only", map[string]string{"README.md": "r2", "promptsx/c.yaml": "c2"}, nil},
		{"file becomes folder", map[string]string{"prompts/c.yaml": "", "prompts/c.yaml/d.yaml": "d"},
			[]string{"D prompts/c.yaml", "A prompts/c.yaml/d.yaml"}},
		{"deep modify leaves siblings", map[string]string{"prompts/x/y/z.yaml": "z2"}, []string{"M prompts/x/y/z.yaml"}},
	}
	var commits []string
	for _, s := range steps {
		commits = append(commits, w.commit(s.name, s.files))
	}
	r := openMirror(t, w.dir)
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			from := ""
			if i > 0 {
				from = commits[i-1]
			}
			got, err := r.Diff(ctx, from, commits[i], "prompts")
			if err != nil {
				t.Fatal(err)
			}
			var want []Change
			for _, x := range s.want {
				op, path, _ := strings.Cut(x, " ")
				c := Change{Path: path}
				if op != "A" {
					c.From = blobSHA(t, w, commits[i-1], path)
				}
				if op != "D" {
					c.To = blobSHA(t, w, commits[i], path)
				}
				want = append(want, c)
			}
			slices.SortFunc(want, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
			if !reflect.DeepEqual(got, want) {
				t.Errorf("diff =\n%v\nwant\n%v", got, want)
			}
		})
	}
	t.Run("whole tree", func(t *testing.T) {
		got, _ := r.Diff(ctx, commits[4], commits[5], "")
		if len(got) != 2 || got[0].Path != "README.md" || got[1].Path != "promptsx/c.yaml" {
			t.Errorf("diff = %v", got)
		}
	})
	t.Run("multi-commit range", func(t *testing.T) {
		got, _ := r.Diff(ctx, commits[0], commits[2], "prompts/team")
		if len(got) != 1 || got[0].Path != "prompts/team/b.yaml" || got[0].To != "" {
			t.Errorf("diff = %v", got)
		}
	})
	t.Run("unchanged subtrees are not read", func(t *testing.T) {
		// Equal hashes short-circuit before any object is read: this
		// tree does not exist, yet the diff succeeds.
		h := plumbing.NewHash("1234567890123456789012345678901234567890")
		if got, err := r.diffTrees("", h, h, nil); err != nil || len(got) != 0 {
			t.Errorf("diffTrees = %v, %v", got, err)
		}
	})
	t.Run("walk equals diff and git", func(t *testing.T) {
		cs, err := r.FirstParent(ctx, commits[len(commits)-1], nil)
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		err = r.WalkChanges(ctx, cs, "prompts", func(c Commit, got []Change) error {
			if c.SHA != commits[i] {
				t.Errorf("walk %d = %s, want %s", i, c.SHA, commits[i])
			}
			from := ""
			if i > 0 {
				from = commits[i-1]
			}
			want, _ := r.Diff(ctx, from, c.SHA, "prompts")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("walk %s = %v, diff = %v", steps[i].name, got, want)
			}
			i++
			return nil
		})
		if err != nil || i != len(commits) {
			t.Fatalf("walked %d, err %v", i, err)
		}
		checkAgainstGit(t, r, w.dir, commits[len(commits)-1])
	})
	t.Run("fn error stops the walk", func(t *testing.T) {
		cs, _ := r.FirstParent(ctx, commits[len(commits)-1], nil)
		stop := errors.New("stop")
		n := 0
		err := r.WalkChanges(ctx, cs, "prompts", func(Commit, []Change) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("err = %v after %d calls", err, n)
		}
	})
}

// checkAgainstGit compares WalkChanges over head's first-parent history
// with git log --first-parent --raw --no-renames (whole tree) in dir.
func checkAgainstGit(tb testing.TB, r *Repo, dir, head string) {
	tb.Helper()
	out := git(tb, dir, "log", "--reverse", "--first-parent", "-m", "--no-renames", "--raw", "--no-abbrev", "--format=C %H", head)
	want := map[string][]Change{}
	var order []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	var cur string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "C "):
			cur = line[2:]
			order = append(order, cur)
			want[cur] = nil
		case strings.HasPrefix(line, ":"):
			meta, path, _ := strings.Cut(line, "\t")
			f := strings.Fields(meta) // :old new from to status
			c := Change{Path: path, From: f[2], To: f[3]}
			if strings.Trim(c.From, "0") == "" {
				c.From = ""
			}
			if strings.Trim(c.To, "0") == "" {
				c.To = ""
			}
			if c.From != c.To {
				want[cur] = append(want[cur], c)
			}
		}
	}
	cs, err := r.FirstParent(ctx, head, nil)
	if err != nil {
		tb.Fatal(err)
	}
	got := map[string][]Change{}
	var gotOrder []string
	err = r.WalkChanges(ctx, cs, "", func(c Commit, ch []Change) error {
		gotOrder = append(gotOrder, c.SHA)
		got[c.SHA] = ch
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if !slices.Equal(order, gotOrder) {
		tb.Fatalf("walk order differs from git: %d vs %d commits", len(gotOrder), len(order))
	}
	bad := 0
	for _, sha := range slices.Sorted(maps.Keys(want)) {
		if !reflect.DeepEqual(got[sha], want[sha]) {
			if bad++; bad <= 3 {
				tb.Errorf("commit %s: walk %v, git %v", sha, got[sha], want[sha])
			}
		}
	}
}

func TestWalkChangesGenerated(t *testing.T) {
	for _, nested := range []bool{false, true} {
		t.Run(fmt.Sprintf("nested=%v", nested), func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src.git")
			cfg := gitgen.Config{Prompts: 60, Commits: 1500, Nested: nested}
			if err := cfg.Generate(ctx, src); err != nil {
				t.Fatal(err)
			}
			r := openMirror(t, src)
			head, _ := r.Resolve("refs/remotes/origin/main")
			cs, err := r.FirstParent(ctx, head, nil)
			if err != nil || len(cs) != 1500 {
				t.Fatalf("first-parent: %d commits, %v", len(cs), err)
			}
			// The parallel walk must equal a commit-by-commit Diff.
			i := 0
			err = r.WalkChanges(ctx, cs, "prompts", func(c Commit, got []Change) error {
				if c.SHA != cs[i].SHA {
					t.Fatalf("walk out of order at %d", i)
				}
				from := ""
				if len(c.Parents) > 0 {
					from = c.Parents[0]
				}
				want, err := r.Diff(ctx, from, c.SHA, "prompts")
				if err != nil {
					return err
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("commit %d: walk %v, diff %v", i, got, want)
				}
				if i > 0 && (len(got) < 1 || len(got) > 3) {
					t.Errorf("commit %d changed %d files", i, len(got))
				}
				i++
				return nil
			})
			if err != nil || i != len(cs) {
				t.Fatalf("walked %d, %v", i, err)
			}
			checkAgainstGit(t, r, src, head)

			// Every blob at head reads back with its size, deltas included.
			files, err := r.ListFiles(head, "prompts")
			if err != nil || len(files) != 60 {
				t.Fatalf("list: %d files, %v", len(files), err)
			}
			for path, sha := range files {
				b, err := r.Blob(sha)
				n, err2 := r.BlobSize(sha)
				if err != nil || err2 != nil || int64(len(b)) != n || n < 1000 {
					t.Fatalf("%s: %d bytes, size %d, %v %v", path, len(b), n, err, err2)
				}
				if want := git(t, src, "cat-file", "blob", sha); want != strings.TrimSpace(string(b)) {
					t.Fatalf("%s: content differs from git", path)
				}
			}
		})
	}
}

func TestForcePush(t *testing.T) {
	w := newWorkRepo(t)
	c1 := w.commit("one", map[string]string{"prompts/a.yaml": "v1"})
	c2 := w.commit("two", map[string]string{"prompts/a.yaml": "v2"})
	c3 := w.commit("three", map[string]string{"prompts/a.yaml": "v3 published"})
	w.git("checkout", "-q", "-b", "draft")
	d1 := w.commit("draft", map[string]string{"prompts/d.yaml": "draft only"})
	w.git("checkout", "-q", "main")
	r := openMirror(t, w.dir)
	v3, _, err := r.ReadFile(c3, "prompts/a.yaml")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("fast-forward pins nothing", func(t *testing.T) {
		w.commit("four", map[string]string{"prompts/b.yaml": "b"})
		if err := r.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Resolve(keepPrefix + c3); !errors.Is(err, ErrNotFound) {
			t.Errorf("fast-forward pinned %s: %v", c3, err)
		}
	})
	t.Run("force push and branch deletion pin old heads", func(t *testing.T) {
		c4 := w.git("rev-parse", "main")
		w.git("reset", "-q", "--hard", c2)
		c3b := w.commit("three again", map[string]string{"prompts/a.yaml": "v3 rewritten"})
		w.git("branch", "-D", "draft")
		w.git("reflog", "expire", "--expire=now", "--all")
		w.git("gc", "-q", "--prune=now")
		if err := r.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ := r.Branches(); !reflect.DeepEqual(got, map[string]string{"main": c3b}) {
			t.Fatalf("branches = %v", got)
		}
		for _, h := range []string{c4, d1} {
			if got, err := r.Resolve(keepPrefix + h); err != nil || got != h {
				t.Errorf("keep ref for %s = %s, %v", h, got, err)
			}
		}
		// The removed commits and their blobs are still readable.
		if c, err := r.Commit(c3); err != nil || c.Message != "three\n" {
			t.Errorf("commit c3 = %+v, %v", c, err)
		}
		if b, err := r.Blob(v3); err != nil || string(b) != "v3 published" {
			t.Errorf("blob = %q, %v", b, err)
		}
		if _, b, err := r.ReadFile(d1, "prompts/d.yaml"); err != nil || string(b) != "draft only" {
			t.Errorf("draft file = %q, %v", b, err)
		}
		if ok, _ := r.IsAncestor(c1, c3b); !ok {
			t.Error("c1 should be an ancestor of the new head")
		}
		if _, err := os.Stat(filepath.Join(r.dir, pendingFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pending file left behind: %v", err)
		}
	})
	t.Run("an interrupted fetch is finished by Open", func(t *testing.T) {
		head, _ := r.Resolve("refs/remotes/origin/main")
		// Pretend a fetch started when main was at c2's sibling c1 on
		// a branch that no longer exists.
		if err := writePending(filepath.Join(r.dir, pendingFile), map[string]plumbing.Hash{
			remotePrefix + "gone": plumbing.NewHash(c1),
			remotePrefix + "main": plumbing.NewHash(head),
		}); err != nil {
			t.Fatal(err)
		}
		r2, err := Open(r.dir, w.dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close()
		if got, err := r2.Resolve(keepPrefix + c1); err != nil || got != c1 {
			t.Errorf("keep ref for c1 = %s, %v", got, err)
		}
		if _, err := r2.Resolve(keepPrefix + head); !errors.Is(err, ErrNotFound) {
			t.Errorf("unmoved head pinned: %v", err)
		}
	})
}

func TestReads(t *testing.T) {
	w := newWorkRepo(t)
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MB
	c1 := w.commit("one", map[string]string{"prompts/a.yaml": "a: 1\n", "prompts/t/b.yaml": "b", "big.bin": big, "README": "r"})
	w.git("checkout", "-q", "--orphan", "unrelated")
	w.git("rm", "-q", "-rf", ".")
	u := w.commit("unrelated", map[string]string{"x": "x"})
	w.git("checkout", "-q", "main")
	r := openMirror(t, w.dir)
	missing := "1234567890123456789012345678901234567890"

	files, err := r.ListFiles(c1, "prompts")
	want := map[string]string{
		"prompts/a.yaml":   blobSHA(t, w, c1, "prompts/a.yaml"),
		"prompts/t/b.yaml": blobSHA(t, w, c1, "prompts/t/b.yaml"),
	}
	if err != nil || !reflect.DeepEqual(files, want) {
		t.Errorf("list = %v, %v", files, err)
	}
	if all, _ := r.ListFiles(c1, ""); len(all) != 4 {
		t.Errorf("list whole tree = %v", all)
	}
	if none, err := r.ListFiles(c1, "nope"); err != nil || len(none) != 0 {
		t.Errorf("list missing dir = %v, %v", none, err)
	}
	sha, data, err := r.ReadFile(c1, "prompts/a.yaml")
	if err != nil || sha != want["prompts/a.yaml"] || string(data) != "a: 1\n" {
		t.Errorf("read = %s %q %v", sha, data, err)
	}
	bigSHA := blobSHA(t, w, c1, "big.bin")
	if n, err := r.BlobSize(bigSHA); err != nil || n != int64(len(big)) {
		t.Errorf("blob size = %d, %v", n, err)
	}
	if b, err := r.Blob(bigSHA); err != nil || string(b) != big {
		t.Errorf("big blob: %d bytes, %v", len(b), err)
	}
	t.Run("blob is a copy", func(t *testing.T) {
		b, _ := r.Blob(sha)
		b[0] = 'X'
		if b2, _ := r.Blob(sha); string(b2) != "a: 1\n" {
			t.Error("Blob returned shared memory")
		}
	})

	for _, tt := range []struct {
		name string
		err  func() error
	}{
		{"blob missing", func() error { _, err := r.Blob(missing); return err }},
		{"blob of a commit", func() error { _, err := r.Blob(c1); return err }},
		{"blob bad sha", func() error { _, err := r.Blob("main"); return err }},
		{"blob size missing", func() error { _, err := r.BlobSize(missing); return err }},
		{"read missing path", func() error { _, _, err := r.ReadFile(c1, "prompts/zz.yaml"); return err }},
		{"read missing dir", func() error { _, _, err := r.ReadFile(c1, "nope/zz.yaml"); return err }},
		{"read a directory", func() error { _, _, err := r.ReadFile(c1, "prompts/t"); return err }},
		{"read at missing commit", func() error { _, _, err := r.ReadFile(missing, "prompts/a.yaml"); return err }},
		{"commit missing", func() error { _, err := r.Commit(missing); return err }},
		{"commit of a blob", func() error { _, err := r.Commit(sha); return err }},
		{"resolve missing ref", func() error { _, err := r.Resolve("refs/remotes/origin/nope"); return err }},
		{"resolve missing sha", func() error { _, err := r.Resolve(missing); return err }},
		{"merge base of unrelated histories", func() error { _, err := r.MergeBase(c1, u); return err }},
		{"diff at missing commit", func() error { _, err := r.Diff(ctx, "", missing, ""); return err }},
		{"first-parent from missing", func() error { _, err := r.FirstParent(ctx, missing, nil); return err }},
		{"pin missing", func() error { return r.Pin(missing) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.err(); !errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
		})
	}
	t.Run("pin", func(t *testing.T) {
		if err := r.Pin(u); err != nil {
			t.Fatal(err)
		}
		if err := r.Pin(u); err != nil {
			t.Fatal(err)
		}
		if got, err := r.Resolve(keepPrefix + u); err != nil || got != u {
			t.Errorf("resolve pin = %s, %v", got, err)
		}
		if ok, err := r.IsAncestor(c1, u); err != nil || ok {
			t.Errorf("unrelated ancestry = %v, %v", ok, err)
		}
	})
}

// TestConcurrentReadsDuringFetch is meant for -race: readers never wait
// for, or trip over, a fetch adding packs.
func TestConcurrentReadsDuringFetch(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src.git")
	if err := gitgen.Generate(ctx, src, 30, 200, 0); err != nil {
		t.Fatal(err)
	}
	r := openMirror(t, src)
	head, _ := r.Resolve("refs/remotes/origin/main")
	cs, _ := r.FirstParent(ctx, head, nil)
	var wg sync.WaitGroup
	done := make(chan struct{})
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				c := cs[(i*7+g)%len(cs)]
				if _, err := r.ListFiles(c.SHA, "prompts"); err != nil {
					t.Error(err)
					return
				}
				if _, err := r.Branches(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for k := range 5 {
		if err := gitgen.Generate(ctx, src, 30, 20, 200+20*k); err != nil {
			t.Fatal(err)
		}
		if err := r.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	head2, _ := r.Resolve("refs/remotes/origin/main")
	cs2, err := r.FirstParent(ctx, head2, nil)
	if err != nil || len(cs2) != 300 {
		t.Fatalf("after fetches: %d commits, %v", len(cs2), err)
	}
	checkAgainstGit(t, r, src, head2)
}

// TestSeesObjectsAnotherProcessFetched: a CLI sync fetches into the mirror
// while serve has it open. The open Repo must find the new objects (a new
// pack, or loose objects for a small fetch) without reopening.
func TestSeesObjectsAnotherProcessFetched(t *testing.T) {
	for _, tt := range []struct {
		name        string
		unpackLimit string // git keeps a fetch of fewer objects loose
	}{
		{"new pack", "1"},
		{"loose objects", "1000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorkRepo(t)
			w.commit("one", map[string]string{"prompts/a.yaml": "a: 1\n"})
			r := openMirror(t, w.dir)
			c2 := w.commit("two", map[string]string{"prompts/a.yaml": "a: 2\n"})
			blob := blobSHA(t, w, c2, "prompts/a.yaml")
			if _, err := r.Blob(blob); !errors.Is(err, ErrNotFound) {
				t.Fatalf("before the other fetch: err = %v, want ErrNotFound", err)
			}
			// Another process: git itself, fetching into the same mirror.
			git(t, r.dir, "-c", "fetch.unpackLimit="+tt.unpackLimit, "fetch", "-q", "origin")
			if got, err := r.Resolve("refs/remotes/origin/main"); err != nil || got != c2 {
				t.Fatalf("resolve main = %s, %v; want %s", got, err, c2)
			}
			if data, err := r.Blob(blob); err != nil || string(data) != "a: 2\n" {
				t.Fatalf("blob fetched by another process = %q, %v", data, err)
			}
			if n, err := r.BlobSize(blob); err != nil || n != 5 {
				t.Errorf("size = %d, %v", n, err)
			}
			if c, err := r.Commit(c2); err != nil || c.Message != "two\n" && c.Message != "two" {
				t.Errorf("commit = %+v, %v", c, err)
			}
		})
	}
}
