package index_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/promptvault/promptvault/index"
)

// A write through another handle (another process or instance) reaches a
// watcher: woken by inotify on the WAL and confirmed by data_version on
// SQLite, by NOTIFY on PostgreSQL. The fallback check is set past the
// failure bound, so only a wake-up can pass.
func TestWatchSeesWritesFromAnotherHandle(t *testing.T) {
	e := threeVersions(t)
	other := openDB(t, e.target)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var from int64
	if err := e.db.View(ctx, func(tx *index.Tx) (err error) { from, err = tx.LastChange(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	got := make(chan index.Change, 16)
	done := make(chan error, 1)
	go func() {
		done <- e.db.Watch(ctx, from, index.WatchOptions{Fallback: time.Hour}, func(cs []index.Change) {
			for _, c := range cs {
				got <- c
			}
		})
	}()
	for _, label := range []string{"v1", "v2"} {
		err := other.Update(ctx, func(tx *index.Tx) error { _, err := tx.Promote(ctx, "a", label, "t"); return err })
		if err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-got:
			if c.Kind != index.ChangePointer || c.Key != "a" || c.Seq <= from {
				t.Fatalf("change = %+v after %d", c, from)
			}
			from = c.Seq
		case err := <-done:
			t.Fatalf("watch ended: %v", err)
		case <-time.After(30 * time.Second): // a failure bound, not a latency claim
			t.Fatalf("promotion to %s from another handle never seen", label)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch: %v", err)
	}
}

// Text that PostgreSQL refuses (invalid UTF-8, NUL) is stored the same
// repaired way on both engines rather than failing a sync on one of them.
func TestHostileTextIsStoredTheSameOnBothEngines(t *testing.T) {
	e := newEnv(t)
	e.g.Write("prompts/a.yaml", prompt("a1"))
	e.g.Git("add", "-A")
	e.g.Git("-c", "i18n.commitEncoding=latin1", "commit", "-q", "-m", "caf\xe9 na\xefve")
	e.g.Write("prompts/b\xff.yaml", prompt("bad name"))
	e.g.Commit("a file whose name is not UTF-8")
	e.sync(t)
	if got := e.version(t, "a", "v1").Message; got != "caf\uFFFD na\uFFFDve" {
		t.Errorf("message = %q", got)
	}
	var skipped []index.SkippedFile
	e.db.View(context.Background(), func(tx *index.Tx) (err error) { skipped, err = tx.Skipped(context.Background()); return err })
	if len(skipped) != 1 || !strings.Contains(skipped[0].Path, "\uFFFD") {
		t.Errorf("skipped = %+v", skipped)
	}
}
