package index_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/promptvault/promptvault/index"
)

// threeVersions builds a with v1..v3 (v3 invalid) and b with v1, synced.
func threeVersions(t *testing.T) *testEnv {
	t.Helper()
	e := newEnv(t)
	e.g.Write("prompts/a.yaml", prompt("a1"))
	e.g.Write("prompts/b.yaml", prompt("b1"))
	e.g.Commit("a1 b1")
	e.g.Write("prompts/a.yaml", prompt("a2"))
	e.g.Commit("a2")
	e.g.Write("prompts/a.yaml", "template: {{ broken\n")
	e.g.Commit("a3 (invalid)")
	e.sync(t)
	return e
}

func actions(entries []index.AuditEntry) string {
	var s []string
	for _, e := range entries {
		s = append(s, e.Action+":"+e.Key+":"+e.Version)
	}
	return strings.Join(s, " ")
}

func TestBootstrapMakesNewestValidVersionLive(t *testing.T) {
	e := threeVersions(t)
	if got := e.pointer(t, "a", index.EnvLive); got != "v2" {
		t.Errorf("a live = %s, want v2 (v3 is invalid)", got)
	}
	if got := e.pointer(t, "b", index.EnvLive); got != "v1" {
		t.Errorf("b live = %s", got)
	}
	if got := actions(e.audit(t)); got != "bootstrap:b:v1 bootstrap:a:v2" {
		t.Errorf("audit = %s", got)
	}
	// Bootstrap happens once: later syncs promote by the auto-promote rule.
	e.cfg.AutoPromote = index.AutoNone
	e.g.Write("prompts/a.yaml", prompt("a4"))
	e.g.Commit("a4")
	e.sync(t)
	if got := e.pointer(t, "a", index.EnvLive); got != "v2" {
		t.Errorf("with --auto-promote=none live moved to %s", got)
	}
}

func TestAutoPromotePushAllOrNothingPerCommit(t *testing.T) {
	e := newEnv(t)
	e.g.Write("prompts/a.yaml", prompt("a1"))
	e.g.Write("prompts/b.yaml", prompt("b1"))
	e.g.Write("prompts/c.yaml", prompt("c1"))
	e.g.Commit("first")
	e.sync(t)

	e.g.Write("prompts/a.yaml", prompt("a2"))
	e.g.Write("prompts/b.yaml", prompt("b2"))
	e.g.Commit("a2 b2")
	e.g.Write("prompts/a.yaml", prompt("a3"))
	e.g.Write("prompts/b.yaml", "template: ok\ntemperature: 9\n")
	e.g.Commit("a3 b3, b3 invalid")
	e.g.Remove("prompts/c.yaml")
	e.g.Commit("delete c")
	e.sync(t)

	if a, b := e.pointer(t, "a", index.EnvLive), e.pointer(t, "b", index.EnvLive); a != "v2" || b != "v2" {
		t.Errorf("live a=%s b=%s; want v2 v2 (the commit with an invalid b3 promotes nothing)", a, b)
	}
	if c := e.pointer(t, "c", index.EnvLive); c != index.LabelArchived {
		t.Errorf("c live = %s, want archived", c)
	}
	var refused []string
	for _, a := range e.audit(t) {
		if a.Action == index.ActPromotionRefused {
			refused = append(refused, a.Key+" "+a.Version)
		}
	}
	if strings.Join(refused, ",") != "b v3,a v3" {
		t.Errorf("refusals = %v", refused)
	}
}

func TestPromoteAndRollbackRules(t *testing.T) {
	e := threeVersions(t)
	ctx := context.Background()
	move := func(fn func(*index.Tx) (index.Result, error)) (index.Result, error) {
		var r index.Result
		err := e.db.Update(ctx, func(tx *index.Tx) (err error) { r, err = fn(tx); return err })
		return r, err
	}
	if _, err := move(func(tx *index.Tx) (index.Result, error) { return tx.Promote(ctx, "a", "v3", "t") }); !errors.Is(err, index.ErrInvalidVersion) {
		t.Errorf("promote invalid v3: %v", err)
	}
	if _, err := move(func(tx *index.Tx) (index.Result, error) { return tx.Promote(ctx, "a", "v9", "t") }); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("promote v9: %v", err)
	}
	if _, err := move(func(tx *index.Tx) (index.Result, error) { return tx.Promote(ctx, "nope", "v1", "t") }); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("promote unknown prompt: %v", err)
	}
	if _, err := move(func(tx *index.Tx) (index.Result, error) { return tx.Promote(ctx, "a", "latest", "t") }); !errors.Is(err, index.ErrInvalid) {
		t.Errorf("promote garbage label: %v", err)
	}
	if _, err := move(func(tx *index.Tx) (index.Result, error) { return tx.Rollback(ctx, "a", "v2", "t") }); !errors.Is(err, index.ErrInvalid) {
		t.Errorf("rollback to the live version itself: %v", err)
	}
	r, err := move(func(tx *index.Tx) (index.Result, error) { return tx.Rollback(ctx, "a", "v1", "cli:ada") })
	if err != nil || !r.Changed || r.From != "v2" || r.To != "v1" {
		t.Fatalf("rollback: %+v %v", r, err)
	}
	if _, err := move(func(tx *index.Tx) (index.Result, error) { return tx.Rollback(ctx, "a", "v2", "t") }); !errors.Is(err, index.ErrInvalid) ||
		!strings.Contains(err.Error(), "not older") {
		t.Errorf("rollback forward: %v", err)
	}
	if got := e.pointer(t, "a", index.EnvLive); got != "v1" {
		t.Errorf("a live = %s after refused moves", got)
	}
	// Newer versions stay and can be promoted again.
	if _, err := move(func(tx *index.Tx) (index.Result, error) { return tx.Promote(ctx, "a", "v2", "t") }); err != nil {
		t.Fatal(err)
	}
	r, err = move(func(tx *index.Tx) (index.Result, error) { return tx.Promote(ctx, "a", "v2", "t") })
	if err != nil || r.Changed {
		t.Errorf("promoting the live version again: %+v %v (want no change, no audit)", r, err)
	}
	log := e.audit(t)
	if log[0].Action != "promote" || log[1].Action != "rollback" || log[1].Actor != "cli:ada" || log[1].Version != "v1" ||
		log[1].Commit == "" || log[1].SHA256 == "" || log[1].Env != "live" || log[1].At == "" {
		t.Errorf("audit = %+v", log[:2])
	}
}

func TestStagingDraftsAndSettings(t *testing.T) {
	e := threeVersions(t)
	ctx := context.Background()
	e.g.Git("checkout", "-q", "-b", "exp")
	e.g.Write("prompts/a.yaml", prompt("a experimental"))
	e.g.Commit("experiment")
	e.g.Git("checkout", "-q", "main")
	e.sync(t)

	err := e.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.SetStaging(ctx, "a", "draft:exp", "t")
		return err
	})
	if err != nil || e.pointer(t, "a", index.EnvStaging) != "draft:exp" || e.pointer(t, "a", index.EnvLive) != "v2" {
		t.Fatalf("staging set draft: %v; staging=%s live=%s", err, e.pointer(t, "a", index.EnvStaging), e.pointer(t, "a", index.EnvLive))
	}
	err = e.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.SetStaging(ctx, "a", "v3", "t")
		return err
	})
	if !errors.Is(err, index.ErrInvalidVersion) {
		t.Errorf("staging an invalid version: %v", err)
	}

	// The draft follows its branch; an invalid rewrite leaves staging where it was.
	e.g.Git("checkout", "-q", "exp")
	e.g.Write("prompts/a.yaml", prompt("a experimental 2"))
	e.g.Commit("experiment 2")
	e.sync(t)
	var p index.Pointer
	e.db.View(ctx, func(tx *index.Tx) error { p, _, _ = tx.Pointer(ctx, "a", index.EnvStaging); return nil })
	if p.SHA256 != sum(prompt("a experimental 2")) {
		t.Errorf("staging did not follow the rewritten draft")
	}
	e.g.Write("prompts/a.yaml", "template: {% if %}\n")
	e.g.Commit("experiment 3, broken")
	e.sync(t)
	e.db.View(ctx, func(tx *index.Tx) error { p, _, _ = tx.Pointer(ctx, "a", index.EnvStaging); return nil })
	if p.SHA256 != sum(prompt("a experimental 2")) {
		t.Errorf("staging moved to an invalid draft")
	}
	if log := e.audit(t); log[0].Action != index.ActPromotionRefused || log[0].Env != "staging" {
		t.Errorf("invalid rewrite not audited: %+v", log[0])
	}
	e.g.Git("checkout", "-q", "main")

	// Staging off hides nothing away: pointers are kept and come back.
	e.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.SetStagingEnabled(ctx, false, "t")
		return err
	})
	err = e.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.SetStaging(ctx, "b", "v1", "t")
		return err
	})
	if !errors.Is(err, index.ErrConflict) {
		t.Errorf("staging set while disabled: %v", err)
	}
	err = e.update(t, func(ctx context.Context, tx *index.Tx) error { _, err := tx.ClearStaging(ctx, "a", "t"); return err })
	if !errors.Is(err, index.ErrConflict) {
		t.Errorf("staging clear while disabled: %v", err)
	}
	e.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.SetStagingEnabled(ctx, true, "t")
		return err
	})
	if got := e.pointer(t, "a", index.EnvStaging); got != "draft:exp" {
		t.Errorf("staging after off/on = %q", got)
	}

	// Deleting a published version is refused; deleting the staged draft clears staging.
	err = e.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.DeleteDraft(ctx, "a", "v1", "t")
		return err
	})
	if !errors.Is(err, index.ErrConflict) {
		t.Errorf("deleting v1: %v", err)
	}
	err = e.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.DeleteDraft(ctx, "a", "exp", "t")
		return err
	})
	if err != nil || e.pointer(t, "a", index.EnvStaging) != "" {
		t.Fatalf("delete draft: %v, staging=%q", err, e.pointer(t, "a", index.EnvStaging))
	}
	if got := actions(e.audit(t)[:2]); got != "draft_delete:a:draft:exp staging_clear:a:draft:exp" {
		t.Errorf("audit = %s", got)
	}
	// A deleted draft stays deleted until its branch moves.
	e.sync(t)
	if ps := e.prompts(t); ps["a"].Drafts != 0 {
		t.Errorf("deleted draft came back without a new push")
	}
	e.g.Git("checkout", "-q", "exp")
	e.g.Write("prompts/a.yaml", prompt("a experimental 4"))
	e.g.Commit("experiment 4")
	e.g.Git("checkout", "-q", "main")
	e.sync(t)
	if ps := e.prompts(t); ps["a"].Drafts != 1 {
		t.Errorf("a new push did not recreate the draft")
	}
	// Staging on a draft whose branch is deleted is cleared.
	e.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.SetStaging(ctx, "a", "draft:exp", "t")
		return err
	})
	e.g.Git("branch", "-q", "-D", "exp")
	e.sync(t)
	if got := e.pointer(t, "a", index.EnvStaging); got != "" {
		t.Errorf("staging still on an ended draft: %s", got)
	}
}

func TestKeysAreHashedAndRevocable(t *testing.T) {
	e := newEnv(t)
	var k index.CreatedKey
	err := e.update(t, func(ctx context.Context, tx *index.Tx) (err error) {
		k, err = tx.CreateKey(ctx, "test", "ci", "t")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^pv_test_[0-9A-Za-z]{32,}$`).MatchString(k.Key) || !strings.HasPrefix(k.Key, k.Prefix) {
		t.Fatalf("key %q prefix %q", k.Key, k.Prefix)
	}
	if env, ok := index.KeyEnv(k.Key); !ok || env != "test" {
		t.Errorf("KeyEnv = %s %v", env, ok)
	}
	for _, bad := range []string{"", "pv_test_short", "pv_live_" + strings.Repeat("!", 40), "Bearer x", "pv_root_" + strings.Repeat("a", 40)} {
		if _, ok := index.KeyEnv(bad); ok {
			t.Errorf("KeyEnv accepted %q", bad)
		}
	}
	err = e.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.CreateKey(ctx, "root", "", "t")
		return err
	})
	if !errors.Is(err, index.ErrInvalid) {
		t.Errorf("bad env: %v", err)
	}
	raw := dumpRaw(t, e.db, "SELECT * FROM api_keys")
	if strings.Contains(raw, k.Key) || !strings.Contains(raw, index.HashKey(k.Key)) {
		t.Errorf("the key itself is stored, or its hash is not: %s", raw)
	}
	err = e.update(t, func(ctx context.Context, tx *index.Tx) error { _, err := tx.RevokeKey(ctx, k.ID, "t"); return err })
	if err != nil {
		t.Fatal(err)
	}
	err = e.update(t, func(ctx context.Context, tx *index.Tx) error {
		_, err := tx.RevokeKey(ctx, "key_nope", "t")
		return err
	})
	if !errors.Is(err, index.ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
	if got := actions(e.audit(t)); got != "key_revoke:: key_create::" {
		t.Errorf("audit = %s", got)
	}
}

func TestAuditIsAppendOnlyAndPaged(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 5; i++ {
		e.update(t, func(ctx context.Context, tx *index.Tx) error {
			_, err := tx.CreateKey(ctx, "live", "", "t")
			return err
		})
	}
	ctx := context.Background()
	var page1, page2 []index.AuditEntry
	e.db.View(ctx, func(tx *index.Tx) (err error) {
		page1, _ = tx.AuditLog(ctx, 0, 3)
		page2, err = tx.AuditLog(ctx, page1[len(page1)-1].Seq, 3)
		return err
	})
	if len(page1) != 3 || len(page2) != 2 || page1[0].Seq != 5 || page2[1].Seq != 1 {
		t.Errorf("pages: %v / %v", page1, page2)
	}
	db := index.Raw(e.db)
	if _, err := db.Exec("UPDATE audit SET actor = 'mallory'"); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("audit update: %v", err)
	}
	if _, err := db.Exec("DELETE FROM audit"); err == nil {
		t.Errorf("audit delete allowed")
	}
}

func TestConcurrentPromotionsFromTwoHandles(t *testing.T) {
	e := threeVersions(t)
	other := openDB(t, e.target) // as a second process would
	ctx := context.Background()
	var wg sync.WaitGroup
	for i, db := range []*index.DB{e.db, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				label := []string{"v1", "v2"}[(i+j)%2]
				err := db.Update(ctx, func(tx *index.Tx) error { _, err := tx.Promote(ctx, "a", label, "t"); return err })
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	log := e.audit(t)
	var last index.AuditEntry
	for _, a := range log {
		if a.Key == "a" && a.Env == "live" {
			last = a
			break
		}
	}
	if got := e.pointer(t, "a", index.EnvLive); got != last.Version {
		t.Errorf("live = %s but the newest audit row says %s", got, last.Version)
	}
}
