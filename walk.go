package promptvault

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// The walker checks a yaml.Node tree field by field (notes/libs.md §3).
// Decoding straight into a struct would stop at the first syntax problem,
// report type errors without columns, accept duplicate keys and truncate
// 1.5 into an int; walking nodes gives every problem its line and column.
//
// Aliases are refused wherever they appear rather than followed: a prompt
// file has no need for them, and never expanding one means an alias bomb
// costs nothing.

type walker struct {
	path  string
	data  []byte
	lines []string // data split into lines, built on first use
	probs *Problems
	// decode skips the checks that parse templates and compile schemas
	// (Decode): the structure is still checked, strictly, field by field.
	decode bool
}

func (w *walker) errAt(n *yaml.Node, format string, args ...any) {
	w.probs.add(w.path, n.Line, n.Column, format, args...)
}

// maxDepth bounds free-form nesting (config, schemas): deeper is surely not
// a prompt, and the bound keeps recursion shallow.
const maxDepth = 64

// field describes one top-level field of a prompt file.
type field struct {
	name  string
	check func(w *walker, p *Prompt, v *yaml.Node)
}

var fields = []field{
	{"description", func(w *walker, p *Prompt, v *yaml.Node) { p.Description, _ = w.str("description", v) }},
	{"model", func(w *walker, p *Prompt, v *yaml.Node) { p.Model, _ = w.str("model", v) }},
	{"fallback_model", func(w *walker, p *Prompt, v *yaml.Node) { p.FallbackModel, _ = w.str("fallback_model", v) }},
	{"temperature", func(w *walker, p *Prompt, v *yaml.Node) { p.Temperature = w.float("temperature", v, 0, 2) }},
	{"max_tokens", func(w *walker, p *Prompt, v *yaml.Node) {
		p.MaxTokens = w.int("max_tokens", v, 1, "an integer greater than 0")
	}},
	{"top_p", func(w *walker, p *Prompt, v *yaml.Node) { p.TopP = w.float("top_p", v, 0, 1) }},
	{"system", func(w *walker, p *Prompt, v *yaml.Node) { p.System, _ = w.str("system", v) }},
	{"template", func(w *walker, p *Prompt, v *yaml.Node) { p.Template, _ = w.str("template", v) }},
	{"messages", (*walker).messages},
	{"input_schema", func(w *walker, p *Prompt, v *yaml.Node) {
		p.InputSchema = w.schema("input_schema", v)
		if p.InputSchema != nil && !w.decode {
			c, _ := compileSchema(p.InputSchema) // memoised: compiled just now
			p.input, p.inputCost = c.schema, c.cost
		}
	}},
	{"output_schema", func(w *walker, p *Prompt, v *yaml.Node) { p.OutputSchema = w.schema("output_schema", v) }},
	{"cache_timeout", func(w *walker, p *Prompt, v *yaml.Node) {
		p.CacheTimeout = w.int("cache_timeout", v, 0, "an integer of 0 or more (seconds)")
	}},
	{"config", func(w *walker, p *Prompt, v *yaml.Node) {
		if w.isMapping("config", v, "a mapping") {
			if m, ok := w.freeForm("config", v, 0).(map[string]any); ok {
				p.Config = m
			}
		}
	}},
}

var fieldNames = func() []string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return names
}()

// file parses w.data and walks it into a Prompt, recording problems.
func (w *walker) file() *Prompt {
	dec := yaml.NewDecoder(bytes.NewReader(w.data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			w.probs.add(w.path, 1, 1, "file is empty; want a mapping with template or messages")
		} else {
			w.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		at := &extra
		if len(extra.Content) > 0 {
			at = extra.Content[0]
		}
		w.errAt(at, "file has more than one YAML document; want exactly one")
	} else if !errors.Is(err, io.EOF) {
		w.yamlError(err)
	}

	if len(doc.Content) == 0 {
		w.probs.add(w.path, 1, 1, "file is empty; want a mapping with template or messages")
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		w.errAt(root, "file is empty; want a mapping with template or messages")
		return nil
	}
	if root.Kind != yaml.MappingNode {
		w.errAt(root, "top level is %s; want a mapping of prompt fields", describe(root))
		return nil
	}

	p := &Prompt{}
	keys := map[string]*yaml.Node{}
	w.pairs("", root, func(k, v *yaml.Node) {
		for _, f := range fields {
			if f.name == k.Value {
				keys[k.Value] = k
				f.check(w, p, v)
				return
			}
		}
		w.errAt(k, "unknown field %q%s", k.Value, didYouMean(k.Value, fieldNames))
	})

	tk, mk, sk := keys["template"], keys["messages"], keys["system"]
	switch {
	case tk == nil && mk == nil:
		w.errAt(root, "missing template or messages; want exactly one of them")
	case tk != nil && mk != nil:
		later := mk
		if tk.Line > mk.Line || tk.Line == mk.Line && tk.Column > mk.Column {
			later = tk
		}
		w.errAt(later, "template and messages are both set; want exactly one of them")
	case sk != nil && mk != nil:
		w.errAt(sk, "system is only allowed with template; with messages, put a {role: system} message first")
	}
	w.templates(p, root)
	return p
}

var yamlLineError = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError reports a yaml.v3 syntax error. yaml.v3 gives a line but no
// column, so the column is 0 (unknown).
func (w *walker) yamlError(err error) {
	msg := err.Error()
	if m := yamlLineError.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		w.probs.add(w.path, line, 0, "yaml syntax error: %s", m[2])
		return
	}
	w.probs.add(w.path, 0, 0, "yaml syntax error: %s", strings.TrimPrefix(msg, "yaml: "))
}

// pairs calls fn for each key and value of mapping m whose key is a plain
// string seen for the first time. Other keys are problems here, so callers
// only deal with their own fields. prefix names the mapping in messages
// ("" for the top level).
func (w *walker) pairs(prefix string, m *yaml.Node, fn func(k, v *yaml.Node)) {
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		switch {
		case k.Kind == yaml.AliasNode:
			w.errAt(k, "%saliases are not supported in prompt files; write the key out", at(prefix))
			continue
		case k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge":
			w.errAt(k, "%smerge keys (<<) are not supported in prompt files; write the fields out", at(prefix))
			continue
		case k.Kind != yaml.ScalarNode:
			w.errAt(k, "%skey is %s; want a string", at(prefix), describe(k))
			continue
		case k.ShortTag() != "!!str":
			w.errAt(k, "%skey %s is %s; want a string (quote it)", at(prefix), k.Value, describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			w.errAt(k, "%sduplicate key %q; it is already set on line %d", at(prefix), k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		if v.Kind == yaml.AliasNode {
			w.errAt(v, "%s: aliases are not supported in prompt files; write the value out", join(prefix, k.Value))
			continue
		}
		fn(k, v)
	}
}

// at prefixes a message with the mapping it is about.
func at(prefix string) string {
	if prefix == "" {
		return ""
	}
	return prefix + ": "
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// describe names what a node is, for "got X; want Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.AliasNode:
		return "an alias"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	}
	v := n.Value
	if utf8.RuneCountInString(v) > 40 {
		v = string([]rune(v)[:37]) + "..."
	}
	switch tag := n.ShortTag(); tag {
	case "!!null":
		return "null"
	case "!!bool":
		return fmt.Sprintf("a boolean (%s)", v)
	case "!!int":
		return fmt.Sprintf("an integer (%s)", v)
	case "!!float":
		return fmt.Sprintf("a number (%s)", v)
	case "!!str":
		return fmt.Sprintf("a string (%q)", v)
	case "!!timestamp":
		return fmt.Sprintf("a timestamp (%s)", v)
	case "!!binary":
		return "binary data"
	default:
		return fmt.Sprintf("a value tagged %s", tag)
	}
}

func (w *walker) str(name string, v *yaml.Node) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
		w.errAt(v, "%s: got %s; want a string", name, describe(v))
		return "", false
	}
	return v.Value, true
}

func (w *walker) float(name string, v *yaml.Node, lo, hi float64) *float64 {
	tag := v.ShortTag()
	if v.Kind != yaml.ScalarNode || tag != "!!int" && tag != "!!float" {
		w.errAt(v, "%s: got %s; want a number from %g to %g", name, describe(v), lo, hi)
		return nil
	}
	var f float64
	if err := v.Decode(&f); err != nil || math.IsNaN(f) || f < lo || f > hi {
		w.errAt(v, "%s: %s is out of range; want %g to %g", name, v.Value, lo, hi)
		return nil
	}
	return &f
}

// int checks an integer field. The tag is checked first because yaml.v3
// silently decodes 1.5 into an int as 1.
func (w *walker) int(name string, v *yaml.Node, lo int, want string) *int {
	if v.Kind != yaml.ScalarNode {
		w.errAt(v, "%s: got %s; want %s", name, describe(v), want)
		return nil
	}
	switch v.ShortTag() {
	case "!!int":
	case "!!float":
		w.errAt(v, "%s: %s is not an integer; want %s", name, v.Value, want)
		return nil
	default:
		w.errAt(v, "%s: got %s; want %s", name, describe(v), want)
		return nil
	}
	var i int
	if err := v.Decode(&i); err != nil {
		w.errAt(v, "%s: %s is too large; want %s", name, v.Value, want)
		return nil
	}
	if i < lo {
		w.errAt(v, "%s: %s is out of range; want %s", name, v.Value, want)
		return nil
	}
	return &i
}

func (w *walker) isMapping(name string, v *yaml.Node, want string) bool {
	if v.Kind != yaml.MappingNode {
		w.errAt(v, "%s: got %s; want %s", name, describe(v), want)
		return false
	}
	return true
}

var roles = []string{"system", "user", "assistant"}

func (w *walker) messages(p *Prompt, v *yaml.Node) {
	const want = "a list of messages, each {role: ..., content: ...}"
	if v.Kind != yaml.SequenceNode {
		w.errAt(v, "messages: got %s; want %s", describe(v), want)
		return
	}
	if len(v.Content) == 0 {
		w.errAt(v, "messages: list is empty; want at least one message")
		return
	}
	msgs := make([]Message, 0, len(v.Content))
	for i, item := range v.Content {
		name := fmt.Sprintf("messages[%d]", i)
		if item.Kind == yaml.AliasNode {
			w.errAt(item, "%s: aliases are not supported in prompt files; write the message out", name)
			continue
		}
		if !w.isMapping(name, item, "a mapping with role and content") {
			continue
		}
		var m Message
		var haveRole, haveContent bool
		w.pairs(name, item, func(k, v *yaml.Node) {
			switch k.Value {
			case "role":
				haveRole = true
				if s, ok := w.str(name+".role", v); ok {
					if !contains(roles, s) {
						w.errAt(v, "%s.role: %q is not a role; want system, user or assistant", name, s)
					}
					m.Role = s
				}
			case "content":
				haveContent = true
				m.Content, _ = w.str(name+".content", v)
			default:
				w.errAt(k, "%s: unknown field %q%s; want role and content", name, k.Value, didYouMean(k.Value, []string{"role", "content"}))
			}
		})
		if !haveRole {
			w.errAt(item, "%s: missing role; want system, user or assistant", name)
		}
		if !haveContent {
			w.errAt(item, "%s: missing content; want the message text (a Jinja2 template)", name)
		}
		msgs = append(msgs, m)
	}
	p.Messages = msgs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (w *walker) schema(name string, v *yaml.Node) map[string]any {
	if !w.isMapping(name, v, "a mapping (a JSON Schema object)") {
		return nil
	}
	before := len(w.probs.List)
	m, ok := w.freeForm(name, v, 0).(map[string]any)
	if !ok || len(w.probs.List) > before {
		return nil
	}
	if w.decode {
		return m
	}
	if _, err := CompileSchema(m); err != nil {
		w.schemaProblems(name, v, err)
		return nil
	}
	return m
}

// freeForm converts a node to the JSON value it stands for (map[string]any,
// []any, string, int, float64, bool or nil), reporting whatever JSON cannot
// say: non-string keys, timestamps, infinities, binary and custom tags.
func (w *walker) freeForm(name string, n *yaml.Node, depth int) any {
	if depth > maxDepth {
		w.errAt(n, "%s: nested more than %d levels deep; want a flatter value", name, maxDepth)
		return nil
	}
	switch n.Kind {
	case yaml.AliasNode:
		w.errAt(n, "%s: aliases are not supported in prompt files; write the value out", name)
		return nil
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		w.pairs(name, n, func(k, v *yaml.Node) {
			m[k.Value] = w.freeForm(join(name, k.Value), v, depth+1)
		})
		return m
	case yaml.SequenceNode:
		l := make([]any, len(n.Content))
		for i, c := range n.Content {
			l[i] = w.freeForm(fmt.Sprintf("%s[%d]", name, i), c, depth+1)
		}
		return l
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return n.Value
		case "!!null":
			return nil
		case "!!bool", "!!int", "!!float":
			var x any
			if err := n.Decode(&x); err != nil {
				w.errAt(n, "%s: %s is not a valid %s", name, n.Value, describe(n))
				return nil
			}
			if f, ok := x.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
				w.errAt(n, "%s: %s is not a finite number; JSON has no infinity or NaN", name, n.Value)
				return nil
			}
			return x
		case "!!timestamp":
			w.errAt(n, "%s: %s is a timestamp; quote it to make it a string", name, n.Value)
			return nil
		default:
			w.errAt(n, "%s: got %s; want a string, number, boolean, null, list or mapping", name, describe(n))
			return nil
		}
	}
	w.errAt(n, "%s: got %s; want a JSON value", name, describe(n))
	return nil
}

// templates parses every template of p and records, as its own, each
// template problem at its position in the file.
func (w *walker) templates(p *Prompt, root *yaml.Node) {
	type src struct {
		role, name string
		node       *yaml.Node
		text       string
	}
	var srcs []src
	// Find the nodes again so template positions map into the file; the
	// field walk above has already reported anything malformed.
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" && k.Kind == yaml.ScalarNode && k.ShortTag() == "!!str" {
			switch k.Value {
			case "system":
				srcs = append(srcs, src{"system", "system", v, v.Value})
			case "template":
				srcs = append(srcs, src{"user", "template", v, v.Value})
			}
		}
		if k.Value == "messages" && v.Kind == yaml.SequenceNode {
			for j, item := range v.Content {
				if item.Kind != yaml.MappingNode {
					continue
				}
				role := ""
				var content *yaml.Node
				for c := 0; c+1 < len(item.Content); c += 2 {
					ck, cv := item.Content[c], item.Content[c+1]
					if cv.Kind != yaml.ScalarNode || cv.ShortTag() != "!!str" {
						continue
					}
					switch ck.Value {
					case "role":
						role = cv.Value
					case "content":
						content = cv
					}
				}
				if content != nil {
					srcs = append(srcs, src{role, fmt.Sprintf("messages[%d].content", j), content, content.Value})
				}
			}
		}
	}
	// Render order: system before template whatever the file's order.
	if len(srcs) == 2 && srcs[0].name == "template" && srcs[1].name == "system" {
		srcs[0], srcs[1] = srcs[1], srcs[0]
	}
	for _, s := range srcs {
		if w.decode {
			// Parsed on first in-process render (Template.parsed); a
			// worker render needs only the source.
			p.templates = append(p.templates, MessageTemplate{Role: s.role, Template: &Template{name: s.name, source: s.text}})
			continue
		}
		t, err := parseTemplateCached(s.name, s.text)
		if err == nil {
			p.templates = append(p.templates, MessageTemplate{Role: s.role, Template: t})
			continue
		}
		var tp *Problems
		if !errors.As(err, &tp) {
			w.errAt(s.node, "%s: %s", s.name, err)
			continue
		}
		pos := w.templatePos(s.node)
		for _, pr := range tp.List {
			line, col := pos(pr.Line, pr.Column)
			w.probs.add(w.path, line, col, "%s: %s", s.name, pr.Message)
		}
	}
}

// templatePos returns a function that maps a position inside the template
// held by scalar n to a position in the file. A literal block scalar keeps
// the template's lines, starting on the line after the indicator, shifted by
// the block's indentation. A one-line plain or quoted scalar without escapes
// maps column for column. Anything else (folded blocks, escapes, unknown
// template positions) is reported at the scalar itself.
func (w *walker) templatePos(n *yaml.Node) func(line, col int) (int, int) {
	shift := func(line, col int) (int, int) { return n.Line, n.Column }
	switch n.Style {
	case yaml.LiteralStyle:
		if indent, ok := w.blockIndent(n); ok {
			shift = func(line, col int) (int, int) { return n.Line + line, indent + col }
		}
	case 0, yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if strings.ContainsAny(n.Value, "\n\r") {
			break
		}
		off := 0
		if n.Style != 0 {
			off = 1
		}
		// Columns count characters; skip that many in the raw line.
		raw := w.line(n.Line)
		for i := 0; i < n.Column-1+off && raw != ""; i++ {
			_, size := utf8.DecodeRuneInString(raw)
			raw = raw[size:]
		}
		if strings.HasPrefix(raw, n.Value) {
			shift = func(line, col int) (int, int) {
				if line != 1 {
					return n.Line, n.Column
				}
				return n.Line, n.Column + off + col - 1
			}
		}
	}
	return func(line, col int) (int, int) {
		if line <= 0 || col <= 0 {
			return n.Line, n.Column
		}
		return shift(line, col)
	}
}

// blockIndent returns the indentation, in characters, of the content of the
// block scalar n: that of its first non-blank line.
func (w *walker) blockIndent(n *yaml.Node) (int, bool) {
	for l := n.Line + 1; l <= len(w.allLines()); l++ {
		s := w.line(l)
		if strings.TrimSpace(s) == "" {
			continue
		}
		return len(s) - len(strings.TrimLeft(s, " ")), true
	}
	return 0, false
}

func (w *walker) allLines() []string {
	if w.lines == nil {
		w.lines = strings.Split(string(w.data), "\n")
	}
	return w.lines
}

// line returns line l (1-based) of the file without its line break.
func (w *walker) line(l int) string {
	lines := w.allLines()
	if l < 1 || l > len(lines) {
		return ""
	}
	return strings.TrimSuffix(lines[l-1], "\r")
}
