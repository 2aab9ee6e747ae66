package rules

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ctwatch/ctwatch/cert"
)

// checker is a compiled leaf that is not a domains matcher: it looks at the
// certificate directly. Checkers are evaluated only when their rule is a
// candidate (see Engine.always), must do no I/O, and should allocate only
// when they hold.
type checker interface {
	// match reports whether the leaf holds for c and, when it does, why.
	match(c *cert.Cert) (reason string, ok bool)
	// describe says what the leaf looks for, in words that follow "not:"
	// in the reason of a rule that holds because the leaf does not.
	describe() string
}

// maxRegexLen bounds the regular expressions of issuer attribute tests.
const maxRegexLen = 1024

// attrTest is `issuer: {cn|o|ou|c: "exact" or "/regex/"}`.
type attrTest struct {
	attr  string // "CN", "O", "OU" or "C"
	get   func(c *cert.Cert) []string
	exact string
	re    *regexp.Regexp // nil for an exact test
	// display is the value as written in the rule file.
	display string
}

func (t *attrTest) match(c *cert.Cert) (string, bool) {
	for _, v := range t.get(c) {
		if t.re != nil {
			if t.re.MatchString(v) {
				return fmt.Sprintf("issuer %s %q matches %s", t.attr, v, t.display), true
			}
		} else if strings.EqualFold(v, t.exact) {
			return fmt.Sprintf("issuer %s is %q", t.attr, v), true
		}
	}
	return "", false
}

func (t *attrTest) describe() string {
	if t.re != nil {
		return fmt.Sprintf("issuer %s matches %s", t.attr, t.display)
	}
	return fmt.Sprintf("issuer %s is %q", t.attr, t.exact)
}

// hashTest is one of the issuer hash lists: spki_sha256 (the issuer's key),
// chain_sha256 (any chain certificate) or chain_spki_sha256 (any chain
// certificate's key, or the issuer key).
type hashTest struct {
	key  string // the rule key, for describe
	set  map[cert.Hash]bool
	kind hashKind
}

type hashKind uint8

const (
	hashIssuerSPKI hashKind = iota
	hashChain
	hashChainSPKI
)

func (t *hashTest) match(c *cert.Cert) (string, bool) {
	switch t.kind {
	case hashIssuerSPKI, hashChainSPKI:
		if !c.IssuerSPKIHash.IsZero() && t.set[c.IssuerSPKIHash] {
			return fmt.Sprintf("issuer SPKI SHA-256 %s is listed in %s", c.IssuerSPKIHash, t.key), true
		}
		if t.kind == hashIssuerSPKI {
			return "", false
		}
		for i, h := range c.ChainSPKI {
			if !h.IsZero() && t.set[h] {
				return fmt.Sprintf("SPKI SHA-256 %s of chain certificate %d is listed in %s", h, i+1, t.key), true
			}
		}
	case hashChain:
		for i, h := range c.Chain {
			if t.set[h] {
				return fmt.Sprintf("chain certificate %d SHA-256 %s is listed in %s", i+1, h, t.key), true
			}
		}
	}
	return "", false
}

func (t *hashTest) describe() string {
	return fmt.Sprintf("a hash listed in issuer %s", t.key)
}

// countryTest is `issuer_country: [KZ, ...]`: the leaf's issuer C= or any
// chain certificate's subject C= is listed.
type countryTest struct {
	set map[[2]byte]bool
	// display lists the codes as written, for describe.
	display string
}

// countryKey folds a two-letter code to upper case without allocating;
// ok is false for anything else.
func countryKey(s string) ([2]byte, bool) {
	s = strings.TrimSpace(s)
	if len(s) != 2 {
		return [2]byte{}, false
	}
	var k [2]byte
	for i := range 2 {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c < 'A' || c > 'Z' {
			return [2]byte{}, false
		}
		k[i] = c
	}
	return k, true
}

func (t *countryTest) match(c *cert.Cert) (string, bool) {
	for _, v := range c.IssuerC {
		if k, ok := countryKey(v); ok && t.set[k] {
			return fmt.Sprintf("issuer country C=%s is watched", v), true
		}
	}
	for i, dn := range c.ChainSubjects {
		for typ, v := range dnAttrs(dn) {
			if !isAttr(typ, "c", "countryName", "2.5.4.6") {
				continue
			}
			if k, ok := countryKey(v); ok && t.set[k] {
				return fmt.Sprintf("chain certificate %d (%q) has country C=%s, which is watched", i+1, dn, strings.TrimSpace(v)), true
			}
		}
	}
	return "", false
}

func (t *countryTest) describe() string {
	return "an issuer country among " + t.display
}

// Policy checks, by the names rules use.
const (
	policyMaxValidity = "max_validity"
	policyWeakKey     = "weak_key"
	policySHA1        = "sha1"
	policyNoSAN       = "no_san"
	policyIPSAN       = "ip_san"
	supportedPolicies = "max_validity, weak_key, sha1, no_san, ip_san"
)

// validityStep is a maximum certificate validity that applies to
// certificates issued (NotBefore) on or after from.
type validityStep struct {
	from    time.Time
	maxDays int
}

// validitySchedule returns the CA/Browser Forum maximum validity periods,
// latest first: 398 days, and 200 days from 2026-03-15 (ballot SC-081).
func validitySchedule() []validityStep {
	return []validityStep{
		{from: time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC), maxDays: 200},
		{maxDays: 398},
	}
}

// policyTest is `policy: [...]`: it holds when any listed check fails.
type policyTest struct {
	checks   []string
	schedule []validityStep
}

func (t *policyTest) match(c *cert.Cert) (string, bool) {
	var failed []string
	for _, check := range t.checks {
		if r, bad := t.fails(check, c); bad {
			failed = append(failed, "policy "+check+": "+r)
		}
	}
	if len(failed) == 0 {
		return "", false
	}
	return strings.Join(failed, "; "), true
}

// fails runs one check; it says nothing about values it cannot know (zero
// times, unknown key size).
func (t *policyTest) fails(check string, c *cert.Cert) (string, bool) {
	switch check {
	case policyMaxValidity:
		if c.NotBefore.IsZero() || c.NotAfter.IsZero() {
			return "", false
		}
		// The Baseline Requirements count both ends: notAfter - notBefore
		// plus one second.
		period := c.NotAfter.Sub(c.NotBefore) + time.Second
		for _, s := range t.schedule {
			if c.NotBefore.Before(s.from) {
				continue
			}
			if period > time.Duration(s.maxDays)*24*time.Hour {
				days := float64(period) / float64(24*time.Hour)
				when := "issued before 2026-03-15"
				if !s.from.IsZero() {
					when = "issued on or after " + s.from.Format(time.DateOnly)
				}
				return fmt.Sprintf("validity of %.1f days exceeds the %d-day maximum for certificates %s", days, s.maxDays, when), true
			}
			return "", false
		}
	case policyWeakKey:
		switch {
		case c.KeyType == "RSA" && c.KeySize > 0 && c.KeySize < 2048:
			return fmt.Sprintf("RSA key of %d bits (at least 2048 required)", c.KeySize), true
		case c.KeyType == "ECDSA" && c.KeySize > 0 && c.KeySize < 256:
			return fmt.Sprintf("ECDSA key of %d bits (at least 256 required)", c.KeySize), true
		}
	case policySHA1:
		if containsFold(c.SignatureAlgorithm, "SHA1") {
			return fmt.Sprintf("signature algorithm %s uses SHA-1", c.SignatureAlgorithm), true
		}
	case policyNoSAN:
		if c.SANDNSCount == 0 && len(c.IPAddresses) == 0 {
			if len(c.DNSNames) > 0 {
				return fmt.Sprintf("no DNS name or IP address in the subjectAltName (only the subject CN %s)", c.DNSNames[0]), true
			}
			return "no DNS name or IP address", true
		}
	case policyIPSAN:
		if len(c.IPAddresses) > 0 {
			return fmt.Sprintf("IP address SAN %s", strings.Join(c.IPAddresses, ", ")), true
		}
	}
	return "", false
}

func (t *policyTest) describe() string {
	return "a failing policy check among " + strings.Join(t.checks, ", ")
}

// containsFold reports whether sub occurs in s, ignoring ASCII case,
// without allocating.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
