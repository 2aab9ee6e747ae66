package cert

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// RFC 6962 section 3.4 MerkleTreeLeaf and TimestampedEntry constants.
const (
	leafVersionV1       = 0
	leafTypeTimestamped = 0
	entryTypeX509       = 0
	entryTypePrecert    = 1
	issuerKeyHashLen    = 32
)

// DecodeRFC6962Entry decodes one get-entries item of an RFC 6962 log: the
// MerkleTreeLeaf in leafInput (version v1, a timestamped_entry holding an
// x509_entry or a precert_entry) and the extra_data that goes with it (the
// certificate chain, or a PrecertChainEntry). It returns the certificate and
// the entry's timestamp in milliseconds since the Unix epoch.
//
// Both inputs are hostile: unknown versions, leaf or entry types, lengths
// that overrun their data, empty certificates and trailing bytes are
// errors. For a precert_entry, IssuerSPKIHash is the leaf's issuer_key_hash,
// which the tree commits to, rather than a hash taken from the unsigned
// extra_data chain (the two agree for an honest log). The result holds no
// reference to the inputs. It is safe for concurrent use.
func DecodeRFC6962Entry(leafInput, extraData []byte) (c *Cert, timestamp uint64, err error) {
	return (*Decoder)(nil).DecodeRFC6962Entry(leafInput, extraData)
}

// DecodeRFC6962Entry is the package's DecodeRFC6962Entry, reading the
// chain certificates through d's cache. A nil d caches nothing.
func (d *Decoder) DecodeRFC6962Entry(leafInput, extraData []byte) (c *Cert, timestamp uint64, err error) {
	leaf := cryptobyte.String(leafInput)
	var version, leafType uint8
	var entryType uint16
	if !leaf.ReadUint8(&version) || !leaf.ReadUint8(&leafType) ||
		!leaf.ReadUint64(&timestamp) || !leaf.ReadUint16(&entryType) {
		return nil, 0, errors.New("cert: truncated merkle tree leaf")
	}
	if version != leafVersionV1 {
		return nil, 0, fmt.Errorf("cert: unsupported merkle tree leaf version %d", version)
	}
	if leafType != leafTypeTimestamped {
		return nil, 0, fmt.Errorf("cert: unsupported merkle tree leaf type %d", leafType)
	}
	switch entryType {
	case entryTypeX509:
		var der cryptobyte.String
		if !readCertificate(&leaf, &der) {
			return nil, 0, errors.New("cert: malformed x509_entry certificate")
		}
		if err := readEntryExtensions(&leaf); err != nil {
			return nil, 0, err
		}
		extra := cryptobyte.String(extraData)
		chain, err := readChain(&extra)
		if err != nil {
			return nil, 0, err
		}
		if !extra.Empty() {
			return nil, 0, errors.New("cert: trailing data after x509 extra_data")
		}
		c, err = d.fromX509(der, chain)
		if err != nil {
			return nil, 0, err
		}
		return c, timestamp, nil

	case entryTypePrecert:
		var issuerKeyHash []byte
		var tbs cryptobyte.String
		if !leaf.ReadBytes(&issuerKeyHash, issuerKeyHashLen) || !readCertificate(&leaf, &tbs) {
			return nil, 0, errors.New("cert: malformed precert_entry")
		}
		if err := readEntryExtensions(&leaf); err != nil {
			return nil, 0, err
		}
		extra := cryptobyte.String(extraData)
		var precert cryptobyte.String
		if !readCertificate(&extra, &precert) {
			return nil, 0, errors.New("cert: malformed precertificate in extra_data")
		}
		chain, err := readChain(&extra)
		if err != nil {
			return nil, 0, err
		}
		if !extra.Empty() {
			return nil, 0, errors.New("cert: trailing data after precert extra_data")
		}
		c, err = d.fromPrecert(tbs, precert, chain)
		if err != nil {
			return nil, 0, err
		}
		c.IssuerSPKIHash = Hash(issuerKeyHash)
		return c, timestamp, nil

	default:
		return nil, 0, fmt.Errorf("cert: unknown log entry type %d", entryType)
	}
}

// readCertificate reads an ASN.1Cert: opaque<1..2^24-1>.
func readCertificate(s *cryptobyte.String, out *cryptobyte.String) bool {
	return s.ReadUint24LengthPrefixed(out) && len(*out) > 0
}

// readEntryExtensions reads the CtExtensions that end a TimestampedEntry
// (opaque<0..2^16-1>; no extension is defined for v1) and checks that
// nothing follows them.
func readEntryExtensions(leaf *cryptobyte.String) error {
	var exts cryptobyte.String
	if !leaf.ReadUint16LengthPrefixed(&exts) {
		return errors.New("cert: malformed merkle tree leaf extensions")
	}
	if !leaf.Empty() {
		return errors.New("cert: trailing data after merkle tree leaf")
	}
	return nil
}

// readChain reads a certificate chain: ASN.1Cert chain<0..2^24-1>. The
// returned slices alias s; nil when the chain is empty.
func readChain(s *cryptobyte.String) ([][]byte, error) {
	var list cryptobyte.String
	if !s.ReadUint24LengthPrefixed(&list) {
		return nil, errors.New("cert: malformed certificate chain in extra_data")
	}
	n := 0
	for rest := list; !rest.Empty(); n++ {
		var der cryptobyte.String
		if !readCertificate(&rest, &der) {
			return nil, fmt.Errorf("cert: malformed chain certificate %d in extra_data", n)
		}
	}
	if n == 0 {
		return nil, nil
	}
	chain := make([][]byte, n)
	for i := range chain {
		var der cryptobyte.String
		readCertificate(&list, &der) // validated above
		chain[i] = der
	}
	return chain, nil
}
