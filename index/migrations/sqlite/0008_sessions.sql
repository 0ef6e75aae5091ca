-- Dashboard sessions, shared by every instance on the database (a sign-in
-- on one serve is valid on all of them and survives restarts). Only the
-- SHA-256 of the session token is stored; csrf is returned to the signed-in
-- browser by GET /ui/session, so it is kept as is. expires_ms is unix ms.
CREATE TABLE sessions (
	token_hash TEXT PRIMARY KEY,
	key_id     TEXT NOT NULL,
	csrf       TEXT NOT NULL,
	expires_ms INTEGER NOT NULL,
	created_at TEXT NOT NULL
);
CREATE INDEX sessions_key ON sessions(key_id);
CREATE INDEX sessions_expires ON sessions(expires_ms);
