package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ctwatch/ctwatch/configs"
	"github.com/ctwatch/ctwatch/event"
)

// checkHits runs `ctwatch check --json` with no configuration (built-in
// rules only) and returns the exit code and hits.
func checkHits(t *testing.T, args ...string) (int, []event.Hit) {
	t.Helper()
	cleanConfigEnv(t)
	code, out, stderr := ctwatch(t, "", append([]string{"check", "--json"}, args...)...)
	if code == 2 {
		t.Fatalf("check %v: exit 2: %s", args, stderr)
	}
	var hits []event.Hit
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var h event.Hit
		if err := json.Unmarshal([]byte(line), &h); err != nil {
			t.Fatalf("bad hit line %q: %v", line, err)
		}
		hits = append(hits, h)
	}
	return code, hits
}

// cleanConfigEnv keeps the developer's CTWATCH_* variables out of a test
// that relies on the defaults.
func cleanConfigEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "CTWATCH_") {
			t.Setenv(name, "")
			_ = os.Unsetenv(name)
		}
	}
}

func TestCheckHitsEveryFeedCertificate(t *testing.T) {
	wantRule := map[string]string{"interception-cas": "interception-ca", "distrusted-cas": "distrusted-ca"}
	for _, feed := range configs.FeedNames() {
		index, ok := configs.Feed(feed)
		if !ok {
			t.Fatalf("feed %s has no index", feed)
		}
		var f struct {
			Certificates []struct {
				File     string `yaml:"file"`
				Incident string `yaml:"incident"`
			} `yaml:"certificates"`
		}
		if err := yaml.Unmarshal(index, &f); err != nil {
			t.Fatal(err)
		}
		if len(f.Certificates) == 0 {
			t.Fatalf("feed %s is empty", feed)
		}
		for _, c := range f.Certificates {
			t.Run(feed+"/"+c.File, func(t *testing.T) {
				data, ok := configs.FeedCert(feed, c.File)
				if !ok {
					t.Fatalf("no %s", c.File)
				}
				path := filepath.Join(t.TempDir(), c.File)
				if err := os.WriteFile(path, data, 0o600); err != nil {
					t.Fatal(err)
				}
				code, hits := checkHits(t, path)
				if code != 1 {
					t.Fatalf("exit %d, want 1 (a hit)", code)
				}
				found := false
				for _, h := range hits {
					if h.Rule == wantRule[feed] && strings.Contains(h.Reason, c.Incident) {
						found = true
					}
				}
				if !found {
					t.Fatalf("no %s hit naming the incident %q; hits: %+v", wantRule[feed], c.Incident, hits)
				}
			})
		}
	}
}

func TestCheckHitsANewKeyUnderTheQaznetName(t *testing.T) {
	// A fresh root with the 2019 Kazakh root's exact name and a new key,
	// and a leaf it issues: what a repeat attempt looks like.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	name := pkix.Name{CommonName: "Qaznet Trust Network", Country: []string{"KZ"}}
	root := &x509.Certificate{
		SerialNumber: big.NewInt(2024), Subject: name, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	rootCert, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "www.google.com"}, DNSNames: []string{"www.google.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, rootCert, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "leaf.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	code, hits := checkHits(t, path)
	if code != 1 || len(hits) == 0 || hits[0].Rule != "interception-ca" || !strings.Contains(hits[0].Reason, "Qaznet") {
		t.Fatalf("exit %d, hits %+v: want an interception-ca hit by the Qaznet name", code, hits)
	}
}

func TestCheckSystemRootsHitNoFeed(t *testing.T) {
	const bundle = "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(bundle); err != nil {
		t.Skipf("no CA bundle at %s (Debian's ca-certificates package): %v", bundle, err)
	}
	code, hits := checkHits(t, bundle)
	for _, h := range hits {
		if h.Rule == "interception-ca" || h.Rule == "distrusted-ca" {
			t.Errorf("trusted root %q hits %s: %s", h.Cert.Subject, h.Rule, h.Reason)
		}
	}
	if code != 0 || len(hits) != 0 {
		t.Fatalf("exit %d with %d hits; only the built-in feed rules ran, so no root may hit", code, len(hits))
	}
}
