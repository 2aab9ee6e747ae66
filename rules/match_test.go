package rules

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ctwatch/ctwatch/cert"
	"github.com/ctwatch/ctwatch/event"
)

// mustParse compiles a rule file given as text, failing the test on error.
func mustParse(t testing.TB, text string) *Engine {
	t.Helper()
	e, err := Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return e
}

func certWith(names ...string) *cert.Cert {
	return &cert.Cert{DNSNames: names}
}

// oneRule is a rule file with a single rule "r" whose match is body, which
// is indented under "match:".
func oneRule(body string) string {
	var b strings.Builder
	b.WriteString("rules:\n  - name: r\n    severity: high\n    match:\n")
	for line := range strings.SplitSeq(strings.TrimRight(body, "\n"), "\n") {
		b.WriteString("      " + line + "\n")
	}
	return b.String()
}

func TestMatchDomains(t *testing.T) {
	tests := []struct {
		name   string
		watch  string
		names  []string
		reason string // "" means no match
	}{
		{"exact", "example.com", []string{"example.com"},
			`dns name "example.com" matches watched "example.com"`},
		{"exact does not cover subdomain", "example.com", []string{"www.example.com"}, ""},
		{"exact does not match parent", "www.example.com", []string{"example.com"}, ""},
		{"suffix matches the domain itself", ".example.com", []string{"example.com"},
			`dns name "example.com" matches watched ".example.com"`},
		{"suffix matches deep name", ".example.com", []string{"a.b.example.com"},
			`dns name "a.b.example.com" matches watched ".example.com"`},
		{"suffix is label-aligned", ".example.com", []string{"notexample.com"}, ""},
		{"suffix not in the middle", ".example.com", []string{"example.com.evil.test"}, ""},
		{"wildcard one label", "*.example.com", []string{"www.example.com"},
			`dns name "www.example.com" matches watched "*.example.com"`},
		{"wildcard not two labels", "*.example.com", []string{"a.b.example.com"}, ""},
		{"wildcard not the domain", "*.example.com", []string{"example.com"}, ""},
		{"wildcard vs cert wildcard", "*.example.com", []string{"*.example.com"},
			`dns name "*.example.com" matches watched "*.example.com"`},
		{"cert wildcard covers exact", "www.example.com", []string{"*.example.com"},
			`certificate wildcard "*.example.com" covers watched "www.example.com"`},
		{"cert wildcard under suffix", ".example.com", []string{"*.example.com"},
			`dns name "*.example.com" matches watched ".example.com"`},
		{"cert wildcard covers suffix one below", ".sub.example.com", []string{"*.example.com"},
			`certificate wildcard "*.example.com" covers watched ".sub.example.com"`},
		{"cert wildcard does not cover its base", "example.com", []string{"*.example.com"}, ""},
		{"cert wildcard does not cover two below", "a.b.example.com", []string{"*.example.com"}, ""},
		{"cert wildcard does not cover suffix two below", ".a.b.example.com", []string{"*.example.com"}, ""},
		{"cert wildcard of other domain", "www.example.com", []string{"*.example.org"}, ""},
		{"IDN watched in Unicode", "bücher.example", []string{"xn--bcher-kva.example"},
			`dns name "xn--bcher-kva.example" matches watched "bücher.example"`},
		{"IDN suffix in Unicode", ".bücher.example", []string{"shop.xn--bcher-kva.example"},
			`dns name "shop.xn--bcher-kva.example" matches watched ".bücher.example"`},
		{"upper-case watched", "WWW.Example.COM", []string{"www.example.com"},
			`dns name "www.example.com" matches watched "WWW.Example.COM"`},
		{"upper-case cert name", ".example.com", []string{"WWW.EXAMPLE.COM"},
			`dns name "www.example.com" matches watched ".example.com"`},
		{"trailing dot watched", "example.com.", []string{"example.com"},
			`dns name "example.com" matches watched "example.com."`},
		{"trailing dot cert name", "example.com", []string{"example.com."},
			`dns name "example.com" matches watched "example.com"`},
		{"trailing dot wildcard", "*.example.com.", []string{"WWW.example.com."},
			`dns name "www.example.com" matches watched "*.example.com."`},
		{"first matching name reported", ".example.com", []string{"other.test", "b.example.com", "a.example.com"},
			`dns name "b.example.com" matches watched ".example.com"`},
		{"no names", ".example.com", nil, ""},
		{"odd cert names do not match", "example.com", []string{"", ".", "*", "*.", "..example.com", "example..com"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustParse(t, oneRule(fmt.Sprintf("domains: [%q]", tt.watch)))
			got := e.Match(certWith(tt.names...))
			if tt.reason == "" {
				if got != nil {
					t.Fatalf("Match(%q) = %+v, want nil", tt.names, got)
				}
				return
			}
			want := []Match{{Rule: "r", Severity: event.SeverityHigh, Reason: tt.reason}}
			if !slices.Equal(got, want) {
				t.Fatalf("Match(%q) = %+v, want %+v", tt.names, got, want)
			}
		})
	}
}

func TestMatchBoolean(t *testing.T) {
	tests := []struct {
		name   string
		match  string
		names  []string
		reason string
	}{
		{
			name:   "keys are ANDed: both hold",
			match:  "domains: [.example.com]\nnot:\n  domains: [www.example.com]",
			names:  []string{"mail.example.com"},
			reason: `dns name "mail.example.com" matches watched ".example.com" and no dns name matches watched "www.example.com"`,
		},
		{
			name:  "keys are ANDed: not fails",
			match: "domains: [.example.com]\nnot:\n  domains: [www.example.com]",
			names: []string{"mail.example.com", "www.example.com"},
		},
		{
			name:   "any: second alternative",
			match:  "any:\n  - domains: [a.test]\n  - domains: [b.test]",
			names:  []string{"b.test"},
			reason: `dns name "b.test" matches watched "b.test"`,
		},
		{
			name:  "any: none",
			match: "any:\n  - domains: [a.test]\n  - domains: [b.test]",
			names: []string{"c.test"},
		},
		{
			name:  "all: one missing",
			match: "all:\n  - domains: [a.test]\n  - domains: [b.test]",
			names: []string{"a.test"},
		},
		{
			name:   "all: both",
			match:  "all:\n  - domains: [a.test]\n  - domains: [b.test]",
			names:  []string{"b.test", "a.test"},
			reason: `dns name "a.test" matches watched "a.test" and dns name "b.test" matches watched "b.test"`,
		},
		{
			name:   "not alone matches unrelated certificates",
			match:  "not:\n  domains: [.example.com, other.test]",
			names:  []string{"unrelated.test"},
			reason: `no dns name matches any of 2 watched domains`,
		},
		{
			name:   "not alone matches a certificate without names",
			match:  "not:\n  domains: [.example.com]",
			reason: `no dns name matches watched ".example.com"`,
		},
		{
			name:  "not alone: excluded",
			match: "not:\n  domains: [.example.com]",
			names: []string{"x.example.com"},
		},
		{
			name:   "not of any",
			match:  "domains: [.example.com]\nnot:\n  any:\n    - domains: [a.example.com]\n    - domains: [b.example.com]",
			names:  []string{"c.example.com"},
			reason: `dns name "c.example.com" matches watched ".example.com" and no dns name matches watched "a.example.com" and no dns name matches watched "b.example.com"`,
		},
		{
			name:   "not of all: explains the failing part",
			match:  "not:\n  all:\n    - domains: [a.test]\n    - domains: [b.test]",
			names:  []string{"a.test"},
			reason: `no dns name matches watched "b.test"`,
		},
		{
			name:   "double negation",
			match:  "not:\n  not:\n    domains: [a.test]",
			names:  []string{"a.test"},
			reason: `dns name "a.test" matches watched "a.test"`,
		},
		{
			name:  "double negation: no match",
			match: "not:\n  not:\n    domains: [a.test]",
			names: []string{"b.test"},
		},
		{
			name:   "any nested in all",
			match:  "all:\n  - any:\n      - domains: [x.test]\n      - domains: [.example.com]\n  - domains: [\"*.example.com\"]",
			names:  []string{"www.example.com"},
			reason: `dns name "www.example.com" matches watched ".example.com" and dns name "www.example.com" matches watched "*.example.com"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustParse(t, oneRule(tt.match))
			got := e.Match(certWith(tt.names...))
			if tt.reason == "" {
				if got != nil {
					t.Fatalf("Match(%q) = %+v, want nil", tt.names, got)
				}
				return
			}
			want := []Match{{Rule: "r", Severity: event.SeverityHigh, Reason: tt.reason}}
			if !slices.Equal(got, want) {
				t.Fatalf("Match(%q) =\n %+v\nwant\n %+v", tt.names, got, want)
			}
		})
	}
}

func TestMatchSeveralRules(t *testing.T) {
	e := mustParse(t, `rules:
  - name: first
    severity: low
    match:
      domains: [.example.com]
  - name: second
    severity: info
    match:
      domains: [other.test]
  - name: third
    severity: critical
    match:
      domains: [www.example.com]
  - name: fourth
    severity: medium
    match:
      not:
        domains: [www.example.com]
`)
	got := e.Match(certWith("www.example.com"))
	want := []Match{
		{Rule: "first", Severity: event.SeverityLow, Reason: `dns name "www.example.com" matches watched ".example.com"`},
		{Rule: "third", Severity: event.SeverityCritical, Reason: `dns name "www.example.com" matches watched "www.example.com"`},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Match = %+v\nwant %+v", got, want)
	}

	got = e.Match(certWith("other.test"))
	want = []Match{
		{Rule: "second", Severity: event.SeverityInfo, Reason: `dns name "other.test" matches watched "other.test"`},
		{Rule: "fourth", Severity: event.SeverityMedium, Reason: `no dns name matches watched "www.example.com"`},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Match = %+v\nwant %+v", got, want)
	}
}

func TestMatchNilSafe(t *testing.T) {
	var e *Engine
	if got := e.Match(certWith("example.com")); got != nil {
		t.Errorf("nil engine: Match = %+v, want nil", got)
	}
	if got := e.Rules(); got != nil {
		t.Errorf("nil engine: Rules = %+v, want nil", got)
	}
	e = mustParse(t, oneRule("domains: [example.com]"))
	if got := e.Match(nil); got != nil {
		t.Errorf("Match(nil) = %+v, want nil", got)
	}
}

func TestMatchConcurrent(t *testing.T) {
	e := mustParse(t, oneRule("domains: [.example.com]"))
	want := []Match{{Rule: "r", Severity: event.SeverityHigh, Reason: `dns name "a.example.com" matches watched ".example.com"`}}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if got := e.Match(certWith("x.test", "a.example.com")); !slices.Equal(got, want) {
					errs <- fmt.Sprintf("Match = %+v", got)
					return
				}
				if got := e.Match(certWith("x.test")); got != nil {
					errs <- fmt.Sprintf("Match = %+v, want nil", got)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}

func TestMatchNoAllocWhenNothingMatches(t *testing.T) {
	e := mustParse(t, `rules:
  - name: watched
    severity: high
    match:
      domains: [.example.com, www.example.org, "*.example.net"]
  - name: with-exception
    severity: low
    match:
      domains: [.example.info]
      not:
        domains: [www.example.info]
`)
	c := certWith("a.test", "b.test", "*.c.test", "d.test.")
	if got := e.Match(c); got != nil {
		t.Fatalf("Match = %+v, want nil", got)
	}
	if n := testing.AllocsPerRun(100, func() { e.Match(c) }); n != 0 {
		t.Errorf("Match allocates %.0f times per call when nothing matches, want 0", n)
	}
}

func TestRules(t *testing.T) {
	e := mustParse(t, `rules:
  - name: a
    severity: info
    description: first rule
    tags: [x, y]
    match:
      domains: [a.test]
  - name: b
    severity: critical
    match:
      domains: [b.test]
`)
	got := e.Rules()
	want := []RuleInfo{
		{Name: "a", Severity: event.SeverityInfo, Description: "first rule", Tags: []string{"x", "y"}, File: "test.yaml", Line: 2},
		{Name: "b", Severity: event.SeverityCritical, File: "test.yaml", Line: 8},
	}
	if len(got) != len(want) {
		t.Fatalf("Rules() = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Severity != w.Severity || g.Description != w.Description ||
			!slices.Equal(g.Tags, w.Tags) || g.File != w.File || g.Line != w.Line {
			t.Errorf("Rules()[%d] = %+v, want %+v", i, g, w)
		}
	}
	e2 := mustParse(t, oneRule("domains: [a.test]")+"    tags: []\n")
	if tags := e2.Rules()[0].Tags; tags != nil {
		t.Errorf("empty tags = %#v, want nil", tags)
	}
	got[0].Tags[0] = "changed"
	if e.Rules()[0].Tags[0] != "x" {
		t.Error("Rules() shares its Tags with the engine")
	}
}

// A hit carries its rule's tags (sinks route on them), as its own copy.
func TestNewHitTags(t *testing.T) {
	e := mustParse(t, `rules:
  - name: a
    severity: high
    tags: [kz, feed]
    match:
      domains: [a.test]
  - name: b
    severity: low
    match:
      domains: [a.test]
`)
	c := certWith("a.test")
	ms := e.Match(c)
	if len(ms) != 2 {
		t.Fatalf("Match = %+v, want two", ms)
	}
	ha, hb := e.NewHit(ms[0], c, nil), e.NewHit(ms[1], c, nil)
	if !slices.Equal(ha.Tags, []string{"kz", "feed"}) || hb.Tags != nil {
		t.Errorf("tags %v and %v, want [kz feed] and none", ha.Tags, hb.Tags)
	}
	if ha.ID != HitID("a", c.TBSHash) || ha.Rule != "a" || ha.Severity != event.SeverityHigh || ha.Log != nil {
		t.Errorf("hit %+v", ha)
	}
	ha.Tags[0] = "changed"
	if e.Rules()[0].Tags[0] != "kz" {
		t.Error("a hit shares its Tags with the engine")
	}
}

func TestHitID(t *testing.T) {
	var tbs cert.Hash
	for i := range tbs {
		tbs[i] = byte(i)
	}
	// Computed independently:
	//   python3 -c "import hashlib; print(hashlib.sha256(b'our-names\0' + bytes(range(32))).hexdigest()[:32])"
	const want = "fd2434d2caefd623c28524700633fbe5"
	if got := HitID("our-names", tbs); got != want {
		t.Errorf("HitID = %s, want %s", got, want)
	}
	if HitID("our-names", tbs) == HitID("our-name", tbs) {
		t.Error("HitID ignores the rule name")
	}
	if HitID("a", cert.Hash{}) == HitID("a", tbs) {
		t.Error("HitID ignores the TBS hash")
	}
}
