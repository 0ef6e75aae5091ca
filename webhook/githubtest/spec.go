package githubtest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// GitHub's own description of its REST API and webhook payloads
// (../shared/testdata/github-openapi, from @octokit/openapi and
// @octokit/openapi-webhooks): a fake validates every request body the
// client sends against the operation's request schema, builds its answers
// on a skeleton that has every required field of the response schema and
// checks them against it, and webhook payloads built in code are completed
// and checked the same way against webhooks.json. Without the shared
// directory (a user's clone) fakes still answer, unchecked.

// extraOperations are operations promptvault calls that the shared file
// lacks, from the same package (testdata/SOURCES.md).
//
//go:embed testdata/rest-operations-extra.json
var extraOperations []byte

// Op is one REST operation of the description.
type Op struct {
	Key            string // "METHOD /path/{param}"
	Method         string
	re             *regexp.Regexp
	Request        any                // normalized JSON Schema of the body, nil when none
	RequestSchema  *jsonschema.Schema // Request compiled
	BodyRequired   bool               // a request without a body is invalid
	Response       map[int]any        // normalized schema by status
	ResponseSchema map[int]*jsonschema.Schema
}

// Spec is the loaded description.
type Spec struct {
	ops      []*Op
	webhooks map[string]any // "pull-request-opened" → normalized payload schema
	hookSch  map[string]*jsonschema.Schema
	mu       sync.Mutex // guards hookSch
}

// SharedDir is ../shared/testdata/github-openapi beside the module root
// (found from this file's path, so it holds from any package's test).
func SharedDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	root := filepath.Join(filepath.Dir(file), "..", "..") // webhook/githubtest → module root
	return filepath.Join(root, "..", "shared", "testdata", "github-openapi")
}

var (
	specOnce sync.Once
	spec     *Spec
	specErr  error
)

// DefaultSpec loads SharedDir's description once per test process; nil
// when it is absent (then fakes answer unchecked).
func DefaultSpec(t testing.TB) *Spec {
	t.Helper()
	specOnce.Do(func() { spec, specErr = LoadSpec(SharedDir()) })
	if specErr != nil {
		t.Fatal(specErr)
	}
	return spec
}

type opsDoc struct {
	Operations map[string]struct {
		RequestBody *struct {
			Required bool `json:"required"`
			Content  map[string]struct {
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

// LoadSpec reads dir's rest-operations.json (plus the operations it lacks
// that this package carries) and webhooks.json; nil, nil when dir has no
// rest-operations.json.
func LoadSpec(dir string) (*Spec, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "rest-operations.json"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := &Spec{webhooks: map[string]any{}, hookSch: map[string]*jsonschema.Schema{}}
	seen := map[string]bool{}
	// The shared file first: its operations win over this package's copies.
	for _, f := range []struct {
		name string
		raw  []byte
	}{{"rest-operations.json", raw}, {"rest-operations-extra.json", extraOperations}} {
		if err := s.addOperations(f.name, f.raw, seen); err != nil {
			return nil, err
		}
	}
	// Literal paths before templated ones (pulls/{n} vs pulls/{n}/files).
	sort.Slice(s.ops, func(i, j int) bool { return len(s.ops[i].Key) > len(s.ops[j].Key) })

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

func (s *Spec) addOperations(name string, raw []byte, seen map[string]bool) error {
	var doc opsDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	param := regexp.MustCompile(`\\\{[a-z_]+\\\}`)
	for key, op := range doc.Operations {
		if seen[key] {
			continue
		}
		seen[key] = true
		method, path, _ := strings.Cut(key, " ")
		o := &Op{Key: key, Method: method, Response: map[int]any{}, ResponseSchema: map[int]*jsonschema.Schema{}}
		// {ref} and {path} may hold slashes (git/ref/heads/x, contents/a/b).
		pat := param.ReplaceAllStringFunc(regexp.QuoteMeta(path), func(p string) string {
			if strings.Contains(p, "ref") || strings.Contains(p, "path") {
				return `.+`
			}
			return `[^/]+`
		})
		o.re = regexp.MustCompile("^" + pat + "$")
		var err error
		if op.RequestBody != nil {
			o.BodyRequired = op.RequestBody.Required
			if c, ok := op.RequestBody.Content["application/json"]; ok {
				o.Request = normalize(c.Schema)
				if o.RequestSchema, err = compileSchema(key+" request", o.Request); err != nil {
					return err
				}
			}
		}
		for code, r := range op.Responses {
			n, err := strconv.Atoi(code)
			if err != nil {
				continue
			}
			if c, ok := r.Content["application/json"]; ok && c.Schema != nil {
				o.Response[n] = normalize(c.Schema)
				if o.ResponseSchema[n], err = compileSchema(fmt.Sprintf("%s %d", key, n), o.Response[n]); err != nil {
					return err
				}
			}
		}
		s.ops = append(s.ops, o)
	}
	return nil
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

// Op is the operation of method and path (with or without Enterprise
// Server's /api/v3 prefix), nil when the description has none.
func (s *Spec) Op(method, path string) *Op {
	path = strings.TrimPrefix(path, "/api/v3")
	for _, o := range s.ops {
		if o.Method == method && o.re.MatchString(path) {
			return o
		}
	}
	return nil
}

// Validate checks a JSON document against a compiled schema; the error
// lists every violation.
func Validate(sch *jsonschema.Schema, doc []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// Serve answers r through h, holding both directions to the description:
// the request body must satisfy the operation's request schema (else 422,
// and the test fails), a call that is no operation of the description
// fails the test (404), and a 2xx answer is laid over the response
// schema's skeleton, so it carries every required field, and checked
// against it. A nil Spec serves unchecked.
func (s *Spec) Serve(t testing.TB, w http.ResponseWriter, r *http.Request, h http.Handler) {
	if s == nil {
		h.ServeHTTP(w, r)
		return
	}
	op := s.Op(r.Method, r.URL.Path)
	if op == nil {
		t.Errorf("fake GitHub: %s %s is no operation of GitHub's REST API description", r.Method, r.URL.Path)
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	if op.RequestSchema != nil {
		body, _ := io.ReadAll(r.Body)
		if len(body) > 0 || op.BodyRequired {
			if err := Validate(op.RequestSchema, body); err != nil {
				t.Errorf("fake GitHub: %s body does not satisfy its request schema: %v\n%s", op.Key, err, body)
				writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Invalid request.\n\n" + err.Error()})
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if schema, ok := op.Response[rec.Code]; ok && len(body) > 0 {
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Errorf("fake GitHub: %s answer is not JSON: %v", op.Key, err)
		}
		if rec.Code < 300 {
			body, _ = json.Marshal(Build(schema, v))
		}
		if err := Validate(op.ResponseSchema[rec.Code], body); err != nil {
			t.Errorf("fake GitHub: %s answer does not satisfy its %d response schema: %v", op.Key, rec.Code, err)
		}
	} else if rec.Code >= 300 && rec.Code != http.StatusNotFound && rec.Code != http.StatusUnauthorized && rec.Code < 500 {
		// An error the description does not list for this operation is not
		// one GitHub answers.
		t.Errorf("fake GitHub: %s answered %d, which its description does not list", op.Key, rec.Code)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	w.Write(body)
}

// HookSchema compiles the payload schema of event and action
// ("pull_request", "opened" → pull-request-opened) on first use; nil when
// webhooks.json has none.
func (s *Spec) HookSchema(event, action string) (any, *jsonschema.Schema, error) {
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

// Payload fills a webhook payload (any JSON-shaped Go value; its "action"
// picks the schema) to the event's schema and checks it. Events
// webhooks.json lacks, and every event on a nil Spec, pass as they are.
func (s *Spec) Payload(event string, payload any) ([]byte, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return b, nil
	}
	var p any
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	action, _ := mapOf(p)["action"].(string)
	raw, sch, err := s.HookSchema(event, action)
	if err != nil || sch == nil {
		return b, err
	}
	b, err = json.Marshal(Build(raw, p))
	if err != nil {
		return nil, err
	}
	if err := Validate(sch, b); err != nil {
		return nil, fmt.Errorf("%s %s payload does not satisfy webhooks.json: %w", event, action, err)
	}
	return b, nil
}

// Skeleton is a minimal instance of schema: every required property, null
// where null is allowed, the first enum value, placeholder scalars.
func Skeleton(schema any) any { return skeletonOf(schema, true) }

// skeletonOf is Skeleton; without allowNull it builds the non-null form
// (an object the caller fills).
func skeletonOf(schema any, allowNull bool) any {
	m, ok := schema.(map[string]any)
	if !ok {
		return nil
	}
	if all, ok := m["allOf"].([]any); ok {
		out := map[string]any{}
		for _, s := range all {
			if sm, ok := Skeleton(s).(map[string]any); ok {
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
			out[r.(string)] = Skeleton(props[r.(string)])
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

// Build lays the values a test or a fake chose (JSON-shaped: maps,
// slices, scalars) over the schema's skeleton, element by element, so
// arrays of objects get their required fields too.
func Build(schema, over any) any {
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
			out[k] = Build(props[k], v)
		}
		return out
	case []any:
		out := make([]any, len(o))
		for i, v := range o {
			out[i] = Build(m["items"], v)
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
