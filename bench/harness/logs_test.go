package main

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

func TestTileIndexPath(t *testing.T) {
	for _, tt := range []struct {
		n    uint64
		want string
	}{{0, "000"}, {7, "007"}, {999, "999"}, {1000, "x001/000"}, {1234567, "x001/x234/567"}} {
		if got := tileIndexPath(tt.n); got != tt.want {
			t.Errorf("tileIndexPath(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestPartialSuffix(t *testing.T) {
	for _, tt := range []struct {
		w    uint64
		want string
	}{{1, ".p/1"}, {255, ".p/255"}, {256, ""}} {
		if got := partialSuffix(tt.w); got != tt.want {
			t.Errorf("partialSuffix(%d) = %q, want %q", tt.w, got, tt.want)
		}
	}
}

func TestCheckpointSize(t *testing.T) {
	for _, tt := range []struct {
		note    string
		want    uint64
		wantErr bool
	}{
		{"127.0.0.1/tessera\n20000\nq6K4Dk0W6jgXv9N0pN2d5x0QGb1+3JvJmD8Y3tQ8ZqM=\n\n— 127.0.0.1/tessera abc=\n", 20000, false},
		{"origin\n0\nroot=\n\n", 0, false},
		{"origin\nlots\nroot\n", 0, true},
		{"origin\n12", 0, true},
	} {
		got, err := checkpointSize([]byte(tt.note))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("checkpointSize(%q) = %d, %v", tt.note, got, err)
		}
	}
}

// tileLeaf encodes one static-ct-api TileLeaf (c2sp.org/static-ct-api),
// written from the specification.
func tileLeaf(precert bool, cert []byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint64(1700000000000)
	if !precert {
		b.AddUint16(0)
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(cert) })
	} else {
		b.AddUint16(1)
		b.AddBytes(make([]byte, 32)) // issuer_key_hash
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte("tbs")) })
	}
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { // extensions: leaf_index
		b.AddUint8(0)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte{0, 0, 0, 0, 5}) })
	})
	if precert {
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(cert) })
	}
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, 64)) }) // two fingerprints
	return b.BytesOrPanic()
}

func TestParseDataTile(t *testing.T) {
	tile := append(tileLeaf(false, []byte("leaf one")), tileLeaf(true, []byte("the precertificate"))...)
	tile = append(tile, tileLeaf(false, []byte("leaf three"))...)
	got, err := parseDataTile(tile)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"leaf one", "the precertificate", "leaf three"}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], []byte(want[i])) {
			t.Errorf("entry %d = %q, want %q", i, got[i], want[i])
		}
	}
	for _, bad := range [][]byte{tile[:len(tile)-1], append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 9}, tile...)} {
		if _, err := parseDataTile(bad); err == nil {
			t.Errorf("malformed tile of %d bytes parsed", len(bad))
		}
	}
}
