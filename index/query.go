package index

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/promptvault/promptvault"
)

// Version is one published version or one draft of a prompt.
type Version struct {
	Key       string                `json:"key"`
	Label     string                `json:"version"` // "v7" or "draft:<name>"
	Number    int                   `json:"-"`       // 0 for drafts
	Commit    string                `json:"commit"`
	Path      string                `json:"path"`
	BlobSHA   string                `json:"blob"`
	SHA256    string                `json:"sha256"`
	Size      int64                 `json:"size"`
	Message   string                `json:"message"`
	Author    string                `json:"author"`
	CreatedAt string                `json:"created_at"`
	Valid     bool                  `json:"valid"`
	Problems  []promptvault.Problem `json:"problems"`
	Draft     bool                  `json:"draft"`
	Source    string                `json:"origin,omitempty"` // drafts: "branch:x" / "pr:n"
	Base      string                `json:"base,omitempty"`   // drafts: merge base with the tracked branch
	Deleted   bool                  `json:"deleted,omitempty"`
}

// MarshalJSON writes number as null for drafts, as the read API does.
func (v Version) MarshalJSON() ([]byte, error) {
	type plain Version
	var n *int
	if !v.Draft {
		n = &v.Number
	}
	return json.Marshal(struct {
		plain
		Number *int `json:"number"`
	}{plain(v), n})
}

// Prompt is a prompt's summary.
type Prompt struct {
	Key      string `json:"key"`
	Path     string `json:"path"`
	Versions int    `json:"versions"`
	Newest   string `json:"newest"`
	Drafts   int    `json:"drafts"`
	Archived bool   `json:"archived"`
}

// ParseLabel splits "v3", "3" or "draft:name" into a number or a draft name.
func ParseLabel(label string) (number int, draft string, err error) {
	if name, ok := strings.CutPrefix(label, "draft:"); ok {
		if name == "" {
			return 0, "", fmt.Errorf("%w: empty draft name in %q", ErrInvalid, label)
		}
		return 0, name, nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(label, "v"))
	if err == nil && n <= 0 {
		return 0, "", fmt.Errorf("%w: version %q does not exist: versions are numbered from v1", ErrInvalid, label)
	}
	if err != nil {
		return 0, "", fmt.Errorf("%w: version %q is not vN or draft:NAME", ErrInvalid, label)
	}
	return n, "", nil
}

const versionCols = `key, number, commit_sha, path, blob_sha, sha256, size, message, author, committed_at, valid, problems`

func scanVersion(sc scanner) (Version, error) {
	var v Version
	var probs string
	if err := sc.Scan(&v.Key, &v.Number, &v.Commit, &v.Path, &v.BlobSHA, &v.SHA256, &v.Size, &v.Message,
		&v.Author, &v.CreatedAt, &v.Valid, &probs); err != nil {
		return v, err
	}
	v.Label = Label(v.Number)
	if err := json.Unmarshal([]byte(probs), &v.Problems); err != nil {
		return v, fmt.Errorf("decode problems of %s %s: %w", v.Key, v.Label, err)
	}
	return v, nil
}

const draftCols = `key, name, commit_sha, path, blob_sha, sha256, size, message, author, committed_at, valid, problems, source, base_sha`

func scanDraft(sc scanner) (Version, error) {
	var v Version
	var probs, name string
	if err := sc.Scan(&v.Key, &name, &v.Commit, &v.Path, &v.BlobSHA, &v.SHA256, &v.Size, &v.Message,
		&v.Author, &v.CreatedAt, &v.Valid, &probs, &v.Source, &v.Base); err != nil {
		return v, err
	}
	v.Label = "draft:" + name
	v.Draft = true
	v.Deleted = v.BlobSHA == ""
	if err := json.Unmarshal([]byte(probs), &v.Problems); err != nil {
		return v, fmt.Errorf("decode problems of %s %s: %w", v.Key, v.Label, err)
	}
	return v, nil
}

// promptsQuery summarises prompts, including prompts that so far exist only
// as drafts (a new file on a branch or pull request).
const promptsQuery = `WITH keys AS (SELECT key FROM prompts UNION SELECT key FROM drafts)
	SELECT k.key,
		coalesce(p.path, (SELECT d.path FROM drafts d WHERE d.key = k.key ORDER BY d.name LIMIT 1)),
		coalesce(p.last_number, 0), coalesce(p.archived, 0),
		(SELECT count(*) FROM drafts d WHERE d.key = k.key)
	FROM keys k LEFT JOIN prompts p ON p.key = k.key`

func scanPrompt(sc scanner) (Prompt, error) {
	var p Prompt
	if err := sc.Scan(&p.Key, &p.Path, &p.Versions, &p.Archived, &p.Drafts); err != nil {
		return p, err
	}
	if p.Versions > 0 {
		p.Newest = Label(p.Versions)
	}
	return p, nil
}

// Prompts lists every indexed prompt, sorted by key.
func (tx *Tx) Prompts(ctx context.Context) ([]Prompt, error) {
	return queryAll(ctx, tx, scanPrompt, promptsQuery+" ORDER BY k.key")
}

// PromptInfo returns one prompt's summary.
func (tx *Tx) PromptInfo(ctx context.Context, key string) (Prompt, error) {
	p, err := scanPrompt(tx.queryRow(ctx, promptsQuery+" WHERE k.key = ?", key))
	if isNoRows(err) {
		return p, fmt.Errorf("prompt %q: %w", key, ErrNotFound)
	}
	return p, err
}

// Version returns one version ("v3", "3") or draft ("draft:name") of key.
func (tx *Tx) Version(ctx context.Context, key, label string) (Version, error) {
	n, draft, err := ParseLabel(label)
	if err != nil {
		return Version{}, err
	}
	var v Version
	if draft != "" {
		v, err = scanDraft(tx.queryRow(ctx, "SELECT "+draftCols+" FROM drafts WHERE key = ? AND name = ?", key, draft))
	} else {
		v, err = scanVersion(tx.queryRow(ctx, "SELECT "+versionCols+" FROM versions WHERE key = ? AND number = ?", key, n))
	}
	if isNoRows(err) {
		return v, fmt.Errorf("%s %s: %w", key, label, ErrNotFound)
	}
	return v, err
}

// VersionQuery selects versions of one prompt, newest first.
type VersionQuery struct {
	Search string // substring of message or author, case-insensitive
	Before int    // only versions numbered below this (0: no bound); a paging cursor
	Limit  int    // 0: no limit
}

// Versions lists published versions of key, newest first.
func (tx *Tx) Versions(ctx context.Context, key string, q VersionQuery) ([]Version, error) {
	sqlq := "SELECT " + versionCols + " FROM versions WHERE key = ?"
	args := []any{key}
	if q.Search != "" {
		sqlq += ` AND (lower(message) LIKE lower(?) ESCAPE '\' OR lower(author) LIKE lower(?) ESCAPE '\')`
		pat := "%" + likeEscape(q.Search) + "%"
		args = append(args, pat, pat)
	}
	if q.Before > 0 {
		sqlq += " AND number < ?"
		args = append(args, q.Before)
	}
	sqlq += " ORDER BY number DESC"
	if q.Limit > 0 {
		sqlq += " LIMIT ?"
		args = append(args, q.Limit)
	}
	return queryAll(ctx, tx, scanVersion, sqlq, args...)
}

// Drafts lists the drafts of key, newest commit first; search as Versions.
func (tx *Tx) Drafts(ctx context.Context, key, search string) ([]Version, error) {
	sqlq := "SELECT " + draftCols + " FROM drafts WHERE key = ?"
	args := []any{key}
	if search != "" {
		sqlq += ` AND (lower(message) LIKE lower(?) ESCAPE '\' OR lower(author) LIKE lower(?) ESCAPE '\')`
		pat := "%" + likeEscape(search) + "%"
		args = append(args, pat, pat)
	}
	return queryAll(ctx, tx, scanDraft, sqlq+" ORDER BY committed_at DESC, name", args...)
}

// Skipped lists files under the prompts directory that could not be prompts.
func (tx *Tx) Skipped(ctx context.Context) ([]SkippedFile, error) {
	return queryAll(ctx, tx, func(sc scanner) (s SkippedFile, err error) {
		err = sc.Scan(&s.Commit, &s.Path, &s.Problem)
		return s, err
	}, "SELECT commit_sha, path, problem FROM skipped_files ORDER BY path, commit_sha")
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
