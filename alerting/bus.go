package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctwatch/ctwatch/event"
)

// Defaults of [StreamConfig].
const (
	DefaultMaxAge     = 30 * 24 * time.Hour
	DefaultDuplicates = 24 * time.Hour
)

const (
	// publishWindow bounds the hits of one PublishHits call that are sent
	// but not yet acknowledged: enough to keep the pipe full, small enough
	// that several concurrent callers stay below the client's own limit
	// (maxAsyncPending) instead of stalling on it.
	publishWindow = 256
	// maxAsyncPending is the client-wide limit of unacknowledged async
	// publishes.
	maxAsyncPending = 4096
	// publishAckTimeout is how long an async publish waits for its ack
	// before failing; a server that does not answer in this time is down.
	publishAckTimeout = 30 * time.Second
	// maxIDLen bounds a hit or event ID; IDs are hashes, far shorter.
	maxIDLen = 256
)

// StreamConfig tunes the stream created by [Open]. The zero value gives the
// defaults, which suit a single embedded server.
type StreamConfig struct {
	// MaxAge is how long hits and events are kept; 0 means DefaultMaxAge.
	// A sink that is down for longer than this loses what expired.
	MaxAge time.Duration
	// Duplicates is the window in which a second message with the same ID
	// is dropped by the server; 0 means DefaultDuplicates. It is what makes
	// a replay after a crash a no-op, so it must exceed the longest time a
	// log may be replayed over. It must not exceed MaxAge.
	Duplicates time.Duration
	// Replicas is the number of copies the stream and bucket keep on a
	// cluster; 0 means 1 (what an embedded server supports).
	Replicas int
}

// Bus is the durable side of alerting: it publishes hits and log events to
// the CTWATCH stream and holds the checkpoint bucket. It implements the
// monitor's Publisher. A Bus is safe for concurrent use; it holds no
// resources of its own beyond the NATS connection it was given, which the
// caller closes.
type Bus struct {
	js jetstream.JetStream
	kv jetstream.KeyValue
}

// Open creates, or updates to cfg, the CTWATCH stream (subjects
// ctwatch.hit.*, ctwatch.event.*, ctwatch.dead.* and ctwatch.replay.*, file storage, limits retention) and the
// ctwatch-checkpoints KV bucket (history 1, file storage) on the server nc is
// connected to. It is idempotent: every ctwatch process calls it at start-up.
func Open(ctx context.Context, nc *nats.Conn, cfg StreamConfig) (*Bus, error) {
	if nc == nil {
		return nil, errors.New("alerting: open: nil connection")
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Duplicates == 0 {
		cfg.Duplicates = DefaultDuplicates
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	switch {
	case cfg.MaxAge < 0 || cfg.Duplicates < 0 || cfg.Replicas < 0:
		return nil, fmt.Errorf("alerting: open: negative stream setting %+v", cfg)
	case cfg.Duplicates > cfg.MaxAge:
		return nil, fmt.Errorf("alerting: open: duplicates window %s exceeds max age %s", cfg.Duplicates, cfg.MaxAge)
	}

	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(maxAsyncPending),
		jetstream.WithPublishAsyncTimeout(publishAckTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("alerting: open: %w", err)
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "ctwatch hits (by severity), log events (by kind), dead letters and replays (by sink)",
		Subjects:    []string{HitSubjects, EventSubjects, DeadSubjects, ReplaySubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		Duplicates:  cfg.Duplicates,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("alerting: open stream %s: %w", StreamName, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      CheckpointsBucket,
		Description: "ctwatch log checkpoints",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("alerting: open bucket %s: %w", CheckpointsBucket, err)
	}
	return &Bus{js: js, kv: kv}, nil
}

// JetStream returns the JetStream handle the Bus publishes with, for
// building a [Dispatcher] on the same connection.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Checkpoints returns the KV bucket that stores log checkpoints. The
// monitor owns the keys and values; alerting only creates the bucket.
func (b *Bus) Checkpoints() jetstream.KeyValue { return b.kv }

// PublishHits stores hits in the stream, each on the subject of its severity
// with its ID as Msg-Id. It sends them all without waiting, then returns nil
// only once the server has acknowledged every one, so a caller may advance a
// log's checkpoint past them. A hit the server already holds (same ID within
// the duplicates window) counts as stored: replays are harmless.
//
// On failure it returns the first error; hits before and after the failing
// one may or may not be stored, and publishing the whole slice again is the
// way to recover. A hit with an empty or malformed ID or severity fails the
// call before anything is sent. Safe for concurrent use.
func (b *Bus) PublishHits(ctx context.Context, hits []event.Hit) error {
	if len(hits) == 0 {
		return nil
	}
	for i := range hits {
		if err := checkID(hits[i].ID); err != nil {
			return fmt.Errorf("alerting: publish hit %d: %w", i, err)
		}
		if !validToken(string(hits[i].Severity)) {
			return fmt.Errorf("alerting: publish hit %s: invalid severity %q", hits[i].ID, hits[i].Severity)
		}
	}
	// pending holds the acks in flight, oldest first; waited holds how many
	// of them have been awaited already.
	pending := make([]jetstream.PubAckFuture, 0, min(len(hits), publishWindow))
	waited := 0
	for i := range hits {
		if len(pending)-waited == publishWindow {
			if err := awaitAck(ctx, pending[waited]); err != nil {
				return err
			}
			waited++
		}
		data, err := event.MarshalHit(&hits[i])
		if err != nil {
			return fmt.Errorf("alerting: encode hit %s: %w", hits[i].ID, err)
		}
		msg := &nats.Msg{Subject: HitSubject(hits[i].Severity), Data: data}
		f, err := b.js.PublishMsgAsync(msg,
			jetstream.WithMsgID(hits[i].ID),
			jetstream.WithExpectStream(StreamName),
		)
		if err != nil {
			return fmt.Errorf("alerting: publish hit %s: %w", hits[i].ID, err)
		}
		pending = append(pending, f)
	}
	for _, f := range pending[waited:] {
		if err := awaitAck(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// awaitAck waits for the server's answer to one async publish.
func awaitAck(ctx context.Context, f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return fmt.Errorf("alerting: publish hit %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
	case <-ctx.Done():
		return fmt.Errorf("alerting: publish hits: %w", ctx.Err())
	}
}

// PublishEvent stores a log event in the stream on the subject of its kind,
// with its ID as Msg-Id, and returns once the server has acknowledged it.
// Like PublishHits it is idempotent per ID and safe for concurrent use.
func (b *Bus) PublishEvent(ctx context.Context, ev event.LogEvent) error {
	if err := checkID(ev.ID); err != nil {
		return fmt.Errorf("alerting: publish event: %w", err)
	}
	if !validToken(string(ev.Kind)) {
		return fmt.Errorf("alerting: publish event %s: invalid kind %q", ev.ID, ev.Kind)
	}
	data, err := json.Marshal(&ev)
	if err != nil {
		return fmt.Errorf("alerting: encode event %s: %w", ev.ID, err)
	}
	msg := &nats.Msg{Subject: EventSubject(ev.Kind), Data: data}
	if _, err := b.js.PublishMsg(ctx, msg,
		jetstream.WithMsgID(ev.ID),
		jetstream.WithExpectStream(StreamName),
	); err != nil {
		return fmt.Errorf("alerting: publish event %s: %w", ev.ID, err)
	}
	return nil
}

// checkID rejects IDs that cannot serve as a Msg-Id header: empty (no
// dedupe), too long, or holding control characters (header injection).
func checkID(id string) error {
	if id == "" {
		return errors.New("empty id")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("id longer than %d bytes", maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("id %q holds a control character", id)
		}
	}
	return nil
}

// validToken reports whether s can be one subject token: severities and
// event kinds become the last token of a subject, so they must not contain
// separators or wildcards. The set is deliberately narrow.
func validToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
