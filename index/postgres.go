package index

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Advisory lock classes (the first key of PostgreSQL's two-key advisory
// locks); the second key is a hash of the schema, so registries in
// different schemas of one database never wait on each other.
const (
	lockClassWriter = 0x7076_0001 // transaction-level: one writer at a time
	lockClassLeader = 0x7076_0002 // session-level: the instance that syncs
	lockClassSync   = 0x7076_0003 // session-level: one sync at a time
)

// pgState is what the PostgreSQL engine needs beyond two database/sql pools.
type pgState struct {
	cfg     *pgx.ConnConfig // for dedicated connections (LISTEN, leader lock)
	schema  string
	key     int32  // second advisory lock key: the schema's hash
	channel string // NOTIFY channel of this schema's change feed

	rebinds sync.Map // query with ? → query with $n
}

func openPostgres(ctx context.Context, url string, o Options) (*DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	if o.ConnectTimeout > 0 {
		cfg.ConnectTimeout = o.ConnectTimeout
	}
	if o.StatementTimeout > 0 {
		cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(o.StatementTimeout.Milliseconds(), 10)
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	pg := &pgState{cfg: cfg}
	n := 8
	if o.MaxConns > 0 {
		n = o.MaxConns
	}
	// Writers queue on the advisory lock, so more than a few writer
	// connections would only hold connections while waiting.
	nw := max(1, min(4, n/2))
	w := stdlib.OpenDB(*cfg.Copy())
	w.SetMaxOpenConns(nw)
	w.SetMaxIdleConns(nw)
	r := stdlib.OpenDB(*cfg.Copy())
	r.SetMaxOpenConns(max(1, n-nw))
	r.SetMaxIdleConns(max(1, n-nw))
	// Connections are reused for at most a few minutes, so a failover of
	// the server behind a DNS name is picked up.
	w.SetConnMaxLifetime(5 * time.Minute)
	r.SetConnMaxLifetime(5 * time.Minute)
	db := &DB{w: w, r: r, pg: pg}
	var schema sql.NullString
	if err := w.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open index %s: %w", where, err)
	}
	if !schema.Valid {
		db.Close()
		return nil, fmt.Errorf("open index %s: no schema on the search_path exists (create it, or fix search_path)", where)
	}
	pg.schema = schema.String
	h := fnv.New32a()
	h.Write([]byte(pg.schema))
	pg.key = int32(h.Sum32())
	pg.channel = fmt.Sprintf("pv_changes_%08x", h.Sum32())
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open index %s: %w", where, err)
	}
	return db, nil
}

// rebind turns the ? placeholders index writes into PostgreSQL's $1, $2, …,
// leaving ? inside quoted literals, quoted identifiers and comments alone.
func (pg *pgState) rebind(q string) string {
	if v, ok := pg.rebinds.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(q[i+1:], c)
			if j < 0 {
				b.WriteString(q[i:])
				i = len(q)
				continue
			}
			b.WriteString(q[i : i+j+2])
			i += j + 1
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i - 1
			}
			b.WriteString(q[i : i+j+1])
			i += j
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	s := b.String()
	pg.rebinds.Store(q, s)
	return s
}

// lockWriter makes tx the only writer of this schema until it ends.
func (pg *pgState) lockWriter(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockClassWriter, pg.key)
	return err
}

// notifyCommit queues a notification that PostgreSQL delivers to every
// listening instance when (and only if) tx commits.
func (pg *pgState) notifyCommit(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "SELECT pg_notify($1, '')", pg.channel)
	return err
}

func (pg *pgState) schemaVersion(ctx context.Context, tx *Tx) (int, error) {
	// Created here, not by a migration: it records which migrations ran.
	// The writer lock is held, so instances starting together do not race.
	if _, err := tx.tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, at TEXT NOT NULL)"); err != nil {
		return 0, err
	}
	var cur int
	err := tx.tx.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&cur)
	return cur, err
}

func (pg *pgState) setSchemaVersion(ctx context.Context, tx *Tx, n int) error {
	_, err := tx.tx.ExecContext(ctx, "INSERT INTO schema_migrations(version, at) VALUES($1, $2)", n, now())
	return err
}

// pgCatchUp is how often a listening instance rereads the change feed even
// without a notification: the safety net under LISTEN/NOTIFY.
const pgCatchUp = time.Second

// watchPostgres is Watch on PostgreSQL: a dedicated connection LISTENs on
// the schema's channel; every notification (sent by each committing write
// that touched the change feed), every catch-up tick and every reconnect
// rereads the feed from the last seen sequence number, so notifications
// lost while the connection was down cost at most one catch-up interval.
func (db *DB) watchPostgres(ctx context.Context, from int64, fn func([]Change)) error {
	backoff := 50 * time.Millisecond
	for {
		err := db.listen(ctx, &from, fn)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			backoff = 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (db *DB) listen(ctx context.Context, from *int64, fn func([]Change)) error {
	conn, err := pgx.ConnectConfig(ctx, db.pg.cfg.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{db.pg.channel}.Sanitize()); err != nil {
		return err
	}
	read := func() error {
		cs, err := db.changesSince(ctx, *from)
		if err != nil {
			return err
		}
		if len(cs) > 0 {
			*from = cs[len(cs)-1].Seq
			fn(cs)
		}
		return nil
	}
	for {
		if err := read(); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, pgCatchUp)
		_, err := conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && (!timedOut || conn.IsClosed()) {
			return err
		}
	}
}

// changesSince reads the change feed after from in one snapshot.
func (db *DB) changesSince(ctx context.Context, from int64) (out []Change, err error) {
	err = db.View(ctx, func(tx *Tx) (err error) {
		out, err = tx.ChangesSince(ctx, from)
		return err
	})
	return out, err
}
