// Package promptvault is the domain of the whole program: the prompt file
// (SPEC §1) — its types, strict parsing, validation, keys, template parsing
// and rendering, and the field diff.
//
// A prompt file is strict YAML: unknown fields, duplicate keys, wrong types,
// out-of-range values, Jinja2 syntax errors and JSON Schemas that do not
// compile are all problems. Parse reports every problem it finds, each at
// path:line:column, because the same list feeds `promptvault validate`, the
// index's stored validation errors and the pull request check run's
// annotations: a user should fix a file in one round, not one error at a time.
//
// The package is the module root and imports no project package, so the indexer
// (blobs from git), the CLI (working-tree files) and the resolver (render)
// share one definition of what a valid prompt is.
package promptvault

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// MaxFileSize is the largest prompt file Parse accepts. Larger files are one
// problem and are not parsed: prompts are small, and a size cap bounds the
// work a hostile commit can cause the indexer.
const MaxFileSize = 1 << 20

// maxProblems caps the list so that a pathological file (a megabyte of
// unknown fields) yields a readable report rather than a megabyte of output.
const maxProblems = 100

// Problem is one thing wrong with a prompt file.
type Problem struct {
	Path    string `json:"path"`
	Line    int    `json:"line"`   // 1-based; 0 when not known
	Column  int    `json:"column"` // 1-based; 0 when not known
	Message string `json:"message"`
}

// String formats the problem as "path:line:column: message". Line and column
// are always printed, even when 0, so tools that split on ':' see a fixed
// shape.
func (p Problem) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", p.Path, p.Line, p.Column, p.Message)
}

// Problems is every problem found in one file; it is the error Parse,
// KeyFromPath and ValidateKey return. List is sorted by line, column and
// message.
type Problems struct{ List []Problem }

// Error lists one problem per line.
func (p *Problems) Error() string {
	var b strings.Builder
	for i, pr := range p.List {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(pr.String())
	}
	return b.String()
}

func (p *Problems) add(path string, line, col int, format string, args ...any) {
	p.List = append(p.List, Problem{Path: path, Line: line, Column: col, Message: fmt.Sprintf(format, args...)})
}

func (p *Problems) sort() {
	sort.SliceStable(p.List, func(i, j int) bool {
		a, b := p.List[i], p.List[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return a.Message < b.Message
	})
}

// err returns p sorted, capped at maxProblems, or nil when it is empty, so
// callers can `return nil, probs.err()` without the typed-nil trap.
func (p *Problems) err() error {
	if len(p.List) == 0 {
		return nil
	}
	p.sort()
	if n := len(p.List); n > maxProblems {
		last := p.List[maxProblems-1]
		p.List = append(p.List[:maxProblems-1], Problem{
			Path: last.Path, Line: last.Line, Column: last.Column,
			Message: fmt.Sprintf("too many problems; %d more not shown", n-maxProblems+1),
		})
	}
	return p
}

// Message is one chat message of a messages-form prompt.
type Message struct {
	Role    string `json:"role" yaml:"role"`
	Content string `json:"content" yaml:"content"`
}

// Prompt is a valid prompt file. Its JSON encoding is the read API's
// "prompt" object, so unset optional fields are omitted.
//
// Prompt also carries its parsed templates (see Templates). Compare two
// Prompts by their JSON encoding, not with reflect.DeepEqual, which would
// also compare those parsed templates.
type Prompt struct {
	Description   string         `json:"description,omitempty"`
	Model         string         `json:"model,omitempty"`
	FallbackModel string         `json:"fallback_model,omitempty"`
	Temperature   *float64       `json:"temperature,omitempty"`
	MaxTokens     *int           `json:"max_tokens,omitempty"`
	TopP          *float64       `json:"top_p,omitempty"`
	System        string         `json:"system,omitempty"`
	Template      string         `json:"template,omitempty"`
	Messages      []Message      `json:"messages,omitempty"`
	InputSchema   map[string]any `json:"input_schema,omitempty"`
	OutputSchema  map[string]any `json:"output_schema,omitempty"`
	CacheTimeout  *int           `json:"cache_timeout,omitempty"`
	Config        map[string]any `json:"config,omitempty"`

	templates []MessageTemplate
	input     *jsonschema.Schema // InputSchema compiled; nil without one
	inputCost int                // schemaCost of input: -1 when unbounded
}

// MessageTemplate is one message to render: its role and its parsed content
// template.
type MessageTemplate struct {
	Role     string
	Template *Template
}

// Templates returns the parsed templates in render order: for the template
// form, the system prompt (when set) with role "system" and then the template
// with role "user"; for the messages form, each message. They were parsed
// once by Parse, in the sandbox, and are safe for concurrent use.
func (p *Prompt) Templates() []MessageTemplate {
	return p.templates
}

// Parse parses and validates the prompt file at path (used only in problem
// positions) with contents data. It returns the prompt, or nil and a
// *Problems listing every problem found.
func Parse(path string, data []byte) (*Prompt, error) {
	return parse(path, data, false)
}

// Decode is Parse for a file that was validated before, such as a version
// read back from the index to be served: the structure is checked as
// strictly, but templates are not parsed and schemas not compiled until a
// render needs them. A server holding thousands of prompts keeps their
// fields, not a parsed template tree and a compiled schema for each.
func Decode(path string, data []byte) (*Prompt, error) {
	return parse(path, data, true)
}

func parse(path string, data []byte, decode bool) (*Prompt, error) {
	probs := &Problems{}
	if len(data) > MaxFileSize {
		probs.add(path, 0, 0, "file is %d bytes; the limit is %d", len(data), MaxFileSize)
		return nil, probs.err()
	}
	// Bytes yaml.v3 would reject with a vaguer message (or, for NUL, a
	// position-less one) are checked first, once, with their position.
	if i := bytes.IndexByte(data, 0); i >= 0 {
		line, col := offsetPosition(data, i)
		probs.add(path, line, col, "file contains a NUL byte; want a UTF-8 text file")
		return nil, probs.err()
	}
	if !utf8.Valid(data) {
		i := firstInvalidUTF8(data)
		line, col := offsetPosition(data, i)
		probs.add(path, line, col, "file is not valid UTF-8 (byte 0x%02x); want a UTF-8 text file", data[i])
		return nil, probs.err()
	}
	if i, r := firstControl(data); i >= 0 {
		line, col := offsetPosition(data, i)
		probs.add(path, line, col, "file contains control character %U; want printable text (tabs and line breaks are fine)", r)
		return nil, probs.err()
	}
	w := &walker{path: path, data: data, probs: probs, decode: decode}
	p := w.file()
	if err := probs.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// firstControl finds the first character YAML does not allow in a stream
// (yaml.v3 rejects it without a position), returning -1 when there is none.
func firstControl(data []byte) (int, rune) {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if !(r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0x7e || r == 0x85 ||
			r >= 0xa0 && r <= 0xd7ff || r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= 0x10ffff) {
			return i, r
		}
		i += size
	}
	return -1, 0
}

func firstInvalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(data)
}

// offsetPosition converts a byte offset into a 1-based line and a 1-based
// column counted in characters, as yaml.v3 counts them. Invalid UTF-8 bytes
// count as one character each.
func offsetPosition(data []byte, off int) (line, col int) {
	before := data[:off]
	line = bytes.Count(before, []byte{'\n'}) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[start:]) + 1
}
