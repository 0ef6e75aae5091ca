package index_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/promptvault/promptvault/index"
)

func TestSessions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var keyID string
	if err := e.update(t, func(ctx context.Context, tx *index.Tx) error {
		k, err := tx.CreateKey(ctx, index.KeyAdmin, "", "t")
		keyID = k.ID
		return err
	}); err != nil {
		t.Fatal(err)
	}
	create := func(hash string, expires time.Time, max int) {
		t.Helper()
		if err := e.update(t, func(ctx context.Context, tx *index.Tx) error {
			return tx.CreateSession(ctx, index.Session{TokenHash: hash, KeyID: keyID, CSRF: "c-" + hash, Expires: expires}, max)
		}); err != nil {
			t.Fatal(err)
		}
	}
	lookup := func(hash string) (s index.Session, ok, revoked bool) {
		t.Helper()
		if err := e.db.View(ctx, func(tx *index.Tx) (err error) {
			s, ok, revoked, err = tx.Session(ctx, hash)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return s, ok, revoked
	}
	count := func() (n int) {
		t.Helper()
		e.db.View(ctx, func(tx *index.Tx) (err error) { n, err = tx.CountSessions(ctx); return err })
		return n
	}

	later := time.Now().Add(time.Hour)
	create("h1", later, 10)
	if s, ok, _ := lookup("h1"); !ok || s.KeyID != keyID || s.CSRF != "c-h1" || s.Expires.UnixMilli() != later.UnixMilli() {
		t.Errorf("h1 = %+v %v", s, ok)
	}
	if _, ok, _ := lookup("nope"); ok {
		t.Error("unknown hash found")
	}
	create("old", time.Now().Add(-time.Second), 10)
	if _, ok, _ := lookup("old"); ok {
		t.Error("expired session served")
	}
	create("h2", later, 10) // drops the expired one
	if n := count(); n != 2 {
		t.Errorf("%d sessions after an expired one was swept, want 2", n)
	}

	for i := range 20 {
		create(fmt.Sprintf("flood%02d", i), later.Add(time.Duration(i)*time.Minute), 5)
	}
	if n := count(); n > 5 {
		t.Errorf("%d sessions kept, bound 5", n)
	}
	if _, ok, _ := lookup("flood19"); !ok {
		t.Error("the newest session was dropped by the bound")
	}

	if err := e.update(t, func(ctx context.Context, tx *index.Tx) error { _, err := tx.RevokeKey(ctx, keyID, "t"); return err }); err != nil {
		t.Fatal(err)
	}
	if _, ok, revoked := lookup("flood19"); ok || !revoked {
		t.Errorf("session after its key's revocation: ok %v, revoked %v", ok, revoked)
	}
	create("h3", later, 5)
	if err := e.update(t, func(ctx context.Context, tx *index.Tx) error { return tx.DeleteSession(ctx, "h3") }); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := lookup("h3"); ok {
		t.Error("signed-out session served")
	}
}
