package promptvault

import (
	"fmt"
	"strings"

	"github.com/aymanbagabas/go-udiff"
)

// DiffContext is the number of unchanged lines kept around each change.
const DiffContext = 3

// Diff is a line diff of two versions of a prompt file, as a unified diff
// (what `patch` and `git apply` take) and as rows for a side-by-side view.
type Diff struct {
	Identical bool      `json:"identical"`
	Added     int       `json:"added"`   // lines only in the new file
	Removed   int       `json:"removed"` // lines only in the old file
	Unified   string    `json:"unified"` // "" when identical
	Rows      []DiffRow `json:"rows"`    // [] when identical
}

// Row kinds of a side-by-side diff.
const (
	RowHunk   = "hunk"   // a hunk header; Header is "@@ -a,b +c,d @@"
	RowEqual  = "equal"  // the same line on both sides
	RowChange = "change" // a removed line beside the added line replacing it
	RowDelete = "delete" // a removed line; Right is nil
	RowInsert = "insert" // an added line; Left is nil
)

// DiffRow is one row of a side-by-side diff.
type DiffRow struct {
	Kind   string    `json:"kind"`
	Header string    `json:"header,omitempty"`
	Left   *DiffLine `json:"left"`
	Right  *DiffLine `json:"right"`
}

// DiffLine is one side of a row: a 1-based line number and the line's text
// without its newline.
type DiffLine struct {
	Line int    `json:"line"`
	Text string `json:"text"`
}

// DiffFiles diffs old against new. oldName and newName label the unified
// diff's ---/+++ lines (e.g. "prompts/x.yaml\tv3").
//
// Rows pair each hunk's run of removed lines with the run of added lines
// that follows it, so an edited line shows beside its replacement, the way
// side-by-side views on GitHub and in the peers' dashboards do; surplus lines
// of either run become delete or insert rows.
func DiffFiles(oldName, newName, old, new string) Diff {
	if old == new {
		return Diff{Identical: true, Rows: []DiffRow{}}
	}
	edits := udiff.Lines(old, new)
	u, err := udiff.ToUnifiedDiff(oldName, newName, old, edits, DiffContext)
	if err != nil {
		// Lines' edits always apply to old; this would be a library bug.
		panic(fmt.Sprintf("promptvault: inconsistent diff edits: %v", err))
	}
	d := Diff{Unified: u.String(), Rows: []DiffRow{}}
	for _, h := range u.Hunks {
		d.Rows = append(d.Rows, DiffRow{Kind: RowHunk, Header: hunkHeader(h)})
		l, r := h.FromLine, h.ToLine
		var dels, ins []DiffLine
		flush := func() {
			n := max(len(dels), len(ins))
			for i := range n {
				row := DiffRow{Kind: RowChange}
				if i < len(dels) {
					row.Left = &dels[i]
				} else {
					row.Kind = RowInsert
				}
				if i < len(ins) {
					row.Right = &ins[i]
				} else {
					row.Kind = RowDelete
				}
				d.Rows = append(d.Rows, row)
			}
			dels, ins = nil, nil
		}
		for _, ln := range h.Lines {
			text := strings.TrimSuffix(ln.Content, "\n")
			switch ln.Kind {
			case udiff.Delete:
				if len(ins) > 0 {
					flush() // a deletion after insertions starts a new run
				}
				dels = append(dels, DiffLine{l, text})
				l++
				d.Removed++
			case udiff.Insert:
				ins = append(ins, DiffLine{r, text})
				r++
				d.Added++
			default:
				flush()
				d.Rows = append(d.Rows, DiffRow{Kind: RowEqual, Left: &DiffLine{l, text}, Right: &DiffLine{r, text}})
				l++
				r++
			}
		}
		flush()
	}
	return d
}

// hunkHeader is the "@@ -a,b +c,d @@" line of h, as udiff prints it.
func hunkHeader(h *udiff.Hunk) string {
	from, to := 0, 0
	for _, l := range h.Lines {
		switch l.Kind {
		case udiff.Delete:
			from++
		case udiff.Insert:
			to++
		default:
			from++
			to++
		}
	}
	return fmt.Sprintf("@@ -%s +%s @@", hunkRange(h.FromLine, from), hunkRange(h.ToLine, to))
}

func hunkRange(start, n int) string {
	switch {
	case n == 0 && start == 1:
		return "0,0"
	case n <= 1:
		return fmt.Sprint(start)
	default:
		return fmt.Sprintf("%d,%d", start, n)
	}
}
