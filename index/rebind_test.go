package index

import "testing"

func TestRebind(t *testing.T) {
	pg := &pgState{}
	for _, tt := range []struct{ in, want string }{
		{"SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = $1 AND c = $2"},
		{"SELECT '?', \"?\" FROM t WHERE x = ?", "SELECT '?', \"?\" FROM t WHERE x = $1"},
		{"SELECT 1 -- why?\nWHERE y = ?", "SELECT 1 -- why?\nWHERE y = $1"},
		{"LIKE ? ESCAPE '\\' OR a LIKE ? ESCAPE '\\'", "LIKE $1 ESCAPE '\\' OR a LIKE $2 ESCAPE '\\'"},
		{"SELECT 'it''s ?' WHERE z = ?", "SELECT 'it''s ?' WHERE z = $1"},
		{"SELECT 'unterminated ?", "SELECT 'unterminated ?"},
		{"VALUES(?,?,?)", "VALUES($1,$2,$3)"},
	} {
		if got := pg.rebind(tt.in); got != tt.want {
			t.Errorf("rebind(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestBindArgs(t *testing.T) {
	in := []any{true, false, "ok", "caf\xe9", "a\x00b", 3}
	got := bindArgs(in)
	want := []any{int64(1), int64(0), "ok", "caf\uFFFD", "a\uFFFDb", 3}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("arg %d = %#v, want %#v", i, got[i], want[i])
		}
	}
	if in[0] != true {
		t.Error("bindArgs changed its input")
	}
	plain := []any{"a", 1}
	if out := bindArgs(plain); &out[0] != &plain[0] {
		t.Error("bindArgs copied arguments that needed nothing")
	}
}
