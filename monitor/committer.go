package monitor

import (
	"context"
	"fmt"

	"github.com/transparency-dev/merkle/compact"

	"github.com/ctwatch/ctwatch/cert"
	"github.com/ctwatch/ctwatch/event"
)

// window is a run of entries read, hashed and matched, ready to be
// committed: rng is the compact range [0, end of the run), hits and events
// are those of the run's entries. A window is handed to the committer whole
// and never touched by the reader again.
type window struct {
	rng    *compact.Range
	hits   []event.Hit
	events []event.LogEvent
}

// committer commits windows in order on a goroutine of its own: it proves
// each window's range is in the verified tree, publishes the hits and
// events, and only then saves the position. Running it beside the reader
// keeps the download going while a window is proven and published (which
// takes a round trip to the log and one to NATS); handing a window over
// blocks while the previous one is still being committed, so at most two
// windows (one committing, one being read) are held at any time.
//
// A window that fails to commit stops the committer: it cancels the
// download through stop, drops later windows, and finish reports the error.
// Windows handed over after the tailer's context ended (a shutdown) are
// still committed, within shutdownFlush, so that a restart does not read
// them again.
type committer struct {
	t      *tailer
	ctx    context.Context
	stop   context.CancelFunc
	verify func(context.Context, *compact.Range) error

	windows chan window
	done    chan struct{}
	// saved and err are written by the committer goroutine and read by
	// finish after done is closed.
	saved *Checkpoint
	err   error

	// The reader's side, used only by the goroutine that calls add, flush
	// and finish: the compact range of everything read, the hits and
	// events read since the last window, where that window ended, the
	// size at which a window is always handed over, and the first
	// failure of the reader's side.
	ranges  *compact.RangeFactory
	rng     *compact.Range
	hits    []event.Hit
	events  []event.LogEvent
	last    uint64
	end     uint64
	every   uint64
	readErr error
}

// startCommitter starts committing what is read after cp: rng is the
// compact range [0, cp.NextIndex), verify proves a range is in the tree of
// cp's head (of size cp.TreeSize), and stop cancels the reader when a
// commit fails.
func (t *tailer) startCommitter(ctx context.Context, cp *Checkpoint, rng *compact.Range, stop context.CancelFunc, verify func(context.Context, *compact.Range) error) *committer {
	c := &committer{
		t: t, ctx: ctx, stop: stop, verify: verify,
		windows: make(chan window),
		done:    make(chan struct{}),
		saved:   cp,
		ranges:  newRangeFactory(),
		rng:     rng,
		last:    cp.NextIndex,
		end:     cp.TreeSize,
		every:   t.cfg.Fetch.VerifyEvery,
	}
	go c.run()
	return c
}

// maxWindowHits hands a window over before VerifyEvery entries when it
// already holds this many hits: the entries of a window are few bytes each,
// but a hit carries the certificate's names (hundreds for some), so with
// rules that match a large share of a log the hits, not the entries, would
// set the memory a window takes. A smaller window only costs one more
// proof.
const maxWindowHits = 2048

// add appends the leaf hashes of the next entries read, in index order,
// with their hits and events, and hands a window over once VerifyEvery
// entries or maxWindowHits hits are pending, or the tree's end is reached.
// It reports false when reading should stop: the committer failed, or the
// range did.
func (c *committer) add(hashes []cert.Hash, hits []event.Hit, events []event.LogEvent) bool {
	for i := range hashes {
		if err := c.rng.Append(hashes[i][:], nil); err != nil {
			c.readErr = &fatalError{fmt.Errorf("append leaf hash: %w", err)}
			return false
		}
	}
	c.hits, c.events = append(c.hits, hits...), append(c.events, events...)
	if c.rng.End()-c.last >= c.every || len(c.hits) >= maxWindowHits || c.rng.End() == c.end {
		return c.flush()
	}
	return true
}

// flush hands over everything read since the last window, if anything,
// waiting while the previous window is being committed. It reports false
// when the committer has stopped on an error.
func (c *committer) flush() bool {
	if c.rng.End() == c.last || c.readErr != nil {
		return c.readErr == nil
	}
	w, err := c.ranges.NewRange(0, c.rng.End(), cloneHashes(c.rng.Hashes()))
	if err != nil {
		c.readErr = &fatalError{fmt.Errorf("copy compact range: %w", err)}
		return false
	}
	c.last = c.rng.End()
	win := window{rng: w, hits: c.hits, events: c.events}
	c.hits, c.events = nil, nil
	select {
	case c.windows <- win:
		return true
	case <-c.done:
		return false
	}
}

func (c *committer) run() {
	defer close(c.done)
	for w := range c.windows {
		ctx := c.ctx
		if ctx.Err() != nil {
			// Stopping: commit what was read, bounded in time, as the log
			// or the publisher may be slow to answer.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), shutdownFlush)
			err := c.commit(ctx, w)
			cancel()
			if err != nil {
				c.t.logger.Warn("could not commit the entries read before shutdown; they will be read again", "err", err)
				c.err = err
				return
			}
			continue
		}
		if err := c.commit(ctx, w); err != nil {
			c.err = err
			c.stop()
			return
		}
	}
}

func (c *committer) commit(ctx context.Context, w window) error {
	if w.rng.End() == c.saved.NextIndex {
		return nil
	}
	if err := c.verify(ctx, w.rng); err != nil {
		return err
	}
	if err := c.t.commit(ctx, w.hits, w.events); err != nil {
		return err
	}
	n := *c.saved
	n.NextIndex = w.rng.End()
	n.Range = cloneHashes(w.rng.Hashes())
	if err := c.t.save(ctx, &n); err != nil {
		return err
	}
	c.saved = &n
	return nil
}

// finish ends a download: when the tailer is stopping (parent ended) and
// the reader did not fail, what was read is handed over to be committed
// first. It waits for every window to be committed and returns the last
// saved checkpoint with the error that ended the download: the parent's
// when stopping, else a failed commit, else the reader's (readErr, or a
// failure of add or flush).
func (c *committer) finish(parent context.Context, readErr error) (*Checkpoint, error) {
	if readErr == nil && parent.Err() != nil {
		c.flush()
	}
	close(c.windows)
	<-c.done
	switch {
	case parent.Err() != nil:
		return c.saved, parent.Err()
	case c.err != nil:
		return c.saved, c.err
	case c.readErr != nil:
		return c.saved, c.readErr
	}
	return c.saved, readErr
}
