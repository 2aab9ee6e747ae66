package monitor

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	ct "github.com/google/certificate-transparency-go"
)

// decodeGetEntries parses an RFC 6962 get-entries response body,
// {"entries":[{"leaf_input":"<base64>","extra_data":"<base64>"}, …]}.
//
// It exists because decoding these bodies with encoding/json was the largest
// single cost of an RFC 6962 backfill: a CPU profile put ~22% of all CPU in
// json.Unmarshal into ct.GetEntriesResponse (issue 8), which walks the body
// through reflection and allocates every decoded string on its own (529
// allocations for a 256-entry page). The fast path here scans the body by
// hand and makes two allocations per response whatever its size: one slab
// holding every decoded byte and one []ct.LeafEntry. On a 256-entry page of
// real certificates (BenchmarkDecodeGetEntries against
// BenchmarkDecodeGetEntriesJSON) it runs 6-8 times faster, bound by base64
// decoding.
//
// Contract: the result is exactly what json.Unmarshal into a
// ct.GetEntriesResponse gives — the same entries (nil versus empty slices
// included) when it succeeds and an error when it fails. Anything the fast
// path does not handle (JSON escapes inside the base64, duplicate or
// case-folded keys, nesting deeper than fastMaxDepth, anything invalid) is
// handed to encoding/json, so rare shapes cost speed, never correctness,
// and every error comes from encoding/json.
//
// Every LeafInput and ExtraData has its capacity capped at its length; on the
// fast path they are sub-slices of one shared slab, and the cap keeps an
// append to one from overwriting its neighbour. None of them alias body, so
// the caller may reuse body's buffer as soon as this returns.
func decodeGetEntries(body []byte) ([]ct.LeafEntry, error) {
	if entries, ok := fastDecodeGetEntries(body); ok {
		return entries, nil
	}
	var resp ct.GetEntriesResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decode get-entries: %w", err)
	}
	// encoding/json leaves spare capacity after each decoded string; cap it
	// so that both paths keep the same promise about appending.
	for i := range resp.Entries {
		e := &resp.Entries[i]
		e.LeafInput = e.LeafInput[:len(e.LeafInput):len(e.LeafInput)]
		e.ExtraData = e.ExtraData[:len(e.ExtraData):len(e.ExtraData)]
	}
	return resp.Entries, nil
}

// fastMaxDepth bounds the nesting of values the fast path will skip. It is
// far below encoding/json's own limit (10000), so anything deeper goes to
// encoding/json, which then decides whether the body is too deep; the bound
// also keeps the recursive skipper's stack small on hostile input.
const fastMaxDepth = 128

// fastDecodeGetEntries is the hand-written path of decodeGetEntries. ok is
// false when it cannot vouch that its answer matches encoding/json's; the
// caller must then decode with encoding/json.
//
// It scans the body twice with the same parser: the first pass validates the
// structure, counts entries and adds up the decoded sizes so that the second
// pass can decode into storage allocated once, at its final size.
func fastDecodeGetEntries(body []byte) ([]ct.LeafEntry, bool) {
	sizing := entriesScanner{buf: body}
	if !sizing.response() {
		return nil, false
	}
	if !sizing.sawArray {
		// No "entries" member, or "entries": null: encoding/json leaves
		// the slice nil.
		return nil, true
	}
	fill := entriesScanner{
		buf:     body,
		fill:    true,
		entries: make([]ct.LeafEntry, sizing.n),
		// make, not nil, even when size is 0: encoding/json gives an empty
		// non-nil slice for "", and so must the sub-slices of the slab.
		slab: make([]byte, sizing.size),
	}
	// The second pass differs from the first only by decoding base64,
	// which is where it can still fail.
	if !fill.response() {
		return nil, false
	}
	return fill.entries, true
}

// entriesScanner is a cursor over one get-entries body. Every method returns
// false for "cannot vouch for this input", never for a recoverable state.
type entriesScanner struct {
	buf []byte
	pos int

	// fill is false on the sizing pass (count entries, add up size) and
	// true on the decoding pass (write entries and slab).
	fill bool
	// sawArray records that "entries" held an array, even an empty one,
	// because encoding/json then gives a non-nil slice.
	sawArray bool
	n        int // entries seen so far
	size     int // sum of base64 DecodedLen over all fields (sizing pass)

	entries []ct.LeafEntry // decoding pass: len == n from the sizing pass
	slab    []byte         // decoding pass: len == size from the sizing pass
	off     int            // first unused byte of slab
}

// response parses the whole body: one object, then only whitespace.
func (s *entriesScanner) response() bool {
	s.skipSpace()
	if !s.consume('{') {
		// encoding/json leaves the struct alone for a top-level null but
		// rejects everything else; leave both to it.
		return false
	}
	sawEntries := false
	for first := true; ; first = false {
		key, plain, more, ok := s.nextMember(first)
		if !ok {
			return false
		}
		if !more {
			break
		}
		switch matchKey(key, plain, "entries") {
		case keyExact:
			if sawEntries {
				// encoding/json decodes a repeated member into the slice
				// already filled by the first; not worth imitating.
				return false
			}
			sawEntries = true
			if !s.entriesValue() {
				return false
			}
		case keyOther:
			if !s.skipValue(2) {
				return false
			}
		default:
			return false
		}
	}
	s.skipSpace()
	return s.pos == len(s.buf)
}

// entriesValue parses the value of "entries": an array of entries or null.
func (s *entriesScanner) entriesValue() bool {
	if s.literal("null") {
		return true
	}
	if !s.consume('[') {
		return false
	}
	s.sawArray = true
	for first := true; ; first = false {
		more, ok := s.nextElement(first)
		if !ok {
			return false
		}
		if !more {
			return true
		}
		if !s.entry() {
			return false
		}
		s.n++
	}
}

// entry parses one element of "entries": an object or null (which
// encoding/json turns into a zero LeafEntry).
func (s *entriesScanner) entry() bool {
	if s.literal("null") {
		return true
	}
	if !s.consume('{') {
		return false
	}
	var e *ct.LeafEntry
	if s.fill {
		e = &s.entries[s.n]
	}
	var sawLeaf, sawExtra bool
	for first := true; ; first = false {
		key, plain, more, ok := s.nextMember(first)
		if !ok {
			return false
		}
		if !more {
			// A missing field stays nil, as encoding/json leaves it.
			return true
		}
		leaf := matchKey(key, plain, "leaf_input")
		extra := matchKey(key, plain, "extra_data")
		switch {
		case leaf == keyExact && !sawLeaf:
			sawLeaf = true
			var dst *[]byte
			if e != nil {
				dst = &e.LeafInput
			}
			if !s.bytesValue(dst) {
				return false
			}
		case extra == keyExact && !sawExtra:
			sawExtra = true
			var dst *[]byte
			if e != nil {
				dst = &e.ExtraData
			}
			if !s.bytesValue(dst) {
				return false
			}
		case leaf == keyOther && extra == keyOther:
			if !s.skipValue(4) {
				return false
			}
		default:
			// A duplicate or a key encoding/json might fold onto a field.
			return false
		}
	}
}

// bytesValue parses a []byte field: a base64 string or null (which leaves the
// field nil). dst is nil on the sizing pass.
//
// The string is taken to end at the first quote and handed to the base64
// decoder unvalidated: every byte JSON forbids or escapes in a string (a
// control character, a backslash, non-ASCII) is also outside the base64
// alphabet, so a successful decode proves the string was plain JSON whose
// value is its raw bytes — except for CR and LF, which base64 skips but JSON
// forbids unescaped, so those are checked for separately.
func (s *entriesScanner) bytesValue(dst *[]byte) bool {
	if s.literal("null") {
		return true
	}
	if !s.consume('"') {
		return false
	}
	end := bytes.IndexByte(s.buf[s.pos:], '"')
	if end < 0 {
		return false
	}
	raw := s.buf[s.pos : s.pos+end]
	s.pos += end + 1
	if !s.fill {
		s.size += base64.StdEncoding.DecodedLen(len(raw))
		return true
	}
	if bytes.IndexByte(raw, '\n') >= 0 || bytes.IndexByte(raw, '\r') >= 0 {
		return false
	}
	// The sizing pass reserved DecodedLen for every field before this one,
	// and each used at most that, so the rest of slab is large enough.
	n, err := base64.StdEncoding.Decode(s.slab[s.off:], raw)
	if err != nil {
		return false
	}
	*dst = s.slab[s.off : s.off+n : s.off+n]
	s.off += n
	return true
}

// keyMatch says how an object key relates to a field name.
type keyMatch int

const (
	keyOther     keyMatch = iota // certainly not the field
	keyExact                     // exactly the field's name
	keyAmbiguous                 // might be the field under encoding/json's case folding
)

// matchKey compares a raw key with a field name the way encoding/json would
// resolve it, as far as that can be told cheaply. encoding/json matches names
// case-insensitively with Unicode folding (so "Entries" or "entrieſ" would
// fill the field); any such key, and any key with escapes or non-ASCII bytes
// whose folded value is not worth computing here, is ambiguous.
func matchKey(raw []byte, plain bool, name string) keyMatch {
	switch {
	case !plain:
		return keyAmbiguous
	case string(raw) == name:
		return keyExact
	case asciiEqualFold(raw, name):
		return keyAmbiguous
	}
	return keyOther
}

// nextMember advances to the next member of an object whose '{' has been
// consumed, up to the start of its value. first is true for the first call
// on an object. more is false once the closing '}' has been consumed. plain
// is false when the key holds escapes or non-ASCII bytes, so raw is not its
// value.
func (s *entriesScanner) nextMember(first bool) (raw []byte, plain, more, ok bool) {
	s.skipSpace()
	if s.consume('}') {
		// This is right after '{' or after a value: a comma is consumed
		// only below, and a key must follow it, so "{"a":1,}" fails there.
		return nil, false, false, true
	}
	if !first && !s.consume(',') {
		return nil, false, false, false
	}
	s.skipSpace()
	if !s.consume('"') {
		return nil, false, false, false
	}
	raw, plain, ok = s.str()
	if !ok {
		return nil, false, false, false
	}
	s.skipSpace()
	if !s.consume(':') {
		return nil, false, false, false
	}
	s.skipSpace()
	return raw, plain, true, true
}

// nextElement is nextMember for arrays.
func (s *entriesScanner) nextElement(first bool) (more, ok bool) {
	s.skipSpace()
	if s.consume(']') {
		// As in nextMember, a trailing comma never reaches here: the
		// caller's value parse fails on the ']' after it.
		return false, true
	}
	if !first && !s.consume(',') {
		return false, false
	}
	s.skipSpace()
	return true, true
}

// skipValue validates and skips any JSON value. depth is the nesting level
// the value sits at, so containers deeper than fastMaxDepth are refused.
func (s *entriesScanner) skipValue(depth int) bool {
	if s.pos >= len(s.buf) {
		return false
	}
	switch c := s.buf[s.pos]; {
	case c == '"':
		s.pos++
		_, _, ok := s.str()
		return ok
	case c == '{':
		if depth >= fastMaxDepth {
			return false
		}
		s.pos++
		for first := true; ; first = false {
			_, _, more, ok := s.nextMember(first)
			if !ok {
				return false
			}
			if !more {
				return true
			}
			if !s.skipValue(depth + 1) {
				return false
			}
		}
	case c == '[':
		if depth >= fastMaxDepth {
			return false
		}
		s.pos++
		for first := true; ; first = false {
			more, ok := s.nextElement(first)
			if !ok {
				return false
			}
			if !more {
				return true
			}
			if !s.skipValue(depth + 1) {
				return false
			}
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || isDigit(c):
		return s.number()
	}
	return false
}

// str validates a string whose opening quote has been consumed and consumes
// it with its closing quote. raw is the text between the quotes; plain is
// false when that holds escapes or non-ASCII bytes. Like encoding/json it
// accepts invalid UTF-8 and unpaired surrogate escapes, which it replaces
// rather than rejects.
func (s *entriesScanner) str() (raw []byte, plain, ok bool) {
	start := s.pos
	plain = true
	for s.pos < len(s.buf) {
		c := s.buf[s.pos]
		switch {
		case c == '"':
			raw = s.buf[start:s.pos]
			s.pos++
			return raw, plain, true
		case c == '\\':
			plain = false
			if s.pos+1 >= len(s.buf) {
				return nil, false, false
			}
			switch s.buf[s.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos += 2
			case 'u':
				if s.pos+6 > len(s.buf) {
					return nil, false, false
				}
				for _, h := range s.buf[s.pos+2 : s.pos+6] {
					if !isHex(h) {
						return nil, false, false
					}
				}
				s.pos += 6
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		case c >= 0x80:
			plain = false
			s.pos++
		default:
			s.pos++
		}
	}
	return nil, false, false
}

// number validates and consumes a number in the JSON grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *entriesScanner) number() bool {
	b, i := s.buf, s.pos
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	s.pos = i
	return true
}

// literal consumes lit if the input continues with it. What follows is
// checked by the caller's next token, so "nullx" still fails.
func (s *entriesScanner) literal(lit string) bool {
	if len(s.buf)-s.pos < len(lit) || string(s.buf[s.pos:s.pos+len(lit)]) != lit {
		return false
	}
	s.pos += len(lit)
	return true
}

// consume consumes c if it is the next byte.
func (s *entriesScanner) consume(c byte) bool {
	if s.pos < len(s.buf) && s.buf[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// skipSpace skips the four bytes JSON counts as whitespace.
func (s *entriesScanner) skipSpace() {
	for s.pos < len(s.buf) && isSpace(s.buf[s.pos]) {
		s.pos++
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// asciiEqualFold reports whether the ASCII strings a and b are equal ignoring
// case; it does not allocate, unlike converting to call strings.EqualFold.
func asciiEqualFold(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
