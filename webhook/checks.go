package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/gitstore"
	"github.com/promptvault/promptvault/index"
)

// Merge queues and "Re-run": merge_group checks_requested asks for the check
// on the group's head commit (a temporary branch holding the queued pull
// requests on top of the tracked branch); check_run and check_suite
// rerequested ask for ours to run again.

// mergeGroup reports the check on a merge group's head: the prompts the
// group changes against the tracked branch, validated at the head.
func (w *Worker) mergeGroup(ctx context.Context, d index.Delivery) error {
	var ev struct {
		Action     string `json:"action"`
		MergeGroup struct {
			HeadSHA string `json:"head_sha"`
			HeadRef string `json:"head_ref"`
			BaseRef string `json:"base_ref"`
		} `json:"merge_group"`
	}
	if err := json.Unmarshal(d.Body, &ev); err != nil {
		return fmt.Errorf("%w: merge_group payload: %v", errPermanent, err)
	}
	mg := ev.MergeGroup
	switch {
	case ev.Action != "checks_requested":
		return w.finish(ctx, d, "ignored merge_group "+ev.Action)
	case strings.TrimPrefix(mg.BaseRef, "refs/heads/") != w.cfg.Branch:
		return w.finish(ctx, d, "merge group into "+mg.BaseRef+": not the tracked branch")
	case w.gh == nil:
		return w.finish(ctx, d, "merge group: no GitHub App or token, no check reported")
	case !isFullSHA(mg.HeadSHA) || !strings.HasPrefix(mg.HeadRef, "refs/heads/"):
		return fmt.Errorf("%w: merge_group without a head_sha and a branch head_ref", errPermanent)
	}
	return w.checkCommit(ctx, d, mg.HeadSHA, "+"+mg.HeadRef+":"+mg.HeadRef)
}

// rerequested runs our check again for the pull requests a check run or
// suite names, or (none named: a merge group's or a fork's head) for its
// head commit against the tracked branch.
func (w *Worker) rerequested(ctx context.Context, d index.Delivery) error {
	var e envelope
	if err := json.Unmarshal(d.Body, &e); err != nil {
		return fmt.Errorf("%w: %s payload: %v", errPermanent, d.Event, err)
	}
	c := e.CheckRun
	if d.Event == "check_suite" {
		c = e.CheckSuite
	}
	switch {
	case e.Action != "rerequested":
		return w.finish(ctx, d, "ignored "+d.Event+" "+e.Action)
	case c == nil:
		return fmt.Errorf("%w: %s payload without %s", errPermanent, d.Event, d.Event)
	case d.Event == "check_run" && c.Name != CheckName:
		return w.finish(ctx, d, "ignored: check run "+c.Name+" is not ours")
	case c.App != nil && w.gh != nil && w.gh.AppID != 0 && c.App.ID != w.gh.AppID:
		return w.finish(ctx, d, fmt.Sprintf("ignored: App %d is not ours", c.App.ID))
	case w.gh == nil:
		return w.finish(ctx, d, "re-run: no GitHub App or token, no check reported")
	}
	if len(c.PullRequests) == 0 {
		head := c.HeadSHA
		if head == "" && c.CheckSuite != nil {
			head = c.CheckSuite.HeadSHA
		}
		if !isFullSHA(head) {
			return fmt.Errorf("%w: %s rerequested without a head_sha", errPermanent, d.Event)
		}
		return w.checkCommit(ctx, d, head)
	}
	for _, p := range c.PullRequests {
		pr, err := w.gh.PullRequest(ctx, p.Number)
		if err != nil {
			return fmt.Errorf("re-run for pull request #%d: %w", p.Number, err)
		}
		if pr.State != "open" {
			continue
		}
		// open indexes the head and reports; it marks d done, so one
		// delivery naming several pull requests reports each first.
		if err := w.reportOpen(ctx, pr); err != nil {
			return err
		}
	}
	return w.finish(ctx, d, fmt.Sprintf("check run again for %d pull requests", len(c.PullRequests)))
}

func isFullSHA(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// checkCommit validates the prompts head changes against the tracked
// branch (three-dot: merge-base(branch, head)..head) and reports the check
// on head. extra are refspecs to fetch first.
func (w *Worker) checkCommit(ctx context.Context, d index.Delivery, head string, extra ...string) error {
	var rep report
	err := w.locked(ctx, func() error {
		if err := w.fetch(ctx, extra...); err != nil {
			return err
		}
		if !w.has(head) {
			return fmt.Errorf("%w: commit %s not fetched yet", errLag, head)
		}
		tip, err := w.repo.Resolve(index.TrackedRef(w.cfg.Branch))
		if err != nil {
			return fmt.Errorf("%w: %v", errLag, err)
		}
		base, err := w.repo.MergeBase(tip, head)
		if err != nil {
			return fmt.Errorf("merge base of %s: %w", head, err)
		}
		changes, err := w.repo.Diff(ctx, base, head, w.cfg.PromptsDir)
		if err != nil {
			return fmt.Errorf("diff of %s: %w", head, err)
		}
		rep = w.commitReport(changes)
		return nil
	})
	if err != nil {
		return err
	}
	if err := w.publish(ctx, head, rep); err != nil {
		return fmt.Errorf("check on %s: %w", head, err)
	}
	return w.finish(ctx, d, fmt.Sprintf("check reported on %s: %s", head, rep.title))
}

// commitReport validates changed prompt files at the head. Needs the sync
// lock (reads blobs).
func (w *Worker) commitReport(changes []gitstore.Change) report {
	rep := report{ok: true}
	var b strings.Builder
	n, invalid := 0, 0
	for _, c := range changes {
		rel, ok := strings.CutPrefix(c.Path, w.cfg.PromptsDir+"/")
		if !ok {
			continue
		}
		key, isPrompt, kerr := promptvault.KeyFromPath(rel)
		if !isPrompt {
			continue
		}
		n++
		if c.To == "" {
			fmt.Fprintf(&b, "- `%s`: deleted (merging archives it)\n", key)
			continue
		}
		var probs []promptvault.Problem
		if kerr != nil {
			probs = []promptvault.Problem{{Path: c.Path, Message: kerr.Error()}}
		} else if data, err := w.repo.Blob(c.To); err != nil {
			probs = []promptvault.Problem{{Path: c.Path, Message: "read: " + err.Error()}}
		} else if _, err := promptvault.Parse(c.Path, data); err != nil {
			var ps *promptvault.Problems
			if errors.As(err, &ps) {
				probs = ps.List
			} else {
				probs = []promptvault.Problem{{Path: c.Path, Message: err.Error()}}
			}
		}
		if len(probs) == 0 {
			fmt.Fprintf(&b, "- `%s`: valid\n", key)
			continue
		}
		invalid++
		rep.ok = false
		fmt.Fprintf(&b, "- `%s`: **%d problems**\n", key, len(probs))
		for _, p := range probs {
			p.Path = c.Path
			fmt.Fprintf(&b, "  - `%s:%d:%d`: %s\n", p.Path, p.Line, p.Column, p.Message)
			line := max(p.Line, 1)
			a := Annotation{Path: p.Path, StartLine: line, EndLine: line, AnnotationLevel: "failure",
				Title: "invalid prompt " + key, Message: p.Message}
			if p.Column > 0 {
				a.StartColumn, a.EndColumn = p.Column, p.Column
			}
			rep.annotations = append(rep.annotations, a)
		}
	}
	switch {
	case n == 0:
		rep.title = "No prompt changes"
		b.WriteString("No prompt under `" + w.cfg.PromptsDir + "/` changes against `" + w.cfg.Branch + "`.\n")
	case invalid > 0:
		rep.title = fmt.Sprintf("%d of %d changed prompts invalid", invalid, n)
	default:
		rep.title = fmt.Sprintf("%d changed prompts valid", n)
	}
	rep.description = rep.title
	if extra := len(rep.annotations) - maxReportAnnotations; extra > 0 {
		rep.annotations = rep.annotations[:maxReportAnnotations]
		fmt.Fprintf(&b, "\n… and %d more problems (the first %d are annotated).\n", extra, maxReportAnnotations)
	}
	rep.summary = cutUTF8(b.String(), maxSummary, "\n\n… (truncated)\n")
	return rep
}
