package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrFenced is returned (wrapped) by [KVCheckpoints.Save] when the log's
// checkpoint was written by someone else since this store last read or
// wrote it: another process took the log over (see [KVCheckpoints.Fence]).
// A tailer that gets it must stop following the log, not retry: its view
// of the log is stale, and saving anyway could move the log backwards.
var ErrFenced = errors.New("checkpoint written by another process")

// KVCheckpoints stores checkpoints in a JetStream key-value bucket, one key
// per log (the hex log ID). JetStream replicates and persists the bucket, so
// a restarted or replacement process resumes where the last one committed.
//
// Saves are compare-and-swap on the entry's revision: a store saves a log's
// checkpoint only over the revision it last loaded or saved, so that when
// several processes share the bucket, one that lost a log (paused,
// partitioned, its lease taken) cannot overwrite the new owner's progress.
// Each process must use its own KVCheckpoints. It is safe for concurrent
// use, for different logs.
type KVCheckpoints struct {
	kv jetstream.KeyValue

	mu sync.Mutex
	// seen is, per log, the revision last loaded or written by this store
	// (0: the key was absent) and the lease epoch to record with it.
	seen map[string]seenEntry
}

type seenEntry struct {
	rev   uint64
	epoch uint64
}

// storedCheckpoint is a bucket value: the checkpoint and the epoch of the
// lease under which it was written. Empty marks a value written only to
// fence a log that had no checkpoint yet; it loads as none.
type storedCheckpoint struct {
	Checkpoint
	Epoch uint64 `json:"lease_epoch,omitempty"`
	Empty bool   `json:"empty,omitempty"`
}

// NewKVCheckpoints wraps a bucket created by the caller.
func NewKVCheckpoints(kv jetstream.KeyValue) *KVCheckpoints {
	return &KVCheckpoints{kv: kv, seen: map[string]seenEntry{}}
}

// Load returns the log's checkpoint, or (nil, nil) when there is none, and
// remembers its revision: the next Save of the log succeeds only over it.
func (s *KVCheckpoints) Load(ctx context.Context, logID string) (*Checkpoint, error) {
	rec, rev, err := s.get(ctx, logID)
	if err != nil {
		return nil, err
	}
	s.remember(logID, rev, rec.Epoch)
	if rev == 0 || rec.Empty {
		return nil, nil
	}
	return &rec.Checkpoint, nil
}

// get reads the log's entry; rev is 0 when there is none.
func (s *KVCheckpoints) get(ctx context.Context, logID string) (storedCheckpoint, uint64, error) {
	var rec storedCheckpoint
	e, err := s.kv.Get(ctx, logID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, 0, nil
	}
	if err != nil {
		return rec, 0, fmt.Errorf("get checkpoint %s: %w", logID, err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return rec, 0, fmt.Errorf("decode checkpoint %s: %w", logID, err)
	}
	return rec, e.Revision(), nil
}

func (s *KVCheckpoints) remember(logID string, rev, epoch uint64) {
	s.mu.Lock()
	s.seen[logID] = seenEntry{rev: rev, epoch: epoch}
	s.mu.Unlock()
}

// Save replaces the log's checkpoint if nobody else wrote it since this
// store last loaded or saved it, and returns once JetStream has stored it.
// Otherwise it returns an error wrapping [ErrFenced] and stores nothing.
// A Save not preceded by a Load of the log succeeds only when the log has
// no checkpoint.
func (s *KVCheckpoints) Save(ctx context.Context, logID string, cp *Checkpoint) error {
	s.mu.Lock()
	seen := s.seen[logID]
	s.mu.Unlock()
	b, err := json.Marshal(storedCheckpoint{Checkpoint: *cp, Epoch: seen.epoch})
	if err != nil {
		return fmt.Errorf("encode checkpoint %s: %w", logID, err)
	}
	rev, err := s.write(ctx, logID, b, seen.rev)
	if err != nil {
		return fmt.Errorf("put checkpoint %s: %w", logID, err)
	}
	s.remember(logID, rev, seen.epoch)
	return nil
}

// write stores value over revision rev (0: over no entry) and returns the
// new revision; a conflict is ErrFenced.
func (s *KVCheckpoints) write(ctx context.Context, logID string, value []byte, rev uint64) (uint64, error) {
	var err error
	var next uint64
	if rev == 0 {
		// Create also succeeds over a deleted key, which Update with
		// revision 0 would not.
		next, err = s.kv.Create(ctx, logID, value)
	} else {
		next, err = s.kv.Update(ctx, logID, value, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("%w (%w)", ErrFenced, err)
	}
	return next, err
}

// fenceAttempts bounds Fence's retries when the old owner writes between
// Fence's read and its write.
const fenceAttempts = 5

// Fence takes the log's checkpoint over for a new owner holding the log's
// lease at epoch: it writes the stored checkpoint again, unchanged but for
// the epoch, so that its revision changes and every later Save of any
// other store (a previous owner still running) fails with [ErrFenced]. A
// log without a checkpoint gets an empty marker, which loads as none. The
// new owner's tailer then Loads and resumes from exactly what was stored.
//
// Call it after acquiring the log's lease and before starting its tailer.
func (s *KVCheckpoints) Fence(ctx context.Context, logID string, epoch uint64) error {
	var err error
	for range fenceAttempts {
		var rec storedCheckpoint
		var rev uint64
		rec, rev, err = s.get(ctx, logID)
		if err != nil {
			return fmt.Errorf("fence: %w", err)
		}
		if rev == 0 {
			rec = storedCheckpoint{Empty: true}
		}
		rec.Epoch = epoch
		b, merr := json.Marshal(rec)
		if merr != nil {
			return fmt.Errorf("fence: encode checkpoint %s: %w", logID, merr)
		}
		var next uint64
		next, err = s.write(ctx, logID, b, rev)
		if err == nil {
			s.remember(logID, next, epoch)
			return nil
		}
		if !errors.Is(err, ErrFenced) {
			return fmt.Errorf("fence checkpoint %s: %w", logID, err)
		}
		// The previous owner saved in between: read again.
	}
	return fmt.Errorf("fence checkpoint %s: %d attempts: %w", logID, fenceAttempts, err)
}
