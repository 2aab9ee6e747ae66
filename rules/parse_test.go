package rules

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ctwatch/ctwatch/event"
)

func TestLoadReportsEveryProblem(t *testing.T) {
	_, err := Load([]string{
		"testdata/load/bad*.yaml",
		"testdata/load/nothing-*.yaml",
		"testdata/load/good.yaml",
	})
	le, ok := errors.AsType[*LoadError](err)
	if !ok {
		t.Fatalf("Load error = %v (%T), want *LoadError", err, err)
	}
	want := []Problem{
		{"testdata/load/bad1.yaml", 7, `invalid severity "urgent" (want info, low, medium, high or critical)`},
		{"testdata/load/bad1.yaml", 12, `unknown key "colour" in rule (want name, severity, description, tags, match)`},
		{"testdata/load/bad1.yaml", 15, `rule has no name`},
		{"testdata/load/bad2.yaml", 2, `duplicate rule name "dup" (first defined at testdata/load/bad1.yaml:2)`},
		{"testdata/load/bad2.yaml", 9, `lookalike must be a mapping`},
		{"testdata/load/bad2.yaml", 15, `invalid domain "bad_name.example": idna: disallowed rune U+005F`},
		{"testdata/load/bad2.yaml", 19, `domains list is empty`},
		{"testdata/load/nothing-*.yaml", 0, `pattern matches no files`},
	}
	if !slices.Equal(le.Problems, want) {
		t.Errorf("Problems:\n%s\nwant:\n%s", (&LoadError{le.Problems}).Error(), (&LoadError{want}).Error())
	}
	wantText := `testdata/load/bad1.yaml:7: invalid severity "urgent" (want info, low, medium, high or critical)
testdata/load/bad1.yaml:12: unknown key "colour" in rule (want name, severity, description, tags, match)
testdata/load/bad1.yaml:15: rule has no name
testdata/load/bad2.yaml:2: duplicate rule name "dup" (first defined at testdata/load/bad1.yaml:2)
testdata/load/bad2.yaml:9: lookalike must be a mapping
testdata/load/bad2.yaml:15: invalid domain "bad_name.example": idna: disallowed rune U+005F
testdata/load/bad2.yaml:19: domains list is empty
testdata/load/nothing-*.yaml: pattern matches no files`
	if got := err.Error(); got != wantText {
		t.Errorf("Error() =\n%s\nwant\n%s", got, wantText)
	}
}

func TestLoadExampleRules(t *testing.T) {
	e, err := Load([]string{"../configs/rules/example.yaml", "testdata/load/good.yaml", "testdata/load/good.yaml"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var names, files []string
	for _, r := range e.Rules() {
		names = append(names, r.Name)
		files = append(files, r.File)
	}
	wantNames := []string{"example-any-name", "example-unexpected-host", "good"}
	wantFiles := []string{"../configs/rules/example.yaml", "../configs/rules/example.yaml", "testdata/load/good.yaml"}
	if !slices.Equal(names, wantNames) || !slices.Equal(files, wantFiles) {
		t.Errorf("rules %q from %q, want %q from %q", names, files, wantNames, wantFiles)
	}
	tests := []struct {
		names []string
		want  []string
	}{
		{[]string{"www.example.com"}, []string{"example-any-name"}},
		{[]string{"shop.example.net"}, []string{"example-unexpected-host"}},
		{[]string{"www.example.net"}, nil},
		{[]string{"good.example", "example.com"}, []string{"example-any-name", "good"}},
	}
	for _, tt := range tests {
		var got []string
		for _, m := range e.Match(certWith(tt.names...)) {
			got = append(got, m.Rule)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q) rules = %q, want %q", tt.names, got, tt.want)
		}
	}
}

func TestLoadFileProblems(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub.yaml")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Load([]string{sub, "[", filepath.Join(dir, "missing.yaml")})
	le, ok := errors.AsType[*LoadError](err)
	if !ok {
		t.Fatalf("Load error = %v, want *LoadError", err)
	}
	want := []Problem{
		{sub, 0, "is a directory, not a rule file (use a pattern such as dir/*.yaml)"},
		{"[", 0, "invalid pattern: syntax error in pattern"},
		{filepath.Join(dir, "missing.yaml"), 0, "pattern matches no files"},
	}
	if !slices.Equal(le.Problems, want) {
		t.Errorf("Problems = %q\nwant %q", le.Problems, want)
	}
}

func TestLoadNoPatterns(t *testing.T) {
	e, err := Load(nil)
	if err != nil {
		t.Fatalf("Load(nil): %v", err)
	}
	if len(e.Rules()) != 0 || e.Match(certWith("example.com")) != nil {
		t.Error("Load(nil) gave rules")
	}
}

// TestParseProblems checks the line and message of each kind of mistake.
func TestParseProblems(t *testing.T) {
	// The match mapping at depth 33 is the one holding the 33rd "not:", on
	// line 4+33 (see nestNot).
	deep := "rules:\n  - name: r\n    severity: low\n    match:\n      " + nestNot(40) + "\n"
	tests := []struct {
		name string
		text string
		want []Problem // File is always "f.yaml"
	}{
		{"empty file", "", []Problem{{Line: 0, Msg: `file is empty: expected a top-level "rules:" list`}}},
		{"comments only", "# nothing\n", []Problem{{Line: 0, Msg: `file is empty: expected a top-level "rules:" list`}}},
		{"syntax error", "rules:\n  - name: [\n", []Problem{{Line: 2, Msg: "invalid YAML: did not find expected node content"}}},
		// gopkg.in/yaml.v3 reports the line where the enclosing construct
		// starts, which for this tab is the line before.
		{"tab indentation", "rules:\n  - name: r\n\t severity: low\n", []Problem{{Line: 2, Msg: "invalid YAML: found a tab character that violates indentation"}}},
		{"top level list", "- a\n", []Problem{{Line: 1, Msg: "the top level of a rule file must be a mapping"}}},
		{"unknown top key", "rule:\n  - name: x\n", []Problem{
			{Line: 1, Msg: `unknown top-level key "rule" (want "rules")`},
			{Line: 1, Msg: `missing top-level key "rules"`},
		}},
		{"rules not a list", "rules: {}\n", []Problem{{Line: 1, Msg: `"rules" must be a list`}}},
		{"rules null", "rules:\n", []Problem{{Line: 1, Msg: `"rules" must be a list`}}},
		{"rule not a mapping", "rules:\n  - just-a-name\n", []Problem{{Line: 2, Msg: "a rule must be a mapping"}}},
		{"missing everything", "rules:\n  - description: x\n", []Problem{
			{Line: 2, Msg: "rule has no name"},
			{Line: 2, Msg: "rule has no severity"},
			{Line: 2, Msg: "rule has no match"},
		}},
		{"missing severity and match", "rules:\n  - name: x\n", []Problem{
			{Line: 2, Msg: `rule "x" has no severity`},
			{Line: 2, Msg: `rule "x" has no match`},
		}},
		{"bad name", "rules:\n  - name: our names\n    severity: low\n    match: {domains: [a.test]}\n", []Problem{
			{Line: 2, Msg: `invalid name "our names": use only letters, digits, '.', '_' and '-'`},
		}},
		{"empty name", "rules:\n  - name:\n    severity: low\n    match: {domains: [a.test]}\n", []Problem{
			{Line: 2, Msg: "name is empty"},
		}},
		{"name too long", "rules:\n  - name: " + strings.Repeat("n", 129) + "\n    severity: low\n    match: {domains: [a.test]}\n", []Problem{
			{Line: 2, Msg: "name is longer than 128 characters"},
		}},
		{"name is a list", "rules:\n  - name: [a]\n    severity: low\n    match: {domains: [a.test]}\n", []Problem{
			{Line: 2, Msg: "name must be a string"},
		}},
		{"severity case", "rules:\n  - name: r\n    severity: High\n    match: {domains: [a.test]}\n", []Problem{
			{Line: 3, Msg: `invalid severity "High" (want info, low, medium, high or critical)`},
		}},
		{"duplicate key", "rules:\n  - name: r\n    severity: low\n    severity: high\n    match: {domains: [a.test]}\n", []Problem{
			{Line: 4, Msg: `duplicate key "severity" (first at line 3)`},
		}},
		{"duplicate name in one file", "rules:\n  - name: r\n    severity: low\n    match: {domains: [a.test]}\n  - name: r\n    severity: low\n    match: {domains: [b.test]}\n", []Problem{
			{Line: 5, Msg: `duplicate rule name "r" (first defined at f.yaml:2)`},
		}},
		{"tags not a list", "rules:\n  - name: r\n    severity: low\n    tags: inventory\n    match: {domains: [a.test]}\n", []Problem{
			{Line: 4, Msg: "tags must be a list"},
		}},
		{"empty tag", "rules:\n  - name: r\n    severity: low\n    tags: [a, '']\n    match: {domains: [a.test]}\n", []Problem{
			{Line: 4, Msg: "empty tag"},
		}},
		{"match not a mapping", "rules:\n  - name: r\n    severity: low\n    match: [a.test]\n", []Problem{
			{Line: 4, Msg: "match must be a mapping"},
		}},
		{"match empty", "rules:\n  - name: r\n    severity: low\n    match: {}\n", []Problem{
			{Line: 4, Msg: "match is empty: it needs at least one matcher (domains, issuer, issuer_country, feed, allowed_issuers, policy, lookalike, cel, new_issuer, any, all, not)"},
		}},
		{"cel not a bool", "rules:\n  - name: r\n    severity: low\n    match:\n      cel: '1'\n", []Problem{
			{Line: 5, Msg: `cel expression must be a bool, not int`},
		}},
		{"new_issuer nested without memory", "rules:\n  - name: r\n    severity: low\n    match:\n      any:\n        - domains: [a.test]\n        - new_issuer: true\n", []Problem{
			{Line: 7, Msg: `new_issuer needs an issuer memory, and none was configured (rules.WithIssuerMemory)`},
		}},
		{"unknown matcher", "rules:\n  - name: r\n    severity: low\n    match:\n      issuers: {cn: x}\n", []Problem{
			{Line: 5, Msg: `unknown matcher "issuers" (supported: domains, issuer, issuer_country, feed, allowed_issuers, policy, lookalike, cel, new_issuer, any, all, not)`},
		}},
		{"domains not a list", "rules:\n  - name: r\n    severity: low\n    match:\n      domains: a.test\n", []Problem{
			{Line: 5, Msg: "domains must be a list"},
		}},
		{"domains empty", "rules:\n  - name: r\n    severity: low\n    match:\n      domains: []\n", []Problem{
			{Line: 5, Msg: "domains list is empty"},
		}},
		{"any empty", "rules:\n  - name: r\n    severity: low\n    match:\n      any: []\n", []Problem{
			{Line: 5, Msg: `"any" list is empty`},
		}},
		{"all not a list", "rules:\n  - name: r\n    severity: low\n    match:\n      all: {domains: [a.test]}\n", []Problem{
			{Line: 5, Msg: `"all" must be a list`},
		}},
		{"not a list", "rules:\n  - name: r\n    severity: low\n    match:\n      not: [a.test]\n", []Problem{
			{Line: 5, Msg: "match must be a mapping"},
		}},
		{"nested too deep", deep, []Problem{{Line: 37, Msg: "matchers nested more than 32 deep"}}},
		{"alias", "rules:\n  - name: r\n    severity: low\n    match: &m {domains: [a.test]}\n  - name: s\n    severity: low\n    match: *m\n", []Problem{
			{Line: 7, Msg: "YAML aliases are not supported in rule files"},
		}},
		{"every invalid domain, one per line", `rules:
  - name: r
    severity: low
    match:
      domains:
        - ok.example
        - ""
        - "."
        - "*."
        - a..b
        - foo.*.example
        - -lead.example
        - ` + strings.Repeat("x", 64) + `.example
        - ` + strings.Repeat("abcdefghi.", 26) + `example
        - [nested]
`, []Problem{
			{Line: 7, Msg: `invalid domain "": empty domain name`},
			{Line: 8, Msg: `invalid domain ".": empty domain name`},
			{Line: 9, Msg: `invalid domain "*.": empty domain name`},
			{Line: 10, Msg: `invalid domain "a..b": empty label`},
			{Line: 11, Msg: `invalid domain "foo.*.example": idna: disallowed rune U+002A`},
			{Line: 12, Msg: `invalid domain "-lead.example": idna: invalid label "-lead"`},
			{Line: 13, Msg: `invalid domain "` + strings.Repeat("x", 64) + `.example": label "` + strings.Repeat("x", 64) + `" is 64 characters long (at most 63)`},
			{Line: 14, Msg: `invalid domain "` + strings.Repeat("abcdefghi.", 26) + `example": name is 267 characters long (at most 253)`},
			{Line: 15, Msg: "a domain must be a string"},
		}},
		{"several rules, problems in line order", `rules:
  - severity: bad
    match:
      domains: [a.test]
  - name: ok
    severity: low
    colour: red
    match:
      domains: [b.test]
`, []Problem{
			{Line: 2, Msg: `invalid severity "bad" (want info, low, medium, high or critical)`},
			{Line: 2, Msg: "rule has no name"},
			{Line: 7, Msg: `unknown key "colour" in rule (want name, severity, description, tags, match)`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse("f.yaml", []byte(tt.text))
			if e != nil {
				t.Errorf("Parse returned an engine with an error")
			}
			le, ok := errors.AsType[*LoadError](err)
			if !ok {
				t.Fatalf("Parse error = %v (%T), want *LoadError", err, err)
			}
			want := make([]Problem, len(tt.want))
			for i, p := range tt.want {
				p.File = "f.yaml"
				want[i] = p
			}
			if !slices.Equal(le.Problems, want) {
				t.Errorf("Problems:\n%s\nwant:\n%s", le.Error(), (&LoadError{want}).Error())
			}
		})
	}
}

// nestNot returns a match body of n nested "not:" mappings around a
// domains matcher, indented to follow a "match:" key at column 4. In a file
// whose "match:" is on line 4, the k-th "not:" (from 1) is on line 4+k.
func nestNot(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString("\n" + strings.Repeat("  ", i+3))
		}
		b.WriteString("not:")
	}
	b.WriteString("\n" + strings.Repeat("  ", n+3) + "domains: [a.test]")
	return b.String()
}

func TestParseNormalisesAndAccepts(t *testing.T) {
	e := mustParse(t, `# leading comment
rules:
  - name: Mixed.Case_name-1
    severity: critical
    description: ~
    tags: []
    match:
      domains: [A.Example, a.example, "a.example.", .B.example, ".b.example"]
`)
	rs := e.Rules()
	if len(rs) != 1 || rs[0].Name != "Mixed.Case_name-1" || rs[0].Severity != event.SeverityCritical || rs[0].Description != "" {
		t.Fatalf("Rules() = %+v", rs)
	}
	// Duplicates after normalisation are kept once: the reason quotes the
	// first spelling.
	got := e.Match(certWith("a.example"))
	if len(got) != 1 || got[0].Reason != `dns name "a.example" matches watched "A.Example"` {
		t.Errorf("Match = %+v", got)
	}
}

func TestParseMultipleDocuments(t *testing.T) {
	e := mustParse(t, "rules:\n  - name: a\n    severity: low\n    match: {domains: [a.test]}\n---\nrules:\n  - name: b\n    severity: low\n    match: {domains: [b.test]}\n")
	var names []string
	for _, r := range e.Rules() {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("rules = %q, want [a b]", names)
	}
}
