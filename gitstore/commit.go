package gitstore

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// Commit is one commit's metadata.
type Commit struct {
	SHA         string
	Parents     []string
	Message     string // as stored, trailing newline included
	AuthorName  string
	AuthorEmail string
	AuthorTime  time.Time
	CommitTime  time.Time
}

// rawCommit is what walking needs from a commit, without string allocations.
type rawCommit struct {
	tree    plumbing.Hash
	parents []plumbing.Hash
	time    int64 // committer time, for date-ordered walks
}

func (r *Repo) readCommit(h plumbing.Hash) ([]byte, error) {
	typ, data, err := r.object(h)
	if err != nil {
		return nil, err
	}
	if typ != objCommit {
		return nil, fmt.Errorf("%s is not a commit: %w", h, ErrNotFound)
	}
	return data, nil
}

// parseRaw reads the tree, parents and committer time from a commit's headers.
func parseRaw(data []byte) (rawCommit, error) {
	var c rawCommit
	for len(data) > 0 {
		nl := bytes.IndexByte(data, '\n')
		if nl <= 0 {
			break // end of headers
		}
		line := data[:nl]
		data = data[nl+1:]
		switch {
		case bytes.HasPrefix(line, []byte("tree ")) && len(line) == 45:
			if _, err := hexDecode(c.tree[:], line[5:]); err != nil {
				return c, err
			}
		case bytes.HasPrefix(line, []byte("parent ")) && len(line) == 47:
			var p plumbing.Hash
			if _, err := hexDecode(p[:], line[7:]); err != nil {
				return c, err
			}
			c.parents = append(c.parents, p)
		case bytes.HasPrefix(line, []byte("committer ")):
			_, _, c.time, _ = parseSignature(line[10:])
		}
	}
	if c.tree.IsZero() {
		return c, fmt.Errorf("commit without tree")
	}
	return c, nil
}

func hexDecode(dst, src []byte) (int, error) {
	if len(src) != 2*len(dst) {
		return 0, fmt.Errorf("bad hash %q", src)
	}
	for i := range dst {
		hi, ok1 := unhex(src[2*i])
		lo, ok2 := unhex(src[2*i+1])
		if !ok1 || !ok2 {
			return 0, fmt.Errorf("bad hash %q", src)
		}
		dst[i] = hi<<4 | lo
	}
	return len(dst), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// parseSignature splits "Name <email> 1700000000 +0100".
func parseSignature(b []byte) (name, email string, unix int64, tz *time.Location) {
	tz = time.UTC
	lt := bytes.IndexByte(b, '<')
	gt := bytes.LastIndexByte(b, '>')
	if lt < 0 || gt < lt {
		return string(bytes.TrimSpace(b)), "", 0, tz
	}
	name = string(bytes.TrimSpace(b[:lt]))
	email = string(b[lt+1 : gt])
	rest := bytes.Fields(b[gt+1:])
	if len(rest) >= 1 {
		unix, _ = strconv.ParseInt(string(rest[0]), 10, 64)
	}
	if len(rest) >= 2 && len(rest[1]) == 5 {
		hh, err1 := strconv.Atoi(string(rest[1][1:3]))
		mm, err2 := strconv.Atoi(string(rest[1][3:5]))
		if err1 == nil && err2 == nil {
			off := (hh*60 + mm) * 60
			if rest[1][0] == '-' {
				off = -off
			}
			tz = time.FixedZone(string(rest[1]), off)
		}
	}
	return name, email, unix, tz
}

func parseCommit(sha string, data []byte) (Commit, error) {
	c := Commit{SHA: sha}
	for len(data) > 0 {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			nl = len(data)
		}
		line := data[:nl]
		data = data[min(nl+1, len(data)):]
		if len(line) == 0 {
			c.Message = string(data)
			break
		}
		switch {
		case bytes.HasPrefix(line, []byte("parent ")):
			c.Parents = append(c.Parents, string(line[7:]))
		case bytes.HasPrefix(line, []byte("author ")):
			var unix int64
			var tz *time.Location
			c.AuthorName, c.AuthorEmail, unix, tz = parseSignature(line[7:])
			c.AuthorTime = time.Unix(unix, 0).In(tz)
		case bytes.HasPrefix(line, []byte("committer ")):
			_, _, unix, tz := parseSignature(line[10:])
			c.CommitTime = time.Unix(unix, 0).In(tz)
		}
	}
	return c, nil
}

// Commit returns a commit's metadata; ErrNotFound if absent.
func (r *Repo) Commit(sha string) (Commit, error) {
	h, err := parseSHA(sha)
	if err != nil {
		return Commit{}, fmt.Errorf("commit: %w", err)
	}
	data, err := r.readCommit(h)
	if err != nil {
		return Commit{}, fmt.Errorf("commit %s: %w", sha, err)
	}
	return parseCommit(h.String(), data)
}

// FirstParent walks the first-parent chain from head back and returns it
// oldest first, stopping before the first commit for which stop(sha) is
// true (stop may be nil: walk to the root).
func (r *Repo) FirstParent(ctx context.Context, head string, stop func(sha string) bool) ([]Commit, error) {
	h, err := parseSHA(head)
	if err != nil {
		return nil, fmt.Errorf("first-parent walk: %w", err)
	}
	var out []Commit
	for !h.IsZero() {
		if len(out)%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("first-parent walk: %w", err)
			}
		}
		sha := h.String()
		if stop != nil && stop(sha) {
			break
		}
		data, err := r.readCommit(h)
		if err != nil {
			return nil, fmt.Errorf("first-parent walk at %s: %w", sha, err)
		}
		c, err := parseCommit(sha, data)
		if err != nil {
			return nil, fmt.Errorf("first-parent walk at %s: %w", sha, err)
		}
		out = append(out, c)
		h = plumbing.ZeroHash
		if len(c.Parents) > 0 {
			h = plumbing.NewHash(c.Parents[0])
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// IsAncestor reports whether a is an ancestor of (or equal to) b.
func (r *Repo) IsAncestor(a, b string) (bool, error) {
	ha, err := parseSHA(a)
	if err != nil {
		return false, fmt.Errorf("is-ancestor: %w", err)
	}
	hb, err := parseSHA(b)
	if err != nil {
		return false, fmt.Errorf("is-ancestor: %w", err)
	}
	ok, err := r.isAncestor(ha, hb)
	if err != nil {
		return false, fmt.Errorf("is-ancestor %s %s: %w", a, b, err)
	}
	return ok, nil
}

func (r *Repo) isAncestor(a, b plumbing.Hash) (bool, error) {
	if a == b {
		if _, err := r.readCommit(a); err != nil {
			return false, err
		}
		return true, nil
	}
	bases, err := r.mergeBases(a, b)
	if err != nil {
		return false, err
	}
	for _, m := range bases {
		if m == a {
			return true, nil
		}
	}
	return false, nil
}

// MergeBase returns a best common ancestor of a and b; ErrNotFound when
// they share no history. With several equally good bases (criss-cross
// merges) it returns the newest.
func (r *Repo) MergeBase(a, b string) (string, error) {
	ha, err := parseSHA(a)
	if err != nil {
		return "", fmt.Errorf("merge-base: %w", err)
	}
	hb, err := parseSHA(b)
	if err != nil {
		return "", fmt.Errorf("merge-base: %w", err)
	}
	bases, err := r.mergeBases(ha, hb)
	if err != nil {
		return "", fmt.Errorf("merge-base %s %s: %w", a, b, err)
	}
	if len(bases) == 0 {
		return "", fmt.Errorf("merge-base %s %s: %w", a, b, ErrNotFound)
	}
	return bases[0].String(), nil
}

// Flags of git's paint_down_to_common.
const (
	fromA = 1 << iota
	fromB
	stale
	result
)

type walkItem struct {
	h    plumbing.Hash
	time int64
}

type walkQueue []walkItem

func (q walkQueue) Len() int           { return len(q) }
func (q walkQueue) Less(i, j int) bool { return q[i].time > q[j].time }
func (q walkQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *walkQueue) Push(x any)        { *q = append(*q, x.(walkItem)) }
func (q *walkQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// mergeBases is git's paint_down_to_common: walk both histories newest
// first, marking which side reaches each commit; a commit reached from
// both is a candidate and everything below it is stale. The walk stops
// when only stale commits remain, so a fast-forward check visits only the
// commits between the two. Candidates that are ancestors of other
// candidates are then dropped. Newest first.
func (r *Repo) mergeBases(a, b plumbing.Hash) ([]plumbing.Hash, error) {
	flags := map[plumbing.Hash]int{}
	parents := map[plumbing.Hash]rawCommit{}
	q := &walkQueue{}
	load := func(h plumbing.Hash) (rawCommit, error) {
		if c, ok := parents[h]; ok {
			return c, nil
		}
		data, err := r.readCommit(h)
		if err != nil {
			return rawCommit{}, err
		}
		c, err := parseRaw(data)
		if err != nil {
			return rawCommit{}, fmt.Errorf("commit %s: %w", h, err)
		}
		parents[h] = c
		return c, nil
	}
	push := func(h plumbing.Hash, f int) error {
		c, err := load(h)
		if err != nil {
			return err
		}
		old := flags[h]
		if old&f == f {
			return nil
		}
		flags[h] = old | f
		heap.Push(q, walkItem{h, c.time})
		return nil
	}
	if err := push(a, fromA); err != nil {
		return nil, err
	}
	if err := push(b, fromB); err != nil {
		return nil, err
	}
	var found []walkItem
	for q.Len() > 0 {
		// Stop once every queued commit is stale.
		allStale := true
		for _, it := range *q {
			if flags[it.h]&stale == 0 {
				allStale = false
				break
			}
		}
		if allStale {
			break
		}
		it := heap.Pop(q).(walkItem)
		f := flags[it.h] & (fromA | fromB | stale)
		if f == fromA|fromB {
			if flags[it.h]&result == 0 {
				flags[it.h] |= result
				found = append(found, it)
			}
			f |= stale
		}
		c := parents[it.h]
		for _, p := range c.parents {
			if err := push(p, f); err != nil {
				return nil, err
			}
		}
	}
	var out []plumbing.Hash
	for _, it := range found {
		out = append(out, it.h)
	}
	if len(out) <= 1 {
		return out, nil
	}
	// Drop candidates reachable from another candidate.
	var best []plumbing.Hash
	for i, x := range out {
		redundant := false
		for j, y := range out {
			if i == j {
				continue
			}
			anc, err := r.reaches(y, x)
			if err != nil {
				return nil, err
			}
			if anc {
				redundant = true
				break
			}
		}
		if !redundant {
			best = append(best, x)
		}
	}
	return best, nil
}

// reaches reports whether to is reachable from from (from ≠ to). Only
// criss-cross merges need it, so a plain full walk is good enough.
func (r *Repo) reaches(from, to plumbing.Hash) (bool, error) {
	seen := map[plumbing.Hash]bool{from: true}
	stack := []plumbing.Hash{from}
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		data, err := r.readCommit(h)
		if err != nil {
			return false, err
		}
		c, err := parseRaw(data)
		if err != nil {
			return false, err
		}
		for _, p := range c.parents {
			if p == to {
				return true, nil
			}
			if !seen[p] {
				seen[p] = true
				stack = append(stack, p)
			}
		}
	}
	return false, nil
}
