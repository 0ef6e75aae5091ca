// Package gitstore owns promptvault's own bare mirror of the prompts
// repository: it fetches it with go-git, walks the tracked branch's
// first-parent history, lists which files under prompts/ each commit
// changed and reads blobs. It knows nothing of prompts, versions or SQLite;
// index calls it and records what it finds.
//
// The mirror is a separate bare repository (remote "origin" = the user's
// repository or GitHub), so the user's working copy is never touched, and
// commits that a force push removes from a branch are pinned under
// refs/promptvault/keep/ so published versions stay readable.
//
// Reading objects bypasses go-git's object layer: packs are memory-mapped and
// trees compared as raw bytes (pack.go, tree.go), because go-git's DiffTree
// walk costs 19× the git CLI on a 40,000-commit history (notes/perf.md §2).
// go-git is used for what it is good at: the fetch protocol and refs.
package gitstore

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-billy/v5/osfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// ErrNotFound is returned when a ref, commit, blob, path or merge base does not exist.
var ErrNotFound = errors.New("not found")

// Ref namespaces.
const (
	remotePrefix = "refs/remotes/origin/"
	keepPrefix   = "refs/promptvault/keep/"
	headsSpec    = "+refs/heads/*:refs/remotes/origin/*"

	// pendingFile records the tracking refs a fetch started from, so that
	// a fetch interrupted before it pinned force-pushed heads is finished
	// by the next Open.
	pendingFile = "promptvault-fetch-heads"

	// cacheBytes bounds resolved trees and delta bases kept in memory.
	// A 2,000-prompt directory tree is ~100 KB, so this holds ~300
	// versions: a walk needs the last one (the next version's delta base),
	// or a chain of ≤ 50 when a pack deltifies old versions from new ones.
	// 64 MB walked no faster and cost ~100 MB more peak RSS.
	cacheBytes = 32 << 20
)

// Options configures Open.
type Options struct {
	// Auth is asked for credentials before each fetch; nil means none.
	// (GitHub tokens come from cmd.)
	Auth   func(ctx context.Context) (transport.AuthMethod, error)
	Logger *slog.Logger // nil = discard
}

// Repo is an open mirror. It is safe for concurrent use: object reads
// (commits, trees, blobs) never wait, ref reads wait for a running fetch,
// and fetches are serialised.
type Repo struct {
	dir  string
	url  string
	opts Options
	log  *slog.Logger

	// gitMu guards repo (go-git is not safe for concurrent use) and is
	// held for a whole Fetch, which also serialises fetches.
	gitMu sync.Mutex
	repo  *gogit.Repository

	packMu sync.Mutex // serialises reloadPacks
	packs  atomic.Pointer[packSet]
	cache  *objCache
}

// Open opens, or creates, the bare mirror at dir whose remote "origin" is
// url (a local path or a URL: file path, file://, http(s)://). If it exists
// with another URL, origin is repointed. Reading a local path works through
// go-git's file transport (git-upload-pack), which never writes to it.
func Open(dir, url string, opts Options) (*Repo, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open mirror %s: %w", dir, err)
	}
	url = normalizeURL(url)
	r := &Repo{dir: dir, url: url, opts: opts, log: opts.Logger, cache: newObjCache(cacheBytes)}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	st := newStorage(dir)
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err == nil {
		if r.repo, err = gogit.Open(st, nil); err != nil {
			return nil, fmt.Errorf("open mirror %s: %w", dir, err)
		}
	} else {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create mirror %s: %w", dir, err)
		}
		if r.repo, err = gogit.Init(st, nil); err != nil {
			return nil, fmt.Errorf("create mirror %s: %w", dir, err)
		}
	}
	if err := r.setOrigin(); err != nil {
		return nil, err
	}
	if err := r.reloadPacks(); err != nil {
		return nil, err
	}
	if err := r.finishPending(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Dir is the mirror's directory.
func (r *Repo) Dir() string { return r.dir }

// normalizeURL makes a relative local path absolute: go-git's file
// transport runs git-upload-pack in another directory.
func normalizeURL(u string) string {
	if strings.Contains(u, "://") || strings.HasPrefix(u, "/") {
		return u
	}
	if i := strings.Index(u, ":"); i > 0 && !strings.ContainsAny(u[:i], "/\\") {
		return u // scp-like user@host:path
	}
	if abs, err := filepath.Abs(u); err == nil {
		return abs
	}
	return u
}

func (r *Repo) setOrigin() error {
	cfg, err := r.repo.Config()
	if err != nil {
		return fmt.Errorf("read mirror config: %w", err)
	}
	want := &config.RemoteConfig{Name: "origin", URLs: []string{r.url}, Fetch: []config.RefSpec{headsSpec}}
	if old, ok := cfg.Remotes["origin"]; ok && len(old.URLs) == 1 && old.URLs[0] == r.url &&
		len(old.Fetch) == 1 && old.Fetch[0] == headsSpec {
		return nil
	} else if ok {
		r.log.Info("repointing mirror origin", "from", strings.Join(old.URLs, " "), "to", r.url)
	}
	cfg.Remotes["origin"] = want
	if err := r.repo.SetConfig(cfg); err != nil {
		return fmt.Errorf("set origin %s: %w", r.url, err)
	}
	return nil
}

func newStorage(dir string) *filesystem.Storage {
	return filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRU(4<<20), filesystem.Options{})
}

// dropGitLocked replaces go-git's view of the mirror with a fresh one. Its
// storage keeps every pack index it loaded, in memory, for good, and a
// fetch loads them all (to tell which objects it already has): 14 MB for a
// 40,000-commit history, held by a server that reads its objects through
// its own mapped packs. A fresh view loads nothing until it is used, so
// after a fetch, commit or push the indexes are garbage. Needs gitMu.
func (r *Repo) dropGitLocked() {
	repo, err := gogit.Open(newStorage(r.dir), nil)
	if err != nil {
		r.log.Warn("reopen mirror; keeping the old view", "dir", r.dir, "err", err)
		return
	}
	if st, ok := r.repo.Storer.(*filesystem.Storage); ok {
		st.Close()
	}
	r.repo = repo
}

// Close releases the mapped packs. It must not run concurrently with other
// methods.
func (r *Repo) Close() error {
	r.packMu.Lock()
	defer r.packMu.Unlock()
	var first error
	if s := r.packs.Swap(&packSet{}); s != nil {
		for _, p := range s.packs {
			if err := p.close(); err != nil && first == nil {
				first = err
			}
		}
	}
	r.cache = newObjCache(cacheBytes)
	return first
}

func (r *Repo) reloadPacks() error {
	r.packMu.Lock()
	defer r.packMu.Unlock()
	s, err := loadPacks(r.dir, r.packs.Load())
	if err != nil {
		return fmt.Errorf("load packs: %w", err)
	}
	r.packs.Store(s)
	return nil
}

// Fetch fetches "+refs/heads/*:refs/remotes/origin/*" with prune, plus any
// extra refspecs (e.g. "+refs/pull/7/head:refs/remotes/origin/pr/7").
// Already-up-to-date is success. A remote-tracking ref whose old head is
// not contained in its new head (force push), or that is deleted, has the
// old head pinned under refs/promptvault/keep/<sha>, so published versions'
// commits stay reachable. Like git fetch --prune, a later Fetch without the
// same extra refspec prunes refs it created under refs/remotes/origin/.
func (r *Repo) Fetch(ctx context.Context, extra ...string) error {
	specs := []config.RefSpec{headsSpec}
	for _, e := range extra {
		s := config.RefSpec(e)
		if err := s.Validate(); err != nil {
			return fmt.Errorf("fetch origin: refspec %q: %w", e, err)
		}
		specs = append(specs, s)
	}
	var auth transport.AuthMethod
	if r.opts.Auth != nil {
		var err error
		if auth, err = r.opts.Auth(ctx); err != nil {
			return fmt.Errorf("fetch origin: credentials: %w", err)
		}
	}

	r.gitMu.Lock()
	defer r.gitMu.Unlock()
	defer r.dropGitLocked()
	old, err := r.trackingLocked()
	if err != nil {
		return fmt.Errorf("fetch origin: %w", err)
	}
	// Pinning happens after go-git moved the refs (it offers no hook in
	// between); the old heads are written down first so a crash in
	// between is finished by the next Open. The objects themselves are
	// never deleted by go-git, so they stay readable meanwhile.
	if err := writePending(filepath.Join(r.dir, pendingFile), old); err != nil {
		return fmt.Errorf("fetch origin: %w", err)
	}
	ferr := r.repo.FetchContext(ctx, &gogit.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   specs,
		Auth:       auth,
		Tags:       gogit.NoTags,
		Prune:      true,
	})
	if errors.Is(ferr, gogit.NoErrAlreadyUpToDate) {
		ferr = nil
	}
	if err := r.reloadPacks(); err != nil && ferr == nil {
		ferr = err
	}
	if err := r.pinMovedLocked(old); err != nil {
		return errors.Join(fmt.Errorf("fetch origin: %w", err), ferr)
	}
	if ferr != nil {
		return fmt.Errorf("fetch origin: %w", ferr)
	}
	r.log.Debug("fetched", "remote", r.url)
	return nil
}

// finishPending pins what an interrupted Fetch could not.
func (r *Repo) finishPending() error {
	path := filepath.Join(r.dir, pendingFile)
	old, err := readPending(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read %s: %w", pendingFile, err)
	}
	r.gitMu.Lock()
	defer r.gitMu.Unlock()
	return r.pinMovedLocked(old)
}

// pinMovedLocked pins every old head that its ref no longer contains, then
// forgets the pending list. Needs gitMu.
func (r *Repo) pinMovedLocked(old map[string]plumbing.Hash) error {
	now, err := r.trackingLocked()
	if err != nil {
		return err
	}
	for name, h := range old {
		nh, ok := now[name]
		if ok && nh == h {
			continue
		}
		if ok {
			if anc, err := r.isAncestor(h, nh); err != nil {
				return fmt.Errorf("check %s: %w", name, err)
			} else if anc {
				continue
			}
		}
		if err := r.pinLocked(h); err != nil {
			return err
		}
		r.log.Info("pinned old branch head", "ref", name, "commit", h.String(), "deleted", !ok)
	}
	if err := os.Remove(filepath.Join(r.dir, pendingFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func writePending(path string, refs map[string]plumbing.Hash) error {
	var b bytes.Buffer
	for name, h := range refs {
		fmt.Fprintf(&b, "%s %s\n", h, name)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readPending(path string) (map[string]plumbing.Hash, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	refs := map[string]plumbing.Hash{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sha, name, ok := strings.Cut(sc.Text(), " ")
		if ok && plumbing.IsHash(sha) {
			refs[name] = plumbing.NewHash(sha)
		}
	}
	return refs, sc.Err()
}

// trackingLocked returns every ref under refs/remotes/origin/. Needs gitMu.
func (r *Repo) trackingLocked() (map[string]plumbing.Hash, error) {
	it, err := r.repo.Storer.IterReferences()
	if err != nil {
		return nil, fmt.Errorf("list refs: %w", err)
	}
	refs := map[string]plumbing.Hash{}
	err = it.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() == plumbing.HashReference && strings.HasPrefix(ref.Name().String(), remotePrefix) {
			refs[ref.Name().String()] = ref.Hash()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list refs: %w", err)
	}
	return refs, nil
}

// Branches returns every remote branch (name without
// "refs/remotes/origin/") → head commit SHA.
func (r *Repo) Branches() (map[string]string, error) {
	r.gitMu.Lock()
	refs, err := r.trackingLocked()
	r.gitMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("branches: %w", err)
	}
	out := make(map[string]string, len(refs))
	for name, h := range refs {
		out[strings.TrimPrefix(name, remotePrefix)] = h.String()
	}
	return out, nil
}

// Resolve returns the commit SHA a full ref name
// ("refs/remotes/origin/main") or a SHA points at; ErrNotFound if absent.
// Annotated tags are peeled.
func (r *Repo) Resolve(ref string) (string, error) {
	var h plumbing.Hash
	if isSHA(ref) {
		h = plumbing.NewHash(ref)
	} else {
		r.gitMu.Lock()
		res, err := storer.ResolveReference(r.repo.Storer, plumbing.ReferenceName(ref))
		r.gitMu.Unlock()
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			return "", fmt.Errorf("resolve %s: %w", ref, ErrNotFound)
		} else if err != nil {
			return "", fmt.Errorf("resolve %s: %w", ref, err)
		}
		h = res.Hash()
	}
	for range 10 {
		typ, data, err := r.object(h)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", ref, err)
		}
		switch typ {
		case objCommit:
			return h.String(), nil
		case objTag:
			// "object <sha>\n" starts every tag.
			if len(data) < 47 || !bytes.HasPrefix(data, []byte("object ")) {
				return "", fmt.Errorf("resolve %s: bad tag %s", ref, h)
			}
			h = plumbing.NewHash(string(data[7:47]))
		default:
			return "", fmt.Errorf("resolve %s: %s is not a commit: %w", ref, h, ErrNotFound)
		}
	}
	return "", fmt.Errorf("resolve %s: tag chain too long", ref)
}

// Pin keeps sha reachable under refs/promptvault/keep/<sha>.
func (r *Repo) Pin(sha string) error {
	if !isSHA(sha) {
		return fmt.Errorf("pin %s: %w", sha, ErrNotFound)
	}
	h := plumbing.NewHash(sha)
	if _, _, err := r.object(h); err != nil {
		return fmt.Errorf("pin %s: %w", sha, err)
	}
	r.gitMu.Lock()
	defer r.gitMu.Unlock()
	return r.pinLocked(h)
}

func (r *Repo) pinLocked(h plumbing.Hash) error {
	name := plumbing.ReferenceName(keepPrefix + h.String())
	if ref, err := r.repo.Storer.Reference(name); err == nil && ref.Hash() == h {
		return nil
	}
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(name, h)); err != nil {
		return fmt.Errorf("pin %s: %w", h, err)
	}
	return nil
}

func isSHA(s string) bool {
	if len(s) != 40 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func parseSHA(s string) (plumbing.Hash, error) {
	if !isSHA(s) {
		return plumbing.ZeroHash, fmt.Errorf("%q is not a SHA: %w", s, ErrNotFound)
	}
	return plumbing.NewHash(s), nil
}

// object returns an object's type and content. The content may be shared
// with the cache: callers must not modify it.
//
// A miss reloads the pack list when objects/pack changed since it was read,
// and looks again, as git does: another process (a CLI sync beside serve)
// may have fetched the object into a pack this Repo has not mapped yet.
func (r *Repo) object(h plumbing.Hash) (int, []byte, error) {
	typ, data, err := r.objectOnce(h)
	if errors.Is(err, ErrNotFound) && r.packsChanged() {
		if rerr := r.reloadPacks(); rerr != nil {
			return 0, nil, errors.Join(err, rerr)
		}
		return r.objectOnce(h)
	}
	return typ, data, err
}

func (r *Repo) objectOnce(h plumbing.Hash) (int, []byte, error) {
	set := r.packs.Load()
	if p, off, ok := set.find(h); ok {
		typ, data, err := objReader{set, r.cache}.read(p, off, false, 0)
		if err != nil {
			return 0, nil, fmt.Errorf("read %s: %w", h, err)
		}
		return typ, data, nil
	}
	return r.looseObject(h)
}

// packsChanged reports whether objects/pack may have changed since the
// mapped pack list was read (one stat, so a lookup of an absent SHA stays
// cheap).
func (r *Repo) packsChanged() bool {
	return r.packs.Load().stale(r.dir)
}

// objectSize returns an object's type and size without reading it.
func (r *Repo) objectSize(h plumbing.Hash) (int, int64, error) {
	typ, n, err := r.objectSizeOnce(h)
	if errors.Is(err, ErrNotFound) && r.packsChanged() {
		if rerr := r.reloadPacks(); rerr != nil {
			return 0, 0, errors.Join(err, rerr)
		}
		return r.objectSizeOnce(h)
	}
	return typ, n, err
}

func (r *Repo) objectSizeOnce(h plumbing.Hash) (int, int64, error) {
	set := r.packs.Load()
	if p, off, ok := set.find(h); ok {
		typ, n, err := objReader{set, r.cache}.size(p, off)
		if err != nil {
			return 0, 0, fmt.Errorf("read %s: %w", h, err)
		}
		return typ, n, nil
	}
	typ, data, err := r.looseObject(h)
	return typ, int64(len(data)), err
}

// looseObject reads objects/xx/yyyy…. go-git's fetch always writes packs;
// loose objects appear only if someone ran git on the mirror.
func (r *Repo) looseObject(h plumbing.Hash) (int, []byte, error) {
	s := h.String()
	f, err := os.Open(filepath.Join(r.dir, "objects", s[:2], s[2:]))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil, fmt.Errorf("object %s: %w", s, ErrNotFound)
	} else if err != nil {
		return 0, nil, fmt.Errorf("object %s: %w", s, err)
	}
	defer f.Close()
	zr, err := zlib.NewReader(f)
	if err != nil {
		return 0, nil, fmt.Errorf("object %s: %w", s, err)
	}
	defer zr.Close()
	data, err := io.ReadAll(zr)
	if err != nil {
		return 0, nil, fmt.Errorf("object %s: %w", s, err)
	}
	hdr, body, ok := bytes.Cut(data, []byte{0})
	kind, _, _ := strings.Cut(string(hdr), " ")
	typ := map[string]int{"commit": objCommit, "tree": objTree, "blob": objBlob, "tag": objTag}[kind]
	if !ok || typ == 0 {
		return 0, nil, fmt.Errorf("object %s: bad header", s)
	}
	return typ, body, nil
}
