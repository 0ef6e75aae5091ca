package webhook

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/promptvault/promptvault/index"
)

var unsafeRef = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// OpenRollbackPR opens a pull request that restores v's content (data) at
// v.Path on branch, so the branch head does not drift from a rolled-back
// live pointer. It uses the REST API only (contents write permission): a
// new branch from branch's head, one commit, one pull request.
func (c *Client) OpenRollbackPR(ctx context.Context, branch string, v index.Version, data []byte) (string, error) {
	var ref struct {
		Object struct {
			SHA string `json:"sha"`
		} `json:"object"`
	}
	if err := c.call(ctx, http.MethodGet, c.repoPath("git/ref/heads/%s", branch), nil, &ref); err != nil {
		return "", fmt.Errorf("rollback pull request: branch %s: %w", branch, err)
	}
	name := fmt.Sprintf("promptvault/rollback-%s-%s-%d",
		strings.Trim(unsafeRef.ReplaceAllString(v.Key, "-"), "-"), v.Label, time.Now().Unix())
	if err := c.call(ctx, http.MethodPost, c.repoPath("git/refs"),
		map[string]string{"ref": "refs/heads/" + name, "sha": ref.Object.SHA}, nil); err != nil {
		return "", fmt.Errorf("rollback pull request: create branch %s: %w", name, err)
	}
	path := (&url.URL{Path: v.Path}).EscapedPath()
	var cur struct {
		SHA string `json:"sha"`
	}
	err := c.call(ctx, http.MethodGet, c.repoPath("contents/%s?ref=%s", path, url.QueryEscape(name)), nil, &cur)
	var ae *APIError
	if err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
		return "", fmt.Errorf("rollback pull request: read %s: %w", v.Path, err)
	}
	msg := fmt.Sprintf("Roll back %s to %s\n\nRestores the content of %s (commit %s), which promptvault made live by a rollback.",
		v.Key, v.Label, v.Label, v.Commit)
	put := map[string]string{"message": msg, "content": base64.StdEncoding.EncodeToString(data), "branch": name}
	if cur.SHA != "" {
		put["sha"] = cur.SHA
	}
	if err := c.call(ctx, http.MethodPut, c.repoPath("contents/%s", path), put, nil); err != nil {
		return "", fmt.Errorf("rollback pull request: commit %s: %w", v.Path, err)
	}
	var pr PullRequest
	body := fmt.Sprintf("Live `%s` was rolled back to %s (commit %s). Merging this restores that content on `%s` "+
		"so the branch does not drift from live.", v.Key, v.Label, v.Commit, branch)
	if err := c.call(ctx, http.MethodPost, c.repoPath("pulls"), map[string]string{
		"title": fmt.Sprintf("Roll back %s to %s", v.Key, v.Label), "head": name, "base": branch, "body": body,
	}, &pr); err != nil {
		return "", fmt.Errorf("rollback pull request: open: %w", err)
	}
	return pr.HTMLURL, nil
}
