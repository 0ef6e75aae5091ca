package index_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/promptvault/promptvault/index"
)

// rawDB opens the index's database directly (SQLite file or PostgreSQL
// schema), behind index's back.
func rawDB(t testing.TB, target string) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite", "file:"+target+"?_pragma=busy_timeout(5000)"
	if index.IsPostgres(target) {
		driver, dsn = "pgx", target
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// dumpRaw prints every row q returns, straight from the database.
func dumpRaw(t testing.TB, db *index.DB, q string) string {
	t.Helper()
	rows, err := index.Raw(db).Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		rows.Scan(ptrs...)
		fmt.Fprintln(&b, vals...)
	}
	return b.String()
}
