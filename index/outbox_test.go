package index_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promptvault/promptvault/index"
)

func (e *testEnv) addHook(t testing.TB, n index.NewHook) index.CreatedHook {
	t.Helper()
	var h index.CreatedHook
	if err := e.update(t, func(ctx context.Context, tx *index.Tx) (err error) {
		h, err = tx.AddHook(ctx, n, "test")
		return err
	}); err != nil {
		t.Fatalf("add hook: %v", err)
	}
	return h
}

func (e *testEnv) deliveries(t testing.TB, hookID string) []index.HookDelivery {
	t.Helper()
	var ds []index.HookDelivery
	err := e.db.View(context.Background(), func(tx *index.Tx) (err error) {
		ds, err = tx.HookDeliveries(context.Background(), hookID, 0, 1000)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// events renders deliveries oldest first as "type key env prev→version".
func events(ds []index.HookDelivery) string {
	var s []string
	for i := len(ds) - 1; i >= 0; i-- {
		e := ds[i].Event
		s = append(s, fmt.Sprintf("%s %s %s %s→%s", e.Type, e.Key, e.Env, e.PreviousVersion, e.Version))
	}
	return strings.Join(s, "; ")
}

func TestOutboxEventExistsIffChangeCommitted(t *testing.T) {
	e := threeVersions(t)
	h := e.addHook(t, index.NewHook{URL: "https://example.com/hook"})
	boom := errors.New("boom")
	err := e.update(t, func(ctx context.Context, tx *index.Tx) error {
		if _, err := tx.Rollback(ctx, "a", "v1", "alice"); err != nil {
			return err
		}
		return boom // the pointer change rolls back, and its event with it
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if ds := e.deliveries(t, h.ID); len(ds) != 0 {
		t.Fatalf("rolled-back change left events: %s", events(ds))
	}
	if err := e.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.Rollback(ctx, "a", "v1", "alice")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ds := e.deliveries(t, h.ID)
	if got, want := events(ds), "prompt.rolled_back a live v2→v1"; got != want {
		t.Fatalf("events = %q, want %q", got, want)
	}
	d := ds[0]
	if d.State != index.HookPending || !strings.HasPrefix(d.EventID, "msg_") || d.Event.Actor != "alice" || d.Event.AuditSeq == 0 ||
		d.Event.Commit != e.version(t, "a", "v1").Commit {
		t.Errorf("delivery = %+v", d)
	}
}

func TestOutboxEventTypesAndPreviousVersion(t *testing.T) {
	e := threeVersions(t)
	h := e.addHook(t, index.NewHook{URL: "https://example.com/hook"})
	steps := []func(ctx context.Context, tx *index.Tx) error{
		func(ctx context.Context, tx *index.Tx) error {
			_, err := tx.SetStaging(ctx, "b", "v1", "t")
			return err
		},
		func(ctx context.Context, tx *index.Tx) error { _, err := tx.Rollback(ctx, "a", "v1", "t"); return err },
		func(ctx context.Context, tx *index.Tx) error { _, err := tx.Promote(ctx, "a", "v2", "t"); return err },
		func(ctx context.Context, tx *index.Tx) error { _, err := tx.Promote(ctx, "a", "v2", "t"); return err }, // no change, no event
		func(ctx context.Context, tx *index.Tx) error { _, err := tx.ClearStaging(ctx, "b", "t"); return err },
	}
	for _, s := range steps {
		if err := e.update(t, s); err != nil {
			t.Fatal(err)
		}
	}
	e.g.Remove("prompts/b.yaml")
	e.g.Commit("drop b")
	e.sync(t) // push auto-promotion archives b
	want := "prompt.staging_set b staging →v1; prompt.rolled_back a live v2→v1; prompt.promoted a live v1→v2; " +
		"prompt.staging_cleared b staging v1→; prompt.archived b live v1→archived"
	if got := events(e.deliveries(t, h.ID)); got != want {
		t.Errorf("events =\n %s\nwant\n %s", got, want)
	}
}

func TestOutboxOneEventPerPromptOfAMultiPromptPromotion(t *testing.T) {
	e := threeVersions(t)
	h := e.addHook(t, index.NewHook{URL: "https://example.com/hook", Events: []string{index.EventPromoted}})
	e.g.Write("prompts/a.yaml", prompt("a4"))
	e.g.Write("prompts/b.yaml", prompt("b2"))
	e.g.Commit("a4 b2")
	e.sync(t)
	got := events(e.deliveries(t, h.ID))
	if got != "prompt.promoted a live v2→v4; prompt.promoted b live v1→v2" &&
		got != "prompt.promoted b live v1→v2; prompt.promoted a live v2→v4" {
		t.Errorf("events = %s", got)
	}
}

func TestOutboxFilterAndNoEarlierEvents(t *testing.T) {
	e := threeVersions(t) // bootstrap happened before any endpoint
	all := e.addHook(t, index.NewHook{URL: "http://example.com/all"})
	staging := e.addHook(t, index.NewHook{URL: "http://example.com/s", Events: []string{"prompt.staging_set, prompt.staging_cleared"}})
	if err := e.update(t, func(ctx context.Context, tx *index.Tx) error {
		if _, err := tx.Rollback(ctx, "a", "v1", "t"); err != nil {
			return err
		}
		_, err := tx.SetStaging(ctx, "a", "v2", "t")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := events(e.deliveries(t, all.ID)); got != "prompt.rolled_back a live v2→v1; prompt.staging_set a staging →v2" {
		t.Errorf("all: %s", got)
	}
	if got := events(e.deliveries(t, staging.ID)); got != "prompt.staging_set a staging →v2" {
		t.Errorf("staging filter: %s", got)
	}
	if len(staging.Events) != 2 || !strings.HasPrefix(staging.Secret, "whsec_") || len(staging.Secret) < len("whsec_")+32 {
		t.Errorf("created = %+v", staging)
	}
}

func TestAddHookRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	for _, n := range []index.NewHook{
		{URL: "ftp://example.com/x"},
		{URL: "file:///etc/passwd"},
		{URL: "/relative"},
		{URL: "http://"},
		{URL: "https://example.com/" + strings.Repeat("x", 3000)},
		{URL: "https://example.com", Events: []string{"prompt.exploded"}},
		{URL: "https://example.com", Format: "teams"},
		{URL: "https://example.com", Description: strings.Repeat("d", 600)},
	} {
		err := e.update(t, func(ctx context.Context, tx *index.Tx) error { _, err := tx.AddHook(ctx, n, "t"); return err })
		if !errors.Is(err, index.ErrInvalid) {
			t.Errorf("AddHook(%.60q) = %v, want ErrInvalid", n.URL+" "+n.Format+" "+strings.Join(n.Events, ","), err)
		}
	}
}

func TestRemoveHookAuditedAndGone(t *testing.T) {
	e := threeVersions(t)
	h := e.addHook(t, index.NewHook{URL: "https://hooks.slack.com/services/T0/B0/SECRETPATH", Format: index.FormatSlack})
	if err := e.update(t, func(ctx context.Context, tx *index.Tx) error { _, err := tx.Rollback(ctx, "a", "v1", "t"); return err }); err != nil {
		t.Fatal(err)
	}
	if err := e.update(t, func(ctx context.Context, tx *index.Tx) error { _, err := tx.RemoveHook(ctx, h.ID, "t"); return err }); err != nil {
		t.Fatal(err)
	}
	err := e.update(t, func(ctx context.Context, tx *index.Tx) error { _, err := tx.RemoveHook(ctx, h.ID, "t"); return err })
	if !errors.Is(err, index.ErrNotFound) {
		t.Errorf("second remove = %v", err)
	}
	log := e.audit(t)
	if log[0].Action != index.ActWebhookRemove || log[2].Action != index.ActWebhookAdd {
		t.Errorf("audit = %s", actions(log))
	}
	for _, a := range log {
		if strings.Contains(a.Detail, "SECRETPATH") {
			t.Errorf("audit row holds the Slack URL's secret path: %+v", a)
		}
	}
}

// Two processes (two index handles on one file) racing for one delivery:
// exactly one claims it.
func TestClaimIsExclusiveAcrossProcesses(t *testing.T) {
	e := threeVersions(t)
	h := e.addHook(t, index.NewHook{URL: "https://example.com/hook"})
	other := openDB(t, filepath.Join(e.dir, "index.db"))
	for round := range 20 {
		if err := e.update(t, func(ctx context.Context, tx *index.Tx) error {
			_, err := tx.Rollback(ctx, "a", "v1", "t")
			if err == nil {
				_, err = tx.Promote(ctx, "a", "v2", "t")
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		claimed := map[int64]int{}
		for _, db := range []*index.DB{e.db, other, e.db, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					var d index.HookDelivery
					var ok bool
					err := db.Update(context.Background(), func(tx *index.Tx) (err error) {
						now := time.Now().UnixMilli()
						d, ok, err = tx.Claim(context.Background(), h.ID, now, now+60_000)
						return err
					})
					if err != nil {
						t.Error(err)
						return
					}
					if !ok {
						return
					}
					mu.Lock()
					claimed[d.Seq]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(claimed) != 2 {
			t.Fatalf("round %d: claimed %v, want the round's 2 deliveries", round, claimed)
		}
		for seq, n := range claimed {
			if n != 1 {
				t.Fatalf("round %d: delivery %d claimed %d times", round, seq, n)
			}
		}
	}
}

func TestRecordAttemptRetriesThenFailsAndFlags(t *testing.T) {
	e := threeVersions(t)
	h := e.addHook(t, index.NewHook{URL: "https://example.com/hook"})
	if err := e.update(t, func(ctx context.Context, tx *index.Tx) error { _, err := tx.Rollback(ctx, "a", "v1", "t"); return err }); err != nil {
		t.Fatal(err)
	}
	claim := func() (d index.HookDelivery, ok bool) {
		t.Helper()
		if err := e.update(t, func(ctx context.Context, tx *index.Tx) (err error) {
			now := time.Now().UnixMilli()
			d, ok, err = tx.Claim(ctx, h.ID, now, now+60_000)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return d, ok
	}
	record := func(d index.HookDelivery, r index.AttemptResult) {
		t.Helper()
		if err := e.update(t, func(ctx context.Context, tx *index.Tx) error { return tx.RecordAttempt(ctx, d, r) }); err != nil {
			t.Fatal(err)
		}
	}
	d, ok := claim()
	if !ok {
		t.Fatal("nothing to claim")
	}
	if _, again := claim(); again {
		t.Fatal("a leased delivery was claimed again")
	}
	record(d, index.AttemptResult{At: time.Now(), Status: 500, Error: "HTTP 500", Next: time.Now().Add(-time.Millisecond)})
	d2, ok := claim()
	if !ok || d2.Seq != d.Seq || d2.Attempts != 2 || d2.EventID != d.EventID {
		t.Fatalf("retry claim = %+v, %v", d2, ok)
	}
	record(d2, index.AttemptResult{At: time.Now(), Error: "timeout"}) // out of retries
	var hooks []index.Hook
	var atts []index.HookAttempt
	if err := e.db.View(context.Background(), func(tx *index.Tx) (err error) {
		if hooks, err = tx.Hooks(context.Background()); err != nil {
			return err
		}
		atts, err = tx.HookAttempts(context.Background(), d.Seq)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !hooks[0].Failing || hooks[0].FailingSince == "" || len(atts) != 2 || atts[0].Status != 500 {
		t.Errorf("hook = %+v, attempts = %+v", hooks[0], atts)
	}
	if got := e.deliveries(t, h.ID)[0]; got.State != index.HookFailed {
		t.Errorf("state = %s", got.State)
	}
	// Redelivery: same event, pending again; a success clears the flag.
	if err := e.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.Redeliver(ctx, h.ID, d.Seq, "t")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	d3, ok := claim()
	if !ok || d3.EventID != d.EventID {
		t.Fatalf("redelivery claim = %+v %v", d3, ok)
	}
	record(d3, index.AttemptResult{At: time.Now(), Status: 204})
	if err := e.db.View(context.Background(), func(tx *index.Tx) (err error) {
		hooks, err = tx.Hooks(context.Background())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if hooks[0].Failing || hooks[0].FailingSince != "" || hooks[0].LastSuccessAt == "" || hooks[0].Pending != 0 {
		t.Errorf("after success hook = %+v", hooks[0])
	}
}
