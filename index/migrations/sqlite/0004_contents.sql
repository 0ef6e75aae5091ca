-- File contents by Git blob SHA, so reads, renders, admin views and diffs
-- never open the Git mirror. versions.blob_sha, drafts.blob_sha and
-- pointers.blob_sha refer to it (drafts that delete a prompt have ''). Rows
-- are written by sync in the transaction that writes the version or draft
-- row, and never deleted: content-addressed rows are shared by every version
-- with the same bytes, and a pointer may outlive the draft it was taken from.
CREATE TABLE contents (
	blob_sha TEXT PRIMARY KEY,
	data     BLOB NOT NULL
);

-- Rows indexed before this migration have no content yet: the next sync
-- (or reindex) reads their blobs from the mirror once and clears the mark.
INSERT INTO meta(name, value)
	SELECT 'contents_backfill', 'pending'
	WHERE EXISTS (SELECT 1 FROM versions) OR EXISTS (SELECT 1 FROM drafts) OR EXISTS (SELECT 1 FROM pointers);
