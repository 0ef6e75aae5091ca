package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver"
)

// endpoint is one method of one route, called after authentication.
type endpoint func(h *Handler, w http.ResponseWriter, r *http.Request, c caller, p params)

// apiRoutes is the admin API: SPEC §5's table.
var apiRoutes = map[string]map[string]endpoint{
	routePrompts:    {http.MethodGet: (*Handler).listPrompts},
	routeVersions:   {http.MethodGet: (*Handler).listVersions},
	routeVersion:    {http.MethodGet: (*Handler).getVersion},
	routeDiff:       {http.MethodGet: (*Handler).getDiff},
	routePromote:    {http.MethodPost: (*Handler).promote},
	routeRollback:   {http.MethodPost: (*Handler).rollback},
	routeStaging:    {http.MethodPut: (*Handler).setStaging, http.MethodDelete: (*Handler).clearStaging},
	routeDraft:      {http.MethodDelete: (*Handler).deleteDraft, http.MethodPut: (*Handler).commitDraft},
	routeDraftMerge: {http.MethodPost: (*Handler).mergeDraft},
	routeValidate:   {http.MethodPost: (*Handler).validate},
	routePreview:    {http.MethodPost: (*Handler).preview},
	routeSettings:   {http.MethodGet: (*Handler).getSettings, http.MethodPatch: (*Handler).patchSettings},
	routeAudit:      {http.MethodGet: (*Handler).auditLog},
	routeSync:       {http.MethodPost: (*Handler).syncNow},
	routeKeys:       {http.MethodGet: (*Handler).listKeys, http.MethodPost: (*Handler).createKey, http.MethodDelete: (*Handler).revokeKeyBody},
	routeKey:        {http.MethodDelete: (*Handler).revokeKey},
}

// serveAPI authenticates first (so without an admin key every path is 401,
// and routes cannot be probed), then routes.
func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	c, err := h.authenticate(r)
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	route, p, err := parseAPIPath(r.URL.EscapedPath())
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	methods := apiRoutes[route]
	ep := methods[r.Method]
	if ep == nil {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		sort.Strings(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		resolver.WriteError(w, r, fmt.Errorf("%w: %s %s; allowed: %s", resolver.ErrMethodNotAllowed, r.Method, route, strings.Join(allow, ", ")))
		return
	}
	ep(h, w, r, c, p)
}

// writeJSON answers v with status. HTML is not escaped: prompts are full of
// <, > and &, and the body is JSON (nosniff), never a page.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		resolver.WriteError(w, r, fmt.Errorf("encode response: %w", err))
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// decodeBody reads a JSON object of at most MaxBodyBytes into v, strictly:
// unknown fields, trailing data and a non-JSON Content-Type are 400s that
// say what is wrong; a larger body is 413.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeBodyN(w, r, v, MaxBodyBytes)
}

// decodeBodyN is decodeBody with a limit of max bytes.
func decodeBodyN(w http.ResponseWriter, r *http.Request, v any, max int64) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return fmt.Errorf("%w: Content-Type %q: send the body as application/json", index.ErrInvalid, ct)
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if err = dec.Decode(&json.RawMessage{}); err == io.EOF {
			return nil
		} else if err == nil {
			return fmt.Errorf("%w: request body has more than one JSON value", index.ErrInvalid)
		}
	}
	var mbe *http.MaxBytesError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return fmt.Errorf("%w: request body is larger than %d bytes", resolver.ErrTooLarge, max)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: request body is empty; want a JSON object", index.ErrInvalid)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: request body is not valid JSON: it ends early", index.ErrInvalid)
	case errors.As(err, &syn):
		return fmt.Errorf("%w: request body is not valid JSON: %v (at byte %d)", index.ErrInvalid, syn, syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Errorf("%w: request body is JSON %s; want an object", index.ErrInvalid, typ.Value)
		}
		return fmt.Errorf("%w: request body field %q is JSON %s; want %s", index.ErrInvalid, typ.Field, typ.Value, jsonType(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("%w: request body has %s", index.ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
	default:
		return fmt.Errorf("%w: request body: %v", index.ErrInvalid, err)
	}
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "ptr":
		return "a value of another type"
	}
	return "a " + kind
}

// Paging. A cursor is opaque to clients: "pv1:<list>:<n>", base64url, where
// n is the last number (versions) or audit sequence (audit) of the page
// before. Numbers are never reused, so a cursor stays valid and exact while
// new versions or audit rows arrive: they sort before it.
const cursorVersion = "pv1"

func encodeCursor(list string, n int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorVersion + ":" + list + ":" + strconv.FormatInt(n, 10)))
}

var errCursor = fmt.Errorf("%w: invalid cursor: pass the previous page's next_cursor unchanged", index.ErrInvalid)

// decodeCursor returns the bound a cursor carries, or 0 for none.
func decodeCursor(s, list string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, errCursor
	}
	parts := strings.Split(string(b), ":")
	if len(parts) != 3 || parts[0] != cursorVersion {
		return 0, errCursor
	}
	if parts[1] != list {
		return 0, fmt.Errorf("%w: the cursor belongs to another list", errCursor)
	}
	n, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || n <= 0 {
		return 0, errCursor
	}
	return n, nil
}

func parseLimit(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, fmt.Errorf("%w: limit %q: want an integer from 1 to %d", index.ErrInvalid, s, MaxLimit)
	}
	return n, nil
}

// actor names an admin in the audit log by the ID of the key used (to sign
// in to the dashboard, or on the request).
func (c caller) actor() string { return "admin:" + c.keyID }

// pointerView is a live or staging pointer in admin responses.
type pointerView struct {
	Version   string `json:"version"` // vN, draft:NAME or archived
	Number    *int   `json:"number"`  // null for drafts and archived
	Commit    string `json:"commit"`
	SHA256    string `json:"sha256"`
	Message   string `json:"message"`
	Author    string `json:"author"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	AuditSeq  int64  `json:"audit_seq"`
}

func viewPointer(p index.Pointer, ok bool) *pointerView {
	if !ok {
		return nil
	}
	v := &pointerView{Version: p.Label(), Commit: p.Commit, SHA256: p.SHA256, Message: p.Message, Author: p.Author,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, AuditSeq: p.AuditSeq}
	if p.Draft == "" && !p.Archived {
		n := p.Number
		v.Number = &n
	}
	return v
}

type promptView struct {
	index.Prompt
	Live    *pointerView `json:"live"`
	Staging *pointerView `json:"staging"`
}

func (h *Handler) listPrompts(w http.ResponseWriter, r *http.Request, _ caller, _ params) {
	ctx := r.Context()
	out := struct {
		StagingEnabled bool         `json:"staging_enabled"`
		Prompts        []promptView `json:"prompts"`
	}{Prompts: []promptView{}}
	err := h.db.View(ctx, func(tx *index.Tx) error {
		ps, err := tx.Prompts(ctx)
		if err != nil {
			return err
		}
		ptrs, err := tx.AllPointers(ctx)
		if err != nil {
			return err
		}
		type pair struct{ live, staging *pointerView }
		byKey := map[string]*pair{}
		for _, p := range ptrs {
			pr := byKey[p.Key]
			if pr == nil {
				pr = &pair{}
				byKey[p.Key] = pr
			}
			if p.Env == index.EnvStaging {
				pr.staging = viewPointer(p, true)
			} else {
				pr.live = viewPointer(p, true)
			}
		}
		for _, p := range ps {
			v := promptView{Prompt: p}
			if pr := byKey[p.Key]; pr != nil {
				v.Live, v.Staging = pr.live, pr.staging
			}
			out.Prompts = append(out.Prompts, v)
		}
		out.StagingEnabled, err = tx.StagingEnabled(ctx)
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, out)
}

// versionView is index.Version as the admin API shows it (index.Version's
// own MarshalJSON would be promoted by embedding, hiding added fields).
type versionView struct {
	Key       string                `json:"key"`
	Version   string                `json:"version"`
	Number    *int                  `json:"number"`
	Draft     bool                  `json:"draft"`
	Commit    string                `json:"commit"`
	Path      string                `json:"path"`
	SHA256    string                `json:"sha256"`
	Size      int64                 `json:"size"`
	Message   string                `json:"message"`
	Author    string                `json:"author"`
	CreatedAt string                `json:"created_at"`
	Valid     bool                  `json:"valid"`
	Problems  []promptvault.Problem `json:"problems"`
	Origin    string                `json:"origin,omitempty"`
	Base      string                `json:"base,omitempty"`
	Deleted   bool                  `json:"deleted"`
	// PullRequestURL is a pull request draft's page (GitHub mode).
	PullRequestURL string `json:"pull_request_url,omitempty"`
}

// view is viewVersion with, in GitHub mode, a pull request draft's page.
func (h *Handler) view(v index.Version) versionView {
	out := viewVersion(v)
	if n, ok := strings.CutPrefix(v.Source, "pr:"); ok && h.host != nil {
		if num, err := strconv.Atoi(n); err == nil {
			out.PullRequestURL = h.host.PullRequestURL(num)
		}
	}
	return out
}

func viewVersion(v index.Version) versionView {
	out := versionView{Key: v.Key, Version: v.Label, Draft: v.Draft, Commit: v.Commit, Path: v.Path, SHA256: v.SHA256,
		Size: v.Size, Message: v.Message, Author: v.Author, CreatedAt: v.CreatedAt, Valid: v.Valid,
		Problems: v.Problems, Origin: v.Source, Base: v.Base, Deleted: v.Deleted}
	if !v.Draft {
		n := v.Number
		out.Number = &n
	}
	if out.Problems == nil {
		out.Problems = []promptvault.Problem{}
	}
	return out
}

// versionsPage is GET .../versions: the prompt's pointers (for badges) and
// one page of drafts and versions, newest first.
type versionsPage struct {
	Key            string        `json:"key"`
	Live           *string       `json:"live"`
	Staging        *string       `json:"staging"`
	StagingEnabled bool          `json:"staging_enabled"`
	Newest         string        `json:"newest"`
	Versions       []versionView `json:"versions"`
	NextCursor     *string       `json:"next_cursor"`
}

// listVersions pages through a prompt's versions, newest first. Drafts are
// few (one per open pull request or branch) and unnumbered, so all of them
// come first on the first page and limit bounds the published versions.
func (h *Handler) listVersions(w http.ResponseWriter, r *http.Request, _ caller, p params) {
	ctx := r.Context()
	q := r.URL.Query()
	limit, err := parseLimit(r)
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	before, err := decodeCursor(q.Get("cursor"), "v")
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	search := strings.TrimSpace(q.Get("q"))
	page := versionsPage{Key: p.key, Versions: []versionView{}}
	err = h.db.View(ctx, func(tx *index.Tx) error {
		info, err := tx.PromptInfo(ctx, p.key)
		if err != nil {
			return err
		}
		page.Newest = info.Newest
		for _, env := range []string{index.EnvLive, index.EnvStaging} {
			ptr, ok, err := tx.Pointer(ctx, p.key, env)
			if err != nil {
				return err
			}
			if ok {
				l := ptr.Label()
				if env == index.EnvLive {
					page.Live = &l
				} else {
					page.Staging = &l
				}
			}
		}
		if page.StagingEnabled, err = tx.StagingEnabled(ctx); err != nil {
			return err
		}
		if before == 0 {
			drafts, err := tx.Drafts(ctx, p.key, search)
			if err != nil {
				return err
			}
			for _, d := range drafts {
				page.Versions = append(page.Versions, h.view(d))
			}
		}
		vs, err := tx.Versions(ctx, p.key, index.VersionQuery{Search: search, Before: int(before), Limit: limit + 1})
		if err != nil {
			return err
		}
		if len(vs) > limit {
			c := encodeCursor("v", int64(vs[limit-1].Number))
			page.NextCursor = &c
			vs = vs[:limit]
		}
		for _, v := range vs {
			page.Versions = append(page.Versions, viewVersion(v))
		}
		return nil
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, page)
}

// lookup finds a prompt's version or draft by label (404 for an unknown
// prompt or label) and reads its source; a draft that deletes the file has
// an empty source.
func lookup(ctx context.Context, tx *index.Tx, key, label string) (index.Version, error) {
	if _, err := tx.PromptInfo(ctx, key); err != nil {
		return index.Version{}, err
	}
	return tx.Version(ctx, key, label)
}

// source is a version's file as the index holds it ("" for a draft that
// deletes the file, and for a file over the size limit, whose content the
// index does not keep). Admin views never read the Git mirror.
func source(ctx context.Context, tx *index.Tx, v index.Version) (string, error) {
	if v.BlobSHA == "" || v.Size > promptvault.MaxFileSize {
		return "", nil
	}
	b, err := tx.Content(ctx, v.BlobSHA)
	if err != nil {
		return "", fmt.Errorf("read %s %s: %w", v.Key, v.Label, err)
	}
	return string(b), nil
}

func (h *Handler) getVersion(w http.ResponseWriter, r *http.Request, _ caller, p params) {
	ctx := r.Context()
	var v index.Version
	at := []string{}
	var src string
	err := h.db.View(ctx, func(tx *index.Tx) (err error) {
		if v, err = lookup(ctx, tx, p.key, p.arg); err != nil {
			return err
		}
		for _, env := range []string{index.EnvLive, index.EnvStaging} {
			ptr, ok, err := tx.Pointer(ctx, p.key, env)
			if err != nil {
				return err
			}
			if ok && ptr.Label() == v.Label {
				at = append(at, env)
			}
		}
		src, err = source(ctx, tx, v)
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	// The parsed fields, for the dashboard's version page; an invalid
	// version has none (its problems say why).
	var parsed *promptvault.Prompt
	if v.Valid && !v.Deleted {
		parsed, _ = promptvault.Parse(v.Path, []byte(src))
	}
	writeJSON(w, r, http.StatusOK, struct {
		versionView
		Source   string              `json:"source"`
		Prompt   *promptvault.Prompt `json:"prompt"`
		Pointers []string            `json:"pointers"`
	}{h.view(v), src, parsed, at})
}

// DiffDoc is the diff of two versions or drafts of one prompt: the admin
// API's GET .../diff and the CLI's diff --json.
type DiffDoc struct {
	Key  string      `json:"key"`
	From versionView `json:"from"`
	To   versionView `json:"to"`
	promptvault.Diff
}

// DiffVersions diffs the sources of two versions or drafts of key, as the
// index holds them.
func DiffVersions(ctx context.Context, db *index.DB, key, from, to string) (DiffDoc, error) {
	if from == "" || to == "" {
		return DiffDoc{}, fmt.Errorf("%w: a diff needs two versions: from and to (vN or draft:NAME)", index.ErrInvalid)
	}
	var a, b index.Version
	var src [2]string
	err := db.View(ctx, func(tx *index.Tx) (err error) {
		if a, err = lookup(ctx, tx, key, from); err != nil {
			return err
		}
		if b, err = lookup(ctx, tx, key, to); err != nil {
			return err
		}
		for i, v := range []index.Version{a, b} {
			if src[i], err = source(ctx, tx, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return DiffDoc{}, err
	}
	// Tab-separated labels, as diff -u puts dates there: patch and git apply
	// read the path and ignore the rest.
	d := promptvault.DiffFiles(a.Path+"\t"+a.Label, b.Path+"\t"+b.Label, src[0], src[1])
	return DiffDoc{Key: key, From: viewVersion(a), To: viewVersion(b), Diff: d}, nil
}

func (h *Handler) getDiff(w http.ResponseWriter, r *http.Request, _ caller, p params) {
	q := r.URL.Query()
	d, err := DiffVersions(r.Context(), h.db, p.key, q.Get("from"), q.Get("to"))
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, d)
}

// versionBody is the body of promote, rollback and staging set.
type versionBody struct {
	Version string `json:"version"`
}

func (b versionBody) check() error {
	if b.Version == "" {
		return fmt.Errorf(`%w: request body needs "version" (vN, or draft:NAME for staging)`, index.ErrInvalid)
	}
	return nil
}

// resultView answers a pointer, draft or settings change.
type resultView struct {
	Key     string            `json:"key,omitempty"`
	Env     string            `json:"env,omitempty"`
	Changed bool              `json:"changed"`
	From    string            `json:"from"`
	To      string            `json:"to"`
	Audit   *index.AuditEntry `json:"audit"` // null when nothing changed
}

func viewResult(key, env string, res index.Result) resultView {
	v := resultView{Key: key, Env: env, Changed: res.Changed, From: res.From, To: res.To}
	if res.Changed {
		e := res.Entry
		v.Audit = &e
	}
	return v
}

// change runs one index change in a write transaction and answers its result.
func (h *Handler) change(w http.ResponseWriter, r *http.Request, c caller, key, env, what string,
	fn func(ctx context.Context, tx *index.Tx, actor string) (index.Result, error)) {
	ctx := r.Context()
	var res index.Result
	err := h.db.Update(ctx, func(tx *index.Tx) (err error) {
		res, err = fn(ctx, tx, c.actor())
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	if res.Changed {
		h.log.Info(what, logKey, key, "env", env, "from", res.From, "to", res.To, logActor, c.actor())
	}
	writeJSON(w, r, http.StatusOK, viewResult(key, env, res))
}

func (h *Handler) promote(w http.ResponseWriter, r *http.Request, c caller, p params) {
	h.moveLive(w, r, c, p, "promoted", (*index.Tx).Promote)
}

func (h *Handler) rollback(w http.ResponseWriter, r *http.Request, c caller, p params) {
	h.moveLive(w, r, c, p, "rolled back", (*index.Tx).Rollback)
}

func (h *Handler) moveLive(w http.ResponseWriter, r *http.Request, c caller, p params, what string,
	move func(*index.Tx, context.Context, string, string, string) (index.Result, error)) {
	var b versionBody
	if err := decodeBody(w, r, &b); err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	if err := b.check(); err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	h.change(w, r, c, p.key, index.EnvLive, what, func(ctx context.Context, tx *index.Tx, actor string) (index.Result, error) {
		return move(tx, ctx, p.key, b.Version, actor)
	})
}

func (h *Handler) setStaging(w http.ResponseWriter, r *http.Request, c caller, p params) {
	var b versionBody
	if err := decodeBody(w, r, &b); err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	if err := b.check(); err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	h.change(w, r, c, p.key, index.EnvStaging, "staging set", func(ctx context.Context, tx *index.Tx, actor string) (index.Result, error) {
		return tx.SetStaging(ctx, p.key, b.Version, actor)
	})
}

func (h *Handler) clearStaging(w http.ResponseWriter, r *http.Request, c caller, p params) {
	h.change(w, r, c, p.key, index.EnvStaging, "staging cleared", func(ctx context.Context, tx *index.Tx, actor string) (index.Result, error) {
		return tx.ClearStaging(ctx, p.key, actor)
	})
}

func (h *Handler) deleteDraft(w http.ResponseWriter, r *http.Request, c caller, p params) {
	h.change(w, r, c, p.key, "", "draft deleted", func(ctx context.Context, tx *index.Tx, actor string) (index.Result, error) {
		return tx.DeleteDraft(ctx, p.key, p.arg, actor)
	})
}

type settingsView struct {
	StagingEnabled bool              `json:"staging_enabled"`
	Changed        *bool             `json:"changed,omitempty"`
	Audit          *index.AuditEntry `json:"audit,omitempty"`
}

func (h *Handler) getSettings(w http.ResponseWriter, r *http.Request, _ caller, _ params) {
	ctx := r.Context()
	var on bool
	err := h.db.View(ctx, func(tx *index.Tx) (err error) {
		on, err = tx.StagingEnabled(ctx)
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, settingsView{StagingEnabled: on})
}

func (h *Handler) patchSettings(w http.ResponseWriter, r *http.Request, c caller, _ params) {
	var b struct {
		StagingEnabled *bool `json:"staging_enabled"`
	}
	if err := decodeBody(w, r, &b); err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	if b.StagingEnabled == nil {
		resolver.WriteError(w, r, fmt.Errorf(`%w: request body needs "staging_enabled": true or false`, index.ErrInvalid))
		return
	}
	ctx := r.Context()
	var res index.Result
	err := h.db.Update(ctx, func(tx *index.Tx) (err error) {
		res, err = tx.SetStagingEnabled(ctx, *b.StagingEnabled, c.actor())
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	out := settingsView{StagingEnabled: *b.StagingEnabled, Changed: &res.Changed}
	if res.Changed {
		e := res.Entry
		out.Audit = &e
		h.log.Info("settings changed", "staging_enabled", *b.StagingEnabled, logActor, c.actor())
	}
	writeJSON(w, r, http.StatusOK, out)
}

func (h *Handler) auditLog(w http.ResponseWriter, r *http.Request, _ caller, _ params) {
	ctx := r.Context()
	limit, err := parseLimit(r)
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	before, err := decodeCursor(r.URL.Query().Get("cursor"), "a")
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	var es []index.AuditEntry
	err = h.db.View(ctx, func(tx *index.Tx) (err error) {
		es, err = tx.AuditLog(ctx, before, limit+1)
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	out := struct {
		Entries    []index.AuditEntry `json:"entries"`
		NextCursor *string            `json:"next_cursor"`
	}{Entries: es}
	if len(es) > limit {
		c := encodeCursor("a", es[limit-1].Seq)
		out.NextCursor = &c
		out.Entries = es[:limit]
	}
	if out.Entries == nil {
		out.Entries = []index.AuditEntry{}
	}
	writeJSON(w, r, http.StatusOK, out)
}

// syncView is index.SyncResult with lists that are [] rather than null.
type syncView struct {
	Branch       string              `json:"branch"`
	Head         string              `json:"head"`
	Commits      int                 `json:"commits"`
	Versions     []index.VersionRef  `json:"versions"`
	Archived     []string            `json:"archived"`
	Drafts       []index.DraftRef    `json:"drafts"`
	DraftsEnded  []index.DraftRef    `json:"drafts_ended"`
	Skipped      []index.SkippedFile `json:"skipped"`
	Bootstrapped []index.VersionRef  `json:"bootstrapped"`
	Seconds      float64             `json:"seconds"`
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (h *Handler) syncNow(w http.ResponseWriter, r *http.Request, c caller, _ params) {
	if h.sync == nil {
		resolver.WriteError(w, r, ErrNoSync)
		return
	}
	res, err := h.sync(r.Context())
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	h.log.Info("sync requested", logActor, c.actor(), "commits", res.Commits)
	writeJSON(w, r, http.StatusOK, syncView{Branch: res.Branch, Head: res.Head, Commits: res.Commits,
		Versions: orEmpty(res.Versions), Archived: orEmpty(res.Archived), Drafts: orEmpty(res.Drafts),
		DraftsEnded: orEmpty(res.DraftsEnded), Skipped: orEmpty(res.Skipped), Bootstrapped: orEmpty(res.Bootstrapped),
		Seconds: res.Seconds})
}

func (h *Handler) listKeys(w http.ResponseWriter, r *http.Request, _ caller, _ params) {
	ctx := r.Context()
	var keys []index.APIKey
	err := h.db.View(ctx, func(tx *index.Tx) (err error) {
		keys, err = tx.Keys(ctx)
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, struct {
		Keys []index.APIKey `json:"keys"`
	}{orEmpty(keys)})
}

// createKey answers, once, the new key itself, in the shape of
// `keys create --json`.
func (h *Handler) createKey(w http.ResponseWriter, r *http.Request, c caller, _ params) {
	var b struct {
		Env  string `json:"env"`
		Name string `json:"name"`
	}
	if err := decodeBody(w, r, &b); err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	ctx := r.Context()
	var k index.CreatedKey
	err := h.db.Update(ctx, func(tx *index.Tx) (err error) {
		k, err = tx.CreateKey(ctx, b.Env, b.Name, c.actor())
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	h.log.Info("key created", logKeyID, k.ID, "env", k.Env, logActor, c.actor())
	writeJSON(w, r, http.StatusCreated, k)
}

func (h *Handler) revokeKeyBody(w http.ResponseWriter, r *http.Request, c caller, _ params) {
	var b struct {
		ID string `json:"id"`
	}
	if err := decodeBody(w, r, &b); err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	if b.ID == "" {
		resolver.WriteError(w, r, fmt.Errorf(`%w: request body needs "id", the key ID to revoke`, index.ErrInvalid))
		return
	}
	h.revoke(w, r, c, b.ID)
}

func (h *Handler) revokeKey(w http.ResponseWriter, r *http.Request, c caller, p params) {
	h.revoke(w, r, c, p.arg)
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request, c caller, id string) {
	ctx := r.Context()
	var res index.Result
	err := h.db.Update(ctx, func(tx *index.Tx) (err error) {
		res, err = tx.RevokeKey(ctx, id, c.actor())
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	// Dashboard sessions signed in with the key end with the commit (each
	// request checks the key in the index); bearer use ends when the
	// resolver's key table reloads.
	if res.Changed {
		h.log.Info("key revoked", logKeyID, id, logActor, c.actor())
	}
	out := struct {
		ID      string            `json:"id"`
		Changed bool              `json:"changed"`
		Audit   *index.AuditEntry `json:"audit"`
	}{ID: id, Changed: res.Changed}
	if res.Changed {
		e := res.Entry
		out.Audit = &e
	}
	writeJSON(w, r, http.StatusOK, out)
}
