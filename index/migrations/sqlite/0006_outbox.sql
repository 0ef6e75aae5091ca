-- Outbound webhooks (SPEC §6): endpoints, the outbox of publish events and
-- one delivery row per (endpoint, event), written in the transaction that
-- moves the pointer. Times that the delivery queue compares are unix
-- milliseconds (integers compare the same on every engine); times shown to
-- people are RFC 3339 text like the rest of the schema.

-- Endpoints. events is the filter as ",type,type," ('' = every type), so
-- one LIKE picks the subscribers of an event inside the pointer's
-- transaction. secret is kept in the clear: it signs every delivery.
CREATE TABLE hooks (
	id              TEXT PRIMARY KEY,
	url             TEXT NOT NULL,
	events          TEXT NOT NULL DEFAULT '',
	description     TEXT NOT NULL DEFAULT '',
	format          TEXT NOT NULL DEFAULT 'standard' CHECK (format IN ('standard', 'slack')),
	secret          TEXT NOT NULL,
	created_at      TEXT NOT NULL,
	last_success_at TEXT NOT NULL DEFAULT '',
	failing_since   TEXT NOT NULL DEFAULT '', -- first failed attempt since the last success
	gave_up_at      TEXT NOT NULL DEFAULT ''  -- a delivery ran out of retries since the last success
);

-- The outbox: one row per publish event (or ping). id is the Standard
-- Webhooks message id (webhook-id), the same on every retry and redelivery.
-- previous_version and version are '' where the payload says null.
CREATE TABLE hook_events (
	seq              INTEGER PRIMARY KEY AUTOINCREMENT,
	id               TEXT NOT NULL UNIQUE,
	type             TEXT NOT NULL,
	at               TEXT NOT NULL,
	key              TEXT NOT NULL DEFAULT '',
	env              TEXT NOT NULL DEFAULT '',
	version          TEXT NOT NULL DEFAULT '',
	previous_version TEXT NOT NULL DEFAULT '',
	commit_sha       TEXT NOT NULL DEFAULT '',
	sha256           TEXT NOT NULL DEFAULT '',
	actor            TEXT NOT NULL DEFAULT '',
	audit_seq        INTEGER NOT NULL DEFAULT 0
);

-- The queue: one row per endpoint and event. An attempt in flight holds a
-- lease (lease_ms in the future); a process killed mid-attempt leaves the
-- lease to expire, and the row is tried again (at least once).
CREATE TABLE hook_deliveries (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	hook_id     TEXT NOT NULL REFERENCES hooks(id) ON DELETE CASCADE,
	event_seq   INTEGER NOT NULL REFERENCES hook_events(seq),
	state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
	attempts    INTEGER NOT NULL DEFAULT 0,
	created_ms  INTEGER NOT NULL, -- queued (or redelivered): the retry window starts here
	next_ms     INTEGER NOT NULL, -- the next attempt is due
	lease_ms    INTEGER NOT NULL DEFAULT 0,
	last_status INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT NOT NULL DEFAULT '',
	last_ms     INTEGER NOT NULL DEFAULT 0, -- duration of the last attempt
	last_at     TEXT NOT NULL DEFAULT '',
	UNIQUE (hook_id, event_seq)
);
CREATE INDEX hook_deliveries_due ON hook_deliveries(state, hook_id, next_ms);

-- Every attempt, for the delivery log.
CREATE TABLE hook_attempts (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	delivery_seq INTEGER NOT NULL REFERENCES hook_deliveries(seq) ON DELETE CASCADE,
	at           TEXT NOT NULL,
	status       INTEGER NOT NULL DEFAULT 0,
	error        TEXT NOT NULL DEFAULT '',
	duration_ms  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX hook_attempts_delivery ON hook_attempts(delivery_seq);
