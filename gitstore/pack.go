package gitstore

import (
	"bytes"
	"compress/zlib"
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// This file is a read-only packfile reader. go-git's own object path opens
// the pack file again for every object larger than 16 KB, allocates a
// Packfile per call and decodes into object.Tree, which made a full-history
// walk 6–20× slower than git (notes/perf.md §2). Here packs and their .idx
// files are mapped once, objects are located by binary search in the index,
// and resolved delta bases and trees are kept in a byte-bounded LRU keyed by
// pack offset, so walking a first-parent chain resolves each tree version
// with one delta application. Everything here is safe for concurrent use;
// loose objects (which go-git's fetch does not write) fall back to go-git.

// Object types as stored in a pack header.
const (
	objCommit   = 1
	objTree     = 2
	objBlob     = 3
	objTag      = 4
	objOfsDelta = 6
	objRefDelta = 7
)

var errCorrupt = errors.New("corrupt pack")

type pack struct {
	name   string
	idx    []byte // whole .idx file, mapped
	data   []byte // whole .pack file, mapped
	n      int
	names  []byte // n × 20-byte sorted hashes
	offs   []byte // n × 4-byte offsets
	large  []byte // 8-byte offsets for packs over 2 GB
	unmaps []func() error
}

func openPack(idxPath string) (*pack, error) {
	p := &pack{name: filepath.Base(idxPath)}
	idx, unmap, err := mapFile(idxPath)
	if err != nil {
		return nil, err
	}
	p.unmaps = append(p.unmaps, unmap)
	data, unmap, err := mapFile(strings.TrimSuffix(idxPath, ".idx") + ".pack")
	if err != nil {
		p.close()
		return nil, err
	}
	p.unmaps = append(p.unmaps, unmap)
	p.idx, p.data = idx, data
	// Only index version 2 exists in practice (git since 1.5.2 and go-git write it).
	if len(idx) < 8+256*4 || !bytes.Equal(idx[:8], []byte{0xff, 't', 'O', 'c', 0, 0, 0, 2}) {
		p.close()
		return nil, fmt.Errorf("%s: unsupported index version", p.name)
	}
	if len(data) < 12 || string(data[:4]) != "PACK" {
		p.close()
		return nil, fmt.Errorf("%s: %w", p.name, errCorrupt)
	}
	p.n = int(binary.BigEndian.Uint32(idx[8+255*4:]))
	off := 8 + 256*4
	if len(idx) < off+p.n*(20+4+4) {
		p.close()
		return nil, fmt.Errorf("%s: short index", p.name)
	}
	p.names = idx[off : off+20*p.n]
	off += 20*p.n + 4*p.n // skip CRCs
	p.offs = idx[off : off+4*p.n]
	p.large = idx[off+4*p.n:]
	return p, nil
}

func (p *pack) close() error {
	var first error
	for _, u := range p.unmaps {
		if err := u(); err != nil && first == nil {
			first = err
		}
	}
	p.unmaps = nil
	return first
}

// find returns the offset of h in the pack.
func (p *pack) find(h plumbing.Hash) (int64, bool) {
	lo := 0
	if h[0] > 0 {
		lo = int(binary.BigEndian.Uint32(p.idx[8+(int(h[0])-1)*4:]))
	}
	hi := int(binary.BigEndian.Uint32(p.idx[8+int(h[0])*4:]))
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch c := bytes.Compare(p.names[m*20:m*20+20], h[:]); {
		case c == 0:
			o := binary.BigEndian.Uint32(p.offs[m*4:])
			if o&0x80000000 != 0 {
				i := int(o & 0x7fffffff)
				if len(p.large) < i*8+8 {
					return 0, false
				}
				return int64(binary.BigEndian.Uint64(p.large[i*8:])), true
			}
			return int64(o), true
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return 0, false
}

// header parses the object header at off: type, size (of the object or,
// for deltas, of the delta data) and where the compressed data starts.
// For deltas base is the base's offset (ofs) or its hash's position (ref).
func (p *pack) header(off int64) (typ int, size int64, dataOff int64, baseOff int64, baseRef plumbing.Hash, err error) {
	d := p.data
	if off < 12 || off >= int64(len(d)) {
		return 0, 0, 0, 0, baseRef, errCorrupt
	}
	i := off
	c := d[i]
	i++
	typ = int(c>>4) & 7
	size = int64(c & 0x0f)
	shift := uint(4)
	for c&0x80 != 0 {
		if i >= int64(len(d)) || shift > 56 {
			return 0, 0, 0, 0, baseRef, errCorrupt
		}
		c = d[i]
		i++
		size |= int64(c&0x7f) << shift
		shift += 7
	}
	switch typ {
	case objOfsDelta:
		if i >= int64(len(d)) {
			return 0, 0, 0, 0, baseRef, errCorrupt
		}
		c = d[i]
		i++
		rel := int64(c & 0x7f)
		for c&0x80 != 0 {
			if i >= int64(len(d)) || rel > 1<<48 {
				return 0, 0, 0, 0, baseRef, errCorrupt
			}
			c = d[i]
			i++
			rel = (rel+1)<<7 | int64(c&0x7f)
		}
		baseOff = off - rel
		if baseOff < 12 || baseOff >= off {
			return 0, 0, 0, 0, baseRef, errCorrupt
		}
	case objRefDelta:
		if i+20 > int64(len(d)) {
			return 0, 0, 0, 0, baseRef, errCorrupt
		}
		copy(baseRef[:], d[i:i+20])
		i += 20
	case objCommit, objTree, objBlob, objTag:
	default:
		return 0, 0, 0, 0, baseRef, fmt.Errorf("object type %d: %w", typ, errCorrupt)
	}
	return typ, size, i, baseOff, baseRef, nil
}

type inflater struct {
	br bytes.Reader
	zr io.ReadCloser
}

var inflaters sync.Pool

// inflate decompresses exactly n bytes of the zlib stream starting at off
// into a new slice. Callers never need the adler32 trailer, so it is not read.
func (p *pack) inflate(off, n int64, dst []byte) ([]byte, error) {
	if off >= int64(len(p.data)) || n < 0 || n > 1<<40 {
		return nil, errCorrupt
	}
	f, _ := inflaters.Get().(*inflater)
	if f == nil {
		f = new(inflater)
	}
	defer inflaters.Put(f)
	f.br.Reset(p.data[off:])
	var err error
	if f.zr == nil {
		f.zr, err = zlib.NewReader(&f.br)
	} else {
		err = f.zr.(zlib.Resetter).Reset(&f.br, nil)
	}
	if err != nil {
		f.zr = nil
		return nil, fmt.Errorf("inflate: %w", err)
	}
	if dst == nil || int64(cap(dst)) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	if _, err := io.ReadFull(f.zr, dst); err != nil {
		return nil, fmt.Errorf("inflate: %w", err)
	}
	return dst, nil
}

// objCache is a byte-bounded LRU of resolved objects keyed by pack offset.
// Values are shared and must never be modified.
type objCache struct {
	mu    sync.Mutex
	max   int
	size  int
	ll    list.List
	items map[cacheKey]*list.Element
}

type cacheKey struct {
	p   *pack
	off int64
}

type cacheEntry struct {
	key  cacheKey
	typ  int
	data []byte
}

func newObjCache(max int) *objCache {
	return &objCache{max: max, items: make(map[cacheKey]*list.Element)}
}

func (c *objCache) get(k cacheKey) (int, []byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		ce := e.Value.(*cacheEntry)
		return ce.typ, ce.data, true
	}
	return 0, nil, false
}

func (c *objCache) put(k cacheKey, typ int, data []byte) {
	if len(data) > c.max/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		return
	}
	c.items[k] = c.ll.PushFront(&cacheEntry{k, typ, data})
	c.size += len(data) + 64
	for c.size > c.max {
		e := c.ll.Back()
		ce := e.Value.(*cacheEntry)
		c.ll.Remove(e)
		delete(c.items, ce.key)
		c.size -= len(ce.data) + 64
	}
}

// packSet is an immutable list of open packs; Repo swaps in a new one
// after a fetch adds a pack.
type packSet struct {
	packs []*pack
	// stamp is objects/pack's modification time when the set was listed:
	// a pack added or removed since (by a fetch in another process, or git
	// gc) changes it. listed is when that was.
	stamp, listed time.Time
}

// racyStamp is how close to a listing a directory change must be for the
// stamp to prove nothing: file system timestamps are coarser than a
// nanosecond, so a pack written in the same tick as the listing could keep
// the stamp (git's "racy git" problem, solved the same way).
const racyStamp = 2 * time.Second

// stale reports whether objects/pack may hold packs s does not list.
func (s *packSet) stale(gitDir string) bool {
	return !packDirStamp(gitDir).Equal(s.stamp) || s.listed.Sub(s.stamp) < racyStamp
}

// packDirStamp is the modification time of gitDir's objects/pack.
func packDirStamp(gitDir string) time.Time {
	fi, err := os.Stat(filepath.Join(gitDir, "objects", "pack"))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

func loadPacks(gitDir string, old *packSet) (*packSet, error) {
	// Stamp before listing: a pack that lands in between is listed now and
	// looked for again later, never missed.
	stamp := packDirStamp(gitDir)
	names, err := filepath.Glob(filepath.Join(gitDir, "objects", "pack", "pack-*.idx"))
	if err != nil {
		return nil, err
	}
	have := map[string]*pack{}
	if old != nil {
		for _, p := range old.packs {
			have[p.name] = p
		}
	}
	type sized struct {
		p    *pack
		size int64
	}
	var list []sized
	for _, n := range names {
		p := have[filepath.Base(n)]
		if p == nil {
			if _, err := os.Stat(strings.TrimSuffix(n, ".idx") + ".pack"); err != nil {
				continue // a pack still being written
			}
			if p, err = openPack(n); err != nil {
				return nil, fmt.Errorf("open pack %s: %w", filepath.Base(n), err)
			}
		}
		list = append(list, sized{p, int64(len(p.data))})
	}
	// Biggest first: the initial clone's pack holds nearly everything.
	sort.SliceStable(list, func(i, j int) bool { return list[i].size > list[j].size })
	s := &packSet{stamp: stamp, listed: time.Now()}
	for _, x := range list {
		s.packs = append(s.packs, x.p)
	}
	return s, nil
}

func (s *packSet) find(h plumbing.Hash) (*pack, int64, bool) {
	for _, p := range s.packs {
		if off, ok := p.find(h); ok {
			return p, off, true
		}
	}
	return nil, 0, false
}

// objReader resolves objects from a packSet through a shared cache.
type objReader struct {
	set   *packSet
	cache *objCache
}

// read returns the object at p/off. keep asks for the result to be cached
// (trees, which a walk reads again as the next commit's "before" side).
// The returned slice is shared: callers must not modify it.
func (r objReader) read(p *pack, off int64, keep bool, depth int) (int, []byte, error) {
	k := cacheKey{p, off}
	if typ, data, ok := r.cache.get(k); ok {
		return typ, data, nil
	}
	if depth > 10000 {
		return 0, nil, fmt.Errorf("delta chain too deep: %w", errCorrupt)
	}
	typ, size, dataOff, baseOff, baseRef, err := p.header(off)
	if err != nil {
		return 0, nil, err
	}
	var data []byte
	switch typ {
	case objOfsDelta, objRefDelta:
		bp := p
		if typ == objRefDelta {
			var ok bool
			if bp, baseOff, ok = r.set.find(baseRef); !ok {
				return 0, nil, fmt.Errorf("delta base %s: %w", baseRef, ErrNotFound)
			}
		}
		btyp, base, err := r.read(bp, baseOff, true, depth+1)
		if err != nil {
			return 0, nil, err
		}
		delta, err := p.inflate(dataOff, size, nil)
		if err != nil {
			return 0, nil, err
		}
		if data, err = applyDelta(base, delta); err != nil {
			return 0, nil, err
		}
		typ = btyp
	default:
		if data, err = p.inflate(dataOff, size, nil); err != nil {
			return 0, nil, err
		}
	}
	if keep || typ == objTree {
		r.cache.put(k, typ, data)
	}
	return typ, data, nil
}

// size returns an object's type and size without inflating more than a
// delta's header.
func (r objReader) size(p *pack, off int64) (int, int64, error) {
	for depth := 0; depth < 10000; depth++ {
		typ, size, dataOff, baseOff, baseRef, err := p.header(off)
		if err != nil {
			return 0, 0, err
		}
		if typ != objOfsDelta && typ != objRefDelta {
			return typ, size, nil
		}
		// The delta starts with the base's size and the result's size.
		n := min(size, 20)
		hdr, err := p.inflate(dataOff, n, nil)
		if err != nil {
			return 0, 0, err
		}
		_, i := deltaVarint(hdr, 0)
		out, j := deltaVarint(hdr, i)
		if j < 0 || i < 0 {
			return 0, 0, errCorrupt
		}
		// The type is the base's: follow the chain through headers only.
		if typ == objRefDelta {
			var ok bool
			if p, baseOff, ok = r.set.find(baseRef); !ok {
				return 0, 0, fmt.Errorf("delta base %s: %w", baseRef, ErrNotFound)
			}
		}
		btyp, err := r.baseType(p, baseOff)
		if err != nil {
			return 0, 0, err
		}
		return btyp, int64(out), nil
	}
	return 0, 0, errCorrupt
}

func (r objReader) baseType(p *pack, off int64) (int, error) {
	for depth := 0; depth < 10000; depth++ {
		typ, _, _, baseOff, baseRef, err := p.header(off)
		if err != nil {
			return 0, err
		}
		switch typ {
		case objOfsDelta:
			off = baseOff
		case objRefDelta:
			var ok bool
			if p, off, ok = r.set.find(baseRef); !ok {
				return 0, fmt.Errorf("delta base %s: %w", baseRef, ErrNotFound)
			}
		default:
			return typ, nil
		}
	}
	return 0, errCorrupt
}

func deltaVarint(b []byte, i int) (uint64, int) {
	var v uint64
	var shift uint
	for {
		if i < 0 || i >= len(b) || shift > 63 {
			return 0, -1
		}
		c := b[i]
		i++
		v |= uint64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			return v, i
		}
	}
}

// applyDelta applies a git delta (copy/insert instructions) to base.
func applyDelta(base, delta []byte) ([]byte, error) {
	srcSize, i := deltaVarint(delta, 0)
	dstSize, i := deltaVarint(delta, i)
	if i < 0 || srcSize != uint64(len(base)) || dstSize > 1<<40 {
		return nil, fmt.Errorf("delta header: %w", errCorrupt)
	}
	out := make([]byte, 0, dstSize)
	for i < len(delta) {
		op := delta[i]
		i++
		switch {
		case op&0x80 != 0:
			var off, n uint64
			for b := uint(0); b < 4; b++ {
				if op&(1<<b) != 0 {
					if i >= len(delta) {
						return nil, errCorrupt
					}
					off |= uint64(delta[i]) << (8 * b)
					i++
				}
			}
			for b := uint(0); b < 3; b++ {
				if op&(0x10<<b) != 0 {
					if i >= len(delta) {
						return nil, errCorrupt
					}
					n |= uint64(delta[i]) << (8 * b)
					i++
				}
			}
			if n == 0 {
				n = 0x10000
			}
			if off+n > uint64(len(base)) || uint64(len(out))+n > dstSize {
				return nil, fmt.Errorf("delta copy out of range: %w", errCorrupt)
			}
			out = append(out, base[off:off+n]...)
		case op != 0:
			n := int(op)
			if i+n > len(delta) || uint64(len(out)+n) > dstSize {
				return nil, fmt.Errorf("delta insert out of range: %w", errCorrupt)
			}
			out = append(out, delta[i:i+n]...)
			i += n
		default:
			return nil, fmt.Errorf("delta opcode 0: %w", errCorrupt)
		}
	}
	if uint64(len(out)) != dstSize {
		return nil, fmt.Errorf("delta result size: %w", errCorrupt)
	}
	return out, nil
}
