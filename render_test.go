package promptvault

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"
)

func mustParse(tb testing.TB, src string) *Prompt {
	tb.Helper()
	p, err := Parse("t.yaml", []byte(src))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestRenderSandbox checks each bound at the promptvault level; the HTTP
// tests (resolver/render_test.go) check the same templates end to end.
func TestRenderSandbox(t *testing.T) {
	for _, tt := range []struct {
		name, template string
		vars           map[string]any
		want           string // substring of the error
	}{
		{"range cap", "{% for i in range(1000000000) %}x{% endfor %}", nil, "the limit is 100000"},
		{"deadline", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", nil, "longer than"},
		{"step budget", "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", nil, "loop iterations"},
		{"output size", "{% for i in range(1000) %}{% for j in range(1000) %}{{ pad }}{% endfor %}{% endfor %}", map[string]any{"pad": strings.Repeat("p", 1000)}, "output is larger"},
		{"division by zero", "{{ 1 % 0 }}", nil, "by zero"},
		{"string repetition", "{{ 'x' * 1000000000 }}", nil, "limit is"},
		{"list repetition", "{{ [1, 2] * 1000000 }}", nil, "would exceed"},
		{"huge power", "{{ 10 ** 1000000 }}", nil, "bits"},
		{"doubling integer", "{% set ns = namespace(n=3) %}{% for i in range(100) %}{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n }}", nil, "bits"},
		{"doubling namespace", "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", nil, "grew past"},
		{"self-containing namespace", "{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", nil, "contains itself"},
		{"center width", "{{ 'x'|center(1000000000) }}", nil, "limited to"},
		{"str.center width", "{{ 'x'.center(1000000000) }}", nil, "limited to"},
		{"tojson indent", "{{ {'a': 1}|tojson(indent=100) }}", nil, "limited to 16"},
		{"format width", "{{ '%999999999d'|format(1) }}", nil, "limited to 4 digits"},
		{"replace blow-up", "{{ pad|replace('p', pad) }}", map[string]any{"pad": strings.Repeat("p", 5000)}, "more than"},
		{"indent blow-up", "{{ lines|indent(5000) }}", map[string]any{"lines": strings.Repeat("\n", 5000)}, "exceed"},
		{"set block capture", "{% set x %}{% for i in range(10000) %}" + strings.Repeat("y", 1000) + "{% endfor %}{% endset %}", nil, "captured more than"},
		{"lipsum is not available", "{{ lipsum(1000000) }}", nil, "lipsum"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, "template: |-\n  "+tt.template+"\n")
			start := time.Now()
			// Generous time, so only the bound under test can trip.
			lim := Limits{MaxSteps: 100_000, Timeout: 5 * time.Second}
			switch tt.name {
			case "deadline":
				lim = Limits{} // 100 ms; the default budget, 1e6 steps, takes longer
			case "step budget":
				lim.MaxSteps = 10_000
			}
			_, err := p.Render(context.Background(), tt.vars, lim)
			if !errors.Is(err, ErrRender) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrRender containing %q", err, tt.want)
			}
			t.Logf("%v: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

// variablesSchema declares defaults of each JSON type and a required object.
const variablesSchema = `input_schema:
  type: object
  properties:
    n: {type: integer, default: 3}
    f: {type: number, default: 2.5}
    o: {type: object, properties: {k: {type: string}, d: {type: string, default: dd}}}
    l: {type: array, items: {type: integer}, default: [1, 2]}
  required: [o]
`

func TestRenderVariables(t *testing.T) {
	p := mustParse(t, `template: "{{ n }} {{ f }} {{ o.k }} {{ o.d }} {{ l|join(',') }}"
`+variablesSchema)
	vars := map[string]any{"o": map[string]any{"k": "kk"}}
	r, err := p.Render(context.Background(), vars, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Messages[0].Content; got != "3 2.5 kk dd 1,2" {
		t.Errorf("got %q", got)
	}
	if _, ok := vars["n"]; ok || len(vars["o"].(map[string]any)) != 1 {
		t.Errorf("Render modified the caller's variables: %v", vars)
	}
	_, err = p.Render(context.Background(), map[string]any{"n": "x", "l": []any{"a"}}, Limits{})
	var ve *VariablesError
	if !errors.As(err, &ve) || len(ve.List) != 3 {
		t.Fatalf("err = %v, want 3 variable errors", err)
	}
}

// benchTemplate is a ~1 KB prompt with loops, conditionals and filters,
// written in the subset text/template can express too.
const benchJinja = `You are a support assistant for {{ company }}. Answer in {{ lang }}.
{% if urgent %}This ticket is URGENT: answer first, explain later.{% endif %}
Customer: {{ customer.name }} (plan: {{ customer.plan }}, since {{ customer.since }})
Recent tickets:
{% for t in tickets %}- #{{ t.id }} {{ t.title }} [{{ t.status }}]
{% endfor %}
Known issues:
{% for k in issues %}* {{ k }}
{% endfor %}
Guidelines: be concise; cite ticket numbers; never promise dates; escalate billing
questions to a human; keep a friendly, professional tone; use bullet points for steps;
end with one question that moves the case forward. Lorem ipsum dolor sit amet, consectetur
adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim
ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo.
Question: {{ question }}`

var benchGo = strings.NewReplacer(
	"{% if urgent %}", "{{if .urgent}}", "{% endif %}", "{{end}}",
	"{% for t in tickets %}", "{{range .tickets}}", "{% for k in issues %}", "{{range .issues}}", "{% endfor %}", "{{end}}",
	"{{ company }}", "{{.company}}", "{{ lang }}", "{{.lang}}", "{{ customer.name }}", "{{.customer.name}}",
	"{{ customer.plan }}", "{{.customer.plan}}", "{{ customer.since }}", "{{.customer.since}}",
	"{{ t.id }}", "{{.id}}", "{{ t.title }}", "{{.title}}", "{{ t.status }}", "{{.status}}", "{{ k }}", "{{.}}",
	"{{ question }}", "{{.question}}",
).Replace(benchJinja)

func benchVars() map[string]any {
	return map[string]any{
		"company": "Acme", "lang": "English", "urgent": true, "question": "Why does login fail?",
		"customer": map[string]any{"name": "Ada", "plan": "pro", "since": "2021"},
		"tickets": []any{
			map[string]any{"id": 1, "title": "Login fails", "status": "open"},
			map[string]any{"id": 2, "title": "Slow dashboard", "status": "closed"},
			map[string]any{"id": 3, "title": "Invoice wrong", "status": "open"},
		},
		"issues": []any{"SSO outage on EU", "Email delays"},
	}
}

// BenchmarkRender renders a ~1 KB template through Render (schema-less:
// defaults and validation are measured by the resolver's HTTP test) and,
// as the baseline, the same text through text/template: in the calling
// goroutine ("in-process", what tools use) and through a Pool of worker
// processes (what serve uses), serially and in parallel, reporting p50 and
// p99 latency.
func BenchmarkRender(b *testing.B) {
	p := mustParse(b, "template: |-\n  "+strings.ReplaceAll(benchJinja, "\n", "\n  ")+"\n")
	gt := template.Must(template.New("b").Option("missingkey=error").Parse(benchGo))
	vars := benchVars()
	var want string
	b.Run("text-template", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var sb strings.Builder
			if err := gt.Execute(&sb, vars); err != nil {
				b.Fatal(err)
			}
			want = sb.String()
		}
		b.SetBytes(int64(len(want)))
	})
	b.Run("in-process", func(b *testing.B) {
		b.ReportAllocs()
		var out string
		for b.Loop() {
			r, err := p.Render(context.Background(), vars, Limits{Timeout: 5 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			out = r.Messages[0].Content
		}
		b.SetBytes(int64(len(out)))
		if len(out) < 700 {
			b.Fatalf("rendered %d bytes", len(out))
		}
	})
	pool := NewPool(PoolOptions{})
	defer pool.Close()
	lim := Limits{Pool: pool, Timeout: 5 * time.Second}
	if _, err := p.Render(context.Background(), vars, lim); err != nil { // start the workers
		b.Fatal(err)
	}
	b.Run("pool", func(b *testing.B) {
		var lat []time.Duration
		for b.Loop() {
			start := time.Now()
			if _, err := p.Render(context.Background(), vars, lim); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		reportLatency(b, lat)
	})
	b.Run("pool-parallel", func(b *testing.B) {
		var mu sync.Mutex
		var lat []time.Duration
		b.RunParallel(func(pb *testing.PB) {
			var mine []time.Duration
			for pb.Next() {
				start := time.Now()
				if _, err := p.Render(context.Background(), vars, lim); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
		reportLatency(b, lat)
	})
	// after-kill: a render whose worker is killed at its deadline (the
	// test worker's "crash: spin"), then the render timed, on a pool of
	// one slot, with the warm spare and without. Without it the slot's
	// next worker is still starting (seconds at nice 10 on a busy
	// machine); with it the spare is ready. Each round waits for the
	// spare to be ready first (untimed): kills are rarer than starts.
	spin := mustParse(b, "template: \"crash: spin\"\n")
	for _, noSpare := range []bool{false, true} {
		name := "after-kill/spare"
		if noSpare {
			name = "after-kill/no-spare"
		}
		b.Run(name, func(b *testing.B) {
			pool := NewPool(PoolOptions{Size: 1, NoSpare: noSpare})
			defer pool.Close()
			lim := Limits{Pool: pool, Timeout: 5 * time.Second}
			kill := Limits{Pool: pool, Timeout: 10 * time.Millisecond}
			if _, err := p.Render(context.Background(), vars, lim); err != nil {
				b.Fatal(err)
			}
			var lat []time.Duration
			for b.Loop() {
				b.StopTimer()
				for !noSpare && !spareReady(pool) {
					time.Sleep(time.Millisecond)
				}
				if _, err := spin.Render(context.Background(), nil, kill); !errors.Is(err, ErrRender) {
					b.Fatalf("spinning render: %v", err)
				}
				b.StartTimer()
				start := time.Now()
				if _, err := p.Render(context.Background(), vars, lim); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			reportLatency(b, lat)
		})
	}
}

func spareReady(p *Pool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spare != nil
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// TestDecodeRendersAsParse: a server keeps prompts from Decode (templates
// unparsed, schema uncompiled); renders of them, in process and on a
// worker, answer exactly as renders of Parse's prompt do, defaults and
// variable errors included.
func TestDecodeRendersAsParse(t *testing.T) {
	src := `system: "You help {{ o.k }}."
template: "{{ n }} {{ f }} {{ o.k }} {{ o.d }} {{ l|join(',') }} {{ n * 2 ** 70 }}"
` + variablesSchema
	parsed := mustParse(t, src)
	decoded, err := Decode("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range decoded.templates {
		if mt.Template.tpl != nil {
			t.Fatalf("Decode parsed template %s; it should keep only the source", mt.Template.name)
		}
	}
	if decoded.input != nil {
		t.Fatal("Decode compiled the input schema; it should compile on first use")
	}
	pool, _ := newTestPool(t, PoolOptions{Size: 1})
	ctx := context.Background()
	for _, lim := range []Limits{{}, {Pool: pool, Timeout: 10 * time.Second}} {
		for _, vars := range []map[string]any{
			{"o": map[string]any{"k": "kk"}},
			{"o": map[string]any{"k": "ü"}, "n": 7, "l": []any{5}},
			{"n": "x", "l": []any{"a"}},
		} {
			want, werr := parsed.Render(ctx, vars, lim)
			got, gerr := decoded.Render(ctx, vars, lim)
			if fmt.Sprint(werr) != fmt.Sprint(gerr) {
				t.Fatalf("pool %v, vars %v: Decode's error %v, Parse's %v", lim.Pool != nil, vars, gerr, werr)
			}
			if werr == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("pool %v, vars %v: Decode rendered %+v, Parse %+v", lim.Pool != nil, vars, got, want)
			}
		}
	}
}
