package rules

import (
	"fmt"
	"slices"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/ctwatch/ctwatch/cert"
)

// IssuerMemory remembers the issuer keys (SHA-256 of the issuer's
// SubjectPublicKeyInfo) that ctwatch has seen, for the `new_issuer`
// matcher. The engine asks it once per certificate that has an issuer key,
// and only when some rule uses new_issuer; it must not do I/O there (keep
// persistence out of the call, as MemoryIssuers does with TakeNew).
//
// FirstSighting records spki and reports whether it was unknown until this
// call: it returns true exactly once per key, however many goroutines ask.
// Implementations must be safe for concurrent use.
type IssuerMemory interface {
	FirstSighting(spki cert.Hash) bool
}

// WithIssuerMemory gives the `new_issuer` matcher the memory it consults.
// Rules using new_issuer are errors at load without it; other rules ignore
// it, and an Engine without new_issuer rules never calls it.
func WithIssuerMemory(m IssuerMemory) Option {
	return func(o *options) { o.issuers = m }
}

// MemoryIssuers is an in-memory IssuerMemory. It keeps every key it knows
// and, separately, the keys first seen since the last TakeNew, so that a
// caller can persist them off the matching path. It is safe for concurrent
// use; the common case (a known key) takes a read lock and allocates
// nothing.
type MemoryIssuers struct {
	mu    sync.RWMutex
	known map[cert.Hash]struct{}
	fresh []cert.Hash
}

// NewMemoryIssuers returns a memory that already knows the keys in known
// (which it does not keep). They are not reported by TakeNew.
func NewMemoryIssuers(known []cert.Hash) *MemoryIssuers {
	m := &MemoryIssuers{known: make(map[cert.Hash]struct{}, len(known))}
	for _, h := range known {
		m.known[h] = struct{}{}
	}
	return m
}

// Remember adds keys known from elsewhere (a persisted store) without
// reporting them as new: FirstSighting is false for them from now on, and
// TakeNew does not return them. It is idempotent.
func (m *MemoryIssuers) Remember(keys ...cert.Hash) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range keys {
		m.known[h] = struct{}{}
	}
}

// FirstSighting implements IssuerMemory.
func (m *MemoryIssuers) FirstSighting(spki cert.Hash) bool {
	m.mu.RLock()
	_, ok := m.known[spki]
	m.mu.RUnlock()
	if ok {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.known[spki]; ok {
		return false
	}
	m.known[spki] = struct{}{}
	m.fresh = append(m.fresh, spki)
	return true
}

// TakeNew returns the keys first sighted since the previous call, in the
// order they were seen, and forgets that they were new (they stay known).
// It returns nil when there are none. They are not returned again, so a
// caller that fails to persist them must keep them for its next attempt.
func (m *MemoryIssuers) TakeNew() []cert.Hash {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.fresh
	m.fresh = nil
	return out
}

// Len reports how many keys the memory knows.
func (m *MemoryIssuers) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.known)
}

// KnownIssuers returns the issuer keys (spki_sha256) of every issuer set
// in d, deduplicated and sorted: the seed of an IssuerMemory, so that a
// fresh install does not report every public CA as new. It reads d (no
// other I/O) and fails on a set it cannot parse.
func KnownIssuers(d Data) ([]cert.Hash, error) {
	if d == nil {
		return nil, nil
	}
	seen := make(map[cert.Hash]bool)
	var out []cert.Hash
	for _, owner := range d.IssuerOwners() {
		data, ok := d.IssuerSet(owner)
		if !ok {
			return nil, fmt.Errorf("issuer set %q is listed but missing", owner)
		}
		var set issuerSet
		if err := yaml.Unmarshal(data, &set); err != nil {
			return nil, fmt.Errorf("issuer set %q: %w", owner, err)
		}
		for i, is := range set.Issuers {
			if is.SPKISHA256 == "" {
				continue
			}
			h, err := parseHash(is.SPKISHA256)
			if err != nil {
				return nil, fmt.Errorf("issuer set %q: issuer %d: %w", owner, i+1, err)
			}
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	slices.SortFunc(out, func(a, b cert.Hash) int { return slices.Compare(a[:], b[:]) })
	return out, nil
}

// parseNewIssuer parses `new_issuer: true`. The leaf holds when the
// certificate's issuer key is one ctwatch has never seen before; next to
// domains (in the same match, AND) it holds only when that first
// certificate of a new key is for a watched name.
func (p *fileParser) parseNewIssuer(n *yaml.Node) *node {
	var v bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&v) != nil {
		p.errorf(n.Line, "new_issuer must be true")
		return nil
	}
	if !v {
		p.errorf(n.Line, "new_issuer must be true (for the opposite, write not: {new_issuer: true})")
		return nil
	}
	if p.c.issuers == nil {
		p.errorf(n.Line, "new_issuer needs an issuer memory, and none was configured (rules.WithIssuerMemory)")
		return nil
	}
	p.c.newIssuer = true
	return &node{kind: nodeNewIssuer}
}

// newIssuerReason explains the new_issuer leaf.
func newIssuerReason(c *cert.Cert, novel bool) string {
	switch {
	case novel:
		return fmt.Sprintf("issuer %q has a new key (SPKI SHA-256 %s), seen for the first time", c.Issuer, c.IssuerSPKIHash)
	case c.IssuerSPKIHash.IsZero():
		return "the issuer key is unknown (no chain came with the certificate)"
	default:
		return fmt.Sprintf("issuer key SPKI SHA-256 %s was seen before", c.IssuerSPKIHash)
	}
}
