package rules

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/event"
)

// selfSigned returns a freshly generated self-signed certificate for names.
func selfSigned(t *testing.T, serial int64, names ...string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemOf(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

func exampleEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := Load([]string{"../configs/rules/example.yaml"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return e
}

func TestCheckText(t *testing.T) {
	e := exampleEngine(t)
	hit := selfSigned(t, 1, "www.example.com")
	miss := selfSigned(t, 2, "www.example.org")
	var out bytes.Buffer
	n, err := Check(t.Context(), e, []CheckInput{
		{Name: "certs.pem", Data: pemOf(hit, miss)},
		{Name: "single.der", Data: miss.Raw},
	}, &out, false)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if n != 1 {
		t.Errorf("hits = %d, want 1", n)
	}
	want := `certs.pem#1: high example-any-name: dns name "www.example.com" matches watched ".example.com"` + "\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestCheckJSON(t *testing.T) {
	e := exampleEngine(t)
	hit := selfSigned(t, 1, "www.example.com")
	miss := selfSigned(t, 2, "www.example.org")
	var out bytes.Buffer
	n, err := Check(t.Context(), e, []CheckInput{{Name: "-", Data: pemOf(miss, hit)}}, &out, true)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if n != 1 {
		t.Fatalf("hits = %d, want 1", n)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1:\n%s", len(lines), out.String())
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(lines[0]), &raw); err != nil {
		t.Fatalf("line is not JSON: %v", err)
	}
	if _, ok := raw["log"]; ok {
		t.Errorf("hit from check has a log: %s", lines[0])
	}
	var h event.Hit
	if err := json.Unmarshal([]byte(lines[0]), &h); err != nil {
		t.Fatal(err)
	}
	// The certificate has no CT extensions, so its TBS hash is the SHA-256
	// of its TBSCertificate as issued.
	tbs := sha256.Sum256(hit.RawTBSCertificate)
	id := sha256.Sum256(append([]byte("example-any-name\x00"), tbs[:]...))
	certHash := sha256.Sum256(hit.Raw)
	if h.ID != hex.EncodeToString(id[:16]) {
		t.Errorf("ID = %s, want %x", h.ID, id[:16])
	}
	if h.Rule != "example-any-name" || h.Severity != event.SeverityHigh ||
		h.Reason != `dns name "www.example.com" matches watched ".example.com"` {
		t.Errorf("hit = %+v", h)
	}
	if h.Cert.SHA256 != hex.EncodeToString(certHash[:]) || h.Cert.TBSSHA256 != hex.EncodeToString(tbs[:]) {
		t.Errorf("cert hashes = %s, %s; want %x, %x", h.Cert.SHA256, h.Cert.TBSSHA256, certHash, tbs)
	}
	if len(h.Cert.DNSNames) != 1 || h.Cert.DNSNames[0] != "www.example.com" {
		t.Errorf("cert dns names = %q", h.Cert.DNSNames)
	}
}

func TestCheckBadInputs(t *testing.T) {
	e := exampleEngine(t)
	hit := selfSigned(t, 1, "www.example.com")
	broken := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x01}})
	var out bytes.Buffer
	n, err := Check(t.Context(), e, []CheckInput{
		{Name: "garbage.txt", Data: []byte("not a certificate")},
		{Name: "broken.pem", Data: broken},
		{Name: "good.pem", Data: pemOf(hit)},
	}, &out, false)
	if n != 1 {
		t.Errorf("hits = %d, want 1 (bad inputs must not stop the others)", n)
	}
	if err == nil {
		t.Fatal("Check returned no error for unreadable inputs")
	}
	for _, name := range []string{"garbage.txt: ", "broken.pem: "} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	if !strings.HasPrefix(out.String(), "good.pem: high example-any-name: ") {
		t.Errorf("output = %q", out.String())
	}
}

func TestCheckCancelled(t *testing.T) {
	e := exampleEngine(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out bytes.Buffer
	n, err := Check(ctx, e, []CheckInput{{Name: "a.pem", Data: pemOf(selfSigned(t, 1, "www.example.com"))}}, &out, false)
	if !errors.Is(err, context.Canceled) || n != 0 || out.Len() != 0 {
		t.Errorf("Check on cancelled context = %d, %v, output %q", n, err, out.String())
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestCheckWriteError(t *testing.T) {
	e := exampleEngine(t)
	n, err := Check(t.Context(), e, []CheckInput{{Name: "a.pem", Data: pemOf(selfSigned(t, 1, "www.example.com"))}}, failingWriter{}, true)
	if err == nil || !strings.Contains(err.Error(), "disk full") || n != 0 {
		t.Errorf("Check with failing writer = %d, %v", n, err)
	}
}
