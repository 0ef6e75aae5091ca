package promptvault

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// specTemplate is the template form of the SPEC §1 example.
const specTemplate = `description: Summarise a support ticket      # optional
model: gpt-4o                                # optional
fallback_model: claude-sonnet-4              # optional
temperature: 0.5                             # optional, 0..2
max_tokens: 256                              # optional, > 0
top_p: 1.0                                   # optional, 0..1
system: |                                    # optional system prompt
  You are a concise technical writer.
template: |                                  # user prompt template (Jinja2 syntax)
  Summarize in {{ max_sentences }} sentences:
  {{ text }}
input_schema:                                # optional JSON Schema for the variables
  type: object
  properties:
    text: {type: string}
    max_sentences: {type: integer, default: 3}
  required: [text]
output_schema: {type: object}                # optional JSON Schema, returned as data
cache_timeout: 0                             # optional, seconds, >= 0
config: {}                                   # optional free-form mapping
`

// specMessages is the messages form of the SPEC §1 example.
const specMessages = `description: Answer a question
model: gpt-4o
messages:                                    # alternative to system/template: a chat prompt
  - {role: system, content: "You are ..."}
  - {role: user, content: "{{ question }}"}
  - role: assistant
    content: |
      {% for q in history %}{{ q | upper }}
      {% endfor %}
config: {team: support, tags: [a, b], retries: 2, ratio: 0.5, on: true, none: null}
`

func ptr[T any](v T) *T { return &v }

func TestParseValid(t *testing.T) {
	for _, tt := range []struct {
		name      string
		src       string
		want      Prompt
		wantRoles []string
		wantNames []string
	}{
		{
			name: "template form",
			src:  specTemplate,
			want: Prompt{
				Description:   "Summarise a support ticket",
				Model:         "gpt-4o",
				FallbackModel: "claude-sonnet-4",
				Temperature:   ptr(0.5),
				MaxTokens:     ptr(256),
				TopP:          ptr(1.0),
				System:        "You are a concise technical writer.\n",
				Template:      "Summarize in {{ max_sentences }} sentences:\n{{ text }}\n",
				InputSchema: map[string]any{
					"type": "object",
					"properties": map[string]any{
						"text":          map[string]any{"type": "string"},
						"max_sentences": map[string]any{"type": "integer", "default": 3},
					},
					"required": []any{"text"},
				},
				OutputSchema: map[string]any{"type": "object"},
				CacheTimeout: ptr(0),
				Config:       map[string]any{},
			},
			wantRoles: []string{"system", "user"},
			wantNames: []string{"system", "template"},
		},
		{
			name: "messages form",
			src:  specMessages,
			want: Prompt{
				Description: "Answer a question",
				Model:       "gpt-4o",
				Messages: []Message{
					{Role: "system", Content: "You are ..."},
					{Role: "user", Content: "{{ question }}"},
					{Role: "assistant", Content: "{% for q in history %}{{ q | upper }}\n{% endfor %}\n"},
				},
				Config: map[string]any{
					"team": "support", "tags": []any{"a", "b"}, "retries": 2, "ratio": 0.5, "on": true, "none": nil,
				},
			},
			wantRoles: []string{"system", "user", "assistant"},
			wantNames: []string{"messages[0].content", "messages[1].content", "messages[2].content"},
		},
		{
			name:      "template only, system after template",
			src:       "template: hi {{ name }}\nsystem: be brief\n",
			want:      Prompt{System: "be brief", Template: "hi {{ name }}"},
			wantRoles: []string{"system", "user"},
			wantNames: []string{"system", "template"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("prompts/x.yaml", []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got, want := mustJSON(t, p), mustJSON(t, &tt.want); got != want {
				t.Errorf("prompt =\n%s\nwant\n%s", got, want)
			}
			var roles, names []string
			for _, mt := range p.Templates() {
				roles = append(roles, mt.Role)
				names = append(names, mt.Template.Name())
			}
			if fmt.Sprint(roles) != fmt.Sprint(tt.wantRoles) || fmt.Sprint(names) != fmt.Sprint(tt.wantNames) {
				t.Errorf("templates = %v %v, want %v %v", roles, names, tt.wantRoles, tt.wantNames)
			}
		})
	}
}

func TestPromptJSONOmitsUnset(t *testing.T) {
	p, err := Parse("x.yaml", []byte("template: hi\ntemperature: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	// A zero that was set is kept: temperature 0 is a real setting.
	if got, want := mustJSON(t, p), `{"temperature":0,"template":"hi"}`; got != want {
		t.Errorf("json = %s, want %s", got, want)
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// problemsOf parses src and returns its problems as "line:col: message",
// failing when it parses.
func problemsOf(t testing.TB, src string) []string {
	t.Helper()
	_, err := Parse("p.yaml", []byte(src))
	if err == nil {
		t.Fatalf("Parse succeeded; want problems")
	}
	var probs *Problems
	if !errors.As(err, &probs) {
		t.Fatalf("error is %T, want *Problems: %v", err, err)
	}
	var out []string
	for _, p := range probs.List {
		if p.Path != "p.yaml" {
			t.Errorf("problem path = %q, want p.yaml", p.Path)
		}
		if p.Message != strings.TrimSpace(p.Message) || p.Message == "" {
			t.Errorf("message %q is empty or padded", p.Message)
		}
		out = append(out, fmt.Sprintf("%d:%d: %s", p.Line, p.Column, p.Message))
	}
	return out
}

// checkProblems wants exactly len(want) problems, the i-th starting with
// want[i] ("line:col: message prefix").
func checkProblems(t testing.TB, got, want []string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(got[i], want[i])
	}
	if !ok {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestParseProblems(t *testing.T) {
	for _, tt := range []struct {
		name string
		src  string
		want []string
	}{
		// File level.
		{"empty file", "", []string{"1:1: file is empty"}},
		{"only a comment", "# nothing\n", []string{"1:1: file is empty"}},
		{"null document", "~\n", []string{"1:1: file is empty"}},
		{"top level list", "- a\n- b\n", []string{"1:1: top level is a list; want a mapping"}},
		{"top level string", "hello\n", []string{`1:1: top level is a string ("hello"); want a mapping`}},
		{"two documents", "template: a\n---\ntemplate: b\n", []string{"3:1: file has more than one YAML document"}},
		{"syntax error", "template: x\n  bad: indent\n", []string{"2:0: yaml syntax error: mapping values are not allowed"}},
		{"unclosed flow", "template: [x\n", []string{"1:0: yaml syntax error:"}},
		{"tab indentation", "template: x\nconfig:\n\ta: 1\n", []string{"3:0: yaml syntax error: found character that cannot start any token"}},
		{"nul byte", "template: a\x00b\n", []string{"1:12: file contains a NUL byte"}},
		{"not utf-8", "template: |\n  café \xe9t\xe9\n", []string{"2:8: file is not valid UTF-8 (byte 0xe9)"}},
		{"control character", "template: |\n  ding\a\n", []string{"2:7: file contains control character U+0007"}},
		{"bom is fine", "\ufefftemplate: x\n", nil},
		{"crlf is fine", "template: |\r\n  a\r\n", nil},
		{"utf-16 bytes", "\xff\xfet\x00", []string{"1:4: file contains a NUL byte"}},

		// Fields.
		{"unknown field with hint", "template: x\ntemprature: 0.5\n", []string{`2:1: unknown field "temprature"; did you mean "temperature"?`}},
		{"unknown field", "template: x\nfoo: 1\n", []string{`2:1: unknown field "foo"`}},
		{"non-string key", "template: x\n1: a\n", []string{"2:1: key 1 is an integer (1); want a string (quote it)"}},
		{"duplicate key", "template: x\nmodel: a\nmodel: b\n", []string{`3:1: duplicate key "model"; it is already set on line 2`}},
		{"merge key", "template: x\n<<: {model: a}\n", []string{"2:1: merge keys (<<) are not supported"}},
		{"alias value", "template: &t x\nsystem: *t\n", []string{"2:9: system: aliases are not supported"}},
		{"number as string", "template: x\nmodel: 4\n", []string{"2:8: model: got an integer (4); want a string"}},
		{"yes is a string in YAML 1.2", "template: x\ndescription: yes\n", nil},
		{"bool as string", "template: x\ndescription: true\n", []string{"2:14: description: got a boolean (true); want a string"}},
		{"null as string", "template: x\nmodel:\n", []string{"2:7: model: got null; want a string"}},
		{"list as string", "template: [a]\n", []string{"1:11: template: got a list; want a string"}},
		{"temperature as string", "template: x\ntemperature: \"hot\"\n", []string{`2:14: temperature: got a string ("hot"); want a number from 0 to 2`}},
		{"temperature too high", "template: x\ntemperature: 3\n", []string{"2:14: temperature: 3 is out of range; want 0 to 2"}},
		{"temperature negative", "template: x\ntemperature: -0.1\n", []string{"2:14: temperature: -0.1 is out of range; want 0 to 2"}},
		{"temperature nan", "template: x\ntemperature: .nan\n", []string{"2:14: temperature: .nan is out of range"}},
		{"top_p too high", "template: x\ntop_p: 1.01\n", []string{"2:8: top_p: 1.01 is out of range; want 0 to 1"}},
		{"max_tokens fraction", "template: x\nmax_tokens: 1.5\n", []string{"2:13: max_tokens: 1.5 is not an integer; want an integer greater than 0"}},
		{"max_tokens zero", "template: x\nmax_tokens: 0\n", []string{"2:13: max_tokens: 0 is out of range; want an integer greater than 0"}},
		{"max_tokens quoted", "template: x\nmax_tokens: \"256\"\n", []string{`2:13: max_tokens: got a string ("256"); want an integer`}},
		{"max_tokens huge", "template: x\nmax_tokens: 99999999999999999999\n", []string{"2:13: max_tokens:"}},
		{"cache_timeout negative", "template: x\ncache_timeout: -1\n", []string{"2:16: cache_timeout: -1 is out of range; want an integer of 0 or more"}},
		{"config not a mapping", "template: x\nconfig: [1]\n", []string{"2:9: config: got a list; want a mapping"}},
		{"config timestamp", "template: x\nconfig: {when: 2024-01-02}\n", []string{"2:16: config.when: 2024-01-02 is a timestamp; quote it"}},
		{"config infinity", "template: x\nconfig:\n  a: .inf\n", []string{"3:6: config.a: .inf is not a finite number"}},
		{"config non-string key", "template: x\nconfig: {1: a}\n", []string{"2:10: config: key 1 is an integer (1); want a string (quote it)"}},
		{"config duplicate key", "template: x\nconfig:\n  a: 1\n  a: 2\n", []string{`4:3: config: duplicate key "a"`}},
		{"config binary", "template: x\nconfig: {b: !!binary aGk=}\n", []string{"2:13: config.b: got binary data"}},
		{"config custom tag", "template: x\nconfig: {b: !env HOME}\n", []string{"2:13: config.b: got a value tagged !env"}},

		// Template or messages.
		{"neither", "model: x\n", []string{"1:1: missing template or messages; want exactly one of them"}},
		{"both", "template: x\nmessages:\n  - {role: user, content: hi}\n", []string{"2:1: template and messages are both set; want exactly one of them"}},
		{"system with messages", "system: s\nmessages:\n  - {role: user, content: hi}\n", []string{"1:1: system is only allowed with template"}},
		{"messages not a list", "messages: hi\n", []string{"1:11: messages: got a string"}},
		{"messages empty", "messages: []\n", []string{"1:11: messages: list is empty"}},
		{"message not a mapping", "messages:\n  - hi\n", []string{`2:5: messages[0]: got a string ("hi"); want a mapping with role and content`}},
		{"message bad role", "messages:\n  - {role: bot, content: hi}\n", []string{`2:12: messages[0].role: "bot" is not a role; want system, user or assistant`}},
		{"message missing fields", "messages:\n  - {}\n", []string{"2:5: messages[0]: missing content", "2:5: messages[0]: missing role"}},
		{"message unknown field", "messages:\n  - role: user\n    content: hi\n    name: bob\n", []string{`4:5: messages[0]: unknown field "name"`}},
		{"message content not a string", "messages:\n  - {role: user, content: 3}\n", []string{"2:27: messages[0].content: got an integer (3); want a string"}},

		// Templates, positioned in the file.
		{"jinja error in literal block", "model: m\ntemplate: |\n  line one\n  {% for x in xs %}\n  {{ x }\n", []string{`5:8: template: jinja syntax error: unexpected delimiter "}"`}},
		{"jinja unclosed for", "template: |\n  {% for x in xs %}\n  {{ x }}\n", []string{"3:10: template: jinja syntax error: unexpected EOF"}},
		{"jinja error in quoted scalar", "template: \"hi {{ x | uper }}\"\n", []string{`1:22: template: unknown filter "uper"; did you mean "upper"?`}},
		{"jinja error in flow message", "messages:\n  - {role: user, content: \"{{ a | uper }}\"}\n", []string{`2:35: messages[0].content: unknown filter "uper"`}},
		{"jinja error without position", "template: \"{% if %}x{% endif %}\"\n", []string{"1:11: template: jinja syntax error:"}},
		{"jinja error in folded block", "template: >\n  a {{ x }\n", []string{"1:11: template: jinja syntax error:"}},
		{"jinja error in system", "system: |\n  {% include 'x.txt' %}\ntemplate: x\n", []string{`2:6: system: statement "include" is not allowed`}},
		{"jinja import", "template: |\n  {% import 'm' as m %}\n", []string{`2:6: template: statement "import" is not allowed`}},
		{"jinja from", "template: |\n  {% from 'm' import x %}\n", []string{`2:6: template: statement "from" is not allowed`}},
		{"jinja extends", "template: |\n  {% extends 'base' %}\n", []string{`2:6: template: statement "extends" is not allowed`}},
		{"jinja macro", "template: |\n  {% macro f() %}{{ f() }}{% endmacro %}\n", []string{`2:6: template: statement "macro" is not allowed`}},
		{"jinja call", "template: |\n  {% call f() %}x{% endcall %}\n", []string{`2:6: template: statement "call" is not allowed`}},
		{"jinja recursive loop", "template: |\n  {% for x in xs recursive %}{{ loop(x) }}{% endfor %}\n", []string{`2:18: template: "for ... recursive" is not allowed`}},
		{"jinja unknown test", "template: \"{{ x is bogus }}\"\n", []string{`1:20: template: unknown test "bogus"`}},

		// Schemas.
		{"schema ref to itself", "template: x\ninput_schema: {$ref: \"#\"}\n", []string{`2:22: input_schema: $ref cycle: # → #`}},
		{"schema ref cycle", "template: x\ninput_schema:\n  $defs:\n    a: {$ref: \"#/$defs/b\"}\n    b: {allOf: [{$ref: \"#/$defs/a\"}]}\n  properties:\n    x: {$ref: \"#/$defs/a\"}\n", []string{`5:24: input_schema: $ref cycle: #/$defs/a → #/$defs/b`}},
		{"schema not a mapping", "template: x\ninput_schema: [1]\n", []string{"2:15: input_schema: got a list; want a mapping (a JSON Schema object)"}},
		{"schema bad type", "template: x\ninput_schema:\n  type: object\n  properties:\n    t: {type: strin}\n", []string{"5:15: input_schema: invalid schema at /properties/t/type: value must be one of"}},
		{"schema bad regex", "template: x\noutput_schema:\n  pattern: \"((\"\n", []string{"3:12: output_schema: invalid schema at /pattern:"}},
		{"schema file ref", "template: x\ninput_schema:\n  $ref: file:///etc/hostname\n", []string{`3:9: input_schema: reference "file:///etc/hostname" is not allowed`}},
		{"schema http ref", "template: x\ninput_schema:\n  properties:\n    a: {$ref: \"https://example.com/s.json\"}\n", []string{`4:15: input_schema: reference "https://example.com/s.json" is not allowed`}},
		{"schema relative ref", "template: x\ninput_schema: {$ref: other.json}\n", []string{`2:22: input_schema: reference "promptvault:///other.json" is not allowed`}},
		{"schema unknown meta-schema", "template: x\ninput_schema: {$schema: \"http://example.com/meta\"}\n", []string{`2:25: input_schema: reference "http://example.com/meta" is not allowed`}},
		{"schema dangling pointer", "template: x\ninput_schema: {$ref: \"#/$defs/nope\"}\n", []string{`2:22: input_schema: reference "#/$defs/nope" points to nothing`}},
		{"schema timestamp default", "template: x\ninput_schema:\n  properties:\n    d: {default: 2024-01-01}\n", []string{"4:18: input_schema.properties.d.default: 2024-01-01 is a timestamp"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.want) == 0 {
				if _, err := Parse("p.yaml", []byte(tt.src)); err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			checkProblems(t, problemsOf(t, tt.src), tt.want)
		})
	}
}

// TestParseReportsEveryProblem: a file with many problems gets them all in
// one run, in file order.
func TestParseReportsEveryProblem(t *testing.T) {
	src := `description: 7
temprature: 0.5
temperature: 3
max_tokens: 1.5
top_p: hot
cache_timeout: -1
model: a
model: b
system: |
  fine {{ x }}
template: |
  hello {{ name | uper }}
  {{ "x" | lowr }}
input_schema:
  type: objekt
config: 3
`
	checkProblems(t, problemsOf(t, src), []string{
		`1:14: description: got an integer (7); want a string`,
		`2:1: unknown field "temprature"; did you mean "temperature"?`,
		`3:14: temperature: 3 is out of range; want 0 to 2`,
		`4:13: max_tokens: 1.5 is not an integer`,
		`5:8: top_p: got a string ("hot"); want a number from 0 to 1`,
		`6:16: cache_timeout: -1 is out of range`,
		`8:1: duplicate key "model"; it is already set on line 7`,
		`12:19: template: unknown filter "uper"; did you mean "upper"?`,
		`13:12: template: unknown filter "lowr"; did you mean "lower"?`,
		`15:9: input_schema: invalid schema at /type:`,
		`16:9: config: got an integer (3); want a mapping`,
	})
}

func TestProblemString(t *testing.T) {
	p := Problem{Path: "prompts/a.yaml", Message: "file is empty"}
	if got, want := p.String(), "prompts/a.yaml:0:0: file is empty"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	ps := &Problems{List: []Problem{p, {Path: "b", Line: 2, Column: 3, Message: "m"}}}
	if got, want := ps.Error(), "prompts/a.yaml:0:0: file is empty\nb:2:3: m"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestParseTooManyProblems(t *testing.T) {
	var b strings.Builder
	b.WriteString("template: x\n")
	for i := range 500 {
		fmt.Fprintf(&b, "unknown%d: 1\n", i)
	}
	got := problemsOf(t, b.String())
	if len(got) != maxProblems || !strings.Contains(got[len(got)-1], "too many problems; 401 more not shown") {
		t.Errorf("got %d problems, last %q", len(got), got[len(got)-1])
	}
}

func TestParseTooLarge(t *testing.T) {
	data := []byte("template: |\n" + strings.Repeat("  0123456789abcd\n", 10<<20/17+1))
	if len(data) <= 10<<20 {
		t.Fatalf("test file is only %d bytes", len(data))
	}
	got := problemsOf(t, string(data))
	checkProblems(t, got, []string{fmt.Sprintf("0:0: file is %d bytes; the limit is 1048576", len(data))})

	// Exactly at the limit is parsed.
	data = append([]byte("template: x\n#"), []byte(strings.Repeat("x", MaxFileSize-13))...)
	if _, err := Parse("p.yaml", data[:MaxFileSize]); err != nil {
		t.Errorf("file of MaxFileSize bytes: %v", err)
	}
}

// aliasBomb is the 9^9 "billion laughs" document, under key (or at the top
// level when key is "").
func aliasBomb(key string) string {
	indent := ""
	var b strings.Builder
	b.WriteString("template: x\n")
	if key != "" {
		b.WriteString(key + ":\n")
		indent = "  "
	}
	fmt.Fprintf(&b, "%sa: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n", indent)
	for c := 'b'; c <= 'i'; c++ {
		p := string(c - 1)
		fmt.Fprintf(&b, "%s%c: &%c [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", indent, c, c, p, p, p, p, p, p, p, p, p)
	}
	return b.String()
}

func TestParseAliasBomb(t *testing.T) {
	for _, key := range []string{"config", "input_schema", ""} {
		t.Run("under "+key, func(t *testing.T) {
			got := problemsOf(t, aliasBomb(key))
			found := false
			for _, g := range got {
				found = found || strings.Contains(g, "aliases are not supported")
			}
			if key != "" && !found {
				t.Errorf("problems do not mention aliases:\n%s", strings.Join(got, "\n"))
			}
		})
	}
}

func TestCompileSchemaRefusesFiles(t *testing.T) {
	// A schema that would compile if the loader read it.
	dir := t.TempDir()
	file := filepath.Join(dir, "s.json")
	if err := os.WriteFile(file, []byte(`{"type": "string", "description": "SECRET-CONTENT"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "file://" + filepath.ToSlash(file)
	_, err := CompileSchema(map[string]any{"$ref": url})
	if le := (*jsonschema.LoadURLError)(nil); !errors.As(err, &le) || le.Err != ErrExternalRef {
		t.Fatalf("CompileSchema($ref %s) = %v, want ErrExternalRef", url, err)
	}
	got := problemsOf(t, "template: x\ninput_schema:\n  $ref: "+url+"\n")
	checkProblems(t, got, []string{`3:9: input_schema: reference "` + url + `" is not allowed`})
	if strings.Contains(strings.Join(got, "\n"), "SECRET") {
		t.Errorf("problems leak the file: %v", got)
	}

	// Internal references still work.
	if _, err := CompileSchema(map[string]any{
		"$defs": map[string]any{"t": map[string]any{"type": "string"}},
		"$ref":  "#/$defs/t",
	}); err != nil {
		t.Errorf("internal $ref: %v", err)
	}
}

func TestCompileSchemaNormalises(t *testing.T) {
	// What yaml.v3 decodes into interface values must not reach the
	// compiler unconverted.
	var v any
	if err := yaml.Unmarshal([]byte("type: object\nproperties: {n: {type: integer, maximum: 10}}\n"), &v); err != nil {
		t.Fatal(err)
	}
	if _, err := CompileSchema(v); err != nil {
		t.Errorf("yaml-decoded schema: %v", err)
	}
	if _, err := CompileSchema(map[any]any{1: "x"}); err == nil {
		t.Errorf("non-string keys compiled")
	}
}

// TestSchemaRecursionThroughPropertiesIsFine: a tree schema refers to
// itself through properties, which descends into the value each time.
func TestSchemaRecursionThroughPropertiesIsFine(t *testing.T) {
	mustParse(t, "template: x\ninput_schema:\n  type: object\n  properties:\n    children: {type: array, items: {$ref: \"#\"}}\n")
}
