-- Deliveries are ordered per subject ("pr:7", "branch:main", "sha:…",
-- "delivery:<guid>" for events that need no order), not globally, so one
-- pull request's failures never hold back another's. A delivery about
-- another repository is kept as 'ignored'. SQLite cannot change a CHECK
-- constraint in place, so the table is rebuilt (seq values are kept).
CREATE TABLE deliveries_v5 (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	guid        TEXT NOT NULL UNIQUE,
	event       TEXT NOT NULL,
	action      TEXT NOT NULL DEFAULT '',
	hook_id     TEXT NOT NULL DEFAULT '',
	body        BLOB NOT NULL,
	received_at TEXT NOT NULL,
	state       TEXT NOT NULL DEFAULT 'pending'
		CHECK (state IN ('pending', 'processing', 'done', 'failed', 'ignored')),
	attempts    INTEGER NOT NULL DEFAULT 0,
	next_at     INTEGER NOT NULL DEFAULT 0, -- unix ms before which a retry waits
	last_error  TEXT NOT NULL DEFAULT '',
	result      TEXT NOT NULL DEFAULT '',
	done_at     TEXT NOT NULL DEFAULT '',
	subject     TEXT NOT NULL DEFAULT ''
);
INSERT INTO deliveries_v5(seq, guid, event, action, hook_id, body, received_at, state, attempts, next_at,
	last_error, result, done_at, subject)
	SELECT seq, guid, event, action, hook_id, body, received_at, state, attempts, next_at,
		last_error, result, done_at, '' FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v5 RENAME TO deliveries;
CREATE INDEX deliveries_state ON deliveries(state, seq);
CREATE INDEX deliveries_subject ON deliveries(subject, state, seq);
