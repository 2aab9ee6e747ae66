package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctwatch/ctwatch/cert"
	"github.com/ctwatch/ctwatch/rules"
)

// IssuersBucket is the JetStream KV bucket that remembers the issuer keys
// the `new_issuer` matcher has seen, so that a restart does not report them
// again. Keys are the lower-case hex SHA-256 of an issuer's
// SubjectPublicKeyInfo; values the RFC 3339 time it was first seen.
const IssuersBucket = "ctwatch-issuers"

// issuerFlushInterval is how often new issuer keys are written to the
// bucket. A crash loses at most this much: those issuers are then reported
// once more after the restart, which errs on the side of telling.
const issuerFlushInterval = time.Second

// newIssuerMemory returns a memory seeded with the keys of the built-in CA
// issuer sets, so that a fresh install does not report every public CA as
// new.
func newIssuerMemory() (*rules.MemoryIssuers, error) {
	known, err := rules.KnownIssuers(rules.Builtin())
	if err != nil {
		return nil, fmt.Errorf("built-in issuer keys: %w", err)
	}
	return rules.NewMemoryIssuers(known), nil
}

// issuerStore persists the first sightings of a MemoryIssuers in a KV
// bucket. Matching never waits for it: run writes what the memory took in
// since the last tick.
type issuerStore struct {
	kv     jetstream.KeyValue
	mem    *rules.MemoryIssuers
	logger *slog.Logger
	// pending holds keys taken from mem that are not stored yet; only run
	// touches it.
	pending []cert.Hash
}

// openIssuerStore creates (or opens) the bucket, with replicas copies on a
// cluster (0 means 1), and teaches mem every key stored in it.
func openIssuerStore(ctx context.Context, js jetstream.JetStream, mem *rules.MemoryIssuers, replicas int, logger *slog.Logger) (*issuerStore, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      IssuersBucket,
		Description: "ctwatch issuer keys seen, for new_issuer rules",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", IssuersBucket, err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list bucket %s: %w", IssuersBucket, err)
	}
	var known []cert.Hash
	for key := range lister.Keys() {
		h, ok := parseIssuerKey(key)
		if !ok {
			logger.Warn("ignoring malformed key in issuer bucket", "bucket", IssuersBucket, "key", key)
			continue
		}
		known = append(known, h)
	}
	// The lister has stopped itself once its channel closed; Stop only
	// reports that.
	_ = lister.Stop()
	mem.Remember(known...)
	logger.Debug("issuer keys loaded", "bucket", IssuersBucket, "stored", len(known), "known", mem.Len())
	return &issuerStore{kv: kv, mem: mem, logger: logger}, nil
}

func parseIssuerKey(key string) (cert.Hash, bool) {
	var h cert.Hash
	if len(key) != 2*len(h) {
		return h, false
	}
	if _, err := hex.Decode(h[:], []byte(key)); err != nil {
		return h, false
	}
	return h, true
}

// run stores new keys every issuerFlushInterval until ctx ends, then once
// more (with a short grace period of its own) so that a clean shutdown
// loses nothing. Call it after matching has stopped for that last flush to
// be complete.
func (s *issuerStore) run(ctx context.Context) {
	tick := time.NewTicker(issuerFlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			s.flush(ctx)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			s.flush(final)
			cancel()
			return
		}
	}
}

// flush writes the keys first seen since the last flush. A key already
// in the bucket (another process saw it first) keeps its time. Keys that
// could not be written are kept for the next flush.
func (s *issuerStore) flush(ctx context.Context) {
	s.pending = append(s.pending, s.mem.TakeNew()...)
	if len(s.pending) == 0 {
		return
	}
	now := []byte(time.Now().UTC().Format(time.RFC3339))
	left := s.pending[:0]
	var firstErr error
	for _, h := range s.pending {
		_, err := s.kv.Create(ctx, hex.EncodeToString(h[:]), now)
		if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			left = append(left, h)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	s.pending = left
	if firstErr != nil {
		s.logger.Warn("storing new issuer keys failed; will retry", "bucket", IssuersBucket, "pending", len(left), "err", firstErr)
	}
}
