package daemon_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/testca"
)

// TestDaemonNewIssuerPersists checks that a new issuer key hits once, and
// that after a restart on the same data directory the same key does not hit
// again while a key never seen still does.
func TestDaemonNewIssuerPersists(t *testing.T) {
	s := newSetup(t)
	rules := "rules:\n  - name: new-ca\n    severity: medium\n    match: {new_issuer: true}\n"
	if err := os.WriteFile(filepath.Join(s.dir, "rules.yaml"), []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	keyOf := func(ca *testca.CA) string {
		sum := sha256.Sum256(ca.Intermediate().RawSubjectPublicKeyInfo)
		return hex.EncodeToString(sum[:])
	}
	newCA := func(name string) (*testca.CA, string) {
		ca, err := testca.New(name)
		if err != nil {
			t.Fatal(err)
		}
		return ca, keyOf(ca)
	}
	addFrom := func(ca *testca.CA, n int) {
		for i := range n {
			der, err := ca.Leaf(fmt.Sprintf("h%d-%d.example", s.log.Added(), i))
			if err != nil {
				t.Fatal(err)
			}
			s.log.AddX509(der, ca.Chain())
		}
	}
	first, firstKey := s.ca, keyOf(s.ca)
	second, secondKey := newCA("second")
	third, thirdKey := newCA("third")
	jsonl := filepath.Join(s.dir, "hits.jsonl")
	byKey := func(hits []event.Hit) map[string]int {
		m := map[string]int{}
		for _, h := range hits {
			if h.Rule != "new-ca" {
				t.Errorf("hit of rule %q, want new-ca", h.Rule)
			}
			m[h.Cert.IssuerSPKISHA256]++
		}
		return m
	}

	// Five certificates of the first CA, then one of the second: its hit
	// arrives after every earlier entry was matched.
	addFrom(first, 5)
	addFrom(second, 1)
	s.log.Publish()
	stop := runDaemon(t, s.config(t))
	hits := awaitFile(t, jsonl, "second CA's hit", func(h []event.Hit) bool { return byKey(h)[secondKey] > 0 })
	if err := stop(); err != nil {
		t.Fatalf("daemon returned %v after cancel", err)
	}
	if got := byKey(hits); len(got) != 2 || got[firstKey] != 1 || got[secondKey] != 1 {
		t.Fatalf("hits by issuer key = %v, want one each for %s and %s", got, firstKey[:12], secondKey[:12])
	}

	// After a restart, more certificates of both known CAs, then one of a
	// third: only the third is new.
	addFrom(first, 3)
	addFrom(second, 3)
	addFrom(third, 1)
	s.log.Publish()
	stop = runDaemon(t, s.config(t))
	hits = awaitFile(t, jsonl, "third CA's hit", func(h []event.Hit) bool { return byKey(h)[thirdKey] > 0 })
	if err := stop(); err != nil {
		t.Fatalf("daemon returned %v after cancel", err)
	}
	if got := byKey(hits); len(got) != 3 || got[firstKey] != 1 || got[secondKey] != 1 || got[thirdKey] != 1 {
		t.Errorf("hits by issuer key after restart = %v, want one each for %s, %s and %s", got, firstKey[:12], secondKey[:12], thirdKey[:12])
	}
}
