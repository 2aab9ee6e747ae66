package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// benchCA is the certificate authority of one bench run: a root (what the
// logs accept, in their roots file) and an intermediate that signs every
// entry. internal/testca has no way to issue leaves of other key types or
// with copied extensions, so the harness keeps its own. ECDSA P-256 signs
// everything: an RSA issuer would make filling a 100,000-entry log cost
// minutes of CPU and change little of what a monitor does per entry.
type benchCA struct {
	root, inter *x509.Certificate
	interKey    *ecdsa.PrivateKey
	chain       [][]byte // intermediate, root: what follows a leaf in add-chain
	keys        *keyPool
	serial      atomic.Uint64
	serialBase  [8]byte
}

// newBenchCA creates the CA and a key pool holding the kinds in kinds.
func newBenchCA(kinds []keyKind) (*benchCA, error) {
	ca := &benchCA{}
	if _, err := rand.Read(ca.serialBase[:]); err != nil {
		return nil, fmt.Errorf("serial base: %w", err)
	}
	ca.serialBase[0] = ca.serialBase[0]&0x3f | 0x40 // positive, 16 bytes
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	if ca.interKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, fmt.Errorf("intermediate key: %w", err)
	}
	now := time.Now().Truncate(time.Second)
	rootTmpl := &x509.Certificate{
		SerialNumber:          ca.nextSerial(),
		Subject:               pkix.Name{CommonName: "ctwatch bench Root CA", Organization: []string{"ctwatch bench"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if ca.root, err = createParsed(rootTmpl, rootTmpl, rootKey.Public(), rootKey); err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	// No EKU on the intermediate: leaves copy their model's EKUs (often
	// serverAuth and clientAuth), and a chain verifier that nests EKUs
	// must accept all of them.
	interTmpl := &x509.Certificate{
		SerialNumber:          ca.nextSerial(),
		Subject:               pkix.Name{CommonName: "ctwatch bench Issuing CA", Organization: []string{"ctwatch bench"}, Country: []string{"ZZ"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	if ca.inter, err = createParsed(interTmpl, ca.root, ca.interKey.Public(), rootKey); err != nil {
		return nil, fmt.Errorf("intermediate: %w", err)
	}
	ca.chain = [][]byte{ca.inter.Raw, ca.root.Raw}
	if ca.keys, err = newKeyPool(kinds); err != nil {
		return nil, err
	}
	return ca, nil
}

func createParsed(tmpl, parent *x509.Certificate, pub crypto.PublicKey, priv crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return c, nil
}

// rootPEM is the root as the logs' roots file holds it.
func (ca *benchCA) rootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.root.Raw})
}

func (ca *benchCA) nextSerial() *big.Int {
	var b [16]byte
	copy(b[:8], ca.serialBase[:])
	n := ca.serial.Add(1)
	for i := range 8 {
		b[15-i] = byte(n >> (8 * i))
	}
	return new(big.Int).SetBytes(b[:])
}

// template builds the certificate of e, valid from now on for its model's
// validity length.
func (ca *benchCA) template(e entrySpec, now time.Time) *x509.Certificate {
	s := e.shape
	t := &x509.Certificate{
		SerialNumber: ca.nextSerial(),
		Subject:      s.subject,
		NotBefore:    now.Add(-time.Hour),
		DNSNames:     e.names,
		IPAddresses:  s.ips,
	}
	t.NotAfter = t.NotBefore.Add(s.validity)
	t.Subject.CommonName = e.cn
	t.ExtraExtensions = append(t.ExtraExtensions, s.extensions...)
	if e.precert {
		t.ExtraExtensions = append(t.ExtraExtensions, pkix.Extension{Id: oidPoison, Critical: true, Value: []byte{0x05, 0x00}})
	} else if s.sctList != nil {
		t.ExtraExtensions = append(t.ExtraExtensions, *s.sctList)
	}
	return t
}

// issue signs entry e and returns its DER: a precertificate (poison
// extension) when e.precert, else a final certificate.
func (ca *benchCA) issue(e entrySpec, now time.Time) ([]byte, error) {
	pub, err := ca.keys.public(e.shape.key, e.n)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, ca.template(e, now), ca.inter, pub, ca.interKey)
	if err != nil {
		return nil, fmt.Errorf("entry %d (model %s): %w", e.n, e.shape.file, err)
	}
	return der, nil
}

// keyPool holds a few pre-generated keys of each kind: generating an RSA key
// per certificate would cost more than everything else the harness does.
type keyPool struct {
	keys map[keyKind][]crypto.PublicKey
}

// poolSize is how many keys of a kind the pool holds: enough that
// consecutive entries of a kind rarely share a key, few enough that RSA 4096
// generation takes seconds.
func poolSize(k keyKind) int {
	if strings.HasPrefix(string(k), "rsa") {
		if bits, _ := strconv.Atoi(strings.TrimPrefix(string(k), "rsa")); bits > 2048 {
			return 1
		}
		return 3
	}
	return 8
}

func newKeyPool(kinds []keyKind) (*keyPool, error) {
	p := &keyPool{keys: map[keyKind][]crypto.PublicKey{}}
	for _, k := range kinds {
		if _, done := p.keys[k]; done {
			continue
		}
		for range poolSize(k) {
			pub, err := generateKey(k)
			if err != nil {
				return nil, err
			}
			p.keys[k] = append(p.keys[k], pub)
		}
	}
	return p, nil
}

func generateKey(k keyKind) (crypto.PublicKey, error) {
	switch k {
	case "p256", "p384", "p521":
		curve := map[keyKind]elliptic.Curve{"p256": elliptic.P256(), "p384": elliptic.P384(), "p521": elliptic.P521()}[k]
		key, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate %s key: %w", k, err)
		}
		return key.Public(), nil
	case "ed25519":
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate %s key: %w", k, err)
		}
		return pub, nil
	}
	bits, err := strconv.Atoi(strings.TrimPrefix(string(k), "rsa"))
	if !strings.HasPrefix(string(k), "rsa") || err != nil {
		return nil, fmt.Errorf("unknown key kind %q", k)
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", k, err)
	}
	return key.Public(), nil
}

// public returns a key of kind k for entry n.
func (p *keyPool) public(k keyKind, n int) (crypto.PublicKey, error) {
	keys := p.keys[k]
	if len(keys) == 0 {
		return nil, fmt.Errorf("no %s key in the pool", k)
	}
	return keys[n%len(keys)], nil
}

// kindsOf lists the key kinds of shapes, each once.
func kindsOf(shapes []shape) []keyKind {
	seen := map[keyKind]bool{}
	var kinds []keyKind
	for _, s := range shapes {
		if !seen[s.key] {
			seen[s.key] = true
			kinds = append(kinds, s.key)
		}
	}
	return kinds
}
