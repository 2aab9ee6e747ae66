package cert

import (
	"crypto/x509"
	"strings"
	"testing"
)

// FuzzFastDecodeMatchesX509 holds the fast decoder to its contract on any
// input, read both as a certificate and as a precertificate entry's
// TBSCertificate: when it answers, crypto/x509 accepts the certificate and
// the Cert is the one of decodeDER's crypto/x509 path. It must never panic.
//
// It is seeded with the whole corpus and the TBS of each certificate.
// Minimising the 6 KB certificates takes long; a short run wants
// -fuzzminimizetime=5s.
func FuzzFastDecodeMatchesX509(f *testing.F) {
	for _, der := range corpusDERs(f) {
		f.Add(der)
		if tbs, err := certTBS(der); err == nil {
			f.Add(tbs)
		}
	}
	_, _, precert, inter, lenient := fuzzSeeds(f)
	for _, seed := range [][]byte{precert, inter, lenient, nil, {0x30, 0x00}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		if got := fastDecodeDER(der); got != nil {
			if _, err := x509.ParseCertificate(der); err != nil {
				t.Fatalf("the fast decoder accepted a certificate crypto/x509 rejects: %v", err)
			}
			want, err := decodeDERSlow(der)
			if err != nil {
				t.Fatalf("crypto/x509 path: %v", err)
			}
			if d := certDiff(got, want); len(d) > 0 {
				t.Fatalf("fast decoder differs from the crypto/x509 path:\n%s", strings.Join(d, "\n"))
			}
		}
		l, err := walkTBS(der)
		if err != nil {
			return
		}
		got := fastDecodeTBS(der, &l)
		if got == nil {
			return
		}
		wrapped, err := wrapTBS(der, l.sigAlg)
		if err != nil {
			t.Fatalf("wrapTBS: %v", err)
		}
		if _, err := x509.ParseCertificate(wrapped); err != nil {
			t.Fatalf("the fast decoder accepted a TBS crypto/x509 rejects: %v", err)
		}
		want, err := decodeDERSlow(wrapped)
		if err != nil {
			t.Fatalf("crypto/x509 path: %v", err)
		}
		if d := certDiff(got, want); len(d) > 0 {
			t.Fatalf("fast decoder differs from the crypto/x509 path on a TBS:\n%s", strings.Join(d, "\n"))
		}
	})
}

// FuzzFastNameString holds fastNameString, which renders chain subjects, to
// encoding/asn1 and pkix on any input.
func FuzzFastNameString(f *testing.F) {
	for _, der := range corpusDERs(f)[:40] {
		tbs, err := certTBS(der)
		if err != nil {
			f.Fatal(err)
		}
		l, err := walkTBS(tbs)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(l.subject)
		f.Add(l.issuer)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		got, ok := fastNameString(der)
		if !ok {
			return
		}
		if want := nameStringSlow(der); got != want {
			t.Fatalf("fastNameString = %q, encoding/asn1 and pkix give %q", got, want)
		}
	})
}
