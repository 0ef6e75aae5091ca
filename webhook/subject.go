package webhook

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/promptvault/promptvault/index"
)

// envelope is what the receiver and worker read of any payload: the action,
// the repository, and what orders the delivery.
type envelope struct {
	Action      string `json:"action"`
	Number      int    `json:"number"`
	Ref         string `json:"ref"`
	PullRequest *struct {
		Number int `json:"number"`
	} `json:"pull_request"`
	Repository *struct {
		ID       int64  `json:"id"`
		FullName string `json:"full_name"`
	} `json:"repository"`
	MergeGroup *struct {
		HeadSHA string `json:"head_sha"`
	} `json:"merge_group"`
	CheckRun   *checkTarget `json:"check_run"`
	CheckSuite *checkTarget `json:"check_suite"`
}

// checkTarget is the part of a check_run or check_suite payload a re-run
// needs.
type checkTarget struct {
	Name    string `json:"name"`
	HeadSHA string `json:"head_sha"`
	App     *struct {
		ID int64 `json:"id"`
	} `json:"app"`
	PullRequests []struct {
		Number int `json:"number"`
	} `json:"pull_requests"`
	CheckSuite *struct {
		HeadSHA string `json:"head_sha"`
	} `json:"check_suite"`
}

// subject names what a delivery's order matters to: one pull request
// ("pr:7"), one branch ("branch:main"), one commit a check is asked for
// ("sha:…"); other events need no order ("" = their own).
func (e envelope) subject(event string) string {
	switch event {
	case "pull_request":
		n := e.Number
		if n == 0 && e.PullRequest != nil {
			n = e.PullRequest.Number
		}
		if n > 0 {
			return fmt.Sprintf("pr:%d", n)
		}
	case "push":
		if b, ok := strings.CutPrefix(e.Ref, "refs/heads/"); ok {
			return "branch:" + b
		}
		if e.Ref != "" {
			return "ref:" + e.Ref
		}
	case "merge_group":
		if e.MergeGroup != nil && e.MergeGroup.HeadSHA != "" {
			return "sha:" + e.MergeGroup.HeadSHA
		}
	case "check_run", "check_suite":
		c := e.CheckRun
		if event == "check_suite" {
			c = e.CheckSuite
		}
		if c != nil && len(c.PullRequests) == 1 {
			return fmt.Sprintf("pr:%d", c.PullRequests[0].Number)
		}
		if c != nil && c.HeadSHA != "" {
			return "sha:" + c.HeadSHA
		}
	}
	return ""
}

// otherRepository says why a payload is another repository's ("" when it
// is ours, names none, or the served repository is not known).
func otherRepository(served string, e envelope) string {
	if served == "" || e.Repository == nil || e.Repository.FullName == "" {
		return ""
	}
	if strings.EqualFold(e.Repository.FullName, served) {
		return ""
	}
	return fmt.Sprintf("ignored: repository %s is not the served %s", e.Repository.FullName, served)
}

func (w *Worker) otherRepository(d index.Delivery) string {
	var e envelope
	if json.Unmarshal(d.Body, &e) != nil {
		return ""
	}
	return otherRepository(w.opts.Repository, e)
}
