package rules

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/cert"
)

// celCert is a certificate with every field that ctwatch.Cert exposes set.
func celCert() *cert.Cert {
	nb := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	return &cert.Cert{
		SHA256:             sha256.Sum256([]byte("leaf")),
		Precert:            true,
		DNSNames:           []string{"www.bank.example", "bank.example"},
		SANDNSCount:        2,
		IPAddresses:        []string{"192.0.2.7"},
		EmailAddresses:     []string{"ops@bank.example"},
		Subject:            "CN=www.bank.example,O=Bank",
		Issuer:             "CN=Qaznet Trust Network,C=KZ",
		IssuerSPKIHash:     sha256.Sum256([]byte("issuer key")),
		Chain:              []cert.Hash{sha256.Sum256([]byte("issuer")), sha256.Sum256([]byte("root"))},
		ChainSPKI:          []cert.Hash{sha256.Sum256([]byte("issuer key")), {}},
		IssuerCN:           []string{"Qaznet Trust Network"},
		IssuerO:            []string{"State Technical Service"},
		IssuerOU:           []string{"PKI"},
		IssuerC:            []string{"KZ"},
		SignatureAlgorithm: "SHA256-RSA",
		NotBefore:          nb,
		// 400 days counted the Baseline Requirements' way.
		NotAfter: nb.Add(400*24*time.Hour - time.Second),
		KeyType:  "RSA",
		KeySize:  1024,
	}
}

func TestCELMatch(t *testing.T) {
	c := celCert()
	// SHA-256 of "issuer key" and of "issuer", as printed by sha256sum.
	const (
		keyHex   = "74cafc8c29e4802ad7c90f9b742b74d6f28e00082dc338ec54e89797271ed51d"
		chainHex = "535c6f8eb511f5d966a1b0725df92ebf27514faba945cbbd698e23ac72c41757"
	)
	tests := []struct {
		name string
		expr string
		cert *cert.Cert
		want bool
	}{
		{"dns names", `cert.dns_names.exists(n, n.endsWith(".bank.example"))`, c, true},
		{"dns names none", `cert.dns_names.exists(n, n.endsWith(".other.example"))`, c, false},
		{"ip addresses", `"192.0.2.7" in cert.ip_addresses`, c, true},
		{"emails", `cert.emails == ["ops@bank.example"]`, c, true},
		{"subject", `cert.subject.startsWith("CN=www.bank.example")`, c, true},
		{"issuer", `cert.issuer.contains("Qaznet")`, c, true},
		{"issuer cn", `cert.issuer_cn[0] == "Qaznet Trust Network"`, c, true},
		{"issuer o", `cert.issuer_o.exists(o, o.lowerAscii().contains("state"))`, c, true},
		{"issuer ou", `"PKI" in cert.issuer_ou`, c, true},
		{"issuer c", `"KZ" in cert.issuer_c`, c, true},
		{"issuer c other", `"RU" in cert.issuer_c`, c, false},
		{"weak rsa", `cert.key_type == "RSA" && cert.key_size < 2048`, c, true},
		{"validity days", `cert.validity_days == 400`, c, true},
		{"not before", `cert.not_before < timestamp("2025-06-02T00:00:00Z")`, c, true},
		{"not after", `cert.not_after - cert.not_before > duration("9599h")`, c, true},
		{"precert", `cert.precert`, c, true},
		{"signature algorithm", `cert.signature_algorithm.matches("^SHA256-")`, c, true},
		{"issuer spki", `cert.issuer_spki_sha256 == "` + keyHex + `"`, c, true},
		{"chain", `"` + chainHex + `" in cert.chain_sha256`, c, true},
		{"chain spki unknown is empty", `cert.chain_spki_sha256[1] == ""`, c, true},
		{"sha256", `size(cert.sha256) == 64`, c, true},
		{"san count", `size(cert.dns_names) + size(cert.ip_addresses) == 3`, c, true},
		{"has", `has(cert.dns_names)`, c, true},
		// An evaluation error is no match, not a panic.
		{"index out of range", `cert.dns_names[5] == "x"`, c, false},
		{"division by zero", `1 / (cert.key_size - 1024) == 0`, c, false},
		{"empty certificate", `size(cert.dns_names) == 0 && cert.issuer_spki_sha256 == "" && cert.validity_days == 0`, &cert.Cert{}, true},
		{"zero times", `cert.not_before == timestamp("0001-01-01T00:00:00Z")`, &cert.Cert{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := "cel: '" + strings.ReplaceAll(tt.expr, "'", "''") + "'"
			got := matchRule(t, body, tt.cert)
			want := ""
			if tt.want {
				want = `cel expression "` + strings.ReplaceAll(tt.expr, `"`, `\"`) + `" is true`
			}
			if got != want {
				t.Errorf("reason = %q\nwant     %q", got, want)
			}
		})
	}
}

func TestCELCombined(t *testing.T) {
	c := celCert()
	runMatcherCases(t, []matcherCase{
		{"and domains", "domains: [.bank.example]\ncel: 'cert.key_size < 2048'", c,
			`dns name "www.bank.example" matches watched ".bank.example" and cel expression "cert.key_size < 2048" is true`},
		{"not", "not: {cel: 'cert.key_size >= 2048'}", c, `not cel expression "cert.key_size >= 2048" is true`},
		{"not holding", "not: {cel: 'cert.key_size < 2048'}", c, ""},
		{"block scalar", "cel: |\n  cert.precert &&\n  \"KZ\" in cert.issuer_c", c, "cel expression \"cert.precert &&\\n\\\"KZ\\\" in cert.issuer_c\" is true"},
	})
}

// TestCELRulesShareCertificate runs several CEL rules over the same fields
// in one Match, which share one conversion of the certificate's fields:
// each must still see the certificate's own values, and a second
// certificate its own.
func TestCELRulesShareCertificate(t *testing.T) {
	e := mustParse(t, `rules:
  - name: bank
    severity: low
    match: {cel: 'cert.dns_names.exists(n, n.endsWith(".bank.example"))'}
  - name: count
    severity: low
    match: {cel: 'size(cert.dns_names) == 2'}
  - name: paypal
    severity: low
    match: {cel: 'cert.dns_names.exists(n, n.contains("paypal"))'}
  - name: first
    severity: low
    match: {cel: 'cert.dns_names[0] == "www.bank.example"'}
`)
	tests := []struct {
		names []string
		want  []string
	}{
		{[]string{"www.bank.example", "shop.example"}, []string{"bank", "count", "first"}},
		{[]string{"paypal.example"}, []string{"paypal"}},
		{[]string{"a.example", "b.example", "c.example"}, nil},
	}
	for _, tt := range tests {
		var got []string
		for _, m := range e.Match(certWith(tt.names...)) {
			got = append(got, m.Rule)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q) fired %q, want %q", tt.names, got, tt.want)
		}
	}
}

func TestCELProblems(t *testing.T) {
	tests := []struct {
		name string
		body string // under match:, which is on line 4; the body starts on line 5
		want []Problem
	}{
		{"unknown field", "cel: 'cert.serial == 1'", []Problem{{Line: 5, Msg: "cel: column 5: undefined field 'serial'"}}},
		{"unknown variable", "cel: 'x > 1'", []Problem{{Line: 5, Msg: "cel: column 1: undeclared reference to 'x'"}}},
		{"not a bool", "cel: 'cert.key_size + 1'", []Problem{{Line: 5, Msg: "cel expression must be a bool, not int"}}},
		{"dyn is not a bool", "cel: 'dyn(cert.precert)'", []Problem{{Line: 5, Msg: "cel expression must be a bool, not dyn"}}},
		{"syntax", "cel: 'cert.precert &&'", []Problem{{Line: 5, Msg: "cel: column 16: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}"}}},
		{"type mismatch", "cel: 'cert.key_size == \"2048\"'", []Problem{{Line: 5, Msg: "cel: column 15: found no matching overload for '_==_' applied to '(int, string)'"}}},
		{"error on the second line of a block", "cel: |\n  cert.precert &&\n  cert.nope", []Problem{{Line: 7, Msg: "cel: column 5: undefined field 'nope'"}}},
		{"empty", "cel: ''", []Problem{{Line: 5, Msg: "cel expression is empty"}}},
		{"not a string", "cel: [a]", []Problem{{Line: 5, Msg: "cel must be a string"}}},
		{"too long", "cel: '" + strings.Repeat("true && ", 600) + "true'", []Problem{{Line: 5, Msg: "cel expression is longer than 4096 characters"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(oneRule(tt.body)))
			checkProblems(t, err, tt.want)
		})
	}
}

// checkProblems asserts that err is a *LoadError of test.yaml with exactly
// want.
func checkProblems(t *testing.T, err error, want []Problem) {
	t.Helper()
	le, ok := err.(*LoadError)
	if !ok {
		t.Fatalf("err = %v, want a *LoadError", err)
	}
	if len(le.Problems) != len(want) {
		t.Fatalf("problems = %q\nwant       %q", le.Problems, want)
	}
	for i, p := range le.Problems {
		w := want[i]
		w.File = "test.yaml"
		if p != w {
			t.Errorf("problem %d = %q\nwant        %q", i, p, w)
		}
	}
}

// TestCELConcurrent matches from several goroutines (run with -race).
func TestCELConcurrent(t *testing.T) {
	e, err := Parse("test.yaml", []byte(oneRule(`cel: '"KZ" in cert.issuer_c && cert.dns_names.exists(n, n == "bank.example")'`)))
	if err != nil {
		t.Fatal(err)
	}
	hit, miss := celCert(), &cert.Cert{IssuerC: []string{"US"}}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if len(e.Match(hit)) != 1 || e.Match(miss) != nil {
					t.Error("wrong match under concurrency")
					return
				}
			}
		})
	}
	wg.Wait()
}

// celBenchExprs is 20 CEL rules of the kinds users write, none of which
// holds for the benchmark certificate.
var celBenchExprs = []string{
	`"KZ" in cert.issuer_c`,
	`cert.issuer_c.exists(c, c in ["KZ", "RU", "BY", "TM"])`,
	`cert.key_type == "RSA" && cert.key_size < 2048`,
	`cert.validity_days > 398`,
	`cert.signature_algorithm.contains("SHA1")`,
	`cert.dns_names.exists(n, n.endsWith(".bank.example"))`,
	`cert.dns_names.exists(n, n.contains("paypal"))`,
	`size(cert.dns_names) > 500`,
	`size(cert.ip_addresses) > 0`,
	`size(cert.emails) > 0 && cert.precert`,
	`cert.issuer_o.exists(o, o == "State Technical Service")`,
	`cert.issuer_cn.exists(cn, cn.startsWith("Qaznet"))`,
	`cert.not_before < timestamp("2015-01-01T00:00:00Z")`,
	`cert.not_after - cert.not_before > duration("9600h")`,
	`cert.issuer_spki_sha256 == "0000000000000000000000000000000000000000000000000000000000000000"`,
	`cert.subject.contains("O=Bank")`,
	`cert.key_type == "unknown"`,
	`cert.issuer == "CN=Evil CA"`,
	`cert.dns_names.exists(n, n.startsWith("xn--"))`,
	`cert.key_type == "ECDSA" && cert.key_size < 256`,
}

// BenchmarkCEL20 matches one real-shaped certificate (40 names, a Let's
// Encrypt issuer) against 20 CEL rules; the budget is well under 10 µs per
// certificate for all 20.
func BenchmarkCEL20(b *testing.B) {
	var src strings.Builder
	src.WriteString("rules:\n")
	for i, expr := range celBenchExprs {
		fmt.Fprintf(&src, "  - name: cel-%d\n    severity: low\n    match:\n      cel: '%s'\n", i, strings.ReplaceAll(expr, "'", "''"))
	}
	e, err := Parse("bench.yaml", []byte(src.String()))
	if err != nil {
		b.Fatal(err)
	}
	names := make([]string, 40)
	for i := range names {
		names[i] = fmt.Sprintf("www%d.shop.example", i)
	}
	nb := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	c := &cert.Cert{
		DNSNames:           names,
		SANDNSCount:        len(names),
		Subject:            "CN=www0.shop.example",
		Issuer:             "CN=E5,O=Let's Encrypt,C=US",
		IssuerCN:           []string{"E5"},
		IssuerO:            []string{"Let's Encrypt"},
		IssuerC:            []string{"US"},
		IssuerSPKIHash:     mustHash(b, leE5SPKI),
		SignatureAlgorithm: "ECDSA-SHA384",
		NotBefore:          nb,
		NotAfter:           nb.Add(90 * 24 * time.Hour),
		KeyType:            "ECDSA",
		KeySize:            256,
	}
	if got := e.Match(c); got != nil {
		b.Fatalf("Match = %+v, want none", got)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Match(c)
	}
}
