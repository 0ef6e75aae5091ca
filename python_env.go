package promptvault

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/exec"
	"golang.org/x/text/cases"
)

// The filters, tests and methods that replace or wrap gonja's so they
// behave as Jinja2's (python.go has the semantics).

// iterableFilters need an iterable: Jinja2 raises TypeError for a number,
// where gonja quietly answers 0, "" or [].
var iterableFilters = map[string]bool{
	"batch": true, "count": true, "dictsort": true, "first": true, "groupby": true, "join": true, "last": true,
	"length": true, "list": true, "map": true, "max": true, "min": true, "reject": true, "rejectattr": true,
	"reverse": true, "select": true, "selectattr": true, "slice": true, "sort": true, "sum": true, "unique": true,
}

// pyFilter adapts gonja's filter name (f) to Jinja2's behaviour.
func pyFilter(name string, f exec.FilterFunction) exec.FilterFunction {
	str := func(fn func(string) string) exec.FilterFunction {
		return func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
			return exec.AsValue(fn(softStr(in)))
		}
	}
	switch name {
	case "upper":
		return str(pyUpper)
	case "lower":
		return str(pyLower)
	case "capitalize":
		return str(pyCapitalize)
	case "title":
		return str(jinjaTitle)
	case "string":
		return func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
			s, err := pyStr(in)
			if err != nil {
				return exec.AsValue(err)
			}
			return &exec.Value{Val: reflect.ValueOf(s), Safe: in.Safe}
		}
	case "wordcount":
		return str(func(s string) string {
			n, in := 0, false
			for _, r := range s {
				w := unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_'
				if w && !in {
					n++
				}
				in = w
			}
			return fmt.Sprint(n)
		})
	case "trim":
		return func(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
			s := softStr(in)
			if params != nil && len(params.Args) > 0 && !params.Args[0].IsNil() {
				return exec.AsValue(strings.Trim(s, params.Args[0].String()))
			}
			return exec.AsValue(strings.TrimFunc(s, unicode.IsSpace))
		}
	case "tojson":
		return func(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
			indent := 0
			if params != nil {
				if v, ok := params.KwArgs["indent"]; ok && v.IsInteger() {
					indent = v.Integer()
				} else if len(params.Args) > 0 && params.Args[0].IsInteger() {
					indent = params.Args[0].Integer()
				}
			}
			v, err := plain(in, 0)
			if err != nil {
				return exec.AsValue(err)
			}
			var b strings.Builder
			if err := pyJSON(&b, v, indent, 0); err != nil {
				return exec.AsValue(err)
			}
			return exec.AsSafeValue(b.String())
		}
	case "pprint":
		return func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
			v, err := plain(in, 0)
			if err != nil {
				return exec.AsValue(err)
			}
			var b strings.Builder
			pyRepr(&b, v)
			return exec.AsValue(b.String())
		}
	case "urlencode":
		return func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
			if !in.IsDict() && !in.IsList() {
				return exec.AsValue(urlQuote(softStr(in), false))
			}
			var parts []string
			pair := func(k, v *exec.Value) {
				parts = append(parts, urlQuote(softStr(k), true)+"="+urlQuote(softStr(v), true))
			}
			if in.IsDict() {
				for _, p := range pairsOf(in) {
					pair(p.Key, p.Value)
				}
			} else {
				for i := 0; i < in.Len(); i++ {
					it := in.Index(i)
					if !it.IsList() || it.Len() != 2 {
						return exec.AsValue(fmt.Errorf("TypeError: urlencode wants pairs"))
					}
					pair(it.Index(0), it.Index(1))
				}
			}
			return exec.AsValue(strings.Join(parts, "&"))
		}
	case "round":
		return func(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
			prec, method := 0, "common"
			if params != nil {
				if len(params.Args) > 0 {
					prec = params.Args[0].Integer()
				}
				if len(params.Args) > 1 {
					method = params.Args[1].String()
				}
				if v, ok := params.KwArgs["precision"]; ok {
					prec = v.Integer()
				}
				if v, ok := params.KwArgs["method"]; ok {
					method = v.String()
				}
			}
			if prec > maxWidth || prec < -maxWidth {
				return exec.AsValue(fmt.Errorf("%w: round precision is limited to %d", ErrRender, maxWidth))
			}
			n, ok := numOf(in)
			if !ok {
				return exec.AsValue(fmt.Errorf("TypeError: round wants a number, not %s", typeName(in)))
			}
			switch method {
			case "common":
				if !n.isFloat {
					return in // Python's round of an int is that int
				}
				return exec.AsValue(pyRound(n.f, prec))
			case "ceil", "floor":
				p := pyRound(1, 0)
				for range abs(prec) {
					p *= 10
				}
				x := n.float()
				if prec < 0 {
					p = 1 / p
				}
				if method == "ceil" {
					return exec.AsValue(math.Ceil(x*p) / p)
				}
				return exec.AsValue(math.Floor(x*p) / p)
			}
			return exec.AsValue(fmt.Errorf("FilterArgumentError: method must be common, ceil or floor"))
		}
	case "reverse":
		return func(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
			switch {
			case in.IsString():
				r := []rune(in.String())
				slices.Reverse(r)
				return exec.AsValue(string(r))
			case in.IsList():
				out := make([]any, in.Len())
				for i := range out {
					out[len(out)-1-i] = in.Index(i).Interface()
				}
				return exec.AsValue(out)
			case !in.IsIterable():
				return exec.AsValue(fmt.Errorf("FilterArgumentError: argument must be iterable"))
			}
			return f(e, in, params)
		}
	case "center":
		return func(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
			w := 80
			if params != nil && len(params.Args) > 0 {
				w = params.Args[0].Integer()
			}
			if v, ok := params.KwArgs["width"]; ok {
				w = v.Integer()
			}
			r, err := justMethod("c")(softStr(in), in, &exec.VarArgs{Args: []*exec.Value{exec.AsValue(w)}})
			if err != nil {
				return exec.AsValue(err)
			}
			return exec.AsValue(r)
		}
	case "truncate", "wordwrap", "filesizeformat":
		return func(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
			_, isNum := numOf(in)
			switch {
			case name == "filesizeformat" && !isNum:
				if _, err := strconv.ParseFloat(strings.TrimSpace(softStr(in)), 64); err != nil || !in.IsString() {
					return exec.AsValue(fmt.Errorf("ValueError: could not convert %s to float", typeName(in)))
				}
			case name == "truncate" && (isNum || in.IsNil()):
				return exec.AsValue(fmt.Errorf("TypeError: object of type '%s' has no len()", typeName(in)))
			case name == "wordwrap" && !in.IsString():
				return exec.AsValue(fmt.Errorf("AttributeError: '%s' object has no attribute 'splitlines'", typeName(in)))
			}
			return f(e, in, params)
		}
	case "int":
		return func(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
			if in.IsBool() {
				return exec.AsValue(int(b2i(in.Bool())))
			}
			if b, ok := in.Interface().(*big.Int); ok {
				return exec.AsValue(b)
			}
			return f(e, in, params)
		}
	case "abs":
		return func(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
			if _, ok := numOf(in); !ok {
				return exec.AsValue(fmt.Errorf("TypeError: bad operand type for abs(): '%s'", typeName(in)))
			}
			if b, ok := in.Interface().(*big.Int); ok {
				return exec.AsValue(new(big.Int).Abs(b))
			}
			return f(e, in, params)
		}
	case "items":
		return func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
			if !in.IsDict() {
				return exec.AsValue(fmt.Errorf("TypeError: items wants a mapping, not %s", typeName(in)))
			}
			pairs := pairsOf(in)
			slices.SortStableFunc(pairs, func(a, b *exec.Pair) int { return strings.Compare(a.Key.String(), b.Key.String()) })
			out := make([]any, len(pairs))
			for i, p := range pairs {
				out[i] = []any{p.Key.Interface(), p.Value.Interface()}
			}
			return exec.AsValue(out)
		}
	}
	if iterableFilters[name] {
		return func(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
			if in.IsString() && name == "sum" {
				return exec.AsValue(fmt.Errorf("TypeError: unsupported operand type(s) for +: 'int' and 'str'"))
			}
			if in.IsString() && name != "length" && name != "count" {
				// Python iterates characters; gonja iterates bytes.
				in = exec.AsValue(runes(in.String()))
			}
			if !in.IsIterable() && !in.IsError() {
				if _, ok := in.Interface().(*big.Int); ok || in.IsNil() || in.IsNumber() || in.IsBool() {
					return exec.AsValue(fmt.Errorf("TypeError: '%s' object is not iterable", typeName(in)))
				}
			}
			if in.IsString() {
				// length and count of a string count characters.
				return exec.AsValue(utf8.RuneCountInString(in.String()))
			}
			return f(e, in, params)
		}
	}
	return f
}

// pyTests are gonja's tests with Jinja2's answers where they differ.
func pyTests() *exec.TestSet {
	tests := map[string]exec.TestFunction{}
	for _, name := range allowedTests {
		if t, ok := builtins.Tests.Get(name); ok {
			tests[name] = t
		}
	}
	type testFn = func(*exec.Evaluator, *exec.Value, *exec.VarArgs) (bool, error)
	var set = map[string]testFn{
		"none": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) (bool, error) { return in.IsNil(), nil },
		"false": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			return in.IsBool() && !in.Bool(), nil
		},
		"true": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			return in.IsBool() && in.Bool(), nil
		},
		"sequence": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			return in.IsString() || in.IsList() || in.IsDict(), nil
		},
		"filter": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			return in.IsString() && filterNames[in.String()], nil
		},
		"test": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			return in.IsString() && testNames[in.String()], nil
		},
		"integer": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			_, big := in.Interface().(*big.Int)
			return big || in.IsInteger() && !in.IsBool(), nil
		},
		"number": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			_, ok := numOf(in)
			return ok, nil
		},
		"lower": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			s := softStr(in)
			return s == pyLower(s) && s != pyUpper(s), nil
		},
		"upper": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			s := softStr(in)
			return s == pyUpper(s) && s != pyLower(s), nil
		},
	}
	parity := func(want int64) testFn {
		return func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			n, ok := numOf(in)
			if !ok {
				return false, fmt.Errorf("TypeError: unsupported operand type(s) for %%: '%s' and 'int'", typeName(in))
			}
			if n.isFloat {
				return math.Mod(math.Mod(n.f, 2)+2, 2) == float64(want), nil
			}
			return new(big.Int).Mod(n.i, big.NewInt(2)).Int64() == want, nil
		}
	}
	set["odd"], set["even"] = parity(1), parity(0)
	set["escaped"] = func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) (bool, error) { return in.Safe, nil }
	for name, t := range set {
		tests[name] = t
	}
	// Jinja2's operator aliases for tests (select(">", 1)).
	for alias, name := range map[string]string{"==": "eq", "!=": "ne", ">": "gt", ">=": "ge", "<": "lt", "<=": "le"} {
		tests[alias] = tests[name]
	}
	return exec.NewTestSet(tests)
}

// pyStrMethods replace gonja's str methods whose arguments or results
// differ from Python's.
var pyStrMethods = map[string]exec.Method[string]{
	"upper":      func(s string, _ *exec.Value, _ *exec.VarArgs) (any, error) { return pyUpper(s), nil },
	"lower":      func(s string, _ *exec.Value, _ *exec.VarArgs) (any, error) { return pyLower(s), nil },
	"capitalize": func(s string, _ *exec.Value, _ *exec.VarArgs) (any, error) { return pyCapitalize(s), nil },
	"title":      func(s string, _ *exec.Value, _ *exec.VarArgs) (any, error) { return pyStrTitle(s), nil },
	"casefold":   func(s string, _ *exec.Value, _ *exec.VarArgs) (any, error) { return cases.Fold().String(s), nil },
	"strip":      stripMethod(strings.Trim, strings.TrimFunc),
	"lstrip":     stripMethod(strings.TrimLeft, strings.TrimLeftFunc),
	"rstrip":     stripMethod(strings.TrimRight, strings.TrimRightFunc),
	"split":      splitMethod(false),
	"rsplit":     splitMethod(true),
	"replace": func(s string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		if len(a.Args) < 2 {
			return nil, fmt.Errorf("TypeError: replace wants old and new")
		}
		n := -1
		if len(a.Args) > 2 {
			n = a.Args[2].Integer()
		}
		if err := checkReplace(s, a.Args[0].String(), a.Args[1].String()); err != nil {
			return nil, err
		}
		return strings.Replace(s, a.Args[0].String(), a.Args[1].String(), n), nil
	},
	"count": func(s string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		if len(a.Args) < 1 {
			return nil, fmt.Errorf("TypeError: count wants a substring")
		}
		sub := a.Args[0].String()
		if sub == "" {
			return utf8.RuneCountInString(s) + 1, nil
		}
		return strings.Count(s, sub), nil
	},
	"ljust":  justMethod("l"),
	"rjust":  justMethod("r"),
	"center": justMethod("c"),
}

func stripMethod(trim func(string, string) string, trimFunc func(string, func(rune) bool) string) exec.Method[string] {
	return func(s string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		if len(a.Args) > 0 && !a.Args[0].IsNil() {
			return trim(s, a.Args[0].String()), nil
		}
		return trimFunc(s, unicode.IsSpace), nil
	}
}

func splitMethod(right bool) exec.Method[string] {
	return func(s string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		sep, max := "", -1
		if len(a.Args) > 0 && !a.Args[0].IsNil() {
			sep = a.Args[0].String()
			if sep == "" {
				return nil, fmt.Errorf("ValueError: empty separator")
			}
		}
		if len(a.Args) > 1 {
			max = a.Args[1].Integer()
		}
		var parts []string
		switch {
		case sep == "" && max < 0:
			parts = strings.Fields(s)
		case sep == "":
			// Whitespace split with a limit: the rest keeps its spaces.
			rest := strings.TrimFunc(s, unicode.IsSpace)
			for len(parts) < max && rest != "" {
				var i int
				if right {
					i = strings.LastIndexFunc(rest, unicode.IsSpace)
				} else {
					i = strings.IndexFunc(rest, unicode.IsSpace)
				}
				if i < 0 {
					break
				}
				if right {
					parts = append([]string{rest[i+1:]}, parts...)
					rest = strings.TrimRightFunc(rest[:i], unicode.IsSpace)
				} else {
					parts = append(parts, rest[:i])
					rest = strings.TrimLeftFunc(rest[i:], unicode.IsSpace)
				}
			}
			if rest != "" {
				if right {
					parts = append([]string{rest}, parts...)
				} else {
					parts = append(parts, rest)
				}
			}
		case right && max >= 0:
			all := strings.Split(s, sep)
			if len(all) > max+1 {
				head := strings.Join(all[:len(all)-max], sep)
				all = append([]string{head}, all[len(all)-max:]...)
			}
			parts = all
		case max >= 0:
			parts = strings.SplitN(s, sep, max+1)
		default:
			parts = strings.Split(s, sep)
		}
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	}
}

func justMethod(side string) exec.Method[string] {
	return func(s string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		if len(a.Args) < 1 || !a.Args[0].IsInteger() {
			return nil, fmt.Errorf("TypeError: want a width")
		}
		w, fill := a.Args[0].Integer(), " "
		if w > maxWidth {
			return nil, fmt.Errorf("%w: widths are limited to %d", ErrRender, maxWidth)
		}
		if len(a.Args) > 1 {
			fill = a.Args[1].String()
			if utf8.RuneCountInString(fill) != 1 {
				return nil, fmt.Errorf("TypeError: the fill character must be exactly one character long")
			}
		}
		n := w - utf8.RuneCountInString(s)
		if n <= 0 {
			return s, nil
		}
		switch side {
		case "l":
			return s + strings.Repeat(fill, n), nil
		case "r":
			return strings.Repeat(fill, n) + s, nil
		}
		// CPython's centre: the extra character goes left when n and w
		// are both odd.
		left := n/2 + (n & w & 1)
		return strings.Repeat(fill, left) + s + strings.Repeat(fill, n-left), nil
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
