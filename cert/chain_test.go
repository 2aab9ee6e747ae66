package cert

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

const chainsDir = "testdata/chains" // see testdata/chains/SOURCE.md

// refParse parses der with crypto/x509 for expected values. A certificate
// it rejects only for a negative serial number (DSDTestProvider has one) is
// parsed with the serial replaced, which changes none of the fields these
// tests look at, while the code under test must take the lenient path.
func refParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	if c, err := x509.ParseCertificate(der); err == nil {
		return c
	}
	serial := cryptobyte.NewBuilder(nil)
	serial.AddASN1Int64(1)
	fixed, _ := replaceTBSField(t, der, 1, serial.BytesOrPanic())
	return stdParse(t, fixed)
}

// stdIssuerAttrs returns the issuer attributes as crypto/x509 decodes them,
// in the form the Cert fields use.
func stdIssuerAttrs(x *x509.Certificate) (cn, o, ou, c []string) {
	for _, atv := range x.Issuer.Names {
		if s, ok := atv.Value.(string); ok && atv.Type.Equal(asn1.ObjectIdentifier{2, 5, 4, 3}) {
			cn = append(cn, s)
		}
	}
	return cn, x.Issuer.Organization, x.Issuer.OrganizationalUnit, x.Issuer.Country
}

// checkIssuerAttrs compares the issuer attributes of got with want's as
// crypto/x509 decodes them.
func checkIssuerAttrs(t *testing.T, got *Cert, want *x509.Certificate) {
	t.Helper()
	cn, o, ou, c := stdIssuerAttrs(want)
	for _, f := range []struct {
		name      string
		got, want []string
	}{
		{"IssuerCN", got.IssuerCN, cn},
		{"IssuerO", got.IssuerO, o},
		{"IssuerOU", got.IssuerOU, ou},
		{"IssuerC", got.IssuerC, c},
	} {
		if !slices.Equal(f.got, f.want) {
			t.Errorf("%s = %q, crypto/x509 has %q", f.name, f.got, f.want)
		}
	}
}

func TestIssuerAttributesAndSignatureAlgorithm(t *testing.T) {
	// wantAlg comes from `openssl x509 -noout -text`; the issuer CN and C
	// columns from the data set's INDEX.md (openssl as well).
	tests := []struct {
		file     string
		wantAlg  string
		wantCN   string
		wantC    string
		wantOrgs int
	}{
		{"ru-trusted-sub-ca-2022.pem", "SHA256-RSA", "Russian Trusted Root CA", "RU", 1},
		{"ru-trusted-root-ca-2022.pem", "SHA256-RSA", "Russian Trusted Root CA", "RU", 1},
		{"in-nic-ca-2011.pem", "SHA256-RSA", "CCA India 2011", "IN", 1},
		{"tr-turktrust-kktcmerkezbankasi-2013.pem", "SHA1-RSA", "TÜRKTRUST Elektronik Sunucu Sertifikası Hizmetleri", "TR", 1},
		{"us-dell-edellroot-2015.pem", "SHA1-RSA", "eDellRoot", "", 0}, // ISO OID 1.3.14.3.2.29
		{"us-dell-dsdtestprovider-2015.pem", "SHA512-RSA", "DSDTestProvider", "", 1},
		{"fr-anssi-dgtresor-ssl-2013.pem", "SHA1-RSA", "AC DGTPE Signature Authentification", "FR", 1},
		{"e5--by-isrg-root-x2.pem", "ECDSA-SHA384", "ISRG Root X2", "US", 1},
		{"gts-ca-2d5--by-globalsign.pem", "ECDSA-SHA256", "GlobalSign", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			der := readDER(t, filepath.Join(chainsDir, tt.file))
			std := refParse(t, der)
			c, err := Parse(der)
			if err != nil {
				t.Fatal(err)
			}
			if c.SignatureAlgorithm != tt.wantAlg {
				t.Errorf("SignatureAlgorithm = %q, want %q", c.SignatureAlgorithm, tt.wantAlg)
			}
			if c.SignatureAlgorithm != std.SignatureAlgorithm.String() {
				t.Errorf("SignatureAlgorithm = %q, crypto/x509 says %q", c.SignatureAlgorithm, std.SignatureAlgorithm)
			}
			if !slices.Equal(c.IssuerCN, []string{tt.wantCN}) {
				t.Errorf("IssuerCN = %q, want [%q]", c.IssuerCN, tt.wantCN)
			}
			if wantC := []string{tt.wantC}; tt.wantC == "" && len(c.IssuerC) != 0 || tt.wantC != "" && !slices.Equal(c.IssuerC, wantC) {
				t.Errorf("IssuerC = %q, want %q", c.IssuerC, tt.wantC)
			}
			if len(c.IssuerO) != tt.wantOrgs {
				t.Errorf("IssuerO = %q, want %d values", c.IssuerO, tt.wantOrgs)
			}
			checkIssuerAttrs(t, c, std)

			// A precertificate entry carries only the TBS: the name must
			// come from its signature field, and the issuer from it too.
			p, err := FromPrecert(std.RawTBSCertificate, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if p.SignatureAlgorithm != tt.wantAlg {
				t.Errorf("FromPrecert SignatureAlgorithm = %q, want %q", p.SignatureAlgorithm, tt.wantAlg)
			}
			checkIssuerAttrs(t, p, std)
		})
	}
}

// TestIssuerAttributesCorpus compares the issuer attributes and signature
// algorithm of every corpus certificate with crypto/x509's reading.
func TestIssuerAttributesCorpus(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(corpusDir, "certs", "*.pem"))
	if err != nil || len(paths) < 300 {
		t.Fatalf("corpus: %d files, %v", len(paths), err)
	}
	algs := map[string]int{}
	for _, path := range paths {
		der := readDER(t, path)
		std, err := x509.ParseCertificate(der)
		if err != nil {
			continue // only the lenient parser takes it; nothing to compare with
		}
		c, err := Parse(der)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if c.SignatureAlgorithm != std.SignatureAlgorithm.String() {
			t.Errorf("%s: SignatureAlgorithm = %q, crypto/x509 says %q", path, c.SignatureAlgorithm, std.SignatureAlgorithm)
		}
		algs[c.SignatureAlgorithm]++
		checkIssuerAttrs(t, c, std)
		if len(c.IssuerCN) == 0 && std.Issuer.CommonName != "" {
			t.Errorf("%s: no IssuerCN, crypto/x509 has %q", path, std.Issuer.CommonName)
		}
	}
	for _, alg := range []string{"SHA256-RSA", "ECDSA-SHA256", "ECDSA-SHA384"} {
		if algs[alg] == 0 {
			t.Errorf("no corpus certificate signed with %s (saw %v)", alg, algs)
		}
	}
}

func TestUnknownSignatureAlgorithmIsOID(t *testing.T) {
	ca := newCA(t, "ctwatch unknown-algorithm CA", nil, false)
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1})
	})
	_, tbs := replaceTBSField(t, ca.der, 2, b.BytesOrPanic())
	c, err := FromPrecert(tbs, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "1.3.6.1.4.1.99999.1"; c.SignatureAlgorithm != want {
		t.Errorf("SignatureAlgorithm = %q, want %q", c.SignatureAlgorithm, want)
	}
}

// chainFixture returns real chain certificates, in a fixed order.
func chainFixture(t *testing.T) [][]byte {
	t.Helper()
	files := []string{
		"ru-trusted-sub-ca-2022.pem", "ru-trusted-root-ca-2022.pem", "in-nic-ca-2011.pem",
		"tr-turktrust-kktcmerkezbankasi-2013.pem", "us-dell-edellroot-2015.pem",
		"us-dell-dsdtestprovider-2015.pem", "fr-anssi-dgtresor-ssl-2013.pem",
		"e5--by-isrg-root-x2.pem", "gts-ca-2d5--by-globalsign.pem",
	}
	chain := [][]byte{readDER(t, azureIssuerPEM)}
	for _, f := range files {
		chain = append(chain, readDER(t, filepath.Join(chainsDir, f)))
	}
	return chain
}

// checkChain compares the chain fields of c with crypto/x509's reading of
// chain.
func checkChain(t *testing.T, c *Cert, chain [][]byte) {
	t.Helper()
	if len(c.ChainSPKI) != len(chain) || len(c.ChainSubjects) != len(chain) || len(c.Chain) != len(chain) {
		t.Fatalf("%d chain certificates: Chain %d, ChainSPKI %d, ChainSubjects %d",
			len(chain), len(c.Chain), len(c.ChainSPKI), len(c.ChainSubjects))
	}
	for i, der := range chain {
		std := refParse(t, der)
		if want := Hash(sha256.Sum256(std.RawSubjectPublicKeyInfo)); c.ChainSPKI[i] != want {
			t.Errorf("ChainSPKI[%d] = %s, want %s", i, c.ChainSPKI[i], want)
		}
		if want := std.Subject.String(); c.ChainSubjects[i] != want {
			t.Errorf("ChainSubjects[%d] = %q, want %q", i, c.ChainSubjects[i], want)
		}
		if want := Hash(sha256.Sum256(der)); c.Chain[i] != want {
			t.Errorf("Chain[%d] = %s, want %s", i, c.Chain[i], want)
		}
	}
}

func TestChainSPKIAndSubjects(t *testing.T) {
	leaf := readDER(t, azureLeafPEM)
	chain := chainFixture(t)

	t.Run("FromX509", func(t *testing.T) {
		c, err := FromX509(leaf, chain)
		if err != nil {
			t.Fatal(err)
		}
		checkChain(t, c, chain)
		// Values from the data set's INDEX.md and issuers/SOURCE.md
		// (openssl), not from Go.
		if got := c.ChainSPKI[0].String(); got != azureIssuerSPKI {
			t.Errorf("ChainSPKI[0] = %s, want %s", got, azureIssuerSPKI)
		}
		if got, want := c.ChainSPKI[1].String(), "0447aa4b18c48b9e8db16e91809286dd27efd6a50ba80d3084eb9e70ba8e1dca"; got != want {
			t.Errorf("ChainSPKI[1] = %s, want %s", got, want)
		}
		if got, want := c.ChainSubjects[1], "CN=Russian Trusted Sub CA,O=The Ministry of Digital Development and Communications,C=RU"; got != want {
			t.Errorf("ChainSubjects[1] = %q, want %q", got, want)
		}
		if c.IssuerSPKIHash != c.ChainSPKI[0] {
			t.Errorf("IssuerSPKIHash %s differs from ChainSPKI[0] %s", c.IssuerSPKIHash, c.ChainSPKI[0])
		}
	})

	t.Run("DecodeRFC6962Entry", func(t *testing.T) {
		c, _, err := DecodeRFC6962Entry(x509Leaf(1, leaf), chainExtra(chain...))
		if err != nil {
			t.Fatal(err)
		}
		checkChain(t, c, chain)
	})

	t.Run("FromPrecert", func(t *testing.T) {
		precert := readDER(t, filepath.Join(ctGoDir, "submission_hammer_testdata_precert.der"))
		inter := readDER(t, filepath.Join(ctGoDir, "submission_hammer_testdata_intermediate.der"))
		pchain := append([][]byte{inter}, chain[1:3]...)
		c, err := FromPrecert(stdParse(t, precert).RawTBSCertificate, precert, pchain)
		if err != nil {
			t.Fatal(err)
		}
		checkChain(t, c, pchain)
	})

	t.Run("no chain", func(t *testing.T) {
		c, err := Parse(leaf)
		if err != nil {
			t.Fatal(err)
		}
		if c.ChainSPKI != nil || c.ChainSubjects != nil {
			t.Errorf("lone certificate: ChainSPKI %v, ChainSubjects %q, want nil", c.ChainSPKI, c.ChainSubjects)
		}
	})
}

// TestChainPrecertSigner checks that a Precertificate Signing Certificate
// keeps its place in the chain lists while the issuer key comes from the
// next certificate.
// precertSignerFixture issues a precertificate from a Precertificate
// Signing Certificate under an issuing CA under a root.
func precertSignerFixture(t *testing.T) (root, ca, signer *testCA, precert []byte) {
	t.Helper()
	root = newCA(t, "ctwatch root", nil, false)
	ca = newCA(t, "ctwatch issuing CA", root, false)
	signer = newCA(t, "ctwatch precert signer", ca, true)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "precert.example"},
		DNSNames:     []string{"precert.example"},
		NotBefore:    time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC),
	}
	precert = issue(t, withExtensions(tmpl, poisonExt()), newKey(t).Public(), signer)
	return root, ca, signer, precert
}

func TestChainPrecertSigner(t *testing.T) {
	root, ca, signer, precert := precertSignerFixture(t)
	chain := [][]byte{signer.der, ca.der, root.der}
	c, err := FromPrecert(stdParse(t, precert).RawTBSCertificate, precert, chain)
	if err != nil {
		t.Fatal(err)
	}
	checkChain(t, c, chain)
	if want := Hash(sha256.Sum256(ca.cert.RawSubjectPublicKeyInfo)); c.IssuerSPKIHash != want {
		t.Errorf("IssuerSPKIHash = %s, want the issuing CA's %s", c.IssuerSPKIHash, want)
	}
	if c.ChainSubjects[0] != "CN=ctwatch precert signer,O=ctwatch tests" {
		t.Errorf("ChainSubjects[0] = %q", c.ChainSubjects[0])
	}
}

// TestChainUnreadableUpperCertificates checks that certificates above the
// issuer that cannot be read leave gaps rather than failing the entry.
func TestChainUnreadableUpperCertificates(t *testing.T) {
	leaf := readDER(t, azureLeafPEM)
	issuer := readDER(t, azureIssuerPEM)
	// A structurally valid certificate whose subject is a SEQUENCE of an
	// INTEGER, not of SETs: the walk accepts it, the name does not decode.
	badName := cryptobyte.NewBuilder(nil)
	badName.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1Int64(1) })
	badSubject, _ := replaceTBSField(t, readDER(t, filepath.Join(chainsDir, "ru-trusted-root-ca-2022.pem")), 5, badName.BytesOrPanic())
	badStd, err := x509.ParseCertificate(badSubject)
	if err == nil {
		t.Fatalf("crypto/x509 accepts the bad subject %q; the fixture does not test anything", badStd.Subject)
	}

	chain := [][]byte{issuer, []byte("junk"), badSubject}
	c, err := FromX509(leaf, chain)
	if err != nil {
		t.Fatalf("unreadable upper chain certificates: %v", err)
	}
	if len(c.ChainSPKI) != 3 || len(c.ChainSubjects) != 3 {
		t.Fatalf("ChainSPKI %d, ChainSubjects %d, want 3 each", len(c.ChainSPKI), len(c.ChainSubjects))
	}
	if c.ChainSPKI[0].String() != azureIssuerSPKI || !strings.HasPrefix(c.ChainSubjects[0], "CN=Microsoft Azure RSA TLS Issuing CA 04,") {
		t.Errorf("issuer: ChainSPKI[0] %s, ChainSubjects[0] %q", c.ChainSPKI[0], c.ChainSubjects[0])
	}
	if !c.ChainSPKI[1].IsZero() || c.ChainSubjects[1] != "" {
		t.Errorf("junk certificate: ChainSPKI[1] %s, ChainSubjects[1] %q, want zero and empty", c.ChainSPKI[1], c.ChainSubjects[1])
	}
	wantSPKI := readSPKIHash(t, filepath.Join(chainsDir, "ru-trusted-root-ca-2022.pem"))
	if c.ChainSPKI[2] != wantSPKI || c.ChainSubjects[2] != "" {
		t.Errorf("bad subject: ChainSPKI[2] %s (want %s), ChainSubjects[2] %q (want empty)", c.ChainSPKI[2], wantSPKI, c.ChainSubjects[2])
	}

	// The issuer itself must still be readable.
	if _, err := FromX509(leaf, [][]byte{[]byte("junk"), issuer}); err == nil {
		t.Error("unreadable issuer certificate: no error")
	}
}

// readSPKIHash returns the SHA-256 of a certificate file's SPKI, read with
// crypto/x509.
func readSPKIHash(t *testing.T, path string) Hash {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(stdParse(t, readDER(t, path)).RawSubjectPublicKeyInfo)
}

// TestTileLeafChainPartlyResolved checks that the chain lists of a tile
// entry keep the length of its fingerprint list.
func TestTileLeafChainPartlyResolved(t *testing.T) {
	leaf := readDER(t, azureLeafPEM)
	chain := chainFixture(t)[:3]
	l := &TileLeaf{Certificate: leaf, Chain: []Hash{sum(chain[0]), sum(chain[1]), sum(chain[2])}}
	for resolved := 0; resolved <= len(chain); resolved++ {
		c, err := FromTileLeaf(l, chain[:resolved])
		if err != nil {
			t.Fatalf("%d resolved: %v", resolved, err)
		}
		if len(c.ChainSPKI) != 3 || len(c.ChainSubjects) != 3 {
			t.Fatalf("%d resolved: ChainSPKI %d, ChainSubjects %d, want 3 each", resolved, len(c.ChainSPKI), len(c.ChainSubjects))
		}
		for i := range chain {
			std := refParse(t, chain[i])
			wantSPKI, wantSubject := Hash(sha256.Sum256(std.RawSubjectPublicKeyInfo)), std.Subject.String()
			if i >= resolved {
				wantSPKI, wantSubject = Hash{}, ""
			}
			if c.ChainSPKI[i] != wantSPKI || c.ChainSubjects[i] != wantSubject {
				t.Errorf("%d resolved, certificate %d: ChainSPKI %s, ChainSubjects %q; want %s, %q",
					resolved, i, c.ChainSPKI[i], c.ChainSubjects[i], wantSPKI, wantSubject)
			}
		}
	}
}
