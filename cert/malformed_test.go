package cert

import (
	"bytes"
	"testing"
)

// TestDecodeRFC6962EntryMalformed feeds broken entries; each must be an
// error, never a panic or a certificate.
func TestDecodeRFC6962EntryMalformed(t *testing.T) {
	ca := newCA(t, "Test Issuing CA", nil, false)
	key := newKey(t)
	der := issue(t, leafTemplate("broken.example"), key.Public(), ca)
	precert := issue(t, withExtensions(leafTemplate("broken.example"), poisonExt()), key.Public(), ca)
	tbs := stdParse(t, der).RawTBSCertificate
	caKey := sum(ca.cert.RawSubjectPublicKeyInfo)

	leaf, extra := x509Leaf(5, der), chainExtra(ca.der)
	pLeaf, pExtra := precertLeaf(5, caKey, tbs), precertExtra(precert, ca.der)
	// The test premise: the unbroken entries decode.
	for _, e := range [][2][]byte{{leaf, extra}, {pLeaf, pExtra}} {
		if _, _, err := DecodeRFC6962Entry(e[0], e[1]); err != nil {
			t.Fatalf("valid entry: %v", err)
		}
	}
	// edit returns a copy of b with f applied.
	edit := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }

	tests := []struct {
		name        string
		leaf, extra []byte
	}{
		{"empty leaf", nil, extra},
		{"trailing byte after leaf", append(bytes.Clone(leaf), 0), extra},
		{"version v2", edit(leaf, func(b []byte) []byte { b[0] = 1; return b }), extra},
		{"unknown leaf type", edit(leaf, func(b []byte) []byte { b[1] = 1; return b }), extra},
		{"unknown entry type", edit(leaf, func(b []byte) []byte { b[11] = 2; return b }), extra},
		{"certificate length beyond data", edit(leaf, func(b []byte) []byte { b[12], b[13], b[14] = 0xff, 0xff, 0xff; return b }), extra},
		{"extensions length beyond data", edit(leaf, func(b []byte) []byte { b[len(b)-2] = 0xff; return b }), extra},
		{"empty certificate", x509Leaf(5, nil), extra},
		{"garbage certificate", x509Leaf(5, []byte("this is not a certificate")), extra},
		{"certificate with trailing byte", x509Leaf(5, append(bytes.Clone(der), 0)), extra},
		{"certificate truncated", x509Leaf(5, der[:len(der)-1]), extra},
		{"no extra_data", leaf, nil},
		{"trailing byte after extra_data", leaf, append(bytes.Clone(extra), 0)},
		{"chain length beyond data", leaf, edit(extra, func(b []byte) []byte { b[0] = 0xff; return b })},
		{"garbage chain certificate", leaf, chainExtra([]byte("junk"))},
		{"empty chain certificate", leaf, chainExtra([]byte{})},
		{"precert entry with x509 extra_data", pLeaf, extra},
		{"precert without chain", pLeaf, pExtra[:3+len(precert)]},
		{"trailing byte after precert extra_data", pLeaf, append(bytes.Clone(pExtra), 0)},
		{"garbage precert tbs", precertLeaf(5, caKey, []byte{0x30, 0x03, 0x02, 0x01, 0x01}), pExtra},
		{"precert tbs with trailing byte", precertLeaf(5, caKey, append(bytes.Clone(tbs), 0)), pExtra},
		{"empty precertificate", pLeaf, precertExtra(nil, ca.der)},
		{"x509 entry with precert extra_data", leaf, pExtra},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := DecodeRFC6962Entry(tt.leaf, tt.extra)
			if err == nil || c != nil {
				t.Fatalf("got %v, %v; want an error", c, err)
			}
		})
	}

	// Every truncation of a valid leaf or extra_data is an error.
	for _, e := range []struct {
		name        string
		leaf, extra []byte
	}{{"x509", leaf, extra}, {"precert", pLeaf, pExtra}} {
		for n := range len(e.leaf) {
			if _, _, err := DecodeRFC6962Entry(e.leaf[:n], e.extra); err == nil {
				t.Errorf("%s leaf truncated to %d bytes: no error", e.name, n)
			}
		}
		for n := range len(e.extra) {
			if _, _, err := DecodeRFC6962Entry(e.leaf, e.extra[:n]); err == nil {
				t.Errorf("%s extra_data truncated to %d bytes: no error", e.name, n)
			}
		}
	}
}

// TestDecodersMalformed feeds broken certificates to the other decoders.
func TestDecodersMalformed(t *testing.T) {
	ca := newCA(t, "Test Issuing CA", nil, false)
	der := issue(t, leafTemplate("broken.example"), newKey(t).Public(), ca)
	tbs := stdParse(t, der).RawTBSCertificate

	tests := []struct {
		name   string
		decode func() (*Cert, error)
	}{
		{"Parse nil", func() (*Cert, error) { return Parse(nil) }},
		{"Parse garbage", func() (*Cert, error) { return Parse([]byte("-----BEGIN CERTIFICATE-----")) }},
		{"Parse empty sequence", func() (*Cert, error) { return Parse([]byte{0x30, 0x00}) }},
		{"Parse truncated", func() (*Cert, error) { return Parse(der[:len(der)/2]) }},
		{"Parse trailing byte", func() (*Cert, error) { return Parse(append(bytes.Clone(der), 0)) }},
		{"Parse bare TBS", func() (*Cert, error) { return Parse(tbs) }},
		{"FromX509 garbage chain", func() (*Cert, error) { return FromX509(der, [][]byte{{0x30, 0x00}}) }},
		{"FromPrecert nil tbs", func() (*Cert, error) { return FromPrecert(nil, nil, nil) }},
		{"FromPrecert certificate instead of TBS", func() (*Cert, error) { return FromPrecert(der, nil, nil) }},
		{"FromPrecert truncated TBS", func() (*Cert, error) { return FromPrecert(tbs[:len(tbs)-1], nil, nil) }},
		{"FromPrecert garbage chain", func() (*Cert, error) { return FromPrecert(tbs, der, [][]byte{[]byte("junk")}) }},
		{"FromPrecert garbage real issuer", func() (*Cert, error) {
			psc := newCA(t, "Test Precertificate Signer", ca, true)
			return FromPrecert(tbs, der, [][]byte{psc.der, []byte("junk")})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.decode()
			if err == nil || c != nil {
				t.Fatalf("got %v, %v; want an error", c, err)
			}
		})
	}
}

// TestHashTBSMalformed checks that HashTBS refuses what is not a TBS.
func TestHashTBSMalformed(t *testing.T) {
	ca := newCA(t, "Test Issuing CA", nil, false)
	der := issue(t, withExtensions(leafTemplate("a.example"), sctListExt()), newKey(t).Public(), ca)
	tbs := stdParse(t, der).RawTBSCertificate
	for _, tt := range []struct {
		name string
		tbs  []byte
	}{
		{"nil", nil},
		{"whole certificate", der},
		{"truncated", tbs[:len(tbs)-1]},
		{"trailing byte", append(bytes.Clone(tbs), 0)},
		{"empty sequence", []byte{0x30, 0x00}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if h, err := HashTBS(tt.tbs); err == nil {
				t.Fatalf("got %s; want an error", h)
			}
		})
	}
}
