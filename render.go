package promptvault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Defaults for Limits (SPEC §3: 100 ms and 256 KB).
const (
	DefaultRenderTimeout = 100 * time.Millisecond
	DefaultMaxOutput     = 256 << 10
	DefaultMaxSteps      = 1_000_000
)

// Bounds inside one render that are not configurable: they are far above
// what a prompt needs and far below what hurts a server.
const (
	maxRange      = 100_000 // items range() may produce
	maxWidth      = 10_000  // widths and counts given to center, indent, batch, ljust, ...
	maxValueSize  = 1 << 20 // bytes one value (a variable, a list built in a loop) may stand for
	maxValueDepth = 64      // nesting of one value
)

// ErrRender is the cause of every failed render that is the template's (or
// its variables') fault: a bound was reached, an operation failed, gonja
// crashed. The resolver answers it 422 render_failed.
var ErrRender = errors.New("render failed")

// ErrBusy: every render worker stayed busy for the pool's whole wait.
var ErrBusy = errors.New("too many renders in progress")

// Limits bound one Render. Zero fields take the defaults.
type Limits struct {
	Timeout   time.Duration // the whole render
	MaxOutput int           // bytes of all messages together
	MaxSteps  int           // loop iterations, items looped over and filter calls
	// Pool, when set, runs the render in one of its worker processes,
	// where the operating system enforces the time and memory bounds
	// (pool.go). Without it the render runs in the caller's goroutine,
	// bounded only by the sandbox's own checks: fine for tools and tests,
	// never for a server.
	Pool *Pool
}

func (l Limits) withDefaults() Limits {
	if l.Timeout <= 0 {
		l.Timeout = DefaultRenderTimeout
	}
	if l.MaxOutput <= 0 {
		l.MaxOutput = DefaultMaxOutput
	}
	if l.MaxSteps <= 0 {
		l.MaxSteps = DefaultMaxSteps
	}
	return l
}

// VariableError is one problem with the variables of a render, at a JSON
// pointer into them ("" is the whole object).
type VariableError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// VariablesError lists every problem with a render's variables: schema
// violations, and variables the template uses that were not given.
type VariablesError struct{ List []VariableError }

func (e *VariablesError) Error() string {
	var b strings.Builder
	b.WriteString("variables do not match the input schema: ")
	for i, v := range e.List {
		if i > 0 {
			b.WriteString("; ")
		}
		p := v.Path
		if p == "" {
			p = "/"
		}
		b.WriteString(p + ": " + v.Message)
	}
	return b.String()
}

// Rendered is a render's result.
type Rendered struct {
	Messages []Message `json:"messages"`
}

// Variables applies the input schema's defaults to vars and validates the
// result, returning every problem as a *VariablesError. vars is not
// modified. Without an input schema any object is accepted. Numbers may be
// json.Number (decode with UseNumber to keep 3 and 3.0 apart, as Python
// does) or Go numbers.
func (p *Prompt) Variables(vars map[string]any) (map[string]any, error) {
	if p.InputSchema == nil {
		return cloneVars(vars), nil
	}
	c, err := p.inputSchema()
	if err != nil {
		return nil, err
	}
	return validateVariables(c.schema, vars)
}

// inputSchema is the compiled input schema: Parse's, or for a prompt from
// Decode compiled through the memo (by the schema's JSON) each time it is
// needed, as Decode's templates are parsed, so a server does not keep one
// per prompt.
func (p *Prompt) inputSchema() (compiledSchema, error) {
	if p.input != nil {
		return compiledSchema{schema: p.input, cost: p.inputCost}, nil
	}
	c, err := compileSchema(p.InputSchema)
	if err != nil {
		return c, fmt.Errorf("input schema: %w", err)
	}
	return c, nil
}

// validateVariables applies s's defaults to a copy of vars and validates
// it.
func validateVariables(s *jsonschema.Schema, vars map[string]any) (map[string]any, error) {
	out := cloneVars(vars)
	applyDefaults(s, out, 0)
	err := s.Validate(toSchemaValue(out))
	if err == nil {
		return out, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil, fmt.Errorf("validate variables: %w", err)
	}
	return nil, &VariablesError{List: variableErrors(ve)}
}

// cloneVars copies the top level of vars, never returning nil.
func cloneVars(vars map[string]any) map[string]any {
	out := make(map[string]any, len(vars))
	maps.Copy(out, vars)
	return out
}

// variableErrors flattens the validation error tree to its leaves, the only
// entries that say what is wrong, sorted by path.
func variableErrors(ve *jsonschema.ValidationError) []VariableError {
	var list []VariableError
	seen := map[VariableError]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		v := VariableError{Path: jsonPointer(e.InstanceLocation), Message: cleanMessage(e.ErrorKind.LocalizedString(printer))}
		if !seen[v] {
			seen[v] = true
			list = append(list, v)
		}
	}
	walk(ve)
	sort.Slice(list, func(i, j int) bool {
		if list[i].Path != list[j].Path {
			return list[i].Path < list[j].Path
		}
		return list[i].Message < list[j].Message
	})
	return list
}

// applyDefaults fills in, in place, each missing property that has a
// default, recursing into objects (given or defaulted) and following $ref
// and allOf: jsonschema validates but never applies defaults (notes/libs.md
// §2).
func applyDefaults(s *jsonschema.Schema, obj map[string]any, depth int) {
	if s == nil || depth > maxValueDepth {
		return
	}
	applyDefaults(s.Ref, obj, depth+1)
	for _, sub := range s.AllOf {
		applyDefaults(sub, obj, depth+1)
	}
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ps := s.Properties[name]
		if _, ok := obj[name]; !ok {
			if d := defaultOf(ps, 0); d != nil {
				obj[name] = deepCopy(*d)
			}
		}
		if m, ok := obj[name].(map[string]any); ok {
			// The caller's nested object is copied before defaults go in.
			c := make(map[string]any, len(m))
			for k, v := range m {
				c[k] = v
			}
			obj[name] = c
			applyDefaults(ps, c, depth+1)
		}
	}
}

func defaultOf(s *jsonschema.Schema, depth int) *any {
	for ; s != nil && depth < maxValueDepth; depth++ {
		if s.Default != nil {
			return s.Default
		}
		s = s.Ref
	}
	return nil
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(t))
		for k, x := range t {
			c[k] = deepCopy(x)
		}
		return c
	case []any:
		c := make([]any, len(t))
		for i, x := range t {
			c[i] = deepCopy(x)
		}
		return c
	}
	return v
}

// toSchemaValue converts Go numbers the validator may not know (int32,
// float32, ...) to json.Number; everything else passes through.
func toSchemaValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(t))
		for k, x := range t {
			c[k] = toSchemaValue(x)
		}
		return c
	case []any:
		c := make([]any, len(t))
		for i, x := range t {
			c[i] = toSchemaValue(x)
		}
		return c
	case int8, int16, int32, uint, uint8, uint16, uint32, uint64, float32:
		return json.Number(fmt.Sprint(t))
	}
	return v
}

// toTemplateValue converts json.Number to int (when integral) or float64,
// so {{ n }} prints 3 for 3 and 3.0 for 3.0, as Jinja2 does with JSON.
func toTemplateValue(v any, depth int) (any, error) {
	if depth > maxValueDepth {
		return nil, fmt.Errorf("%w: variables nested more than %d levels deep", ErrRender, maxValueDepth)
	}
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return int(i), nil
		}
		// An integer past int64 stays an integer, as in Python.
		if !strings.ContainsAny(string(t), ".eE") {
			if b, ok := new(big.Int).SetString(string(t), 10); ok {
				if b.BitLen() > maxIntBits {
					return nil, fmt.Errorf("%w: number %.20s… has more than %d bits", ErrRender, t, maxIntBits)
				}
				return b, nil
			}
		}
		f, err := t.Float64()
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w: number %s is out of range", ErrRender, t)
		}
		return f, nil
	case map[string]any:
		c := make(map[string]any, len(t))
		for k, x := range t {
			y, err := toTemplateValue(x, depth+1)
			if err != nil {
				return nil, err
			}
			c[k] = y
		}
		return c, nil
	case []any:
		c := make([]any, len(t))
		for i, x := range t {
			y, err := toTemplateValue(x, depth+1)
			if err != nil {
				return nil, err
			}
			c[i] = y
		}
		return c, nil
	}
	return v, nil
}

// Render applies the input schema's defaults to vars, validates them, and
// renders the prompt's templates in order (system and template, or each of
// messages) in the sandbox, bounded by lim.
//
// Errors: *VariablesError for schema violations and variables the template
// uses but nobody gave (each with its path); ErrRender (wrapped with the
// reason) when a bound is reached, the template fails or its worker
// process died; ErrBusy when the pool had no free worker in time; ctx's
// error when the caller gave up first.
func (p *Prompt) Render(ctx context.Context, vars map[string]any, lim Limits) (*Rendered, error) {
	lim = lim.withDefaults()
	if lim.Pool == nil {
		rctx, cancel := context.WithTimeout(ctx, lim.Timeout)
		defer cancel()
		return p.renderHere(rctx, vars, lim)
	}
	req := &workerRequest{Variables: vars, Timeout: lim.Timeout, MaxOutput: lim.MaxOutput, MaxSteps: lim.MaxSteps}
	if p.InputSchema != nil {
		// Variables are validated here, before a worker is involved, so
		// schema errors never depend on one: a busy machine may leave a
		// worker at nice 10 without CPU for the whole render timeout, and
		// its 422 would then say "took longer" instead of what is wrong.
		// Only where that is cheap (inlineValidationBudget); otherwise the
		// worker validates, inside the render's bounds.
		c, err := p.inputSchema()
		if err == nil && c.cost > 0 && c.cost*valueNodes(vars, inlineValidationBudget/c.cost) <= inlineValidationBudget {
			if req.Variables, err = validateVariables(c.schema, vars); err != nil {
				return nil, err
			}
		} else {
			req.Schema = p.InputSchema
		}
	}
	for _, mt := range p.templates {
		req.Templates = append(req.Templates, workerTemplate{Name: mt.Template.name, Role: mt.Role, Source: mt.Template.source})
	}
	return lim.Pool.render(ctx, req, lim.MaxOutput)
}

// renderHere renders in the calling goroutine until ctx ends. A panic in
// the engine is the template's failure, not the caller's.
func (p *Prompt) renderHere(ctx context.Context, vars map[string]any, lim Limits) (out *Rendered, err error) {
	vars, err = p.Variables(vars)
	if err != nil {
		return nil, err
	}
	data := make(map[string]any, len(vars)+1)
	for k, v := range vars {
		if data[k], err = toTemplateValue(v, 0); err != nil {
			return nil, err
		}
	}
	defer func() {
		if v := recover(); v != nil {
			out, err = nil, fmt.Errorf("%w: the template engine failed: %v", ErrRender, v)
		}
	}()
	return p.render(ctx, data, lim)
}

func timeoutErr(d time.Duration) error {
	return fmt.Errorf("%w: rendering took longer than %v; want a simpler template or fewer items", ErrRender, d)
}

var undefinedRE = regexp.MustCompile(`Unable to evaluate name "([^"]+)"`)

// render runs on the render goroutine.
func (p *Prompt) render(ctx context.Context, data map[string]any, lim Limits) (*Rendered, error) {
	b := &budget{ctx: ctx, max: lim.MaxSteps, maxOutput: lim.MaxOutput, valueCap: max(maxValueSize, lim.MaxOutput), timeout: lim.Timeout}
	data[budgetKey] = b
	out := &Rendered{Messages: make([]Message, 0, len(p.templates))}
	for _, mt := range p.templates {
		tpl, err := mt.Template.parsed()
		if err != nil {
			return nil, err
		}
		w := &limitWriter{b: b}
		err = tpl.Execute(w, execContext(data))
		if err == nil {
			err = b.err
		}
		if err != nil {
			if b.err != nil {
				return nil, b.err
			}
			msg := err.Error()
			if m := undefinedRE.FindStringSubmatch(msg); m != nil {
				return nil, &VariablesError{List: []VariableError{{Path: "/" + m[1],
					Message: fmt.Sprintf("%s uses variable %q, which was not given and has no default", mt.Template.name, m[1])}}}
			}
			return nil, fmt.Errorf("%w: %s: %s", ErrRender, mt.Template.name, gonjaMessage(msg))
		}
		out.Messages = append(out.Messages, Message{Role: mt.Role, Content: string(w.buf)})
	}
	return out, nil
}

// gonjaMessage keeps the informative tail of gonja's wrapped errors, which
// repeat the template source and Go type names at each level.
func gonjaMessage(msg string) string {
	// Sandbox errors raised inside gonja come back wrapped in its text.
	msg = strings.ReplaceAll(msg, ErrRender.Error()+": ", "")
	parts := strings.Split(msg, ": ")
	var kept []string
	for _, p := range parts {
		if strings.HasPrefix(p, "unable to execute template") || strings.HasPrefix(p, "Unable to execute controlStructure") ||
			strings.Contains(p, "ControlStructure(") {
			continue
		}
		kept = append(kept, p)
	}
	if len(kept) == 0 {
		return cleanMessage(msg)
	}
	s := strings.Join(kept, ": ")
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return cleanMessage(s)
}

// budgetKey is where a render's budget sits in the template context: a name
// no template can write, since it is not an identifier.
const budgetKey = "pv:budget"

// budget is one render's allowance. It is used only by the render's own
// goroutine, so it needs no lock.
type budget struct {
	ctx       context.Context
	steps     int
	max       int
	output    int
	maxOutput int
	valueCap  int
	timeout   time.Duration
	err       error // the first bound reached: sticky, because gonja drops some errors
}

func (b *budget) fail(err error) error {
	if b.err == nil {
		b.err = err
	}
	return b.err
}

// spend charges n steps and checks the deadline.
func (b *budget) spend(n int) error {
	if b.err != nil {
		return b.err
	}
	b.steps += n
	if b.steps > b.max {
		return b.fail(fmt.Errorf("%w: more than %d loop iterations and filter calls; want smaller loops", ErrRender, b.max))
	}
	if b.ctx.Err() != nil {
		return b.fail(timeoutErr(b.timeout))
	}
	return nil
}

// checkValue refuses a value standing for more than valueCap bytes (lists
// may hold one string many times) or containing itself.
func (b *budget) checkValue(v any) error {
	if b.err != nil {
		return b.err
	}
	if err := checkValue(v, b.valueCap); err != nil {
		return b.fail(err)
	}
	return nil
}

func checkValue(v any, limit int) error {
	s := &sizer{limit: limit, path: map[uintptr]bool{}}
	s.walk(reflect.ValueOf(v), 0)
	return s.err
}

type sizer struct {
	limit int
	n     int
	path  map[uintptr]bool // maps on the path from the root: a repeat is a cycle
	err   error
}

var valueType = reflect.TypeFor[*execValue]()

func (s *sizer) walk(v reflect.Value, depth int) {
	if s.err != nil || !v.IsValid() {
		return
	}
	if depth > maxValueDepth {
		s.err = fmt.Errorf("%w: a value is nested more than %d levels deep", ErrRender, maxValueDepth)
		return
	}
	if v.Type() == valueType && v.CanInterface() {
		if ev := v.Interface().(*execValue); ev != nil {
			s.walk(ev.Val, depth)
		}
		return
	}
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if !v.IsNil() {
			s.walk(v.Elem(), depth)
		}
		return
	case reflect.String:
		s.n += v.Len()
	case reflect.Slice, reflect.Array:
		s.n += 8
		for i := 0; i < v.Len() && s.err == nil; i++ {
			s.walk(v.Index(i), depth+1)
		}
	case reflect.Map:
		s.n += 8
		p := v.Pointer()
		if s.path[p] {
			s.err = fmt.Errorf("%w: a value contains itself", ErrRender)
			return
		}
		s.path[p] = true
		it := v.MapRange()
		for it.Next() && s.err == nil {
			s.walk(it.Key(), depth+1)
			s.walk(it.Value(), depth+1)
		}
		delete(s.path, p)
	case reflect.Struct:
		s.n += 8
		for i := 0; i < v.NumField() && s.err == nil; i++ {
			if v.Type().Field(i).IsExported() {
				s.walk(v.Field(i), depth+1)
			}
		}
	default:
		s.n += 8
	}
	if s.err == nil && s.n > s.limit {
		s.err = fmt.Errorf("%w: a value grew past %d bytes; want smaller values", ErrRender, s.limit)
	}
}

// limitWriter collects one message, counting every message's bytes against
// the render's output limit.
type limitWriter struct {
	b   *budget
	buf []byte
}

func (w *limitWriter) Write(p []byte) (int, error) {
	return w.WriteString(string(p))
}

func (w *limitWriter) WriteString(s string) (int, error) {
	b := w.b
	if b.err != nil {
		return 0, b.err
	}
	b.output += len(s)
	if b.output > b.maxOutput {
		return 0, b.fail(fmt.Errorf("%w: output is larger than %d bytes", ErrRender, b.maxOutput))
	}
	w.buf = append(w.buf, s...)
	return len(s), nil
}
