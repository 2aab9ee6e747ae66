package rules

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestSuffixMap(t *testing.T) {
	var m suffixMap[int]
	if _, ok := m.get(keyHash("a.example"), "a.example"); ok {
		t.Fatal("empty map has a.example")
	}
	// Enough keys to grow the table several times.
	for i := range 1000 {
		*m.ref(fmt.Sprintf("k%d.example", i)) = i
	}
	*m.ref("k7.example") = -7 // replaces
	for i := range 1000 {
		key := fmt.Sprintf("k%d.example", i)
		want := i
		if i == 7 {
			want = -7
		}
		if got, ok := m.get(keyHash(key), key); !ok || got != want {
			t.Errorf("get(%q) = %d, %v, want %d", key, got, ok, want)
		}
	}
	for _, key := range []string{"", "example", "k1000.example", "k1.example."} {
		if _, ok := m.get(keyHash(key), key); ok {
			t.Errorf("get(%q) found a value", key)
		}
	}
	if m.n != 1000 {
		t.Errorf("n = %d, want 1000", m.n)
	}
	// The hash of a suffix, extended byte by byte from the end, is the
	// hash of the whole string.
	h := uint64(fnvOffset)
	s := "www.k3.example"
	for i := len(s) - 1; i >= 0; i-- {
		h = suffixHash(h, s[i])
	}
	if h != keyHash(s) {
		t.Error("suffixHash does not extend to keyHash")
	}
}

// TestDomainIndexMatchesReference holds the index (and its stop at the
// first suffix that no watched name ends with) to the definition of each
// pattern kind, applied to every pattern in turn.
func TestDomainIndexMatchesReference(t *testing.T) {
	patterns := []string{
		"a.example", ".b.example", "*.c.example", "x.y.z.example", ".y.z.example", "*.deep.er.example",
		"example", ".test", "*.w.test", "sub.a.example", "xn--bcher-kva.example",
	}
	ix := newDomainIndex()
	var parsed []domainPattern
	for leaf, s := range patterns {
		p, err := parseDomainPattern(s)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, p)
		ix.add(int32(leaf), p)
	}
	labels := []string{"*", "a", "b", "c", "x", "y", "z", "deep", "er", "w", "sub", "example", "test", "other", "xn--bcher-kva"}
	// Every name of up to four of those labels.
	names := []string{""}
	for range 4 {
		var next []string
		for _, n := range names {
			for _, l := range labels {
				if n == "" {
					next = append(next, l)
				} else {
					next = append(next, l+"."+n)
				}
			}
		}
		names = append(names, next...)
	}
	names = append(names, "a.example.", ".a.example", "a..example", "x.y.z.example.com")
	for _, n := range names {
		var want []int32
		for leaf, p := range parsed {
			if patternApplies(p, n) {
				want = append(want, int32(leaf))
			}
		}
		got := slices.Sorted(maps.Keys(ix.scan(n, nil)))
		if !slices.Equal(got, want) {
			t.Errorf("scan(%q) fired %v, want %v", n, got, want)
		}
	}
}

// patternApplies is whether watched p matches certificate name n, from the
// definitions: an exact name, a name and everything under it, one label
// under a name; a certificate wildcard *.s covers an exact or suffix
// pattern one label under s.
func patternApplies(p domainPattern, n string) bool {
	if rest, ok := strings.CutPrefix(n, "*."); ok && p.kind != patWildcard {
		if parent, ok := parentOf(p.name); ok && parent == rest {
			return true
		}
	}
	switch p.kind {
	case patExact:
		return n == p.name
	case patSuffix:
		return n == p.name || strings.HasSuffix(n, "."+p.name)
	case patWildcard:
		parent, ok := parentOf(n)
		return ok && parent == p.name
	}
	return false
}
