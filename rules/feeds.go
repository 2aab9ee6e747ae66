package rules

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ctwatch/ctwatch/cert"
)

// Data supplies the built-in data that rules refer to by name: CA feeds
// (`feed: interception-cas`) and named issuer sets
// (`allowed_issuers: {owners: [lets-encrypt]}`). Package configs provides
// it for the program; tests pass fixtures. It is read only while rules are
// compiled, never while they match, so matching does no I/O.
//
// Feed returns a YAML index
// `certificates: [{file, subject, cert_sha256, spki_sha256, incident, source}]`;
// IssuerSet returns YAML `{owner, name, issuers: [{subject, cert_sha256,
// spki_sha256, source}]}`. Both report false for an unknown name. The name
// lists are used in error messages.
type Data interface {
	Feed(name string) ([]byte, bool)
	FeedNames() []string
	IssuerSet(owner string) ([]byte, bool)
	IssuerOwners() []string
}

// Option changes how rules are compiled.
type Option func(*options)

type options struct {
	data    Data
	extra   []Source
	issuers IssuerMemory // for new_issuer; nil when not given
}

// WithData makes the feeds and issuer sets of d available to the rules. Without
// it no feed or owner is known, and rules naming one are errors.
func WithData(d Data) Option {
	return func(o *options) { o.data = d }
}

// WithSources compiles srcs before the files given to Load or Compile:
// how built-in rules join a user's. Their rule names share one namespace
// with the user's, so a duplicate name is reported like any other.
func WithSources(srcs ...Source) Option {
	return func(o *options) { o.extra = append(o.extra, srcs...) }
}

// parseHash reads a SHA-256 written as 64 hex digits, in either case, with
// or without the colons OpenSSL puts between bytes.
func parseHash(s string) (cert.Hash, error) {
	var h cert.Hash
	clean := strings.ReplaceAll(strings.TrimSpace(s), ":", "")
	if len(clean) != 2*len(h) {
		return h, fmt.Errorf("%q is not a SHA-256 (want 64 hex digits)", s)
	}
	if _, err := hex.Decode(h[:], []byte(clean)); err != nil {
		return h, fmt.Errorf("%q is not a SHA-256 (want 64 hex digits)", s)
	}
	return h, nil
}

// feedCert is one certificate of a feed, as reasons name it.
type feedCert struct {
	subject  string
	canon    string // canonicalDN(subject)
	incident string
}

// feed is a compiled CA feed: lookups by certificate hash, key hash and
// name (first by CN hash, then by whole canonical name).
type feed struct {
	name   string
	byCert map[cert.Hash]*feedCert
	bySPKI map[cert.Hash]*feedCert
	byCN   map[uint64][]*feedCert
}

// feedIndex is the YAML shape of a feed.
type feedIndex struct {
	Certs []struct {
		File       string `yaml:"file"`
		Subject    string `yaml:"subject"`
		CertSHA256 string `yaml:"cert_sha256"`
		SPKISHA256 string `yaml:"spki_sha256"`
		Incident   string `yaml:"incident"`
		Source     string `yaml:"source"`
	} `yaml:"certificates"`
}

// compileFeed parses a feed index. Every entry needs a subject and at least
// one hash, so that a feed cannot silently match nothing.
func compileFeed(name string, data []byte) (*feed, error) {
	var idx feedIndex
	if err := yaml.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if len(idx.Certs) == 0 {
		return nil, errors.New("no certificates")
	}
	f := &feed{
		name:   name,
		byCert: make(map[cert.Hash]*feedCert),
		bySPKI: make(map[cert.Hash]*feedCert),
		byCN:   make(map[uint64][]*feedCert),
	}
	for i, e := range idx.Certs {
		if strings.TrimSpace(e.Subject) == "" {
			return nil, fmt.Errorf("certificate %d (%s) has no subject", i+1, e.File)
		}
		fc := &feedCert{subject: e.Subject, canon: canonicalDN(e.Subject), incident: e.Incident}
		if fc.incident == "" {
			fc.incident = "not recorded"
		}
		if e.CertSHA256 == "" && e.SPKISHA256 == "" {
			return nil, fmt.Errorf("certificate %d (%s) has neither cert_sha256 nor spki_sha256", i+1, e.File)
		}
		if e.CertSHA256 != "" {
			h, err := parseHash(e.CertSHA256)
			if err != nil {
				return nil, fmt.Errorf("certificate %d (%s): cert_sha256: %w", i+1, e.File, err)
			}
			if _, dup := f.byCert[h]; !dup {
				f.byCert[h] = fc
			}
		}
		if e.SPKISHA256 != "" {
			h, err := parseHash(e.SPKISHA256)
			if err != nil {
				return nil, fmt.Errorf("certificate %d (%s): spki_sha256: %w", i+1, e.File, err)
			}
			if _, dup := f.bySPKI[h]; !dup {
				f.bySPKI[h] = fc
			}
		}
		k := cnKey(e.Subject)
		f.byCN[k] = append(f.byCN[k], fc)
	}
	return f, nil
}

// byName returns the feed certificate whose subject equals dn, or nil. It
// allocates only when dn's CN is that of a feed certificate.
func (f *feed) byName(dn string) *feedCert {
	if dn == "" {
		return nil
	}
	cands := f.byCN[cnKey(dn)]
	if len(cands) == 0 {
		return nil
	}
	canon := canonicalDN(dn)
	for _, fc := range cands {
		if fc.canon == canon {
			return fc
		}
	}
	return nil
}

// feedMatcher holds when a certificate, its chain or its issuer is in a
// feed, by certificate hash, by key hash or by subject name.
type feedMatcher struct {
	f *feed
}

func (m feedMatcher) hit(where string, fc *feedCert, by string) string {
	return fmt.Sprintf("%s is %s certificate %q (matched by %s; incident: %s)", where, m.f.name, fc.subject, by, fc.incident)
}

func (m feedMatcher) match(c *cert.Cert) (string, bool) {
	f := m.f
	if fc := f.byCert[c.SHA256]; fc != nil && !c.SHA256.IsZero() {
		return m.hit(fmt.Sprintf("the certificate itself (SHA-256 %s)", c.SHA256), fc, "certificate"), true
	}
	for i, h := range c.Chain {
		if fc := f.byCert[h]; fc != nil && !h.IsZero() {
			return m.hit(fmt.Sprintf("chain certificate %d (SHA-256 %s)", i+1, h), fc, "certificate"), true
		}
	}
	if fc := f.bySPKI[c.IssuerSPKIHash]; fc != nil && !c.IssuerSPKIHash.IsZero() {
		return m.hit(fmt.Sprintf("the issuer key (SPKI SHA-256 %s)", c.IssuerSPKIHash), fc, "key"), true
	}
	for i, h := range c.ChainSPKI {
		if fc := f.bySPKI[h]; fc != nil && !h.IsZero() {
			return m.hit(fmt.Sprintf("the key of chain certificate %d (SPKI SHA-256 %s)", i+1, h), fc, "key"), true
		}
	}
	// chain is 0 for the leaf's own names, else the 1-based chain position,
	// so that the label is formatted only for a hit.
	byName := func(what string, chain int, dn string) (string, bool) {
		fc := f.byName(dn)
		if fc == nil {
			return "", false
		}
		if chain > 0 {
			what = fmt.Sprintf("chain certificate %d subject DN", chain)
		}
		return fmt.Sprintf("%s %q has the name of %s certificate %q (matched by name: the same name, possibly under a new key; incident: %s)",
			what, dn, f.name, fc.subject, fc.incident), true
	}
	if r, ok := byName("issuer DN", 0, c.Issuer); ok {
		return r, true
	}
	for i, s := range c.ChainSubjects {
		if r, ok := byName("", i+1, s); ok {
			return r, true
		}
	}
	return byName("subject DN", 0, c.Subject)
}

func (m feedMatcher) describe() string {
	return fmt.Sprintf("no certificate, key or name in the chain is in feed %s", m.f.name)
}

// issuerSet is the YAML shape of a named issuer set.
type issuerSet struct {
	Owner   string `yaml:"owner"`
	Name    string `yaml:"name"`
	Issuers []struct {
		Subject    string `yaml:"subject"`
		CertSHA256 string `yaml:"cert_sha256"`
		SPKISHA256 string `yaml:"spki_sha256"`
		Source     string `yaml:"source"`
	} `yaml:"issuers"`
}

// allowedIssuers holds when a certificate's issuer is not on a list: an
// issuer key (SPKI hash), an issuer certificate (chain[0] hash), or a
// member of a named owner's set. The values of the maps say which entry of
// the rule allowed the issuer ("lets-encrypt", "listed").
type allowedIssuers struct {
	spki  map[cert.Hash]string
	certs map[cert.Hash]string
	// names maps canonical subject DNs of owner sets to their owner; used
	// only when a certificate comes without any issuer key or chain (a
	// lone file given to `ctwatch check`), where the name is all there is.
	names map[string]string
	// summary lists the allowed entries for reasons.
	summary string
}

// compileIssuerSet adds the members of an owner's set to a.
func (a *allowedIssuers) addSet(owner string, data []byte) error {
	var set issuerSet
	if err := yaml.Unmarshal(data, &set); err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	if len(set.Issuers) == 0 {
		return errors.New("no issuers")
	}
	for i, is := range set.Issuers {
		if is.CertSHA256 != "" {
			h, err := parseHash(is.CertSHA256)
			if err != nil {
				return fmt.Errorf("issuer %d: cert_sha256: %w", i+1, err)
			}
			a.certs[h] = owner
		}
		if is.SPKISHA256 != "" {
			h, err := parseHash(is.SPKISHA256)
			if err != nil {
				return fmt.Errorf("issuer %d: spki_sha256: %w", i+1, err)
			}
			a.spki[h] = owner
		}
		if is.Subject != "" {
			a.names[canonicalDN(is.Subject)] = owner
		}
	}
	return nil
}

func (a *allowedIssuers) match(c *cert.Cert) (string, bool) {
	var first cert.Hash
	if len(c.Chain) > 0 {
		first = c.Chain[0]
	}
	switch {
	case !c.IssuerSPKIHash.IsZero():
		if _, ok := a.spki[c.IssuerSPKIHash]; ok {
			return "", false
		}
		if _, ok := a.certs[first]; ok && !first.IsZero() {
			return "", false
		}
		return fmt.Sprintf("issuer %q (SPKI SHA-256 %s) is not an allowed issuer (%s)", c.Issuer, c.IssuerSPKIHash, a.summary), true
	case !first.IsZero():
		if _, ok := a.certs[first]; ok {
			return "", false
		}
		if len(c.ChainSPKI) > 0 {
			if _, ok := a.spki[c.ChainSPKI[0]]; ok && !c.ChainSPKI[0].IsZero() {
				return "", false
			}
		}
		return fmt.Sprintf("issuer %q (certificate SHA-256 %s) is not an allowed issuer (%s)", c.Issuer, first, a.summary), true
	default:
		if _, ok := a.names[canonicalDN(c.Issuer)]; ok {
			return "", false
		}
		return fmt.Sprintf("issuer %q is not an allowed issuer (%s; no issuer key or chain came with the certificate, so it was judged by name)", c.Issuer, a.summary), true
	}
}

func (a *allowedIssuers) describe() string {
	return fmt.Sprintf("the issuer is allowed (%s)", a.summary)
}

// summarise describes the allowed entries: owners by name, hashes by count.
func summarise(owners []string, nspki, ncert int) string {
	parts := slices.Clone(owners)
	if nspki > 0 {
		parts = append(parts, plural(nspki, "SPKI hash", "SPKI hashes"))
	}
	if ncert > 0 {
		parts = append(parts, plural(ncert, "certificate hash", "certificate hashes"))
	}
	return "allowed: " + strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
