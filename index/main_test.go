package index_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/promptvault/promptvault/index/indextest"
)

// engine is the engine the current run of the suite uses.
var engine = "sqlite"

// TestMain runs the whole suite on SQLite, then again on PostgreSQL when
// PV_TEST_POSTGRES names a server (failing, not skipping, when that server
// is unreachable): every test that opens an index through newEnv or
// newTarget runs on both engines without knowing it.
func TestMain(m *testing.M) {
	code := m.Run()
	if os.Getenv(indextest.Env) != "" {
		if err := indextest.Check(context.Background()); err != nil {
			fmt.Fprintf(os.Stderr, "%s is set but unusable: %v\n", indextest.Env, err)
			os.Exit(1)
		}
		engine = "postgres"
		fmt.Println("=== the index suite again, on PostgreSQL")
		if c := m.Run(); c != 0 {
			code = c
		}
	}
	os.Exit(code)
}

// newTarget is a fresh index location on the engine of this run.
func newTarget(t testing.TB, dir string) string {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("engine: %s", engine)
		}
	})
	return indextest.Target(t, engine, dir)
}
