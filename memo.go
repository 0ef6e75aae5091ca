package promptvault

import (
	"crypto/sha256"
	"sync"
)

// memo caches the outcome of a pure, expensive function of some bytes
// (compiling a schema, parsing a template) by their SHA-256. Indexing a
// history parses every version, and most versions change one field, so the
// other fields' schemas and templates repeat. Cached values must be
// immutable and safe for concurrent use. Past max entries the memo starts
// over: memory stays bounded without LRU bookkeeping on a cold path.
type memo[T any] struct {
	mu  sync.Mutex
	max int
	m   map[[32]byte]memoEntry[T]
}

type memoEntry[T any] struct {
	v   T
	err error
}

func newMemo[T any](max int) *memo[T] {
	return &memo[T]{max: max, m: map[[32]byte]memoEntry[T]{}}
}

func (c *memo[T]) get(key [32]byte, compute func() (T, error)) (T, error) {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return e.v, e.err
	}
	e.v, e.err = compute()
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[key] = e
	c.mu.Unlock()
	return e.v, e.err
}

var templates = newMemo[*Template](4096)

// parseTemplateCached is ParseTemplate memoised by name and source. A parsed
// template is immutable once built and gonja executes it race-free, so one
// may serve every version that holds the same text.
func parseTemplateCached(name, src string) (*Template, error) {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(src))
	var key [32]byte
	h.Sum(key[:0])
	return templates.get(key, func() (*Template, error) { return ParseTemplate(name, src) })
}
