package rules

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ctwatch/ctwatch/cert"
)

// feedResult and setResult are the outcome of compiling one feed or issuer
// set, cached per Compile; err is reported at every rule that names it.
type feedResult struct {
	f   *feed
	err error
}

type setResult struct {
	a   *allowedIssuers // holds only this owner's entries
	err error
}

func checkNode(c checker) *node { return &node{kind: nodeCheck, check: c} }

// knownList formats names for "unknown X" messages.
func knownList(names []string, what string) string {
	if len(names) == 0 {
		return fmt.Sprintf("no %s are available", what)
	}
	names = slices.Clone(names)
	slices.Sort(names)
	return fmt.Sprintf("known %s: %s", what, strings.Join(names, ", "))
}

// parseIssuer parses `issuer: {cn|o|ou|c: ..., spki_sha256: [...],
// chain_sha256: [...], chain_spki_sha256: [...]}`; every key must hold.
func (p *fileParser) parseIssuer(n *yaml.Node) *node {
	if !p.expect(n, yaml.MappingNode, "issuer") {
		return nil
	}
	kvs := p.pairs(n)
	if len(kvs) == 0 {
		p.errorf(n.Line, "issuer is empty: it needs at least one of cn, o, ou, c, spki_sha256, chain_sha256, chain_spki_sha256")
		return nil
	}
	all := &node{kind: nodeAll}
	for _, kv := range kvs {
		var child *node
		switch kv.key {
		case "cn":
			child = p.parseAttr(kv.v, "CN", func(c *cert.Cert) []string { return c.IssuerCN })
		case "o":
			child = p.parseAttr(kv.v, "O", func(c *cert.Cert) []string { return c.IssuerO })
		case "ou":
			child = p.parseAttr(kv.v, "OU", func(c *cert.Cert) []string { return c.IssuerOU })
		case "c":
			child = p.parseAttr(kv.v, "C", func(c *cert.Cert) []string { return c.IssuerC })
		case "spki_sha256":
			child = p.parseHashTest(kv.v, kv.key, hashIssuerSPKI)
		case "chain_sha256":
			child = p.parseHashTest(kv.v, kv.key, hashChain)
		case "chain_spki_sha256":
			child = p.parseHashTest(kv.v, kv.key, hashChainSPKI)
		default:
			p.errorf(kv.k.Line, "unknown key %q in issuer (want cn, o, ou, c, spki_sha256, chain_sha256, chain_spki_sha256)", kv.key)
		}
		all.children = append(all.children, child)
	}
	if len(all.children) == 1 {
		return all.children[0]
	}
	return all
}

func (p *fileParser) parseAttr(n *yaml.Node, attr string, get func(*cert.Cert) []string) *node {
	what := "issuer " + strings.ToLower(attr)
	s, ok := p.str(n, what)
	if !ok {
		return nil
	}
	if s == "" {
		p.errorf(n.Line, "%s is empty", what)
		return nil
	}
	t := &attrTest{attr: attr, get: get, display: s}
	if len(s) >= 2 && strings.HasPrefix(s, "/") && strings.HasSuffix(s, "/") {
		if len(s) > maxRegexLen {
			p.errorf(n.Line, "%s: regular expression is longer than %d characters", what, maxRegexLen)
			return nil
		}
		re, err := regexp.Compile(s[1 : len(s)-1])
		if err != nil {
			p.errorf(n.Line, "%s: invalid regular expression %s: %v", what, s, err)
			return nil
		}
		t.re = re
	} else {
		t.exact = s
	}
	return checkNode(t)
}

// parseHashList reads a non-empty list of SHA-256 values.
func (p *fileParser) parseHashList(n *yaml.Node, what string) (map[cert.Hash]bool, bool) {
	if !p.expect(n, yaml.SequenceNode, what) {
		return nil, false
	}
	if len(n.Content) == 0 {
		p.errorf(n.Line, "%s list is empty", what)
		return nil, false
	}
	set := make(map[cert.Hash]bool, len(n.Content))
	ok := true
	for _, item := range n.Content {
		s, isStr := p.str(item, "a SHA-256")
		if !isStr {
			ok = false
			continue
		}
		h, err := parseHash(s)
		if err != nil {
			p.errorf(item.Line, "%s: %v", what, err)
			ok = false
			continue
		}
		set[h] = true
	}
	return set, ok
}

func (p *fileParser) parseHashTest(n *yaml.Node, key string, kind hashKind) *node {
	set, ok := p.parseHashList(n, key)
	if !ok {
		return nil
	}
	return checkNode(&hashTest{key: key, set: set, kind: kind})
}

// parseCountry parses `issuer_country: [KZ, RU]`.
func (p *fileParser) parseCountry(n *yaml.Node) *node {
	if !p.expect(n, yaml.SequenceNode, "issuer_country") {
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n.Line, "issuer_country list is empty")
		return nil
	}
	t := &countryTest{set: make(map[[2]byte]bool, len(n.Content))}
	var shown []string
	for _, item := range n.Content {
		s, ok := p.str(item, "a country code")
		if !ok {
			continue
		}
		k, ok := countryKey(s)
		if !ok {
			p.errorf(item.Line, "invalid country code %q (want two letters, as in KZ)", s)
			continue
		}
		if !t.set[k] {
			t.set[k] = true
			shown = append(shown, string(k[:]))
		}
	}
	t.display = strings.Join(shown, ", ")
	return checkNode(t)
}

// parseFeed parses `feed: NAME`, compiling the feed on first use.
func (p *fileParser) parseFeed(n *yaml.Node) *node {
	name, ok := p.str(n, "feed")
	if !ok {
		return nil
	}
	if name == "" {
		p.errorf(n.Line, "feed is empty: name a feed")
		return nil
	}
	r, cached := p.c.feeds[name]
	if !cached {
		var names []string
		var data []byte
		found := false
		if p.c.data != nil {
			names = p.c.data.FeedNames()
			data, found = p.c.data.Feed(name)
		}
		if !found {
			r.err = fmt.Errorf("unknown feed %q (%s)", name, knownList(names, "feeds"))
		} else if f, err := compileFeed(name, data); err != nil {
			r.err = fmt.Errorf("built-in feed %q is invalid: %w", name, err)
		} else {
			r.f = f
		}
		p.c.feeds[name] = r
	}
	if r.err != nil {
		p.errorf(n.Line, "%v", r.err)
		return nil
	}
	return checkNode(feedMatcher{f: r.f})
}

// ownerSet returns the compiled issuer set of owner, compiling it on first
// use.
func (p *fileParser) ownerSet(owner string) setResult {
	if r, ok := p.c.sets[owner]; ok {
		return r
	}
	var r setResult
	var owners []string
	var data []byte
	found := false
	if p.c.data != nil {
		owners = p.c.data.IssuerOwners()
		data, found = p.c.data.IssuerSet(owner)
	}
	if !found {
		r.err = fmt.Errorf("unknown issuer owner %q (%s)", owner, knownList(owners, "owners"))
	} else {
		a := newAllowed()
		if err := a.addSet(owner, data); err != nil {
			r.err = fmt.Errorf("built-in issuer set %q is invalid: %w", owner, err)
		} else {
			r.a = a
		}
	}
	p.c.sets[owner] = r
	return r
}

func newAllowed() *allowedIssuers {
	return &allowedIssuers{
		spki:  make(map[cert.Hash]string),
		certs: make(map[cert.Hash]string),
		names: make(map[string]string),
	}
}

// parseAllowed parses `allowed_issuers: {owners: [...], spki_sha256: [...],
// cert_sha256: [...]}`.
func (p *fileParser) parseAllowed(n *yaml.Node) *node {
	if !p.expect(n, yaml.MappingNode, "allowed_issuers") {
		return nil
	}
	kvs := p.pairs(n)
	if len(kvs) == 0 {
		p.errorf(n.Line, "allowed_issuers is empty: it needs owners, spki_sha256 or cert_sha256")
		return nil
	}
	a := newAllowed()
	var owners []string
	var nspki, ncert int
	ok := true
	for _, kv := range kvs {
		switch kv.key {
		case "owners":
			if !p.expect(kv.v, yaml.SequenceNode, "owners") {
				ok = false
				continue
			}
			if len(kv.v.Content) == 0 {
				p.errorf(kv.v.Line, "owners list is empty")
				ok = false
				continue
			}
			for _, item := range kv.v.Content {
				s, isStr := p.str(item, "an owner")
				if !isStr {
					ok = false
					continue
				}
				r := p.ownerSet(s)
				if r.err != nil {
					p.errorf(item.Line, "%v", r.err)
					ok = false
					continue
				}
				if slices.Contains(owners, s) {
					continue
				}
				owners = append(owners, s)
				for h, o := range r.a.spki {
					a.spki[h] = o
				}
				for h, o := range r.a.certs {
					a.certs[h] = o
				}
				for dn, o := range r.a.names {
					a.names[dn] = o
				}
			}
		case "spki_sha256", "cert_sha256":
			set, good := p.parseHashList(kv.v, kv.key)
			if !good {
				ok = false
				continue
			}
			dst := a.certs
			if kv.key == "spki_sha256" {
				dst, nspki = a.spki, len(set)
			} else {
				ncert = len(set)
			}
			for h := range set {
				if _, have := dst[h]; !have {
					dst[h] = "listed"
				}
			}
		default:
			p.errorf(kv.k.Line, "unknown key %q in allowed_issuers (want owners, spki_sha256, cert_sha256)", kv.key)
			ok = false
		}
	}
	if !ok {
		return nil
	}
	a.summary = summarise(owners, nspki, ncert)
	return checkNode(a)
}

// parsePolicy parses `policy: [max_validity, weak_key, sha1, no_san, ip_san]`.
func (p *fileParser) parsePolicy(n *yaml.Node) *node {
	if !p.expect(n, yaml.SequenceNode, "policy") {
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n.Line, "policy list is empty")
		return nil
	}
	t := &policyTest{schedule: validitySchedule()}
	for _, item := range n.Content {
		s, ok := p.str(item, "a policy check")
		if !ok {
			continue
		}
		switch s {
		case policyMaxValidity, policyWeakKey, policySHA1, policyNoSAN, policyIPSAN:
			if !slices.Contains(t.checks, s) {
				t.checks = append(t.checks, s)
			}
		default:
			p.errorf(item.Line, "unknown policy check %q (supported: %s)", s, supportedPolicies)
		}
	}
	return checkNode(t)
}
