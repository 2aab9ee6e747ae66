package main

import (
	"fmt"
	"strconv"
	"strings"
)

// entryPlan decides everything about generated entry number n except the
// random parts (serial, signature): which corpus certificate it copies,
// whether it is a precertificate, whether it names a watched domain. Being a
// pure function of n, it tells the harness exactly which entries must hit
// without remembering them — also for a log filled by an earlier run
// (-keep), whose certificates this run never saw.
type entryPlan struct {
	// prefix starts the label that makes entry n's first name unique
	// ("b" for backfill entries, "l" for the latency phase), so that the
	// entries of two phases never share names.
	prefix string
	// watchEvery: entries n with n%watchEvery == 0 are watched.
	watchEvery int
	// precertEvery: entries n with n%precertEvery == 1 are
	// precertificates (add-pre-chain); 0 means none are.
	precertEvery int
	// domains are the watched domains; watched entry n names a host under
	// domains[(n/watchEvery)%len(domains)].
	domains []string
}

// entrySpec is one entry to generate.
type entrySpec struct {
	n       int
	shape   *shape
	names   []string // DNS names, rewritten for this entry
	cn      string
	watched bool
	precert bool
}

// spec returns the plan for entry n, modelled on shapes[n%len(shapes)].
func (p entryPlan) spec(n int, shapes []shape) entrySpec {
	s := &shapes[n%len(shapes)]
	e := entrySpec{
		n:       n,
		shape:   s,
		watched: p.watchEvery > 0 && n%p.watchEvery == 0,
		precert: p.precertEvery > 0 && n%p.precertEvery == 1%p.precertEvery,
		cn:      s.subject.CommonName,
	}
	label := p.prefix + strconv.Itoa(n)
	e.names = make([]string, len(s.dnsNames), max(len(s.dnsNames), 1))
	copy(e.names, s.dnsNames)
	first := ""
	if len(e.names) > 0 {
		first = e.names[0]
	}
	wildcard := strings.HasPrefix(first, "*.")
	var rewritten string
	if e.watched {
		d := p.domains[(n/p.watchEvery)%len(p.domains)]
		rewritten = label + "." + d
	} else {
		base := strings.TrimPrefix(first, "*.")
		if base == "" {
			base = strings.TrimPrefix(s.subject.CommonName, "*.")
		}
		if base == "" {
			base = "bench.invalid"
		}
		rewritten = label + "." + base
	}
	if wildcard {
		rewritten = "*." + rewritten
	}
	switch {
	case len(e.names) > 0:
		e.names[0] = rewritten
	case e.watched:
		// A model without DNS names (CN only): a watched entry still
		// needs one, where every monitor looks.
		e.names = append(e.names, rewritten)
	}
	if s.cnIsSAN >= 0 {
		e.cn = e.names[s.cnIsSAN]
	} else if len(s.dnsNames) == 0 && s.subject.CommonName != "" {
		e.cn = rewritten
	}
	if len(e.cn) > 64 { // ub-common-name; keep the model's then
		e.cn = s.subject.CommonName
	}
	return e
}

// watchedIndex finds, among a hit's DNS names, the one a watched entry of
// this plan carries and returns the entry's number.
func (p entryPlan) watchedIndex(names []string) (int, bool) {
	for _, name := range names {
		name = strings.TrimPrefix(strings.ToLower(name), "*.")
		label, domain, ok := strings.Cut(name, ".")
		if !ok || !strings.HasPrefix(label, p.prefix) {
			continue
		}
		n, err := strconv.Atoi(label[len(p.prefix):])
		if err != nil || n < 0 || p.watchEvery <= 0 || n%p.watchEvery != 0 {
			continue
		}
		if len(p.domains) > 0 && domain == p.domains[(n/p.watchEvery)%len(p.domains)] {
			return n, true
		}
	}
	return 0, false
}

// watchedBelow counts the watched entries among 0..total-1.
func (p entryPlan) watchedBelow(total int) int {
	if p.watchEvery <= 0 || total <= 0 {
		return 0
	}
	return (total + p.watchEvery - 1) / p.watchEvery
}

// benchDomains returns k watched domains under bench.example (a reserved
// name, so that no corpus name and nothing real can be under them).
func benchDomains(k int) []string {
	d := make([]string, k)
	for i := range d {
		d[i] = fmt.Sprintf("w%d.bench.example", i)
	}
	return d
}
