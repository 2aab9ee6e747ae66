// Package ctlogtest runs an RFC 6962 Certificate Transparency log in-process,
// on an httptest server, for tests and benchmarks of CT clients.
//
// The log is real where a client can tell: a Merkle tree with RFC 6962
// hashing, TLS-encoded MerkleTreeLeaf and extra_data, tree heads signed with
// ECDSA P-256, and the JSON shapes and status codes of RFC 6962 section 4.
// What a real log does on its own schedule is in the test's hands instead:
// tree heads change only on Publish, and switches inject the misbehaviour a
// monitor must survive (failures, rate limits, truncated bodies, bad
// signatures, forks, shrinking trees, slow responses). Every method is safe
// for concurrent use, including while requests are being served.
package ctlogtest

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/ctwatch/ctwatch/monitor/logtest"
)

// Endpoint names, as accepted by FailNext, TruncateNext and Requests. The
// full path ("/ct/v1/get-sth") is accepted too; requests to paths outside
// /ct/v1/ are counted under their full path ("/robots.txt").
const (
	EndpointGetSTH            = "get-sth"
	EndpointGetSTHConsistency = "get-sth-consistency"
	EndpointGetEntries        = "get-entries"
	EndpointGetEntryAndProof  = "get-entry-and-proof"
	EndpointGetProofByHash    = "get-proof-by-hash"
	EndpointGetRoots          = "get-roots"
)

// DefaultPageSize is how many entries get-entries returns at most unless
// WithPageSize or SetPageSize says otherwise. Real logs use 32 to 1000.
const DefaultPageSize = 256

const pathPrefix = "/ct/v1/"

// Range is an inclusive range of entry indices, as get-entries takes them.
type Range struct {
	Start, End uint64
}

// Option configures a Log in New.
type Option func(*config)

type config struct {
	pageSize int
	roots    [][]byte
	key      *ecdsa.PrivateKey
}

// WithPageSize sets the initial get-entries page size (see SetPageSize).
func WithPageSize(n int) Option {
	return func(c *config) { c.pageSize = n }
}

// WithRoots sets the DER certificates that get-roots lists. Without it the
// list is empty.
func WithRoots(roots ...[]byte) Option {
	return func(c *config) {
		c.roots = make([][]byte, len(roots))
		for i, r := range roots {
			c.roots[i] = append([]byte(nil), r...)
		}
	}
}

// WithKey makes the log sign with key instead of a fresh one, so that a test
// can restart "the same" log (same key, same log ID). key must be on P-256.
func WithKey(key *ecdsa.PrivateKey) Option {
	return func(c *config) { c.key = key }
}

// entry is one log entry. Its slices are never modified once stored, so
// responses may reference them after the lock is released.
type entry struct {
	leafInput, extraData []byte
}

// treeHead is a signed tree head as get-sth serves it.
type treeHead struct {
	size, timestamp uint64
	root            []byte
	// signature is the TLS-encoded DigitallySigned.
	signature []byte
}

// Log is an in-process RFC 6962 log. Create it with New and Close it when
// done. All methods are safe for concurrent use.
type Log struct {
	srv    *httptest.Server
	key    *ecdsa.PrivateKey
	pubDER []byte
	roots  [][]byte
	// faults holds the injected failures, truncations and delay, and
	// counts requests by endpoint.
	faults *logtest.Faults

	mu      sync.Mutex
	entries []entry
	tree    *testonly.Tree
	// byHash maps a leaf hash to the first index holding it.
	byHash map[[sha256.Size]byte]uint64
	sth    treeHead
	// clock timestamps entries and tree heads, strictly increasing.
	clock logtest.Clock

	pageSize int
	badSig   bool

	ranges []Range
}

// New starts a log with an empty, signed tree head and a fresh ECDSA P-256
// key (unless WithKey says otherwise).
func New(opts ...Option) (*Log, error) {
	cfg := config{pageSize: DefaultPageSize}
	for _, o := range opts {
		o(&cfg)
	}
	key, pubDER, err := logtest.LogKey(cfg.key)
	if err != nil {
		return nil, fmt.Errorf("ctlogtest: %w", err)
	}
	l := &Log{
		key:      key,
		pubDER:   pubDER,
		roots:    cfg.roots,
		faults:   logtest.NewFaults(pathPrefix, logtest.MatchExact),
		tree:     testonly.New(rfc6962.DefaultHasher),
		byHash:   make(map[[sha256.Size]byte]uint64),
		pageSize: cfg.pageSize,
	}
	if l.sth, err = l.signTreeHead(0); err != nil {
		return nil, err
	}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serveHTTP))
	return l, nil
}

// Close stops the server, ending delayed requests at once. It is idempotent.
func (l *Log) Close() {
	l.faults.Close() // first, so that the server does not wait out delays
	l.srv.Close()
}

// URL returns the log's base URL: URL()+"/ct/v1/get-sth" is its get-sth.
func (l *Log) URL() string { return l.srv.URL }

// PublicKeyDER returns the log's public key as a DER SubjectPublicKeyInfo, the
// form log lists publish. The slice is a fresh copy.
func (l *Log) PublicKeyDER() []byte { return append([]byte(nil), l.pubDER...) }

// LogID returns the RFC 6962 log ID: the SHA-256 of PublicKeyDER.
func (l *Log) LogID() [sha256.Size]byte { return sha256.Sum256(l.pubDER) }

// appendEntry stores e and returns its index. l.mu must be held.
func (l *Log) appendEntry(e entry) uint64 {
	idx := uint64(len(l.entries))
	l.entries = append(l.entries, e)
	h := rfc6962.DefaultHasher.HashLeaf(e.leafInput)
	l.tree.Append(h)
	if _, dup := l.byHash[[sha256.Size]byte(h)]; !dup {
		l.byHash[[sha256.Size]byte(h)] = idx
	}
	return idx
}

// AddX509 appends an x509_entry for the DER certificate der with chain (DER,
// issuer first) as its extra_data, timestamped now, and returns its index.
// The entry is served once a later Publish covers it.
//
// It panics if der or chain exceed RFC 6962's 2^24-1 byte limits, a mistake
// in the calling test; use AddRaw to serve oversized entries.
func (l *Log) AddX509(der []byte, chain [][]byte) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	leaf, err := x509Leaf(l.clock.Now(), der)
	if err != nil {
		panic(fmt.Sprintf("ctlogtest: AddX509: %v", err))
	}
	extra, err := x509ExtraData(chain)
	if err != nil {
		panic(fmt.Sprintf("ctlogtest: AddX509: %v", err))
	}
	return l.appendEntry(entry{leafInput: leaf, extraData: extra})
}

// AddPrecert appends a precert_entry for the DER precertificate precertDER,
// issued directly by issuer (not through a precertificate signing
// certificate), with chain (DER, issuer first) in its extra_data. The leaf
// holds the precertificate's TBSCertificate with the poison extension removed
// and the SHA-256 of issuer's SubjectPublicKeyInfo. It fails if precertDER is
// malformed or has no poison extension.
func (l *Log) AddPrecert(precertDER []byte, issuer *x509.Certificate, chain [][]byte) (uint64, error) {
	tbs, issuerKeyHash, err := logtest.PrecertTBS(precertDER, issuer)
	if err != nil {
		return 0, fmt.Errorf("ctlogtest: AddPrecert: %w", err)
	}
	extra, err := precertExtraData(precertDER, chain)
	if err != nil {
		return 0, fmt.Errorf("ctlogtest: AddPrecert: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	leaf, err := precertLeaf(l.clock.Now(), issuerKeyHash, tbs)
	if err != nil {
		return 0, fmt.Errorf("ctlogtest: AddPrecert: %w", err)
	}
	return l.appendEntry(entry{leafInput: leaf, extraData: extra}), nil
}

// AddRaw appends an entry whose leaf_input and extra_data are exactly the
// given bytes, for malformed or hostile entries. The tree holds the RFC 6962
// leaf hash of leafInput, so proofs for it verify.
func (l *Log) AddRaw(leafInput, extraData []byte) uint64 {
	e := entry{
		leafInput: append([]byte(nil), leafInput...),
		extraData: append([]byte(nil), extraData...),
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appendEntry(e)
}

// Added returns how many entries have been added, published or not.
func (l *Log) Added() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.entries))
}

// TreeSize returns the size of the tree head get-sth serves now.
func (l *Log) TreeSize() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sth.size
}

// Entry returns the leaf_input and extra_data of entry index as the log
// serves them now (after a Fork, the forked ones); ok is false when there is
// no such entry. The slices must not be modified.
func (l *Log) Entry(index uint64) (leafInput, extraData []byte, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index >= uint64(len(l.entries)) {
		return nil, nil, false
	}
	e := l.entries[index]
	return e.leafInput, e.extraData, true
}

// Publish signs a new tree head covering every entry added so far, with a
// timestamp later than any before. get-sth serves it from now on.
func (l *Log) Publish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.publish(uint64(len(l.entries)))
}

// publish signs and installs a tree head of the given size. l.mu must be
// held. Signing with a valid P-256 key (checked in New) cannot fail short of
// a broken crypto/rand, so a failure panics.
func (l *Log) publish(size uint64) {
	th, err := l.signTreeHead(size)
	if err != nil {
		panic(fmt.Sprintf("ctlogtest: %v", err))
	}
	l.sth = th
}

// signTreeHead signs the tree head of the first size entries. l.mu must be
// held (or l not yet shared).
func (l *Log) signTreeHead(size uint64) (treeHead, error) {
	th := treeHead{size: size, timestamp: l.clock.Now(), root: l.tree.HashAt(size)}
	var err error
	if th.signature, err = logtest.SignTreeHead(l.key, th.timestamp, th.size, th.root); err != nil {
		return treeHead{}, err
	}
	return th, nil
}

// SetPageSize sets how many entries get-entries returns at most; n <= 0
// removes the limit.
func (l *Log) SetPageSize(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pageSize = n
}

// FailNext makes the next n requests to endpoint ("" for any endpoint) fail
// with status, without being served. When retryAfter > 0 the response has a
// Retry-After header of that many seconds, rounded up, as logs send with 429
// and 503. A status outside 100-999 becomes 500. Rules queue in call order;
// a request consumes from the first one that matches.
func (l *Log) FailNext(endpoint string, n int, status int, retryAfter time.Duration) {
	l.faults.FailNext(endpoint, n, status, retryAfter)
}

// TruncateNext cuts in half the body of the next n successful responses from
// endpoint ("" for any), leaving invalid JSON behind a 200 status.
func (l *Log) TruncateNext(endpoint string, n int) {
	l.faults.TruncateNext(endpoint, n)
}

// SetBadSignature makes get-sth serve tree heads whose signature is
// well-formed but does not verify, until called with false.
func (l *Log) SetBadSignature(bad bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.badSig = bad
}

// SetDelay delays every response by d (0 for none). A delayed request ends
// early when its client gives up or the log is closed.
func (l *Log) SetDelay(d time.Duration) {
	l.faults.SetDelay(d)
}

// Fork gives the log a different history from index at on: every entry from
// at is replaced by another one (same certificate, timestamp one millisecond
// later; a raw entry gains a byte), the count staying the same. Entries,
// proofs and tree heads are served from the forked tree from now on, and if
// the served tree head covered index at it is re-signed at once: same size,
// another root, inconsistent with every tree head served before that covered
// at. Fork does nothing when at >= Added().
func (l *Log) Fork(at uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if at >= uint64(len(l.entries)) {
		return
	}
	for i := at; i < uint64(len(l.entries)); i++ {
		l.entries[i] = entry{
			leafInput: forkLeaf(l.entries[i].leafInput),
			extraData: l.entries[i].extraData,
		}
	}
	old := l.entries
	l.entries = nil
	l.tree = testonly.New(rfc6962.DefaultHasher)
	l.byHash = make(map[[sha256.Size]byte]uint64, len(old))
	for _, e := range old {
		l.appendEntry(e)
	}
	if l.sth.size > at {
		l.publish(l.sth.size)
	}
}

// forkLeaf returns a different leaf_input for the same entry: a well-formed
// timestamped entry keeps its certificate and moves its timestamp 1 ms on;
// anything else gets a byte appended.
func forkLeaf(leaf []byte) []byte {
	out := append([]byte(nil), leaf...)
	// version v1 (0), leaf type timestamped_entry (0), 8-byte timestamp.
	if len(out) >= 10 && out[0] == 0 && out[1] == 0 {
		for i := 9; i >= 2; i-- {
			out[i]++
			if out[i] != 0 {
				break
			}
		}
		return out
	}
	return append(out, 0)
}

// Shrink signs and serves at once a tree head of size to (capped at Added()),
// typically smaller than the last one: a log rolling back. Publish serves the
// full tree again.
func (l *Log) Shrink(to uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.publish(min(to, uint64(len(l.entries))))
}

// Requests returns how many requests endpoint has received ("" for all
// endpoints), counting failed ones. Requests are counted on arrival, before
// any delay, so polling Requests tells a test that a request is in flight.
func (l *Log) Requests(endpoint string) int {
	return l.faults.Requests(endpoint)
}

// EntryRanges returns the ranges get-entries has served intact (status 200,
// not truncated), in the order served, after page size limits: what a client
// actually received.
func (l *Log) EntryRanges() []Range {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Range(nil), l.ranges...)
}
