package cert

import (
	"encoding/binary"
	"reflect"
	"sync"
	"testing"
)

// A Decoder gives exactly what the package functions give, on the first
// sight of a chain certificate and on every later one (from its cache), for
// x509 and precert entries, chains with a precertificate signer, junk and
// unreadable certificates, and chains that fail; and it is safe to share
// between goroutines.
func TestDecoderMatchesPackageFunctions(t *testing.T) {
	leaf := readDER(t, azureLeafPEM)
	issuer := readDER(t, azureIssuerPEM)
	full := chainFixture(t)

	root, ca, signer, precert := precertSignerFixture(t)
	tbs := stdParse(t, precert).RawTBSCertificate

	type entry struct{ leafInput, extraData []byte }
	entries := []struct {
		name string
		e    entry
	}{
		{"x509, real issuer", entry{x509Leaf(1, leaf), chainExtra(issuer)}},
		{"x509, long chain", entry{x509Leaf(2, leaf), chainExtra(full...)}},
		{"x509, no chain", entry{x509Leaf(3, leaf), chainExtra()}},
		{"x509, junk above the issuer", entry{x509Leaf(4, leaf), chainExtra(issuer, []byte("junk"))}},
		{"x509, junk issuer (fails)", entry{x509Leaf(5, leaf), chainExtra([]byte("junk"), issuer)}},
		{"precert with a signer", entry{precertLeaf(6, sum(ca.cert.RawSubjectPublicKeyInfo), tbs), precertExtra(precert, signer.der, ca.der, root.der)}},
		{"precert, signer only", entry{precertLeaf(7, sum(ca.cert.RawSubjectPublicKeyInfo), tbs), precertExtra(precert, signer.der)}},
	}
	type result struct {
		c   *Cert
		ts  uint64
		err string
	}
	decode := func(d *Decoder, e entry) result {
		c, ts, err := d.DecodeRFC6962Entry(e.leafInput, e.extraData)
		r := result{c: c, ts: ts}
		if err != nil {
			r.err = err.Error()
		}
		return r
	}
	var d Decoder
	for round := range 3 { // round 0 fills the cache, later rounds read it
		for _, tc := range entries {
			want := decode(nil, tc.e)
			if got := decode(&d, tc.e); !reflect.DeepEqual(got, want) {
				t.Errorf("round %d, %s: Decoder gave %+v (err %q), package function %+v (err %q)", round, tc.name, got.c, got.err, want.c, want.err)
			}
		}
	}
	if len(d.chains) == 0 {
		t.Fatal("the decoder cached no chain certificate: the test did not exercise the cache")
	}

	// Tile leaves go through the same cache.
	for _, chain := range [][][]byte{{issuer}, full} {
		fps := make([]Hash, len(chain))
		for i, c := range chain {
			fps[i] = sum(c)
		}
		l := &TileLeaf{Timestamp: 9, Certificate: leaf, Chain: fps}
		want, werr := FromTileLeaf(l, chain)
		for range 2 {
			got, gerr := d.FromTileLeaf(l, chain)
			if !reflect.DeepEqual(got, want) || (gerr == nil) != (werr == nil) {
				t.Errorf("FromTileLeaf with %d chain certificates: Decoder %+v (%v), package %+v (%v)", len(chain), got, gerr, want, werr)
			}
		}
	}

	// Shared by goroutines (run with -race).
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for _, tc := range entries {
				if got, want := decode(&d, tc.e), decode(nil, tc.e); !reflect.DeepEqual(got, want) {
					t.Errorf("concurrent %s: results differ", tc.name)
				}
			}
		})
	}
	wg.Wait()
}

// The cache is bounded: a log serving ever new chain certificates (here
// distinct junk blobs, which are cached as unreadable) never makes it hold
// more than maxCachedChainCerts of them.
func TestDecoderCacheBounded(t *testing.T) {
	var d Decoder
	leaf := readDER(t, azureLeafPEM)
	issuer := readDER(t, azureIssuerPEM)
	for i := range maxCachedChainCerts + 100 {
		junk := make([]byte, 64)
		binary.BigEndian.PutUint64(junk, uint64(i))
		if _, _, err := d.DecodeRFC6962Entry(x509Leaf(1, leaf), chainExtra(issuer, junk)); err != nil {
			t.Fatal(err)
		}
		if n := len(d.chains); n > maxCachedChainCerts {
			t.Fatalf("cache holds %d chain certificates, over %d", n, maxCachedChainCerts)
		}
	}
	if d.bytes > maxCachedChainBytes {
		t.Errorf("cache holds %d bytes, over %d", d.bytes, maxCachedChainBytes)
	}
}
