package logtest_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"

	"github.com/ctwatch/ctwatch/internal/testca"
	"github.com/ctwatch/ctwatch/monitor/logtest"
)

func TestLogKey(t *testing.T) {
	fresh, pubDER, err := logtest.LogKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Curve != elliptic.P256() {
		t.Errorf("fresh key on %v, want P-256", fresh.Curve.Params().Name)
	}
	pub, err := x509.ParsePKIXPublicKey(pubDER)
	if err != nil {
		t.Fatal(err)
	}
	if !fresh.PublicKey.Equal(pub) {
		t.Error("public key DER is not the key's")
	}
	again, _, err := logtest.LogKey(nil)
	if err != nil || again.Equal(fresh) {
		t.Errorf("second fresh key: equal %v, err %v", again.Equal(fresh), err)
	}
	same, sameDER, err := logtest.LogKey(fresh)
	if err != nil || same != fresh || !bytes.Equal(sameDER, pubDER) {
		t.Errorf("LogKey(key) = another key or DER, err %v", err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := logtest.LogKey(p384); err == nil {
		t.Error("LogKey accepted a P-384 key")
	}
}

func TestSignTreeHead(t *testing.T) {
	key, _, err := logtest.LogKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ct.NewSignatureVerifier(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	root := sha256.Sum256([]byte("root"))
	const ts, size = 1700000000123, 42
	ds, err := logtest.SignTreeHead(key, ts, size, root[:])
	if err != nil {
		t.Fatal(err)
	}
	// certificate-transparency-go decodes and verifies it independently.
	sth := ct.SignedTreeHead{Version: ct.V1, TreeSize: size, Timestamp: ts, SHA256RootHash: root}
	if rest, err := cttls.Unmarshal(ds, &sth.TreeHeadSignature); err != nil || len(rest) != 0 {
		t.Fatalf("DigitallySigned does not decode: %v, %d trailing bytes", err, len(rest))
	}
	if err := v.VerifySTHSignature(sth); err != nil {
		t.Errorf("VerifySTHSignature: %v", err)
	}
	for _, forged := range []func(s *ct.SignedTreeHead){
		func(s *ct.SignedTreeHead) { s.TreeSize++ },
		func(s *ct.SignedTreeHead) { s.Timestamp++ },
		func(s *ct.SignedTreeHead) { s.SHA256RootHash[0] ^= 1 },
	} {
		f := sth
		forged(&f)
		if err := v.VerifySTHSignature(f); err == nil {
			t.Error("signature verifies for another tree head")
		}
	}

	bad := logtest.CorruptSignature(ds)
	if bytes.Equal(bad, ds) || len(bad) != len(ds) {
		t.Fatal("CorruptSignature changed nothing or the length")
	}
	corrupted := sth
	if _, err := cttls.Unmarshal(bad, &corrupted.TreeHeadSignature); err != nil {
		t.Fatalf("corrupted signature is malformed: %v", err)
	}
	if err := v.VerifySTHSignature(corrupted); err == nil {
		t.Error("corrupted signature verifies")
	}
	if err := v.VerifySTHSignature(sth); err != nil {
		t.Errorf("CorruptSignature modified its argument: %v", err)
	}
	if got := logtest.CorruptSignature(nil); len(got) != 0 {
		t.Errorf("CorruptSignature(nil) = %x", got)
	}

	if _, err := logtest.SignTreeHead(key, ts, size, root[:31]); err == nil {
		t.Error("SignTreeHead accepted a 31-byte root")
	}
}

func TestClock(t *testing.T) {
	var c logtest.Clock
	before := uint64(time.Now().UnixMilli())
	last := uint64(0)
	for i := range 1000 {
		got := c.Now()
		if got <= last {
			t.Fatalf("call %d: %d not after %d", i, got, last)
		}
		last = got
	}
	// 1000 calls run well within a second: the timestamps stay near now.
	if last < before || last > before+60_000 {
		t.Errorf("last timestamp %d, started at %d", last, before)
	}
}

func TestPrecertTBS(t *testing.T) {
	ca, err := testca.New("logtest")
	if err != nil {
		t.Fatal(err)
	}
	pre, final, err := ca.PrecertPair("login.bank.example")
	if err != nil {
		t.Fatal(err)
	}
	finalCert, err := x509.ParseCertificate(final)
	if err != nil {
		t.Fatal(err)
	}
	tbs, keyHash, err := logtest.PrecertTBS(pre, ca.Intermediate())
	if err != nil {
		t.Fatal(err)
	}
	// The final certificate is the precertificate without poison (and
	// without SCTs, which testca's final has none of).
	if !bytes.Equal(tbs, finalCert.RawTBSCertificate) {
		t.Error("TBS is not the final certificate's TBSCertificate")
	}
	if want := sha256.Sum256(ca.Intermediate().RawSubjectPublicKeyInfo); keyHash != want {
		t.Errorf("issuer key hash %x, want %x", keyHash, want)
	}

	leaf, err := ca.Leaf("not-pre.example")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		precert []byte
		issuer  *x509.Certificate
	}{
		{"nil issuer", pre, nil},
		{"empty", nil, ca.Intermediate()},
		{"garbage", []byte("garbage"), ca.Intermediate()},
		{"truncated", pre[:len(pre)-10], ca.Intermediate()},
		{"no poison", leaf, ca.Intermediate()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tbs, _, err := logtest.PrecertTBS(tc.precert, tc.issuer); err == nil || tbs != nil {
				t.Errorf("PrecertTBS = %d bytes, %v; want an error", len(tbs), err)
			}
		})
	}
}
