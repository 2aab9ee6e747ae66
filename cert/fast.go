package cert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"math/bits"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// The fast decoder.
//
// decodeDER used to run crypto/x509.ParseCertificate on every entry and
// render names with pkix.Name.String, which built a full x509.Certificate
// (big integers, parsed keys, every extension, maps, reflection in
// encoding/asn1) to keep a dozen fields. The fast decoder walks the DER once
// and produces those fields directly.
//
// Its contract is narrow on purpose: for every input it either returns nil
// ("not sure, ask crypto/x509") or a Cert identical to what decodeDER's
// crypto/x509 path produces, and it returns a Cert only for inputs that
// crypto/x509 accepts. That second half matters as much as the first:
// certificates crypto/x509 rejects go to the lenient parser, whose output
// differs in places, so accepting one here would change results. The
// decoder therefore repeats every check crypto/x509 makes on the parts it
// reads, and gives up on anything outside the shapes real CT certificates
// take (v1 certificates, negative serial numbers, DSA keys, URI SANs, name
// constraints and a few rarer extensions, trailing bytes crypto/x509 would
// ignore, …). FuzzFastDecodeMatchesX509 holds it to the contract.

// DER content octets of the object identifiers the fast decoder looks for,
// as strings so that they are constants and comparisons do not allocate.
const (
	oidPubKeyRSA     = "\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01" // 1.2.840.113549.1.1.1
	oidPubKeyDSA     = "\x2a\x86\x48\xce\x38\x04\x01"         // 1.2.840.10040.4.1
	oidPubKeyECDSA   = "\x2a\x86\x48\xce\x3d\x02\x01"         // 1.2.840.10045.2.1
	oidPubKeyEd25519 = "\x2b\x65\x70"                         // 1.3.101.112

	oidCurveP224 = "\x2b\x81\x04\x00\x21"                 // 1.3.132.0.33
	oidCurveP256 = "\x2a\x86\x48\xce\x3d\x03\x01\x07"     // 1.2.840.10045.3.1.7
	oidCurveP384 = "\x2b\x81\x04\x00\x22"                 // 1.3.132.0.34
	oidCurveP521 = "\x2b\x81\x04\x00\x23"                 // 1.3.132.0.35
	oidSigRSAPSS = "\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0a" // 1.2.840.113549.1.1.10

	// Extensions crypto/x509 validates (RFC 5280 id-ce, 2.5.29.x, and
	// id-pe-authorityInfoAccess).
	oidExtSubjectKeyID     = "\x55\x1d\x0e"
	oidExtKeyUsageBits     = "\x55\x1d\x0f" // extendedKeyUsage is oidExtKeyUsage in tbs.go
	oidExtSubjectAltName   = "\x55\x1d\x11"
	oidExtBasicConstraints = "\x55\x1d\x13"
	oidExtNameConstraints  = "\x55\x1d\x1e"
	oidExtCRLDistribution  = "\x55\x1d\x1f"
	oidExtCertPolicies     = "\x55\x1d\x20"
	oidExtPolicyMappings   = "\x55\x1d\x21"
	oidExtAuthorityKeyID   = "\x55\x1d\x23"
	oidExtPolicyConstraint = "\x55\x1d\x24"
	oidExtInhibitAnyPolicy = "\x55\x1d\x36"
	oidExtAuthorityInfo    = "\x2b\x06\x01\x05\x05\x07\x01\x01" // 1.3.6.1.5.5.7.1.1
)

// The RSASSA-PSS parameters crypto/x509 names, in the only encoding the
// fast decoder recognises (the one crypto/x509 writes); any other encoding
// of PSS parameters goes to crypto/x509.
const (
	pssSHA256 = "\x30\x34\xa0\x0f\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\xa1\x1c\x30\x1a\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x08\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\xa2\x03\x02\x01\x20"
	pssSHA384 = "\x30\x34\xa0\x0f\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x02\x05\x00\xa1\x1c\x30\x1a\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x08\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x02\x05\x00\xa2\x03\x02\x01\x30"
	pssSHA512 = "\x30\x34\xa0\x0f\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x03\x05\x00\xa1\x1c\x30\x1a\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x08\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x03\x05\x00\xa2\x03\x02\x01\x40"
)

// sigAlgName returns crypto/x509's name for a signature algorithm, given the
// OID content octets and the parameters element (nil when absent). ok is
// false when the fast decoder cannot tell (PSS parameters in an unusual
// encoding); name is "" for an algorithm crypto/x509 does not know.
func sigAlgName(oid, params []byte) (name string, ok bool) {
	switch string(oid) {
	case "\x2a\x86\x48\x86\xf7\x0d\x01\x01\x04":
		return "MD5-RSA", true
	case "\x2a\x86\x48\x86\xf7\x0d\x01\x01\x05", "\x2b\x0e\x03\x02\x1d": // PKCS #1 and ISO
		return "SHA1-RSA", true
	case "\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b":
		return "SHA256-RSA", true
	case "\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0c":
		return "SHA384-RSA", true
	case "\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0d":
		return "SHA512-RSA", true
	case "\x2a\x86\x48\xce\x38\x04\x03":
		return "DSA-SHA1", true
	case "\x60\x86\x48\x01\x65\x03\x04\x03\x02":
		return "DSA-SHA256", true
	case "\x2a\x86\x48\xce\x3d\x04\x01":
		return "ECDSA-SHA1", true
	case "\x2a\x86\x48\xce\x3d\x04\x03\x02":
		return "ECDSA-SHA256", true
	case "\x2a\x86\x48\xce\x3d\x04\x03\x03":
		return "ECDSA-SHA384", true
	case "\x2a\x86\x48\xce\x3d\x04\x03\x04":
		return "ECDSA-SHA512", true
	case oidPubKeyEd25519:
		// RFC 8410: the parameters must be absent, and crypto/x509 does
		// not name the algorithm otherwise.
		if params != nil {
			return "", true
		}
		return "Ed25519", true
	case oidSigRSAPSS:
		switch string(params) {
		case pssSHA256:
			return "SHA256-RSAPSS", true
		case pssSHA384:
			return "SHA384-RSAPSS", true
		case pssSHA512:
			return "SHA512-RSAPSS", true
		}
		return "", false
	}
	return "", true
}

// maxFastExtensions bounds the extensions the fast decoder tracks for
// duplicates on the stack; real leaves carry about ten.
const maxFastExtensions = 32

// fastDecodeDER is the fast path of decodeDER: it returns the Cert
// decodeDER's crypto/x509 path would, or nil when it is not sure to (see the
// comment at the top of this file). It never panics.
func fastDecodeDER(der []byte) *Cert {
	in := cryptobyte.String(der)
	var body, tbs, outerAlg cryptobyte.String
	var sig cryptobyte.String
	if !in.ReadASN1(&body, asn1.SEQUENCE) || !in.Empty() ||
		!body.ReadASN1Element(&tbs, asn1.SEQUENCE) ||
		!body.ReadASN1Element(&outerAlg, asn1.SEQUENCE) ||
		!body.ReadASN1(&sig, asn1.BIT_STRING) || !body.Empty() ||
		!validBitString(sig) {
		return nil
	}
	l, err := walkTBS(tbs)
	if err != nil || !bytes.Equal(l.sigAlg, outerAlg) {
		return nil
	}
	return fastDecodeTBS(tbs, &l)
}

// validBitString reports whether the content octets of a BIT STRING are
// what cryptobyte's ReadASN1BitString, and so crypto/x509, accepts.
func validBitString(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	padding := b[0]
	b = b[1:]
	return padding <= 7 && (len(b) > 0 || padding == 0) &&
		(len(b) == 0 || b[len(b)-1]&(1<<padding-1) == 0)
}

// fastDecodeTBS decodes a walked TBSCertificate as fastDecodeDER does, for
// a certificate whose outer signature algorithm equals the TBS's and whose
// signature is a valid BIT STRING (checked by the caller, or true by
// construction for a precertificate TBS that decodeDER would see wrapped by
// wrapTBS). It returns nil when not sure.
func fastDecodeTBS(tbs []byte, l *tbsLayout) *Cert {
	// v3 only: crypto/x509 ignores the extensions of older versions, and
	// v1/v2 certificates are too rare in CT to be worth that care.
	if string(l.version) != "\x02\x01\x02" || !validSerial(l.serial) {
		return nil
	}
	c := &Cert{}
	if !c.fastSigAlg(l.sigAlg) || !c.fastValidity(l.validity) || !c.fastKey(l.spki) {
		return nil
	}

	var issuerBuf, subjectBuf [16]dnAttr
	issuer, ok := parseDN(l.issuer, issuerBuf[:0], false)
	if !ok {
		return nil
	}
	subject, ok := parseDN(l.subject, subjectBuf[:0], false)
	if !ok {
		return nil
	}

	var exts extSummary
	if l.hasExts && !exts.read(l.exts) {
		return nil
	}
	c.Precert = exts.poisoned

	// The strings of the Cert (but IP addresses) are cut from one
	// allocation: the two names, the issuer attributes, the subject CNs
	// and the SAN names, in that order.
	var text strings.Builder
	text.Grow(len(l.subject) + 2*len(l.issuer) + len(exts.san) + 32)
	subjectEnd := appendDN(&text, subject)
	issuerEnd := appendDN(&text, issuer)
	issuerAttrs := [...]byte{attrCN, attrO, attrOU, attrC}
	nIssuerAttrs := 0
	for _, want := range issuerAttrs {
		for _, a := range issuer {
			if a.is(want) {
				text.Write(a.value)
				nIssuerAttrs++
			}
		}
	}
	for _, a := range subject {
		if a.is(attrCN) {
			text.Write(a.value)
		}
	}
	if !exts.writeNames(&text) {
		return nil
	}
	s := text.String()

	c.Subject = s[:subjectEnd]
	c.Issuer = s[subjectEnd:issuerEnd]
	off := issuerEnd
	next := func(n int) string {
		v := s[off : off+n]
		off += n
		return v
	}
	if nIssuerAttrs > 0 {
		// One backing array for the four lists; the three-index slices
		// keep an append to one from overwriting the next.
		vals := make([]string, nIssuerAttrs)
		i := 0
		for _, want := range issuerAttrs {
			start := i
			for _, a := range issuer {
				if a.is(want) {
					vals[i] = next(len(a.value))
					i++
				}
			}
			if i == start {
				continue
			}
			list := vals[start:i:i]
			switch want {
			case attrCN:
				c.IssuerCN = list
			case attrO:
				c.IssuerO = list
			case attrOU:
				c.IssuerOU = list
			default:
				c.IssuerC = list
			}
		}
	}
	var cnStack [4]string
	subjectCNs := cnStack[:0]
	for _, a := range subject {
		if a.is(attrCN) {
			subjectCNs = append(subjectCNs, next(len(a.value)))
		}
	}
	c.DNSNames, c.EmailAddresses = exts.names(s[off:])
	c.DNSNames = dedupNames(c.DNSNames) // lower-cased by writeNames
	c.SANDNSCount = len(c.DNSNames)
	for _, cn := range subjectCNs {
		c.DNSNames = appendCommonName(c.DNSNames, cn)
	}
	c.IPAddresses = exts.ipStrings()

	h, err := l.strippedHash(tbs)
	if err != nil {
		h = sha256.Sum256(tbs) // as tbsHashOrRaw
	}
	c.TBSHash = h
	return c
}

// validSerial reports whether the content octets of the serial number
// INTEGER are a minimally encoded non-negative number: crypto/x509 rejects
// non-minimal encodings, and negative serial numbers depend on GODEBUG.
func validSerial(b []byte) bool {
	return len(b) > 0 && b[0]&0x80 == 0 && (len(b) == 1 || b[0] != 0 || b[1]&0x80 != 0)
}

// fastSigAlg sets SignatureAlgorithm from the TBS signature
// AlgorithmIdentifier element.
func (c *Cert) fastSigAlg(elem []byte) bool {
	in := cryptobyte.String(elem)
	var ai, oid, params cryptobyte.String
	if !in.ReadASN1(&ai, asn1.SEQUENCE) || !ai.ReadASN1(&oid, asn1.OBJECT_IDENTIFIER) || !validOID(oid) {
		return false
	}
	if !ai.Empty() && (!ai.ReadAnyASN1Element(&params, nil) || !ai.Empty()) {
		return false
	}
	name, ok := sigAlgName(oid, params)
	if !ok {
		return false
	}
	if name == "" {
		// As sigAlgOID: an algorithm crypto/x509 does not name is
		// shown by its OID.
		name = string(appendOID(nil, oid))
	}
	c.SignatureAlgorithm = name
	return true
}

// fastValidity sets NotBefore and NotAfter from the content of the Validity
// SEQUENCE.
func (c *Cert) fastValidity(validity cryptobyte.String) bool {
	var ok bool
	if c.NotBefore, ok = readTime(&validity); !ok {
		return false
	}
	if c.NotAfter, ok = readTime(&validity); !ok {
		return false
	}
	return validity.Empty()
}

// readTime reads a UTCTime or GeneralizedTime as crypto/x509 does, in UTC.
// The canonical forms CAs write are decoded here; anything else goes
// through cryptobyte, which crypto/x509 uses, so that the odd forms it
// tolerates (minute precision, offsets) come out the same.
func readTime(s *cryptobyte.String) (time.Time, bool) {
	var t time.Time
	var content cryptobyte.String
	peek := *s
	switch {
	case peek.PeekASN1Tag(asn1.UTCTime):
		if peek.ReadASN1(&content, asn1.UTCTime) && len(content) == 13 && content[12] == 'Z' {
			if yy, ok := digits(content[:2]); ok {
				year := 1900 + yy
				if yy < 50 { // RFC 5280: 00-49 are 20xx
					year += 100
				}
				if t, ok := civilTime(year, content[2:12]); ok {
					*s = peek
					return t, true
				}
			}
		}
		if !s.ReadASN1UTCTime(&t) {
			return t, false
		}
	case peek.PeekASN1Tag(asn1.GeneralizedTime):
		if peek.ReadASN1(&content, asn1.GeneralizedTime) && len(content) == 15 && content[14] == 'Z' {
			if year, ok := digits(content[:4]); ok {
				if t, ok := civilTime(year, content[4:14]); ok {
					*s = peek
					return t, true
				}
			}
		}
		if !s.ReadASN1GeneralizedTime(&t) {
			return t, false
		}
	default:
		return t, false
	}
	return t.UTC(), true
}

// civilTime decodes MMDDHHMMSS in year as time.Parse would with a layout
// of two-digit fields; ok is false for anything it would reject.
func civilTime(year int, b []byte) (time.Time, bool) {
	var f [5]int
	for i := range f {
		v, ok := digits(b[2*i : 2*i+2])
		if !ok {
			return time.Time{}, false
		}
		f[i] = v
	}
	month, day, hour, minute, sec := f[0], f[1], f[2], f[3], f[4]
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	// time.Date normalises 31 April to 1 May; time.Parse rejects it.
	if day > daysIn(time.Month(month), year) {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC).UTC(), true
}

// daysIn is the number of days of month m in year, the bound time.Parse
// checks a day against.
func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// digits decodes a run of ASCII decimal digits.
func digits(b []byte) (int, bool) {
	v := 0
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		v = 10*v + int(d-'0')
	}
	return v, true
}

// fastKey sets KeyType and KeySize from the SubjectPublicKeyInfo element,
// checking the key as crypto/x509 does for the algorithms it parses.
func (c *Cert) fastKey(spki []byte) bool {
	in := cryptobyte.String(spki)
	var info, ai, oid, params, key cryptobyte.String
	if !in.ReadASN1(&info, asn1.SEQUENCE) || !info.ReadASN1(&ai, asn1.SEQUENCE) ||
		!ai.ReadASN1(&oid, asn1.OBJECT_IDENTIFIER) || !validOID(oid) ||
		!info.ReadASN1(&key, asn1.BIT_STRING) || !info.Empty() || !validBitString(key) {
		return false
	}
	if !ai.Empty() && (!ai.ReadAnyASN1Element(&params, nil) || !ai.Empty()) {
		return false
	}
	c.KeyType, c.KeySize = "unknown", 0 // crypto/x509 does not parse keys it does not know
	switch string(oid) {
	case oidPubKeyRSA:
		if key[0] != 0 || string(params) != "\x05\x00" {
			return false
		}
		bitLen, ok := rsaModulusBits(key[1:])
		if !ok {
			return false
		}
		c.KeyType, c.KeySize = "RSA", bitLen
	case oidPubKeyECDSA:
		var curveOID cryptobyte.String
		if key[0] != 0 || !params.ReadASN1(&curveOID, asn1.OBJECT_IDENTIFIER) {
			return false
		}
		var curve elliptic.Curve
		switch string(curveOID) {
		case oidCurveP224:
			curve = elliptic.P224()
		case oidCurveP256:
			curve = elliptic.P256()
		case oidCurveP384:
			curve = elliptic.P384()
		case oidCurveP521:
			curve = elliptic.P521()
		default:
			return false
		}
		// The point must be on the curve, which takes the same check
		// crypto/x509 runs.
		if _, err := ecdsa.ParseUncompressedPublicKey(curve, key[1:]); err != nil {
			return false
		}
		c.KeyType, c.KeySize = "ECDSA", curve.Params().BitSize
	case oidPubKeyEd25519:
		if key[0] != 0 || params != nil || len(key) != 1+32 {
			return false
		}
		c.KeyType, c.KeySize = "Ed25519", 256
	case oidPubKeyDSA:
		return false
	}
	return true
}

// rsaModulusBits checks a PKCS #1 RSAPublicKey as crypto/x509 does (a
// positive modulus and a positive exponent, both minimal INTEGERs) and
// returns the modulus size in bits, without building big integers.
func rsaModulusBits(der cryptobyte.String) (int, bool) {
	var key, n, e cryptobyte.String
	if !der.ReadASN1(&key, asn1.SEQUENCE) || !der.Empty() ||
		!key.ReadASN1(&n, asn1.INTEGER) || !key.ReadASN1(&e, asn1.INTEGER) || !key.Empty() {
		return 0, false
	}
	// A positive minimal INTEGER: no sign bit, and a leading zero only
	// before a byte with the top bit set. Zero is not positive.
	if !validSerial(n) || !validSerial(e) || len(n) == 1 && n[0] == 0 || len(e) == 1 && e[0] == 0 {
		return 0, false
	}
	// crypto/x509 reads the exponent into an int; four octets fit on
	// every platform.
	if len(e) > 4 {
		return 0, false
	}
	if n[0] == 0 {
		n = n[1:]
	}
	return 8*(len(n)-1) + bits.Len8(n[0]), true
}

// validOID reports whether cryptobyte's ReadASN1ObjectIdentifier, and so
// crypto/x509, accepts the content octets of an OBJECT IDENTIFIER.
func validOID(oid []byte) bool {
	if len(oid) == 0 {
		return false
	}
	for len(oid) > 0 {
		_, n, ok := base128(oid)
		if !ok {
			return false
		}
		oid = oid[n:]
	}
	return true
}

// base128 reads one OID arc the way cryptobyte does: at most five octets,
// no leading 0x80 octet, and a value below 2^31 on every platform.
func base128(b []byte) (v, n int, ok bool) {
	for i, octet := range b {
		if i == 5 || v >= 1<<(31-7) || i == 0 && octet == 0x80 {
			return 0, 0, false
		}
		v = v<<7 | int(octet&0x7f)
		if octet&0x80 == 0 {
			return v, i + 1, true
		}
	}
	return 0, 0, false
}

// appendOID appends the dotted form of a valid OID's content octets, as
// asn1.ObjectIdentifier.String writes it.
func appendOID(dst, oid []byte) []byte {
	for i := 0; len(oid) > 0; i++ {
		v, n, ok := base128(oid)
		if !ok {
			return dst
		}
		oid = oid[n:]
		if i == 0 {
			first := min(v/40, 2)
			dst = strconv.AppendInt(dst, int64(first), 10)
			v -= 40 * first
		}
		dst = append(dst, '.')
		dst = strconv.AppendInt(dst, int64(v), 10)
	}
	return dst
}

// extSummary is what the fast decoder keeps from the extensions, after
// checking each as crypto/x509 does.
type extSummary struct {
	poisoned bool
	// san is the content of the subjectAltName GeneralNames SEQUENCE,
	// nil when there is none.
	san []byte
	// Counts and total sizes of the SAN dNSNames and rfc822Names, and the
	// number of iPAddresses.
	nDNS, nEmail, nIP int
}

// read checks the content of the Extensions SEQUENCE.
func (x *extSummary) read(exts cryptobyte.String) bool {
	var seen [maxFastExtensions][]byte
	n := 0
	for !exts.Empty() {
		var ext, oid, value cryptobyte.String
		critical := false
		if !exts.ReadASN1(&ext, asn1.SEQUENCE) ||
			!ext.ReadASN1(&oid, asn1.OBJECT_IDENTIFIER) || !validOID(oid) {
			return false
		}
		if ext.PeekASN1Tag(asn1.BOOLEAN) && !ext.ReadASN1Boolean(&critical) {
			return false
		}
		if !ext.ReadASN1(&value, asn1.OCTET_STRING) || !ext.Empty() {
			return false
		}
		// crypto/x509 rejects a repeated extension.
		if n == len(seen) {
			return false
		}
		for _, o := range seen[:n] {
			if bytes.Equal(o, oid) {
				return false
			}
		}
		seen[n] = oid
		n++
		if !x.check(string(oid), critical, value) {
			return false
		}
	}
	return true
}

// check validates one extension the way crypto/x509's processExtensions
// does, and records what the Cert needs from it. Extensions crypto/x509
// does not look into are accepted as they are; the few it checks in ways
// the fast decoder does not repeat are refused.
func (x *extSummary) check(oid string, critical bool, value cryptobyte.String) bool {
	switch oid {
	case oidPoison:
		x.poisoned = true
	case oidExtSubjectAltName:
		return x.readSAN(value)
	case oidExtKeyUsageBits:
		var usage cryptobyte.String
		return value.ReadASN1(&usage, asn1.BIT_STRING) && validBitString(usage)
	case oidExtBasicConstraints:
		var bc cryptobyte.String
		if !value.ReadASN1(&bc, asn1.SEQUENCE) {
			return false
		}
		var isCA bool
		if bc.PeekASN1Tag(asn1.BOOLEAN) && !bc.ReadASN1Boolean(&isCA) {
			return false
		}
		if bc.PeekASN1Tag(asn1.INTEGER) {
			// A path length crypto/x509 takes as a non-negative int;
			// four octets fit on every platform.
			var mpl cryptobyte.String
			if !bc.ReadASN1(&mpl, asn1.INTEGER) || !validSerial(mpl) || len(mpl) > 4 {
				return false
			}
		}
	case oidExtSubjectKeyID:
		var skid cryptobyte.String
		return !critical && value.ReadASN1(&skid, asn1.OCTET_STRING)
	case oidExtAuthorityKeyID:
		var akid, id cryptobyte.String
		if critical || !value.ReadASN1(&akid, asn1.SEQUENCE) {
			return false
		}
		const keyID = asn1.Tag(0x80) // [0] IMPLICIT KeyIdentifier
		return !akid.PeekASN1Tag(keyID) || akid.ReadASN1(&id, keyID)
	case oidExtKeyUsage:
		var usages cryptobyte.String
		if !value.ReadASN1(&usages, asn1.SEQUENCE) {
			return false
		}
		for !usages.Empty() {
			var u cryptobyte.String
			if !usages.ReadASN1(&u, asn1.OBJECT_IDENTIFIER) || !validOID(u) {
				return false
			}
		}
	case oidExtCRLDistribution:
		return validCRLDistributionPoints(value)
	case oidExtCertPolicies:
		return validPolicies(value)
	case oidExtAuthorityInfo:
		return !critical && validAuthorityInfoAccess(value)
	case oidExtNameConstraints, oidExtPolicyMappings, oidExtPolicyConstraint, oidExtInhibitAnyPolicy:
		return false
	}
	return true
}

// readSAN records the subjectAltName GeneralNames; writeNames checks them.
func (x *extSummary) readSAN(value cryptobyte.String) bool {
	var names cryptobyte.String
	if !value.ReadASN1(&names, asn1.SEQUENCE) || !value.Empty() {
		return false
	}
	x.san = names
	return true
}

// writeNames checks the SAN GeneralNames as crypto/x509 does, counts them,
// and writes the dNSNames, lower-cased, then the rfc822Names to text, for
// names to cut out again. It reports false for what crypto/x509 rejects
// and for URIs, which it parses with rules the fast decoder does not repeat.
//
// Lower-casing here, while the bytes are copied anyway, spares
// normalizeNames a pass over every name; dNSNames are ASCII, so this is
// exactly what strings.ToLower would do.
func (x *extSummary) writeNames(text *strings.Builder) bool {
	for names := cryptobyte.String(x.san); !names.Empty(); {
		var name cryptobyte.String
		var tag asn1.Tag
		if !names.ReadAnyASN1(&name, &tag) {
			return false
		}
		switch tag {
		case 0x81: // rfc822Name
			if !isASCII(name) {
				return false
			}
			x.nEmail++
		case 0x82: // dNSName
			if !writeLowerASCII(text, name) {
				return false
			}
			x.nDNS++
		case 0x86: // uniformResourceIdentifier
			return false
		case 0x87: // iPAddress
			if len(name) != net.IPv4len && len(name) != net.IPv6len {
				return false
			}
			x.nIP++
		}
	}
	if x.nEmail == 0 {
		return true
	}
	for names := cryptobyte.String(x.san); !names.Empty(); {
		var name cryptobyte.String
		var tag asn1.Tag
		names.ReadAnyASN1(&name, &tag) // checked above
		if tag == 0x81 {
			text.Write(name)
		}
	}
	return true
}

// writeLowerASCII writes b lower-cased to w; false if b is not ASCII.
func writeLowerASCII(w *strings.Builder, b []byte) bool {
	var all, upper byte
	for _, c := range b {
		all |= c
		if c-'A' < 26 {
			upper = 1
		}
	}
	if all >= 0x80 {
		return false
	}
	if upper == 0 {
		w.Write(b)
		return true
	}
	for _, c := range b {
		if c-'A' < 26 {
			c += 'a' - 'A'
		}
		w.WriteByte(c)
	}
	return true
}

// names cuts the SAN dNSNames and rfc822Names out of text, which starts
// with what writeNames wrote. Either is nil when there is none, as with
// crypto/x509.
func (x *extSummary) names(text string) (dns, emails []string) {
	if x.nDNS+x.nEmail == 0 {
		return nil, nil
	}
	all := make([]string, x.nDNS+x.nEmail)
	dns, emails = all[:0:x.nDNS], all[x.nDNS:x.nDNS]
	var emailText string
	if x.nEmail > 0 {
		// The emails follow all the dNSNames.
		n := 0
		for names := cryptobyte.String(x.san); !names.Empty(); {
			var name cryptobyte.String
			var tag asn1.Tag
			names.ReadAnyASN1(&name, &tag)
			if tag == 0x82 {
				n += len(name)
			}
		}
		text, emailText = text[:n], text[n:]
	}
	for names := cryptobyte.String(x.san); !names.Empty(); {
		var name cryptobyte.String
		var tag asn1.Tag
		names.ReadAnyASN1(&name, &tag)
		switch tag {
		case 0x82:
			dns = append(dns, text[:len(name)])
			text = text[len(name):]
		case 0x81:
			emails = append(emails, emailText[:len(name)])
			emailText = emailText[len(name):]
		}
	}
	if x.nDNS == 0 {
		dns = nil
	}
	if x.nEmail == 0 {
		emails = nil
	}
	return dns, emails
}

// ipStrings renders the SAN iPAddresses as ipStrings does.
func (x *extSummary) ipStrings() []string {
	if x.nIP == 0 {
		return nil
	}
	out := make([]string, 0, x.nIP)
	for names := cryptobyte.String(x.san); !names.Empty(); {
		var name cryptobyte.String
		var tag asn1.Tag
		names.ReadAnyASN1(&name, &tag)
		if tag == 0x87 {
			out = append(out, net.IP(name).String())
		}
	}
	return out
}

// isASCII is crypto/x509's IA5String test.
func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// validCRLDistributionPoints checks a cRLDistributionPoints value as
// crypto/x509 does.
func validCRLDistributionPoints(value cryptobyte.String) bool {
	const (
		dpNameTag = asn1.Tag(0xa0) // [0] DistributionPointName / fullName
		uriTag    = asn1.Tag(0x86) // [6] uniformResourceIdentifier
	)
	var points cryptobyte.String
	if !value.ReadASN1(&points, asn1.SEQUENCE) {
		return false
	}
	for !points.Empty() {
		var dp, name cryptobyte.String
		var present bool
		if !points.ReadASN1(&dp, asn1.SEQUENCE) || !dp.ReadOptionalASN1(&name, &present, dpNameTag) {
			return false
		}
		if !present {
			continue
		}
		if !name.ReadASN1(&name, dpNameTag) {
			return false
		}
		for !name.Empty() && name.PeekASN1Tag(uriTag) {
			var uri cryptobyte.String
			if !name.ReadASN1(&uri, uriTag) {
				return false
			}
		}
	}
	return true
}

// validPolicies checks a certificatePolicies value as crypto/x509 does:
// well-formed, with no policy OID twice.
func validPolicies(value cryptobyte.String) bool {
	var policies cryptobyte.String
	if !value.ReadASN1(&policies, asn1.SEQUENCE) {
		return false
	}
	var seen [8][]byte
	n := 0
	for !policies.Empty() {
		var info, oid cryptobyte.String
		if !policies.ReadASN1(&info, asn1.SEQUENCE) || !info.ReadASN1(&oid, asn1.OBJECT_IDENTIFIER) {
			return false
		}
		if n == len(seen) {
			return false // more policies than real certificates carry
		}
		for _, o := range seen[:n] {
			if bytes.Equal(o, oid) {
				return false
			}
		}
		seen[n] = oid
		n++
		// crypto/x509's newOIDFromDER: complete arcs, none starting with
		// 0x80; no bound on their size.
		if len(oid) == 0 || oid[len(oid)-1]&0x80 != 0 {
			return false
		}
		start := true
		for _, b := range oid {
			if start && b == 0x80 {
				return false
			}
			start = b&0x80 == 0
		}
	}
	return true
}

// validAuthorityInfoAccess checks an authorityInfoAccess value as
// crypto/x509 does.
func validAuthorityInfoAccess(value cryptobyte.String) bool {
	const uriTag = asn1.Tag(0x86)
	var descs cryptobyte.String
	if !value.ReadASN1(&descs, asn1.SEQUENCE) {
		return false
	}
	for !descs.Empty() {
		var desc, method, uri cryptobyte.String
		if !descs.ReadASN1(&desc, asn1.SEQUENCE) ||
			!desc.ReadASN1(&method, asn1.OBJECT_IDENTIFIER) || !validOID(method) {
			return false
		}
		if desc.PeekASN1Tag(uriTag) && !desc.ReadASN1(&uri, uriTag) {
			return false
		}
	}
	return true
}
