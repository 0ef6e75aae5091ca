package promptvault

import (
	"errors"
	"testing"

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
