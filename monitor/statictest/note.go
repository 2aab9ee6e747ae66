package statictest

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/mod/sumdb/tlog"
)

// TLS enumeration values of RFC 6962 section 3 and RFC 5246 section 7.4.1.4.1,
// and the signed-note signature type of RFC 6962 checkpoint signatures.
const (
	versionV1               = 0    // Version v1
	signatureTypeTreeHash   = 1    // SignatureType tree_hash
	hashAlgorithmSHA256     = 4    // HashAlgorithm sha256
	signatureAlgorithmECDSA = 3    // SignatureAlgorithm ecdsa
	noteAlgRFC6962          = 0x05 // signed-note type of RFC6962NoteSignature
)

// noteKeyID is the signed-note key ID of a static-ct-api log: the first four
// bytes, big-endian, of SHA-256(key name || 0x0A || 0x05 || LogID).
func noteKeyID(name string, logID [sha256.Size]byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', noteAlgRFC6962})
	h.Write(logID[:])
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// signCheckpoint signs the tree head (size, root) at timestamp ms. The
// signature is an RFC6962NoteSignature: the timestamp, then the TLS-encoded
// DigitallySigned ECDSA signature over the RFC 6962 TreeHeadSignature.
func (l *Log) signCheckpoint(size, timestamp uint64, root tlog.Hash) (checkpoint, error) {
	var in cryptobyte.Builder
	in.AddUint8(versionV1)
	in.AddUint8(signatureTypeTreeHash)
	in.AddUint64(timestamp)
	in.AddUint64(size)
	in.AddBytes(root[:])
	input, err := in.Bytes()
	if err != nil {
		return checkpoint{}, fmt.Errorf("encode TreeHeadSignature: %w", err)
	}
	digest := sha256.Sum256(input)
	sig, err := l.key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return checkpoint{}, fmt.Errorf("sign tree head: %w", err)
	}
	var out cryptobyte.Builder
	out.AddUint64(timestamp)
	out.AddUint8(hashAlgorithmSHA256)
	out.AddUint8(signatureAlgorithmECDSA)
	out.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sig) })
	noteSig, err := out.Bytes()
	if err != nil {
		return checkpoint{}, fmt.Errorf("encode RFC6962NoteSignature: %w", err)
	}
	return checkpoint{
		size:      size,
		timestamp: timestamp,
		root:      root,
		body:      l.origin + "\n" + strconv.FormatUint(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n",
		sig:       noteSig,
	}, nil
}

// checkpointNote formats the served checkpoint as a signed note, corrupting
// the signature while SetBadSignature is on. l.mu must be held.
func (l *Log) checkpointNote() []byte {
	sig := make([]byte, 4, 4+len(l.cp.sig))
	binary.BigEndian.PutUint32(sig, l.keyID)
	sig = append(sig, l.cp.sig...)
	if l.badSig {
		// The last byte lies inside the ECDSA s value: the signature
		// stays well-formed and fails verification.
		sig[len(sig)-1] ^= 0x01
	}
	return []byte(l.cp.body + "\n\u2014 " + l.origin + " " + base64.StdEncoding.EncodeToString(sig) + "\n")
}
