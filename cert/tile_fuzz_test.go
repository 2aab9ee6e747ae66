package cert

import (
	"bytes"
	"reflect"
	"testing"

	ctx509 "github.com/google/certificate-transparency-go/x509"
)

// tileFuzzSeeds returns data tile entries built by hand around the small
// real certificates of fuzzSeeds: x509 entries with and without a chain, a
// precert entry, and one with an extra unknown extension.
//
// Entries of real certificates are 1 to 3 KB, and the fuzzer minimizes
// every new interesting input for up to -fuzzminimizetime (60 s by
// default), which stalls a short run; run these targets with a small one:
//
//	go test -run '^$' -fuzz '^FuzzCutTileLeaf$' -fuzztime 20s -fuzzminimizetime 2s ./cert
func tileFuzzSeeds(f *testing.F) [][]byte {
	leaf, ecdsaLeaf, precert, inter, _ := fuzzSeeds(f)
	tbs, err := ctx509.RemoveCTPoison(stdParse(f, precert).RawTBSCertificate)
	if err != nil {
		f.Fatal(err)
	}
	keyHash := sum(stdParse(f, inter).RawSubjectPublicKeyInfo)
	return [][]byte{
		specEntry{timestamp: 1, cert: leaf, exts: leafIndexExt(0), chain: fingerprints(inter)}.tileLeaf(),
		specEntry{timestamp: 2, cert: ecdsaLeaf, exts: leafIndexExt(1<<40 - 1)}.tileLeaf(),
		specEntry{timestamp: 3, entryType: 1, keyHash: keyHash, cert: tbs, exts: leafIndexExt(2),
			pre: precert, chain: fingerprints(inter, leaf)}.tileLeaf(),
		specEntry{timestamp: 4, cert: ecdsaLeaf, exts: append([]byte{9, 0, 1, 0}, leafIndexExt(3)...)}.tileLeaf(),
	}
}

func FuzzCutTileLeaf(f *testing.F) {
	seeds := tileFuzzSeeds(f)
	f.Add(append(bytes.Clone(seeds[0]), seeds[2]...))
	f.Add(append(bytes.Clone(seeds[2]), seeds[0][:20]...))
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tile []byte) {
		for rest := tile; len(rest) > 0; {
			entry, leafHash, r, err := CutTileLeaf(rest)
			if err != nil {
				if entry != nil || r != nil || !leafHash.IsZero() {
					t.Fatal("results returned with an error")
				}
				return
			}
			if len(entry) == 0 || len(entry)+len(r) != len(rest) || !bytes.Equal(entry, rest[:len(entry)]) {
				t.Fatalf("cut %d + %d bytes of %d: not a split of the tile", len(entry), len(r), len(rest))
			}
			checkCanonicalHash(t, entry, leafHash)
			rest = r
		}
	})
}

// checkCanonicalHash: when entry parses and re-encodes to itself (only a
// leaf_index extension), its leaf hash must be the one of the
// MerkleTreeLeaf that the test builds from the parsed fields.
func checkCanonicalHash(t *testing.T, entry []byte, leafHash Hash) {
	t.Helper()
	l, err := ParseTileLeaf(entry)
	if err != nil {
		return
	}
	again, err := AppendTileLeaf(nil, l)
	if err != nil || !bytes.Equal(again, entry) {
		return
	}
	spec := specEntry{timestamp: l.Timestamp, keyHash: l.IssuerKeyHash, cert: l.Certificate,
		exts: leafIndexExt(l.LeafIndex)}
	if l.Precert {
		spec.entryType = 1
	}
	if want := wantLeafHash(spec.merkleTreeLeaf()); leafHash != want {
		t.Fatalf("leaf hash %s, want %s", leafHash, want)
	}
}

func FuzzParseTileLeaf(f *testing.F) {
	seeds := tileFuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entry []byte) {
		l, err := ParseTileLeaf(entry)
		if err != nil {
			if l != nil {
				t.Fatal("entry returned with an error")
			}
			return
		}
		// What parses is exactly one entry to CutTileLeaf.
		cut, _, rest, err := CutTileLeaf(entry)
		if err != nil || len(cut) != len(entry) || len(rest) != 0 {
			t.Fatalf("CutTileLeaf: %d bytes, %d left, %v; want the whole entry", len(cut), len(rest), err)
		}
		// It encodes again, and the encoding parses to the same entry.
		again, err := AppendTileLeaf(nil, l)
		if err != nil {
			t.Fatalf("AppendTileLeaf of a parsed entry: %v", err)
		}
		l2, err := ParseTileLeaf(again)
		if err != nil {
			t.Fatalf("ParseTileLeaf of the re-encoded entry: %v", err)
		}
		if !reflect.DeepEqual(l, l2) {
			t.Fatalf("re-encoded entry parses to %+v, want %+v", l2, l)
		}
		c, err := FromTileLeaf(l, nil)
		if err != nil {
			if c != nil {
				t.Fatal("certificate returned with an error")
			}
			return
		}
		if l.Precert && !c.Precert {
			t.Fatal("precert_entry decoded as a certificate")
		}
		if l.Precert && c.IssuerSPKIHash != l.IssuerKeyHash {
			t.Fatal("precert_entry issuer key hash not taken from the leaf")
		}
		_ = c.Info()
	})
}
