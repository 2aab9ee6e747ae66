package cert

import (
	"encoding/hex"
	"slices"

	"github.com/ctwatch/ctwatch/event"
)

// String returns the hash in lower-case hex, the form ctwatch shows to
// people and puts in hits.
func (h Hash) String() string {
	return hex.EncodeToString(h[:])
}

// IsZero reports whether h is the zero value, which this package uses for
// "unknown" (an IssuerSPKIHash without a chain).
func (h Hash) IsZero() bool {
	return h == Hash{}
}

// Info returns the part of c that travels in a hit: hashes in lower-case
// hex, times in UTC (they marshal as RFC 3339). IssuerSPKISHA256 is empty
// when the issuer key is unknown, and DNSNames is never nil, so that the
// JSON form always has a list. The result shares no memory with c.
func (c *Cert) Info() event.CertInfo {
	info := event.CertInfo{
		SHA256:    c.SHA256.String(),
		TBSSHA256: c.TBSHash.String(),
		Precert:   c.Precert,
		DNSNames:  slices.Clone(c.DNSNames),
		Subject:   c.Subject,
		Issuer:    c.Issuer,
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
	}
	if info.DNSNames == nil {
		info.DNSNames = []string{}
	}
	if !c.IssuerSPKIHash.IsZero() {
		info.IssuerSPKISHA256 = c.IssuerSPKIHash.String()
	}
	return info
}
