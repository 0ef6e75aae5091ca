package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/index"
)

// maxAnnotations is GitHub's cap per check run request; the rest follow in
// updates, which append.
const maxAnnotations = 50

// maxSummary is GitHub's cap on output.summary (characters; kept in bytes
// here, which is stricter).
const maxSummary = 65535

// maxReportAnnotations caps the annotations of one report (4 requests of
// 50); the summary says how many more problems there are.
const maxReportAnnotations = 200

// cutUTF8 shortens s to at most n bytes ending in tail, on a character
// boundary (a byte cut can split a UTF-8 character, which GitHub refuses).
func cutUTF8(s string, n int, tail string) string {
	if len(s) <= n {
		return s
	}
	cut := max(n-len(tail), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + tail
}

// report is what a pull request's check run (or status) says.
type report struct {
	ok          bool
	title       string
	summary     string
	description string // ≤ 140 characters, for a commit status
	annotations []Annotation
}

// promptFields is the order fields are compared and shown in: the file
// format's order (SPEC §1).
var promptFields = []string{"description", "model", "fallback_model", "temperature", "max_tokens", "top_p",
	"system", "template", "messages", "input_schema", "output_schema", "cache_timeout", "config"}

// FieldChange is one field that differs between two prompt versions; From
// or To is "" when the field is unset on that side. Values are JSON.
type FieldChange struct {
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// FieldDiff compares two parsed prompts field by field through their JSON
// encoding (the read API's "prompt" object). Either may be nil (absent).
func FieldDiff(from, to *promptvault.Prompt) ([]FieldChange, error) {
	a, err := fieldsOf(from)
	if err != nil {
		return nil, err
	}
	b, err := fieldsOf(to)
	if err != nil {
		return nil, err
	}
	var out []FieldChange
	for _, f := range promptFields {
		if !bytes.Equal(a[f], b[f]) {
			out = append(out, FieldChange{Field: f, From: string(a[f]), To: string(b[f])})
		}
	}
	return out, nil
}

func fieldsOf(p *promptvault.Prompt) (map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if p == nil {
		return m, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	// Re-encode each value compactly with sorted keys (maps marshal sorted),
	// so equal values compare equal byte for byte.
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	for k, v := range raw {
		if m[k], err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// parseBlob parses a blob as a prompt file; nil when absent or invalid.
// The content comes from the index, which sync filled with the draft row.
func (w *Worker) parseBlob(ctx context.Context, path, blob string) *promptvault.Prompt {
	if blob == "" {
		return nil
	}
	data, err := w.db.Content(ctx, blob)
	if err != nil {
		return nil
	}
	p, err := promptvault.Parse(path, data)
	if err != nil {
		return nil
	}
	return p
}

// buildReport describes a pull request's drafts: for each changed prompt the
// version it would become, its problems, and a field-by-field diff against
// live.
func (w *Worker) buildReport(ctx context.Context, src index.DraftSource) (report, error) {
	type row struct {
		draft  index.Version
		next   string
		live   index.Pointer
		isLive bool
	}
	var rows []row
	err := w.db.View(ctx, func(tx *index.Tx) error {
		drafts, err := tx.DraftsOf(ctx, src.Source)
		if err != nil {
			return err
		}
		for _, v := range drafts {
			r := row{draft: v}
			info, err := tx.PromptInfo(ctx, v.Key)
			switch {
			case errors.Is(err, index.ErrNotFound):
				r.next = "v1"
			case err != nil:
				return err
			default:
				r.next = index.Label(info.Versions + 1)
			}
			if v.Deleted {
				r.next = index.LabelArchived
			}
			if r.live, r.isLive, err = tx.Pointer(ctx, v.Key, index.EnvLive); err != nil {
				return err
			}
			rows = append(rows, r)
		}
		return nil
	})
	if err != nil {
		return report{}, err
	}
	rep := report{ok: true}
	invalid := 0
	var b strings.Builder
	var details strings.Builder
	if len(rows) == 0 {
		b.WriteString("This pull request changes no prompt under `" + w.cfg.PromptsDir + "/`.\n")
	} else {
		b.WriteString("| prompt | becomes | live now | valid |\n|---|---|---|---|\n")
	}
	for _, r := range rows {
		live := "—"
		if r.isLive {
			live = r.live.Label()
		}
		mark := "yes"
		if !r.draft.Valid {
			mark = fmt.Sprintf("**no** (%d problems)", len(r.draft.Problems))
			invalid++
			rep.ok = false
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.draft.Key, r.next, live, mark)

		fmt.Fprintf(&details, "\n### `%s` → %s\n\n", r.draft.Key, r.next)
		switch {
		case r.draft.Deleted:
			details.WriteString("The file is deleted: merging archives the prompt.\n")
		case !r.draft.Valid:
			for _, p := range r.draft.Problems {
				fmt.Fprintf(&details, "- `%s:%d:%d`: %s\n", p.Path, p.Line, p.Column, p.Message)
				line := max(p.Line, 1)
				a := Annotation{Path: p.Path, StartLine: line, EndLine: line, AnnotationLevel: "failure",
					Title: "invalid prompt " + r.draft.Key, Message: p.Message}
				if p.Column > 0 {
					a.StartColumn, a.EndColumn = p.Column, p.Column
				}
				rep.annotations = append(rep.annotations, a)
			}
		default:
			var from *promptvault.Prompt
			fromLabel := "(none)"
			if r.isLive && !r.live.Archived {
				from = w.parseBlob(ctx, r.draft.Path, r.live.BlobSHA)
				fromLabel = r.live.Label()
			}
			to := w.parseBlob(ctx, r.draft.Path, r.draft.BlobSHA)
			changes, err := FieldDiff(from, to)
			if err != nil {
				return report{}, err
			}
			if len(changes) == 0 {
				details.WriteString("No field differs from live.\n")
				break
			}
			fmt.Fprintf(&details, "| field | live %s | this pull request |\n|---|---|---|\n", fromLabel)
			for _, c := range changes {
				fmt.Fprintf(&details, "| `%s` | %s | %s |\n", c.Field, cell(c.From), cell(c.To))
			}
		}
	}
	switch {
	case len(rows) == 0:
		rep.title = "No prompt changes"
	case invalid > 0:
		rep.title = fmt.Sprintf("%d of %d changed prompts invalid", invalid, len(rows))
	default:
		rep.title = fmt.Sprintf("%d changed prompts valid", len(rows))
	}
	rep.description = rep.title
	if n := len(rep.annotations) - maxReportAnnotations; n > 0 {
		rep.annotations = rep.annotations[:maxReportAnnotations]
		fmt.Fprintf(&b, "\n… and %d more problems (the first %d are annotated; all are listed below).\n", n, maxReportAnnotations)
	}
	b.WriteString(details.String())
	rep.summary = cutUTF8(b.String(), maxSummary, "\n\n… (truncated)\n")
	return rep, nil
}

// cell renders a JSON value for a markdown table cell.
func cell(v string) string {
	if v == "" {
		return "*(unset)*"
	}
	v = cutUTF8(v, 300, "…")
	v = strings.NewReplacer("|", `\|`, "\n", " ", "`", "'").Replace(v)
	return "`" + v + "`"
}

// publish reports rep on the head commit: a check run upserted by name
// (found among the head's runs, never duplicated) with annotations in
// chunks of 50, or in token mode a commit status.
func (w *Worker) publish(ctx context.Context, head string, rep report) error {
	conclusion, state := "success", "success"
	if !rep.ok {
		conclusion, state = "failure", "failure"
	}
	if !w.gh.App {
		desc := cutUTF8(rep.description, 140, "…")
		return w.gh.CreateStatus(ctx, head, Status{State: state, Context: CheckName, Description: desc})
	}
	runs, err := w.gh.CheckRuns(ctx, head, CheckName)
	if err != nil {
		return err
	}
	anns := rep.annotations
	out := func(chunk []Annotation) *CheckOutput {
		return &CheckOutput{Title: rep.title, Summary: rep.summary, Annotations: chunk}
	}
	var run CheckRun
	if len(runs) > 0 {
		// Ours (CheckRuns keeps our App's only). Annotations append on
		// update, and the same head has the same problems: resume after
		// those the run has (a retry after a failed chunk sends the rest).
		run = runs[0]
		if run.Output != nil {
			anns = anns[min(run.Output.AnnotationsCount, len(anns)):]
		}
		first := anns[:min(len(anns), maxAnnotations)]
		run, err = w.gh.UpdateCheckRun(ctx, run.ID, CheckRun{Name: CheckName, Status: "completed",
			Conclusion: conclusion, Output: out(first)})
	} else {
		first := anns[:min(len(anns), maxAnnotations)]
		run, err = w.gh.CreateCheckRun(ctx, CheckRun{Name: CheckName, HeadSHA: head, Status: "completed",
			Conclusion: conclusion, Output: out(first)})
	}
	if err != nil {
		return err
	}
	for i := maxAnnotations; i < len(anns); i += maxAnnotations {
		chunk := anns[i:min(i+maxAnnotations, len(anns))]
		if _, err := w.gh.UpdateCheckRun(ctx, run.ID, CheckRun{Output: out(chunk)}); err != nil {
			return err
		}
	}
	return nil
}
