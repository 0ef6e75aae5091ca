package index

import (
	"context"
	"errors"
	"fmt"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/gitstore"
)

// ChangeContents is the change-feed kind written when a backfill added
// content that pointers already referred to: readers rebuild what failed.
const ChangeContents = "contents"

// metaBackfill marks an index whose rows predate the contents table
// (migration 0004 sets it; the first sync after it fills and clears it).
const metaBackfill = "contents_backfill"

// Content returns the bytes of the prompt file with Git blob SHA blob, as
// indexed. ErrNotFound when the index holds no such content.
func (tx *Tx) Content(ctx context.Context, blob string) ([]byte, error) {
	var data []byte
	err := tx.queryRow(ctx, "SELECT data FROM contents WHERE blob_sha = ?", blob).Scan(&data)
	if isNoRows(err) {
		return nil, fmt.Errorf("content of blob %s: %w", blob, ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("content of blob %s: %w", blob, err)
	}
	if data == nil {
		data = []byte{} // an empty file is content, not absence
	}
	return data, nil
}

// Content reads one content row in its own read transaction.
func (db *DB) Content(ctx context.Context, blob string) (data []byte, err error) {
	err = db.View(ctx, func(tx *Tx) error {
		data, err = tx.Content(ctx, blob)
		return err
	})
	return data, err
}

// putContent stores a blob's bytes unless the index has them. Callers write
// it in the transaction that writes the row referring to the blob.
func (tx *Tx) putContent(ctx context.Context, blob string, data []byte) error {
	if data == nil {
		data = []byte{}
	}
	if _, err := tx.exec(ctx, "INSERT INTO contents(blob_sha, data) VALUES(?, ?) ON CONFLICT(blob_sha) DO NOTHING",
		blob, data); err != nil {
		return fmt.Errorf("record content of blob %s: %w", blob, err)
	}
	return nil
}

// storeChecked writes a validated blob's content (once per sync: after
// that, the index has it and the bytes are dropped from memory, so a first
// sync of a long history does not hold every version's file at once).
// Only the goroutine writing batches calls it.
func (st *syncState) storeChecked(ctx context.Context, tx *Tx, blob string, c *checked) error {
	if c.stored {
		return nil
	}
	if err := tx.putContent(ctx, blob, c.data); err != nil {
		return err
	}
	c.data, c.stored = nil, true
	return nil
}

// missingContents lists the blob SHAs that versions, drafts or pointers
// refer to and the contents table lacks.
const missingContents = `SELECT b.blob_sha FROM (
		SELECT blob_sha FROM versions UNION SELECT blob_sha FROM drafts UNION SELECT blob_sha FROM pointers
	) b
	WHERE b.blob_sha <> '' AND NOT EXISTS (SELECT 1 FROM contents c WHERE c.blob_sha = b.blob_sha)
	ORDER BY b.blob_sha`

// backfillContents fills the content of rows indexed before the contents
// table existed, reading each blob from the mirror once. It runs when the
// migration left its mark (or always, for reindex) and clears the mark
// when everything was found; a blob the mirror lacks is reported and
// retried by the next sync, and its prompt's documents stay unserved.
func (db *DB) backfillContents(ctx context.Context, repo *gitstore.Repo, always bool) (filled int, missing []string, err error) {
	var todo []string
	var marked bool
	err = db.View(ctx, func(tx *Tx) error {
		mark, err := tx.Meta(ctx, metaBackfill)
		if err != nil {
			return err
		}
		if marked = mark != ""; !marked && !always {
			return nil
		}
		todo, err = tx.queryStrings(ctx, missingContents)
		return err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("backfill contents: %w", err)
	}
	if len(todo) == 0 && !marked {
		return 0, nil, nil // the common case: no write transaction at all
	}
	const batch = 1000
	for i := 0; i == 0 || i < len(todo); i += batch {
		part := todo[i:min(i+batch, len(todo))]
		last := i+batch >= len(todo)
		err := db.Update(ctx, func(tx *Tx) error {
			for _, blob := range part {
				if n, err := repo.BlobSize(blob); err == nil && n > promptvault.MaxFileSize {
					continue // never stored (see checkBlob)
				}
				data, err := repo.Blob(blob)
				if errors.Is(err, gitstore.ErrNotFound) {
					missing = append(missing, blob)
					continue
				} else if err != nil {
					return fmt.Errorf("read blob %s: %w", blob, err)
				}
				if err := tx.putContent(ctx, blob, data); err != nil {
					return err
				}
				filled++
			}
			if !last {
				return nil
			}
			if filled > 0 {
				if err := tx.notify(ctx, ChangeContents, ""); err != nil {
					return err
				}
			}
			if len(missing) == 0 && marked {
				_, err := tx.exec(ctx, "DELETE FROM meta WHERE name = ?", metaBackfill)
				return err
			}
			return nil
		})
		if err != nil {
			return filled, missing, fmt.Errorf("backfill contents: %w", err)
		}
	}
	return filled, missing, nil
}
