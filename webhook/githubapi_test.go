package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// GitHub's own description of its REST API and webhook payloads
// (../shared/testdata/github-openapi, from @octokit/openapi and
// @octokit/openapi-webhooks): the fake GitHub validates every request body
// the client sends against the operation's request schema, builds its
// answers on a skeleton that has every required field of the response
// schema and checks them against it, and the tests' webhook payloads are
// completed and checked the same way against webhooks.json. Without the
// shared directory (a user's clone) the fake still answers, unchecked.

type apiOp struct {
	key      string // "METHOD /path/{param}"
	method   string
	re       *regexp.Regexp
	request  any // normalized JSON Schema of the body, nil when none
	reqSch   *jsonschema.Schema
	response map[int]any // normalized schema by status
	respSch  map[int]*jsonschema.Schema
}

type apiSpec struct {
	ops      []*apiOp
	webhooks map[string]any // "pull-request-opened" → normalized payload schema
	hookSch  map[string]*jsonschema.Schema
	mu       sync.Mutex // guards hookSch
}

var (
	specOnce sync.Once
	spec     *apiSpec
	specErr  error
)

// githubSpec loads the shared OpenAPI documents once per test process; nil
// when they are absent.
func githubSpec(t testing.TB) *apiSpec {
	t.Helper()
	specOnce.Do(func() { spec, specErr = loadSpec(filepath.Join(sharedTestdata, "github-openapi")) })
	if specErr != nil {
		t.Fatal(specErr)
	}
	return spec
}

func loadSpec(dir string) (*apiSpec, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "rest-operations.json"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var doc struct {
		Operations map[string]struct {
			RequestBody *struct {
				Content map[string]struct {
					Schema any `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
			Responses map[string]struct {
				Content map[string]struct {
					Schema any `json:"schema"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"operations"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("rest-operations.json: %w", err)
	}
	s := &apiSpec{webhooks: map[string]any{}, hookSch: map[string]*jsonschema.Schema{}}
	param := regexp.MustCompile(`\\\{[a-z_]+\\\}`)
	for key, op := range doc.Operations {
		method, path, _ := strings.Cut(key, " ")
		o := &apiOp{key: key, method: method, response: map[int]any{}, respSch: map[int]*jsonschema.Schema{}}
		// {ref} and {path} may hold slashes (git/ref/heads/x, contents/a/b).
		pat := param.ReplaceAllStringFunc(regexp.QuoteMeta(path), func(p string) string {
			if strings.Contains(p, "ref") || strings.Contains(p, "path") {
				return `.+`
			}
			return `[^/]+`
		})
		o.re = regexp.MustCompile("^" + pat + "$")
		if op.RequestBody != nil {
			if c, ok := op.RequestBody.Content["application/json"]; ok {
				o.request = normalize(c.Schema)
				if o.reqSch, err = compileSchema(key+" request", o.request); err != nil {
					return nil, err
				}
			}
		}
		for code, r := range op.Responses {
			n, err := strconv.Atoi(code)
			if err != nil {
				continue
			}
			if c, ok := r.Content["application/json"]; ok && c.Schema != nil {
				o.response[n] = normalize(c.Schema)
				if o.respSch[n], err = compileSchema(fmt.Sprintf("%s %d", key, n), o.response[n]); err != nil {
					return nil, err
				}
			}
		}
		s.ops = append(s.ops, o)
	}
	// Literal paths before templated ones (pulls/{n} vs pulls/{n}/files).
	sort.Slice(s.ops, func(i, j int) bool { return len(s.ops[i].key) > len(s.ops[j].key) })

	raw, err = os.ReadFile(filepath.Join(dir, "webhooks.json"))
	if err != nil {
		return nil, err
	}
	var hooks struct {
		Webhooks map[string]struct {
			Post struct {
				RequestBody struct {
					Content map[string]struct {
						Schema any `json:"schema"`
					} `json:"content"`
				} `json:"requestBody"`
			} `json:"post"`
		} `json:"webhooks"`
	}
	if err := json.Unmarshal(raw, &hooks); err != nil {
		return nil, fmt.Errorf("webhooks.json: %w", err)
	}
	for name, h := range hooks.Webhooks {
		if c, ok := h.Post.RequestBody.Content["application/json"]; ok {
			s.webhooks[name] = normalize(c.Schema)
		}
	}
	return s, nil
}

func compileSchema(name string, schema any) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	url := "mem://" + strings.NewReplacer(" ", "_", "{", "", "}", "").Replace(name) + ".json"
	if err := c.AddResource(url, schema); err != nil {
		return nil, fmt.Errorf("schema %s: %w", name, err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", name, err)
	}
	return sch, nil
}

// normalize turns an OpenAPI 3.0 schema into JSON Schema 2020-12: nullable
// becomes a "null" type, annotations that 2020-12 reads differently
// (example, discriminator) go.
func normalize(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{}
	for k, x := range m {
		switch k {
		case "properties", "patternProperties":
			props := map[string]any{}
			for pk, pv := range x.(map[string]any) {
				props[pk] = normalize(pv)
			}
			out[k] = props
		case "items", "additionalProperties", "not":
			out[k] = normalize(x)
		case "allOf", "anyOf", "oneOf":
			var list []any
			for _, e := range x.([]any) {
				list = append(list, normalize(e))
			}
			out[k] = list
		case "nullable", "example", "examples", "discriminator", "externalDocs", "readOnly", "writeOnly", "deprecated":
		default:
			out[k] = x
		}
	}
	if m["nullable"] == true {
		if t, ok := out["type"].(string); ok {
			out["type"] = []any{t, "null"}
			if e, ok := out["enum"].([]any); ok {
				out["enum"] = append(e, nil)
			}
		} else {
			return map[string]any{"anyOf": []any{out, map[string]any{"type": "null"}}}
		}
	}
	return out
}

func (s *apiSpec) op(method, path string) *apiOp {
	path = strings.TrimPrefix(path, "/api/v3")
	for _, o := range s.ops {
		if o.method == method && o.re.MatchString(path) {
			return o
		}
	}
	return nil
}

// validate checks a JSON document against a compiled schema; the error
// lists every violation.
func validate(sch *jsonschema.Schema, doc []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// hookSchema compiles the payload schema of event and action
// ("pull_request", "opened" → pull-request-opened) on first use.
func (s *apiSpec) hookSchema(event, action string) (any, *jsonschema.Schema, error) {
	name := strings.ReplaceAll(event, "_", "-")
	if action != "" {
		name += "-" + strings.ReplaceAll(action, "_", "-")
	}
	raw, ok := s.webhooks[name]
	if !ok {
		return nil, nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch := s.hookSch[name]; sch != nil {
		return raw, sch, nil
	}
	sch, err := compileSchema("webhook "+name, raw)
	if err != nil {
		return nil, nil, err
	}
	s.hookSch[name] = sch
	return raw, sch, nil
}

// skeleton is a minimal instance of schema: every required property, null
// where null is allowed, the first enum value, placeholder scalars.
func skeleton(schema any) any { return skeletonOf(schema, true) }

// skeletonOf is skeleton; without allowNull it builds the non-null form
// (an object the caller fills).
func skeletonOf(schema any, allowNull bool) any {
	m, ok := schema.(map[string]any)
	if !ok {
		return nil
	}
	if all, ok := m["allOf"].([]any); ok {
		out := map[string]any{}
		for _, s := range all {
			if sm, ok := skeleton(s).(map[string]any); ok {
				for k, v := range sm {
					out[k] = v
				}
			}
		}
		return out
	}
	for _, k := range []string{"anyOf", "oneOf"} {
		if alts, ok := m[k].([]any); ok {
			for _, a := range alts {
				if am, _ := a.(map[string]any); am["type"] == "null" && allowNull {
					return nil
				}
			}
			for _, a := range alts {
				if am, _ := a.(map[string]any); am["type"] != "null" {
					return skeletonOf(a, allowNull)
				}
			}
			return nil
		}
	}
	if e, ok := m["enum"].([]any); ok && len(e) > 0 {
		for _, v := range e {
			if v == nil && allowNull {
				return nil
			}
		}
		for _, v := range e {
			if v != nil {
				return v
			}
		}
		return nil
	}
	if c, ok := m["const"]; ok {
		return c
	}
	typ := m["type"]
	if ts, ok := typ.([]any); ok {
		typ = nil
		for _, t := range ts {
			if t == "null" && allowNull {
				return nil
			}
			if t != "null" && typ == nil {
				typ = t
			}
		}
	}
	switch typ {
	case "object":
		out := map[string]any{}
		props, _ := m["properties"].(map[string]any)
		req, _ := m["required"].([]any)
		for _, r := range req {
			out[r.(string)] = skeleton(props[r.(string)])
		}
		return out
	case "array":
		return []any{}
	case "integer", "number":
		if min, ok := m["minimum"].(float64); ok {
			return min
		}
		return 1
	case "boolean":
		return false
	case "string":
		switch m["format"] {
		case "date-time":
			return "2026-01-01T00:00:00Z"
		case "uri", "url":
			return "https://example.com/"
		case "email":
			return "octocat@example.com"
		}
		if n, ok := m["minLength"].(float64); ok {
			return strings.Repeat("x", int(n))
		}
		return ""
	}
	return nil
}

// build lays the values a test or the fake chose (JSON-shaped: maps,
// slices, scalars) over the schema's skeleton, element by element, so
// arrays of objects get their required fields too.
func build(schema, over any) any {
	m, _ := schema.(map[string]any)
	for m != nil && (m["allOf"] != nil || m["anyOf"] != nil || m["oneOf"] != nil) {
		if all, ok := m["allOf"].([]any); ok {
			merged := map[string]any{"type": "object", "properties": map[string]any{}}
			var req []any
			for _, s := range all {
				sm, _ := s.(map[string]any)
				for k, v := range mapOf(sm["properties"]) {
					merged["properties"].(map[string]any)[k] = v
				}
				r, _ := sm["required"].([]any)
				req = append(req, r...)
			}
			merged["required"] = req
			m = merged
		}
		for _, k := range []string{"anyOf", "oneOf"} {
			if alts, ok := m[k].([]any); ok {
				m = pickAlt(alts, over)
				break
			}
		}
	}
	switch o := over.(type) {
	case map[string]any:
		out, _ := skeletonOf(m, false).(map[string]any)
		if out == nil {
			out = map[string]any{}
		}
		props := mapOf(m["properties"])
		for k, v := range o {
			out[k] = build(props[k], v)
		}
		return out
	case []any:
		out := make([]any, len(o))
		for i, v := range o {
			out[i] = build(m["items"], v)
		}
		return out
	}
	return over
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// pickAlt chooses the alternative of an anyOf/oneOf that fits over's kind.
func pickAlt(alts []any, over any) map[string]any {
	want := "object"
	switch over.(type) {
	case []any:
		want = "array"
	case string:
		want = "string"
	case nil:
		want = "null"
	}
	for _, a := range alts {
		am, _ := a.(map[string]any)
		t := am["type"]
		if t == want || (t == nil && want == "object") {
			return am
		}
		if ts, ok := t.([]any); ok {
			for _, x := range ts {
				if x == want {
					return am
				}
			}
		}
	}
	m, _ := alts[0].(map[string]any)
	return m
}

// jsonShape converts any Go value to maps, slices and scalars.
func jsonShape(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// completePayload fills a webhook payload built in a test to the event's
// schema and checks it; events the schema file lacks pass as they are.
func completePayload(t testing.TB, event string, payload any) []byte {
	t.Helper()
	p := jsonShape(t, payload)
	action, _ := mapOf(p)["action"].(string)
	s := githubSpec(t)
	if s != nil {
		raw, sch, err := s.hookSchema(event, action)
		if err != nil {
			t.Fatal(err)
		}
		if sch != nil {
			p = build(raw, p)
			b, _ := json.Marshal(p)
			if err := validate(sch, b); err != nil {
				t.Fatalf("%s %s payload does not satisfy webhooks.json: %v", event, action, err)
			}
			return b
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
