package gitstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// ErrRejected is returned when the remote refuses a push: the branch moved
// (not a fast-forward) or a hook or setting refused it.
var ErrRejected = errors.New("push rejected")

// FileChange is one path of a new commit: its new content, or its deletion.
type FileChange struct {
	Path    string
	Content []byte
	Delete  bool
}

// NewCommit describes a commit to write: the tree of Base with Changes
// applied, on top of Parents (first parent first).
type NewCommit struct {
	Base    string // commit whose tree is changed; "" for an empty tree
	Parents []string
	Changes []FileChange
	Message string
	Name    string // author and committer
	Email   string
	When    time.Time
}

// WriteCommit writes c's blobs, trees and commit into the mirror (loose
// objects, readable at once) and returns the commit's SHA. Nothing points
// at it until Push.
func (r *Repo) WriteCommit(c NewCommit) (string, error) {
	r.gitMu.Lock()
	defer r.gitMu.Unlock()
	defer r.dropGitLocked()
	var root plumbing.Hash
	if c.Base != "" {
		h, err := parseSHA(c.Base)
		if err != nil {
			return "", err
		}
		cm, err := r.repo.CommitObject(h)
		if err != nil {
			return "", fmt.Errorf("write commit: base %s: %w", c.Base, err)
		}
		root = cm.TreeHash
	}
	for _, ch := range c.Changes {
		parts := strings.Split(strings.Trim(ch.Path, "/"), "/")
		var blob *plumbing.Hash
		if !ch.Delete {
			h, err := r.storeBlob(ch.Content)
			if err != nil {
				return "", err
			}
			blob = &h
		}
		var err error
		if root, err = r.putPath(root, parts, blob); err != nil {
			return "", fmt.Errorf("write commit: %s: %w", ch.Path, err)
		}
	}
	if root.IsZero() {
		var err error
		if root, err = r.storeTree(nil); err != nil {
			return "", err
		}
	}
	sig := object.Signature{Name: c.Name, Email: c.Email, When: c.When}
	cm := &object.Commit{Author: sig, Committer: sig, Message: c.Message, TreeHash: root}
	for _, p := range c.Parents {
		h, err := parseSHA(p)
		if err != nil {
			return "", err
		}
		cm.ParentHashes = append(cm.ParentHashes, h)
	}
	obj := r.repo.Storer.NewEncodedObject()
	if err := cm.Encode(obj); err != nil {
		return "", fmt.Errorf("write commit: %w", err)
	}
	h, err := r.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return "", fmt.Errorf("write commit: %w", err)
	}
	return h.String(), nil
}

func (r *Repo) storeBlob(data []byte) (plumbing.Hash, error) {
	obj := r.repo.Storer.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return r.repo.Storer.SetEncodedObject(obj)
}

// storeTree writes a tree in Git's entry order: by name, a directory's
// name compared as if it ended in "/".
func (r *Repo) storeTree(entries []object.TreeEntry) (plumbing.Hash, error) {
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	obj := r.repo.Storer.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return r.repo.Storer.SetEncodedObject(obj)
}

// putPath returns the hash of tree (zero: empty) with parts set to blob
// (nil: removed). Emptied directories disappear, as in Git.
func (r *Repo) putPath(tree plumbing.Hash, parts []string, blob *plumbing.Hash) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	if !tree.IsZero() {
		t, err := r.repo.TreeObject(tree)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries = append(entries, t.Entries...)
	}
	name := parts[0]
	i, found := 0, false
	for ; i < len(entries); i++ {
		if entries[i].Name == name {
			found = true
			break
		}
	}
	var next *object.TreeEntry
	if len(parts) == 1 {
		if blob != nil {
			next = &object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: *blob}
		}
	} else {
		var sub plumbing.Hash
		if found {
			if entries[i].Mode != filemode.Dir {
				return plumbing.ZeroHash, fmt.Errorf("%s is a file, not a directory", name)
			}
			sub = entries[i].Hash
		}
		h, err := r.putPath(sub, parts[1:], blob)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if !h.IsZero() {
			next = &object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
		}
	}
	switch {
	case found && next != nil:
		entries[i] = *next
	case found:
		entries = append(entries[:i], entries[i+1:]...)
	case next != nil:
		entries = append(entries, *next)
	}
	if len(entries) == 0 {
		return plumbing.ZeroHash, nil
	}
	return r.storeTree(entries)
}

// Push points the remote's branch at sha. The remote accepts only a
// fast-forward, so a branch that moved since sha's parent was read is
// ErrRejected, as is any other refusal (with the remote's reason).
func (r *Repo) Push(ctx context.Context, sha, branch string) error {
	h, err := parseSHA(sha)
	if err != nil {
		return err
	}
	// git's receive.denyCurrentBranch, which go-git's in-process local
	// transport does not apply: updating the branch a working copy has
	// checked out would leave its files behind its branch.
	if head, err := os.ReadFile(filepath.Join(r.url, ".git", "HEAD")); err == nil &&
		strings.TrimSpace(string(head)) == "ref: refs/heads/"+branch {
		return fmt.Errorf("push %s: %w: %s has %s checked out; git refuses to push to a checked-out branch "+
			"(serve from a bare repository, or merge in that working copy)", branch, ErrRejected, r.url, branch)
	}
	var auth transport.AuthMethod
	if r.opts.Auth != nil {
		if auth, err = r.opts.Auth(ctx); err != nil {
			return fmt.Errorf("push %s: credentials: %w", branch, err)
		}
	}
	r.gitMu.Lock()
	defer r.gitMu.Unlock()
	defer r.dropGitLocked()
	// go-git pushes refs, not SHAs: a temporary ref names the commit.
	tmp := plumbing.ReferenceName("refs/promptvault/push/" + branch)
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(tmp, h)); err != nil {
		return fmt.Errorf("push %s: %w", branch, err)
	}
	defer r.repo.Storer.RemoveReference(tmp)
	err = r.repo.PushContext(ctx, &gogit.PushOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{config.RefSpec(tmp.String() + ":refs/heads/" + branch)},
		Auth:       auth,
	})
	switch {
	case err == nil, errors.Is(err, gogit.NoErrAlreadyUpToDate):
		return nil
	case errors.Is(err, gogit.ErrNonFastForwardUpdate), strings.Contains(err.Error(), "rejected"),
		strings.Contains(err.Error(), "refusing"), strings.Contains(err.Error(), "non-fast-forward"):
		return fmt.Errorf("push %s: %w: %v", branch, ErrRejected, err)
	}
	return fmt.Errorf("push %s: %w", branch, err)
}
