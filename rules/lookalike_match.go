package rules

import (
	"bytes"
	"iter"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"

	"github.com/ctwatch/ctwatch/cert"
)

// maxLabels bounds the labels of a scored name; a name of maxNameLen bytes
// has at most 127.
const maxLabels = 128

// labelView is one label of a name being scored: where it is in the name
// and in the skeleton buffer, and what kind of label it is.
type labelView struct {
	// Offsets are 16 bits wide, which a name of maxNameLen bytes and its
	// skeleton fit, so that a nameView of maxLabels labels stays small
	// enough to be cleared for every certificate at no real cost.
	nStart, nEnd uint16 // in the normalised ASCII name
	sStart, sEnd uint16 // in the skeleton buffer
	mask         uint64
	mask2        uint64 // the classes that occur twice or more (charMask2)
	scripts      uint8  // scriptBits of its letters; 0 for an ASCII label
	idn          bool   // an xn-- label that decodes
	ascii        bool   // its skeleton is ASCII
}

// nameView is a certificate name prepared for scoring. It holds no
// pointers into itself, so a caller keeps it (and the skeleton buffer) on
// its stack.
type nameView struct {
	labels [maxLabels]labelView
	// n labels are used: every label of the name after prepare; only
	// those left of the public suffix (the registered label last) once
	// scoreName has found the registered domain.
	n int
}

// Scripts whose letters imitate Latin ones; a label mixing two of them is a
// classic homograph.
const (
	scriptLatin uint8 = 1 << iota
	scriptCyrillic
	scriptGreek
	scriptArmenian
	scriptCherokee
)

var scriptNames = [...]string{"Latin", "Cyrillic", "Greek", "Armenian", "Cherokee"}

func scriptBits(s string) uint8 {
	var m uint8
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
			if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
				m |= scriptLatin
			}
		case unicode.Is(unicode.Latin, r):
			m |= scriptLatin
		case unicode.Is(unicode.Cyrillic, r):
			m |= scriptCyrillic
		case unicode.Is(unicode.Greek, r):
			m |= scriptGreek
		case unicode.Is(unicode.Armenian, r):
			m |= scriptArmenian
		case unicode.Is(unicode.Cherokee, r):
			m |= scriptCherokee
		}
	}
	return m
}

func mixedScripts(m uint8) bool { return bits.OnesCount8(m) >= 2 }

// signalKind names a base signal (see the table in lookalike.go).
type signalKind uint8

const (
	sigSkeletonEqual signalKind = iota + 1
	sigBrandElsewhere
	sigBrandKeyword
	sigEmbeddedDomain
	sigEditDistance
	sigSubdomainLabel
	sigContainsBrand
)

// lookHit is the best-scoring (name, brand) pair so far. It refers to the
// certificate's strings and the matcher's, so building it allocates
// nothing; the reason is written only for the final one.
type lookHit struct {
	raw    string // the name as in the certificate
	brand  int32
	score  int
	kind   signalKind
	points int
	dist   int    // for sigEditDistance
	arg    string // the keyword, embedded domain, label or registered domain
	// Modifiers of the label that carried the signal.
	scripts uint8
	idn     bool
}

// match scores every DNS name against every brand and reports the best
// pair whose score reaches the threshold. Names in the allow list (or under
// it) never count. A name in which no brand occurs and no label is near a
// brand (almost every name) costs no allocation; IDN names, names that
// pass that filter (publicsuffix allocates an error for every lookup) and
// a hit (its reason) do allocate.
func (t *lookalikeTest) match(c *cert.Cert) (string, bool) {
	var (
		best   lookHit
		others int
		v      nameView
		buf    [512]byte
		memo   labelMemo
	)
	for _, raw := range c.DNSNames {
		h, ok := t.scoreName(raw, &v, buf[:0], &memo)
		if !ok {
			continue
		}
		if best.raw == "" || h.score > best.score {
			if best.raw != "" {
				others++
			}
			best = h
		} else {
			others++
		}
	}
	if best.raw == "" {
		return "", false
	}
	return t.reason(&best, others), true
}

// hostName turns a certificate name into the ASCII form scored: lower case,
// without a trailing dot or a leading "*.", raw Unicode turned into
// punycode. ok is false for names that cannot be a host name.
func hostName(raw string) (string, bool) {
	// Most names are lower-case ASCII already, which one pass finds out.
	n := strings.TrimSuffix(raw, ".")
	for i := 0; i < len(n); i++ {
		if c := n[i]; c-'A' < 26 || c >= utf8.RuneSelf {
			n = strings.TrimPrefix(normalizeCertName(raw), "*.")
			if !isASCII(n) {
				a, err := idna.Punycode.ToASCII(strings.ToLower(n))
				if err != nil {
					return "", false
				}
				n = a
			}
			return checkHostLen(n)
		}
	}
	return checkHostLen(strings.TrimPrefix(n, "*."))
}

// checkHostLen is hostName's last step: n, unless it is empty or too long.
func checkHostLen(n string) (string, bool) {
	if n == "" || len(n) > maxNameLen {
		return "", false
	}
	return n, true
}

// prepare fills v with every label of n and returns the skeleton buffer:
// the skeletons of the labels, joined by dots. ok is false for a name with
// an empty label. An ASCII label (all but xn-- labels that decode) is
// mapped through the byte table in the same pass that finds its end.
func (t *lookalikeTest) prepare(n string, v *nameView, skel []byte) ([]byte, bool) {
	v.n = 0
	for start := 0; ; {
		if v.n == maxLabels {
			return skel, false
		}
		// Filled in place: a labelView is too large to copy cheaply for
		// every label of every name.
		lv := &v.labels[v.n]
		*lv = labelView{nStart: uint16(start), sStart: uint16(len(skel)), ascii: true}
		var mask, mask2 uint64
		end := -1
		if strings.HasPrefix(n[start:], "xn--") {
			end = strings.IndexByte(n[start:], '.')
			if end < 0 {
				end = len(n)
			} else {
				end += start
			}
			label := n[start:end]
			if u, err := idna.Punycode.ToUnicode(label); err == nil && u != label {
				lv.idn = true
				lv.scripts = scriptBits(u)
				sk := skeleton(u)
				lv.ascii = isASCII(sk)
				skel = append(skel, sk...)
				for _, c := range skel[lv.sStart:] {
					b := t.bits[c]
					mask2 |= mask & b
					mask |= b
				}
			} else {
				end = -1 // not decoded: an ASCII label like the others
			}
		}
		if end < 0 {
			// Write into room reserved for the rest of the name rather
			// than append byte by byte.
			j := len(skel)
			skel = slices.Grow(skel, t.maxSkel*(len(n)-start))
			buf := skel[:cap(skel)]
			end = start
			for ; end < len(n); end++ {
				c := n[end]
				if c == '.' {
					break
				}
				c &= 0x7f
				if t.same[c] {
					buf[j] = c
					j++
					b := t.bits[c]
					mask2 |= mask & b
					mask |= b
					continue
				}
				sk := t.ascii[c]
				for k := 0; k < len(sk); k++ {
					buf[j] = sk[k]
					j++
					b := t.bits[sk[k]]
					mask2 |= mask & b
					mask |= b
				}
			}
			skel = buf[:j]
		}
		if end == start {
			return skel, false // an empty label
		}
		lv.nEnd = uint16(end)
		lv.sEnd = uint16(len(skel))
		lv.mask, lv.mask2 = mask, mask2
		v.n++
		if end == len(n) {
			return skel, true
		}
		skel = append(skel, '.')
		start = end + 1
	}
}

// near yields every brand whose skeleton equals the skeleton of label lv,
// or is at most the brand's maxDist edits from it, with the distance.
//
// Before any edit distance is computed, a brand must pass two filters that
// never reject a brand within maxDist edits: each edit adds at most one
// byte class (charBit) that the other string lacks and removes at most
// one, and changes the multiset of classes by at most two
// (multisetBound). An ASCII label one edit from a brand is then confirmed
// in linear time (oneEdit).
func (t *lookalikeTest) near(lv *labelView, skel []byte) iter.Seq2[int32, int] {
	return func(yield func(int32, int) bool) {
		ls := skel[lv.sStart:lv.sEnd]
		n := len(ls)
		var runes []rune
		if !lv.ascii {
			runes = []rune(string(ls))
			n = len(runes)
		}
		// The candidates of the first words, computed once for both
		// loops below.
		var selected [4]uint64
		for w := range min(t.words, len(selected)) {
			selected[w] = t.selectNear(lv.mask, w)
		}
		sel := func(w int) uint64 {
			if w < len(selected) {
				return selected[w]
			}
			return t.selectNear(lv.mask, w)
		}
		// A brand skeleton is ASCII: only an ASCII label skeleton can
		// equal it, and only with the same byte classes.
		if lv.ascii && n < len(t.exact) {
			for w, set := range t.exact[n] {
				for cand := set & sel(w); cand != 0; cand &= cand - 1 {
					bi := int32(w*64 + bits.TrailingZeros64(cand))
					b := &t.brands[bi]
					if b.mask == lv.mask && bytes.Equal(ls, b.bskel) && !yield(bi, 0) {
						return
					}
				}
			}
		}
		if n >= len(t.fuzzy) {
			return
		}
		for w, set := range t.fuzzy[n] {
			for cand := set & sel(w); cand != 0; cand &= cand - 1 {
				bi := int32(w*64 + bits.TrailingZeros64(cand))
				b := &t.brands[bi]
				missing, extra := bits.OnesCount64(b.mask&^lv.mask), bits.OnesCount64(lv.mask&^b.mask)
				if missing > b.maxDist || extra > b.maxDist {
					continue
				}
				// The multiset bound holds for byte classes of ASCII
				// skeletons; a non-ASCII character is several bytes.
				if lv.ascii && multisetBound(missing+extra, b.mask2, lv.mask2) > 2*b.maxDist {
					continue
				}
				var d int
				switch {
				case !lv.ascii:
					d = osaDistance(runes, b.runes, b.maxDist)
				case b.maxDist == 1:
					d = oneEdit(ls, b.bskel)
				default:
					d = osaDistance(ls, b.bskel, b.maxDist)
				}
				// Distance 0 came from exact.
				if d == 0 || d > b.maxDist {
					continue
				}
				if !yield(bi, d) {
					return
				}
			}
		}
	}
}

// occurrences yields every place where a brand's skeleton occurs in skel,
// as the brand and the offset; brands shorter than minInnerBrandLen count
// only as whole words.
func (t *lookalikeTest) occurrences(skel []byte) iter.Seq2[int32, int] {
	return func(yield func(int32, int) bool) {
		if len(skel) < minBrandLen {
			return
		}
		// Every brand skeleton is at least three bytes long.
		c0, c1 := t.codes[skel[0]], t.codes[skel[1]]
		for i := 0; i+2 < len(skel); i++ {
			c2 := t.codes[skel[i+2]]
			tri := trigram(c0, c1, c2)
			s := uint16(c0)<<6 | uint16(c1)
			c0, c1 = c1, c2
			if t.trigramAny[tri/64]&(1<<(tri%64)) == 0 {
				continue
			}
			for _, bi := range t.bigramBrands[t.bigramStart[s]:t.bigramStart[s+1]] {
				b := &t.brands[bi]
				if !bytes.HasPrefix(skel[i:], b.bskel) {
					continue
				}
				if len(b.skel) < minInnerBrandLen && !t.tokenAt(skel, i, i+len(b.skel)) {
					continue
				}
				if !yield(bi, i) {
					return
				}
			}
		}
	}
}

// mayHit is the fast path: it reports whether some signal could give the
// name a score at the threshold, from what the name alone shows before its
// registered domain is known. Every signal needs a label but the last near
// a brand or a brand occurring in the name, and each is bounded here by its
// weight plus the modifiers of its label: a near label by the skeleton
// equal weight (the highest), an occurrence by the brand + keyword weight
// when a keyword occurs elsewhere in the name or the occurrence is a whole
// label (embedded domain, subdomain label), by the contains brand weight
// otherwise. It spares the public suffix lookup and the scoring to the
// names that fail it: almost every name, and names such as
// googleapis.example that only contain a brand.
//
// What it finds about each label (is it near a brand, what do the brands
// that occur in it bound a score at, does it hold a keyword) depends on the
// label alone, and the names of a certificate share most of their labels
// (www.example.com, example.com, api.example.com), so memo keeps it for the
// next names of the certificate.
func (t *lookalikeTest) mayHit(n string, v *nameView, skel []byte, memo *labelMemo) bool {
	weak := false
	for li := range v.n {
		lv := &v.labels[li]
		e := memo.entry(n[lv.nStart:lv.nEnd], lv)
		if !e.occSet {
			e.occSet = true
			e.occ = t.labelOccurrence(lv, skel)
		}
		switch e.occ {
		case occStrong:
			return true
		case occWeak:
			weak = true
		}
		if li == v.n-1 || t.bounded(wSkeletonEqual, lv) < t.threshold {
			continue
		}
		if !e.nearSet {
			e.nearSet = true
			for range t.near(lv, skel) {
				e.near = true
				break
			}
		}
		if e.near {
			return true
		}
	}
	// A weak occurrence needs a keyword elsewhere in the name.
	if !weak || !t.hasKeyword(n, v, skel, memo) {
		return false
	}
	for li := range v.n {
		lv := &v.labels[li]
		// Labels of this name may have evicted one another from memo.
		e := memo.entry(n[lv.nStart:lv.nEnd], lv)
		if !e.occSet {
			e.occSet = true
			e.occ = t.labelOccurrence(lv, skel)
		}
		if e.occ != occWeak {
			continue
		}
		start := int(lv.sStart)
		for bi, i := range t.occurrences(skel[start:lv.sEnd]) {
			if t.keywordOutside(skel, start+i, start+i+len(t.brands[bi].skel)) != "" {
				return true
			}
		}
	}
	return false
}

// Kinds of brand occurrences in a label, by what they bound a score at
// (see mayHit).
const (
	occNone   uint8 = iota // none, or none whose bound reaches the threshold
	occWeak                // only some that reach it with a keyword elsewhere in the name
	occStrong              // one that reaches it alone: the whole label, or any when contains brand does
)

// labelOccurrence says what the brand occurrences in label lv bound the
// score of its name at: whether one reaches the threshold by its weight and
// the label's modifiers alone (a whole label is an embedded domain or a
// subdomain label, which brand + keyword bounds), or only with a keyword
// elsewhere in the name (brand + keyword), or none does. It depends on the
// label alone (an occurrence lies inside a label, brands have no dots), so
// mayHit keeps it in its memo.
func (t *lookalikeTest) labelOccurrence(lv *labelView, skel []byte) uint8 {
	if t.bounded(wBrandKeyword, lv) < t.threshold {
		return occNone
	}
	ls := skel[lv.sStart:lv.sEnd]
	kind := occNone
	for bi, i := range t.occurrences(ls) {
		if t.bounded(wContainsBrand, lv) >= t.threshold || i == 0 && len(t.brands[bi].skel) == len(ls) {
			return occStrong
		}
		kind = occWeak
	}
	return kind
}

// labelMemoBits is the log2 of the number of labels a labelMemo
// remembers.
const labelMemoBits = 5

// labelMemo is what mayHit found about the labels of the names of one
// certificate: a direct-mapped cache of 1<<labelMemoBits entries, so that it
// lives on the stack of match; a label that takes the slot of another
// evicts it.
type labelMemo [1 << labelMemoBits]labelFacts

// labelFacts is what mayHit found about one label.
type labelFacts struct {
	label string // "" for an empty slot
	// occ: what the brand occurrences in it bound a score at (see
	// labelOccurrence); near: it is near a brand (see near); kw: a keyword
	// occurs in it. Each is known once its Set flag is.
	occ           uint8
	occSet        bool
	near, nearSet bool
	kw, kwSet     bool
}

// entry returns the facts of label, whose view is lv, emptied when the
// slot held another label. The slot is chosen from what prepare computed
// of the label, which is cheaper than hashing it. A nil memo remembers
// nothing.
func (m *labelMemo) entry(label string, lv *labelView) *labelFacts {
	if m == nil {
		return &labelFacts{label: label}
	}
	k := (lv.mask*0x9e3779b97f4a7c15 ^ lv.mask2*0xc2b2ae3d27d4eb4f) + uint64(len(label))*0x165667b19e3779f9
	e := &m[k>>(64-labelMemoBits)]
	if e.label != label {
		*e = labelFacts{label: label}
	}
	return e
}

// bounded is points plus the modifiers of label lv, capped as a score is.
func (t *lookalikeTest) bounded(points int, lv *labelView) int {
	if mixedScripts(lv.scripts) {
		points += wMixedScript
	}
	if lv.idn {
		points += wPunycode
	}
	return min(points, maxScore)
}

// scoreName scores one certificate name against every brand and returns
// its best pair at or above the threshold.
func (t *lookalikeTest) scoreName(raw string, v *nameView, skel []byte, memo *labelMemo) (lookHit, bool) {
	var best lookHit
	n, ok := hostName(raw)
	// An allowed name never counts, whatever it scores: settle that with
	// a few table lookups before anything else. The brands' own domains
	// (google.com for google), common in CT logs and otherwise the
	// commonest names to pass mayHit, stop here.
	if !ok || t.allowed(n) {
		return best, false
	}
	skel, ok = t.prepare(n, v, skel)
	if !ok || v.n < 2 || !t.mayHit(n, v, skel, memo) {
		return best, false
	}
	// Keep the labels left of the public suffix; the registered label
	// is the last of them.
	scopeEnd, ok := registeredEnd(n)
	if !ok {
		return best, false
	}
	for v.n > 0 && int(v.labels[v.n-1].nEnd) > scopeEnd {
		v.n--
	}
	if v.n == 0 || int(v.labels[v.n-1].nEnd) != scopeEnd {
		return best, false
	}
	skel = skel[:v.labels[v.n-1].sEnd]

	// consider keeps h as the best if it is.
	consider := func(h lookHit, lv *labelView) {
		h.scripts, h.idn = lv.scripts, lv.idn
		h.score = h.points
		if mixedScripts(h.scripts) {
			h.score += wMixedScript
		}
		if h.idn {
			h.score += wPunycode
		}
		h.score = min(h.score, maxScore)
		if h.score < t.threshold || (best.raw != "" && h.score <= best.score) {
			return
		}
		h.raw = raw
		best = h
	}

	// The registered label against the brands: equal, equal skeletons,
	// or a few edits apart.
	reg1 := &v.labels[v.n-1]
	regSkel := skel[reg1.sStart:reg1.sEnd]
	label := n[reg1.nStart:reg1.nEnd]
	for bi, d := range t.near(reg1, skel) {
		b := &t.brands[bi]
		h := lookHit{brand: bi, dist: d}
		switch {
		case d > 0:
			h.kind, h.points = sigEditDistance, wEditDistance-wEditStep*d
			if firstDiffers(regSkel, b.bskel) {
				h.points -= wFirstDiffers
				h.arg = "first"
			}
		case label == b.name:
			h.kind, h.points, h.arg = sigBrandElsewhere, wBrandElsewhere, n[reg1.nStart:]
		default:
			h.kind, h.points = sigSkeletonEqual, wSkeletonEqual
		}
		consider(h, reg1)
	}

	// Every occurrence of a brand's skeleton in any label.
	keyword := -1 // whether some label holds a keyword, once known
	for bi, i := range t.occurrences(skel) {
		end := i + len(t.brands[bi].skel)
		li := 0
		for int(v.labels[li].sEnd) < end {
			li++
		}
		lv := &v.labels[li]
		whole := int(lv.sStart) == i && int(lv.sEnd) == end
		if whole && li == v.n-1 {
			continue // the registered label itself: scored above
		}
		h := lookHit{brand: bi}
		if keyword < 0 {
			keyword = 0
			if t.hasKeyword(n, v, skel, memo) {
				keyword = 1
			}
		}
		kw := ""
		if keyword == 1 {
			kw = t.keywordOutside(skel, i, end)
		}
		switch {
		case kw != "":
			h.kind, h.points, h.arg = sigBrandKeyword, wBrandKeyword, kw
		case whole && t.suffixLabel(n[v.labels[li+1].nStart:v.labels[li+1].nEnd]):
			h.kind, h.points, h.arg = sigEmbeddedDomain, wEmbeddedDomain, n[lv.nStart:v.labels[li+1].nEnd]
		case whole:
			h.kind, h.points = sigSubdomainLabel, wSubdomainLabel
		default:
			h.kind, h.points, h.arg = sigContainsBrand, wContainsBrand, n[lv.nStart:lv.nEnd]
		}
		consider(h, lv)
	}
	return best, best.raw != ""
}

// registeredEnd returns where the registered label of n ends: the
// registered domain (eTLD+1) is the label before that offset and the public
// suffix after it. ok is false when n is itself a public suffix. It is
// publicsuffix.EffectiveTLDPlusOne without the error values, which cost
// allocations on names such as s3.amazonaws.com; n has no empty label.
func registeredEnd(n string) (int, bool) {
	suffix, _ := publicsuffix.PublicSuffix(n)
	end := len(n) - len(suffix) - 1
	if end <= 0 || n[end] != '.' {
		return 0, false
	}
	return end, true
}

// tokenAt reports whether skel[lo:hi] is delimited by label boundaries or
// hyphens: short brands count only as whole words ("ing-login", not
// "accounting").
func (t *lookalikeTest) tokenAt(skel []byte, lo, hi int) bool {
	before := lo == 0 || skel[lo-1] == '.' || skel[lo-1] == '-'
	after := hi == len(skel) || skel[hi] == '.' || skel[hi] == '-'
	return before && after
}

// firstDiffers reports whether the label's skeleton starts with another
// character than the brand's (compared as UTF-8, so a non-ASCII first
// character always differs from a brand's).
func firstDiffers(label, brand []byte) bool {
	return len(label) == 0 || label[0] != brand[0]
}

// suffixLabel reports whether label is on its own an ICANN public suffix
// (com, co, uk): a brand label followed by one inside a longer name spells
// the brand's domain to a reader.
func (t *lookalikeTest) suffixLabel(label string) bool {
	ps, icann := publicsuffix.PublicSuffix(label)
	return icann && ps == label
}

// hasKeyword reports whether the skeleton of some label of v holds a
// keyword: keywordOutside finds none otherwise (a keyword has no dot), and
// most names that hold a brand hold no keyword. It keeps what it finds of
// each label in memo.
func (t *lookalikeTest) hasKeyword(n string, v *nameView, skel []byte, memo *labelMemo) bool {
	for li := range v.n {
		lv := &v.labels[li]
		e := memo.entry(n[lv.nStart:lv.nEnd], lv)
		if !e.kwSet {
			e.kwSet = true
			ls := skel[lv.sStart:lv.sEnd]
			for _, k := range t.keywords {
				if bytes.Contains(ls, k.skel) {
					e.kw = true
					break
				}
			}
		}
		if e.kw {
			return true
		}
	}
	return false
}

// keywordOutside returns the first keyword whose skeleton occurs in skel
// without overlapping [lo, hi), the brand's occurrence, or "".
func (t *lookalikeTest) keywordOutside(skel []byte, lo, hi int) string {
	for _, k := range t.keywords {
		for from := 0; from < len(skel); {
			j := bytes.Index(skel[from:], k.skel)
			if j < 0 {
				break
			}
			j += from
			if j+len(k.skel) <= lo || j >= hi {
				return k.name
			}
			from = j + 1
		}
	}
	return ""
}

// allowed reports whether n is an allowed domain or under one, with one
// table probe per label and no allocation. It looks the suffixes of n up
// from the shortest, and stops at the first that no allowed domain ends
// with (most names: at their registered domain).
func (t *lookalikeTest) allowed(n string) bool {
	if t.allow.n == 0 {
		return false
	}
	h := uint64(fnvOffset)
	for i := len(n) - 1; i >= 0; i-- {
		h = suffixHash(h, n[i])
		if i > 0 && n[i-1] != '.' {
			continue
		}
		allowed, ok := t.allow.get(h, n[i:])
		if allowed || !ok {
			return allowed
		}
	}
	return false
}

// multisetBound is a lower bound on the distance between the multisets of
// byte classes of two strings (the sum over classes of the difference of
// their counts), from the number of classes that only one of them has
// (onlyOne) and their charMask2: a class is counted once for occurring in
// one string only, and once more for occurring twice or more in one
// string only. A substitution changes that distance by at most two, an
// insertion or a deletion by one and a transposition not at all, so two
// strings d edits apart have a bound of at most 2·d.
func multisetBound(onlyOne int, mask2a, mask2b uint64) int {
	return onlyOne + bits.OnesCount64(mask2a^mask2b)
}

// oneEdit is osaDistance(a, b, 1) for bytes, in one pass: 0 when a and b
// are equal, 1 when one substitution, insertion, deletion or transposition
// of adjacent bytes turns one into the other, 2 otherwise. Past their
// common prefix, the edit can only be at its first difference.
func oneEdit(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	switch len(a) - len(b) {
	case 0:
		if i == len(a) {
			return 0
		}
		if bytes.Equal(a[i+1:], b[i+1:]) ||
			i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && bytes.Equal(a[i+2:], b[i+2:]) {
			return 1
		}
	case 1:
		if bytes.Equal(a[i+1:], b[i:]) {
			return 1
		}
	case -1:
		if bytes.Equal(a[i:], b[i+1:]) {
			return 1
		}
	}
	return 2
}

// maxOSALen bounds the strings osaDistance compares: a skeleton of a
// maximal label (each "m" becomes "rn") and two edits more.
const maxOSALen = 2*maxLabelLen + 2

// osaDistance is the Damerau–Levenshtein distance between a and b in its
// optimal-string-alignment form (insertions, deletions, substitutions and
// transpositions of adjacent characters, no substring edited twice), when
// it is at most limit (≥ 0); otherwise it is limit+1, as it is for inputs
// longer than maxOSALen. It does not allocate.
func osaDistance[E byte | rune](a, b []E, limit int) int {
	if len(a)-len(b) > limit || len(b)-len(a) > limit {
		return limit + 1 // each edit changes the length by at most one
	}
	if len(b) < osaSmall {
		var rows [3][osaSmall]int16
		return osaBand(a, b, limit, rows[0][:], rows[1][:], rows[2][:])
	}
	if len(a) > maxOSALen || len(b) > maxOSALen {
		return limit + 1
	}
	var rows [3][maxOSALen + 1]int16
	return osaBand(a, b, limit, rows[0][:], rows[1][:], rows[2][:])
}

// osaSmall is the row size that covers the brands of everyday life without
// clearing a long array on every comparison.
const osaSmall = 32

// osaBand computes osaDistance in three rows of at least len(b)+1 cells
// (len(a) and len(b) at most limit apart). Only the cells of the diagonal
// band |i-j| ≤ limit are computed, since every cell outside it is more than
// limit; the cells bordering the band are set to limit+1, the value every
// cell is capped at, so that the next rows read no stale cell.
func osaBand[E byte | rune](a, b []E, limit int, prev2, prev, cur []int16) int {
	inf := int16(min(limit+1, math.MaxInt16))
	for j := range len(b) + 1 {
		prev[j] = min(int16(min(j, math.MaxInt16)), inf)
	}
	prevMin := int16(0)
	for i := 1; i <= len(a); i++ {
		lo, hi := max(1, i-limit), min(len(b), i+limit)
		rowMin := inf
		if lo == 1 {
			cur[0] = min(int16(min(i, math.MaxInt16)), inf)
			rowMin = cur[0]
		} else {
			cur[lo-1] = inf
		}
		for j := lo; j <= hi; j++ {
			cost := int16(1)
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, prev2[j-2]+1)
			}
			d = min(d, inf)
			cur[j] = d
			rowMin = min(rowMin, d)
		}
		if hi < len(b) {
			cur[hi+1] = inf
		}
		// A cell depends on the two rows above it, so the distance can
		// no longer come back under the limit once two rows exceed it.
		if rowMin >= inf && prevMin >= inf {
			return limit + 1
		}
		prevMin = rowMin
		prev2, prev, cur = prev, cur, prev2
	}
	return int(prev[len(b)])
}

// reason explains h: the name (and its Unicode form when it has IDN
// labels), the brand, every signal that fired with its points, the score
// and the threshold.
func (t *lookalikeTest) reason(h *lookHit, others int) string {
	// Written with strconv rather than fmt, which took a tenth of the
	// matcher's time on certificates that hit: "%q" is strconv.Quote.
	b := &t.brands[h.brand]
	out := make([]byte, 0, 192)
	out = strconv.AppendQuote(out, h.raw)
	if u, err := idna.Punycode.ToUnicode(h.raw); err == nil && u != h.raw {
		out = append(append(append(out, " ("...), u...), ')')
	}
	out = append(out, " looks like brand "...)
	out = strconv.AppendQuote(out, b.name)
	out = append(out, ": "...)
	switch h.kind {
	case sigSkeletonEqual:
		out = append(out, "confusable skeleton equals brand"...)
	case sigBrandElsewhere:
		out = append(out, "brand is the registered domain "...)
		out = strconv.AppendQuote(out, h.arg)
		out = append(out, ", which is not allowed"...)
	case sigBrandKeyword:
		out = append(out, "brand with keyword "...)
		out = strconv.AppendQuote(out, h.arg)
	case sigEmbeddedDomain:
		out = append(out, "embeds "...)
		out = strconv.AppendQuote(out, h.arg)
		out = append(out, " in another domain"...)
	case sigEditDistance:
		out = append(out, "Damerau-Levenshtein distance "...)
		out = strconv.AppendInt(out, int64(h.dist), 10)
		out = append(out, " from brand"...)
		if h.arg != "" {
			out = append(out, ", first character differs"...)
		}
	case sigSubdomainLabel:
		out = append(out, "brand is a subdomain label of another domain"...)
	case sigContainsBrand:
		out = append(out, "label "...)
		out = strconv.AppendQuote(out, h.arg)
		out = append(out, " contains brand"...)
	}
	out = append(out, " ("...)
	out = append(appendPoints(out, h.points), ')')
	if mixedScripts(h.scripts) {
		out = append(out, ", mixed "...)
		first := true
		for i, s := range scriptNames {
			if h.scripts&(1<<i) != 0 {
				if !first {
					out = append(out, '+')
				}
				out, first = append(out, s...), false
			}
		}
		out = append(out, " scripts in one label (+"...)
		out = append(appendPoints(out, wMixedScript), ')')
	}
	if h.idn {
		out = append(out, ", punycode label (+"...)
		out = append(appendPoints(out, wPunycode), ')')
	}
	out = append(out, "; score "...)
	out = appendPoints(out, h.score)
	out = append(out, ", threshold "...)
	out = append(out, t.display...)
	switch others {
	case 0:
	case 1:
		out = append(out, "; 1 more name looks alike"...)
	default:
		out = append(out, "; "...)
		out = strconv.AppendInt(out, int64(others), 10)
		out = append(out, " more names look alike"...)
	}
	return string(out)
}

// appendPoints appends a number of points (0 to maxScore) as a score in
// [0, 1], with two decimals.
func appendPoints(out []byte, p int) []byte {
	out = strconv.AppendInt(out, int64(p/maxScore), 10)
	return append(out, '.', byte('0'+p%maxScore/10), byte('0'+p%10))
}
