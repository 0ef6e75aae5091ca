-- PostgreSQL version of sqlite/0001_init.sql: same tables, columns and
-- meaning. Integers are BIGINT (SQLite's INTEGER is 64-bit), flags stay
-- 0/1 integers so queries read the same on both engines, and text that is
-- sorted is COLLATE "C" so order is by code point, as SQLite's BINARY.

CREATE TABLE meta (
	name  TEXT COLLATE "C" PRIMARY KEY,
	value TEXT NOT NULL
);

-- seq is assigned max+1 by index (SQLite's rowid rule), not a sequence.
CREATE TABLE commits (
	seq BIGINT PRIMARY KEY,
	sha TEXT NOT NULL UNIQUE
);

CREATE TABLE prompts (
	key         TEXT COLLATE "C" PRIMARY KEY,
	path        TEXT NOT NULL,
	last_number BIGINT NOT NULL DEFAULT 0,
	archived    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE versions (
	key          TEXT COLLATE "C" NOT NULL REFERENCES prompts(key),
	number       BIGINT NOT NULL,
	commit_sha   TEXT NOT NULL,
	commit_seq   BIGINT NOT NULL,
	path         TEXT NOT NULL,
	blob_sha     TEXT NOT NULL,
	sha256       TEXT NOT NULL,
	size         BIGINT NOT NULL,
	message      TEXT NOT NULL,
	author       TEXT NOT NULL,
	committed_at TEXT NOT NULL,
	valid        INTEGER NOT NULL,
	problems     TEXT NOT NULL DEFAULT '[]',
	PRIMARY KEY (key, number)
);
CREATE INDEX versions_commit ON versions(commit_sha);

CREATE TABLE deletions (
	key          TEXT COLLATE "C" NOT NULL REFERENCES prompts(key),
	commit_sha   TEXT COLLATE "C" NOT NULL,
	commit_seq   BIGINT NOT NULL,
	path         TEXT NOT NULL,
	message      TEXT NOT NULL,
	author       TEXT NOT NULL,
	committed_at TEXT NOT NULL,
	PRIMARY KEY (key, commit_sha)
);

CREATE TABLE skipped_files (
	commit_sha TEXT COLLATE "C" NOT NULL,
	path       TEXT COLLATE "C" NOT NULL,
	problem    TEXT NOT NULL,
	PRIMARY KEY (commit_sha, path)
);

CREATE TABLE drafts (
	key          TEXT COLLATE "C" NOT NULL,
	name         TEXT COLLATE "C" NOT NULL,
	source       TEXT COLLATE "C" NOT NULL,
	commit_sha   TEXT NOT NULL,
	base_sha     TEXT NOT NULL,
	path         TEXT COLLATE "C" NOT NULL,
	blob_sha     TEXT NOT NULL,
	sha256       TEXT NOT NULL,
	size         BIGINT NOT NULL,
	message      TEXT NOT NULL,
	author       TEXT NOT NULL,
	committed_at TEXT COLLATE "C" NOT NULL,
	valid        INTEGER NOT NULL,
	problems     TEXT NOT NULL DEFAULT '[]',
	updated_at   TEXT NOT NULL,
	PRIMARY KEY (key, name)
);
CREATE INDEX drafts_source ON drafts(source);

CREATE TABLE draft_sources (
	source   TEXT COLLATE "C" PRIMARY KEY,
	head_sha TEXT NOT NULL
);

CREATE TABLE draft_dismissals (
	key        TEXT COLLATE "C" NOT NULL,
	name       TEXT COLLATE "C" NOT NULL,
	commit_sha TEXT NOT NULL,
	PRIMARY KEY (key, name)
);
