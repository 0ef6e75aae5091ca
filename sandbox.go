package promptvault

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/nikolalohinski/gonja/v2/builtins"
	controlStructures "github.com/nikolalohinski/gonja/v2/builtins/control_structures"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/parser"
	"github.com/nikolalohinski/gonja/v2/tokens"
)

// The run-time half of the sandbox (the parse-time half is in template.go).
// gonja takes no context and has no limits, so each place where a template
// can make the engine loop or allocate in proportion to a number it chose
// is wrapped: loops spend a per-render step budget and check the deadline
// once per item, filters spend a step and have their size arguments
// capped, values built up across iterations (namespaces, lists, dicts) are
// measured, and range is capped. notes/libs.md §1 lists what each stops.

type execValue = exec.Value

// execContext is the data of one template execution.
func execContext(data map[string]any) *exec.Context { return exec.NewContext(data) }

// budgetOf finds the render's budget in a template context; nil outside
// Render (templates are then unbounded, which only tests do).
func budgetOf(ctx *exec.Context) *budget {
	if v, ok := ctx.Get(budgetKey); ok {
		b, _ := v.(*budget)
		return b
	}
	return nil
}

// iterKey holds a loop's already evaluated iterable for the wrapped gonja
// loop, which would otherwise evaluate it a second time.
const iterKey = "pv:iter"

var iterName = &nodes.Name{Name: &tokens.Token{Type: tokens.Name, Val: iterKey}}

// sandboxFor is gonja's for loop charged against the budget: the items up
// front (gonja materialises them all, evaluating any "if" filter on each,
// before the body runs) and one step per body run via stepNode.
type sandboxFor struct {
	*controlStructures.ForControlStructure
}

func (f *sandboxFor) Execute(r *exec.Renderer, tag *nodes.ControlStructureBlock) error {
	b := budgetOf(r.Environment.Context)
	if b == nil {
		return f.ForControlStructure.Execute(r, tag)
	}
	obj := r.Eval(f.ObjectEvaluator)
	if obj.IsError() {
		return obj
	}
	if obj.IsString() {
		// Python iterates characters; gonja iterates bytes.
		obj = exec.AsValue(runes(obj.String()))
	}
	if err := b.spend(max(obj.Len(), 1)); err != nil {
		return err
	}
	sub := r.Inherit()
	sub.Environment.Context.Set(iterKey, obj)
	inner := *f.ForControlStructure
	inner.ObjectEvaluator = iterName
	return inner.Execute(sub, tag)
}

// wrapFor adds the per-iteration check to a parsed loop.
func wrapFor(f *controlStructures.ForControlStructure) nodes.ControlStructure {
	step := &nodes.ControlStructureBlock{Location: f.BodyWrapper.Location, Name: "pv:step", ControlStructure: stepNode{f.BodyWrapper.Location}}
	f.BodyWrapper.Nodes = append([]nodes.Node{step}, f.BodyWrapper.Nodes...)
	return &sandboxFor{f}
}

// stepNode runs first in every loop body: it spends a step, checks the
// deadline, and bounds the output captured by an enclosing {% set %} or
// {% filter %} block, which bypasses the render's limited writer.
type stepNode struct{ loc *tokens.Token }

func (s stepNode) Position() *tokens.Token { return s.loc }
func (s stepNode) String() string          { return "pv:step" }

func (s stepNode) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	b := budgetOf(r.Environment.Context)
	if b == nil {
		return nil
	}
	if err := b.spend(1); err != nil {
		return err
	}
	if buf, ok := r.Output.(*bytes.Buffer); ok && buf.Len() > b.valueCap {
		return b.fail(fmt.Errorf("%w: a {%% set %%} or {%% filter %%} block captured more than %d bytes", ErrRender, b.valueCap))
	}
	return nil
}

// sandboxSet is gonja's set followed by a measure of the variable (or
// namespace) it assigned: a loop doubling ns.s each turn is stopped after
// one doubling past the limit, and ns.x = ns before it can make printing
// recurse forever.
type sandboxSet struct {
	nodes.ControlStructure
	name string
}

func (s *sandboxSet) Execute(r *exec.Renderer, tag *nodes.ControlStructureBlock) error {
	inner, ok := s.ControlStructure.(exec.ControlStructure)
	if !ok {
		return fmt.Errorf("set: not executable")
	}
	if err := inner.Execute(r, tag); err != nil {
		return err
	}
	b := budgetOf(r.Environment.Context)
	if b == nil {
		return nil
	}
	if v, ok := r.Environment.Context.Get(s.name); ok {
		return b.checkValue(v)
	}
	return nil
}

func wrapSet(setParser parser.ControlStructureParser) parser.ControlStructureParser {
	return func(p, args *parser.Parser) (nodes.ControlStructure, error) {
		var name string
		if t := args.Current(tokens.Name); t != nil {
			name = t.Val
		}
		cs, err := setParser(p, args)
		if err != nil || name == "" {
			return cs, err
		}
		return &sandboxSet{ControlStructure: cs, name: name}, nil
	}
}

// sizedFilters take a width or count that scales their output; those
// arguments are capped at maxWidth.
var sizedFilters = map[string]bool{
	"batch": true, "center": true, "indent": true, "slice": true, "tojson": true, "truncate": true, "wordwrap": true,
	"format": true,
}

// guardFilter wraps a filter: one step, inputs and size arguments checked
// before it runs (after would be too late: the allocation is the harm),
// its result measured after.
func guardFilter(name string, f exec.FilterFunction) exec.FilterFunction {
	return func(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
		b := budgetOf(e.Environment.Context)
		if b == nil {
			return f(e, in, params)
		}
		if err := b.spend(1); err != nil {
			return exec.AsValue(err)
		}
		if !in.IsError() {
			if err := b.checkValue(in); err != nil {
				return exec.AsValue(err)
			}
		}
		if err := checkFilterArgs(name, in, params); err != nil {
			return exec.AsValue(b.fail(err))
		}
		out := f(e, in, params)
		if out != nil && !out.IsError() {
			if err := b.checkValue(out); err != nil {
				return exec.AsValue(err)
			}
		}
		return out
	}
}

func checkFilterArgs(name string, in *exec.Value, params *exec.VarArgs) error {
	if params == nil {
		return nil
	}
	args := append([]*exec.Value(nil), params.Args...)
	for _, v := range params.KwArgs {
		args = append(args, v)
	}
	switch name {
	case "replace":
		if len(params.Args) >= 2 && in.IsString() {
			return checkReplace(in.String(), params.Args[0].String(), params.Args[1].String())
		}
	case "indent":
		// indent adds its width (a count or a string) to every line.
		w := 4
		for _, a := range args {
			if a.IsInteger() {
				w = a.Integer()
			} else if a.IsString() {
				w = len(a.String())
			}
		}
		if in.IsString() && (w > maxWidth || (strings.Count(in.String(), "\n")+1)*w > maxValueSize) {
			return fmt.Errorf("%w: indent(%d) of %d lines would exceed %d bytes", ErrRender, w, strings.Count(in.String(), "\n")+1, maxValueSize)
		}
	case "format":
		if in.IsString() && bigNumber.MatchString(in.String()) {
			return fmt.Errorf("%w: format widths and precisions are limited to 4 digits", ErrRender)
		}
	}
	if !sizedFilters[name] {
		return nil
	}
	for _, a := range args {
		if a.IsInteger() && (a.Integer() > maxWidth || a.Integer() < -maxWidth) {
			return fmt.Errorf("%w: %s(%d): sizes are limited to %d", ErrRender, name, a.Integer(), maxWidth)
		}
	}
	if name == "tojson" {
		for _, a := range args {
			if a.IsInteger() && a.Integer() > 16 {
				return fmt.Errorf("%w: tojson indent is limited to 16", ErrRender)
			}
		}
	}
	return nil
}

var bigNumber = regexp.MustCompile(`[0-9]{5,}`)

func checkReplace(s, old, new string) error {
	n := strings.Count(s, old)
	if len(s)+n*len(new) > maxValueSize {
		return fmt.Errorf("%w: replace would produce more than %d bytes", ErrRender, maxValueSize)
	}
	return nil
}

// sandboxGlobals are the functions a template may call. lipsum (n can be
// anything) and the gettext family (no translations here) are left out;
// range is capped.
func sandboxGlobals() *exec.Context {
	// none, true and false in lower case are Jinja2's literals too.
	g := map[string]any{"range": rangeFunction, arithName: pyArith, printName: pyPrint, "none": nil}
	for _, name := range []string{"cycler", "dict", "joiner", "namespace"} {
		if f, ok := builtins.GlobalFunctions.Get(name); ok {
			g[name] = f
		}
	}
	return exec.NewContext(g)
}

// rangeFunction is Jinja2's range, returning a list of at most maxRange
// items. gonja's streams through a channel fed by a goroutine that leaks
// when a loop stops early (a break, an error, the budget).
func rangeFunction(_ *exec.Evaluator, params *exec.VarArgs) ([]int, error) {
	var start, stop, step = 0, 0, 1
	ints := make([]int, len(params.Args))
	for i, a := range params.Args {
		if !a.IsInteger() {
			return nil, fmt.Errorf("range: want integer arguments")
		}
		ints[i] = a.Integer()
	}
	switch len(ints) {
	case 1:
		stop = ints[0]
	case 2:
		start, stop = ints[0], ints[1]
	case 3:
		start, stop, step = ints[0], ints[1], ints[2]
	default:
		return nil, fmt.Errorf("range: want range([start, ]stop[, step])")
	}
	if step == 0 {
		return nil, fmt.Errorf("range: step cannot be 0")
	}
	var n int
	switch {
	case step > 0 && stop > start:
		n = (stop - start + step - 1) / step
	case step < 0 && stop < start:
		n = (start - stop - step - 1) / -step
	}
	if n > maxRange || n < 0 {
		return nil, fmt.Errorf("%w: range of %d items; the limit is %d", ErrRender, n, maxRange)
	}
	out := make([]int, n)
	for i := range out {
		out[i] = start + i*step
	}
	return out, nil
}

// Method names per type in gonja v2.9.1's builtins (MethodSet cannot be
// listed). A name missing from a later gonja is skipped.
var (
	strMethodNames = []string{"capitalize", "capwords", "casefold", "center", "count", "encode", "endswith",
		"expandtabs", "find", "format", "format_map", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit",
		"islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower",
		"lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rjust", "rpartition",
		"rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill"}
	dictMethodNames = []string{"keys", "values", "items", "get", "pop", "setdefault", "update", "copy", "clear"}
	listMethodNames = []string{"append", "reverse", "copy"}
	boolMethodNames = []string{"string", "int", "bit_length", "bit_count", "as_integer_ratio"}
	intMethodNames  = []string{"is_integer", "bit_length", "bit_count", "as_integer_ratio"}
	fltMethodNames  = []string{"is_integer", "as_integer_ratio", "hex"}
)

// sandboxMethods wraps the builtin methods. Methods get no evaluator, so
// they cannot reach the budget; their checks use the fixed value limit.
func sandboxMethods() exec.Methods {
	all := builtins.Methods
	return exec.Methods{
		Bool:  pick(all.Bool, nil, boolMethodNames, nil),
		Int:   pick(all.Int, nil, intMethodNames, nil),
		Float: pick(all.Float, nil, fltMethodNames, nil),
		Str:   pick(all.Str, pyStrMethods, strMethodNames, checkStrMethod),
		Dict:  pick(all.Dict, nil, dictMethodNames, checkDictMethod),
		List:  pick(all.List, nil, listMethodNames, nil),
	}
}

func pick[I any](set *exec.MethodSet[I], over map[string]exec.Method[I], names []string, pre func(name string, self I, sv *exec.Value, args *exec.VarArgs) error) *exec.MethodSet[I] {
	m := map[string]exec.Method[I]{}
	for _, name := range names {
		f, ok := over[name]
		if !ok {
			f, ok = set.Get(name)
		}
		if !ok {
			continue
		}
		m[name] = func(self I, sv *exec.Value, args *exec.VarArgs) (any, error) {
			if pre != nil {
				if err := pre(name, self, sv, args); err != nil {
					return nil, err
				}
			}
			r, err := f(self, sv, args)
			if err != nil {
				return r, err
			}
			// Mutations (append, update, setdefault) grow self.
			if err := checkValue(sv, maxValueSize); err != nil {
				return nil, err
			}
			return r, checkValue(r, maxValueSize)
		}
	}
	return exec.NewMethodSet(m)
}

func checkStrMethod(name, self string, _ *exec.Value, args *exec.VarArgs) error {
	switch name {
	case "center", "ljust", "rjust", "zfill", "expandtabs":
		for _, a := range args.Args {
			if a.IsInteger() && a.Integer() > maxWidth {
				return fmt.Errorf("%w: %s(%d): widths are limited to %d", ErrRender, name, a.Integer(), maxWidth)
			}
		}
	case "replace":
		if len(args.Args) >= 2 {
			return checkReplace(self, args.Args[0].String(), args.Args[1].String())
		}
	case "join":
		if len(args.Args) == 1 {
			a := args.Args[0]
			if err := checkValue(a, maxValueSize); err != nil {
				return err
			}
			if a.Len()*len(self) > maxValueSize {
				return fmt.Errorf("%w: join would produce more than %d bytes", ErrRender, maxValueSize)
			}
		}
	case "format", "format_map":
		if bigNumber.MatchString(self) {
			return fmt.Errorf("%w: format widths and precisions are limited to 4 digits", ErrRender)
		}
	}
	return nil
}

// checkDictMethod refuses update and setdefault calls that would put a
// dict inside itself: printing it would then recurse until the stack
// overflows, which kills the process. (The check runs before the call:
// gonja ignores errors in a loop's "if" filter, so a check after could be
// skipped.)
func checkDictMethod(name string, self map[string]any, _ *exec.Value, args *exec.VarArgs) error {
	if name != "update" && name != "setdefault" {
		return nil
	}
	s := &sizer{limit: maxValueSize, path: map[uintptr]bool{reflect.ValueOf(self).Pointer(): true}}
	for _, a := range args.Args {
		s.walk(reflect.ValueOf(a), 1)
	}
	for _, a := range args.KwArgs {
		s.walk(reflect.ValueOf(a), 1)
	}
	return s.err
}
