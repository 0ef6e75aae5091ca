package webhook

import (
	"testing"

	"github.com/promptvault/promptvault/webhook/githubtest"
)

// GitHub's own description of its REST API and webhook payloads
// (../shared/testdata/github-openapi) is loaded and applied by githubtest:
// the fake GitHub here validates every request body the client sends and
// builds and checks its answers through it (githubtest.Spec.Serve), and
// the tests' webhook payloads are completed and checked against
// webhooks.json. Without the shared directory (a user's clone) the fake
// still answers, unchecked.

// githubSpec is the description, loaded once per test process; nil when
// it is absent.
func githubSpec(t testing.TB) *githubtest.Spec { return githubtest.DefaultSpec(t) }

// completePayload fills a webhook payload built in a test to the event's
// schema and checks it; events the schema file lacks pass as they are.
func completePayload(t testing.TB, event string, payload any) []byte {
	t.Helper()
	b, err := githubSpec(t).Payload(event, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
