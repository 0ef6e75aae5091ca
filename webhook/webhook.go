// Package webhook is promptvault's GitHub integration: POST /webhooks/github
// (verify the signature, store the delivery durably in the index's inbox,
// answer 202), the worker that processes deliveries in order (index pull
// request drafts and merges, promote merged pull requests, report check runs
// or commit statuses), the periodic reconcile that heals missed deliveries,
// and GitHub App authentication. It drives index and gitstore and calls
// GitHub's REST API; it knows nothing of the read API or the CLI.
package webhook

import (
	"errors"
	"fmt"

	"github.com/promptvault/promptvault/resolver"
)

// slog keys (STYLE: keys are constants).
const (
	logDelivery = "delivery"
	logEvent    = "event"
	logPR       = "pr"
	logKey      = "key"
	logVersion  = "version"
	logCommit   = "commit"
	logErr      = "err"
)

// MaxBody is GitHub's own payload cap: larger events are never delivered.
const MaxBody = 25 << 20

// CheckName is the name of the check run and the commit status context.
const CheckName = "promptvault"

// Default labels.
const (
	DefaultStagingLabel = "promptvault:staging"
	DefaultHoldLabel    = "promptvault:hold"
)

var (
	// ErrSignature: a missing or wrong X-Hub-Signature-256.
	ErrSignature = fmt.Errorf("%w: webhook signature (X-Hub-Signature-256) missing or wrong", resolver.ErrUnauthorized)
	// errLag: GitHub announced objects the repository does not serve yet;
	// the delivery stays pending and is retried with backoff.
	errLag = errors.New("objects not available yet")
	// errPermanent: the delivery can never succeed (malformed payload).
	errPermanent = errors.New("permanent")
)
