package index

import (
	"context"
	"fmt"
	"time"
)

// Session is a dashboard sign-in. The token itself is never stored: the
// table is keyed by its hash, which the caller computes.
type Session struct {
	TokenHash string
	KeyID     string
	CSRF      string
	Expires   time.Time
}

// CreateSession stores a session, first dropping expired ones and, when
// max sessions exist already, the ones closest to expiry, so a flood of
// sign-ins cannot grow the table without bound.
func (tx *Tx) CreateSession(ctx context.Context, s Session, max int) error {
	nowMS := time.Now().UnixMilli()
	if _, err := tx.exec(ctx, "DELETE FROM sessions WHERE expires_ms <= ?", nowMS); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	// Keep at most max-1 before the insert: drop everything expiring no
	// later than the max-th newest (ties go too; no row there, nothing goes).
	if _, err := tx.exec(ctx, `DELETE FROM sessions WHERE expires_ms <= (
		SELECT expires_ms FROM sessions ORDER BY expires_ms DESC LIMIT 1 OFFSET ?)`, max-1); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	_, err := tx.exec(ctx, "INSERT INTO sessions(token_hash, key_id, csrf, expires_ms, created_at) VALUES(?,?,?,?,?)",
		s.TokenHash, s.KeyID, s.CSRF, s.Expires.UnixMilli(), now())
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// Session returns the unexpired session of a token hash whose key is not
// revoked; ok is false otherwise, and revoked says the key was revoked
// (the row stays until it expires, so the dashboard can say why it ended).
func (tx *Tx) Session(ctx context.Context, tokenHash string) (s Session, ok, revoked bool, err error) {
	var ms int64
	var revokedAt string
	err = tx.queryRow(ctx, `SELECT s.token_hash, s.key_id, s.csrf, s.expires_ms, coalesce(k.revoked_at, 'gone')
		FROM sessions s LEFT JOIN api_keys k ON k.id = s.key_id WHERE s.token_hash = ?`, tokenHash).
		Scan(&s.TokenHash, &s.KeyID, &s.CSRF, &ms, &revokedAt)
	if isNoRows(err) {
		return s, false, false, nil
	}
	if err != nil {
		return s, false, false, fmt.Errorf("session: %w", err)
	}
	s.Expires = time.UnixMilli(ms)
	if revokedAt != "" {
		return s, false, true, nil
	}
	return s, time.Now().Before(s.Expires), false, nil
}

// DeleteSession signs one session out.
func (tx *Tx) DeleteSession(ctx context.Context, tokenHash string) error {
	_, err := tx.exec(ctx, "DELETE FROM sessions WHERE token_hash = ?", tokenHash)
	return err
}

// CountSessions counts stored sessions, expired ones included.
func (tx *Tx) CountSessions(ctx context.Context) (int, error) {
	var n int
	err := tx.queryRow(ctx, "SELECT count(*) FROM sessions").Scan(&n)
	return n, err
}
