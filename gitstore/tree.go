package gitstore

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing"
)

// Change is one blob changed between two trees.
type Change struct {
	Path string // full repo path, e.g. "prompts/support/summarize.yaml"
	From string // blob SHA before; "" when added
	To   string // blob SHA after; "" when deleted
}

// entry is one raw tree entry: "mode SP name NUL 20-byte-hash". Its slices
// point into the tree's bytes, so walking a tree allocates nothing.
type entry struct {
	mode []byte
	name []byte
	hash []byte
}

func (e entry) isTree() bool { return len(e.mode) == 5 && string(e.mode) == "40000" }

// gitlink entries (submodules) name commits of another repository.
func (e entry) isGitlink() bool { return string(e.mode) == "160000" }

// nextEntry parses the entry at t[i:] and returns the index after it.
func nextEntry(t []byte, i int) (entry, int, error) {
	sp := bytes.IndexByte(t[i:], ' ')
	if sp < 0 {
		return entry{}, 0, fmt.Errorf("tree entry: %w", errCorrupt)
	}
	nul := bytes.IndexByte(t[i+sp:], 0)
	if nul < 0 || i+sp+nul+21 > len(t) {
		return entry{}, 0, fmt.Errorf("tree entry: %w", errCorrupt)
	}
	nul += i + sp
	return entry{mode: t[i : i+sp], name: t[i+sp+1 : nul], hash: t[nul+1 : nul+21]}, nul + 21, nil
}

// compareEntries orders entries as git sorts them: by name, a tree's name
// compared as if it ended in '/'.
func compareEntries(a, b entry) int {
	n := min(len(a.name), len(b.name))
	if c := bytes.Compare(a.name[:n], b.name[:n]); c != 0 {
		return c
	}
	ca, cb := nameEnd(a, n), nameEnd(b, n)
	switch {
	case ca < cb:
		return -1
	case ca > cb:
		return 1
	}
	return 0
}

func nameEnd(e entry, n int) byte {
	if len(e.name) > n {
		return e.name[n]
	}
	if e.isTree() {
		return '/'
	}
	return 0
}

// tree returns a tree's raw bytes; the zero hash is the empty tree.
func (r *Repo) tree(h plumbing.Hash) ([]byte, error) {
	if h.IsZero() {
		return nil, nil
	}
	typ, data, err := r.object(h)
	if err != nil {
		return nil, err
	}
	if typ != objTree {
		return nil, fmt.Errorf("%s is not a tree", h)
	}
	return data, nil
}

// lookup finds name in a raw tree.
func lookup(t []byte, name string) (entry, bool, error) {
	for i := 0; i < len(t); {
		e, next, err := nextEntry(t, i)
		if err != nil {
			return entry{}, false, err
		}
		if string(e.name) == name {
			return e, true, nil
		}
		i = next
	}
	return entry{}, false, nil
}

// subtree returns the hash of the tree at dir (split into parts) under
// root; the zero hash when it does not exist.
func (r *Repo) subtree(root plumbing.Hash, parts []string) (plumbing.Hash, error) {
	h := root
	for _, p := range parts {
		t, err := r.tree(h)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		e, ok, err := lookup(t, p)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if !ok || !e.isTree() {
			return plumbing.ZeroHash, nil
		}
		h = plumbing.Hash(e.hash)
	}
	return h, nil
}

func splitDir(dir string) []string {
	dir = strings.Trim(dir, "/")
	if dir == "" {
		return nil
	}
	return strings.Split(dir, "/")
}

func dirPrefix(parts []string) string {
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "/") + "/"
}

// diffTrees appends the blob changes between trees a and b (zero = empty)
// to out, with paths under prefix, in path order. Equal subtrees are
// skipped without being read.
func (r *Repo) diffTrees(prefix string, a, b plumbing.Hash, out []Change) ([]Change, error) {
	if a == b {
		return out, nil
	}
	ta, err := r.tree(a)
	if err != nil {
		return out, err
	}
	tb, err := r.tree(b)
	if err != nil {
		return out, err
	}
	i, j := 0, 0
	for i < len(ta) && j < len(tb) {
		// Most entries of two versions of a directory are identical byte
		// for byte: skip them with one IndexByte and one compare.
		if nul := bytes.IndexByte(ta[i:], 0); nul >= 0 {
			n := nul + 21
			if i+n <= len(ta) && j+n <= len(tb) && bytes.Equal(ta[i:i+n], tb[j:j+n]) {
				i += n
				j += n
				continue
			}
		}
		ea, ni, err := nextEntry(ta, i)
		if err != nil {
			return out, err
		}
		eb, nj, err := nextEntry(tb, j)
		if err != nil {
			return out, err
		}
		switch c := compareEntries(ea, eb); {
		case c < 0:
			out, err = r.oneSide(prefix, ea, true, out)
			i = ni
		case c > 0:
			out, err = r.oneSide(prefix, eb, false, out)
			j = nj
		default:
			i, j = ni, nj
			switch {
			case bytes.Equal(ea.hash, eb.hash):
				// Mode-only change (e.g. chmod +x): the content did not change.
			case ea.isTree():
				out, err = r.diffTrees(prefix+string(ea.name)+"/", plumbing.Hash(ea.hash), plumbing.Hash(eb.hash), out)
			case ea.isGitlink() || eb.isGitlink():
				if !ea.isGitlink() {
					out, err = r.oneSide(prefix, ea, true, out)
				} else if !eb.isGitlink() {
					out, err = r.oneSide(prefix, eb, false, out)
				}
			default:
				out = append(out, Change{Path: prefix + string(ea.name), From: hex.EncodeToString(ea.hash), To: hex.EncodeToString(eb.hash)})
			}
		}
		if err != nil {
			return out, err
		}
	}
	for i < len(ta) {
		ea, ni, err := nextEntry(ta, i)
		if err != nil {
			return out, err
		}
		if out, err = r.oneSide(prefix, ea, true, out); err != nil {
			return out, err
		}
		i = ni
	}
	for j < len(tb) {
		eb, nj, err := nextEntry(tb, j)
		if err != nil {
			return out, err
		}
		if out, err = r.oneSide(prefix, eb, false, out); err != nil {
			return out, err
		}
		j = nj
	}
	return out, nil
}

// oneSide reports an entry present only before (deleted) or only after
// (added); a tree contributes every blob beneath it.
func (r *Repo) oneSide(prefix string, e entry, deleted bool, out []Change) ([]Change, error) {
	switch {
	case e.isGitlink():
		return out, nil
	case e.isTree():
		if deleted {
			return r.diffTrees(prefix+string(e.name)+"/", plumbing.Hash(e.hash), plumbing.ZeroHash, out)
		}
		return r.diffTrees(prefix+string(e.name)+"/", plumbing.ZeroHash, plumbing.Hash(e.hash), out)
	case deleted:
		return append(out, Change{Path: prefix + string(e.name), From: hex.EncodeToString(e.hash)}), nil
	default:
		return append(out, Change{Path: prefix + string(e.name), To: hex.EncodeToString(e.hash)}), nil
	}
}

// commitTree returns a commit's root tree hash and first parent.
func (r *Repo) commitTree(h plumbing.Hash) (rawCommit, error) {
	data, err := r.readCommit(h)
	if err != nil {
		return rawCommit{}, err
	}
	c, err := parseRaw(data)
	if err != nil {
		return rawCommit{}, fmt.Errorf("commit %s: %w", h, err)
	}
	return c, nil
}

func (r *Repo) dirTree(commit string, parts []string) (plumbing.Hash, error) {
	if commit == "" {
		return plumbing.ZeroHash, nil
	}
	h, err := parseSHA(commit)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	c, err := r.commitTree(h)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return r.subtree(c.tree, parts)
}

// Diff returns the blob changes under dir ("prompts"; "" = whole tree)
// between two commits (from "" = empty tree), sorted by path. There is no
// rename detection: a rename is a delete plus an add. Mode-only changes
// are not reported.
func (r *Repo) Diff(ctx context.Context, from, to, dir string) ([]Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	parts := splitDir(dir)
	a, err := r.dirTree(from, parts)
	if err != nil {
		return nil, fmt.Errorf("diff %s..%s: %w", from, to, err)
	}
	b, err := r.dirTree(to, parts)
	if err != nil {
		return nil, fmt.Errorf("diff %s..%s: %w", from, to, err)
	}
	out, err := r.diffTrees(dirPrefix(parts), a, b, nil)
	if err != nil {
		return nil, fmt.Errorf("diff %s..%s: %w", from, to, err)
	}
	sortChanges(out)
	return out, nil
}

// sortChanges is a safety net: the merge walk already yields path order
// for any tree git itself would write.
func sortChanges(cs []Change) {
	cmp := func(a, b Change) int { return strings.Compare(a.Path, b.Path) }
	if !slices.IsSortedFunc(cs, cmp) {
		slices.SortFunc(cs, cmp)
	}
}

// WalkChanges diffs each of commits (as returned by FirstParent, oldest
// first) against its first parent (the empty tree for a root commit),
// restricted to dir, and calls fn in commit order. fn's error stops the
// walk and is returned.
//
// It is the bulk indexing path: commits are diffed in chunks on up to
// GOMAXPROCS goroutines while fn consumes results in order. Within a chunk,
// commit i's parent tree is commit i-1's tree, still in the object cache.
func (r *Repo) WalkChanges(ctx context.Context, commits []Commit, dir string, fn func(c Commit, changes []Change) error) error {
	parts := splitDir(dir)
	prefix := dirPrefix(parts)
	workers := min(runtime.GOMAXPROCS(0), 8)
	const minChunk = 512
	if workers < 2 || len(commits) < 2*minChunk {
		w := walker{r: r, parts: parts, prefix: prefix}
		for _, c := range commits {
			changes, err := w.next(ctx, c)
			if err != nil {
				return err
			}
			if err := fn(c, changes); err != nil {
				return err
			}
		}
		return nil
	}

	// Each extra chunk costs one cold parent tree; a few chunks per
	// worker balance the load without paying that often.
	size := max(minChunk, len(commits)/(workers*4)+1)
	n := (len(commits) + size - 1) / size
	type result struct {
		changes [][]Change
		err     error
		done    chan struct{}
	}
	results := make([]result, n)
	for i := range results {
		results[i].done = make(chan struct{})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Tokens bound how far workers run ahead of fn.
	tokens := make(chan struct{}, 2*workers)
	var nextChunk atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case tokens <- struct{}{}:
				case <-ctx.Done():
					return
				}
				i := int(nextChunk.Add(1) - 1)
				if i >= n {
					return
				}
				chunk := commits[i*size : min((i+1)*size, len(commits))]
				w := walker{r: r, parts: parts, prefix: prefix}
				res := &results[i]
				res.changes = make([][]Change, 0, len(chunk))
				for _, c := range chunk {
					changes, err := w.next(ctx, c)
					if err != nil {
						res.err = err
						break
					}
					res.changes = append(res.changes, changes)
				}
				close(res.done)
			}
		}()
	}
	defer wg.Wait() // after cancel: no worker outlives the call
	for i := range results {
		select {
		case <-results[i].done:
		case <-ctx.Done():
			return fmt.Errorf("walk changes: %w", ctx.Err())
		}
		res := &results[i]
		for k, changes := range res.changes {
			if err := fn(commits[i*size+k], changes); err != nil {
				return err
			}
		}
		if res.err != nil {
			return res.err
		}
		res.changes = nil
		<-tokens
	}
	return nil
}

// walker diffs consecutive commits, remembering the last one's tree.
type walker struct {
	r      *Repo
	parts  []string
	prefix string
	prev   plumbing.Hash // last commit walked
	prevT  plumbing.Hash // its tree at dir
}

func (w *walker) next(ctx context.Context, c Commit) ([]Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("walk changes: %w", err)
	}
	h, err := parseSHA(c.SHA)
	if err != nil {
		return nil, fmt.Errorf("walk changes: %w", err)
	}
	rc, err := w.r.commitTree(h)
	if err != nil {
		return nil, fmt.Errorf("walk changes at %s: %w", c.SHA, err)
	}
	cur, err := w.r.subtree(rc.tree, w.parts)
	if err != nil {
		return nil, fmt.Errorf("walk changes at %s: %w", c.SHA, err)
	}
	var parent plumbing.Hash
	if len(rc.parents) > 0 {
		if p := rc.parents[0]; p == w.prev && !w.prev.IsZero() {
			parent = w.prevT
		} else {
			pc, err := w.r.commitTree(p)
			if err != nil {
				return nil, fmt.Errorf("walk changes at %s: parent: %w", c.SHA, err)
			}
			if parent, err = w.r.subtree(pc.tree, w.parts); err != nil {
				return nil, fmt.Errorf("walk changes at %s: parent: %w", c.SHA, err)
			}
		}
	}
	w.prev, w.prevT = h, cur
	changes, err := w.r.diffTrees(w.prefix, parent, cur, nil)
	if err != nil {
		return nil, fmt.Errorf("walk changes at %s: %w", c.SHA, err)
	}
	sortChanges(changes)
	return changes, nil
}

// Blob returns a blob's content; ErrNotFound if absent.
func (r *Repo) Blob(sha string) ([]byte, error) {
	h, err := parseSHA(sha)
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	typ, data, err := r.object(h)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", sha, err)
	}
	if typ != objBlob {
		return nil, fmt.Errorf("blob %s: not a blob: %w", sha, ErrNotFound)
	}
	return bytes.Clone(data), nil // the cache's copy stays unmodified
}

// BlobSize returns a blob's size without reading its content, so an
// oversized file can be refused cheaply.
func (r *Repo) BlobSize(sha string) (int64, error) {
	h, err := parseSHA(sha)
	if err != nil {
		return 0, fmt.Errorf("blob size: %w", err)
	}
	typ, n, err := r.objectSize(h)
	if err != nil {
		return 0, fmt.Errorf("blob size %s: %w", sha, err)
	}
	if typ != objBlob {
		return 0, fmt.Errorf("blob size %s: not a blob: %w", sha, ErrNotFound)
	}
	return n, nil
}

// ReadFile returns the blob SHA and content of path at commit.
func (r *Repo) ReadFile(commit, path string) (blobSHA string, data []byte, err error) {
	parts := splitDir(path)
	if len(parts) == 0 {
		return "", nil, fmt.Errorf("read %s at %s: empty path: %w", path, commit, ErrNotFound)
	}
	dir, err := r.dirTree(commit, parts[:len(parts)-1])
	if err != nil {
		return "", nil, fmt.Errorf("read %s at %s: %w", path, commit, err)
	}
	t, err := r.tree(dir)
	if err != nil {
		return "", nil, fmt.Errorf("read %s at %s: %w", path, commit, err)
	}
	e, ok, err := lookup(t, parts[len(parts)-1])
	if err != nil {
		return "", nil, fmt.Errorf("read %s at %s: %w", path, commit, err)
	}
	if !ok || e.isTree() || e.isGitlink() {
		return "", nil, fmt.Errorf("read %s at %s: %w", path, commit, ErrNotFound)
	}
	sha := hex.EncodeToString(e.hash)
	data, err = r.Blob(sha)
	if err != nil {
		return "", nil, fmt.Errorf("read %s at %s: %w", path, commit, err)
	}
	return sha, data, nil
}

// ListFiles returns every file under dir at commit: path → blob SHA.
func (r *Repo) ListFiles(commit, dir string) (map[string]string, error) {
	parts := splitDir(dir)
	t, err := r.dirTree(commit, parts)
	if err != nil {
		return nil, fmt.Errorf("list %s at %s: %w", dir, commit, err)
	}
	changes, err := r.diffTrees(dirPrefix(parts), plumbing.ZeroHash, t, nil)
	if err != nil {
		return nil, fmt.Errorf("list %s at %s: %w", dir, commit, err)
	}
	out := make(map[string]string, len(changes))
	for _, c := range changes {
		out[c.Path] = c.To
	}
	return out, nil
}
