package monitor

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"

	ct "github.com/google/certificate-transparency-go"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ctwatch/ctwatch/cert"
	"github.com/ctwatch/ctwatch/event"
)

// RFC6962Tailer follows one RFC 6962 log. It trusts nothing the log says:
// every tree head's signature is checked, every new tree head is proven
// consistent with the last verified one, and every downloaded entry is
// proven to be in a signed tree before its hits are published and the
// position advances.
type RFC6962Tailer struct {
	*tailer
	verifier *ct.SignatureVerifier
	ranges   *compact.RangeFactory
}

// newRangeFactory returns the factory for compact ranges of RFC 6962 trees.
func newRangeFactory() *compact.RangeFactory {
	return &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
}

// NewRFC6962Tailer checks the log's key and returns a tailer ready to Run.
func NewRFC6962Tailer(l *Log, cfg TailerConfig) (*RFC6962Tailer, error) {
	base, pub, err := newTailer(l, l.URL, cfg)
	if err != nil {
		return nil, err
	}
	v, err := ct.NewSignatureVerifier(pub)
	if err != nil {
		return nil, fmt.Errorf("log %s: %w", l.Name, err)
	}
	return &RFC6962Tailer{tailer: base, verifier: v, ranges: newRangeFactory()}, nil
}

// Run follows the log until ctx ends, then returns ctx's error. Failures of
// the log (unreachable, misbehaving) are reported as events and retried;
// Run returns early only when the checkpoint store or publisher fails, since
// continuing then could lose hits.
func (t *RFC6962Tailer) Run(ctx context.Context) error {
	return t.run(ctx, t.step)
}

// sth is a tree head whose signature has been verified.
type sth struct {
	ct.SignedTreeHead
	raw ct.GetSTHResponse
}

// step does one round: fetch and verify a tree head, prove it consistent
// with the checkpoint, and download up to it. It returns the newest
// checkpoint saved, if any.
func (t *RFC6962Tailer) step(ctx context.Context, cp *Checkpoint) (*Checkpoint, error) {
	head, err := t.getSTH(ctx)
	if err != nil {
		return nil, err
	}
	t.treeSize.Store(max(t.treeSize.Load(), head.TreeSize))
	if cp == nil {
		cp, err = t.initialise(ctx, head)
		if err != nil || cp == nil {
			return nil, err
		}
		if err := t.save(ctx, cp); err != nil {
			return nil, err
		}
	} else {
		ok, err := t.advanceHead(ctx, cp, head)
		if err != nil || !ok {
			return nil, err
		}
		if head.TreeSize > cp.TreeSize {
			cp = withHead(cp, head)
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
	return t.download(ctx, cp)
}

// cloneHashes deep-copies a compact range's hashes: the range keeps
// mutating its own slice as leaves are appended, and a saved checkpoint must
// not change after it was saved.
func cloneHashes(hs [][]byte) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = bytes.Clone(h)
	}
	return out
}

func withHead(cp *Checkpoint, head *sth) *Checkpoint {
	n := *cp
	n.TreeSize = head.TreeSize
	n.Timestamp = head.Timestamp
	n.RootHash = head.SHA256RootHash[:]
	n.Signature = head.raw.TreeHeadSignature
	return &n
}

// getSTH fetches the current tree head and verifies its signature. A bad
// signature is an event, not a reason to stop: the log may serve a good one
// next time.
func (t *RFC6962Tailer) getSTH(ctx context.Context) (*sth, error) {
	var resp ct.GetSTHResponse
	if err := t.fetch.get(ctx, "/ct/v1/get-sth", nil, &resp); err != nil {
		return nil, fmt.Errorf("get-sth: %w", err)
	}
	head, err := resp.ToSignedTreeHead()
	if err != nil {
		t.raise(ctx, event.BadSignature, "sth:"+strconv.FormatUint(resp.TreeSize, 10)+":"+hex.EncodeToString(resp.TreeHeadSignature),
			fmt.Sprintf("tree head of size %d is malformed: %v", resp.TreeSize, err))
		return nil, fmt.Errorf("get-sth: malformed tree head: %w", err)
	}
	if err := t.verifier.VerifySTHSignature(*head); err != nil {
		t.raise(ctx, event.BadSignature, "sth:"+strconv.FormatUint(resp.TreeSize, 10)+":"+hex.EncodeToString(resp.TreeHeadSignature),
			fmt.Sprintf("tree head of size %d (timestamp %d, root %x) has a bad signature: %v", head.TreeSize, head.Timestamp, head.SHA256RootHash[:], err))
		return nil, fmt.Errorf("get-sth: bad signature: %w", err)
	}
	return &sth{SignedTreeHead: *head, raw: resp}, nil
}

// initialise builds the first checkpoint at the configured start index. To
// verify entries from there on without downloading the whole log, it needs
// the compact range [0, start): the audit path of leaf start-1 in the tree
// of size start is exactly that range, so one get-entry-and-proof gives it,
// and a consistency proof ties it to the signed head.
func (t *RFC6962Tailer) initialise(ctx context.Context, head *sth) (*Checkpoint, error) {
	start := head.TreeSize
	if t.log.Start != nil {
		start = *t.log.Start
	}
	if start > head.TreeSize {
		t.logger.Info("waiting for the log to reach the start index", "start", start, "tree_size", head.TreeSize)
		return nil, nil
	}
	rng := t.ranges.NewEmptyRange(0)
	if start > 0 {
		var resp ct.GetEntryAndProofResponse
		params := url.Values{"leaf_index": {strconv.FormatUint(start-1, 10)}, "tree_size": {strconv.FormatUint(start, 10)}}
		if err := t.fetch.get(ctx, "/ct/v1/get-entry-and-proof", params, &resp); err != nil {
			return nil, fmt.Errorf("get-entry-and-proof at start %d: %w", start, err)
		}
		hashes := make([][]byte, len(resp.AuditPath))
		for i, h := range resp.AuditPath {
			hashes[len(hashes)-1-i] = h
		}
		r, err := t.ranges.NewRange(0, start-1, hashes)
		if err != nil {
			return nil, fmt.Errorf("audit path for leaf %d does not form a compact range: %w", start-1, err)
		}
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(resp.LeafInput), nil); err != nil {
			return nil, fmt.Errorf("append leaf %d: %w", start-1, err)
		}
		rng = r
	}
	if err := t.verifyRange(ctx, rng, head); err != nil {
		return nil, err
	}
	t.logger.Info("starting", "start", start, "tree_size", head.TreeSize)
	return &Checkpoint{
		TreeSize:  head.TreeSize,
		Timestamp: head.Timestamp,
		RootHash:  head.SHA256RootHash[:],
		Signature: head.raw.TreeHeadSignature,
		NextIndex: start,
		Range:     cloneHashes(rng.Hashes()),
	}, nil
}

// advanceHead decides whether head may replace (or repeat) the checkpoint's tree head:
// it must not be smaller, and it must be provably consistent. Misbehaviour
// is raised as an event and reported as (false, nil): nothing to retry
// sooner than the next poll.
func (t *RFC6962Tailer) advanceHead(ctx context.Context, cp *Checkpoint, head *sth) (bool, error) {
	if done, ok := t.compareHead(ctx, cp, head.TreeSize, head.SHA256RootHash[:]); done {
		return ok, nil
	}
	var resp ct.GetSTHConsistencyResponse
	params := url.Values{"first": {strconv.FormatUint(cp.TreeSize, 10)}, "second": {strconv.FormatUint(head.TreeSize, 10)}}
	if err := t.fetch.get(ctx, "/ct/v1/get-sth-consistency", params, &resp); err != nil {
		return false, fmt.Errorf("get-sth-consistency %d→%d: %w", cp.TreeSize, head.TreeSize, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp.TreeSize, head.TreeSize, resp.Consistency, cp.RootHash, head.SHA256RootHash[:]); err != nil {
		t.inconsistent(ctx, cp, head.TreeSize, head.SHA256RootHash[:], err)
		return false, nil
	}
	return true, nil
}

// verifyRange proves that the compact range [0, n) hashes to a tree that the
// signed head contains: equal roots when n is the head's size, otherwise a
// consistency proof from n to the head.
func (t *RFC6962Tailer) verifyRange(ctx context.Context, rng *compact.Range, head *sth) error {
	n := rng.End()
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return fmt.Errorf("root of [0, %d): %w", n, err)
	}
	if n == 0 {
		return nil
	}
	if n == head.TreeSize {
		if !bytes.Equal(root, head.SHA256RootHash[:]) {
			t.raise(ctx, event.InconsistentTree, fmt.Sprintf("entries:%d:%x", n, head.SHA256RootHash[:]),
				fmt.Sprintf("entries [0, %d) hash to %x, but the signed root of size %d is %x", n, root, n, head.SHA256RootHash[:]))
			return fmt.Errorf("entries do not hash to the signed root of size %d", n)
		}
		return nil
	}
	var resp ct.GetSTHConsistencyResponse
	params := url.Values{"first": {strconv.FormatUint(n, 10)}, "second": {strconv.FormatUint(head.TreeSize, 10)}}
	if err := t.fetch.get(ctx, "/ct/v1/get-sth-consistency", params, &resp); err != nil {
		return fmt.Errorf("get-sth-consistency %d→%d: %w", n, head.TreeSize, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, n, head.TreeSize, resp.Consistency, root, head.SHA256RootHash[:]); err != nil {
		t.raise(ctx, event.InconsistentTree, fmt.Sprintf("entries:%d:%x:%d:%x", n, root, head.TreeSize, head.SHA256RootHash[:]),
			fmt.Sprintf("entries [0, %d) hash to %x, which is not in the signed tree of size %d (root %x): %v", n, root, head.TreeSize, head.SHA256RootHash[:], err))
		return fmt.Errorf("entries [0, %d) are not in the signed tree of size %d: %w", n, head.TreeSize, err)
	}
	return nil
}

// batchResult is what downloading one get-entries range yields: the leaf
// hash of every entry in order, their hits and malformed-entry events, or
// the error that stopped the download.
type batchResult struct {
	leafHashes []cert.Hash
	hits       []event.Hit
	malformed  []event.LogEvent
	err        error
}

// download fetches [cp.NextIndex, cp.TreeSize) with parallel workers (each
// also hashes, decodes and matches its batch, so decoding spreads over the
// cores) and commits in order: every VerifyEvery entries (and at the end) a
// committer running beside the download proves the entries are in the
// signed tree, publishes their hits, and only then saves the checkpoint.
func (t *RFC6962Tailer) download(parent context.Context, cp *Checkpoint) (*Checkpoint, error) {
	rng, err := t.ranges.NewRange(0, cp.NextIndex, cloneHashes(cp.Range))
	if err != nil {
		return nil, &fatalError{fmt.Errorf("stored compact range is invalid: %w", err)}
	}
	head := &sth{raw: ct.GetSTHResponse{TreeHeadSignature: cp.Signature}}
	head.TreeSize, head.Timestamp = cp.TreeSize, cp.Timestamp
	copy(head.SHA256RootHash[:], cp.RootHash)

	// ctx ends the download when the committer fails.
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	opts := t.cfg.Fetch
	batches := func(yield func(func(context.Context) batchResult) bool) {
		for s := cp.NextIndex; s < cp.TreeSize; {
			start, end := s, min(s+uint64(opts.BatchSize), cp.TreeSize)
			if !yield(func(ctx context.Context) batchResult { return t.fetchBatch(ctx, start, end) }) {
				return
			}
			s = end
		}
	}
	commits := t.startCommitter(parent, cp, rng, cancel, func(ctx context.Context, rng *compact.Range) error {
		return t.verifyRange(ctx, rng, head)
	})
	var readErr error
	for res := range inOrder(ctx, opts.Concurrency, batches) {
		if res.err != nil {
			// What came before the failing batch is still committed.
			commits.flush()
			readErr = res.err
			break
		}
		if !commits.add(res.leafHashes, res.hits, res.malformed) {
			break
		}
	}
	return commits.finish(parent, readErr)
}

// fetchBatch downloads [start, end), asking again for the rest when the log
// returns a short page, then hashes, decodes and matches every entry.
func (t *RFC6962Tailer) fetchBatch(ctx context.Context, start, end uint64) batchResult {
	var res batchResult
	res.leafHashes = make([]cert.Hash, 0, end-start)
	for i := start; i < end; {
		var entries []ct.LeafEntry
		params := url.Values{"start": {strconv.FormatUint(i, 10)}, "end": {strconv.FormatUint(end-1, 10)}}
		// decodeGetEntries rather than fetch.get's encoding/json: JSON
		// decoding was a fifth of a backfill's CPU. A body that does not
		// decode is retried, as fetch.get does.
		err := t.fetch.fetchRetry(ctx, "/ct/v1/get-entries", params, func(body []byte) error {
			var err error
			entries, err = decodeGetEntries(body)
			// The entries are copies: the body's buffer is reused.
			t.fetch.recycle(body)
			if err != nil {
				return fmt.Errorf("decode /ct/v1/get-entries response: %w", err)
			}
			return nil
		})
		if err != nil {
			res.err = fmt.Errorf("get-entries [%d, %d]: %w", i, end-1, err)
			return res
		}
		resp := ct.GetEntriesResponse{Entries: entries}
		if len(resp.Entries) == 0 {
			// An empty page makes no progress; treat it as a failure so
			// the retry backoff applies instead of a hot loop.
			res.err = fmt.Errorf("get-entries [%d, %d]: log returned no entries", i, end-1)
			return res
		}
		if uint64(len(resp.Entries)) > end-i {
			resp.Entries = resp.Entries[:end-i]
		}
		for _, le := range resp.Entries {
			t.processEntry(i, le, &res)
			i++
		}
	}
	return res
}

func (t *RFC6962Tailer) processEntry(index uint64, le ct.LeafEntry, res *batchResult) {
	res.leafHashes = append(res.leafHashes, cert.Hash(rfc6962.DefaultHasher.HashLeaf(le.LeafInput)))
	t.processed.Add(1)
	c, ts, err := t.decoder.DecodeRFC6962Entry(le.LeafInput, le.ExtraData)
	if err != nil {
		t.malformed.Add(1)
		t.logger.Warn("malformed entry", "index", index, "err", err)
		res.malformed = append(res.malformed, t.newEvent(event.MalformedEntry, "entry:"+strconv.FormatUint(index, 10),
			fmt.Sprintf("entry %d could not be decoded: %v", index, err), index))
		return
	}
	hits := t.cfg.Matcher.Match(&Entry{Log: t.log, Index: index, Timestamp: ts, Cert: c})
	res.hits = append(res.hits, hits...)
}
