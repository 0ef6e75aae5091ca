package resolver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver/metrics"
)

// RenderSuffix ends the render route: POST /v1/prompts/{key}/render. Keys
// may contain "/", and even end in "/render"; the method tells the routes
// apart (GET reads the key "a/render", POST renders "a").
const RenderSuffix = "/render"

// MaxRenderBody bounds a render request's body. Variables are small; a
// bigger body is 413 before any of it is decoded.
const MaxRenderBody = 1 << 20

// renderRequest is the body of a render.
type renderRequest struct {
	Variables map[string]any `json:"variables"`
}

// renderResponse is SPEC §3's render answer. Every field is always present
// (null when the prompt leaves it unset) so clients see one shape.
type renderResponse struct {
	Key           string                `json:"key"`
	Env           string                `json:"env"`
	Version       string                `json:"version"`
	Messages      []promptvault.Message `json:"messages"`
	Model         *string               `json:"model"`
	FallbackModel *string               `json:"fallback_model"`
	Temperature   *float64              `json:"temperature"`
	MaxTokens     *int                  `json:"max_tokens"`
	TopP          *float64              `json:"top_p"`
	OutputSchema  map[string]any        `json:"output_schema"`
	CacheTimeout  *int                  `json:"cache_timeout"`
	Config        map[string]any        `json:"config"`
}

func isRender(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, PromptsPrefix) && strings.HasSuffix(r.URL.Path, RenderSuffix) &&
		len(r.URL.Path) > len(PromptsPrefix)+len(RenderSuffix)
}

// render answers POST /v1/prompts/{key}/render. The prompt is resolved as a
// read resolves it (key kind, staging, ?version=), then rendered from the
// templates parsed when its document was built.
func (h *Handler) render(w http.ResponseWriter, r *http.Request) {
	s := h.snap.Load()
	k, err := authenticate(s, r)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	key := strings.TrimSuffix(r.URL.Path[len(PromptsPrefix):], RenderSuffix)
	d, err := h.pick(r.Context(), s, k, key, r.URL.RawQuery)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	vars, err := decodeRenderBody(w, r)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	p, err := h.decoded(key, d.src.BlobSHA, d.content)
	if err != nil {
		h.WriteError(w, r, fmt.Errorf("render %s: %w", key, err))
		return
	}
	out, err := p.Render(r.Context(), vars, h.renderLimits)
	if err != nil {
		reason := renderErrorReason(err)
		metrics.RenderError(reason)
		h.log.Debug("render failed", logKey, key, logVersion, d.src.Label(), "reason", reason, "err", err)
		h.WriteError(w, r, err)
		return
	}
	b, err := encodeJSON(newRenderResponse(key, d.src.Env, d.src.Label(), p, out))
	if err != nil {
		h.WriteError(w, r, fmt.Errorf("encode render of %s: %w", key, err))
		return
	}
	writeJSONBytes(w, b)
}

func newRenderResponse(key, env, version string, p *promptvault.Prompt, out *promptvault.Rendered) renderResponse {
	return renderResponse{Key: key, Env: env, Version: version, Messages: out.Messages,
		Model: nonEmpty(p.Model), FallbackModel: nonEmpty(p.FallbackModel), Temperature: p.Temperature,
		MaxTokens: p.MaxTokens, TopP: p.TopP, OutputSchema: p.OutputSchema, CacheTimeout: p.CacheTimeout, Config: p.Config}
}

// Preview renders an uncommitted prompt p (the dashboard editor's) with
// vars through the same entry point, limits and worker pool as
// POST /v1/prompts/{key}/render, and returns that route's JSON answer with
// env and version "preview". Errors are render's (for WriteError).
func (h *Handler) Preview(ctx context.Context, key string, p *promptvault.Prompt, vars map[string]any) ([]byte, error) {
	out, err := p.Render(ctx, vars, h.renderLimits)
	if err != nil {
		metrics.RenderError(renderErrorReason(err))
		return nil, err
	}
	return encodeJSON(newRenderResponse(key, "preview", "preview", p, out))
}

// decodeRenderBody reads {"variables": {...}}. An empty body means no
// variables. Numbers stay json.Number so 3 and 3.0 render as Jinja2 would.
func decodeRenderBody(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRenderBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w: render body is over %d bytes", ErrTooLarge, MaxRenderBody)
		}
		return nil, fmt.Errorf("%w: read body: %v", index.ErrInvalid, err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var req renderRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf(`%w: body: %v; want {"variables": {...}}`, index.ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf(`%w: body has data after the JSON object; want {"variables": {...}}`, index.ErrInvalid)
	}
	if req.Variables == nil {
		req.Variables = map[string]any{}
	}
	return req.Variables, nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// renderErrorReason names a failed render for metrics (one of
// metrics.RenderReasons), never the message.
func renderErrorReason(err error) string {
	var ve *promptvault.VariablesError
	switch {
	case errors.As(err, &ve):
		return "validation"
	case errors.Is(err, promptvault.ErrRender):
		return "render_failed"
	default:
		return "other" // busy, or the client went away
	}
}
