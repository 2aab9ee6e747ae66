package cert

import (
	"math/bits"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// The last arc of the id-at attribute types (2.5.4.x) that pkix.Name has
// fields for. String renders these by name and in a fixed order; every
// other attribute is rendered by OID after them.
const (
	attrCN         = 3
	attrSerial     = 5
	attrC          = 6
	attrL          = 7
	attrST         = 8
	attrStreet     = 9
	attrO          = 10
	attrOU         = 11
	attrPostalCode = 17
)

// dnAttr is one AttributeTypeAndValue of a distinguished name: the content
// octets of its type OID and its value as UTF-8 text, decoded from the
// string type the way crypto/x509 decodes it. Both alias the DER unless the
// string type needed converting.
type dnAttr struct {
	oid   []byte
	value []byte
}

// is reports whether a is the 2.5.4.x attribute with last arc x.
func (a dnAttr) is(x byte) bool {
	return len(a.oid) == 3 && a.oid[0] == 0x55 && a.oid[1] == 0x04 && a.oid[2] == x
}

// named reports whether pkix.Name has a field for a, so that String
// renders it by name rather than with the other attributes.
func (a dnAttr) named() bool {
	if len(a.oid) != 3 || a.oid[0] != 0x55 || a.oid[1] != 0x04 {
		return false
	}
	switch a.oid[2] {
	case attrCN, attrSerial, attrC, attrL, attrST, attrStreet, attrO, attrOU, attrPostalCode:
		return true
	}
	return false
}

// parseDN appends the attributes of a DER Name element to attrs, in
// certificate order with multi-valued RDNs flattened, as crypto/x509's
// parseName and FillFromRDNSequence see them. ok is false for anything
// crypto/x509 would reject and for the rare shapes it accepts that the fast
// decoder does not follow (bytes after an attribute value).
//
// With rawT61, a T61String holding non-ASCII bytes is refused too:
// encoding/asn1, which nameString emulates, takes such a string's bytes as
// they are where crypto/x509 reads them as Latin-1.
func parseDN(elem []byte, attrs []dnAttr, rawT61 bool) (_ []dnAttr, ok bool) {
	in := cryptobyte.String(elem)
	var rdns cryptobyte.String
	if !in.ReadASN1(&rdns, asn1.SEQUENCE) || !in.Empty() {
		return nil, false
	}
	for !rdns.Empty() {
		var set cryptobyte.String
		if !rdns.ReadASN1(&set, asn1.SET) {
			return nil, false
		}
		for !set.Empty() {
			var atv, oid, raw cryptobyte.String
			var tag asn1.Tag
			if !set.ReadASN1(&atv, asn1.SEQUENCE) ||
				!atv.ReadASN1(&oid, asn1.OBJECT_IDENTIFIER) || !validOID(oid) ||
				!atv.ReadAnyASN1(&raw, &tag) || !atv.Empty() {
				return nil, false
			}
			if rawT61 && tag == asn1.T61String && !isASCII(raw) {
				return nil, false
			}
			value, ok := decodeDirectoryString(tag, raw)
			if !ok {
				return nil, false
			}
			attrs = append(attrs, dnAttr{oid: oid, value: value})
		}
	}
	return attrs, true
}

// decodeDirectoryString decodes an attribute value as crypto/x509's
// parseASN1String does; ok is false for what it rejects.
func decodeDirectoryString(tag asn1.Tag, b []byte) ([]byte, bool) {
	switch tag {
	case asn1.PrintableString:
		for _, c := range b {
			if !isPrintable(c) {
				return nil, false
			}
		}
		return b, true
	case asn1.UTF8String:
		return b, utf8.Valid(b)
	case asn1.IA5String:
		return b, isASCII(b)
	case asn1.Tag(18): // NumericString
		for _, c := range b {
			if (c < '0' || c > '9') && c != ' ' {
				return nil, false
			}
		}
		return b, true
	case asn1.T61String:
		// Read as Latin-1, as crypto/x509 does.
		if isASCII(b) {
			return b, true
		}
		out := make([]byte, 0, 2*len(b))
		for _, c := range b {
			out = utf8.AppendRune(out, rune(c))
		}
		return out, true
	case asn1.Tag(30): // BMPString
		return decodeBMP(b)
	}
	return nil, false
}

// decodeBMP decodes a BMPString (UCS-2) as crypto/x509 does: an optional
// terminating NUL is dropped, and surrogates and permanent noncharacters
// are refused, so every code unit is a code point.
func decodeBMP(b []byte) ([]byte, bool) {
	if len(b)%2 != 0 {
		return nil, false
	}
	if n := len(b); n >= 2 && b[n-1] == 0 && b[n-2] == 0 {
		b = b[:n-2]
	}
	out := make([]byte, 0, len(b)*3/2)
	for i := 0; i < len(b); i += 2 {
		r := rune(b[i])<<8 | rune(b[i+1])
		if r == 0xfffe || r == 0xffff || r >= 0xfdd0 && r <= 0xfdef || r >= 0xd800 && r <= 0xdfff {
			return nil, false
		}
		out = utf8.AppendRune(out, r)
	}
	return out, true
}

// isPrintable is crypto/x509's PrintableString alphabet, which tolerates
// '*' and '&' because real certificates use them.
func isPrintable(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		'\'' <= b && b <= ')' || '+' <= b && b <= '/' ||
		b == ' ' || b == ':' || b == '=' || b == '?' || b == '*' || b == '&'
}

// marshalsPrintable reports whether encoding/asn1 marshals the string s as
// a PrintableString rather than a UTF8String: its alphabet when marshalling
// has neither '*' nor '&'.
func marshalsPrintable(s []byte) bool {
	for _, c := range s {
		if c == '*' || c == '&' || !isPrintable(c) {
			return false
		}
	}
	return true
}

// appendDN writes the RFC 4514 form of a parsed Name to w exactly as
// pkix.Name.String does after FillFromRDNSequence, and returns w's length.
//
// That form is not the certificate's order: String rebuilds the name from
// Name's fields. Reversed, as RDNSequence.String writes it, that is the last
// serialNumber and the last CN (each only when not empty), then one RDN per
// list (OU, O, postalCode, street, L, ST, C) holding all of its values in
// certificate order, then the attributes Name has no field for, last first,
// each by dotted OID with its value re-marshalled by encoding/asn1 in hex.
func appendDN(w *strings.Builder, attrs []dnAttr) int {
	first := true
	sep := func() {
		if !first {
			w.WriteByte(',')
		}
		first = false
	}
	for _, single := range [...]struct {
		attr byte
		name string
	}{{attrSerial, "SERIALNUMBER"}, {attrCN, "CN"}} {
		last := -1
		for i, a := range attrs {
			if a.is(single.attr) {
				last = i
			}
		}
		if last >= 0 && len(attrs[last].value) > 0 {
			sep()
			w.WriteString(single.name)
			w.WriteByte('=')
			writeEscaped(w, attrs[last].value)
		}
	}
	// The attributes pkix.Name keeps in lists, in the order String
	// renders them (the reverse of ToRDNSequence's).
	groups := [...]struct {
		attr byte
		name string
	}{
		{attrOU, "OU"}, {attrO, "O"}, {attrPostalCode, "POSTALCODE"},
		{attrStreet, "STREET"}, {attrL, "L"}, {attrST, "ST"}, {attrC, "C"},
	}
	for _, g := range groups {
		n := 0
		for _, a := range attrs {
			if !a.is(g.attr) {
				continue
			}
			if n == 0 {
				sep()
			} else {
				w.WriteByte('+')
			}
			n++
			w.WriteString(g.name)
			w.WriteByte('=')
			writeEscaped(w, a.value)
		}
	}
	for i := len(attrs) - 1; i >= 0; i-- {
		a := attrs[i]
		if a.named() {
			continue
		}
		sep()
		var buf [64]byte
		w.Write(appendOID(buf[:0], a.oid))
		w.WriteString("=#")
		tag := byte(asn1.UTF8String)
		if marshalsPrintable(a.value) {
			tag = byte(asn1.PrintableString)
		}
		writeHex(w, tag)
		n := len(a.value)
		switch {
		case n < 0x80:
			writeHex(w, byte(n))
		default:
			octets := (bits.Len(uint(n)) + 7) / 8
			writeHex(w, 0x80|byte(octets))
			for j := octets - 1; j >= 0; j-- {
				writeHex(w, byte(n>>(8*j)))
			}
		}
		for _, c := range a.value {
			writeHex(w, c)
		}
	}
	return w.Len()
}

// writeHex writes c as two lower-case hex digits, as encoding/hex does.
func writeHex(w *strings.Builder, c byte) {
	const digits = "0123456789abcdef"
	w.WriteByte(digits[c>>4])
	w.WriteByte(digits[c&0x0f])
}

// writeEscaped writes an attribute value with pkix's escaping: the RFC 4514
// specials always, a space first or last, and a '#' first. The value is
// valid UTF-8, whose multi-byte sequences hold no ASCII byte, so going byte
// by byte matches pkix's rune loop.
func writeEscaped(w *strings.Builder, v []byte) {
	for k, c := range v {
		escape := false
		switch c {
		case ',', '+', '"', '\\', '<', '>', ';':
			escape = true
		case ' ':
			escape = k == 0 || k == len(v)-1
		case '#':
			escape = k == 0
		}
		if escape {
			w.WriteByte('\\')
		}
		w.WriteByte(c)
	}
}

// fastNameString is the fast path of nameString: the RFC 4514 form of a DER
// Name as encoding/asn1, FillFromRDNSequence and pkix.Name.String give it,
// or ok false when not sure. For the attribute value types it accepts,
// encoding/asn1 and crypto/x509 decode alike.
func fastNameString(der []byte) (_ string, ok bool) {
	var buf [16]dnAttr
	attrs, ok := parseDN(der, buf[:0], true)
	if !ok {
		return "", false
	}
	var w strings.Builder
	w.Grow(len(der))
	appendDN(&w, attrs)
	return w.String(), true
}
