package promptvault

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nikolalohinski/gonja/v2/builtins"
	controlStructures "github.com/nikolalohinski/gonja/v2/builtins/control_structures"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/parser"
	"github.com/nikolalohinski/gonja/v2/tokens"
)

// Template is a Jinja2 template parsed in the sandbox: it has no way to
// reach another template or the file system, and none of the statements or
// operators that let a template grow without bound at parse time.
// A parsed Template is safe for concurrent use.
type Template struct {
	name   string
	source string
	tpl    *exec.Template
}

// Name is the template's name: the field it came from, such as "template"
// or "messages[1].content".
func (t *Template) Name() string { return t.name }

// Source is the template text.
func (t *Template) Source() string { return t.source }

// parsed is the template's parse tree. A Template from Decode holds only its
// source; it is parsed here, through the memo, each time an in-process
// render needs it (workers parse their own copy), so the tree is never
// stored in the Template that a server keeps.
func (t *Template) parsed() (*exec.Template, error) {
	if t.tpl != nil {
		return t.tpl, nil
	}
	pt, err := parseTemplateCached(t.name, t.source)
	if err != nil {
		return nil, fmt.Errorf("%w: %s no longer parses: %v", ErrRender, t.name, err)
	}
	return pt.tpl, nil
}

// The sandbox (notes/libs.md §1). gonja.FromString is never used: it reads
// {% include %} targets from the file system.
var (
	// allowedStatements are the statements a prompt template may use.
	allowedStatements = []string{
		"autoescape", "break", "continue", "do", "filter", "for", "if", "raw", "set", "with",
	}
	// refusedStatements explain why a known Jinja2 statement is missing:
	// each would load another template or define callables whose recursion
	// is a fatal, unrecoverable stack overflow in gonja.
	refusedStatements = map[string]string{
		"include": "prompt templates cannot load other templates",
		"import":  "prompt templates cannot load other templates",
		"from":    "prompt templates cannot load other templates",
		"extends": "template inheritance is not supported",
		"block":   "template inheritance is not supported",
		"macro":   "macros are not supported",
		"call":    "macros are not supported",
		"trans":   "translation is not supported",
	}
	// allowedFilters are gonja's built-in filters, listed so that an
	// unknown name fails validation rather than the first render.
	allowedFilters = []string{
		"abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort",
		"e", "escape", "filesizeformat", "first", "float", "forceescape", "format", "groupby",
		"indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min",
		"pprint", "random", "reject", "rejectattr", "replace", "reverse", "round", "safe",
		"select", "selectattr", "slice", "sort", "string", "striptags", "sum", "title", "tojson",
		"trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap",
		"xmlattr",
	}
	allowedTests = []string{
		"boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even",
		"false", "filter", "float", "ge", "gt", "greaterthan", "in", "integer", "iterable", "le",
		"lower", "lt", "lessthan", "mapping", "ne", "none", "number", "odd", "sameas", "sequence",
		"string", "test", "true", "undefined", "upper",
	}

	sandboxConfig = newSandboxConfig()
	sandboxEnv    = newSandboxEnv()
	filterNames   = setOf(allowedFilters)
	testNames     = setOf(allowedTests)
)

const recursiveRefused = `"for ... recursive" is not allowed; loops cannot recurse in prompt templates`

func newSandboxConfig() *config.Config {
	cfg := config.New()
	// SPEC §3: a variable the template uses but the request lacks is an
	// error, never an empty string.
	cfg.StrictUndefined = true
	return cfg
}

func newSandboxEnv() *exec.Environment {
	statements := map[string]parser.ControlStructureParser{}
	for _, name := range allowedStatements {
		if p, ok := controlStructures.All.Get(name); ok {
			statements[name] = p
		}
	}
	// The lint reports "recursive" with its position; this wrapper makes
	// sure no recursive loop parses even if the lint misses one.
	if forParser, ok := statements["for"]; ok {
		statements["for"] = func(p, args *parser.Parser) (nodes.ControlStructure, error) {
			cs, err := forParser(p, args)
			if err != nil {
				return nil, err
			}
			f, ok := cs.(*controlStructures.ForControlStructure)
			if ok && f.Recursive {
				return nil, errors.New(recursiveRefused)
			}
			if ok {
				// Each item and each body run spend the render's
				// step budget and check its deadline (sandbox.go).
				return wrapFor(f), nil
			}
			return cs, nil
		}
	}
	if setParser, ok := statements["set"]; ok {
		statements["set"] = wrapSet(setParser)
	}
	filters := map[string]exec.FilterFunction{}
	for _, name := range allowedFilters {
		if f, ok := builtins.Filters.Get(name); ok {
			filters[name] = guardFilter(name, pyFilter(name, f))
		}
	}
	return &exec.Environment{
		Context:           exec.EmptyContext().Update(sandboxGlobals()).Update(builtins.GlobalVariables),
		Filters:           exec.NewFilterSet(filters),
		Tests:             pyTests(),
		ControlStructures: exec.NewControlStructureSet(statements),
		Methods:           sandboxMethods(),
	}
}

// ParseTemplate parses src as a Jinja2 template in the sandbox. On failure
// the error is a *Problems whose path is name and whose positions are lines
// and columns (in characters) inside src, 0 when gonja does not know them.
func ParseTemplate(name, src string) (*Template, error) {
	probs := &Problems{}
	lint := lintTemplate(name, src, probs)
	if lint.skipParse {
		return nil, probs.err()
	}

	// The memory loader holds only this template, so even a statement that
	// slipped past the environment could not read another file.
	id := "/" + name
	loader, err := loaders.NewMemoryLoader(map[string]string{id: src})
	if err != nil {
		return nil, fmt.Errorf("template loader: %w", err)
	}
	tpl, err := exec.NewTemplate(id, sandboxConfig, loader, sandboxEnv)
	if err != nil {
		line, col, msg := syntaxError(err)
		if line > 0 {
			col = newLineIndex(src).runeCol(line, col)
		}
		// A lexer error makes the parser fail too, usually without a
		// position; the lint's report of it is the useful one.
		if !(lint.lexErr && line == 0) && !lintCovers(probs, line, col, msg) {
			probs.add(name, line, col, "jinja syntax error: %s", msg)
		}
	}
	if err := probs.err(); err != nil {
		return nil, err
	}
	// Python's arithmetic, bounded (python.go).
	rewriteArith(tpl.Root())
	return &Template{name: name, source: src, tpl: tpl}, nil
}

// lintCovers reports whether the lint already explained the parse error: the
// parser stops at the first refused statement the lint has named.
func lintCovers(probs *Problems, line, col int, msg string) bool {
	for _, p := range probs.List {
		if p.Line == line && p.Column == col || msg != "" && strings.Contains(p.Message, msg) {
			return true
		}
	}
	return false
}

// syntaxError extracts the position and message from a gonja parse error.
// gonja wraps the error with the whole template source; only the innermost
// message is useful.
func syntaxError(err error) (line, col int, msg string) {
	var se *parser.SyntaxError
	if errors.As(err, &se) {
		return se.Line, se.Column, cleanMessage(se.Message)
	}
	for {
		inner := errors.Unwrap(err)
		if inner == nil {
			break
		}
		err = inner
	}
	return 0, 0, cleanMessage(err.Error())
}

// cleanMessage adapts gonja's messages to the house style: lower case, no
// trailing period. "EOF" and other acronyms keep their case.
func cleanMessage(s string) string {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "."))
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	if next, _ := utf8.DecodeRuneInString(s[n:]); !unicode.IsUpper(next) {
		s = string(unicode.ToLower(r)) + s[n:]
	}
	return s
}

// Limits on template structure. gonja's parser recurses on nesting, and a
// stack overflow is fatal to the whole process (recover cannot catch it), so
// templates nested past what any prompt needs are refused before parsing.
const (
	maxNesting   = 50   // open blocks, or brackets and prefix operators in one tag
	maxTagTokens = 2000 // tokens between {{ }} or {% %}
)

// lintResult says what the lint found that decides whether to parse.
type lintResult struct {
	lexErr    bool // the lexer failed; the parser's error repeats it without a position
	skipParse bool // parsing could overflow the stack, or the list is full
	problems  int
}

// lintTemplate refuses, by token, what the parser would accept but the
// sandbox must not run, what would otherwise only fail at render time, and
// nesting the parser cannot survive.
func lintTemplate(name, src string, probs *Problems) lintResult {
	stream := tokens.LexAll(src, sandboxConfig)
	var toks []*tokens.Token
	for !stream.End() {
		toks = append(toks, stream.Next())
	}
	toks = append(toks, stream.Current())

	var res lintResult
	lines := newLineIndex(src)
	at := func(t *tokens.Token, format string, args ...any) {
		res.problems++
		line, col := t.Line, t.Col
		if line == 0 {
			// Lexer errors carry only a byte offset, just past the
			// offending delimiter when there is one.
			pos := t.Pos
			if strings.Contains(t.Val, "delimiter") && pos > 0 {
				_, size := utf8.DecodeLastRuneInString(src[:min(pos, len(src))])
				pos -= size
			}
			line, col = lines.position(pos)
		}
		probs.add(name, line, lines.runeCol(line, col), format, args...)
	}

	var (
		blockDepth int  // open block statements
		inTag      bool // between {{ and }} or {% and %}
		tagTokens  int  // tokens in the current tag
		brackets   int  // open brackets in the current tag
		prefixRun  int  // consecutive prefix operators (not, -, +)
	)
	deep := func(t *tokens.Token, what string) {
		if !res.skipParse {
			at(t, "template is too complex: %s more than %d deep; want less nesting", what, maxNesting)
		}
		res.skipParse = true
	}
	for i, t := range toks {
		if res.problems >= maxProblems {
			// The report is full; parsing could only add to it.
			res.skipParse = true
			break
		}
		var next *tokens.Token
		if i+1 < len(toks) {
			next = toks[i+1]
		}
		if inTag {
			tagTokens++
			if tagTokens == maxTagTokens+1 && !res.skipParse {
				res.skipParse = true
				at(t, "template is too complex: more than %d tokens in one tag; want shorter expressions", maxTagTokens)
			}
			switch t.Type {
			case tokens.Not, tokens.Subtraction, tokens.Addition:
				if prefixRun++; prefixRun > maxNesting {
					deep(t, "prefix operators (not, -, +) repeated")
				}
			default:
				prefixRun = 0
			}
		}
		switch t.Type {
		case tokens.VariableBegin, tokens.BlockBegin:
			inTag, tagTokens, brackets, prefixRun = true, 0, 0, 0
		case tokens.VariableEnd, tokens.BlockEnd:
			inTag = false
		case tokens.LeftParenthesis, tokens.LeftBracket, tokens.LeftBrace:
			if brackets++; brackets > maxNesting {
				deep(t, "brackets nested")
			}
		case tokens.RightParenthesis, tokens.RightBracket, tokens.RightBrace:
			brackets--
		case tokens.Error:
			res.lexErr = true
			at(t, "jinja syntax error: %s", lexerMessage(t.Val))
		case tokens.Pipe:
			if next != nil && next.Type == tokens.Name {
				checkFilter(next, at)
			}
		case tokens.Is:
			n := next
			if n != nil && n.Type == tokens.Not && i+2 < len(toks) {
				n = toks[i+2]
			}
			if n != nil && n.Type == tokens.Name && !testNames[n.Val] {
				at(n, "unknown test %q%s", n.Val, didYouMean(n.Val, allowedTests))
			}
		}
		if t.Type != tokens.BlockBegin || next == nil || next.Type != tokens.Name {
			continue
		}
		if why, refused := refusedStatements[next.Val]; refused {
			at(next, "statement %q is not allowed; %s", next.Val, why)
			continue
		}
		switch next.Val {
		case "if", "for", "with", "filter", "autoescape":
			if blockDepth++; blockDepth > maxNesting {
				deep(next, "blocks nested")
			}
		case "set":
			// Only the block form, {% set x %}...{% endset %}, nests.
			if !tagHas(toks[i+1:], tokens.Assign) {
				blockDepth++
			}
		case "endif", "endfor", "endwith", "endfilter", "endautoescape", "endset":
			blockDepth--
		}
		switch next.Val {
		case "filter":
			if i+2 < len(toks) && toks[i+2].Type == tokens.Name {
				checkFilter(toks[i+2], at)
			}
		case "for":
			// "recursive" can only be the last word of a for tag.
			for j := i + 2; j < len(toks); j++ {
				if toks[j].Type == tokens.BlockEnd || toks[j].Type == tokens.EOF {
					if last := toks[j-1]; j > i+2 && last.Type == tokens.Name && last.Val == "recursive" {
						at(last, "%s", recursiveRefused)
					}
					break
				}
			}
		}
	}
	return res
}

// tagHas reports whether the tag starting at toks[0] contains a token of
// type typ before it ends.
func tagHas(toks []*tokens.Token, typ tokens.Type) bool {
	for _, t := range toks {
		switch t.Type {
		case typ:
			return true
		case tokens.BlockEnd, tokens.EOF, tokens.Error:
			return false
		}
	}
	return false
}

// lexerMessage words a gonja lexer error. An unterminated string's error is
// just the text after the quote, which would read as gibberish.
func lexerMessage(val string) string {
	for _, known := range []string{"Unexpected", "Unbalanced", "Unable", "unclosed", "number"} {
		if strings.Contains(val, known) {
			return cleanMessage(val)
		}
	}
	return "unterminated string; want a closing quote"
}

func checkFilter(t *tokens.Token, at func(*tokens.Token, string, ...any)) {
	if !filterNames[t.Val] {
		at(t, "unknown filter %q%s", t.Val, didYouMean(t.Val, allowedFilters))
	}
}

// lineIndex converts gonja's positions (byte offsets, byte columns) in a
// template into lines and character columns, as yaml.v3 counts them.
type lineIndex struct {
	src    string
	starts []int // byte offset of each line
}

func newLineIndex(src string) *lineIndex {
	// gonja lexes with \r\n normalised to \n.
	src = strings.ReplaceAll(src, "\r\n", "\n")
	starts := []int{0}
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			starts = append(starts, i+1)
		}
	}
	return &lineIndex{src: src, starts: starts}
}

// position converts a byte offset to a line and a byte column.
func (x *lineIndex) position(pos int) (line, col int) {
	pos = min(max(pos, 0), len(x.src))
	line = sort.SearchInts(x.starts, pos+1)
	return line, pos - x.starts[line-1] + 1
}

// runeCol converts a byte column on line (both 1-based) to a column in
// characters.
func (x *lineIndex) runeCol(line, col int) int {
	if line < 1 || line > len(x.starts) || col <= 1 {
		return col
	}
	start := x.starts[line-1]
	end := start + col - 1
	if end > len(x.src) {
		return col
	}
	return utf8.RuneCountInString(x.src[start:end]) + 1
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// didYouMean returns `; did you mean "x"?` for the candidate closest to name
// within a small edit distance, or "" when none is close: a typo hint
// without guessing wildly.
func didYouMean(name string, candidates []string) string {
	best, bestDist := "", 3
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	for _, c := range sorted {
		if d := editDistance(name, c); d < bestDist && d < len(c) {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance, with a length cut-off: names
// longer than any candidate cannot be typos of one.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
