package statictest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ctwatch/ctwatch/monitor/logtest"
)

// noteAlgRFC6962 is the signed-note signature type of RFC 6962 checkpoint
// signatures (RFC6962NoteSignature).
const noteAlgRFC6962 = 0x05

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
	ds, err := logtest.SignTreeHead(l.key, timestamp, size, root[:])
	if err != nil {
		return checkpoint{}, err
	}
	var out cryptobyte.Builder
	out.AddUint64(timestamp)
	out.AddBytes(ds)
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
	cpSig := l.cp.sig
	if l.badSig {
		cpSig = logtest.CorruptSignature(cpSig)
	}
	sig := make([]byte, 4, 4+len(cpSig))
	binary.BigEndian.PutUint32(sig, l.keyID)
	sig = append(sig, cpSig...)
	return []byte(l.cp.body + "\n\u2014 " + l.origin + " " + base64.StdEncoding.EncodeToString(sig) + "\n")
}
