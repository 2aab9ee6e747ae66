package ctlogtest

import (
	"crypto/sha256"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// TLS enumeration values of RFC 6962 section 3 and RFC 5246 section 7.4.1.4.1.
const (
	versionV1                = 0 // Version v1
	leafTypeTimestampedEntry = 0 // MerkleLeafType timestamped_entry
	entryTypeX509            = 0 // LogEntryType x509_entry
	entryTypePrecert         = 1 // LogEntryType precert_entry
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
