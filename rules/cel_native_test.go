package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"

	"github.com/ctwatch/ctwatch/cert"
)

// celNativeCases are expressions of the kinds rule files hold, and whether
// the native evaluator takes them (native) or leaves them to cel-go. Every
// one is held to cel-go's result on every certificate by
// TestCELNativeMatchesCELGo, those that fall back included (they must keep
// working).
func celNativeCases() []struct {
	expr   string
	native bool
} {
	cases := []struct {
		expr   string
		native bool
	}{
		// Strings of a field, and of each name.
		{`cert.dns_names.exists(n, n.endsWith(".google.com"))`, true},
		{`cert.dns_names.exists(n, n.startsWith("www."))`, true},
		{`cert.dns_names.exists(n, n.contains("azure"))`, true},
		{`cert.dns_names.exists(n, n == "www.microsoft.com")`, true},
		{`cert.dns_names.exists(n, "www.microsoft.com" == n)`, true},
		{`cert.dns_names.exists(n, n < "b")`, true},
		{`cert.dns_names.exists(n, n in ["google.com", "microsoft.com", "amazon.com"])`, true},
		{`cert.dns_names.exists(n, n.matches("^[a-z0-9-]+\\.(google|youtube)\\.com$"))`, true},
		{`cert.dns_names.all(n, n.contains("."))`, true},
		{`cert.dns_names.all(n, n.endsWith(".com") || n.endsWith(".net"))`, true},
		{`cert.dns_names.exists(n, n.contains(cert.subject.substring(3)))`, false},
		{`cert.dns_names.exists(n, cert.subject.contains(n))`, true},
		{`cert.dns_names.exists(n, n.size() > 30 && !n.startsWith("*."))`, true},
		{`cert.dns_names.exists(cert, cert == "www.google.com")`, true},
		{`cert.dns_names.exists(n, cert.issuer_c.exists(c, n.endsWith("." + c.lowerAscii())))`, false},
		{`cert.dns_names.exists(n, cert.issuer_c.exists(c, n.upperAscii().endsWith(c)))`, true},
		{`cert.dns_names.all(n, cert.dns_names.exists(m, m == n))`, true},
		{`cert.subject.matches("O=Google")`, true},
		{`matches(cert.issuer, "Let.s Encrypt")`, true},
		{`cert.subject.lowerAscii().contains("microsoft")`, true},
		{`cert.issuer.upperAscii().startsWith("CN=")`, true},
		{`cert.subject < cert.issuer`, true},
		{`"CN=" <= cert.subject && cert.subject >= "C"`, true},
		{`cert.subject.size() > 60`, true},
		{`size(cert.issuer) == 0`, true},
		{`cert.signature_algorithm in ["SHA256-RSA", "ECDSA-SHA256"]`, true},
		{`cert.signature_algorithm in [cert.key_type, "SHA1-RSA"]`, true},
		{`cert.ip_addresses.exists(ip, ip.startsWith("10."))`, true},
		{`cert.emails.exists(e, e.endsWith("@example.com"))`, true},
		// Issuers.
		{`"US" in cert.issuer_c`, true},
		{`cert.issuer_cn.exists(cn, cn in ["R3", "R10", "R11", "E5", "E6"])`, true},
		{`cert.issuer_o.exists(o, o.contains("Google"))`, true},
		{`cert.issuer_ou.all(ou, ou != "")`, true},
		{`cert.issuer_cn[0] == "R3"`, true},
		{`cert.issuer_cn[size(cert.issuer_cn) - 1].startsWith("Microsoft")`, true},
		{`cert.dns_names[40] == "x" || cert.precert`, true},
		{`cert.dns_names[40] == "x" && cert.precert`, true},
		{`!(cert.dns_names[40] == "x")`, true},
		{`cert.dns_names[40] == "x" ? true : cert.precert`, true},
		// Scalars.
		{`cert.key_type == "RSA" && cert.key_size < 4096`, true},
		{`cert.key_type != "RSA" || cert.key_size <= 2048`, true},
		{`!(cert.key_type == "ECDSA") && cert.key_size >= 2048`, true},
		{`cert.validity_days >= 90 && cert.validity_days <= 398`, true},
		{`cert.validity_days > 200 ? cert.precert : !cert.precert`, true},
		{`cert.precert == true`, true},
		{`cert.precert != (cert.key_size > 2048)`, true},
		{`cert.precert < true`, true},
		{`size(cert.dns_names) + size(cert.ip_addresses) > 10`, true},
		{`size(cert.dns_names) - 1 < 0`, true},
		{`cert.key_size - 9223372036854775807 - 10 < 0`, true},
		{`(cert.key_size + 9223372036854775807 > 0) || cert.precert`, true},
		{`(cert.key_size + 9223372036854775807 > 0) && cert.precert`, true},
		{`has(cert.emails) && size(cert.emails) == 0`, true},
		// Times.
		{`cert.not_after > timestamp("2026-01-01T00:00:00Z")`, true},
		{`cert.not_before >= timestamp("2025-01-01T00:00:00Z") && cert.not_before <= timestamp("2025-12-31T23:59:59Z")`, true},
		{`cert.not_after - cert.not_before >= duration("2160h")`, true},
		{`cert.not_after - cert.not_before < duration("48h")`, true},
		{`duration("1h") < cert.not_after - cert.not_before`, true},
		{`cert.not_after - cert.not_before == duration("0s")`, true},
		{`cert.not_before == cert.not_after || cert.not_before > cert.not_after`, true},
		{`cert.not_before == timestamp("0001-01-01T00:00:00Z")`, true},
		// Hashes, compared as hashes.
		{`cert.sha256 == ""`, true},
		{`cert.sha256 != ""`, true},
		{`"" in cert.chain_spki_sha256`, true},
		{`cert.issuer_spki_sha256 == "0000000000000000000000000000000000000000000000000000000000000000"`, true},
		{`cert.issuer_spki_sha256 == "NOT HEX"`, true},
		{`cert.chain_sha256.exists(h, h.startsWith("0"))`, true},
		{`size(cert.sha256) == 64`, true},
		// Left to cel-go.
		{`cert.dns_names.exists_one(n, n == "google.com")`, false},
		{`cert.dns_names.filter(n, n.endsWith(".com")).size() > 3`, false},
		{`cert.dns_names.map(n, n.size()).exists(x, x > 30)`, false},
		{`cert.dns_names.exists(n, n.split(".").size() > 4)`, false},
		{`cert.emails == []`, false},
		{`cert.key_size * 2 > 4000`, false},
		{`double(cert.key_size) > 2047.5`, false},
		{`dyn(cert.key_size) > 100`, false},
		{`cert.not_after > cert.not_before + duration("2160h")`, false},
		{`cert.subject.matches(cert.issuer)`, false},
		{`{"a": 1}.exists(k, k == cert.key_type)`, false},
		{`cert.key_size in [256, 384]`, false},
		{`cert.not_after.getFullYear() > 2030`, false},
	}
	for _, e := range celBenchExprs {
		cases = append(cases, struct {
			expr   string
			native bool
		}{e, true})
	}
	return cases
}

// celNativeCerts is the corpus and certificates made to reach the corners
// of the subset: empty, zero and extreme times (whose difference overflows
// a duration), invalid UTF-8, upper case, hashes that are set and unset.
func celNativeCerts(t testing.TB) []*cert.Cert {
	certs := corpusCerts(t)
	if len(certs) == 0 {
		t.Fatal("empty corpus")
	}
	nb := time.Date(2025, 6, 1, 12, 30, 0, 500, time.UTC)
	certs = append(certs,
		celCert(),
		&cert.Cert{},
		&cert.Cert{
			DNSNames:    []string{"WWW.Google.COM", "\xff\xfe.example", "*.xn--pypal-4ve.com", ""},
			Subject:     "CN=\xffMicrosoft,O=Google LLC",
			Issuer:      "cn=r3,o=Let's Encrypt,C=US",
			IssuerCN:    []string{"R3", "Microsoft Azure RSA TLS Issuing CA 07"},
			IssuerC:     []string{"US", "gb"},
			IssuerOU:    []string{""},
			KeyType:     "RSA",
			KeySize:     math.MaxInt64,
			NotBefore:   time.Time{},
			NotAfter:    time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
			Chain:       []cert.Hash{{}, sha256.Sum256([]byte("root"))},
			ChainSPKI:   []cert.Hash{sha256.Sum256([]byte("key"))},
			Precert:     true,
			SHA256:      sha256.Sum256([]byte("leaf")),
			IPAddresses: []string{"10.0.0.1"},
		},
		&cert.Cert{
			DNSNames:  []string{"a.example"},
			KeySize:   math.MinInt64 + 5,
			NotBefore: nb.Add(2160 * time.Hour),
			NotAfter:  nb,
		},
		&cert.Cert{
			DNSNames:  []string{"b.example"},
			NotBefore: nb,
			NotAfter:  nb.Add(2160*time.Hour + time.Nanosecond),
		},
		&cert.Cert{
			NotBefore: time.Date(-5, 1, 1, 0, 0, 0, 999, time.UTC),
			NotAfter:  time.Date(20000, 1, 1, 0, 0, 0, 1, time.UTC),
		},
	)
	return certs
}

// celGoTri is cel-go's outcome of t on c, as a celTri.
func celGoTri(t *celTest, c *cert.Cert) celTri {
	out, _, err := t.prg.Eval(celActivation{&celBinding{c: c}})
	switch {
	case err != nil:
		return triErr
	case out == types.True:
		return triTrue
	case out == types.False:
		return triFalse
	}
	return triErr
}

// compileCELTest compiles expr the way a rule file's cel matcher is.
func compileCELTest(t testing.TB, expr string) *celTest {
	t.Helper()
	e, err := Parse("test.yaml", []byte(oneRule("cel: '"+strings.ReplaceAll(expr, "'", "''")+"'")))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	ct, ok := e.rules[0].root.check.(*celTest)
	if !ok {
		t.Fatalf("%s: compiled to %T", expr, e.rules[0].root.check)
	}
	return ct
}

// TestCELNativeMatchesCELGo holds the native evaluator to cel-go: on every
// certificate of the corpus and the corner cases, each expression it takes
// gives the same outcome (true, false or an error), and Match reports the
// rule exactly when cel-go's outcome is true.
func TestCELNativeMatchesCELGo(t *testing.T) {
	certs := celNativeCerts(t)
	// A hash that some certificates have, to compare hashes that match.
	known := hex.EncodeToString(certs[0].IssuerSPKIHash[:])
	cases := celNativeCases()
	cases = append(cases,
		struct {
			expr   string
			native bool
		}{`cert.issuer_spki_sha256 == "` + known + `"`, true},
		struct {
			expr   string
			native bool
		}{`"` + known + `" in cert.chain_spki_sha256`, true},
		struct {
			expr   string
			native bool
		}{`cert.issuer_spki_sha256 == "` + strings.ToUpper(known) + `"`, true},
	)
	for _, tt := range cases {
		t.Run(tt.expr, func(t *testing.T) {
			ct := compileCELTest(t, tt.expr)
			if (ct.nat != nil) != tt.native {
				t.Fatalf("native = %v, want %v", ct.nat != nil, tt.native)
			}
			seen := map[celTri]int{}
			for i, c := range certs {
				want := celGoTri(ct, c)
				seen[want]++
				if ct.nat != nil {
					if got := ct.nat.eval(c); got != want {
						t.Errorf("certificate %d: native %v, cel-go %v", i, got, want)
					}
				}
				if _, got := ct.match(c); got != (want == triTrue) {
					t.Errorf("certificate %d: match %v, cel-go %v", i, got, want)
				}
			}
			t.Logf("cel-go outcomes (false, true, error): %d %d %d", seen[triFalse], seen[triTrue], seen[triErr])
		})
	}
}

// TestCELNativeNoAlloc pins the point of the native evaluator: evaluating
// the benchmark's rules allocates nothing (only the reason of a rule that
// holds does).
func TestCELNativeNoAlloc(t *testing.T) {
	c := celNativeCerts(t)[0]
	for _, expr := range celBenchExprs {
		ct := compileCELTest(t, expr)
		if n := testing.AllocsPerRun(5, func() { ct.nat.eval(c) }); n != 0 {
			t.Errorf("%s: %v allocations per evaluation", expr, n)
		}
	}
}

// FuzzCELNative compares the native evaluator with cel-go on arbitrary
// expressions (those that compile to a bool and that it takes) over a
// certificate made of arbitrary values.
func FuzzCELNative(f *testing.F) {
	for _, tt := range celNativeCases() {
		f.Add(tt.expr, "www.google.com", "CN=x,O=Google", int64(2048), int64(1748779200), int64(1756555200), true)
	}
	f.Add(`cert.not_after - cert.not_before > duration("1h")`, "", "", int64(0), int64(-62135596800), int64(253402300799), false)
	f.Add(`cert.dns_names.exists(n, n.lowerAscii() == "a")`, "A\xff", "\xc3", int64(-1), int64(0), int64(0), false)
	env, err := newCELEnv()
	if err != nil {
		f.Fatal(err)
	}
	fields := celFields()
	f.Fuzz(func(t *testing.T, expr, name, subject string, keySize, notBefore, notAfter int64, precert bool) {
		if len(expr) > maxCELLen {
			return
		}
		ast, iss := env.Compile(expr)
		if iss != nil && iss.Err() != nil || !ast.OutputType().IsExactType(types.BoolType) {
			return
		}
		nat := compileNative(ast, fields)
		if nat == nil {
			return
		}
		prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			return
		}
		c := &cert.Cert{
			DNSNames:  []string{name, strings.ToUpper(name), name + ".example"},
			Subject:   subject,
			Issuer:    name,
			IssuerCN:  []string{subject},
			KeyType:   subject,
			KeySize:   int(keySize),
			NotBefore: time.Unix(notBefore, keySize%1e9),
			NotAfter:  time.Unix(notAfter, 0),
			Precert:   precert,
		}
		ct := &celTest{src: expr, prg: prg}
		if got, want := nat.eval(c), celGoTri(ct, c); got != want {
			t.Errorf("%s: native %v, cel-go %v", expr, got, want)
		}
	})
}
