package resolver

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver/metrics"
)

// read answers GET /v1/prompts/{key}[?version=vN].
//
// The key is the rest of the percent-decoded path (r.URL.Path), so
// "support%2Fsummarize" and "support/summarize" name the same prompt. It is
// only ever a map key, never a file path, and a key that is not served is
// checked against SPEC §1's pattern after decoding: "..", "%2e%2e", "%00",
// upper case, empty segments and keys over 128 bytes are 400
// invalid_request saying what is wrong, whatever their encoding. The key is
// authenticated first, so without a valid key every path is 401.
//
// The common case allocates nothing here: the snapshot holds the body and
// its header values, the bearer token is hashed on the stack.
func (h *Handler) read(w http.ResponseWriter, r *http.Request) {
	s := h.snap.Load()
	k, err := authenticate(s, r)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	d, err := h.pick(r.Context(), s, k, r.URL.Path[len(PromptsPrefix):], r.URL.RawQuery)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	serveDoc(w, r, d)
	metrics.Read(readEnv(d, r.URL.RawQuery))
}

// readEnv labels a served document for promptvault_reads_total: the
// pointer that chose it, or "pinned" for ?version=. Allocation-free.
func readEnv(d *doc, rawQuery string) string {
	switch {
	case d.src.Env == index.EnvStaging:
		return metrics.EnvStaging
	case rawQuery != "" && strings.Contains(rawQuery, "version="):
		return metrics.EnvPinned
	}
	return metrics.EnvLive
}

// pick finds the document a key reads for prompt key: live, or staging for
// a test key when the switch is on and staging is set, or the published
// version ?version= pins. Reads and renders resolve alike through it.
func (h *Handler) pick(ctx context.Context, s *snapshot, k *apiKey, key, rawQuery string) (*doc, error) {
	e := s.prompts[key]
	if e == nil {
		// Served keys were validated when indexed; only misses are checked.
		if err := checkKey(key); err != nil {
			return nil, err
		}
	}
	if rawQuery != "" {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return nil, fmt.Errorf("%w: query string: %v", index.ErrInvalid, err)
		}
		if vs, ok := q["version"]; ok {
			return h.pinnedVersion(ctx, e, key, vs)
		}
	}
	if e == nil {
		return nil, fmt.Errorf("%w: prompt %q does not exist or has no live version", index.ErrNotFound, key)
	}
	d, env := e.live, index.EnvLive
	// A test key reads staging when the switch is on and staging is set,
	// else live; the document's env says which.
	if k.env == index.KeyTest && s.staging && e.staging != nil {
		d, env = e.staging, index.EnvStaging
	}
	switch {
	case d == nil:
		return nil, fmt.Errorf("%w: prompt %q has no live version", index.ErrNotFound, key)
	case d.archived && env == index.EnvStaging:
		return nil, fmt.Errorf("%w: staging of %q points at a draft that deletes it", ErrArchived, key)
	case d.archived:
		return nil, fmt.Errorf("%w: %q was deleted on the tracked branch", ErrArchived, key)
	case d.err != nil:
		return nil, d.err
	}
	return d, nil
}

// checkKey reports a key that cannot exist as 400, with promptvault's
// reason. (ValidateKey's *Problems would be a 422 about a file.)
func checkKey(key string) error {
	if err := promptvault.ValidateKey(key); err != nil {
		msg := err.Error()
		if p, ok := err.(*promptvault.Problems); ok && len(p.List) > 0 {
			msg = p.List[0].Message
		}
		return fmt.Errorf("%w: invalid prompt key in path: %s", index.ErrInvalid, msg)
	}
	return nil
}

// pinnedVersion resolves ?version=vN: a published version, whichever key reads
// it. Its document says env "live" (published versions are the live
// track's history; no pointer chose it) and is built on first use, then kept
// in a bounded cache: published versions are immutable.
func (h *Handler) pinnedVersion(ctx context.Context, e *entry, key string, vs []string) (*doc, error) {
	if len(vs) != 1 {
		return nil, fmt.Errorf("%w: version given %d times; want one", index.ErrInvalid, len(vs))
	}
	label := vs[0]
	n, draft, err := index.ParseLabel(label)
	if err != nil {
		return nil, fmt.Errorf("%w: ?version=%q: want a published version such as v3", index.ErrInvalid, label)
	}
	if draft != "" {
		return nil, fmt.Errorf("%w: ?version=%s: a pin takes a published version (vN); drafts are read through staging with a pv_test_ key",
			index.ErrInvalid, label)
	}
	// SPEC §2: once a deletion is promoted, reads answer prompt_archived;
	// history stays readable through the admin API.
	if e != nil && e.live != nil && e.live.archived {
		return nil, fmt.Errorf("%w: %q was deleted on the tracked branch; its history is kept for the admin API", ErrArchived, key)
	}
	return h.pinnedDoc(ctx, key, n)
}

// pinnedDoc returns the document of version n of key, building it once.
// Unknown versions are not cached: a sync may create them.
func (h *Handler) pinnedDoc(ctx context.Context, key string, n int) (*doc, error) {
	pk := pinKey{key, n}
	if d := h.pinned.get(pk); d != nil {
		if d.err != nil {
			return nil, d.err
		}
		return d, nil
	}
	var v index.Version
	err := h.db.View(ctx, func(tx *index.Tx) error {
		var err error
		v, err = tx.Version(ctx, key, index.Label(n))
		return err
	})
	if err != nil {
		return nil, err
	}
	if !v.Valid {
		d := &doc{err: fmt.Errorf("%s %s: %w: %w", key, v.Label, index.ErrInvalidVersion, &promptvault.Problems{List: v.Problems})}
		h.pinned.put(pk, d)
		return nil, d.err
	}
	d := h.buildDoc(ctx, index.Pointer{Key: v.Key, Env: index.EnvLive, Number: v.Number, Commit: v.Commit, SHA256: v.SHA256,
		BlobSHA: v.BlobSHA, Message: v.Message, Author: v.Author, CreatedAt: v.CreatedAt}, index.EnvLive)
	if d.err != nil {
		return nil, d.err // possibly transient (content not yet backfilled): retry next time
	}
	h.pinned.put(pk, d)
	return d, nil
}

// serveDoc writes d, or 304 when If-None-Match matches its ETag. Header
// values are assigned, not Set, so nothing is allocated per response.
func serveDoc(w http.ResponseWriter, r *http.Request, d *doc) {
	hdr := w.Header()
	hdr["Etag"] = d.etagHdr
	hdr["Cache-Control"] = hdrNoCache
	hdr["Vary"] = hdrVary
	if inm, ok := r.Header["If-None-Match"]; ok && etagMatch(inm, d.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr["Content-Type"] = hdrJSON
	hdr["Content-Length"] = d.lenHdr
	w.Write(d.body)
}

// etagMatch reports whether an If-None-Match field (one or more header
// lines, each a comma-separated list) matches etag. RFC 9110 §13.1.2:
// "*" matches any current representation, and the comparison is weak, so
// W/"x" matches "x". A malformed member matches nothing.
func etagMatch(fields []string, etag string) bool {
	for _, v := range fields {
		for {
			v = strings.TrimLeft(v, " \t,")
			if v == "" {
				break
			}
			if v[0] == '*' {
				return true
			}
			v = strings.TrimPrefix(v, "W/")
			if v == "" || v[0] != '"' {
				// Not an entity-tag: skip to the next member.
				i := strings.IndexByte(v, ',')
				if i < 0 {
					break
				}
				v = v[i+1:]
				continue
			}
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				break
			}
			if v[:end+2] == etag {
				return true
			}
			v = v[end+2:]
		}
	}
	return false
}

type pinKey struct {
	key string
	n   int
}

// pinnedCache bounds the pinned documents in memory, dropping an arbitrary
// one when full (a miss costs one indexed lookup and a parse).
type pinnedCache struct {
	mu  sync.Mutex
	max int
	m   map[pinKey]*doc
}

func newPinnedCache(n int) *pinnedCache {
	if n <= 0 {
		n = DefaultPinnedDocs
	}
	return &pinnedCache{max: n, m: map[pinKey]*doc{}}
}

func (c *pinnedCache) get(k pinKey) *doc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

func (c *pinnedCache) put(k pinKey, d *doc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = d
}

func (c *pinnedCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}
