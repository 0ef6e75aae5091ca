package promptvault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// FuzzParse checks that Parse never panics and always returns exactly one of
// a prompt or a non-empty *Problems. The seed corpus is small on purpose: it
// runs as an ordinary test on every `go test`.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		specTemplate,
		specMessages,
		"",
		"template: |\n  {% for x in xs %}{{ x | uper }}\n",
		"messages:\n  - {role: user, content: \"{{ a * 2 }}\"}\n  - [1]\n",
		"template: x\ninput_schema: {$ref: \"file:///etc/hostname\", type: [1]}\nconfig: {a: &a [1], b: *a, 1: .inf}\n",
		"a: &a [x]\nb: [*a, *a]\n---\n- 1\n",
		"template: \"\\u00e9 {{ x }\"\ntemperature: 1e400\nmax_tokens: 0x10\n",
		"\xef\xbb\xbftemplate: x\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.yaml", data)
		if (p == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v; want exactly one", p, err)
		}
		if err != nil {
			var probs *Problems
			if !errors.As(err, &probs) || len(probs.List) == 0 {
				t.Fatalf("err = %#v, want a non-empty *Problems", err)
			}
			for _, pr := range probs.List {
				if pr.Message == "" || pr.Line < 0 || pr.Column < 0 {
					t.Fatalf("bad problem %+v", pr)
				}
			}
			return
		}
		// A server serves what Decode makes of a valid file: it must be
		// the prompt Parse made, field for field and template for
		// template.
		d, err := Decode("f.yaml", data)
		if err != nil {
			t.Fatalf("Parse accepts the file but Decode says %v", err)
		}
		pj, _ := json.Marshal(p)
		dj, _ := json.Marshal(d)
		if !bytes.Equal(pj, dj) {
			t.Fatalf("Decode = %s\nParse = %s", dj, pj)
		}
		if len(d.templates) != len(p.templates) {
			t.Fatalf("Decode has %d templates, Parse %d", len(d.templates), len(p.templates))
		}
		for i, mt := range d.templates {
			pt := p.templates[i]
			if mt.Role != pt.Role || mt.Template.name != pt.Template.name || mt.Template.source != pt.Template.source {
				t.Fatalf("template %d: Decode %q %q, Parse %q %q", i, mt.Role, mt.Template.name, pt.Role, pt.Template.name)
			}
			if _, err := mt.Template.parsed(); err != nil {
				t.Fatalf("template %d of a valid file does not parse: %v", i, err)
			}
		}
	})
}

// benchPrompt is a realistic prompt of about 1.5 KB.
var benchPrompt = []byte(`description: Summarise a support ticket for the on-call engineer
model: gpt-4o
fallback_model: claude-sonnet-4
temperature: 0.3
max_tokens: 512
top_p: 0.9
system: |
  You are a concise technical writer on the support team.
  Answer in {{ language | default("English") }}. Never invent ticket numbers.
  {% if tone %}Use a {{ tone | lower }} tone.{% endif %}
template: |
  Summarize the ticket below in at most {{ max_sentences }} sentences.
  Customer: {{ customer.name | trim }} ({{ customer.plan | upper }} plan)
  {% for c in comments if c.public %}
  - {{ loop.index }}. {{ c.author }}: {{ c.body | truncate(200) }}
  {% else %}
  (no public comments)
  {% endfor %}
  Tags: {{ tags | join(", ") }}
  {{ text }}
input_schema:
  type: object
  properties:
    text: {type: string, minLength: 1}
    max_sentences: {type: integer, minimum: 1, maximum: 10, default: 3}
    language: {type: string, enum: [English, German, French]}
    tone: {type: string}
    tags: {type: array, items: {type: string}}
    customer:
      type: object
      properties:
        name: {type: string}
        plan: {type: string, enum: [free, pro, enterprise]}
      required: [name]
    comments:
      type: array
      items:
        type: object
        properties:
          author: {type: string}
          body: {type: string}
          public: {type: boolean}
  required: [text, customer]
output_schema:
  type: object
  properties:
    summary: {type: string}
    severity: {type: string, enum: [low, medium, high]}
  required: [summary]
cache_timeout: 300
config: {team: support, owner: oncall@example.com, retries: 2}
`)

// BenchmarkParse measures Parse against decoding the same bytes into a
// yaml.Node, the floor any strict parser pays.
func BenchmarkParse(b *testing.B) {
	if _, err := Parse("bench.yaml", benchPrompt); err != nil {
		b.Fatal(err)
	}
	b.Run("baseline-yaml-node", func(b *testing.B) {
		b.SetBytes(int64(len(benchPrompt)))
		b.ReportAllocs()
		for b.Loop() {
			var n yaml.Node
			if err := yaml.Unmarshal(benchPrompt, &n); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(len(benchPrompt)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse("bench.yaml", benchPrompt); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestBenchPromptSize(t *testing.T) {
	if n := len(benchPrompt); n < 1300 || n > 1800 {
		t.Errorf("benchPrompt is %d bytes; want about 1.5 KB", n)
	}
}

// FuzzTemplate parses a template and, when it parses, renders it with
// variables decoded from the second input, as the server does (numbers as
// json.Number). Parsing must never panic and must fail with a *Problems;
// rendering must end (the sandbox's own checks, without a worker process
// around it) with output or an error, never a panic.
func FuzzTemplate(f *testing.F) {
	for _, s := range [][2]string{
		{"{{ x }}", `{"x": 1}`},
		{"{% for i in l if i > 1 %}{{ loop.index }}{{ i * 2 }}{% endfor %}", `{"l": [1, 2, 3]}`},
		{"{{ s|upper }} {{ s|title }} {{ s|tojson }}", `{"s": "grüße <b>"}`},
		{"{{ n ** 3 // 7 % -2 }}", `{"n": 123456789012345678901234567890}`},
		{"{% set ns = namespace(a=[]) %}{% do ns.a.append(ns) %}{{ ns }}", `{}`},
		{"{{ d|dictsort|list }} {{ d.get('k', none) }}", `{"d": {"k": null, "a": [1.5, true]}}`},
		{"{{ 'x' * n }}{{ [1] * n }}", `{"n": 99999999999}`},
		{"{% if a %}{{ a|join(', ') }}{% else %}{{ b|default('?') }}{% endif %}", `{"a": [], "b": null}`},
		{"{{ (1, 2)|list }}{{ range(3)|map('string')|join }}", `{}`},
		{"{{ x|round(2, 'floor') }} {{ x|int }} {{ x|float }}", `{"x": -2.675}`},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, src string, vars []byte) {
		tpl, err := ParseTemplate("template", src)
		if err != nil {
			var probs *Problems
			if !errors.As(err, &probs) || len(probs.List) == 0 {
				t.Fatalf("ParseTemplate error %#v, want a non-empty *Problems", err)
			}
			return
		}
		dec := json.NewDecoder(bytes.NewReader(vars))
		dec.UseNumber()
		var v map[string]any
		if dec.Decode(&v) != nil {
			v = map[string]any{}
		}
		p := &Prompt{templates: []MessageTemplate{{Role: "user", Template: tpl}}}
		r, err := p.Render(context.Background(), v, Limits{Timeout: 50 * time.Millisecond, MaxSteps: 10_000, MaxOutput: 64 << 10})
		if err == nil && len(r.Messages) != 1 {
			t.Fatalf("rendered %d messages", len(r.Messages))
		}
		if err == nil && len(r.Messages[0].Content) > 64<<10 {
			t.Fatalf("output of %d bytes passed the 64 KB bound", len(r.Messages[0].Content))
		}
	})
}

// FuzzKey checks that key parsing never panics, that KeyFromPath and
// ValidateKey agree, and that a valid key maps back to itself.
func FuzzKey(f *testing.F) {
	for _, s := range []string{"support/summarize.yaml", "a.yml", "A.YAML", "../x.yaml", "a//b.yaml", "x.txt", "", "a/b/c.yaml", "é.yaml", "a-b_c.d/e.yaml"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		key, ok, err := KeyFromPath(rel)
		if !ok {
			if key != "" || err != nil {
				t.Fatalf("KeyFromPath(%q) = %q, %v, %v", rel, key, ok, err)
			}
			return
		}
		if err != nil {
			var probs *Problems
			if !errors.As(err, &probs) || len(probs.List) != 1 {
				t.Fatalf("KeyFromPath(%q) error %#v, want one problem", rel, err)
			}
			return
		}
		if err := ValidateKey(key); err != nil {
			t.Fatalf("KeyFromPath(%q) = %q, which ValidateKey refuses: %v", rel, key, err)
		}
		if len(key) > MaxKeyLen {
			t.Fatalf("key %q is longer than %d", key, MaxKeyLen)
		}
		if k2, ok2, err2 := KeyFromPath(key + ".yaml"); !ok2 || err2 != nil || k2 != key {
			t.Fatalf("KeyFromPath(%q.yaml) = %q, %v, %v", key, k2, ok2, err2)
		}
	})
}
