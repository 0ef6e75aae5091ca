package index

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Key environments.
const (
	KeyLive  = "live"
	KeyTest  = "test"
	KeyAdmin = "admin"
)

// keySecretLen is the number of random base62 characters after the prefix:
// 43 characters carry 256 bits.
const keySecretLen = 43

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// APIKey is a stored key: never the key itself, only its hash and a prefix.
type APIKey struct {
	ID         string `json:"id"`
	Env        string `json:"env"`
	Name       string `json:"name"`
	Prefix     string `json:"prefix"`
	Hash       string `json:"-"`
	CreatedAt  string `json:"created_at"`
	LastUsedAt string `json:"last_used_at,omitempty"`
	RevokedAt  string `json:"revoked_at,omitempty"`
}

// CreatedKey is the one answer that carries the key itself.
type CreatedKey struct {
	ID        string `json:"id"`
	Env       string `json:"env"`
	Name      string `json:"name"`
	Key       string `json:"key"`
	Prefix    string `json:"prefix"`
	CreatedAt string `json:"created_at"`
}

// HashKey is the stored form of a key.
func HashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// KeyEnv returns the environment a presented key claims by its prefix and
// whether it is well-formed (prefix plus at least 32 base62 characters).
func KeyEnv(key string) (env string, ok bool) {
	for _, e := range []string{KeyLive, KeyTest, KeyAdmin} {
		if rest, found := strings.CutPrefix(key, "pv_"+e+"_"); found {
			if len(rest) < 32 || len(rest) > 128 {
				return "", false
			}
			for i := 0; i < len(rest); i++ {
				if strings.IndexByte(base62, rest[i]) < 0 {
					return "", false
				}
			}
			return e, true
		}
	}
	return "", false
}

func randomString(n int, alphabet string) (string, error) {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		x, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		b[i] = alphabet[x.Int64()]
	}
	return string(b), nil
}

// CreateKey makes a new key for env and returns it; only its hash is kept.
func (tx *Tx) CreateKey(ctx context.Context, env, name, actor string) (CreatedKey, error) {
	switch env {
	case KeyLive, KeyTest, KeyAdmin:
	default:
		return CreatedKey{}, fmt.Errorf("%w: key env %q: want live, test or admin", ErrInvalid, env)
	}
	if len(name) > 200 {
		return CreatedKey{}, fmt.Errorf("%w: key name is %d characters; the limit is 200", ErrInvalid, len(name))
	}
	secret, err := randomString(keySecretLen, base62)
	if err != nil {
		return CreatedKey{}, fmt.Errorf("create key: %w", err)
	}
	idPart, err := randomString(12, "0123456789abcdefghijklmnopqrstuvwxyz")
	if err != nil {
		return CreatedKey{}, fmt.Errorf("create key: %w", err)
	}
	k := CreatedKey{ID: "key_" + idPart, Env: env, Name: name, Key: "pv_" + env + "_" + secret,
		CreatedAt: time.Now().UTC().Format(time.RFC3339)}
	k.Prefix = k.Key[:len("pv_"+env+"_")+4]
	if _, err := tx.exec(ctx, `INSERT INTO api_keys(id, env, name, prefix, hash, created_at) VALUES(?,?,?,?,?,?)`,
		k.ID, k.Env, k.Name, k.Prefix, HashKey(k.Key), k.CreatedAt); err != nil {
		return CreatedKey{}, fmt.Errorf("create key: %w", err)
	}
	if _, err := tx.Audit(ctx, AuditEntry{Action: ActKeyCreate, Actor: actor, Env: env, Detail: k.ID + " " + k.Prefix}); err != nil {
		return CreatedKey{}, err
	}
	return k, tx.notify(ctx, ChangeKeys, "")
}

// Keys lists every key, revoked ones included, oldest first.
func (tx *Tx) Keys(ctx context.Context) ([]APIKey, error) {
	return queryAll(ctx, tx, func(sc scanner) (k APIKey, err error) {
		err = sc.Scan(&k.ID, &k.Env, &k.Name, &k.Prefix, &k.Hash, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)
		return k, err
	}, `SELECT id, env, name, prefix, hash, created_at, last_used_at, revoked_at
		FROM api_keys ORDER BY created_at, id`)
}

// RevokeKey revokes a key by ID; readers drop it on the next change poll.
func (tx *Tx) RevokeKey(ctx context.Context, id, actor string) (Result, error) {
	var env, prefix, revoked string
	err := tx.queryRow(ctx, "SELECT env, prefix, revoked_at FROM api_keys WHERE id = ?", id).Scan(&env, &prefix, &revoked)
	if isNoRows(err) {
		return Result{}, fmt.Errorf("key %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Result{}, err
	}
	res := Result{To: "revoked"}
	if revoked != "" {
		return res, nil
	}
	if _, err := tx.exec(ctx, "UPDATE api_keys SET revoked_at = ? WHERE id = ?", time.Now().UTC().Format(time.RFC3339), id); err != nil {
		return res, err
	}
	res.Entry, err = tx.Audit(ctx, AuditEntry{Action: ActKeyRevoke, Actor: actor, Env: env, Detail: id + " " + prefix})
	if err != nil {
		return res, err
	}
	res.Changed = true
	return res, tx.notify(ctx, ChangeKeys, "")
}

// TouchKeys records last-used times collected in memory by a server; it is
// bookkeeping, so it is neither audited nor announced.
func (tx *Tx) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	for id, t := range used {
		if _, err := tx.exec(ctx, "UPDATE api_keys SET last_used_at = ? WHERE id = ? AND last_used_at < ?",
			t.UTC().Format(time.RFC3339), id, t.UTC().Format(time.RFC3339)); err != nil {
			return err
		}
	}
	return nil
}
