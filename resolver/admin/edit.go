package admin

// Editing in the dashboard: validate and preview uncommitted source, commit
// it as a draft on a branch (pushed to the repository, or through GitHub's
// API with a pull request), and merge a draft. An edit never bypasses
// review: it is a commit on a branch, the branch is a draft, and only a
// merge makes a version.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver"
)

// MaxSourceBytes bounds a prompt file sent for validation, preview or
// commit: the prompt file limit, which MaxBodyBytes would cut far below.
const MaxSourceBytes = promptvault.MaxFileSize

// DraftHost commits drafts and merges them where the repository is hosted
// with a review flow of its own (GitHub mode). Without one, drafts are
// branches pushed to the repository and merges are done here.
type DraftHost interface {
	// CommitDraft commits content at path on branch (created from base
	// branch when missing) with message and author, refusing with
	// index.ErrConflict when the branch is no longer at expect (when
	// expect is set), and opens or updates the branch's pull request.
	CommitDraft(ctx context.Context, c HostedCommit) (HostedDraft, error)
	// MergeDraft merges the pull request of a draft ("pr-N"); a refusal
	// (reviews, checks, conflicts) is index.ErrConflict with the reason.
	MergeDraft(ctx context.Context, draft, message string) (commit string, err error)
	// PullRequestURL is the page of pull request number, for links.
	PullRequestURL(number int) string
}

// HostedCommit is one commit for DraftHost.CommitDraft.
type HostedCommit struct {
	Branch, BaseBranch, Expect string
	Path                       string
	Content                    []byte
	Message                    string
	AuthorName, AuthorEmail    string
}

// HostedDraft is what DraftHost.CommitDraft made.
type HostedDraft struct {
	Commit         string
	PullRequest    int
	PullRequestURL string
}

// branchName is what a dashboard draft may be called: a Git branch name
// without the forms Git refuses or that read as something else here.
var branchName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$`)

func checkBranch(name, tracked string) error {
	switch {
	case !branchName.MatchString(name) || strings.Contains(name, "..") || strings.HasSuffix(name, ".lock") || len(name) > 100:
		return fmt.Errorf("%w: draft name %q: want letters, digits, '.', '_', '-' and '/' between them (a Git branch name, at most 100 characters)", index.ErrInvalid, name)
	case name == tracked:
		return fmt.Errorf("%w: draft name %q is the tracked branch; a draft is another branch", index.ErrInvalid, name)
	case strings.HasPrefix(name, "pr-"):
		return fmt.Errorf("%w: draft name %q: pr-N names pull request drafts; pick another name", index.ErrInvalid, name)
	}
	return nil
}

// sourceBody is what validate and preview take.
type sourceBody struct {
	Key       string          `json:"key"`
	Source    *string         `json:"source"`
	Variables json.RawMessage `json:"variables"`
}

// decodeSource reads a body that carries a prompt file, bounded by the
// file limit plus room for the JSON around it.
func decodeSource(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, 2*MaxSourceBytes+MaxBodyBytes)
	return decodeBodyN(w, r, v, 2*MaxSourceBytes+MaxBodyBytes)
}

// promptPath is where key's file lives: its indexed path, or
// PROMPTS_DIR/KEY.yaml for a new prompt.
func (h *Handler) promptPath(ctx context.Context, key string) (string, error) {
	var p string
	err := h.db.View(ctx, func(tx *index.Tx) error {
		info, err := tx.PromptInfo(ctx, key)
		if errors.Is(err, index.ErrNotFound) {
			return nil
		}
		p = info.Path
		return err
	})
	if p == "" {
		p = path.Join(h.cfg.PromptsDir, key+".yaml")
	}
	return p, err
}

type problemView struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

// parseSource checks key and parses source as key's file.
func (h *Handler) parseSource(ctx context.Context, key string, source *string) (*promptvault.Prompt, string, error) {
	if key == "" {
		return nil, "", fmt.Errorf(`%w: request body needs "key", the prompt's key`, index.ErrInvalid)
	}
	if _, err := pathKey(key); err != nil {
		return nil, "", err
	}
	if source == nil {
		return nil, "", fmt.Errorf(`%w: request body needs "source", the prompt file's text`, index.ErrInvalid)
	}
	p, err := h.promptPath(ctx, key)
	if err != nil {
		return nil, "", err
	}
	pr, err := promptvault.Parse(p, []byte(*source))
	return pr, p, err
}

// validate answers POST /v1/admin/validate: 200 either way, with every
// problem at its line and column.
func (h *Handler) validate(w http.ResponseWriter, r *http.Request, _ caller, _ params) {
	var b sourceBody
	if err := decodeSource(w, r, &b); err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	if len(b.Variables) > 0 {
		resolver.WriteError(w, r, fmt.Errorf(`%w: request body has unknown field "variables" (that is preview's)`, index.ErrInvalid))
		return
	}
	_, _, err := h.parseSource(r.Context(), b.Key, b.Source)
	out := struct {
		Valid    bool          `json:"valid"`
		Problems []problemView `json:"problems"`
	}{Valid: err == nil, Problems: []problemView{}}
	var probs *promptvault.Problems
	switch {
	case errors.As(err, &probs):
		for _, p := range probs.List {
			out.Problems = append(out.Problems, problemView{p.Line, p.Column, p.Message})
		}
	case err != nil:
		resolver.WriteError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, out)
}

// preview answers POST /v1/admin/preview with what render would answer for
// the uncommitted source.
func (h *Handler) preview(w http.ResponseWriter, r *http.Request, _ caller, _ params) {
	var b sourceBody
	if err := decodeSource(w, r, &b); err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	vars := map[string]any{}
	if len(b.Variables) > 0 && !bytes.Equal(bytes.TrimSpace(b.Variables), []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(b.Variables))
		dec.UseNumber() // as render does: 3 and 3.0 stay what they were
		if err := dec.Decode(&vars); err != nil {
			resolver.WriteError(w, r, fmt.Errorf(`%w: "variables" must be a JSON object: %v`, index.ErrInvalid, err))
			return
		}
	}
	p, _, err := h.parseSource(r.Context(), b.Key, b.Source)
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	out, err := h.res.Preview(r.Context(), b.Key, p, vars)
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(out)
}

// draftBody is PUT .../drafts/{name}.
type draftBody struct {
	Source  *string `json:"source"`
	Message string  `json:"message"`
	Base    string  `json:"base"`
}

// draftView is a committed draft: as the versions endpoint lists it, plus
// its pull request in GitHub mode.
type draftView struct {
	versionView
	Branch string `json:"branch"`
}

// author is the commit author for an admin: the key's name, so the
// history says who edited (keys are per person or per tool).
func (h *Handler) author(ctx context.Context, c caller) (name, email string, err error) {
	err = h.db.View(ctx, func(tx *index.Tx) error {
		keys, err := tx.Keys(ctx)
		for _, k := range keys {
			if k.ID == c.keyID {
				name = k.Name
			}
		}
		return err
	})
	if name == "" {
		name = "admin key " + c.keyID
	}
	return name, "admin-" + c.keyID + "@promptvault.invalid", err
}

// commitDraft answers PUT /v1/admin/prompts/{key}/drafts/{name}.
func (h *Handler) commitDraft(w http.ResponseWriter, r *http.Request, c caller, p params) {
	ctx := r.Context()
	var b draftBody
	if err := decodeSource(w, r, &b); err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	if err := checkBranch(p.arg, h.cfg.Branch); err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	if b.Base != "" && !isHexSHA(b.Base) {
		resolver.WriteError(w, r, fmt.Errorf(`%w: "base" %q: want the 40-hex commit your edit started from`, index.ErrInvalid, b.Base))
		return
	}
	_, file, err := h.parseSource(ctx, p.key, b.Source)
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	msg := strings.TrimSpace(b.Message)
	if msg == "" {
		msg = "Edit " + p.key + " in the dashboard"
	}
	name, email, err := h.author(ctx, c)
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	// One dashboard commit at a time per server: each reads a branch head
	// and pushes on top of it.
	h.editMu.Lock()
	defer h.editMu.Unlock()
	var out draftView
	if h.host != nil {
		out, err = h.commitHosted(ctx, p, file, *b.Source, msg, name, email, b.Base)
	} else {
		out, err = h.commitLocal(ctx, p, file, *b.Source, msg, name, email, b.Base)
	}
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	sum := sha256.Sum256([]byte(*b.Source))
	err = h.db.Update(ctx, func(tx *index.Tx) error {
		_, err := tx.Audit(ctx, index.AuditEntry{Action: index.ActDraftCommit, Actor: c.actor(), Key: p.key,
			Version: out.Version, Commit: out.Commit, SHA256: hex.EncodeToString(sum[:]),
			Detail: "branch " + p.arg + ": " + firstLine(msg)})
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	h.log.Info("draft committed", logKey, p.key, "branch", p.arg, "commit", out.Commit, logActor, c.actor())
	writeJSON(w, r, http.StatusOK, out)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func isHexSHA(s string) bool {
	if len(s) != 40 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// refresh fetches and indexes, so branch heads and drafts are current.
func (h *Handler) refresh(ctx context.Context) error {
	if h.sync == nil {
		return ErrNoSync
	}
	_, err := h.sync(ctx)
	return err
}

// commitLocal commits on branch p.arg in the mirror and pushes it to the
// repository; the next sync makes it draft:NAME.
func (h *Handler) commitLocal(ctx context.Context, p params, file, source, msg, name, email, base string) (draftView, error) {
	if err := h.refresh(ctx); err != nil {
		return draftView{}, err
	}
	parent, err := h.repo.Resolve(index.TrackedRef(p.arg))
	switch {
	case errors.Is(err, gitstore.ErrNotFound):
		// A new branch starts at the tracked branch's head.
		if parent, err = h.repo.Resolve(index.TrackedRef(h.cfg.Branch)); err != nil {
			return draftView{}, err
		}
	case err != nil:
		return draftView{}, err
	case base != "" && parent != base:
		return draftView{}, fmt.Errorf("%w: draft %s moved since you opened it (it is at %s, your edit started from %s); "+
			"reload it and apply your change again", index.ErrConflict, p.arg, short(parent), short(base))
	}
	sha, err := h.repo.WriteCommit(gitstore.NewCommit{Base: parent, Parents: []string{parent}, Message: msg,
		Name: name, Email: email, When: time.Now(),
		Changes: []gitstore.FileChange{{Path: file, Content: []byte(source)}}})
	if err != nil {
		return draftView{}, err
	}
	if err := h.repo.Push(ctx, sha, p.arg); err != nil {
		if errors.Is(err, gitstore.ErrRejected) {
			return draftView{}, fmt.Errorf("%w: the repository refused the commit on %s (it moved meanwhile?): %v", index.ErrConflict, p.arg, err)
		}
		return draftView{}, err
	}
	if err := h.refresh(ctx); err != nil {
		return draftView{}, err
	}
	return h.draftAfterCommit(ctx, p.key, "draft:"+p.arg, p.arg, sha, "")
}

// draftAfterCommit reads the draft a commit made, as the versions list
// shows it.
func (h *Handler) draftAfterCommit(ctx context.Context, key, label, branch, sha, prURL string) (draftView, error) {
	var v index.Version
	err := h.db.View(ctx, func(tx *index.Tx) (err error) {
		v, err = tx.Version(ctx, key, label)
		return err
	})
	if err != nil {
		return draftView{}, fmt.Errorf("committed %s on %s, but the index has no %s %s yet: %w", short(sha), branch, key, label, err)
	}
	out := draftView{versionView: h.view(v), Branch: branch}
	if prURL != "" {
		out.PullRequestURL = prURL // the host's own answer
	}
	return out, nil
}

// commitHosted commits through the host's API and indexes the pull
// request's head at once (the webhook would, a moment later).
func (h *Handler) commitHosted(ctx context.Context, p params, file, source, msg, name, email, base string) (draftView, error) {
	d, err := h.host.CommitDraft(ctx, HostedCommit{Branch: p.arg, BaseBranch: h.cfg.Branch, Expect: base, Path: file,
		Content: []byte(source), Message: msg, AuthorName: name, AuthorEmail: email})
	if err != nil {
		return draftView{}, err
	}
	draft := fmt.Sprintf("pr-%d", d.PullRequest)
	if err := h.refresh(ctx); err != nil {
		return draftView{}, err
	}
	if _, err := h.db.SyncDrafts(ctx, h.repo, h.cfg, index.DraftSource{Source: fmt.Sprintf("pr:%d", d.PullRequest), Name: draft, Head: d.Commit}); err != nil {
		return draftView{}, err
	}
	return h.draftAfterCommit(ctx, p.key, "draft:"+draft, p.arg, d.Commit, d.PullRequestURL)
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// mergeDraft answers POST .../drafts/{name}/merge.
func (h *Handler) mergeDraft(w http.ResponseWriter, r *http.Request, c caller, p params) {
	ctx := r.Context()
	var b struct {
		Message string `json:"message"`
	}
	if r.ContentLength != 0 {
		if err := decodeBody(w, r, &b); err != nil {
			resolver.WriteError(w, r, err)
			return
		}
	}
	name := strings.TrimPrefix(p.arg, "draft:")
	h.editMu.Lock()
	defer h.editMu.Unlock()
	var sha string
	var err error
	if h.host != nil {
		sha, err = h.host.MergeDraft(ctx, name, b.Message)
	} else {
		sha, err = h.mergeLocal(ctx, p.key, name, b.Message, c)
	}
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	if err := h.refresh(ctx); err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	out := struct {
		Key    string       `json:"key"`
		Merged bool         `json:"merged"`
		Commit string       `json:"commit"`
		Live   *pointerView `json:"live"`
	}{Key: p.key, Merged: true, Commit: sha}
	err = h.db.View(ctx, func(tx *index.Tx) error {
		ptr, ok, err := tx.Pointer(ctx, p.key, index.EnvLive)
		out.Live = viewPointer(ptr, ok)
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	h.log.Info("draft merged", logKey, p.key, "branch", name, "commit", sha, logActor, c.actor())
	writeJSON(w, r, http.StatusOK, out)
}

// mergeLocal merges branch name into the tracked branch with a merge
// commit and pushes it. It refuses (409) when both sides changed a file
// since they forked: that is not a clean merge, and resolving it is a
// person's job in Git.
func (h *Handler) mergeLocal(ctx context.Context, key, name, message string, c caller) (string, error) {
	if err := h.refresh(ctx); err != nil {
		return "", fmt.Errorf("before merge: %w", err)
	}
	head, err := h.repo.Resolve(index.TrackedRef(name))
	if errors.Is(err, gitstore.ErrNotFound) {
		return "", fmt.Errorf("draft %s of %s: no branch %s: %w", name, key, name, index.ErrNotFound)
	} else if err != nil {
		return "", err
	}
	tracked, err := h.repo.Resolve(index.TrackedRef(h.cfg.Branch))
	if err != nil {
		return "", err
	}
	mb, err := h.repo.MergeBase(tracked, head)
	if err != nil {
		return "", fmt.Errorf("%w: branch %s shares no history with %s", index.ErrConflict, name, h.cfg.Branch)
	}
	if mb == head {
		return "", fmt.Errorf("%w: branch %s has nothing to merge: %s already contains it", index.ErrConflict, name, h.cfg.Branch)
	}
	theirs, err := h.repo.Diff(ctx, mb, head, "")
	if err != nil {
		return "", err
	}
	ours, err := h.repo.Diff(ctx, mb, tracked, "")
	if err != nil {
		return "", err
	}
	touched := map[string]bool{}
	for _, ch := range ours {
		touched[ch.Path] = true
	}
	var changes []gitstore.FileChange
	for _, ch := range theirs {
		if touched[ch.Path] {
			return "", fmt.Errorf("%w: not a clean merge: %s changed %s since %s forked from %s; merge it in Git", index.ErrConflict,
				h.cfg.Branch, ch.Path, name, h.cfg.Branch)
		}
		fc := gitstore.FileChange{Path: ch.Path, Delete: ch.To == ""}
		if !fc.Delete {
			if fc.Content, err = h.repo.Blob(ch.To); err != nil {
				return "", err
			}
		}
		changes = append(changes, fc)
	}
	if message == "" {
		message = fmt.Sprintf("Merge branch '%s' (from the promptvault dashboard)", name)
	}
	an, ae, err := h.author(ctx, c)
	if err != nil {
		return "", err
	}
	sha, err := h.repo.WriteCommit(gitstore.NewCommit{Base: tracked, Parents: []string{tracked, head}, Changes: changes,
		Message: message, Name: an, Email: ae, When: time.Now()})
	if err != nil {
		return "", err
	}
	if err := h.repo.Push(ctx, sha, h.cfg.Branch); err != nil {
		if errors.Is(err, gitstore.ErrRejected) {
			return "", fmt.Errorf("%w: the repository refused the merge into %s: %v", index.ErrConflict, h.cfg.Branch, err)
		}
		return "", err
	}
	return sha, nil
}
