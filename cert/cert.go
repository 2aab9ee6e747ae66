// Package cert decodes certificates found in CT logs (and in files handed to
// `ctwatch check`) into the one model the rest of ctwatch works with.
//
// The model is deliberately flat and small: rules match on it on every entry
// of every log, and alerting copies parts of it into hits. Everything in it is
// derived from bytes that came from the network, so the decoders treat their
// input as hostile: they return errors, never panic.
package cert

import "time"

// Hash is a SHA-256 digest. It is a value type so that it can key maps and be
// compared with ==.
type Hash [32]byte

// Cert is a decoded certificate or precertificate.
//
// TBSHash is the dedupe key of ctwatch: the SHA-256 of the TBSCertificate with
// the CT poison and SCT-list extensions removed (and, for precertificate log
// entries, with the issuer as the log recorded it), so a precertificate and
// the final certificate issued from it have the same TBSHash.
type Cert struct {
	// SHA256 is the SHA-256 of the DER certificate (for a precertificate
	// entry, of the precertificate as submitted).
	SHA256 Hash
	// TBSHash is the dedupe key described on the type.
	TBSHash Hash
	// Precert reports whether this came from a precertificate.
	Precert bool

	// DNSNames holds the SAN dNSNames and the subject CNs that look like
	// host names, lower-cased, in certificate order, without duplicates.
	DNSNames []string
	// IPAddresses holds the SAN iPAddresses in their textual form.
	IPAddresses []string
	// EmailAddresses holds the SAN rfc822Names.
	EmailAddresses []string
	// SANDNSCount is the number of distinct SAN dNSNames: DNSNames also
	// holds subject CNs, so this is how a policy tells whether the
	// certificate names any host in its subjectAltName at all.
	SANDNSCount int

	// Subject and Issuer are the distinguished names in RFC 4514 form.
	Subject string
	Issuer  string
	// IssuerSPKIHash is the SHA-256 of the issuer's SubjectPublicKeyInfo:
	// for an RFC 6962 precert entry the leaf's issuer_key_hash (which the
	// Merkle tree covers); otherwise from the chain's first certificate, or
	// its second when the first is a precertificate signing certificate.
	// Zero when no chain was available (a lone certificate file).
	IssuerSPKIHash Hash
	// Chain holds the SHA-256 of each chain certificate, issuer first.
	Chain []Hash
	// ChainSPKI holds the SHA-256 of each chain certificate's
	// SubjectPublicKeyInfo, in the order of Chain; zero for a chain
	// certificate that could not be read (or, in a tiled log, resolved).
	ChainSPKI []Hash
	// ChainSubjects holds each chain certificate's subject DN in RFC 4514
	// form, in the order of Chain: feeds match state CAs by name, since a
	// repeat attempt comes with a new key under the same name. "" for a
	// chain certificate that could not be read or resolved.
	ChainSubjects []string

	// IssuerCN, IssuerO, IssuerOU and IssuerC are the attributes of the
	// certificate's issuer DN, for rules that match on them without
	// parsing Issuer.
	IssuerCN []string
	IssuerO  []string
	IssuerOU []string
	IssuerC  []string

	// SignatureAlgorithm names the issuer's signature algorithm the way
	// crypto/x509 does ("SHA256-RSA", "ECDSA-SHA256", "SHA1-RSA", …).
	SignatureAlgorithm string

	NotBefore time.Time
	NotAfter  time.Time

	// KeyType is "RSA", "ECDSA", "Ed25519" or "unknown"; KeySize is the
	// modulus size in bits for RSA, the curve size for ECDSA, 256 for
	// Ed25519 and 0 when unknown.
	KeyType string
	KeySize int
}
