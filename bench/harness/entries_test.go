package main

import (
	"strings"
	"testing"
)

func testShapes() []shape {
	return []shape{
		{file: "a", dnsNames: []string{"www.example.org", "example.org"}, cnIsSAN: 0, key: "p256"},
		{file: "b", dnsNames: []string{"*.cdn.example.net", "cdn.example.net", "x.example.net"}, cnIsSAN: 1, key: "rsa2048"},
		{file: "c", cnIsSAN: -1, key: "p256"}, // CN only
	}
}

func TestSpecNames(t *testing.T) {
	shapes := testShapes()
	shapes[2].subject.CommonName = "legacy.example.org"
	plan := entryPlan{prefix: "b", watchEvery: 4, precertEvery: 3, domains: []string{"w0.bench.example", "w1.bench.example"}}
	tests := []struct {
		n               int
		names           []string
		cn              string
		watched, precer bool
	}{
		{0, []string{"b0.w0.bench.example", "example.org"}, "b0.w0.bench.example", true, false},
		{1, []string{"*.b1.cdn.example.net", "cdn.example.net", "x.example.net"}, "cdn.example.net", false, true},
		{2, nil, "b2.legacy.example.org", false, false},
		{3, []string{"b3.www.example.org", "example.org"}, "b3.www.example.org", false, false},
		{4, []string{"*.b4.w1.bench.example", "cdn.example.net", "x.example.net"}, "cdn.example.net", true, true},
		{8, []string{"b8.w0.bench.example"}, "b8.w0.bench.example", true, false}, // the CN of a CN-only model is its name
	}
	for _, tt := range tests {
		e := plan.spec(tt.n, shapes)
		if strings.Join(e.names, ",") != strings.Join(tt.names, ",") || e.cn != tt.cn || e.watched != tt.watched || e.precert != tt.precer {
			t.Errorf("spec(%d) = names %v cn %q watched %v precert %v, want %v %q %v %v",
				tt.n, e.names, e.cn, e.watched, e.precert, tt.names, tt.cn, tt.watched, tt.precer)
		}
	}
	// The model's own names are never changed in place.
	if shapes[0].dnsNames[0] != "www.example.org" {
		t.Errorf("spec modified the model: %v", shapes[0].dnsNames)
	}
}

// The harness's expected hits rest on this: a watched entry's names are
// under a watched domain and map back to the entry; an unwatched entry's
// names are under none. Checked on the real corpus.
func TestWatchedNamesOnCorpus(t *testing.T) {
	shapes := corpusShapes(t)
	plan := entryPlan{prefix: "b", watchEvery: 20, precertEvery: 3, domains: benchDomains(10)}
	watchedRule := append([]string{"example.com"}, plan.domains...)
	under := func(name string) bool {
		name = strings.TrimPrefix(strings.ToLower(name), "*.")
		for _, d := range watchedRule {
			if name == d || strings.HasSuffix(name, "."+d) {
				return true
			}
		}
		return false
	}
	watched, precerts := 0, 0
	const total = 4000
	for n := range total {
		e := plan.spec(n, shapes)
		hit := false
		for _, name := range e.names {
			hit = hit || under(name)
		}
		if hit != e.watched {
			t.Fatalf("entry %d: names %v under a watched domain = %v, watched = %v", n, e.names, hit, e.watched)
		}
		got, ok := plan.watchedIndex(e.names)
		if ok != e.watched || (ok && got != n) {
			t.Fatalf("entry %d (watched %v): watchedIndex(%v) = %d, %v", n, e.watched, e.names, got, ok)
		}
		if e.watched {
			watched++
		}
		if e.precert {
			precerts++
		}
	}
	if watched != plan.watchedBelow(total) || watched != total/20 {
		t.Errorf("%d watched entries of %d, watchedBelow says %d", watched, total, plan.watchedBelow(total))
	}
	if precerts < total/3-1 || precerts > total/3+1 {
		t.Errorf("%d precertificates of %d, want about a third", precerts, total)
	}
}

func TestWatchedIndex(t *testing.T) {
	plan := entryPlan{prefix: "l", watchEvery: 1, domains: []string{"w0.bench.example", "w1.bench.example"}}
	tests := []struct {
		names []string
		want  int
		ok    bool
	}{
		{[]string{"l0.w0.bench.example"}, 0, true},
		{[]string{"other.example", "*.L7.W1.bench.example"}, 7, true},
		{[]string{"l7.w0.bench.example"}, 0, false}, // entry 7 is under w1
		{[]string{"b4.w0.bench.example"}, 0, false}, // another phase's prefix
		{[]string{"lx.w0.bench.example"}, 0, false},
		{[]string{"l-2.w0.bench.example"}, 0, false},
		{[]string{"w0.bench.example"}, 0, false},
		{nil, 0, false},
	}
	for _, tt := range tests {
		got, ok := plan.watchedIndex(tt.names)
		if got != tt.want || ok != tt.ok {
			t.Errorf("watchedIndex(%v) = %d, %v; want %d, %v", tt.names, got, ok, tt.want, tt.ok)
		}
	}
}

func TestWatchedBelow(t *testing.T) {
	plan := entryPlan{watchEvery: 20}
	for _, tt := range []struct{ total, want int }{{0, 0}, {1, 1}, {20, 1}, {21, 2}, {20000, 1000}, {20001, 1001}} {
		if got := plan.watchedBelow(tt.total); got != tt.want {
			t.Errorf("watchedBelow(%d) = %d, want %d", tt.total, got, tt.want)
		}
	}
}
