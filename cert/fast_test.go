package cert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ctx509 "github.com/google/certificate-transparency-go/x509"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// certDiff lists the fields in which got and want differ, by name.
func certDiff(got, want *Cert) []string {
	var diffs []string
	gv, wv := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	for i := range gv.NumField() {
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if !reflect.DeepEqual(g, w) {
			diffs = append(diffs, fmt.Sprintf("  %s: fast %#v, crypto/x509 %#v", gv.Type().Field(i).Name, g, w))
		}
	}
	return diffs
}

// checkFast runs the fast decoder on der and, when it answers, holds the
// answer to its contract: crypto/x509 accepts der, and the Cert is the one
// decodeDER's crypto/x509 path gives. It reports whether the fast decoder
// answered.
func checkFast(t testing.TB, name string, der []byte) bool {
	t.Helper()
	got := fastDecodeDER(der)
	if got == nil {
		return false
	}
	compareWithSlow(t, name, got, der)
	return true
}

// checkFastTBS is checkFast for a precertificate entry's TBSCertificate,
// which decodeDER sees wrapped by wrapTBS.
func checkFastTBS(t testing.TB, name string, tbs []byte) bool {
	t.Helper()
	l, err := walkTBS(tbs)
	if err != nil {
		return false
	}
	got := fastDecodeTBS(tbs, &l)
	if got == nil {
		return false
	}
	wrapped, err := wrapTBS(tbs, l.sigAlg)
	if err != nil {
		t.Fatalf("%s: wrapTBS: %v", name, err)
	}
	compareWithSlow(t, name, got, wrapped)
	return true
}

func compareWithSlow(t testing.TB, name string, got *Cert, der []byte) {
	t.Helper()
	if _, err := x509.ParseCertificate(der); err != nil {
		t.Errorf("%s: the fast decoder accepted a certificate crypto/x509 rejects (%v)", name, err)
		return
	}
	want, err := decodeDERSlow(der)
	if err != nil {
		t.Errorf("%s: crypto/x509 path: %v", name, err)
		return
	}
	if d := certDiff(got, want); len(d) > 0 {
		t.Errorf("%s: fast decoder differs from the crypto/x509 path:\n%s", name, strings.Join(d, "\n"))
	}
}

// TestFastDecodeCorpus: every real certificate of the corpus decodes the
// same with the fast decoder, and the fast decoder does take them.
func TestFastDecodeCorpus(t *testing.T) {
	ders := corpusDERs(t)
	fast := 0
	for i, der := range ders {
		if checkFast(t, fmt.Sprintf("corpus %d", i), der) {
			fast++
		}
	}
	t.Logf("fast path taken for %d of %d corpus certificates", fast, len(ders))
	if fast*100 < len(ders)*95 {
		t.Errorf("fast path taken for %d of %d corpus certificates, want at least 95%%", fast, len(ders))
	}
}

// TestFastDecodeSamples covers the other real certificates of the test
// data: CT samples (precertificates, odd names, keys and extensions),
// interception CAs and issuers. Only the contract is checked for each; the
// fast path must still take most of those crypto/x509 accepts.
func TestFastDecodeSamples(t *testing.T) {
	var files []string
	for _, pattern := range []string{
		filepath.Join(zlintDir, "*.pem"), filepath.Join(ctGoDir, "*.der"), filepath.Join(ctGoDir, "*.pem"),
		filepath.Join(ctGoDir, "*.cert"), "testdata/chains/*.pem", "../testdata/issuers/*.pem",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	std, fast := 0, 0
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		ders := stdPEMCerts(data)
		if filepath.Ext(path) == ".der" {
			ders = [][]byte{data}
		}
		for i, der := range ders {
			name := fmt.Sprintf("%s #%d", filepath.Base(path), i)
			x, err := x509.ParseCertificate(der)
			if err == nil {
				std++
			}
			if checkFast(t, name, der) {
				fast++
			}
			if err == nil {
				// The TBS alone, as a precert_entry would hold it.
				checkFastTBS(t, name+" (TBS)", x.RawTBSCertificate)
			}
		}
	}
	t.Logf("%d files: crypto/x509 accepts %d certificates, the fast path takes %d", len(files), std, fast)
	if std < 60 || fast*100 < std*90 {
		t.Errorf("crypto/x509 accepts %d certificates, the fast path takes %d: want at least 60 and 90%%", std, fast)
	}
}

// TestFastDecodePrecertTBS compares the precertificate TBS path with real
// and generated precert_entry TBSs, including one rewritten by ct-go for a
// Precertificate Signing Certificate.
func TestFastDecodePrecertTBS(t *testing.T) {
	precert := stdParse(t, readDER(t, filepath.Join(ctGoDir, "submission_hammer_testdata_precert.der")))
	realTBS, err := ctx509.RemoveCTPoison(precert.RawTBSCertificate)
	if err != nil {
		t.Fatal(err)
	}
	ca := newCA(t, "Test Issuing CA", nil, false)
	psc := newCA(t, "Test Precertificate Signer", ca, true)
	key := newKey(t)
	tmpl := leafTemplate(hostNames(120)...)
	plain := stdParse(t, issue(t, tmpl, key.Public(), ca))
	pscPrecert := stdParse(t, issue(t, withExtensions(tmpl, poisonExt()), key.Public(), psc))
	pscCT, err := ctx509.ParseCertificate(psc.der)
	if err != nil {
		t.Fatal(err)
	}
	pscTBS, err := ctx509.BuildPrecertTBS(pscPrecert.RawTBSCertificate, pscCT)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		tbs  []byte
	}{
		{"real precertificate", realTBS},
		{"real precertificate with poison", precert.RawTBSCertificate},
		{"generated", plain.RawTBSCertificate},
		{"rewritten by a log for a precertificate signer", pscTBS},
	} {
		if !checkFastTBS(t, tt.name, tt.tbs) {
			t.Errorf("%s: fast path not taken", tt.name)
		}
		// And through the public entry point, against the old wrapping.
		got, err := FromPrecert(tt.tbs, nil, nil)
		if err != nil {
			t.Fatalf("%s: FromPrecert: %v", tt.name, err)
		}
		l, _ := walkTBS(tt.tbs)
		wrapped, _ := wrapTBS(tt.tbs, l.sigAlg)
		want, err := decodeDERSlow(wrapped)
		if err != nil {
			t.Fatal(err)
		}
		want.Precert, want.SHA256 = true, sum(tt.tbs)
		if d := certDiff(got, want); len(d) > 0 {
			t.Errorf("%s: FromPrecert differs:\n%s", tt.name, strings.Join(d, "\n"))
		}
	}
}

// TestFastDecodeMutations flips, zeroes and saturates every byte of a few
// real certificates in turn: most results are broken certificates that
// crypto/x509 rejects and the fast decoder must hand on, the rest decode to
// altered names, keys or times that must still come out the same.
func TestFastDecodeMutations(t *testing.T) {
	ecdsaLeaf := readDER(t, filepath.Join(corpusDir, "certs", "0226e06e4a7ae551.pem"))
	rsaLeaf := readDER(t, filepath.Join(corpusDir, "certs", "311c9de8e1ed0c07.pem"))
	for _, base := range [][]byte{ecdsaLeaf, rsaLeaf} {
		fast, std := 0, 0
		for i := range base {
			for _, mutate := range []func(byte) byte{
				func(b byte) byte { return b ^ 0x01 },
				func(b byte) byte { return b ^ 0x80 },
				func(byte) byte { return 0 },
				func(byte) byte { return 0xff },
			} {
				der := bytes.Clone(base)
				der[i] = mutate(der[i])
				if _, err := x509.ParseCertificate(der); err == nil {
					std++
				}
				if checkFast(t, fmt.Sprintf("byte %d = %#x", i, der[i]), der) {
					fast++
				}
			}
		}
		t.Logf("%d mutations: crypto/x509 accepts %d, the fast path takes %d", 4*len(base), std, fast)
		if fast == 0 {
			t.Error("the fast path took no mutated certificate")
		}
	}
}

// rawAttr is an attribute for rawName, with its string type spelled out.
type rawAttr struct {
	oid   asn1.ObjectIdentifier
	tag   cbasn1.Tag
	value string
}

// rawName builds a DER Name; each argument is one RDN.
func rawName(rdns ...[]rawAttr) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, rdn := range rdns {
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				for _, a := range rdn {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(a.oid)
						b.AddASN1(a.tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(a.value)) })
					})
				}
			})
		}
	})
	return b.BytesOrPanic()
}

func at(last int, tag cbasn1.Tag, v string) rawAttr {
	return rawAttr{oid: asn1.ObjectIdentifier{2, 5, 4, last}, tag: tag, value: v}
}

const (
	printable = cbasn1.PrintableString
	utf8Str   = cbasn1.UTF8String
	ia5       = cbasn1.IA5String
	t61       = cbasn1.T61String
	numeric   = cbasn1.Tag(18)
	bmp       = cbasn1.Tag(30)
)

// elem builds one DER element.
func elem(tag cbasn1.Tag, content ...[]byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(tag, func(b *cryptobyte.Builder) {
		for _, c := range content {
			b.AddBytes(c)
		}
	})
	return b.BytesOrPanic()
}

func oidElem(oid asn1.ObjectIdentifier) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1ObjectIdentifier(oid)
	return b.BytesOrPanic()
}

// withSigAlg rewrites both signature AlgorithmIdentifiers of a certificate
// (parsers insist that they agree) to ai.
func withSigAlg(t testing.TB, der, ai []byte) []byte {
	t.Helper()
	_, tbs := replaceTBSField(t, der, 2, ai)
	in := cryptobyte.String(der)
	var c, sig cryptobyte.String
	if !in.ReadASN1(&c, cbasn1.SEQUENCE) || !c.SkipASN1(cbasn1.SEQUENCE) || !c.SkipASN1(cbasn1.SEQUENCE) ||
		!c.ReadASN1Element(&sig, cbasn1.BIT_STRING) {
		t.Fatal("withSigAlg: not a certificate")
	}
	return elem(cbasn1.SEQUENCE, tbs, ai, sig)
}

// withExts replaces the extensions of a v3 certificate without unique
// identifiers (field 7) by exts, each a whole Extension element.
func withExts(t testing.TB, der []byte, exts ...[]byte) []byte {
	t.Helper()
	out, _ := replaceTBSField(t, der, 7, elem(cbasn1.Tag(3).Constructed().ContextSpecific(), elem(cbasn1.SEQUENCE, exts...)))
	return out
}

// ext builds an Extension element; critical is nil to leave the flag out,
// or the BOOLEAN's content octet.
func ext(oid asn1.ObjectIdentifier, critical []byte, value []byte) []byte {
	parts := [][]byte{oidElem(oid)}
	if critical != nil {
		parts = append(parts, elem(cbasn1.BOOLEAN, critical))
	}
	return elem(cbasn1.SEQUENCE, append(parts, elem(cbasn1.OCTET_STRING, value))...)
}

// validity builds a Validity element from two time elements.
func validity(notBefore, notAfter []byte) []byte {
	return elem(cbasn1.SEQUENCE, notBefore, notAfter)
}

func utcTime(s string) []byte         { return elem(cbasn1.UTCTime, []byte(s)) }
func genTime(s string) []byte         { return elem(cbasn1.GeneralizedTime, []byte(s)) }
func ce(last int) []int               { return []int{2, 5, 29, last} }
func null() []byte                    { return []byte{0x05, 0x00} }
func sanValue(names ...[]byte) []byte { return elem(cbasn1.SEQUENCE, names...) }
func gn(tag byte, v string) []byte {
	return elem(cbasn1.Tag(tag), []byte(v))
}

// fastCase is one certificate of TestFastDecodeShapes: std is whether
// crypto/x509 accepts it (the test's premise), fast whether the fast
// decoder must take it.
type fastCase struct {
	name      string
	der       []byte
	std, fast bool
}

func runFastCases(t *testing.T, cases []fastCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := x509.ParseCertificate(tt.der)
			if (err == nil) != tt.std {
				t.Fatalf("test premise: crypto/x509 error %v, want accepted = %v", err, tt.std)
			}
			if got := checkFast(t, tt.name, tt.der); got != tt.fast {
				t.Errorf("fast path taken = %v, want %v", got, tt.fast)
			}
		})
	}
}

// TestFastDecodeNames covers the rendering of distinguished names and the
// attribute lists taken from them, with names crafted byte by byte.
func TestFastDecodeNames(t *testing.T) {
	ca := newCA(t, "Test Issuing CA", nil, false)
	base := issue(t, leafTemplate("names.example"), newKey(t).Public(), ca)
	email := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	jurisdiction := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 3}
	bigArc := asn1.ObjectIdentifier{2, 999, 2147483647}
	ev := rawName(
		[]rawAttr{at(15, printable, "Private Organization")},
		[]rawAttr{{jurisdiction, printable, "US"}},
		[]rawAttr{at(5, printable, "5157550")},
		[]rawAttr{at(6, printable, "US")},
		[]rawAttr{at(8, utf8Str, "California")},
		[]rawAttr{at(7, utf8Str, "San Francisco")},
		[]rawAttr{at(10, utf8Str, "Example, Inc.")},
		[]rawAttr{at(3, utf8Str, "www.example.com")},
	)
	names := []struct {
		name string
		dn   []byte
		std  bool
		fast bool
	}{
		{"EV subject with unknown attributes", ev, true, true},
		{"multi-valued RDNs", rawName(
			[]rawAttr{at(6, printable, "DE"), at(6, printable, "AT")},
			[]rawAttr{at(10, utf8Str, "One"), at(11, utf8Str, "Unit A"), at(3, utf8Str, "a.example")},
			[]rawAttr{at(11, utf8Str, "Unit B"), {email, ia5, "ops@example.com"}},
		), true, true},
		{"escaping", rawName(
			[]rawAttr{at(10, utf8Str, ` Lead, "quoted" +plus\ <a>;b `)},
			[]rawAttr{at(11, utf8Str, "#hash # inside")},
			[]rawAttr{at(3, utf8Str, " ")},
			[]rawAttr{at(7, utf8Str, "#")},
		), true, true},
		{"empty values and CN order", rawName(
			[]rawAttr{at(3, printable, "first.example")},
			[]rawAttr{at(6, printable, "")},
			[]rawAttr{at(3, printable, "")},
			[]rawAttr{at(5, printable, "")},
		), true, true},
		{"several CNs", rawName(
			[]rawAttr{at(3, utf8Str, "Www.One.Example")},
			[]rawAttr{at(3, utf8Str, "two.example")},
			[]rawAttr{at(3, utf8Str, "Not A Host")},
		), true, true},
		{"all named attributes", rawName(
			[]rawAttr{at(9, utf8Str, "1 Main St")},
			[]rawAttr{at(17, utf8Str, "94105")},
			[]rawAttr{at(8, utf8Str, "CA")},
			[]rawAttr{at(5, printable, "A1")},
			[]rawAttr{at(5, printable, "A2")},
		), true, true},
		{"string types", rawName(
			[]rawAttr{at(10, t61, "Soci\xe9t\xe9 G\xe9n\xe9rale")},
			[]rawAttr{at(11, bmp, "\x00\xe9\x4e\x2d\x00\x00")},
			[]rawAttr{at(5, numeric, "0123 456")},
			[]rawAttr{at(7, ia5, "Zurich")},
			[]rawAttr{at(3, printable, "*.wild&card.example")},
		), true, true},
		{"unknown attributes re-marshalled", rawName(
			[]rawAttr{{email, ia5, "a*b@example.com"}, {email, ia5, "*.example.com"}},
			[]rawAttr{{jurisdiction, printable, "A&B"}, {jurisdiction, printable, "A-B"}},
			[]rawAttr{{email, t61, "caf\xe9"}},
			[]rawAttr{{bigArc, utf8Str, strings.Repeat("long ", 40)}},
			[]rawAttr{{asn1.ObjectIdentifier{1, 39, 1}, printable, ""}},
		), true, true},
		{"empty name", rawName(), true, true},
		{"empty RDN", rawName([]rawAttr{}, []rawAttr{at(3, utf8Str, "x.example")}), true, true},
		{"invalid UTF8String", rawName([]rawAttr{at(3, utf8Str, "\xff")}), false, false},
		{"invalid PrintableString", rawName([]rawAttr{at(3, printable, "a_b")}), false, false},
		{"non-ASCII IA5String", rawName([]rawAttr{at(3, ia5, "\xe9")}), false, false},
		{"BMPString high surrogate", rawName([]rawAttr{at(3, bmp, "\xd8\x00\xdc\x00")}), false, false},
		{"BMPString low surrogate", rawName([]rawAttr{at(3, bmp, "\xdf\xff")}), false, false},
		{"BMPString odd length", rawName([]rawAttr{at(3, bmp, "\x00")}), false, false},
		{"BMPString noncharacter", rawName([]rawAttr{at(3, bmp, "\xff\xfe")}), false, false},
		{"invalid NumericString", rawName([]rawAttr{at(5, numeric, "12a")}), false, false},
		{"OCTET STRING value", rawName([]rawAttr{at(3, cbasn1.OCTET_STRING, "x")}), false, false},
		{"OID arc too large", rawName([]rawAttr{{asn1.ObjectIdentifier{2, 5, 4, 1 << 31}, utf8Str, "x"}}), false, false},
	}
	var cases []fastCase
	for _, n := range names {
		subject, _ := replaceTBSField(t, base, 5, n.dn)
		issuer, _ := replaceTBSField(t, base, 3, n.dn)
		cases = append(cases,
			fastCase{"subject: " + n.name, subject, n.std, n.fast},
			fastCase{"issuer: " + n.name, issuer, n.std, n.fast})
	}
	runFastCases(t, cases)

	// nameString, for chain certificates, follows encoding/asn1 instead.
	for _, n := range names {
		checkNameString(t, n.name, n.dn)
	}
}

// checkNameString holds fastNameString to nameStringSlow on der and
// reports whether it answered.
func checkNameString(t testing.TB, name string, der []byte) bool {
	t.Helper()
	got, ok := fastNameString(der)
	if !ok {
		return false
	}
	if want := nameStringSlow(der); got != want {
		t.Errorf("%s: fastNameString = %q, encoding/asn1 and pkix give %q", name, got, want)
	}
	return true
}

// TestFastNameStringCorpus compares the chain subject rendering on every
// subject and issuer of the test data.
func TestFastNameStringCorpus(t *testing.T) {
	ders := corpusDERs(t)
	for _, pattern := range []string{"testdata/chains/*.pem", "../testdata/issuers/*.pem", filepath.Join(zlintDir, "*.pem")} {
		paths, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			ders = append(ders, stdPEMCerts(mustRead(t, p))...)
		}
	}
	n, fast := 0, 0
	for i, der := range ders {
		tbs, err := certTBS(der)
		if err != nil {
			continue
		}
		l, err := walkTBS(tbs)
		if err != nil {
			continue
		}
		for _, dn := range [][]byte{l.subject, l.issuer} {
			n++
			if checkNameString(t, fmt.Sprintf("certificate %d", i), dn) {
				fast++
			}
		}
	}
	t.Logf("fastNameString answered for %d of %d names", fast, n)
	if fast*100 < n*95 {
		t.Errorf("fastNameString answered for %d of %d names, want 95%%", fast, n)
	}
}

// TestFastDecodeShapes covers keys, signature algorithms, validity
// encodings and extensions, each in a form crypto/x509 accepts and in
// forms it rejects.
func TestFastDecodeShapes(t *testing.T) {
	ca := newCA(t, "Test Issuing CA", nil, false)
	key := newKey(t)
	tmpl := leafTemplate("shapes.example", "WWW.Shapes.Example", "www.shapes.example")
	base := issue(t, tmpl, key.Public(), ca)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	curveKey := func(c elliptic.Curve) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	spki := func(algo, params, key []byte) []byte {
		ai := elem(cbasn1.SEQUENCE, algo)
		if params != nil {
			ai = elem(cbasn1.SEQUENCE, algo, params)
		}
		return elem(cbasn1.SEQUENCE, ai, elem(cbasn1.BIT_STRING, append([]byte{0}, key...)))
	}
	withKey := func(k []byte) []byte { out, _ := replaceTBSField(t, base, 6, k); return out }
	p256 := oidElem(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	ecOID := oidElem(asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1})
	rsaOID := oidElem(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1})
	uncompressed, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	compressed := append([]byte{2 + uncompressed[64]&1}, uncompressed[1:33]...)
	offCurve := bytes.Clone(uncompressed)
	offCurve[len(offCurve)-1] ^= 1
	evenTail := bytes.Clone(uncompressed)
	evenTail[len(evenTail)-1] &^= 1
	rsaDER := func(n, e []byte) []byte {
		return elem(cbasn1.SEQUENCE, elem(cbasn1.INTEGER, n), elem(cbasn1.INTEGER, e))
	}
	modulus := append([]byte{0}, rsaKey.N.Bytes()...)

	sigAI := func(oid asn1.ObjectIdentifier, params ...[]byte) []byte {
		return elem(cbasn1.SEQUENCE, append([][]byte{oidElem(oid)}, params...)...)
	}
	pkcs1 := func(last int) asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, last} }
	ecdsaSig := func(arcs ...int) asn1.ObjectIdentifier {
		return append(asn1.ObjectIdentifier{1, 2, 840, 10045, 4}, arcs...)
	}
	withValidity := func(v []byte) []byte { out, _ := replaceTBSField(t, base, 4, v); return out }
	jan := utcTime("250101000000Z")

	issueWith := func(mod func(*x509.Certificate), pub any, signer *testCA) []byte {
		c := *tmpl
		mod(&c)
		return issue(t, &c, pub, signer)
	}
	rsaCA := &testCA{key: rsaKey}
	rsaCA.cert = stdParse(t, selfSign(t, &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "RSA CA"},
		NotBefore: testNotBefore(), NotAfter: testNotAfter(), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, rsaKey))
	edCA := &testCA{key: edPriv}
	edCA.cert = stdParse(t, selfSign(t, &x509.Certificate{SerialNumber: big.NewInt(10), Subject: pkix.Name{CommonName: "Ed CA"},
		NotBefore: testNotBefore(), NotAfter: testNotAfter(), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, edPriv))

	pssParams := func(hash asn1.ObjectIdentifier, salt int64) []byte {
		hashAI := sigAI(hash, null())
		mgf := sigAI(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}, hashAI)
		b := cryptobyte.NewBuilder(nil)
		b.AddASN1Int64(salt)
		return elem(cbasn1.SEQUENCE,
			elem(cbasn1.Tag(0).Constructed().ContextSpecific(), hashAI),
			elem(cbasn1.Tag(1).Constructed().ContextSpecific(), mgf),
			elem(cbasn1.Tag(2).Constructed().ContextSpecific(), b.BytesOrPanic()))
	}
	sha256OID := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}

	v1Cert, _ := replaceTBSField(t, base, 0, nil)
	negSerial, _ := replaceTBSField(t, base, 1, elem(cbasn1.INTEGER, []byte{0x80}))
	zeroSerial, _ := replaceTBSField(t, base, 1, elem(cbasn1.INTEGER, []byte{0}))
	longSerial, _ := replaceTBSField(t, base, 1, elem(cbasn1.INTEGER, []byte{0, 0x7f}))
	v2, _ := replaceTBSField(t, base, 0, elem(cbasn1.Tag(0).Constructed().ContextSpecific(), elem(cbasn1.INTEGER, []byte{1})))

	ski := ext(ce(14), nil, elem(cbasn1.OCTET_STRING, []byte{1, 2, 3}))
	unknownCritical := ext(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, 9}, []byte{0xff}, []byte{0x05, 0x00})
	sct := ext(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}, nil, []byte{0x04, 0x02, 0x00, 0x00})
	poison := ext(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}, []byte{0xff}, null())
	san := func(names ...[]byte) []byte { return ext(ce(17), nil, sanValue(names...)) }
	aia := asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	ocsp := asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1}
	uri, _ := url.Parse("https://example.com/x")

	cases := []fastCase{
		{"base", base, true, true},
		{"v1", v1Cert, true, false},
		{"v2", v2, true, false},
		{"negative serial", negSerial, false, false},
		{"zero serial", zeroSerial, true, true},
		{"non-minimal serial", longSerial, false, false},

		// Keys.
		{"ECDSA P-224", issue(t, tmpl, curveKey(elliptic.P224()).Public(), ca), true, true},
		{"ECDSA P-384", issue(t, tmpl, curveKey(elliptic.P384()).Public(), ca), true, true},
		{"ECDSA P-521", issue(t, tmpl, curveKey(elliptic.P521()).Public(), ca), true, true},
		{"RSA", issue(t, tmpl, rsaKey.Public(), ca), true, true},
		{"Ed25519", issue(t, tmpl, edPub, ca), true, true},
		{"ECDSA point not on the curve", withKey(spki(ecOID, p256, offCurve)), false, false},
		{"ECDSA compressed point", withKey(spki(ecOID, p256, compressed)), false, false},
		{"ECDSA without curve", withKey(spki(ecOID, nil, uncompressed)), false, false},
		{"ECDSA secp256k1", withKey(spki(ecOID, oidElem(asn1.ObjectIdentifier{1, 3, 132, 0, 10}), uncompressed)), false, false},
		{"RSA without NULL parameters", withKey(spki(rsaOID, nil, rsaDER(modulus, []byte{1, 0, 1}))), false, false},
		{"RSA negative modulus", withKey(spki(rsaOID, null(), rsaDER(modulus[1:], []byte{1, 0, 1}))), false, false},
		{"RSA zero exponent", withKey(spki(rsaOID, null(), rsaDER(modulus, []byte{0}))), false, false},
		{"RSA non-minimal modulus", withKey(spki(rsaOID, null(), rsaDER(append([]byte{0}, modulus...), []byte{3}))), false, false},
		{"RSA huge exponent", withKey(spki(rsaOID, null(), rsaDER(modulus, []byte{1, 0, 0, 0, 0, 1}))), true, false},
		{"RSA one-byte modulus", withKey(spki(rsaOID, null(), rsaDER([]byte{0x05}, []byte{3}))), true, true},
		{"Ed25519 short key", withKey(spki(oidElem(asn1.ObjectIdentifier{1, 3, 101, 112}), nil, make([]byte, 31))), false, false},
		{"Ed25519 with parameters", withKey(spki(oidElem(asn1.ObjectIdentifier{1, 3, 101, 112}), null(), make([]byte, 32))), false, false},
		{"X25519 key", withKey(spki(oidElem(asn1.ObjectIdentifier{1, 3, 101, 110}), nil, make([]byte, 32))), true, true},
		{"unknown key algorithm", withKey(spki(oidElem(asn1.ObjectIdentifier{1, 2, 3, 4}), null(), []byte{1, 2, 3})), true, true},
		{"DSA key", withKey(spki(oidElem(asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}), nil, []byte{2, 1, 5})), false, false},
		{"key with unused bits set", withKey(elem(cbasn1.SEQUENCE, elem(cbasn1.SEQUENCE, ecOID, p256),
			elem(cbasn1.BIT_STRING, append([]byte{1}, evenTail...)))), false, false},

		// Signature algorithms.
		{"SHA384-RSA", issueWith(func(c *x509.Certificate) { c.SignatureAlgorithm = x509.SHA384WithRSA }, key.Public(), rsaCA), true, true},
		{"SHA256-RSAPSS", issueWith(func(c *x509.Certificate) { c.SignatureAlgorithm = x509.SHA256WithRSAPSS }, key.Public(), rsaCA), true, true},
		{"SHA384-RSAPSS", issueWith(func(c *x509.Certificate) { c.SignatureAlgorithm = x509.SHA384WithRSAPSS }, key.Public(), rsaCA), true, true},
		{"ECDSA-SHA512", issueWith(func(c *x509.Certificate) { c.SignatureAlgorithm = x509.ECDSAWithSHA512 }, key.Public(), ca), true, true},
		{"Ed25519 signature", issue(t, tmpl, key.Public(), edCA), true, true},
		{"MD5-RSA", withSigAlg(t, base, sigAI(pkcs1(4), null())), true, true},
		{"SHA1-RSA", withSigAlg(t, base, sigAI(pkcs1(5), null())), true, true},
		{"ISO SHA1-RSA", withSigAlg(t, base, sigAI(asn1.ObjectIdentifier{1, 3, 14, 3, 2, 29}, null())), true, true},
		{"SHA512-RSA", withSigAlg(t, base, sigAI(pkcs1(13))), true, true},
		{"MD2-RSA (unknown)", withSigAlg(t, base, sigAI(pkcs1(2), null())), true, true},
		{"DSA-SHA1", withSigAlg(t, base, sigAI(asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 3})), true, true},
		{"DSA-SHA256", withSigAlg(t, base, sigAI(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 2})), true, true},
		{"ECDSA-SHA1", withSigAlg(t, base, sigAI(ecdsaSig(1))), true, true},
		{"ECDSA-SHA384", withSigAlg(t, base, sigAI(ecdsaSig(3, 3))), true, true},
		{"Ed25519 with parameters (unknown)", withSigAlg(t, base, sigAI(asn1.ObjectIdentifier{1, 3, 101, 112}, null())), true, true},
		{"unknown signature algorithm", withSigAlg(t, base, sigAI(asn1.ObjectIdentifier{2, 999, 1 << 30, 0})), true, true},
		{"PSS SHA512", withSigAlg(t, base, sigAI(pkcs1(10), []byte(pssSHA512))), true, true},
		{"PSS with a salt crypto/x509 does not name", withSigAlg(t, base, sigAI(pkcs1(10), pssParams(sha256OID, 20))), true, false},
		{"PSS without parameters", withSigAlg(t, base, sigAI(pkcs1(10))), true, false},
		{"signature algorithm with trailing data", withSigAlg(t, base, sigAI(pkcs1(11), null(), null())), true, false},
		{"signature algorithms differ", func() []byte { c, _ := replaceTBSField(t, base, 2, sigAI(ecdsaSig(3, 3))); return c }(), false, false},
		{"signature algorithm OID not minimal", withSigAlg(t, base, elem(cbasn1.SEQUENCE, elem(cbasn1.OBJECT_IDENTIFIER, []byte{0x2a, 0x80, 0x01}))), false, false},

		// Validity.
		{"GeneralizedTime after 2049", withValidity(validity(jan, genTime("20600101000000Z"))), true, true},
		{"GeneralizedTime before 1950", withValidity(validity(genTime("19400229120000Z"), jan)), true, true},
		{"GeneralizedTime year 0001", withValidity(validity(genTime("00010101000000Z"), jan)), true, true},
		{"UTCTime 49 and 50", withValidity(validity(utcTime("500101000000Z"), utcTime("491231235959Z"))), true, true},
		{"UTCTime 29 February of a leap year", withValidity(validity(utcTime("240229000000Z"), utcTime("520229235959Z"))), true, true},
		{"UTCTime 29 February of another year", withValidity(validity(jan, utcTime("250229000000Z"))), false, false},
		{"UTCTime 31 April", withValidity(validity(jan, utcTime("250431000000Z"))), false, false},
		{"UTCTime month 13", withValidity(validity(jan, utcTime("251301000000Z"))), false, false},
		{"UTCTime hour 24", withValidity(validity(jan, utcTime("250101240000Z"))), false, false},
		{"UTCTime second 60", withValidity(validity(jan, utcTime("250101235960Z"))), false, false},
		{"UTCTime day 0", withValidity(validity(jan, utcTime("250100000000Z"))), false, false},
		{"UTCTime without seconds", withValidity(validity(utcTime("2501011200Z"), utcTime("2601011200Z"))), true, true},
		{"UTCTime with offset", withValidity(validity(utcTime("250101120000+0130"), utcTime("260101120000-0800"))), true, true},
		{"UTCTime with sign in year", withValidity(validity(jan, utcTime("+50101120000Z"))), false, false},
		{"UTCTime local time", withValidity(validity(jan, utcTime("260101120000"))), false, false},
		{"GeneralizedTime with fraction", withValidity(validity(jan, genTime("20260101120000.5Z"))), false, false},
		{"GeneralizedTime with offset", withValidity(validity(jan, genTime("20260101120000+0200"))), true, true},
		{"GeneralizedTime without seconds", withValidity(validity(jan, genTime("202601011200Z"))), false, false},
		{"validity with trailing time", withValidity(validity(jan, append(jan, jan...))), true, false},
		{"validity of one time", withValidity(elem(cbasn1.SEQUENCE, jan)), false, false},
		{"validity with INTEGER", withValidity(validity(jan, elem(cbasn1.INTEGER, []byte{1}))), false, false},

		// Extensions.
		{"no extensions left", withExts(t, base), true, true},
		{"poison, SCT list, unknown critical extension", withExts(t, base, poison, sct, unknownCritical), true, true},
		{"explicit non-critical flag", withExts(t, base, ext(ce(14), []byte{0}, elem(cbasn1.OCTET_STRING, nil))), true, true},
		{"critical flag not DER", withExts(t, base, ext(ce(14), []byte{1}, elem(cbasn1.OCTET_STRING, nil))), false, false},
		{"duplicate extension", withExts(t, base, ski, sct, ski), false, false},
		{"duplicate unknown extension", withExts(t, base, sct, sct), false, false},
		{"SAN with IP addresses and emails", issueWith(func(c *x509.Certificate) {
			c.IPAddresses = []net.IP{net.ParseIP("192.0.2.1"), net.ParseIP("2001:db8::1"), net.ParseIP("::ffff:192.0.2.2")}
			c.EmailAddresses = []string{"ops@example.com", "Ops@Example.com"}
		}, key.Public(), ca), true, true},
		{"SAN with a URI", issueWith(func(c *x509.Certificate) { c.URIs = []*url.URL{uri} }, key.Public(), ca), true, false},
		{"SAN with other names", withExts(t, base, san(gn(0x82, "a.example"),
			elem(cbasn1.Tag(0).Constructed().ContextSpecific(), oidElem(asn1.ObjectIdentifier{1, 2, 3}), elem(cbasn1.Tag(0).Constructed().ContextSpecific(), elem(utf8Str, []byte("x")))),
			elem(cbasn1.Tag(4).Constructed().ContextSpecific(), rawName([]rawAttr{at(3, utf8Str, "dir")})),
			gn(0x88, "\x2a\x03"), gn(0x82, ""), gn(0x82, "B.Example"), gn(0x82, "b.example"))), true, true},
		{"SAN only with names crypto/x509 ignores", withExts(t, base, san(gn(0x88, "\x2a\x03"))), true, true},
		{"empty SAN", withExts(t, base, san()), true, true},
		{"SAN dNSName not IA5", withExts(t, base, san(gn(0x82, "caf\xc3\xa9.example"))), false, false},
		{"SAN rfc822Name not IA5", withExts(t, base, san(gn(0x81, "\xe9@example.com"))), false, false},
		{"SAN IP of 5 bytes", withExts(t, base, san(gn(0x87, "\x01\x02\x03\x04\x05"))), false, false},
		{"SAN not a SEQUENCE", withExts(t, base, ext(ce(17), nil, gn(0x82, "a.example"))), false, false},
		{"SAN with trailing data", withExts(t, base, ext(ce(17), nil, append(sanValue(gn(0x82, "a.example")), 0))), true, false},
		{"SAN with a high tag", withExts(t, base, ext(ce(17), nil, elem(cbasn1.SEQUENCE, []byte{0x9f, 0x20, 0x00}))), false, false},
		{"key usage", withExts(t, base, ext(ce(15), []byte{0xff}, elem(cbasn1.BIT_STRING, []byte{7, 0x80}))), true, true},
		{"key usage with bad padding", withExts(t, base, ext(ce(15), nil, elem(cbasn1.BIT_STRING, []byte{8, 0}))), false, false},
		{"key usage with set padding bits", withExts(t, base, ext(ce(15), nil, elem(cbasn1.BIT_STRING, []byte{1, 0x81}))), false, false},
		{"basic constraints", withExts(t, base, ext(ce(19), []byte{0xff}, elem(cbasn1.SEQUENCE, elem(cbasn1.BOOLEAN, []byte{0xff}), elem(cbasn1.INTEGER, []byte{0})))), true, true},
		{"basic constraints negative path length", withExts(t, base, ext(ce(19), nil, elem(cbasn1.SEQUENCE, elem(cbasn1.INTEGER, []byte{0xff})))), false, false},
		{"basic constraints bad boolean", withExts(t, base, ext(ce(19), nil, elem(cbasn1.SEQUENCE, elem(cbasn1.BOOLEAN, []byte{1})))), false, false},
		{"basic constraints huge path length", withExts(t, base, ext(ce(19), nil, elem(cbasn1.SEQUENCE, elem(cbasn1.INTEGER, []byte{1, 0, 0, 0, 0})))), true, false},
		{"subject key identifier critical", withExts(t, base, ext(ce(14), []byte{0xff}, elem(cbasn1.OCTET_STRING, nil))), false, false},
		{"subject key identifier not an OCTET STRING", withExts(t, base, ext(ce(14), nil, null())), false, false},
		{"authority key identifier", withExts(t, base, ext(ce(35), nil, elem(cbasn1.SEQUENCE, gn(0x80, "\x01\x02")))), true, true},
		{"authority key identifier critical", withExts(t, base, ext(ce(35), []byte{0xff}, elem(cbasn1.SEQUENCE))), false, false},
		{"authority key identifier truncated", withExts(t, base, ext(ce(35), nil, elem(cbasn1.SEQUENCE, []byte{0x80, 0x05, 0x01}))), false, false},
		{"extended key usage bad OID", withExts(t, base, ext(ce(37), nil, elem(cbasn1.SEQUENCE, elem(cbasn1.OBJECT_IDENTIFIER, []byte{0x2b, 0x80, 0x01})))), false, false},
		{"extended key usage unknown OIDs", withExts(t, base, ext(ce(37), nil, elem(cbasn1.SEQUENCE, oidElem(asn1.ObjectIdentifier{1, 2, 3}), oidElem(asn1.ObjectIdentifier{2, 5, 29, 37, 0})))), true, true},
		{"CRL distribution points", issueWith(func(c *x509.Certificate) {
			c.CRLDistributionPoints = []string{"http://crl.example/1.crl", "http://crl.example/2.crl"}
			c.OCSPServer = []string{"http://ocsp.example"}
			c.IssuingCertificateURL = []string{"http://ca.example/ca.crt"}
			c.PolicyIdentifiers = []asn1.ObjectIdentifier{{2, 23, 140, 1, 2, 1}, {1, 3, 6, 1, 4, 1, 44947, 1, 1, 1}}
		}, key.Public(), ca), true, true},
		{"CRL distribution point without name", withExts(t, base, ext(ce(31), nil, elem(cbasn1.SEQUENCE, elem(cbasn1.SEQUENCE)))), true, true},
		{"CRL distribution point malformed", withExts(t, base, ext(ce(31), nil, elem(cbasn1.SEQUENCE, elem(cbasn1.SEQUENCE, elem(cbasn1.Tag(0).Constructed().ContextSpecific(), []byte{0x86, 0x05}))))), false, false},
		{"certificate policies repeated", withExts(t, base, ext(ce(32), nil, elem(cbasn1.SEQUENCE,
			elem(cbasn1.SEQUENCE, oidElem(asn1.ObjectIdentifier{2, 23, 140, 1, 2, 1})), elem(cbasn1.SEQUENCE, oidElem(asn1.ObjectIdentifier{2, 23, 140, 1, 2, 1}))))), false, false},
		{"certificate policy with a huge arc", withExts(t, base, ext(ce(32), nil, elem(cbasn1.SEQUENCE,
			elem(cbasn1.SEQUENCE, elem(cbasn1.OBJECT_IDENTIFIER, []byte{0x2a, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}))))), true, true},
		{"certificate policy OID truncated", withExts(t, base, ext(ce(32), nil, elem(cbasn1.SEQUENCE,
			elem(cbasn1.SEQUENCE, elem(cbasn1.OBJECT_IDENTIFIER, []byte{0x2a, 0x81}))))), false, false},
		{"authority information access", withExts(t, base, ext(aia, nil, elem(cbasn1.SEQUENCE,
			elem(cbasn1.SEQUENCE, oidElem(ocsp), gn(0x86, "http://ocsp.example")),
			elem(cbasn1.SEQUENCE, oidElem(asn1.ObjectIdentifier{1, 2, 3}), elem(cbasn1.SEQUENCE))))), true, true},
		{"authority information access critical", withExts(t, base, ext(aia, []byte{0xff}, elem(cbasn1.SEQUENCE))), false, false},
		{"authority information access bad method", withExts(t, base, ext(aia, nil, elem(cbasn1.SEQUENCE,
			elem(cbasn1.SEQUENCE, elem(cbasn1.OBJECT_IDENTIFIER, nil))))), false, false},
		{"name constraints", issueWith(func(c *x509.Certificate) { c.PermittedDNSDomains = []string{"example.com"} }, key.Public(), ca), true, false},
		{"inhibit any policy", withExts(t, base, ext(ce(54), nil, elem(cbasn1.INTEGER, []byte{0}))), true, false},
		{"extension with trailing data", withExts(t, base, elem(cbasn1.SEQUENCE, oidElem(ce(99)), elem(cbasn1.OCTET_STRING, nil), null())), true, false},
		{"extension OID not minimal", withExts(t, base, elem(cbasn1.SEQUENCE, elem(cbasn1.OBJECT_IDENTIFIER, []byte{0x55, 0x80, 0x1d}), elem(cbasn1.OCTET_STRING, nil))), false, false},
		{"many SANs", issue(t, leafTemplate(hostNames(3500)...), key.Public(), ca), true, true},
	}
	runFastCases(t, cases)
}
