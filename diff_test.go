package promptvault

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// row is a compact form of a DiffRow for table comparisons:
// "kind L:left | R:right" with 0 for a missing side.
func rowString(r DiffRow) string {
	if r.Kind == RowHunk {
		return r.Header
	}
	side := func(l *DiffLine) string {
		if l == nil {
			return "-"
		}
		return strings.Join([]string{strconv.Itoa(l.Line), l.Text}, ":")
	}
	return r.Kind + " " + side(r.Left) + " | " + side(r.Right)
}

func TestDiffFiles(t *testing.T) {
	for _, tt := range []struct {
		name           string
		old, new       string
		rows           []string
		added, removed int
	}{
		{
			name: "identical",
			old:  "a\nb\n", new: "a\nb\n",
			rows: []string{},
		},
		{
			name: "one line changed keeps context and pairs the edit",
			old:  "model: gpt-4o\ntemperature: 0.2\ntemplate: hi\n",
			new:  "model: gpt-4o\ntemperature: 0.5\ntemplate: hi\n",
			rows: []string{
				"@@ -1,3 +1,3 @@",
				"equal 1:model: gpt-4o | 1:model: gpt-4o",
				"change 2:temperature: 0.2 | 2:temperature: 0.5",
				"equal 3:template: hi | 3:template: hi",
			},
			added: 1, removed: 1,
		},
		{
			name: "disjoint files: every line changes, surplus lines stand alone",
			old:  "a\nb\nc\n",
			new:  "x\ny\n",
			rows: []string{
				"@@ -1,3 +1,2 @@",
				"change 1:a | 1:x",
				"change 2:b | 2:y",
				"delete 3:c | -",
			},
			added: 2, removed: 3,
		},
		{
			name: "insertion only",
			old:  "a\nb\n",
			new:  "a\nnew\nb\n",
			rows: []string{
				"@@ -1,2 +1,3 @@",
				"equal 1:a | 1:a",
				"insert - | 2:new",
				"equal 2:b | 3:b",
			},
			added: 1,
		},
		{
			name:  "from an empty file (a deleted draft)",
			old:   "",
			new:   "a\n",
			rows:  []string{"@@ -0,0 +1 @@", "insert - | 1:a"},
			added: 1,
		},
		{
			name:  "missing final newline",
			old:   "a\nb",
			new:   "a\nc",
			rows:  []string{"@@ -1,2 +1,2 @@", "equal 1:a | 1:a", "change 2:b | 2:c"},
			added: 1, removed: 1,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := DiffFiles("prompts/x.yaml\tv1", "prompts/x.yaml\tv2", tt.old, tt.new)
			if d.Identical != (tt.old == tt.new) {
				t.Errorf("Identical = %v", d.Identical)
			}
			if d.Rows == nil {
				t.Fatal("Rows is nil; want [] so JSON says []")
			}
			var got []string
			for _, r := range d.Rows {
				got = append(got, rowString(r))
			}
			if strings.Join(got, "\n") != strings.Join(tt.rows, "\n") {
				t.Errorf("rows:\n%s\nwant:\n%s\nunified:\n%s", strings.Join(got, "\n"), strings.Join(tt.rows, "\n"), d.Unified)
			}
			if d.Added != tt.added || d.Removed != tt.removed {
				t.Errorf("added/removed = %d/%d, want %d/%d", d.Added, d.Removed, tt.added, tt.removed)
			}
			if d.Identical {
				if d.Unified != "" {
					t.Errorf("identical files have unified %q", d.Unified)
				}
				return
			}
			// The unified text's hunk headers are the rows' headers.
			for _, r := range d.Rows {
				if r.Kind == RowHunk && !strings.Contains(d.Unified, "\n"+r.Header+"\n") {
					t.Errorf("unified diff lacks hunk header %q:\n%s", r.Header, d.Unified)
				}
			}
			checkPatch(t, tt.old, tt.new, d.Unified)
		})
	}
}

// checkPatch applies the unified diff with GNU patch and expects new.
func checkPatch(t *testing.T, old, new, unified string) {
	t.Helper()
	if _, err := exec.LookPath("patch"); err != nil {
		t.Log("GNU patch not installed; unified diff not applied")
		return
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "x.yaml")
	if err := os.WriteFile(f, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("patch", "-s", f)
	cmd.Stdin = strings.NewReader(unified)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch: %v\n%s\ndiff:\n%s", err, out, unified)
	}
	got, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != new {
		t.Errorf("patched file = %q, want %q", got, new)
	}
}

func TestDiffFilesLargeFileHunks(t *testing.T) {
	var old, new strings.Builder
	for i := range 200 {
		line := "line " + strconv.Itoa(i) + "\n"
		old.WriteString(line)
		if i == 10 || i == 150 {
			new.WriteString("changed " + strconv.Itoa(i) + "\n")
			continue
		}
		new.WriteString(line)
	}
	d := DiffFiles("a", "b", old.String(), new.String())
	hunks := 0
	for _, r := range d.Rows {
		if r.Kind == RowHunk {
			hunks++
		}
	}
	if hunks != 2 || len(d.Rows) != 2+2*7 {
		t.Errorf("%d hunks, %d rows; want 2 hunks of 7 rows (3 context either side of one change)", hunks, len(d.Rows))
	}
	checkPatch(t, old.String(), new.String(), d.Unified)
}
