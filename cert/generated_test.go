package cert

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	ctx509 "github.com/google/certificate-transparency-go/x509"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The validity of generated leaf certificates.
func testNotBefore() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }
func testNotAfter() time.Time  { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC) }

// leafTemplate is a typical server certificate template.
func leafTemplate(names ...string) *x509.Certificate {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(424242),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    testNotBefore(),
		NotAfter:     testNotAfter(),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	return tmpl
}

func hostNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("host-%04d.example.com", i)
	}
	return names
}

// TestTBSHashPairs issues, from the same template, a precertificate (with the
// poison), a final certificate (with an SCT list) and a plain certificate
// (with neither). The TBS hash of the first two must be the hash of the
// plain certificate's TBS, which crypto/x509 encoded on its own.
func TestTBSHashPairs(t *testing.T) {
	ca := newCA(t, "Test Issuing CA", nil, false)
	other := pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, 1}, Value: []byte{0x04, 0x00}}
	tests := []struct {
		name   string
		tmpl   *x509.Certificate
		after  []pkix.Extension // extensions placed after the CT one
		lone   bool             // self-signed without any standard extension
		minTBS int
	}{
		{name: "standard extensions", tmpl: leafTemplate("www.example.com", "example.com")},
		{name: "CT extension between others", tmpl: leafTemplate("www.example.com"), after: []pkix.Extension{other}},
		{name: "two-octet lengths", tmpl: leafTemplate(hostNames(300)...), minTBS: 1 << 8},
		{name: "three-octet lengths", tmpl: leafTemplate(hostNames(3500)...), minTBS: 1 << 16},
		{name: "no extension left", lone: true, tmpl: &x509.Certificate{
			SerialNumber: big.NewInt(7),
			Subject:      pkix.Name{Organization: []string{"No Extensions Ltd"}},
			NotBefore:    testNotBefore(),
			NotAfter:     testNotAfter(),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := newKey(t)
			build := func(ct ...pkix.Extension) []byte {
				tmpl := withExtensions(tt.tmpl, append(ct, tt.after...)...)
				if tt.lone {
					return selfSign(t, tmpl, key)
				}
				return issue(t, tmpl, key.Public(), ca)
			}
			precert, final, plain := build(poisonExt()), build(sctListExt()), stdParse(t, build())
			if tt.lone && len(plain.Extensions) != 0 {
				t.Fatalf("test premise: plain certificate has %d extensions", len(plain.Extensions))
			}
			if len(plain.RawTBSCertificate) < tt.minTBS {
				t.Fatalf("test premise: TBS is %d bytes, want at least %d", len(plain.RawTBSCertificate), tt.minTBS)
			}
			want := sum(plain.RawTBSCertificate)

			for _, c := range []struct {
				name    string
				der     []byte
				precert bool
			}{{"precertificate", precert, true}, {"final certificate", final, false}} {
				got, err := Parse(c.der)
				if err != nil {
					t.Fatalf("Parse(%s): %v", c.name, err)
				}
				if got.TBSHash != want {
					t.Errorf("Parse(%s).TBSHash = %s, want %s", c.name, got.TBSHash, want)
				}
				if got.Precert != c.precert {
					t.Errorf("Parse(%s).Precert = %v", c.name, got.Precert)
				}
				h, err := HashTBS(stdParse(t, c.der).RawTBSCertificate)
				if err != nil || h != want {
					t.Errorf("HashTBS(%s) = %s, %v; want %s", c.name, h, err, want)
				}
			}
			if h, err := HashTBS(plain.RawTBSCertificate); err != nil || h != want {
				t.Errorf("HashTBS(plain) = %s, %v; want the plain hash", h, err)
			}
		})
	}
}

// TestDecodeGeneratedEntries builds RFC 6962 entries by hand around
// generated certificates, with and without a Precertificate Signing
// Certificate.
func TestDecodeGeneratedEntries(t *testing.T) {
	root := newCA(t, "Test Root", nil, false)
	ca := newCA(t, "Test Issuing CA", root, false)
	psc := newCA(t, "Test Precertificate Signer", ca, true)
	key := newKey(t)
	tmpl := leafTemplate("shop.example.org", "www.shop.example.org")

	final := issue(t, withExtensions(tmpl, sctListExt()), key.Public(), ca)
	precert := issue(t, withExtensions(tmpl, poisonExt()), key.Public(), ca)
	plain := stdParse(t, issue(t, tmpl, key.Public(), ca))
	pscPrecert := issue(t, withExtensions(tmpl, poisonExt()), key.Public(), psc)
	// What a log puts in the leaf for pscPrecert: poison removed, issuer and
	// authority key identifier rewritten to the real CA. Built by ct-go.
	pscCT, err := ctx509.ParseCertificate(psc.der)
	if err != nil {
		t.Fatal(err)
	}
	pscLeafTBS, err := ctx509.BuildPrecertTBS(stdParse(t, pscPrecert).RawTBSCertificate, pscCT)
	if err != nil {
		t.Fatal(err)
	}

	caKey := sum(ca.cert.RawSubjectPublicKeyInfo)
	wantTBS := sum(plain.RawTBSCertificate)
	const ts = 1741000000000
	tests := []struct {
		name        string
		leaf, extra []byte
		wantPrecert bool
		wantSHA     Hash
		wantChain   [][]byte
	}{
		{name: "x509_entry", leaf: x509Leaf(ts, final), extra: chainExtra(ca.der, root.der),
			wantSHA: sum(final), wantChain: [][]byte{ca.der, root.der}},
		{name: "precert_entry", leaf: precertLeaf(ts, caKey, plain.RawTBSCertificate),
			extra:       precertExtra(precert, ca.der, root.der),
			wantPrecert: true, wantSHA: sum(precert), wantChain: [][]byte{ca.der, root.der}},
		{name: "precert_entry signed by a precertificate signing certificate",
			leaf:        precertLeaf(ts, caKey, pscLeafTBS),
			extra:       precertExtra(pscPrecert, psc.der, ca.der, root.der),
			wantPrecert: true, wantSHA: sum(pscPrecert), wantChain: [][]byte{psc.der, ca.der, root.der}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, gotTS, err := DecodeRFC6962Entry(tt.leaf, tt.extra)
			if err != nil {
				t.Fatal(err)
			}
			if gotTS != ts {
				t.Errorf("timestamp = %d, want %d", gotTS, ts)
			}
			if c.TBSHash != wantTBS {
				t.Errorf("TBSHash = %s, want %s", c.TBSHash, wantTBS)
			}
			if c.Precert != tt.wantPrecert {
				t.Errorf("Precert = %v", c.Precert)
			}
			if c.SHA256 != tt.wantSHA {
				t.Errorf("SHA256 = %s, want %s", c.SHA256, tt.wantSHA)
			}
			if c.IssuerSPKIHash != caKey {
				t.Errorf("IssuerSPKIHash = %s, want the issuing CA's %s", c.IssuerSPKIHash, caKey)
			}
			var wantChain []Hash
			for _, der := range tt.wantChain {
				wantChain = append(wantChain, sum(der))
			}
			if !slices.Equal(c.Chain, wantChain) {
				t.Errorf("Chain = %v, want %v", c.Chain, wantChain)
			}
			if c.Issuer != ca.cert.Subject.String() {
				t.Errorf("Issuer = %q, want %q", c.Issuer, ca.cert.Subject)
			}
			if c.Subject != "CN=shop.example.org" {
				t.Errorf("Subject = %q", c.Subject)
			}
			if want := []string{"shop.example.org", "www.shop.example.org"}; !slices.Equal(c.DNSNames, want) {
				t.Errorf("DNSNames = %v, want %v", c.DNSNames, want)
			}
			if !c.NotBefore.Equal(testNotBefore()) || !c.NotAfter.Equal(testNotAfter()) {
				t.Errorf("validity = %v..%v", c.NotBefore, c.NotAfter)
			}
			if c.KeyType != "ECDSA" || c.KeySize != 256 {
				t.Errorf("key = %s %d", c.KeyType, c.KeySize)
			}
		})
	}
}

// TestFromPrecertIssuer covers how FromPrecert finds the issuer key.
func TestFromPrecertIssuer(t *testing.T) {
	ca := newCA(t, "Test Issuing CA", nil, false)
	psc := newCA(t, "Test Precertificate Signer", ca, true)
	key := newKey(t)
	tbs := stdParse(t, issue(t, leafTemplate("a.example"), key.Public(), ca)).RawTBSCertificate
	caKey, pscKey := sum(ca.cert.RawSubjectPublicKeyInfo), sum(psc.cert.RawSubjectPublicKeyInfo)

	tests := []struct {
		name    string
		precert []byte
		chain   [][]byte
		wantKey Hash
		wantSHA Hash
	}{
		{name: "no chain", chain: nil, wantSHA: sum(tbs)},
		{name: "issuer first", chain: [][]byte{ca.der}, wantKey: caKey, wantSHA: sum(tbs)},
		{name: "precert signer then issuer", chain: [][]byte{psc.der, ca.der}, wantKey: caKey, wantSHA: sum(tbs)},
		{name: "precert signer alone", chain: [][]byte{psc.der}, wantSHA: sum(tbs)},
		{name: "precert given", precert: []byte("precertificate bytes"), chain: [][]byte{ca.der},
			wantKey: caKey, wantSHA: sum([]byte("precertificate bytes"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromPrecert(tbs, tt.precert, tt.chain)
			if err != nil {
				t.Fatal(err)
			}
			if c.IssuerSPKIHash != tt.wantKey {
				t.Errorf("IssuerSPKIHash = %s, want %s (the signer's is %s)", c.IssuerSPKIHash, tt.wantKey, pscKey)
			}
			if c.SHA256 != tt.wantSHA {
				t.Errorf("SHA256 = %s, want %s", c.SHA256, tt.wantSHA)
			}
			if !c.Precert || c.TBSHash != sum(tbs) {
				t.Errorf("Precert %v, TBSHash %s; want true, %s", c.Precert, c.TBSHash, sum(tbs))
			}
			if len(c.Chain) != len(tt.chain) {
				t.Errorf("%d chain hashes for %d certificates", len(c.Chain), len(tt.chain))
			}
		})
	}
}

// TestLeafIssuerKeyHashWins: the issuer_key_hash of a precert_entry is
// covered by the tree, extra_data is not; the decoder reports the former.
func TestLeafIssuerKeyHashWins(t *testing.T) {
	ca := newCA(t, "Test Issuing CA", nil, false)
	stranger := newCA(t, "Some Other CA", nil, false)
	key := newKey(t)
	precert := issue(t, withExtensions(leafTemplate("a.example"), poisonExt()), key.Public(), ca)
	tbs := stdParse(t, issue(t, leafTemplate("a.example"), key.Public(), ca)).RawTBSCertificate
	caKey := sum(ca.cert.RawSubjectPublicKeyInfo)

	c, _, err := DecodeRFC6962Entry(precertLeaf(1, caKey, tbs), precertExtra(precert, stranger.der))
	if err != nil {
		t.Fatal(err)
	}
	if c.IssuerSPKIHash != caKey {
		t.Errorf("IssuerSPKIHash = %s, want the leaf's %s", c.IssuerSPKIHash, caKey)
	}
	if !slices.Equal(c.Chain, []Hash{sum(stranger.der)}) {
		t.Errorf("Chain = %v, want the logged chain", c.Chain)
	}
}

// TestNames covers how names are gathered from SANs and subject CNs.
func TestNames(t *testing.T) {
	ca := newCA(t, "Test Issuing CA", nil, false)
	cn := func(v string) pkix.AttributeTypeAndValue {
		return pkix.AttributeTypeAndValue{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: v}
	}
	var manyDNS, manyWant []string
	for _, n := range hostNames(40) {
		manyDNS = append(manyDNS, strings.ToUpper(n), n)
		manyWant = append(manyWant, n)
	}
	tests := []struct {
		name       string
		dns        []string
		cns        []string
		ips        []net.IP
		emails     []string
		wantDNS    []string
		wantIPs    []string
		wantEmails []string
		// wantSANs is the number of distinct SAN dNSNames (CNs excluded).
		wantSANs int
	}{
		{name: "mixed case SANs deduplicated", dns: []string{"WWW.Example.COM", "www.example.com", "Example.com"},
			cns: []string{"www.EXAMPLE.com"}, wantDNS: []string{"www.example.com", "example.com"}, wantSANs: 2},
		{name: "CN missing from SANs comes last", dns: []string{"a.example"}, cns: []string{"B.example"},
			wantDNS: []string{"a.example", "b.example"}, wantSANs: 1},
		{name: "CN with a space is not a host name", cns: []string{"Example Corp. Web Server"}},
		{name: "CN without a dot is not a host name", cns: []string{"localhost"}},
		{name: "CN that is an IP address", cns: []string{"192.0.2.7"}},
		{name: "several CNs", cns: []string{"one.example", "Two.Example", "two.example"},
			wantDNS: []string{"one.example", "two.example"}},
		{name: "many SANs with repeats", dns: manyDNS, wantDNS: manyWant, wantSANs: 40},
		{name: "more SANs than the stack table holds", wantDNS: hostNames(300), wantSANs: 300,
			dns: append(hostNames(300), strings.ToUpper(hostNames(1)[0]), hostNames(300)[299])},
		{name: "IP and email SANs", ips: []net.IP{net.ParseIP("192.0.2.1"), net.ParseIP("2001:db8::1")},
			emails: []string{"ops@example.com"}, cns: []string{"Ops"},
			wantIPs: []string{"192.0.2.1", "2001:db8::1"}, wantEmails: []string{"ops@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := &x509.Certificate{
				SerialNumber:   big.NewInt(1),
				NotBefore:      testNotBefore(),
				NotAfter:       testNotAfter(),
				DNSNames:       tt.dns,
				IPAddresses:    tt.ips,
				EmailAddresses: tt.emails,
			}
			for _, v := range tt.cns {
				tmpl.Subject.ExtraNames = append(tmpl.Subject.ExtraNames, cn(v))
			}
			c, err := Parse(issue(t, tmpl, newKey(t).Public(), ca))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.DNSNames, tt.wantDNS) {
				t.Errorf("DNSNames = %q, want %q", c.DNSNames, tt.wantDNS)
			}
			if c.SANDNSCount != tt.wantSANs {
				t.Errorf("SANDNSCount = %d, want %d", c.SANDNSCount, tt.wantSANs)
			}
			if !slices.Equal(c.IPAddresses, tt.wantIPs) {
				t.Errorf("IPAddresses = %q, want %q", c.IPAddresses, tt.wantIPs)
			}
			if !slices.Equal(c.EmailAddresses, tt.wantEmails) {
				t.Errorf("EmailAddresses = %q, want %q", c.EmailAddresses, tt.wantEmails)
			}
		})
	}
}

// TestKeyTypes covers KeyType and KeySize.
func TestKeyTypes(t *testing.T) {
	ca := newCA(t, "Test Issuing CA", nil, false)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024) // small: only the size is looked at
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := leafTemplate("key.example")
	// A key of an algorithm nobody knows: 1.3.6.1.4.1.55555.2, 32 bytes.
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, 2})
		})
		b.AddASN1BitString(make([]byte, 32))
	})
	unknown, _ := replaceTBSField(t, issue(t, tmpl, newKey(t).Public(), ca), 6, b.BytesOrPanic())

	tests := []struct {
		name     string
		der      []byte
		wantType string
		wantSize int
	}{
		{"ECDSA P-256", issue(t, tmpl, newKey(t).Public(), ca), "ECDSA", 256},
		{"ECDSA P-384", issue(t, tmpl, p384.Public(), ca), "ECDSA", 384},
		{"RSA", issue(t, tmpl, rsaKey.Public(), ca), "RSA", 1024},
		{"Ed25519", issue(t, tmpl, edPub, ca), "Ed25519", 256},
		{"unknown algorithm", unknown, "unknown", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.der)
			if err != nil {
				t.Fatal(err)
			}
			if c.KeyType != tt.wantType || c.KeySize != tt.wantSize {
				t.Errorf("key = %s %d, want %s %d", c.KeyType, c.KeySize, tt.wantType, tt.wantSize)
			}
		})
	}
}

// TestInfo checks the hit form of a decoded certificate.
func TestInfo(t *testing.T) {
	ca := newCA(t, "Test Issuing CA", nil, false)
	key := newKey(t)
	der := issue(t, leafTemplate("info.example", "www.info.example"), key.Public(), ca)
	plain := stdParse(t, der)

	lone, err := Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	logged, _, err := DecodeRFC6962Entry(x509Leaf(1, der), chainExtra(ca.der))
	if err != nil {
		t.Fatal(err)
	}
	sha := sum(der)
	tbs := sum(plain.RawTBSCertificate)
	caKey := sum(ca.cert.RawSubjectPublicKeyInfo)

	tests := []struct {
		name          string
		c             *Cert
		wantIssuerKey string
	}{
		{"lone certificate", lone, ""},
		{"logged certificate", logged, hex.EncodeToString(caKey[:])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := tt.c.Info()
			if info.SHA256 != hex.EncodeToString(sha[:]) || info.TBSSHA256 != hex.EncodeToString(tbs[:]) {
				t.Errorf("hashes = %s / %s", info.SHA256, info.TBSSHA256)
			}
			if info.IssuerSPKISHA256 != tt.wantIssuerKey {
				t.Errorf("IssuerSPKISHA256 = %q, want %q", info.IssuerSPKISHA256, tt.wantIssuerKey)
			}
			if info.Precert || info.Subject != "CN=info.example" || info.Issuer != ca.cert.Subject.String() {
				t.Errorf("precert %v, subject %q, issuer %q", info.Precert, info.Subject, info.Issuer)
			}
			js, err := json.Marshal(info)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{`"not_before":"2025-03-01T12:00:00Z"`, `"not_after":"2025-06-01T12:00:00Z"`,
				`"dns_names":["info.example","www.info.example"]`} {
				if !strings.Contains(string(js), want) {
					t.Errorf("JSON %s lacks %s", js, want)
				}
			}
			info.DNSNames[0] = "changed.example"
			if tt.c.DNSNames[0] != "info.example" {
				t.Error("Info shares its DNSNames with the Cert")
			}
		})
	}

	var empty Cert
	js, err := json.Marshal(empty.Info())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"dns_names":[]`) {
		t.Errorf("a certificate without names gives %s; want an empty dns_names list", js)
	}
}
