package index

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidVersion is returned when a version that failed validation would
// be made live or staging.
var ErrInvalidVersion = errors.New("version failed validation")

// Environments a pointer serves.
const (
	EnvLive    = "live"
	EnvStaging = "staging"
)

// Audit actions (SPEC §5).
const (
	ActBootstrap        = "bootstrap"
	ActPromote          = "promote"
	ActRollback         = "rollback"
	ActStagingSet       = "staging_set"
	ActStagingClear     = "staging_clear"
	ActDraftDelete      = "draft_delete"
	ActPromotionRefused = "promotion_refused"
	ActSettings         = "settings"
	ActKeyCreate        = "key_create"
	ActKeyRevoke        = "key_revoke"
	ActArchive          = "archive"
	ActDraftCommit      = "draft_commit"
	ActRepoSwitch       = "repo_switch"
)

// Change kinds in the change feed.
const (
	ChangePointer  = "pointer"
	ChangeDraft    = "draft"
	ChangeKeys     = "keys"
	ChangeSettings = "settings"
)

// LabelArchived is the label of a live pointer whose prompt was deleted.
const LabelArchived = "archived"

// Pointer is where live or staging of one prompt points.
type Pointer struct {
	Key       string `json:"key"`
	Env       string `json:"env"`
	Number    int    `json:"number,omitempty"`
	Draft     string `json:"draft,omitempty"`
	Archived  bool   `json:"archived,omitempty"`
	Commit    string `json:"commit"`
	SHA256    string `json:"sha256"`
	BlobSHA   string `json:"blob,omitempty"`
	Message   string `json:"message,omitempty"`
	Author    string `json:"author,omitempty"`
	CreatedAt string `json:"created_at,omitempty"`
	AuditSeq  int64  `json:"audit_seq"`
	UpdatedAt string `json:"updated_at"`
}

// Label is "vN", "draft:NAME" or "archived".
func (p Pointer) Label() string {
	switch {
	case p.Archived:
		return LabelArchived
	case p.Draft != "":
		return "draft:" + p.Draft
	default:
		return Label(p.Number)
	}
}

// AuditEntry is one row of the append-only audit log.
type AuditEntry struct {
	Seq     int64  `json:"seq"`
	At      string `json:"at"`
	Action  string `json:"action"`
	Actor   string `json:"actor"`
	Key     string `json:"key,omitempty"`
	Version string `json:"version,omitempty"`
	Commit  string `json:"commit,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Env     string `json:"env,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// Audit appends an entry and returns it with its sequence number.
func (tx *Tx) Audit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	if e.At == "" {
		e.At = now()
	}
	var err error
	e.Seq, err = tx.insertSeq(ctx, `INSERT INTO audit(at, action, actor, key, version, commit_sha, sha256, env, detail)
		VALUES(?,?,?,?,?,?,?,?,?)`, e.At, e.Action, e.Actor, e.Key, e.Version, e.Commit, e.SHA256, e.Env, e.Detail)
	if err != nil {
		return e, fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return e, nil
}

// notify records a change for in-memory caches to pick up.
func (tx *Tx) notify(ctx context.Context, kind, key string) error {
	_, err := tx.exec(ctx, "INSERT INTO changes(kind, key) VALUES(?, ?)", kind, key)
	tx.changed = true
	return err
}

const pointerCols = "key, env, number, draft, archived, commit_sha, sha256, blob_sha, message, author, created_at, audit_seq, updated_at"

func scanPointer(sc scanner) (Pointer, error) {
	var p Pointer
	err := sc.Scan(&p.Key, &p.Env, &p.Number, &p.Draft, &p.Archived, &p.Commit, &p.SHA256, &p.BlobSHA,
		&p.Message, &p.Author, &p.CreatedAt, &p.AuditSeq, &p.UpdatedAt)
	return p, err
}

// pointerTo is a pointer for env at version or draft v.
func pointerTo(v Version, env string) Pointer {
	p := Pointer{Key: v.Key, Env: env, Number: v.Number, Commit: v.Commit, SHA256: v.SHA256, BlobSHA: v.BlobSHA,
		Message: v.Message, Author: v.Author, CreatedAt: v.CreatedAt}
	if v.Draft {
		p.Number = 0
		p.Draft = strings.TrimPrefix(v.Label, "draft:")
		p.Archived = v.Deleted
	}
	return p
}

// Pointer returns key's pointer for env; ok is false when unset.
func (tx *Tx) Pointer(ctx context.Context, key, env string) (p Pointer, ok bool, err error) {
	p, err = scanPointer(tx.queryRow(ctx, "SELECT "+pointerCols+" FROM pointers WHERE key = ? AND env = ?", key, env))
	if isNoRows(err) {
		return p, false, nil
	}
	return p, err == nil, err
}

// AllPointers returns every pointer, sorted by key and env.
func (tx *Tx) AllPointers(ctx context.Context) ([]Pointer, error) {
	return queryAll(ctx, tx, scanPointer, "SELECT "+pointerCols+" FROM pointers ORDER BY key, env")
}

// setPointer moves a pointer, writing the audit row and change in the same
// transaction. It returns the audit entry.
func (tx *Tx) setPointer(ctx context.Context, p Pointer, action, actor, detail string) (AuditEntry, error) {
	if detail == "from " { // the pointer was unset: nothing to say it came from
		detail = ""
	}
	prev, hadPrev, err := tx.Pointer(ctx, p.Key, p.Env)
	if err != nil {
		return AuditEntry{}, err
	}
	e, err := tx.Audit(ctx, AuditEntry{Action: action, Actor: actor, Key: p.Key, Version: p.Label(),
		Commit: p.Commit, SHA256: p.SHA256, Env: p.Env, Detail: detail})
	if err != nil {
		return e, err
	}
	prevLabel := ""
	if hadPrev {
		prevLabel = prev.Label()
	}
	// The publish event is written here, where every pointer move passes,
	// so it commits (or rolls back) with the move.
	if err := tx.enqueue(ctx, e, p, prevLabel); err != nil {
		return e, err
	}
	p.AuditSeq = e.Seq
	p.UpdatedAt = e.At
	_, err = tx.exec(ctx, `INSERT INTO pointers(`+pointerCols+`) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(key, env) DO UPDATE SET number=excluded.number, draft=excluded.draft, archived=excluded.archived,
		commit_sha=excluded.commit_sha, sha256=excluded.sha256, blob_sha=excluded.blob_sha, message=excluded.message,
		author=excluded.author, created_at=excluded.created_at, audit_seq=excluded.audit_seq, updated_at=excluded.updated_at`,
		p.Key, p.Env, p.Number, p.Draft, p.Archived, p.Commit, p.SHA256, p.BlobSHA, p.Message, p.Author, p.CreatedAt,
		p.AuditSeq, p.UpdatedAt)
	if err != nil {
		return e, fmt.Errorf("move %s %s: %w", p.Env, p.Key, err)
	}
	return e, tx.notify(ctx, ChangePointer, p.Key)
}

// published looks up a published, valid version for a pointer.
func (tx *Tx) published(ctx context.Context, key, label string) (Version, error) {
	if _, err := tx.PromptInfo(ctx, key); err != nil {
		return Version{}, err
	}
	n, draft, err := ParseLabel(label)
	if err != nil {
		return Version{}, err
	}
	if draft != "" {
		return Version{}, fmt.Errorf("%w: live points only at published versions; %s is a draft (put drafts on staging)", ErrInvalid, label)
	}
	v, err := tx.Version(ctx, key, Label(n))
	if err != nil {
		return v, err
	}
	if !v.Valid {
		return v, fmt.Errorf("%s %s: %w: %s", key, v.Label, ErrInvalidVersion, problemSummary(v))
	}
	return v, nil
}

func problemSummary(v Version) string {
	var b []string
	for _, p := range v.Problems {
		b = append(b, p.String())
	}
	if len(b) == 0 {
		return "invalid"
	}
	return strings.Join(b, "; ")
}

// Result says what a pointer command did. Changed is false when the pointer
// already pointed there (nothing is written or audited then).
type Result struct {
	Entry   AuditEntry `json:"audit"`
	Changed bool       `json:"changed"`
	From    string     `json:"from,omitempty"`
	To      string     `json:"to"`
}

// Promote points live at any valid published version. The label
// "staging" means the published version staging points at ("clone to
// production"); a staging draft is refused: drafts go live by merging.
func (tx *Tx) Promote(ctx context.Context, key, label, actor string) (Result, error) {
	if label == EnvStaging {
		if _, err := tx.PromptInfo(ctx, key); err != nil {
			return Result{}, err
		}
		st, ok, err := tx.Pointer(ctx, key, EnvStaging)
		switch {
		case err != nil:
			return Result{}, err
		case !ok:
			return Result{}, fmt.Errorf("%w: %s has no staging version to promote", ErrConflict, key)
		case st.Archived || st.Draft != "":
			return Result{}, fmt.Errorf("%w: staging of %s is %s, a draft; a draft goes live by merging it (then promote the version it becomes)",
				ErrConflict, key, st.Label())
		}
		label = st.Label()
	}
	return tx.moveLive(ctx, key, label, actor, ActPromote)
}

// Rollback points live at a published version older than the current live
// one; newer versions stay and can be promoted again.
func (tx *Tx) Rollback(ctx context.Context, key, label, actor string) (Result, error) {
	return tx.moveLive(ctx, key, label, actor, ActRollback)
}

func (tx *Tx) moveLive(ctx context.Context, key, label, actor, action string) (Result, error) {
	v, err := tx.published(ctx, key, label)
	if err != nil {
		return Result{}, err
	}
	cur, ok, err := tx.Pointer(ctx, key, EnvLive)
	if err != nil {
		return Result{}, err
	}
	res := Result{To: v.Label}
	if ok {
		res.From = cur.Label()
	}
	if action == ActRollback {
		switch {
		case !ok:
			return res, fmt.Errorf("%w: %s has no live version to roll back from; use promote", ErrConflict, key)
		case !cur.Archived && v.Number >= cur.Number:
			return res, fmt.Errorf("%w: %s is not older than live %s; rollback goes back in history (use promote to move forward)",
				ErrInvalid, v.Label, cur.Label())
		}
	}
	if ok && !cur.Archived && cur.Draft == "" && cur.Number == v.Number {
		return res, nil
	}
	res.Entry, err = tx.setPointer(ctx, pointerTo(v, EnvLive), action, actor, "from "+res.From)
	res.Changed = err == nil
	return res, err
}

// Archive points live at "archived": the prompt's deletion was promoted.
// It is audited as its own action, archive, so the log never shows a
// "promote" to a version that does not exist.
func (tx *Tx) Archive(ctx context.Context, key, commit, actor string) (Result, error) {
	cur, ok, err := tx.Pointer(ctx, key, EnvLive)
	if err != nil {
		return Result{}, err
	}
	res := Result{To: LabelArchived}
	if ok {
		res.From = cur.Label()
		if cur.Archived {
			return res, nil
		}
	}
	res.Entry, err = tx.setPointer(ctx, Pointer{Key: key, Env: EnvLive, Archived: true, Commit: commit}, ActArchive, actor, "from "+res.From)
	res.Changed = err == nil
	return res, err
}

// StagingEnabled reports the staging switch.
func (tx *Tx) StagingEnabled(ctx context.Context) (bool, error) {
	v, err := tx.Meta(ctx, "staging_enabled")
	return v != "false", err
}

// SetStagingEnabled flips the staging switch; pointers are kept either way.
func (tx *Tx) SetStagingEnabled(ctx context.Context, on bool, actor string) (Result, error) {
	cur, err := tx.StagingEnabled(ctx)
	if err != nil {
		return Result{}, err
	}
	res := Result{From: fmt.Sprint(cur), To: fmt.Sprint(on)}
	if cur == on {
		return res, nil
	}
	if err := tx.SetMeta(ctx, "staging_enabled", fmt.Sprint(on)); err != nil {
		return res, err
	}
	res.Entry, err = tx.Audit(ctx, AuditEntry{Action: ActSettings, Actor: actor, Detail: fmt.Sprintf("staging_enabled=%v", on)})
	if err != nil {
		return res, err
	}
	res.Changed = true
	return res, tx.notify(ctx, ChangeSettings, "")
}

func (tx *Tx) requireStaging(ctx context.Context) error {
	on, err := tx.StagingEnabled(ctx)
	if err != nil {
		return err
	}
	if !on {
		return fmt.Errorf("%w: staging is disabled (settings set staging on)", ErrConflict)
	}
	return nil
}

// SetStaging points staging at a valid version or draft; live is untouched.
func (tx *Tx) SetStaging(ctx context.Context, key, label, actor string) (Result, error) {
	if err := tx.requireStaging(ctx); err != nil {
		return Result{}, err
	}
	if _, err := tx.PromptInfo(ctx, key); err != nil {
		return Result{}, err
	}
	label = bareDraft(label)
	v, err := tx.Version(ctx, key, label)
	if err != nil {
		return Result{}, err
	}
	if !v.Valid {
		return Result{}, fmt.Errorf("%s %s: %w: %s", key, v.Label, ErrInvalidVersion, problemSummary(v))
	}
	p := pointerTo(v, EnvStaging)
	cur, ok, err := tx.Pointer(ctx, key, EnvStaging)
	if err != nil {
		return Result{}, err
	}
	res := Result{To: p.Label()}
	if ok {
		res.From = cur.Label()
		if cur.Label() == p.Label() && cur.SHA256 == p.SHA256 && cur.Commit == p.Commit {
			return res, nil
		}
	}
	res.Entry, err = tx.setPointer(ctx, p, ActStagingSet, actor, "from "+res.From)
	res.Changed = err == nil
	return res, err
}

// ClearStaging unsets staging: test keys read live again.
func (tx *Tx) ClearStaging(ctx context.Context, key, actor string) (Result, error) {
	if err := tx.requireStaging(ctx); err != nil {
		return Result{}, err
	}
	return tx.clearStaging(ctx, key, actor, "")
}

func (tx *Tx) clearStaging(ctx context.Context, key, actor, detail string) (Result, error) {
	if _, err := tx.PromptInfo(ctx, key); err != nil {
		return Result{}, err
	}
	cur, ok, err := tx.Pointer(ctx, key, EnvStaging)
	if err != nil || !ok {
		return Result{}, err
	}
	res := Result{From: cur.Label()}
	if _, err := tx.exec(ctx, "DELETE FROM pointers WHERE key = ? AND env = ?", key, EnvStaging); err != nil {
		return res, err
	}
	res.Entry, err = tx.Audit(ctx, AuditEntry{Action: ActStagingClear, Actor: actor, Key: key, Version: cur.Label(),
		Commit: cur.Commit, SHA256: cur.SHA256, Env: EnvStaging, Detail: detail})
	if err != nil {
		return res, err
	}
	if err := tx.enqueue(ctx, res.Entry, cur, cur.Label()); err != nil {
		return res, err
	}
	res.Changed = true
	return res, tx.notify(ctx, ChangePointer, key)
}

// bareDraft reads a label that is neither vN, N nor draft:NAME as a draft
// name, as DeleteDraft does: "tone" is "draft:tone".
func bareDraft(label string) string {
	if strings.HasPrefix(label, "draft:") || label == "" {
		return label
	}
	if _, err := strconv.Atoi(strings.TrimPrefix(label, "v")); err == nil {
		return label
	}
	return "draft:" + label
}

// DeleteDraft deletes a draft (name with or without "draft:"). Published
// versions are immutable and refused. Staging pointing at the draft is
// cleared. The draft is not recreated until its head moves.
func (tx *Tx) DeleteDraft(ctx context.Context, key, name, actor string) (Result, error) {
	label := name
	if !strings.HasPrefix(label, "draft:") {
		if n, _, err := ParseLabel(label); err == nil && n > 0 {
			return Result{}, fmt.Errorf("%w: %s of %s is a published version; published versions are immutable", ErrConflict, label, key)
		}
		label = "draft:" + label
	}
	v, err := tx.Version(ctx, key, label)
	if err != nil {
		return Result{}, err
	}
	dname := strings.TrimPrefix(label, "draft:")
	res := Result{From: label}
	if cur, ok, err := tx.Pointer(ctx, key, EnvStaging); err != nil {
		return res, err
	} else if ok && cur.Draft == dname {
		if _, err := tx.clearStaging(ctx, key, actor, "draft "+label+" deleted"); err != nil {
			return res, err
		}
	}
	if err := tx.deleteDraft(ctx, key, dname); err != nil {
		return res, err
	}
	if _, err := tx.exec(ctx, `INSERT INTO draft_dismissals(key, name, commit_sha) VALUES(?,?,?)
		ON CONFLICT(key, name) DO UPDATE SET commit_sha = excluded.commit_sha`, key, dname, v.Commit); err != nil {
		return res, err
	}
	res.Entry, err = tx.Audit(ctx, AuditEntry{Action: ActDraftDelete, Actor: actor, Key: key, Version: label, Commit: v.Commit, SHA256: v.SHA256})
	if err != nil {
		return res, err
	}
	res.Changed = true
	return res, tx.notify(ctx, ChangeDraft, key)
}

// AuditLog returns entries newest first, those with seq < before (0: from
// the newest), at most limit.
func (tx *Tx) AuditLog(ctx context.Context, before int64, limit int) ([]AuditEntry, error) {
	q := "SELECT seq, at, action, actor, key, version, commit_sha, sha256, env, detail FROM audit"
	var args []any
	if before > 0 {
		q += " WHERE seq < ?"
		args = append(args, before)
	}
	q += " ORDER BY seq DESC LIMIT ?"
	if limit <= 0 {
		limit = 50
	}
	args = append(args, limit)
	return tx.scanAudit(ctx, q, args...)
}

// AuditSince returns entries with seq > after, oldest first (event replay).
func (tx *Tx) AuditSince(ctx context.Context, after int64, limit int) ([]AuditEntry, error) {
	return tx.scanAudit(ctx, `SELECT seq, at, action, actor, key, version, commit_sha, sha256, env, detail
		FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
}

func (tx *Tx) scanAudit(ctx context.Context, q string, args ...any) ([]AuditEntry, error) {
	return queryAll(ctx, tx, func(sc scanner) (e AuditEntry, err error) {
		err = sc.Scan(&e.Seq, &e.At, &e.Action, &e.Actor, &e.Key, &e.Version, &e.Commit, &e.SHA256, &e.Env, &e.Detail)
		return e, err
	}, q, args...)
}
