package rules

import (
	"encoding/asn1"
	"encoding/hex"
	"iter"
	"slices"
	"strings"
	"unicode/utf16"
)

// Distinguished names reach the rules in two spellings: the certificate
// decoder writes RFC 4514 as crypto/x509 does (last RDN first, unknown
// attribute types as OID=#hex), while feed and issuer-set indexes may be
// written the way OpenSSL prints names (first RDN first, emailAddress=...).
// Comparing them as plain strings would miss a name that is the same, so
// names are compared in a canonical form: the multiset of (attribute OID,
// value) pairs, values unescaped, trimmed and ASCII-lower-cased (X.520
// compares most attributes case-insensitively). Ignoring RDN order makes the
// comparison a little looser than X.500's, which only matters for a name
// that lists the same attributes as a feed CA in another order: one that is
// worth an alert anyway.

// knownAttrOID maps an attribute type name that RFC 4514, crypto/x509 or
// OpenSSL prints (lower-cased) to its OID; a switch rather than a map so
// that the table cannot be changed at run time.
func knownAttrOID(t string) (string, bool) {
	switch t {
	case "cn", "commonname":
		return "2.5.4.3", true
	case "sn", "surname":
		return "2.5.4.4", true
	case "serialnumber":
		return "2.5.4.5", true
	case "c", "countryname":
		return "2.5.4.6", true
	case "l", "localityname":
		return "2.5.4.7", true
	case "st", "s", "stateorprovincename":
		return "2.5.4.8", true
	case "street", "streetaddress":
		return "2.5.4.9", true
	case "o", "organizationname":
		return "2.5.4.10", true
	case "ou", "organizationalunitname":
		return "2.5.4.11", true
	case "title":
		return "2.5.4.12", true
	case "postalcode":
		return "2.5.4.17", true
	case "givenname":
		return "2.5.4.42", true
	case "houseidentifier":
		return "2.5.4.51", true
	case "organizationidentifier":
		return "2.5.4.97", true
	case "dc":
		return "0.9.2342.19200300.100.1.25", true
	case "uid":
		return "0.9.2342.19200300.100.1.1", true
	case "emailaddress", "email":
		return "1.2.840.113549.1.9.1", true
	}
	return "", false
}

// dnAttrs yields the attribute types and raw (still escaped) values of an
// RFC 4514 string, splitting at unescaped ',', '+' and ';'. A part without
// '=' is yielded with an empty type. It never fails: a malformed name just
// compares unequal to well-formed ones.
func dnAttrs(dn string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		start := 0
		for i := 0; i <= len(dn); i++ {
			if i < len(dn) {
				switch dn[i] {
				case '\\':
					i++
					continue
				case ',', '+', ';':
				default:
					continue
				}
			}
			part := dn[start:min(i, len(dn))]
			start = i + 1
			if strings.TrimSpace(part) == "" {
				continue
			}
			typ, val, ok := strings.Cut(part, "=")
			if !ok {
				typ, val = "", part
			}
			if !yield(strings.TrimSpace(typ), val) {
				return
			}
		}
	}
}

// attrOID returns the canonical (OID) form of an attribute type.
func attrOID(typ string) string {
	t := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(typ, "OID."), "oid."))
	if oid, ok := knownAttrOID(t); ok {
		return oid
	}
	return t
}

// isAttr reports whether typ names the attribute with the given short name
// and OID, without allocating.
func isAttr(typ, short, long, oid string) bool {
	return strings.EqualFold(typ, short) || strings.EqualFold(typ, long) || typ == oid
}

// canonValue unescapes an RFC 4514 value (\c and \XX escapes; a #hex value
// is the DER of an ASN.1 string and is decoded), trims it and lower-cases
// ASCII letters.
func canonValue(raw string) string {
	v := strings.TrimSpace(raw)
	if strings.HasPrefix(v, "#") {
		v = decodeHexValue(v[1:])
	} else if strings.IndexByte(v, '\\') >= 0 {
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] != '\\' || i+1 >= len(v) {
				b.WriteByte(v[i])
				continue
			}
			if i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
				x, _ := hex.DecodeString(v[i+1 : i+3])
				b.Write(x)
				i += 2
				continue
			}
			i++
			b.WriteByte(v[i])
		}
		v = b.String()
	}
	return asciiLower(strings.TrimSpace(v))
}

// decodeHexValue turns the hex DER of an attribute value into its text when
// it is a string type, and otherwise keeps the hex (lower-cased) so that
// equal encodings still compare equal.
func decodeHexValue(h string) string {
	der, err := hex.DecodeString(h)
	if err != nil {
		return "#" + strings.ToLower(h)
	}
	var rv asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &rv); err != nil || len(rest) > 0 || rv.Class != asn1.ClassUniversal {
		return "#" + strings.ToLower(h)
	}
	switch rv.Tag {
	case asn1.TagUTF8String, asn1.TagPrintableString, asn1.TagIA5String, asn1.TagT61String, 26 /* VisibleString */, 27 /* GeneralString */ :
		return string(rv.Bytes)
	case asn1.TagBMPString:
		if len(rv.Bytes)%2 != 0 {
			break
		}
		u := make([]uint16, len(rv.Bytes)/2)
		for i := range u {
			u[i] = uint16(rv.Bytes[2*i])<<8 | uint16(rv.Bytes[2*i+1])
		}
		return string(utf16.Decode(u))
	}
	return "#" + strings.ToLower(h)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.Map(func(r rune) rune {
				if 'A' <= r && r <= 'Z' {
					return r + ('a' - 'A')
				}
				return r
			}, s)
		}
	}
	return s
}

// canonicalDN returns the canonical form of an RFC 4514 (or OpenSSL-style)
// distinguished name described at the top of this file; "" for a name
// without attributes.
func canonicalDN(dn string) string {
	var parts []string
	for typ, val := range dnAttrs(dn) {
		parts = append(parts, attrOID(typ)+"="+canonValue(val))
	}
	slices.Sort(parts)
	return strings.Join(parts, "\n")
}

// FNV-1a parameters, for cnKey.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// cnKey hashes the canonical value of the first CN of dn (or nothing when
// it has none). Names that are equal in canonical form have the same key,
// so a feed keyed by it is a cheap first filter before comparing whole
// canonical names; the common case (no escapes, no #hex) allocates nothing.
func cnKey(dn string) uint64 {
	// Most DNs start with a plain CN ("CN=E5,O=Let's Encrypt,C=US"): its
	// value is what dnAttrs would yield first, up to the first separator,
	// when no escape comes before it.
	if strings.HasPrefix(dn, "CN=") {
		end := len(dn)
		for i := 3; i < len(dn); i++ {
			if c := dn[i]; c == ',' || c == '+' || c == ';' || c == '\\' {
				end = i
				break
			}
		}
		if end == len(dn) || dn[end] != '\\' {
			if v := strings.TrimSpace(dn[3:end]); !strings.HasPrefix(v, "#") {
				return foldHash(v)
			}
		}
	}
	return cnKeyAttrs(dn)
}

// cnKeyAttrs is cnKey for any DN: the first CN that dnAttrs yields.
func cnKeyAttrs(dn string) uint64 {
	for typ, val := range dnAttrs(dn) {
		if !isAttr(typ, "cn", "commonName", "2.5.4.3") {
			continue
		}
		v := strings.TrimSpace(val)
		if strings.IndexByte(v, '\\') >= 0 || strings.HasPrefix(v, "#") {
			v = canonValue(val)
		}
		return foldHash(v)
	}
	return fnvOffset
}

// foldHash is FNV-1a over s with ASCII letters lower-cased.
func foldHash(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}
