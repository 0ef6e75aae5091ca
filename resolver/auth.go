package resolver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/promptvault/promptvault/index"
)

// Caller is an authenticated API key.
type Caller struct {
	KeyID string
	Env   string // index.KeyLive, KeyTest or KeyAdmin
}

// The 401 reasons. Unknown and revoked keys share one message so a client
// cannot probe which keys once existed.
var (
	errNoAuth     = fmt.Errorf("%w: missing Authorization header; want Authorization: Bearer <API key>", ErrUnauthorized)
	errManyAuth   = fmt.Errorf("%w: more than one Authorization header", ErrUnauthorized)
	errNotBearer  = fmt.Errorf("%w: Authorization scheme is not Bearer; want Authorization: Bearer <API key>", ErrUnauthorized)
	errNoToken    = fmt.Errorf("%w: empty bearer token; want Authorization: Bearer <API key>", ErrUnauthorized)
	errMalformed  = fmt.Errorf("%w: malformed API key; want pv_live_, pv_test_ or pv_admin_ followed by at least 32 letters and digits", ErrUnauthorized)
	errUnknownKey = fmt.Errorf("%w: unknown or revoked API key", ErrUnauthorized)
)

// apiKey is a usable (unrevoked) key in a snapshot. The same *apiKey is
// carried into later snapshots while the key lives, so its usage counter
// survives rebuilds.
type apiKey struct {
	id      string
	env     string
	used    atomic.Int64 // unix seconds of the last request, 0 = none yet
	flushed atomic.Int64 // the used value last written to the index
}

// maxTokenLen bounds the stack buffer a token is hashed from; KeyEnv allows
// at most "pv_admin_" plus 128 characters.
const maxTokenLen = 160

// Authenticate checks r's bearer key against the keys the handler holds
// (revocations from any process apply once the change feed shows them).
// The error wraps ErrUnauthorized; pass it to WriteError.
func (h *Handler) Authenticate(r *http.Request) (Caller, error) {
	k, err := authenticate(h.snap.Load(), r)
	if err != nil {
		return Caller{}, err
	}
	return Caller{KeyID: k.id, Env: k.env}, nil
}

// Authorize is Authenticate plus a check of the key's kind: a valid key
// whose env is not in envs is ErrForbidden (e.g. Authorize(r,
// index.KeyAdmin) on admin endpoints).
func (h *Handler) Authorize(r *http.Request, envs ...string) (Caller, error) {
	c, err := h.Authenticate(r)
	if err != nil {
		return c, err
	}
	for _, e := range envs {
		if c.Env == e {
			return c, nil
		}
	}
	return c, fmt.Errorf("%w: a %s key cannot use %s %s", ErrForbidden, c.Env, r.Method, r.URL.Path)
}

// authenticate finds the key presented in r. It allocates nothing: the
// token is hashed from a stack copy into the [32]byte map key.
func authenticate(s *snapshot, r *http.Request) (*apiKey, error) {
	vals := r.Header["Authorization"]
	switch len(vals) {
	case 0:
		return nil, errNoAuth
	case 1:
	default:
		return nil, errManyAuth
	}
	v := vals[0]
	// The scheme is case-insensitive (RFC 9110 §11.1).
	const scheme = "Bearer"
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return nil, errNotBearer
	}
	rest := v[len(scheme):]
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return nil, errNotBearer // e.g. "BearerX"
	}
	tok := strings.TrimSpace(rest)
	if tok == "" {
		return nil, errNoToken
	}
	env, ok := index.KeyEnv(tok)
	if !ok || len(tok) > maxTokenLen {
		return nil, errMalformed
	}
	var buf [maxTokenLen]byte
	n := copy(buf[:], tok)
	k := s.keys[sha256.Sum256(buf[:n])]
	if k == nil || k.env != env {
		return nil, errUnknownKey
	}
	if now := time.Now().Unix(); k.used.Load() != now {
		k.used.Store(now)
	}
	return k, nil
}

// buildKeys maps each unrevoked key's hash to its entry, reusing old's
// entries so usage counters carry over. It returns the entries of old that
// are gone (revoked or deleted).
func buildKeys(keys []index.APIKey, old map[[32]byte]*apiKey) (map[[32]byte]*apiKey, []*apiKey, error) {
	m := make(map[[32]byte]*apiKey, len(keys))
	for _, k := range keys {
		if k.RevokedAt != "" {
			continue
		}
		var hash [32]byte
		if n, err := hex.Decode(hash[:], []byte(k.Hash)); err != nil || n != len(hash) {
			return nil, nil, fmt.Errorf("key %s: stored hash is not 64 hex digits", k.ID)
		}
		if e := old[hash]; e != nil && e.id == k.ID && e.env == k.Env {
			m[hash] = e
			continue
		}
		m[hash] = &apiKey{id: k.ID, env: k.Env}
	}
	var gone []*apiKey
	for hash, e := range old {
		if m[hash] != e {
			gone = append(gone, e)
		}
	}
	return m, gone, nil
}

// flushUsage writes last-used times that changed since the last flush.
// Losing one (a crash) costs only bookkeeping, so it runs every
// TouchInterval rather than per request.
func (h *Handler) flushUsage(ctx context.Context) error {
	h.reloadMu.Lock()
	retired := h.retired
	h.retired = nil
	h.reloadMu.Unlock()
	keys := append([]*apiKey(nil), retired...)
	for _, k := range h.snap.Load().keys {
		keys = append(keys, k)
	}
	used := map[string]time.Time{}
	var flushed []*apiKey
	var at []int64
	for _, k := range keys {
		if u := k.used.Load(); u != 0 && u != k.flushed.Load() {
			used[k.id] = time.Unix(u, 0)
			flushed = append(flushed, k)
			at = append(at, u)
		}
	}
	if len(used) == 0 {
		return nil
	}
	if err := h.db.Update(ctx, func(tx *index.Tx) error { return tx.TouchKeys(ctx, used) }); err != nil {
		h.reloadMu.Lock()
		h.retired = append(h.retired, retired...)
		h.reloadMu.Unlock()
		return fmt.Errorf("record key use: %w", err)
	}
	for i, k := range flushed {
		k.flushed.Store(at[i])
	}
	return nil
}
