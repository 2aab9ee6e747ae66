package statictest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/torchwood"
	sumdbnote "golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ctwatch/ctwatch/cert"
	"github.com/ctwatch/ctwatch/monitor/statictest"
)

func TestTilePath(t *testing.T) {
	tests := []struct {
		tile tlog.Tile
		want string
	}{
		{tlog.Tile{H: 8, L: 0, N: 0, W: 256}, "tile/0/000"},
		{tlog.Tile{H: 8, L: 0, N: 0, W: 0}, "tile/0/000"},
		{tlog.Tile{H: 8, L: 0, N: 7, W: 5}, "tile/0/007.p/5"},
		{tlog.Tile{H: 8, L: 3, N: 999, W: 256}, "tile/3/999"},
		{tlog.Tile{H: 8, L: 1, N: 1000, W: 255}, "tile/1/x001/000.p/255"},
		{tlog.Tile{H: 8, L: -1, N: 1234067, W: 256}, "tile/data/x001/x234/067"},
		{tlog.Tile{H: 8, L: -1, N: 1234067, W: 1}, "tile/data/x001/x234/067.p/1"},
		{tlog.Tile{H: 8, L: -1, N: 1000000, W: 256}, "tile/data/x001/x000/000"},
	}
	for _, tc := range tests {
		if got := statictest.TilePath(tc.tile); got != tc.want {
			t.Errorf("TilePath(%+v) = %q, want %q", tc.tile, got, tc.want)
		}
	}
	// torchwood writes the same hash tile paths, and data tiles under
	// tile/entries/ (tlog-tiles) where static-ct-api has tile/data/.
	for _, n := range []int64{0, 1, 999, 1000, 1001, 123456, 1234067, 1 << 40} {
		for _, w := range []int{1, 100, 255, 256} {
			for l := -1; l <= 5; l++ {
				tile := tlog.Tile{H: 8, L: l, N: n, W: w}
				want := torchwood.TilePath(tile)
				if l < 0 {
					want = "tile/data/" + strings.TrimPrefix(want, "tile/entries/")
				}
				if got := statictest.TilePath(tile); got != want {
					t.Errorf("TilePath(%+v) = %q, want %q", tile, got, want)
				}
			}
		}
	}
}

func TestCheckpointSignedAndChangesOnlyOnPublish(t *testing.T) {
	l := newLog(t)
	ca := newCA(t)

	if want := strings.TrimPrefix(l.SubmissionURL(), "http://"); l.Origin() != want {
		t.Errorf("Origin %q, want %q", l.Origin(), want)
	}
	if !strings.HasSuffix(l.SubmissionURL(), "/sub") || !strings.HasSuffix(l.MonitoringURL(), "/mon") {
		t.Errorf("SubmissionURL %q MonitoringURL %q", l.SubmissionURL(), l.MonitoringURL())
	}
	v := verifier(t, l)
	if v.Name() != l.Origin() {
		t.Errorf("formats verifier name %q, want the origin %q", v.Name(), l.Origin())
	}
	// static-ct-api: the key ID is SHA-256(name || 0x0A || 0x05 || LogID)[:4].
	logID := sha256.Sum256(l.PublicKeyDER())
	if l.LogID() != logID {
		t.Errorf("LogID %x, want %x", l.LogID(), logID)
	}
	idInput := append([]byte(l.Origin()+"\n\x05"), logID[:]...)
	if id := sha256.Sum256(idInput); v.KeyHash() != binary.BigEndian.Uint32(id[:]) {
		t.Errorf("key ID %08x, want %x", v.KeyHash(), id[:4])
	}
	pub, err := x509.ParsePKIXPublicKey(l.PublicKeyDER())
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := pub.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Fatalf("public key is %T, want ECDSA P-256", pub)
	}

	c0 := mustCheckpoint(t, l)
	if c0.N != 0 || c0.Hash != tlog.Hash(sha256.Sum256(nil)) {
		t.Fatalf("initial checkpoint = size %d root %v, want the empty tree", c0.N, c0.Hash)
	}
	if !bytes.Equal(l.Checkpoint(), func() []byte { _, _, b := get(t, l.MonitoringURL()+"/checkpoint"); return b }()) {
		t.Error("Checkpoint() differs from the served checkpoint")
	}

	addN(l, ca, leaves(t, ca, 3), 3)
	if got := mustCheckpoint(t, l); got != c0 {
		t.Errorf("checkpoint changed without Publish: %+v", got)
	}
	if l.Added() != 3 || l.TreeSize() != 0 {
		t.Errorf("Added %d TreeSize %d, want 3 and 0", l.Added(), l.TreeSize())
	}

	l.Publish()
	c1 := mustCheckpoint(t, l)
	if c1.N != 3 || l.TreeSize() != 3 {
		t.Errorf("after Publish: size %d, TreeSize %d; want 3", c1.N, l.TreeSize())
	}
	if c1.timestamp <= c0.timestamp {
		t.Errorf("timestamp %d not after %d", c1.timestamp, c0.timestamp)
	}
	var hashes []cert.Hash
	for i := range uint64(3) {
		h, ok := l.LeafHash(i)
		if !ok {
			t.Fatalf("LeafHash(%d) missing", i)
		}
		hashes = append(hashes, h)
	}
	if _, ok := l.LeafHash(3); ok {
		t.Error("LeafHash(3) found an entry that does not exist")
	}
	if want := mth(hashes); c1.Hash != tlog.Hash(want) {
		t.Errorf("root %v, want RFC 6962 MTH %x", c1.Hash, want)
	}

	l.Publish()
	c2 := mustCheckpoint(t, l)
	if c2.timestamp <= c1.timestamp || c2.Tree != c1.Tree {
		t.Errorf("empty Publish: timestamp %d (was %d), tree %+v (was %+v)", c2.timestamp, c1.timestamp, c2.Tree, c1.Tree)
	}

	// A verifier for another name, or another key, does not accept it.
	other := newLog(t)
	if _, err := sumdbnote.Open(l.Checkpoint(), sumdbnote.VerifierList(verifier(t, other))); err == nil {
		t.Error("another log's verifier accepted the checkpoint")
	}
}

func TestWithKeyKeepsIdentity(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newLog(t, statictest.WithKey(key)), newLog(t, statictest.WithKey(key))
	if a.LogID() != b.LogID() {
		t.Error("two logs with one key have different IDs")
	}
	if a.LogID() == newLog(t).LogID() {
		t.Error("a fresh log reuses the key")
	}
	mustCheckpoint(t, b)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := statictest.New(statictest.WithKey(p384)); err == nil {
		l.Close()
		t.Error("New accepted a P-384 key")
	}
}

func TestEntries(t *testing.T) {
	l := newLog(t)
	ca := newCA(t)
	leaf, err := ca.Leaf("www.bank.example")
	if err != nil {
		t.Fatal(err)
	}
	pre, final, err := ca.PrecertPair("login.bank.example")
	if err != nil {
		t.Fatal(err)
	}
	chain := ca.Chain()
	if i := l.AddX509(leaf, chain); i != 0 {
		t.Errorf("AddX509 index %d, want 0", i)
	}
	if i, err := l.AddPrecert(pre, ca.Intermediate(), chain); err != nil || i != 1 {
		t.Errorf("AddPrecert = %d, %v; want 1, nil", i, err)
	}
	garbage := []byte("not a certificate")
	if i := l.AddX509(garbage, nil); i != 2 {
		t.Errorf("AddX509 index %d, want 2", i)
	}
	l.Publish()
	cp := mustCheckpoint(t, l)
	c, _ := newClient(t, l)
	entries := mustEntries(t, c, cp.Tree, 0)
	if len(entries) != 3 {
		t.Fatalf("read %d entries, want 3", len(entries))
	}

	parsed := make([]*cert.TileLeaf, len(entries))
	var hashes []cert.Hash
	for i, e := range entries {
		p, err := cert.ParseTileLeaf(e)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		parsed[i] = p
		if p.LeafIndex != uint64(i) {
			t.Errorf("entry %d has leaf_index %d", i, p.LeafIndex)
		}
		h := specLeafHash(t, p)
		if got, _ := l.LeafHash(uint64(i)); got != h {
			t.Errorf("LeafHash(%d) = %x, want %x", i, got, h)
		}
		if got, ok := l.Entry(uint64(i)); !ok || !bytes.Equal(got, e) {
			t.Errorf("Entry(%d) differs from the served entry", i)
		}
		hashes = append(hashes, h)
	}
	if want := mth(hashes); cp.Hash != tlog.Hash(want) {
		t.Error("root is not the MTH of the entries' RFC 6962 leaf hashes")
	}
	if _, ok := l.Entry(3); ok {
		t.Error("Entry(3) found an entry that does not exist")
	}

	var fps []cert.Hash
	for _, c := range chain {
		fps = append(fps, sha256.Sum256(c))
	}
	x := parsed[0]
	if x.Precert || !bytes.Equal(x.Certificate, leaf) || x.PreCertificate != nil || len(x.Chain) != 2 ||
		x.Chain[0] != fps[0] || x.Chain[1] != fps[1] {
		t.Errorf("x509 entry = %+v", x)
	}
	p := parsed[1]
	finalCert, err := x509.ParseCertificate(final)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Precert || !bytes.Equal(p.Certificate, finalCert.RawTBSCertificate) {
		t.Error("precert entry's TBSCertificate is not the final certificate's")
	}
	if !bytes.Equal(p.PreCertificate, pre) {
		t.Error("precert entry does not hold the submitted precertificate")
	}
	if want := sha256.Sum256(ca.Intermediate().RawSubjectPublicKeyInfo); p.IssuerKeyHash != want {
		t.Errorf("issuer_key_hash %x, want %x", p.IssuerKeyHash, want)
	}
	if len(p.Chain) != 2 || p.Chain[0] != fps[0] || p.Chain[1] != fps[1] {
		t.Errorf("precert chain = %v", p.Chain)
	}
	if g := parsed[2]; !bytes.Equal(g.Certificate, garbage) || g.Chain != nil {
		t.Errorf("garbage entry = %+v", g)
	}
	if ts := []uint64{x.Timestamp, p.Timestamp, parsed[2].Timestamp, cp.timestamp}; !(ts[0] < ts[1] && ts[1] < ts[2] && ts[2] < ts[3]) {
		t.Errorf("timestamps %v: want entries, then the checkpoint, strictly increasing", ts)
	}

	// Every chain certificate is served under issuer/.
	for i, fp := range fps {
		status, h, body := get(t, l.MonitoringURL()+"/issuer/"+hex.EncodeToString(fp[:]))
		if status != 200 || !bytes.Equal(body, chain[i]) || h.Get("Content-Type") != "application/pkix-cert" {
			t.Errorf("issuer %d: status %d Content-Type %q, same DER %v", i, status, h.Get("Content-Type"), bytes.Equal(body, chain[i]))
		}
	}
	unknown := sha256.Sum256(leaf)
	for _, path := range []string{
		hex.EncodeToString(unknown[:]),
		strings.ToUpper(hex.EncodeToString(fps[0][:])),
		hex.EncodeToString(fps[0][:31]),
		"",
	} {
		if status, _, _ := get(t, l.MonitoringURL()+"/issuer/"+path); status != http.StatusNotFound {
			t.Errorf("issuer/%s: status %d, want 404", path, status)
		}
	}
}

func TestAddPrecertErrors(t *testing.T) {
	l := newLog(t)
	ca := newCA(t)
	leaf, err := ca.Leaf("not-pre.example")
	if err != nil {
		t.Fatal(err)
	}
	pre, _, err := ca.PrecertPair("pre.example")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		precert []byte
		issuer  *x509.Certificate
	}{
		{"nil issuer", pre, nil},
		{"empty", nil, ca.Intermediate()},
		{"garbage", []byte("garbage"), ca.Intermediate()},
		{"truncated", pre[:len(pre)-10], ca.Intermediate()},
		{"no poison", leaf, ca.Intermediate()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if i, err := l.AddPrecert(tc.precert, tc.issuer, ca.Chain()); err == nil {
				t.Errorf("AddPrecert succeeded with index %d", i)
			}
		})
	}
	if n := l.Added(); n != 0 {
		t.Errorf("failed AddPrecert calls added %d entries", n)
	}
	fp := sha256.Sum256(ca.Chain()[0])
	if status, _, _ := get(t, l.MonitoringURL()+"/issuer/"+hex.EncodeToString(fp[:])); status != http.StatusNotFound {
		t.Errorf("failed AddPrecert published its issuer: status %d", status)
	}
}

// TestGrowEntryByEntry publishes every size from 1 to 600 and, at each,
// verifies the checkpoint, reads the new entries (partial data tiles
// included) through torchwood's verifying client, and checks consistency
// with the previous checkpoint from hash tiles.
func TestGrowEntryByEntry(t *testing.T) {
	const n = 600
	l := newLog(t)
	ca := newCA(t)
	ders := leaves(t, ca, 3)
	c, f := newClient(t, l)
	ctx := t.Context()

	prev := mustCheckpoint(t, l)
	for size := int64(1); size <= n; size++ {
		if size%7 == 3 {
			pre, _, err := ca.PrecertPair("pre.example")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.AddPrecert(pre, ca.Intermediate(), ca.Chain()); err != nil {
				t.Fatal(err)
			}
		} else {
			l.AddX509(ders[size%3], ca.Chain())
		}
		l.Publish()
		cp := mustCheckpoint(t, l)
		if cp.N != size {
			t.Fatalf("checkpoint size %d, want %d", cp.N, size)
		}
		got, err := readEntries(ctx, c, cp.Tree, prev.N)
		if err != nil {
			t.Fatalf("size %d: entries from %d: %v", size, prev.N, err)
		}
		for i, e := range got {
			idx := uint64(prev.N) + uint64(i)
			if want, _ := l.Entry(idx); !bytes.Equal(e, want) {
				t.Fatalf("size %d: entry %d differs from the one added", size, idx)
			}
		}
		if len(got) != 1 {
			t.Fatalf("size %d: read %d new entries, want 1", size, len(got))
		}
		if prev.N > 0 { // every tree is consistent with the empty one
			p, err := tlog.ProveTree(cp.N, prev.N, torchwood.TileHashReaderWithContext(ctx, cp.Tree, f))
			if err != nil {
				t.Fatalf("size %d: prove tree from %d: %v", size, prev.N, err)
			}
			if err := tlog.CheckTree(p, cp.N, cp.Hash, prev.N, prev.Hash); err != nil {
				t.Fatalf("size %d: not consistent with %d: %v", size, prev.N, err)
			}
		}
		prev = cp
	}

	// Reading everything back from the start at sizes around tile edges.
	// Shrink serves an older size; the partial tiles it needs were published.
	for _, size := range []uint64{1, 2, 255, 256, 257, 511, 512, 513, n} {
		l.Shrink(size)
		cp := mustCheckpoint(t, l)
		all := mustEntries(t, c, cp.Tree, 0)
		if uint64(len(all)) != size {
			t.Fatalf("size %d: read %d entries", size, len(all))
		}
		for i, e := range all {
			p, err := cert.ParseTileLeaf(e)
			if err != nil || p.LeafIndex != uint64(i) {
				t.Fatalf("size %d: entry %d: %v (leaf_index %v)", size, i, err, p)
			}
		}
	}
}

// TestTiles checks tile contents against the RFC 6962 tree and which tile
// paths exist as the log grows.
func TestTiles(t *testing.T) {
	l := newLog(t)
	ca := newCA(t)
	ders := leaves(t, ca, 2)
	mon := l.MonitoringURL() + "/"
	status := func(path string) int {
		s, _, _ := get(t, mon+path)
		return s
	}
	type want map[string]int
	steps := []struct {
		name      string
		do        func()
		paths     want
		keepAfter want // the same paths with SetKeepPartials(true)
	}{
		{"empty", func() {}, want{
			"tile/0/000.p/1": 404, "tile/data/000.p/1": 404, "tile/0/000": 404, "checkpoint": 200,
		}, nil},
		{"size 5", func() { addN(l, ca, ders, 5); l.Publish() }, want{
			"tile/0/000.p/5": 200, "tile/data/000.p/5": 200, "tile/0/000.p/4": 404, "tile/0/000.p/6": 404,
			"tile/0/000": 404, "tile/data/000": 404, "tile/1/000.p/1": 404,
		}, nil},
		{"size 10", func() { addN(l, ca, ders, 5); l.Publish() }, want{
			// The size-5 checkpoint still needs .p/5.
			"tile/0/000.p/5": 200, "tile/0/000.p/10": 200, "tile/data/000.p/10": 200, "tile/0/000.p/7": 404,
		}, nil},
		{"size 259", func() { addN(l, ca, ders, 249); l.Publish() }, want{
			"tile/0/000": 200, "tile/data/000": 200, "tile/0/001.p/3": 200, "tile/data/001.p/3": 200,
			"tile/1/000.p/1": 200, "tile/1/000": 404,
			// Vanished once the full tile exists.
			"tile/0/000.p/5": 404, "tile/data/000.p/10": 404,
		}, want{
			"tile/0/000.p/5": 200, "tile/data/000.p/10": 200, "tile/0/000.p/7": 404, "tile/0/001.p/3": 200,
		}},
		{"shrink to 3", func() { l.Shrink(3) }, want{
			"tile/0/000.p/3": 200, "tile/data/000.p/3": 200, "tile/0/000": 404, "tile/0/001.p/3": 404,
			// Beyond the tree, even though a checkpoint once needed it.
			"tile/0/000.p/5": 404, "tile/1/000.p/1": 404,
		}, nil},
		{"back to 259", func() { l.Publish() }, want{"tile/0/000": 200, "tile/0/000.p/3": 404}, nil},
	}
	for _, st := range steps {
		st.do()
		for path, code := range st.paths {
			if got := status(path); got != code {
				t.Errorf("%s: %s status %d, want %d", st.name, path, got, code)
			}
		}
		if st.keepAfter != nil {
			l.SetKeepPartials(true)
			for path, code := range st.keepAfter {
				if got := status(path); got != code {
					t.Errorf("%s, keeping partials: %s status %d, want %d", st.name, path, got, code)
				}
			}
			l.SetKeepPartials(false)
		}
	}

	// Malformed and non-canonical paths.
	for _, path := range []string{
		"tile/6/000", "tile/00/000", "tile/0/0", "tile/0/x000/000", "tile/0/000.p/0", "tile/0/000.p/256",
		"tile/0/000.p/05", "tile/entries/000", "tile/data/000/", "tile/-1/000", "tile/0/000.p/", "tile/",
		"tile/0/x999/x999/x999/x999/x999/x999/x999/000", "", "checkpoint/", "issuers/",
	} {
		if got := status(path); got != http.StatusNotFound {
			t.Errorf("%q: status %d, want 404", path, got)
		}
	}

	// Contents: level 0 holds the leaf hashes, level 1 the MTH of full
	// level 0 tiles, data tiles the entries; partial tiles are prefixes.
	cp := mustCheckpoint(t, l)
	if cp.N != 259 {
		t.Fatalf("size %d", cp.N)
	}
	var hashes []cert.Hash
	var data [][]byte
	for i := range uint64(cp.N) {
		h, _ := l.LeafHash(i)
		hashes = append(hashes, h)
		e, _ := l.Entry(i)
		data = append(data, e)
	}
	flat := func(hs []cert.Hash) []byte {
		var b []byte
		for _, h := range hs {
			b = append(b, h[:]...)
		}
		return b
	}
	root0 := mth(hashes[:256])
	l.SetKeepPartials(true)
	for path, body := range map[string][]byte{
		"tile/0/000":         flat(hashes[:256]),
		"tile/0/000.p/10":    flat(hashes[:10]),
		"tile/0/001.p/3":     flat(hashes[256:259]),
		"tile/1/000.p/1":     root0[:],
		"tile/data/000":      bytes.Join(data[:256], nil),
		"tile/data/000.p/10": bytes.Join(data[:10], nil),
		"tile/data/001.p/3":  bytes.Join(data[256:259], nil),
	} {
		s, h, got := get(t, mon+path)
		if s != 200 || !bytes.Equal(got, body) {
			t.Errorf("%s: status %d, %d bytes, want %d bytes of expected content", path, s, len(got), len(body))
		}
		if ct := h.Get("Content-Type"); ct != "application/octet-stream" {
			t.Errorf("%s: Content-Type %q", path, ct)
		}
	}
}

func TestTamperEntry(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		tamper uint64
	}{
		{"full tile", 300, 5},
		{"partial tile", 300, 257},
		{"first entry", 3, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLog(t)
			ca := newCA(t)
			addN(l, ca, leaves(t, ca, 2), tc.size)
			l.Publish()
			cp := mustCheckpoint(t, l)
			c, f := newClient(t, l)
			level0 := func() [][]byte {
				d, err := f.ReadTiles(t.Context(), []tlog.Tile{{H: 8, L: 0, N: 0, W: min(tc.size, 256)}})
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			hashTile := level0()
			honest, _ := l.Entry(tc.tamper)

			l.TamperEntry(tc.tamper)
			got, err := readEntries(t.Context(), c, cp.Tree, 0)
			if err == nil || !strings.Contains(err.Error(), "hash mismatch for entry "+strconv.FormatUint(tc.tamper, 10)) {
				t.Fatalf("reading a tampered log: %v, want a hash mismatch for entry %d", err, tc.tamper)
			}
			if uint64(len(got)) != tc.tamper {
				t.Errorf("read %d entries before the tampered one, want %d", len(got), tc.tamper)
			}
			if _, _, err := c.Entry(t.Context(), cp.Tree, int64(tc.tamper)); err == nil {
				t.Error("Client.Entry verified the tampered entry")
			}
			// Hash tiles and checkpoint stay honest.
			if !bytes.Equal(level0()[0], hashTile[0]) || mustCheckpoint(t, l) != cp {
				t.Error("tampering changed the hash tile or the checkpoint")
			}
			if e, _ := l.Entry(tc.tamper); !bytes.Equal(e, honest) {
				t.Error("Entry returns the tampered entry")
			}
			// The tampered entry still decodes, with a later timestamp.
			d, err := f.ReadTiles(t.Context(), []tlog.Tile{{H: 8, L: -1, N: int64(tc.tamper / 256), W: min(tc.size-int(tc.tamper/256*256), 256)}})
			if err != nil {
				t.Fatal(err)
			}
			tile := d[0]
			var e []byte
			for range tc.tamper%256 + 1 {
				if e, _, tile, err = cert.CutTileLeaf(tile); err != nil {
					t.Fatal(err)
				}
			}
			bad, err := cert.ParseTileLeaf(e)
			if err != nil {
				t.Fatal(err)
			}
			good, err := cert.ParseTileLeaf(honest)
			if err != nil {
				t.Fatal(err)
			}
			if bad.Timestamp != good.Timestamp+1 || !bytes.Equal(bad.Certificate, good.Certificate) {
				t.Errorf("tampered entry: timestamp %d (honest %d)", bad.Timestamp, good.Timestamp)
			}
		})
	}
}

func TestBadSignature(t *testing.T) {
	l := newLog(t)
	ca := newCA(t)
	addN(l, ca, leaves(t, ca, 1), 3)
	l.Publish()
	good := mustCheckpoint(t, l)
	goodNote := l.Checkpoint()

	l.SetBadSignature(true)
	_, err := openCheckpoint(t, l)
	var invalid *sumdbnote.InvalidSignatureError
	if !errors.As(err, &invalid) {
		t.Fatalf("bad-signature checkpoint: %v, want an InvalidSignatureError", err)
	}
	bad := l.Checkpoint()
	if len(bad) != len(goodNote) || bytes.Equal(bad, goodNote) {
		t.Fatal("bad signature has another shape, or is not corrupted")
	}
	// Same body, same key name and ID: only the signature differs.
	body := bytes.SplitAfter(goodNote, []byte("\n\n"))[0]
	if !bytes.HasPrefix(bad, body) {
		t.Error("bad-signature checkpoint changed the body")
	}

	l.SetBadSignature(false)
	if got := mustCheckpoint(t, l); got != good {
		t.Error("checkpoint changed across SetBadSignature")
	}
}

func TestGzip(t *testing.T) {
	l := newLog(t)
	ca := newCA(t)
	addN(l, ca, leaves(t, ca, 2), 300)
	l.Publish()
	mon := l.MonitoringURL() + "/"
	_, _, plain := get(t, mon+"tile/data/000")
	_, _, plainCheckpoint := get(t, mon+"checkpoint")
	if len(plain) == 0 {
		t.Fatal("empty data tile")
	}
	noAuto := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer noAuto.CloseIdleConnections()

	tests := []struct {
		name     string
		gzip     bool
		force    bool
		client   *http.Client
		accept   []string // Accept-Encoding values set by hand; nil leaves it to the client
		wantGzip bool     // Content-Encoding: gzip seen by the caller
	}{
		{"off", false, false, noAuto, []string{"gzip"}, false},
		{"asked by hand", true, false, http.DefaultClient, []string{"gzip"}, true},
		{"asked with others", true, false, http.DefaultClient, []string{"identity, gzip;q=0.5"}, true},
		{"star", true, false, http.DefaultClient, []string{"*"}, true},
		{"refused", true, false, http.DefaultClient, []string{"gzip;q=0, *"}, false},
		{"not asked", true, false, noAuto, nil, false},
		{"identity", true, false, http.DefaultClient, []string{"identity"}, false},
		{"forced", false, true, noAuto, nil, true},
		{"forced over identity", true, true, http.DefaultClient, []string{"identity"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l.SetGzip(tc.gzip)
			l.SetForceGzip(tc.force)
			defer l.SetGzip(false)
			defer l.SetForceGzip(false)
			var h http.Header
			if tc.accept != nil {
				h = http.Header{"Accept-Encoding": tc.accept}
			}
			for _, path := range []string{"tile/data/000", "tile/data/001.p/44", "tile/0/000"} {
				status, rh, body := do(t, tc.client, mon+path, h)
				_, _, want := do(t, noAuto, mon+path, nil)
				if tc.force {
					want = gunzip(t, want)
				}
				if status != 200 {
					t.Fatalf("%s: status %d", path, status)
				}
				if got := rh.Get("Content-Encoding") == "gzip"; got != tc.wantGzip {
					t.Errorf("%s: Content-Encoding %q, want gzip %v", path, rh.Get("Content-Encoding"), tc.wantGzip)
				}
				if tc.wantGzip {
					body = gunzip(t, body)
				}
				if !bytes.Equal(body, want) {
					t.Errorf("%s: body differs from the identity tile", path)
				}
			}
			// The checkpoint is never compressed.
			if _, rh, body := do(t, tc.client, mon+"checkpoint", h); rh.Get("Content-Encoding") != "" || !bytes.Equal(body, plainCheckpoint) {
				t.Errorf("checkpoint: Content-Encoding %q", rh.Get("Content-Encoding"))
			}
		})
	}

	// Go's transport asks for gzip itself and decompresses transparently,
	// so torchwood's client reads a gzipping log unchanged.
	l.SetGzip(true)
	resp, err := http.Get(mon + "tile/data/000")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !resp.Uncompressed || !bytes.Equal(body, plain) {
		t.Errorf("transparent gzip: Uncompressed %v, same body %v, %v", resp.Uncompressed, bytes.Equal(body, plain), err)
	}
	c, _ := newClient(t, l)
	if got := mustEntries(t, c, mustCheckpoint(t, l).Tree, 0); len(got) != 300 {
		t.Errorf("read %d entries through gzip, want 300", len(got))
	}
}

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

func TestFailNext(t *testing.T) {
	tests := []struct {
		name           string
		failOn         string
		n, status      int
		retryAfter     time.Duration
		request        string
		unaffected     string // "" when every path fails
		wantRetryAfter string
	}{
		{"429 on data tiles with Retry-After rounded up", statictest.PathDataTiles, 2, 429, 2500 * time.Millisecond,
			"tile/data/000.p/3", "tile/0/000.p/3", "3"},
		{"503 on checkpoint", statictest.PathCheckpoint, 1, 503, time.Second, "checkpoint", "tile/0/000.p/3", "1"},
		{"500 on all tiles", statictest.PathTiles, 2, 500, 0, "tile/0/000.p/3", "checkpoint", ""},
		{"hash tiles of one level", "tile/0/", 1, 502, 0, "tile/0/000.p/3", "tile/data/000.p/3", ""},
		{"full path", "/mon/issuer/", 1, 503, 0, "issuer/" + "%s", "checkpoint", ""},
		{"any", "", 3, 429, time.Second, "checkpoint", "", "1"},
		{"invalid status becomes 500", statictest.PathCheckpoint, 1, 42, 0, "checkpoint", "tile/0/000.p/3", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLog(t)
			ca := newCA(t)
			addN(l, ca, leaves(t, ca, 1), 3)
			l.Publish()
			fp := sha256.Sum256(ca.Chain()[0])
			fix := func(p string) string { return strings.ReplaceAll(p, "%s", hex.EncodeToString(fp[:])) }
			u := l.MonitoringURL() + "/" + fix(tc.request)
			l.FailNext(tc.failOn, tc.n, tc.status, tc.retryAfter)

			if tc.unaffected != "" {
				if status, _, _ := get(t, l.MonitoringURL()+"/"+tc.unaffected); status != 200 {
					t.Errorf("%s: status %d while %q fails", tc.unaffected, status, tc.failOn)
				}
			}
			wantStatus := tc.status
			if wantStatus < 100 {
				wantStatus = 500
			}
			for i := range tc.n {
				status, h, _ := get(t, u)
				if status != wantStatus {
					t.Errorf("request %d: status %d, want %d", i, status, wantStatus)
				}
				if got := h.Get("Retry-After"); got != tc.wantRetryAfter {
					t.Errorf("request %d: Retry-After %q, want %q", i, got, tc.wantRetryAfter)
				}
			}
			if status, _, _ := get(t, u); status != 200 {
				t.Errorf("after %d failures: status %d, want 200", tc.n, status)
			}
			if got := l.Requests(fix(tc.request)); got != tc.n+1 {
				t.Errorf("Requests(%s) = %d, want %d", tc.request, got, tc.n+1)
			}
		})
	}
}

func TestRequestsAndMethods(t *testing.T) {
	l := newLog(t)
	ca := newCA(t)
	addN(l, ca, leaves(t, ca, 1), 3)
	l.Publish()
	mon := l.MonitoringURL() + "/"
	for _, p := range []string{"checkpoint", "checkpoint", "tile/0/000.p/3", "tile/data/000.p/3", "tile/data/000.p/3", "nothing"} {
		get(t, mon+p)
	}
	if status, _, _ := get(t, l.SubmissionURL()+"/ct/v1/get-roots"); status != http.StatusNotFound {
		t.Errorf("submission path: status %d, want 404", status)
	}
	resp, err := http.Post(mon+"checkpoint", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST checkpoint: status %d, want 405", resp.StatusCode)
	}
	resp, err = http.Head(mon + "tile/0/000.p/3")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 3*32 {
		t.Errorf("HEAD tile: status %d length %d", resp.StatusCode, resp.ContentLength)
	}

	for prefix, want := range map[string]int{
		"":                         9,
		statictest.PathCheckpoint:  3, // two GETs and the POST
		"/mon/checkpoint":          3,
		statictest.PathTiles:       4,
		statictest.PathDataTiles:   2,
		"tile/0/":                  2,
		"nothing":                  1,
		"/sub/":                    1,
		"/sub/ct/v1/get-roots":     1,
		statictest.PathIssuers:     0,
		"tile/1/":                  0,
		"tile/data/000.p/3":        2,
		"/mon/tile/data/000.p/3":   2,
		"/mon/tile/data/000.p/3/x": 0,
	} {
		if got := l.Requests(prefix); got != want {
			t.Errorf("Requests(%q) = %d, want %d", prefix, got, want)
		}
	}
}

func TestFork(t *testing.T) {
	l := newLog(t)
	ca := newCA(t)
	ders := leaves(t, ca, 4)
	addN(l, ca, ders, 300)
	l.Publish()
	c, f := newClient(t, l)
	ctx := t.Context()
	cp1 := mustCheckpoint(t, l)
	before := mustEntries(t, c, cp1.Tree, 0)

	l.Fork(270)
	cp2 := mustCheckpoint(t, l) // still signed by the log
	if cp2.N != cp1.N || cp2.Hash == cp1.Hash || cp2.timestamp <= cp1.timestamp {
		t.Fatalf("after Fork: size %d root changed %v timestamp %d (was %d)", cp2.N, cp2.Hash != cp1.Hash, cp2.timestamp, cp1.timestamp)
	}
	after := mustEntries(t, c, cp2.Tree, 0) // verifies against the forked tree
	for i := range after {
		same := bytes.Equal(after[i], before[i])
		if same != (i < 270) {
			t.Errorf("entry %d: unchanged = %v, want %v", i, same, i < 270)
		}
		a, errA := cert.ParseTileLeaf(after[i])
		b, errB := cert.ParseTileLeaf(before[i])
		if errA != nil || errB != nil || !bytes.Equal(a.Certificate, b.Certificate) || a.LeafIndex != b.LeafIndex {
			t.Fatalf("forked entry %d is not the same certificate at the same index", i)
		}
	}

	addN(l, ca, ders, 20)
	l.Publish()
	cp3 := mustCheckpoint(t, l)
	p, err := tlog.ProveTree(cp3.N, cp1.N, torchwood.TileHashReaderWithContext(ctx, cp3.Tree, f))
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckTree(p, cp3.N, cp3.Hash, cp1.N, cp1.Hash); err == nil {
		t.Error("the pre-fork checkpoint is consistent with the forked tree")
	}
	if err := tlog.CheckTree(p, cp3.N, cp3.Hash, cp2.N, cp2.Hash); err != nil {
		t.Errorf("consistency within the fork: %v", err)
	}

	// Forking past the end changes nothing; forking unpublished entries
	// shows only at the next Publish.
	l.Fork(l.Added())
	if got := mustCheckpoint(t, l); got != cp3 {
		t.Error("Fork(Added()) changed the checkpoint")
	}
	l.AddX509(ders[0], nil)
	orig, _ := l.Entry(uint64(cp3.N))
	l.Fork(uint64(cp3.N))
	if got := mustCheckpoint(t, l); got != cp3 {
		t.Error("Fork beyond the checkpoint re-signed it")
	}
	if e, _ := l.Entry(uint64(cp3.N)); bytes.Equal(e, orig) {
		t.Error("unpublished entry not forked")
	}
}

func TestShrink(t *testing.T) {
	l := newLog(t)
	ca := newCA(t)
	addN(l, ca, leaves(t, ca, 2), 300)
	l.Publish()
	c, f := newClient(t, l)
	cp1 := mustCheckpoint(t, l)

	l.Shrink(40)
	cp2 := mustCheckpoint(t, l)
	if cp2.N != 40 || l.TreeSize() != 40 || cp2.timestamp <= cp1.timestamp {
		t.Fatalf("after Shrink(40): size %d timestamp %d (was %d)", cp2.N, cp2.timestamp, cp1.timestamp)
	}
	var hashes []cert.Hash
	for i := range uint64(40) {
		h, _ := l.LeafHash(i)
		hashes = append(hashes, h)
	}
	if cp2.Hash != tlog.Hash(mth(hashes)) {
		t.Error("shrunk root is not the root of the first 40 entries")
	}
	if got := mustEntries(t, c, cp2.Tree, 0); len(got) != 40 {
		t.Errorf("read %d entries from the shrunk tree", len(got))
	}
	// A client holding the larger checkpoint can no longer read its tiles.
	if _, err := readEntries(t.Context(), c, cp1.Tree, 0); err == nil {
		t.Error("tiles beyond the shrunk tree still served")
	}
	// The shrunk tree is an honest prefix: consistent with the larger one.
	l.Publish()
	p, err := tlog.ProveTree(cp1.N, cp2.N, torchwood.TileHashReaderWithContext(t.Context(), cp1.Tree, f))
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckTree(p, cp1.N, cp1.Hash, cp2.N, cp2.Hash); err != nil {
		t.Errorf("shrunk tree not a prefix: %v", err)
	}
	l.Shrink(1000)
	if got := mustCheckpoint(t, l); got.N != 300 {
		t.Errorf("Shrink(1000): size %d, want 300 (Added)", got.N)
	}
}

func TestDelay(t *testing.T) {
	l := newLog(t)
	l.SetDelay(time.Hour)
	url := l.MonitoringURL() + "/checkpoint"

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err == nil {
			var resp *http.Response
			if resp, err = http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
		errc <- err
	}()
	// The request is counted on arrival, then held.
	waitFor(t, "the request to arrive", func() bool { return l.Requests(statictest.PathCheckpoint) == 1 })
	select {
	case err := <-errc:
		t.Fatalf("delayed request returned early: %v", err)
	default:
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: %v", err)
	}

	l.SetDelay(0)
	mustCheckpoint(t, l)

	// Close ends a delayed request instead of waiting an hour for it.
	l.SetDelay(time.Hour)
	statusc := make(chan int, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			statusc <- 0
			return
		}
		resp.Body.Close()
		statusc <- resp.StatusCode
	}()
	waitFor(t, "the second request to arrive", func() bool { return l.Requests(statictest.PathCheckpoint) == 3 })
	closed := make(chan struct{})
	go func() {
		l.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked on a delayed request")
	}
	if status := <-statusc; status == 200 {
		t.Error("request delayed across Close succeeded")
	}
	l.Close() // idempotent
}

// TestSwitchesWhileServing flips every switch while clients read, for the
// race detector, and checks that only the expected statuses come back.
func TestSwitchesWhileServing(t *testing.T) {
	l := newLog(t)
	ca := newCA(t)
	ders := leaves(t, ca, 2)
	addN(l, ca, ders, 20)
	l.Publish()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths := []string{"checkpoint", "tile/0/000.p/20", "tile/data/000.p/20", "tile/data/000", "tile/1/000.p/1", "tile/0/000.p/12"}
			hc := &http.Client{}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, err := http.NewRequest(http.MethodGet, l.MonitoringURL()+"/"+paths[i%len(paths)], nil)
				if err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					req.Header.Set("Accept-Encoding", "gzip")
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	for i := range 60 {
		l.SetBadSignature(i%2 == 0)
		l.SetGzip(i%3 == 0)
		l.SetForceGzip(i%5 == 0)
		l.SetKeepPartials(i%4 == 0)
		l.FailNext("", 1, http.StatusServiceUnavailable, time.Second)
		l.SetDelay(time.Duration(i%3) * time.Microsecond)
		l.TamperEntry(uint64(i % 30))
		addN(l, ca, ders, 10)
		switch i % 4 {
		case 0:
			l.Fork(uint64(i % 15))
		case 1:
			l.Shrink(12)
		default:
			l.Publish()
		}
		_ = l.Requests("")
		_ = l.Checkpoint()
		_, _ = l.LeafHash(uint64(i))
	}
	waitFor(t, "requests to be served", func() bool { return l.Requests("") > 60 })
	close(stop)
	wg.Wait()
	for status := range statuses {
		if status != 200 && status != 404 && status != 503 {
			t.Errorf("unexpected status %d (%d times)", status, statuses[status])
		}
	}
}
