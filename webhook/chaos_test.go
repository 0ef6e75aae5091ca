package webhook

import (
	"fmt"
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
			<-r.Context().Done() // no answer: the client gives up at its timeout
		default:
			return false
		}
		return true
	}
}

// buildChaos makes the history (chaosPRs pull requests, each pushed twice,
// labelled and merged by merge, squash or rebase) and returns the
// deliveries GitHub would send, shuffled and duplicated by seed.
func buildChaos(t *testing.T, e *env, seed uint64, others ...*env) []chaosDelivery {
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
	var ds []chaosDelivery
	add := func(event string, p map[string]any) {
		ds = append(ds, chaosDelivery{event: event, guid: fmt.Sprintf("chaos-%03d", len(ds)), payload: p})
	}
	repo := map[string]any{"full_name": testOwner + "/" + testName, "name": testName}
	methods := []string{"merge", "squash", "rebase"}
	// Git work stays in the working repository and is pushed once at the
	// end: no delivery is processed before that, and one push is much
	// cheaper than a hundred.
	e.noPush = true
	defer func() { e.noPush = false }()
	push := []string{"push", "-q", "-f", e.git.Bare}
	for i := 1; i <= chaosPRs; i++ {
		path := fmt.Sprintf("prompts/p%02d.yaml", i)
		branch := fmt.Sprintf("c%02d", i)
		base := e.work.Git("rev-parse", "main")
		first := e.branch(branch, map[string]string{path: gittest.Prompt(fmt.Sprintf("Prompt %d draft", i))})
		n := e.nextN
		e.nextN++
		pr := PullRequest{Number: n, State: "open", Title: "change " + branch, Head: PRRef{Ref: branch, SHA: first},
			Base: PRRef{Ref: "main", SHA: base}}
		add("pull_request", prPayload("opened", pr))
		e.work.Git("checkout", "-q", branch)
		e.work.Write(path, gittest.Prompt(fmt.Sprintf("Prompt %d merged", i)))
		pr.Head.SHA = e.work.Commit("second push")
		e.work.Git("checkout", "-q", "main")
		add("pull_request", prPayload("synchronize", pr))
		pr.Labels = []Label{{Name: DefaultStagingLabel}}
		add("pull_request", prPayload("labeled", pr))
		add("pull_request", prPayload("edited", pr))
		e.gh.setPR(pr)
		mc := e.merge(pr.Number, methods[i%3])
		add("pull_request", prPayload("closed", e.gh.pr(pr.Number)))
		add("push", map[string]any{"ref": "refs/heads/main", "before": base, "after": mc, "created": false,
			"deleted": false, "forced": false, "repository": repo, "commits": []any{}, "head_commit": nil,
			"compare": "https://github.com/acme/prompts/compare", "pusher": map[string]any{"name": "octocat"}})
		push = append(push, branch+":refs/heads/"+branch, fmt.Sprintf("%s:refs/pull/%d/head", branch, n))
	}
	e.work.Git(append(push, "main:refs/heads/main")...)
	// 40 copies by a second hook (new GUIDs), out of order; 40 redeliveries
	// with the same GUID are posted beside them by runChaos.
	rng := rand.New(rand.NewPCG(seed, 1))
	for range 40 {
		d := ds[rng.IntN(len(ds))]
		add(d.event, d.payload)
	}
	rng.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	return ds
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
func runChaos(t *testing.T, e *env, ds []chaosDelivery, faults *chaosFaults, onRound func(round int)) chaosResult {
	res := chaosResult{distinct: len(ds)}
	if faults != nil {
		e.gh.fault = faults.inject(e.gh)
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
	for res.rounds = 0; res.rounds < 10000; res.rounds++ {
		wait, err := e.w.Drain(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if onRound != nil {
			onRound(res.rounds)
		}
		if wait == 0 {
			break
		}
		e.clock.Advance(wait)
	}
	res.wall, res.virtual = time.Since(start), e.clock.Now().Sub(vstart)
	if faults != nil {
		faults.mu.Lock()
		res.faults, res.calls = faults.counts, faults.calls
		faults.mu.Unlock()
	}
	res.pointers = map[string]string{}
	res.perMerge = map[string]int{}
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
	return res
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
	ds := buildChaos(t, clean, seed, e)
	t.Logf("history of %d pull requests built in %v", chaosPRs, time.Since(t0).Round(time.Millisecond))
	base := runChaos(t, clean, ds, nil, nil)

	e.gh.mu.Lock()
	e.w.opts.Backoff = DefaultBackoff // jittered, on the injected clock
	e.w.opts.MaxAttempts = 20
	e.w.gh.Timeout = 250 * time.Millisecond // a call that never answers
	e.gh.mu.Unlock()
	// One more pull request whose API calls always fail: a subject that
	// never heals during the run.
	clean.branch("poison", map[string]string{"prompts/greet.yaml": gittest.Prompt("Poison")})
	poison := clean.openPR("poison", false) // the next number: clean's counter

	ds = append(ds[:len(ds):len(ds)], chaosDelivery{event: "pull_request", guid: "chaos-poison", payload: prPayload("opened", poison)})
	faults := &chaosFaults{rng: rand.New(rand.NewPCG(seed, 2)), rate: 0.2, counts: map[string]int{},
		poison: fmt.Sprintf("/pulls/%d", poison.Number)}
	// The round after which every other delivery was done, and the
	// poisoned one's state then: still retrying means nothing waited for it.
	othersDone, poisonThen := -1, index.Delivery{}
	got := runChaos(t, e, ds, faults, func(round int) {
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
	})
	if othersDone < 0 {
		t.Errorf("the other deliveries never all finished while the poisoned one was still retrying")
	}
	if d := e.delivery("chaos-poison"); d.State != index.DeliveryFailed || d.Attempts != 20 {
		t.Errorf("poisoned delivery: %s after %d attempts, want failed after 20", d.State, d.Attempts)
	}
	for _, d := range ds[:len(ds)-1] {
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
		got.virtual.Round(time.Second), got.rounds, othersDone, poisonThen.Attempts, got.promotions, base.promotions,
		base.wall.Round(time.Millisecond))
}
