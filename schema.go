package promptvault

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"
)

// schemaURL names the schema being compiled. Relative references resolve
// against it, and so reach the refusing loader rather than the file system.
const schemaURL = "promptvault:///schema.json"

// CompileSchema compiles a JSON Schema given as a decoded YAML or JSON value.
// The value is first normalised through JSON, so only what JSON can say
// reaches the compiler. The loader refuses every external reference
// (file://, http://, ...): a prompt file is untrusted input and must not
// make the server read its own files or call out. References inside the
// schema ("#/$defs/x") and the bundled meta-schemas still work.
//
// Results are memoised by the schema's JSON: a prompt's schema rarely
// changes between versions, and compiling (which validates the schema
// against its meta-schema) was the largest cost of indexing a history. A
// compiled schema is immutable and safe for concurrent use.
func CompileSchema(v any) (*jsonschema.Schema, error) {
	c, err := compileSchema(v)
	return c.schema, err
}

// compiledSchema is a compiled schema and what validating against it may
// cost (schemaCost), worked out once per distinct schema.
type compiledSchema struct {
	schema *jsonschema.Schema
	cost   int
}

func compileSchema(v any) (compiledSchema, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return compiledSchema{}, fmt.Errorf("schema cannot be represented as JSON: %w", err)
	}
	return schemas.get(sha256.Sum256(b), func() (compiledSchema, error) {
		s, err := compileJSON(b)
		if err != nil {
			return compiledSchema{}, err
		}
		return compiledSchema{schema: s, cost: schemaCost(s, inlineValidationBudget)}, nil
	})
}

var schemas = newMemo[compiledSchema](1024)

func compileJSON(b []byte) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("schema cannot be represented as JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(denyLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("add schema: %w", err)
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		return nil, err
	}
	if err := refCycle(sch); err != nil {
		return nil, err
	}
	return sch, nil
}

// RefCycleError is a schema whose references lead back to themselves
// without descending into the value ({"$ref": "#"}, or a → b → a): such a
// schema says nothing, and following it never ends.
type RefCycleError struct{ Path []string }

func (e *RefCycleError) Error() string {
	return "$ref cycle: " + strings.Join(e.Path, " → ") + "; a reference must lead to a schema that says something"
}

// refCycle looks for a cycle among the subschemas that apply to the same
// value: $ref and the in-place applicators (allOf, anyOf, oneOf, not,
// if/then/else). Recursion through properties or items is fine and is not
// followed.
func refCycle(root *jsonschema.Schema) error {
	const (
		visiting = 1
		done     = 2
	)
	state := map[*jsonschema.Schema]int{}
	var stack []string
	var visit func(s *jsonschema.Schema) error
	visit = func(s *jsonschema.Schema) error {
		if s == nil || state[s] == done {
			return nil
		}
		name := "#" + strings.TrimPrefix(strings.TrimPrefix(s.Location, schemaURL), "#")
		if state[s] == visiting {
			path := append([]string(nil), stack...)
			for i, p := range path {
				if p == name {
					path = path[i:]
					break
				}
			}
			return &RefCycleError{Path: append(path, name)}
		}
		state[s] = visiting
		stack = append(stack, name)
		next := append([]*jsonschema.Schema{s.Ref, s.Not, s.If, s.Then, s.Else}, s.AllOf...)
		next = append(append(next, s.AnyOf...), s.OneOf...)
		for _, n := range next {
			if err := visit(n); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[s] = done
		return nil
	}
	for _, s := range allSchemas(root) {
		if err := visit(s); err != nil {
			return err
		}
	}
	return nil
}

// allSchemas lists every schema reachable from root, through any
// keyword: the compiled form keeps subschemas in many differently typed
// fields (*Schema, slices, maps, and any for items and
// additionalProperties).
func allSchemas(root *jsonschema.Schema) []*jsonschema.Schema {
	seen := map[*jsonschema.Schema]bool{}
	var out []*jsonschema.Schema
	var walk func(s *jsonschema.Schema)
	walk = func(s *jsonschema.Schema) {
		if s == nil || seen[s] {
			return
		}
		seen[s] = true
		out = append(out, s)
		for _, c := range childSchemas(s) {
			walk(c)
		}
	}
	walk(root)
	return out
}

// inlineValidationBudget bounds the validations the server runs itself,
// before a render goes to a worker process (Prompt.Render): the schema's
// cost times the number of values in the variables. Validation in this
// library costs about a microsecond per schema applied to a value, so
// the budget is tens of milliseconds at worst and typical renders (a
// schema of 20 nodes, a few hundred values) stay far below it. Anything
// larger is validated in the worker, where the render's time and memory
// bounds hold it: a hostile caller must not make the server itself spend
// seconds of CPU.
const inlineValidationBudget = 1 << 16

// schemaCost is how many schemas validating one value against root can
// apply to it at most: the schema's tree with every reference expanded
// (each node of it applies to a value at most once). It is -1 when that
// exceeds limit or is unbounded: a reference cycle through properties or
// items is valid, but a value nested deep enough then meets the cycle's
// branches at every level (two recursive oneOf branches double the work
// per level), and $dynamicRef and $recursiveRef are resolved at
// validation time, out of this static view.
func schemaCost(root *jsonschema.Schema, limit int) int {
	const visiting = -1
	cost := map[*jsonschema.Schema]int{}
	var visit func(s *jsonschema.Schema) int
	visit = func(s *jsonschema.Schema) int {
		if c, ok := cost[s]; ok {
			return c // visiting: a cycle, -1
		}
		if s.DynamicRef != nil || s.RecursiveRef != nil {
			return -1
		}
		cost[s] = visiting
		n := 1
		for _, c := range childSchemas(s) {
			k := visit(c)
			if k < 0 {
				return -1
			}
			if n += k; n > limit {
				return -1
			}
		}
		cost[s] = n
		return n
	}
	if root == nil {
		return 0
	}
	return visit(root)
}

// childSchemas lists the schemas s refers to directly, through any
// keyword (allSchemas' walk, stopping at each schema found).
func childSchemas(s *jsonschema.Schema) []*jsonschema.Schema {
	var out []*jsonschema.Schema
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				return
			}
			if v.Type() == schemaType {
				out = append(out, v.Interface().(*jsonschema.Schema))
				return
			}
			walk(v.Elem())
		case reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Slice, reflect.Array:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
			}
		case reflect.Map:
			it := v.MapRange()
			for it.Next() {
				walk(it.Value())
			}
		}
	}
	walk(reflect.ValueOf(s).Elem())
	return out
}

var schemaType = reflect.TypeFor[*jsonschema.Schema]()

// valueNodes counts the values in v (each object, array, and scalar),
// stopping once the count passes limit.
func valueNodes(v any, limit int) int {
	n := 0
	var walk func(v any)
	walk = func(v any) {
		if n > limit {
			return
		}
		n++
		switch t := v.(type) {
		case map[string]any:
			for _, x := range t {
				walk(x)
			}
		case []any:
			for _, x := range t {
				walk(x)
			}
		}
	}
	walk(v)
	return n
}

// ErrExternalRef is the cause the refusing loader gives for every URL.
var ErrExternalRef = errors.New("external references are not allowed; refer only inside the schema, such as \"#/$defs/name\"")

type denyLoader struct{}

func (denyLoader) Load(url string) (any, error) { return nil, ErrExternalRef }

// schemaProblems turns a CompileSchema error into problems positioned at the
// YAML node the error is about, when it can be found.
func (w *walker) schemaProblems(field string, n *yaml.Node, err error) {
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
		if msgs := leafErrors(ve); len(msgs) > 0 {
			locs := make([]string, 0, len(msgs))
			for loc := range msgs {
				locs = append(locs, loc)
			}
			sort.Strings(locs)
			for _, loc := range locs {
				shown := loc
				if shown == "" {
					shown = "/"
				}
				w.errAt(nodeAtPointer(n, loc), "%s: invalid schema at %s: %s", field, shown, strings.Join(msgs[loc], "; "))
			}
			return
		}
	}
	var rc *RefCycleError
	if errors.As(err, &rc) {
		at := n
		if len(rc.Path) > 1 {
			if r := findRef(n, rc.Path[len(rc.Path)-1]); r != nil {
				at = r
			}
		}
		w.errAt(at, "%s: %s", field, rc.Error())
		return
	}
	var pe *jsonschema.JSONPointerNotFoundError
	if errors.As(err, &pe) {
		ref := strings.TrimPrefix(pe.URL, schemaURL)
		at := n
		if r := findRef(n, ref); r != nil {
			at = r
		}
		w.errAt(at, "%s: reference %q points to nothing in the schema; want a pointer to a part of it", field, ref)
		return
	}
	var le *jsonschema.LoadURLError
	if errors.As(err, &le) {
		at := n
		if ref := findRef(n, le.URL); ref != nil {
			at = ref
		}
		if errors.Is(le.Err, ErrExternalRef) {
			w.errAt(at, "%s: reference %q is not allowed; refer only inside the schema, such as \"#/$defs/name\"", field, le.URL)
		} else {
			w.errAt(at, "%s: cannot load %q: %s", field, le.URL, cleanMessage(le.Err.Error()))
		}
		return
	}
	w.errAt(n, "%s: schema does not compile: %s", field, cleanMessage(strings.ReplaceAll(err.Error(), schemaURL, "")))
}

var printer = message.NewPrinter(language.English)

// leafErrors groups the meta-schema's complaints by location in the schema.
// Only leaves of the error tree say what is wrong; inner nodes just say
// that "allOf" or "anyOf" failed. Where one location has several leaves,
// they come from anyOf alternatives, and a bare type mismatch ("got string,
// want array") is the least helpful one, so it is dropped when there is
// another.
func leafErrors(ve *jsonschema.ValidationError) map[string][]string {
	all := map[string][]string{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		loc := jsonPointer(e.InstanceLocation)
		if msg := e.ErrorKind.LocalizedString(printer); !slices.Contains(all[loc], msg) {
			all[loc] = append(all[loc], msg)
		}
	}
	walk(ve)
	for loc, msgs := range all {
		var kept []string
		for _, m := range msgs {
			if !strings.HasPrefix(m, "got ") {
				kept = append(kept, m)
			}
		}
		if len(kept) == 0 {
			kept = msgs
		}
		sort.Strings(kept)
		for i := range kept {
			kept[i] = cleanMessage(kept[i])
		}
		all[loc] = kept
	}
	return all
}

func jsonPointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// nodeAtPointer follows a JSON pointer ("/properties/text/type") through
// YAML nodes and returns the deepest node it reaches. For a final object
// member it returns the value, which is what the error is about.
func nodeAtPointer(n *yaml.Node, ptr string) *yaml.Node {
	if ptr == "" || ptr == "/" {
		return n
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == tok {
					n, found = n.Content[i+1], true
					break
				}
			}
			if !found {
				return n
			}
		case yaml.SequenceNode:
			var i int
			if _, err := fmt.Sscanf(tok, "%d", &i); err != nil || i < 0 || i >= len(n.Content) {
				return n
			}
			n = n.Content[i]
		default:
			return n
		}
	}
	return n
}

// findRef finds the $ref (or $schema, $dynamicRef) value that names ref, so
// a refused reference is reported where it is written. ref is either the
// value as written or the absolute URL it resolved to.
func findRef(n *yaml.Node, ref string) *yaml.Node {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind == yaml.ScalarNode && strings.HasPrefix(k.Value, "$") && refNames(v.Value, ref) {
				return v
			}
			if r := findRef(v, ref); r != nil {
				return r
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if r := findRef(c, ref); r != nil {
				return r
			}
		}
	}
	return nil
}

// refNames reports whether the reference written as value resolves to ref,
// fragments aside.
func refNames(value, ref string) bool {
	if value == ref {
		return true
	}
	vb, _, _ := strings.Cut(value, "#")
	rb, _, _ := strings.Cut(ref, "#")
	return vb != "" && (vb == rb || strings.HasSuffix(rb, "/"+strings.TrimPrefix(vb, "./")))
}
