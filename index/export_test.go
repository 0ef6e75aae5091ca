package index

import "database/sql"

// Raw is the writer pool, for tests that check what is stored (or that the
// database itself refuses something) behind index's back.
func Raw(db *DB) *sql.DB { return db.w }
