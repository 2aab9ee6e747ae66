package cert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Paths of the shared test data (see ../testdata/README.md).
const (
	corpusDir       = "../testdata/corpus"
	ctGoDir         = "../testdata/ct-samples/ct-go"
	zlintDir        = "../testdata/ct-samples/zlint"
	azureLeafPEM    = "../testdata/corpus/certs/b73fd2ef8d6efddd.pem"
	azureIssuerPEM  = "../testdata/issuers/microsoft-azure-rsa-tls-issuing-ca-04--by-digicert-global-root-g2.pem"
	azureIssuerSPKI = "13efae8ddadb64c188274780f505c2087b390fc001788cd0da602a1cf14dfa0b" // from issuers/SOURCE.md (openssl)
)

// The CT extensions, spelled out here independently of the package's DER
// constants.

func poisonExt() pkix.Extension {
	return pkix.Extension{
		Id:       asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3},
		Critical: true,
		Value:    []byte{0x05, 0x00}, // ASN.1 NULL
	}
}

func sctListExt() pkix.Extension {
	// extnValue holds an OCTET STRING with a TLS SignedCertificateTimestampList;
	// its content does not matter to the decoder.
	return pkix.Extension{
		Id:    asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2},
		Value: []byte{0x04, 0x06, 0x00, 0x04, 0x00, 0x02, 0xca, 0xfe},
	}
}

func precertSigningEKU() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 4}
}

// readDER reads one certificate from a PEM or DER file with the standard
// library only, so that fixtures do not depend on the code under test.
func readDER(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Ext(path) == ".der" {
		return data
	}
	ders := stdPEMCerts(data)
	if len(ders) != 1 {
		t.Fatalf("%s: %d PEM certificates, want 1", path, len(ders))
	}
	return ders[0]
}

// stdPEMCerts returns the DER of every CERTIFICATE block, using only
// encoding/pem.
func stdPEMCerts(data []byte) [][]byte {
	var out [][]byte
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out
		}
		if block.Type == "CERTIFICATE" {
			out = append(out, block.Bytes)
		}
	}
}

// stdParse parses with crypto/x509 and fails the test on error.
func stdParse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("crypto/x509: %v", err)
	}
	return c
}

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	der  []byte
	key  crypto.Signer
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCA makes a CA certificate, self-signed when parent is nil.
// precertSigner adds the Precertificate Signing Certificate EKU.
func newCA(t testing.TB, name string, parent *testCA, precertSigner bool) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"ctwatch tests"}},
		NotBefore:             time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	if precertSigner {
		tmpl.UnknownExtKeyUsage = []asn1.ObjectIdentifier{precertSigningEKU()}
	}
	signer, parentCert := crypto.Signer(key), tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: stdParse(t, der), der: der, key: key}
}

// issue has ca sign tmpl for the public key pub and returns the DER
// certificate.
func issue(t testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey, ca *testCA) []byte {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// selfSign signs tmpl with key and returns the DER certificate.
func selfSign(t testing.TB, tmpl *x509.Certificate, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// withExtensions returns a copy of tmpl whose ExtraExtensions are exts.
func withExtensions(tmpl *x509.Certificate, exts ...pkix.Extension) *x509.Certificate {
	c := *tmpl
	c.ExtraExtensions = exts
	return &c
}

// x509Leaf builds an RFC 6962 MerkleTreeLeaf holding an x509_entry.
func x509Leaf(timestamp uint64, der []byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(0) // v1
	b.AddUint8(0) // timestamped_entry
	b.AddUint64(timestamp)
	b.AddUint16(0) // x509_entry
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(der) })
	b.AddUint16LengthPrefixed(func(*cryptobyte.Builder) {}) // no extensions
	return b.BytesOrPanic()
}

// precertLeaf builds an RFC 6962 MerkleTreeLeaf holding a precert_entry.
func precertLeaf(timestamp uint64, issuerKeyHash [32]byte, tbs []byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(0)
	b.AddUint8(0)
	b.AddUint64(timestamp)
	b.AddUint16(1) // precert_entry
	b.AddBytes(issuerKeyHash[:])
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(tbs) })
	b.AddUint16LengthPrefixed(func(*cryptobyte.Builder) {})
	return b.BytesOrPanic()
}

// chainExtra builds the extra_data of an x509_entry: a certificate chain.
func chainExtra(chain ...[]byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	addChain(b, chain)
	return b.BytesOrPanic()
}

// precertExtra builds the extra_data of a precert_entry: a PrecertChainEntry.
func precertExtra(precert []byte, chain ...[]byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(precert) })
	addChain(b, chain)
	return b.BytesOrPanic()
}

func addChain(b *cryptobyte.Builder, chain [][]byte) {
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, der := range chain {
			b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(der) })
		}
	})
}

// replaceTBSField rebuilds a DER certificate (v3, so with a version field)
// with the TBSCertificate element at index i (0 version, 1 serial, 2
// signature algorithm, 3 issuer, 4 validity, 5 subject, 6 key) replaced by
// elem. The signature is left as it was, so it no longer verifies; parsers
// do not check it. It returns the new certificate and its TBSCertificate.
func replaceTBSField(t testing.TB, der []byte, i int, elem []byte) (cert, tbs []byte) {
	t.Helper()
	in := cryptobyte.String(der)
	var certSeq, tbsSeq cryptobyte.String
	if !in.ReadASN1(&certSeq, cbasn1.SEQUENCE) || !certSeq.ReadASN1(&tbsSeq, cbasn1.SEQUENCE) {
		t.Fatal("replaceTBSField: not a certificate")
	}
	var fields [][]byte
	for !tbsSeq.Empty() {
		var f cryptobyte.String
		if !tbsSeq.ReadAnyASN1Element(&f, nil) {
			t.Fatal("replaceTBSField: malformed tbs")
		}
		fields = append(fields, f)
	}
	fields[i] = elem
	tb := cryptobyte.NewBuilder(nil)
	tb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, f := range fields {
			b.AddBytes(f)
		}
	})
	tbs = tb.BytesOrPanic()
	cb := cryptobyte.NewBuilder(nil)
	cb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(certSeq) // signature algorithm and signature
	})
	return cb.BytesOrPanic(), tbs
}

func sum(b []byte) Hash { return sha256.Sum256(b) }
