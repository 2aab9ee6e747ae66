package logtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	ctx509 "github.com/google/certificate-transparency-go/x509"
	"golang.org/x/crypto/cryptobyte"
)

// TLS enumeration values of RFC 6962 section 3 and RFC 5246 section 7.4.1.4.1.
const (
	versionV1               = 0 // Version v1
	signatureTypeTreeHash   = 1 // SignatureType tree_hash
	hashAlgorithmSHA256     = 4 // HashAlgorithm sha256
	signatureAlgorithmECDSA = 3 // SignatureAlgorithm ecdsa
)

// LogKey returns a test log's signing key and its public key as a DER
// SubjectPublicKeyInfo, the form log lists publish: key itself when not nil
// (a test restarting "the same" log, same key and log ID), a fresh P-256
// key otherwise. It fails when key is not on P-256, the ECDSA curve the
// logs sign with.
func LogKey(key *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte, error) {
	if key == nil {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, nil, fmt.Errorf("generate key: %w", err)
		}
	}
	if key.Curve != elliptic.P256() {
		return nil, nil, errors.New("key must be on P-256")
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal public key: %w", err)
	}
	return key, pubDER, nil
}

// SignTreeHead signs the RFC 6962 tree head (timestamp in ms, size, root)
// with key, ECDSA with SHA-256, and returns the TLS-encoded DigitallySigned
// over its TreeHeadSignature (RFC 6962 section 3.5). Both log kinds serve
// it: as get-sth's tree_head_signature, and after the timestamp in a
// static-ct-api checkpoint's note signature. It fails when root is not a
// SHA-256 hash or signing fails.
func SignTreeHead(key *ecdsa.PrivateKey, timestamp, size uint64, root []byte) ([]byte, error) {
	if len(root) != sha256.Size {
		return nil, fmt.Errorf("root hash has %d bytes, want %d", len(root), sha256.Size)
	}
	var in cryptobyte.Builder
	in.AddUint8(versionV1)
	in.AddUint8(signatureTypeTreeHash)
	in.AddUint64(timestamp)
	in.AddUint64(size)
	in.AddBytes(root)
	input, err := in.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode TreeHeadSignature: %w", err)
	}
	digest := sha256.Sum256(input)
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sign tree head: %w", err)
	}
	var out cryptobyte.Builder
	out.AddUint8(hashAlgorithmSHA256)
	out.AddUint8(signatureAlgorithmECDSA)
	out.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sig) })
	ds, err := out.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode DigitallySigned: %w", err)
	}
	return ds, nil
}

// CorruptSignature returns a copy of sig, which ends with a DigitallySigned
// from SignTreeHead (alone, or after a note signature's timestamp), with its
// last byte flipped. That byte lies inside the ECDSA s value, so the
// signature stays well-formed and fails verification: the bad signature a
// log serves when a test asks for one. sig is not modified; an empty sig
// comes back empty.
func CorruptSignature(sig []byte) []byte {
	out := append([]byte(nil), sig...)
	if len(out) > 0 {
		out[len(out)-1] ^= 0x01
	}
	return out
}

// Clock hands out millisecond timestamps, each later than every one before,
// as a log's entries and tree heads need even when several are made within
// one millisecond. The zero value is ready to use. It is not safe for
// concurrent use: a log calls it under the lock that orders its entries.
type Clock struct {
	last uint64
}

// Now returns the current time in ms since the epoch, or one more than the
// last timestamp returned when that is not later.
func (c *Clock) Now() uint64 {
	t := uint64(time.Now().UnixMilli())
	if t <= c.last {
		t = c.last + 1
	}
	c.last = t
	return t
}

// PrecertTBS returns what a log entry holds for the DER precertificate
// precertDER issued directly by issuer (not through a precertificate signing
// certificate): its TBSCertificate with the poison extension removed, built
// the way certificate-transparency-go's RemoveCTPoison builds it so that
// test logs and real logs agree byte for byte, and the SHA-256 of issuer's
// SubjectPublicKeyInfo. It fails when issuer is nil or precertDER is
// malformed or has no poison extension.
func PrecertTBS(precertDER []byte, issuer *x509.Certificate) (tbs []byte, issuerKeyHash [sha256.Size]byte, err error) {
	if issuer == nil {
		return nil, issuerKeyHash, errors.New("nil issuer")
	}
	c, err := x509.ParseCertificate(precertDER)
	if err != nil {
		return nil, issuerKeyHash, fmt.Errorf("parse precertificate: %w", err)
	}
	if tbs, err = ctx509.RemoveCTPoison(c.RawTBSCertificate); err != nil {
		return nil, issuerKeyHash, fmt.Errorf("remove poison: %w", err)
	}
	return tbs, sha256.Sum256(issuer.RawSubjectPublicKeyInfo), nil
}
