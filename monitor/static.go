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
// checked against authenticated hash tiles) before its hits count.
type StaticTailer struct {
	*tailer
	verifier sumdbnote.Verifier
	origin   string
	tiles    *staticTiles
	client   *torchwood.Client

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
	}
	t.tiles = &staticTiles{fetch: t.fetch, limit: t.cfg.Fetch.Concurrency}
	t.client, err = torchwood.NewClient(t.tiles, torchwood.WithCutEntry(func(tile []byte) ([]byte, tlog.Hash, []byte, error) {
		entry, h, rest, err := cert.CutTileLeaf(tile)
		return entry, tlog.Hash(h), rest, err
	}))
	if err != nil {
		return nil, fmt.Errorf("log %s: tile client: %w", l.Name, err)
	}
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
	n.Range = nil
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

// download reads entries [cp.NextIndex, cp.TreeSize) through torchwood's
// client, which yields them in order and only after checking each leaf hash
// against hash tiles authenticated by the verified checkpoint. Every
// VerifyEvery entries, at the end, and when stopping, hits are published
// and then the position saved.
func (t *StaticTailer) download(ctx context.Context, cp *Checkpoint, head *staticHead) (*Checkpoint, error) {
	var (
		hits   []event.Hit
		events []event.LogEvent
		saved  = cp
		next   = cp.NextIndex
	)
	flush := func(ctx context.Context) error {
		if next == saved.NextIndex {
			return nil
		}
		if err := t.commit(ctx, hits, events); err != nil {
			return err
		}
		n := *saved
		n.NextIndex = next
		if err := t.save(ctx, &n); err != nil {
			return err
		}
		saved = &n
		hits, events = hits[:0], events[:0]
		return nil
	}
	for next < cp.TreeSize {
		before := next
		for i, entry := range t.client.Entries(ctx, head.tree, int64(next)) {
			if uint64(i) != next {
				return saved, fmt.Errorf("tile client yielded entry %d, want %d", i, next)
			}
			h, evs := t.processEntry(ctx, next, entry)
			hits, events = append(hits, h...), append(events, evs...)
			next++
			if next-saved.NextIndex >= t.cfg.Fetch.VerifyEvery {
				if err := flush(ctx); err != nil {
					return saved, err
				}
			}
		}
		if err := t.client.Err(); err != nil || ctx.Err() != nil {
			if ctx.Err() != nil {
				// Stopping: what was yielded is verified already, so commit
				// it; bounded, as the publisher may be slow to answer.
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownFlush)
				defer cancel()
				if err := flush(fctx); err != nil {
					t.logger.Warn("could not commit the entries read before shutdown; they will be read again", "err", err)
				}
				return saved, ctx.Err()
			}
			if ferr := flush(ctx); ferr != nil {
				return saved, ferr
			}
			if isFetchError(err) {
				return saved, fmt.Errorf("read entries from %d: %w", next, err)
			}
			t.raise(ctx, event.InconsistentTree, fmt.Sprintf("entries:%d:%x", head.tree.N, head.root()),
				fmt.Sprintf("entries from %d do not verify against the checkpoint of size %d (root %x): %v", next, head.tree.N, head.root(), err))
			return saved, fmt.Errorf("entries from %d do not verify: %w", next, err)
		}
		if next == before {
			// The client made no progress without an error: do not spin.
			return saved, fmt.Errorf("tile client stopped at %d of %d", next, cp.TreeSize)
		}
	}
	if err := flush(ctx); err != nil {
		return saved, err
	}
	return saved, nil
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
	c, err := cert.FromTileLeaf(leaf, chain)
	if err != nil && len(chain) > 0 {
		// A broken chain must not hide the certificate: decode it alone.
		malformed("chain could not be decoded: %v", err)
		c, err = cert.FromTileLeaf(leaf, nil)
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
