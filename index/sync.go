package index

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/gitstore"
)

// Config says what to index from the mirror.
type Config struct {
	Branch     string // tracked branch, e.g. "main"
	PromptsDir string // e.g. "prompts"
	// BranchDrafts makes every other branch a draft (local mode).
	BranchDrafts bool
	// BatchSize is the number of commits indexed per transaction.
	BatchSize int
	// AutoPromote is "push" (every new tracked-branch commit promotes the
	// prompts it changed), "merged-pr" or "none" (index only; pull request
	// promotion is the webhook worker's).
	AutoPromote string
	// Actor names who syncs in audit rows (e.g. "cli", "server").
	Actor string
	// AfterCommit, when set, runs inside the transaction that indexes each
	// new tracked-branch commit (auto-promotion hangs here, so a commit's
	// versions and their promotion land together or not at all).
	AfterCommit func(ctx context.Context, tx *Tx, c Indexed) error
}

// Indexed is what one tracked-branch commit added to the index.
type Indexed struct {
	Commit   gitstore.Commit
	Versions []VersionRef
	Archived []string
}

// VersionRef names a version created by a sync.
type VersionRef struct {
	Key    string `json:"key"`
	Number int    `json:"number"`
	Label  string `json:"version"`
	Commit string `json:"commit"`
	Valid  bool   `json:"valid"`
}

// SkippedFile is a file under the prompts directory that cannot be a prompt.
type SkippedFile struct {
	Commit  string `json:"commit"`
	Path    string `json:"path"`
	Problem string `json:"problem"`
}

// SyncResult reports what one Sync changed.
type SyncResult struct {
	Branch      string        `json:"branch"`
	Head        string        `json:"head"`
	Commits     int           `json:"commits"`
	Versions    []VersionRef  `json:"versions"`
	Archived    []string      `json:"archived"`
	Drafts      []DraftRef    `json:"drafts"`
	DraftsEnded []DraftRef    `json:"drafts_ended"`
	Skipped     []SkippedFile `json:"skipped"`
	// Bootstrapped lists the versions the first sync made live.
	Bootstrapped []VersionRef `json:"bootstrapped"`
	// ContentsFilled counts contents read from the mirror for rows indexed
	// before the index stored contents; ContentsMissing lists blob SHAs the
	// mirror lacks (their documents cannot be served; the next sync retries).
	ContentsFilled  int           `json:"contents_filled,omitempty"`
	ContentsMissing []string      `json:"contents_missing,omitempty"`
	Duration        time.Duration `json:"-"`
	Seconds         float64       `json:"seconds"`
}

// DraftRef names a draft created, rewritten or ended by a sync.
type DraftRef struct {
	Key    string `json:"key"`
	Label  string `json:"version"`
	Commit string `json:"commit"`
	Valid  bool   `json:"valid"`
}

func (c *Config) defaults() {
	if c.Branch == "" {
		c.Branch = "main"
	}
	if c.PromptsDir == "" {
		c.PromptsDir = "prompts"
	}
	c.PromptsDir = strings.Trim(path.Clean("/"+c.PromptsDir), "/")
	if c.AutoPromote == "" {
		c.AutoPromote = AutoPush
	}
	if c.Actor == "" {
		c.Actor = "sync"
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
}

// TrackedRef is the mirror ref of the tracked branch.
func TrackedRef(branch string) string { return "refs/remotes/origin/" + branch }

// Sync indexes what the mirror holds and the index does not: new commits on
// the tracked branch become versions (one transaction per batch, so a killed
// sync resumes where it stopped) and other branches become drafts. It does
// not fetch; callers fetch first.
func (db *DB) Sync(ctx context.Context, repo *gitstore.Repo, cfg Config) (*SyncResult, error) {
	cfg.defaults()
	start := time.Now()
	res := &SyncResult{Branch: cfg.Branch}
	head, err := repo.Resolve(TrackedRef(cfg.Branch))
	if err != nil {
		if errors.Is(err, gitstore.ErrNotFound) {
			return nil, fmt.Errorf("sync: branch %q not found in the repository", cfg.Branch)
		}
		return nil, fmt.Errorf("sync: resolve %s: %w", cfg.Branch, err)
	}
	res.Head = head
	st := newSyncState(repo, cfg)
	// Auto-promotion applies to commits that arrive after the first
	// promotion; the first sync of a history bootstraps instead of replaying
	// thousands of promotions.
	if err := db.View(ctx, func(tx *Tx) error {
		var n int
		err := tx.queryRow(ctx, "SELECT count(*) FROM pointers WHERE env = 'live'").Scan(&n)
		st.promote = n > 0 && cfg.AutoPromote == AutoPush
		return err
	}); err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	if err := db.indexBranch(ctx, st, head, res); err != nil {
		return nil, err
	}
	if err := db.bootstrap(ctx, cfg, res); err != nil {
		return nil, err
	}
	if cfg.BranchDrafts {
		if err := db.syncBranchDrafts(ctx, st, head, res); err != nil {
			return nil, err
		}
	}
	if res.ContentsFilled, res.ContentsMissing, err = db.backfillContents(ctx, repo, false); err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	res.Seconds = res.Duration.Seconds()
	return res, nil
}

// Reindex rebuilds every derived row from the mirror in one transaction:
// it replays the ledger of indexed tracked-branch commits in its recorded
// order (so versions of commits a force push removed keep their numbers),
// then indexes what is new. Pointers, keys and audit rows are kept; the
// version numbers they refer to come out identical.
func (db *DB) Reindex(ctx context.Context, repo *gitstore.Repo, cfg Config) (*SyncResult, error) {
	cfg.defaults()
	start := time.Now()
	var ledger []string
	err := db.View(ctx, func(tx *Tx) (err error) {
		ledger, err = tx.queryStrings(ctx, "SELECT sha FROM commits ORDER BY seq")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reindex: read ledger: %w", err)
	}
	commits := make([]gitstore.Commit, 0, len(ledger))
	for _, sha := range ledger {
		c, err := repo.Commit(sha)
		if err != nil {
			return nil, fmt.Errorf("reindex: commit %s: %w", sha, err)
		}
		commits = append(commits, c)
	}
	st := newSyncState(repo, cfg)
	res := &SyncResult{Branch: cfg.Branch}
	err = db.Update(ctx, func(tx *Tx) error {
		for _, t := range []string{"versions", "deletions", "prompts", "skipped_files", "drafts", "draft_sources", "commits"} {
			if _, err := tx.exec(ctx, "DELETE FROM "+t); err != nil {
				return fmt.Errorf("reindex: clear %s: %w", t, err)
			}
		}
		if err := tx.SetMeta(ctx, "head", ""); err != nil {
			return err
		}
		if err := tx.SetMeta(ctx, "presence_head", ""); err != nil {
			return err
		}
		for _, seg := range chains(commits) {
			err := repo.WalkChanges(ctx, seg, cfg.PromptsDir, func(c gitstore.Commit, ch []gitstore.Change) error {
				return st.apply(ctx, tx, c, ch, res)
			})
			if err != nil {
				return fmt.Errorf("reindex: %w", err)
			}
		}
		if len(commits) > 0 {
			return tx.SetMeta(ctx, "head", commits[len(commits)-1].SHA)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	more, err := db.Sync(ctx, repo, cfg)
	if err != nil {
		return nil, err
	}
	// Pointers may hold content no row refers to any more (a staging
	// pointer on an ended draft): reindex makes sure all of it is there.
	if more.ContentsFilled, more.ContentsMissing, err = db.backfillContents(ctx, repo, true); err != nil {
		return nil, err
	}
	more.Commits += res.Commits
	more.Versions = append(res.Versions, more.Versions...)
	more.Archived = append(res.Archived, more.Archived...)
	more.Skipped = append(res.Skipped, more.Skipped...)
	more.Duration = time.Since(start)
	more.Seconds = more.Duration.Seconds()
	return more, nil
}

// chains splits a ledger into runs where each commit's first parent is the
// previous one, the shape WalkChanges is fast on.
func chains(cs []gitstore.Commit) [][]gitstore.Commit {
	var out [][]gitstore.Commit
	startI := 0
	for i := 1; i <= len(cs); i++ {
		if i == len(cs) || len(cs[i].Parents) == 0 || cs[i].Parents[0] != cs[i-1].SHA {
			out = append(out, cs[startI:i])
			startI = i
		}
	}
	if len(cs) == 0 {
		return nil
	}
	return out
}

func (db *DB) indexBranch(ctx context.Context, st *syncState, head string, res *SyncResult) error {
	var prevHead string
	known := map[string]bool{}
	err := db.View(ctx, func(tx *Tx) error {
		var err error
		if prevHead, err = tx.Meta(ctx, "head"); err != nil {
			return err
		}
		shas, err := tx.queryStrings(ctx, "SELECT sha FROM commits")
		for _, sha := range shas {
			known[sha] = true
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sync: read state: %w", err)
	}
	var settled string
	if err := db.View(ctx, func(tx *Tx) (err error) { settled, err = tx.Meta(ctx, "presence_head"); return err }); err != nil {
		return fmt.Errorf("sync: read state: %w", err)
	}
	if prevHead == head && settled == head {
		return nil
	}
	commits, err := st.repo.FirstParent(ctx, head, func(sha string) bool { return known[sha] })
	if err != nil {
		return fmt.Errorf("sync: walk %s: %w", st.cfg.Branch, err)
	}
	// A two-stage pipeline: while one goroutine writes batch N in a
	// transaction (a single core's work), batch N+1 is walked and validated
	// on the others. Batches are still written strictly in order.
	var writing chan error
	wait := func() error {
		if writing == nil {
			return nil
		}
		err := <-writing
		writing = nil
		return err
	}
	for i := 0; i < len(commits); i += st.cfg.BatchSize {
		batch := commits[i:min(i+st.cfg.BatchSize, len(commits))]
		p, err := st.prepareBatch(ctx, batch)
		if werr := wait(); werr != nil {
			return werr
		}
		if err != nil {
			return err
		}
		writing = make(chan error, 1)
		go func() { writing <- db.writeBatch(ctx, st, p, res) }()
	}
	if err := wait(); err != nil {
		return err
	}
	// A force push back to an already indexed commit adds no commit, but what
	// the branch holds changed: archive state follows the branch head.
	return db.Update(ctx, func(tx *Tx) error {
		if err := st.reconcilePresence(ctx, tx, head, res); err != nil {
			return err
		}
		if err := tx.SetMeta(ctx, "presence_head", head); err != nil {
			return err
		}
		return tx.SetMeta(ctx, "head", head)
	})
}

// indexBatch diffs and validates a batch of commits outside any transaction,
// then writes them in one.
// preparedBatch is a batch of commits diffed and validated, ready to write.
type preparedBatch struct {
	commits []gitstore.Commit
	steps   []step
}

type step struct {
	c  gitstore.Commit
	ch []gitstore.Change
}

// prepareBatch diffs a batch of commits and validates their new blobs
// outside any transaction.
func (st *syncState) prepareBatch(ctx context.Context, batch []gitstore.Commit) (preparedBatch, error) {
	p := preparedBatch{commits: batch}
	var todo []blobRef
	queued := map[string]bool{}
	err := st.repo.WalkChanges(ctx, batch, st.cfg.PromptsDir, func(c gitstore.Commit, ch []gitstore.Change) error {
		for _, x := range ch {
			if x.To != "" && !queued[x.To] && st.cached(x.To) == nil {
				queued[x.To] = true
				todo = append(todo, blobRef{x.Path, x.To})
			}
		}
		p.steps = append(p.steps, step{c, ch})
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("sync: diff: %w", err)
	}
	// Validate on every core: parsing is most of the cost of indexing.
	st.checkAll(ctx, todo)
	return p, nil
}

// writeBatch records a prepared batch in one transaction, so a killed sync
// resumes after the last whole batch.
func (db *DB) writeBatch(ctx context.Context, st *syncState, p preparedBatch, res *SyncResult) error {
	last := p.commits[len(p.commits)-1].SHA
	part := &SyncResult{}
	err := db.Update(ctx, func(tx *Tx) error {
		st.resetNumbers()
		for _, s := range p.steps {
			if err := st.apply(ctx, tx, s.c, s.ch, part); err != nil {
				return err
			}
		}
		return tx.SetMeta(ctx, "head", last)
	})
	if err != nil {
		st.resetNumbers()
		return fmt.Errorf("sync: index batch ending %s: %w", last, err)
	}
	res.Commits += part.Commits
	res.Versions = append(res.Versions, part.Versions...)
	res.Archived = append(res.Archived, part.Archived...)
	res.Skipped = append(res.Skipped, part.Skipped...)
	return nil
}

// checked is a blob's validation outcome, cached by blob SHA: the same bytes
// always validate the same way, and reverts are common.
type checked struct {
	sum      string
	size     int64
	problems []promptvault.Problem
	err      error
	// data is the blob's bytes until storeChecked writes them to the
	// contents table; stored says it did.
	data   []byte
	stored bool
}

type syncState struct {
	promote bool // auto-promote each new commit (AutoPush, after bootstrap)
	repo    *gitstore.Repo
	cfg     Config
	mu      sync.Mutex // guards checks: the pipeline validates while it writes
	checks  map[string]*checked
	numbers map[string]int // key → last number, valid within one transaction
}

func newSyncState(repo *gitstore.Repo, cfg Config) *syncState {
	return &syncState{repo: repo, cfg: cfg, checks: map[string]*checked{}, numbers: map[string]int{}}
}

func (st *syncState) resetNumbers() { st.numbers = map[string]int{} }

type blobRef struct{ path, blob string }

// checkAll validates blobs in parallel and caches the outcomes.
func (st *syncState) checkAll(ctx context.Context, refs []blobRef) {
	out := make([]*checked, len(refs))
	workers := min(runtime.GOMAXPROCS(0), len(refs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(refs) || ctx.Err() != nil {
					return
				}
				out[i] = checkBlob(st.repo, refs[i].path, refs[i].blob)
			}
		}()
	}
	wg.Wait()
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, r := range refs {
		if out[i] != nil {
			st.checks[r.blob] = out[i]
		}
	}
}

func (st *syncState) cached(blob string) *checked {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.checks[blob]
}

// check returns a blob's validation outcome, computing it if needed.
func (st *syncState) check(p, blob string) *checked {
	if c := st.cached(blob); c != nil {
		return c
	}
	c := checkBlob(st.repo, p, blob)
	st.mu.Lock()
	st.checks[blob] = c
	st.mu.Unlock()
	return c
}

// checkBlob reads and validates one blob. Problems name the file by its
// repo path; they are re-stamped with the path of each use.
func checkBlob(repo *gitstore.Repo, p, blob string) *checked {
	c := &checked{}
	data, err := repo.Blob(blob)
	if err != nil {
		c.err = fmt.Errorf("read %s (blob %s): %w", p, blob, err)
		return c
	}
	h := sha256.Sum256(data)
	c.sum = hex.EncodeToString(h[:])
	// The index keeps what it may serve or show. A file over the parser's
	// limit is invalid whatever it holds, and storing it would let one
	// commit grow the index by its size: its content is not kept.
	if len(data) <= promptvault.MaxFileSize {
		c.data = data
	} else {
		c.stored = true
	}
	c.size = int64(len(data))
	if _, err := promptvault.Parse(p, data); err != nil {
		var ps *promptvault.Problems
		if errors.As(err, &ps) {
			c.problems = ps.List
		} else {
			c.problems = []promptvault.Problem{{Path: p, Message: err.Error()}}
		}
	}
	return c
}

func problemsFor(p string, c *checked) []promptvault.Problem {
	out := make([]promptvault.Problem, len(c.problems))
	for i, x := range c.problems {
		x.Path = p
		out[i] = x
	}
	return out
}

// keyOf maps a repo path to its prompt key. ok is false for files that are
// not prompt files; err explains a prompt file whose key is invalid.
func (st *syncState) keyOf(p string) (key string, ok bool, err error) {
	rel, found := strings.CutPrefix(p, st.cfg.PromptsDir+"/")
	if !found {
		return "", false, nil
	}
	return promptvault.KeyFromPath(rel)
}

func (st *syncState) lastNumber(ctx context.Context, tx *Tx, key string) (int, error) {
	if n, ok := st.numbers[key]; ok {
		return n, nil
	}
	var n int
	err := tx.queryRow(ctx, "SELECT last_number FROM prompts WHERE key = ?", key).Scan(&n)
	if err != nil && !isNoRows(err) {
		return 0, err
	}
	st.numbers[key] = n
	return n, nil
}

// apply records one tracked-branch commit: versions for added or changed
// prompt files, archive marks for deleted ones, and the ledger row.
func (st *syncState) apply(ctx context.Context, tx *Tx, c gitstore.Commit, changes []gitstore.Change, res *SyncResult) error {
	// The ledger's seq is max+1 on both engines (SQLite's rowid rule), so
	// a reindex, which empties the ledger, numbers it from 1 again.
	seq, err := tx.insertSeq(ctx, "INSERT INTO commits(seq, sha) VALUES((SELECT coalesce(max(seq), 0) + 1 FROM commits), ?)", c.SHA)
	if err != nil {
		return fmt.Errorf("record commit %s: %w", c.SHA, err)
	}
	res.Commits++
	ix := Indexed{Commit: c}
	author := formatAuthor(c.AuthorName, c.AuthorEmail)
	when := c.CommitTime.UTC().Format(time.RFC3339)
	msg := strings.TrimRight(c.Message, "\n")

	// Group by key: a rename within the prompts dir is a delete plus an add,
	// and x.yaml/x.yml both map to key x.
	type entry struct{ adds, dels []gitstore.Change }
	byKey := map[string]*entry{}
	var keys []string
	for _, ch := range changes {
		key, ok, kerr := st.keyOf(ch.Path)
		if !ok {
			continue
		}
		if kerr != nil {
			if ch.To == "" {
				continue
			}
			sf := SkippedFile{Commit: c.SHA, Path: ch.Path, Problem: firstLine(kerr.Error())}
			if _, err := tx.exec(ctx, "INSERT INTO skipped_files(commit_sha, path, problem) VALUES(?,?,?) ON CONFLICT DO NOTHING",
				sf.Commit, sf.Path, sf.Problem); err != nil {
				return fmt.Errorf("record skipped %s: %w", ch.Path, err)
			}
			res.Skipped = append(res.Skipped, sf)
			continue
		}
		e := byKey[key]
		if e == nil {
			e = &entry{}
			byKey[key] = e
			keys = append(keys, key)
		}
		if ch.To == "" {
			e.dels = append(e.dels, ch)
		} else {
			e.adds = append(e.adds, ch)
		}
	}
	sort.Strings(keys)
	for _, key := range keys {
		e := byKey[key]
		if len(e.adds) == 0 {
			del := e.dels[0]
			var exists int
			if err := tx.queryRow(ctx, "SELECT count(*) FROM prompts WHERE key = ?", key).Scan(&exists); err != nil {
				return err
			}
			if exists == 0 {
				continue
			}
			if _, err := tx.exec(ctx, `INSERT INTO deletions(key, commit_sha, commit_seq, path, message, author, committed_at)
				VALUES(?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`, key, c.SHA, seq, del.Path, msg, author, when); err != nil {
				return fmt.Errorf("record deletion of %s: %w", key, err)
			}
			if _, err := tx.exec(ctx, "UPDATE prompts SET archived = 1 WHERE key = ?", key); err != nil {
				return err
			}
			ix.Archived = append(ix.Archived, key)
			res.Archived = append(res.Archived, key)
			continue
		}
		add := e.adds[0]
		chk := st.check(add.Path, add.To)
		if chk.err != nil {
			return chk.err
		}
		if err := st.storeChecked(ctx, tx, add.To, chk); err != nil {
			return err
		}
		probs := problemsFor(add.Path, chk)
		for _, other := range e.adds[1:] {
			probs = append(probs, promptvault.Problem{Path: other.Path,
				Message: fmt.Sprintf("%s and %s both define prompt %q; keep one", add.Path, other.Path, key)})
		}
		n, err := st.lastNumber(ctx, tx, key)
		if err != nil {
			return err
		}
		n++
		st.numbers[key] = n
		if _, err := tx.exec(ctx, `INSERT INTO prompts(key, path, last_number, archived) VALUES(?,?,?,0)
			ON CONFLICT(key) DO UPDATE SET path = excluded.path, last_number = excluded.last_number, archived = 0`,
			key, add.Path, n); err != nil {
			return fmt.Errorf("record prompt %s: %w", key, err)
		}
		pj, _ := json.Marshal(nonNil(probs))
		valid := len(probs) == 0
		if _, err := tx.exec(ctx, `INSERT INTO versions(key, number, commit_sha, commit_seq, path, blob_sha, sha256, size,
			message, author, committed_at, valid, problems) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			key, n, c.SHA, seq, add.Path, add.To, chk.sum, chk.size, msg, author, when, valid, string(pj)); err != nil {
			return fmt.Errorf("record version %s v%d: %w", key, n, err)
		}
		ref := VersionRef{Key: key, Number: n, Label: Label(n), Commit: c.SHA, Valid: valid}
		ix.Versions = append(ix.Versions, ref)
		res.Versions = append(res.Versions, ref)
	}
	if st.promote {
		if err := tx.promoteCommit(ctx, ix, st.cfg.Actor); err != nil {
			return err
		}
	}
	if st.cfg.AfterCommit != nil {
		if err := st.cfg.AfterCommit(ctx, tx, ix); err != nil {
			return err
		}
	}
	return nil
}

// reconcilePresence makes archive marks follow the files at the branch head.
func (st *syncState) reconcilePresence(ctx context.Context, tx *Tx, head string, res *SyncResult) error {
	files, err := st.repo.ListFiles(head, st.cfg.PromptsDir)
	if err != nil {
		return fmt.Errorf("sync: list %s at %s: %w", st.cfg.PromptsDir, head, err)
	}
	present := map[string]bool{}
	for p := range files {
		if key, ok, kerr := st.keyOf(p); ok && kerr == nil {
			present[key] = true
		}
	}
	rows, err := tx.query(ctx, "SELECT key, archived FROM prompts")
	if err != nil {
		return err
	}
	type fix struct {
		key      string
		archived bool
	}
	var fixes []fix
	for rows.Next() {
		var key string
		var archived bool
		if err := rows.Scan(&key, &archived); err != nil {
			rows.Close()
			return err
		}
		if archived == present[key] {
			fixes = append(fixes, fix{key, !present[key]})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, f := range fixes {
		if _, err := tx.exec(ctx, "UPDATE prompts SET archived = ? WHERE key = ?", f.archived, f.key); err != nil {
			return err
		}
		if f.archived {
			res.Archived = append(res.Archived, f.key)
		}
	}
	return nil
}

// Label is the label of version n.
func Label(n int) string { return fmt.Sprintf("v%d", n) }

func formatAuthor(name, email string) string {
	if email == "" {
		return name
	}
	return fmt.Sprintf("%s <%s>", name, email)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func nonNil(p []promptvault.Problem) []promptvault.Problem {
	if p == nil {
		return []promptvault.Problem{}
	}
	return p
}
