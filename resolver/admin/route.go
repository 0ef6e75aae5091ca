package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver"
)

// Route templates of the admin API: the routing table's keys, the
// OpenAPI document's paths and the "route" label of the HTTP metrics.
const (
	routePrompts    = "/v1/admin/prompts"
	routeVersions   = "/v1/admin/prompts/{key}/versions"
	routeVersion    = "/v1/admin/prompts/{key}/versions/{label}"
	routeDiff       = "/v1/admin/prompts/{key}/diff"
	routePromote    = "/v1/admin/prompts/{key}/promote"
	routeRollback   = "/v1/admin/prompts/{key}/rollback"
	routeStaging    = "/v1/admin/prompts/{key}/staging"
	routeDraft      = "/v1/admin/prompts/{key}/drafts/{name}"
	routeDraftMerge = "/v1/admin/prompts/{key}/drafts/{name}/merge"
	routeValidate   = "/v1/admin/validate"
	routePreview    = "/v1/admin/preview"
	routeSettings   = "/v1/admin/settings"
	routeAudit      = "/v1/admin/audit"
	routeSync       = "/v1/admin/sync"
	routeKeys       = "/v1/admin/keys"
	routeKey        = "/v1/admin/keys/{id}"
	routeSession    = "/ui/session"
	routeUIStatic   = "/ui/"
	routeOther      = "other"
	routeAdminMiss  = "/v1/admin/*" // an admin path that matches no route
)

// promptActions are the last segment of the per-prompt routes that end in a
// fixed word. A key's own segments may be such words too ("team/diff"); the
// suffix wins, so the key is everything before it.
var promptActions = []struct{ suffix, route string }{
	{"/versions", routeVersions},
	{"/diff", routeDiff},
	{"/promote", routePromote},
	{"/rollback", routeRollback},
	{"/staging", routeStaging},
}

// params are the values parsed from an admin path.
type params struct {
	key string // prompt key
	arg string // version label, draft name or key ID
}

var errNoRoute = fmt.Errorf("%w: no such admin endpoint", index.ErrNotFound)

// parseAPIPath maps an escaped admin path to its route template and
// parameters. Labels and draft names may contain "/" (a branch
// "feature/x" is draft "draft:feature/x"), so they are split off by
// marker: a key never contains ':' or '%', so "/versions/draft:" (or its
// escaped form) ends the key at its first occurrence; otherwise the label or
// name is the last segment, and clients percent-encode a "/" inside it.
func parseAPIPath(escaped string) (string, params, error) {
	rest, ok := strings.CutPrefix(escaped, APIPrefix)
	if !ok {
		return "", params{}, errNoRoute
	}
	switch rest {
	case "prompts":
		return routePrompts, params{}, nil
	case "settings":
		return routeSettings, params{}, nil
	case "audit":
		return routeAudit, params{}, nil
	case "sync":
		return routeSync, params{}, nil
	case "validate":
		return routeValidate, params{}, nil
	case "preview":
		return routePreview, params{}, nil
	case "keys":
		return routeKeys, params{}, nil
	}
	if route, p, ok, err := deliveryRoute(rest); ok {
		if err != nil {
			return "", params{}, fmt.Errorf("%w: delivery ID in path: %v", index.ErrInvalid, err)
		}
		return route, p, nil
	}
	if id, ok := strings.CutPrefix(rest, "keys/"); ok && id != "" && !strings.Contains(id, "/") {
		id, err := url.PathUnescape(id)
		if err != nil {
			return "", params{}, fmt.Errorf("%w: key ID in path: %v", index.ErrInvalid, err)
		}
		return routeKey, params{arg: id}, nil
	}
	if route, p, ok, err := parseWebhookPath(rest); ok {
		return route, p, err
	}
	rest, ok = strings.CutPrefix(rest, "prompts/")
	if !ok || rest == "" {
		return "", params{}, errNoRoute
	}
	for _, a := range promptActions {
		if k, ok := strings.CutSuffix(rest, a.suffix); ok && k != "" {
			key, err := pathKey(k)
			return a.route, params{key: key}, err
		}
	}
	for _, m := range []struct{ marker, route string }{{"/versions/", routeVersion}, {"/drafts/", routeDraft}} {
		i := draftMarker(rest, m.marker)
		if i < 0 {
			i = strings.LastIndex(rest, m.marker)
		}
		if i <= 0 || i+len(m.marker) == len(rest) {
			continue
		}
		key, err := pathKey(rest[:i])
		if err != nil {
			return "", params{}, err
		}
		escArg, route := rest[i+len(m.marker):], m.route
		// ".../drafts/NAME/merge" merges; a draft literally named "x/merge"
		// is reached with its "/" escaped.
		if a, ok := strings.CutSuffix(escArg, "/merge"); ok && m.route == routeDraft && a != "" {
			escArg, route = a, routeDraftMerge
		}
		arg, err := url.PathUnescape(escArg)
		if err != nil {
			return "", params{}, fmt.Errorf("%w: %s in path: %v", index.ErrInvalid, strings.Trim(m.marker, "/"), err)
		}
		return route, params{key: key, arg: arg}, nil
	}
	return "", params{}, errNoRoute
}

// draftMarker finds marker followed by "draft:" (plain or escaped).
func draftMarker(s, marker string) int {
	best := -1
	for _, d := range []string{"draft:", "draft%3A", "draft%3a"} {
		if i := strings.Index(s, marker+d); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	return best
}

// pathKey unescapes and checks a prompt key from a path, as a 400 naming
// what is wrong (ValidateKey's *Problems would be a 422 about a file).
func pathKey(escaped string) (string, error) {
	key, err := url.PathUnescape(escaped)
	if err != nil {
		return "", fmt.Errorf("%w: prompt key in path: %v", index.ErrInvalid, err)
	}
	if err := promptvault.ValidateKey(key); err != nil {
		msg := err.Error()
		if p, ok := err.(*promptvault.Problems); ok && len(p.List) > 0 {
			msg = p.List[0].Message
		}
		return "", fmt.Errorf("%w: invalid prompt key in path: %s", index.ErrInvalid, msg)
	}
	return key, nil
}

// fixedRoutes are the service's routes without parameters outside admin.
var fixedRoutes = []string{"/healthz", "/readyz", "/metrics", "/v1/events", OpenAPIPath, "/webhooks/github"}

// Route names the route template of any request the server answers, for
// the HTTP metrics' "route" label. Unknown paths are "other", so scanners
// cannot create series. It allocates nothing for reads.
func Route(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, resolver.PromptsPrefix):
		if r.Method == http.MethodPost && strings.HasSuffix(p, "/render") {
			return "/v1/prompts/{key}/render"
		}
		return "/v1/prompts/{key}"
	case strings.HasPrefix(p, APIPrefix):
		rt, _, err := parseAPIPath(r.URL.EscapedPath())
		if err != nil {
			return routeAdminMiss
		}
		return rt
	case p == routeSession:
		return routeSession
	case strings.HasPrefix(p, UIPrefix) || p == "/ui":
		return routeUIStatic
	}
	for _, fixed := range fixedRoutes {
		if p == fixed {
			return fixed // the constant, not the request's string
		}
	}
	return routeOther
}
