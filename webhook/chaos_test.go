package webhook

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promptvault/promptvault/gitstore/gittest"
	"github.com/promptvault/promptvault/index"
)

// chaosPRs is the chaos run's number of pull requests; each changes its own
// prompt, so every merge must promote exactly once whatever the order.
const chaosPRs = 20

// chaosDelivery is one delivery of the scenario.
type chaosDelivery struct {
	event, guid string
	payload     map[string]any
}

// chaosFaults injects GitHub failures into a fraction of API calls: 5xx,
// 429 with retry-after, and calls that never answer (the client's timeout
// ends them). Counts are by kind.
type chaosFaults struct {
	mu     sync.Mutex
	rng    *rand.Rand
	rate   float64
	counts map[string]int
	calls  int
	poison string // a path suffix that always fails (a subject that never heals)
}

func (c *chaosFaults) inject(f *fakeGitHub) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		c.mu.Lock()
		c.calls++
		kind := ""
		switch {
		case c.poison != "" && strings.HasSuffix(r.URL.Path, c.poison):
			kind = "poison"
		case c.rng.Float64() < c.rate:
			kind = []string{"502", "429", "timeout"}[c.rng.IntN(3)]
		}
		if kind != "" {
			c.counts[kind]++
		}
		c.mu.Unlock()
		switch kind {
		case "502", "poison":
			writeJSON(w, http.StatusBadGateway, map[string]string{"message": "Server Error"})
		case "429":
			f.writeRateLimit(w, "429")
		case "timeout":
			// No answer: the client gives up at its timeout. The body is
			// read first: only then does the server notice the client
			// hanging up (and cancel the request's context).
			io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second): // never hold the test's cleanup
			}
		default:
			return false
		}
		return true
	}
}

// chaosScenario is the chaos run's history and deliveries in two phases:
// while the pull requests are open (opens, pushes, labels, edits: drafts,
// check runs, staging), and after they are merged (closes, pushes to main).
type chaosScenario struct {
	open, merged []chaosDelivery
	mergeAll     func() // merges every pull request (merge, squash, rebase) and pushes
}

// buildChaos makes chaosPRs pull requests, each pushed twice and labelled,
// and returns the deliveries GitHub would send, shuffled and duplicated by
// seed (40 copies by a second hook with new GUIDs; runChaos posts 40 more
// twice with the same GUID). others are instances to reconcile alongside.
func buildChaos(t *testing.T, e *env, seed uint64, others ...*env) *chaosScenario {
	files := map[string]string{}
	for i := 1; i <= chaosPRs; i++ {
		files[fmt.Sprintf("prompts/p%02d.yaml", i)] = gittest.Prompt(fmt.Sprintf("Prompt %d v1", i))
	}
	e.commitMain(files)
	for _, x := range append([]*env{e}, others...) {
		if err := x.w.Reconcile(x.ctx); err != nil {
			t.Fatal(err)
		}
	}
	sc := &chaosScenario{}
	seq := 0
	add := func(to *[]chaosDelivery, event string, p map[string]any) {
		*to = append(*to, chaosDelivery{event: event, guid: fmt.Sprintf("chaos-%03d", seq), payload: p})
		seq++
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	shuffle := func(ds *[]chaosDelivery, copies int) {
		for range copies {
			d := (*ds)[rng.IntN(len(*ds))]
			add(ds, d.event, d.payload)
		}
		rng.Shuffle(len(*ds), func(i, j int) { (*ds)[i], (*ds)[j] = (*ds)[j], (*ds)[i] })
	}
	// Git work stays in the working repository and is pushed once per
	// phase: one push is much cheaper than a hundred.
	push := []string{"push", "-q", "-f", e.git.Bare}
	var prs []int
	for i := 1; i <= chaosPRs; i++ {
		path := fmt.Sprintf("prompts/p%02d.yaml", i)
		branch := fmt.Sprintf("c%02d", i)
		base := e.work.Git("rev-parse", "main")
		first := e.branch(branch, map[string]string{path: gittest.Prompt(fmt.Sprintf("Prompt %d draft", i))})
		n := e.nextN
		e.nextN++
		prs = append(prs, n)
		pr := PullRequest{Number: n, State: "open", Title: "change " + branch, Head: PRRef{Ref: branch, SHA: first},
			Base: PRRef{Ref: "main", SHA: base}}
		add(&sc.open, "pull_request", prPayload("opened", pr))
		e.work.Git("checkout", "-q", branch)
		e.work.Write(path, gittest.Prompt(fmt.Sprintf("Prompt %d merged", i)))
		pr.Head.SHA = e.work.Commit("second push")
		e.work.Git("checkout", "-q", "main")
		add(&sc.open, "pull_request", prPayload("synchronize", pr))
		pr.Labels = []Label{{Name: DefaultStagingLabel}}
		add(&sc.open, "pull_request", prPayload("labeled", pr))
		add(&sc.open, "pull_request", prPayload("edited", pr))
		e.gh.setPR(pr)
		push = append(push, branch+":refs/heads/"+branch, fmt.Sprintf("%s:refs/pull/%d/head", branch, n))
	}
	e.work.Git(push...)
	shuffle(&sc.open, 24)

	repo := map[string]any{"full_name": testOwner + "/" + testName, "name": testName}
	methods := []string{"merge", "squash", "rebase"}
	sc.mergeAll = func() {
		e.noPush = true
		defer func() { e.noPush = false }()
		for i, n := range prs {
			before := e.work.Git("rev-parse", "main")
			mc := e.merge(n, methods[i%3])
			add(&sc.merged, "pull_request", prPayload("closed", e.gh.pr(n)))
			add(&sc.merged, "push", map[string]any{"ref": "refs/heads/main", "before": before, "after": mc,
				"created": false, "deleted": false, "forced": false, "repository": repo, "commits": []any{},
				"head_commit": nil, "compare": "https://github.com/acme/prompts/compare",
				"pusher": map[string]any{"name": "octocat"}})
		}
		e.pushMain()
		shuffle(&sc.merged, 16)
	}
	return sc
}

type chaosResult struct {
	posts, distinct   int
	faults            map[string]int
	calls             int
	wall, virtual     time.Duration
	rounds            int
	promotions        int
	pointers          map[string]string
	perMerge          map[string]int
	behindPoison      int
	maxAttemptsHealed int
}

// runChaos posts every delivery (40 of them twice with the same GUID),
// drains the worker while faults is set, advancing the injected clock to
// each next due time, and reports what happened.
func runChaos(t *testing.T, e *env, ds []chaosDelivery, faults *chaosFaults, onRound func(round int), res *chaosResult) {
	res.distinct += len(ds)
	if faults != nil {
		e.gh.fault = faults.inject(e.gh)
		defer func() { e.gh.fault = nil }()
	}
	for i, d := range ds {
		body := completePayload(t, d.event, d.payload)
		for range 1 + boolInt(i%4 == 0 && d.guid != "chaos-poison") { // every 4th twice: 40 same-GUID duplicates
			if code, b := e.post(d.event, d.guid, body, "application/json"); code != http.StatusAccepted {
				t.Fatalf("post %s: %d %s", d.guid, code, b)
			}
			res.posts++
		}
	}
	start, vstart := time.Now(), e.clock.Now()
	for round := 0; round < 10000; round++ {
		wait, err := e.w.Drain(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		res.rounds++
		if onRound != nil {
			onRound(res.rounds)
		}
		if wait == 0 {
			break
		}
		e.clock.Advance(wait)
	}
	res.wall += time.Since(start)
	res.virtual += e.clock.Now().Sub(vstart)
	if faults != nil {
		faults.mu.Lock()
		res.faults, res.calls = faults.counts, faults.calls
		faults.mu.Unlock()
	}
	res.pointers = map[string]string{}
	res.perMerge = map[string]int{}
	res.promotions = 0
	e.db.View(e.ctx, func(tx *index.Tx) error {
		for i := 1; i <= chaosPRs; i++ {
			key := fmt.Sprintf("p%02d", i)
			for _, env := range []string{index.EnvLive, index.EnvStaging} {
				if p, ok, err := tx.Pointer(e.ctx, key, env); err == nil && ok {
					res.pointers[key+" "+env] = p.Label() + " " + p.SHA256
				}
			}
		}
		return nil
	})
	for _, a := range e.audit("promote") {
		res.promotions++
		res.perMerge[a.Key]++
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestChaos: 200 deliveries over 20 pull requests (opens, pushes, labels,
// edits, merges of all three kinds, out of order and duplicated) while
// the fake GitHub fails 20% of calls at random (5xx, 429 with retry-after,
// timeouts): every merge is promoted exactly once, the final pointers equal
// a fault-free run's, and a pull request whose calls always fail holds back
// no other subject.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run: not in -short")
	}
	const seed = 11
	// Two instances (own index and mirror) on one repository and fake
	// GitHub: the fault-free run and the chaos run see the same history and
	// the same deliveries.
	clean := newEnv(t, modeApp)
	e := clean.fork(modeApp)
	t0 := time.Now()
	sc := buildChaos(t, clean, seed, e)
	t.Logf("%d pull requests built in %v", chaosPRs, time.Since(t0).Round(time.Millisecond))

	e.gh.mu.Lock()
	e.w.opts.Backoff = DefaultBackoff // jittered, on the injected clock
	e.w.opts.MaxAttempts = 20
	e.w.gh.Timeout = 250 * time.Millisecond // a call that never answers
	e.gh.mu.Unlock()
	// One more pull request whose API calls always fail: a subject that
	// never heals during the run.
	clean.branch("poison", map[string]string{"prompts/greet.yaml": gittest.Prompt("Poison")})
	poison := clean.openPR("poison", false) // the next number: clean's counter
	faults := &chaosFaults{rng: rand.New(rand.NewPCG(seed, 2)), rate: 0.2, counts: map[string]int{},
		poison: fmt.Sprintf("/pulls/%d", poison.Number)}
	// The round after which every other delivery was done, and the
	// poisoned one's state then: still retrying means nothing waited for it.
	othersDone, poisonThen := -1, index.Delivery{}
	watch := func(round int) {
		if othersDone >= 0 {
			return
		}
		var open int
		e.db.View(e.ctx, func(tx *index.Tx) (err error) {
			open, err = tx.CountDeliveries(e.ctx, index.DeliveryPending)
			return err
		})
		if p := e.delivery("chaos-poison"); open == 1 && p.State == index.DeliveryPending {
			othersDone, poisonThen = round, p
		}
	}
	var base, got chaosResult
	// Phase 1, pull requests open: the fault-free instance, then the chaos
	// one (with the poisoned pull request's delivery).
	runChaos(t, clean, sc.open, nil, nil, &base)
	withPoison := append(sc.open[:len(sc.open):len(sc.open)],
		chaosDelivery{event: "pull_request", guid: "chaos-poison", payload: prPayload("opened", poison)})
	runChaos(t, e, withPoison, faults, watch, &got)
	if othersDone < 0 {
		t.Errorf("phase 1: the other deliveries never all finished while the poisoned one was still retrying")
	}
	phase1Done, poisonPhase1 := othersDone, poisonThen
	// Phase 2: every pull request merged (merge, squash, rebase).
	sc.mergeAll()
	runChaos(t, clean, sc.merged, nil, nil, &base)
	runChaos(t, e, sc.merged, faults, nil, &got)
	ds := append(append([]chaosDelivery{}, sc.open...), sc.merged...)

	if d := e.delivery("chaos-poison"); d.State != index.DeliveryFailed || d.Attempts != 20 {
		t.Errorf("poisoned delivery: %s after %d attempts, want failed after 20", d.State, d.Attempts)
	}
	for _, d := range ds {
		if st := e.delivery(d.guid).State; st != index.DeliveryDone {
			t.Errorf("delivery %s (%s) is %s: it waited behind another subject's failures", d.guid, d.event, st)
		}
	}
	for i := 1; i <= chaosPRs; i++ {
		key := fmt.Sprintf("p%02d", i)
		if base.perMerge[key] != 1 || got.perMerge[key] != 1 {
			t.Errorf("%s promoted %d times (fault-free %d), want exactly once", key, got.perMerge[key], base.perMerge[key])
		}
	}
	var keys []string
	for k := range base.pointers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(base.pointers) != len(got.pointers) {
		t.Errorf("%d pointers, fault-free %d", len(got.pointers), len(base.pointers))
	}
	for _, k := range keys {
		if got.pointers[k] != base.pointers[k] {
			t.Errorf("%s = %q, fault-free run %q", k, got.pointers[k], base.pointers[k])
		}
	}
	injected := 0
	for k, n := range got.faults {
		if k != "poison" {
			injected += n
		}
	}
	t.Logf("chaos run: %d posts (%d distinct deliveries + 1 poisoned), %d API calls, %d faults injected %v; drained in %v wall, "+
		"%v on the injected clock, %d drain rounds (all but the poisoned subject done after round %d, it then at attempt %d); "+
		"%d promotions (fault-free run: %d promotions, %v wall)",
		got.posts, got.distinct-1, got.calls, injected, got.faults, got.wall.Round(time.Millisecond),
		got.virtual.Round(time.Second), got.rounds, phase1Done, poisonPhase1.Attempts, got.promotions, base.promotions,
		base.wall.Round(time.Millisecond))
}
