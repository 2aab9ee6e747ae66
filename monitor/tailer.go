package monitor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ctwatch/ctwatch/cert"
	"github.com/ctwatch/ctwatch/event"
)

// tailer is what the tailers of both log kinds share: the log, the
// politeness of its fetcher, the commit step (publish, then checkpoint),
// events and counters. The protocol-specific tailers embed it.
type tailer struct {
	log    *Log
	cfg    TailerConfig
	fetch  *fetcher
	logger *slog.Logger
	key    string // checkpoint key: hex log ID

	unreachableRaised atomic.Bool
	behindRaised      atomic.Bool
	treeSize          atomic.Uint64
	nextIndex         atomic.Uint64
	processed         atomic.Uint64
	malformed         atomic.Uint64
	hits              atomic.Uint64

	// health holds what the status page and metrics show beyond counts.
	healthMu sync.Mutex
	health   health

	// decoder decodes the log's entries, remembering the chain
	// certificates it has read (they repeat on nearly every entry).
	decoder cert.Decoder
}

// health is the part of Stats that is not a plain counter.
type health struct {
	events        map[event.LogEventKind]uint64
	fetchErrors   map[string]uint64
	lastError     string
	lastErrorTime time.Time
	lastHead      time.Time
	lastCommit    time.Time
	behindSince   time.Time
}

// noteError records a failure for Stats.
func (t *tailer) noteError(err error) {
	t.healthMu.Lock()
	defer t.healthMu.Unlock()
	t.health.lastError = err.Error()
	t.health.lastErrorTime = time.Now()
}

// noteHead records a verified tree head and the position against it.
func (t *tailer) noteHead(next, size uint64) {
	t.healthMu.Lock()
	defer t.healthMu.Unlock()
	now := time.Now()
	t.health.lastHead = now
	switch {
	case next >= size:
		t.health.behindSince = time.Time{}
	case t.health.behindSince.IsZero():
		t.health.behindSince = now
	}
}

// newTailer checks the configuration and the log's key (returned parsed)
// and builds the shared part of a tailer that fetches from base.
func newTailer(l *Log, base string, cfg TailerConfig) (*tailer, any, error) {
	if cfg.Matcher == nil || cfg.Publisher == nil || cfg.Checkpoints == nil {
		return nil, nil, errors.New("tailer: matcher, publisher and checkpoint store are required")
	}
	pub, err := x509.ParsePKIXPublicKey(l.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("log %s: parse key: %w", l.Name, err)
	}
	if l.ID == (cert.Hash{}) {
		l.ID = sha256.Sum256(l.Key)
	}
	cfg.Fetch = cfg.Fetch.withDefaults()
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	t := &tailer{
		log:    l,
		cfg:    cfg,
		fetch:  newFetcher(base, cfg.HTTPClient, cfg.Fetch),
		logger: logger.With("log", l.Name),
		key:    hex.EncodeToString(l.ID[:]),
	}
	t.fetch.onFailure = t.requestFailed
	return t, pub, nil
}

// fatalError marks failures after which the tailer must stop rather than
// risk advancing past unpublished hits: a checkpoint another process now
// owns (ErrFenced), or a stored state that cannot be right.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

func (e *fatalError) Unwrap() error { return e.err }

// Stats returns the tailer's running counts and health. It is safe for
// concurrent use; the maps are copies.
func (t *tailer) Stats() Stats {
	t.healthMu.Lock()
	h := t.health
	h.events = maps.Clone(h.events)
	h.fetchErrors = maps.Clone(h.fetchErrors)
	t.healthMu.Unlock()
	return Stats{
		TreeSize:      t.treeSize.Load(),
		NextIndex:     t.nextIndex.Load(),
		Processed:     t.processed.Load(),
		Malformed:     t.malformed.Load(),
		Hits:          t.hits.Load(),
		Events:        h.events,
		FetchErrors:   h.fetchErrors,
		LastError:     h.lastError,
		LastErrorTime: h.lastErrorTime,
		LastHead:      h.lastHead,
		LastCommit:    h.lastCommit,
		BehindSince:   h.behindSince,
		Unreachable:   t.unreachableRaised.Load(),
	}
}

// Run follows the log until ctx ends, then returns ctx's error. Failures of
// the log (unreachable, misbehaving) are reported as events and retried, and
// so are failures to publish or to store a checkpoint (NATS restarting,
// a cluster electing a leader): the tailer holds its position until they
// pass. Run returns early only when its checkpoint was taken over by
// another process (an error wrapping ErrFenced) or its stored state is
// invalid.
func (t *tailer) run(ctx context.Context, step func(context.Context, *Checkpoint) (*Checkpoint, error)) error {
	var cp *Checkpoint
	err := t.durably(ctx, "load checkpoint", func(ctx context.Context) error {
		var err error
		cp, err = t.cfg.Checkpoints.Load(ctx, t.key)
		return err
	})
	if err != nil {
		return fmt.Errorf("log %s: load checkpoint: %w", t.log.Name, err)
	}
	if cp != nil {
		t.treeSize.Store(cp.TreeSize)
		t.nextIndex.Store(cp.NextIndex)
		t.logger.Info("resuming", "next_index", cp.NextIndex, "tree_size", cp.TreeSize)
	}
	for {
		next, err := step(ctx, cp)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var fatal *fatalError
			if errors.As(err, &fatal) {
				return fmt.Errorf("log %s: %w", t.log.Name, fatal.err)
			}
			t.logger.Warn("tailing step failed", "err", err)
		}
		if next != nil {
			cp = next
		}
		if t.fetch.failures.Load() == 0 {
			// The log answers again: a later outage deserves a new event.
			t.unreachableRaised.Store(false)
		}
		t.checkBacklog(ctx, cp)
		// Poll again after the interval unless there is a known backlog
		// to work through (no checkpoint yet means nothing to work on).
		caughtUp := cp == nil || cp.NextIndex >= cp.TreeSize
		if caughtUp || err != nil {
			if err := sleep(ctx, t.cfg.Fetch.PollInterval); err != nil {
				return err
			}
		}
	}
}

// commit publishes verified hits and malformed-entry events durably. It is
// the step that must finish before a checkpoint may move past them, so it
// retries until the publisher takes them (publishing again is harmless:
// the IDs dedupe) or ctx ends.
func (t *tailer) commit(ctx context.Context, hits []event.Hit, events []event.LogEvent) error {
	if len(hits) > 0 {
		if err := t.durably(ctx, fmt.Sprintf("publish %d hits", len(hits)), func(ctx context.Context) error {
			return t.cfg.Publisher.PublishHits(ctx, hits)
		}); err != nil {
			return &fatalError{fmt.Errorf("publish %d hits: %w", len(hits), err)}
		}
		t.hits.Add(uint64(len(hits)))
	}
	for _, ev := range events {
		if err := t.durably(ctx, "publish event", func(ctx context.Context) error {
			return t.cfg.Publisher.PublishEvent(ctx, ev)
		}); err != nil {
			return &fatalError{fmt.Errorf("publish event: %w", err)}
		}
	}
	return nil
}

// Bounds of the backoff between attempts of a write to NATS.
const (
	storageMinBackoff = 250 * time.Millisecond
	storageMaxBackoff = 30 * time.Second
)

// durably runs fn, a write to (or read from) our own storage, until it
// succeeds, ctx ends, or it fails with ErrFenced, which no retry can fix.
// In between it logs, records the error for Stats and backs off: a NATS
// server restarting or a cluster electing a leader should delay the log,
// not stop the process.
func (t *tailer) durably(ctx context.Context, what string, fn func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrFenced) || ctx.Err() != nil {
			return err
		}
		delay := backoff(attempt, storageMinBackoff, storageMaxBackoff)
		t.logger.Warn(what+" failed; holding the position and retrying", "attempt", attempt+1, "retry_in", delay, "err", err)
		t.noteError(fmt.Errorf("%s: %w", what, err))
		if err := sleep(ctx, delay); err != nil {
			return err
		}
	}
}

func (t *tailer) save(ctx context.Context, cp *Checkpoint) error {
	if err := t.durably(ctx, "save checkpoint", func(ctx context.Context) error {
		return t.cfg.Checkpoints.Save(ctx, t.key, cp)
	}); err != nil {
		return &fatalError{fmt.Errorf("save checkpoint: %w", err)}
	}
	t.nextIndex.Store(cp.NextIndex)
	t.healthMu.Lock()
	t.health.lastCommit = time.Now()
	if cp.NextIndex >= cp.TreeSize {
		t.health.behindSince = time.Time{}
	}
	t.healthMu.Unlock()
	return nil
}

// requestFailed raises a log-unreachable event once per outage, when
// enough consecutive requests have failed.
func (t *tailer) requestFailed(ctx context.Context, consecutive int64, err error) {
	t.logger.Debug("request failed", "consecutive", consecutive, "err", err)
	t.noteError(err)
	t.healthMu.Lock()
	if t.health.fetchErrors == nil {
		t.health.fetchErrors = map[string]uint64{}
	}
	t.health.fetchErrors[FetchErrorKind(err)]++
	t.healthMu.Unlock()
	if consecutive >= unreachableAfter && t.unreachableRaised.CompareAndSwap(false, true) {
		t.raise(ctx, event.LogUnreachable, "unreachable:"+time.Now().UTC().Format(time.RFC3339),
			fmt.Sprintf("%d consecutive requests failed; last error: %v", consecutive, err))
	}
}

// checkBacklog raises a falling_behind event when the verified tree is
// more than MaxBacklog entries ahead of cp, once per episode: the event is
// armed again when the backlog is down to half the limit, so a backlog
// hovering around the limit does not flap.
func (t *tailer) checkBacklog(ctx context.Context, cp *Checkpoint) {
	limit := t.cfg.Fetch.MaxBacklog
	if limit == 0 || cp == nil {
		return
	}
	backlog := cp.TreeSize - min(cp.NextIndex, cp.TreeSize)
	switch {
	case backlog > limit && t.behindRaised.CompareAndSwap(false, true):
		t.raise(ctx, event.FallingBehind, fmt.Sprintf("behind:%d:%d", cp.NextIndex, cp.TreeSize),
			fmt.Sprintf("%d entries behind the log (tree size %d, next index %d); more than monitor.max_backlog %d, so hits arrive late",
				backlog, cp.TreeSize, cp.NextIndex, limit))
	case backlog <= limit/2:
		t.behindRaised.Store(false)
	}
}

func (t *tailer) newEvent(kind event.LogEventKind, subject, detail string, index uint64) event.LogEvent {
	sum := sha256.Sum256([]byte(t.key + "\x00" + string(kind) + "\x00" + subject))
	return event.LogEvent{
		ID:     hex.EncodeToString(sum[:16]),
		Kind:   kind,
		Log:    event.LogRef{Name: t.log.Name, URL: t.log.URL, Index: index},
		Time:   time.Now().UTC(),
		Detail: detail,
	}
}

// raise reports a log event now. Publishing failures are logged, not
// returned: the event is about the log, and the tailer is already not
// advancing because of it.
func (t *tailer) raise(ctx context.Context, kind event.LogEventKind, subject, detail string) {
	t.logger.Warn("log event", "kind", kind, "detail", detail)
	t.healthMu.Lock()
	if t.health.events == nil {
		t.health.events = map[event.LogEventKind]uint64{}
	}
	t.health.events[kind]++
	if kind != event.FallingBehind {
		t.health.lastError = string(kind) + ": " + detail
		t.health.lastErrorTime = time.Now()
	}
	t.healthMu.Unlock()
	if err := t.cfg.Publisher.PublishEvent(ctx, t.newEvent(kind, subject, detail, t.nextIndex.Load())); err != nil {
		t.logger.Error("publish log event", "kind", kind, "err", err)
	}
}

// TailerConfig holds what a tailer needs besides the log itself.
type TailerConfig struct {
	Fetch       FetchOptions
	Matcher     Matcher
	Publisher   Publisher
	Checkpoints CheckpointStore
	// HTTPClient is used for all requests; nil means a default client.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Stats are running counts and health of one tailer, for the status page,
// metrics and tests.
type Stats struct {
	// TreeSize is the size of the newest verified tree head; NextIndex
	// the first entry not yet committed.
	TreeSize  uint64
	NextIndex uint64
	// Processed, Malformed and Hits count entries matched, entries no
	// decoder could read, and hits published since start.
	Processed uint64
	Malformed uint64
	Hits      uint64
	// Events counts the log events raised since start, by kind; nil when
	// none.
	Events map[event.LogEventKind]uint64
	// FetchErrors counts failed requests since start by FetchErrorKind;
	// nil when none.
	FetchErrors map[string]uint64
	// LastError is the last failed request or log event (other than
	// falling_behind), "" when none since start; LastErrorTime is when.
	LastError     string
	LastErrorTime time.Time
	// LastHead is when a tree head was last verified, LastCommit when
	// entries were last committed; zero before the first.
	LastHead   time.Time
	LastCommit time.Time
	// BehindSince is when the tailer last fell behind the log's verified
	// tree head; zero while it is caught up. Now minus BehindSince is the
	// lag in time.
	BehindSince time.Time
	// Unreachable is true during an outage that raised log_unreachable.
	Unreachable bool
}

// shutdownFlush bounds the final commit of a tailer that is stopping.
const shutdownFlush = 10 * time.Second

// unreachableAfter is how many consecutive failed requests make a log
// "unreachable" for the purpose of raising an event.
const unreachableAfter = 5

// compareHead decides what needs no proof about a new signed tree head of
// size and root: a smaller tree is a shrinking_tree event, the same size
// with another root a fork (inconsistent_tree event), the same head again or
// a first head after an empty tree is fine. done reports whether it
// decided; ok whether the head may be used.
func (t *tailer) compareHead(ctx context.Context, cp *Checkpoint, size uint64, root []byte) (done, ok bool) {
	switch {
	case size < cp.TreeSize:
		t.raise(ctx, event.ShrinkingTree, fmt.Sprintf("shrink:%d:%d", cp.TreeSize, size),
			fmt.Sprintf("tree head of size %d is smaller than the verified size %d", size, cp.TreeSize))
		return true, false
	case size == cp.TreeSize:
		if !bytes.Equal(root, cp.RootHash) {
			t.raise(ctx, event.InconsistentTree, fmt.Sprintf("fork:%d:%x", size, root),
				fmt.Sprintf("two signed tree heads of size %d with different roots: %x and %x", size, cp.RootHash, root))
			return true, false
		}
		// The same tree head again: nothing new, but entries of it may
		// still be waiting to be downloaded.
		return true, true
	case cp.TreeSize == 0:
		return true, true
	}
	return false, false
}

// inconsistent raises the event for a tree head that a consistency proof
// failed to tie to the verified one.
func (t *tailer) inconsistent(ctx context.Context, cp *Checkpoint, size uint64, root []byte, err error) {
	t.raise(ctx, event.InconsistentTree, fmt.Sprintf("fork:%d:%x:%d:%x", cp.TreeSize, cp.RootHash, size, root),
		fmt.Sprintf("tree head of size %d (root %x) is not consistent with verified size %d (root %x): %v", size, root, cp.TreeSize, cp.RootHash, err))
}
