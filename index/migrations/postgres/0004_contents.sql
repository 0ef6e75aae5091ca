-- PostgreSQL version of sqlite/0004_contents.sql.
CREATE TABLE contents (
	blob_sha TEXT COLLATE "C" PRIMARY KEY,
	data     BYTEA NOT NULL
);

INSERT INTO meta(name, value)
	SELECT 'contents_backfill', 'pending'
	WHERE EXISTS (SELECT 1 FROM versions) OR EXISTS (SELECT 1 FROM drafts) OR EXISTS (SELECT 1 FROM pointers);
