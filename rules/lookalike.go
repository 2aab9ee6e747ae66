package rules

import (
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/net/idna"
	"gopkg.in/yaml.v3"
)

// The lookalike matcher:
//
//	lookalike:
//	  brands: [paypal, examplebank]      # brand labels, as in the registered domain
//	  keywords: [login, secure]          # optional; defaultLookalikeKeywords when omitted
//	  allow: [paypal.com, paypal.me]     # the brands' own domains: never a hit
//	  threshold: 0.8                     # optional; a hit needs a score at least this high
//
// Every DNS name of a certificate is scored against every brand with the
// signals below; the best (name, brand) pair is the hit and its reason lists
// the signals that fired, so an analyst can see why a name was flagged and
// tune the threshold. Scores are kept in hundredths (points) so that sums of
// weights compare with the threshold exactly.
//
// Base signals; each one that fires, plus the modifiers of the label that
// carries it, is a candidate score, and the highest candidate over all
// names and brands is the hit:
//
//	skeleton equal      95  the registered label's UTS #39 confusable skeleton
//	                        equals the brand's, but the label is not the brand
//	                        (pаypal with a Cyrillic а, paypa1, rnicrosoft)
//	brand elsewhere     90  the registered label is the brand itself, in a
//	                        registered domain the allow list does not name
//	brand + keyword     90  the brand appears in a label and a keyword
//	                        elsewhere in the name (paypal-login.example)
//	embedded domain     90  the brand label is followed by a public suffix
//	                        inside another domain (paypal.com.evil.example)
//	edit distance       95-10·d  the skeletons are d Damerau–Levenshtein
//	                        edits apart (paypall, pyapal); d is bounded by the
//	                        brand's length (see maxEditDistance); 10 less when
//	                        the first character differs, since a reader
//	                        anchors on it (dbank is not read as tdbank)
//	subdomain label     75  a label left of the registered domain is the brand
//	contains brand      70  a label contains the brand (mypaypal.example)
//
// Modifiers, added only to a base signal and only when they concern the
// label that carries it:
//
//	mixed script       +10  the label mixes Latin, Cyrillic, Greek, Armenian
//	                        or Cherokee letters
//	punycode           +5   the label is an IDN (xn--)
//
// The total is capped at 100.
const (
	wSkeletonEqual  = 95
	wBrandElsewhere = 90
	wBrandKeyword   = 90
	wEmbeddedDomain = 90
	wEditDistance   = 95 // minus wEditStep per edit
	wEditStep       = 10
	wFirstDiffers   = 10
	wSubdomainLabel = 75
	wContainsBrand  = 70
	wMixedScript    = 10
	wPunycode       = 5
	maxScore        = 100

	defaultLookalikeThreshold = 0.8
	// minBrandLen keeps out brands so short that they occur by chance in
	// a large share of all names.
	minBrandLen = 3
	// minInnerBrandLen is the shortest brand that counts when it occurs
	// inside a word; shorter ones count only as whole words (tokenAt).
	minInnerBrandLen = 5
	// minKeyword is the shortest keyword.
	minKeyword = 2
)

// defaultLookalikeKeywords are the words phishing names pair with a brand
// when a rule does not list its own.
func defaultLookalikeKeywords() []string {
	return []string{"login", "secure", "verify", "account", "support", "update", "signin", "wallet"}
}

// maxEditDistance is how many edits a brand of n skeleton characters may be
// from a registered label and still count as a typo of it: none below 6
// characters (too many real words are one edit from a short brand), one up
// to 9, two from 10.
func maxEditDistance(n int) int {
	switch {
	case n >= 10:
		return 2
	case n >= 6:
		return 1
	}
	return 0
}

// lookBrand is one brand, precomputed for matching.
type lookBrand struct {
	name string // as in the rule file, lower-cased
	skel string // confusable skeleton of name
	// bskel is skel as bytes, so that the hot path converts nothing.
	bskel []byte
	// runes is skel as runes, for comparing with labels whose skeleton is
	// not ASCII.
	runes   []rune
	mask    uint64 // charMask of skel
	mask2   uint64 // charMask2 of skel
	maxDist int
}

// lookKeyword is one keyword and its skeleton.
type lookKeyword struct {
	name string
	skel []byte
}

// bigramSlots is the size of the index by the first two skeleton bytes of
// each brand (see charCode).
const bigramSlots = 64 * 64

// lookalikeTest is the compiled `lookalike` matcher. It is immutable after
// compilation and so safe for concurrent use.
type lookalikeTest struct {
	brands   []lookBrand
	keywords []lookKeyword
	// allow holds the allowed domains (see allowed), true, and every
	// suffix of them that starts a label, false unless allowed too.
	allow     suffixMap[bool]
	threshold int // points
	// display is the threshold as written (or the default), for reasons.
	display string
	// ascii maps each ASCII byte to its skeleton; it holds only skeletons
	// that are themselves ASCII, other bytes map to themselves (none of
	// them can appear in a host name).
	ascii [128]string
	// same marks the bytes whose skeleton is the byte itself (most), which
	// the hot path copies without a lookup of ascii.
	same [128]bool
	// maxSkel is the length of the longest skeleton in ascii (2: "m" is
	// "rn"), which prepare reserves for each byte of a label.
	maxSkel int
	// codes and bits are charCode and charBit of every byte, looked up
	// rather than computed in the loops over every byte of a name.
	codes [256]uint8
	bits  [256]uint64
	// The near index: bitsets of brands, words (= ceil(brands/64)) uint64s
	// each, brand i in bit i%64 of word i/64. exact[l] holds the brands
	// whose skeleton is l bytes long: the candidates of skeleton equality
	// with an ASCII label skeleton of l bytes; fuzzy[l] the brands that
	// allow edits (maxDist > 0) and whose skeleton length is within
	// maxDist of l: the candidates of the edit-distance signal for a label
	// skeleton of l characters.
	//
	// A brand within maxDist edits of a label lacks at most maxDist of the
	// brand's byte classes in the label (each edit brings in at most one).
	// So of any maxDist+2 of the brand's classes, two at least are in the
	// label, and of any maxDist+1, one: rare2[c] holds the brands that
	// have class c among their maxDist+2 rarest (see rarity), rare1[c] the
	// brands with exactly maxDist+1 classes, by each of them, and always
	// the brands with fewer; rare2 and rare1 hold the bitset of class c at
	// [c*words:(c+1)*words]. selectNear combines them into the candidates
	// for a label, which the other filters of near then thin out.
	words  int
	exact  [][]uint64
	fuzzy  [][]uint64
	rare2  []uint64
	rare1  []uint64
	always []uint64
	// bigramStart and bigramBrands index the brands by the first two bytes
	// of their skeleton: the brands starting with slot s are
	// bigramBrands[bigramStart[s]:bigramStart[s+1]]. trigramAny has bit t
	// set when some brand skeleton starts with the three bytes of trigram
	// t: a bitmap small enough to stay in the L1 cache, which spares the
	// lookups in bigramStart at all but a few bytes of a name. Together
	// they find every brand occurring in a name with a bit test per byte.
	bigramStart  [bigramSlots + 1]int32
	bigramBrands []int32
	trigramAny   [(trigramSlots + 63) / 64]uint64
}

// trigramSlots is the number of trigrams of charCodes.
const trigramSlots = 39 * 39 * 39

// trigram numbers three charCodes.
func trigram(a, b, c uint8) int {
	return (int(a)*39+int(b))*39 + int(c)
}

// charCode packs the bytes that can occur in a brand skeleton into 6 bits;
// everything else is 0, which no brand contains.
func charCode(c byte) uint16 {
	switch {
	case 'a' <= c && c <= 'z':
		return uint16(c-'a') + 1
	case '0' <= c && c <= '9':
		return uint16(c-'0') + 27
	case c == '-':
		return 37
	case c == '_':
		return 38
	}
	return 0
}

// charBit is the bit of c in a charMask: one per letter, digit and hyphen,
// and bit 63 for anything else.
func charBit(c byte) uint64 {
	if code := charCode(c); code != 0 {
		return 1 << (code - 1)
	}
	return 1 << 63
}

// charMask is the set of byte classes in s.
func charMask(s string) uint64 {
	var m uint64
	for i := 0; i < len(s); i++ {
		m |= charBit(s[i])
	}
	return m
}

// charMask2 is the set of byte classes that occur at least twice in s.
// With charMask it bounds the multiset distance of two strings from below
// (see multisetBound).
func charMask2(s string) uint64 {
	var m, m2 uint64
	for i := 0; i < len(s); i++ {
		b := charBit(s[i])
		m2 |= m & b
		m |= b
	}
	return m2
}

// skeleton is the UTS #39 skeleton of s (NFD, every code point through the
// Unicode confusables "MA" table, NFD again) folded to lower case, since
// host names are compared without case and the table maps some characters
// to upper-case letters (the digit 0 to O). It allocates.
func skeleton(s string) string {
	return strings.ToLower(confusables.Skeleton(s))
}

// parseLookalike parses the lookalike mapping (see the top of this file).
// Names longer than maxNameLen, the DNS limit, cannot be resolved, so they
// are never scored.
func (p *fileParser) parseLookalike(n *yaml.Node) *node {
	if !p.expect(n, yaml.MappingNode, "lookalike") {
		return nil
	}
	before := p.problemCount()
	var brands, keywords, allow []string
	haveBrands, haveKeywords := false, false
	threshold, display := defaultLookalikeThreshold, strconv.FormatFloat(defaultLookalikeThreshold, 'f', -1, 64)
	for _, kv := range p.pairs(n) {
		switch kv.key {
		case "brands":
			haveBrands = true
			brands = p.lookalikeWords(kv.v, "brands", "a brand", minBrandLen)
		case "keywords":
			haveKeywords = true
			keywords = p.lookalikeWords(kv.v, "keywords", "a keyword", minKeyword)
		case "allow":
			allow = p.lookalikeAllow(kv.v)
		case "threshold":
			s, ok := p.str(kv.v, "threshold")
			if !ok {
				continue
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(f) || f <= 0 || f > 1 {
				p.errorf(kv.v.Line, "invalid lookalike threshold %q (want a number above 0 and at most 1)", s)
				continue
			}
			threshold, display = f, s
		default:
			p.errorf(kv.k.Line, "unknown key %q in lookalike (want brands, keywords, allow, threshold)", kv.key)
		}
	}
	if !haveBrands {
		p.errorf(n.Line, "lookalike has no brands")
	}
	if p.problemCount() != before {
		return nil
	}
	if !haveKeywords {
		keywords = defaultLookalikeKeywords()
	}
	return checkNode(newLookalike(brands, keywords, allow, threshold, display))
}

// lookalikeWords reads a non-empty list of lower-case ASCII words (letters,
// digits, inner hyphens) of min to maxLabelLen characters, without
// duplicates.
func (p *fileParser) lookalikeWords(n *yaml.Node, what, one string, minLen int) []string {
	if !p.expect(n, yaml.SequenceNode, what) {
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n.Line, "%s list is empty", what)
		return nil
	}
	var out []string
	for _, item := range n.Content {
		s, ok := p.str(item, one)
		if !ok {
			continue
		}
		w := strings.ToLower(strings.TrimSpace(s))
		if msg := checkWord(w, minLen); msg != "" {
			p.errorf(item.Line, "invalid %s %q: %s", strings.TrimPrefix(one, "a "), s, msg)
			continue
		}
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// checkWord says what is wrong with w as a brand or keyword, or "".
func checkWord(w string, minLen int) string {
	switch {
	case len(w) < minLen:
		return "shorter than " + strconv.Itoa(minLen) + " characters"
	case len(w) > maxLabelLen:
		return "longer than " + strconv.Itoa(maxLabelLen) + " characters"
	case w[0] == '-' || w[len(w)-1] == '-':
		return "starts or ends with a hyphen"
	}
	for i := 0; i < len(w); i++ {
		if c := w[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return "use only ASCII letters, digits and hyphens, as in a registered domain label"
		}
	}
	return ""
}

// lookalikeAllow reads the allow list: domain names, IDNA-normalised.
func (p *fileParser) lookalikeAllow(n *yaml.Node) []string {
	if !p.expect(n, yaml.SequenceNode, "allow") {
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n.Line, "allow list is empty")
		return nil
	}
	var out []string
	for _, item := range n.Content {
		s, ok := p.str(item, "a domain")
		if !ok {
			continue
		}
		d := strings.TrimSuffix(strings.TrimSpace(s), ".")
		if d == "" || strings.ContainsAny(d, "*") || strings.HasPrefix(d, ".") {
			p.errorf(item.Line, "invalid allowed domain %q: want a domain name such as brand.example (its subdomains are allowed too)", s)
			continue
		}
		ascii, err := idna.Lookup.ToASCII(d)
		if err != nil {
			p.errorf(item.Line, "invalid allowed domain %q: %v", s, err)
			continue
		}
		if err := checkDNSLength(ascii); err != nil {
			p.errorf(item.Line, "invalid allowed domain %q: %v", s, err)
			continue
		}
		out = append(out, ascii)
	}
	return out
}

// newLookalike precomputes everything matching needs: brand and keyword
// skeletons, the per-byte skeleton table and the brand indexes. brands must
// be valid (checkWord) and non-empty.
func newLookalike(brands, keywords, allow []string, threshold float64, display string) *lookalikeTest {
	t := &lookalikeTest{
		// A score is a whole number of points: round the threshold up so
		// that "score ≥ threshold" keeps its meaning.
		threshold: int(math.Ceil(threshold*maxScore - 1e-9)),
		display:   display,
	}
	for _, a := range allow {
		*t.allow.ref(a) = true
		for s := a; ; {
			i := strings.IndexByte(s, '.')
			if i < 0 {
				break
			}
			s = s[i+1:]
			t.allow.ref(s) // false unless allowed itself
		}
	}
	for c := range len(t.ascii) {
		s := string(rune(c))
		if k := skeleton(s); isASCII(k) {
			s = k
		}
		t.ascii[c] = s
		t.same[c] = s == string(rune(c))
		t.maxSkel = max(t.maxSkel, len(s))
	}
	for c := range len(t.codes) {
		t.codes[c] = uint8(charCode(byte(c)))
		t.bits[c] = charBit(byte(c))
	}
	for _, k := range keywords {
		t.keywords = append(t.keywords, lookKeyword{name: k, skel: []byte(t.asciiSkeleton(k))})
	}
	for _, b := range brands {
		sk := t.asciiSkeleton(b)
		t.brands = append(t.brands, lookBrand{
			name: b, skel: sk, bskel: []byte(sk), runes: []rune(sk), mask: charMask(sk), mask2: charMask2(sk), maxDist: maxEditDistance(len(sk)),
		})
	}
	t.indexNear()
	var counts [bigramSlots]int32
	for _, b := range t.brands {
		counts[bigram(b.skel, 0)]++
	}
	for s := range bigramSlots {
		t.bigramStart[s+1] = t.bigramStart[s] + counts[s]
	}
	for _, b := range t.brands {
		tri := trigram(t.codes[b.skel[0]], t.codes[b.skel[1]], t.codes[b.skel[2]])
		t.trigramAny[tri/64] |= 1 << (tri % 64)
	}
	t.bigramBrands = make([]int32, len(t.brands))
	fill := t.bigramStart
	for i, b := range t.brands {
		s := bigram(b.skel, 0)
		t.bigramBrands[fill[s]] = int32(i)
		fill[s]++
	}
	return t
}

// rarity ranks the byte classes (bit numbers in a charMask) of brand
// skeletons from the rarest in host names to the commonest: roughly by
// English letter frequency, digits and the hyphen (rare in brands) first.
// It only steers which classes the near index keys a brand by, never what
// matches.
func rarity(class int) int {
	const order = "qjzxvkwyfbgpumhdclrsnioate"
	for i := 0; i < len(order); i++ {
		if bits.TrailingZeros64(charBit(order[i])) == class {
			return 16 + i
		}
	}
	return 0
}

// indexNear builds the near index (see lookalikeTest.words) of t.brands.
func (t *lookalikeTest) indexNear() {
	t.words = (len(t.brands) + 63) / 64
	set := func(sets *[][]uint64, l, i int) {
		for len(*sets) <= l {
			*sets = append(*sets, make([]uint64, t.words))
		}
		(*sets)[l][i/64] |= 1 << (i % 64)
	}
	t.rare2 = make([]uint64, 64*t.words)
	t.rare1 = make([]uint64, 64*t.words)
	t.always = make([]uint64, t.words)
	for i, b := range t.brands {
		set(&t.exact, len(b.skel), i)
		for l := len(b.skel) - b.maxDist; b.maxDist > 0 && l <= len(b.skel)+b.maxDist; l++ {
			set(&t.fuzzy, l, i)
		}
		var classes []int // bit numbers in a charMask
		for j := 0; j < len(b.skel); j++ {
			if c := bits.TrailingZeros64(charBit(b.skel[j])); !slices.Contains(classes, c) {
				classes = append(classes, c)
			}
		}
		bit := uint64(1) << (i % 64)
		switch {
		case len(classes) <= b.maxDist:
			t.always[i/64] |= bit
		case len(classes) == b.maxDist+1:
			for _, c := range classes {
				t.rare1[c*t.words+i/64] |= bit
			}
		default:
			slices.SortStableFunc(classes, func(x, y int) int { return rarity(x) - rarity(y) })
			for _, c := range classes[:b.maxDist+2] {
				t.rare2[c*t.words+i/64] |= bit
			}
		}
	}
}

// selectNear is word w of the near candidates (see lookalikeTest.words)
// for a label with byte classes mask: the brands that have two of their
// maxDist+2 rarest classes in it, or one of their maxDist+1 when they have
// no more, or that have fewer classes.
func (t *lookalikeTest) selectNear(mask uint64, w int) uint64 {
	var once, twice uint64
	sel := t.always[w]
	for m := mask; m != 0; m &= m - 1 {
		i := bits.TrailingZeros64(m)*t.words + w
		x := t.rare2[i]
		twice |= once & x
		once ^= x
		sel |= t.rare1[i]
	}
	return sel | twice
}

// bigram is the index slot of the two bytes of s at i (i+1 < len(s)).
func bigram(s string, i int) uint16 {
	return charCode(s[i])<<6 | charCode(s[i+1])
}

// asciiSkeleton maps an ASCII string through the per-byte table; it
// allocates.
func (t *lookalikeTest) asciiSkeleton(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteString(t.ascii[s[i]&0x7f])
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func (t *lookalikeTest) describe() string {
	names := make([]string, len(t.brands))
	for i, b := range t.brands {
		names[i] = b.name
	}
	return "a lookalike of brand " + strings.Join(names, ", ")
}
