package index

import (
	"context"
	"fmt"
	"time"
)

// Change is one row of the change feed. Kind "reset" means the reader fell
// behind trimmed history and must reload everything.
type Change struct {
	Seq  int64
	Kind string
	Key  string
}

// keepChanges is how many change rows survive a trim.
const keepChanges = 10000

// LastChange returns the newest change sequence number (0 when none).
func (tx *Tx) LastChange(ctx context.Context) (int64, error) {
	var seq int64
	err := tx.queryRow(ctx, "SELECT coalesce(max(seq), 0) FROM changes").Scan(&seq)
	return seq, err
}

// TrimChanges drops change rows older than the newest keepChanges.
func (tx *Tx) TrimChanges(ctx context.Context) error {
	_, err := tx.exec(ctx, "DELETE FROM changes WHERE seq <= (SELECT max(seq) FROM changes) - ?", keepChanges)
	return err
}

// DefaultWatchFallback is how long Watch waits for a wake-up before it
// checks anyway: wake-ups are the fast path, this only bounds how late a
// change is seen if one is lost.
const DefaultWatchFallback = time.Second

// pollWithoutNotifier is the check interval when the engine's wake-up
// mechanism is unavailable (inotify instances exhausted, say), so changes
// still arrive within the 50 ms the read path promises.
const pollWithoutNotifier = 20 * time.Millisecond

// After a wake-up Watch keeps checking every settleEvery for settleWindow:
// the WAL write that wakes it precedes the commit's fsync and the WAL index
// update that data_version reads (and a second transaction may be writing
// behind the first), so the commit that caused the wake-up can become
// visible only later. About 100 checks of 2 µs per burst of writes.
const (
	settleEvery  = 5 * time.Millisecond
	settleWindow = 500 * time.Millisecond
)

// WatchOptions tunes Watch.
type WatchOptions struct {
	// Fallback bounds the wait between checks when no wake-up arrives
	// (DefaultWatchFallback when 0).
	Fallback time.Duration
	// Wake, when it receives, makes Watch check at once (a caller that
	// knows it must catch up, such as a server declaring itself ready).
	Wake <-chan struct{}
}

// notifier is how Watch learns that another connection or process may have
// committed. Each engine has one; Watch itself is engine-neutral.
type notifier interface {
	// C receives after a possible commit elsewhere; it may fire
	// spuriously. A nil channel means no wake-ups: Watch polls.
	C() <-chan struct{}
	// Changed cheaply reports whether anything was committed since its
	// previous call (the first call reports true).
	Changed(ctx context.Context) (bool, error)
	Close() error
}

// Watch calls fn with every change after seq from, in order, until ctx
// ends. It sleeps until the engine's notifier wakes it (SQLite: inotify on
// the database's WAL, confirmed by PRAGMA data_version), Wake receives or
// Fallback passes, so an idle server costs nothing while a CLI write is
// seen within milliseconds.
//
// On PostgreSQL, LISTEN/NOTIFY wakes it (see watchPostgres, which keeps its
// own one-second catch-up and reconnects; opts is unused there).
func (db *DB) Watch(ctx context.Context, from int64, opts WatchOptions, fn func([]Change)) error {
	if db.pg != nil {
		return db.watchPostgres(ctx, from, fn)
	}
	n, err := db.newNotifier(ctx)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer n.Close()
	wait := opts.Fallback
	if wait <= 0 {
		wait = DefaultWatchFallback
	}
	if n.C() == nil {
		wait = min(wait, pollWithoutNotifier)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	settleUntil := time.Now().Add(settleWindow)
	for {
		changed, err := n.Changed(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch: %w", err)
		}
		if changed {
			var changes []Change
			err := db.View(ctx, func(tx *Tx) (err error) {
				changes, err = tx.ChangesSince(ctx, from)
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("watch: %w", err)
			}
			if len(changes) > 0 {
				from = changes[len(changes)-1].Seq
				fn(changes)
			}
		}
		next := wait
		if time.Now().Before(settleUntil) {
			next = settleEvery
		}
		t.Reset(next)
		select {
		case <-ctx.Done():
			return nil
		case <-n.C():
			settleUntil = time.Now().Add(settleWindow)
		case <-opts.Wake:
			settleUntil = time.Now().Add(settleWindow)
		case <-t.C:
		}
	}
}

// ChangesSince returns the changes after seq from, in order (a "reset"
// first when rows after from were already trimmed).
func (tx *Tx) ChangesSince(ctx context.Context, from int64) ([]Change, error) {
	var min int64
	if err := tx.queryRow(ctx, "SELECT coalesce(min(seq), 0) FROM changes").Scan(&min); err != nil {
		return nil, err
	}
	var out []Change
	if min > from+1 && from > 0 {
		out = append(out, Change{Seq: from, Kind: "reset"})
	}
	rest, err := queryAll(ctx, tx, func(sc scanner) (c Change, err error) {
		err = sc.Scan(&c.Seq, &c.Kind, &c.Key)
		return c, err
	}, "SELECT seq, kind, key FROM changes WHERE seq > ? ORDER BY seq", from)
	return append(out, rest...), err
}
