// Package index is promptvault's state: one SQLite file with every version,
// draft, pointer, key, setting, audit row and accepted webhook delivery.
// Only index writes it. Indexing (Sync) turns the Git mirror's history into
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
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Sentinel errors, detected here and mapped to statuses by resolver.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid request")
)

// The writer serialises every write of this process; _txlock=immediate makes
// a second process (CLI beside serve) queue on busy_timeout instead of failing
// on a lock upgrade. synchronous=FULL because a 202 to GitHub promises the
// delivery is on disk.
const (
	writerDSN = "file:%s?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)&_txlock=immediate"
	readerDSN = "file:%s?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=query_only(1)"
)

// Migrations are numbered .sql files, one folder per engine
// (migrations/sqlite, migrations/postgres), with the same numbers in both.
//
//go:embed migrations
var migrations embed.FS

// DB is the open index: one writer connection and a pool of readers.
type DB struct {
	w    *sql.DB
	r    *sql.DB
	path string
}

// Open opens (creating and migrating if needed) the index file at path.
func Open(ctx context.Context, path string) (*DB, error) {
	esc := (&url.URL{Path: path}).EscapedPath()
	w, err := sql.Open("sqlite", fmt.Sprintf(writerDSN, esc))
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	db := &DB{w: w, path: path}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", fmt.Sprintf(readerDSN, esc))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	db.r = r
	return db, nil
}

// Path is the file the index lives in.
func (db *DB) Path() string { return db.path }

// Close closes both pools.
func (db *DB) Close() error {
	return errors.Join(db.r.Close(), db.w.Close())
}

// Tx is a transaction handed to Update and View callbacks.
type Tx struct {
	tx    *sql.Tx
	write bool
	// stmts caches prepared statements for the transaction's life: a sync
	// batch runs the same few statements tens of thousands of times, and
	// preparing each time was most of its write cost.
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
	st, err := tx.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (tx *Tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
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
	st, err := tx.prepared(ctx, q)
	if err != nil {
		return row{err: err}
	}
	return row{r: st.QueryRowContext(ctx, args...)}
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

// Update runs fn in one write transaction; fn's error rolls it back.
func (db *DB) Update(ctx context.Context, fn func(*Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(&Tx{tx: tx, write: true}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// View runs fn in one read transaction, a consistent snapshot.
func (db *DB) View(ctx context.Context, fn func(*Tx) error) error {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(&Tx{tx: tx})
}

// migrate applies the embedded numbered migrations, each in its own
// transaction, recording the level in PRAGMA user_version.
func (db *DB) migrate(ctx context.Context) error {
	// A migration left in the old flat folder would silently never run.
	if stray, _ := fs.Glob(migrations, "migrations/*.sql"); len(stray) > 0 {
		return fmt.Errorf("migration %s: migrations live in migrations/sqlite/ and migrations/postgres/ now", stray[0])
	}
	names, err := fs.Glob(migrations, "migrations/sqlite/*.sql")
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
			var cur int
			if err := tx.queryRow(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
				return err
			}
			if cur >= n {
				return nil
			}
			// A migration is a script of several statements: exec it
			// directly (a prepared statement would hold only the first).
			if _, err := tx.tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("migration %s: %w", base, err)
			}
			_, err := tx.exec(ctx, fmt.Sprintf("PRAGMA user_version = %d", n))
			return err
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
