package ctlogtest

import (
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// TLS enumeration values of RFC 6962 section 3 and RFC 5246 section 7.4.1.4.1.
const (
	versionV1                = 0 // Version v1
	leafTypeTimestampedEntry = 0 // MerkleLeafType timestamped_entry
	entryTypeX509            = 0 // LogEntryType x509_entry
	entryTypePrecert         = 1 // LogEntryType precert_entry
	signatureTypeTreeHash    = 1 // SignatureType tree_hash
	hashAlgorithmSHA256      = 4 // HashAlgorithm sha256
	signatureAlgorithmECDSA  = 3 // SignatureAlgorithm ecdsa
)

// timestampedLeaf encodes a v1 MerkleTreeLeaf holding a TimestampedEntry of
// entryType whose signed_entry body writes, with empty extensions.
func timestampedLeaf(timestamp uint64, entryType uint16, body func(*cryptobyte.Builder)) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8(versionV1)
	b.AddUint8(leafTypeTimestampedEntry)
	b.AddUint64(timestamp)
	b.AddUint16(entryType)
	body(&b)
	b.AddUint16LengthPrefixed(func(*cryptobyte.Builder) {}) // CtExtensions
	leaf, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode MerkleTreeLeaf: %w", err)
	}
	return leaf, nil
}

// x509Leaf encodes the MerkleTreeLeaf of an x509_entry: ASN.1Cert
// opaque<1..2^24-1>.
func x509Leaf(timestamp uint64, der []byte) ([]byte, error) {
	return timestampedLeaf(timestamp, entryTypeX509, func(b *cryptobyte.Builder) {
		addUint24Bytes(b, der)
	})
}

// precertLeaf encodes the MerkleTreeLeaf of a precert_entry: PreCert
// { opaque issuer_key_hash[32]; TBSCertificate tbs_certificate<1..2^24-1> }.
func precertLeaf(timestamp uint64, issuerKeyHash [sha256.Size]byte, tbs []byte) ([]byte, error) {
	return timestampedLeaf(timestamp, entryTypePrecert, func(b *cryptobyte.Builder) {
		b.AddBytes(issuerKeyHash[:])
		addUint24Bytes(b, tbs)
	})
}

func addUint24Bytes(b *cryptobyte.Builder, v []byte) {
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(v) })
}

// addCertChain writes ASN.1Cert certificate_chain<0..2^24-1>.
func addCertChain(b *cryptobyte.Builder, chain [][]byte) {
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, c := range chain {
			addUint24Bytes(b, c)
		}
	})
}

// x509ExtraData encodes the extra_data of an x509_entry: the chain alone.
func x509ExtraData(chain [][]byte) ([]byte, error) {
	var b cryptobyte.Builder
	addCertChain(&b, chain)
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode certificate chain: %w", err)
	}
	return out, nil
}

// precertExtraData encodes a PrecertChainEntry: the submitted precertificate,
// then its chain.
func precertExtraData(precert []byte, chain [][]byte) ([]byte, error) {
	var b cryptobyte.Builder
	addUint24Bytes(&b, precert)
	addCertChain(&b, chain)
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode PrecertChainEntry: %w", err)
	}
	return out, nil
}

// treeHeadSignatureInput encodes the TreeHeadSignature of RFC 6962 section
// 3.5, the bytes an STH signature covers.
func treeHeadSignatureInput(timestamp, treeSize uint64, root []byte) ([]byte, error) {
	if len(root) != sha256.Size {
		return nil, fmt.Errorf("root hash has %d bytes, want %d", len(root), sha256.Size)
	}
	var b cryptobyte.Builder
	b.AddUint8(versionV1)
	b.AddUint8(signatureTypeTreeHash)
	b.AddUint64(timestamp)
	b.AddUint64(treeSize)
	b.AddBytes(root)
	return b.Bytes()
}

// digitallySigned wraps an ECDSA-SHA256 ASN.1 signature in a TLS
// DigitallySigned struct.
func digitallySigned(sig []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8(hashAlgorithmSHA256)
	b.AddUint8(signatureAlgorithmECDSA)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sig) })
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode DigitallySigned: %w", err)
	}
	return out, nil
}

// oidPoison is the CT precertificate poison extension (RFC 6962 section
// 3.1). It is never modified.
var oidPoison = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}

// precertTBS returns the TBSCertificate of the DER precertificate precert with
// the poison extension removed: the tbs_certificate of its log entry. Every
// other byte of the TBSCertificate is kept as it was.
func precertTBS(precert []byte) ([]byte, error) {
	in := cryptobyte.String(precert)
	var c, tbs cryptobyte.String
	if !in.ReadASN1(&c, cbasn1.SEQUENCE) || !in.Empty() || !c.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed precertificate")
	}
	extsTag := cbasn1.Tag(3).Constructed().ContextSpecific()
	found := false
	var walkErr error
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for !tbs.Empty() {
			var field cryptobyte.String
			var tag cbasn1.Tag
			if !tbs.ReadAnyASN1Element(&field, &tag) {
				walkErr = errors.New("malformed TBSCertificate")
				return
			}
			if tag != extsTag {
				b.AddBytes(field)
				continue
			}
			var wrapped, exts cryptobyte.String
			if !field.ReadASN1(&wrapped, extsTag) || !wrapped.ReadASN1(&exts, cbasn1.SEQUENCE) || !wrapped.Empty() {
				walkErr = errors.New("malformed extensions")
				return
			}
			var kept [][]byte
			for !exts.Empty() {
				var ext, body cryptobyte.String
				var id asn1.ObjectIdentifier
				if !exts.ReadASN1Element(&ext, cbasn1.SEQUENCE) {
					walkErr = errors.New("malformed extension")
					return
				}
				peek := ext
				if !peek.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1ObjectIdentifier(&id) {
					walkErr = errors.New("malformed extension")
					return
				}
				if id.Equal(oidPoison) {
					found = true
					continue
				}
				kept = append(kept, ext)
			}
			// When the poison was the only extension this leaves an empty
			// list, which RFC 5280 does not allow; Trillian-based logs (via
			// ct-go's RemoveCTPoison) log it that way, so this log does too.
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
		return nil, errors.New("not a precertificate: no poison extension")
	}
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode TBSCertificate: %w", err)
	}
	return out, nil
}
