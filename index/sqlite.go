package index

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
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

func openSQLite(ctx context.Context, path string, o Options) (*DB, error) {
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
	n := 8
	if o.MaxConns > 0 {
		n = o.MaxConns
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	db.r = r
	return db, nil
}

// schemaVersion reads the migration level: PRAGMA user_version on SQLite,
// the schema_migrations table on PostgreSQL.
func (db *DB) schemaVersion(ctx context.Context, tx *Tx) (int, error) {
	var cur int
	if db.pg != nil {
		return db.pg.schemaVersion(ctx, tx)
	}
	err := tx.tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur)
	return cur, err
}

func (db *DB) setSchemaVersion(ctx context.Context, tx *Tx, n int) error {
	if db.pg != nil {
		return db.pg.setSchemaVersion(ctx, tx, n)
	}
	_, err := tx.tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", n))
	return err
}
