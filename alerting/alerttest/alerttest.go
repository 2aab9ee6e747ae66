// Package alerttest holds what the tests of the alerting sinks share: a
// sample hit with every field set, hits built from the real certificates
// of the repository's corpus, and the check of a Retry-After verdict.
//
// It exists so that every sink is tested against the same inputs (a
// difference between two sinks' output is then a difference in the sinks,
// not in their fixtures) and so that no test package keeps its own copy.
// It is for tests only: its functions take a [testing.TB] and fail the
// test on error. Nothing in it keeps state; every function is safe for
// concurrent use and returns fresh values the caller may change.
package alerttest

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/cert"
	"github.com/ctwatch/ctwatch/event"
)

// SampleHit returns a new hit with every field set, the one the email and
// exec tests render: rule "our-names", severity high, four DNS names, a
// precertificate logged at index 42 of "Google Argon", valid from
// 2026-01-02T03:04:05Z to 2026-04-02T03:04:05Z (UTC). Tests compare their
// output with these values written out, so they are part of the contract:
// change them and those tests change with them.
func SampleHit() *event.Hit {
	return &event.Hit{
		ID:       "0123456789abcdef0123456789abcdef",
		Rule:     "our-names",
		Severity: event.SeverityHigh,
		Reason:   "name www.example.com matches *.example.com",
		Tags:     []string{"kz", "prod"},
		Log:      &event.LogRef{Name: "Google Argon", URL: "https://ct.example/argon/", Index: 42},
		Cert: event.CertInfo{
			SHA256:    strings.Repeat("ab", 32),
			TBSSHA256: strings.Repeat("cd", 32),
			Precert:   true,
			DNSNames:  []string{"www.example.com", "example.com", "mail.example.com", "api.example.com"},
			Subject:   "CN=www.example.com",
			Issuer:    "CN=R11,O=Let's Encrypt,C=US",
			NotBefore: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			NotAfter:  time.Date(2026, 4, 2, 3, 4, 5, 0, time.UTC),
		},
	}
}

// CorpusHit reads file (a name such as "1210e877747de0ef.pem") from
// testdata/corpus/certs at the repository root and builds a hit from it
// the way the monitor does: cert.Parse, then Info. It returns the hit, the
// certificate as crypto/x509 parses it (an independent view for the test
// to compare against) and its DER. The hit's other fields are fixed: rule
// "google-brand", severity high, tags "brand" and "kz", index 123456789
// of "Google 'Argon2026h1' log". A test that needs others sets them on
// the returned hit. Any failure to read or parse fails the test at once.
func CorpusHit(t testing.TB, file string) (*event.Hit, *x509.Certificate, []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "testdata", "corpus", "certs", file))
	if err != nil {
		t.Fatal(err)
	}
	ders, err := cert.SplitPEMOrDER(data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cert.Parse(ders[0])
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(ders[0])
	if err != nil {
		t.Fatal(err)
	}
	return &event.Hit{
		ID:       "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
		Rule:     "google-brand",
		Severity: event.SeverityHigh,
		Reason:   `name "google.com" is under watched domain google.com`,
		Tags:     []string{"brand", "kz"},
		Log:      &event.LogRef{Name: "Google 'Argon2026h1' log", URL: "https://ct.googleapis.com/logs/us1/argon2026h1/", Index: 123456789},
		Cert:     c.Info(),
	}, x, ders[0]
}

// repoRoot is the nearest directory at or above the working directory
// that holds go.mod. go test runs a test in its package's directory, so
// this finds the module root from any package, however deep.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// CheckRetryAfter reports, as a test error, an err whose Retry-After
// verdict is not want: for want > 0, err must wrap an
// [alerting.RetryAfterError] of exactly that delay (the Dispatcher waits
// what the receiver asked); for want == 0 it must wrap none (the
// Dispatcher's own backoff applies). A nil err wraps none.
func CheckRetryAfter(t testing.TB, err error, want time.Duration) {
	t.Helper()
	ra, ok := errors.AsType[*alerting.RetryAfterError](err)
	switch {
	case want > 0 && (!ok || ra.After != want):
		t.Errorf("error %v does not wrap RetryAfterError{%s}", err, want)
	case want == 0 && ok:
		t.Errorf("error %v wraps a RetryAfterError", err)
	}
}
