-- Accepted GitHub webhook deliveries: the durable inbox. A row is written
-- (and fsynced) before GitHub gets its 202; the worker takes pending rows in
-- seq order. guid is GitHub's X-GitHub-Delivery, kept across redeliveries,
-- so a delivery seen before is acknowledged and not processed again.
CREATE TABLE deliveries (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	guid        TEXT NOT NULL UNIQUE,
	event       TEXT NOT NULL,
	action      TEXT NOT NULL DEFAULT '',
	hook_id     TEXT NOT NULL DEFAULT '',
	body        BLOB NOT NULL,
	received_at TEXT NOT NULL,
	state       TEXT NOT NULL DEFAULT 'pending'
		CHECK (state IN ('pending', 'processing', 'done', 'failed')),
	attempts    INTEGER NOT NULL DEFAULT 0,
	next_at     INTEGER NOT NULL DEFAULT 0, -- unix ms before which a retry waits
	last_error  TEXT NOT NULL DEFAULT '',
	result      TEXT NOT NULL DEFAULT '',
	done_at     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX deliveries_state ON deliveries(state, seq);

-- Merged pull requests seen by the worker or reconcile, one row per merge
-- commit: the primary key makes promotion at most once per merge commit.
-- state: applied, partial (some prompts superseded), superseded, stale
-- (live is not an ancestor: not applied), invalid, held, not_promoted.
CREATE TABLE merges (
	merge_sha TEXT PRIMARY KEY,
	pr        INTEGER NOT NULL,
	state     TEXT NOT NULL,
	delivery  TEXT NOT NULL DEFAULT '',
	detail    TEXT NOT NULL DEFAULT '',
	at        TEXT NOT NULL
);
