package cert

import (
	"bytes"
	"crypto/sha256"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/crypto/cryptobyte"
)

// specEntry describes a static-ct-api TileLeaf whose bytes the tests build
// by hand from the specification's structures, independently of
// AppendTileLeaf, and which may break the rules on purpose.
type specEntry struct {
	timestamp uint64
	entryType uint16 // 0 x509_entry, 1 precert_entry, anything else as x509
	keyHash   Hash   // precert_entry only
	cert      []byte // certificate DER or TBSCertificate
	exts      []byte // the content of the CtExtensions vector
	pre       []byte // pre_certificate, precert_entry only
	chain     []byte // the content of the certificate_chain vector
}

// timestampedEntry builds the RFC 6962 TimestampedEntry.
func (e specEntry) timestampedEntry() []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint64(e.timestamp)
	b.AddUint16(e.entryType)
	if e.entryType == 1 {
		b.AddBytes(e.keyHash[:])
	}
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.cert) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.exts) })
	return b.BytesOrPanic()
}

// tileLeaf builds the TileLeaf: the TimestampedEntry, the pre_certificate
// of a precert_entry and the fingerprints.
func (e specEntry) tileLeaf() []byte {
	b := cryptobyte.NewBuilder(e.timestampedEntry())
	if e.entryType == 1 {
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.pre) })
	}
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.chain) })
	return b.BytesOrPanic()
}

// merkleTreeLeaf builds the RFC 6962 MerkleTreeLeaf (v1,
// timestamped_entry) that the log's tree commits to.
func (e specEntry) merkleTreeLeaf() []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(0) // v1
	b.AddUint8(0) // timestamped_entry
	b.AddBytes(e.timestampedEntry())
	return b.BytesOrPanic()
}

// leafIndexExt is a leaf_index Extension: type 0, a two-byte length of 5,
// the index as a big-endian uint40.
func leafIndexExt(index uint64) []byte {
	return []byte{0, 0, 5, byte(index >> 32), byte(index >> 24), byte(index >> 16), byte(index >> 8), byte(index)}
}

// fingerprints concatenates the SHA-256 of each certificate.
func fingerprints(ders ...[]byte) []byte {
	var out []byte
	for _, der := range ders {
		h := sha256.Sum256(der)
		out = append(out, h[:]...)
	}
	return out
}

// wantLeafHash is the RFC 6962 leaf hash of a MerkleTreeLeaf, computed with
// crypto/sha256 alone.
func wantLeafHash(merkleTreeLeaf []byte) Hash {
	return sha256.Sum256(append([]byte{0}, merkleTreeLeaf...))
}

// tileFixture is an entry made from real certificates, with the TileLeaf
// that describes it, its hand-built bytes and its chain certificates.
type tileFixture struct {
	name  string
	leaf  TileLeaf
	spec  specEntry
	chain [][]byte
}

// realTileFixtures returns entries built from real certificates: a leaf
// with its real issuer, a lone leaf, and Google's test precertificate with
// its issuing intermediate (the TBS the log records is the
// precertificate's without the poison, built by ct-go).
func realTileFixtures(t testing.TB) (azure, lone, precert tileFixture) {
	t.Helper()
	azureDER, azureIssuer := readDER(t, azureLeafPEM), readDER(t, azureIssuerPEM)
	loneDER := readDER(t, filepath.Join(corpusDir, "certs", "0226e06e4a7ae551.pem"))
	precertDER := readDER(t, filepath.Join(ctGoDir, "submission_hammer_testdata_precert.der"))
	interDER := readDER(t, filepath.Join(ctGoDir, "submission_hammer_testdata_intermediate.der"))
	tbs, err := ctx509.RemoveCTPoison(stdParse(t, precertDER).RawTBSCertificate)
	if err != nil {
		t.Fatal(err)
	}
	keyHash := sum(stdParse(t, interDER).RawSubjectPublicKeyInfo)

	azure = tileFixture{
		name: "real x509 entry with its issuer",
		leaf: TileLeaf{Timestamp: 1700000000123, Certificate: azureDER, LeafIndex: 0x0102030405,
			Chain: []Hash{sum(azureIssuer)}},
		spec: specEntry{timestamp: 1700000000123, cert: azureDER, exts: leafIndexExt(0x0102030405),
			chain: fingerprints(azureIssuer)},
		chain: [][]byte{azureIssuer},
	}
	lone = tileFixture{
		name: "real x509 entry without chain, largest index",
		leaf: TileLeaf{Timestamp: 1, Certificate: loneDER, LeafIndex: 1<<40 - 1},
		spec: specEntry{timestamp: 1, cert: loneDER, exts: leafIndexExt(1<<40 - 1)},
	}
	precert = tileFixture{
		name: "real precert entry with its intermediate",
		leaf: TileLeaf{Timestamp: 1530000000000, Precert: true, Certificate: tbs, IssuerKeyHash: keyHash,
			PreCertificate: precertDER, LeafIndex: 7, Chain: []Hash{sum(interDER)}},
		spec: specEntry{timestamp: 1530000000000, entryType: 1, keyHash: keyHash, cert: tbs,
			exts: leafIndexExt(7), pre: precertDER, chain: fingerprints(interDER)},
		chain: [][]byte{interDER},
	}
	return azure, lone, precert
}

// TestTileLeafRoundTrip encodes real entries, compares the bytes with the
// hand-built ones, cuts them with their leaf hash and parses them back.
func TestTileLeafRoundTrip(t *testing.T) {
	azure, lone, precert := realTileFixtures(t)
	for _, fx := range []tileFixture{azure, lone, precert} {
		t.Run(fx.name, func(t *testing.T) {
			want := fx.spec.tileLeaf()
			prefix := []byte("earlier entries")
			encoded, err := AppendTileLeaf(bytes.Clone(prefix), &fx.leaf)
			if err != nil {
				t.Fatalf("AppendTileLeaf: %v", err)
			}
			if !bytes.HasPrefix(encoded, prefix) {
				t.Fatal("AppendTileLeaf did not keep the bytes it appended to")
			}
			if got := encoded[len(prefix):]; !bytes.Equal(got, want) {
				t.Fatalf("AppendTileLeaf wrote %x\nwant %x", got, want)
			}

			entry, leafHash, rest, err := CutTileLeaf(want)
			if err != nil {
				t.Fatalf("CutTileLeaf: %v", err)
			}
			if !bytes.Equal(entry, want) || len(rest) != 0 {
				t.Fatalf("CutTileLeaf: entry of %d bytes and %d left, want %d and 0", len(entry), len(rest), len(want))
			}
			mtl := fx.spec.merkleTreeLeaf()
			if wantHash := wantLeafHash(mtl); leafHash != wantHash {
				t.Errorf("leaf hash %s, want %s", leafHash, wantHash)
			}
			if wantHash := rfc6962.DefaultHasher.HashLeaf(mtl); !bytes.Equal(leafHash[:], wantHash) {
				t.Errorf("leaf hash %s, rfc6962.DefaultHasher says %x", leafHash, wantHash)
			}

			got, err := ParseTileLeaf(entry)
			if err != nil {
				t.Fatalf("ParseTileLeaf: %v", err)
			}
			if !reflect.DeepEqual(*got, fx.leaf) {
				t.Errorf("ParseTileLeaf = %+v\nwant %+v", *got, fx.leaf)
			}
		})
	}
}

// TestParseTileLeafAliasing checks the documented memory contract: the
// certificates alias the entry, but appending to them cannot write over it.
func TestParseTileLeafAliasing(t *testing.T) {
	_, _, precert := realTileFixtures(t)
	entry := precert.spec.tileLeaf()
	l, err := ParseTileLeaf(entry)
	if err != nil {
		t.Fatal(err)
	}
	orig := bytes.Clone(entry)
	_ = append(l.Certificate, 0xee, 0xee, 0xee)
	_ = append(l.PreCertificate, 0xee, 0xee, 0xee)
	if !bytes.Equal(entry, orig) {
		t.Error("appending to a parsed certificate changed the entry")
	}
	cut, _, _, err := CutTileLeaf(append(bytes.Clone(entry), 0xaa))
	if err != nil {
		t.Fatal(err)
	}
	if cap(cut) != len(cut) {
		t.Errorf("cut entry has capacity %d beyond its %d bytes", cap(cut), len(cut))
	}
}

// TestFromTileLeaf checks that a tiled entry decodes to the same model as
// the same entry from an RFC 6962 log.
func TestFromTileLeaf(t *testing.T) {
	azure, _, precert := realTileFixtures(t)
	precertDER := precert.leaf.PreCertificate
	tests := []struct {
		name      string
		fx        tileFixture
		leafInput []byte // the RFC 6962 form of the same entry
		extraData []byte
	}{
		{"x509", azure, x509Leaf(azure.leaf.Timestamp, azure.leaf.Certificate), chainExtra(azure.chain...)},
		{"precert", precert, precertLeaf(precert.leaf.Timestamp, precert.leaf.IssuerKeyHash, precert.leaf.Certificate),
			precertExtra(precertDER, precert.chain...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, ts, err := DecodeRFC6962Entry(tt.leafInput, tt.extraData)
			if err != nil || ts != tt.fx.leaf.Timestamp {
				t.Fatalf("DecodeRFC6962Entry: %v, timestamp %d", err, ts)
			}
			l, err := ParseTileLeaf(tt.fx.spec.tileLeaf())
			if err != nil {
				t.Fatal(err)
			}
			got, err := FromTileLeaf(l, tt.fx.chain)
			if err != nil {
				t.Fatalf("FromTileLeaf: %v", err)
			}
			if got.TBSHash != want.TBSHash {
				t.Errorf("TBSHash %s, RFC 6962 entry has %s", got.TBSHash, want.TBSHash)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("FromTileLeaf = %+v\nRFC 6962 entry: %+v", got, want)
			}

			// Without the chain certificates, the fingerprints still make
			// the chain; only an x509 entry loses its issuer key.
			unresolved, err := FromTileLeaf(l, nil)
			if err != nil {
				t.Fatalf("FromTileLeaf without chain: %v", err)
			}
			if !slices.Equal(unresolved.Chain, tt.fx.leaf.Chain) {
				t.Errorf("unresolved Chain = %v, want %v", unresolved.Chain, tt.fx.leaf.Chain)
			}
			wantKey := Hash{}
			if l.Precert {
				wantKey = want.IssuerSPKIHash
			}
			if unresolved.IssuerSPKIHash != wantKey || unresolved.TBSHash != want.TBSHash {
				t.Errorf("unresolved: issuer key %s, TBSHash %s", unresolved.IssuerSPKIHash, unresolved.TBSHash)
			}
		})
	}

	// Independent expectations for the real entries: the issuer key hash
	// computed by openssl, and the TBS hash of the precertificate file.
	l, err := ParseTileLeaf(azure.spec.tileLeaf())
	if err != nil {
		t.Fatal(err)
	}
	c, err := FromTileLeaf(l, azure.chain)
	if err != nil {
		t.Fatal(err)
	}
	if c.IssuerSPKIHash.String() != azureIssuerSPKI || c.SHA256 != sum(azure.leaf.Certificate) || c.Precert {
		t.Errorf("x509 entry: issuer key %s, SHA256 %s, precert %v", c.IssuerSPKIHash, c.SHA256, c.Precert)
	}
	lone, err := Parse(precertDER)
	if err != nil {
		t.Fatal(err)
	}
	if l, err = ParseTileLeaf(precert.spec.tileLeaf()); err != nil {
		t.Fatal(err)
	}
	if c, err = FromTileLeaf(l, precert.chain); err != nil {
		t.Fatal(err)
	}
	if c.TBSHash != lone.TBSHash || c.SHA256 != sum(precertDER) || !c.Precert {
		t.Errorf("precert entry: TBSHash %s (file %s), SHA256 %s, precert %v", c.TBSHash, lone.TBSHash, c.SHA256, c.Precert)
	}
}

// TestTileLeafPairsWithFinalCertificate issues a precertificate and its
// final certificate (with an SCT list) from one template: the precert from
// a tiled log and the certificate from an RFC 6962 log share TBSHash, as do
// a precertificate signed by a Precertificate Signing Certificate and the
// final certificate of the real CA.
func TestTileLeafPairsWithFinalCertificate(t *testing.T) {
	ca := newCA(t, "Test Issuing CA", nil, false)
	psc := newCA(t, "Test Precertificate Signer", ca, true)
	caKey := sum(ca.cert.RawSubjectPublicKeyInfo)
	tmpl := leafTemplate("www.tiled.example", "tiled.example")
	key := newKey(t)
	final := issue(t, withExtensions(tmpl, sctListExt()), key.Public(), ca)
	plainTBS := stdParse(t, issue(t, tmpl, key.Public(), ca)).RawTBSCertificate

	tests := []struct {
		name  string
		by    *testCA
		chain [][]byte
	}{
		{"signed by the CA", ca, [][]byte{ca.der}},
		{"signed by a precertificate signing certificate", psc, [][]byte{psc.der, ca.der}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pre := issue(t, withExtensions(tmpl, poisonExt()), key.Public(), tt.by)
			// The log's TBS: no poison and, with a signing certificate, the
			// issuer and authority key identifier of the real CA. Built by
			// ct-go, independently of this package.
			var signer *ctx509.Certificate
			if tt.by == psc {
				var err error
				if signer, err = ctx509.ParseCertificate(psc.der); err != nil {
					t.Fatal(err)
				}
			}
			tbs, err := ctx509.BuildPrecertTBS(stdParse(t, pre).RawTBSCertificate, signer)
			if err != nil {
				t.Fatal(err)
			}
			spec := specEntry{timestamp: 9, entryType: 1, keyHash: caKey, cert: tbs, exts: leafIndexExt(3),
				pre: pre, chain: fingerprints(tt.chain...)}
			l, err := ParseTileLeaf(spec.tileLeaf())
			if err != nil {
				t.Fatal(err)
			}
			tiled, err := FromTileLeaf(l, tt.chain)
			if err != nil {
				t.Fatal(err)
			}
			rfc, _, err := DecodeRFC6962Entry(x509Leaf(10, final), chainExtra(ca.der))
			if err != nil {
				t.Fatal(err)
			}
			if tiled.TBSHash != rfc.TBSHash || tiled.TBSHash != sum(plainTBS) {
				t.Errorf("TBSHash: tiled precert %s, RFC 6962 certificate %s, plain TBS %x",
					tiled.TBSHash, rfc.TBSHash, sum(plainTBS))
			}
			if tiled.IssuerSPKIHash != caKey || rfc.IssuerSPKIHash != caKey {
				t.Errorf("issuer keys %s and %s, want %s", tiled.IssuerSPKIHash, rfc.IssuerSPKIHash, caKey)
			}
		})
	}
}

// TestCutTileLeafTile cuts a tile of several entries into exactly them.
func TestCutTileLeafTile(t *testing.T) {
	azure, lone, precert := realTileFixtures(t)
	second := precert.spec
	second.exts = append(leafIndexExt(8), 9, 0, 1, 0xff) // and an unknown extension
	entries := []specEntry{azure.spec, precert.spec, lone.spec, second}
	var tile []byte
	for _, e := range entries {
		tile = append(tile, e.tileLeaf()...)
	}
	rest := tile
	for i, e := range entries {
		entry, leafHash, r, err := CutTileLeaf(rest)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if !bytes.Equal(entry, e.tileLeaf()) {
			t.Fatalf("entry %d: cut %d bytes, want the %d of the entry", i, len(entry), len(e.tileLeaf()))
		}
		if want := wantLeafHash(e.merkleTreeLeaf()); leafHash != want {
			t.Errorf("entry %d: leaf hash %s, want %s", i, leafHash, want)
		}
		if len(r) > 0 && &r[0] != &tile[len(tile)-len(r)] {
			t.Errorf("entry %d: rest is a copy of the tile", i)
		}
		rest = r
	}
	if len(rest) != 0 {
		t.Errorf("%d bytes left after the last entry", len(rest))
	}
}

// TestTileTruncation cuts every truncation of a two-entry tile: each is an
// error, except the one that ends exactly after the first entry.
func TestTileTruncation(t *testing.T) {
	azure, _, precert := realTileFixtures(t)
	first, second := azure.spec.tileLeaf(), precert.spec.tileLeaf()
	tile := append(bytes.Clone(first), second...)
	for n := range len(tile) {
		var cut int
		var err error
		for rest := tile[:n]; err == nil && (len(rest) > 0 || cut == 0); cut++ {
			_, _, rest, err = CutTileLeaf(rest)
		}
		if n == len(first) {
			if err != nil || cut != 1 {
				t.Errorf("tile cut after the first entry: %d entries, error %v; want 1 and none", cut, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("tile truncated to %d bytes: no error", n)
		}
	}
	for _, entry := range [][]byte{first, second} {
		for n := range len(entry) {
			if l, err := ParseTileLeaf(entry[:n]); err == nil || l != nil {
				t.Errorf("entry truncated to %d of %d bytes: %v, %v; want an error", n, len(entry), l, err)
			}
		}
	}
}

// TestTileLeafMalformed feeds broken entries to CutTileLeaf and
// ParseTileLeaf. ParseTileLeaf must refuse all of them; CutTileLeaf only
// those whose boundaries or leaf hash it cannot find.
func TestTileLeafMalformed(t *testing.T) {
	azure, _, precert := realTileFixtures(t)
	x, p := azure.spec, precert.spec
	with := func(e specEntry, f func(*specEntry)) []byte { f(&e); return e.tileLeaf() }
	garbage := []byte{0xde, 0xad}

	tests := []struct {
		name     string
		entry    []byte
		cutOK    bool
		wantRest []byte // when cutOK
	}{
		{name: "empty", entry: nil},
		{name: "entry type 2", entry: with(x, func(e *specEntry) { e.entryType = 2 })},
		{name: "entry type 0xffff", entry: with(x, func(e *specEntry) { e.entryType = 0xffff })},
		{name: "empty certificate", entry: with(x, func(e *specEntry) { e.cert = nil })},
		{name: "empty precert TBS", entry: with(p, func(e *specEntry) { e.cert = nil })},
		{name: "empty pre_certificate", entry: with(p, func(e *specEntry) { e.pre = nil })},
		{name: "certificate length beyond data", entry: func() []byte {
			b := x.tileLeaf()
			b[10] = 0xff
			return b
		}()},
		{name: "chain of 31 bytes", entry: with(x, func(e *specEntry) { e.chain = e.chain[:31] })},
		{name: "chain of 33 bytes", entry: with(x, func(e *specEntry) { e.chain = append(bytes.Clone(e.chain), 0) })},
		{name: "trailing garbage", entry: append(x.tileLeaf(), garbage...), cutOK: true, wantRest: garbage},
		{name: "no extensions", entry: with(x, func(e *specEntry) { e.exts = nil }), cutOK: true},
		{name: "only an unknown extension", entry: with(p, func(e *specEntry) { e.exts = []byte{1, 0, 5, 0, 0, 0, 0, 1} }),
			cutOK: true},
		{name: "leaf_index of 4 bytes", entry: with(x, func(e *specEntry) { e.exts = []byte{0, 0, 4, 0, 0, 0, 1} }),
			cutOK: true},
		{name: "leaf_index of 6 bytes", entry: with(x, func(e *specEntry) { e.exts = []byte{0, 0, 6, 0, 0, 0, 0, 0, 1} }),
			cutOK: true},
		{name: "duplicate leaf_index", entry: with(x, func(e *specEntry) { e.exts = append(leafIndexExt(1), leafIndexExt(2)...) }),
			cutOK: true},
		{name: "duplicate unknown extension", entry: with(p, func(e *specEntry) {
			e.exts = append(append([]byte{255, 0, 0}, leafIndexExt(1)...), 255, 0, 0)
		}), cutOK: true},
		{name: "extension data beyond extensions", entry: with(x, func(e *specEntry) {
			e.exts = append(leafIndexExt(1), 3, 0, 9, 1)
		}), cutOK: true},
		{name: "truncated extension header", entry: with(x, func(e *specEntry) { e.exts = append(leafIndexExt(1), 3, 0) }),
			cutOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := ParseTileLeaf(tt.entry); err == nil || l != nil {
				t.Errorf("ParseTileLeaf = %+v, %v; want an error", l, err)
			}
			entry, leafHash, rest, err := CutTileLeaf(tt.entry)
			if !tt.cutOK {
				if err == nil || entry != nil || rest != nil || !leafHash.IsZero() {
					t.Errorf("CutTileLeaf = %d bytes, %s, %d left, %v; want an error", len(entry), leafHash, len(rest), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CutTileLeaf: %v", err)
			}
			if !bytes.Equal(rest, tt.wantRest) || len(entry)+len(rest) != len(tt.entry) {
				t.Errorf("CutTileLeaf: entry of %d bytes, rest %x; want rest %x", len(entry), rest, tt.wantRest)
			}
		})
	}
}

// TestParseTileLeafExtensions checks that extensions other than
// leaf_index are ignored, in any order.
func TestParseTileLeafExtensions(t *testing.T) {
	azure, _, _ := realTileFixtures(t)
	unknown := []byte{7, 0, 2, 0xab, 0xcd}
	for _, exts := range [][]byte{
		append(leafIndexExt(42), unknown...),
		append(bytes.Clone(unknown), leafIndexExt(42)...),
		append(append([]byte{255, 0, 0}, leafIndexExt(42)...), 1, 0, 0),
	} {
		e := azure.spec
		e.exts = exts
		l, err := ParseTileLeaf(e.tileLeaf())
		if err != nil {
			t.Errorf("extensions %x: %v", exts, err)
			continue
		}
		if l.LeafIndex != 42 {
			t.Errorf("extensions %x: LeafIndex %d, want 42", exts, l.LeafIndex)
		}
	}
}

// TestAppendTileLeafErrors checks that fields the wire format cannot carry
// are errors and leave the buffer as it was.
func TestAppendTileLeafErrors(t *testing.T) {
	der := []byte{0x30, 0x00}
	huge := make([]byte, 1<<24)
	tests := []struct {
		name string
		leaf *TileLeaf
	}{
		{"nil", nil},
		{"empty certificate", &TileLeaf{LeafIndex: 1}},
		{"certificate of 2^24 bytes", &TileLeaf{Certificate: huge}},
		{"leaf index of 2^40", &TileLeaf{Certificate: der, LeafIndex: 1 << 40}},
		{"2048 fingerprints", &TileLeaf{Certificate: der, Chain: make([]Hash, 2048)}},
		{"precert without pre_certificate", &TileLeaf{Precert: true, Certificate: der}},
		{"pre_certificate of 2^24 bytes", &TileLeaf{Precert: true, Certificate: der, PreCertificate: huge}},
		{"x509 entry with pre_certificate", &TileLeaf{Certificate: der, PreCertificate: der}},
		{"x509 entry with issuer key hash", &TileLeaf{Certificate: der, IssuerKeyHash: Hash{1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := []byte("kept")
			out, err := AppendTileLeaf(buf, tt.leaf)
			if err == nil {
				t.Fatal("no error")
			}
			if string(out) != "kept" {
				t.Errorf("buffer changed to %q", out)
			}
		})
	}

	// The limits themselves fit.
	limits := &TileLeaf{Certificate: huge[:1<<24-1], LeafIndex: 1<<40 - 1, Chain: make([]Hash, 2047)}
	out, err := AppendTileLeaf(nil, limits)
	if err != nil {
		t.Fatalf("largest sizes: %v", err)
	}
	l, err := ParseTileLeaf(out)
	if err != nil || l.LeafIndex != 1<<40-1 || len(l.Chain) != 2047 || len(l.Certificate) != 1<<24-1 {
		t.Errorf("largest sizes do not round trip: %v", err)
	}
}

// TestFromTileLeafErrors checks what FromTileLeaf refuses.
func TestFromTileLeafErrors(t *testing.T) {
	azure, _, precert := realTileFixtures(t)
	other := readDER(t, filepath.Join(ctGoDir, "submission_hammer_testdata_intermediate.der"))
	garbage := []byte("not a certificate")
	edit := func(l TileLeaf, f func(*TileLeaf)) *TileLeaf { f(&l); return &l }
	tests := []struct {
		name  string
		leaf  *TileLeaf
		chain [][]byte
	}{
		{"nil leaf", nil, nil},
		{"garbage certificate", edit(azure.leaf, func(l *TileLeaf) { l.Certificate = garbage }), nil},
		{"garbage precert TBS", edit(precert.leaf, func(l *TileLeaf) { l.Certificate = garbage }), nil},
		{"precert without pre_certificate", edit(precert.leaf, func(l *TileLeaf) { l.PreCertificate = nil }), nil},
		{"more certificates than fingerprints", &azure.leaf, [][]byte{azure.chain[0], azure.chain[0]}},
		{"certificate that is not the fingerprinted one", &azure.leaf, [][]byte{other}},
		{"garbage chain certificate with its fingerprint",
			edit(azure.leaf, func(l *TileLeaf) { l.Chain = []Hash{sum(garbage)} }), [][]byte{garbage}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := FromTileLeaf(tt.leaf, tt.chain); err == nil || c != nil {
				t.Errorf("FromTileLeaf = %+v, %v; want an error", c, err)
			}
		})
	}
}

// BenchmarkCutAndParseTileLeaf walks a full data tile of 256 entries built
// from real corpus certificates (most with their real issuer's
// fingerprint), cutting and parsing each entry.
func BenchmarkCutAndParseTileLeaf(b *testing.B) {
	azure, lone, precert := realTileFixtures(b)
	var tile []byte
	for i := range 256 {
		fx := []tileFixture{azure, azure, lone, precert}[i%4]
		fx.leaf.LeafIndex = uint64(i)
		var err error
		if tile, err = AppendTileLeaf(tile, &fx.leaf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(tile)))
	for b.Loop() {
		for rest := tile; len(rest) > 0; {
			var entry []byte
			var err error
			if entry, _, rest, err = CutTileLeaf(rest); err != nil {
				b.Fatal(err)
			}
			if _, err := ParseTileLeaf(entry); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*256), "ns/entry")
}
