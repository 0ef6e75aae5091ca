package index_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/promptvault/promptvault/index"
)

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
