package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// ErrNotEmpty is returned by CopyTo when the destination already holds a
// registry.
var ErrNotEmpty = errors.New("destination database is not empty")

// TableCount is how many rows CopyTo copied into one table.
type TableCount struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
}

// CopyTo copies every table of this SQLite index into dst, an empty
// PostgreSQL index (migrated to the same level), in one transaction of each:
// a consistent snapshot of the source, and on the destination all or
// nothing. Rows keep their values, sequence numbers included (version
// numbers, audit seq, the ledger's order, delivery and outbox seqs), and
// each identity sequence continues after the copied maximum. Tables are
// discovered from the source schema, so tables added by later migrations
// are copied without listing them here; a column the destination lacks is
// an error, not a silent loss.
func (db *DB) CopyTo(ctx context.Context, dst *DB) ([]TableCount, error) {
	if db.pg != nil || dst.pg == nil {
		return nil, fmt.Errorf("%w: copy goes from SQLite to PostgreSQL", ErrInvalid)
	}
	var out []TableCount
	err := db.View(ctx, func(src *Tx) error {
		var srcLevel int
		if err := src.tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&srcLevel); err != nil {
			return err
		}
		tables, err := copyOrder(ctx, src)
		if err != nil {
			return err
		}
		conn, err := dst.w.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		return conn.Raw(func(dc any) error {
			pc := dc.(*stdlib.Conn).Conn()
			tx, err := pc.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(context.WithoutCancel(ctx))
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockClassWriter, dst.pg.key); err != nil {
				return err
			}
			var dstLevel int
			if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&dstLevel); err != nil {
				return err
			}
			if dstLevel != srcLevel {
				return fmt.Errorf("%w: source schema is at migration %d, destination at %d (upgrade the older one first)",
					ErrInvalid, srcLevel, dstLevel)
			}
			for _, t := range tables {
				if t == "meta" {
					continue // holds only migration defaults on a fresh database
				}
				var any bool
				if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+pgx.Identifier{t}.Sanitize()+")").Scan(&any); err != nil {
					return fmt.Errorf("check %s: %w", t, err)
				}
				if any {
					return fmt.Errorf("%w: table %s has rows; migrate only into an empty database or schema", ErrNotEmpty, t)
				}
			}
			if _, err := tx.Exec(ctx, "DELETE FROM meta"); err != nil {
				return err
			}
			for _, t := range tables {
				n, err := copyTable(ctx, src, tx, t)
				if err != nil {
					return fmt.Errorf("copy %s: %w", t, err)
				}
				out = append(out, TableCount{Table: t, Rows: n})
			}
			if err := resetIdentities(ctx, tx); err != nil {
				return err
			}
			// Instances already running on the destination reload.
			if _, err := tx.Exec(ctx, "INSERT INTO changes(kind, key) VALUES('reset', '')"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "SELECT pg_notify($1, '')", dst.pg.channel); err != nil {
				return err
			}
			return tx.Commit(ctx)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("copy index: %w", err)
	}
	return out, nil
}

// copyOrder lists the source's tables, each after the tables its foreign
// keys refer to.
func copyOrder(ctx context.Context, src *Tx) ([]string, error) {
	names, err := src.queryStrings(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{}
	for _, t := range names {
		rows, err := src.tx.QueryContext(ctx, "SELECT \"table\" FROM pragma_foreign_key_list(?)", t)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var ref string
			if err := rows.Scan(&ref); err != nil {
				rows.Close()
				return nil, err
			}
			deps[t] = append(deps[t], ref)
		}
		rows.Close()
	}
	var out []string
	seen := map[string]bool{}
	var visit func(t string)
	visit = func(t string) {
		if seen[t] {
			return
		}
		seen[t] = true
		for _, d := range deps[t] {
			visit(d)
		}
		out = append(out, t)
	}
	for _, t := range names {
		visit(t)
	}
	return out, nil
}

func copyTable(ctx context.Context, src *Tx, dst pgx.Tx, table string) (int64, error) {
	rows, err := src.tx.QueryContext(ctx, "SELECT * FROM "+pgx.Identifier{table}.Sanitize())
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	var have []string
	err = func() error {
		r, err := dst.Query(ctx, "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1", table)
		if err != nil {
			return err
		}
		have, err = pgx.CollectRows(r, pgx.RowTo[string])
		return err
	}()
	if err != nil {
		return 0, err
	}
	if len(have) == 0 {
		return 0, fmt.Errorf("the destination has no table %s (its migrations are behind)", table)
	}
	for _, c := range cols {
		if !slices.Contains(have, c) {
			return 0, fmt.Errorf("the destination's %s has no column %s", table, c)
		}
	}
	src2 := &sqlRowSource{rows: rows, vals: make([]any, len(cols))}
	n, err := dst.CopyFrom(ctx, pgx.Identifier{table}, cols, src2)
	if err == nil {
		err = src2.err
	}
	return n, err
}

// sqlRowSource feeds database/sql rows to pgx's COPY, turning SQLite's
// dynamic values into what the PostgreSQL columns take.
type sqlRowSource struct {
	rows *sql.Rows
	vals []any
	err  error
}

func (s *sqlRowSource) Next() bool {
	if s.err != nil || !s.rows.Next() {
		if s.err == nil {
			s.err = s.rows.Err()
		}
		return false
	}
	ptrs := make([]any, len(s.vals))
	for i := range s.vals {
		ptrs[i] = &s.vals[i]
	}
	if s.err = s.rows.Scan(ptrs...); s.err != nil {
		return false
	}
	for i, v := range s.vals {
		if str, ok := v.(string); ok {
			s.vals[i] = bindArgs([]any{str})[0]
		}
	}
	return true
}

func (s *sqlRowSource) Values() ([]any, error) { return s.vals, s.err }
func (s *sqlRowSource) Err() error             { return s.err }

// resetIdentities moves every identity sequence of the schema past the
// largest copied value, so the next insert continues the numbering.
func resetIdentities(ctx context.Context, tx pgx.Tx) error {
	r, err := tx.Query(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND is_identity = 'YES'`)
	if err != nil {
		return err
	}
	type tc struct{ t, c string }
	ids, err := pgx.CollectRows(r, func(row pgx.CollectableRow) (x tc, err error) {
		err = row.Scan(&x.t, &x.c)
		return x, err
	})
	if err != nil {
		return err
	}
	for _, x := range ids {
		t, c := pgx.Identifier{x.t}.Sanitize(), pgx.Identifier{x.c}.Sanitize()
		q := fmt.Sprintf("SELECT setval(pg_get_serial_sequence($1, $2), coalesce(max(%s), 1), max(%s) IS NOT NULL) FROM %s", c, c, t)
		if _, err := tx.Exec(ctx, q, x.t, x.c); err != nil {
			return fmt.Errorf("sequence of %s.%s: %w", x.t, x.c, err)
		}
	}
	return nil
}

// Tables lists the index's tables, for tests and tools that compare two
// indexes.
func (db *DB) Tables(ctx context.Context) ([]string, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`
	if db.pg != nil {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()
			AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY table_name`
	}
	var out []string
	err := db.View(ctx, func(tx *Tx) (err error) {
		out, err = tx.queryStrings(ctx, q)
		return err
	})
	return out, err
}

// DumpTable renders every row of table as text, one line per row, sorted,
// so the same rows on either engine give the same dump (integers, text and
// bytes print alike). For tests and tools that compare two indexes.
func (db *DB) DumpTable(ctx context.Context, table string) ([]string, error) {
	var out []string
	err := db.View(ctx, func(tx *Tx) error {
		rows, err := tx.tx.QueryContext(ctx, "SELECT * FROM "+pgx.Identifier{table}.Sanitize())
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			// Columns by name: an engine may order them differently
			// (PostgreSQL appends a column a migration adds).
			fields := make([]string, len(cols))
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					v = fmt.Sprintf("%x", b)
				}
				fields[i] = fmt.Sprintf("%s=%v", cols[i], v)
			}
			slices.Sort(fields)
			out = append(out, strings.Join(fields, " "))
		}
		return rows.Err()
	})
	slices.Sort(out)
	return out, err
}
