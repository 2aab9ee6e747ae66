package config

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// walkBudget caps how many nodes one check visits. A real configuration
// has a few thousand at most; the cap stops alias bombs and alias cycles,
// which would otherwise make the walk exponential or endless.
const walkBudget = 200_000

// checker walks a YAML node tree against a spec. It reports unknown and
// duplicate keys and containers of the wrong kind, and records the line of
// every value by its path ("monitor.batch_size", "sinks[1].url") so that
// later problems with values can point at them. Leaf values are not checked
// here: the decoder does that with the merged configuration.
type checker struct {
	report  func(line int, msg string)
	lines   map[string]int
	flagged map[string]bool // paths whose container has the wrong kind
	budget  int
}

func newChecker(report func(line int, msg string)) *checker {
	return &checker{report: report, lines: map[string]int{}, flagged: map[string]bool{}, budget: walkBudget}
}

// spend uses one unit of the budget and reports, once, when it runs out.
func (c *checker) spend(line int) bool {
	if c.budget <= 0 {
		return false
	}
	c.budget--
	if c.budget == 0 {
		c.report(line, "document too large or too many aliases; checking stopped here")
		return false
	}
	return true
}

// exhausted reports whether the walk stopped early.
func (c *checker) exhausted() bool { return c.budget <= 0 }

// deref follows aliases to the node they name.
func (c *checker) deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		if !c.spend(n.Line) {
			return nil
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// document checks a whole parsed document against s.
func (c *checker) document(doc *yaml.Node, s *spec) {
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return
		}
		doc = doc.Content[0]
	}
	if doc.Kind == 0 { // empty input
		return
	}
	c.mapping(doc, s, "")
}

// value checks a value of the given shape found at path.
func (c *checker) value(n *yaml.Node, s *spec, path string) {
	n = c.deref(n)
	if n == nil || isNull(n) || !c.spend(n.Line) {
		return
	}
	switch s.shape {
	case shapeSection, shapeMap:
		c.mapping(n, s, path)
	case shapeItems:
		if n.Kind != yaml.SequenceNode {
			c.wrong(n, path, "must be a list")
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			c.lines[p] = item.Line
			c.mapping(item, s, p)
		}
	case shapeLeafList:
		switch n.Kind {
		case yaml.SequenceNode:
			for i, item := range n.Content {
				c.lines[fmt.Sprintf("%s[%d]", path, i)] = item.Line
			}
		case yaml.MappingNode:
			c.wrong(n, path, "must be a list")
		}
	}
}

// wrong reports a container of the wrong kind and marks its path so that
// the decoder does not report the same value again.
func (c *checker) wrong(n *yaml.Node, path, msg string) {
	c.flagged[path] = true
	if path == "" {
		path = "top level"
	}
	c.report(n.Line, path+": "+msg)
}

// mapping checks a mapping whose allowed keys are s.fields. Keys written
// out take precedence over keys merged in with "<<", as in YAML itself.
func (c *checker) mapping(n *yaml.Node, s *spec, path string) {
	n = c.deref(n)
	if n == nil || isNull(n) || !c.spend(n.Line) {
		return
	}
	if n.Kind != yaml.MappingNode {
		c.wrong(n, path, "must be a mapping of keys to values")
		return
	}
	seen := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := c.deref(n.Content[i]), n.Content[i+1]
		if k == nil {
			return
		}
		if k.Kind != yaml.ScalarNode {
			c.report(k.Line, "a key must be a plain name"+where(path))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		c.field(k, v, s, path, seen, true)
	}
	for _, m := range merges {
		c.merge(m, s, path, seen)
	}
}

// merge checks the value of a "<<" key: a mapping or a list of mappings
// whose keys count as if written in the enclosing mapping, unless written
// there already.
func (c *checker) merge(n *yaml.Node, s *spec, path string, seen map[string]int) {
	n = c.deref(n)
	if n == nil || !c.spend(n.Line) {
		return
	}
	var sources []*yaml.Node
	switch n.Kind {
	case yaml.MappingNode:
		sources = []*yaml.Node{n}
	case yaml.SequenceNode:
		for _, m := range n.Content {
			if m = c.deref(m); m == nil {
				return
			}
			sources = append(sources, m)
		}
	}
	for _, m := range sources {
		if m.Kind != yaml.MappingNode {
			c.report(m.Line, `"<<" must merge a mapping`+where(path))
			continue
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k := c.deref(m.Content[i])
			if k == nil {
				return
			}
			if k.Kind != yaml.ScalarNode {
				c.report(k.Line, "a key must be a plain name"+where(path))
				continue
			}
			if k.ShortTag() == "!!merge" {
				c.merge(m.Content[i+1], s, path, seen)
				continue
			}
			c.field(k, m.Content[i+1], s, path, seen, false)
		}
	}
}

// field checks one key and its value. explicit is false for merged keys,
// which may repeat a key silently (the first one found wins).
func (c *checker) field(k, v *yaml.Node, s *spec, path string, seen map[string]int, explicit bool) {
	name := k.Value
	sub, ok := s.fields[name]
	if s.shape == shapeMap {
		// Any name, checked by the decoder; but a name YAML reads as
		// something else (1, true, null) would not reach it as written.
		if k.ShortTag() != "!!str" {
			c.report(k.Line, fmt.Sprintf("%s: the name %s must be text: write it in quotes", path, k.Value))
			return
		}
		sub, ok = &spec{shape: shapeLeaf}, true
	}
	if !ok {
		c.report(k.Line, fmt.Sprintf("unknown key %q%s%s", name, where(path), hint(name, s.fields)))
		return
	}
	if first, dup := seen[name]; dup {
		if explicit {
			c.report(k.Line, fmt.Sprintf("duplicate key %q%s (first at line %d)", name, where(path), first))
		}
		return
	}
	seen[name] = k.Line
	p := name
	if path != "" {
		p = path + "." + name
	}
	c.lines[p] = v.Line
	if sub.shape != shapeLeaf {
		c.value(v, sub, p)
	} else if s.shape == shapeMap {
		// Reported at the key: a block mapping's value starts a line later.
		if d := c.deref(v); d != nil {
			switch d.Kind {
			case yaml.MappingNode:
				c.wrong(k, p, "must be a single value, not a mapping")
			case yaml.SequenceNode:
				c.wrong(k, p, "must be a single value, not a list")
			}
		}
	}
}

// hint explains an unknown key: a secret written in clear, for which the
// schema has name_env and name_file instead, or a misspelling.
func hint(name string, fields map[string]*spec) string {
	if fields[name+"_env"] != nil && fields[name+"_file"] != nil {
		return fmt.Sprintf(" (a secret is never written in the file: use %s_env for an environment variable or %s_file for a file holding it)", name, name)
	}
	return suggest(name, fields)
}

func where(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}

// suggest proposes the known key closest to a misspelt one.
func suggest(name string, fields map[string]*spec) string {
	best, bestDist := "", 3 // only suggest for at most two edits
	for f := range fields {
		if d := editDistance(name, f); d < bestDist || (d == bestDist && f < best) {
			best, bestDist = f, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, capped at 64
// runes of input to keep hostile keys cheap.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 64
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// syntaxProblem turns a YAML parse error into a line and a message.
// yaml.v3's syntax errors are plain strings such as "yaml: line 3: mapping
// values are not allowed in this context". Its scanner errors carry a
// 1-based line, but its parser errors a 0-based one (gopkg.in/yaml.v3
// v3.0.1, decode.go, parser.fail), omitted when 0; the parser's messages
// are recognised here to correct that.
func syntaxProblem(err error) (int, string) {
	msg := strings.TrimPrefix(oneLine(err.Error()), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if n, convErr := strconv.Atoi(num); convErr == nil && n > 0 {
				line, msg = n, text
			}
		}
	}
	if isParserError(msg) {
		line++
	}
	return line, "invalid YAML: " + msg
}

// isParserError recognises the messages of yaml.v3's parser (parserc.go),
// as opposed to its scanner's.
func isParserError(msg string) bool {
	for _, prefix := range []string{
		"did not find expected ',' or ",
		"did not find expected '-' indicator",
		"did not find expected <",
		"did not find expected key",
		"did not find expected node content",
		"found duplicate %",
		"found incompatible YAML document",
		"found undefined tag handle",
	} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}
