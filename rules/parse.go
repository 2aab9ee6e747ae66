package rules

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ctwatch/ctwatch/event"
)

// Limits that keep a hostile or mistaken rule file from costing more than
// a normal one.
const (
	maxRuleNameLen = 128
	maxDepth       = 32
	supportedMs    = "domains, issuer, issuer_country, feed, allowed_issuers, policy, lookalike, cel, new_issuer, any, all, not"
)

// Problem is one thing wrong in a rule file, with the place to fix it.
// Line is 1-based; it is 0 when the problem concerns the whole file (or,
// for Load, a pattern that matched nothing, in which case File is the
// pattern).
type Problem struct {
	File string
	Line int
	Msg  string
}

// String formats the problem as "file:line: message" (or "file: message"
// without a line), the form editors and CI annotations understand.
func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// LoadError reports every problem found while loading rule files, not just
// the first, so that one run of `ctwatch rules validate` shows all there is
// to fix. Problems is never empty; it follows the order in which files were
// given, and each file's problems are ordered by line.
type LoadError struct {
	Problems []Problem
}

// Error lists one problem per line.
func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Source is the content of one rule file with the name used in problems and
// in RuleInfo.File. Built-in rules are Sources too, so they are compiled and
// validated exactly like the user's.
type Source struct {
	Name string
	Data []byte
}

// Load reads the rule files matched by each glob pattern (relative paths are
// relative to the working directory, as given), and compiles them into one
// Engine. A pattern that matches no file is a problem, as is every error in
// every file; when there is any, Load returns a nil Engine and a *LoadError
// listing all of them. A file matched by several patterns is read once.
// No patterns give an Engine without rules.
func Load(patterns []string, opts ...Option) (*Engine, error) {
	var (
		srcs     []Source
		problems []Problem
		seen     = make(map[string]bool)
		// order ranks files and patterns as met, to list problems in that
		// order whether they came from reading or from compiling.
		order = make(map[string]int)
	)
	note := func(name string) {
		if _, ok := order[name]; !ok {
			order[name] = len(order)
		}
	}
	for _, pat := range patterns {
		files, err := filepath.Glob(pat)
		if err != nil {
			note(pat)
			problems = append(problems, Problem{File: pat, Msg: fmt.Sprintf("invalid pattern: %v", err)})
			continue
		}
		if len(files) == 0 {
			note(pat)
			problems = append(problems, Problem{File: pat, Msg: "pattern matches no files"})
			continue
		}
		for _, f := range files {
			if seen[f] {
				continue
			}
			seen[f] = true
			note(f)
			data, err := readRuleFile(f)
			if err != nil {
				problems = append(problems, Problem{File: f, Msg: err.Error()})
				continue
			}
			srcs = append(srcs, Source{Name: f, Data: data})
		}
	}
	e, err := Compile(srcs, opts...)
	if len(problems) == 0 {
		return e, err
	}
	if le, ok := errors.AsType[*LoadError](err); ok {
		problems = append(problems, le.Problems...)
	} else if err != nil {
		return nil, err
	}
	slices.SortStableFunc(problems, func(a, b Problem) int { return cmp.Compare(order[a.File], order[b.File]) })
	return nil, &LoadError{Problems: problems}
}

// readRuleFile reads one file, with messages that do not repeat its name
// (the Problem carries it).
func readRuleFile(name string) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, unwrapPath(err)
	}
	if fi.IsDir() {
		return nil, errors.New("is a directory, not a rule file (use a pattern such as dir/*.yaml)")
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, unwrapPath(err)
	}
	return data, nil
}

func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

// Parse compiles a single rule file; filename is used only in problems and
// RuleInfo.File. It is Compile for one Source; on any problem it returns a
// nil Engine and a *LoadError.
func Parse(filename string, data []byte, opts ...Option) (*Engine, error) {
	return Compile([]Source{{Name: filename, Data: data}}, opts...)
}

// Compile parses and compiles rule sources into one Engine. Rule names must
// be unique across all sources. Every problem in every source is collected;
// when there is any, Compile returns a nil Engine and a *LoadError.
// Feeds and issuer sets named by the rules are read from the Data given
// with WithData, once per Compile.
func Compile(srcs []Source, opts ...Option) (*Engine, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	c := &compiler{names: make(map[string]Problem), data: o.data, feeds: make(map[string]feedResult), sets: make(map[string]setResult), issuers: o.issuers}
	for _, src := range slices.Concat(o.extra, srcs) {
		start := len(c.problems)
		p := &fileParser{c: c, file: src.Name}
		p.parse(src.Data)
		mine := c.problems[start:]
		slices.SortStableFunc(mine, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	}
	if len(c.problems) > 0 {
		return nil, &LoadError{Problems: c.problems}
	}
	e := build(c.rules)
	if c.newIssuer {
		e.issuers = c.issuers
	}
	return e, nil
}

// compiler gathers rules and problems across the sources of one Compile.
type compiler struct {
	rules    []ruleDef
	problems []Problem
	// names maps each rule name seen so far to where it was defined (Msg
	// unused), to report duplicates.
	names map[string]Problem
	// data supplies feeds and issuer sets; nil when none were given.
	data Data
	// feeds and sets cache what was compiled from data, so that each is
	// parsed once however many rules use it.
	feeds map[string]feedResult
	sets  map[string]setResult
	// cel holds the environment of cel matchers, built on first use.
	cel celState
	// issuers is the memory of new_issuer (nil when not given); newIssuer
	// is set when a rule uses it.
	issuers   IssuerMemory
	newIssuer bool
}

// ruleDef is a parsed rule before compilation.
type ruleDef struct {
	info RuleInfo
	root *node
}

// nodeKind is the operator of a node in a rule's match tree.
type nodeKind uint8

const (
	nodeAll       nodeKind = iota // every child holds
	nodeAny                       // at least one child holds
	nodeNot                       // the single child does not hold
	nodeDomains                   // a leaf: some certificate name matches a watched domain
	nodeCheck                     // a leaf: check holds for the certificate
	nodeNewIssuer                 // a leaf: the certificate's issuer key is seen for the first time
)

// node is one matcher in a rule's match tree.
type node struct {
	kind     nodeKind
	children []*node
	// For nodeDomains: the watched patterns (deduplicated) and the leaf's
	// number, assigned by build.
	patterns []domainPattern
	leaf     int32
	// For nodeCheck: the compiled test.
	check checker
}

// fileParser parses one source, reporting problems to its compiler.
type fileParser struct {
	c    *compiler
	file string
}

func (p *fileParser) errorf(line int, format string, args ...any) {
	p.c.problems = append(p.c.problems, Problem{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (p *fileParser) problemCount() int { return len(p.c.problems) }

// yamlLine matches the position prefix of gopkg.in/yaml.v3 syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *fileParser) parse(data []byte) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	docs := 0
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p.yamlError(err)
			return
		}
		if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
			continue
		}
		docs++
		p.parseTop(doc.Content[0])
	}
	if docs == 0 {
		p.errorf(0, `file is empty: expected a top-level "rules:" list`)
	}
}

// yamlError turns a YAML syntax error into a problem with its line.
func (p *fileParser) yamlError(err error) {
	msg := err.Error()
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		if m := yamlLine.FindStringSubmatch(line); m != nil {
			if n, convErr := strconv.Atoi(m[1]); convErr == nil {
				p.errorf(n, "invalid YAML: %s", m[2])
				return
			}
		}
	}
	p.errorf(0, "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// pair is one key and value of a YAML mapping.
type pair struct {
	key  string
	k, v *yaml.Node
}

// pairs returns the entries of mapping n, reporting (and dropping) keys
// that are not plain scalars and keys given twice.
func (p *fileParser) pairs(n *yaml.Node) []pair {
	out := make([]pair, 0, len(n.Content)/2)
	first := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k.Line, "mapping keys must be plain words")
			continue
		}
		if line, dup := first[k.Value]; dup {
			p.errorf(k.Line, "duplicate key %q (first at line %d)", k.Value, line)
			continue
		}
		first[k.Value] = k.Line
		out = append(out, pair{key: k.Value, k: k, v: v})
	}
	return out
}

// expect reports a problem unless n has kind want; what names the value in
// the message ("rules must be a list").
func (p *fileParser) expect(n *yaml.Node, want yaml.Kind, what string) bool {
	if n.Kind == want {
		return true
	}
	if n.Kind == yaml.AliasNode {
		p.errorf(n.Line, "YAML aliases are not supported in rule files")
		return false
	}
	var shape string
	switch want {
	case yaml.MappingNode:
		shape = "a mapping"
	case yaml.SequenceNode:
		shape = "a list"
	default:
		shape = "a string"
	}
	p.errorf(n.Line, "%s must be %s", what, shape)
	return false
}

// str returns the text of scalar n; a YAML null is the empty string.
func (p *fileParser) str(n *yaml.Node, what string) (string, bool) {
	if !p.expect(n, yaml.ScalarNode, what) {
		return "", false
	}
	if n.Tag == "!!null" {
		return "", true
	}
	return n.Value, true
}

func (p *fileParser) parseTop(root *yaml.Node) {
	if !p.expect(root, yaml.MappingNode, `the top level of a rule file`) {
		return
	}
	found := false
	for _, kv := range p.pairs(root) {
		switch kv.key {
		case "rules":
			found = true
			if p.expect(kv.v, yaml.SequenceNode, `"rules"`) {
				for _, item := range kv.v.Content {
					p.parseRule(item)
				}
			}
		default:
			p.errorf(kv.k.Line, `unknown top-level key %q (want "rules")`, kv.key)
		}
	}
	if !found {
		p.errorf(root.Line, `missing top-level key "rules"`)
	}
}

func (p *fileParser) parseRule(n *yaml.Node) {
	if !p.expect(n, yaml.MappingNode, "a rule") {
		return
	}
	before := p.problemCount()
	def := ruleDef{info: RuleInfo{File: p.file, Line: n.Line}}
	var haveName, haveSeverity, haveMatch bool
	for _, kv := range p.pairs(n) {
		switch kv.key {
		case "name":
			haveName = true
			if s, ok := p.str(kv.v, "name"); ok && p.checkName(kv.v.Line, s) {
				def.info.Name = s
			}
		case "severity":
			haveSeverity = true
			if s, ok := p.str(kv.v, "severity"); ok {
				sev, valid := parseSeverity(s)
				if !valid {
					p.errorf(kv.v.Line, "invalid severity %q (want info, low, medium, high or critical)", s)
				}
				def.info.Severity = sev
			}
		case "description":
			if s, ok := p.str(kv.v, "description"); ok {
				def.info.Description = s
			}
		case "tags":
			def.info.Tags = p.parseTags(kv.v)
		case "match":
			haveMatch = true
			def.root = p.parseMatch(kv.v, 1)
		default:
			p.errorf(kv.k.Line, "unknown key %q in rule (want name, severity, description, tags, match)", kv.key)
		}
	}
	label := "rule"
	if def.info.Name != "" {
		label = fmt.Sprintf("rule %q", def.info.Name)
	}
	if !haveName {
		p.errorf(n.Line, "rule has no name")
	}
	if !haveSeverity {
		p.errorf(n.Line, "%s has no severity", label)
	}
	if !haveMatch {
		p.errorf(n.Line, "%s has no match", label)
	}
	if p.problemCount() == before {
		p.c.rules = append(p.c.rules, def)
	}
}

// checkName validates a rule name and records it, reporting duplicates
// across every source of the compilation.
func (p *fileParser) checkName(line int, s string) bool {
	switch {
	case s == "":
		p.errorf(line, "name is empty")
		return false
	case len(s) > maxRuleNameLen:
		p.errorf(line, "name is longer than %d characters", maxRuleNameLen)
		return false
	case !validName(s):
		p.errorf(line, "invalid name %q: use only letters, digits, '.', '_' and '-'", s)
		return false
	}
	if first, dup := p.c.names[s]; dup {
		p.errorf(line, "duplicate rule name %q (first defined at %s:%d)", s, first.File, first.Line)
		return false
	}
	p.c.names[s] = Problem{File: p.file, Line: line}
	return true
}

func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

func parseSeverity(s string) (event.Severity, bool) {
	switch sev := event.Severity(s); sev {
	case event.SeverityInfo, event.SeverityLow, event.SeverityMedium, event.SeverityHigh, event.SeverityCritical:
		return sev, true
	}
	return "", false
}

func (p *fileParser) parseTags(n *yaml.Node) []string {
	if !p.expect(n, yaml.SequenceNode, "tags") {
		return nil
	}
	tags := make([]string, 0, len(n.Content))
	for _, item := range n.Content {
		s, ok := p.str(item, "a tag")
		if !ok {
			continue
		}
		if s == "" {
			p.errorf(item.Line, "empty tag")
			continue
		}
		tags = append(tags, s)
	}
	if len(tags) == 0 {
		return nil
	}
	return tags
}

// parseMatch parses a match mapping: every key is a matcher and all of them
// must hold. It returns nil after reporting a problem.
func (p *fileParser) parseMatch(n *yaml.Node, depth int) *node {
	if depth > maxDepth {
		p.errorf(n.Line, "matchers nested more than %d deep", maxDepth)
		return nil
	}
	if !p.expect(n, yaml.MappingNode, "match") {
		return nil
	}
	kvs := p.pairs(n)
	if len(kvs) == 0 && len(n.Content) == 0 {
		p.errorf(n.Line, "match is empty: it needs at least one matcher (%s)", supportedMs)
		return nil
	}
	all := &node{kind: nodeAll}
	for _, kv := range kvs {
		var child *node
		switch kv.key {
		case "domains":
			child = p.parseDomains(kv.v)
		case "any", "all":
			kind := nodeAny
			if kv.key == "all" {
				kind = nodeAll
			}
			child = p.parseList(kv.key, kind, kv.v, depth)
		case "not":
			if c := p.parseMatch(kv.v, depth+1); c != nil {
				child = &node{kind: nodeNot, children: []*node{c}}
			}
		case "issuer":
			child = p.parseIssuer(kv.v)
		case "issuer_country":
			child = p.parseCountry(kv.v)
		case "feed":
			child = p.parseFeed(kv.v)
		case "allowed_issuers":
			child = p.parseAllowed(kv.v)
		case "policy":
			child = p.parsePolicy(kv.v)
		case "cel":
			child = p.parseCEL(kv.v)
		case "new_issuer":
			child = p.parseNewIssuer(kv.v)
		case "lookalike":
			child = p.parseLookalike(kv.v)
		default:
			p.errorf(kv.k.Line, "unknown matcher %q (supported: %s)", kv.key, supportedMs)
		}
		all.children = append(all.children, child)
	}
	if len(all.children) == 1 {
		return all.children[0]
	}
	return all
}

// parseList parses the list of match mappings under "any" or "all".
func (p *fileParser) parseList(key string, kind nodeKind, n *yaml.Node, depth int) *node {
	if !p.expect(n, yaml.SequenceNode, strconv.Quote(key)) {
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n.Line, "%q list is empty", key)
		return nil
	}
	out := &node{kind: kind}
	for _, item := range n.Content {
		out.children = append(out.children, p.parseMatch(item, depth+1))
	}
	return out
}

// parseDomains parses a domains list into a leaf.
func (p *fileParser) parseDomains(n *yaml.Node) *node {
	if !p.expect(n, yaml.SequenceNode, "domains") {
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n.Line, "domains list is empty")
		return nil
	}
	type key struct {
		kind patternKind
		name string
	}
	seen := make(map[key]bool, len(n.Content))
	leaf := &node{kind: nodeDomains, patterns: make([]domainPattern, 0, len(n.Content))}
	for _, item := range n.Content {
		s, ok := p.str(item, "a domain")
		if !ok {
			continue
		}
		dp, err := parseDomainPattern(s)
		if err != nil {
			p.errorf(item.Line, "invalid domain %q: %v", s, err)
			continue
		}
		k := key{dp.kind, dp.name}
		if seen[k] {
			continue
		}
		seen[k] = true
		leaf.patterns = append(leaf.patterns, dp)
	}
	return leaf
}
