package resolver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/index"
)

// snapshot is everything a read needs. It is never modified after it is
// published through Handler.snap: a change builds a copy that shares the
// unchanged entries and docs, so a reader holding an old snapshot keeps a
// consistent view and never sees a half-built document.
type snapshot struct {
	prompts map[string]*entry
	keys    map[[32]byte]*apiKey
	staging bool  // the staging switch
	seq     int64 // change feed position it reflects
	// failing are the pointers whose document could not be built, each
	// served by its previous good document if it had one (never by an
	// error kept in its place: the retry loop rebuilds them).
	failing map[failKey]*failure
}

// entry is one prompt's documents. Both are kept whatever the staging
// switch says, so flipping it only swaps a flag.
type entry struct {
	live    *doc // nil: no live pointer
	staging *doc // nil: staging unset
}

// doc is one pre-rendered response with its header values.
type doc struct {
	src      index.Pointer // what it was built from (AuditSeq, UpdatedAt zeroed)
	archived bool          // the pointer marks a deletion: 404 prompt_archived
	err      error         // building failed (reads answer 503, retried) or, pinned, the version is invalid (422)
	cause    error         // why building failed, for the log
	body     []byte
	// content is the prompt file the document was built from, which a
	// render decodes again when the prompt cache has dropped it: a server
	// keeps one file's bytes per pointer, not a decoded prompt's maps.
	content []byte
	etag    string   // strong entity tag, quoted
	etagHdr []string // {etag}
	lenHdr  []string // {len(body)}
}

// readDoc is the response body of GET /v1/prompts/{key} (SPEC §3), fields
// in the contract's order.
type readDoc struct {
	Key       string          `json:"key"`
	Env       string          `json:"env"`
	Version   string          `json:"version"`
	Number    *int            `json:"number"` // null for drafts
	Commit    string          `json:"commit"`
	SHA256    string          `json:"sha256"`
	Message   string          `json:"message"`
	Author    string          `json:"author"`
	CreatedAt string          `json:"created_at"`
	Prompt    json.RawMessage `json:"prompt"`
}

// source is p without the bookkeeping fields that do not reach the body, so
// an unchanged pointer (re-audited, say) keeps its document and ETag.
func source(p index.Pointer) index.Pointer {
	p.AuditSeq = 0
	p.UpdatedAt = ""
	return p
}

// buildDoc renders the document for pointer p as served to env. A failure
// is returned in the doc: the caller keeps the pointer's previous good
// document instead, if there is one (docFor), and the retry loop tries
// again; reads of a pointer with no good document answer 503, never 500.
func (h *Handler) buildDoc(ctx context.Context, p index.Pointer, env string) *doc {
	d := &doc{src: source(p)}
	if p.Archived {
		d.archived = true
		return d
	}
	content, parsed, err := h.promptContent(ctx, p.Key, p.BlobSHA, p.SHA256)
	if err == nil {
		d.content = content
		d.body, err = renderDoc(p, env, parsed)
	}
	if err != nil {
		// The cause (blob SHAs, parser text) is logged, not echoed.
		d.cause = fmt.Errorf("build %s %s of %s: %w", env, p.Label(), p.Key, err)
		d.err = fmt.Errorf("%w: %s %s of %q cannot be served yet; the server retries", ErrUnavailable, env, p.Label(), p.Key)
		return d
	}
	sum := sha256.Sum256(d.body)
	d.etag = `"` + hex.EncodeToString(sum[:16]) + `"`
	d.etagHdr = []string{d.etag}
	d.lenHdr = []string{strconv.Itoa(len(d.body))}
	return d
}

func renderDoc(p index.Pointer, env string, parsed *promptvault.Prompt) ([]byte, error) {
	prompt, err := encodeJSON(parsed)
	if err != nil {
		return nil, fmt.Errorf("encode prompt %s: %w", p.Key, err)
	}
	rd := readDoc{Key: p.Key, Env: env, Version: p.Label(), Commit: p.Commit, SHA256: p.SHA256,
		Message: p.Message, Author: p.Author, CreatedAt: p.CreatedAt, Prompt: bytes.TrimRight(prompt, "\n")}
	if p.Draft == "" {
		n := p.Number
		rd.Number = &n
	}
	b, err := encodeJSON(rd)
	// The encoder's buffer grows by doubling; a document lives as long as
	// its pointer, so keep exactly its bytes, not the slack.
	return bytes.Clone(b), err
}

// encodeJSON is json.Marshal without HTML escaping: prompts are full of
// <, > and &, and the documents are read by programs, not browsers.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// promptContent reads the file with blob SHA blob from the index's contents
// (never the Git mirror: serving needs no Git objects), checks it against
// the indexed SHA-256 and decodes it. Decoded prompts are cached by blob,
// so a pointer flipping between two versions, and renders, decode nothing.
func (h *Handler) promptContent(ctx context.Context, key, blob, sum string) ([]byte, *promptvault.Prompt, error) {
	data, err := h.db.Content(ctx, blob)
	if err != nil {
		return nil, nil, fmt.Errorf("read content: %w", err)
	}
	if got := sha256.Sum256(data); sum != "" && hex.EncodeToString(got[:]) != sum {
		return nil, nil, fmt.Errorf("blob %s has sha256 %x; the index says %s", blob, got, sum)
	}
	p, err := h.decoded(key, blob, data)
	if err != nil {
		return nil, nil, err
	}
	return data, p, nil
}

// decoded is the prompt in file data (blob SHA blob), from the cache or
// decoded now. Only valid versions become pointers, so Decode (the
// structure, without reparsing templates: indexing did) suffices, and a
// failure is a parser that grew stricter since indexing: an operator's
// problem, not the caller's.
func (h *Handler) decoded(key, blob string, data []byte) (*promptvault.Prompt, error) {
	if p, ok := h.prompts.Get(blob); ok {
		return p, nil
	}
	p, err := promptvault.Decode(key, data)
	if err != nil {
		return nil, fmt.Errorf("decode blob %s: %v", blob, err)
	}
	h.prompts.Add(blob, p)
	return p, nil
}

// loadAll reads the whole state and replaces the snapshot (at New and on a
// "reset" change). Unchanged documents of the current snapshot are reused.
func (h *Handler) loadAll(ctx context.Context) error {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	return h.loadAllLocked(ctx)
}

// loadAllLocked needs h.reloadMu.
func (h *Handler) loadAllLocked(ctx context.Context) error {
	var (
		ptrs    []index.Pointer
		keys    []index.APIKey
		staging bool
		seq     int64
		audit   int64
	)
	// One read transaction, so the change sequence matches the state read
	// and Run replays exactly what came after.
	err := h.db.View(ctx, func(tx *index.Tx) error {
		var err error
		if seq, err = tx.LastChange(ctx); err != nil {
			return fmt.Errorf("last change: %w", err)
		}
		if ptrs, err = tx.AllPointers(ctx); err != nil {
			return fmt.Errorf("pointers: %w", err)
		}
		if keys, err = tx.Keys(ctx); err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		if staging, err = tx.StagingEnabled(ctx); err != nil {
			return fmt.Errorf("settings: %w", err)
		}
		if audit, err = lastAudit(ctx, tx); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load index: %w", err)
	}
	old := h.snap.Load()
	if old == nil {
		old = &snapshot{}
	}
	next := &snapshot{prompts: make(map[string]*entry, len(ptrs)), staging: staging, seq: seq}
	fails := newFailSet(old.failing)
	var gone []*apiKey
	if next.keys, gone, err = buildKeys(keys, old.keys); err != nil {
		return err
	}
	for _, p := range ptrs {
		e := next.prompts[p.Key]
		if e == nil {
			e = &entry{}
			next.prompts[p.Key] = e
		}
		var prev *entry
		if old.prompts != nil {
			prev = old.prompts[p.Key]
		}
		switch p.Env {
		case index.EnvLive:
			e.live = h.docFor(ctx, p, prevDoc(prev, index.EnvLive), fails)
		case index.EnvStaging:
			e.staging = h.docFor(ctx, p, prevDoc(prev, index.EnvStaging), fails)
		}
	}
	h.pinned.clear()
	h.retired = append(h.retired, gone...)
	h.seq = seq
	h.publish(next, fails)
	h.hub.checkKeys(next.keys)
	h.hub.advance(audit)
	return nil
}

// lastAudit is the newest audit sequence number, read in the same
// transaction as the state a snapshot is built from: the event hub
// publishes up to it, never ahead of what readers are served.
func lastAudit(ctx context.Context, tx *index.Tx) (int64, error) {
	last, err := tx.AuditLog(ctx, 0, 1)
	if err != nil {
		return 0, fmt.Errorf("last audit entry: %w", err)
	}
	if len(last) == 0 {
		return 0, nil
	}
	return last[0].Seq, nil
}

func prevDoc(e *entry, env string) *doc {
	switch {
	case e == nil:
		return nil
	case env == index.EnvLive:
		return e.live
	default:
		return e.staging
	}
}

// docFor returns old when it was built from the same pointer (and
// succeeded), else a new document. When the new one cannot be built, a
// good old one (the pointer's previous target) is kept and served, and the
// failure is recorded in fails for the retry loop, /readyz and the metrics.
func (h *Handler) docFor(ctx context.Context, p index.Pointer, old *doc, fails *failSet) *doc {
	if old != nil && old.err == nil && old.src == source(p) {
		return old
	}
	d := h.buildDoc(ctx, p, p.Env)
	if d.err == nil {
		return d
	}
	if old != nil && old.err == nil {
		fails.add(h, p, d, old)
		return old
	}
	fails.add(h, p, d, nil)
	return d
}

// apply rebuilds what changes touch: the documents of the prompts named by
// pointer and draft changes, the key map on "keys", the staging switch on
// "settings", everything on "reset" (the feed was trimmed past us) and on
// "contents" (content that documents were waiting for may have arrived).
func (h *Handler) apply(ctx context.Context, changes []index.Change) error {
	if len(changes) == 0 {
		return nil
	}
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	prompts := map[string]bool{}
	var reKeys, reSettings bool
	for _, c := range changes {
		switch {
		case c.Kind == index.ChangePointer || c.Kind == index.ChangeDraft:
			prompts[c.Key] = true
		case c.Kind == index.ChangeKeys:
			reKeys = true
		case c.Kind == index.ChangeSettings:
			reSettings = true
		case c.Kind != "reset" && c.Kind != index.ChangeContents && c.Key != "":
			prompts[c.Key] = true // a kind added later: reread its prompt
		default:
			return h.loadAllLocked(ctx)
		}
	}
	return h.rebuildLocked(ctx, prompts, reKeys, reSettings, changes[len(changes)-1].Seq)
}

// rebuildLocked rereads the pointers of prompts (and the keys, the staging
// switch) and publishes a snapshot at change position seq. Needs
// h.reloadMu.
func (h *Handler) rebuildLocked(ctx context.Context, prompts map[string]bool, reKeys, reSettings bool, seq int64) error {
	type pair struct{ live, staging *index.Pointer }
	got := make(map[string]pair, len(prompts))
	var keys []index.APIKey
	var staging bool
	var audit, lastChange int64
	err := h.db.View(ctx, func(tx *index.Tx) error {
		// The audit position is safe to publish only if this view holds no
		// change newer than the batch: else a commit that slipped in
		// between is in the audit log but not yet in the snapshot.
		var err error
		if lastChange, err = tx.LastChange(ctx); err != nil {
			return fmt.Errorf("last change: %w", err)
		}
		if audit, err = lastAudit(ctx, tx); err != nil {
			return err
		}
		for key := range prompts {
			var pr pair
			for _, env := range []string{index.EnvLive, index.EnvStaging} {
				p, ok, err := tx.Pointer(ctx, key, env)
				if err != nil {
					return fmt.Errorf("pointer %s %s: %w", env, key, err)
				}
				if !ok {
					continue
				}
				if env == index.EnvLive {
					pr.live = &p
				} else {
					pr.staging = &p
				}
			}
			got[key] = pr
		}
		if reKeys {
			if keys, err = tx.Keys(ctx); err != nil {
				return fmt.Errorf("keys: %w", err)
			}
		}
		if reSettings {
			if staging, err = tx.StagingEnabled(ctx); err != nil {
				return fmt.Errorf("settings: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reload index: %w", err)
	}
	old := h.snap.Load()
	next := *old
	next.seq = seq
	fails := newFailSet(old.failing)
	// Failures of prompts not reread here stand as they are.
	for k, f := range old.failing {
		if !prompts[k.key] {
			fails.next[k] = f
		}
	}
	if len(got) > 0 {
		next.prompts = maps.Clone(old.prompts)
		for key, pr := range got {
			prev := old.prompts[key]
			e := &entry{}
			if pr.live != nil {
				e.live = h.docFor(ctx, *pr.live, prevDoc(prev, index.EnvLive), fails)
			}
			if pr.staging != nil {
				e.staging = h.docFor(ctx, *pr.staging, prevDoc(prev, index.EnvStaging), fails)
			}
			if e.live == nil && e.staging == nil {
				delete(next.prompts, key)
			} else {
				next.prompts[key] = e
			}
			h.log.Debug("prompt reloaded", logKey, key)
		}
	}
	if reKeys {
		m, gone, err := buildKeys(keys, old.keys)
		if err != nil {
			return err
		}
		next.keys = m
		h.retired = append(h.retired, gone...)
		h.log.Info("api keys reloaded", "keys", len(m), "dropped", len(gone))
	}
	if reSettings {
		next.staging = staging
		h.log.Info("settings reloaded", "staging_enabled", staging)
	}
	h.seq = seq
	h.publish(&next, fails)
	if reKeys {
		h.hub.checkKeys(next.keys)
	}
	if lastChange <= h.seq {
		h.hub.advance(audit)
	}
	return nil
}

// Run follows the index's change feed until ctx ends, rebuilding what
// changed, and writes keys' last-used times every TouchInterval and once
// more at the end. It returns nil when ctx ends.
func (h *Handler) Run(ctx context.Context) error {
	if h.ownPool {
		defer h.renderLimits.Pool.Close()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.watch(ctx)
	}()
	hubDone := make(chan struct{})
	go func() {
		defer close(hubDone)
		h.hub.run(ctx, h.db)
	}()
	defer func() { <-hubDone }()
	retryDone := make(chan struct{})
	go func() {
		defer close(retryDone)
		h.retryLoop(ctx)
	}()
	defer func() { <-retryDone }()
	t := time.NewTicker(h.touch)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := h.flushUsage(ctx); err != nil && ctx.Err() == nil {
				h.log.Error("record key use", "err", err)
			}
		case <-done:
			// ctx is over: give the last flush a moment of its own.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := h.flushUsage(fctx)
			cancel()
			return err
		}
	}
}

// watch runs db.Watch from the snapshot's position, restarting it after a
// failure (a locked or briefly unreadable file must not stop a server from
// following changes).
func (h *Handler) watch(ctx context.Context) {
	for ctx.Err() == nil {
		h.reloadMu.Lock()
		from := h.seq
		h.reloadMu.Unlock()
		err := h.db.Watch(ctx, from, index.WatchOptions{Fallback: h.poll, Wake: h.wakeCh},
			func(cs []index.Change) { h.applyRetry(ctx, cs) })
		if ctx.Err() != nil {
			return
		}
		h.log.Error("watch index changes; restarting in 1s", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// wake makes the watcher check the index at once.
func (h *Handler) wake() {
	select {
	case h.wakeCh <- struct{}{}:
	default:
	}
}

// applyRetry applies changes until it succeeds or ctx ends: the feed moves
// on once the callback returns, so giving up would lose the change.
func (h *Handler) applyRetry(ctx context.Context, cs []index.Change) {
	backoff := 100 * time.Millisecond
	for {
		err := h.apply(ctx, cs)
		if err == nil || ctx.Err() != nil {
			return
		}
		h.log.Error("apply index changes", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
