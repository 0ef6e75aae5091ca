package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver/metrics"
)

// Options configures a Worker.
type Options struct {
	DB   *index.DB
	Repo *gitstore.Repo
	// Config is the data directory's index configuration (branch, prompts
	// directory, auto-promotion, branch drafts).
	Config index.Config
	// GitHub is the REST client; nil in webhook-secret-only mode (labels
	// and pull request state then come from the payload, no check runs).
	GitHub *Client
	// App, when set, forgets its token when the App is uninstalled.
	App          *AppAuth
	StagingLabel string // default DefaultStagingLabel
	HoldLabel    string // default DefaultHoldLabel
	// ReconcileEvery is the period of the reconcile (default 5 min).
	ReconcileEvery time.Duration
	// Lock takes the data directory's sync lock (shared with the CLI and
	// serve's own sync loop) around fetch and index; nil: no lock.
	Lock   func(ctx context.Context) (unlock func(), err error)
	Logger *slog.Logger
	// Backoff is the wait before retry number n (1-based) of a transient
	// failure; default DefaultBackoff (exponential with jitter).
	Backoff func(n int) time.Duration
	// MaxAttempts bounds retries of transient failures before a delivery
	// is marked failed (default 20, about half an hour of waiting).
	// Rate-limit pauses use no attempt.
	MaxAttempts int
	// Workers is how many deliveries of different subjects are processed
	// at once (default 4); git work among them is serialized.
	Workers int
	// Repository is the served repository, OWNER/NAME: a delivery about
	// another one is recorded as ignored. Empty: every repository.
	Repository string
	// Now is the clock of retry and rate-limit times (tests inject one so
	// nothing waits in real time); default time.Now.
	Now func() time.Time
	// FetchTimeout bounds one git fetch (default 2 min).
	FetchTimeout time.Duration
}

// Worker processes accepted deliveries, in arrival order per subject (one
// pull request, one branch) and concurrently across subjects, and runs the
// reconcile between them.
type Worker struct {
	opts   Options
	cfg    index.Config
	db     *index.DB
	repo   *gitstore.Repo
	gh     *Client
	log    *slog.Logger
	tickle chan struct{}
	gitMu  sync.Mutex // serializes fetch and index within this process (locked)
}

// DefaultBackoff is the wait before retry n of a transient failure: 1 s
// doubling up to 2 min, with ±25% jitter so retries of many deliveries do
// not arrive together.
func DefaultBackoff(n int) time.Duration {
	d := min(time.Second<<min(n-1, 7), 2*time.Minute)
	return d - d/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// NewWorker returns a worker; Run drives it.
func NewWorker(opts Options) (*Worker, error) {
	if opts.DB == nil || opts.Repo == nil {
		return nil, errors.New("webhook: Options.DB and Options.Repo are required")
	}
	if opts.StagingLabel == "" {
		opts.StagingLabel = DefaultStagingLabel
	}
	if opts.HoldLabel == "" {
		opts.HoldLabel = DefaultHoldLabel
	}
	if opts.ReconcileEvery <= 0 {
		opts.ReconcileEvery = 5 * time.Minute
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 20
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 2 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Config
	if cfg.Branch == "" {
		cfg.Branch = "main"
	}
	if cfg.PromptsDir == "" {
		cfg.PromptsDir = "prompts"
	}
	if cfg.AutoPromote == "" {
		cfg.AutoPromote = index.AutoMergedPR
	}
	cfg.AfterCommit = nil
	return &Worker{opts: opts, cfg: cfg, db: opts.DB, repo: opts.Repo, gh: opts.GitHub, log: opts.Logger,
		tickle: make(chan struct{}, 1)}, nil
}

// Notify wakes the worker: deliveries were accepted.
func (w *Worker) Notify() {
	select {
	case w.tickle <- struct{}{}:
	default:
	}
}

// Run puts deliveries a crash left mid-processing back to pending,
// reconciles, then processes deliveries as they arrive and reconciles every
// ReconcileEvery, until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	if n, err := w.db.ResetProcessing(ctx); err != nil {
		return err
	} else if n > 0 {
		w.log.Info("deliveries resumed after restart", "count", n)
	}
	if err := w.Reconcile(ctx); err != nil && ctx.Err() == nil {
		w.log.Error("reconcile", logErr, err)
	}
	tick := time.NewTicker(w.opts.ReconcileEvery)
	defer tick.Stop()
	// A redelivery asked for by another process (the CLI) has no way to
	// wake this one; a slow look at the inbox finds it.
	poll := time.NewTicker(5 * time.Second)
	defer poll.Stop()
	for {
		wait, err := w.Drain(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			w.log.Error("webhook worker", logErr, err)
			wait = time.Second
		}
		var timer *time.Timer
		var due <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			due = timer.C
		}
		select {
		case <-ctx.Done():
		case <-w.tickle:
		case <-due:
		case <-poll.C:
		case <-tick.C:
			if err := w.Reconcile(ctx); err != nil && ctx.Err() == nil {
				w.log.Error("reconcile", logErr, err)
			}
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// Drain processes deliveries until none is ready, up to Workers at once
// (of different subjects). wait > 0 says when the earliest waiting one
// (a retry, a rate-limit pause) is due.
func (w *Worker) Drain(ctx context.Context) (wait time.Duration, err error) {
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan struct{}, w.opts.Workers)
	running := 0
	for ctx.Err() == nil {
		if running == w.opts.Workers {
			<-done
			running--
			continue
		}
		w.reportQueue(ctx)
		d, ok, wt, err := w.db.ClaimDelivery(ctx, w.opts.Now())
		if err != nil {
			return 0, err
		}
		if !ok {
			if running == 0 {
				return wt, nil
			}
			// A running delivery may free its subject's next one.
			<-done
			running--
			continue
		}
		running++
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.handle(ctx, d)
			done <- struct{}{}
		}()
	}
	return 0, ctx.Err()
}

// handle processes one claimed delivery and records the outcome by the
// failure class of its error.
func (w *Worker) handle(ctx context.Context, d index.Delivery) {
	perr := w.process(ctx, d)
	if perr == nil {
		metrics.WebhookDelivery("processed")
		return
	}
	if ctx.Err() != nil {
		return // shutting down: the row stays processing and is reset at start
	}
	var err error
	switch f, until := classify(perr); {
	case f == failRateLimited:
		// Every GitHub call is paused until the reset; the delivery waits
		// for it without using up an attempt.
		now := w.opts.Now()
		if !until.After(now) {
			until = now.Add(MinRateLimitPause)
		}
		metrics.WebhookDelivery("retried")
		w.log.Warn("delivery paused by a GitHub rate limit", logDelivery, d.GUID, logEvent, d.Event,
			"until", until.UTC().Format(time.RFC3339), logErr, perr)
		err = w.db.RetryDelivery(ctx, d.Seq, until, perr.Error(), true)
	case f == failPermanent || d.Attempts >= w.opts.MaxAttempts:
		w.log.Error("delivery failed", logDelivery, d.GUID, logEvent, d.Event, "attempts", d.Attempts, logErr, perr)
		metrics.WebhookDelivery("failed")
		err = w.db.FailDelivery(ctx, d.Seq, perr.Error())
	default:
		metrics.WebhookDelivery("retried")
		next := w.opts.Backoff(d.Attempts)
		w.log.Warn("delivery will be retried", logDelivery, d.GUID, logEvent, d.Event, "attempt", d.Attempts,
			"in", next.String(), logErr, perr)
		err = w.db.RetryDelivery(ctx, d.Seq, w.opts.Now().Add(next), perr.Error(), false)
	}
	if err != nil && ctx.Err() == nil {
		w.log.Error("record delivery outcome", logDelivery, d.GUID, logErr, err)
	}
}

// reportQueue publishes how many accepted deliveries wait (a count on an
// indexed column, once per step).
func (w *Worker) reportQueue(ctx context.Context) {
	var n int
	err := w.db.View(ctx, func(tx *index.Tx) (err error) {
		n, err = tx.CountDeliveries(ctx, index.DeliveryPending)
		return err
	})
	if err == nil {
		metrics.SetWebhookQueueDepth(n)
	}
}

// finish marks d done in a transaction of its own (for deliveries whose
// effects are idempotent or nil).
func (w *Worker) finish(ctx context.Context, d index.Delivery, result string) error {
	return w.db.Update(ctx, func(tx *index.Tx) error { return tx.FinishDelivery(ctx, d.Seq, result) })
}

func (w *Worker) process(ctx context.Context, d index.Delivery) error {
	if other := w.otherRepository(d); other != "" {
		return w.db.Update(ctx, func(tx *index.Tx) error { return tx.IgnoreDelivery(ctx, d.Seq, other) })
	}
	switch d.Event {
	case "push":
		return w.push(ctx, d)
	case "pull_request":
		return w.pullRequest(ctx, d)
	case "installation", "installation_repositories":
		if w.opts.App != nil && (d.Action == "deleted" || d.Action == "suspend" || d.Action == "removed") {
			w.opts.App.Forget()
		}
		return w.finish(ctx, d, "recorded "+d.Event+" "+d.Action)
	case "ping":
		return w.finish(ctx, d, "pong")
	case "merge_group":
		return w.mergeGroup(ctx, d)
	case "check_run", "check_suite":
		return w.rerequested(ctx, d)
	}
	return w.finish(ctx, d, "ignored event "+d.Event)
}

// locked runs fn under the data directory's sync lock (and this process's
// git mutex: deliveries of different subjects run concurrently).
func (w *Worker) locked(ctx context.Context, fn func() error) error {
	w.gitMu.Lock()
	defer w.gitMu.Unlock()
	if w.opts.Lock != nil {
		unlock, err := w.opts.Lock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
	}
	return fn()
}

// fetch fetches every branch plus extra refspecs. A failure is retried:
// GitHub's git objects can lag its webhooks.
func (w *Worker) fetch(ctx context.Context, extra ...string) error {
	fctx, cancel := context.WithTimeout(ctx, w.opts.FetchTimeout)
	defer cancel()
	if err := w.repo.Fetch(fctx, extra...); err != nil {
		return fmt.Errorf("%w: %w", errLag, err)
	}
	return nil
}

func (w *Worker) has(sha string) bool {
	if sha == "" {
		return false
	}
	_, err := w.repo.Commit(sha)
	return err == nil
}

// push indexes the tracked branch (promoting under --auto-promote=push);
// pushes to other branches refresh branch drafts in local mode (in GitHub
// mode pull request events carry drafts).
func (w *Worker) push(ctx context.Context, d index.Delivery) error {
	// go-github's event type, decoded directly: the event is known here,
	// and ParseWebHook would refuse the events it does not know.
	var ev github.PushEvent
	if err := json.Unmarshal(d.Body, &ev); err != nil {
		return fmt.Errorf("%w: push payload: %v", errPermanent, err)
	}
	branch, ok := strings.CutPrefix(ev.GetRef(), "refs/heads/")
	if !ok {
		return w.finish(ctx, d, "ignored ref "+ev.GetRef())
	}
	before, after := ev.GetBefore(), ev.GetAfter()
	return w.locked(ctx, func() error {
		if err := w.fetch(ctx); err != nil {
			return err
		}
		if branch != w.cfg.Branch {
			if w.cfg.BranchDrafts {
				if _, err := w.db.Sync(ctx, w.repo, w.cfg); err != nil {
					return fmt.Errorf("push to %s: %w", branch, err)
				}
			}
			return w.finish(ctx, d, "branch "+branch+" fetched")
		}
		if ev.GetDeleted() {
			w.log.Warn("tracked branch deleted on GitHub; nothing indexed", logDelivery, d.GUID, "branch", branch)
			return w.finish(ctx, d, "tracked branch deleted")
		}
		head, err := w.repo.Resolve(index.TrackedRef(branch))
		if err != nil {
			return fmt.Errorf("%w: push to %s: %v", errLag, branch, err)
		}
		if !w.has(after) {
			// Lagging when the branch still shows the old head; otherwise a
			// later (force) push moved it on and the sync below indexes that.
			if old, _ := w.repo.IsAncestor(head, orZero(before)); head == before || old {
				return fmt.Errorf("%w: push %s: commit %s not fetched yet", errLag, branch, after)
			}
		}
		marked := false
		cfg := w.cfg
		cfg.AfterCommit = func(ctx context.Context, tx *index.Tx, ix index.Indexed) error {
			if marked || ix.Commit.SHA != after {
				return nil
			}
			marked = true
			return tx.FinishDelivery(ctx, d.Seq, "indexed "+after)
		}
		res, err := w.db.Sync(ctx, w.repo, cfg)
		if err != nil {
			return fmt.Errorf("push to %s: %w", branch, err)
		}
		w.log.Info("push indexed", logDelivery, d.GUID, logCommit, res.Head, "commits", res.Commits,
			"versions", len(res.Versions), "forced", ev.GetForced())
		if marked {
			return nil
		}
		return w.finish(ctx, d, fmt.Sprintf("indexed %d commits to %s", res.Commits, res.Head))
	})
}

func orZero(s string) string {
	if s == "" {
		return strings.Repeat("0", 40)
	}
	return s
}

func prSource(n int) index.DraftSource {
	return index.DraftSource{Source: fmt.Sprintf("pr:%d", n), Name: fmt.Sprintf("pr-%d", n)}
}

func prRef(n int) string { return fmt.Sprintf("refs/pull/%d/head", n) }

func prSpec(n int) string { return "+" + prRef(n) + ":" + prRef(n) }

func (w *Worker) actor(n int) string { return fmt.Sprintf("github:pr-%d", n) }

// pullRequest handles every pull_request action by the pull request's
// current state: re-read from the API (payload labels and state can be
// stale), or taken from the payload in webhook-secret-only mode.
func (w *Worker) pullRequest(ctx context.Context, d index.Delivery) error {
	var ev github.PullRequestEvent
	if err := json.Unmarshal(d.Body, &ev); err != nil {
		return fmt.Errorf("%w: pull_request payload: %v", errPermanent, err)
	}
	pr := pullRequestOf(ev.GetPullRequest())
	if pr.Number == 0 {
		pr.Number = ev.GetNumber()
	}
	if pr.Number == 0 {
		return fmt.Errorf("%w: pull_request payload without a number", errPermanent)
	}
	switch ev.GetAction() {
	case "opened", "synchronize", "reopened", "edited", "labeled", "unlabeled", "ready_for_review", "closed",
		"converted_to_draft":
	default:
		return w.finish(ctx, d, "ignored pull_request "+ev.GetAction())
	}
	if w.gh != nil {
		fresh, err := w.gh.PullRequest(ctx, pr.Number)
		if err != nil {
			return fmt.Errorf("pull request #%d: %w", pr.Number, err)
		}
		pr = fresh
	}
	src := prSource(pr.Number)
	switch {
	case strings.TrimPrefix(pr.Base.Ref, "refs/heads/") != w.cfg.Branch:
		// Also a base changed away from the tracked branch: its drafts end.
		return w.endDrafts(ctx, d, src, "base "+pr.Base.Ref+" is not the tracked branch")
	case pr.State == "closed" && pr.IsMerged():
		return w.merged(ctx, d, pr)
	case pr.State == "closed":
		return w.endDrafts(ctx, d, src, "closed without merging")
	}
	return w.open(ctx, d, pr)
}

func (w *Worker) endDrafts(ctx context.Context, d index.Delivery, src index.DraftSource, why string) error {
	return w.db.Update(ctx, func(tx *index.Tx) error {
		ended, err := tx.EndDrafts(ctx, src.Source, "github")
		if err != nil {
			return fmt.Errorf("end drafts %s: %w", src.Source, err)
		}
		if len(ended) > 0 {
			w.log.Info("drafts ended", logDelivery, d.GUID, logPR, src.Source, "count", len(ended), "why", why)
		}
		return tx.FinishDelivery(ctx, d.Seq, fmt.Sprintf("%s: %d drafts ended (%s)", src.Source, len(ended), why))
	})
}

// open indexes an open pull request's head as drafts, reports the check run
// (or status), and applies the staging label.
func (w *Worker) open(ctx context.Context, d index.Delivery, pr PullRequest) error {
	src, err := w.indexAndReport(ctx, pr)
	if err != nil {
		return err
	}
	staging := pr.HasLabel(w.opts.StagingLabel)
	return w.db.Update(ctx, func(tx *index.Tx) error {
		note, err := w.applyStaging(ctx, tx, src, staging)
		if err != nil {
			return err
		}
		return tx.FinishDelivery(ctx, d.Seq, fmt.Sprintf("%s at %s indexed%s", src.Source, src.Head, note))
	})
}

// reportOpen indexes an open pull request's head and reports its check
// (a re-run).
func (w *Worker) reportOpen(ctx context.Context, pr PullRequest) error {
	_, err := w.indexAndReport(ctx, pr)
	return err
}

// indexAndReport indexes an open pull request's head as drafts and reports
// the check run (or status).
func (w *Worker) indexAndReport(ctx context.Context, pr PullRequest) (index.DraftSource, error) {
	src := prSource(pr.Number)
	err := w.locked(ctx, func() error {
		head, err := w.fetchHead(ctx, pr)
		if err != nil {
			return err
		}
		src.Head = head
		if _, err := w.db.SyncDrafts(ctx, w.repo, w.cfg, src); err != nil {
			return fmt.Errorf("pull request #%d: %w", pr.Number, err)
		}
		return nil
	})
	if err != nil {
		return src, err
	}
	if w.gh != nil {
		rep, err := w.buildReport(ctx, src)
		if err != nil {
			return src, fmt.Errorf("pull request #%d: report: %w", pr.Number, err)
		}
		// Reported before the delivery is marked done: a crash in between
		// reports again, and the report is an upsert.
		if err := w.publish(ctx, src.Head, rep); err != nil {
			return src, fmt.Errorf("pull request #%d: report: %w", pr.Number, err)
		}
	}
	return src, nil
}

// fetchHead fetches refs/pull/N/head (fork pull requests included: GitHub
// serves it from the base repository) and returns the head to index.
func (w *Worker) fetchHead(ctx context.Context, pr PullRequest) (string, error) {
	if err := w.fetch(ctx, prSpec(pr.Number)); err != nil {
		return "", err
	}
	head := pr.Head.SHA
	if w.has(head) {
		return head, nil
	}
	cur, err := w.repo.Resolve(prRef(pr.Number))
	if err == nil && w.gh == nil && cur != head {
		// Payload-only mode: the payload's head is stale and gone (a later
		// push replaced it); follow the pull request's current head.
		return cur, nil
	}
	return "", fmt.Errorf("%w: pull request #%d head %s not fetched yet", errLag, pr.Number, head)
}

// applyStaging puts the source's valid drafts on staging when the pull
// request carries the staging label, and takes them off when it does not.
func (w *Worker) applyStaging(ctx context.Context, tx *index.Tx, src index.DraftSource, want bool) (string, error) {
	drafts, err := tx.DraftsOf(ctx, src.Source)
	if err != nil {
		return "", err
	}
	on, err := tx.StagingEnabled(ctx)
	if err != nil || !on {
		return "", err
	}
	actor := "github:" + src.Name
	var set, cleared int
	for _, v := range drafts {
		cur, ok, err := tx.Pointer(ctx, v.Key, index.EnvStaging)
		if err != nil {
			return "", err
		}
		if want {
			if !v.Valid {
				continue
			}
			r, err := tx.SetStaging(ctx, v.Key, v.Label, actor)
			if err != nil {
				return "", fmt.Errorf("staging %s %s: %w", v.Key, v.Label, err)
			}
			if r.Changed {
				set++
				w.log.Info("staging set", logKey, v.Key, logVersion, v.Label, logCommit, v.Commit)
			}
		} else if ok && cur.Draft == src.Name {
			if _, err := tx.ClearStaging(ctx, v.Key, actor); err != nil {
				return "", err
			}
			cleared++
		}
	}
	if set+cleared == 0 {
		return "", nil
	}
	return fmt.Sprintf("; staging set %d, cleared %d", set, cleared), nil
}

// merged promotes a merged pull request: the prompts it changed (three-dot
// diff merge-base..head) with their content at merge_commit_sha, in the
// transaction that indexes the merge commit (or, when it was indexed
// before, in one of its own), together with the done mark.
func (w *Worker) merged(ctx context.Context, d index.Delivery, pr PullRequest) error {
	return w.locked(ctx, func() error {
		if err := w.fetch(ctx, prSpec(pr.Number)); err != nil {
			// The head ref may be gone on a mirror of a mirror; the merge
			// commit's second parent is the head for merge commits.
			if err2 := w.fetch(ctx); err2 != nil {
				return err
			}
		}
		m, err := w.mergeOf(ctx, pr, d.GUID)
		if err != nil {
			return err
		}
		var out index.MergeOutcome
		done := false
		apply := func(ctx context.Context, tx *index.Tx) error {
			var err error
			if out, err = tx.ApplyMerge(ctx, w.repo, w.cfg, m); err != nil {
				return err
			}
			src := prSource(pr.Number)
			if _, err := tx.EndDrafts(ctx, src.Source, m.Actor); err != nil {
				return err
			}
			done = true
			return tx.FinishDelivery(ctx, d.Seq, fmt.Sprintf("merge %s: %s", m.SHA, out.State))
		}
		cfg := w.cfg
		cfg.AfterCommit = func(ctx context.Context, tx *index.Tx, ix index.Indexed) error {
			if done || ix.Commit.SHA != m.SHA {
				return nil
			}
			// Before the first sync bootstrapped live pointers, promoting
			// here would stop bootstrap; the merge is applied after Sync.
			if ok, err := tx.Bootstrapped(ctx); err != nil || !ok {
				return err
			}
			return apply(ctx, tx)
		}
		if _, err := w.db.Sync(ctx, w.repo, cfg); err != nil {
			done = false
			return fmt.Errorf("merge of pull request #%d: %w", pr.Number, err)
		}
		if !done {
			if err := w.db.Update(ctx, func(tx *index.Tx) error { return apply(ctx, tx) }); err != nil {
				if errors.Is(err, index.ErrNotIndexed) {
					return fmt.Errorf("%w: %w", errLag, err)
				}
				return fmt.Errorf("merge of pull request #%d: %w", pr.Number, err)
			}
		}
		w.logMerge(d.GUID, pr.Number, m.SHA, out)
		return nil
	})
}

func (w *Worker) logMerge(guid string, n int, sha string, out index.MergeOutcome) {
	if out.Already {
		w.log.Info("merge already handled", logDelivery, guid, logPR, n, logCommit, sha, "state", out.State)
		return
	}
	for _, v := range out.Promoted {
		w.log.Info("promoted", logKey, v.Key, logVersion, v.Label, logCommit, v.Commit, logDelivery, guid, logPR, n)
	}
	for _, k := range out.Archived {
		w.log.Info("archived", logKey, k, logCommit, sha, logDelivery, guid, logPR, n)
	}
	if len(out.Refused) > 0 {
		w.log.Warn("merge not applied in full", logDelivery, guid, logPR, n, logCommit, sha, "state", out.State,
			"detail", out.Detail)
	}
}

// mergeOf checks the mirror holds the merge on the tracked branch and
// computes what the pull request changed. Needs the sync lock.
func (w *Worker) mergeOf(ctx context.Context, pr PullRequest, guid string) (index.Merge, error) {
	mc := pr.MergeCommitSHA
	if mc == "" || !w.has(mc) {
		return index.Merge{}, fmt.Errorf("%w: pull request #%d merge commit %q not fetched yet", errLag, pr.Number, mc)
	}
	head, err := w.repo.Resolve(index.TrackedRef(w.cfg.Branch))
	if err != nil {
		return index.Merge{}, fmt.Errorf("%w: %v", errLag, err)
	}
	if ok, err := w.repo.IsAncestor(mc, head); err != nil || !ok {
		return index.Merge{}, fmt.Errorf("%w: merge commit %s is not on %s yet", errLag, mc, w.cfg.Branch)
	}
	changed, err := w.changedPaths(ctx, pr)
	if err != nil {
		return index.Merge{}, err
	}
	m := index.Merge{SHA: mc, PR: pr.Number, Delivery: guid, Actor: w.actor(pr.Number), Changed: changed}
	switch {
	case w.cfg.AutoPromote != index.AutoMergedPR:
		m.NotPromoted, m.Reason = true, "--auto-promote is "+w.cfg.AutoPromote
	case pr.HasLabel(w.opts.HoldLabel):
		m.Hold, m.Reason = true, "merged with label "+w.opts.HoldLabel+": not promoted"
	}
	return m, nil
}

// changedPaths is the three-dot diff merge-base(base, head)..head under the
// prompts directory, where base is the tracked branch just before the
// merge (the merge commit's first parent): right for merge, squash and
// rebase merges, unlike guessing the merge method.
func (w *Worker) changedPaths(ctx context.Context, pr PullRequest) ([]string, error) {
	mc, err := w.repo.Commit(pr.MergeCommitSHA)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errLag, err)
	}
	head := pr.Head.SHA
	if !w.has(head) {
		if cur, err := w.repo.Resolve(prRef(pr.Number)); err == nil {
			head = cur
		} else if len(mc.Parents) >= 2 {
			head = mc.Parents[1]
		} else {
			return nil, fmt.Errorf("%w: pull request #%d head %s not fetched yet", errLag, pr.Number, pr.Head.SHA)
		}
	}
	if len(mc.Parents) == 0 {
		return nil, fmt.Errorf("%w: merge commit %s has no parent", errPermanent, mc.SHA)
	}
	base := mc.Parents[0]
	if head == mc.SHA || w.isAncestor(head, base) {
		// A fast-forward: the head is on the branch already; fall back to
		// the pull request's recorded base.
		if w.has(pr.Base.SHA) {
			base = pr.Base.SHA
		}
	}
	mb, err := w.repo.MergeBase(base, head)
	if err != nil && !errors.Is(err, gitstore.ErrNotFound) {
		return nil, fmt.Errorf("merge base of #%d: %w", pr.Number, err)
	}
	changes, err := w.repo.Diff(ctx, mb, head, w.cfg.PromptsDir)
	if err != nil {
		return nil, fmt.Errorf("diff of #%d: %w", pr.Number, err)
	}
	paths := make([]string, len(changes))
	for i, c := range changes {
		paths[i] = c.Path
	}
	return paths, nil
}

func (w *Worker) isAncestor(a, b string) bool {
	ok, err := w.repo.IsAncestor(a, b)
	return err == nil && ok
}

// reconcileMark is the meta key of the reconcile's watermark: the update
// time closed pull requests are listed back to.
const reconcileMark = "webhook.reconcile_watermark"

// reconcilePages bounds one reconcile's listing of closed pull requests
// (100 each) when it has no watermark yet or fell far behind.
const reconcilePages = 50

// Reconcile heals what deliveries missed. It fetches and indexes first, so
// pushes are healed whatever the API does; the API is best effort: it
// applies merged pull requests whose merge commit was never handled
// (closed pull requests paged by update time back to the last watermark),
// oldest merge first, and refreshes open pull requests' drafts, ending
// those of pull requests that are no longer open.
func (w *Worker) Reconcile(ctx context.Context) error {
	start := time.Now()
	err := w.locked(ctx, func() error {
		if err := w.fetch(ctx); err != nil {
			return err
		}
		_, err := w.db.Sync(ctx, w.repo, w.cfg)
		return err
	})
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	if w.gh == nil {
		return nil
	}
	var mark time.Time
	err = w.db.View(ctx, func(tx *index.Tx) error {
		v, err := tx.Meta(ctx, reconcileMark)
		if err == nil && v != "" {
			mark, err = time.Parse(time.RFC3339, v)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("reconcile: watermark: %w", err)
	}
	closed, complete, err := w.gh.PullRequestsSince(ctx, "closed", w.cfg.Branch, mark, reconcilePages)
	if err != nil {
		w.log.Warn("reconcile: listing closed pull requests failed; the next reconcile retries", logErr, err)
		return nil
	}
	open, _, err := w.gh.PullRequestsSince(ctx, "open", w.cfg.Branch, time.Time{}, 3)
	if err != nil {
		w.log.Warn("reconcile: listing open pull requests failed; the next reconcile retries", logErr, err)
		open = nil
	}
	applied := 0
	var behind []PullRequest // merges not yet applicable: the watermark stays before them
	err = w.locked(ctx, func() error {
		todo, later, err := w.unhandledMerges(ctx, closed)
		if err != nil {
			return err
		}
		behind = later
		var specs []string
		for _, pr := range todo {
			if !w.has(pr.Head.SHA) {
				specs = append(specs, prSpec(pr.Number))
			}
		}
		for _, pr := range open {
			specs = append(specs, prSpec(pr.Number))
		}
		if len(specs) > 0 {
			if err := w.fetch(ctx, specs...); err != nil {
				w.log.Warn("reconcile: fetch pull request heads", logErr, err)
			}
		}
		for _, pr := range todo {
			m, err := w.mergeOf(ctx, pr, "")
			if err != nil {
				w.log.Warn("reconcile: merge skipped", logPR, pr.Number, logErr, err)
				behind = append(behind, pr)
				continue
			}
			m.Actor = "reconcile:" + w.actor(pr.Number)
			m.Quiet = true
			var out index.MergeOutcome
			err = w.db.Update(ctx, func(tx *index.Tx) error {
				var err error
				if out, err = tx.ApplyMerge(ctx, w.repo, w.cfg, m); err != nil {
					return err
				}
				_, err = tx.EndDrafts(ctx, prSource(pr.Number).Source, m.Actor)
				return err
			})
			if err != nil {
				return fmt.Errorf("reconcile: merge of #%d: %w", pr.Number, err)
			}
			if len(out.Promoted)+len(out.Archived) > 0 {
				applied++
			}
			w.logMerge("", pr.Number, m.SHA, out)
		}
		if open == nil {
			return nil
		}
		return w.reconcileOpen(ctx, open)
	})
	if err != nil {
		return err
	}
	if complete {
		if next := nextWatermark(mark, closed, behind); !next.Equal(mark) {
			err := w.db.Update(ctx, func(tx *index.Tx) error { return tx.SetMeta(ctx, reconcileMark, next.Format(time.RFC3339)) })
			if err != nil {
				return fmt.Errorf("reconcile: watermark: %w", err)
			}
		}
	}
	w.log.Debug("reconciled", "merges_applied", applied, "closed_listed", len(closed), "seconds", time.Since(start).Seconds())
	return nil
}

// reconcileSlack keeps the watermark a little behind the newest update
// seen: GitHub's lists are eventually consistent.
const reconcileSlack = 10 * time.Minute

// nextWatermark is the update time the next reconcile lists back to: just
// before the oldest merge that could not be applied yet, else the newest
// update seen less reconcileSlack; never earlier than mark.
func nextWatermark(mark time.Time, listed, behind []PullRequest) time.Time {
	next := mark
	for _, pr := range listed {
		if pr.UpdatedAt != nil && pr.UpdatedAt.Add(-reconcileSlack).After(next) {
			next = pr.UpdatedAt.Add(-reconcileSlack)
		}
	}
	for _, pr := range behind {
		if pr.UpdatedAt != nil && pr.UpdatedAt.Add(-time.Second).Before(next) {
			next = pr.UpdatedAt.Add(-time.Second)
		}
	}
	if next.Before(mark) {
		return mark
	}
	return next.UTC().Truncate(time.Second)
}

// unhandledMerges returns merged pull requests whose merge commit is on the
// tracked branch and not yet recorded, in branch order, and (later) those
// whose merge commit is not indexed yet.
func (w *Worker) unhandledMerges(ctx context.Context, closed []PullRequest) (todo, later []PullRequest, err error) {
	type cand struct {
		pr  PullRequest
		seq int64
	}
	var cs []cand
	err = w.db.View(ctx, func(tx *index.Tx) error {
		for _, pr := range closed {
			if !pr.IsMerged() || pr.MergeCommitSHA == "" {
				continue
			}
			if _, done, err := tx.MergeRecorded(ctx, pr.MergeCommitSHA); err != nil || done {
				if err != nil {
					return err
				}
				continue
			}
			seq, ok, err := tx.CommitSeq(ctx, pr.MergeCommitSHA)
			if err != nil {
				return err
			}
			if ok {
				cs = append(cs, cand{pr, seq})
			} else {
				later = append(later, pr)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reconcile: %w", err)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].seq < cs[j].seq })
	todo = make([]PullRequest, len(cs))
	for i, c := range cs {
		todo[i] = c.pr
	}
	return todo, later, nil
}

// reconcileOpen refreshes the drafts of open pull requests and their
// staging labels, and ends drafts of pull requests no longer open.
func (w *Worker) reconcileOpen(ctx context.Context, open []PullRequest) error {
	isOpen := map[string]bool{}
	for _, pr := range open {
		src := prSource(pr.Number)
		isOpen[src.Source] = true
		if !w.has(pr.Head.SHA) {
			continue // its ref did not fetch; the next reconcile retries
		}
		src.Head = pr.Head.SHA
		res, err := w.db.SyncDrafts(ctx, w.repo, w.cfg, src)
		if err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		if len(res.Drafts)+len(res.DraftsEnded) > 0 {
			if rep, err := w.buildReport(ctx, src); err == nil {
				if err := w.publish(ctx, src.Head, rep); err != nil {
					w.log.Warn("reconcile: report", logPR, pr.Number, logErr, err)
				}
			}
		}
		err = w.db.Update(ctx, func(tx *index.Tx) error {
			_, err := w.applyStaging(ctx, tx, src, pr.HasLabel(w.opts.StagingLabel))
			return err
		})
		if err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
	}
	if len(open) >= 300 {
		return nil // the list may be truncated: end nothing on its word
	}
	return w.db.Update(ctx, func(tx *index.Tx) error {
		srcs, err := tx.DraftSources(ctx, "pr:")
		if err != nil {
			return err
		}
		for _, s := range srcs {
			if !isOpen[s] {
				if _, err := tx.EndDrafts(ctx, s, "reconcile"); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
