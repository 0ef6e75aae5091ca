package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/go-github/v60/github"

	"github.com/promptvault/promptvault/index"
)

// DraftCommit is one dashboard edit to commit through the API.
type DraftCommit struct {
	Branch, BaseBranch string
	Expect             string // the branch head the edit started from; "" = any
	Path               string
	Content            []byte
	Message            string
	AuthorName         string
	AuthorEmail        string
}

// CommitDraft commits an edit on its branch through the contents API
// (creating the branch from BaseBranch's head when missing) and opens the
// branch's pull request, or leaves the open one to show the new commit. A
// branch no longer at Expect, or a file changed under us (GitHub's 409),
// is index.ErrConflict. It returns the commit, the pull request's number
// and its page.
func (c *Client) CommitDraft(ctx context.Context, d DraftCommit) (commit string, pr int, prURL string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*c.Timeout)
	defer cancel()
	var ae *APIError
	ref, _, err := c.gh.Git.GetRef(ctx, c.Owner, c.Repo, "heads/"+d.Branch)
	switch err = apiError(err); {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		base, _, err := c.gh.Git.GetRef(ctx, c.Owner, c.Repo, "heads/"+d.BaseBranch)
		if err != nil {
			return "", 0, "", fmt.Errorf("draft %s: branch %s: %w", d.Branch, d.BaseBranch, apiError(err))
		}
		if _, _, err := c.gh.Git.CreateRef(ctx, c.Owner, c.Repo, &github.Reference{
			Ref: github.String("refs/heads/" + d.Branch), Object: &github.GitObject{SHA: base.GetObject().SHA}}); err != nil {
			return "", 0, "", fmt.Errorf("draft %s: create branch: %w", d.Branch, apiError(err))
		}
	case err != nil:
		return "", 0, "", fmt.Errorf("draft %s: %w", d.Branch, err)
	case d.Expect != "" && ref.GetObject().GetSHA() != d.Expect:
		return "", 0, "", fmt.Errorf("%w: draft %s moved since you opened it (it is at %.12s, your edit started from %.12s); reload it and apply your change again",
			index.ErrConflict, d.Branch, ref.GetObject().GetSHA(), d.Expect)
	}
	cur, _, _, err := c.gh.Repositories.GetContents(ctx, c.Owner, c.Repo, d.Path, &github.RepositoryContentGetOptions{Ref: d.Branch})
	if err = apiError(err); err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
		return "", 0, "", fmt.Errorf("draft %s: read %s: %w", d.Branch, d.Path, err)
	}
	author := &github.CommitAuthor{Name: github.String(d.AuthorName), Email: github.String(d.AuthorEmail)}
	put := &github.RepositoryContentFileOptions{Message: github.String(d.Message), Content: d.Content,
		Branch: github.String(d.Branch), Author: author, Committer: author}
	path := (&url.URL{Path: d.Path}).EscapedPath() // CreateFile and UpdateFile do not escape it
	var res *github.RepositoryContentResponse
	if old := cur.GetSHA(); old != "" {
		put.SHA = github.String(old)
		res, _, err = c.gh.Repositories.UpdateFile(ctx, c.Owner, c.Repo, path, put)
	} else {
		res, _, err = c.gh.Repositories.CreateFile(ctx, c.Owner, c.Repo, path, put)
	}
	if err = apiError(err); err != nil {
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			return "", 0, "", fmt.Errorf("%w: draft %s: GitHub refused the commit: %s", index.ErrConflict, d.Branch, ae.Message)
		}
		return "", 0, "", fmt.Errorf("draft %s: commit %s: %w", d.Branch, d.Path, err)
	}
	commit = res.Commit.GetSHA()
	open, _, err := c.gh.PullRequests.List(ctx, c.Owner, c.Repo, &github.PullRequestListOptions{
		State: "open", Head: c.Owner + ":" + d.Branch, Base: d.BaseBranch})
	if err != nil {
		return commit, 0, "", fmt.Errorf("draft %s: find its pull request: %w", d.Branch, apiError(err))
	}
	if len(open) > 0 {
		return commit, open[0].GetNumber(), open[0].GetHTMLURL(), nil
	}
	title, body, _ := strings.Cut(d.Message, "\n")
	body = strings.TrimSpace(body + "\n\nEdited in the promptvault dashboard by " + d.AuthorName + ".")
	p, _, err := c.gh.PullRequests.Create(ctx, c.Owner, c.Repo, &github.NewPullRequest{
		Title: github.String(title), Head: github.String(d.Branch), Base: github.String(d.BaseBranch), Body: github.String(body)})
	if err != nil {
		return commit, 0, "", fmt.Errorf("draft %s: open its pull request: %w", d.Branch, apiError(err))
	}
	return commit, p.GetNumber(), p.GetHTMLURL(), nil
}

// MergeDraft merges the pull request of draft "pr-N" through the API.
// GitHub decides (branch protection, required reviews and checks, merge
// conflicts); its refusal is index.ErrConflict with its reason.
func (c *Client) MergeDraft(ctx context.Context, draft, message string) (string, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(draft, "pr-"))
	if !strings.HasPrefix(draft, "pr-") || err != nil || n <= 0 {
		return "", fmt.Errorf("%w: draft %s is not a pull request draft (pr-N)", index.ErrInvalid, draft)
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	res, _, err := c.gh.PullRequests.Merge(ctx, c.Owner, c.Repo, n, message, nil)
	var ae *APIError
	if err = apiError(err); err != nil {
		if errors.As(err, &ae) && (ae.Status == http.StatusMethodNotAllowed || ae.Status == http.StatusConflict ||
			ae.Status == http.StatusUnprocessableEntity) {
			return "", fmt.Errorf("%w: GitHub refused to merge pull request #%d: %s", index.ErrConflict, n, ae.Message)
		}
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return "", fmt.Errorf("pull request #%d: %w", n, index.ErrNotFound)
		}
		return "", fmt.Errorf("merge pull request #%d: %w", n, err)
	}
	if !res.GetMerged() {
		return "", fmt.Errorf("%w: GitHub did not merge pull request #%d: %s", index.ErrConflict, n, res.GetMessage())
	}
	return res.GetSHA(), nil
}
