package cert

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ctx509 "github.com/google/certificate-transparency-go/x509"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// manifestRow is one line of testdata/corpus/manifest.tsv, which was written
// by the data set's collector, not by this package.
type manifestRow struct {
	sha256   string
	dnsSANs  int
	key      string
	notAfter string // YYYY-MM-DD
}

func readManifest(t *testing.T) []manifestRow {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(corpusDir, "manifest.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	header := strings.Split(lines[0], "\t")
	col := func(name string) int {
		i := slices.Index(header, name)
		if i < 0 {
			t.Fatalf("manifest has no %q column", name)
		}
		return i
	}
	iSHA, iSANs, iKey, iNotAfter := col("sha256"), col("dns_sans"), col("key"), col("not_after")
	var rows []manifestRow
	for _, line := range lines[1:] {
		f := strings.Split(line, "\t")
		n, err := strconv.Atoi(f[iSANs])
		if err != nil {
			t.Fatalf("manifest line %q: %v", line, err)
		}
		rows = append(rows, manifestRow{sha256: f[iSHA], dnsSANs: n, key: f[iKey], notAfter: f[iNotAfter]})
	}
	return rows
}

// TestCorpus decodes every real certificate of the corpus and checks it
// against the manifest, an independent description of the same files.
func TestCorpus(t *testing.T) {
	rows := readManifest(t)
	if len(rows) != 315 {
		t.Fatalf("manifest has %d rows, want 315", len(rows))
	}
	for _, row := range rows {
		t.Run(row.sha256[:16], func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(corpusDir, "certs", row.sha256[:16]+".pem"))
			if err != nil {
				t.Fatal(err)
			}
			ders, err := SplitPEMOrDER(data)
			if err != nil || len(ders) != 1 {
				t.Fatalf("SplitPEMOrDER: %d certificates, err %v; want 1", len(ders), err)
			}
			c, err := Parse(ders[0])
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := hex.EncodeToString(c.SHA256[:]); got != row.sha256 {
				t.Errorf("SHA256 = %s, want %s", got, row.sha256)
			}
			// Every corpus certificate repeats its CN among its SANs, and none
			// repeats a SAN, so the names are exactly the SANs.
			if len(c.DNSNames) != row.dnsSANs {
				t.Errorf("%d DNS names, manifest says %d DNS SANs", len(c.DNSNames), row.dnsSANs)
			}
			if c.KeyType != row.key {
				t.Errorf("KeyType = %q, want %q", c.KeyType, row.key)
			}
			if got := c.NotAfter.Format(time.DateOnly); got != row.notAfter {
				t.Errorf("NotAfter = %s, want %s", got, row.notAfter)
			}
			if c.NotAfter.Location() != time.UTC || c.NotBefore.Location() != time.UTC {
				t.Error("validity times are not in UTC")
			}
			if !c.NotBefore.Before(c.NotAfter) {
				t.Errorf("NotBefore %v not before NotAfter %v", c.NotBefore, c.NotAfter)
			}
			if c.Precert {
				t.Error("Precert = true; the corpus holds no precertificates")
			}
			if c.Subject == "" || c.Issuer == "" {
				t.Errorf("Subject %q, Issuer %q: want both", c.Subject, c.Issuer)
			}
			if !c.IssuerSPKIHash.IsZero() || c.Chain != nil {
				t.Error("a lone certificate has an issuer key hash or chain")
			}
		})
	}
}

// TestRealX509Entry decodes a real certificate and its real issuer as an
// RFC 6962 x509_entry; the issuer key hash is the one openssl computed.
func TestRealX509Entry(t *testing.T) {
	leafDER, issuerDER := readDER(t, azureLeafPEM), readDER(t, azureIssuerPEM)
	leaf := stdParse(t, leafDER)

	c, ts, err := DecodeRFC6962Entry(x509Leaf(1700000000123, leafDER), chainExtra(issuerDER))
	if err != nil {
		t.Fatal(err)
	}
	if ts != 1700000000123 {
		t.Errorf("timestamp = %d", ts)
	}
	if got := c.IssuerSPKIHash.String(); got != azureIssuerSPKI {
		t.Errorf("IssuerSPKIHash = %s, want %s", got, azureIssuerSPKI)
	}
	if want := []Hash{sum(issuerDER)}; !slices.Equal(c.Chain, want) {
		t.Errorf("Chain = %v, want %v", c.Chain, want)
	}
	if c.SHA256 != sum(leafDER) {
		t.Error("SHA256 is not the hash of the leaf certificate")
	}
	if c.Issuer != leaf.Issuer.String() || c.Subject != leaf.Subject.String() {
		t.Errorf("Subject/Issuer = %q / %q, want %q / %q", c.Subject, c.Issuer, leaf.Subject, leaf.Issuer)
	}
	if c.KeyType != "RSA" || c.KeySize != 2048 {
		t.Errorf("key = %s %d, want RSA 2048", c.KeyType, c.KeySize)
	}
	var want []string
	for _, n := range leaf.DNSNames {
		want = append(want, strings.ToLower(n))
	}
	if !slices.Equal(c.DNSNames, want) {
		t.Errorf("DNSNames = %v, want %v", c.DNSNames, want)
	}
	// The leaf carries embedded SCTs, so its TBS hash is not the plain hash
	// of its TBS; ct-go's RemoveSCTList is an independent implementation of
	// the removal.
	stripped, err := ctx509.RemoveSCTList(leaf.RawTBSCertificate)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(stripped, leaf.RawTBSCertificate) {
		t.Fatal("test premise: the leaf should carry an SCT list")
	}
	if c.TBSHash != sum(stripped) {
		t.Error("TBSHash differs from the hash of the TBS without SCT list")
	}
}

// TestRealPrecertificate uses a real precertificate from Google's CT test
// infrastructure and its real issuing intermediate.
func TestRealPrecertificate(t *testing.T) {
	precertDER := readDER(t, filepath.Join(ctGoDir, "submission_hammer_testdata_precert.der"))
	interDER := readDER(t, filepath.Join(ctGoDir, "submission_hammer_testdata_intermediate.der"))
	precert, inter := stdParse(t, precertDER), stdParse(t, interDER)
	wantIssuerKey := Hash(sha256.Sum256(inter.RawSubjectPublicKeyInfo))
	// The TBS a log puts in the Merkle leaf: the precertificate's without the
	// poison, built here by ct-go's independent implementation.
	leafTBS, err := ctx509.RemoveCTPoison(precert.RawTBSCertificate)
	if err != nil {
		t.Fatal(err)
	}

	lone, err := Parse(precertDER)
	if err != nil {
		t.Fatal(err)
	}
	if !lone.Precert {
		t.Error("Parse: Precert = false for a certificate with the poison")
	}
	if lone.TBSHash != sum(leafTBS) {
		t.Error("Parse: TBSHash is not the hash of the TBS without poison")
	}

	fromLeaf, ts, err := DecodeRFC6962Entry(
		precertLeaf(1530000000000, wantIssuerKey, leafTBS),
		precertExtra(precertDER, interDER))
	if err != nil {
		t.Fatal(err)
	}
	if ts != 1530000000000 {
		t.Errorf("timestamp = %d", ts)
	}
	direct, err := FromPrecert(leafTBS, precertDER, [][]byte{interDER})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Cert{"DecodeRFC6962Entry": fromLeaf, "FromPrecert": direct} {
		t.Run(name, func(t *testing.T) {
			if !c.Precert {
				t.Error("Precert = false")
			}
			if c.IssuerSPKIHash != wantIssuerKey {
				t.Errorf("IssuerSPKIHash = %s, want %s", c.IssuerSPKIHash, wantIssuerKey)
			}
			if c.SHA256 != sum(precertDER) {
				t.Error("SHA256 is not the hash of the submitted precertificate")
			}
			if c.TBSHash != lone.TBSHash {
				t.Error("TBSHash differs from the one of the precertificate file")
			}
			if !slices.Equal(c.Chain, []Hash{sum(interDER)}) {
				t.Errorf("Chain = %v", c.Chain)
			}
			if c.Issuer != precert.Issuer.String() || c.Subject != precert.Subject.String() {
				t.Errorf("Subject/Issuer = %q / %q", c.Subject, c.Issuer)
			}
			if !slices.Equal(c.DNSNames, precert.DNSNames) {
				t.Errorf("DNSNames = %v, want %v", c.DNSNames, precert.DNSNames)
			}
			if !c.NotAfter.Equal(precert.NotAfter) || !c.NotBefore.Equal(precert.NotBefore) {
				t.Errorf("validity = %v..%v", c.NotBefore, c.NotAfter)
			}
		})
	}
}

// TestLenientFallback feeds certificates that crypto/x509 rejects but the
// certificate-transparency-go parser reads.
func TestLenientFallback(t *testing.T) {
	// A real certificate (shorearchief.com) whose RSA key lacks the NULL
	// algorithm parameters. The expected names and key size are those of the
	// openssl text dump at the top of the file.
	real := stdPEMCerts(mustRead(t, filepath.Join(zlintDir, "rsaAlgIDNoNULLParams.pem")))[0]

	// A generated certificate rewritten to have a negative serial number.
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "negative.example"},
		DNSNames:     []string{"negative.example", "www.negative.example"},
		NotBefore:    time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes([]byte{0x80, 0x01}) }) // -32767
	negative, negativeTBS := replaceTBSField(t, selfSign(t, tmpl, key), 1, b.BytesOrPanic())

	tests := []struct {
		name      string
		der       []byte
		wantNames []string
		wantTBS   Hash // zero: not checked
		wantKey   string
		wantBits  int
	}{
		{name: "real RSA key without NULL parameters", der: real,
			wantNames: []string{"www.shorearchief.com", "shorearchief.com"}, wantKey: "RSA", wantBits: 2048},
		{name: "negative serial number", der: negative,
			wantNames: tmpl.DNSNames, wantTBS: sum(negativeTBS), wantKey: "ECDSA", wantBits: 256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := x509.ParseCertificate(tt.der); err == nil {
				t.Fatal("test premise: crypto/x509 should reject this certificate")
			}
			c, err := Parse(tt.der)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !slices.Equal(c.DNSNames, tt.wantNames) {
				t.Errorf("DNSNames = %v, want %v", c.DNSNames, tt.wantNames)
			}
			if c.KeyType != tt.wantKey || c.KeySize != tt.wantBits {
				t.Errorf("key = %s %d, want %s %d", c.KeyType, c.KeySize, tt.wantKey, tt.wantBits)
			}
			if c.SHA256 != sum(tt.der) {
				t.Error("SHA256 is not the hash of the certificate")
			}
			if !tt.wantTBS.IsZero() && c.TBSHash != tt.wantTBS {
				t.Error("TBSHash is not the hash of the TBS")
			}
			if c.Subject == "" || c.NotAfter.IsZero() {
				t.Errorf("fields missing: subject %q, not after %v", c.Subject, c.NotAfter)
			}
		})
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
