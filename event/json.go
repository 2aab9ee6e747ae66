package event

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// The fixed parts of a hit's JSON form, in field order. Both the encoder
// and the length calculation use them, so the two cannot disagree about a
// key.
const (
	keyID       = `{"id":`
	keyRule     = `,"rule":`
	keySeverity = `,"severity":`
	keyReason   = `,"reason":`
	keyTags     = `,"tags":`
	keyLog      = `,"log":`
	keyCert     = `,"cert":`

	keyLogName  = `{"name":`
	keyLogURL   = `,"url":`
	keyLogIndex = `,"index":`

	keySHA256     = `{"sha256":`
	keyTBSSHA256  = `,"tbs_sha256":`
	keyPrecert    = `,"precert":`
	keyDNSNames   = `,"dns_names":`
	keySubject    = `,"subject":`
	keyIssuer     = `,"issuer":`
	keyIssuerSPKI = `,"issuer_spki_sha256":`
	keyNotBefore  = `,"not_before":`
	keyNotAfter   = `,"not_after":`

	jsonNull = "null"
)

// MarshalHit returns the JSON form of h, byte for byte what json.Marshal(h)
// returns, in a slice allocated once at its exact length (unless a DNS
// name needs escaping; see sizeHint).
//
// It exists because a CPU profile of a backfill in which 5% of entries are
// hits spent 10–15% of all CPU in json.Marshal of hits (issue 8): reflection
// over the struct on every hit, and repeated buffer growth for hits with
// hundreds of DNS names. The bus publishes every hit with it; each message
// needs its own slice because an asynchronous publish holds on to it until
// the server acknowledges.
//
// It fails exactly when json.Marshal fails: when a certificate time cannot
// be written as RFC 3339 (a year outside [0,9999] or a zone offset of a day
// or more).
func MarshalHit(h *Hit) ([]byte, error) {
	data, err := h.AppendJSON(make([]byte, 0, h.sizeHint()))
	if err != nil {
		return nil, err
	}
	return data, nil
}

// AppendJSON appends the JSON form of h to dst and returns the extended
// slice. The bytes are exactly those json.Marshal(h) produces: the same
// field order, omitted empty tags and nil log, null for nil DNS names, the
// same string escaping (including <, >, &, U+2028, U+2029 and invalid UTF-8)
// and time.Time's own RFC 3339 form. Because the JSON form of a hit is an
// external contract (JSONL lines, webhook bodies, `ctwatch check --json`),
// anything that changes that form must change both; the differential tests
// and FuzzHitJSON hold the two together.
//
// It returns an error where json.Marshal does, when a certificate time has
// no RFC 3339 form; dst is then returned with nothing appended, so a caller
// reusing a buffer keeps what it held. A nil h appends null, as
// json.Marshal does for a nil pointer.
func (h *Hit) AppendJSON(dst []byte) ([]byte, error) {
	if h == nil {
		return append(dst, jsonNull...), nil
	}
	start := len(dst)
	dst = append(dst, keyID...)
	dst = appendJSONString(dst, h.ID)
	dst = append(dst, keyRule...)
	dst = appendJSONString(dst, h.Rule)
	dst = append(dst, keySeverity...)
	dst = appendJSONString(dst, string(h.Severity))
	dst = append(dst, keyReason...)
	dst = appendJSONString(dst, h.Reason)
	if len(h.Tags) > 0 { // omitempty: absent when nil or empty
		dst = append(dst, keyTags...)
		dst = appendJSONStrings(dst, h.Tags)
	}
	if h.Log != nil {
		dst = append(dst, keyLog...)
		dst = h.Log.appendJSON(dst)
	}
	dst = append(dst, keyCert...)
	dst, err := h.Cert.appendJSON(dst)
	if err != nil {
		return dst[:start], fmt.Errorf("event: encode hit: %w", err)
	}
	return append(dst, '}'), nil
}

// sizeHint is the length of what AppendJSON appends for h, so that
// MarshalHit allocates once, with one exception: DNS names count at their
// raw length, as if none needed escaping. Names are letters, digits,
// hyphens, dots and wildcards, which JSON copies as they are, and they are
// the bulk of a large hit: measuring them would cost as much as encoding
// them. A name that does need escaping (only a malformed certificate has
// one) makes the slice grow. Every other field is measured exactly,
// because reasons routinely quote names.
func (h *Hit) sizeHint() int {
	if h == nil {
		return len(jsonNull)
	}
	n := len(keyID) + jsonStringLen(h.ID) +
		len(keyRule) + jsonStringLen(h.Rule) +
		len(keySeverity) + jsonStringLen(string(h.Severity)) +
		len(keyReason) + jsonStringLen(h.Reason)
	if len(h.Tags) > 0 {
		n += len(keyTags) + jsonStringsLen(h.Tags, jsonStringLen)
	}
	if h.Log != nil {
		n += len(keyLog) + h.Log.sizeHint()
	}
	return n + len(keyCert) + h.Cert.sizeHint() + len("}")
}

// appendJSON appends l as json.Marshal writes it; it cannot fail.
func (l *LogRef) appendJSON(dst []byte) []byte {
	dst = append(dst, keyLogName...)
	dst = appendJSONString(dst, l.Name)
	dst = append(dst, keyLogURL...)
	dst = appendJSONString(dst, l.URL)
	dst = append(dst, keyLogIndex...)
	dst = strconv.AppendUint(dst, l.Index, 10)
	return append(dst, '}')
}

// sizeHint is the length of what appendJSON appends for l.
func (l *LogRef) sizeHint() int {
	return len(keyLogName) + jsonStringLen(l.Name) +
		len(keyLogURL) + jsonStringLen(l.URL) +
		len(keyLogIndex) + uintLen(l.Index) + len("}")
}

// appendJSON appends c as json.Marshal writes it. It fails, naming the
// field, when a time has no RFC 3339 form; what it appended by then is
// left for the caller to discard.
func (c *CertInfo) appendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, keySHA256...)
	dst = appendJSONString(dst, c.SHA256)
	dst = append(dst, keyTBSSHA256...)
	dst = appendJSONString(dst, c.TBSSHA256)
	dst = append(dst, keyPrecert...)
	dst = appendBool(dst, c.Precert)
	dst = append(dst, keyDNSNames...)
	dst = appendJSONStrings(dst, c.DNSNames)
	dst = append(dst, keySubject...)
	dst = appendJSONString(dst, c.Subject)
	dst = append(dst, keyIssuer...)
	dst = appendJSONString(dst, c.Issuer)
	dst = append(dst, keyIssuerSPKI...)
	dst = appendJSONString(dst, c.IssuerSPKISHA256)
	dst = append(dst, keyNotBefore...)
	dst, err := appendJSONTime(dst, c.NotBefore)
	if err != nil {
		return dst, fmt.Errorf("cert.not_before: %w", err)
	}
	dst = append(dst, keyNotAfter...)
	dst, err = appendJSONTime(dst, c.NotAfter)
	if err != nil {
		return dst, fmt.Errorf("cert.not_after: %w", err)
	}
	return append(dst, '}'), nil
}

// sizeHint is the length of what appendJSON appends for c if no DNS name
// needs escaping; see Hit.sizeHint.
func (c *CertInfo) sizeHint() int {
	return len(keySHA256) + jsonStringLen(c.SHA256) +
		len(keyTBSSHA256) + jsonStringLen(c.TBSSHA256) +
		len(keyPrecert) + boolLen(c.Precert) +
		len(keyDNSNames) + jsonStringsLen(c.DNSNames, rawJSONStringLen) +
		len(keySubject) + jsonStringLen(c.Subject) +
		len(keyIssuer) + jsonStringLen(c.Issuer) +
		len(keyIssuerSPKI) + jsonStringLen(c.IssuerSPKISHA256) +
		len(keyNotBefore) + jsonTimeLen(c.NotBefore) +
		len(keyNotAfter) + jsonTimeLen(c.NotAfter) + len("}")
}

// appendJSONTime appends t as a quoted RFC 3339 string with nanoseconds.
// It goes through time.Time.AppendText, which shares its formatting and
// its range checks with time.Time.MarshalJSON (the method json.Marshal
// calls), so the bytes and the failures are the standard library's own
// without the allocation MarshalJSON makes.
//
// AppendText writes all nine fraction digits before trimming trailing
// zeros, so it runs into a stack buffer rather than into dst: written
// straight into dst it would overrun MarshalHit's exact-size slice and make
// it grow.
func appendJSONTime(dst []byte, t time.Time) ([]byte, error) {
	var buf [len(time.RFC3339Nano)]byte // large enough for any time it accepts
	text, err := t.AppendText(buf[:0])
	if err != nil {
		return dst, err
	}
	dst = append(dst, '"')
	dst = append(dst, text...)
	return append(dst, '"'), nil
}

// jsonTimeLen is the length of what appendJSONTime appends for a time it
// accepts: the quoted date and clock, a fraction without trailing zeros
// when there are nanoseconds, and Z for a zero offset or ±hh:mm otherwise.
func jsonTimeLen(t time.Time) int {
	n := len(`"2006-01-02T15:04:05"`)
	if ns := t.Nanosecond(); ns != 0 {
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		n += len(".") + digits
	}
	if _, offset := t.Zone(); offset == 0 {
		n += len("Z")
	} else {
		n += len("+07:00")
	}
	return n
}

// appendJSONStrings appends ss as a JSON array, or null when ss is nil:
// encoding/json tells a nil slice from an empty one, and so must we.
func appendJSONStrings(dst []byte, ss []string) []byte {
	if ss == nil {
		return append(dst, jsonNull...)
	}
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, s)
	}
	return append(dst, ']')
}

// jsonStringsLen is the length of what appendJSONStrings appends for ss,
// with strLen giving each string's length.
func jsonStringsLen(ss []string, strLen func(string) int) int {
	if ss == nil {
		return len(jsonNull)
	}
	n := len("[]")
	if len(ss) > 1 {
		n += len(ss) - 1 // commas
	}
	for _, s := range ss {
		n += strLen(s)
	}
	return n
}

// rawJSONStringLen is the length of s quoted, as if nothing in it needed
// escaping: exact for DNS names, and cheap.
func rawJSONStringLen(s string) int {
	return len(`""`) + len(s)
}

// hexDigits are the digits of a \u00XX escape, lower case as encoding/json
// writes them.
const hexDigits = "0123456789abcdef"

// asciiPlainLo and asciiPlainHi are bitsets over the bytes 0–63 and 64–127:
// a set bit marks an ASCII byte that encoding/json copies into a string as
// itself. JSON requires escaping control characters, the quote and the
// backslash; encoding/json also escapes <, > and & by default so that its
// output is safe inside HTML. Constants rather than a table keep the package
// free of mutable state.
const (
	asciiPlainLo uint64 = (1<<64 - 1<<0x20) &^ (1<<'"' | 1<<'&' | 1<<'<' | 1<<'>')
	asciiPlainHi uint64 = (1<<64 - 1) &^ (1 << ('\\' - 64))
)

// asciiPlain reports whether the ASCII byte b (b < utf8.RuneSelf) appears
// unescaped in a JSON string.
func asciiPlain(b byte) bool {
	if b < 64 {
		return asciiPlainLo>>b&1 != 0
	}
	return asciiPlainHi>>(b-64)&1 != 0
}

// appendASCIIEscape appends the escape sequence for an ASCII byte that
// asciiPlain rejects: a two-character escape where JSON has one, \u00XX
// otherwise.
func appendASCIIEscape(dst []byte, b byte) []byte {
	switch b {
	case '"', '\\':
		return append(dst, '\\', b)
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
}

// asciiEscapeLen is the length of what appendASCIIEscape appends for b.
func asciiEscapeLen(b byte) int {
	switch b {
	case '"', '\\', '\b', '\f', '\n', '\r', '\t':
		return len(`\n`)
	}
	return len(`\u0000`)
}

// appendJSONString appends s as a quoted JSON string escaped the way
// encoding/json escapes by default. Runs of bytes that need no escape are
// found eight bytes at a time and copied in one append, so a DNS name costs
// one fast scan and one copy.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for {
		n := plainPrefixLen(s)
		dst = append(dst, s[:n]...)
		s = s[n:]
		if s == "" {
			return append(dst, '"')
		}
		if b := s[0]; b < utf8.RuneSelf {
			dst = appendASCIIEscape(dst, b)
			s = s[1:]
			continue
		}
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			// A byte that does not start valid UTF-8 becomes U+FFFD,
			// one replacement per byte.
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON but line terminators in JavaScript, so
			// encoding/json escapes them.
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			dst = append(dst, s[:size]...)
		}
		s = s[size:]
	}
}

// jsonStringLen is the length of what appendJSONString appends for s.
func jsonStringLen(s string) int {
	n := len(`""`) + len(s)
	for {
		s = s[plainPrefixLen(s):]
		if s == "" {
			return n
		}
		if b := s[0]; b < utf8.RuneSelf {
			n += asciiEscapeLen(b) - 1
			s = s[1:]
			continue
		}
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			n += len(`\ufffd`) - size
		case r == '\u2028' || r == '\u2029':
			n += len(`\u2028`) - size
		}
		s = s[size:]
	}
}

// Constants for testing eight bytes at once (SWAR; see special): ones has
// 1 in every byte, highs the top bit of every byte.
const (
	ones  uint64 = 0x0101010101010101
	highs uint64 = 0x8080808080808080
)

// plainPrefixLen is the length of the longest prefix of s whose bytes
// encoding/json copies as they are: ASCII that asciiPlain accepts. It
// tests sixteen bytes per step (two independent words, which the CPU
// works on in parallel), then eight; the last word overlaps the one before
// rather than going byte by byte, and only a word that holds something
// else is examined byte by byte.
func plainPrefixLen(s string) int {
	i := 0
	for ; len(s)-i >= 16; i += 16 {
		if special(load64(s[i:]))|special(load64(s[i+8:])) != 0 {
			break
		}
	}
	for ; len(s)-i >= 8; i += 8 {
		if special(load64(s[i:])) != 0 {
			return i + plainPrefixLenSlow(s[i:i+8])
		}
	}
	if i == len(s) {
		return i
	}
	if i >= 8 && special(load64(s[len(s)-8:])) == 0 {
		return len(s)
	}
	return i + plainPrefixLenSlow(s[i:])
}

// plainPrefixLenSlow is plainPrefixLen one byte at a time, for short
// strings and for the word in which a byte needing attention was found.
func plainPrefixLenSlow(s string) int {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b >= utf8.RuneSelf || !asciiPlain(b) {
			return i
		}
	}
	return len(s)
}

// load64 reads the first eight bytes of s as a little-endian word; the
// compiler turns it into a single load.
func load64(s string) uint64 {
	_ = s[7] // one bounds check for the eight reads
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// special is non-zero when any of the eight bytes of x is non-ASCII or an
// ASCII byte that asciiPlain rejects. It never misses one; which byte it
// is, plainPrefixLenSlow finds.
//
// Subtracting ones*n from x sets the top bit of some byte exactly when
// some byte is below n or some byte is non-ASCII: a borrow only ever
// starts at a byte below n. Since the non-ASCII bytes are wanted too, the
// usual "&^ x" that tells those apart is not needed. Zero-byte tests of x
// xor a repeated character find that character the same way.
func special(x uint64) uint64 {
	// Setting bit 1 maps '<' (0x3c) and '>' (0x3e), and only them, to
	// 0x3e; setting bit 2 maps '"' (0x22) and '&' (0x26), and only them,
	// to 0x26. So three zero-byte tests cover the five characters.
	ltgt := x | ones*0x02 ^ ones*'>'
	quoteAmp := x | ones*0x04 ^ ones*'&'
	backslash := x ^ ones*'\\'
	return (x | // non-ASCII
		(x - ones*0x20) | // control characters
		(ltgt - ones) |
		(quoteAmp - ones) |
		(backslash - ones)) & highs
}

// uintLen is the number of decimal digits of v.
func uintLen(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

// appendBool appends true or false.
func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}

// boolLen is the length of what appendBool appends for v.
func boolLen(v bool) int {
	if v {
		return len("true")
	}
	return len("false")
}
