package index

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/promptvault/promptvault/gitstore"
)

// ErrNotIndexed is returned when a merge commit is not in the index yet
// (sync first).
var ErrNotIndexed = errors.New("commit not indexed")

// Merge states recorded per merge commit.
const (
	MergeApplied     = "applied"
	MergePartial     = "partial"    // some prompts applied, others superseded or stale
	MergeSuperseded  = "superseded" // live already holds newer content for every prompt
	MergeStale       = "stale"      // live is not an ancestor of the merge: not applied
	MergeInvalid     = "invalid"
	MergeHeld        = "held"
	MergeNotPromoted = "not_promoted" // --auto-promote is not merged-pr
	MergeNothing     = "nothing"      // the pull request changed no prompt
)

// Merge is a merged pull request to promote.
type Merge struct {
	SHA      string   // merge_commit_sha: the merge, squash or last rebased commit
	PR       int      // pull request number
	Delivery string   // delivery GUID, or "" from reconcile
	Actor    string   // audit actor
	Changed  []string // repo paths the pull request changed (three-dot diff)
	// Hold records the merge without promoting (the hold label).
	Hold   bool
	Reason string // why not promoted, for Hold or a non-merged-pr mode
	// NotPromoted records the merge without promoting or auditing
	// (--auto-promote is push or none).
	NotPromoted bool
	// Quiet records superseded prompts without audit rows (reconcile
	// sweeping history, where old merges are superseded by design).
	Quiet bool
}

// MergeOutcome says what ApplyMerge did.
type MergeOutcome struct {
	State    string       `json:"state"`
	Already  bool         `json:"already"` // the merge commit was recorded before: nothing done
	Promoted []VersionRef `json:"promoted"`
	Archived []string     `json:"archived"`
	Refused  []string     `json:"refused"` // "key vN: why"
	Detail   string       `json:"detail"`
}

// MergeRecorded reports whether a merge commit was already handled.
func (tx *Tx) MergeRecorded(ctx context.Context, sha string) (state string, ok bool, err error) {
	err = tx.queryRow(ctx, "SELECT state FROM merges WHERE merge_sha = ?", sha).Scan(&state)
	if isNoRows(err) {
		return "", false, nil
	}
	return state, err == nil, err
}

// Bootstrapped reports whether any live pointer exists (the first sync's
// bootstrap has run).
func (tx *Tx) Bootstrapped(ctx context.Context) (bool, error) {
	var n int
	err := tx.queryRow(ctx, "SELECT count(*) FROM pointers WHERE env = 'live'").Scan(&n)
	return n > 0, err
}

// CommitIndexed reports whether sha is in the tracked-branch ledger.
func (tx *Tx) CommitIndexed(ctx context.Context, sha string) (bool, error) {
	var n int
	err := tx.queryRow(ctx, "SELECT count(*) FROM commits WHERE sha = ?", sha).Scan(&n)
	return n > 0, err
}

type mergeTarget struct {
	key     string
	version Version // zero when the merge deletes the prompt
	deleted bool
	cur     Pointer
	hasCur  bool
}

// ApplyMerge promotes the prompts a merged pull request changed, with their
// content at the merge commit (right for merge, squash and rebase merges),
// under SPEC §2: all or none when any is invalid; never backwards (a prompt
// is applied only if its live commit is an ancestor of the merge commit; one
// whose live commit descends from it is superseded, anything else stale,
// both recorded and audited, not applied); at most once per merge commit
// (the merges primary key). The merge commit must be indexed.
func (tx *Tx) ApplyMerge(ctx context.Context, repo *gitstore.Repo, cfg Config, m Merge) (MergeOutcome, error) {
	cfg.defaults()
	out := MergeOutcome{}
	r, err := tx.exec(ctx, `INSERT INTO merges(merge_sha, pr, state, delivery, at) VALUES(?,?,'',?,?)
		ON CONFLICT(merge_sha) DO NOTHING`, m.SHA, m.PR, m.Delivery, now())
	if err != nil {
		return out, fmt.Errorf("record merge %s: %w", m.SHA, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		out.Already = true
		out.State, _, err = tx.MergeRecorded(ctx, m.SHA)
		return out, err
	}
	targets, err := tx.mergeTargets(ctx, repo, cfg, m)
	if err != nil {
		return out, err
	}
	refuse := func(t mergeTarget, why string, audit bool) error {
		label := t.version.Label
		if t.deleted {
			label = LabelArchived
		}
		out.Refused = append(out.Refused, t.key+" "+label+": "+why)
		if !audit {
			return nil
		}
		_, err := tx.Audit(ctx, AuditEntry{Action: ActPromotionRefused, Actor: m.Actor, Key: t.key, Version: label,
			Commit: m.SHA, SHA256: t.version.SHA256, Env: EnvLive,
			Detail: fmt.Sprintf("pull request #%d merge %s: %s", m.PR, m.SHA, why)})
		return err
	}
	finish := func(state, detail string) (MergeOutcome, error) {
		out.State, out.Detail = state, detail
		_, err := tx.exec(ctx, "UPDATE merges SET state = ?, detail = ? WHERE merge_sha = ?", state, detail, m.SHA)
		return out, err
	}
	switch {
	case len(targets) == 0:
		return finish(MergeNothing, "no prompt changed")
	case m.NotPromoted:
		for _, t := range targets {
			_ = refuse(t, m.Reason, false)
		}
		return finish(MergeNotPromoted, m.Reason)
	case m.Hold:
		for _, t := range targets {
			if err := refuse(t, m.Reason, true); err != nil {
				return out, err
			}
		}
		return finish(MergeHeld, m.Reason)
	}

	var apply []mergeTarget
	superseded, stale := 0, 0
	for _, t := range targets {
		if !t.hasCur || t.cur.Commit == "" {
			apply = append(apply, t)
			continue
		}
		anc, err := repo.IsAncestor(t.cur.Commit, m.SHA)
		if err != nil && !errors.Is(err, gitstore.ErrNotFound) {
			return out, fmt.Errorf("merge %s: %s: %w", m.SHA, t.key, err)
		}
		if anc {
			apply = append(apply, t)
			continue
		}
		if desc, _ := repo.IsAncestor(m.SHA, t.cur.Commit); desc {
			superseded++
			if err := refuse(t, "superseded: live "+t.cur.Label()+" at "+t.cur.Commit+" already descends from this merge", !m.Quiet); err != nil {
				return out, err
			}
			continue
		}
		stale++
		if err := refuse(t, "live "+t.cur.Label()+" at "+t.cur.Commit+" is not an ancestor of this merge; a late or diverged merge never moves live backwards", true); err != nil {
			return out, err
		}
	}
	var bad []string
	for _, t := range apply {
		if !t.deleted && !t.version.Valid {
			bad = append(bad, t.key+" "+t.version.Label)
		}
	}
	if len(bad) > 0 {
		why := "not promoted: invalid " + strings.Join(bad, ", ")
		for _, t := range apply {
			if err := refuse(t, why, true); err != nil {
				return out, err
			}
		}
		return finish(MergeInvalid, why)
	}
	for _, t := range apply {
		if t.deleted {
			if _, err := tx.Archive(ctx, t.key, m.SHA, m.Actor); err != nil {
				return out, fmt.Errorf("merge %s: archive %s: %w", m.SHA, t.key, err)
			}
			out.Archived = append(out.Archived, t.key)
			continue
		}
		if _, err := tx.Promote(ctx, t.key, t.version.Label, m.Actor); err != nil {
			return out, fmt.Errorf("merge %s: promote %s %s: %w", m.SHA, t.key, t.version.Label, err)
		}
		out.Promoted = append(out.Promoted, VersionRef{Key: t.key, Number: t.version.Number, Label: t.version.Label,
			Commit: t.version.Commit, Valid: true})
	}
	state := MergeApplied
	switch {
	case len(apply) == 0 && stale > 0:
		state = MergeStale
	case len(apply) == 0:
		state = MergeSuperseded
	case superseded+stale > 0:
		state = MergePartial
	}
	return finish(state, strings.Join(out.Refused, "; "))
}

// mergeTargets maps the pull request's changed paths to each prompt's
// version (or deletion) at the merge commit.
func (tx *Tx) mergeTargets(ctx context.Context, repo *gitstore.Repo, cfg Config, m Merge) ([]mergeTarget, error) {
	st := newSyncState(repo, cfg)
	keys := map[string]bool{}
	for _, p := range m.Changed {
		if key, ok, kerr := st.keyOf(p); ok && kerr == nil {
			keys[key] = true
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	var seq int64
	err := tx.queryRow(ctx, "SELECT seq FROM commits WHERE sha = ?", m.SHA).Scan(&seq)
	if isNoRows(err) {
		return nil, fmt.Errorf("merge %s: %w", m.SHA, ErrNotIndexed)
	} else if err != nil {
		return nil, err
	}
	files, err := repo.ListFiles(m.SHA, cfg.PromptsDir)
	if err != nil {
		return nil, fmt.Errorf("merge %s: list prompts: %w", m.SHA, err)
	}
	blobOf := map[string]string{}
	for p, blob := range files {
		if key, ok, kerr := st.keyOf(p); ok && kerr == nil && keys[key] {
			if cur, dup := blobOf[key]; !dup || p < cur {
				blobOf[key] = blob
			}
		}
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var out []mergeTarget
	for _, key := range sorted {
		t := mergeTarget{key: key}
		blob, present := blobOf[key]
		if !present {
			var n int
			if err := tx.queryRow(ctx, "SELECT count(*) FROM prompts WHERE key = ?", key).Scan(&n); err != nil {
				return nil, err
			}
			if n == 0 {
				continue // added and removed within the pull request
			}
			t.deleted = true
		} else {
			var num int
			err := tx.queryRow(ctx, `SELECT number FROM versions WHERE key = ? AND blob_sha = ? AND commit_seq <= ?
				ORDER BY number DESC LIMIT 1`, key, blob, seq).Scan(&num)
			if isNoRows(err) {
				return nil, fmt.Errorf("merge %s: no version of %s with blob %s: %w", m.SHA, key, blob, ErrNotIndexed)
			} else if err != nil {
				return nil, err
			}
			if t.version, err = tx.Version(ctx, key, Label(num)); err != nil {
				return nil, err
			}
		}
		if t.cur, t.hasCur, err = tx.Pointer(ctx, key, EnvLive); err != nil {
			return nil, err
		}
		if t.deleted && t.hasCur && t.cur.Archived {
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

// SyncDrafts (re)indexes one draft source, a pull request's head in GitHub
// mode: each prompt it changes relative to its merge base with the tracked
// branch becomes draft "draft:"+src.Name. A staging pointer on a rewritten
// draft follows it. The mirror must hold src.Head and the tracked branch.
func (db *DB) SyncDrafts(ctx context.Context, repo *gitstore.Repo, cfg Config, src DraftSource) (*SyncResult, error) {
	cfg.defaults()
	tracked, err := repo.Resolve(TrackedRef(cfg.Branch))
	if err != nil {
		return nil, fmt.Errorf("sync drafts %s: %w", src.Source, err)
	}
	res := &SyncResult{Branch: cfg.Branch, Head: tracked}
	if err := db.syncDraftSource(ctx, newSyncState(repo, cfg), tracked, src, res); err != nil {
		return nil, err
	}
	return res, nil
}

// DraftsOf returns every draft of a source, sorted by key.
func (tx *Tx) DraftsOf(ctx context.Context, source string) ([]Version, error) {
	return queryAll(ctx, tx, scanDraft, "SELECT "+draftCols+" FROM drafts WHERE source = ? ORDER BY key", source)
}

// DraftSources lists the draft sources with the given prefix ("pr:").
func (tx *Tx) DraftSources(ctx context.Context, prefix string) ([]string, error) {
	return tx.queryStrings(ctx, "SELECT source FROM draft_sources WHERE substr(source, 1, ?) = ? ORDER BY source", len(prefix), prefix)
}

// CommitSeq returns sha's position in the tracked-branch ledger.
func (tx *Tx) CommitSeq(ctx context.Context, sha string) (seq int64, ok bool, err error) {
	err = tx.queryRow(ctx, "SELECT seq FROM commits WHERE sha = ?", sha).Scan(&seq)
	if isNoRows(err) {
		return 0, false, nil
	}
	return seq, err == nil, err
}
