// Package indextest gives tests an index target on either engine: a SQLite
// file in a temp dir, or a fresh schema in the PostgreSQL database that
// PV_TEST_POSTGRES names, dropped when the test ends.
package indextest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env names the PostgreSQL server tests use; unset, PostgreSQL tests skip.
const Env = "PV_TEST_POSTGRES"

// PostgresURL returns PV_TEST_POSTGRES, skipping the test when it is unset.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(Env)
	if u == "" {
		t.Skip(Env + " is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	return u
}

// Check fails when PV_TEST_POSTGRES is set but its server cannot be used,
// so a broken CI database is a failure, never a silent skip.
func Check(ctx context.Context) error {
	u := os.Getenv(Env)
	if u == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// Schema creates an empty schema in the database at base and returns base
// with search_path set to it; the schema is dropped (with everything in
// it) when the test ends. Register it before opening anything on it, so
// those close first.
func Schema(t testing.TB, base string) string {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 6)
	rand.Read(b)
	name := "pvt_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("%s: %v", Env, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// Postgres returns a fresh schema's URL on PV_TEST_POSTGRES (skipping when
// unset).
func Postgres(t testing.TB) string {
	t.Helper()
	return Schema(t, PostgresURL(t))
}

// Target returns where a test's index lives: a fresh PostgreSQL schema when
// engine is "postgres", else a SQLite file in dir.
func Target(t testing.TB, engine, dir string) string {
	t.Helper()
	if engine == "postgres" {
		return Postgres(t)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "index.db")
}
