package promptvault

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// jinjaCase is one template and its variables (JSON), rendered by both
// promptvault and Python's Jinja2.
type jinjaCase struct {
	tpl  string
	vars string
	// diff, when set, is an intended difference (docs/templates.md lists
	// them): both still render, the outputs are not compared.
	diff string
}

const (
	people = `{"users": [{"name": "Ada", "age": 36, "team": "core"}, {"name": "Grace", "age": 45, "team": "ops"}, {"name": "Linus", "age": 28, "team": "core"}]}`
	words  = `{"s": "  Hello, World!  ", "w": ["b", "a", "c", "a"], "n": [3, 1, 2], "d": {"b": 2, "a": 1, "c": 3}, "t": "the quick brown fox jumps over the lazy dog"}`
)

var jinjaCases = []jinjaCase{
	// Output and literals.
	{tpl: `plain text`},
	{tpl: `{{ "x" }}{{ 'y' }}{{ 1 }}{{ 1.5 }}{{ true }}{{ false }}{{ none }}`},
	{tpl: `{{ [1, "a", 2.5, true, none] }}`},
	{tpl: `{{ {"a": 1, "b": [1, 2]} }}`},
	{tpl: `{{ (1, 2) }}`, diff: "tuples print as lists"},
	{tpl: `{{ "a\tb\\n" }}`},
	{tpl: `{{ "it's" }} {{ 'say "hi"' }}`},
	{tpl: `{{ x }}`, vars: `{"x": 3}`},
	{tpl: `{{ x }}`, vars: `{"x": 3.0}`},
	{tpl: `{{ x }}`, vars: `{"x": 0.1}`},
	{tpl: `{{ x }}`, vars: `{"x": 1e+300}`},
	{tpl: `{{ x }}`, vars: `{"x": 1.5e-07}`},
	{tpl: `{{ x }}`, vars: `{"x": 12345678901234567890123}`},
	{tpl: `{{ x }}`, vars: `{"x": -9223372036854775808}`},
	{tpl: `{{ x }}`, vars: `{"x": 100000000000000000.0}`},
	{tpl: `{{ x }}`, vars: `{"x": "grüße 日本 🎉"}`},
	{tpl: `{{ x.a.b }} {{ x["a"]["b"] }}`, vars: `{"x": {"a": {"b": "deep"}}}`},
	{tpl: `{{ l[0] }} {{ l[-1] }} {{ l[1:] }} {{ l[::-1] }} {{ l[:2] }}`, vars: `{"l": [1, 2, 3]}`},
	{tpl: `{{ s[1:4] }} {{ s[-3:] }} {{ s[::2] }}`, vars: `{"s": "abcdefg"}`},
	{tpl: `{{ missing }}`},
	{tpl: `{{ x.missing }}`, vars: `{"x": {}}`},
	{tpl: `{# comment #}a{# another #}b`},
	{tpl: "{% raw %}{{ not rendered }}{% endraw %}"},
	// Arithmetic.
	{tpl: `{{ 1 + 2 }} {{ 7 - 10 }} {{ 3 * 4 }} {{ 2 ** 10 }}`},
	{tpl: `{{ 7 / 2 }} {{ 8 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }}`},
	{tpl: `{{ 7.5 // 2 }} {{ 7.5 % 2 }} {{ 2 ** -1 }} {{ 2.0 ** 3 }} {{ 0.1 + 0.2 }}`},
	{tpl: `{{ price * qty }}`, vars: `{"price": 2.5, "qty": 4}`},
	{tpl: `{{ price * qty }}`, vars: `{"price": 3, "qty": 4}`},
	{tpl: `{{ "ab" * 3 }} {{ 3 * "ab" }} {{ [1, 2] * 2 }}`},
	{tpl: `{{ 2 ** 100 }}`},
	{tpl: `{{ 9223372036854775807 + 1 }}`},
	{tpl: `{{ x * 2 }} {{ x + 1 }}`, vars: `{"x": 12345678901234567890}`},
	{tpl: `{{ -x }} {{ +x }} {{ - -3 }}`, vars: `{"x": 5}`, diff: "gonja parser limitation: a sign directly after another sign"},
	{tpl: `{{ 1 + 2 * 3 - 4 / 2 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }}`},
	{tpl: `{{ 10 / 4 * 2 }} {{ 10 // 4 * 2 }}`},
	{tpl: `{{ "a" ~ 1 ~ 2.5 ~ none ~ true }}`},
	{tpl: `{{ [1] + [2, 3] }} {{ "a" + "b" }}`},
	{tpl: `{{ 1 / 0 }}`},
	{tpl: `{{ 1 // 0 }}`},
	{tpl: `{{ 5 % 0 }}`},
	{tpl: `{{ 3 / 1.5 }} {{ 1e3 }} {{ 2.5e-3 }}`},
	{tpl: `{{ 1 == 1.0 }} {{ 2 > 1 }} {{ "a" < "b" }} {{ 1 != 2 }} {{ 3 >= 3 }} {{ 2 <= 1 }}`},
	{tpl: `{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}`},
	{tpl: `{{ not true }} {{ true and false }} {{ true or false }} {{ "" or "fallback" }} {{ "a" and "b" }}`},
	{tpl: `{{ 2 in [1, 2] }} {{ "b" in "abc" }} {{ "k" in {"k": 1} }} {{ 4 not in [1] }}`},
	{tpl: `{{ "yes" if x else "no" }} {{ "yes" if y else "no" }}`, vars: `{"x": 1, "y": 0}`},
	{tpl: `{{ x if x }}|`, vars: `{"x": false}`},
	// Conditionals.
	{tpl: `{% if x > 2 %}big{% elif x > 1 %}mid{% else %}small{% endif %}`, vars: `{"x": 2}`},
	{tpl: `{% if not items %}empty{% endif %}`, vars: `{"items": []}`},
	{tpl: `{% if d %}has{% endif %}{% if s %}str{% endif %}{% if z %}zero{% endif %}`, vars: `{"d": {"a": 1}, "s": " ", "z": 0}`},
	{tpl: `{% if a and (b or c) %}ok{% endif %}`, vars: `{"a": true, "b": false, "c": true}`},
	// Loops.
	{tpl: `{% for x in [1, 2, 3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}`},
	{tpl: `{% for x in l %}{{ x }}{% if not loop.last %}, {% endif %}{% endfor %}`, vars: `{"l": ["a", "b", "c"]}`},
	{tpl: `{% for x in l %}{{ loop.cycle("odd", "even") }} {% endfor %}`, vars: `{"l": [1, 2, 3]}`},
	{tpl: `{% for x in l %}{{ loop.previtem }}-{{ x }}-{{ loop.nextitem }} {% endfor %}`, vars: `{"l": [1, 2, 3]}`, diff: "loop.previtem and loop.nextitem past the ends are None, where Jinja2 raises UndefinedError"},
	{tpl: `{% for x in l %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}`, vars: `{"l": [1, 1, 2, 2, 1]}`},
	{tpl: `{% for x in [] %}x{% else %}none{% endfor %}`},
	{tpl: `{% for x in l if x > 1 %}{{ x }}{{ loop.index }} {% endfor %}`, vars: `{"l": [1, 2, 3]}`},
	{tpl: `{% for k, v in d.items() %}{{ k }}={{ v }} {% endfor %}`, vars: `{"d": {"a": 1, "b": 2}}`},
	{tpl: `{% for k in d %}{{ k }}{% endfor %}`, vars: `{"d": {"z": 1, "a": 2}}`, diff: "mappings iterate in sorted key order, not in the JSON order of the variables"},
	{tpl: `{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }} {% endfor %}`},
	{tpl: `{% for c in "héllo" %}[{{ c }}]{% endfor %}`},
	{tpl: `{% for x in range(5) %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}`},
	{tpl: `{% for x in range(5) %}{% if x is even %}{% continue %}{% endif %}{{ x }}{% endfor %}`},
	{tpl: `{% for i in range(2) %}{% for j in range(2) %}{{ loop.index }}{{ i }}{{ j }} {% endfor %}{% endfor %}`},
	{tpl: `{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }}`},
	{tpl: `{% for x in users %}{{ x.name }}:{{ x.age }} {% endfor %}`, vars: people},
	// Assignments and blocks.
	{tpl: `{% set x = 1 %}{% set y = x + 1 %}{{ x }}{{ y }}`},
	{tpl: `{% set a, b = 1, 2 %}{{ a }}{{ b }}`, diff: "gonja parser limitation: no tuple assignment in set"},
	{tpl: `{% set ns = namespace(total=0) %}{% for x in [1, 2, 3] %}{% set ns.total = ns.total + x %}{% endfor %}{{ ns.total }}`},
	{tpl: `{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}`},
	{tpl: `{% set block %}inner {{ 1 + 1 }}{% endset %}[{{ block }}]`},
	{tpl: `{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}`},
	{tpl: `{% filter upper %}shout {{ "this" }}{% endfilter %}`},
	{tpl: `{% set l = [1] %}{% do l.append(2) %}{{ l }}`},
	{tpl: `{% set d = {} %}{% do d.update({"a": 1}) %}{{ d }}`, diff: "dicts written in the template cannot be changed by update"},
	// Whitespace control.
	{tpl: "a\n{% if true %}\nb\n{% endif %}\nc"},
	{tpl: "a\n{%- if true -%}\nb\n{%- endif -%}\nc"},
	{tpl: "  {{- ' x ' -}}  "},
	{tpl: "line\n"},
	{tpl: "line\n\n"},
	{tpl: "{% for x in [1, 2] %}\n  {{ x }}\n{% endfor %}\n"},
	{tpl: "{% for x in [1, 2] -%}\n  {{ x }}\n{%- endfor %}"},
	{tpl: "a {#- c -#} b"},
	{tpl: "\r\nwin\r\n{{ 1 }}\r\n"},
	// String methods.
	{tpl: `{{ s.upper() }}|{{ s.lower() }}|{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|`, vars: words},
	{tpl: `{{ t.split() }} {{ t.split(" ", 2) }} {{ "a,b,,c".split(",") }}`, vars: words},
	{tpl: `{{ t.title() }}|{{ t.capitalize() }}|{{ "AbC".swapcase() }}`, vars: words},
	{tpl: `{{ t.startswith("the") }} {{ t.endswith("dog") }} {{ t.find("fox") }} {{ t.count("o") }}`, vars: words},
	{tpl: `{{ t.replace("o", "0") }} {{ t.replace("o", "0", 2) }}`, vars: words},
	{tpl: `{{ "-".join(["a", "b"]) }} {{ "x".center(7, "*") }} {{ "x".ljust(3, ".") }}| {{ "x".rjust(3) }} {{ "42".zfill(5) }}`},
	{tpl: `{{ "abc".isalpha() }} {{ "123".isdigit() }} {{ "a1".isalnum() }} {{ "  ".isspace() }} {{ "ABC".isupper() }} {{ "abc".islower() }}`},
	{tpl: `{{ "a-b-c".partition("-") }} {{ "a-b-c".rpartition("-") }} {{ "a b".rsplit(" ", 1) }}`, diff: "tuples print as lists"},
	{tpl: `{{ "prefix-x".removeprefix("prefix-") }} {{ "x.txt".removesuffix(".txt") }}`},
	{tpl: `{{ "Hello {}!".format("you") }} {{ "{0}-{1}".format(1, 2) }} {{ "{a}".format(a="kw") }}`},
	{tpl: `{{ "l1\nl2\n".splitlines() }} {{ "ß".casefold() }}`},
	{tpl: `{{ "grüße".upper() }} {{ "ÉCOLE".lower() }} {{ "ǆemal".title() }}`},
	// Dict methods.
	{tpl: `{{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }}`, vars: words, diff: "mappings iterate in sorted key order, not in the JSON order of the variables"},
	{tpl: `{{ d.get("a") }} {{ d.get("zz", "dflt") }} {{ d.get("zz") }}`, vars: words},
	// Filters.
	{tpl: `{{ -3|abs }} {{ (-2.5)|abs }} {{ x|abs }}`, vars: `{"x": -4}`},
	{tpl: `{{ users[0]|attr("name") }}`, vars: people, diff: "attr on a dict is None where Jinja2 raises UndefinedError"},
	{tpl: `{{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3]|batch(2, "x")|list }}`},
	{tpl: `{{ "hello WORLD"|capitalize }} {{ "ÉCOLE normale"|capitalize }}`},
	{tpl: `[{{ "abc"|center(9) }}] [{{ "abc"|center(2) }}]`},
	{tpl: `{{ [1, 2]|count }} {{ "abc"|count }} {{ {"a": 1}|count }}`},
	{tpl: `{{ missing|default("dflt") }} {{ ""|default("empty") }} {{ ""|default("empty", true) }} {{ none|d("n") }}`, diff: "null counts as undefined for default and is defined"},
	{tpl: `{{ d|dictsort }} {{ d|dictsort(reverse=true) }} {{ d|dictsort(by="value") }}`, vars: words, diff: "tuples print as lists"},
	{tpl: `{{ "<a href='x'>&</a>"|escape }} {{ "<b>"|e }}`},
	{tpl: `{{ 100|filesizeformat }} {{ 1000|filesizeformat }} {{ 1500000|filesizeformat }} {{ 1024|filesizeformat(true) }} {{ 3000000000|filesizeformat }}`},
	{tpl: `{{ [3, 1]|first }} {{ "xyz"|first }} {{ [3, 1]|last }}`},
	{tpl: `{{ "3.5"|float }} {{ 3|float }} {{ "x"|float }} {{ "x"|float(1.5) }}`},
	{tpl: `{{ "<b>"|forceescape }}`},
	{tpl: `{{ "%s is %d years"|format("Ada", 36) }} {{ "%.2f"|format(3.14159) }} {{ "%5s|%-5s|"|format("a", "b") }}`},
	{tpl: `{% for g in users|groupby("team") %}{{ g.grouper }}: {{ g.list|map(attribute="name")|join(",") }}; {% endfor %}`, vars: people},
	{tpl: `{% for team, us in users|groupby("team") %}{{ team }}={{ us|length }} {% endfor %}`, vars: people},
	{tpl: "{{ \"a\\nb\\nc\"|indent }}|{{ \"a\\nb\"|indent(2, true) }}|{{ \"a\\n\\nb\"|indent(2, blank=true) }}"},
	{tpl: `{{ "42"|int }} {{ "4.7"|int }} {{ 4.7|int }} {{ "x"|int }} {{ "x"|int(7) }} {{ "0x1A"|int(0, 16) }} {{ "101"|int(base=2) }}`},
	{tpl: `{{ d|items|list }}`, vars: words, diff: "tuples print as lists"},
	{tpl: `{{ w|join }} {{ w|join(", ") }} {{ users|join(", ", attribute="name") }}`, vars: `{"w": ["b", "a"], "users": [{"name": "x"}, {"name": "y"}]}`},
	{tpl: `{{ w|length }} {{ "héllo"|length }} {{ d|length }}`, vars: words},
	{tpl: `{{ "abc"|list }} {{ d|list }}`, vars: words, diff: "mappings iterate in sorted key order, not in the JSON order of the variables"},
	{tpl: `{{ "HeLLo"|lower }} {{ "ÀÉÎ"|lower }} {{ "İ"|lower|length }}`},
	{tpl: `{{ users|map(attribute="name")|list }} {{ ["a", "b"]|map("upper")|list }} {{ users|map(attribute="missing", default="?")|list }}`, vars: people},
	{tpl: `{{ n|max }} {{ n|min }} {{ w|max }} {{ users|max(attribute="age") }} {{ ["B", "a"]|max }} {{ ["B", "a"]|max(case_sensitive=true) }}`, vars: `{"n": [3, 1, 2], "w": ["b", "a"], "users": [{"age": 1}, {"age": 9}]}`, diff: "max and min with attribute= return the attribute, not the item"},
	{tpl: `{{ {"a": [1, "x"]}|pprint }} {{ "s"|pprint }}`},
	{tpl: `{{ [7]|random }}`},
	{tpl: `{{ n|reject("odd")|list }} {{ n|select("odd")|list }} {{ n|select|list }} {{ n|select(">", 1)|list }}`, vars: `{"n": [0, 1, 2, 3]}`},
	{tpl: `{{ users|rejectattr("team", "eq", "core")|map(attribute="name")|list }} {{ users|selectattr("age", ">", 30)|map(attribute="name")|list }}`, vars: people},
	{tpl: `{{ users|selectattr("team")|list|length }}`, vars: people},
	{tpl: `{{ "aaa"|replace("a", "b") }} {{ "aaa"|replace("a", "b", 2) }}`},
	{tpl: `{{ [1, 2, 3]|reverse|list }} {{ "abc"|reverse }}`},
	{tpl: `{{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.1|round(0, "ceil") }} {{ 2.9|round(method="floor") }} {{ 42|round }}`},
	{tpl: `{{ "<b>"|safe }}`},
	{tpl: `{{ [1, 2, 3, 4, 5, 6, 7]|slice(3)|list }}`},
	{tpl: `{{ w|sort }} {{ w|sort(reverse=true) }} {{ ["b", "A", "c"]|sort }} {{ ["b", "A", "c"]|sort(case_sensitive=true) }} {{ users|sort(attribute="age")|map(attribute="name")|list }}`, vars: `{"w": ["b", "a", "c"], "users": [{"name": "x", "age": 3}, {"name": "y", "age": 1}]}`},
	{tpl: `{{ 1|string }} {{ [1]|string }} {{ none|string }} {{ 1.0|string }}`},
	{tpl: `{{ "<p>Hello <b>World</b></p>   x"|striptags }}`},
	{tpl: `{{ [1, 2, 3]|sum }} {{ [1.5, 2]|sum }} {{ users|sum(attribute="age") }} {{ [1]|sum(start=10) }}`, vars: people},
	{tpl: `{{ "hello wORLD"|title }} {{ "it's a dog's-life"|title }} {{ "grüße aus köln"|title }}`},
	{tpl: `{{ x|tojson }}`, vars: `{"x": {"b": 1, "a": [1, 2.5, "s", null, true]}}`},
	{tpl: `{{ "<x> & 'y'"|tojson }}`},
	{tpl: `{{ x|tojson(indent=2) }}`, vars: `{"x": {"b": [1, {"c": "d"}], "a": {}}}`},
	{tpl: `{{ "héllo 🎉"|tojson }} {{ 1.0|tojson }} {{ 10000000000000000000000|tojson }}`, diff: "gonja parser limitation: integer literals in a template are limited to 64 bits (variables are not)"},
	{tpl: `[{{ s|trim }}] [{{ "xxaxx"|trim("x") }}]`, vars: words},
	{tpl: `{{ t|truncate(9) }}|{{ t|truncate(9, true) }}|{{ t|truncate(20, false, "…") }}|{{ "short"|truncate(10) }}`, vars: words},
	{tpl: `{{ w|unique|list }} {{ ["a", "A"]|unique|list }} {{ ["a", "A"]|unique(case_sensitive=true)|list }}`, vars: words},
	{tpl: `{{ "hello"|upper }} {{ "grüße"|upper }} {{ "ﬁne"|upper }}`},
	{tpl: `{{ "a b&c"|urlencode }} {{ {"q": "a b", "x": 1}|urlencode }} {{ "/path/ü"|urlencode }}`},
	{tpl: `{{ "see https://example.com now"|urlize }}`},
	{tpl: `{{ t|wordcount }} {{ ""|wordcount }}`, vars: words},
	{tpl: `{{ t|wordwrap(10) }}`, vars: words},
	{tpl: `{{ {"class": "x", "id": 1}|xmlattr }}`},
	{tpl: `{{ [3, 1, 2]|sort|first }} {{ users|map(attribute="age")|sum }} {{ users|map(attribute="name")|map("lower")|join("/") }}`, vars: people},
	// Tests.
	{tpl: `{{ true is boolean }} {{ 1 is boolean }} {{ none is none }} {{ 1 is none }}`},
	{tpl: `{{ x is defined }} {{ y is defined }} {{ y is undefined }}`, vars: `{"x": 1}`},
	{tpl: `{{ 6 is divisibleby 3 }} {{ 7 is divisibleby(3) }} {{ 4 is even }} {{ 3 is odd }}`},
	{tpl: `{{ 1 is eq 1 }} {{ 1 is equalto 2 }} {{ 1 is ne 2 }} {{ 2 is gt 1 }} {{ 2 is greaterthan 3 }} {{ 1 is ge 1 }} {{ 1 is lt 2 }} {{ 1 is lessthan 0 }} {{ 1 is le 1 }}`},
	{tpl: `{{ false is false }} {{ 0 is false }} {{ true is true }} {{ 1 is true }}`},
	{tpl: `{{ 1.5 is float }} {{ 1 is float }} {{ 1 is integer }} {{ 1.0 is integer }} {{ true is integer }} {{ 1 is number }} {{ "1" is number }}`},
	{tpl: `{{ 2 is in [1, 2] }} {{ "a" is in "abc" }}`},
	{tpl: `{{ [] is iterable }} {{ "s" is iterable }} {{ 1 is iterable }} {{ {} is mapping }} {{ [] is mapping }}`},
	{tpl: `{{ [] is sequence }} {{ "s" is sequence }} {{ 1 is sequence }} {{ "s" is string }} {{ 1 is string }}`},
	{tpl: `{{ "abc" is lower }} {{ "aBc" is lower }} {{ "ABC" is upper }}`},
	{tpl: `{{ x is sameas x }} {{ none is sameas none }}`, vars: `{"x": 1}`},
	{tpl: `{{ "upper" is filter }} {{ "nope" is filter }} {{ "odd" is test }} {{ "nope" is test }}`},
	{tpl: `{{ "<b>"|e is escaped }} {{ "<b>" is escaped }}`},
	{tpl: `{{ range is callable }} {{ 1 is callable }}`},
	{tpl: `{{ 1 is not none }} {{ [1, 2]|select("even")|list }} {{ [1, 2]|reject("in", [1])|list }}`},
	// Escapes and Unicode.
	{tpl: `{{ "\u00e9" }} {{ "\x41" }} {{ "tab\there" }}`},
	{tpl: `{{ "日本語"|length }} {{ "日本語"[1] }} {{ "日本語"|reverse }} {{ "日本語"|center(7) }}`, diff: "indexing and slicing a string count bytes, not characters"},
	{tpl: `{{ "ß"|upper }} {{ "ŉ"|upper }} {{ "ǅ"|lower }} {{ "Σ"|lower }} {{ "ΌΣΟΣ"|lower }}`},
	{tpl: `{{ "straße"|title }} {{ "ǉubljana"|capitalize }} {{ "ﬀ"|capitalize }}`},
	{tpl: `{{ "🎉x"|first }} {{ "é"|tojson }} {{ "\u2028"|tojson }}`},
	{tpl: `{{ "Ünïcödé"|lower|upper }} {{ "i"|upper }} {{ "I"|lower }}`},
	{tpl: `{{ "émoji 🎉"|wordcount }} {{ "éé"|urlencode }}`},
	// Globals.
	{tpl: `{{ dict(a=1, b=2) }} {{ dict(a=1)|tojson }}`},
	{tpl: `{% set c = cycler("a", "b") %}{{ c.next() }}{{ c.next() }}{{ c.next() }}{{ c.current }}`},
	{tpl: `{% set j = joiner(", ") %}{% for x in [1, 2, 3] %}{{ j() }}{{ x }}{% endfor %}`},
	{tpl: `{% set ns = namespace(a=1) %}{% set ns.b = 2 %}{{ ns.a }}{{ ns.b }}`},
	// Errors.
	{tpl: `{{ "a" + 1 }}`},
	{tpl: `{{ [1][5] }}`},
	{tpl: `{{ none.x }}`},
	{tpl: `{{ {}["k"] }}`},
	{tpl: `{{ 1|nope_is_not_here if false }}x`, diff: "unknown filters are refused when the template is parsed (validate), Jinja2 only when it runs"},
	// Realistic prompts.
	{tpl: "You are a {{ persona|default(\"helpful\") }} assistant.\n{% if context %}Context:\n{% for c in context %}- {{ c.title }}: {{ c.body|truncate(30) }}\n{% endfor %}{% endif %}Question: {{ question|trim }}", vars: `{"context": [{"title": "Doc A", "body": "A long body of text that goes past thirty characters"}, {"title": "B", "body": "short"}], "question": "  why?  "}`},
	{tpl: "Summarize in {{ n }} sentences:\n{{ text }}\n{% if tags %}Tags: {{ tags|map(\"lower\")|unique|sort|join(\", \") }}{% endif %}", vars: `{"n": 3, "text": "Body.", "tags": ["B", "a", "b"]}`},
	{tpl: "{% for m in messages %}{{ m.role|upper }}: {{ m.content }}\n{% endfor %}", vars: `{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}`},
	{tpl: "Total: {{ \"%.2f\"|format(items|sum(attribute=\"price\")) }} ({{ items|length }} items, {{ (items|sum(attribute=\"price\") / items|length)|round(1) }} avg)", vars: `{"items": [{"price": 1.25}, {"price": 3.5}, {"price": 10}]}`},
	{tpl: "{{ {\"query\": q, \"limit\": limit, \"filters\": filters}|tojson }}", vars: `{"q": "a \"quoted\" term", "limit": 10, "filters": {"lang": "de", "since": null}}`},
	{tpl: "{% for u in users|sort(attribute=\"name\") %}{{ loop.index }}. {{ u.name }} ({{ u.age }}){{ \", \" if not loop.last }}{% endfor %}", vars: people},
	{tpl: "{{ price * qty * (1 - discount) }} {{ (price * qty)|round(2) }}", vars: `{"price": 19.99, "qty": 3, "discount": 0.1}`},
	{tpl: "{{ ((done / total) * 100)|round|int }}%", vars: `{"done": 7, "total": 9}`},
	{tpl: "{{ total // per_page + (1 if total % per_page else 0) }} pages", vars: `{"total": 95, "per_page": 10}`, diff: "gonja parser limitation: a conditional expression inside parentheses"},
	{tpl: "{{ total // per_page + (total % per_page > 0)|int }} pages", vars: `{"total": 95, "per_page": 10}`},
}

// jinjaMore adds generated cases: every filter on a few inputs, every test
// on a few values, arithmetic on int and float pairs.
func jinjaMore() []jinjaCase {
	var out []jinjaCase
	for _, f := range []string{"abs", "capitalize", "first", "float", "int", "last", "length", "list", "lower", "string", "title", "trim", "upper", "wordcount", "reverse|list", "sort", "unique|list", "tojson", "count", "escape", "striptags", "urlencode", "pprint", "sum", "max", "min", "center(9)", "indent(2)", "truncate(5)", "wordwrap(5)", "round", "filesizeformat", "default('d')"} {
		for _, in := range []string{`"héllo wörld"`, `[3, 1, 2]`, `-2.5`, `7`} {
			out = append(out, jinjaCase{tpl: "{{ x|" + f + " }}", vars: `{"x": ` + in + `}`})
		}
	}
	for _, tst := range []string{"defined", "none", "boolean", "false", "true", "integer", "float", "number", "string", "mapping", "iterable", "sequence", "callable", "lower", "upper", "odd", "even"} {
		c := jinjaCase{tpl: "{% for x in l %}{{ x is " + tst + " }},{% endfor %}", vars: `{"l": [1, 2.5, "Ab", "ab", true, null, [1], {"a": 1}]}`}
		if tst == "defined" {
			c.diff = "null counts as undefined for default and is defined"
		}
		out = append(out, c)
	}
	for _, op := range []string{"+", "-", "*", "/", "//", "%", "**"} {
		for _, pair := range [][2]string{{"7", "2"}, {"-7", "2"}, {"7.5", "2"}, {"2", "0.5"}, {"10", "-3"}, {"0", "3"}} {
			out = append(out, jinjaCase{tpl: "{{ a " + op + " b }}", vars: `{"a": ` + pair[0] + `, "b": ` + pair[1] + `}`})
		}
	}
	return out
}

// jinja2Python is a Python that can import jinja2: the one on PATH (a
// pyenv or virtualenv Python may have it) or Debian's, where apt's
// python3-jinja2 installs it even when PATH's python3 is another one.
func jinja2Python() string {
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import jinja2").Run() == nil {
			return p
		}
	}
	return ""
}

// TestJinja2Parity renders every case with promptvault and with Python's
// Jinja2 (one python3 run for all of them) and compares the outputs byte
// for byte. Both failing counts as agreement; error texts differ.
func TestJinja2Parity(t *testing.T) {
	python := jinja2Python()
	if python == "" {
		t.Skip("no python3 with jinja2 (tried python3 on PATH and /usr/bin/python3); install Debian's python3-jinja2 (.ci/run does)")
	}
	cases := append(append([]jinjaCase(nil), jinjaCases...), jinjaMore()...)
	type pyCase struct {
		Template  string          `json:"template"`
		Variables json.RawMessage `json:"variables"`
	}
	in := make([]pyCase, len(cases))
	for i, c := range cases {
		if c.vars == "" {
			cases[i].vars = "{}"
		}
		in[i] = pyCase{c.tpl, json.RawMessage(cases[i].vars)}
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "testdata/jinja2_render.py")
	cmd.Stdin = bytes.NewReader(b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.String())
	}
	var py []struct {
		Out   *string `json:"out"`
		Error string  `json:"error"`
	}
	if err := json.Unmarshal(outb, &py); err != nil || len(py) != len(cases) {
		t.Fatalf("python3 answered %d results (%v), want %d", len(py), err, len(cases))
	}
	compared, intended := 0, 0
	for i, c := range cases {
		goOut, goErr := renderString(c.tpl, c.vars)
		if c.diff != "" {
			intended++
			continue
		}
		compared++
		switch {
		case py[i].Out == nil && goErr != nil:
		case py[i].Out == nil:
			t.Errorf("case %d %s vars %s:\n jinja2 error %s\n promptvault %q", i, c.tpl, c.vars, py[i].Error, goOut)
		case goErr != nil:
			t.Errorf("case %d %s vars %s:\n jinja2      %q\n promptvault error %v", i, c.tpl, c.vars, *py[i].Out, goErr)
		case goOut != *py[i].Out:
			t.Errorf("case %d %s vars %s:\n jinja2      %q\n promptvault %q", i, c.tpl, c.vars, *py[i].Out, goOut)
		}
	}
	t.Logf("%d cases compared byte for byte, %d intended differences", compared, intended)
	if compared < 200 {
		t.Errorf("only %d cases compared; want at least 200", compared)
	}
}

// renderString renders src with variables given as JSON, as the server
// does (numbers decoded as json.Number).
func renderString(src, vars string) (string, error) {
	tpl, err := ParseTemplate("template", src)
	if err != nil {
		return "", err
	}
	dec := json.NewDecoder(strings.NewReader(vars))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	p := &Prompt{templates: []MessageTemplate{{Role: "user", Template: tpl}}}
	// A minute, not 100 ms: the comparison is of output, and a busy
	// machine must not turn a match into a timeout.
	r, err := p.Render(context.Background(), v, Limits{Timeout: time.Minute})
	if err != nil {
		return "", err
	}
	return r.Messages[0].Content, nil
}
