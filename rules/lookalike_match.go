package rules

import (
	"bytes"
	"fmt"
	"iter"
	"math/bits"
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
	nStart, nEnd int // in the normalised ASCII name
	sStart, sEnd int // in the skeleton buffer
	mask         uint64
	scripts      uint8 // scriptBits of its letters; 0 for an ASCII label
	idn          bool  // an xn-- label that decodes
	ascii        bool  // its skeleton is ASCII
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
	)
	for _, raw := range c.DNSNames {
		h, ok := t.scoreName(raw, &v, buf[:0])
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
	n := normalizeCertName(raw)
	n = strings.TrimPrefix(n, "*.")
	if !isASCII(n) {
		a, err := idna.Punycode.ToASCII(strings.ToLower(n))
		if err != nil {
			return "", false
		}
		n = a
	}
	if n == "" || len(n) > maxNameLen {
		return "", false
	}
	return n, true
}

// prepare fills v with every label of n and returns the skeleton buffer:
// the skeletons of the labels, joined by dots. ok is false for a name with
// an empty label.
func (t *lookalikeTest) prepare(n string, v *nameView, skel []byte) ([]byte, bool) {
	v.n = 0
	for start := 0; ; {
		end := strings.IndexByte(n[start:], '.')
		if end < 0 {
			end = len(n)
		} else {
			end += start
		}
		label := n[start:end]
		if label == "" || v.n == maxLabels {
			return skel, false
		}
		lv := labelView{nStart: start, nEnd: end, sStart: len(skel), ascii: true}
		decoded := false
		if strings.HasPrefix(label, "xn--") {
			if u, err := idna.Punycode.ToUnicode(label); err == nil && u != label {
				decoded = true
				lv.idn = true
				lv.scripts = scriptBits(u)
				sk := skeleton(u)
				lv.ascii = isASCII(sk)
				skel = append(skel, sk...)
			}
		}
		if decoded {
			for _, c := range skel[lv.sStart:] {
				lv.mask |= charBit(c)
			}
		} else {
			for i := 0; i < len(label); i++ {
				c := label[i] & 0x7f
				if t.same[c] {
					skel = append(skel, c)
					lv.mask |= charBit(c)
					continue
				}
				sk := t.ascii[c]
				skel = append(skel, sk...)
				for j := 0; j < len(sk); j++ {
					lv.mask |= charBit(sk[j])
				}
			}
		}
		lv.sEnd = len(skel)
		v.labels[v.n] = lv
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
func (t *lookalikeTest) near(lv *labelView, skel []byte) iter.Seq2[int32, int] {
	return func(yield func(int32, int) bool) {
		ls := skel[lv.sStart:lv.sEnd]
		if l := len(ls); l < 128 && t.lengths[l/64]&(1<<(l%64)) != 0 {
			for _, bi := range t.exact[string(ls)] {
				if !yield(bi, 0) {
					return
				}
			}
		}
		n := len(ls)
		var runes []rune
		if !lv.ascii {
			runes = []rune(string(ls))
			n = len(runes)
		}
		if n >= len(t.fuzzy) {
			return
		}
		for i := range t.fuzzy[n] {
			f := &t.fuzzy[n][i]
			if bits.OnesCount64(f.mask&^lv.mask) > f.maxDist || bits.OnesCount64(lv.mask&^f.mask) > f.maxDist {
				continue
			}
			b := &t.brands[f.brand]
			var d int
			if lv.ascii {
				if bytes.Equal(ls, b.bskel) {
					continue // yielded by exact
				}
				d = osaDistance(ls, b.bskel, f.maxDist)
			} else {
				d = osaDistance(runes, b.runes, f.maxDist)
			}
			// Distance 0 came from exact.
			if d == 0 || d > f.maxDist {
				continue
			}
			if !yield(f.brand, d) {
				return
			}
		}
	}
}

// occurrences yields every place where a brand's skeleton occurs in skel,
// as the brand and the offset; brands shorter than minInnerBrandLen count
// only as whole words.
func (t *lookalikeTest) occurrences(skel []byte) iter.Seq2[int32, int] {
	return func(yield func(int32, int) bool) {
		for i := 0; i+1 < len(skel); i++ {
			s := charCode(skel[i])<<6 | charCode(skel[i+1])
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
func (t *lookalikeTest) mayHit(v *nameView, skel []byte) bool {
	for li := range v.n - 1 {
		lv := &v.labels[li]
		for range t.near(lv, skel) {
			if t.bounded(wSkeletonEqual, lv) >= t.threshold {
				return true
			}
			break
		}
	}
	li := 0
	for bi, i := range t.occurrences(skel) {
		end := i + len(t.brands[bi].skel)
		for v.labels[li].sEnd < end {
			li++
		}
		lv := &v.labels[li]
		if t.bounded(wBrandKeyword, lv) < t.threshold {
			continue
		}
		if t.bounded(wContainsBrand, lv) >= t.threshold ||
			lv.sStart == i && lv.sEnd == end || t.keywordOutside(skel, i, end) != "" {
			return true
		}
	}
	return false
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
func (t *lookalikeTest) scoreName(raw string, v *nameView, skel []byte) (lookHit, bool) {
	var best lookHit
	n, ok := hostName(raw)
	if !ok {
		return best, false
	}
	skel, ok = t.prepare(n, v, skel)
	if !ok || v.n < 2 || !t.mayHit(v, skel) {
		return best, false
	}
	// An allowed name never counts, whatever it scores: settle that with
	// a few map lookups before the public suffix lookup and the scoring.
	// The brands' own domains (google.com for google), the commonest
	// names that pass mayHit, stop here.
	if t.allowed(n) {
		return best, false
	}
	// Keep the labels left of the public suffix; the registered label
	// is the last of them.
	scopeEnd, ok := registeredEnd(n)
	if !ok {
		return best, false
	}
	for v.n > 0 && v.labels[v.n-1].nEnd > scopeEnd {
		v.n--
	}
	if v.n == 0 || v.labels[v.n-1].nEnd != scopeEnd {
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
	for bi, i := range t.occurrences(skel) {
		end := i + len(t.brands[bi].skel)
		li := 0
		for v.labels[li].sEnd < end {
			li++
		}
		lv := &v.labels[li]
		whole := lv.sStart == i && lv.sEnd == end
		if whole && li == v.n-1 {
			continue // the registered label itself: scored above
		}
		h := lookHit{brand: bi}
		switch kw := t.keywordOutside(skel, i, end); {
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

// allowed reports whether n is an allowed domain or under one.
func (t *lookalikeTest) allowed(n string) bool {
	if len(t.allow) == 0 {
		return false
	}
	for s := n; ; {
		if t.allow[s] {
			return true
		}
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return false
		}
		s = s[i+1:]
	}
}

// maxOSALen bounds the strings osaDistance compares: a skeleton of a
// maximal label (each "m" becomes "rn") and two edits more.
const maxOSALen = 2*maxLabelLen + 2

// osaDistance is the Damerau–Levenshtein distance between a and b in its
// optimal-string-alignment form (insertions, deletions, substitutions and
// transpositions of adjacent characters, no substring edited twice). It
// stops early and returns limit+1 once the distance is sure to exceed
// limit, and for inputs longer than maxOSALen. It does not allocate.
func osaDistance[E byte | rune](a, b []E, limit int) int {
	if len(b) < osaSmall {
		var rows [3][osaSmall]int16
		return osaRows(a, b, limit, rows[0][:], rows[1][:], rows[2][:])
	}
	if len(a) > maxOSALen || len(b) > maxOSALen {
		return limit + 1
	}
	var rows [3][maxOSALen + 1]int16
	return osaRows(a, b, limit, rows[0][:], rows[1][:], rows[2][:])
}

// osaSmall is the row size that covers the brands of everyday life without
// clearing a long array on every comparison.
const osaSmall = 32

// osaRows computes osaDistance in three rows of at least len(b)+1 cells.
func osaRows[E byte | rune](a, b []E, limit int, prev2, prev, cur []int16) int {
	for j := range len(b) + 1 {
		prev[j] = int16(j)
	}
	prevMin := int16(0)
	for i := 1; i <= len(a); i++ {
		cur[0] = int16(i)
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := int16(1)
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, prev2[j-2]+1)
			}
			cur[j] = d
			rowMin = min(rowMin, d)
		}
		// A cell depends on the two rows above it, so the distance can
		// no longer come back under the limit once two rows exceed it.
		if int(rowMin) > limit && int(prevMin) > limit {
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
	b := &t.brands[h.brand]
	var sb strings.Builder
	fmt.Fprintf(&sb, "%q", h.raw)
	if u, err := idna.Punycode.ToUnicode(h.raw); err == nil && u != h.raw {
		fmt.Fprintf(&sb, " (%s)", u)
	}
	fmt.Fprintf(&sb, " looks like brand %q: ", b.name)
	switch h.kind {
	case sigSkeletonEqual:
		sb.WriteString("confusable skeleton equals brand")
	case sigBrandElsewhere:
		fmt.Fprintf(&sb, "brand is the registered domain %q, which is not allowed", h.arg)
	case sigBrandKeyword:
		fmt.Fprintf(&sb, "brand with keyword %q", h.arg)
	case sigEmbeddedDomain:
		fmt.Fprintf(&sb, "embeds %q in another domain", h.arg)
	case sigEditDistance:
		fmt.Fprintf(&sb, "Damerau-Levenshtein distance %d from brand", h.dist)
		if h.arg != "" {
			sb.WriteString(", first character differs")
		}
	case sigSubdomainLabel:
		sb.WriteString("brand is a subdomain label of another domain")
	case sigContainsBrand:
		fmt.Fprintf(&sb, "label %q contains brand", h.arg)
	}
	fmt.Fprintf(&sb, " (%s)", points(h.points))
	if mixedScripts(h.scripts) {
		var names []string
		for i, s := range scriptNames {
			if h.scripts&(1<<i) != 0 {
				names = append(names, s)
			}
		}
		fmt.Fprintf(&sb, ", mixed %s scripts in one label (+%s)", strings.Join(names, "+"), points(wMixedScript))
	}
	if h.idn {
		fmt.Fprintf(&sb, ", punycode label (+%s)", points(wPunycode))
	}
	fmt.Fprintf(&sb, "; score %s, threshold %s", points(h.score), t.display)
	switch others {
	case 0:
	case 1:
		sb.WriteString("; 1 more name looks alike")
	default:
		fmt.Fprintf(&sb, "; %d more names look alike", others)
	}
	return sb.String()
}

// points formats a number of points as a score in [0, 1].
func points(p int) string {
	return fmt.Sprintf("%d.%02d", p/maxScore, p%maxScore)
}
