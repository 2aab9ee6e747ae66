package monitor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"filippo.io/torchwood"
	"github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/compact"
	sumdbnote "golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"

	"github.com/ctwatch/ctwatch/cert"
	"github.com/ctwatch/ctwatch/event"
)

const (
	// tileWidth is the number of entries (or hashes) in a full tile.
	tileWidth = torchwood.TileWidth
	// maxIssuers bounds the issuer cache. Real logs have a few hundred
	// issuers; a log that serves more only costs us refetches.
	maxIssuers = 4096
	// maxIssuerBytes bounds the issuer cache by size too: a count alone
	// lets a hostile log park 4096 bodies of up to MaxResponseBytes each
	// (64 GiB at the default cap). Real issuers are a few KiB.
	maxIssuerBytes = 8 << 20
)

// StaticTailer follows one static-ct-api (tiled) log, as RFC6962Tailer
// follows a classic one and with the same guarantees: every checkpoint's
// note signature is checked against the log's key and origin, every new
// checkpoint is proven consistent with the last verified one from hash
// tiles, and every entry is proven to be in the verified tree (its leaf hash
// goes into a compact range whose root is proven consistent with the
// verified checkpoint) before its hits count.
type StaticTailer struct {
	*tailer
	verifier sumdbnote.Verifier
	origin   string
	tiles    *staticTiles
	ranges   *compact.RangeFactory

	issuerMu    sync.Mutex
	issuers     map[cert.Hash][]byte
	issuerBytes int // total size of the cached issuers
}

// NewStaticTailer checks the log's key and origin and returns a tailer
// ready to Run.
func NewStaticTailer(l *Log, cfg TailerConfig) (*StaticTailer, error) {
	mon := l.MonitoringURL
	if mon == "" {
		mon = l.URL
	}
	origin := l.Origin
	if origin == "" {
		origin = StaticOrigin(l.URL)
	}
	base, pub, err := newTailer(l, mon, cfg)
	if err != nil {
		return nil, err
	}
	vkey, err := note.RFC6962VerifierString(origin, pub)
	if err != nil {
		return nil, fmt.Errorf("log %s: origin %q: %w", l.Name, origin, err)
	}
	v, err := note.NewRFC6962Verifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("log %s: %w", l.Name, err)
	}
	if v.Name() != origin {
		// The verifier lower-cases its name; an origin with upper case
		// would never match a checkpoint.
		return nil, fmt.Errorf("log %s: origin %q must be lower case", l.Name, origin)
	}
	t := &StaticTailer{
		tailer:   base,
		verifier: v,
		origin:   origin,
		issuers:  map[cert.Hash][]byte{},
		ranges:   newRangeFactory(),
	}
	t.tiles = &staticTiles{fetch: t.fetch, limit: t.cfg.Fetch.Concurrency}
	return t, nil
}

// Run follows the log until ctx ends, then returns ctx's error. Like
// RFC6962Tailer.Run, it returns early only when storage fails.
func (t *StaticTailer) Run(ctx context.Context) error {
	return t.run(ctx, t.step)
}

// staticHead is a checkpoint whose note signature has been verified.
type staticHead struct {
	tree      tlog.Tree
	timestamp uint64
	note      []byte
}

func (h *staticHead) root() []byte { return h.tree.Hash[:] }

func (t *StaticTailer) step(ctx context.Context, cp *Checkpoint) (*Checkpoint, error) {
	head, err := t.getCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	size := uint64(head.tree.N)
	t.treeSize.Store(max(t.treeSize.Load(), size))
	if cp == nil {
		start := size
		if t.log.Start != nil {
			start = *t.log.Start
		}
		if start > size {
			t.logger.Info("waiting for the log to reach the start index", "start", start, "tree_size", size)
			return nil, nil
		}
		cp = &Checkpoint{NextIndex: start}
		cp = t.withHead(cp, head)
		t.logger.Info("starting", "start", start, "tree_size", size)
		if err := t.save(ctx, cp); err != nil {
			return nil, err
		}
	} else {
		ok, err := t.advanceHead(ctx, cp, head)
		if err != nil || !ok {
			return nil, err
		}
		if size > cp.TreeSize {
			cp = t.withHead(cp, head)
			if err := t.save(ctx, cp); err != nil {
				return nil, err
			}
		}
	}
	// The head is verified: how far behind it we are is now known.
	t.noteHead(cp.NextIndex, cp.TreeSize)
	t.checkBacklog(ctx, cp)
	if cp.NextIndex >= cp.TreeSize {
		return cp, nil
	}
	return t.download(ctx, cp, head)
}

func (t *StaticTailer) withHead(cp *Checkpoint, head *staticHead) *Checkpoint {
	n := *cp
	n.TreeSize = uint64(head.tree.N)
	n.Timestamp = head.timestamp
	n.RootHash = bytes.Clone(head.root())
	n.Signature = head.note
	return &n
}

// getCheckpoint fetches the checkpoint and verifies its note signature and
// origin. Anything wrong with it is a bad_signature event: a log that
// signs (or serves) something other than a valid checkpoint for its origin
// is not to be followed.
func (t *StaticTailer) getCheckpoint(ctx context.Context) (*staticHead, error) {
	raw, err := t.fetch.getRaw(ctx, "/checkpoint", nil)
	if err != nil {
		return nil, fmt.Errorf("get checkpoint: %w", err)
	}
	subject := "checkpoint:" + hex.EncodeToString(sha256Sum(raw))
	bad := func(format string, args ...any) (*staticHead, error) {
		msg := fmt.Sprintf(format, args...)
		t.raise(ctx, event.BadSignature, subject, msg)
		return nil, errors.New(msg)
	}
	n, err := sumdbnote.Open(raw, sumdbnote.VerifierList(t.verifier))
	if err != nil {
		return bad("checkpoint does not verify with the log's key for origin %q: %v", t.origin, err)
	}
	c, err := torchwood.ParseCheckpoint(n.Text)
	if err != nil {
		return bad("signed checkpoint is malformed: %v", err)
	}
	if c.Origin != t.origin {
		return bad("checkpoint origin %q, want %q", c.Origin, t.origin)
	}
	ts, err := t.noteTimestamp(n)
	if err != nil {
		return bad("checkpoint signature: %v", err)
	}
	return &staticHead{tree: c.Tree, timestamp: ts, note: raw}, nil
}

// noteTimestamp reads the timestamp of the log's RFC 6962 note signature:
// 4 bytes of key hash, then 8 bytes of milliseconds since the epoch. It is
// read here rather than with formats' RFC6962STHTimestamp, which scales
// the value wrongly.
func (t *StaticTailer) noteTimestamp(n *sumdbnote.Note) (uint64, error) {
	for _, s := range n.Sigs {
		if s.Hash != t.verifier.KeyHash() || s.Name != t.verifier.Name() {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(s.Base64)
		if err != nil || len(b) < 12 {
			return 0, errors.New("malformed signature")
		}
		return binary.BigEndian.Uint64(b[4:12]), nil
	}
	return 0, errors.New("no signature by the log's key")
}

// advanceHead decides whether head may replace (or repeat) the
// checkpoint's tree: not smaller, and provably consistent, the proof built
// from hash tiles authenticated against head.
func (t *StaticTailer) advanceHead(ctx context.Context, cp *Checkpoint, head *staticHead) (bool, error) {
	size := uint64(head.tree.N)
	if done, ok := t.compareHead(ctx, cp, size, head.root()); done {
		return ok, nil
	}
	var old tlog.Hash
	copy(old[:], cp.RootHash)
	hr := torchwood.TileHashReaderWithContext(ctx, head.tree, t.tiles)
	proof, err := tlog.ProveTree(head.tree.N, int64(cp.TreeSize), hr)
	if err == nil {
		err = tlog.CheckTree(proof, head.tree.N, head.tree.Hash, int64(cp.TreeSize), old)
	}
	if err != nil {
		if isFetchError(err) {
			return false, fmt.Errorf("consistency %d→%d: %w", cp.TreeSize, size, err)
		}
		t.inconsistent(ctx, cp, size, head.root(), err)
		return false, nil
	}
	return true, nil
}

// download reads entries [cp.NextIndex, cp.TreeSize) and commits them in
// order. Data tiles are fetched, cut, hashed, decoded and matched by
// Concurrency workers at once (so decoding spreads over the cores while
// other tiles are on the wire); one committer takes the results in index
// order, appends each entry's leaf hash to the compact range [0, next), and
// every VerifyEvery entries, at the end, and when stopping proves that range
// is in the verified tree (equal roots at the head's size, otherwise a
// consistency proof built from authenticated hash tiles) before it publishes
// the hits and saves the position. Nothing is committed that has not been
// proven, so an entry that does not hash to the checkpoint's root holds the
// log at the last proven position.
//
// Memory is bounded by the pipeline, not by the backlog: at most
// Concurrency tiles are being read and processed, and 2×Concurrency
// processed tiles (leaf hashes and hits, not tile bytes) wait for the
// committer.
func (t *StaticTailer) download(parent context.Context, cp *Checkpoint, head *staticHead) (*Checkpoint, error) {
	rng, err := t.rangeAt(parent, cp, head)
	if err != nil {
		return nil, err
	}
	// ctx ends the reading when the committer fails.
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	tiles := func(yield func(func(context.Context) tileResult) bool) {
		for n := cp.NextIndex / tileWidth; n*tileWidth < cp.TreeSize; n++ {
			j := tileJob{
				tile: tlog.Tile{H: torchwood.TileHeight, L: -1, N: int64(n), W: int(min(cp.TreeSize-n*tileWidth, tileWidth))},
				from: max(cp.NextIndex, n*tileWidth),
			}
			if !yield(func(ctx context.Context) tileResult { return t.processTile(ctx, j) }) {
				return
			}
		}
	}
	commits := t.startCommitter(parent, cp, rng, cancel, func(ctx context.Context, rng *compact.Range) error {
		return t.verifyRange(ctx, rng, head)
	})
	var readErr error
	for res := range inOrder(ctx, t.cfg.Fetch.Concurrency, tiles) {
		if res.err != nil {
			j := res.job
			// What came before the failing tile is still committed, if
			// it proves.
			commits.flush()
			if isFetchError(res.err) {
				readErr = fmt.Errorf("read entries from %d: %w", j.from, res.err)
			} else {
				t.raise(ctx, event.InconsistentTree, fmt.Sprintf("entries:%d:%x", head.tree.N, head.root()),
					fmt.Sprintf("data tile %d of the checkpoint of size %d (root %x) is malformed: %v", j.tile.N, head.tree.N, head.root(), res.err))
				readErr = fmt.Errorf("data tile %d: %w", j.tile.N, res.err)
			}
			break
		}
		if !commits.add(res.hashes, res.hits, res.events) {
			break
		}
	}
	return commits.finish(parent, readErr)
}

// tileJob is one data tile to read.
type tileJob struct {
	tile tlog.Tile
	// from is the first index of the tile to process: entries before it
	// (in the first tile of a download) are only cut, to find where it
	// starts.
	from uint64
}

// tileResult is what processing a tile yields: the leaf hash of every entry
// from the job's from index on, in order, and their hits and events. err is
// a fetch error (retried later) or a malformed tile (the log's fault).
type tileResult struct {
	job    tileJob
	hashes []cert.Hash
	hits   []event.Hit
	events []event.LogEvent
	err    error
}

// processTile fetches a data tile, cuts it into entries, hashes each, and
// decodes and matches those from j.from on. The hashes are checked against
// the tree by the committer, which publishes nothing of a tile before that.
func (t *StaticTailer) processTile(ctx context.Context, j tileJob) tileResult {
	res := tileResult{job: j}
	data, err := t.tiles.readTile(ctx, j.tile)
	if err != nil {
		res.err = err
		return res
	}
	// Nothing processEntry returns refers to the tile (decoded
	// certificates, hits and events are copies), so its buffer is reused.
	defer t.fetch.recycle(data)
	first := uint64(j.tile.N) * tileWidth
	res.hashes = make([]cert.Hash, 0, first+uint64(j.tile.W)-j.from)
	rest := data
	for i := first; i < first+uint64(j.tile.W); i++ {
		if len(rest) == 0 {
			res.err = fmt.Errorf("tile holds %d entries, want %d", i-first, j.tile.W)
			return res
		}
		entry, h, r, err := cert.CutTileLeaf(rest)
		if err != nil {
			res.err = fmt.Errorf("entry %d: %w", i, err)
			return res
		}
		rest = r
		if i < j.from {
			continue
		}
		res.hashes = append(res.hashes, h)
		hits, events := t.processEntry(ctx, i, entry)
		res.hits = append(res.hits, hits...)
		res.events = append(res.events, events...)
	}
	if len(rest) != 0 {
		res.err = fmt.Errorf("%d bytes after the last of its %d entries", len(rest), j.tile.W)
	}
	return res
}

// rangeAt returns the compact range [0, cp.NextIndex): the one stored with
// the checkpoint, or else (a start index, or a checkpoint written before
// ranges were stored for tiled logs) the hashes of the perfect subtrees
// covering it, read from hash tiles authenticated against head.
func (t *StaticTailer) rangeAt(ctx context.Context, cp *Checkpoint, head *staticHead) (*compact.Range, error) {
	n := cp.NextIndex
	if n == 0 || len(cp.Range) > 0 {
		rng, err := t.ranges.NewRange(0, n, cloneHashes(cp.Range))
		if err != nil {
			return nil, &fatalError{fmt.Errorf("stored compact range is invalid: %w", err)}
		}
		return rng, nil
	}
	var indexes []int64
	var off uint64
	for level := 63; level >= 0; level-- {
		if n&(1<<level) != 0 {
			indexes = append(indexes, tlog.StoredHashIndex(level, int64(off>>level)))
			off += 1 << level
		}
	}
	hashes, err := torchwood.TileHashReaderWithContext(ctx, head.tree, t.tiles).ReadHashes(indexes)
	if err != nil {
		if isFetchError(err) {
			return nil, fmt.Errorf("read the tree's hashes at %d: %w", n, err)
		}
		t.raise(ctx, event.InconsistentTree, fmt.Sprintf("hashes:%d:%x", head.tree.N, head.root()),
			fmt.Sprintf("hash tiles do not verify against the checkpoint of size %d (root %x): %v", head.tree.N, head.root(), err))
		return nil, fmt.Errorf("hashes at %d do not verify: %w", n, err)
	}
	subtrees := make([][]byte, len(hashes))
	for i := range hashes {
		subtrees[i] = hashes[i][:]
	}
	rng, err := t.ranges.NewRange(0, n, subtrees)
	if err != nil {
		return nil, &fatalError{fmt.Errorf("compact range at %d: %w", n, err)}
	}
	return rng, nil
}

// verifyRange proves that the compact range [0, n) hashes to a tree that
// head contains: equal roots when n is the head's size, otherwise a
// consistency proof from n to the head built from hash tiles authenticated
// against head.
func (t *StaticTailer) verifyRange(ctx context.Context, rng *compact.Range, head *staticHead) error {
	n := rng.End()
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return fmt.Errorf("root of [0, %d): %w", n, err)
	}
	if n == 0 {
		return nil
	}
	if n == uint64(head.tree.N) {
		if !bytes.Equal(root, head.root()) {
			t.raise(ctx, event.InconsistentTree, fmt.Sprintf("entries:%d:%x", n, head.root()),
				fmt.Sprintf("entries [0, %d) hash to %x, but the signed root of size %d is %x", n, root, n, head.root()))
			return fmt.Errorf("entries do not hash to the signed root of size %d", n)
		}
		return nil
	}
	var h tlog.Hash
	copy(h[:], root)
	hr := torchwood.TileHashReaderWithContext(ctx, head.tree, t.tiles)
	p, err := tlog.ProveTree(head.tree.N, int64(n), hr)
	if err != nil {
		if isFetchError(err) {
			return fmt.Errorf("consistency %d→%d: %w", n, head.tree.N, err)
		}
		err = fmt.Errorf("hash tiles do not verify: %w", err)
	} else {
		err = tlog.CheckTree(p, head.tree.N, head.tree.Hash, int64(n), h)
	}
	if err != nil {
		t.raise(ctx, event.InconsistentTree, fmt.Sprintf("entries:%d:%x:%d:%x", n, root, head.tree.N, head.root()),
			fmt.Sprintf("entries [0, %d) hash to %x, which is not in the signed tree of size %d (root %x): %v", n, root, head.tree.N, head.root(), err))
		return fmt.Errorf("entries [0, %d) are not in the signed tree of size %d: %w", n, head.tree.N, err)
	}
	return nil
}

// processEntry decodes and matches one verified entry. Problems with the
// entry itself are malformed-entry events; the certificate is still
// matched whenever it can be decoded, so that no certificate is missed.
func (t *StaticTailer) processEntry(ctx context.Context, index uint64, entry []byte) ([]event.Hit, []event.LogEvent) {
	t.processed.Add(1)
	var events []event.LogEvent
	malformed := func(format string, args ...any) {
		t.malformed.Add(1)
		detail := fmt.Sprintf("entry %d: "+format, append([]any{index}, args...)...)
		t.logger.Warn("malformed entry", "index", index, "detail", detail)
		events = append(events, t.newEvent(event.MalformedEntry, "entry:"+strconv.FormatUint(index, 10), detail, index))
	}
	leaf, err := cert.ParseTileLeaf(entry)
	if err != nil {
		malformed("could not be parsed: %v", err)
		return nil, events
	}
	if leaf.LeafIndex != index {
		malformed("its leaf_index extension says %d", leaf.LeafIndex)
	}
	chain := t.chain(ctx, leaf.Chain)
	c, err := t.decoder.FromTileLeaf(leaf, chain)
	if err != nil && len(chain) > 0 {
		// A broken chain must not hide the certificate: decode it alone.
		malformed("chain could not be decoded: %v", err)
		c, err = t.decoder.FromTileLeaf(leaf, nil)
	}
	if err != nil {
		malformed("could not be decoded: %v", err)
		return nil, events
	}
	return t.cfg.Matcher.Match(&Entry{Log: t.log, Index: index, Timestamp: leaf.Timestamp, Cert: c}), events
}

// chain resolves chain fingerprints to certificates through the log's
// issuer endpoint, caching them (issuers are few and immutable). It stops
// at the first one it cannot resolve: the decoded certificate then lacks
// chain details but is still matched.
func (t *StaticTailer) chain(ctx context.Context, fps []cert.Hash) [][]byte {
	out := make([][]byte, 0, len(fps))
	for _, fp := range fps {
		der, err := t.issuer(ctx, fp)
		if err != nil {
			t.logger.Warn("cannot resolve issuer", "fingerprint", fp.String(), "err", err)
			break
		}
		out = append(out, der)
	}
	return out
}

func (t *StaticTailer) issuer(ctx context.Context, fp cert.Hash) ([]byte, error) {
	t.issuerMu.Lock()
	der, ok := t.issuers[fp]
	t.issuerMu.Unlock()
	if ok {
		return der, nil
	}
	der, err := t.fetch.getRaw(ctx, "/issuer/"+fp.String(), nil)
	if err != nil {
		return nil, err
	}
	if cert.Hash(sha256.Sum256(der)) != fp {
		return nil, fmt.Errorf("issuer %s: the log served a certificate with another hash", fp)
	}
	t.issuerMu.Lock()
	if len(t.issuers) >= maxIssuers || t.issuerBytes+len(der) > maxIssuerBytes {
		clear(t.issuers)
		t.issuerBytes = 0
	}
	if len(der) <= maxIssuerBytes {
		t.issuers[fp] = der
		t.issuerBytes += len(der)
	}
	t.issuerMu.Unlock()
	return der, nil
}

// staticTiles reads tiles through the tailer's polite fetcher. It
// implements torchwood.TileReader.
type staticTiles struct {
	fetch *fetcher
	limit int
}

// fetchError marks errors of fetching, as opposed to verification: they
// are retried later rather than reported as misbehaviour.
type fetchError struct{ err error }

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

func isFetchError(err error) bool {
	var fe *fetchError
	return errors.As(err, &fe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// ReadTiles fetches tiles in parallel, at most limit at a time.
func (r *staticTiles) ReadTiles(ctx context.Context, tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, r.limit))
	for i, tile := range tiles {
		g.Go(func() error {
			d, err := r.readTile(ctx, tile)
			data[i] = d
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return data, nil
}

// readTile fetches one tile. A partial tile exists only while its tile is
// incomplete; once the log fills it, the partial is deleted, so a 404 on a
// partial tile is answered by reading the full tile and keeping its first
// W entries (or hashes).
func (r *staticTiles) readTile(ctx context.Context, tile tlog.Tile) ([]byte, error) {
	data, err := r.fetch.getRaw(ctx, "/"+staticTilePath(tile), nil)
	var he *httpError
	if err != nil && tile.W < tileWidth && errors.As(err, &he) && he.Status == http.StatusNotFound {
		full := tile
		full.W = tileWidth
		data, err = r.fetch.getRaw(ctx, "/"+staticTilePath(full), nil)
		if err == nil {
			data, err = truncateTile(tile, data)
			if err != nil {
				return nil, err // a malformed full tile is the log's fault
			}
		}
	}
	if err != nil {
		return nil, &fetchError{err}
	}
	return data, nil
}

// truncateTile keeps the first tile.W records of a full tile.
func truncateTile(tile tlog.Tile, full []byte) ([]byte, error) {
	if tile.L >= 0 {
		n := tile.W * tlog.HashSize
		if len(full) < n {
			return nil, fmt.Errorf("full hash tile of %d bytes is shorter than its partial of width %d", len(full), tile.W)
		}
		return full[:n], nil
	}
	rest := full
	for i := 0; i < tile.W; i++ {
		_, _, r, err := cert.CutTileLeaf(rest)
		if err != nil {
			return nil, fmt.Errorf("entry %d of full data tile %d: %w", i, tile.N, err)
		}
		rest = r
	}
	return full[:len(full)-len(rest)], nil
}

// ReadEndpoint fetches any other path of the log.
func (r *staticTiles) ReadEndpoint(ctx context.Context, path string) ([]byte, error) {
	data, err := r.fetch.getRaw(ctx, "/"+strings.TrimPrefix(path, "/"), nil)
	if err != nil {
		return nil, &fetchError{err}
	}
	return data, nil
}

// SaveTiles does nothing: tiles are not cached beyond one read.
func (r *staticTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// staticTilePath is the static-ct-api path of a tile: "tile/<L>/<N>" for
// hash tiles and "tile/data/<N>" for data tiles, N in groups of three
// digits ("x001/x234/067"), with ".p/<W>" for a partial tile.
func staticTilePath(t tlog.Tile) string {
	p := t.Path() // "tile/8/<L>/<N>[.p/<W>]" or "tile/8/data/<N>[.p/<W>]"
	return "tile/" + strings.TrimPrefix(p, "tile/8/")
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
