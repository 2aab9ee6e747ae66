package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// KVCheckpoints stores checkpoints in a JetStream key-value bucket, one key
// per log (the hex log ID). JetStream replicates and persists the bucket, so
// a restarted or replacement process resumes where the last one committed.
// It is safe for concurrent use.
type KVCheckpoints struct {
	kv jetstream.KeyValue
}

// NewKVCheckpoints wraps a bucket created by the caller.
func NewKVCheckpoints(kv jetstream.KeyValue) *KVCheckpoints {
	return &KVCheckpoints{kv: kv}
}

// Load returns the log's checkpoint, or (nil, nil) when there is none.
func (s *KVCheckpoints) Load(ctx context.Context, logID string) (*Checkpoint, error) {
	e, err := s.kv.Get(ctx, logID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get checkpoint %s: %w", logID, err)
	}
	var cp Checkpoint
	if err := json.Unmarshal(e.Value(), &cp); err != nil {
		return nil, fmt.Errorf("decode checkpoint %s: %w", logID, err)
	}
	return &cp, nil
}

// Save replaces the log's checkpoint. It returns once JetStream has stored it.
func (s *KVCheckpoints) Save(ctx context.Context, logID string, cp *Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("encode checkpoint %s: %w", logID, err)
	}
	if _, err := s.kv.Put(ctx, logID, b); err != nil {
		return fmt.Errorf("put checkpoint %s: %w", logID, err)
	}
	return nil
}
