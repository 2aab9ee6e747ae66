package rules

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/cert"
)

// fixtureData serves the feeds and issuer sets in testdata/data, in the
// format package configs uses. Files are read when the test starts.
type fixtureData struct {
	feeds, sets map[string][]byte
}

func loadFixtures(t testing.TB) *fixtureData {
	t.Helper()
	d := &fixtureData{feeds: map[string][]byte{}, sets: map[string][]byte{}}
	for dir, m := range map[string]map[string][]byte{"feeds": d.feeds, "issuers": d.sets} {
		files, err := filepath.Glob(filepath.Join("testdata/data", dir, "*.yaml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no fixtures in %s: %v", dir, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m[strings.TrimSuffix(filepath.Base(f), ".yaml")] = b
		}
	}
	return d
}

func (d *fixtureData) Feed(name string) ([]byte, bool)       { b, ok := d.feeds[name]; return b, ok }
func (d *fixtureData) IssuerSet(owner string) ([]byte, bool) { b, ok := d.sets[owner]; return b, ok }
func (d *fixtureData) FeedNames() []string                   { return sortedKeys(d.feeds) }
func (d *fixtureData) IssuerOwners() []string                { return sortedKeys(d.sets) }

func sortedKeys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func mustHash(t testing.TB, s string) cert.Hash {
	t.Helper()
	h, err := parseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Real hashes from the fixtures (../shared/data INDEX files).
const (
	qaznetCert  = "00309c736dd661da6f1eb24173aa849944c168a43a15bffd192eecfdb6f8dbd2"
	qaznetSPKI  = "b5ba8dd7f89564c2889d3d6453c84998c77824919b64ea0835aa62986591be50"
	iscaSPKI    = "8928c59398b0f171c0f96fdae6ab8dd0f48ee06d174da10c404ac00143c7a749"
	diginotar   = "0d136e439f0ab6e97f3a02a540da9f0641aa554e1d66ea51ae2920d51b2f7217"
	leE5SPKI    = "3586d4ecf070578cbd27aedce20b964e48bc149faeb9dad72f46b857869172b8"
	leE5Cert    = "e788d14b0436b5120bbee3f15c15badf08c1407fe72568a4f16f9151c380e1e3"
	qaznetIncid = "2019, Kazakhstan (State Technical Service): root users were told to install for TLS interception; blocked by Chrome/Firefox/Safari Aug 2019"
)

// matchRule compiles a one-rule file with the fixtures and returns the
// reason of rule "r" for c, or "" when it does not match.
func matchRule(t *testing.T, body string, c *cert.Cert) string {
	t.Helper()
	e, err := Parse("test.yaml", []byte(oneRule(body)), WithData(loadFixtures(t)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	got := e.Match(c)
	switch len(got) {
	case 0:
		return ""
	case 1:
		if got[0].Reason == "" {
			t.Fatal("match without reason")
		}
		return got[0].Reason
	}
	t.Fatalf("Match = %+v", got)
	return ""
}

type matcherCase struct {
	name   string
	body   string
	cert   *cert.Cert
	reason string // "" means no match
}

func runMatcherCases(t *testing.T, tests []matcherCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchRule(t, tt.body, tt.cert); got != tt.reason {
				t.Errorf("reason = %q\nwant     %q", got, tt.reason)
			}
		})
	}
}

func TestMatchIssuer(t *testing.T) {
	h1 := sha256.Sum256([]byte("one"))
	h2 := sha256.Sum256([]byte("two"))
	h3 := sha256.Sum256([]byte("three"))
	c := &cert.Cert{
		Issuer:         "CN=Example Issuing CA 7,OU=PKI,O=Example Corp,C=DE",
		IssuerCN:       []string{"Example Issuing CA 7"},
		IssuerO:        []string{"Example Corp"},
		IssuerOU:       []string{"PKI"},
		IssuerC:        []string{"DE"},
		IssuerSPKIHash: h1,
		Chain:          []cert.Hash{h2, h3},
		ChainSPKI:      []cert.Hash{h1, h3},
	}
	hx := func(h cert.Hash) string { return hex.EncodeToString(h[:]) }
	runMatcherCases(t, []matcherCase{
		{"cn exact", `issuer: {cn: "Example Issuing CA 7"}`, c, `issuer CN is "Example Issuing CA 7"`},
		{"cn exact ignores case", `issuer: {cn: "example issuing ca 7"}`, c, `issuer CN is "Example Issuing CA 7"`},
		{"cn exact is whole value", `issuer: {cn: "Example Issuing CA"}`, c, ""},
		{"cn regex", `issuer: {cn: "/^Example Issuing CA \\d+$/"}`, c, `issuer CN "Example Issuing CA 7" matches /^Example Issuing CA \d+$/`},
		{"cn regex miss", `issuer: {cn: "/^Other/"}`, c, ""},
		{"o", `issuer: {o: Example Corp}`, c, `issuer O is "Example Corp"`},
		{"ou", `issuer: {ou: "/pki/"}`, c, ""},
		{"ou regex with flag", `issuer: {ou: "/(?i)pki/"}`, c, `issuer OU "PKI" matches /(?i)pki/`},
		{"c", `issuer: {c: DE}`, c, `issuer C is "DE"`},
		{"keys are ANDed", `issuer: {o: Example Corp, c: FR}`, c, ""},
		{"keys are ANDed: both hold", `issuer: {o: Example Corp, c: DE}`, c, `issuer O is "Example Corp" and issuer C is "DE"`},
		{"spki", "issuer: {spki_sha256: [" + hx(h1) + "]}", c, "issuer SPKI SHA-256 " + hx(h1) + " is listed in spki_sha256"},
		{"spki with colons and upper case", "issuer: {spki_sha256: [\"" + strings.ToUpper(colons(hx(h1))) + "\"]}", c, "issuer SPKI SHA-256 " + hx(h1) + " is listed in spki_sha256"},
		{"spki is not a chain cert", "issuer: {spki_sha256: [" + hx(h3) + "]}", c, ""},
		{"chain cert", "issuer: {chain_sha256: [" + hx(h3) + "]}", c, "chain certificate 2 SHA-256 " + hx(h3) + " is listed in chain_sha256"},
		{"chain cert miss", "issuer: {chain_sha256: [" + hx(h1) + "]}", c, ""},
		{"chain spki", "issuer: {chain_spki_sha256: [" + hx(h3) + "]}", c, "SPKI SHA-256 " + hx(h3) + " of chain certificate 2 is listed in chain_spki_sha256"},
		{"chain spki includes issuer key", "issuer: {chain_spki_sha256: [" + hx(h1) + "]}", c, "issuer SPKI SHA-256 " + hx(h1) + " is listed in chain_spki_sha256"},
		{"not issuer", "issuer: {c: DE}\nnot: {issuer: {o: Other}}", c, `issuer C is "DE" and not issuer O is "Other"`},
		{"empty cert", `issuer: {cn: "/./"}`, &cert.Cert{}, ""},
	})
}

func colons(h string) string {
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func TestMatchIssuerCountry(t *testing.T) {
	runMatcherCases(t, []matcherCase{
		{"leaf issuer", "issuer_country: [KZ, RU]", &cert.Cert{IssuerC: []string{"RU"}}, "issuer country C=RU is watched"},
		{"lower-case list", "issuer_country: [kz]", &cert.Cert{IssuerC: []string{"KZ"}}, "issuer country C=KZ is watched"},
		{"chain subject", "issuer_country: [KZ]", &cert.Cert{
			IssuerC:       []string{"US"},
			ChainSubjects: []string{"CN=Intermediate,O=X,C=US", "CN=Qaznet Trust Network,C=KZ"},
		}, `chain certificate 2 ("CN=Qaznet Trust Network,C=KZ") has country C=KZ, which is watched`},
		{"other country", "issuer_country: [KZ]", &cert.Cert{IssuerC: []string{"US"}, ChainSubjects: []string{"CN=X,O=KZ Corp,C=US"}}, ""},
		{"no country", "issuer_country: [KZ]", &cert.Cert{}, ""},
	})
}

func TestMatchFeed(t *testing.T) {
	other := sha256.Sum256([]byte("other"))
	runMatcherCases(t, []matcherCase{
		{"chain certificate", "feed: interception-cas", &cert.Cert{
			Issuer: "CN=Some Sub CA", Chain: []cert.Hash{other, mustHash(t, qaznetCert)},
		}, `chain certificate 2 (SHA-256 ` + qaznetCert + `) is interception-cas certificate "CN=Qaznet Trust Network,C=KZ" (matched by certificate; incident: ` + qaznetIncid + `)`},
		{"the certificate itself", "feed: interception-cas", &cert.Cert{SHA256: mustHash(t, qaznetCert)},
			`the certificate itself (SHA-256 ` + qaznetCert + `) is interception-cas certificate "CN=Qaznet Trust Network,C=KZ" (matched by certificate; incident: ` + qaznetIncid + `)`},
		{"issuer key", "feed: interception-cas", &cert.Cert{Issuer: "CN=Renamed", IssuerSPKIHash: mustHash(t, qaznetSPKI)},
			`the issuer key (SPKI SHA-256 ` + qaznetSPKI + `) is interception-cas certificate "CN=Qaznet Trust Network,C=KZ" (matched by key; incident: ` + qaznetIncid + `)`},
		{"chain key", "feed: interception-cas", &cert.Cert{Chain: []cert.Hash{other, other}, ChainSPKI: []cert.Hash{other, mustHash(t, iscaSPKI)}},
			`the key of chain certificate 2 (SPKI SHA-256 ` + iscaSPKI + `) is interception-cas certificate "C=KZ,O=ISCA,CN=Information Security Certification Authority" (matched by key; incident: 2024, Kazakhstan ISCA root (notBefore 2020-02-28 06:16:40, to 2050) used in Feb 2024 MITM (Mozilla bug 1864724, crt.sh 12281942153); blocked by Chromium)`},
		{"issuer name in the other order", "feed: interception-cas", &cert.Cert{Issuer: "CN=Information Security Certification Authority,O=ISCA,C=KZ", IssuerSPKIHash: other},
			`issuer DN "CN=Information Security Certification Authority,O=ISCA,C=KZ" has the name of interception-cas certificate "C=KZ,O=ISCA,CN=Information Security Certification Authority" (matched by name: the same name, possibly under a new key; incident: 2024, Kazakhstan ISCA root (notBefore 2020-02-28 06:16:40, to 2050) used in Feb 2024 MITM (Mozilla bug 1864724, crt.sh 12281942153); blocked by Chromium)`},
		{"chain subject name", "feed: interception-cas", &cert.Cert{Issuer: "CN=Sub", ChainSubjects: []string{"CN=Sub", "cn=qaznet trust network, c=kz"}},
			`chain certificate 2 subject DN "cn=qaznet trust network, c=kz" has the name of interception-cas certificate "CN=Qaznet Trust Network,C=KZ" (matched by name: the same name, possibly under a new key; incident: ` + qaznetIncid + `)`},
		{"email in crypto/x509 form", "feed: distrusted-cas", &cert.Cert{Issuer: "CN=DigiNotar Root CA,O=DigiNotar,C=NL,1.2.840.113549.1.9.1=#0c11696e666f40646967696e6f7461722e6e6c"},
			`issuer DN "CN=DigiNotar Root CA,O=DigiNotar,C=NL,1.2.840.113549.1.9.1=#0c11696e666f40646967696e6f7461722e6e6c" has the name of distrusted-cas certificate "emailAddress=info@diginotar.nl,CN=DigiNotar Root CA,O=DigiNotar,C=NL" (matched by name: the same name, possibly under a new key; incident: 2011, Netherlands: DigiNotar Root CA; CA fully compromised, rogue *.google.com used against users in Iran)`},
		{"same CN, other attributes", "feed: interception-cas", &cert.Cert{Issuer: "CN=Qaznet Trust Network,C=US"}, ""},
		{"extra attribute", "feed: interception-cas", &cert.Cert{Issuer: "CN=Qaznet Trust Network,O=X,C=KZ"}, ""},
		{"other feed", "feed: distrusted-cas", &cert.Cert{Chain: []cert.Hash{mustHash(t, qaznetCert)}}, ""},
		{"clean", "feed: interception-cas", &cert.Cert{Issuer: "CN=E5,O=Let's Encrypt,C=US", IssuerSPKIHash: mustHash(t, leE5SPKI), Chain: []cert.Hash{mustHash(t, leE5Cert)}}, ""},
		{"both feeds", "any: [{feed: interception-cas}, {feed: distrusted-cas}]", &cert.Cert{Chain: []cert.Hash{mustHash(t, diginotar)}},
			`chain certificate 1 (SHA-256 ` + diginotar + `) is distrusted-cas certificate "emailAddress=info@diginotar.nl,CN=DigiNotar Root CA,O=DigiNotar,C=NL" (matched by certificate; incident: 2011, Netherlands: DigiNotar Root CA; CA fully compromised, rogue *.google.com used against users in Iran)`},
	})
}

// genCA makes a self-signed CA certificate with subject name.
func genCA(t *testing.T, name pkix.Name) (*x509.Certificate, []byte, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: name,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, der, key
}

// genLeaf makes a leaf certificate from tmpl signed by ca, with key pub
// (a fresh P-256 key when nil), and decodes it with package cert with chain.
func genLeaf(t *testing.T, tmpl *x509.Certificate, pub crypto.PublicKey, ca *x509.Certificate, caKey crypto.Signer, chain [][]byte) *cert.Cert {
	t.Helper()
	if pub == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub = k.Public()
	}
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(2)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cert.FromX509(der, chain)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFeedQaznetNewKey is the repeat attempt the feed exists for: a CA
// named exactly like the 2019 Kazakh interception root, with a new key.
func TestFeedQaznetNewKey(t *testing.T) {
	ca, caDER, caKey := genCA(t, pkix.Name{CommonName: "Qaznet Trust Network", Country: []string{"KZ"}})
	tmpl := &x509.Certificate{DNSNames: []string{"www.google.com"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	want := `matched by name: the same name, possibly under a new key; incident: ` + qaznetIncid + `)`
	for _, chain := range [][][]byte{nil, {caDER}} {
		c := genLeaf(t, tmpl, nil, ca, caKey, chain)
		got := matchRule(t, "feed: interception-cas", c)
		if !strings.HasPrefix(got, `issuer DN "CN=Qaznet Trust Network,C=KZ" has the name of interception-cas certificate "CN=Qaznet Trust Network,C=KZ"`) ||
			!strings.HasSuffix(got, want) {
			t.Errorf("chain of %d: reason = %q", len(chain), got)
		}
	}
	// The same certificate under another name does not hit.
	ca2, _, caKey2 := genCA(t, pkix.Name{CommonName: "Qaznet Trust Network 2", Country: []string{"KZ"}})
	if got := matchRule(t, "feed: interception-cas", genLeaf(t, tmpl, nil, ca2, caKey2, nil)); got != "" {
		t.Errorf("renamed CA: reason = %q, want no match", got)
	}
}

func TestAllowedIssuers(t *testing.T) {
	le := mustHash(t, leE5SPKI)
	evil := sha256.Sum256([]byte("evil"))
	const rule = "domains: [.bank.example]\nallowed_issuers: {owners: [lets-encrypt, digicert]}"
	ours := []string{"www.bank.example"}
	runMatcherCases(t, []matcherCase{
		{"allowed by owner key", rule, &cert.Cert{DNSNames: ours, Issuer: "CN=E5,O=Let's Encrypt,C=US", IssuerSPKIHash: le}, ""},
		{"allowed by owner certificate", rule, &cert.Cert{DNSNames: ours, Issuer: "CN=E5", Chain: []cert.Hash{mustHash(t, leE5Cert)}}, ""},
		{"not allowed", rule, &cert.Cert{DNSNames: ours, Issuer: "CN=Evil CA,C=XX", IssuerSPKIHash: evil},
			`dns name "www.bank.example" matches watched ".bank.example" and issuer "CN=Evil CA,C=XX" (SPKI SHA-256 ` + hex.EncodeToString(evil[:]) + `) is not an allowed issuer (allowed: lets-encrypt, digicert)`},
		{"same name, other key is not allowed", rule, &cert.Cert{DNSNames: ours, Issuer: "CN=E5,O=Let's Encrypt,C=US", IssuerSPKIHash: evil},
			`dns name "www.bank.example" matches watched ".bank.example" and issuer "CN=E5,O=Let's Encrypt,C=US" (SPKI SHA-256 ` + hex.EncodeToString(evil[:]) + `) is not an allowed issuer (allowed: lets-encrypt, digicert)`},
		{"chain only, unknown", rule, &cert.Cert{DNSNames: ours, Issuer: "CN=X", Chain: []cert.Hash{evil}},
			`dns name "www.bank.example" matches watched ".bank.example" and issuer "CN=X" (certificate SHA-256 ` + hex.EncodeToString(evil[:]) + `) is not an allowed issuer (allowed: lets-encrypt, digicert)`},
		{"lone certificate judged by name", rule, &cert.Cert{DNSNames: ours, Issuer: "CN=E5,O=Let's Encrypt,C=US"}, ""},
		{"lone certificate, other name", rule, &cert.Cert{DNSNames: ours, Issuer: "CN=Evil CA"},
			`dns name "www.bank.example" matches watched ".bank.example" and issuer "CN=Evil CA" is not an allowed issuer (allowed: lets-encrypt, digicert; no issuer key or chain came with the certificate, so it was judged by name)`},
		{"not our name", rule, &cert.Cert{DNSNames: []string{"www.other.example"}, Issuer: "CN=Evil CA", IssuerSPKIHash: evil}, ""},
		{"by listed hashes", "domains: [bank.example]\nallowed_issuers: {spki_sha256: [" + hex.EncodeToString(evil[:]) + "], cert_sha256: [" + leE5Cert + "]}",
			&cert.Cert{DNSNames: []string{"bank.example"}, IssuerSPKIHash: evil}, ""},
		{"by listed hashes: other", "domains: [bank.example]\nallowed_issuers: {spki_sha256: [" + hex.EncodeToString(evil[:]) + "], cert_sha256: [" + leE5Cert + "]}",
			&cert.Cert{DNSNames: []string{"bank.example"}, Issuer: "CN=E5", IssuerSPKIHash: le},
			`dns name "bank.example" matches watched "bank.example" and issuer "CN=E5" (SPKI SHA-256 ` + leE5SPKI + `) is not an allowed issuer (allowed: 1 SPKI hash, 1 certificate hash)`},
	})
}

func TestAllowedIssuersIsAnchored(t *testing.T) {
	e, err := Parse("t.yaml", []byte(oneRule("domains: [bank.example]\nallowed_issuers: {owners: [lets-encrypt]}")), WithData(loadFixtures(t)))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.always) != 0 {
		t.Errorf("a domains + allowed_issuers rule is evaluated for every certificate: always = %v", e.always)
	}
	f, err := Parse("t.yaml", []byte(oneRule("feed: interception-cas")), WithData(loadFixtures(t)))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.always) != 1 {
		t.Errorf("a feed rule is not evaluated for every certificate: always = %v", f.always)
	}
}

func TestPolicy(t *testing.T) {
	ca, _, caKey := genCA(t, pkix.Name{CommonName: "Test CA"})
	day := 24 * time.Hour
	before := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	after := time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(nb time.Time, validity time.Duration, pub crypto.PublicKey, dns []string, ips []net.IP) *cert.Cert {
		return genLeaf(t, &x509.Certificate{NotBefore: nb, NotAfter: nb.Add(validity), DNSNames: dns, IPAddresses: ips}, pub, ca, caKey, nil)
	}
	www := []string{"www.example.com"}
	// A period of exactly N days counts N days and one second (both ends
	// count), so N days minus one second is the longest allowed.
	const all = "policy: [max_validity, weak_key, sha1, no_san, ip_san]"
	runMatcherCases(t, []matcherCase{
		{"398 days allowed before 2026-03-15", all, leaf(before, 398*day-time.Second, nil, www, nil), ""},
		{"399 days before 2026-03-15", all, leaf(before, 399*day-time.Second, nil, www, nil),
			"policy max_validity: validity of 399.0 days exceeds the 398-day maximum for certificates issued before 2026-03-15"},
		{"200 days allowed from 2026-03-15", all, leaf(after, 200*day-time.Second, nil, www, nil), ""},
		{"201 days from 2026-03-15", all, leaf(after, 201*day-time.Second, nil, www, nil),
			"policy max_validity: validity of 201.0 days exceeds the 200-day maximum for certificates issued on or after 2026-03-15"},
		{"the day before the change", all, leaf(after.Add(-time.Second), 201*day-time.Second, nil, www, nil), ""},
		{"RSA 1024", all, leaf(before, 90*day, rsa1024.Public(), www, nil), "policy weak_key: RSA key of 1024 bits (at least 2048 required)"},
		{"EC P-224", all, leaf(before, 90*day, p224.Public(), www, nil), "policy weak_key: ECDSA key of 224 bits (at least 256 required)"},
		{"IP SAN", all, leaf(before, 90*day, nil, nil, []net.IP{net.ParseIP("192.0.2.7")}), "policy ip_san: IP address SAN 192.0.2.7"},
		{"no SAN", all, leaf(before, 90*day, nil, nil, nil), "policy no_san: no DNS name or IP address"},
		{"subject CN but no SAN", "policy: [no_san]", genLeaf(t, &x509.Certificate{NotBefore: before, NotAfter: before.Add(90 * day), Subject: pkix.Name{CommonName: "www.example.com"}}, nil, ca, caKey, nil),
			"policy no_san: no DNS name or IP address in the subjectAltName (only the subject CN www.example.com)"},
		{"SAN and the same subject CN", "policy: [no_san]", genLeaf(t, &x509.Certificate{NotBefore: before, NotAfter: before.Add(90 * day), Subject: pkix.Name{CommonName: "www.example.com"}, DNSNames: www}, nil, ca, caKey, nil), ""},
		{"IP SAN only", "policy: [no_san]", leaf(before, 90*day, nil, nil, []net.IP{net.ParseIP("192.0.2.7")}), ""},
		{"unlisted check does not fire", "policy: [weak_key]", leaf(before, 90*day, nil, nil, nil), ""},
		{"several failures", all, leaf(before, 800*day, rsa1024.Public(), nil, []net.IP{net.ParseIP("2001:db8::1")}),
			"policy max_validity: validity of 800.0 days exceeds the 398-day maximum for certificates issued before 2026-03-15; policy weak_key: RSA key of 1024 bits (at least 2048 required); policy ip_san: IP address SAN 2001:db8::1"},
		// crypto/x509 no longer signs with SHA-1, so the decoded form is given.
		{"SHA-1", "policy: [sha1]", &cert.Cert{SignatureAlgorithm: "SHA1-RSA"}, "policy sha1: signature algorithm SHA1-RSA uses SHA-1"},
		{"ECDSA SHA-1", "policy: [sha1]", &cert.Cert{SignatureAlgorithm: "ECDSA-SHA1"}, "policy sha1: signature algorithm ECDSA-SHA1 uses SHA-1"},
		{"SHA-256", "policy: [sha1]", &cert.Cert{SignatureAlgorithm: "SHA256-RSA"}, ""},
		{"fine", all, leaf(before, 90*day, nil, www, nil), ""},
	})
}

// TestParseMatcherProblems checks file:line errors of the new matchers.
func TestParseMatcherProblems(t *testing.T) {
	tests := []struct {
		name string
		body string // under match:, which is on line 4; the body starts on line 5
		want []Problem
	}{
		{"issuer not a mapping", "issuer: lets-encrypt", []Problem{{Line: 5, Msg: "issuer must be a mapping"}}},
		{"issuer empty", "issuer: {}", []Problem{{Line: 5, Msg: "issuer is empty: it needs at least one of cn, o, ou, c, spki_sha256, chain_sha256, chain_spki_sha256"}}},
		{"issuer unknown key", "issuer:\n  cn: x\n  serial: 1", []Problem{{Line: 7, Msg: `unknown key "serial" in issuer (want cn, o, ou, c, spki_sha256, chain_sha256, chain_spki_sha256)`}}},
		{"issuer bad regex", "issuer:\n  o: \"/(/\"", []Problem{{Line: 6, Msg: "issuer o: invalid regular expression /(/: error parsing regexp: missing closing ): `(`"}}},
		{"issuer empty cn", "issuer: {cn: ''}", []Problem{{Line: 5, Msg: "issuer cn is empty"}}},
		{"issuer cn list", "issuer: {cn: [a]}", []Problem{{Line: 5, Msg: "issuer cn must be a string"}}},
		{"issuer bad hash", "issuer:\n  spki_sha256:\n    - abcd\n    - " + strings.Repeat("z", 64), []Problem{
			{Line: 7, Msg: `spki_sha256: "abcd" is not a SHA-256 (want 64 hex digits)`},
			{Line: 8, Msg: `spki_sha256: "` + strings.Repeat("z", 64) + `" is not a SHA-256 (want 64 hex digits)`},
		}},
		{"issuer empty chain list", "issuer: {chain_sha256: []}", []Problem{{Line: 5, Msg: "chain_sha256 list is empty"}}},
		{"country bad", "issuer_country:\n  - KZ\n  - Kazakhstan\n  - 'K1'", []Problem{
			{Line: 7, Msg: `invalid country code "Kazakhstan" (want two letters, as in KZ)`},
			{Line: 8, Msg: `invalid country code "K1" (want two letters, as in KZ)`},
		}},
		{"country not a list", "issuer_country: KZ", []Problem{{Line: 5, Msg: "issuer_country must be a list"}}},
		{"country empty", "issuer_country: []", []Problem{{Line: 5, Msg: "issuer_country list is empty"}}},
		{"feed unknown", "feed: interception", []Problem{{Line: 5, Msg: `unknown feed "interception" (known feeds: distrusted-cas, interception-cas)`}}},
		{"feed list", "feed: [interception-cas]", []Problem{{Line: 5, Msg: "feed must be a string"}}},
		{"feed empty", "feed: ''", []Problem{{Line: 5, Msg: "feed is empty: name a feed"}}},
		{"allowed unknown owner", "allowed_issuers:\n  owners: [lets-encrypt, letsencrypt]", []Problem{
			{Line: 6, Msg: `unknown issuer owner "letsencrypt" (known owners: digicert, lets-encrypt)`},
		}},
		{"allowed empty", "allowed_issuers: {}", []Problem{{Line: 5, Msg: "allowed_issuers is empty: it needs owners, spki_sha256 or cert_sha256"}}},
		{"allowed list", "allowed_issuers: [lets-encrypt]", []Problem{{Line: 5, Msg: "allowed_issuers must be a mapping"}}},
		{"allowed unknown key", "allowed_issuers:\n  owner: [lets-encrypt]", []Problem{{Line: 6, Msg: `unknown key "owner" in allowed_issuers (want owners, spki_sha256, cert_sha256)`}}},
		{"allowed bad hash", "allowed_issuers:\n  cert_sha256: [xyz]", []Problem{{Line: 6, Msg: `cert_sha256: "xyz" is not a SHA-256 (want 64 hex digits)`}}},
		{"allowed empty owners", "allowed_issuers: {owners: []}", []Problem{{Line: 5, Msg: "owners list is empty"}}},
		{"policy unknown", "policy:\n  - weak_key\n  - sha256", []Problem{{Line: 7, Msg: `unknown policy check "sha256" (supported: max_validity, weak_key, sha1, no_san, ip_san)`}}},
		{"policy not a list", "policy: weak_key", []Problem{{Line: 5, Msg: "policy must be a list"}}},
		{"policy empty", "policy: []", []Problem{{Line: 5, Msg: "policy list is empty"}}},
		{"lookalike", "lookalike: {brands: []}", []Problem{{Line: 5, Msg: "brands list is empty"}}},
	}
	data := loadFixtures(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse("f.yaml", []byte(oneRule(tt.body)), WithData(data))
			if e != nil {
				t.Fatal("Parse returned an engine")
			}
			le, ok := err.(*LoadError)
			if !ok {
				t.Fatalf("error %v is %T", err, err)
			}
			want := slices.Clone(tt.want)
			for i := range want {
				want[i].File = "f.yaml"
			}
			if !slices.Equal(le.Problems, want) {
				t.Errorf("Problems:\n%s\nwant:\n%s", le.Error(), (&LoadError{want}).Error())
			}
		})
	}
}

func TestParseWithoutData(t *testing.T) {
	_, err := Parse("f.yaml", []byte(oneRule("feed: interception-cas\nallowed_issuers: {owners: [lets-encrypt]}")))
	want := "f.yaml:5: unknown feed \"interception-cas\" (no feeds are available)\n" +
		"f.yaml:6: unknown issuer owner \"lets-encrypt\" (no owners are available)"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
}

func TestBrokenData(t *testing.T) {
	bad := &fixtureData{
		feeds: map[string][]byte{"f": []byte("certificates:\n  - subject: CN=x\n    cert_sha256: nothex\n")},
		sets:  map[string][]byte{"o": []byte("issuers: [")},
	}
	_, err := Parse("f.yaml", []byte(oneRule("feed: f\nallowed_issuers: {owners: [o]}")), WithData(bad))
	if err == nil || !strings.Contains(err.Error(), `f.yaml:5: built-in feed "f" is invalid: certificate 1 (): cert_sha256: "nothex" is not a SHA-256`) ||
		!strings.Contains(err.Error(), `f.yaml:6: built-in issuer set "o" is invalid: parse:`) {
		t.Errorf("error = %v", err)
	}
}

func TestCanonicalDN(t *testing.T) {
	tests := []struct {
		a, b  string
		equal bool
	}{
		{"CN=Qaznet Trust Network,C=KZ", "C=KZ,CN=Qaznet Trust Network", true},
		{"CN=Qaznet Trust Network,C=KZ", "cn=QAZNET TRUST NETWORK, c=kz", true},
		{"CN=Superfish\\, Inc.,O=Superfish\\, Inc.,L=SF,ST=CA,C=US", "CN=Superfish\\2C Inc.,C=US,ST=CA,L=SF,O=Superfish\\, Inc.", true},
		{"emailAddress=info@diginotar.nl,CN=DigiNotar Root CA", "CN=DigiNotar Root CA,1.2.840.113549.1.9.1=#0c11696e666f40646967696e6f7461722e6e6c", true},
		{"houseIdentifier=A-Block\\, CGO Complex,CN=NIC CA 2011", "CN=NIC CA 2011,2.5.4.51=#1314412d426c6f636b2c2043474f20436f6d706c6578", true},
		{"CN=A,O=B", "CN=A,O=B,O=B", false},
		{"CN=A", "O=A", false},
		{"CN=A,C=KZ", "CN=A+C=KZ", true},
		{"", "", true},
		{"garbage\\", "=,+;\\", false},
	}
	for _, tt := range tests {
		ca, cb := canonicalDN(tt.a), canonicalDN(tt.b)
		if (ca == cb) != tt.equal {
			t.Errorf("canonicalDN(%q) = %q, canonicalDN(%q) = %q; equal want %v", tt.a, ca, tt.b, cb, tt.equal)
		}
		if tt.equal && cnKey(tt.a) != cnKey(tt.b) {
			t.Errorf("cnKey differs for equal names %q and %q", tt.a, tt.b)
		}
	}
}
