// Package testca issues real X.509 certificates for tests: a root, an
// intermediate under it, server leaves, and CT precertificates with their final
// certificates.
//
// Tests need certificates that real parsers and verifiers accept, built in
// microseconds rather than read from files that cannot express the case at
// hand (a precertificate and its final certificate, a leaf for a given name).
// Everything here is ECDSA P-256 signed with SHA-256, and every leaf shares one
// key because key generation dominates the cost of issuing.
package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// OIDs of the two Certificate Transparency extensions (RFC 6962 section 3.1),
// never modified: oidPoison marks a precertificate (critical, value ASN.1
// NULL), oidSCTList carries the SCTs embedded in a final certificate.
var (
	oidPoison  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}
	oidSCTList = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}
)

// Validity periods. Leaves start an hour in the past so that a verifier whose
// clock is slightly behind still accepts them.
const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	leafLifetime = 90 * 24 * time.Hour
	backdate     = time.Hour
)

// CA is a two-level certificate authority: a self-signed root and an
// intermediate that issues every leaf and precertificate.
//
// A CA is immutable after New except for its serial counter, so all methods
// are safe for concurrent use. Certificates returned as *x509.Certificate are
// shared: callers must not modify them.
type CA struct {
	root, inter       *x509.Certificate
	interKey, leafKey *ecdsa.PrivateKey
	rootPEM           []byte

	// Serials are serialPrefix followed by a counter: unique within a CA by
	// construction and, through the random prefix, across CAs.
	serialPrefix [8]byte
	serial       atomic.Uint64
}

// New creates a CA whose certificate names are derived from name (an empty
// name becomes "testca"): the root is "<name> Root CA", the intermediate
// "<name> Issuing CA", both with organization name.
func New(name string) (*CA, error) {
	if name == "" {
		name = "testca"
	}
	ca := &CA{}
	if _, err := rand.Read(ca.serialPrefix[:]); err != nil {
		return nil, fmt.Errorf("testca: serial prefix: %w", err)
	}
	// Positive and non-zero whatever the counter holds.
	ca.serialPrefix[0] = ca.serialPrefix[0]&0x7f | 0x40

	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testca: root key: %w", err)
	}
	if ca.interKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, fmt.Errorf("testca: intermediate key: %w", err)
	}
	if ca.leafKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, fmt.Errorf("testca: leaf key: %w", err)
	}

	now := time.Now().Truncate(time.Second)
	rootTmpl := &x509.Certificate{
		SerialNumber:          ca.nextSerial(),
		Subject:               pkix.Name{CommonName: name + " Root CA", Organization: []string{name}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	if ca.root, err = create(rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey); err != nil {
		return nil, fmt.Errorf("testca: root: %w", err)
	}
	interTmpl := &x509.Certificate{
		SerialNumber:          ca.nextSerial(),
		Subject:               pkix.Name{CommonName: name + " Issuing CA", Organization: []string{name}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	if ca.inter, err = create(interTmpl, ca.root, &ca.interKey.PublicKey, rootKey); err != nil {
		return nil, fmt.Errorf("testca: intermediate: %w", err)
	}
	ca.rootPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.root.Raw})
	return ca, nil
}

// create issues and parses one certificate.
func create(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse issued certificate: %w", err)
	}
	return c, nil
}

// nextSerial returns a serial number never returned before by this CA.
func (ca *CA) nextSerial() *big.Int {
	var b [16]byte
	copy(b[:8], ca.serialPrefix[:])
	binary.BigEndian.PutUint64(b[8:], ca.serial.Add(1))
	return new(big.Int).SetBytes(b[:])
}

// RootPEM returns the root certificate PEM-encoded, as trust stores and log
// root lists hold it. The returned slice is a fresh copy.
func (ca *CA) RootPEM() []byte {
	return append([]byte(nil), ca.rootPEM...)
}

// Root returns the self-signed root. It is shared: do not modify it.
func (ca *CA) Root() *x509.Certificate { return ca.root }

// Intermediate returns the issuing CA certificate. It is shared: do not
// modify it.
func (ca *CA) Intermediate() *x509.Certificate { return ca.inter }

// Chain returns the DER certificates that follow a leaf in an add-chain
// request or a log entry's chain: the intermediate, then the root. The slices
// are fresh copies.
func (ca *CA) Chain() [][]byte {
	return [][]byte{
		append([]byte(nil), ca.inter.Raw...),
		append([]byte(nil), ca.root.Raw...),
	}
}

// leafTemplate describes a TLS server certificate for names. Entries that
// parse as IP addresses become iPAddress SANs, the rest dNSName SANs; the
// first name is also the subject common name, as many CAs still do.
func (ca *CA) leafTemplate(names []string) *x509.Certificate {
	now := time.Now().Truncate(time.Second)
	t := &x509.Certificate{
		SerialNumber:          ca.nextSerial(),
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(leafLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if len(names) > 0 {
		t.Subject.CommonName = names[0]
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			t.IPAddresses = append(t.IPAddresses, ip)
		} else {
			t.DNSNames = append(t.DNSNames, n)
		}
	}
	return t
}

// Leaf issues a TLS server certificate for names from the intermediate and
// returns its DER. Each call has a new serial number; all leaves share one
// key. It fails when crypto/x509 refuses a name (for example a non-ASCII DNS
// name).
func (ca *CA) Leaf(names ...string) ([]byte, error) {
	der, err := x509.CreateCertificate(rand.Reader, ca.leafTemplate(names), ca.inter, &ca.leafKey.PublicKey, ca.interKey)
	if err != nil {
		return nil, fmt.Errorf("testca: leaf: %w", err)
	}
	return der, nil
}

// PrecertPair issues a precertificate for names directly from the intermediate
// (no precertificate signing certificate) and the final certificate made from
// it. The final certificate's TBSCertificate is the precertificate's with the
// poison extension removed and nothing else changed, which is what RFC 6962
// requires of a CA; it carries no SCT list (see FinalWithSCTs for that).
func (ca *CA) PrecertPair(names ...string) (precert, final []byte, err error) {
	t := ca.leafTemplate(names)
	t.ExtraExtensions = []pkix.Extension{{Id: oidPoison, Critical: true, Value: []byte{0x05, 0x00}}}
	precert, err = x509.CreateCertificate(rand.Reader, t, ca.inter, &ca.leafKey.PublicKey, ca.interKey)
	if err != nil {
		return nil, nil, fmt.Errorf("testca: precertificate: %w", err)
	}
	final, err = ca.finalize(precert, nil)
	if err != nil {
		return nil, nil, err
	}
	return precert, final, nil
}

// FinalWithSCTs issues the final certificate of precert, which must be a
// precertificate issued by this CA's intermediate: the precertificate's
// TBSCertificate with the poison extension replaced, in place, by a
// non-critical SCT-list extension whose value is an OCTET STRING holding
// sctList. sctList is used as given (a TLS-encoded
// SignedCertificateTimestampList, or any bytes a test wants to see handled),
// which is what a CA does with the SCTs returned by add-pre-chain.
func (ca *CA) FinalWithSCTs(precert []byte, sctList []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSCTList)
		// extnValue wraps the DER of the extension's value, itself an
		// OCTET STRING holding the TLS-encoded list.
		b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(sctList)
		})
	})
	ext, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("testca: sct list extension: %w", err)
	}
	return ca.finalize(precert, ext)
}

// finalize turns a precertificate issued by the intermediate into its final
// certificate: the poison extension is replaced by ext (a DER Extension), or
// removed when ext is nil, and the result is signed by the intermediate.
func (ca *CA) finalize(precert, ext []byte) ([]byte, error) {
	p, err := x509.ParseCertificate(precert)
	if err != nil {
		return nil, fmt.Errorf("testca: parse precertificate: %w", err)
	}
	if err := p.CheckSignatureFrom(ca.inter); err != nil {
		return nil, fmt.Errorf("testca: precertificate not issued by this CA: %w", err)
	}
	tbs, err := replaceExtension(p.RawTBSCertificate, oidPoison, ext)
	if errors.Is(err, errNoExtension) {
		return nil, errors.New("testca: not a precertificate: no poison extension")
	}
	if err != nil {
		return nil, fmt.Errorf("testca: %w", err)
	}
	sigAlg, err := signatureAlgorithm(precert)
	if err != nil {
		return nil, fmt.Errorf("testca: %w", err)
	}
	digest := sha256.Sum256(tbs)
	sig, err := ecdsa.SignASN1(rand.Reader, ca.interKey, digest[:])
	if err != nil {
		return nil, fmt.Errorf("testca: sign final certificate: %w", err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(sigAlg)
		b.AddASN1BitString(sig)
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("testca: encode final certificate: %w", err)
	}
	return der, nil
}

// signatureAlgorithm returns the DER AlgorithmIdentifier that signs cert, so
// that the final certificate states the same algorithm as its TBSCertificate.
func signatureAlgorithm(cert []byte) ([]byte, error) {
	in := cryptobyte.String(cert)
	var c cryptobyte.String
	var alg cryptobyte.String
	if !in.ReadASN1(&c, cbasn1.SEQUENCE) ||
		!c.SkipASN1(cbasn1.SEQUENCE) ||
		!c.ReadASN1Element(&alg, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed certificate")
	}
	return alg, nil
}

// errNoExtension reports that the extension to replace is not in the TBS.
var errNoExtension = errors.New("extension not present")

// replaceExtension returns a copy of the DER TBSCertificate tbs in which the
// extension with OID oid is replaced by ext (a complete DER Extension) at the
// same position, or removed when ext is nil. Every other byte is kept.
func replaceExtension(tbs []byte, oid asn1.ObjectIdentifier, ext []byte) ([]byte, error) {
	in := cryptobyte.String(tbs)
	var fields cryptobyte.String
	if !in.ReadASN1(&fields, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("malformed TBSCertificate")
	}
	extsTag := cbasn1.Tag(3).Constructed().ContextSpecific()
	found := false
	var walkErr error
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for !fields.Empty() {
			var elem cryptobyte.String
			var tag cbasn1.Tag
			if !fields.ReadAnyASN1Element(&elem, &tag) {
				walkErr = errors.New("malformed TBSCertificate field")
				return
			}
			if tag != extsTag {
				b.AddBytes(elem)
				continue
			}
			var wrapped, exts cryptobyte.String
			if !elem.ReadASN1(&wrapped, extsTag) || !wrapped.ReadASN1(&exts, cbasn1.SEQUENCE) || !wrapped.Empty() {
				walkErr = errors.New("malformed extensions")
				return
			}
			var kept [][]byte
			for !exts.Empty() {
				var e cryptobyte.String
				if !exts.ReadASN1Element(&e, cbasn1.SEQUENCE) {
					walkErr = errors.New("malformed extension")
					return
				}
				body := e
				var inner cryptobyte.String
				var id asn1.ObjectIdentifier
				if !body.ReadASN1(&inner, cbasn1.SEQUENCE) || !inner.ReadASN1ObjectIdentifier(&id) {
					walkErr = errors.New("malformed extension")
					return
				}
				if !found && id.Equal(oid) {
					found = true
					if ext != nil {
						kept = append(kept, ext)
					}
					continue
				}
				kept = append(kept, e)
			}
			// DER has no empty extension list: drop the field instead.
			if len(kept) == 0 {
				continue
			}
			b.AddASN1(extsTag, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, e := range kept {
						b.AddBytes(e)
					}
				})
			})
		}
	})
	if walkErr != nil {
		return nil, walkErr
	}
	if !found {
		return nil, errNoExtension
	}
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode TBSCertificate: %w", err)
	}
	return out, nil
}
