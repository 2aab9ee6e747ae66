package rules

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"
)

// patternKind says how a watched domain entry relates to certificate names.
type patternKind uint8

const (
	// patExact: the watched name itself ("example.com").
	patExact patternKind = iota
	// patSuffix: the name and everything below it (".example.com").
	patSuffix
	// patWildcard: exactly one label below the name ("*.example.com").
	patWildcard
)

// Limits from RFC 1035 (in presentation form, without the trailing dot).
const (
	maxLabelLen = 63
	maxNameLen  = 253
)

// domainPattern is one normalised entry of a domains matcher.
type domainPattern struct {
	kind patternKind
	// name is the normalised A-label form, without the leading "." or "*.".
	name string
	// display is the entry as the user wrote it, quoted in reasons so that
	// it can be found in the rule file.
	display string
}

// parseDomainPattern normalises one watched-domain entry: the leading "."
// or "*." decides the kind, one trailing dot is dropped, and the rest is
// lower-cased and converted to A-labels with the IDNA lookup profile.
func parseDomainPattern(s string) (domainPattern, error) {
	p := domainPattern{kind: patExact, display: s}
	rest := s
	switch {
	case strings.HasPrefix(rest, "*."):
		p.kind, rest = patWildcard, rest[2:]
	case strings.HasPrefix(rest, "."):
		p.kind, rest = patSuffix, rest[1:]
	}
	rest = strings.TrimSuffix(rest, ".")
	if rest == "" {
		return p, errors.New("empty domain name")
	}
	ascii, err := idna.Lookup.ToASCII(rest)
	if err != nil {
		return p, err
	}
	if err := checkDNSLength(ascii); err != nil {
		return p, err
	}
	p.name = ascii
	return p, nil
}

// checkDNSLength enforces what the IDNA lookup profile leaves out: no empty
// labels, labels of at most 63 octets, names of at most 253.
func checkDNSLength(name string) error {
	if len(name) > maxNameLen {
		return fmt.Errorf("name is %d characters long (at most %d)", len(name), maxNameLen)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return errors.New("empty label")
		}
		if len(label) > maxLabelLen {
			return fmt.Errorf("label %q is %d characters long (at most %d)", label, len(label), maxLabelLen)
		}
	}
	return nil
}

// refKind says which relation between a certificate name and an index key
// makes an index entry apply. The index is keyed by domain name; a lookup
// walks the suffixes of a certificate name, and for each suffix s the kind
// decides whether the entry stored under s applies to the whole name.
type refKind uint8

const (
	// refExact applies when s is the whole certificate name.
	refExact refKind = iota
	// refSuffix applies whenever s is the name or one of its ancestors.
	refSuffix
	// refWildcard (watched "*.s") applies when s is the name's parent.
	refWildcard
	// refChild (a watched exact name x.s, or a watched suffix .x.s) applies
	// when the certificate name is the wildcard "*.s", which covers x.s.
	refChild
)

// ref is one index entry: a leaf (a domains matcher of some rule) that
// watches a pattern related to the key it is stored under.
type ref struct {
	leaf int32
	kind refKind
	// display is the pattern as the user wrote it, for the reason.
	display string
}

// entry holds what is indexed under one domain name. Children are kept
// apart because they matter only for certificate wildcards, and at most one
// per leaf is kept: a wildcard that covers one watched child of a leaf makes
// the leaf match whatever its other children are, so a name with thousands
// of watched children costs no more than one per rule.
type entry struct {
	refs     []ref
	children []ref
}

// domainIndex maps domain names to the watched patterns they take part in,
// for every domains matcher of every rule at once, so that matching costs
// one table probe per label of a certificate name, independent of how many
// names are watched. Every suffix of a key that starts a label is a key
// too, with a nil entry unless something is indexed under it, so that a
// lookup of the suffixes of a name, from the shortest, stops at the first
// that is not a key: most names of a CT log share no more than their TLD
// with any watched name, and cost one probe. It is read-only once built.
type domainIndex struct {
	m suffixMap[*entry]
}

func newDomainIndex() *domainIndex {
	return &domainIndex{}
}

// add records pattern p of leaf. Leaves must be added in increasing order
// (all patterns of one leaf before the next), and the caller deduplicates
// patterns per leaf.
func (ix *domainIndex) add(leaf int32, p domainPattern) {
	switch p.kind {
	case patExact:
		ix.at(p.name).refs = append(ix.at(p.name).refs, ref{leaf: leaf, kind: refExact, display: p.display})
		ix.addChild(leaf, p)
	case patSuffix:
		ix.at(p.name).refs = append(ix.at(p.name).refs, ref{leaf: leaf, kind: refSuffix, display: p.display})
		ix.addChild(leaf, p)
	case patWildcard:
		ix.at(p.name).refs = append(ix.at(p.name).refs, ref{leaf: leaf, kind: refWildcard, display: p.display})
	}
}

// addChild records p under its parent for certificate wildcards, unless the
// leaf already has a child there (leaves arrive in order, so it would be the
// last one).
func (ix *domainIndex) addChild(leaf int32, p domainPattern) {
	parent, ok := parentOf(p.name)
	if !ok {
		return
	}
	e := ix.at(parent)
	if n := len(e.children); n > 0 && e.children[n-1].leaf == leaf {
		return
	}
	e.children = append(e.children, ref{leaf: leaf, kind: refChild, display: p.display})
}

// at returns the entry for key, creating it, and the keys of its
// suffixes.
func (ix *domainIndex) at(key string) *entry {
	if e := *ix.m.ref(key); e != nil {
		return e
	}
	e := &entry{}
	*ix.m.ref(key) = e
	for s := key; ; {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return e
		}
		s = s[i+1:]
		ix.m.ref(s) // nil unless indexed already
	}
}

// parentOf returns name without its first label; ok is false for a
// single-label name.
func parentOf(name string) (string, bool) {
	i := strings.IndexByte(name, '.')
	if i < 0 {
		return "", false
	}
	return name[i+1:], true
}

// normalizeCertName lower-cases a certificate name and drops one trailing
// dot. It allocates only when the name holds upper-case ASCII, which the
// certificate decoder already folds, so the common path is free.
func normalizeCertName(n string) string {
	n = strings.TrimSuffix(n, ".")
	for i := 0; i < len(n); i++ {
		if c := n[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(n)
		}
	}
	return n
}

// hitRef is the first index entry that applied to a leaf for one
// certificate: enough to write the reason later, only if the rule matches.
type hitRef struct {
	name string // the certificate name, normalised
	ref  ref
}

// scan looks up every suffix of the certificate name n, from the rightmost
// label to the whole name, and records in fired (allocated on first use) the
// first applying entry of each leaf. It allocates nothing when no entry
// applies.
func (ix *domainIndex) scan(n string, fired map[int32]hitRef) map[int32]hitRef {
	if n == "" {
		return fired
	}
	if ix.m.n == 0 {
		return fired
	}
	parentStart := strings.IndexByte(n, '.') + 1 // 0 when n has no parent
	certWildcard := strings.HasPrefix(n, "*.")
	// h is the keyHash of n[i+1:], extended one byte at a time.
	h := uint64(fnvOffset)
	for i := len(n) - 1; i >= -1; i-- {
		if i >= 0 && n[i] != '.' {
			h = suffixHash(h, n[i])
			continue
		}
		start := i + 1
		e, ok := ix.m.get(h, n[start:])
		if !ok {
			break // no longer suffix is a key either
		}
		if i >= 0 {
			h = suffixHash(h, '.')
		}
		if e == nil {
			continue
		}
		for _, r := range e.refs {
			var applies bool
			switch r.kind {
			case refExact:
				applies = start == 0
			case refSuffix:
				applies = true
			case refWildcard:
				applies = parentStart > 0 && start == parentStart
			}
			if applies {
				fired = record(fired, n, r)
			}
		}
		if certWildcard && start == 2 {
			for _, r := range e.children {
				fired = record(fired, n, r)
			}
		}
	}
	return fired
}

// record notes that r applied to certificate name n, unless r's leaf
// already matched.
func record(fired map[int32]hitRef, n string, r ref) map[int32]hitRef {
	if _, seen := fired[r.leaf]; seen {
		return fired
	}
	if fired == nil {
		fired = make(map[int32]hitRef)
	}
	fired[r.leaf] = hitRef{name: n, ref: r}
	return fired
}

// reason says in words why h made its leaf true.
func (h hitRef) reason() string {
	switch h.ref.kind {
	case refChild:
		return fmt.Sprintf("certificate wildcard %q covers watched %q", h.name, h.ref.display)
	default:
		return fmt.Sprintf("dns name %q matches watched %q", h.name, h.ref.display)
	}
}
