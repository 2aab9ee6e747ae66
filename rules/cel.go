package rules

import (
	"encoding/hex"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	celref "cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
	"gopkg.in/yaml.v3"

	"github.com/ctwatch/ctwatch/cert"
)

// The `cel` matcher: a Common Expression Language expression over one
// variable, `cert`, of the object type ctwatch.Cert. Its fields are read
// straight from the *cert.Cert being matched (see celFields), so nothing is
// copied into a map per certificate, and the type checker knows every
// field: a misspelt field or an expression that is not a bool is a problem
// at load time, with the rule file's line.

const (
	// celTypeName is the CEL name of the certificate object type.
	celTypeName = "ctwatch.Cert"
	// celVar is the one variable an expression sees.
	celVar = "cert"
	// maxCELLen bounds an expression's source, and celRecursionLimit its
	// nesting, so that a mistaken rule file costs no more than a normal one
	// to compile.
	maxCELLen         = 4096
	celRecursionLimit = 64
)

// celField is one field of ctwatch.Cert: its CEL type and how to read it,
// both as a CEL value (for cel-go) and as a plain Go value (for the native
// evaluator of cel_native.go). Exactly one of the typed getters matches typ;
// hash and hashes are also set for the hex fields, whose raw hashes the
// native evaluator compares without formatting them.
type celField struct {
	typ *types.Type
	get func(c *cert.Cert) celref.Val
	// strs is set for the list(string) fields: their elements, which a
	// celBinding converts to CEL strings once for every rule that reads
	// them.
	strs   func(c *cert.Cert) []string
	str    func(c *cert.Cert) string
	i64    func(c *cert.Cert) int64
	bit    func(c *cert.Cert) bool
	tm     func(c *cert.Cert) time.Time
	hash   func(c *cert.Cert) cert.Hash
	hashes func(c *cert.Cert) []cert.Hash
}

// celFields describes ctwatch.Cert. Lists and strings share the
// certificate's memory; hashes are lower-case hex ("" or [] when unknown),
// times are timestamps (the zero time when unknown).
func celFields() map[string]celField {
	strList := types.NewListType(types.StringType)
	str := func(get func(c *cert.Cert) string) celField {
		return celField{typ: types.StringType, str: get, get: func(c *cert.Cert) celref.Val { return types.String(get(c)) }}
	}
	list := func(get func(c *cert.Cert) []string) celField {
		return celField{typ: strList, strs: get, get: func(c *cert.Cert) celref.Val { return types.NewStringList(types.DefaultTypeAdapter, get(c)) }}
	}
	stamp := func(get func(c *cert.Cert) time.Time) celField {
		return celField{typ: types.TimestampType, tm: get, get: func(c *cert.Cert) celref.Val { return types.Timestamp{Time: get(c)} }}
	}
	integer := func(get func(c *cert.Cert) int64) celField {
		return celField{typ: types.IntType, i64: get, get: func(c *cert.Cert) celref.Val { return types.Int(get(c)) }}
	}
	hexStr := func(get func(c *cert.Cert) cert.Hash) celField {
		f := str(func(c *cert.Cert) string { return hexHash(get(c)) })
		f.hash = get
		return f
	}
	hexStrs := func(get func(c *cert.Cert) []cert.Hash) celField {
		f := list(func(c *cert.Cert) []string { return hexList(get(c)) })
		f.hashes = get
		return f
	}
	return map[string]celField{
		"dns_names":           list(func(c *cert.Cert) []string { return c.DNSNames }),
		"ip_addresses":        list(func(c *cert.Cert) []string { return c.IPAddresses }),
		"emails":              list(func(c *cert.Cert) []string { return c.EmailAddresses }),
		"subject":             str(func(c *cert.Cert) string { return c.Subject }),
		"issuer":              str(func(c *cert.Cert) string { return c.Issuer }),
		"issuer_cn":           list(func(c *cert.Cert) []string { return c.IssuerCN }),
		"issuer_o":            list(func(c *cert.Cert) []string { return c.IssuerO }),
		"issuer_ou":           list(func(c *cert.Cert) []string { return c.IssuerOU }),
		"issuer_c":            list(func(c *cert.Cert) []string { return c.IssuerC }),
		"key_type":            str(func(c *cert.Cert) string { return c.KeyType }),
		"key_size":            integer(func(c *cert.Cert) int64 { return int64(c.KeySize) }),
		"not_before":          stamp(func(c *cert.Cert) time.Time { return c.NotBefore }),
		"not_after":           stamp(func(c *cert.Cert) time.Time { return c.NotAfter }),
		"validity_days":       integer(validityDays),
		"precert":             {typ: types.BoolType, bit: func(c *cert.Cert) bool { return c.Precert }, get: func(c *cert.Cert) celref.Val { return types.Bool(c.Precert) }},
		"signature_algorithm": str(func(c *cert.Cert) string { return c.SignatureAlgorithm }),
		"chain_sha256":        hexStrs(func(c *cert.Cert) []cert.Hash { return c.Chain }),
		"chain_spki_sha256":   hexStrs(func(c *cert.Cert) []cert.Hash { return c.ChainSPKI }),
		"issuer_spki_sha256":  hexStr(func(c *cert.Cert) cert.Hash { return c.IssuerSPKIHash }),
		"sha256":              hexStr(func(c *cert.Cert) cert.Hash { return c.SHA256 }),
	}
}

// validityDays counts whole days of validity the way the Baseline
// Requirements count the period (both ends included, so notAfter -
// notBefore + 1 second); 0 when either time is unknown.
func validityDays(c *cert.Cert) int64 {
	if c.NotBefore.IsZero() || c.NotAfter.IsZero() {
		return 0
	}
	return int64((c.NotAfter.Sub(c.NotBefore) + time.Second) / (24 * time.Hour))
}

func hexHash(h cert.Hash) string {
	if h.IsZero() {
		return ""
	}
	return hex.EncodeToString(h[:])
}

func hexList(hs []cert.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hexHash(h)
	}
	return out
}

// celProvider adds ctwatch.Cert to CEL's standard types. Its field getters
// take the *cert.Cert that certValue.Value returns.
type celProvider struct {
	*types.Registry
	fields map[string]*types.FieldType
	names  []string
}

func newCELProvider() (*celProvider, error) {
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, fmt.Errorf("cel type registry: %w", err)
	}
	p := &celProvider{Registry: reg, fields: make(map[string]*types.FieldType)}
	fields := celFields()
	if len(fields) > celFieldSlots {
		return nil, fmt.Errorf("cel: %d certificate fields, room for %d", len(fields), celFieldSlots)
	}
	names := slices.Sorted(maps.Keys(fields))
	for slot, name := range names {
		f := fields[name]
		p.fields[name] = &types.FieldType{
			Type: f.typ,
			// Every field is always present: has(cert.x) is true, and an
			// empty value is tested with size() or == "".
			IsSet: func(target any) bool {
				switch target.(type) {
				case *celBinding, *cert.Cert:
					return true
				}
				return false
			},
			GetFrom: func(target any) (any, error) {
				switch t := target.(type) {
				case *celBinding:
					if t != nil && t.c != nil {
						return t.field(slot, f), nil
					}
				case *cert.Cert:
					if t != nil {
						return f.get(t), nil
					}
				}
				return nil, fmt.Errorf("field %s read from %T, not a certificate", name, target)
			},
		}
	}
	p.names = names
	return p, nil
}

// FindStructType knows ctwatch.Cert, then the standard types.
func (p *celProvider) FindStructType(name string) (*types.Type, bool) {
	if name == celTypeName {
		return types.NewTypeTypeWithParam(types.NewObjectType(celTypeName)), true
	}
	return p.Registry.FindStructType(name)
}

// FindStructFieldNames lists the fields of ctwatch.Cert.
func (p *celProvider) FindStructFieldNames(name string) ([]string, bool) {
	if name == celTypeName {
		return append([]string(nil), p.names...), true
	}
	return p.Registry.FindStructFieldNames(name)
}

// FindStructFieldType describes one field of ctwatch.Cert.
func (p *celProvider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if name == celTypeName {
		ft, ok := p.fields[field]
		return ft, ok
	}
	return p.Registry.FindStructFieldType(name, field)
}

// newCELEnv builds the environment every cel matcher of a Compile shares:
// the standard library, the strings extension, and `cert`.
func newCELEnv() (*cel.Env, error) {
	prov, err := newCELProvider()
	if err != nil {
		return nil, err
	}
	env, err := cel.NewEnv(
		cel.CustomTypeProvider(prov),
		cel.Variable(celVar, types.NewObjectType(celTypeName)),
		ext.Strings(),
		cel.ParserExpressionSizeLimit(maxCELLen),
		cel.ParserRecursionLimit(celRecursionLimit),
	)
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	return env, nil
}

// celState caches the environment, and the fields the native evaluator
// reads, within one Compile.
type celState struct {
	env    *cel.Env
	fields map[string]celField
	err    error
	done   bool
}

func (s *celState) get() (*cel.Env, error) {
	if !s.done {
		s.env, s.err = newCELEnv()
		s.fields = celFields()
		s.done = true
	}
	return s.env, s.err
}

// celFieldSlots is the room a celBinding has for field values: at least
// the number of fields of ctwatch.Cert (newCELProvider checks).
const celFieldSlots = 24

// celBinding is `cert` for one certificate: the certificate and the CEL
// values of its fields, each made at most once however many expressions
// read it. A string list in particular is converted element by element
// once, where a list that wraps the Go slice would box every element
// again on each pass of every macro over it. One Match makes one binding
// and shares it among its CEL rules; it is not safe for concurrent use.
type celBinding struct {
	c    *cert.Cert
	vals [celFieldSlots]celref.Val // nil until first read
}

// field returns the value of field f, in slot slot, converting it on its
// first read.
func (b *celBinding) field(slot int, f celField) celref.Val {
	if v := b.vals[slot]; v != nil {
		return v
	}
	var v celref.Val
	if f.strs != nil {
		strs := f.strs(b.c)
		elems := make([]celref.Val, len(strs))
		for i, s := range strs {
			elems[i] = types.String(s)
		}
		v = types.NewRefValList(types.DefaultTypeAdapter, elems)
	} else {
		v = f.get(b.c)
	}
	b.vals[slot] = v
	return v
}

// certValue is the value of `cert`. It is a single pointer, so boxing it
// in an interface does not allocate.
type certValue struct{ b *celBinding }

func (v certValue) ConvertToNative(t reflect.Type) (any, error) {
	if reflect.TypeOf(v.b.c) == t {
		return v.b.c, nil
	}
	return nil, fmt.Errorf("cannot convert %s to %v", celTypeName, t)
}

func (v certValue) ConvertToType(t celref.Type) celref.Val {
	if t == types.TypeType {
		return types.NewObjectType(celTypeName)
	}
	if t.TypeName() == celTypeName {
		return v
	}
	return types.NewErr("cannot convert %s to %s", celTypeName, t.TypeName())
}

func (v certValue) Equal(other celref.Val) celref.Val {
	o, ok := other.(certValue)
	return types.Bool(ok && o.b.c == v.b.c)
}

func (v certValue) Type() celref.Type { return types.NewObjectType(celTypeName) }

// Value is the binding, which the field getters of celProvider read.
func (v certValue) Value() any { return v.b }

// celActivation binds `cert` for one evaluation. Like certValue it is a
// single pointer, passed by value: an evaluation allocates no activation.
type celActivation struct{ b *celBinding }

func (a celActivation) ResolveName(name string) (any, bool) {
	if name == celVar {
		return certValue(a), true
	}
	return nil, false
}

func (a celActivation) Parent() interpreter.Activation { return nil }

// celTest is `cel: 'expression'`: it holds when the expression evaluates to
// true. An evaluation error (an index out of range, say) means it does not
// hold. It is immutable once compiled, and a cel.Program is safe for
// concurrent use, so a celTest is too.
type celTest struct {
	src string
	prg cel.Program
	// nat is the expression compiled for the native evaluator
	// (cel_native.go), which gives the same result as prg without boxing a
	// value; nil when the expression uses anything outside its subset, and
	// prg evaluates it.
	nat *natNode
}

// match evaluates the expression natively when it can, otherwise with
// cel-go over a binding of its own.
func (t *celTest) match(c *cert.Cert) (string, bool) {
	if t.nat != nil {
		return t.result(t.nat.eval(c) == triTrue)
	}
	return t.matchBound(&celBinding{c: c})
}

// matchBound evaluates the expression with cel-go over the certificate's
// binding, which the cel-go rules of one Match share.
func (t *celTest) matchBound(b *celBinding) (string, bool) {
	out, _, err := t.prg.Eval(celActivation{b})
	return t.result(err == nil && out == types.True)
}

func (t *celTest) result(ok bool) (string, bool) {
	if !ok {
		return "", false
	}
	return t.describe(), true
}

func (t *celTest) describe() string {
	return fmt.Sprintf("cel expression %q is true", t.src)
}

// parseCEL parses `cel: 'expression'`, compiling and type-checking it.
func (p *fileParser) parseCEL(n *yaml.Node) *node {
	src, ok := p.str(n, "cel")
	if !ok {
		return nil
	}
	// A block scalar ends in a newline that is no part of the expression.
	src = strings.TrimRight(src, " \t\r\n")
	if src == "" {
		p.errorf(n.Line, "cel expression is empty")
		return nil
	}
	if len(src) > maxCELLen {
		p.errorf(n.Line, "cel expression is longer than %d characters", maxCELLen)
		return nil
	}
	env, err := p.c.cel.get()
	if err != nil {
		p.errorf(n.Line, "%v", err)
		return nil
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		p.celErrors(n, iss)
		return nil
	}
	if !ast.OutputType().IsExactType(types.BoolType) {
		p.errorf(n.Line, "cel expression must be a bool, not %s", ast.OutputType())
		return nil
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		p.errorf(n.Line, "cel: %v", err)
		return nil
	}
	return checkNode(&celTest{src: src, prg: prg, nat: compileNative(ast, p.c.cel.fields)})
}

// celErrors reports CEL's compile errors at their line in the rule file:
// an expression written as a block scalar starts on the line after its
// key, a plain or quoted one on the key's line.
func (p *fileParser) celErrors(n *yaml.Node, iss *cel.Issues) {
	errs := iss.Errors()
	if len(errs) == 0 {
		p.errorf(n.Line, "cel: %v", iss.Err())
		return
	}
	for _, e := range errs {
		line, col := e.Location.Line(), e.Location.Column()
		fileLine := n.Line
		if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			fileLine += line
		} else if line > 1 {
			fileLine += line - 1
		}
		p.errorf(fileLine, "cel: column %d: %s", col+1, e.Message)
	}
}
