// Package index is promptvault's state: every version, draft, pointer, key,
// setting, audit row and accepted webhook delivery, in one SQLite file or in
// a PostgreSQL database that several instances share. Only index writes it,
// through one API on both engines; their SQL differences stay in sqlite.go
// and postgres.go. Indexing (Sync) turns the Git mirror's history into
// numbered versions; promotion rules are checked inside the transaction that
// moves a pointer, so the worker, admin API and CLI agree.
package index

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors, detected here and mapped to statuses by resolver.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid request")
)

// Migrations are numbered .sql files, one folder per engine
// (migrations/sqlite, migrations/postgres), with the same numbers in both.
//
//go:embed migrations
var migrations embed.FS

// Options tune the connection pools; zero values keep the defaults.
type Options struct {
	// MaxConns caps the read pool (SQLite) or the whole pool (PostgreSQL,
	// readers plus writers).
	MaxConns int
	// ConnectTimeout bounds dialling PostgreSQL (SQLite: unused).
	ConnectTimeout time.Duration
	// StatementTimeout bounds each PostgreSQL statement (0: none).
	StatementTimeout time.Duration
}

// DB is the open index: writers and a pool of readers on one engine. Every
// SQL difference between SQLite and PostgreSQL stays behind it (see
// sqlite.go and postgres.go); the rest of index is one code path.
type DB struct {
	w    *sql.DB
	r    *sql.DB
	path string // SQLite file; "" on PostgreSQL
	pg   *pgState
}

// Open opens (creating and migrating if needed) the index at target: a
// postgres:// (or postgresql://) URL, or else the path of a SQLite file.
func Open(ctx context.Context, target string, opts ...Options) (*DB, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if IsPostgres(target) {
		return openPostgres(ctx, target, o)
	}
	return openSQLite(ctx, target, o)
}

// IsPostgres reports whether target names a PostgreSQL database.
func IsPostgres(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
}

// Path is the SQLite file the index lives in ("" on PostgreSQL).
func (db *DB) Path() string { return db.path }

// Engine is "sqlite" or "postgres".
func (db *DB) Engine() string {
	if db.pg != nil {
		return "postgres"
	}
	return "sqlite"
}

// Close closes both pools.
func (db *DB) Close() error {
	return errors.Join(db.r.Close(), db.w.Close())
}

// Tx is a transaction handed to Update and View callbacks.
type Tx struct {
	tx    *sql.Tx
	db    *DB
	write bool
	// changed: the transaction wrote the change feed, so PostgreSQL
	// listeners are notified when it commits.
	changed bool
	// stmts caches prepared statements for the transaction's life: a sync
	// batch runs the same few statements tens of thousands of times, and
	// preparing each time was most of its write cost on SQLite. (pgx caches
	// prepared statements per connection by itself.)
	stmts map[string]*sql.Stmt
}

func (tx *Tx) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := tx.stmts[q]; ok {
		return st, nil
	}
	st, err := tx.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if tx.stmts == nil {
		tx.stmts = map[string]*sql.Stmt{}
	}
	tx.stmts[q] = st
	return st, nil
}

func (tx *Tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	args = bindArgs(args)
	if tx.db.pg != nil {
		return tx.tx.ExecContext(ctx, tx.db.pg.rebind(q), args...)
	}
	st, err := tx.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (tx *Tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	args = bindArgs(args)
	if tx.db.pg != nil {
		return tx.tx.QueryContext(ctx, tx.db.pg.rebind(q), args...)
	}
	st, err := tx.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// row is a *sql.Row or a prepare error, scanned the same way.
type row struct {
	r   *sql.Row
	err error
}

func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.r.Scan(dest...)
}

func (tx *Tx) queryRow(ctx context.Context, q string, args ...any) row {
	args = bindArgs(args)
	if tx.db.pg != nil {
		return row{r: tx.tx.QueryRowContext(ctx, tx.db.pg.rebind(q), args...)}
	}
	st, err := tx.prepared(ctx, q)
	if err != nil {
		return row{err: err}
	}
	return row{r: st.QueryRowContext(ctx, args...)}
}

// bindArgs makes arguments mean the same on both engines: booleans are
// stored as 0/1 integers (SQLite has no boolean type, and pgx will not put
// a Go bool into an integer column), and text is valid UTF-8 without NUL
// (PostgreSQL refuses anything else, and Git hands us commit messages and
// paths in any bytes). It copies args only when something changes.
func bindArgs(args []any) []any {
	var out []any
	for i, a := range args {
		var v any
		switch x := a.(type) {
		case bool:
			v = int64(0)
			if x {
				v = int64(1)
			}
		case string:
			if utf8.ValidString(x) && strings.IndexByte(x, 0) < 0 {
				continue
			}
			v = strings.ReplaceAll(strings.ToValidUTF8(x, "\uFFFD"), "\x00", "\uFFFD")
		default:
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = v
	}
	if out == nil {
		return args
	}
	return out
}

// scanner is a *sql.Rows or a row, as the scan functions see them.
type scanner interface{ Scan(...any) error }

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, tx *Tx, scan func(scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func scanString(sc scanner) (s string, err error) {
	err = sc.Scan(&s)
	return s, err
}

// queryStrings runs a query of one text column and returns its values.
func (tx *Tx) queryStrings(ctx context.Context, q string, args ...any) ([]string, error) {
	return queryAll(ctx, tx, scanString, q, args...)
}

// insertSeq runs an INSERT … RETURNING seq and returns the new row's seq
// (pgx has no LastInsertId; both engines have RETURNING).
func (tx *Tx) insertSeq(ctx context.Context, q string, args ...any) (int64, error) {
	var seq int64
	err := tx.queryRow(ctx, q+" RETURNING seq", args...).Scan(&seq)
	return seq, err
}

// Update runs fn in one write transaction; fn's error rolls it back. Writes
// are serialised across processes and instances: SQLite by BEGIN IMMEDIATE
// on the one writer connection, PostgreSQL by a transaction-level advisory
// lock taken first thing (so sequence numbers are handed out in commit
// order, which the change feed and event ids rely on).
func (db *DB) Update(ctx context.Context, fn func(*Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	t := &Tx{tx: tx, db: db, write: true}
	if db.pg != nil {
		if err := db.pg.lockWriter(ctx, tx); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
	}
	if err := fn(t); err != nil {
		return err
	}
	if db.pg != nil && t.changed {
		if err := db.pg.notifyCommit(ctx, tx); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// View runs fn in one read transaction, a consistent snapshot.
func (db *DB) View(ctx context.Context, fn func(*Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.pg != nil {
		// SQLite read transactions are snapshots already; PostgreSQL's
		// default READ COMMITTED would let two queries see different data.
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.r.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(&Tx{tx: tx, db: db})
}

// migrate applies the embedded numbered migrations of the engine's folder,
// each in its own write transaction (so instances starting together apply
// each once), recording the level the engine's way.
func (db *DB) migrate(ctx context.Context) error {
	// A migration left in the old flat folder would silently never run.
	if stray, _ := fs.Glob(migrations, "migrations/*.sql"); len(stray) > 0 {
		return fmt.Errorf("migration %s: migrations live in migrations/sqlite/ and migrations/postgres/ now", stray[0])
	}
	names, err := fs.Glob(migrations, "migrations/"+db.Engine()+"/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := path.Base(name)
		n, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: bad name", base)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		err = db.Update(ctx, func(tx *Tx) error {
			cur, err := db.schemaVersion(ctx, tx)
			if err != nil {
				return err
			}
			if cur >= n {
				return nil
			}
			// A migration is a script of several statements: exec it
			// directly (a prepared statement would hold only the first;
			// pgx runs an argument-less Exec over the simple protocol).
			if _, err := tx.tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("migration %s: %w", base, err)
			}
			return db.setSchemaVersion(ctx, tx, n)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Meta reads a remembered setting ("" when unset).
func (tx *Tx) Meta(ctx context.Context, name string) (string, error) {
	var v string
	err := tx.queryRow(ctx, "SELECT value FROM meta WHERE name = ?", name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

// SetMeta remembers a setting.
func (tx *Tx) SetMeta(ctx context.Context, name, value string) error {
	_, err := tx.exec(ctx, `INSERT INTO meta(name, value) VALUES(?, ?)
		ON CONFLICT(name) DO UPDATE SET value = excluded.value`, name, value)
	return err
}
