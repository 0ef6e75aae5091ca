package webhook

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/promptvault/promptvault/index"
)

// TestCommitDraftThroughTheAPI drives the dashboard's GitHub-mode draft
// commit against the fake GitHub, which checks every request and answer
// against GitHub's REST API description.
func TestCommitDraftThroughTheAPI(t *testing.T) {
	f := newFakeGitHub(t)
	f.staticToken = "ghp_test_token"
	c, err := NewClient(f.srv.URL, testOwner, testName, StaticToken("ghp_test_token"), false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src := "model: gpt-4o\ntemplate: Hi {{ name }}\n"
	d := DraftCommit{Branch: "welcome-ada", BaseBranch: "main", Path: "prompts/greet.yaml", Content: []byte(src),
		Message: "Welcome by name\n\nasked by support", AuthorName: "Ada's key", AuthorEmail: "admin-k1@promptvault.invalid"}

	// The branch is elsewhere than the edit started from: nothing is committed.
	d.Expect = strings.Repeat("e", 40)
	if _, _, _, err := c.CommitDraft(ctx, d); !errors.Is(err, index.ErrConflict) || !strings.Contains(err.Error(), "moved since you opened it") {
		t.Fatalf("stale base: %v", err)
	}
	f.mu.Lock()
	_, committed := f.rollback["put_contents"]
	f.mu.Unlock()
	if committed {
		t.Fatal("a stale edit was committed")
	}

	d.Expect = strings.Repeat("a", 40) // the fake's branch head
	sha, n, url, err := c.CommitDraft(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if sha != strings.Repeat("d", 40) || n != 99 || !strings.HasSuffix(url, "/pull/99") {
		t.Fatalf("CommitDraft = %s #%d %s", sha, n, url)
	}
	f.mu.Lock()
	put := f.rollback["put_contents"].(map[string]any)
	pr := f.rollback["create_pr"].(map[string]any)
	f.mu.Unlock()
	content, _ := base64.StdEncoding.DecodeString(put["content"].(string))
	author := put["author"].(map[string]any)
	if put["branch"] != "welcome-ada" || string(content) != src || put["sha"] != strings.Repeat("b", 40) || author["name"] != "Ada's key" {
		t.Errorf("contents PUT = %v", put)
	}
	if pr["head"] != "welcome-ada" || pr["base"] != "main" || pr["title"] != "Welcome by name" {
		t.Errorf("pull request = %v", pr)
	}
}

func TestMergeDraftThroughTheAPI(t *testing.T) {
	f := newFakeGitHub(t)
	f.staticToken = "ghp_test_token"
	refuse := false
	f.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut || !strings.HasSuffix(r.URL.Path, "/pulls/7/merge") {
			return false
		}
		if refuse { // as GitHub answers a merge its branch protection blocks
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"message": "At least 1 approving review is required by reviewers with write access."})
			return true
		}
		writeJSON(w, http.StatusOK, map[string]any{"sha": strings.Repeat("f", 40), "merged": true, "message": "Pull Request successfully merged"})
		return true
	}
	c, err := NewClient(f.srv.URL, testOwner, testName, StaticToken("ghp_test_token"), false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if sha, err := c.MergeDraft(ctx, "pr-7", ""); err != nil || sha != strings.Repeat("f", 40) {
		t.Fatalf("merge: %s %v", sha, err)
	}
	refuse = true
	_, err = c.MergeDraft(ctx, "pr-7", "")
	if !errors.Is(err, index.ErrConflict) || !strings.Contains(err.Error(), "approving review") {
		t.Fatalf("refused merge: %v", err)
	}
	if _, err := c.MergeDraft(ctx, "tone", ""); !errors.Is(err, index.ErrInvalid) {
		t.Fatalf("branch draft: %v", err)
	}
}
