// Package statictest runs a static-ct-api Certificate Transparency log
// (c2sp.org/static-ct-api, c2sp.org/tlog-tiles, c2sp.org/signed-note)
// in-process, on an httptest server, for tests and benchmarks of tiled-log
// clients.
//
// The log is real where a client can tell: checkpoints are signed notes with
// an RFC 6962 tree head signature (ECDSA P-256), the Merkle tree is served as
// hash tiles computed with RFC 6962 hashing, entries as data tiles of
// TileLeaf structures (encoded by cert.AppendTileLeaf, with the leaf_index
// extension), and every chain certificate under issuer/. Paths, partial
// tiles, status codes and content types follow the specifications. What a
// real log does on its own schedule is in the test's hands instead: the
// checkpoint changes only on Publish, and switches inject the misbehaviour a
// monitor must survive (failures, rate limits, bad signatures, tampered
// entries, forks, shrinking trees, vanished partial tiles, compressed
// responses, slow responses). Every method is safe for concurrent use,
// including while requests are being served.
package statictest

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/ctwatch/ctwatch/cert"
	"github.com/ctwatch/ctwatch/monitor/logtest"
)

// Request path prefixes, relative to MonitoringURL, as accepted by FailNext
// and Requests. Hash tiles of one level are "tile/<L>/" ("tile/0/"). A path
// under the server root ("/mon/checkpoint") is accepted too; requests
// outside /mon/ are counted under their full path ("/robots.txt").
const (
	PathCheckpoint = "checkpoint"
	PathTiles      = "tile/"
	PathDataTiles  = "tile/data/"
	PathIssuers    = "issuer/"
)

// TileWidth is the number of hashes (or entries) in a full tile.
const TileWidth = 256

// tileHeight is log2(TileWidth), the tile height of tlog.Tile.
const tileHeight = 8

// maxLevel is the highest hash tile level static-ct-api allows.
const maxLevel = 5

const (
	monPrefix = "/mon"
	subPrefix = "/sub"
)

// Option configures a Log in New.
type Option func(*config)

type config struct {
	key *ecdsa.PrivateKey
}

// WithKey makes the log sign with key instead of a fresh one, so that a test
// can restart "the same" log (same key, same log ID). key must be on P-256.
// The origin still changes with the server's address.
func WithKey(key *ecdsa.PrivateKey) Option {
	return func(c *config) { c.key = key }
}

// entry is one log entry. Its byte slices are never modified once stored, so
// responses may reference them after the lock is released.
type entry struct {
	leaf cert.TileLeaf
	// enc is leaf encoded as a TileLeaf, as data tiles serve it.
	enc []byte
	// hash is the RFC 6962 leaf hash of enc, the record hash of the tree.
	hash cert.Hash
}

// checkpoint is a signed tree head as the checkpoint endpoint serves it.
type checkpoint struct {
	size, timestamp uint64
	root            tlog.Hash
	// body is the note text: origin, size and root, one per line.
	body string
	// sig is the note signature after the key ID: the timestamp and the
	// TLS-encoded DigitallySigned.
	sig []byte
}

// Log is an in-process static-ct-api log. Create it with New and Close it
// when done. All methods are safe for concurrent use.
type Log struct {
	srv    *httptest.Server
	key    *ecdsa.PrivateKey
	pubDER []byte
	origin string
	keyID  uint32
	// faults holds the injected failures and delay, and counts requests
	// by path.
	faults *logtest.Faults

	mu      sync.Mutex
	entries []entry
	// hashes are the tlog stored hashes of the tree of every entry added.
	hashes []tlog.Hash
	// issuers maps the lowercase hex SHA-256 of a chain certificate to its
	// DER.
	issuers map[string][]byte
	cp      checkpoint
	// partials[L] holds, for every checkpoint published, the number of
	// level-L hashes (entries for L = 0) of its tree when that number ends in
	// a partial tile: the partial tiles that checkpoint needs.
	partials [maxLevel + 1]map[uint64]struct{}
	// clock timestamps entries and checkpoints, strictly increasing.
	clock logtest.Clock
	// tiles caches the bodies of full tiles, plain and gzipped. Entries
	// of full tiles never change except by Fork and TamperEntry, which
	// clear it.
	tiles map[tileKey][]byte

	badSig       bool
	gzip         bool
	forceGzip    bool
	keepPartials bool
	tampered     map[uint64]bool
}

// tileKey identifies a cached tile body.
type tileKey struct {
	tile    tlog.Tile
	gzipped bool
}

// New starts a log with an empty tree, a signed checkpoint of size 0 and a
// fresh ECDSA P-256 key (unless WithKey says otherwise).
func New(opts ...Option) (*Log, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	key, pubDER, err := logtest.LogKey(cfg.key)
	if err != nil {
		return nil, fmt.Errorf("statictest: %w", err)
	}
	l := &Log{
		key:      key,
		pubDER:   pubDER,
		faults:   logtest.NewFaults(monPrefix+"/", logtest.MatchPrefix),
		issuers:  make(map[string][]byte),
		tiles:    make(map[tileKey][]byte),
		tampered: make(map[uint64]bool),
	}
	for i := range l.partials {
		l.partials[i] = make(map[uint64]struct{})
	}
	l.srv = httptest.NewUnstartedServer(http.HandlerFunc(l.serveHTTP))
	// The origin is SubmissionURL without its scheme; the address is known
	// before the server starts.
	l.origin = l.srv.Listener.Addr().String() + subPrefix
	l.keyID = noteKeyID(l.origin, l.LogID())
	if err := l.publish(0); err != nil {
		l.srv.Close()
		return nil, err
	}
	l.srv.Start()
	return l, nil
}

// Close stops the server, ending delayed requests at once. It is idempotent.
func (l *Log) Close() {
	l.faults.Close() // first, so that the server does not wait out delays
	l.srv.Close()
}

// MonitoringURL returns the log's monitoring prefix, without a trailing
// slash: MonitoringURL()+"/checkpoint" is its checkpoint.
func (l *Log) MonitoringURL() string { return l.srv.URL + monPrefix }

// SubmissionURL returns the log's submission prefix, without a trailing
// slash. It is only a name: nothing is served under it (a static-ct-api
// client does not submit), but the checkpoint origin is derived from it, as
// log lists publish it.
func (l *Log) SubmissionURL() string { return l.srv.URL + subPrefix }

// Origin returns the checkpoint origin and note key name: SubmissionURL
// without its scheme, which is also the name transparency-dev/formats'
// RFC6962VerifierString derives from SubmissionURL.
func (l *Log) Origin() string { return l.origin }

// PublicKeyDER returns the log's public key as a DER SubjectPublicKeyInfo, the
// form log lists publish. The slice is a fresh copy.
func (l *Log) PublicKeyDER() []byte { return append([]byte(nil), l.pubDER...) }

// LogID returns the RFC 6962 log ID: the SHA-256 of PublicKeyDER.
func (l *Log) LogID() [sha256.Size]byte { return sha256.Sum256(l.pubDER) }

// hashReader reads the stored hashes. l.mu must be held while it is used.
func (l *Log) hashReader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x < 0 || x >= int64(len(l.hashes)) {
				return nil, fmt.Errorf("stored hash %d not in a tree of %d stored hashes", x, len(l.hashes))
			}
			out[i] = l.hashes[x]
		}
		return out, nil
	})
}

// encodeEntry encodes leaf and computes its leaf hash.
func encodeEntry(leaf cert.TileLeaf) (entry, error) {
	enc, err := cert.AppendTileLeaf(nil, &leaf)
	if err != nil {
		return entry{}, err
	}
	_, h, rest, err := cert.CutTileLeaf(enc)
	if err != nil {
		return entry{}, fmt.Errorf("cut encoded tile leaf: %w", err)
	}
	if len(rest) != 0 {
		return entry{}, fmt.Errorf("encoded tile leaf has %d trailing bytes", len(rest))
	}
	return entry{leaf: leaf, enc: enc, hash: h}, nil
}

// appendEntry timestamps and indexes leaf, stores it and returns its index.
// l.mu must be held.
func (l *Log) appendEntry(leaf cert.TileLeaf) (uint64, error) {
	idx := uint64(len(l.entries))
	leaf.LeafIndex = idx
	leaf.Timestamp = l.clock.Now()
	e, err := encodeEntry(leaf)
	if err != nil {
		return 0, err
	}
	if err := l.storeHashes(e.hash); err != nil {
		return 0, err
	}
	l.entries = append(l.entries, e)
	return idx, nil
}

// storeHashes adds the stored hashes that a new record hash h brings to the
// tree. l.mu must be held.
func (l *Log) storeHashes(h cert.Hash) error {
	hs, err := tlog.StoredHashesForRecordHash(int64(len(l.entries)), tlog.Hash(h), l.hashReader())
	if err != nil {
		return fmt.Errorf("store hashes: %w", err)
	}
	l.hashes = append(l.hashes, hs...)
	return nil
}

// chainOf returns the fingerprints of chain and records its certificates as
// issuers. l.mu must be held.
func (l *Log) chainOf(chain [][]byte) []cert.Hash {
	if len(chain) == 0 {
		return nil
	}
	fps := make([]cert.Hash, len(chain))
	for i, c := range chain {
		fps[i] = sha256.Sum256(c)
		key := hex.EncodeToString(fps[i][:])
		if _, ok := l.issuers[key]; !ok {
			l.issuers[key] = append([]byte(nil), c...)
		}
	}
	return fps
}

// AddX509 appends an x509_entry for the DER certificate der, with the
// fingerprints of chain (DER, issuer first) as its certificate_chain,
// timestamped now, and returns its index. Every chain certificate is served
// under issuer/. der is not parsed, so a test may log malformed certificates.
// The entry is served once a later Publish covers it.
//
// It panics if the entry cannot be encoded (der empty or of 2^24 bytes or
// more, more than 2047 chain certificates), a mistake in the calling test.
func (l *Log) AddX509(der []byte, chain [][]byte) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	idx, err := l.appendEntry(cert.TileLeaf{
		Certificate: append([]byte(nil), der...),
		Chain:       l.chainOf(chain),
	})
	if err != nil {
		panic(fmt.Sprintf("statictest: AddX509: %v", err))
	}
	return idx
}

// AddPrecert appends a precert_entry for the DER precertificate precertDER,
// issued directly by issuer (not through a precertificate signing
// certificate), with the fingerprints of chain (DER, issuer first) as its
// certificate_chain; chain certificates are served under issuer/. The
// timestamped entry holds the precertificate's TBSCertificate with the poison
// extension removed and the SHA-256 of issuer's SubjectPublicKeyInfo; the
// precertificate itself is the TileLeaf's pre_certificate. It fails, adding
// nothing, if precertDER is malformed or has no poison extension.
func (l *Log) AddPrecert(precertDER []byte, issuer *x509.Certificate, chain [][]byte) (uint64, error) {
	tbs, issuerKeyHash, err := logtest.PrecertTBS(precertDER, issuer)
	if err != nil {
		return 0, fmt.Errorf("statictest: AddPrecert: %w", err)
	}
	leaf := cert.TileLeaf{
		Precert:        true,
		Certificate:    tbs,
		IssuerKeyHash:  issuerKeyHash,
		PreCertificate: append([]byte(nil), precertDER...),
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Encode before recording issuers, so that a failure adds nothing.
	if _, err := encodeEntry(leaf); err != nil {
		return 0, fmt.Errorf("statictest: AddPrecert: %w", err)
	}
	leaf.Chain = l.chainOf(chain)
	idx, err := l.appendEntry(leaf)
	if err != nil {
		return 0, fmt.Errorf("statictest: AddPrecert: %w", err)
	}
	return idx, nil
}

// Added returns how many entries have been added, published or not.
func (l *Log) Added() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.entries))
}

// TreeSize returns the size of the checkpoint served now.
func (l *Log) TreeSize() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cp.size
}

// Checkpoint returns the checkpoint note served now (with a corrupted
// signature while SetBadSignature is on).
func (l *Log) Checkpoint() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checkpointNote()
}

// LeafHash returns the RFC 6962 leaf hash of entry index as the tree holds
// it now (after a Fork, the forked entry's; TamperEntry does not change it);
// ok is false when there is no such entry.
func (l *Log) LeafHash(index uint64) (h cert.Hash, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index >= uint64(len(l.entries)) {
		return cert.Hash{}, false
	}
	return l.entries[index].hash, true
}

// Entry returns the TileLeaf encoding of entry index as the tree holds it
// now (after a Fork, the forked one; TamperEntry does not change it); ok is
// false when there is no such entry. The slice must not be modified.
func (l *Log) Entry(index uint64) (tileLeaf []byte, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index >= uint64(len(l.entries)) {
		return nil, false
	}
	return l.entries[index].enc, true
}

// Publish signs a new checkpoint covering every entry added so far, with a
// timestamp later than any before. The checkpoint endpoint serves it from
// now on, and the tiles of its tree, partial ones included, are served.
func (l *Log) Publish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mustPublish(uint64(len(l.entries)))
}

// mustPublish is publish for a log whose key was checked in New: signing
// cannot fail short of a broken crypto/rand, so a failure panics. l.mu must
// be held.
func (l *Log) mustPublish(size uint64) {
	if err := l.publish(size); err != nil {
		panic(fmt.Sprintf("statictest: %v", err))
	}
}

// publish signs and installs a checkpoint of the first size entries and
// records the partial tiles it needs. l.mu must be held (or l not yet
// shared).
func (l *Log) publish(size uint64) error {
	root, err := tlog.TreeHash(int64(size), l.hashReader())
	if err != nil {
		return fmt.Errorf("tree hash: %w", err)
	}
	cp, err := l.signCheckpoint(size, l.clock.Now(), root)
	if err != nil {
		return err
	}
	l.cp = cp
	for level := range l.partials {
		if n := size >> (tileHeight * level); n%TileWidth != 0 {
			l.partials[level][n] = struct{}{}
		}
	}
	return nil
}

// SetKeepPartials chooses whether a partial tile stays served once the full
// tile it is a prefix of is served. The default, false, is what TesseraCT
// does: the partial tile's path answers 404 from then on, and a client that
// read an older checkpoint must fall back to the full tile. Either way a
// partial tile is served only with a width that some published checkpoint
// needed.
func (l *Log) SetKeepPartials(keep bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keepPartials = keep
}

// FailNext makes the next n requests whose path starts with pathPrefix
// (relative to MonitoringURL, as the Path constants; "" for any request)
// fail with status, without being served. When retryAfter > 0 the response
// has a Retry-After header of that many seconds, rounded up, as a log sends
// with 429 and 503. A status outside 100-999 becomes 500. Rules queue in
// call order; a request consumes from the first one that matches.
func (l *Log) FailNext(pathPrefix string, n, status int, retryAfter time.Duration) {
	l.faults.FailNext(pathPrefix, n, status, retryAfter)
}

// SetBadSignature makes the checkpoint endpoint serve checkpoints whose
// signature is well-formed, under the right key name and ID, but does not
// verify, until called with false.
func (l *Log) SetBadSignature(bad bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.badSig = bad
}

// TamperEntry makes data tiles serve, at index, a different entry than the
// tree holds: the same certificate with a timestamp one millisecond later.
// Hash tiles and checkpoints stay honest, so the entry fails verification
// against them. It is permanent, survives Fork, and applies to an index not
// added yet once it is. It is idempotent.
func (l *Log) TamperEntry(index uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tampered[index] = true
	clear(l.tiles)
}

// SetGzip makes tiles be served gzip-compressed, with Content-Encoding: gzip,
// to requests whose Accept-Encoding accepts gzip, until called with false.
// Go's http.Transport asks for gzip and decompresses transparently unless the
// caller set Accept-Encoding itself or disabled compression.
func (l *Log) SetGzip(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gzip = on
}

// SetForceGzip makes tiles be served gzip-compressed to every request,
// whatever its Accept-Encoding says, until called with false: static-ct-api
// lets logs do so ("with no negotiation"), so a client must handle
// Content-Encoding: gzip it did not ask for.
func (l *Log) SetForceGzip(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forceGzip = on
}

// SetDelay delays every response by d (0 for none). A delayed request ends
// early when its client gives up or the log is closed.
func (l *Log) SetDelay(d time.Duration) {
	l.faults.SetDelay(d)
}

// Fork gives the log a different history from index at on: every entry from
// at is replaced by another one (same certificate, timestamp one millisecond
// later), the count staying the same. Tiles and checkpoints are served from
// the forked tree from now on, and if the served checkpoint covered index at
// it is re-signed at once: same size, another root, inconsistent with every
// checkpoint served before that covered at. Fork does nothing when
// at >= Added().
func (l *Log) Fork(at uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if at >= uint64(len(l.entries)) {
		return
	}
	old := l.entries[at:]
	l.entries = l.entries[:at:at]
	l.hashes = l.hashes[:tlog.StoredHashCount(int64(at))]
	for _, e := range old {
		leaf := e.leaf
		leaf.Timestamp++
		forked, err := encodeEntry(leaf)
		if err == nil {
			err = l.storeHashes(forked.hash)
		}
		if err != nil {
			// The entry was encoded once already.
			panic(fmt.Sprintf("statictest: Fork: %v", err))
		}
		l.entries = append(l.entries, forked)
	}
	clear(l.tiles)
	if l.cp.size > at {
		l.mustPublish(l.cp.size)
	}
}

// Shrink signs and serves at once a checkpoint of size to (capped at
// Added()), typically smaller than the last one: a log rolling back. Tiles
// beyond it are no longer served. Publish serves the full tree again.
func (l *Log) Shrink(to uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mustPublish(min(to, uint64(len(l.entries))))
}

// Requests returns how many requests have been received whose path starts
// with pathPrefix (relative to MonitoringURL, as the Path constants; "" for
// all requests), counting failed ones. Requests are counted on arrival,
// before any delay, so polling Requests tells a test that a request is in
// flight.
func (l *Log) Requests(pathPrefix string) int {
	return l.faults.Requests(pathPrefix)
}
