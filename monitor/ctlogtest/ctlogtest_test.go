package ctlogtest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/jsonclient"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ctwatch/ctwatch/internal/testca"
	"github.com/ctwatch/ctwatch/monitor/ctlogtest"
)

// --- helpers ---

func newLog(t testing.TB, opts ...ctlogtest.Option) *ctlogtest.Log {
	t.Helper()
	l, err := ctlogtest.New(opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(l.Close)
	return l
}

func newCA(t testing.TB) *testca.CA {
	t.Helper()
	ca, err := testca.New("ctlogtest")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

type discard struct{}

func (discard) Printf(string, ...any) {}

// newClient returns ct-go's client for l, verifying STH signatures with the
// log's published key.
func newClient(t testing.TB, l *ctlogtest.Log) *client.LogClient {
	t.Helper()
	c, err := client.New(l.URL(), http.DefaultClient, jsonclient.Options{
		PublicKeyDER: l.PublicKeyDER(),
		Logger:       discard{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// addLeaves adds n certificates for distinct names and returns their DER.
func addLeaves(t testing.TB, l *ctlogtest.Log, ca *testca.CA, n int) [][]byte {
	t.Helper()
	ders := make([][]byte, n)
	for i := range ders {
		der, err := ca.Leaf(strings.Repeat("a", i+1) + ".example")
		if err != nil {
			t.Fatal(err)
		}
		ders[i] = der
		l.AddX509(der, ca.Chain())
	}
	return ders
}

func get(t testing.TB, rawURL string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(rawURL)
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

func mustSTH(t testing.TB, c *client.LogClient) *ct.SignedTreeHead {
	t.Helper()
	sth, err := c.GetSTH(context.Background())
	if err != nil {
		t.Fatalf("GetSTH: %v", err)
	}
	return sth
}

func rawEntries(t testing.TB, c *client.LogClient, start, end int64) []ct.LeafEntry {
	t.Helper()
	resp, err := c.GetRawEntries(context.Background(), start, end)
	if err != nil {
		t.Fatalf("GetRawEntries(%d, %d): %v", start, end, err)
	}
	return resp.Entries
}

// mth is the Merkle Tree Hash of RFC 6962 section 2.1, written from the RFC
// so that roots are checked against something other than the tree the log
// uses.
func mth(leaves [][]byte) []byte {
	switch len(leaves) {
	case 0:
		h := sha256.Sum256(nil)
		return h[:]
	case 1:
		h := sha256.Sum256(append([]byte{0}, leaves[0]...))
		return h[:]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(mth(leaves[:k]))
	h.Write(mth(leaves[k:]))
	return h.Sum(nil)
}

func leafInputs(entries []ct.LeafEntry) [][]byte {
	out := make([][]byte, len(entries))
	for i, e := range entries {
		out[i] = e.LeafInput
	}
	return out
}

// --- tests ---

func TestSTHSignedAndChangesOnlyOnPublish(t *testing.T) {
	l := newLog(t)
	c := newClient(t, l)
	ca := newCA(t)

	sth0 := mustSTH(t, c) // GetSTH verifies the signature with the log's key
	empty := sha256.Sum256(nil)
	if sth0.TreeSize != 0 || !bytes.Equal(sth0.SHA256RootHash[:], empty[:]) {
		t.Fatalf("initial STH = size %d root %x, want empty tree", sth0.TreeSize, sth0.SHA256RootHash)
	}

	addLeaves(t, l, ca, 3)
	if got := mustSTH(t, c); got.TreeSize != 0 || got.Timestamp != sth0.Timestamp {
		t.Errorf("STH changed without Publish: size %d", got.TreeSize)
	}
	if l.Added() != 3 || l.TreeSize() != 0 {
		t.Errorf("Added %d TreeSize %d, want 3 and 0", l.Added(), l.TreeSize())
	}

	l.Publish()
	sth1 := mustSTH(t, c)
	if sth1.TreeSize != 3 || l.TreeSize() != 3 {
		t.Errorf("after Publish: size %d, TreeSize %d; want 3", sth1.TreeSize, l.TreeSize())
	}
	if sth1.Timestamp <= sth0.Timestamp {
		t.Errorf("timestamp %d not after %d", sth1.Timestamp, sth0.Timestamp)
	}
	if want := mth(leafInputs(rawEntries(t, c, 0, 2))); !bytes.Equal(sth1.SHA256RootHash[:], want) {
		t.Errorf("root %x, want RFC 6962 MTH %x", sth1.SHA256RootHash, want)
	}

	l.Publish()
	sth2 := mustSTH(t, c)
	if sth2.Timestamp <= sth1.Timestamp || sth2.SHA256RootHash != sth1.SHA256RootHash {
		t.Errorf("empty Publish: timestamp %d (was %d), root changed %v", sth2.Timestamp, sth1.Timestamp,
			sth2.SHA256RootHash != sth1.SHA256RootHash)
	}

	// The signature checked on its own, with a verifier built from the
	// published SubjectPublicKeyInfo.
	pub, err := x509.ParsePKIXPublicKey(l.PublicKeyDER())
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := pub.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Fatalf("public key is %T, want ECDSA P-256", pub)
	}
	v, err := ct.NewSignatureVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifySTHSignature(*sth2); err != nil {
		t.Errorf("VerifySTHSignature: %v", err)
	}
	forged := *sth2
	forged.TreeSize++
	if err := v.VerifySTHSignature(forged); err == nil {
		t.Error("signature verifies for another tree size")
	}
	if got, want := l.LogID(), sha256.Sum256(l.PublicKeyDER()); got != want {
		t.Errorf("LogID %x, want %x", got, want)
	}
}

func TestWithKeyKeepsIdentity(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newLog(t, ctlogtest.WithKey(key)), newLog(t, ctlogtest.WithKey(key))
	if a.LogID() != b.LogID() {
		t.Error("two logs with one key have different IDs")
	}
	if a.LogID() == newLog(t).LogID() {
		t.Error("a fresh log reuses the key")
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := ctlogtest.New(ctlogtest.WithKey(p384)); err == nil {
		l.Close()
		t.Error("New accepted a P-384 key")
	}
}

func TestEntries(t *testing.T) {
	l := newLog(t)
	c := newClient(t, l)
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
	rawLeaf, rawExtra := []byte{0xde, 0xad, 0xbe, 0xef}, []byte{0x01}
	if i := l.AddRaw(rawLeaf, rawExtra); i != 2 {
		t.Errorf("AddRaw index %d, want 2", i)
	}
	l.Publish()
	sth := mustSTH(t, c)
	entries := rawEntries(t, c, 0, 2)
	if len(entries) != 3 {
		t.Fatalf("got %d entries, want 3", len(entries))
	}

	x, err := ct.LogEntryFromLeaf(0, &entries[0])
	if err != nil {
		t.Fatalf("x509 entry: %v", err)
	}
	if x.Leaf.Version != ct.V1 || x.Leaf.LeafType != ct.TimestampedEntryLeafType ||
		x.Leaf.TimestampedEntry.EntryType != ct.X509LogEntryType || len(x.Leaf.TimestampedEntry.Extensions) != 0 {
		t.Errorf("x509 leaf header = %+v", x.Leaf)
	}
	if x.X509Cert == nil || !bytes.Equal(x.X509Cert.Raw, leaf) {
		t.Error("x509 entry does not hold the added certificate")
	}
	checkChain(t, "x509", x.Chain, chain)

	p, err := ct.LogEntryFromLeaf(1, &entries[1])
	if err != nil {
		t.Fatalf("precert entry: %v", err)
	}
	if p.Leaf.TimestampedEntry.EntryType != ct.PrecertLogEntryType || p.Precert == nil {
		t.Fatalf("precert entry type %v", p.Leaf.TimestampedEntry.EntryType)
	}
	if !bytes.Equal(p.Precert.Submitted.Data, pre) {
		t.Error("precert entry does not hold the submitted precertificate")
	}
	if want := sha256.Sum256(ca.Intermediate().RawSubjectPublicKeyInfo); p.Precert.IssuerKeyHash != want {
		t.Errorf("issuer_key_hash %x, want %x", p.Precert.IssuerKeyHash, want)
	}
	finalCert, err := x509.ParseCertificate(final)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Leaf.TimestampedEntry.PrecertEntry.TBSCertificate; !bytes.Equal(got, finalCert.RawTBSCertificate) {
		t.Error("precert leaf TBS != TBS of the final certificate")
	}
	checkChain(t, "precert", p.Chain, chain)

	if !bytes.Equal(entries[2].LeafInput, rawLeaf) || !bytes.Equal(entries[2].ExtraData, rawExtra) {
		t.Errorf("raw entry = %x / %x", entries[2].LeafInput, entries[2].ExtraData)
	}
	if _, err := ct.LogEntryFromLeaf(2, &entries[2]); err == nil {
		t.Error("malformed raw entry parsed")
	}
	if li, ed, ok := l.Entry(2); !ok || !bytes.Equal(li, rawLeaf) || !bytes.Equal(ed, rawExtra) {
		t.Error("Entry(2) does not return the raw entry")
	}
	if _, _, ok := l.Entry(3); ok {
		t.Error("Entry(3) found an entry that does not exist")
	}

	if ts0, ts1 := x.Leaf.TimestampedEntry.Timestamp, p.Leaf.TimestampedEntry.Timestamp; ts0 >= ts1 || ts1 >= sth.Timestamp {
		t.Errorf("timestamps %d, %d, STH %d: want strictly increasing", ts0, ts1, sth.Timestamp)
	}
	if want := mth(leafInputs(entries)); !bytes.Equal(sth.SHA256RootHash[:], want) {
		t.Error("root does not cover the served entries")
	}
}

func checkChain(t *testing.T, what string, got []ct.ASN1Cert, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s chain has %d certificates, want %d", what, len(got), len(want))
		return
	}
	for i := range want {
		if !bytes.Equal(got[i].Data, want[i]) {
			t.Errorf("%s chain[%d] differs", what, i)
		}
	}
}

func TestAddPrecertTBS(t *testing.T) {
	ca := newCA(t)
	pre, _, err := ca.PrecertPair("tbs.example")
	if err != nil {
		t.Fatal(err)
	}
	// A precertificate whose only extension is the poison: real logs keep
	// an empty extension list, and so must this one.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(42),
		Subject:         pkix.Name{CommonName: "only-poison.example"},
		NotBefore:       time.Unix(1700000000, 0),
		NotAfter:        time.Unix(1800000000, 0),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}, Critical: true, Value: []byte{5, 0}}},
	}
	onlyPoison, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		precert []byte
	}{{"testca precert", pre}, {"only poison", onlyPoison}} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLog(t)
			c := newClient(t, l)
			if _, err := l.AddPrecert(tc.precert, ca.Intermediate(), nil); err != nil {
				t.Fatal(err)
			}
			l.Publish()
			e, err := ct.LogEntryFromLeaf(0, &rawEntries(t, c, 0, 0)[0])
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := ctx509.ParseCertificate(tc.precert)
			if err != nil {
				t.Fatal(err)
			}
			// ct-go's RemoveCTPoison is an independent implementation.
			want, err := ctx509.RemoveCTPoison(parsed.RawTBSCertificate)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Leaf.TimestampedEntry.PrecertEntry.TBSCertificate; !bytes.Equal(got, want) {
				t.Errorf("leaf TBS\n got %x\nwant %x", got, want)
			}
			if len(e.Chain) != 0 {
				t.Errorf("chain has %d certificates, want none", len(e.Chain))
			}
		})
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
			if i, err := l.AddPrecert(tc.precert, tc.issuer, nil); err == nil {
				t.Errorf("AddPrecert succeeded with index %d", i)
			}
		})
	}
	if n := l.Added(); n != 0 {
		t.Errorf("failed AddPrecert calls added %d entries", n)
	}
}

func TestPageSize(t *testing.T) {
	tests := []struct {
		name     string
		opts     []ctlogtest.Option
		set      *int
		start    int64
		end      int64
		wantLast uint64
	}{
		{"default 256 caps 300", nil, nil, 0, 299, 255},
		{"option 32", []ctlogtest.Option{ctlogtest.WithPageSize(32)}, nil, 10, 299, 41},
		{"set 1", nil, ptr(1), 5, 9, 5},
		{"set 3", nil, ptr(3), 0, 9, 2},
		{"set 0 no limit", nil, ptr(0), 0, 299, 299},
		{"request smaller than page", nil, ptr(100), 7, 8, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLog(t, tc.opts...)
			c := newClient(t, l)
			for i := range 300 {
				l.AddRaw([]byte{byte(i >> 8), byte(i)}, nil)
			}
			l.Publish()
			if tc.set != nil {
				l.SetPageSize(*tc.set)
			}
			entries := rawEntries(t, c, tc.start, tc.end)
			if want := int(tc.wantLast) - int(tc.start) + 1; len(entries) != want {
				t.Fatalf("got %d entries, want %d", len(entries), want)
			}
			for i, e := range entries {
				idx := int(tc.start) + i
				if !bytes.Equal(e.LeafInput, []byte{byte(idx >> 8), byte(idx)}) {
					t.Fatalf("entry %d holds %x", idx, e.LeafInput)
				}
			}
			want := []ctlogtest.Range{{Start: uint64(tc.start), End: tc.wantLast}}
			if got := l.EntryRanges(); len(got) != 1 || got[0] != want[0] {
				t.Errorf("EntryRanges = %v, want %v", got, want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestBadRequests(t *testing.T) {
	l := newLog(t)
	ca := newCA(t)
	ders := addLeaves(t, l, ca, 5)
	l.Publish()
	l.AddX509(ders[0], nil) // added, not published: beyond the tree
	hash := rfc6962.DefaultHasher.HashLeaf([]byte("not in the log"))

	tests := []struct {
		name, path string
		want       int
	}{
		{"entries ok", "get-entries?start=0&end=4", 200},
		{"entries start > end", "get-entries?start=3&end=2", 400},
		{"entries end beyond tree", "get-entries?start=0&end=5", 400},
		{"entries start beyond tree", "get-entries?start=7&end=9", 400},
		{"entries missing end", "get-entries?start=0", 400},
		{"entries missing start", "get-entries?end=1", 400},
		{"entries negative", "get-entries?start=-1&end=2", 400},
		{"entries not a number", "get-entries?start=zero&end=2", 400},
		{"entries overflow", "get-entries?start=0&end=99999999999999999999", 400},
		{"entries max uint64", "get-entries?start=18446744073709551615&end=18446744073709551615", 400},
		{"consistency ok", "get-sth-consistency?first=2&second=5", 200},
		{"consistency first > second", "get-sth-consistency?first=4&second=3", 400},
		{"consistency second beyond tree", "get-sth-consistency?first=1&second=6", 400},
		{"consistency missing", "get-sth-consistency?first=1", 400},
		{"entry-and-proof ok", "get-entry-and-proof?leaf_index=4&tree_size=5", 200},
		{"entry-and-proof index = size", "get-entry-and-proof?leaf_index=5&tree_size=5", 400},
		{"entry-and-proof size beyond tree", "get-entry-and-proof?leaf_index=0&tree_size=6", 400},
		{"entry-and-proof missing", "get-entry-and-proof?leaf_index=0", 400},
		{"proof-by-hash bad base64", "get-proof-by-hash?hash=%25%25&tree_size=5", 400},
		{"proof-by-hash short hash", "get-proof-by-hash?hash=AAAA&tree_size=5", 400},
		{"proof-by-hash size 0", "get-proof-by-hash?hash=" + url.QueryEscape(base64.StdEncoding.EncodeToString(hash)) + "&tree_size=0", 400},
		{"proof-by-hash unknown", "get-proof-by-hash?hash=" + url.QueryEscape(base64.StdEncoding.EncodeToString(hash)) + "&tree_size=5", 404},
		{"unknown endpoint", "get-everything", 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := get(t, l.URL()+"/ct/v1/"+tc.path)
			if status != tc.want {
				t.Errorf("status %d (%q), want %d", status, body, tc.want)
			}
			if status == 200 && !json.Valid(body) {
				t.Errorf("200 with invalid JSON %q", body)
			}
		})
	}

	resp, err := http.Post(l.URL()+"/ct/v1/get-sth", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST get-sth: status %d, want 405", resp.StatusCode)
	}
	if status, _, _ := get(t, l.URL()+"/get-sth"); status != http.StatusNotFound {
		t.Errorf("get-sth outside /ct/v1/: status %d, want 404", status)
	}
	if got := l.Requests("/get-sth"); got != 1 {
		t.Errorf("Requests(/get-sth) = %d, want 1", got)
	}
}

func TestConsistencyProofs(t *testing.T) {
	l := newLog(t)
	c := newClient(t, l)
	ctx := context.Background()
	const n = 13
	roots := make([][]byte, n+1)
	for i := 0; i <= n; i++ {
		if i > 0 {
			l.AddRaw([]byte{byte(i)}, nil)
			l.Publish()
		}
		sth := mustSTH(t, c)
		if sth.TreeSize != uint64(i) {
			t.Fatalf("STH size %d, want %d", sth.TreeSize, i)
		}
		roots[i] = sth.SHA256RootHash[:]
	}
	for first := uint64(0); first <= n; first++ {
		for second := first; second <= n; second++ {
			p, err := c.GetSTHConsistency(ctx, first, second)
			if err != nil {
				t.Fatalf("GetSTHConsistency(%d, %d): %v", first, second, err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, first, second, p, roots[first], roots[second]); err != nil {
				t.Errorf("consistency %d -> %d: %v", first, second, err)
			}
			if first > 0 && first < second {
				if err := proof.VerifyConsistency(rfc6962.DefaultHasher, first, second, p, roots[first-1], roots[second]); err == nil {
					t.Errorf("consistency %d -> %d verifies against the wrong first root", first, second)
				}
			}
		}
	}
}

func TestInclusionProofs(t *testing.T) {
	l := newLog(t)
	c := newClient(t, l)
	ctx := context.Background()
	const n = 11
	for i := range n {
		l.AddRaw([]byte{'L', byte(i)}, []byte{byte(i)})
	}
	l.Publish()
	leaves := leafInputs(rawEntries(t, c, 0, n-1))
	for _, size := range []uint64{1, 2, 5, 8, n} {
		root := mth(leaves[:size])
		for i := uint64(0); i < size; i++ {
			leafHash := rfc6962.DefaultHasher.HashLeaf(leaves[i])

			ep, err := c.GetEntryAndProof(ctx, i, size)
			if err != nil {
				t.Fatalf("GetEntryAndProof(%d, %d): %v", i, size, err)
			}
			if !bytes.Equal(ep.LeafInput, leaves[i]) || !bytes.Equal(ep.ExtraData, []byte{byte(i)}) {
				t.Errorf("GetEntryAndProof(%d, %d) returned another entry", i, size)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, size, leafHash, ep.AuditPath, root); err != nil {
				t.Errorf("get-entry-and-proof %d in %d: %v", i, size, err)
			}

			pb, err := c.GetProofByHash(ctx, leafHash, size)
			if err != nil {
				t.Fatalf("GetProofByHash(%d, %d): %v", i, size, err)
			}
			if pb.LeafIndex != int64(i) {
				t.Errorf("get-proof-by-hash index %d, want %d", pb.LeafIndex, i)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, size, leafHash, pb.AuditPath, root); err != nil {
				t.Errorf("get-proof-by-hash %d in %d: %v", i, size, err)
			}
		}
	}
}

func TestGetRoots(t *testing.T) {
	ca := newCA(t)
	c := newClient(t, newLog(t, ctlogtest.WithRoots(ca.Root().Raw, ca.Intermediate().Raw)))
	roots, err := c.GetAcceptedRoots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 2 || !bytes.Equal(roots[0].Data, ca.Root().Raw) || !bytes.Equal(roots[1].Data, ca.Intermediate().Raw) {
		t.Errorf("GetAcceptedRoots returned %d roots, not the configured ones", len(roots))
	}

	status, _, body := get(t, newLog(t).URL()+"/ct/v1/get-roots")
	if status != 200 || string(body) != `{"certificates":[]}` {
		t.Errorf("default get-roots = %d %s", status, body)
	}
}

func TestFailNext(t *testing.T) {
	tests := []struct {
		name           string
		failOn         string
		n, status      int
		retryAfter     time.Duration
		request        string
		wantRetryAfter string
	}{
		{"503 on get-sth", ctlogtest.EndpointGetSTH, 2, 503, 0, ctlogtest.EndpointGetSTH, ""},
		{"429 with Retry-After rounded up", ctlogtest.EndpointGetEntries, 1, 429, 2500 * time.Millisecond, ctlogtest.EndpointGetEntries, "3"},
		{"503 with Retry-After", ctlogtest.EndpointGetSTH, 1, 503, time.Second, ctlogtest.EndpointGetSTH, "1"},
		{"any endpoint", "", 3, 500, 0, ctlogtest.EndpointGetRoots, ""},
		{"full path", "/ct/v1/get-sth-consistency", 1, 502, 0, ctlogtest.EndpointGetSTHConsistency, ""},
		{"invalid status becomes 500", ctlogtest.EndpointGetSTH, 1, 42, 0, ctlogtest.EndpointGetSTH, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLog(t)
			l.AddRaw([]byte{1}, nil)
			l.Publish()
			u := l.URL() + "/ct/v1/" + tc.request + "?start=0&end=0&first=0&second=1"
			l.FailNext(tc.failOn, tc.n, tc.status, tc.retryAfter)

			// Another endpoint is not affected unless the rule is for any.
			if tc.failOn != "" {
				if status, _, _ := get(t, l.URL()+"/ct/v1/get-roots"); status != 200 {
					t.Errorf("get-roots status %d while %s fails", status, tc.failOn)
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
			if status, _, body := get(t, u); status != 200 || !json.Valid(body) {
				t.Errorf("after %d failures: status %d body %q, want 200 with JSON", tc.n, status, body)
			}
			if got := l.Requests(tc.request); got != tc.n+1 {
				t.Errorf("Requests(%s) = %d, want %d", tc.request, got, tc.n+1)
			}
		})
	}
}

func TestFailNextSeenByClient(t *testing.T) {
	l := newLog(t)
	c := newClient(t, l)
	l.FailNext(ctlogtest.EndpointGetSTH, 1, http.StatusTooManyRequests, 5*time.Second)
	_, err := c.GetSTH(context.Background())
	var rspErr jsonclient.RspError
	if !errors.As(err, &rspErr) || rspErr.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("GetSTH error %v, want RspError with 429", err)
	}
	mustSTH(t, c)
}

func TestTruncateNext(t *testing.T) {
	l := newLog(t)
	c := newClient(t, l)
	l.AddRaw([]byte("x"), nil)
	l.Publish()

	l.TruncateNext(ctlogtest.EndpointGetSTH, 1)
	if _, err := c.GetSTH(context.Background()); err == nil {
		t.Error("GetSTH parsed a truncated body")
	}
	mustSTH(t, c)

	l.TruncateNext("", 2)
	for _, ep := range []string{"get-roots", "get-entries?start=0&end=0"} {
		status, _, body := get(t, l.URL()+"/ct/v1/"+ep)
		if status != 200 || len(body) == 0 || json.Valid(body) {
			t.Errorf("%s: status %d body %q, want 200 with invalid JSON", ep, status, body)
		}
	}
	// Errors do not consume truncations.
	l.TruncateNext(ctlogtest.EndpointGetEntries, 1)
	if status, _, _ := get(t, l.URL()+"/ct/v1/get-entries?start=5&end=6"); status != 400 {
		t.Errorf("status %d, want 400", status)
	}
	if status, _, body := get(t, l.URL()+"/ct/v1/get-entries?start=0&end=0"); status != 200 || json.Valid(body) {
		t.Errorf("truncation was consumed by an error response: %q", body)
	}
	rawEntries(t, c, 0, 0)
	if got := l.EntryRanges(); len(got) != 1 {
		t.Errorf("EntryRanges = %v, want only the intact response", got)
	}
}

func TestBadSignature(t *testing.T) {
	l := newLog(t)
	c := newClient(t, l)
	l.AddRaw([]byte("x"), nil)
	l.Publish()
	good := mustSTH(t, c)

	l.SetBadSignature(true)
	if _, err := c.GetSTH(context.Background()); err == nil {
		t.Fatal("GetSTH accepted a bad signature")
	}
	status, _, body := get(t, l.URL()+"/ct/v1/get-sth")
	var resp ct.GetSTHResponse
	if status != 200 || json.Unmarshal(body, &resp) != nil {
		t.Fatalf("bad-signature get-sth: %d %q", status, body)
	}
	sth, err := resp.ToSignedTreeHead() // still a well-formed DigitallySigned
	if err != nil {
		t.Fatalf("bad signature is malformed: %v", err)
	}
	if sth.TreeSize != good.TreeSize || sth.SHA256RootHash != good.SHA256RootHash {
		t.Error("bad-signature STH changed the tree head")
	}
	if err := c.VerifySTHSignature(*sth); err == nil {
		t.Error("corrupted signature verifies")
	}

	l.SetBadSignature(false)
	if got := mustSTH(t, c); got.Timestamp != good.Timestamp {
		t.Error("STH changed across SetBadSignature")
	}
}

func TestFork(t *testing.T) {
	l := newLog(t)
	c := newClient(t, l)
	ctx := context.Background()
	ca := newCA(t)
	addLeaves(t, l, ca, 8)
	l.Publish()
	sth1 := mustSTH(t, c)
	before := rawEntries(t, c, 0, 7)

	l.Fork(3)
	sth2 := mustSTH(t, c) // still signed by the log
	if sth2.TreeSize != sth1.TreeSize || sth2.SHA256RootHash == sth1.SHA256RootHash || sth2.Timestamp <= sth1.Timestamp {
		t.Fatalf("after Fork: size %d root changed %v timestamp %d (was %d)", sth2.TreeSize,
			sth2.SHA256RootHash != sth1.SHA256RootHash, sth2.Timestamp, sth1.Timestamp)
	}
	after := rawEntries(t, c, 0, 7)
	if want := mth(leafInputs(after)); !bytes.Equal(sth2.SHA256RootHash[:], want) {
		t.Error("forked root does not cover the forked entries")
	}
	for i := range after {
		same := bytes.Equal(after[i].LeafInput, before[i].LeafInput)
		if same != (i < 3) {
			t.Errorf("entry %d: unchanged = %v, want %v", i, same, i < 3)
		}
		// Forked entries are still well-formed entries of the same certificate.
		a, err := ct.LogEntryFromLeaf(int64(i), &after[i])
		if err != nil {
			t.Fatalf("forked entry %d: %v", i, err)
		}
		b, err := ct.LogEntryFromLeaf(int64(i), &before[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.X509Cert.Raw, b.X509Cert.Raw) {
			t.Errorf("forked entry %d holds another certificate", i)
		}
	}

	addLeaves(t, l, ca, 4)
	l.Publish()
	sth3 := mustSTH(t, c)
	p, err := c.GetSTHConsistency(ctx, sth1.TreeSize, sth3.TreeSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, sth1.TreeSize, sth3.TreeSize, p, sth1.SHA256RootHash[:], sth3.SHA256RootHash[:]); err == nil {
		t.Error("consistency proof from the pre-fork tree head verifies")
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, sth2.TreeSize, sth3.TreeSize, p, sth2.SHA256RootHash[:], sth3.SHA256RootHash[:]); err != nil {
		t.Errorf("consistency proof within the fork: %v", err)
	}

	// Forking past the end changes nothing.
	l.Fork(l.Added())
	if got := mustSTH(t, c); got.Timestamp != sth3.Timestamp || got.SHA256RootHash != sth3.SHA256RootHash {
		t.Error("Fork(Added()) changed the tree head")
	}
	// Forking unpublished entries only shows at the next Publish.
	l.AddRaw([]byte{1, 2, 3}, nil)
	l.Fork(sth3.TreeSize)
	if got := mustSTH(t, c); got.Timestamp != sth3.Timestamp {
		t.Error("Fork beyond the tree head re-signed it")
	}
	if li, _, _ := l.Entry(sth3.TreeSize); bytes.Equal(li, []byte{1, 2, 3}) {
		t.Error("raw entry not forked")
	}
}

func TestShrink(t *testing.T) {
	l := newLog(t)
	c := newClient(t, l)
	for i := range 10 {
		l.AddRaw([]byte{byte(i)}, nil)
	}
	l.Publish()
	sth1 := mustSTH(t, c)
	leaves := leafInputs(rawEntries(t, c, 0, 9))

	l.Shrink(4)
	sth2 := mustSTH(t, c)
	if sth2.TreeSize != 4 || l.TreeSize() != 4 || sth2.Timestamp <= sth1.Timestamp {
		t.Fatalf("after Shrink(4): size %d timestamp %d (was %d)", sth2.TreeSize, sth2.Timestamp, sth1.Timestamp)
	}
	if !bytes.Equal(sth2.SHA256RootHash[:], mth(leaves[:4])) {
		t.Error("shrunk root is not the root of the first 4 entries")
	}
	if status, _, _ := get(t, l.URL()+"/ct/v1/get-entries?start=0&end=5"); status != 400 {
		t.Errorf("get-entries beyond the shrunk tree: status %d, want 400", status)
	}

	l.Publish()
	if got := mustSTH(t, c); got.TreeSize != 10 {
		t.Errorf("Publish after Shrink: size %d, want 10", got.TreeSize)
	}
	l.Shrink(100)
	if got := mustSTH(t, c); got.TreeSize != 10 {
		t.Errorf("Shrink(100): size %d, want 10 (Added)", got.TreeSize)
	}
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

func TestDelay(t *testing.T) {
	l := newLog(t)
	c := newClient(t, l)
	l.SetDelay(time.Hour)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.GetSTH(ctx)
		errc <- err
	}()
	// The request is counted on arrival, then held.
	waitFor(t, "the request to arrive", func() bool { return l.Requests(ctlogtest.EndpointGetSTH) == 1 })
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
	mustSTH(t, c)

	// Close ends a delayed request instead of waiting an hour for it.
	l.SetDelay(time.Hour)
	go func() {
		_, err := c.GetSTH(context.Background())
		errc <- err
	}()
	waitFor(t, "the second request to arrive", func() bool { return l.Requests(ctlogtest.EndpointGetSTH) == 3 })
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
	if err := <-errc; err == nil {
		t.Error("request delayed across Close succeeded")
	}
	l.Close() // idempotent
}

// TestSwitchesWhileServing flips every switch while clients read, for the
// race detector, and checks that only the expected statuses come back.
func TestSwitchesWhileServing(t *testing.T) {
	l := newLog(t)
	ca := newCA(t)
	addLeaves(t, l, ca, 20)
	l.Publish()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths := []string{"get-sth", "get-entries?start=0&end=9", "get-sth-consistency?first=3&second=10",
				"get-entry-and-proof?leaf_index=2&tree_size=10", "get-roots"}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(l.URL() + "/ct/v1/" + paths[i%len(paths)])
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
	for i := range 50 {
		l.SetBadSignature(i%2 == 0)
		l.SetPageSize(i % 7)
		l.FailNext("", 1, http.StatusServiceUnavailable, time.Second)
		l.TruncateNext("", 1)
		l.SetDelay(time.Duration(i%3) * time.Microsecond)
		l.AddRaw([]byte{byte(i)}, nil)
		switch i % 4 {
		case 0:
			l.Fork(uint64(i % 15))
		case 1:
			l.Shrink(12)
		default:
			l.Publish()
		}
		_ = l.Requests("")
		_ = l.EntryRanges()
	}
	waitFor(t, "requests to be served", func() bool { return l.Requests("") > 50 })
	close(stop)
	wg.Wait()
	for status := range statuses {
		if status != 200 && status != 400 && status != 503 {
			t.Errorf("unexpected status %d (%d times)", status, statuses[status])
		}
	}
}

// --- benchmarks ---

// BenchmarkGetEntries measures the log serving 256-entry pages of real
// certificates over loopback HTTP: the ceiling it puts on a client's speed.
func BenchmarkGetEntries(b *testing.B) {
	ca := newCA(b)
	l := newLog(b)
	der, err := ca.Leaf("bench.example", "www.bench.example")
	if err != nil {
		b.Fatal(err)
	}
	const n, page = 1024, 256
	for range n {
		l.AddX509(der, ca.Chain())
	}
	l.Publish()
	hc := &http.Client{}
	start := 0
	for b.Loop() {
		resp, err := hc.Get(l.URL() + "/ct/v1/get-entries?start=" + strconv.Itoa(start) + "&end=" + strconv.Itoa(start+page-1))
		if err != nil {
			b.Fatal(err)
		}
		nb, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		b.SetBytes(nb)
		start = (start + page) % n
	}
	b.ReportMetric(float64(b.N*page)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkAddX509(b *testing.B) {
	ca := newCA(b)
	l := newLog(b)
	der, err := ca.Leaf("bench.example")
	if err != nil {
		b.Fatal(err)
	}
	chain := ca.Chain()
	for b.Loop() {
		l.AddX509(der, chain)
	}
}

func BenchmarkPublish(b *testing.B) {
	l := newLog(b)
	for b.Loop() {
		l.AddRaw([]byte("leaf"), nil)
		l.Publish()
	}
}
