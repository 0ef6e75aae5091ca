package promptvault

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nikolalohinski/gonja/v2/exec"
)

func TestParseTemplateSandbox(t *testing.T) {
	for _, tt := range []struct {
		name string
		src  string
		want string // "line:col: message prefix"; "" when allowed
	}{
		{"text", "plain text", ""},
		{"variables and filters", "{{ name | default('x') | upper | trim }} {{ items | join(', ') }}", ""},
		{"if elif else", "{% if a %}a{% elif b %}b{% else %}c{% endif %}", ""},
		{"for with loop and else", "{% for x in xs if x %}{{ loop.index }}{{ x }}{% else %}none{% endfor %}", ""},
		{"set and namespace", "{% set ns = namespace(n=0) %}{% set ns.n = ns.n + 1 %}{{ ns.n }}", ""},
		{"with", "{% with y = 1 %}{{ y }}{% endwith %}", ""},
		{"filter block", "{% filter upper %}x{% endfilter %}", ""},
		{"raw", "{% raw %}{{ not parsed }}{% endraw %}", ""},
		{"comments and whitespace control", "{#- note -#} {{- x -}}", ""},
		{"tests", "{{ x is defined }}{{ x is not none }}{{ 4 is divisibleby 2 }}", ""},
		{"tojson and arithmetic", "{{ data | tojson }} {{ a + b - c / 2 // 1 % 3 }}", ""},
		{"string concat", "{{ 'a' ~ b }}", ""},

		{"include", "{% include '/etc/hostname' %}", `1:4: statement "include" is not allowed`},
		{"import", "{% import 'x' as y %}", `1:4: statement "import" is not allowed`},
		{"from", "{% from 'x' import y %}", `1:4: statement "from" is not allowed`},
		{"extends", "{% extends 'x' %}", `1:4: statement "extends" is not allowed`},
		{"block", "{% block b %}{% endblock %}", `1:4: statement "block" is not allowed`},
		{"macro", "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", `1:4: statement "macro" is not allowed`},
		{"call", "{% call m() %}{% endcall %}", `1:4: statement "call" is not allowed`},
		{"recursive for", "{% for x in xs recursive %}{{ loop(x.c) }}{% endfor %}", `1:16: "for ... recursive" is not allowed`},
		{"multiply", "{{ price * qty }}", ""},
		{"power", "{{ 2 ** 10 }}", ""},
		{"unknown filter", "{{ x | nosuch }}", `1:8: unknown filter "nosuch"`},
		{"unknown filter in filter block", "{% filter lowr %}x{% endfilter %}", `1:11: unknown filter "lowr"; did you mean "lower"?`},
		{"unknown test", "{{ x is not nosuch }}", `1:13: unknown test "nosuch"`},
		{"unknown statement", "{% frobnicate %}", `1:4: jinja syntax error:`},
		{"unclosed for", "{% for x in xs %}", `1:18: jinja syntax error: unexpected EOF`},
		{"unclosed variable", "a\n{{ x }", `2:6: jinja syntax error: unexpected delimiter "}"`},
		{"unclosed string", "{{ 'abc }}", `1:11: jinja syntax error: unterminated string`},
		{"unclosed comment", "{# abc", `1:3: jinja syntax error: unclosed comment`},
		{"nesting at the limit", strings.Repeat("{% if x %}", 50) + strings.Repeat("{% endif %}", 50) + "{{ " + strings.Repeat("(", 50) + "x" + strings.Repeat(")", 50) + " }}", ""},
		{"blocks nested too deep", strings.Repeat("{% if x %}", 100000), `1:504: template is too complex: blocks nested more than 50 deep`},
		{"brackets nested too deep", "{{ " + strings.Repeat("(", 100000) + " }}", `1:54: template is too complex: brackets nested more than 50 deep`},
		{"prefix operators too deep", "{{ " + strings.Repeat("-", 100000) + "x }}", `1:54: template is too complex: prefix operators (not, -, +) repeated more than 50 deep`},
		{"too many tokens in a tag", "{{ x" + strings.Repeat(" + x", 100000) + " }}", `1:4004: template is too complex: more than 2000 tokens in one tag`},
		{"column counts characters", "ééé {{ x | nosuch }}", `1:12: unknown filter "nosuch"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tpl, err := ParseTemplate("t", tt.src)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ParseTemplate: %v", err)
				}
				if tpl.Name() != "t" || tpl.Source() != tt.src {
					t.Errorf("Name, Source = %q, %q", tpl.Name(), tpl.Source())
				}
				return
			}
			var probs *Problems
			if !errors.As(err, &probs) {
				t.Fatalf("err = %v, want *Problems", err)
			}
			got := problemStrings(probs)
			if len(got) != 1 || !strings.HasPrefix(got[0], tt.want) {
				t.Errorf("problems = %q, want one starting %q", got, tt.want)
			}
		})
	}
}

func problemStrings(probs *Problems) []string {
	var out []string
	for _, p := range probs.List {
		out = append(out, strings.TrimPrefix(p.String(), p.Path+":"))
	}
	return out
}

// TestParseTemplateReportsAll: lint problems and a parse error in one
// template are all reported.
func TestParseTemplateReportsAll(t *testing.T) {
	_, err := ParseTemplate("t", "{{ a | nop }}\n{{ c | nope }}\n{% if x %}")
	var probs *Problems
	if !errors.As(err, &probs) {
		t.Fatalf("err = %v", err)
	}
	got := problemStrings(probs)
	want := []string{`1:8: unknown filter "nop"`, `2:8: unknown filter "nope"`, `3:11: jinja syntax error: unexpected EOF`}
	if len(got) != len(want) {
		t.Fatalf("problems = %q, want %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}

// TestTemplateCannotReadFiles: nothing a template can say reaches the file
// system, whatever the working directory holds.
func TestTemplateCannotReadFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("SECRET-CONTENT"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, src := range []string{
		"{% include 'secret.txt' %}",
		"{% include '" + secret + "' %}",
		"{% import 'secret.txt' as s %}",
		"{% extends 'secret.txt' %}",
	} {
		if _, err := ParseTemplate("t", src); err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("ParseTemplate(%q) = %v; want a refusal that does not read the file", src, err)
		}
	}
}

// TestTemplateExecutes checks the sandbox environment is complete enough to
// render: filters, tests, loops, globals and methods are all wired.
func TestTemplateExecutes(t *testing.T) {
	src := "{% for x in xs %}{{ loop.index }}:{{ x | upper }}{% if not loop.last %}, {% endif %}{% endfor %}" +
		" {{ range(3) | list | length }} {{ 'a,b'.split(',') | join('+') }} {{ n is even }}"
	tpl, err := ParseTemplate("t", src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpl.tpl.ExecuteToString(exec.NewContext(map[string]any{"xs": []string{"a", "b"}, "n": 4}))
	if err != nil {
		t.Fatal(err)
	}
	if want := "1:A, 2:B 3 a+b True"; got != want {
		t.Errorf("render = %q, want %q", got, want)
	}
	// StrictUndefined: a missing variable is an error, not "".
	if out, err := tpl.tpl.ExecuteToString(exec.NewContext(map[string]any{"n": 1})); err == nil {
		t.Errorf("render without xs = %q, want an error", out)
	}
}
