package rules

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/idna"
)

// The lookalike matcher's shortcuts (the near index and its filters, the
// one-edit check, the banded edit distance, the per-certificate label memo,
// the reason written without fmt) must not change what it finds. Each test
// here holds one of them to the plain computation it replaces.

// fullOSA is the optimal-string-alignment distance by the textbook
// dynamic programme, without a limit or a band.
func fullOSA(a, b []rune) int {
	d := make([][]int, len(a)+1)
	cells := make([]int, (len(a)+1)*(len(b)+1))
	for i := range d {
		d[i] = cells[i*(len(b)+1) : (i+1)*(len(b)+1)]
		d[i][0] = i
	}
	for j := range b {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// allStrings lists every string over alphabet of length at most n.
func allStrings(alphabet string, n int) []string {
	out := []string{""}
	prev := []string{""}
	for range n {
		var next []string
		for _, p := range prev {
			for _, c := range alphabet {
				next = append(next, p+string(c))
			}
		}
		out = append(out, next...)
		prev = next
	}
	return out
}

// TestEditDistanceShortcuts compares osaDistance (banded, limited) and
// oneEdit with the full distance on every pair of short strings over a
// small alphabet, where transpositions and repeats abound.
func TestEditDistanceShortcuts(t *testing.T) {
	strs := allStrings("abc", 4)
	for _, a := range strs {
		for _, b := range strs {
			full := fullOSA([]rune(a), []rune(b))
			for limit := range 4 {
				want := min(full, limit+1)
				if got := osaDistance([]byte(a), []byte(b), limit); got != want {
					t.Fatalf("osaDistance(%q, %q, %d) = %d, want %d", a, b, limit, got, want)
				}
				if got := osaDistance([]rune(a), []rune(b), limit); got != want {
					t.Fatalf("osaDistance(runes %q, %q, %d) = %d, want %d", a, b, limit, got, want)
				}
			}
			if got, want := oneEdit([]byte(a), []byte(b)), min(full, 2); got != want {
				t.Fatalf("oneEdit(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

type nearHit struct {
	brand int32
	dist  int
}

// bruteNear is what near yields, computed against every brand in order:
// first the brands whose skeleton equals the label's, then those at most
// their maxDist edits away.
func bruteNear(t *lookalikeTest, label []byte) []nearHit {
	var out []nearHit
	for i, b := range t.brands {
		if string(label) == b.skel {
			out = append(out, nearHit{int32(i), 0})
		}
	}
	runes := []rune(string(label))
	for i, b := range t.brands {
		if b.maxDist == 0 || string(label) == b.skel {
			continue
		}
		if len(runes)-len(b.runes) > b.maxDist || len(b.runes)-len(runes) > b.maxDist {
			continue // at least that many insertions or deletions
		}
		if d := fullOSA(runes, b.runes); d <= b.maxDist && d > 0 {
			out = append(out, nearHit{int32(i), d})
		}
	}
	return out
}

// checkNear compares near with bruteNear on every label of name.
func checkNear(t *testing.T, lt *lookalikeTest, name string) {
	t.Helper()
	n, ok := hostName(name)
	if !ok {
		return
	}
	var v nameView
	skel, ok := lt.prepare(n, &v, make([]byte, 0, 64))
	if !ok {
		return
	}
	for li := range v.n {
		lv := &v.labels[li]
		var got []nearHit
		for bi, d := range lt.near(lv, skel) {
			got = append(got, nearHit{bi, d})
		}
		if want := bruteNear(lt, skel[lv.sStart:lv.sEnd]); !slices.Equal(got, want) {
			t.Errorf("%q label %d (%q): near = %v, want %v", name, li, skel[lv.sStart:lv.sEnd], got, want)
		}
	}
}

// lookalikeNames are names that are near brands in every way near knows,
// and names that are not.
var lookalikeNames = []string{
	"paypal.com", "paypall.com", "pyapal.com", "paypa1.com", "rnicrosoft.com", "micros0ft.com", "microsfot.com",
	"bankofarnerica.com", "bankofamerca.com", "bnakofamerica.com", "americanexpres.com", "arnericanexpress.com",
	"xn--pypal-4ve.com", "xn--80ak6aa92e.com", "xn--ggle-0nda.com", "wellsfargo.com", "wellfsargo.com",
	"deutschebank.de", "deutsche-bank.de", "www.example.com", "aaaaaa.com", "ing.com", "ingg.com", "ibm.com",
	"office365.com", "offce365.com", "oflice365.com", "coinbase.com", "c0inbase.com", "coinbsae.com",
}

// TestNearMatchesBruteForce holds the near index and its filters to a scan
// of every brand, on made-up lookalikes and on every name of the corpus.
func TestNearMatchesBruteForce(t *testing.T) {
	lt := newLookalike(brands100(), defaultLookalikeKeywords(), nil, defaultLookalikeThreshold, "0.8")
	for _, name := range lookalikeNames {
		checkNear(t, lt, name)
	}
	// Each distinct registered domain and label of the corpus once: the
	// brute force is slow.
	seen := map[string]bool{}
	for _, c := range corpusCerts(t) {
		for _, name := range c.DNSNames {
			labels := strings.Split(strings.TrimPrefix(name, "*."), ".")
			for i := range labels {
				if s := strings.Join(labels[i:], "."); !seen[s] && i < 2 {
					seen[s] = true
					checkNear(t, lt, s)
				}
				if !seen[labels[i]+".com"] {
					seen[labels[i]+".com"] = true
					checkNear(t, lt, labels[i]+".com")
				}
			}
		}
	}
}

// TestNearIndexCorners covers the brands the near index keys differently:
// one with as few byte classes as edits allowed (always a candidate), one
// with exactly one class more, brands sharing a skeleton, and more brands
// than one word of the index holds.
func TestNearIndexCorners(t *testing.T) {
	brands := []string{"aaaaaaaaaa", "ababababab", "abababab", "paypal", "paypa1", "rnicrosoft", "microsoft"}
	for i := range 70 {
		brands = append(brands, fmt.Sprintf("brand%03dx", i))
	}
	lt := newLookalike(brands, defaultLookalikeKeywords(), nil, defaultLookalikeThreshold, "0.8")
	names := []string{"aaaaaaaaaa.com", "aaaaaaaaab.com", "bbbbbbbbbb.com", "xxaaaaaaaa.com", "abababab.com",
		"babababa.com", "ababababa.com", "paypal.com", "paypai.com", "microsoft.com", "rnicros0ft.com",
		"brand042x.com", "brand042.com", "brnad069x.com", "brand0699x.com", "zzzzzzzzz.com"}
	names = append(names, lookalikeNames...)
	for _, name := range names {
		checkNear(t, lt, name)
	}
}

// FuzzLookalikeNear holds near to the brute force, and mayHit to its
// definition, on arbitrary names.
func FuzzLookalikeNear(f *testing.F) {
	for _, s := range lookalikeNames {
		f.Add(s)
	}
	lt := newLookalike(brands100(), defaultLookalikeKeywords(), nil, defaultLookalikeThreshold, "0.8")
	f.Fuzz(func(t *testing.T, name string) {
		if len(name) > 80 {
			return // the brute force is quadratic
		}
		checkNear(t, lt, name)
		checkMayHit(t, lt, name, nil)
	})
}

// mayHitDefinition is mayHit without its memo and its per-label
// shortcuts: some label but the last near a brand, with a bound at the
// threshold, or some occurrence of a brand whose bound reaches it (see
// mayHit).
func mayHitDefinition(t *lookalikeTest, v *nameView, skel []byte) bool {
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
		for int(v.labels[li].sEnd) < end {
			li++
		}
		lv := &v.labels[li]
		if t.bounded(wBrandKeyword, lv) < t.threshold {
			continue
		}
		if t.bounded(wContainsBrand, lv) >= t.threshold ||
			int(lv.sStart) == i && int(lv.sEnd) == end || t.keywordOutside(skel, i, end) != "" {
			return true
		}
	}
	return false
}

// checkMayHit compares mayHit, with memo (which may be nil), with its
// definition on name.
func checkMayHit(t *testing.T, lt *lookalikeTest, name string, memo *labelMemo) {
	t.Helper()
	n, ok := hostName(name)
	if !ok {
		return
	}
	var v nameView
	skel, ok := lt.prepare(n, &v, make([]byte, 0, 64))
	if !ok || v.n < 2 {
		return
	}
	if got, want := lt.mayHit(n, &v, skel, memo), mayHitDefinition(lt, &v, skel); got != want {
		t.Errorf("mayHit(%q) = %v, want %v", name, got, want)
	}
}

// TestMayHit holds mayHit, with the memo of each certificate, to its
// definition on every name of the corpus, for thresholds that let
// different signals through.
func TestMayHit(t *testing.T) {
	certs := corpusCerts(t)
	for _, threshold := range []float64{0.5, 0.75, 0.8, 0.9, 1} {
		lt := newLookalike(brands100(), defaultLookalikeKeywords(), nil, threshold, "x")
		sets := [][]string{lookalikeNames, {"login.paypal.example", "paypal-login.example", "secure-paypal.co.uk", "mypaypal.example", "paypal.com.evil.example", "xn--pypal-4ve.login.example"}}
		for _, c := range certs {
			sets = append(sets, c.DNSNames)
		}
		for _, names := range sets {
			var memo labelMemo
			for _, name := range names {
				checkMayHit(t, lt, name, &memo)
			}
		}
	}
}

// TestLookalikeMemo scores the names of every corpus certificate with the
// certificate's label memo, as match does, and each on its own without
// one: the memo must not change any score.
func TestLookalikeMemo(t *testing.T) {
	lt := newLookalike(brands100(), defaultLookalikeKeywords(), []string{"google.com", "microsoft.com"}, defaultLookalikeThreshold, "0.8")
	var v nameView
	buf := make([]byte, 0, 512)
	sets := [][]string{lookalikeNames}
	for _, c := range corpusCerts(t) {
		sets = append(sets, c.DNSNames)
	}
	for _, names := range sets {
		var memo labelMemo
		for _, name := range names {
			got, gotOK := lt.scoreName(name, &v, buf, &memo)
			want, wantOK := lt.scoreName(name, &v, buf, nil)
			if got != want || gotOK != wantOK {
				t.Errorf("%q: with memo %+v %v, without %+v %v", name, got, gotOK, want, wantOK)
			}
		}
	}
}

// fmtReason is the reason as the matcher wrote it with fmt before it
// wrote it with strconv.
func fmtReason(t *lookalikeTest, h *lookHit, others int) string {
	points := func(p int) string { return fmt.Sprintf("%d.%02d", p/maxScore, p%maxScore) }
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

// TestLookalikeReasonFormat compares the reason with the fmt original on
// every kind of signal and modifier, odd names and scores included.
func TestLookalikeReasonFormat(t *testing.T) {
	lt := newLookalike([]string{"paypal", "bank-of-x"}, defaultLookalikeKeywords(), nil, 0.85, "0.85")
	for _, raw := range []string{"paypal-login.example", "xn--pypal-4ve.com", "*.xn--pypal-4ve.com", "\"q\"\\.example", "\xff.example", "ünïcode.example"} {
		for kind := sigSkeletonEqual; kind <= sigContainsBrand; kind++ {
			for _, arg := range []string{"", "login", "pay\"pal.com"} {
				for _, score := range []int{0, 5, 80, 95, 100} {
					for others := range 3 {
						h := lookHit{raw: raw, brand: int32(score % 2), score: score, kind: kind, points: score - score%10,
							dist: score % 3, arg: arg, scripts: uint8(score % 32), idn: score%2 == 1}
						if got, want := lt.reason(&h, others), fmtReason(lt, &h, others); got != want {
							t.Fatalf("reason = %q\nwant     %q", got, want)
						}
					}
				}
			}
		}
	}
}
