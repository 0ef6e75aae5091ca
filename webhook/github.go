package webhook

import (
	"bytes"
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
)

// The REST API is called through this small client rather than go-github:
// we use a dozen endpoints, and go-github v60 would add a module
// (go-querystring) this repository's go.sum does not carry. The types
// below are the documented JSON shapes, reduced to the fields we read.

// PullRequest is GET /repos/{owner}/{repo}/pulls/{number}.
type PullRequest struct {
	Number         int        `json:"number"`
	State          string     `json:"state"`
	Title          string     `json:"title"`
	HTMLURL        string     `json:"html_url"`
	Merged         bool       `json:"merged"` // absent from list responses: see IsMerged
	MergedAt       *time.Time `json:"merged_at"`
	MergeCommitSHA string     `json:"merge_commit_sha"`
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

// APIError is a non-2xx answer of the REST API.
type APIError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("github %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// Temporary reports errors worth retrying (rate limits, server errors).
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500 ||
		(e.Status == http.StatusForbidden && strings.Contains(strings.ToLower(e.Message), "rate limit"))
}

// TokenSource supplies the bearer token of each API call.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a personal access token or similar (token mode).
type StaticToken string

func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }

// Client calls GitHub's REST API for one repository.
type Client struct {
	Owner, Repo string
	// App is true with App auth: only Apps can create check runs, so token
	// mode reports a commit status instead.
	App  bool
	base *url.URL
	http *http.Client
	auth TokenSource
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

// NewClient returns a client of repository owner/repo at apiURL.
func NewClient(apiURL, owner, repo string, auth TokenSource, app bool) (*Client, error) {
	base, err := APIBase(apiURL)
	if err != nil {
		return nil, err
	}
	return &Client{Owner: owner, Repo: repo, App: app, base: base, auth: auth,
		http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// Token returns the current token (for git over HTTPS).
func (c *Client) Token(ctx context.Context) (string, error) { return c.auth.Token(ctx) }

func (c *Client) repoPath(format string, args ...any) string {
	return fmt.Sprintf("repos/%s/%s/", url.PathEscape(c.Owner), url.PathEscape(c.Repo)) + fmt.Sprintf(format, args...)
}

// do sends one request with the given bearer token and decodes a JSON
// answer into out (when not nil).
func do(ctx context.Context, hc *http.Client, base *url.URL, token, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ref, err := url.Parse(path)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, base.ResolveReference(ref).String(), body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", "promptvault")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("github %s %s: %w", method, ref.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("github %s %s: read: %w", method, ref.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Message string `json:"message"`
		}
		json.Unmarshal(data, &e)
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
		return &APIError{Method: method, Path: ref.Path, Status: resp.StatusCode, Message: e.Message}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("github %s %s: decode: %w", method, ref.Path, err)
		}
	}
	return nil
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	tok, err := c.auth.Token(ctx)
	if err != nil {
		return err
	}
	return do(ctx, c.http, c.base, tok, method, path, in, out)
}

// PullRequest gets one pull request: its state, labels and merge commit as
// they are now (payloads can be stale).
func (c *Client) PullRequest(ctx context.Context, n int) (PullRequest, error) {
	var pr PullRequest
	err := c.call(ctx, http.MethodGet, c.repoPath("pulls/%d", n), nil, &pr)
	return pr, err
}

// PullRequests lists pull requests into base in state (open, closed), most
// recently updated first, at most pages×100.
func (c *Client) PullRequests(ctx context.Context, state, base string, pages int) ([]PullRequest, error) {
	var all []PullRequest
	for page := 1; page <= pages; page++ {
		var prs []PullRequest
		q := url.Values{"state": {state}, "base": {base}, "sort": {"updated"}, "direction": {"desc"},
			"per_page": {"100"}, "page": {strconv.Itoa(page)}}
		if err := c.call(ctx, http.MethodGet, c.repoPath("pulls?%s", q.Encode()), nil, &prs); err != nil {
			return nil, err
		}
		all = append(all, prs...)
		if len(prs) < 100 {
			break
		}
	}
	return all, nil
}

// CheckRuns lists the check runs named name for a commit.
func (c *Client) CheckRuns(ctx context.Context, sha, name string) ([]CheckRun, error) {
	var res struct {
		CheckRuns []CheckRun `json:"check_runs"`
	}
	q := url.Values{"check_name": {name}, "filter": {"latest"}, "per_page": {"100"}}
	err := c.call(ctx, http.MethodGet, c.repoPath("commits/%s/check-runs?%s", sha, q.Encode()), nil, &res)
	return res.CheckRuns, err
}

// CreateCheckRun creates a check run.
func (c *Client) CreateCheckRun(ctx context.Context, run CheckRun) (CheckRun, error) {
	var out CheckRun
	err := c.call(ctx, http.MethodPost, c.repoPath("check-runs"), run, &out)
	return out, err
}

// UpdateCheckRun updates a check run; annotations are appended to those it
// has.
func (c *Client) UpdateCheckRun(ctx context.Context, id int64, run CheckRun) (CheckRun, error) {
	var out CheckRun
	run.ID, run.HeadSHA = 0, ""
	err := c.call(ctx, http.MethodPatch, c.repoPath("check-runs/%d", id), run, &out)
	return out, err
}

// CreateStatus sets the commit status of sha for st.Context.
func (c *Client) CreateStatus(ctx context.Context, sha string, st Status) error {
	return c.call(ctx, http.MethodPost, c.repoPath("statuses/%s", sha), st, nil)
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
	Now     func() time.Time

	base *url.URL
	http *http.Client

	mu      sync.Mutex // guards the fields below
	token   string
	expires time.Time
}

// NewAppAuth returns the App token source for owner/repo.
func NewAppAuth(apiURL, appID string, key *rsa.PrivateKey, owner, repo string) (*AppAuth, error) {
	base, err := APIBase(apiURL)
	if err != nil {
		return nil, err
	}
	if _, err := strconv.ParseInt(appID, 10, 64); err != nil {
		return nil, fmt.Errorf("--github-app-id %q: want the App's numeric ID", appID)
	}
	return &AppAuth{AppID: appID, Key: key, Owner: owner, Repo: repo, Refresh: 5 * time.Minute,
		Now: time.Now, base: base, http: &http.Client{Timeout: 30 * time.Second}}, nil
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
	if a.InstallationID == 0 {
		var inst struct {
			ID int64 `json:"id"`
		}
		p := fmt.Sprintf("repos/%s/%s/installation", url.PathEscape(a.Owner), url.PathEscape(a.Repo))
		if err := do(ctx, a.http, a.base, jw, http.MethodGet, p, nil, &inst); err != nil {
			return "", fmt.Errorf("find app installation: %w", err)
		}
		a.InstallationID = inst.ID
	}
	var tok struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	p := fmt.Sprintf("app/installations/%d/access_tokens", a.InstallationID)
	if err := do(ctx, a.http, a.base, jw, http.MethodPost, p, nil, &tok); err != nil {
		return "", fmt.Errorf("installation token: %w", err)
	}
	if tok.Token == "" {
		return "", errors.New("installation token: empty answer")
	}
	a.token, a.expires = tok.Token, tok.ExpiresAt
	return a.token, nil
}

// Forget drops the cached token and installation (the App was uninstalled
// or suspended, or a call was refused with 401).
func (a *AppAuth) Forget() {
	a.mu.Lock()
	a.token, a.expires, a.InstallationID = "", time.Time{}, 0
	a.mu.Unlock()
}
