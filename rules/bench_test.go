package rules

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/cert"
)

// watchList returns a rule file of 100 rules watching 1,000 names each, a
// third of them exact, a third suffixes and a third one-label wildcards.
func watchList() string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for r := range 100 {
		fmt.Fprintf(&b, "  - name: watch-%d\n    severity: high\n    match:\n      domains:\n", r)
		for i := range 1000 {
			switch i % 3 {
			case 0:
				fmt.Fprintf(&b, "        - host%d.brand%d.example\n", i, r)
			case 1:
				fmt.Fprintf(&b, "        - .brand%d-%d.example\n", r, i)
			default:
				fmt.Fprintf(&b, "        - \"*.wild%d-%d.example\"\n", r, i)
			}
		}
	}
	return b.String()
}

// sans returns 100 certificate names, a tenth of them wildcards, none of
// them watched by watchList, but sharing its TLD and many of its labels.
func sans() []string {
	names := make([]string, 100)
	for i := range names {
		if i%10 == 0 {
			names[i] = fmt.Sprintf("*.cdn%d.brand%d.example", i, i)
		} else {
			names[i] = fmt.Sprintf("www%d.shop%d.brand%d.example", i, i, i%7)
		}
	}
	return names
}

func BenchmarkMatchDomains(b *testing.B) {
	e, err := Parse("bench.yaml", []byte(watchList()))
	if err != nil {
		b.Fatal(err)
	}
	none := certWith(sans()...)
	oneNames := sans()
	oneNames[57] = "login.portal.brand42-301.example"
	one := certWith(oneNames...)

	if got := e.Match(none); got != nil {
		b.Fatalf("unexpected match: %+v", got)
	}
	if got := e.Match(one); len(got) != 1 || got[0].Rule != "watch-42" {
		b.Fatalf("Match = %+v, want watch-42", got)
	}

	b.Run("none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.Match(none)
		}
	})
	b.Run("one", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.Match(one)
		}
	})
}

// writeWatchRules starts a rule file with 10 rules watching 1,000 domains
// each, the first one also requiring an allowed issuer.
func writeWatchRules(w *strings.Builder) {
	w.WriteString("rules:\n")
	for r := range 10 {
		fmt.Fprintf(w, "  - name: watch-%d\n    severity: high\n    match:\n      domains:\n", r)
		for i := range 1000 {
			fmt.Fprintf(w, "        - .brand%d-%d.example\n", r, i)
		}
		if r == 0 {
			w.WriteString("      allowed_issuers: {owners: [lets-encrypt, digicert]}\n")
		}
	}
}

// BenchmarkMatchAll matches pre-decoded certificates against 10,000 watched
// domains (one of the rules also requiring an allowed issuer), both feeds
// and a policy rule, on one goroutine, and reports certificates per second.
func BenchmarkMatchAll(b *testing.B) {
	var rules strings.Builder
	writeWatchRules(&rules)
	rules.WriteString(`  - name: interception
    severity: critical
    match: {feed: interception-cas}
  - name: distrusted
    severity: high
    match: {feed: distrusted-cas}
  - name: policy
    severity: low
    match: {policy: [max_validity, weak_key, sha1, no_san, ip_san]}
`)
	e, err := Parse("bench.yaml", []byte(rules.String()), WithData(loadFixtures(b)))
	if err != nil {
		b.Fatal(err)
	}
	le := mustHash(b, leE5SPKI)
	leCert := mustHash(b, leE5Cert)
	root := sha256.Sum256([]byte("root"))
	nb := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	certs := make([]*cert.Cert, 1000)
	for i := range certs {
		names := make([]string, 1+i%40)
		for j := range names {
			names[j] = fmt.Sprintf("www%d.shop%d.brand%d.example", j, i, j%7)
		}
		certs[i] = &cert.Cert{
			DNSNames:           names,
			SANDNSCount:        len(names),
			Subject:            "CN=" + names[0],
			Issuer:             "CN=E5,O=Let's Encrypt,C=US",
			IssuerCN:           []string{"E5"},
			IssuerO:            []string{"Let's Encrypt"},
			IssuerC:            []string{"US"},
			IssuerSPKIHash:     le,
			Chain:              []cert.Hash{leCert, root},
			ChainSPKI:          []cert.Hash{le, root},
			ChainSubjects:      []string{"CN=E5,O=Let's Encrypt,C=US", "CN=ISRG Root X2,O=Internet Security Research Group,C=US"},
			SignatureAlgorithm: "ECDSA-SHA384",
			NotBefore:          nb,
			NotAfter:           nb.Add(90 * 24 * time.Hour),
			KeyType:            "ECDSA",
			KeySize:            256,
		}
	}
	// Every hundredth certificate is for a watched name, from an issuer
	// that is not allowed.
	for i := 0; i < len(certs); i += 100 {
		certs[i].DNSNames = append(certs[i].DNSNames, fmt.Sprintf("login.brand0-%d.example", i))
		certs[i].IssuerSPKIHash = root
		certs[i].Chain = []cert.Hash{root, root}
	}
	for i, c := range certs {
		got := e.Match(c)
		if (i%100 == 0) != (len(got) == 1 && got[0].Rule == "watch-0") || (i%100 != 0 && got != nil) {
			b.Fatalf("cert %d: Match = %+v", i, got)
		}
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		e.Match(certs[n%len(certs)])
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "certs/s")
}

// BenchmarkMatchFull is the yardstick: the real certificates of
// testdata/corpus, pre-decoded, against 10,000 watched domains, 100
// lookalike brands, both built-in feeds, allowed issuers for the watched
// names, the policy checks and the 20 CEL rules of BenchmarkCEL20, on one
// core. The certs/s metric is the figure to compare. Like any real
// configuration, the lookalike rule allows each brand's own registered
// domain (<brand>.com), so that the brands' own certificates in the
// corpus (microsoft.com, google.com) are not flagged as lookalikes of
// themselves; their names that spell a brand elsewhere (google.cn,
// googleapis.com) are still scored.
func BenchmarkMatchFull(b *testing.B) {
	var src strings.Builder
	writeWatchRules(&src)
	var allow []string
	for _, br := range brands100() {
		allow = append(allow, br+".com")
	}
	src.WriteString("  - name: lookalikes\n    severity: medium\n    match:\n      lookalike:\n        brands: [" + strings.Join(brands100(), ", ") + "]\n        allow: [" + strings.Join(allow, ", ") + "]\n")
	src.WriteString("  - name: interception\n    severity: critical\n    match: {feed: interception-cas}\n")
	src.WriteString("  - name: distrusted\n    severity: high\n    match: {feed: distrusted-cas}\n")
	src.WriteString("  - name: policy\n    severity: low\n    match: {policy: [max_validity, weak_key, sha1, no_san, ip_san]}\n")
	for i, expr := range celBenchExprs {
		fmt.Fprintf(&src, "  - name: cel-%d\n    severity: low\n    match:\n      cel: '%s'\n", i, strings.ReplaceAll(expr, "'", "''"))
	}
	e, err := Parse("bench.yaml", []byte(src.String()), WithData(Builtin()))
	if err != nil {
		b.Fatal(err)
	}
	certs := corpusCerts(b)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		e.Match(certs[n%len(certs)])
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "certs/s")
}
