-- PostgreSQL version of sqlite/0008_sessions.sql.
CREATE TABLE sessions (
	token_hash TEXT COLLATE "C" PRIMARY KEY,
	key_id     TEXT NOT NULL,
	csrf       TEXT NOT NULL,
	expires_ms BIGINT NOT NULL,
	created_at TEXT NOT NULL
);
CREATE INDEX sessions_key ON sessions(key_id);
CREATE INDEX sessions_expires ON sessions(expires_ms);
