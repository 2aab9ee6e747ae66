package cert

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// static-ct-api (c2sp.org/static-ct-api) data tile constants.
const (
	// tileExtLeafIndex is the CtExtensions type of the leaf_index
	// extension, whose data is a big-endian uint40.
	tileExtLeafIndex = 0
	leafIndexLen     = 5
	maxLeafIndex     = 1<<40 - 1
	// fingerprintLen is the size of one certificate_chain element.
	fingerprintLen = sha256.Size
	maxUint16      = 1<<16 - 1
	maxUint24      = 1<<24 - 1
	// merkleLeafPrefix is the RFC 6962 domain separation byte of leaf
	// hashes.
	merkleLeafPrefix = 0
)

// TileLeaf is one entry of a static-ct-api data tile.
//
// It carries what the tile holds and nothing more: the certificate is not
// decoded (see FromTileLeaf) and the chain is a list of fingerprints, which
// the caller resolves through the log's issuer endpoint. Entries decoded by
// ParseTileLeaf alias the bytes they were decoded from.
type TileLeaf struct {
	// Timestamp is the TimestampedEntry timestamp in milliseconds since the
	// Unix epoch.
	Timestamp uint64
	// Precert reports a precert_entry; false is an x509_entry.
	Precert bool
	// Certificate is the certificate DER of an x509_entry, or the
	// TBSCertificate of a precert_entry (what the Merkle tree commits to).
	// Never empty in a valid entry.
	Certificate []byte
	// IssuerKeyHash is the SHA-256 of the issuer's SubjectPublicKeyInfo of
	// a precert_entry; zero for an x509_entry.
	IssuerKeyHash Hash
	// PreCertificate is the precertificate DER as submitted, for a
	// precert_entry only (nil otherwise). The tree does not commit to it.
	PreCertificate []byte
	// LeafIndex is the entry's index in the log, from the leaf_index
	// extension, which static-ct-api logs must include. Below 2^40.
	LeafIndex uint64
	// Chain holds the certificate_chain fingerprints (SHA-256 of each chain
	// certificate's DER), issuer first; nil when the chain is empty.
	Chain []Hash
}

// CutTileLeaf splits the first entry off a data tile: entry is the raw
// TileLeaf bytes, leafHash its RFC 6962 Merkle leaf hash, SHA-256(0x00 ||
// MerkleTreeLeaf) with MerkleTreeLeaf = 0x00 (v1) || 0x00
// (timestamped_entry) || the entry's timestamped_entry bytes, and rest the
// remaining tile. A caller walks a tile with it until rest is empty and
// checks each leafHash against the level 0 tile before decoding anything.
//
// It validates structure only as far as needed to find the boundaries and
// the hash: the entry type, that every length fits the data, that
// certificates are not empty and that the chain is a whole number of
// fingerprints. The extensions are not looked into (ParseTileLeaf does
// that). entry and rest alias tile and nothing is copied; entry's capacity
// ends with it, so appending to entry cannot overwrite rest. An empty or
// malformed tile is an error, with nil slices and a zero hash. It never
// panics and is safe for concurrent use.
func CutTileLeaf(tile []byte) (entry []byte, leafHash Hash, rest []byte, err error) {
	s := cryptobyte.String(tile)
	var entryType uint16
	if !s.Skip(8) || !s.ReadUint16(&entryType) {
		return nil, Hash{}, nil, errors.New("cert: tile leaf: truncated timestamped_entry")
	}
	switch entryType {
	case entryTypeX509:
		if !skipCertificate(&s) {
			return nil, Hash{}, nil, errors.New("cert: tile leaf: malformed x509_entry certificate")
		}
	case entryTypePrecert:
		if !s.Skip(issuerKeyHashLen) || !skipCertificate(&s) {
			return nil, Hash{}, nil, errors.New("cert: tile leaf: malformed precert_entry")
		}
	default:
		return nil, Hash{}, nil, fmt.Errorf("cert: tile leaf: unknown log entry type %d", entryType)
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) {
		return nil, Hash{}, nil, errors.New("cert: tile leaf: malformed extensions")
	}
	timestamped := tile[:len(tile)-len(s)]
	if entryType == entryTypePrecert && !skipCertificate(&s) {
		return nil, Hash{}, nil, errors.New("cert: tile leaf: malformed pre_certificate")
	}
	var chain cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&chain) || len(chain)%fingerprintLen != 0 {
		return nil, Hash{}, nil, errors.New("cert: tile leaf: malformed certificate_chain")
	}
	n := len(tile) - len(s)
	return tile[:n:n], tileLeafHash(timestamped), tile[n:], nil
}

// skipCertificate skips an ASN.1Cert: opaque<1..2^24-1>.
func skipCertificate(s *cryptobyte.String) bool {
	var der cryptobyte.String
	return readCertificate(s, &der)
}

// tileLeafHash is the RFC 6962 leaf hash of the MerkleTreeLeaf (v1,
// timestamped_entry) around a TimestampedEntry.
func tileLeafHash(timestamped []byte) Hash {
	h := sha256.New()
	h.Write([]byte{merkleLeafPrefix, leafVersionV1, leafTypeTimestamped})
	h.Write(timestamped)
	var out Hash
	h.Sum(out[:0])
	return out
}

// ParseTileLeaf decodes one TileLeaf, as cut from a data tile by
// CutTileLeaf. entry must hold exactly one entry: trailing bytes are an
// error, as are an unknown entry type, empty certificates, a chain that is
// not a whole number of fingerprints, malformed extensions, two extensions
// of the same type, and a missing or malformed leaf_index extension.
// Extensions of other types are checked for framing and then ignored.
//
// To keep the hot path free of copies, Certificate and PreCertificate
// alias entry (with their capacity capped at their length): the caller must
// not modify entry while the result is in use. Chain is a copy. It never
// panics and is safe for concurrent use.
func ParseTileLeaf(entry []byte) (*TileLeaf, error) {
	s := cryptobyte.String(entry)
	l := new(TileLeaf)
	var entryType uint16
	if !s.ReadUint64(&l.Timestamp) || !s.ReadUint16(&entryType) {
		return nil, errors.New("cert: tile leaf: truncated timestamped_entry")
	}
	var certificate cryptobyte.String
	switch entryType {
	case entryTypeX509:
		if !readCertificate(&s, &certificate) {
			return nil, errors.New("cert: tile leaf: malformed x509_entry certificate")
		}
	case entryTypePrecert:
		l.Precert = true
		var keyHash []byte
		if !s.ReadBytes(&keyHash, issuerKeyHashLen) || !readCertificate(&s, &certificate) {
			return nil, errors.New("cert: tile leaf: malformed precert_entry")
		}
		l.IssuerKeyHash = Hash(keyHash)
	default:
		return nil, fmt.Errorf("cert: tile leaf: unknown log entry type %d", entryType)
	}
	l.Certificate = capped(certificate)
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) {
		return nil, errors.New("cert: tile leaf: malformed extensions")
	}
	index, err := readLeafIndex(exts)
	if err != nil {
		return nil, err
	}
	l.LeafIndex = index
	if l.Precert {
		var pre cryptobyte.String
		if !readCertificate(&s, &pre) {
			return nil, errors.New("cert: tile leaf: malformed pre_certificate")
		}
		l.PreCertificate = capped(pre)
	}
	var chain cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&chain) || len(chain)%fingerprintLen != 0 {
		return nil, errors.New("cert: tile leaf: malformed certificate_chain")
	}
	if !s.Empty() {
		return nil, errors.New("cert: tile leaf: trailing data after entry")
	}
	if n := len(chain) / fingerprintLen; n > 0 {
		l.Chain = make([]Hash, n)
		for i := range l.Chain {
			l.Chain[i] = Hash(chain[i*fingerprintLen : (i+1)*fingerprintLen])
		}
	}
	return l, nil
}

// capped returns s as a byte slice whose capacity is its length, so that an
// append by a caller copies instead of writing over the bytes that follow.
func capped(s cryptobyte.String) []byte {
	return s[:len(s):len(s)]
}

// readLeafIndex reads the CtExtensions of a static-ct-api entry and returns
// the leaf_index. The extension is required and no type may appear twice.
func readLeafIndex(exts cryptobyte.String) (uint64, error) {
	var seen [256 / 64]uint64 // one bit per extension type
	var index uint64
	found := false
	for !exts.Empty() {
		var typ uint8
		var data cryptobyte.String
		if !exts.ReadUint8(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return 0, errors.New("cert: tile leaf: malformed extension")
		}
		word, bit := typ/64, uint64(1)<<(typ%64)
		if seen[word]&bit != 0 {
			return 0, fmt.Errorf("cert: tile leaf: duplicate extension type %d", typ)
		}
		seen[word] |= bit
		if typ != tileExtLeafIndex {
			continue
		}
		if len(data) != leafIndexLen {
			return 0, fmt.Errorf("cert: tile leaf: leaf_index extension of %d bytes, want %d", len(data), leafIndexLen)
		}
		for _, b := range data {
			index = index<<8 | uint64(b)
		}
		found = true
	}
	if !found {
		return 0, errors.New("cert: tile leaf: missing leaf_index extension")
	}
	return index, nil
}

// FromTileLeaf decodes the certificate of a parsed entry into the model.
// chain holds the chain certificates resolved from l.Chain, issuer first;
// it may be shorter than l.Chain, or empty, when some could not be
// resolved, and then IssuerSPKIHash may be zero for an x509_entry.
//
// Each resolved certificate must hash to its fingerprint (a mismatch is an
// error: the caller looked up the wrong certificate). The result's Chain is
// always the full list of fingerprints from l, resolved or not; ChainSPKI
// and ChainSubjects have the same length, with a zero hash and an empty
// subject for each certificate that was not resolved. For a
// precert_entry, IssuerSPKIHash is l.IssuerKeyHash, which the Merkle tree
// commits to (as DecodeRFC6962Entry does), SHA256 is the hash of
// PreCertificate and TBSHash is computed from the TBSCertificate exactly as
// FromPrecert does, so a precertificate from a tiled log and its final
// certificate from an RFC 6962 log share TBSHash. For an x509_entry it
// decodes as FromX509. The result holds no reference to l or chain. It is
// safe for concurrent use.
func FromTileLeaf(l *TileLeaf, chain [][]byte) (*Cert, error) {
	return (*Decoder)(nil).FromTileLeaf(l, chain)
}

// FromTileLeaf is the package's FromTileLeaf, reading the chain
// certificates through d's cache. A nil d caches nothing.
func (d *Decoder) FromTileLeaf(l *TileLeaf, chain [][]byte) (*Cert, error) {
	if l == nil {
		return nil, errors.New("cert: nil tile leaf")
	}
	if len(chain) > len(l.Chain) {
		return nil, fmt.Errorf("cert: tile leaf: %d chain certificates for %d fingerprints", len(chain), len(l.Chain))
	}
	var c *Cert
	var err error
	if l.Precert {
		if len(l.PreCertificate) == 0 {
			return nil, errors.New("cert: tile leaf: precert_entry without pre_certificate")
		}
		if c, err = d.fromPrecert(l.Certificate, l.PreCertificate, chain); err != nil {
			return nil, err
		}
		c.IssuerSPKIHash = l.IssuerKeyHash
	} else if c, err = d.fromX509(l.Certificate, chain); err != nil {
		return nil, err
	}
	for i := range chain {
		if c.Chain[i] != l.Chain[i] {
			return nil, fmt.Errorf("cert: tile leaf: chain certificate %d does not match its fingerprint %s", i, l.Chain[i])
		}
	}
	c.Chain = nil
	if len(l.Chain) > 0 {
		c.Chain = slices.Clone(l.Chain)
		// Keep ChainSPKI and ChainSubjects in step with Chain: an
		// unresolved certificate has a zero SPKI hash and no subject.
		unresolved := len(l.Chain) - len(chain)
		c.ChainSPKI = append(c.ChainSPKI, make([]Hash, unresolved)...)
		c.ChainSubjects = append(c.ChainSubjects, make([]string, unresolved)...)
	}
	return c, nil
}

// AppendTileLeaf encodes l onto b as a static-ct-api TileLeaf, with
// l.LeafIndex as the only extension (leaf_index), and returns the extended
// slice: the inverse of ParseTileLeaf, used by the in-repo test log and by
// tests.
//
// It returns b unchanged and an error when a field does not fit the wire
// format: an empty or 2^24-byte or larger Certificate (or PreCertificate of
// a precert_entry), a LeafIndex of 2^40 or more, more than 2047 chain
// fingerprints, or an x509_entry with a PreCertificate or IssuerKeyHash
// (which the format cannot carry). It is safe for concurrent use as long as
// the callers do not share b.
func AppendTileLeaf(b []byte, l *TileLeaf) ([]byte, error) {
	if err := checkTileLeaf(l); err != nil {
		return b, err
	}
	entryType := uint16(entryTypeX509)
	if l.Precert {
		entryType = entryTypePrecert
	}
	out := cryptobyte.NewBuilder(b)
	out.AddUint64(l.Timestamp)
	out.AddUint16(entryType)
	if l.Precert {
		out.AddBytes(l.IssuerKeyHash[:])
	}
	out.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(l.Certificate) })
	out.AddUint16LengthPrefixed(func(exts *cryptobyte.Builder) {
		exts.AddUint8(tileExtLeafIndex)
		exts.AddUint16LengthPrefixed(func(d *cryptobyte.Builder) {
			d.AddUint8(uint8(l.LeafIndex >> 32))
			d.AddUint32(uint32(l.LeafIndex))
		})
	})
	if l.Precert {
		out.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(l.PreCertificate) })
	}
	out.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) {
		for _, fp := range l.Chain {
			c.AddBytes(fp[:])
		}
	})
	encoded, err := out.Bytes()
	if err != nil {
		return b, fmt.Errorf("cert: encoding tile leaf: %w", err)
	}
	return encoded, nil
}

// checkTileLeaf reports why l cannot be encoded, if it cannot.
func checkTileLeaf(l *TileLeaf) error {
	switch {
	case l == nil:
		return errors.New("cert: nil tile leaf")
	case len(l.Certificate) == 0 || len(l.Certificate) > maxUint24:
		return fmt.Errorf("cert: tile leaf certificate of %d bytes, want 1 to %d", len(l.Certificate), maxUint24)
	case l.LeafIndex > maxLeafIndex:
		return fmt.Errorf("cert: tile leaf index %d does not fit in 40 bits", l.LeafIndex)
	case len(l.Chain) > maxUint16/fingerprintLen:
		return fmt.Errorf("cert: tile leaf chain of %d fingerprints, want at most %d", len(l.Chain), maxUint16/fingerprintLen)
	case l.Precert && (len(l.PreCertificate) == 0 || len(l.PreCertificate) > maxUint24):
		return fmt.Errorf("cert: tile leaf pre_certificate of %d bytes, want 1 to %d", len(l.PreCertificate), maxUint24)
	case !l.Precert && (l.PreCertificate != nil || !l.IssuerKeyHash.IsZero()):
		return errors.New("cert: x509_entry tile leaf with precert_entry fields")
	}
	return nil
}
