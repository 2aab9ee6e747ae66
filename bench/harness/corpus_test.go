package main

import (
	"bytes"
	"crypto/x509"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// corpusShapes loads the models of testdata/corpus.
func corpusShapes(t *testing.T) []shape {
	t.Helper()
	shapes, err := loadCorpus(filepath.Join("..", "..", "testdata", "corpus", "certs"))
	if err != nil {
		t.Fatal(err)
	}
	return shapes
}

func TestLoadCorpus(t *testing.T) {
	shapes := corpusShapes(t)
	if len(shapes) != 315 {
		t.Errorf("%d corpus certificates, want the 315 of testdata/corpus/SOURCE.md", len(shapes))
	}
	kinds := kindsOf(shapes)
	for _, k := range []keyKind{"rsa2048", "p256"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("key kinds %v lack %s", kinds, k)
		}
	}
	long := 0
	for _, s := range shapes {
		if len(s.dnsNames) >= 100 {
			long++
		}
	}
	if long == 0 {
		t.Error("no model with 100 or more SANs: the long SAN lists are missing")
	}
}

// Every corpus model, issued as a watched and an unwatched entry, as a
// final certificate and as a precertificate, keeps its shape: SAN count, key
// kind and size, validity, subject attributes and copied extensions; and it
// chains to the bench root.
func TestIssueKeepsShape(t *testing.T) {
	shapes := corpusShapes(t)
	ca, err := newBenchCA(kindsOf(shapes)) // RSA 4096 and 3072 keys: seconds
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.root)
	inters := x509.NewCertPool()
	inters.AddCert(ca.inter)
	now := time.Now()
	for i := range shapes {
		s := &shapes[i]
		for _, tc := range []struct {
			watched, precert bool
		}{{false, false}, {true, false}, {false, true}, {true, true}} {
			plan := entryPlan{prefix: "b", watchEvery: 1, domains: benchDomains(3)}
			if !tc.watched {
				plan.watchEvery = 0
			}
			e := plan.spec(i, shapes)
			e.precert = tc.precert
			der, err := ca.issue(e, now)
			if err != nil {
				t.Fatalf("%s: %v", s.file, err)
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatalf("%s: issued certificate does not parse: %v", s.file, err)
			}
			wantSANs := len(s.dnsNames)
			if tc.watched && wantSANs == 0 {
				wantSANs = 1 // a CN-only model gets the watched name as a SAN
			}
			if len(c.DNSNames) != wantSANs {
				t.Errorf("%s: %d DNS SANs, model has %d", s.file, len(c.DNSNames), len(s.dnsNames))
			}
			if len(c.IPAddresses) != len(s.ips) {
				t.Errorf("%s: %d IP SANs, model has %d", s.file, len(c.IPAddresses), len(s.ips))
			}
			if k, _ := kindOf(c.PublicKey); k != s.key {
				t.Errorf("%s: key %s, model's is %s", s.file, k, s.key)
			}
			if got := c.NotAfter.Sub(c.NotBefore); got != s.validity.Truncate(time.Second) && got != s.validity {
				t.Errorf("%s: validity %v, model's is %v", s.file, got, s.validity)
			}
			if !slices.Equal(c.Subject.Organization, s.subject.Organization) || !slices.Equal(c.Subject.Country, s.subject.Country) {
				t.Errorf("%s: subject %v, model's is %v", s.file, c.Subject, s.subject)
			}
			for _, ext := range s.extensions {
				if !hasExt(c, ext.Id.String(), ext.Value) {
					t.Errorf("%s: extension %v of the model is missing or changed", s.file, ext.Id)
				}
			}
			hasPoison := hasExt(c, oidPoison.String(), nil)
			hasSCTs := hasExt(c, oidSCTList.String(), nil)
			if hasPoison != tc.precert {
				t.Errorf("%s: poison extension %v, want %v", s.file, hasPoison, tc.precert)
			}
			if wantSCTs := s.sctList != nil && !tc.precert; hasSCTs != wantSCTs {
				t.Errorf("%s: SCT list %v, want %v", s.file, hasSCTs, wantSCTs)
			}
			if !tc.precert { // Go refuses to verify a certificate with an unknown critical extension
				if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now,
					KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
					t.Errorf("%s: does not chain to the bench root: %v", s.file, err)
				}
			} else if err := c.CheckSignatureFrom(ca.inter); err != nil {
				t.Errorf("%s: precertificate not signed by the intermediate: %v", s.file, err)
			}
		}
	}
}

// hasExt reports whether c has the extension id, with value when value is
// not nil.
func hasExt(c *x509.Certificate, id string, value []byte) bool {
	for _, e := range c.Extensions {
		if e.Id.String() == id {
			return value == nil || bytes.Equal(e.Value, value)
		}
	}
	return false
}

func TestKeyPoolSharesKeysAmongEntries(t *testing.T) {
	p, err := newKeyPool([]keyKind{"p256", "p384"})
	if err != nil {
		t.Fatal(err)
	}
	distinct := map[string]bool{}
	for n := range 100 {
		k, err := p.public("p256", n)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		distinct[string(der)] = true
	}
	if len(distinct) != poolSize("p256") {
		t.Errorf("100 entries used %d distinct P-256 keys, want the pool's %d", len(distinct), poolSize("p256"))
	}
	if _, err := p.public("rsa2048", 0); err == nil || !strings.Contains(err.Error(), "rsa2048") {
		t.Errorf("a kind not in the pool: error %v, want one naming it", err)
	}
}
