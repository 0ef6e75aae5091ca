package index

import (
	"context"
	"database/sql"
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

// Watch calls fn with every change after seq `from`, in order, until ctx
// ends. It polls PRAGMA data_version on a connection of its own, which
// changes on any commit by another connection or process and costs about
// 2 µs, so a CLI write is seen within one interval without rereading tables.
//
// On PostgreSQL, LISTEN/NOTIFY replaces the poll (see watchPostgres) and
// interval is unused.
func (db *DB) Watch(ctx context.Context, from int64, interval time.Duration, fn func([]Change)) error {
	if db.pg != nil {
		return db.watchPostgres(ctx, from, fn)
	}
	conn, err := db.r.Conn(ctx)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer conn.Close()
	var last int64 = -1
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var v int64
		if err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch: data_version: %w", err)
		}
		if v != last {
			last = v
			changes, err := readChanges(ctx, conn, from)
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
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func readChanges(ctx context.Context, conn *sql.Conn, from int64) ([]Change, error) {
	var min int64
	if err := conn.QueryRowContext(ctx, "SELECT coalesce(min(seq), 0) FROM changes").Scan(&min); err != nil {
		return nil, err
	}
	rows, err := conn.QueryContext(ctx, "SELECT seq, kind, key FROM changes WHERE seq > ? ORDER BY seq", from)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Change
	if min > from+1 && from > 0 {
		out = append(out, Change{Seq: from, Kind: "reset"})
	}
	for rows.Next() {
		var c Change
		if err := rows.Scan(&c.Seq, &c.Kind, &c.Key); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
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
