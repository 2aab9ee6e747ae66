package cert

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	ctx509 "github.com/google/certificate-transparency-go/x509"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// FromX509 decodes an X.509 certificate as found in an RFC 6962 x509_entry
// or a static-ct-api data tile. chain is the logged chain, issuer first; it
// may be empty, and then IssuerSPKIHash is zero.
//
// Precert is set when the certificate carries the CT poison extension (a
// log should not hold such a certificate as an x509 entry, but if one does
// it is reported for what it is). The result holds no reference to der or
// chain. ChainSPKI and ChainSubjects are read from the chain with a
// structural walk (see setChain for what happens to unreadable ones), and
// SignatureAlgorithm from der. It returns an error when neither crypto/x509
// nor the more lenient certificate-transparency-go parser accepts der (see
// decodeDER), or when the issuer certificate of chain is not even a
// structurally valid certificate. It is safe for concurrent use.
func FromX509(der []byte, chain [][]byte) (*Cert, error) {
	return (*Decoder)(nil).fromX509(der, chain)
}

// fromX509 is FromX509, reading chain certificates through d's cache
// (none when d is nil).
func (d *Decoder) fromX509(der []byte, chain [][]byte) (*Cert, error) {
	c, err := decodeDER(der)
	if err != nil {
		return nil, err
	}
	c.SHA256 = sha256.Sum256(der)
	if err := c.setChain(d, chain, false); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes a lone certificate, such as one read from a file for
// `ctwatch check` (see SplitPEMOrDER for getting der out of a file).
//
// A certificate with the CT poison extension is a precertificate
// (Precert=true). TBSHash ignores the poison and SCT-list extensions, so a
// precertificate file and the file of the final certificate issued from it
// have the same TBSHash, except when the precertificate was signed by a
// Precertificate Signing Certificate (its issuer then differs). There is no
// chain, so IssuerSPKIHash is zero and Chain is nil. It is safe for
// concurrent use.
func Parse(der []byte) (*Cert, error) {
	return FromX509(der, nil)
}

// FromPrecert decodes an RFC 6962 precert_entry or a static-ct-api
// precertificate entry.
//
// tbs is the TBSCertificate from the Merkle leaf: the log has removed the
// poison and, when a Precertificate Signing Certificate was used, rewritten
// the issuer to the real CA. Because the leaf is what the log's tree
// commits to, every field except SHA256 is decoded from tbs (so
// SignatureAlgorithm is the TBS's signature field). precert is the
// submitted precertificate DER from extra_data; it may be nil, and it is
// only hashed (SHA256), never trusted for content. SHA256 is the SHA-256 of
// precert, or of tbs when precert is nil.
//
// chain is the logged precertificate_chain, issuer first. When chain[0] is a
// Precertificate Signing Certificate, the real issuer is chain[1] and
// IssuerSPKIHash comes from it (zero when chain[1] is missing). The result
// holds no reference to its inputs. It is safe for concurrent use.
func FromPrecert(tbs []byte, precert []byte, chain [][]byte) (*Cert, error) {
	return (*Decoder)(nil).fromPrecert(tbs, precert, chain)
}

// fromPrecert is FromPrecert, reading chain certificates through d's
// cache (none when d is nil).
func (d *Decoder) fromPrecert(tbs []byte, precert []byte, chain [][]byte) (*Cert, error) {
	l, err := walkTBS(tbs)
	if err != nil {
		return nil, fmt.Errorf("cert: precertificate: %w", err)
	}
	// The fast decoder reads tbs where it is; only when it is not sure
	// does tbs get the certificate wrapper that crypto/x509 and the
	// lenient parser need.
	c := fastDecodeTBS(tbs, &l)
	if c == nil {
		wrapped, err := wrapTBS(tbs, l.sigAlg)
		if err != nil {
			return nil, fmt.Errorf("cert: precertificate: %w", err)
		}
		if c, err = decodeDER(wrapped); err != nil {
			return nil, err
		}
	}
	c.Precert = true // TBSHash is already right: the wrapper holds tbs as it is
	if precert != nil {
		c.SHA256 = sha256.Sum256(precert)
	} else {
		c.SHA256 = sha256.Sum256(tbs)
	}
	if err := c.setChain(d, chain, true); err != nil {
		return nil, err
	}
	return c, nil
}

// setChain fills Chain, ChainSPKI, ChainSubjects and IssuerSPKIHash. With
// skipPrecertSigner, a Precertificate Signing Certificate at chain[0] is
// passed over for the issuer key.
//
// The issuer certificate (chain[0], or chain[1] after a Precertificate
// Signing Certificate) must be structurally valid. A certificate further up
// that is not is still fingerprinted in Chain, but gets a zero ChainSPKI
// entry and an empty ChainSubjects entry, as does any certificate whose
// subject does not decode: a broken root copy in a logged chain says nothing
// about the entry, and rejecting the entry for it would hide the leaf.
func (c *Cert) setChain(d *Decoder, chain [][]byte, skipPrecertSigner bool) error {
	n := len(chain)
	if n == 0 {
		return nil
	}
	hashes := make([]Hash, 2*n) // one allocation for both hash lists
	c.Chain, c.ChainSPKI = hashes[:n:n], hashes[n:]
	c.ChainSubjects = make([]string, n)
	issuer := 0
	for i, der := range chain {
		cc := d.chainCert(der)
		c.Chain[i] = cc.hash
		if cc.err != nil {
			if i == issuer {
				return fmt.Errorf("cert: chain certificate %d: %w", i, cc.err)
			}
			continue
		}
		c.ChainSPKI[i] = cc.spkiHash
		c.ChainSubjects[i] = cc.subject
		if i != issuer {
			continue
		}
		if i == 0 && skipPrecertSigner && cc.precertSigning {
			issuer = 1 // zero IssuerSPKIHash when chain[1] is missing
			continue
		}
		c.IssuerSPKIHash = cc.spkiHash
	}
	return nil
}

// nameString renders a DER Name the way crypto/x509's pkix.Name.String
// does, decoding nothing but the name itself. It returns "" when der is not
// a valid RDNSequence.
//
// It runs for every chain certificate of every entry, so the common names
// are rendered by fastNameString; the others by nameStringSlow.
func nameString(der []byte) string {
	if s, ok := fastNameString(der); ok {
		return s
	}
	return nameStringSlow(der)
}

// nameStringSlow is nameString through encoding/asn1 and pkix.
func nameStringSlow(der []byte) string {
	var rdns pkix.RDNSequence
	rest, err := asn1.Unmarshal(der, &rdns)
	if err != nil || len(rest) != 0 {
		return ""
	}
	var name pkix.Name
	name.FillFromRDNSequence(&rdns)
	return name.String()
}

// decodeDER decodes the fields of a DER certificate shared by all entry
// kinds: everything but SHA256, the chain and, for precertificate entries,
// Precert.
//
// The fast decoder (fast.go) is tried first; it handles the common shapes
// of CT certificates and gives exactly what crypto/x509 would. What it is
// not sure about goes to crypto/x509, and certificates crypto/x509 rejects
// (negative serial numbers, odd encodings and other sins of real CAs) go to
// the lenient certificate-transparency-go parser.
func decodeDER(der []byte) (*Cert, error) {
	if c := fastDecodeDER(der); c != nil {
		return c, nil
	}
	return decodeDERSlow(der)
}

// decodeDERSlow is decodeDER without the fast decoder: crypto/x509, then
// the lenient parser. The fast decoder's tests hold it to this function's
// results.
func decodeDERSlow(der []byte) (*Cert, error) {
	std, stdErr := x509.ParseCertificate(der)
	if stdErr == nil {
		f := stdFields(std)
		return f.cert(), nil
	}
	lax, laxErr := parseLenient(der)
	if laxErr != nil {
		return nil, fmt.Errorf("cert: %w (lenient parser: %w)", stdErr, laxErr)
	}
	f := lenientFields(lax)
	return f.cert(), nil
}

// parseLenient runs the certificate-transparency-go parser, accepting its
// non-fatal errors. That parser is old reflection-based code; a panic in it
// on hostile input is turned into an error.
func parseLenient(der []byte) (cert *ctx509.Certificate, err error) {
	defer func() {
		if r := recover(); r != nil {
			cert, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()
	cert, err = ctx509.ParseCertificate(der)
	if ctx509.IsFatal(err) {
		return nil, err
	}
	if cert == nil {
		return nil, errors.New("no certificate")
	}
	return cert, nil
}

// fields is what this package takes from either parser's certificate type.
type fields struct {
	subject, issuer     string
	notBefore, notAfter time.Time
	// dnsNames and emails are owned by fields (the parsed certificate they
	// came from is dropped), so they can be reused in place.
	dnsNames, emails []string
	commonNames      []string
	ips              []net.IP
	publicKey        any
	rawTBS           []byte
	poisoned         bool
	// The issuer DN attributes; issuerO, issuerOU and issuerC alias the
	// parsed certificate's slices, which nothing else holds.
	issuerCN, issuerO, issuerOU, issuerC []string
	// sigAlg is the signature algorithm's name, "" when the parser did not
	// know it (cert then falls back to the OID).
	sigAlg string
}

// commonNames collects the string values of the CN attributes among n
// attributes read through at. It serves the pkix types of both parsers,
// which are alike but distinct.
func commonNames(n int, at func(i int) (oid []int, value any)) []string {
	var out []string
	for i := range n {
		if oid, v := at(i); isCommonName(oid) {
			if cn, ok := v.(string); ok {
				out = append(out, cn)
			}
		}
	}
	return out
}

// stdFields takes the fields of a crypto/x509 certificate.
func stdFields(x *x509.Certificate) fields {
	f := fields{
		subject: x.Subject.String(), issuer: x.Issuer.String(),
		notBefore: x.NotBefore, notAfter: x.NotAfter,
		dnsNames: x.DNSNames, emails: x.EmailAddresses, ips: x.IPAddresses,
		publicKey: x.PublicKey, rawTBS: x.RawTBSCertificate,
		issuerO: x.Issuer.Organization, issuerOU: x.Issuer.OrganizationalUnit,
		issuerC: x.Issuer.Country,
	}
	f.issuerCN = commonNames(len(x.Issuer.Names), func(i int) ([]int, any) { return x.Issuer.Names[i].Type, x.Issuer.Names[i].Value })
	f.commonNames = commonNames(len(x.Subject.Names), func(i int) ([]int, any) { return x.Subject.Names[i].Type, x.Subject.Names[i].Value })
	for _, e := range x.Extensions {
		f.poisoned = f.poisoned || isPoison(e.Id)
	}
	if x.SignatureAlgorithm != x509.UnknownSignatureAlgorithm {
		f.sigAlg = x.SignatureAlgorithm.String()
	}
	return f
}

// lenientFields takes the fields of a certificate-transparency-go
// certificate.
func lenientFields(x *ctx509.Certificate) fields {
	f := fields{
		subject: x.Subject.String(), issuer: x.Issuer.String(),
		notBefore: x.NotBefore, notAfter: x.NotAfter,
		dnsNames: x.DNSNames, emails: x.EmailAddresses, ips: x.IPAddresses,
		publicKey: x.PublicKey, rawTBS: x.RawTBSCertificate,
		issuerO: x.Issuer.Organization, issuerOU: x.Issuer.OrganizationalUnit,
		issuerC: x.Issuer.Country,
	}
	f.issuerCN = commonNames(len(x.Issuer.Names), func(i int) ([]int, any) { return x.Issuer.Names[i].Type, x.Issuer.Names[i].Value })
	f.commonNames = commonNames(len(x.Subject.Names), func(i int) ([]int, any) { return x.Subject.Names[i].Type, x.Subject.Names[i].Value })
	for _, e := range x.Extensions {
		f.poisoned = f.poisoned || isPoison(e.Id)
	}
	if x.SignatureAlgorithm != ctx509.UnknownSignatureAlgorithm {
		f.sigAlg = x.SignatureAlgorithm.String()
	}
	return f
}

// cert builds a Cert from the parsed fields; SHA256 and the chain are left
// to the caller.
func (f *fields) cert() *Cert {
	c := &Cert{
		TBSHash:        tbsHashOrRaw(f.rawTBS),
		Precert:        f.poisoned,
		DNSNames:       normalizeNames(f.dnsNames),
		IPAddresses:    ipStrings(f.ips),
		EmailAddresses: f.emails,
		Subject:        f.subject,
		Issuer:         f.issuer,
		NotBefore:      f.notBefore.UTC(),
		NotAfter:       f.notAfter.UTC(),
		IssuerCN:       f.issuerCN,
		IssuerO:        f.issuerO,
		IssuerOU:       f.issuerOU,
		IssuerC:        f.issuerC,

		SignatureAlgorithm: f.sigAlg,
	}
	if c.SignatureAlgorithm == "" {
		c.SignatureAlgorithm = sigAlgOID(f.rawTBS)
	}
	c.SANDNSCount = len(c.DNSNames)
	for _, cn := range f.commonNames {
		c.DNSNames = appendCommonName(c.DNSNames, cn)
	}
	c.KeyType, c.KeySize = keyInfo(f.publicKey)
	return c
}

// sigAlgOID names the signature algorithm of a TBSCertificate that neither
// parser knows by its dotted OID, so that rules can still tell such
// algorithms apart; "unknown" when even the OID cannot be read.
func sigAlgOID(tbs []byte) string {
	l, err := walkTBS(tbs)
	if err != nil {
		return "unknown"
	}
	alg := cryptobyte.String(l.sigAlg)
	var seq cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !alg.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1ObjectIdentifier(&oid) {
		return "unknown"
	}
	return oid.String()
}

// isCommonName reports whether an attribute type is 2.5.4.3 (commonName).
// Both parsers' ObjectIdentifier types are []int underneath.
func isCommonName[O ~[]int](oid O) bool {
	return slices.Equal([]int(oid), []int{2, 5, 4, 3})
}

// isPoison reports whether an extension is the CT precertificate poison,
// 1.3.6.1.4.1.11129.2.4.3.
func isPoison[O ~[]int](oid O) bool {
	return slices.Equal([]int(oid), []int{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3})
}

// tbsHashOrRaw is HashTBS, except that a TBS the structural walk cannot
// follow (only the lenient parser accepted it) is hashed as it is: such a
// certificate still gets a stable key, it just will not pair with its
// precertificate.
func tbsHashOrRaw(tbs []byte) Hash {
	if h, err := HashTBS(tbs); err == nil {
		return h
	}
	return sha256.Sum256(tbs)
}

// normalizeNames lower-cases names and drops repeats, keeping the first
// occurrence. It works in place: the caller must own the slice.
func normalizeNames(names []string) []string {
	for i, n := range names {
		names[i] = strings.ToLower(n)
	}
	return dedupNames(names)
}

// dedupNames drops repeated names, keeping the first occurrence, in place.
// It is normalizeNames for names already lower-cased (the fast decoder
// lower-cases while it copies them).
//
// Repeats are found with a small open-addressing table rather than a map:
// on certificates with a hundred or more SANs, common in CT, a map added
// about a tenth to the time and a fifth to the memory of BenchmarkParse.
// The hash is seeded afresh on every call, so hostile names cannot be
// chosen to collide and make the probing quadratic; a collision only costs
// a string comparison, never a wrong answer.
func dedupNames(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	size := 4
	for size < 2*len(names) {
		size <<= 1
	}
	var stack [512]int32 // slot = index in out + 1; 0 is empty
	var slots []int32
	if size <= len(stack) {
		slots = stack[:size]
	} else {
		slots = make([]int32, size)
	}
	mask := uint64(size - 1)
	seed := maphash.MakeSeed()
	out := names[:0]
	for _, n := range names {
		for i := maphash.String(seed, n) & mask; ; i = (i + 1) & mask {
			if slots[i] == 0 {
				out = append(out, n)
				slots[i] = int32(len(out))
				break
			}
			if out[slots[i]-1] == n {
				break
			}
		}
	}
	return out
}

// appendCommonName adds a subject common name to names when it looks like a
// host name (has a dot, no spaces, is not an IP address) and is not already
// there.
func appendCommonName(names []string, cn string) []string {
	if !strings.Contains(cn, ".") || strings.ContainsAny(cn, " \t") {
		return names
	}
	if mayBeIPAddress(cn) {
		if _, err := netip.ParseAddr(cn); err == nil {
			return names
		}
	}
	cn = strings.ToLower(cn)
	if containsString(names, cn) {
		return names
	}
	return append(names, cn)
}

// mayBeIPAddress reports whether netip.ParseAddr could accept s: an IPv6
// address has a colon, an IPv4 address only digits and dots. It spares the
// common case, a host name, the error netip.ParseAddr would allocate.
func mayBeIPAddress(s string) bool {
	if strings.IndexByte(s, ':') >= 0 {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ipStrings renders SAN IP addresses; nil when there are none.
func ipStrings(ips []net.IP) []string {
	if len(ips) == 0 {
		return nil
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// keyInfo names the public key type and its size in bits: the modulus for
// RSA, the curve for ECDSA, and 256 for Ed25519 keys.
func keyInfo(pub any) (string, int) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N == nil {
			return "RSA", 0
		}
		return "RSA", k.N.BitLen()
	case *ecdsa.PublicKey:
		if k.Curve == nil {
			return "ECDSA", 0
		}
		return "ECDSA", k.Curve.Params().BitSize
	case ed25519.PublicKey:
		return "Ed25519", 256
	default:
		return "unknown", 0
	}
}
