package index

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"
)

// sqliteNotifier wakes Watch on inotify events for the database file and its
// WAL (every commit, by any process, writes the WAL) and confirms with
// PRAGMA data_version on a connection of its own, which changes on any
// commit by another connection or process and costs about 2 µs. Watching
// the directory rather than the files survives the WAL being deleted and
// recreated when the last connection closes.
type sqliteNotifier struct {
	conn *sql.Conn
	w    *fsnotify.Watcher // nil: inotify unavailable, Watch polls
	c    chan struct{}
	done chan struct{}
	last int64
}

var _ notifier = (*sqliteNotifier)(nil)

func (db *DB) newNotifier(ctx context.Context) (notifier, error) {
	conn, err := db.r.Conn(ctx)
	if err != nil {
		return nil, err
	}
	n := &sqliteNotifier{conn: conn, last: -1, done: make(chan struct{})}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(db.path)); err != nil {
			w.Close()
		}
	}
	if err != nil {
		// No inotify (instances exhausted, an unsupported file system):
		// Watch falls back to polling data_version, still correct.
		return n, nil
	}
	n.w = w
	n.c = make(chan struct{}, 1)
	base := filepath.Base(db.path)
	go n.forward(base)
	return n, nil
}

// forward turns file events on the database into wake-ups. A lost or
// overflowing event queue is a wake-up too: better one check too many.
func (n *sqliteNotifier) forward(base string) {
	defer close(n.done)
	for {
		select {
		case ev, ok := <-n.w.Events:
			if !ok {
				return
			}
			if name := filepath.Base(ev.Name); name == base || strings.HasPrefix(name, base+"-") {
				n.tickle()
			}
		case _, ok := <-n.w.Errors:
			if !ok {
				return
			}
			n.tickle()
		}
	}
}

func (n *sqliteNotifier) tickle() {
	select {
	case n.c <- struct{}{}:
	default:
	}
}

func (n *sqliteNotifier) C() <-chan struct{} { return n.c }

func (n *sqliteNotifier) Changed(ctx context.Context) (bool, error) {
	var v int64
	if err := n.conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
		return false, fmt.Errorf("data_version: %w", err)
	}
	changed := v != n.last
	n.last = v
	return changed, nil
}

func (n *sqliteNotifier) Close() error {
	if n.w != nil {
		n.w.Close()
		<-n.done
	}
	return n.conn.Close()
}
