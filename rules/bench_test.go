package rules

import (
	"fmt"
	"strings"
	"testing"
)

// watchList returns a rule file of 100 rules watching 1,000 names each, a
// third of them exact, a third suffixes and a third one-label wildcards.
func watchList() string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for r := range 100 {
		fmt.Fprintf(&b, "  - name: watch-%d\n    severity: high\n    match:\n      domains:\n", r)
		for i := range 1000 {
			switch i % 3 {
			case 0:
				fmt.Fprintf(&b, "        - host%d.brand%d.example\n", i, r)
			case 1:
				fmt.Fprintf(&b, "        - .brand%d-%d.example\n", r, i)
			default:
				fmt.Fprintf(&b, "        - \"*.wild%d-%d.example\"\n", r, i)
			}
		}
	}
	return b.String()
}

// sans returns 100 certificate names, a tenth of them wildcards, none of
// them watched by watchList, but sharing its TLD and many of its labels.
func sans() []string {
	names := make([]string, 100)
	for i := range names {
		if i%10 == 0 {
			names[i] = fmt.Sprintf("*.cdn%d.brand%d.example", i, i)
		} else {
			names[i] = fmt.Sprintf("www%d.shop%d.brand%d.example", i, i, i%7)
		}
	}
	return names
}

func BenchmarkMatchDomains(b *testing.B) {
	e, err := Parse("bench.yaml", []byte(watchList()))
	if err != nil {
		b.Fatal(err)
	}
	none := certWith(sans()...)
	oneNames := sans()
	oneNames[57] = "login.portal.brand42-301.example"
	one := certWith(oneNames...)

	if got := e.Match(none); got != nil {
		b.Fatalf("unexpected match: %+v", got)
	}
	if got := e.Match(one); len(got) != 1 || got[0].Rule != "watch-42" {
		b.Fatalf("Match = %+v, want watch-42", got)
	}

	b.Run("none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.Match(none)
		}
	})
	b.Run("one", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.Match(one)
		}
	})
}
