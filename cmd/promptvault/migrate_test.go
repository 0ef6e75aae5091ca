package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/index/indextest"
)

// TestMigrateRoundTrip: the CLI tests' sample repository, indexed and used
// on SQLite (keys, promotions, staging, a draft, settings, an accepted
// delivery), is copied by migrate into an empty PostgreSQL schema; every
// table of the source compares equal, a second migrate is refused, and a
// sync on PostgreSQL afterwards promotes nothing again.
func TestMigrateRoundTrip(t *testing.T) {
	url := indextest.Postgres(t)
	g := sample(t)
	data := t.TempDir()
	ok(t, "sync", "--data", data, "--repo", g.Dir)
	ok(t, "keys", "create", "--env", "live", "--data", data)
	ok(t, "keys", "create", "--env", "admin", "--data", data)
	ok(t, "promote", "support/summarize", "v1", "--data", data)
	ok(t, "staging", "set", "greet", "draft:tone", "--data", data)
	ok(t, "settings", "set", "staging", "off", "--data", data)
	ctx := context.Background()
	src, err := index.Open(ctx, filepath.Join(data, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Accept(ctx, []index.Delivery{{GUID: "g-1", Event: "ping", Body: []byte(`{"zen":"\u0000 bytes \xff"}`)}}); err != nil {
		t.Fatal(err)
	}

	out := ok(t, "migrate", "--data", data, "--to", url)
	if !strings.Contains(out, "audit") || !strings.Contains(out, "copied") {
		t.Errorf("migrate output: %s", out)
	}
	dst, err := index.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	tables, err := src.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dstTables, _ := dst.Tables(ctx)
	for _, table := range tables {
		if !slices.Contains(dstTables, table) {
			t.Errorf("table %s not in PostgreSQL", table)
			continue
		}
		a, err := src.DumpTable(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		b, err := dst.DumpTable(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		if table == "changes" {
			b = slices.DeleteFunc(b, func(s string) bool { return strings.Contains(s, "kind=reset") })
		}
		if !slices.Equal(a, b) {
			t.Errorf("table %s differs:\nsqlite:   %q\npostgres: %q", table, a, b)
		}
	}

	fails(t, "not empty", "migrate", "--data", data, "--to", url)

	before, _ := dst.DumpTable(ctx, "audit")
	ok(t, "sync", "--data", data, "--database", url)
	after, _ := dst.DumpTable(ctx, "audit")
	if !slices.Equal(before, after) {
		t.Errorf("a sync after the migration wrote audit rows:\n%q", after[len(before):])
	}
	if out := ok(t, "audit", "--data", data, "--database", url); !strings.Contains(out, "staging_set") {
		t.Errorf("audit on PostgreSQL: %s", out)
	}
	// New rows continue the copied numbering.
	ok(t, "promote", "support/summarize", "v2", "--data", data, "--database", url)
	var log []index.AuditEntry
	dst.View(ctx, func(tx *index.Tx) (err error) { log, err = tx.AuditLog(ctx, 0, 2); return err })
	if len(log) != 2 || log[0].Seq != log[1].Seq+1 {
		t.Errorf("audit after the migration: %+v", log)
	}
}
