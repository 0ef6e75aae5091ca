-- Live and staging pointers. A live pointer may mark the prompt archived
-- (its deletion was promoted); a staging pointer may point at a draft.
CREATE TABLE pointers (
	key        TEXT NOT NULL,
	env        TEXT NOT NULL CHECK (env IN ('live', 'staging')),
	number     INTEGER NOT NULL DEFAULT 0,  -- published version, 0 when draft or archived
	draft      TEXT NOT NULL DEFAULT '',    -- draft name when staging points at a draft
	archived   INTEGER NOT NULL DEFAULT 0,
	commit_sha TEXT NOT NULL DEFAULT '',
	sha256     TEXT NOT NULL DEFAULT '',
	-- What is served, copied from the version or draft so a pointer stays
	-- servable when its draft is rewritten or ended.
	blob_sha   TEXT NOT NULL DEFAULT '',
	message    TEXT NOT NULL DEFAULT '',
	author     TEXT NOT NULL DEFAULT '',
	created_at TEXT NOT NULL DEFAULT '',
	audit_seq  INTEGER NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (key, env)
);

-- Append-only audit log; its seq doubles as the event id of /v1/events.
CREATE TABLE audit (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	at         TEXT NOT NULL,
	action     TEXT NOT NULL,
	actor      TEXT NOT NULL,
	key        TEXT NOT NULL DEFAULT '',
	version    TEXT NOT NULL DEFAULT '',
	commit_sha TEXT NOT NULL DEFAULT '',
	sha256     TEXT NOT NULL DEFAULT '',
	env        TEXT NOT NULL DEFAULT '',
	detail     TEXT NOT NULL DEFAULT ''
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;

-- API keys, stored only as SHA-256 hashes.
CREATE TABLE api_keys (
	id           TEXT PRIMARY KEY,
	env          TEXT NOT NULL CHECK (env IN ('live', 'test', 'admin')),
	name         TEXT NOT NULL DEFAULT '',
	prefix       TEXT NOT NULL,
	hash         TEXT NOT NULL UNIQUE,
	created_at   TEXT NOT NULL,
	last_used_at TEXT NOT NULL DEFAULT '',
	revoked_at   TEXT NOT NULL DEFAULT ''
);

-- Change feed for in-memory caches (servers beside CLI writers): one row
-- per change that can alter what a read returns. kind: pointer, draft,
-- prompt, keys, settings. Old rows are trimmed.
CREATE TABLE changes (
	seq  INTEGER PRIMARY KEY AUTOINCREMENT,
	kind TEXT NOT NULL,
	key  TEXT NOT NULL DEFAULT ''
);

INSERT INTO meta(name, value) VALUES ('staging_enabled', 'true');
