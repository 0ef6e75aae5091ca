// Package githubtest is a fake GitHub for tests, at the process boundary
// where the style guide allows fakes: one repository served as real Git
// over smart HTTP (git http-backend behind net/http/cgi, from a bare
// repository), the REST operations promptvault calls answered in the shapes
// of GitHub's own description (spec.go; every request and answer checked)
// and acting on that repository for real — a contents PUT is a commit on
// its branch, a pull request has its refs/pull/N/head, a merge is a merge
// commit on the base branch, refused when Git cannot merge cleanly — and
// webhook deliveries (push, pull_request) signed as GitHub signs them. Like
// a GitHub Enterprise Server, one host serves the pages (/OWNER/NAME/pull/N),
// Git (/OWNER/NAME.git) and the API (/api/v3/).
//
// It speaks token mode (a static token, commit statuses), not App mode; the
// webhook package's own fake covers App authentication and check runs. It
// imports no project package, so any package's tests can use it.
package githubtest
