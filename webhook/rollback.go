package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/promptvault/promptvault/index"
)

var unsafeRef = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// OpenRollbackPR opens a pull request that restores v's content (data) at
// v.Path on branch, so the branch head does not drift from a rolled-back
// live pointer. It uses the REST API only (contents write permission): a
// new branch from branch's head, one commit, one pull request.
func (c *Client) OpenRollbackPR(ctx context.Context, branch string, v index.Version, data []byte) (string, error) {
	// One budget for the four calls: they are one user-facing action.
	ctx, cancel := context.WithTimeout(ctx, 4*c.Timeout)
	defer cancel()
	ref, _, err := c.gh.Git.GetRef(ctx, c.Owner, c.Repo, "heads/"+branch)
	if err != nil {
		return "", fmt.Errorf("rollback pull request: branch %s: %w", branch, apiError(err))
	}
	sha := ref.GetObject().GetSHA()
	if sha == "" {
		return "", fmt.Errorf("rollback pull request: branch %s: no commit in the answer", branch)
	}
	name := fmt.Sprintf("promptvault/rollback-%s-%s-%d",
		strings.Trim(unsafeRef.ReplaceAllString(v.Key, "-"), "-"), v.Label, time.Now().Unix())
	if _, _, err := c.gh.Git.CreateRef(ctx, c.Owner, c.Repo, &github.Reference{
		Ref: github.String("refs/heads/" + name), Object: &github.GitObject{SHA: github.String(sha)}}); err != nil {
		return "", fmt.Errorf("rollback pull request: create branch %s: %w", name, apiError(err))
	}
	// GetContents escapes the path itself; 404 means the file is new.
	cur, _, _, err := c.gh.Repositories.GetContents(ctx, c.Owner, c.Repo, v.Path,
		&github.RepositoryContentGetOptions{Ref: name})
	var ae *APIError
	if err = apiError(err); err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
		return "", fmt.Errorf("rollback pull request: read %s: %w", v.Path, err)
	}
	msg := fmt.Sprintf("Roll back %s to %s\n\nRestores the content of %s (commit %s), which promptvault made live by a rollback.",
		v.Key, v.Label, v.Label, v.Commit)
	put := &github.RepositoryContentFileOptions{Message: github.String(msg), Content: data, Branch: github.String(name)}
	// CreateFile and UpdateFile put the path into the URL unescaped.
	path := (&url.URL{Path: v.Path}).EscapedPath()
	if old := cur.GetSHA(); old != "" {
		put.SHA = github.String(old)
		_, _, err = c.gh.Repositories.UpdateFile(ctx, c.Owner, c.Repo, path, put)
	} else {
		_, _, err = c.gh.Repositories.CreateFile(ctx, c.Owner, c.Repo, path, put)
	}
	if err != nil {
		return "", fmt.Errorf("rollback pull request: commit %s: %w", v.Path, apiError(err))
	}
	body := fmt.Sprintf("Live `%s` was rolled back to %s (commit %s). Merging this restores that content on `%s` "+
		"so the branch does not drift from live.", v.Key, v.Label, v.Commit, branch)
	pr, _, err := c.gh.PullRequests.Create(ctx, c.Owner, c.Repo, &github.NewPullRequest{
		Title: github.String(fmt.Sprintf("Roll back %s to %s", v.Key, v.Label)),
		Head:  github.String(name), Base: github.String(branch), Body: github.String(body)})
	if err != nil {
		return "", fmt.Errorf("rollback pull request: open: %w", apiError(err))
	}
	return pr.GetHTMLURL(), nil
}
