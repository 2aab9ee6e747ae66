package rules

import (
	"cmp"
	"encoding/hex"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	celref "cel.dev/cel-go/common/types/ref"

	"github.com/ctwatch/ctwatch/cert"
)

// The native CEL evaluator.
//
// cel-go evaluates a program by walking its plan over boxed values: every
// field read, every string of a list and every intermediate result is a
// ref.Val, and a macro such as cert.dns_names.exists(n, ...) resolves its
// variables through an activation on every pass. That costs 50 to 90 ns per
// name per rule, which for a few rules over a certificate of 30 names is
// more than all the other matchers together.
//
// The expressions rule files hold are mostly a few shapes: string tests of
// a field or of each name (==, contains, startsWith, endsWith, matches,
// in), comparisons of scalar fields, sizes, combined with &&, || and !.
// compileNative recognises, in the type-checked AST, a subset of CEL made
// of those shapes, whose semantics are simple to state exactly, and builds
// a tree of natNodes that evaluates it over plain Go values with the same
// outcome as cel-go: true, false, or an error (which && and || absorb the
// way CEL's commutative operators do, and which makes a rule not hold).
// Anything outside the subset (an overload it does not know, a value of
// type dyn, a map, a double, a macro other than exists and all) makes the
// whole expression fall back to cel-go, so the subset can grow one shape at
// a time. TestCELNativeMatchesCELGo and FuzzCELNative hold the two
// evaluators to the same results.
//
// The subset, by overload:
//
//	literals            bool, int, string; list literals of strings
//	cert.<field>        every field; has(cert.<field>) is true
//	&& || ! ?:          on bools, with CEL's error absorption
//	== != < <= > >=     on bool, int, string, timestamp, duration
//	contains startsWith endsWith, matches with a literal pattern
//	in                  a string in a list of strings
//	size                of a list of strings or of a string (code points)
//	+ -                 on ints (an overflow is an error)
//	timestamp - timestamp, giving a duration (an overflow is an error)
//	list[i]             of a list of strings (out of range is an error)
//	lowerAscii upperAscii   (strings extension)
//	timestamp("..."), duration("...")   of a literal
//	exists all          over a list of strings, as the macros expand

// celTri is the outcome of a boolean expression.
type celTri uint8

const (
	triFalse celTri = iota
	triTrue
	triErr // an evaluation error (or a non-bool, which a bool-typed node never yields)
)

func triOf(b bool) celTri {
	if b {
		return triTrue
	}
	return triFalse
}

// natKind is the type of a node's value.
type natKind uint8

const (
	natBool natKind = iota + 1
	natInt
	natString
	natList // list(string)
	natTime
	natDuration
)

// natOp is what a node computes.
type natOp uint8

const (
	opConst      natOp = iota + 1 // a literal: b, num, str, strs or tm by kind
	opField                       // a certificate field
	opVar                         // an iteration variable (a string), in slot
	opAnd                         // all kids
	opOr                          // any kid
	opNot                         // !kids[0]
	opCond                        // kids[0] ? kids[1] : kids[2], on bools
	opCmp                         // kids[0] cmp kids[1], both of argKind
	opHashEq                      // the hash field equals (or not, by cmp) the literal in lit
	opHashIn                      // the literal in lit is one of the hash list field's
	opContains                    // kids[0].contains(kids[1])
	opStartsWith                  // kids[0].startsWith(kids[1])
	opEndsWith                    // kids[0].endsWith(kids[1])
	opMatches                     // re matches kids[0]
	opIn                          // kids[0] in kids[1]
	opInSet                       // kids[0] in the literal list strs
	opExists                      // some element of kids[0], in slot, satisfies kids[1]
	opAll                         // every element of kids[0], in slot, satisfies kids[1]
	opSize                        // size of kids[0], of argKind
	opAdd                         // kids[0] + kids[1], ints
	opSub                         // kids[0] - kids[1], ints
	opSubTime                     // kids[0] - kids[1], timestamps, a duration
	opIndex                       // kids[0][kids[1]]
	opLower                       // kids[0].lowerAscii()
	opUpper                       // kids[0].upperAscii()
	opList                        // a list literal of kids
)

// natCmp is the relation an opCmp or opHashEq node tests.
type natCmp uint8

const (
	cmpEq natCmp = iota + 1
	cmpNe
	cmpLt
	cmpLe
	cmpGt
	cmpGe
)

// holds reports whether the relation holds for a three-way comparison r.
func (c natCmp) holds(r int) bool {
	switch c {
	case cmpEq:
		return r == 0
	case cmpNe:
		return r != 0
	case cmpLt:
		return r < 0
	case cmpLe:
		return r <= 0
	case cmpGt:
		return r > 0
	case cmpGe:
		return r >= 0
	}
	return false
}

// natMaxVars bounds the nesting of comprehensions; deeper expressions fall
// back to cel-go.
const natMaxVars = 4

// natFrame is one evaluation: the certificate and the iteration variables
// in scope. Only the eval methods, which are not called indirectly, see
// it, so it stays on the caller's stack.
type natFrame struct {
	c    *cert.Cert
	vars [natMaxVars]string
}

// hashLit is a string literal compared with a hex hash field, decoded once:
// hexHash renders the zero hash as "" and any other as 64 lower-case hex
// digits, so the literal equals a field exactly when it is "" and the hash
// is zero, or it is such digits of that (non-zero) hash.
type hashLit struct {
	empty bool
	valid bool
	h     cert.Hash
}

func newHashLit(s string) hashLit {
	if s == "" {
		return hashLit{empty: true}
	}
	var l hashLit
	if len(s) != 2*len(l.h) || strings.ToLower(s) != s {
		return l // no hash renders as s
	}
	if _, err := hex.Decode(l.h[:], []byte(s)); err != nil || l.h.IsZero() {
		return l
	}
	l.valid = true
	return l
}

func (l *hashLit) equal(h cert.Hash) bool {
	if l.empty {
		return h.IsZero()
	}
	return l.valid && h == l.h
}

// natNode is one node of a natively evaluated expression. It is immutable
// once compiled and so safe for concurrent use.
type natNode struct {
	op      natOp
	kind    natKind // of the value
	argKind natKind // of the operands of opCmp and opSize
	cmp     natCmp
	slot    int
	kids    []*natNode
	field   *celField
	b       bool
	num     int64
	str     string
	strs    []string
	tm      time.Time
	re      *regexp.Regexp
	lit     hashLit
	// simple is set on an opExists or opAll node whose predicate is a
	// simple test of the iteration variable (see isStrTest), which the
	// loop runs directly.
	simple bool
}

// eval evaluates a bool expression on c.
func (n *natNode) eval(c *cert.Cert) celTri {
	f := natFrame{c: c}
	return n.evalBool(&f)
}

func (n *natNode) evalBool(f *natFrame) celTri {
	switch n.op {
	case opConst:
		return triOf(n.b)
	case opField:
		return triOf(n.field.bit(f.c))
	case opAnd:
		// False wins over an error, an error over true, whatever the
		// order: CEL's && is commutative.
		out := triTrue
		for _, k := range n.kids {
			switch k.evalBool(f) {
			case triFalse:
				return triFalse
			case triErr:
				out = triErr
			}
		}
		return out
	case opOr:
		out := triFalse
		for _, k := range n.kids {
			switch k.evalBool(f) {
			case triTrue:
				return triTrue
			case triErr:
				out = triErr
			}
		}
		return out
	case opNot:
		switch n.kids[0].evalBool(f) {
		case triTrue:
			return triFalse
		case triFalse:
			return triTrue
		}
		return triErr
	case opCond:
		switch n.kids[0].evalBool(f) {
		case triTrue:
			return n.kids[1].evalBool(f)
		case triFalse:
			return n.kids[2].evalBool(f)
		}
		return triErr
	case opCmp:
		r, ok := n.compare(f)
		if !ok {
			return triErr
		}
		return triOf(n.cmp.holds(r))
	case opHashEq:
		return triOf(n.lit.equal(n.field.hash(f.c)) == (n.cmp == cmpEq))
	case opHashIn:
		for _, h := range n.field.hashes(f.c) {
			if n.lit.equal(h) {
				return triTrue
			}
		}
		return triFalse
	case opContains, opStartsWith, opEndsWith:
		s, ok1 := n.kids[0].evalStr(f)
		sub, ok2 := n.kids[1].evalStr(f)
		if !ok1 || !ok2 {
			return triErr
		}
		switch n.op {
		case opContains:
			return triOf(strings.Contains(s, sub))
		case opStartsWith:
			return triOf(strings.HasPrefix(s, sub))
		}
		return triOf(strings.HasSuffix(s, sub))
	case opMatches:
		s, ok := n.kids[0].evalStr(f)
		if !ok {
			return triErr
		}
		return triOf(n.re.MatchString(s))
	case opIn:
		s, ok1 := n.kids[0].evalStr(f)
		l, ok2 := n.kids[1].evalList(f)
		if !ok1 || !ok2 {
			return triErr
		}
		return triOf(slices.Contains(l, s))
	case opInSet:
		s, ok := n.kids[0].evalStr(f)
		if !ok {
			return triErr
		}
		return triOf(slices.Contains(n.strs, s))
	case opExists, opAll:
		// The macros' accumulators: exists is true once an element
		// satisfies the predicate, all false once one fails it; an error
		// on another element does not change that, and is the result
		// only when nothing decided.
		l, ok := n.kids[0].evalList(f)
		if !ok {
			return triErr
		}
		decide, out := triTrue, triFalse
		if n.op == opAll {
			decide, out = triFalse, triTrue
		}
		if n.simple {
			// A simple test never fails.
			if n.kids[1].anyStrTest(l, decide == triTrue) {
				return decide
			}
			return out
		}
		for _, s := range l {
			f.vars[n.slot] = s
			switch n.kids[1].evalBool(f) {
			case decide:
				return decide
			case triErr:
				out = triErr
			}
		}
		return out
	}
	return triErr
}

// isStrTest reports whether n is a test of the iteration variable in slot
// against a literal that cannot fail: v.contains("x"), v.startsWith("x"),
// v.endsWith("x"), v.matches("x"), v in ["x", ...], or v == "x" and the
// other comparisons with v on the left. strTest evaluates it.
func (n *natNode) isStrTest(slot int) bool {
	isVar := len(n.kids) > 0 && n.kids[0].op == opVar && n.kids[0].slot == slot
	switch n.op {
	case opContains, opStartsWith, opEndsWith:
		return isVar && n.kids[1].op == opConst
	case opCmp:
		return isVar && n.argKind == natString && n.kids[1].op == opConst
	case opMatches, opInSet:
		return isVar
	}
	return false
}

// anyStrTest reports whether strTest gives want for some element of l,
// with a loop for each kind of test, the commonest of them written out.
func (n *natNode) anyStrTest(l []string, want bool) bool {
	switch n.op {
	case opEndsWith:
		lit := n.kids[1].str
		for _, s := range l {
			if strings.HasSuffix(s, lit) == want {
				return true
			}
		}
	case opStartsWith:
		lit := n.kids[1].str
		for _, s := range l {
			if strings.HasPrefix(s, lit) == want {
				return true
			}
		}
	case opContains:
		lit := n.kids[1].str
		for _, s := range l {
			if strings.Contains(s, lit) == want {
				return true
			}
		}
	default:
		for _, s := range l {
			if n.strTest(s) == want {
				return true
			}
		}
	}
	return false
}

// strTest evaluates a node for which isStrTest holds, with s as the value
// of the variable.
func (n *natNode) strTest(s string) bool {
	switch n.op {
	case opContains:
		return strings.Contains(s, n.kids[1].str)
	case opStartsWith:
		return strings.HasPrefix(s, n.kids[1].str)
	case opEndsWith:
		return strings.HasSuffix(s, n.kids[1].str)
	case opCmp:
		return n.cmp.holds(strings.Compare(s, n.kids[1].str))
	case opMatches:
		return n.re.MatchString(s)
	case opInSet:
		return slices.Contains(n.strs, s)
	}
	return false
}

// compare compares the operands of an opCmp node; ok is false when one of
// them is an error.
func (n *natNode) compare(f *natFrame) (int, bool) {
	a, b := n.kids[0], n.kids[1]
	switch n.argKind {
	case natBool:
		x, y := a.evalBool(f), b.evalBool(f)
		if x == triErr || y == triErr {
			return 0, false
		}
		return cmp.Compare(x, y), true // false < true, as in CEL
	case natInt, natDuration:
		x, ok1 := a.evalInt(f)
		y, ok2 := b.evalInt(f)
		return cmp.Compare(x, y), ok1 && ok2
	case natString:
		x, ok1 := a.evalStr(f)
		y, ok2 := b.evalStr(f)
		return strings.Compare(x, y), ok1 && ok2
	case natTime:
		x, ok1 := a.evalTime(f)
		y, ok2 := b.evalTime(f)
		return x.Compare(y), ok1 && ok2
	}
	return 0, false
}

// evalInt evaluates an int, or a duration in nanoseconds.
func (n *natNode) evalInt(f *natFrame) (int64, bool) {
	switch n.op {
	case opConst:
		return n.num, true
	case opField:
		return n.field.i64(f.c), true
	case opSize:
		if n.argKind == natString {
			s, ok := n.kids[0].evalStr(f)
			return int64(utf8.RuneCountInString(s)), ok
		}
		l, ok := n.kids[0].evalList(f)
		return int64(len(l)), ok
	case opAdd, opSub:
		x, ok1 := n.kids[0].evalInt(f)
		y, ok2 := n.kids[1].evalInt(f)
		if !ok1 || !ok2 {
			return 0, false
		}
		if n.op == opSub {
			return subInt64(x, y)
		}
		return addInt64(x, y)
	case opSubTime:
		x, ok1 := n.kids[0].evalTime(f)
		y, ok2 := n.kids[1].evalTime(f)
		if !ok1 || !ok2 {
			return 0, false
		}
		return subTimes(x, y)
	}
	return 0, false
}

func (n *natNode) evalStr(f *natFrame) (string, bool) {
	switch n.op {
	case opConst:
		return n.str, true
	case opField:
		return n.field.str(f.c), true
	case opVar:
		return f.vars[n.slot], true
	case opIndex:
		l, ok1 := n.kids[0].evalList(f)
		i, ok2 := n.kids[1].evalInt(f)
		if !ok1 || !ok2 || i < 0 || i >= int64(len(l)) {
			return "", false
		}
		return l[i], true
	case opLower, opUpper:
		s, ok := n.kids[0].evalStr(f)
		if !ok {
			return "", false
		}
		return mapASCII(s, n.op == opUpper), true
	}
	return "", false
}

func (n *natNode) evalList(f *natFrame) ([]string, bool) {
	switch n.op {
	case opConst:
		return n.strs, true
	case opField:
		return n.field.strs(f.c), true
	case opList:
		out := make([]string, len(n.kids))
		for i, k := range n.kids {
			s, ok := k.evalStr(f)
			if !ok {
				return nil, false
			}
			out[i] = s
		}
		return out, true
	}
	return nil, false
}

func (n *natNode) evalTime(f *natFrame) (time.Time, bool) {
	switch n.op {
	case opConst:
		return n.tm, true
	case opField:
		return n.field.tm(f.c), true
	}
	return time.Time{}, false
}

// addInt64 and subInt64 are CEL's int arithmetic: an overflow is an error.
func addInt64(x, y int64) (int64, bool) {
	if y > 0 && x > math.MaxInt64-y || y < 0 && x < math.MinInt64-y {
		return 0, false
	}
	return x + y, true
}

func subInt64(x, y int64) (int64, bool) {
	if y < 0 && x > math.MaxInt64+y || y > 0 && x < math.MinInt64+y {
		return 0, false
	}
	return x - y, true
}

// subTimes is CEL's timestamp - timestamp: the difference of the whole
// seconds since the Unix epoch, in nanoseconds, plus that of the
// sub-second parts; an error when it does not fit a duration's int64 of
// nanoseconds (timestamps more than about 292 years apart, such as an
// unknown time, the zero time, against a real one).
func subTimes(x, y time.Time) (int64, bool) {
	xs, xn := splitTime(x)
	ys, yn := splitTime(y)
	s, ok := subInt64(xs, ys)
	if !ok {
		return 0, false
	}
	const ns = int64(time.Second)
	if s > math.MaxInt64/ns || s < math.MinInt64/ns {
		return 0, false
	}
	return addInt64(s*ns, xn-yn)
}

// splitTime is t as whole seconds since the Unix epoch, t truncated to the
// second the way time.Time.Truncate does, and the nanoseconds past it.
func splitTime(t time.Time) (sec, nsec int64) {
	whole := t.Truncate(time.Second)
	return whole.Unix(), t.Sub(whole).Nanoseconds()
}

// mapASCII is the strings extension's lowerAscii (upperAscii when upper):
// ASCII letters change case, every other code point stays, and the string
// is rebuilt from its code points, so that invalid UTF-8 becomes U+FFFD.
func mapASCII(s string, upper bool) string {
	if utf8.ValidString(s) {
		changes := false
		for i := 0; i < len(s) && !changes; i++ {
			c := s[i]
			changes = upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z'
		}
		if !changes {
			return s
		}
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r <= unicode.MaxASCII {
			if upper {
				r = unicode.ToUpper(r)
			} else {
				r = unicode.ToLower(r)
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

// natCompiler turns a checked AST into natNodes.
type natCompiler struct {
	ast    *celast.AST
	fields map[string]celField
	// scope lists the iteration variables in scope, innermost last; a
	// variable's slot is its index.
	scope []string
}

// compileNative returns the native form of a checked bool expression, or
// nil when it uses anything outside the subset the native evaluator knows
// (see the top of this file): cel-go evaluates it then.
func compileNative(a *cel.Ast, fields map[string]celField) *natNode {
	if a == nil || !a.IsChecked() || fields == nil {
		return nil
	}
	c := &natCompiler{ast: a.NativeRep(), fields: fields}
	n := c.expr(c.ast.Expr())
	if n == nil || n.kind != natBool {
		return nil
	}
	return n
}

// kindOf is the checked type of e, or 0 when the native evaluator does not
// handle values of that type.
func (c *natCompiler) kindOf(e celast.Expr) natKind {
	t := c.ast.GetType(e.ID())
	if t == nil {
		return 0
	}
	switch t.Kind() {
	case types.BoolKind:
		return natBool
	case types.IntKind:
		return natInt
	case types.StringKind:
		return natString
	case types.TimestampKind:
		return natTime
	case types.DurationKind:
		return natDuration
	case types.ListKind:
		if p := t.Parameters(); len(p) == 1 && p[0].Kind() == types.StringKind {
			return natList
		}
	}
	return 0
}

// expr compiles e, or returns nil when it is outside the subset.
func (c *natCompiler) expr(e celast.Expr) *natNode {
	kind := c.kindOf(e)
	if kind == 0 {
		return nil
	}
	switch e.Kind() {
	case celast.LiteralKind:
		return literal(e.AsLiteral(), kind)
	case celast.IdentKind:
		// Only an iteration variable: cert itself is read through its
		// fields, and there are no other variables.
		// The innermost variable of that name.
		for i := len(c.scope) - 1; i >= 0; i-- {
			if c.scope[i] == e.AsIdent() {
				if kind != natString {
					return nil
				}
				return &natNode{op: opVar, kind: kind, slot: i}
			}
		}
	case celast.SelectKind:
		return c.selectField(e.AsSelect(), kind)
	case celast.ListKind:
		return c.list(e.AsList(), kind)
	case celast.CallKind:
		return c.call(e, kind)
	case celast.ComprehensionKind:
		return c.comprehension(e.AsComprehension(), kind)
	}
	return nil
}

// literal compiles a literal of the checked kind.
func literal(v celref.Val, kind natKind) *natNode {
	switch v := v.(type) {
	case types.Bool:
		if kind == natBool {
			return &natNode{op: opConst, kind: kind, b: bool(v)}
		}
	case types.Int:
		if kind == natInt {
			return &natNode{op: opConst, kind: kind, num: int64(v)}
		}
	case types.String:
		if kind == natString {
			return &natNode{op: opConst, kind: kind, str: string(v)}
		}
	}
	return nil
}

// selectField compiles cert.<field>, and has(cert.<field>), which is true
// for every field.
func (c *natCompiler) selectField(s celast.SelectExpr, kind natKind) *natNode {
	op := s.Operand()
	if op.Kind() != celast.IdentKind || op.AsIdent() != celVar || slices.Contains(c.scope, celVar) {
		return nil
	}
	f, ok := c.fields[s.FieldName()]
	if !ok {
		return nil
	}
	if s.IsTestOnly() {
		if kind != natBool {
			return nil
		}
		return &natNode{op: opConst, kind: natBool, b: true}
	}
	switch {
	case kind == natBool && f.bit != nil,
		kind == natInt && f.i64 != nil,
		kind == natString && f.str != nil,
		kind == natList && f.strs != nil,
		kind == natTime && f.tm != nil:
		return &natNode{op: opField, kind: kind, field: &f}
	}
	return nil
}

// list compiles a list literal of strings.
func (c *natCompiler) list(l celast.ListExpr, kind natKind) *natNode {
	if kind != natList || len(l.OptionalIndices()) > 0 {
		return nil
	}
	n := &natNode{op: opList, kind: natList}
	constant := true
	for _, e := range l.Elements() {
		k := c.expr(e)
		if k == nil || k.kind != natString {
			return nil
		}
		constant = constant && k.op == opConst
		n.kids = append(n.kids, k)
	}
	if constant {
		n.op, n.strs = opConst, make([]string, len(n.kids))
		for i, k := range n.kids {
			n.strs[i] = k.str
		}
		n.kids = nil
	}
	return n
}

// comparison returns the relation and operand kind of a comparison
// overload the native evaluator knows.
func comparison(ov string) (natCmp, natKind, bool) {
	switch ov {
	case overloads.LessBool:
		return cmpLt, natBool, true
	case overloads.LessInt64:
		return cmpLt, natInt, true
	case overloads.LessString:
		return cmpLt, natString, true
	case overloads.LessTimestamp:
		return cmpLt, natTime, true
	case overloads.LessDuration:
		return cmpLt, natDuration, true
	case overloads.LessEqualsBool:
		return cmpLe, natBool, true
	case overloads.LessEqualsInt64:
		return cmpLe, natInt, true
	case overloads.LessEqualsString:
		return cmpLe, natString, true
	case overloads.LessEqualsTimestamp:
		return cmpLe, natTime, true
	case overloads.LessEqualsDuration:
		return cmpLe, natDuration, true
	case overloads.GreaterBool:
		return cmpGt, natBool, true
	case overloads.GreaterInt64:
		return cmpGt, natInt, true
	case overloads.GreaterString:
		return cmpGt, natString, true
	case overloads.GreaterTimestamp:
		return cmpGt, natTime, true
	case overloads.GreaterDuration:
		return cmpGt, natDuration, true
	case overloads.GreaterEqualsBool:
		return cmpGe, natBool, true
	case overloads.GreaterEqualsInt64:
		return cmpGe, natInt, true
	case overloads.GreaterEqualsString:
		return cmpGe, natString, true
	case overloads.GreaterEqualsTimestamp:
		return cmpGe, natTime, true
	case overloads.GreaterEqualsDuration:
		return cmpGe, natDuration, true
	}
	return 0, 0, false
}

// call compiles a function call by its one checked overload.
func (c *natCompiler) call(e celast.Expr, kind natKind) *natNode {
	ovs := c.ast.GetOverloadIDs(e.ID())
	if len(ovs) != 1 {
		return nil // chosen at run time
	}
	ce := e.AsCall()
	var args []celast.Expr
	if ce.IsMemberFunction() {
		args = append(args, ce.Target())
	}
	args = append(args, ce.Args()...)
	// kids compiles the arguments, which must be of the given kinds.
	kids := func(want ...natKind) []*natNode {
		if len(args) != len(want) {
			return nil
		}
		out := make([]*natNode, len(args))
		for i, a := range args {
			out[i] = c.expr(a)
			if out[i] == nil || out[i].kind != want[i] {
				return nil
			}
		}
		return out
	}
	node := func(op natOp, want ...natKind) *natNode {
		k := kids(want...)
		if k == nil {
			return nil
		}
		return &natNode{op: op, kind: kind, kids: k}
	}
	ov := ovs[0]
	if rel, argKind, ok := comparison(ov); ok && kind == natBool {
		n := node(opCmp, argKind, argKind)
		if n != nil {
			n.cmp, n.argKind = rel, argKind
		}
		return n
	}
	switch ov {
	case overloads.LogicalAnd, overloads.LogicalOr:
		want := make([]natKind, len(args))
		for i := range want {
			want[i] = natBool
		}
		if ov == overloads.LogicalAnd {
			return node(opAnd, want...)
		}
		return node(opOr, want...)
	case overloads.LogicalNot:
		return node(opNot, natBool)
	case overloads.Conditional:
		if kind != natBool {
			return nil
		}
		return node(opCond, natBool, natBool, natBool)
	case overloads.Equals, overloads.NotEquals:
		return c.equals(args, ov == overloads.Equals)
	case overloads.ContainsString:
		return node(opContains, natString, natString)
	case overloads.StartsWithString:
		return node(opStartsWith, natString, natString)
	case overloads.EndsWithString:
		return node(opEndsWith, natString, natString)
	case overloads.Matches, overloads.MatchesString:
		// A literal pattern, compiled once as cel-go does with
		// OptOptimize; a pattern that does not compile is left to it.
		if len(args) != 2 || args[1].Kind() != celast.LiteralKind {
			return nil
		}
		pat, ok := args[1].AsLiteral().(types.String)
		if !ok {
			return nil
		}
		re, err := regexp.Compile(string(pat))
		if err != nil {
			return nil
		}
		n := node(opMatches, natString, natString)
		if n != nil {
			n.re, n.kids = re, n.kids[:1]
		}
		return n
	case overloads.InList:
		return c.in(args)
	case overloads.SizeList, overloads.SizeListInst:
		n := node(opSize, natList)
		if n != nil {
			n.argKind = natList
		}
		return n
	case overloads.SizeString, overloads.SizeStringInst:
		n := node(opSize, natString)
		if n != nil {
			n.argKind = natString
		}
		return n
	case overloads.AddInt64:
		return node(opAdd, natInt, natInt)
	case overloads.SubtractInt64:
		return node(opSub, natInt, natInt)
	case overloads.SubtractTimestampTimestamp:
		return node(opSubTime, natTime, natTime)
	case overloads.IndexList:
		return node(opIndex, natList, natInt)
	case "string_lower_ascii":
		return node(opLower, natString)
	case "string_upper_ascii":
		return node(opUpper, natString)
	case overloads.StringToTimestamp, overloads.StringToDuration:
		return convertLiteral(args, kind)
	}
	return nil
}

// convertLiteral compiles timestamp("...") and duration("...") of a
// literal with cel-go's own conversion, once; a literal it rejects is left
// to cel-go.
func convertLiteral(args []celast.Expr, kind natKind) *natNode {
	if len(args) != 1 || args[0].Kind() != celast.LiteralKind {
		return nil
	}
	s, ok := args[0].AsLiteral().(types.String)
	if !ok {
		return nil
	}
	switch kind {
	case natTime:
		if v, ok := s.ConvertToType(types.TimestampType).(types.Timestamp); ok {
			return &natNode{op: opConst, kind: natTime, tm: v.Time}
		}
	case natDuration:
		if v, ok := s.ConvertToType(types.DurationType).(types.Duration); ok {
			return &natNode{op: opConst, kind: natDuration, num: int64(v.Duration)}
		}
	}
	return nil
}

// equals compiles == (eq) and != on operands of one scalar kind. A hex
// hash field compared with a literal compares the hashes, not their hex.
func (c *natCompiler) equals(args []celast.Expr, eq bool) *natNode {
	if len(args) != 2 {
		return nil
	}
	x, y := c.expr(args[0]), c.expr(args[1])
	if x == nil || y == nil || x.kind != y.kind || x.kind == natList {
		return nil
	}
	rel := cmpNe
	if eq {
		rel = cmpEq
	}
	if x.op == opConst && x.kind == natString {
		x, y = y, x
	}
	if x.op == opField && x.field.hash != nil && y.op == opConst {
		return &natNode{op: opHashEq, kind: natBool, cmp: rel, field: x.field, lit: newHashLit(y.str)}
	}
	return &natNode{op: opCmp, kind: natBool, cmp: rel, argKind: x.kind, kids: []*natNode{x, y}}
}

// in compiles `s in list` for strings.
func (c *natCompiler) in(args []celast.Expr) *natNode {
	if len(args) != 2 {
		return nil
	}
	x, l := c.expr(args[0]), c.expr(args[1])
	if x == nil || l == nil || x.kind != natString || l.kind != natList {
		return nil
	}
	switch {
	case l.op == opConst:
		return &natNode{op: opInSet, kind: natBool, kids: []*natNode{x}, strs: l.strs}
	case l.op == opField && l.field.hashes != nil && x.op == opConst:
		return &natNode{op: opHashIn, kind: natBool, field: l.field, lit: newHashLit(x.str)}
	}
	return &natNode{op: opIn, kind: natBool, kids: []*natNode{x, l}}
}

// comprehension compiles the exists and all macros over a list of
// strings, recognised by the comprehension they expand to:
//
//	exists: accu = false, loop while @not_strictly_false(!accu), accu = accu || P, result accu
//	all:    accu = true,  loop while @not_strictly_false(accu),  accu = accu && P, result accu
func (c *natCompiler) comprehension(ce celast.ComprehensionExpr, kind natKind) *natNode {
	if kind != natBool || ce.HasIterVar2() || len(c.scope) == natMaxVars {
		return nil
	}
	accu := ce.AccuVar()
	isAccu := func(e celast.Expr) bool { return e.Kind() == celast.IdentKind && e.AsIdent() == accu }
	// callOf returns the arguments of e when it calls the one overload ov.
	callOf := func(e celast.Expr, ov string) []celast.Expr {
		if e.Kind() != celast.CallKind || e.AsCall().IsMemberFunction() {
			return nil
		}
		if ids := c.ast.GetOverloadIDs(e.ID()); len(ids) != 1 || ids[0] != ov {
			return nil
		}
		return e.AsCall().Args()
	}
	init := ce.AccuInit()
	if init.Kind() != celast.LiteralKind || !isAccu(ce.Result()) {
		return nil
	}
	start, ok := init.AsLiteral().(types.Bool)
	if !ok {
		return nil
	}
	cond := callOf(ce.LoopCondition(), overloads.NotStrictlyFalse)
	if len(cond) != 1 {
		return nil
	}
	op, stepOv := opAll, overloads.LogicalAnd
	if start == types.False {
		op, stepOv = opExists, overloads.LogicalOr
		if not := callOf(cond[0], overloads.LogicalNot); len(not) != 1 || !isAccu(not[0]) {
			return nil
		}
	} else if !isAccu(cond[0]) {
		return nil
	}
	step := callOf(ce.LoopStep(), stepOv)
	if len(step) != 2 || !isAccu(step[0]) {
		return nil
	}
	rng := c.expr(ce.IterRange())
	if rng == nil || rng.kind != natList {
		return nil
	}
	// The predicate sees the iteration variable, not the accumulator
	// (a reference to it leaves the expression to cel-go).
	slot := len(c.scope)
	c.scope = append(c.scope, ce.IterVar())
	pred := c.expr(step[1])
	c.scope = c.scope[:slot]
	if pred == nil || pred.kind != natBool {
		return nil
	}
	return &natNode{op: op, kind: natBool, slot: slot, kids: []*natNode{rng, pred}, simple: pred.isStrTest(slot)}
}
