package rules

import (
	"crypto/sha256"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ctwatch/ctwatch/cert"
)

func TestMemoryIssuers(t *testing.T) {
	seed := sha256.Sum256([]byte("seeded"))
	a := sha256.Sum256([]byte("a"))
	b := sha256.Sum256([]byte("b"))
	stored := sha256.Sum256([]byte("stored"))
	m := NewMemoryIssuers([]cert.Hash{seed})
	m.Remember(stored)
	steps := []struct {
		key  cert.Hash
		want bool
	}{
		{seed, false}, {stored, false}, {a, true}, {a, false}, {b, true}, {seed, false}, {b, false},
	}
	for i, s := range steps {
		if got := m.FirstSighting(s.key); got != s.want {
			t.Errorf("step %d: FirstSighting(%s) = %v, want %v", i, s.key, got, s.want)
		}
	}
	if got := m.TakeNew(); !slices.Equal(got, []cert.Hash{a, b}) {
		t.Errorf("TakeNew = %v, want [a b]", got)
	}
	if got := m.TakeNew(); got != nil {
		t.Errorf("second TakeNew = %v, want nil", got)
	}
	if got := m.Len(); got != 4 {
		t.Errorf("Len = %d, want 4", got)
	}
}

// TestMemoryIssuersConcurrent checks that a key is new exactly once
// however many goroutines sight it at the same time.
func TestMemoryIssuersConcurrent(t *testing.T) {
	m := NewMemoryIssuers(nil)
	keys := make([]cert.Hash, 50)
	for i := range keys {
		keys[i] = sha256.Sum256([]byte{byte(i)})
	}
	var firsts atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, k := range keys {
				if m.FirstSighting(k) {
					firsts.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := firsts.Load(); got != int64(len(keys)) {
		t.Errorf("first sightings = %d, want %d", got, len(keys))
	}
	if got := m.TakeNew(); len(got) != len(keys) {
		t.Errorf("TakeNew returned %d keys, want %d", len(got), len(keys))
	}
}

func TestKnownIssuers(t *testing.T) {
	got, err := KnownIssuers(loadFixtures(t))
	if err != nil {
		t.Fatal(err)
	}
	// The distinct spki_sha256 values of testdata/data/issuers, sorted.
	want := []string{
		"2ddeb84a9a1e5e3a4b8dcfbfed66a193aa79f8a572cd5494a6d722b96b32c5e6",
		"3586d4ecf070578cbd27aedce20b964e48bc149faeb9dad72f46b857869172b8",
		"3ef687bb01368d11ccca34c2ab5cbb5b40bfff3e168ec6f4e7b0de81753402bb",
		"7673cf13e24cfd968d082d50d7df0b10b85088075f32c10f5e2d4b55853e68f4",
		"cbbc559b44d524d6a132bdac672744da3407f12aae5d5f722c5f6c7913871c75",
		"d016e1fe311948aca64f2de44ce86c9a51ca041df6103bb52a88eb3f761f57d7",
	}
	if len(got) != len(want) {
		t.Fatalf("KnownIssuers = %d keys, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].String() != w {
			t.Errorf("key %d = %s, want %s", i, got[i], w)
		}
	}
	builtin, err := KnownIssuers(Builtin())
	if err != nil {
		t.Fatal(err)
	}
	// Let's Encrypt E5, from shared/data/issuers/INDEX.md.
	if !slices.Contains(builtin, mustHash(t, leE5SPKI)) {
		t.Errorf("built-in issuer keys (%d) lack Let's Encrypt E5", len(builtin))
	}
}

func TestNewIssuerMatch(t *testing.T) {
	known := mustHash(t, leE5SPKI)
	fresh := cert.Hash(sha256.Sum256([]byte("fresh issuer key")))
	other := cert.Hash(sha256.Sum256([]byte("another fresh key")))
	ours := func(key cert.Hash) *cert.Cert {
		return &cert.Cert{DNSNames: []string{"www.bank.example"}, Issuer: "CN=New CA", IssuerSPKIHash: key}
	}
	theirs := func(key cert.Hash) *cert.Cert {
		return &cert.Cert{DNSNames: []string{"www.other.example"}, Issuer: "CN=New CA", IssuerSPKIHash: key}
	}
	const rulesYAML = `rules:
  - name: any-new
    severity: medium
    match: {new_issuer: true}
  - name: ours-new
    severity: high
    match:
      domains: [.bank.example]
      new_issuer: true
  - name: ours-known
    severity: info
    match:
      domains: [.bank.example]
      not: {new_issuer: true}
`
	m := NewMemoryIssuers([]cert.Hash{known})
	e, err := Parse("test.yaml", []byte(rulesYAML), WithIssuerMemory(m))
	if err != nil {
		t.Fatal(err)
	}
	freshReason := `issuer "CN=New CA" has a new key (SPKI SHA-256 ` + fresh.String() + `), seen for the first time`
	steps := []struct {
		name string
		cert *cert.Cert
		want []Match
	}{
		{"known issuer for our name", ours(known), []Match{
			{Rule: "ours-known", Severity: "info", Reason: `dns name "www.bank.example" matches watched ".bank.example" and issuer key SPKI SHA-256 ` + known.String() + " was seen before"},
		}},
		{"new issuer for our name: both rules see it", ours(fresh), []Match{
			{Rule: "any-new", Severity: "medium", Reason: freshReason},
			{Rule: "ours-new", Severity: "high", Reason: `dns name "www.bank.example" matches watched ".bank.example" and ` + freshReason},
		}},
		{"same issuer again", ours(fresh), []Match{
			{Rule: "ours-known", Severity: "info", Reason: `dns name "www.bank.example" matches watched ".bank.example" and issuer key SPKI SHA-256 ` + fresh.String() + " was seen before"},
		}},
		{"new issuer for another name", theirs(other), []Match{
			{Rule: "any-new", Severity: "medium", Reason: `issuer "CN=New CA" has a new key (SPKI SHA-256 ` + other.String() + `), seen for the first time`},
		}},
		{"that issuer later for our name is no longer new", ours(other), []Match{
			{Rule: "ours-known", Severity: "info", Reason: `dns name "www.bank.example" matches watched ".bank.example" and issuer key SPKI SHA-256 ` + other.String() + " was seen before"},
		}},
		{"no issuer key", &cert.Cert{DNSNames: []string{"www.bank.example"}}, []Match{
			{Rule: "ours-known", Severity: "info", Reason: `dns name "www.bank.example" matches watched ".bank.example" and the issuer key is unknown (no chain came with the certificate)`},
		}},
	}
	for _, s := range steps {
		if got := e.Match(s.cert); !slices.Equal(got, s.want) {
			t.Errorf("%s:\n got  %+v\n want %+v", s.name, got, s.want)
		}
	}
	if got := m.TakeNew(); !slices.Equal(got, []cert.Hash{fresh, other}) {
		t.Errorf("TakeNew = %v, want [fresh other]", got)
	}
}

// TestNoIssuerRuleNoLookup checks that an engine without new_issuer rules
// never consults the memory.
func TestNoIssuerRuleNoLookup(t *testing.T) {
	m := NewMemoryIssuers(nil)
	e, err := Parse("test.yaml", []byte(oneRule("domains: [a.example]")), WithIssuerMemory(m))
	if err != nil {
		t.Fatal(err)
	}
	e.Match(&cert.Cert{DNSNames: []string{"a.example"}, IssuerSPKIHash: sha256.Sum256([]byte("k"))})
	if m.Len() != 0 {
		t.Errorf("memory learnt %d keys from an engine without new_issuer rules", m.Len())
	}
}

func TestNewIssuerProblems(t *testing.T) {
	mem := WithIssuerMemory(NewMemoryIssuers(nil))
	tests := []struct {
		name string
		body string
		opts []Option
		want []Problem
	}{
		{"no memory", "new_issuer: true", nil, []Problem{{Line: 5, Msg: "new_issuer needs an issuer memory, and none was configured (rules.WithIssuerMemory)"}}},
		{"false", "new_issuer: false", []Option{mem}, []Problem{{Line: 5, Msg: "new_issuer must be true (for the opposite, write not: {new_issuer: true})"}}},
		{"a string", "new_issuer: always", []Option{mem}, []Problem{{Line: 5, Msg: "new_issuer must be true"}}},
		{"a list", "new_issuer: [true]", []Option{mem}, []Problem{{Line: 5, Msg: "new_issuer must be true"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(oneRule(tt.body)), tt.opts...)
			checkProblems(t, err, tt.want)
		})
	}
}
