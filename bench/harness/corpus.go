package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Extensions a generated certificate never copies from its corpus model,
// because they describe the model's own key, issuer, names or CT state:
// crypto/x509 writes the subject alternative names and the authority key ID
// for the bench CA, and the poison is added only to precertificates.
var (
	oidSAN     = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidSKI     = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidAKI     = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidPoison  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}
	oidSCTList = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}
)

// keyKind names a leaf key type and size ("rsa2048", "p256"). Generated
// certificates carry a key of their model's kind, so that entry sizes and
// the work of parsing them follow the real mix.
type keyKind string

// shape is what a generated certificate copies from one real certificate of
// testdata/corpus: its names (rewritten per entry), subject, key kind,
// validity length and the extensions that make up most of a real
// certificate's bytes (policies, AIA, CRL distribution points, key usages,
// embedded SCTs).
type shape struct {
	file     string // corpus file name, for messages
	dnsNames []string
	ips      []net.IP
	subject  pkix.Name
	// cnIsSAN is the index in dnsNames of the name the common name
	// repeats, -1 when it repeats none (then the CN is kept as is).
	cnIsSAN  int
	key      keyKind
	validity time.Duration
	// extensions are copied verbatim, minus the ones above.
	extensions []pkix.Extension
	// sctList is the model's embedded SCT list extension, if any: kept in
	// final certificates (real ones carry it), never in precertificates.
	sctList *pkix.Extension
}

// loadCorpus reads every PEM certificate in dir, sorted by file name so that
// the round-robin order is the same on every machine.
func loadCorpus(dir string) ([]shape, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.pem"))
	if err != nil {
		return nil, fmt.Errorf("list corpus: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.pem certificates in %s", dir)
	}
	slices.Sort(files)
	shapes := make([]shape, 0, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read corpus: %w", err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("%s: no PEM block", f)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		s, err := shapeOf(c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		s.file = filepath.Base(f)
		shapes = append(shapes, s)
	}
	return shapes, nil
}

// shapeOf extracts the shape of a real certificate.
func shapeOf(c *x509.Certificate) (shape, error) {
	k, err := kindOf(c.PublicKey)
	if err != nil {
		return shape{}, err
	}
	s := shape{
		dnsNames: slices.Clone(c.DNSNames),
		ips:      slices.Clone(c.IPAddresses),
		subject:  c.Subject,
		cnIsSAN:  -1,
		key:      k,
		validity: c.NotAfter.Sub(c.NotBefore),
	}
	// Names is what was parsed; ExtraNames is what crypto/x509 writes.
	// Writing the parsed attributes back keeps O, L, C and the rest.
	s.subject.ExtraNames = nil
	s.subject.Names = nil
	for i, n := range s.dnsNames {
		if strings.EqualFold(n, c.Subject.CommonName) {
			s.cnIsSAN = i
			break
		}
	}
	for _, e := range c.Extensions {
		switch {
		case e.Id.Equal(oidSAN), e.Id.Equal(oidSKI), e.Id.Equal(oidAKI), e.Id.Equal(oidPoison):
		case e.Id.Equal(oidSCTList):
			sct := e
			s.sctList = &sct
		default:
			s.extensions = append(s.extensions, e)
		}
	}
	return s, nil
}

// kindOf names the kind of a public key.
func kindOf(pub any) (keyKind, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return keyKind(fmt.Sprintf("rsa%d", k.N.BitLen())), nil
	case *ecdsa.PublicKey:
		switch k.Curve.Params().Name {
		case "P-256":
			return "p256", nil
		case "P-384":
			return "p384", nil
		case "P-521":
			return "p521", nil
		}
		return "", fmt.Errorf("unsupported curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return "ed25519", nil
	}
	return "", errors.New("unsupported public key type")
}
