package promptvault

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/tokens"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

// Python's semantics where gonja's differ (SPEC §3: templates render as
// Python's Jinja2 3.x renders them). Arithmetic is rewritten, after
// parsing, into calls of pyArith, which works on Python's numbers (ints of
// any size, floats) and bounds what a template can make them cost; the
// filters, methods and tests below replace gonja's where the differential
// test (jinja2_test.go) found them to differ. docs/templates.md lists what
// still differs on purpose.

// maxIntBits bounds an integer a template computes (about 40,000 digits):
// 10 ** 10 ** 10 would otherwise take the worker's whole time and memory
// in one step.
const maxIntBits = 1 << 17

// arithName is the global the rewritten operators call: not an
// identifier, so a template cannot name it.
const arithName = "pv:arith"

var arithOps = map[tokens.Type]string{
	tokens.Addition: "+", tokens.Subtraction: "-", tokens.Multiply: "*", tokens.Division: "/",
	tokens.FloorDivision: "//", tokens.Modulo: "%", tokens.Power: "**", tokens.Tilde: "~",
}

// rewriteArith replaces every arithmetic operator in the parsed template
// by a call of pyArith. It walks the tree by reflection, because gonja's
// nodes keep expressions in many differently named fields.
func rewriteArith(root any) {
	seen := map[uintptr]bool{}
	exprType := reflect.TypeFor[nodes.Expression]()
	var walk func(v reflect.Value)
	fix := func(v reflect.Value) {
		// v is a settable field or element of interface type.
		if v.Kind() != reflect.Interface || v.IsNil() || !v.CanSet() {
			walk(v)
			return
		}
		walk(v.Elem())
		if c := arithCall(v.Elem().Interface()); c != nil && reflect.TypeOf(c).AssignableTo(v.Type()) {
			v.Set(reflect.ValueOf(c))
		}
	}
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Pointer:
			if v.IsNil() || v.Type() == reflect.TypeFor[*tokens.Token]() {
				return
			}
			if seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
			walk(v.Elem())
			if out, ok := v.Interface().(*nodes.Output); ok {
				// What {{ }} prints is Python's str() of the value.
				out.Expression = printCall(out.Expression)
				if out.Alternative != nil {
					out.Alternative = printCall(out.Alternative)
				}
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				f := v.Field(i)
				if !v.Type().Field(i).IsExported() {
					// gonja's set keeps its expressions unexported.
					if !v.CanAddr() || !strings.Contains(v.Type().PkgPath(), "gonja") {
						continue
					}
					f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
				}
				fix(f)
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				fix(v.Index(i))
			}
		case reflect.Map:
			if v.Type().Elem() != exprType {
				return
			}
			for _, k := range v.MapKeys() {
				e := v.MapIndex(k)
				walk(e)
				if c := arithCall(e.Interface()); c != nil {
					v.SetMapIndex(k, reflect.ValueOf(c))
				}
			}
		}
	}
	walk(reflect.ValueOf(root))
}

// printName is the global that prints a value as Python's str() does.
const printName = "pv:print"

func printCall(e nodes.Expression) nodes.Expression {
	t := e.Position()
	return &nodes.Call{Location: t, Func: &nodes.Name{Name: &tokens.Token{Type: tokens.Name, Val: printName, Line: t.Line, Col: t.Col, Pos: t.Pos}},
		Args: []nodes.Expression{e}, Kwargs: map[string]nodes.Expression{}}
}

// pyPrint is Python's str() of a template value: None, True, lists and
// dicts as their repr. Strings and safe values pass through unchanged.
func pyPrint(_ *exec.Evaluator, va *exec.VarArgs) (*exec.Value, error) {
	if len(va.Args) != 1 {
		return nil, errors.New("print: want one value")
	}
	v := va.Args[0]
	if v.IsString() || v.IsError() || v.IsCallable() {
		return v, nil
	}
	s, err := pyStr(v)
	if err != nil {
		return nil, err
	}
	return &exec.Value{Val: reflect.ValueOf(s), Safe: v.Safe}, nil
}

// pyStr is Python's str() of v.
func pyStr(v *exec.Value) (string, error) {
	if v.IsString() {
		return v.String(), nil
	}
	x, err := plain(v, 0)
	if err != nil {
		return "", err
	}
	if f, ok := x.(float64); ok {
		return pyFloatRepr(f), nil
	}
	var b strings.Builder
	pyRepr(&b, x)
	if b.Len() > maxValueSize {
		return "", fmt.Errorf("%w: a value printed past %d bytes", ErrRender, maxValueSize)
	}
	return b.String(), nil
}

func arithCall(n any) *nodes.Call {
	name := func(t *tokens.Token) *nodes.Name {
		return &nodes.Name{Name: &tokens.Token{Type: tokens.Name, Val: arithName, Line: t.Line, Col: t.Col, Pos: t.Pos}}
	}
	str := func(t *tokens.Token, s string) *nodes.String {
		return &nodes.String{Location: t, Val: s}
	}
	switch e := n.(type) {
	case *nodes.BinaryExpression:
		op, ok := arithOps[e.Operator.Token.Type]
		if !ok {
			return nil
		}
		t := e.Operator.Token
		return &nodes.Call{Location: t, Func: name(t), Args: []nodes.Expression{str(t, op), e.Left, e.Right}, Kwargs: map[string]nodes.Expression{}}
	case *nodes.UnaryExpression:
		op := "+x"
		if e.Negative {
			op = "-x"
		}
		t := e.Operator
		return &nodes.Call{Location: t, Func: name(t), Args: []nodes.Expression{str(t, op), e.Term}, Kwargs: map[string]nodes.Expression{}}
	}
	return nil
}

// pyNum is a Python number: an int (small or big) or a float.
type pyNum struct {
	isFloat bool
	i       *big.Int
	f       float64
}

func numOf(v *exec.Value) (pyNum, bool) {
	if v == nil || v.IsNil() {
		return pyNum{}, false
	}
	if b, ok := v.Interface().(*big.Int); ok {
		return pyNum{i: b}, true
	}
	switch {
	case v.IsBool():
		if v.Bool() {
			return pyNum{i: big.NewInt(1)}, true
		}
		return pyNum{i: big.NewInt(0)}, true
	case v.IsInteger():
		return pyNum{i: big.NewInt(int64(v.Integer()))}, true
	case v.IsFloat():
		return pyNum{isFloat: true, f: v.Float()}, true
	}
	return pyNum{}, false
}

func (n pyNum) float() float64 {
	if n.isFloat {
		return n.f
	}
	f, _ := new(big.Float).SetInt(n.i).Float64()
	return f
}

// intValue returns i as an int when it fits, else as *big.Int; past
// maxIntBits it is an error.
func intValue(i *big.Int) (any, error) {
	if i.BitLen() > maxIntBits {
		return nil, fmt.Errorf("%w: an integer grew past %d bits; want smaller numbers", ErrRender, maxIntBits)
	}
	if i.IsInt64() && i.Int64() >= math.MinInt && i.Int64() <= math.MaxInt {
		return int(i.Int64()), nil
	}
	return i, nil
}

func floatValue(f float64) (any, error) {
	if math.IsInf(f, 0) {
		return nil, errors.New("OverflowError: numerical result out of range")
	}
	return f, nil
}

func typeName(v *exec.Value) string {
	switch {
	case v == nil || v.IsNil():
		return "NoneType"
	case v.IsBool():
		return "bool"
	case v.IsInteger():
		return "int"
	case v.IsFloat():
		return "float"
	case v.IsString():
		return "str"
	case v.IsList():
		return "list"
	case v.IsDict():
		return "dict"
	}
	if _, ok := v.Interface().(*big.Int); ok {
		return "int"
	}
	return "object"
}

// pyArith is Python's arithmetic on two values (one for unary + and -).
func pyArith(_ *exec.Evaluator, va *exec.VarArgs) (any, error) {
	if len(va.Args) < 2 {
		return nil, errors.New("arithmetic: missing operand")
	}
	op, a := va.Args[0].String(), va.Args[1]
	if op == "~" && len(va.Args) == 3 {
		x, err := pyStr(a)
		if err != nil {
			return nil, err
		}
		y, err := pyStr(va.Args[2])
		if err != nil {
			return nil, err
		}
		if len(x)+len(y) > maxValueSize {
			return nil, fmt.Errorf("%w: a string grew past %d bytes", ErrRender, maxValueSize)
		}
		return x + y, nil
	}
	if op == "-x" || op == "+x" {
		n, ok := numOf(a)
		if !ok {
			return nil, fmt.Errorf("TypeError: bad operand type for unary %s: '%s'", op[:1], typeName(a))
		}
		if op == "+x" {
			if n.isFloat {
				return n.f, nil
			}
			return intValue(n.i)
		}
		if n.isFloat {
			return -n.f, nil
		}
		return intValue(new(big.Int).Neg(n.i))
	}
	if len(va.Args) < 3 {
		return nil, errors.New("arithmetic: missing operand")
	}
	b := va.Args[2]
	x, xok := numOf(a)
	y, yok := numOf(b)
	if xok && yok {
		return numArith(op, x, y)
	}
	unsupported := fmt.Errorf("TypeError: unsupported operand type(s) for %s: '%s' and '%s'", op, typeName(a), typeName(b))
	switch op {
	case "+":
		switch {
		case a.IsString() && b.IsString():
			if len(a.String())+len(b.String()) > maxValueSize {
				return nil, fmt.Errorf("%w: a string grew past %d bytes", ErrRender, maxValueSize)
			}
			return a.String() + b.String(), nil
		case a.IsList() && b.IsList():
			out := make([]any, 0, a.Len()+b.Len())
			for i := 0; i < a.Len(); i++ {
				out = append(out, a.Index(i).Interface())
			}
			for i := 0; i < b.Len(); i++ {
				out = append(out, b.Index(i).Interface())
			}
			return out, nil
		}
	case "*":
		seq, n := a, b
		if xok {
			seq, n = b, a
		}
		cnt, ok := numOf(n)
		if !ok || cnt.isFloat || n.IsBool() {
			break
		}
		times := 0
		if cnt.i.Sign() > 0 {
			if !cnt.i.IsInt64() || cnt.i.Int64() > maxValueSize {
				return nil, fmt.Errorf("%w: repeating a value %s times; the limit is %d bytes", ErrRender, cnt.i, maxValueSize)
			}
			times = int(cnt.i.Int64())
		}
		switch {
		case seq.IsString():
			if len(seq.String())*times > maxValueSize {
				return nil, fmt.Errorf("%w: repeating a string %d times would exceed %d bytes", ErrRender, times, maxValueSize)
			}
			return strings.Repeat(seq.String(), times), nil
		case seq.IsList():
			if seq.Len()*times > maxRange {
				return nil, fmt.Errorf("%w: repeating a list %d times would exceed %d items", ErrRender, times, maxRange)
			}
			out := make([]any, 0, seq.Len()*times)
			for range times {
				for i := 0; i < seq.Len(); i++ {
					out = append(out, seq.Index(i).Interface())
				}
			}
			return out, nil
		}
		unsupported = fmt.Errorf("TypeError: can't multiply sequence by non-int of type '%s'", typeName(n))
	}
	return nil, unsupported
}

var errZeroDivision = errors.New("ZeroDivisionError: division by zero")

func numArith(op string, x, y pyNum) (any, error) {
	if !x.isFloat && !y.isFloat {
		a, b := x.i, y.i
		switch op {
		case "+":
			return intValue(new(big.Int).Add(a, b))
		case "-":
			return intValue(new(big.Int).Sub(a, b))
		case "*":
			if a.BitLen()+b.BitLen() > maxIntBits+1 {
				return nil, fmt.Errorf("%w: an integer grew past %d bits; want smaller numbers", ErrRender, maxIntBits)
			}
			return intValue(new(big.Int).Mul(a, b))
		case "/":
			if b.Sign() == 0 {
				return nil, errZeroDivision
			}
			f, _ := new(big.Rat).SetFrac(a, b).Float64()
			return floatValue(f)
		case "//", "%":
			if b.Sign() == 0 {
				return nil, errors.New("ZeroDivisionError: integer division or modulo by zero")
			}
			// Python floors; Go's Div and Mod are Euclidean.
			q, m := new(big.Int).DivMod(a, b, new(big.Int))
			if m.Sign() != 0 && b.Sign() < 0 {
				q.Sub(q, big.NewInt(1))
				m.Add(m, b)
			}
			if op == "//" {
				return intValue(q)
			}
			return intValue(m)
		case "**":
			if b.Sign() < 0 {
				if a.Sign() == 0 {
					return nil, errors.New("ZeroDivisionError: 0.0 cannot be raised to a negative power")
				}
				return floatValue(math.Pow(x.float(), y.float()))
			}
			if a.BitLen() > 1 && (!b.IsInt64() || int64(a.BitLen()-1)*b.Int64() > maxIntBits) {
				return nil, fmt.Errorf("%w: %s ** %s has more than %d bits; want smaller numbers", ErrRender, a, b, maxIntBits)
			}
			if a.BitLen() <= 1 && !b.IsInt64() {
				b = big.NewInt(int64(2 - b.Bit(0))) // 0, 1 and -1 to a huge power: parity decides
			}
			return intValue(new(big.Int).Exp(a, b, nil))
		}
	}
	a, b := x.float(), y.float()
	switch op {
	case "+":
		return floatValue(a + b)
	case "-":
		return floatValue(a - b)
	case "*":
		return floatValue(a * b)
	case "/":
		if b == 0 {
			return nil, errors.New("ZeroDivisionError: float division by zero")
		}
		return floatValue(a / b)
	case "//", "%":
		if b == 0 {
			return nil, errors.New("ZeroDivisionError: float modulo")
		}
		// CPython's float_divmod.
		mod := math.Mod(a, b)
		div := (a - mod) / b
		if mod != 0 {
			if (b < 0) != (mod < 0) {
				mod += b
				div -= 1
			}
		} else {
			mod = math.Copysign(0, b)
		}
		var floordiv float64
		if div != 0 {
			floordiv = math.Floor(div)
			if div-floordiv > 0.5 {
				floordiv += 1
			}
		} else {
			floordiv = math.Copysign(0, a/b)
		}
		if op == "//" {
			return floordiv, nil
		}
		return mod, nil
	case "**":
		if a == 0 && b < 0 {
			return nil, errors.New("ZeroDivisionError: 0.0 cannot be raised to a negative power")
		}
		if a < 0 && b != math.Trunc(b) {
			return nil, errors.New("ValueError: negative number cannot be raised to a fractional power")
		}
		return floatValue(math.Pow(a, b))
	}
	return nil, fmt.Errorf("unknown operator %s", op)
}

// Unicode case mapping as Python's str methods do it: full mappings
// (ß → SS), final sigma, title case for the first letter.
var (
	upperCaser = cases.Upper(language.Und)
	lowerCaser = cases.Lower(language.Und)
	titleCaser = cases.Title(language.Und, cases.NoLower)
)

func pyUpper(s string) string { return upperCaser.String(s) }
func pyLower(s string) string { return lowerCaser.String(s) }

// pyTitleRune is Python's title case of one character (ǉ → ǈ, ﬀ → Ff).
func pyTitleRune(r rune) string { return titleCaser.String(string(r)) }

// pyCapitalize is str.capitalize: the first character in title case,
// the rest lower case.
func pyCapitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return pyTitleRune(r) + pyLower(s[n:])
}

// pyStrTitle is str.title: each run of cased letters starts in title case
// and continues in lower case ("it's" → "It'S").
func pyStrTitle(s string) string {
	var b strings.Builder
	prevCased := false
	for _, r := range s {
		cased := unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r)
		switch {
		case cased && !prevCased:
			b.WriteString(pyTitleRune(r))
		case cased:
			b.WriteString(pyLower(string(r)))
		default:
			b.WriteRune(r)
		}
		prevCased = cased
	}
	return b.String()
}

// jinjaTitle is Jinja2's title filter: split before runs of "-", space,
// "(", "{", "[" and "<"; each piece's first character upper-cased (not
// title-cased), the rest lower-cased.
func jinjaTitle(s string) string {
	var b strings.Builder
	start := true
	for _, r := range s {
		sep := r == '-' || unicode.IsSpace(r) || strings.ContainsRune("({[<", r)
		switch {
		case sep:
			b.WriteRune(r)
			start = true
		case start:
			b.WriteString(pyUpper(string(r)))
			start = false
		default:
			b.WriteString(pyLower(string(r)))
		}
	}
	return b.String()
}

// softStr is Jinja2's soft_str: the value as its template text.
func softStr(v *exec.Value) string { return v.String() }

// plain converts a template value to plain Go: nil, bool, int, *big.Int,
// float64, string, []any or orderedMap.
func plain(v *exec.Value, depth int) (any, error) {
	if depth > maxValueDepth {
		return nil, fmt.Errorf("%w: a value is nested more than %d levels deep", ErrRender, maxValueDepth)
	}
	if v == nil || v.IsNil() {
		return nil, nil
	}
	if b, ok := v.Interface().(*big.Int); ok {
		return b, nil
	}
	switch {
	case v.IsBool():
		return v.Bool(), nil
	case v.IsInteger():
		return v.Integer(), nil
	case v.IsFloat():
		return v.Float(), nil
	case v.IsString():
		return v.String(), nil
	case v.IsList():
		out := make([]any, v.Len())
		for i := range out {
			x, err := plain(v.Index(i), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case v.IsDict():
		var m orderedMap
		for _, p := range pairsOf(v) {
			x, err := plain(p.Value, depth+1)
			if err != nil {
				return nil, err
			}
			m = append(m, mapItem{p.Key.String(), x})
		}
		sort.SliceStable(m, func(i, j int) bool { return m[i].k < m[j].k })
		return m, nil
	}
	return v.String(), nil
}

// pairsOf is a mapping's items: gonja's Items misses dicts written in the
// template.
func pairsOf(v *exec.Value) []*exec.Pair {
	switch d := v.Interface().(type) {
	case *exec.Dict:
		return d.Pairs
	case exec.Dict:
		return d.Pairs
	}
	return v.Items()
}

type mapItem struct {
	k string
	v any
}

// orderedMap is a mapping with its keys sorted (Go maps keep no order).
type orderedMap []mapItem

// pyFloatRepr is Python's repr of a float.
func pyFloatRepr(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(s, "e")
	e, _ := strconv.Atoi(exp)
	if e < -4 || e >= 16 {
		return mant + "e" + exp[:1] + fmt.Sprintf("%02d", abs(e))
	}
	s = strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

// pyJSON writes v as Python's json.dumps(v, sort_keys=True, indent=indent)
// does (ensure_ascii, ", " and ": " separators), then, as Jinja2's tojson,
// escapes <, >, & and ' for HTML.
func pyJSON(b *strings.Builder, v any, indent, level int) error {
	if b.Len() > maxValueSize {
		return fmt.Errorf("%w: tojson output grew past %d bytes", ErrRender, maxValueSize)
	}
	nl := func(l int) {
		if indent > 0 {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(" ", indent*l))
		}
	}
	sep := ", "
	if indent > 0 {
		sep = ","
	}
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if t {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int:
		b.WriteString(strconv.Itoa(t))
	case *big.Int:
		b.WriteString(t.String())
	case float64:
		switch {
		case math.IsInf(t, 1):
			b.WriteString("Infinity")
		case math.IsInf(t, -1):
			b.WriteString("-Infinity")
		case math.IsNaN(t):
			b.WriteString("NaN")
		default:
			b.WriteString(pyFloatRepr(t))
		}
	case string:
		jsonString(b, t)
	case []any:
		if len(t) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, x := range t {
			if i > 0 {
				b.WriteString(sep)
			}
			nl(level + 1)
			if err := pyJSON(b, x, indent, level+1); err != nil {
				return err
			}
		}
		nl(level)
		b.WriteByte(']')
	case orderedMap:
		if len(t) == 0 {
			b.WriteString("{}")
			return nil
		}
		b.WriteByte('{')
		for i, it := range t {
			if i > 0 {
				b.WriteString(sep)
			}
			nl(level + 1)
			jsonString(b, it.k)
			b.WriteString(": ")
			if err := pyJSON(b, it.v, indent, level+1); err != nil {
				return err
			}
		}
		nl(level)
		b.WriteByte('}')
	default:
		jsonString(b, fmt.Sprint(t))
	}
	return nil
}

func jsonString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	u := func(r rune) {
		b.WriteString(`\u`)
		for sh := 12; sh >= 0; sh -= 4 {
			b.WriteByte(hex[(r>>sh)&0xf])
		}
	}
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '<' || r == '>' || r == '&' || r == '\'':
			u(r) // Jinja2's htmlsafe_json_dumps
		case r < 0x20 || r >= 0x7f && r < 0x10000:
			u(r)
		case r >= 0x10000:
			r -= 0x10000
			u(0xd800 + (r>>10)&0x3ff)
			u(0xdc00 + r&0x3ff)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// pyRepr is Python's repr, for pprint.
func pyRepr(b *strings.Builder, v any) {
	switch t := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if t {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int:
		b.WriteString(strconv.Itoa(t))
	case *big.Int:
		b.WriteString(t.String())
	case float64:
		b.WriteString(pyFloatRepr(t))
	case string:
		q := byte('\'')
		if strings.ContainsRune(t, '\'') && !strings.ContainsRune(t, '"') {
			q = '"'
		}
		b.WriteByte(q)
		for _, r := range t {
			switch {
			case r == rune(q) || r == '\\':
				b.WriteByte('\\')
				b.WriteRune(r)
			case r == '\n':
				b.WriteString(`\n`)
			case r == '\r':
				b.WriteString(`\r`)
			case r == '\t':
				b.WriteString(`\t`)
			case r < 0x20 || r == 0x7f:
				fmt.Fprintf(b, `\x%02x`, r)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte(q)
	case []any:
		b.WriteByte('[')
		for i, x := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			pyRepr(b, x)
		}
		b.WriteByte(']')
	case orderedMap:
		b.WriteByte('{')
		for i, it := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			pyRepr(b, it.k)
			b.WriteString(": ")
			pyRepr(b, it.v)
		}
		b.WriteByte('}')
	default:
		fmt.Fprint(b, t)
	}
}

// runes splits a string into its characters, as Python iterates a str
// (gonja iterates bytes).
func runes(s string) []any {
	out := make([]any, 0, len(s))
	for _, r := range s {
		out = append(out, string(r))
	}
	return out
}

// urlQuote is Python's urllib.parse.quote with Jinja2's safe characters:
// "/" for a string, none inside a query string (where spaces become +).
func urlQuote(s string, forQuery bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-', c == '~':
			b.WriteByte(c)
		case c == '/' && !forQuery:
			b.WriteByte(c)
		case c == ' ' && forQuery:
			b.WriteByte('+')
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// pyRound is Python's round(x, n): correctly rounded, ties to even on the
// exact binary value (round(2.675, 2) is 2.67).
func pyRound(f float64, prec int) float64 {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return f
	}
	if prec < 0 {
		p := math.Pow(10, float64(-prec))
		return math.RoundToEven(f/p) * p
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(f, 'f', prec, 64), 64)
	if err != nil {
		return f
	}
	return r
}
