package cert

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Content octets of the DER encodings of the object identifiers this package
// looks for. They are strings so that they are constants and so that
// comparing them with a cryptobyte.String does not allocate.
const (
	// oidSCTList is 1.3.6.1.4.1.11129.2.4.2, the embedded SCT list extension.
	oidSCTList = "\x2b\x06\x01\x04\x01\xd6\x79\x02\x04\x02"
	// oidPoison is 1.3.6.1.4.1.11129.2.4.3, the CT precertificate poison.
	oidPoison = "\x2b\x06\x01\x04\x01\xd6\x79\x02\x04\x03"
	// oidPrecertSigning is 1.3.6.1.4.1.11129.2.4.4, the extended key usage
	// of a Precertificate Signing Certificate.
	oidPrecertSigning = "\x2b\x06\x01\x04\x01\xd6\x79\x02\x04\x04"
	// oidExtKeyUsage is 2.5.29.37, the extended key usage extension.
	oidExtKeyUsage = "\x55\x1d\x25"
)

// Context-specific tags of the optional TBSCertificate fields (class bits
// 0x80, constructed bit 0x20), as constants rather than computed with the
// asn1.Tag methods so that no package state is needed.
const (
	tagVersion         = asn1.Tag(0xa0) // [0] EXPLICIT Version
	tagIssuerUniqueID  = asn1.Tag(0x81) // [1] IMPLICIT UniqueIdentifier
	tagSubjectUniqueID = asn1.Tag(0x82) // [2] IMPLICIT UniqueIdentifier
	tagExtensions      = asn1.Tag(0xa3) // [3] EXPLICIT Extensions
)

// tbsLayout locates the parts of a TBSCertificate that this package needs
// without decoding the rest. Every slice aliases the walked input.
type tbsLayout struct {
	// version is the content of the [0] version wrapper, nil when absent
	// (a v1 certificate).
	version []byte
	// serial is the content of the serial number INTEGER.
	serial []byte
	// issuer is the issuer Name element, header included.
	issuer []byte
	// validity is the content of the Validity SEQUENCE.
	validity []byte
	// head is the content of the TBSCertificate SEQUENCE up to, not
	// including, the [3] extensions wrapper.
	head []byte
	// sigAlg is the signature AlgorithmIdentifier element, header included.
	sigAlg []byte
	// subject is the subject Name element, header included.
	subject []byte
	// spki is the SubjectPublicKeyInfo element, header included.
	spki []byte
	// exts is the content of the Extensions SEQUENCE; hasExts reports
	// whether the [3] wrapper was present at all.
	exts    []byte
	hasExts bool
}

// walkTBS checks the outline of a DER TBSCertificate and locates its parts.
// It validates only what it needs (the SEQUENCE framing, the tags of the
// algorithm identifier, the key and the extensions), so that certificates
// the lenient parser accepts can still be hashed.
func walkTBS(tbs []byte) (tbsLayout, error) {
	var l tbsLayout
	in := cryptobyte.String(tbs)
	var body cryptobyte.String
	if !in.ReadASN1(&body, asn1.SEQUENCE) {
		return l, errors.New("tbs certificate is not a DER sequence")
	}
	if !in.Empty() {
		return l, errors.New("trailing data after tbs certificate")
	}
	start := body
	var elem, version cryptobyte.String
	var hasVersion bool
	if !body.ReadOptionalASN1(&version, &hasVersion, tagVersion) {
		return l, errors.New("malformed tbs version")
	}
	if hasVersion {
		l.version = version
	}
	if !body.ReadASN1((*cryptobyte.String)(&l.serial), asn1.INTEGER) {
		return l, errors.New("malformed tbs serial number")
	}
	if !body.ReadASN1Element(&elem, asn1.SEQUENCE) {
		return l, errors.New("malformed tbs signature algorithm")
	}
	l.sigAlg = elem
	if !body.ReadASN1Element(&elem, asn1.SEQUENCE) {
		return l, errors.New("malformed tbs issuer")
	}
	l.issuer = elem
	if !body.ReadASN1((*cryptobyte.String)(&l.validity), asn1.SEQUENCE) {
		return l, errors.New("malformed tbs validity")
	}
	if !body.ReadASN1Element(&elem, asn1.SEQUENCE) {
		return l, errors.New("malformed tbs subject")
	}
	l.subject = elem
	if !body.ReadASN1Element(&elem, asn1.SEQUENCE) {
		return l, errors.New("malformed tbs subject public key info")
	}
	l.spki = elem
	if !body.SkipOptionalASN1(tagIssuerUniqueID) || !body.SkipOptionalASN1(tagSubjectUniqueID) {
		return l, errors.New("malformed tbs unique identifier")
	}
	l.head = start[:len(start)-len(body)]
	if body.PeekASN1Tag(tagExtensions) {
		var wrapper, exts cryptobyte.String
		if !body.ReadASN1(&wrapper, tagExtensions) ||
			!wrapper.ReadASN1(&exts, asn1.SEQUENCE) || !wrapper.Empty() {
			return l, errors.New("malformed tbs extensions")
		}
		l.exts, l.hasExts = exts, true
	}
	if !body.Empty() {
		return l, errors.New("trailing data in tbs certificate")
	}
	return l, nil
}

// nextExtension reads one Extension from exts and returns its OID content
// octets, the rest of its content (critical flag and extnValue) and the
// whole element. ok is false when exts is malformed.
func nextExtension(exts *cryptobyte.String) (oid, rest, elem cryptobyte.String, ok bool) {
	if !exts.ReadASN1Element(&elem, asn1.SEQUENCE) {
		return nil, nil, nil, false
	}
	inner := elem
	if !inner.ReadASN1(&rest, asn1.SEQUENCE) || !rest.ReadASN1(&oid, asn1.OBJECT_IDENTIFIER) {
		return nil, nil, nil, false
	}
	return oid, rest, elem, true
}

// isCTExtension reports whether an extension OID is one of the two that
// differ between a precertificate and its final certificate.
func isCTExtension(oid []byte) bool {
	s := string(oid)
	return s == oidPoison || s == oidSCTList
}

// HashTBS returns the dedupe key of a DER TBSCertificate: the SHA-256 of the
// TBSCertificate re-encoded without the CT poison and SCT-list extensions
// (and without the [3] extensions wrapper when no other extension is left).
// When neither extension is present that is simply the SHA-256 of tbs.
//
// It lets a precertificate and the final certificate issued from it share a
// key. It returns an error when tbs is not a well-formed DER TBSCertificate
// outline; it does not decode names or keys. It never retains tbs.
func HashTBS(tbs []byte) (Hash, error) {
	l, err := walkTBS(tbs)
	if err != nil {
		return Hash{}, fmt.Errorf("cert: %w", err)
	}
	return l.strippedHash(tbs)
}

// strippedHash implements HashTBS for an already walked tbs. It streams the
// re-encoded TBSCertificate into the hash rather than building it.
func (l *tbsLayout) strippedHash(tbs []byte) (Hash, error) {
	if !l.hasExts {
		return sha256.Sum256(tbs), nil
	}
	kept, removed := 0, false
	for exts := cryptobyte.String(l.exts); !exts.Empty(); {
		oid, _, elem, ok := nextExtension(&exts)
		if !ok {
			return Hash{}, errors.New("cert: malformed tbs extension")
		}
		if isCTExtension(oid) {
			removed = true
		} else {
			kept += len(elem)
		}
	}
	if !removed {
		return sha256.Sum256(tbs), nil
	}

	bodyLen := len(l.head)
	seqLen := derHeaderLen(kept) + kept // the Extensions SEQUENCE element
	if kept > 0 {
		bodyLen += derHeaderLen(seqLen) + seqLen
	}
	h := sha256.New()
	var hdr [8]byte
	writeHeader(h, hdr[:0], 0x30, bodyLen)
	h.Write(l.head)
	if kept > 0 {
		writeHeader(h, hdr[:0], 0xa3, seqLen)
		writeHeader(h, hdr[:0], 0x30, kept)
		for exts := cryptobyte.String(l.exts); !exts.Empty(); {
			oid, _, elem, _ := nextExtension(&exts) // validated above
			if !isCTExtension(oid) {
				h.Write(elem)
			}
		}
	}
	var out Hash
	h.Sum(out[:0])
	return out, nil
}

// derHeaderLen is the size of the DER identifier and length octets of an
// element with a one-byte tag and n content octets.
func derHeaderLen(n int) int {
	if n <= 0x7f {
		return 2
	}
	size := 2 // tag, and the octet giving the number of length octets
	for ; n > 0; n >>= 8 {
		size++
	}
	return size
}

// writeHeader writes the DER identifier and length octets of an element
// with tag and n content octets to h, using buf as scratch space.
func writeHeader(h hash.Hash, buf []byte, tag byte, n int) {
	buf = append(buf, tag)
	if n <= 0x7f {
		buf = append(buf, byte(n))
	} else {
		octets := derHeaderLen(n) - 2
		buf = append(buf, 0x80|byte(octets))
		for i := octets - 1; i >= 0; i-- {
			buf = append(buf, byte(n>>(8*i)))
		}
	}
	h.Write(buf)
}

// certTBS returns the TBSCertificate element of a DER certificate, without
// checking anything after it but the framing.
func certTBS(der []byte) ([]byte, error) {
	in := cryptobyte.String(der)
	var c, tbs cryptobyte.String
	if !in.ReadASN1(&c, asn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("certificate is not a single DER sequence")
	}
	if !c.ReadASN1Element(&tbs, asn1.SEQUENCE) {
		return nil, errors.New("malformed tbs certificate")
	}
	return tbs, nil
}

// chainCert is what ctwatch needs from a certificate of a logged chain. It
// is read with a structural walk, not a full parse: chains repeat the same
// few intermediates on every entry, and parsing them would dominate the cost
// of decoding an entry.
type chainCert struct {
	spkiHash Hash
	// subject is the subject Name element, aliasing the walked DER.
	subject []byte
	// precertSigning reports whether the certificate carries the
	// Precertificate Signing Certificate extended key usage.
	precertSigning bool
}

// readChainCert walks a DER certificate of a chain.
func readChainCert(der []byte) (chainCert, error) {
	var cc chainCert
	tbs, err := certTBS(der)
	if err != nil {
		return cc, err
	}
	l, err := walkTBS(tbs)
	if err != nil {
		return cc, err
	}
	cc.spkiHash = sha256.Sum256(l.spki)
	cc.subject = l.subject
	for exts := cryptobyte.String(l.exts); !exts.Empty(); {
		oid, rest, _, ok := nextExtension(&exts)
		if !ok {
			return cc, errors.New("malformed extension")
		}
		if string(oid) != oidExtKeyUsage {
			continue
		}
		var value, usages cryptobyte.String
		if !rest.SkipOptionalASN1(asn1.BOOLEAN) ||
			!rest.ReadASN1(&value, asn1.OCTET_STRING) ||
			!value.ReadASN1(&usages, asn1.SEQUENCE) {
			return cc, errors.New("malformed extended key usage")
		}
		for !usages.Empty() {
			var usage cryptobyte.String
			if !usages.ReadASN1(&usage, asn1.OBJECT_IDENTIFIER) {
				return cc, errors.New("malformed extended key usage")
			}
			if string(usage) == oidPrecertSigning {
				cc.precertSigning = true
			}
		}
	}
	return cc, nil
}

// wrapTBS builds a Certificate around a bare TBSCertificate, with the
// signature algorithm copied from the TBS (parsers insist that both agree)
// and an empty signature, so that certificate parsers can decode it.
func wrapTBS(tbs []byte, sigAlg []byte) ([]byte, error) {
	b := cryptobyte.NewFixedBuilder(make([]byte, 0, len(tbs)+len(sigAlg)+16))
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(sigAlg)
		b.AddASN1BitString(nil)
	})
	return b.Bytes()
}
