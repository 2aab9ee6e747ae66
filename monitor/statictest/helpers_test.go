package statictest_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"filippo.io/torchwood"
	"github.com/transparency-dev/formats/note"
	"golang.org/x/crypto/cryptobyte"
	sumdbnote "golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ctwatch/ctwatch/cert"
	"github.com/ctwatch/ctwatch/internal/testca"
	"github.com/ctwatch/ctwatch/monitor/statictest"
)

func newLog(t testing.TB, opts ...statictest.Option) *statictest.Log {
	t.Helper()
	l, err := statictest.New(opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(l.Close)
	return l
}

func newCA(t testing.TB) *testca.CA {
	t.Helper()
	ca, err := testca.New("statictest")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// leaves issues n certificates for distinct names.
func leaves(t testing.TB, ca *testca.CA, n int) [][]byte {
	t.Helper()
	ders := make([][]byte, n)
	for i := range ders {
		der, err := ca.Leaf(fmt.Sprintf("host%d.example", i))
		if err != nil {
			t.Fatal(err)
		}
		ders[i] = der
	}
	return ders
}

// addN adds n x509 entries cycling through ders, with ca's chain.
func addN(l *statictest.Log, ca *testca.CA, ders [][]byte, n int) {
	for i := range n {
		l.AddX509(ders[i%len(ders)], ca.Chain())
	}
}

// verifier builds the note verifier a client builds from a log list entry:
// the submission URL and the public key, through transparency-dev/formats.
func verifier(t testing.TB, l *statictest.Log) sumdbnote.Verifier {
	t.Helper()
	pub, err := x509.ParsePKIXPublicKey(l.PublicKeyDER())
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := note.RFC6962VerifierString(l.SubmissionURL(), pub)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewRFC6962Verifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// signedCheckpoint is a checkpoint that verified.
type signedCheckpoint struct {
	tlog.Tree
	// timestamp is the tree head timestamp from the signature, in ms.
	timestamp uint64
}

// openCheckpoint fetches the checkpoint and verifies it with the log's
// verifier.
func openCheckpoint(t testing.TB, l *statictest.Log) (signedCheckpoint, error) {
	t.Helper()
	status, h, body := get(t, l.MonitoringURL()+"/checkpoint")
	if status != http.StatusOK {
		return signedCheckpoint{}, fmt.Errorf("checkpoint status %d", status)
	}
	if ct := h.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("checkpoint Content-Type %q", ct)
	}
	n, err := sumdbnote.Open(body, sumdbnote.VerifierList(verifier(t, l)))
	if err != nil {
		return signedCheckpoint{}, err
	}
	c, err := torchwood.ParseCheckpoint(n.Text)
	if err != nil {
		return signedCheckpoint{}, err
	}
	if c.Origin != l.Origin() || c.Extension != "" {
		t.Errorf("checkpoint origin %q extension %q, want origin %q and no extension", c.Origin, c.Extension, l.Origin())
	}
	if len(n.Sigs) != 1 {
		t.Fatalf("checkpoint has %d signatures, want 1", len(n.Sigs))
	}
	sig, err := base64.StdEncoding.DecodeString(n.Sigs[0].Base64)
	if err != nil || len(sig) < 12 {
		t.Fatalf("signature %q", n.Sigs[0].Base64)
	}
	return signedCheckpoint{Tree: c.Tree, timestamp: binary.BigEndian.Uint64(sig[4:12])}, nil
}

func mustCheckpoint(t testing.TB, l *statictest.Log) signedCheckpoint {
	t.Helper()
	c, err := openCheckpoint(t, l)
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	return c
}

func get(t testing.TB, rawURL string) (int, http.Header, []byte) {
	t.Helper()
	return do(t, http.DefaultClient, rawURL, nil)
}

// do sends a GET with the given extra headers.
func do(t testing.TB, hc *http.Client, rawURL string, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", rawURL, err)
	}
	return resp.StatusCode, resp.Header, body
}

// cut is cert.CutTileLeaf in the shape torchwood's client wants.
func cut(tile []byte) ([]byte, tlog.Hash, []byte, error) {
	e, h, rest, err := cert.CutTileLeaf(tile)
	return e, tlog.Hash(h), rest, err
}

// fetcher is torchwood's tile fetcher pointed at the log, with the
// static-ct-api layout (torchwood.TilePath writes data tiles as
// tile/entries/, the tlog-tiles name).
func fetcher(t testing.TB, l *statictest.Log) *torchwood.TileFetcher {
	t.Helper()
	f, err := torchwood.NewTileFetcher(l.MonitoringURL()+"/", torchwood.WithTilePath(statictest.TilePath))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func newClient(t testing.TB, l *statictest.Log) (*torchwood.Client, *torchwood.TileFetcher) {
	t.Helper()
	f := fetcher(t, l)
	c, err := torchwood.NewClient(f, torchwood.WithCutEntry(cut), torchwood.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}

// readEntries reads entries [start, tree.N) through torchwood's client,
// which verifies each against the tree, calling Entries again where it stops
// before a partial data tile. It returns what it read before any error.
func readEntries(ctx context.Context, c *torchwood.Client, tree tlog.Tree, start int64) ([][]byte, error) {
	var out [][]byte
	next := start
	for next < tree.N {
		before := next
		for i, e := range c.Entries(ctx, tree, next) {
			if i != next {
				return out, fmt.Errorf("got entry %d, want %d", i, next)
			}
			out = append(out, append([]byte(nil), e...))
			next++
		}
		if err := c.Err(); err != nil {
			return out, err
		}
		if next == before {
			return out, errors.New("no progress")
		}
	}
	return out, nil
}

func mustEntries(t testing.TB, c *torchwood.Client, tree tlog.Tree, start int64) [][]byte {
	t.Helper()
	es, err := readEntries(t.Context(), c, tree, start)
	if err != nil {
		t.Fatalf("entries [%d, %d): %v", start, tree.N, err)
	}
	return es
}

// specLeafHash computes an entry's RFC 6962 leaf hash from its decoded
// fields, written from RFC 6962 and static-ct-api independently of the cert
// package: SHA-256(0x00 || MerkleTreeLeaf), where the MerkleTreeLeaf is v1,
// timestamped_entry, and the TimestampedEntry carries the leaf_index
// extension.
func specLeafHash(t testing.TB, l *cert.TileLeaf) cert.Hash {
	t.Helper()
	var b cryptobyte.Builder
	b.AddUint8(0) // leaf hash prefix
	b.AddUint8(0) // version v1
	b.AddUint8(0) // timestamped_entry
	b.AddUint64(l.Timestamp)
	if l.Precert {
		b.AddUint16(1)
		b.AddBytes(l.IssuerKeyHash[:])
	} else {
		b.AddUint16(0)
	}
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(l.Certificate) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8(0) // leaf_index
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			b.AddBytes([]byte{byte(l.LeafIndex >> 32), byte(l.LeafIndex >> 24), byte(l.LeafIndex >> 16),
				byte(l.LeafIndex >> 8), byte(l.LeafIndex)})
		})
	})
	in, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(in)
}

// mth is the Merkle Tree Hash of RFC 6962 section 2.1 over leaf hashes,
// written from the RFC so that roots are checked against something other
// than the tree the log uses.
func mth(leafHashes []cert.Hash) cert.Hash {
	switch len(leafHashes) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leafHashes[0]
	}
	k := 1
	for k*2 < len(leafHashes) {
		k *= 2
	}
	l, r := mth(leafHashes[:k]), mth(leafHashes[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
