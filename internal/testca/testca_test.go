package testca_test

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"sync"
	"testing"

	ctx509 "github.com/google/certificate-transparency-go/x509"

	"github.com/ctwatch/ctwatch/internal/testca"
)

// The CT extension OIDs as RFC 6962 section 3.1 spells them, written out here
// rather than taken from the package under test.
var (
	poisonOID  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}
	sctListOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}
)

func newCA(t testing.TB, name string) *testca.CA {
	t.Helper()
	ca, err := testca.New(name)
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	return ca
}

func parse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	return c
}

// verifyOpts trusts exactly ca's root and offers its Chain as intermediates,
// so a successful Verify proves that Chain is what a leaf needs.
func verifyOpts(t testing.TB, ca *testca.CA, dnsName string) x509.VerifyOptions {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.RootPEM()) {
		t.Fatal("RootPEM holds no certificate")
	}
	inters := x509.NewCertPool()
	for _, der := range ca.Chain()[:1] {
		inters.AddCert(parse(t, der))
	}
	return x509.VerifyOptions{
		DNSName:       dnsName,
		Roots:         roots,
		Intermediates: inters,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
}

func findExt(c *x509.Certificate, oid asn1.ObjectIdentifier) (int, bool) {
	for i, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return i, true
		}
	}
	return -1, false
}

func TestNewNamesAndChain(t *testing.T) {
	ca := newCA(t, "Qaznet Test")
	root, inter := ca.Root(), ca.Intermediate()

	if got, want := root.Subject.CommonName, "Qaznet Test Root CA"; got != want {
		t.Errorf("root CN = %q, want %q", got, want)
	}
	if got, want := inter.Subject.CommonName, "Qaznet Test Issuing CA"; got != want {
		t.Errorf("intermediate CN = %q, want %q", got, want)
	}
	if !root.IsCA || !inter.IsCA {
		t.Errorf("IsCA: root %v, intermediate %v; want both true", root.IsCA, inter.IsCA)
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root is not self-signed: %v", err)
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		t.Errorf("intermediate not signed by root: %v", err)
	}
	if !bytes.Equal(inter.RawIssuer, root.RawSubject) {
		t.Error("intermediate issuer != root subject")
	}

	block, rest := pem.Decode(ca.RootPEM())
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("RootPEM is not one CERTIFICATE block: %q", ca.RootPEM())
	}
	if !bytes.Equal(block.Bytes, root.Raw) {
		t.Error("RootPEM does not hold Root()")
	}

	chain := ca.Chain()
	if len(chain) != 2 {
		t.Fatalf("Chain has %d certificates, want 2", len(chain))
	}
	if !bytes.Equal(chain[0], inter.Raw) || !bytes.Equal(chain[1], root.Raw) {
		t.Error("Chain is not [intermediate, root]")
	}
	chain[0][0] ^= 0xff // Chain must hand out copies.
	if !bytes.Equal(ca.Chain()[0], inter.Raw) {
		t.Error("modifying Chain's result changed the CA")
	}

	if got := newCA(t, "").Root().Subject.CommonName; got != "testca Root CA" {
		t.Errorf("empty name: root CN = %q, want %q", got, "testca Root CA")
	}
}

func TestLeafVerifies(t *testing.T) {
	ca := newCA(t, "Leaf Test")
	der, err := ca.Leaf("www.bank.example", "bank.example", "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	leaf := parse(t, der)

	for _, name := range []string{"www.bank.example", "bank.example", "192.0.2.7"} {
		chains, err := leaf.Verify(verifyOpts(t, ca, name))
		if err != nil {
			t.Errorf("Verify(%s): %v", name, err)
			continue
		}
		if len(chains) != 1 || len(chains[0]) != 3 ||
			!chains[0][1].Equal(ca.Intermediate()) || !chains[0][2].Equal(ca.Root()) {
			t.Errorf("Verify(%s): chain is not leaf, intermediate, root", name)
		}
	}
	if _, err := leaf.Verify(verifyOpts(t, ca, "other.example")); err == nil {
		t.Error("leaf verified for a name it does not hold")
	}
	if got := leaf.DNSNames; len(got) != 2 || got[0] != "www.bank.example" || got[1] != "bank.example" {
		t.Errorf("DNSNames = %q", got)
	}
	if len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "192.0.2.7" {
		t.Errorf("IPAddresses = %v", leaf.IPAddresses)
	}
	if leaf.Subject.CommonName != "www.bank.example" {
		t.Errorf("CN = %q", leaf.Subject.CommonName)
	}

	other := newCA(t, "Other")
	if _, err := leaf.Verify(verifyOpts(t, other, "bank.example")); err == nil {
		t.Error("leaf verified under another CA's root")
	}
}

func TestLeafRejectsBadName(t *testing.T) {
	ca := newCA(t, "Bad Names")
	if der, err := ca.Leaf("bü.example"); err == nil {
		t.Errorf("non-ASCII DNS name accepted: %x", der)
	}
}

func TestSerialsUniqueConcurrent(t *testing.T) {
	ca := newCA(t, "Serials")
	const workers, each = 8, 16
	ders := make(chan []byte, workers*each*2)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				der, err := ca.Leaf("a.example")
				if err != nil {
					t.Error(err)
					return
				}
				pre, _, err := ca.PrecertPair("b.example")
				if err != nil {
					t.Error(err)
					return
				}
				ders <- der
				ders <- pre
			}
		}()
	}
	wg.Wait()
	close(ders)

	seen := map[string]bool{
		ca.Root().SerialNumber.String():         true,
		ca.Intermediate().SerialNumber.String(): true,
	}
	var spki []byte
	n := 0
	for der := range ders {
		c := parse(t, der)
		s := c.SerialNumber
		if s.Sign() <= 0 {
			t.Errorf("serial %v is not positive", s)
		}
		if len(s.Bytes()) > 20 {
			t.Errorf("serial %v longer than 20 octets", s)
		}
		if seen[s.String()] {
			t.Errorf("serial %v issued twice", s)
		}
		seen[s.String()] = true
		if spki == nil {
			spki = c.RawSubjectPublicKeyInfo
		} else if !bytes.Equal(spki, c.RawSubjectPublicKeyInfo) {
			t.Error("leaves do not share one key")
		}
		n++
	}
	if n != workers*each*2 {
		t.Errorf("got %d certificates, want %d", n, workers*each*2)
	}
}

func TestPrecertPair(t *testing.T) {
	ca := newCA(t, "Precert")
	preDER, finalDER, err := ca.PrecertPair("shop.example", "www.shop.example")
	if err != nil {
		t.Fatal(err)
	}
	pre, final := parse(t, preDER), parse(t, finalDER)

	i, ok := findExt(pre, poisonOID)
	if !ok {
		t.Fatal("precertificate has no poison extension")
	}
	if e := pre.Extensions[i]; !e.Critical || !bytes.Equal(e.Value, []byte{0x05, 0x00}) {
		t.Errorf("poison = critical %v value %x, want critical ASN.1 NULL", e.Critical, e.Value)
	}
	if err := pre.CheckSignatureFrom(ca.Intermediate()); err != nil {
		t.Errorf("precertificate not signed by the intermediate: %v", err)
	}
	if _, ok := findExt(final, poisonOID); ok {
		t.Error("final certificate carries the poison")
	}
	if _, ok := findExt(final, sctListOID); ok {
		t.Error("PrecertPair's final certificate carries an SCT list")
	}
	if _, err := final.Verify(verifyOpts(t, ca, "www.shop.example")); err != nil {
		t.Errorf("final certificate does not verify: %v", err)
	}

	// RFC 6962: the final TBS is the precertificate TBS without the poison.
	// ct-go's RemoveCTPoison is an independent implementation of that rule.
	want, err := ctx509.RemoveCTPoison(pre.RawTBSCertificate)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(final.RawTBSCertificate, want) {
		t.Error("final TBS != precertificate TBS without poison")
	}
	if final.SerialNumber.Cmp(pre.SerialNumber) != 0 || !bytes.Equal(final.RawSubject, pre.RawSubject) ||
		!final.NotAfter.Equal(pre.NotAfter) {
		t.Error("final certificate fields differ from the precertificate's")
	}
}

func TestFinalWithSCTs(t *testing.T) {
	ca := newCA(t, "SCTs")
	preDER, _, err := ca.PrecertPair("mail.example")
	if err != nil {
		t.Fatal(err)
	}
	pre := parse(t, preDER)
	// A SignedCertificateTimestampList of two opaque SCTs, TLS-encoded by
	// hand: uint16 list length, then uint16-prefixed SCTs.
	sct1 := []byte{0x00, 0xaa, 0xbb, 0xcc}
	sct2 := []byte{0x00, 0x11}
	sctList := []byte{0x00, 0x0a, 0x00, 0x04}
	sctList = append(sctList, sct1...)
	sctList = append(sctList, 0x00, 0x02)
	sctList = append(sctList, sct2...)

	finalDER, err := ca.FinalWithSCTs(preDER, sctList)
	if err != nil {
		t.Fatal(err)
	}
	final := parse(t, finalDER)
	if _, err := final.Verify(verifyOpts(t, ca, "mail.example")); err != nil {
		t.Errorf("final certificate does not verify: %v", err)
	}
	if _, ok := findExt(final, poisonOID); ok {
		t.Error("final certificate carries the poison")
	}
	i, ok := findExt(final, sctListOID)
	if !ok {
		t.Fatal("no SCT list extension")
	}
	e := final.Extensions[i]
	var inner []byte
	if rest, err := asn1.Unmarshal(e.Value, &inner); err != nil || len(rest) != 0 {
		t.Fatalf("SCT list value is not one OCTET STRING: %v, %d trailing bytes", err, len(rest))
	}
	if e.Critical || !bytes.Equal(inner, sctList) {
		t.Errorf("SCT list extension = critical %v, %x; want non-critical %x", e.Critical, inner, sctList)
	}

	// ct-go parses the embedded list on its own.
	ctFinal, err := ctx509.ParseCertificate(finalDER)
	if err != nil {
		t.Fatal(err)
	}
	if got := ctFinal.SCTList.SCTList; len(got) != 2 || !bytes.Equal(got[0].Val, sct1) || !bytes.Equal(got[1].Val, sct2) {
		t.Errorf("ct-go reads SCTs %v", got)
	}

	// Removing the SCT list gives back the precertificate without poison.
	withoutSCTs, err := ctx509.RemoveSCTList(final.RawTBSCertificate)
	if err != nil {
		t.Fatal(err)
	}
	withoutPoison, err := ctx509.RemoveCTPoison(pre.RawTBSCertificate)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(withoutSCTs, withoutPoison) {
		t.Error("final TBS without SCTs != precertificate TBS without poison")
	}
}

func TestFinalWithSCTsErrors(t *testing.T) {
	ca := newCA(t, "Errors")
	leaf, err := ca.Leaf("plain.example")
	if err != nil {
		t.Fatal(err)
	}
	foreignPre, _, err := newCA(t, "Foreign").PrecertPair("x.example")
	if err != nil {
		t.Fatal(err)
	}
	pre, _, err := ca.PrecertPair("y.example")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		precert []byte
	}{
		{"nil", nil},
		{"garbage", []byte("not a certificate")},
		{"truncated", pre[:len(pre)/2]},
		{"not a precertificate", leaf},
		{"other CA's precertificate", foreignPre},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if der, err := ca.FinalWithSCTs(tc.precert, []byte{0, 0}); err == nil {
				t.Errorf("FinalWithSCTs succeeded: %x", der)
			}
		})
	}
}

func BenchmarkLeaf(b *testing.B) {
	ca := newCA(b, "Bench")
	for b.Loop() {
		if _, err := ca.Leaf("bench.example", "www.bench.example"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPrecertPair(b *testing.B) {
	ca := newCA(b, "Bench")
	for b.Loop() {
		if _, _, err := ca.PrecertPair("bench.example"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNew(b *testing.B) {
	for b.Loop() {
		if _, err := testca.New("Bench"); err != nil {
			b.Fatal(err)
		}
	}
}
