package webhook

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-github/v60/github"
)

// GitHub's REST API is called through go-github v60 (the design's GitHub
// library). The types below are the package's own view of what it reads
// and writes, converted at this boundary, so the worker and report code
// never handle go-github's pointer-heavy structs. Their JSON tags are
// GitHub's field names: the test fake serves these types as API answers.

// PullRequest is a pull request (GET /repos/{owner}/{repo}/pulls/{number}).
type PullRequest struct {
	Number         int        `json:"number"`
	State          string     `json:"state"`
	Title          string     `json:"title"`
	HTMLURL        string     `json:"html_url"`
	Merged         bool       `json:"merged"` // absent from list responses: see IsMerged
	MergedAt       *time.Time `json:"merged_at"`
	MergeCommitSHA string     `json:"merge_commit_sha"`
	UpdatedAt      *time.Time `json:"updated_at"`
	Labels         []Label    `json:"labels"`
	Head           PRRef      `json:"head"`
	Base           PRRef      `json:"base"`
}

// IsMerged is true for a merged pull request, from a get or a list.
func (p PullRequest) IsMerged() bool { return p.Merged || p.MergedAt != nil }

// HasLabel reports whether the pull request carries label name.
func (p PullRequest) HasLabel(name string) bool {
	for _, l := range p.Labels {
		if l.Name == name {
			return true
		}
	}
	return false
}

// Label is a label of an issue or pull request.
type Label struct {
	Name string `json:"name"`
}

// PRRef is a pull request's head or base.
type PRRef struct {
	Ref  string `json:"ref"`
	SHA  string `json:"sha"`
	Repo *struct {
		FullName string `json:"full_name"`
	} `json:"repo"`
}

// CheckRun is a check run (POST/PATCH /repos/{o}/{r}/check-runs).
type CheckRun struct {
	ID         int64        `json:"id,omitempty"`
	Name       string       `json:"name,omitempty"`
	HeadSHA    string       `json:"head_sha,omitempty"`
	Status     string       `json:"status,omitempty"`
	Conclusion string       `json:"conclusion,omitempty"`
	Output     *CheckOutput `json:"output,omitempty"`
	// AppID is the App that owns the run: only it may update the run.
	AppID int64 `json:"-"`
}

// CheckOutput is a check run's output.
type CheckOutput struct {
	Title            string       `json:"title"`
	Summary          string       `json:"summary"`
	AnnotationsCount int          `json:"annotations_count,omitempty"`
	Annotations      []Annotation `json:"annotations,omitempty"`
}

// Annotation marks a file and line in a check run.
type Annotation struct {
	Path            string `json:"path"`
	StartLine       int    `json:"start_line"`
	EndLine         int    `json:"end_line"`
	StartColumn     int    `json:"start_column,omitempty"`
	EndColumn       int    `json:"end_column,omitempty"`
	AnnotationLevel string `json:"annotation_level"`
	Title           string `json:"title,omitempty"`
	Message         string `json:"message"`
}

// Status is a commit status (POST /repos/{o}/{r}/statuses/{sha}).
type Status struct {
	State       string `json:"state"`
	Context     string `json:"context"`
	Description string `json:"description"`
	TargetURL   string `json:"target_url,omitempty"`
}

// APIError is a non-2xx answer of the REST API (or go-github's refusal to
// call it while a rate limit it saw is in force).
type APIError struct {
	Method, Path string
	Status       int
	Message      string
	// RateLimited: a primary or secondary rate limit, whatever the status;
	// no GitHub call is made before ResetAt.
	RateLimited bool
	ResetAt     time.Time

	err error // go-github's error, for errors.As
}

func (e *APIError) Error() string {
	return fmt.Sprintf("github %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// Unwrap returns go-github's error (*github.ErrorResponse, RateLimitError…).
func (e *APIError) Unwrap() error { return e.err }

// Temporary reports errors worth retrying (rate limits, server errors).
func (e *APIError) Temporary() bool {
	f, _ := classify(e)
	return f != failPermanent
}

// apiError maps go-github's errors to *APIError, so callers test one type
// for the status (404 permanent, 401 forget the token) and Temporary.
// Transport errors (no answer) stay as they are: retried like any error.
func apiError(err error) error {
	if err == nil {
		return nil
	}
	var te *tokenError
	if errors.As(err, &te) {
		// Minting the token failed, before any request went out; its error
		// (an *APIError of the App's own calls, often) is the one to see.
		return te.err
	}
	var rl0 *rateLimited
	if errors.As(err, &rl0) {
		ae := &APIError{Status: rl0.Status, RateLimited: true, ResetAt: rl0.Until, err: err,
			Message: "rate limited until " + rl0.Until.UTC().Format(time.RFC3339) + ": " + rl0.Message}
		var ue *url.Error
		if errors.As(err, &ue) {
			ae.Method = strings.ToUpper(ue.Op) // url.Error says "Get"
			if u, perr := url.Parse(ue.URL); perr == nil {
				ae.Path = u.Path
			}
		}
		return ae
	}
	ae := &APIError{err: err}
	var resp *http.Response
	var (
		er  *github.ErrorResponse
		rl  *github.RateLimitError
		ab  *github.AbuseRateLimitError
		tfa *github.TwoFactorAuthError
	)
	switch {
	case errors.As(err, &rl):
		resp, ae.Message, ae.RateLimited = rl.Response, rl.Message, true
	case errors.As(err, &ab):
		resp, ae.Message, ae.RateLimited = ab.Response, ab.Message, true
	case errors.As(err, &tfa):
		resp, ae.Message = tfa.Response, tfa.Message
	case errors.As(err, &er):
		resp, ae.Message = er.Response, er.Message
		for _, d := range er.Errors {
			// 422s explain themselves here (e.g. a missing field).
			if d.Message != "" {
				ae.Message += "; " + d.Message
			} else if d.Field != "" {
				ae.Message += fmt.Sprintf("; %s %s", d.Field, d.Code)
			}
		}
	default:
		return fmt.Errorf("github: %w", err)
	}
	if resp != nil {
		ae.Status = resp.StatusCode
		if resp.Request != nil {
			ae.Method, ae.Path = resp.Request.Method, resp.Request.URL.Path
		}
	}
	if ae.Message == "" {
		ae.Message = http.StatusText(ae.Status)
	}
	return ae
}

// TokenSource supplies the bearer token of each API call.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a personal access token or similar (token mode).
type StaticToken string

func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }

// tokenTransport sets each request's bearer token from a TokenSource at
// send time, so a client outlives the hourly App installation tokens (a
// fixed WithAuthToken would not).
type tokenTransport struct {
	src  TokenSource
	base http.RoundTripper
}

// tokenError marks a TokenSource failure, which http.Client wraps in a
// *url.Error naming a request that was never sent.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.src.Token(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip closes the body, even on error
		}
		return nil, &tokenError{err}
	}
	orig := req
	if tok != "" {
		req = req.Clone(req.Context()) // RoundTrip must not modify the caller's request
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := t.base.RoundTrip(req)
	f, forgets := t.src.(interface{ Forget() })
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !forgets || (orig.Body != nil && orig.GetBody == nil) {
		return resp, err
	}
	// A revoked or rotated installation token: mint a new one and try once
	// more; a second 401 is the answer.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	f.Forget()
	if tok, err = t.src.Token(orig.Context()); err != nil {
		return nil, &tokenError{err}
	}
	req = orig.Clone(orig.Context())
	if orig.GetBody != nil {
		if req.Body, err = orig.GetBody(); err != nil {
			return nil, err
		}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return t.base.RoundTrip(req)
}

// callTimeout bounds one API call (STYLE: each GitHub call gets a timeout).
const callTimeout = 30 * time.Second

// Client calls GitHub's REST API for one repository.
type Client struct {
	Owner, Repo string
	// App is true with App auth: only Apps can create check runs, so token
	// mode reports a commit status instead.
	App bool
	// AppID is the App's ID (App auth): our check runs are the ones with
	// this app_id.
	AppID int64
	// Timeout bounds one call (default 30 s).
	Timeout time.Duration
	gh      *github.Client
	auth    TokenSource
	pause   *pause
	now     func() time.Time
}

// SetClock replaces the clock rate-limit pauses are measured with (tests).
func (c *Client) SetClock(now func() time.Time) { c.now = now }

// PausedUntil is when GitHub calls may resume after a rate limit (zero or
// past: not paused).
func (c *Client) PausedUntil() time.Time {
	t, _ := c.pause.get()
	return t
}

func (c *Client) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.Timeout)
}

// APIBase normalizes --github-api-url: github.com's API as is, and for an
// Enterprise (or test) host the /api/v3/ root, appended when missing (as
// go-github's WithEnterpriseURLs does).
func APIBase(raw string) (*url.URL, error) {
	if raw == "" {
		raw = "https://api.github.com/"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("--github-api-url %q: want an http(s) URL", raw)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	if u.Host != "api.github.com" && !strings.HasPrefix(u.Host, "api.") && !strings.HasSuffix(u.Path, "/api/v3/") {
		u.Path += "api/v3/"
	}
	return u, nil
}

// newGitHub returns a go-github client rooted at apiURL (normalized by
// APIBase) that sends its requests through rt.
func newGitHub(apiURL string, rt http.RoundTripper) (*github.Client, error) {
	base, err := APIBase(apiURL)
	if err != nil {
		return nil, err
	}
	gh := github.NewClient(&http.Client{Transport: rt})
	gh.UserAgent = "promptvault"
	if base.String() != gh.BaseURL.String() {
		// APIBase already appended /api/v3/, so WithEnterpriseURLs keeps
		// the URL as is; APIBase is the one rule, and it is tested.
		if gh, err = gh.WithEnterpriseURLs(base.String(), base.String()); err != nil {
			return nil, fmt.Errorf("--github-api-url %q: %w", apiURL, err)
		}
	}
	return gh, nil
}

// NewClient returns a client of repository owner/repo at apiURL.
func NewClient(apiURL, owner, repo string, auth TokenSource, app bool) (*Client, error) {
	c := &Client{Owner: owner, Repo: repo, App: app, auth: auth, Timeout: callTimeout, pause: &pause{}, now: time.Now}
	rt := &rateTransport{base: &tokenTransport{src: auth, base: http.DefaultTransport}, pause: c.pause,
		now: func() time.Time { return c.now() }}
	gh, err := newGitHub(apiURL, rt)
	if err != nil {
		return nil, err
	}
	c.gh = gh
	if a, ok := auth.(*AppAuth); ok {
		c.AppID, _ = strconv.ParseInt(a.AppID, 10, 64)
	}
	return c, nil
}

// PullRequestURL is the web page of pull request n: on github.com for its
// API, and on the API's host (its path without /api/v3/) for an
// Enterprise Server, which serves pages and API on one host.
func (c *Client) PullRequestURL(n int) string {
	web := *c.gh.BaseURL
	if web.Host == "api.github.com" {
		web.Host = "github.com"
	}
	web.Path = strings.TrimSuffix(strings.TrimSuffix(web.Path, "/"), "/api/v3")
	web.RawPath = ""
	return fmt.Sprintf("%s/%s/%s/pull/%d", strings.TrimSuffix(web.String(), "/"), c.Owner, c.Repo, n)
}

// Token returns the current token (for git over HTTPS).
func (c *Client) Token(ctx context.Context) (string, error) { return c.auth.Token(ctx) }

// pullRequestOf converts go-github's pull request (an API answer or a
// webhook payload's) to ours.
func pullRequestOf(p *github.PullRequest) PullRequest {
	pr := PullRequest{
		Number:         p.GetNumber(),
		State:          p.GetState(),
		Title:          p.GetTitle(),
		HTMLURL:        p.GetHTMLURL(),
		Merged:         p.GetMerged(),
		MergeCommitSHA: p.GetMergeCommitSHA(),
		Head:           prRefOf(p.GetHead()),
		Base:           prRefOf(p.GetBase()),
	}
	if p.MergedAt != nil {
		t := p.MergedAt.Time
		pr.MergedAt = &t
	}
	if p.UpdatedAt != nil {
		t := p.UpdatedAt.Time
		pr.UpdatedAt = &t
	}
	for _, l := range p.Labels {
		pr.Labels = append(pr.Labels, Label{Name: l.GetName()})
	}
	return pr
}

func prRefOf(b *github.PullRequestBranch) PRRef {
	r := PRRef{Ref: b.GetRef(), SHA: b.GetSHA()}
	if b.GetRepo() != nil {
		r.Repo = &struct {
			FullName string `json:"full_name"`
		}{b.GetRepo().GetFullName()}
	}
	return r
}

// PullRequest gets one pull request: its state, labels and merge commit as
// they are now (payloads can be stale).
func (c *Client) PullRequest(ctx context.Context, n int) (PullRequest, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	pr, _, err := c.gh.PullRequests.Get(ctx, c.Owner, c.Repo, n)
	if err != nil {
		return PullRequest{}, apiError(err)
	}
	return pullRequestOf(pr), nil
}

// PullRequestsSince lists pull requests into base in state, most recently
// updated first, page by page until one reaches back before since (zero:
// every page) or maxPages were read; complete is false when the pages ran
// out first.
func (c *Client) PullRequestsSince(ctx context.Context, state, base string, since time.Time, maxPages int) (prs []PullRequest, complete bool, err error) {
	opts := &github.PullRequestListOptions{State: state, Base: base, Sort: "updated", Direction: "desc",
		ListOptions: github.ListOptions{PerPage: 100, Page: 1}}
	for range maxPages {
		page, resp, err := c.listPRs(ctx, opts)
		if err != nil {
			return nil, false, err
		}
		for _, p := range page {
			pr := pullRequestOf(p)
			if !since.IsZero() && pr.UpdatedAt != nil && pr.UpdatedAt.Before(since) {
				return prs, true, nil
			}
			prs = append(prs, pr)
		}
		if resp.NextPage == 0 || len(page) < opts.PerPage {
			return prs, true, nil
		}
		opts.Page = resp.NextPage
	}
	return prs, false, nil
}

func (c *Client) listPRs(ctx context.Context, opts *github.PullRequestListOptions) ([]*github.PullRequest, *github.Response, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	prs, resp, err := c.gh.PullRequests.List(ctx, c.Owner, c.Repo, opts)
	return prs, resp, apiError(err)
}

// CheckRuns lists the check runs named name for a commit that our App owns
// (with App auth: another App's run of the same name cannot be updated by
// us, GitHub answers 403).
func (c *Client) CheckRuns(ctx context.Context, sha, name string) ([]CheckRun, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	opts := &github.ListCheckRunsOptions{CheckName: github.String(name), Filter: github.String("latest"),
		ListOptions: github.ListOptions{PerPage: 100}}
	if c.AppID != 0 {
		opts.AppID = github.Int64(c.AppID)
	}
	res, _, err := c.gh.Checks.ListCheckRunsForRef(ctx, c.Owner, c.Repo, sha, opts)
	if err != nil {
		return nil, apiError(err)
	}
	runs := make([]CheckRun, 0, len(res.CheckRuns))
	for _, r := range res.CheckRuns {
		run := checkRunOf(r)
		if c.AppID != 0 && run.AppID != c.AppID {
			continue // the filter is GitHub's; this is ours
		}
		runs = append(runs, run)
	}
	return runs, nil
}

func checkRunOf(r *github.CheckRun) CheckRun {
	run := CheckRun{ID: r.GetID(), Name: r.GetName(), HeadSHA: r.GetHeadSHA(), Status: r.GetStatus(),
		Conclusion: r.GetConclusion(), AppID: r.GetApp().GetID()}
	if o := r.GetOutput(); o != nil {
		run.Output = &CheckOutput{Title: o.GetTitle(), Summary: o.GetSummary(), AnnotationsCount: o.GetAnnotationsCount()}
	}
	return run
}

// outputOf converts an output to go-github's; zero optional fields stay
// unset so they are not sent (GitHub refuses columns on multi-line
// annotations).
func outputOf(o *CheckOutput) *github.CheckRunOutput {
	if o == nil {
		return nil
	}
	out := &github.CheckRunOutput{Title: github.String(o.Title), Summary: github.String(o.Summary)}
	for _, a := range o.Annotations {
		ga := &github.CheckRunAnnotation{Path: github.String(a.Path), StartLine: github.Int(a.StartLine),
			EndLine: github.Int(a.EndLine), AnnotationLevel: github.String(a.AnnotationLevel),
			Message: github.String(a.Message)}
		if a.StartColumn != 0 {
			ga.StartColumn = github.Int(a.StartColumn)
		}
		if a.EndColumn != 0 {
			ga.EndColumn = github.Int(a.EndColumn)
		}
		if a.Title != "" {
			ga.Title = github.String(a.Title)
		}
		out.Annotations = append(out.Annotations, ga)
	}
	return out
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// CreateCheckRun creates a check run.
func (c *Client) CreateCheckRun(ctx context.Context, run CheckRun) (CheckRun, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, _, err := c.gh.Checks.CreateCheckRun(ctx, c.Owner, c.Repo, github.CreateCheckRunOptions{
		Name: run.Name, HeadSHA: run.HeadSHA, Status: optional(run.Status), Conclusion: optional(run.Conclusion),
		Output: outputOf(run.Output)})
	if err != nil {
		return CheckRun{}, apiError(err)
	}
	return checkRunOf(r), nil
}

// UpdateCheckRun updates a check run; annotations are appended to those it
// has.
func (c *Client) UpdateCheckRun(ctx context.Context, id int64, run CheckRun) (CheckRun, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	if run.Name == "" {
		// go-github always sends "name" on update; an empty one would
		// rename the run, so an update that names none keeps ours.
		run.Name = CheckName
	}
	r, _, err := c.gh.Checks.UpdateCheckRun(ctx, c.Owner, c.Repo, id, github.UpdateCheckRunOptions{
		Name: run.Name, Status: optional(run.Status), Conclusion: optional(run.Conclusion), Output: outputOf(run.Output)})
	if err != nil {
		return CheckRun{}, apiError(err)
	}
	return checkRunOf(r), nil
}

// CreateStatus sets the commit status of sha for st.Context.
func (c *Client) CreateStatus(ctx context.Context, sha string, st Status) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, _, err := c.gh.Repositories.CreateStatus(ctx, c.Owner, c.Repo, sha, &github.RepoStatus{
		State: github.String(st.State), Context: github.String(st.Context),
		Description: github.String(st.Description), TargetURL: optional(st.TargetURL)})
	return apiError(err)
}

// AppAuth authenticates as a GitHub App installation: an RS256 JWT (iss =
// App ID, iat 60 s in the past for clock drift, exp 9 minutes ahead, under
// GitHub's 10-minute cap) buys an installation token, cached until shortly
// before its expires_at.
type AppAuth struct {
	AppID          string
	Key            *rsa.PrivateKey
	InstallationID int64 // 0: looked up from the repository
	Owner, Repo    string
	// Refresh is how long before expires_at a token is replaced (5 min).
	Refresh time.Duration
	// Permissions the installation token is narrowed to (GitHub's names:
	// "checks": "write", ...); DefaultPermissions unless set. The token is
	// also narrowed to the one repository.
	Permissions map[string]string
	Now         func() time.Time

	// api has no credentials of its own: each mint signs a fresh JWT and
	// calls through api.WithAuthToken(jwt).
	api *github.Client

	mu      sync.Mutex // guards the fields below
	token   string
	expires time.Time
}

// Installation token permissions: what serve uses (check runs; reading pull
// requests, contents for git, metadata), and what rollback --open-pr adds
// (a branch, a commit and a pull request).
var (
	DefaultPermissions  = map[string]string{"checks": "write", "contents": "read", "metadata": "read", "pull_requests": "read"}
	RollbackPermissions = map[string]string{"contents": "write", "metadata": "read", "pull_requests": "write"}
)

// NewAppAuth returns the App token source for owner/repo.
func NewAppAuth(apiURL, appID string, key *rsa.PrivateKey, owner, repo string) (*AppAuth, error) {
	api, err := newGitHub(apiURL, http.DefaultTransport)
	if err != nil {
		return nil, err
	}
	if _, err := strconv.ParseInt(appID, 10, 64); err != nil {
		return nil, fmt.Errorf("--github-app-id %q: want the App's numeric ID", appID)
	}
	return &AppAuth{AppID: appID, Key: key, Owner: owner, Repo: repo, Refresh: 5 * time.Minute,
		Now: time.Now, api: api}, nil
}

// ParseKey reads an App private key PEM (PKCS #1 or PKCS #8).
func ParseKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("app key: no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("app key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("app key: not an RSA key")
	}
	return rk, nil
}

// JWT signs the App's JSON Web Token.
func (a *AppAuth) JWT() (string, error) {
	now := a.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer:    a.AppID,
		IssuedAt:  jwt.NewNumericDate(now.Add(-60 * time.Second)),
		ExpiresAt: jwt.NewNumericDate(now.Add(9 * time.Minute)),
	})
	s, err := t.SignedString(a.Key)
	if err != nil {
		return "", fmt.Errorf("sign app jwt: %w", err)
	}
	return s, nil
}

// Token returns a valid installation token, minting one when none is
// cached or the cached one is within Refresh of expiring.
func (a *AppAuth) Token(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && a.Now().Add(a.Refresh).Before(a.expires) {
		return a.token, nil
	}
	jw, err := a.JWT()
	if err != nil {
		return "", err
	}
	app := a.api.WithAuthToken(jw)
	ctx, cancel := context.WithTimeout(ctx, 2*callTimeout)
	defer cancel()
	if a.InstallationID == 0 {
		inst, _, err := app.Apps.FindRepositoryInstallation(ctx, a.Owner, a.Repo)
		if err != nil {
			return "", fmt.Errorf("find app installation: %w", apiError(err))
		}
		a.InstallationID = inst.GetID()
	}
	// A token for the one repository and the permissions used: a leaked
	// token can do no more than promptvault does.
	perms := a.Permissions
	if perms == nil {
		perms = DefaultPermissions
	}
	var gp github.InstallationPermissions
	if b, err := json.Marshal(perms); err != nil || json.Unmarshal(b, &gp) != nil {
		return "", fmt.Errorf("installation token permissions %v: unknown", perms)
	}
	tok, _, err := app.Apps.CreateInstallationToken(ctx, a.InstallationID, &github.InstallationTokenOptions{
		Repositories: []string{a.Repo}, Permissions: &gp})
	if err != nil {
		return "", fmt.Errorf("installation token: %w", apiError(err))
	}
	if tok.GetToken() == "" {
		return "", errors.New("installation token: empty answer")
	}
	a.token, a.expires = tok.GetToken(), tok.GetExpiresAt().Time
	return a.token, nil
}

// Forget drops the cached token and installation (the App was uninstalled
// or suspended, or a call was refused with 401).
func (a *AppAuth) Forget() {
	a.mu.Lock()
	a.token, a.expires, a.InstallationID = "", time.Time{}, 0
	a.mu.Unlock()
}
