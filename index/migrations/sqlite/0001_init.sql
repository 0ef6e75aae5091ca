-- Remembered configuration (repo, branch, prompts_dir) and sync state.
CREATE TABLE meta (
	name  TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

-- The ledger: every tracked-branch commit indexed, in the order it was
-- indexed. Versions are derived from it, so reindex replays it and keeps
-- versions whose commits a force push removed.
CREATE TABLE commits (
	seq INTEGER PRIMARY KEY,
	sha TEXT NOT NULL UNIQUE
);

CREATE TABLE prompts (
	key         TEXT PRIMARY KEY,
	path        TEXT NOT NULL,
	last_number INTEGER NOT NULL DEFAULT 0,
	archived    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE versions (
	key          TEXT NOT NULL REFERENCES prompts(key),
	number       INTEGER NOT NULL,
	commit_sha   TEXT NOT NULL,
	commit_seq   INTEGER NOT NULL,
	path         TEXT NOT NULL,
	blob_sha     TEXT NOT NULL,
	sha256       TEXT NOT NULL,
	size         INTEGER NOT NULL,
	message      TEXT NOT NULL,
	author       TEXT NOT NULL,
	committed_at TEXT NOT NULL,
	valid        INTEGER NOT NULL,
	problems     TEXT NOT NULL DEFAULT '[]',
	PRIMARY KEY (key, number)
);
CREATE INDEX versions_commit ON versions(commit_sha);

-- A deletion of a prompt file on the tracked branch (archives the prompt).
CREATE TABLE deletions (
	key          TEXT NOT NULL REFERENCES prompts(key),
	commit_sha   TEXT NOT NULL,
	commit_seq   INTEGER NOT NULL,
	path         TEXT NOT NULL,
	message      TEXT NOT NULL,
	author       TEXT NOT NULL,
	committed_at TEXT NOT NULL,
	PRIMARY KEY (key, commit_sha)
);

-- Files under the prompts directory that cannot be a prompt (bad key).
CREATE TABLE skipped_files (
	commit_sha TEXT NOT NULL,
	path       TEXT NOT NULL,
	problem    TEXT NOT NULL,
	PRIMARY KEY (commit_sha, path)
);

-- Drafts: unmerged changes, one row per (prompt, draft). source is
-- "branch:<name>" (local mode) or "pr:<n>" (GitHub mode). blob_sha is empty
-- when the draft deletes the prompt.
CREATE TABLE drafts (
	key          TEXT NOT NULL,
	name         TEXT NOT NULL,
	source       TEXT NOT NULL,
	commit_sha   TEXT NOT NULL,
	base_sha     TEXT NOT NULL,
	path         TEXT NOT NULL,
	blob_sha     TEXT NOT NULL,
	sha256       TEXT NOT NULL,
	size         INTEGER NOT NULL,
	message      TEXT NOT NULL,
	author       TEXT NOT NULL,
	committed_at TEXT NOT NULL,
	valid        INTEGER NOT NULL,
	problems     TEXT NOT NULL DEFAULT '[]',
	updated_at   TEXT NOT NULL,
	PRIMARY KEY (key, name)
);
CREATE INDEX drafts_source ON drafts(source);

-- The head each draft source was last indexed at, so an unchanged branch is
-- not diffed again.
CREATE TABLE draft_sources (
	source   TEXT PRIMARY KEY,
	head_sha TEXT NOT NULL
);

-- A draft deleted by hand stays deleted until its head moves.
CREATE TABLE draft_dismissals (
	key        TEXT NOT NULL,
	name       TEXT NOT NULL,
	commit_sha TEXT NOT NULL,
	PRIMARY KEY (key, name)
);
