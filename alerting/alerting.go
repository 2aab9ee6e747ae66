// Package alerting carries what ctwatch finds to the people who act on it.
//
// Hits and log events are first stored in a JetStream stream (see [Open] and
// [Bus]); a hit counts as published only once the stream has acknowledged
// it, and only then may a log's checkpoint advance. Sinks read the stream
// through durable consumers (see [Dispatcher]), so an alert survives a crash
// of ctwatch, an outage of the sink, and a restart of the NATS server.
//
// Every integration (stdout, JSONL file, webhook, …) lives in its own
// sub-package and implements the one small [Notifier] interface; retries,
// backoff and acknowledgement are done once, here, for all of them. The
// package never parses certificates: it moves [event.Hit] and
// [event.LogEvent] values.
//
// NATS itself is either embedded in the process ([StartEmbedded]) or an
// external server or cluster ([Connect]); everything else is the same.
package alerting

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/ctwatch/ctwatch/event"
)

// Names of the JetStream objects ctwatch owns. They are part of the external
// contract: any NATS client may subscribe to the subjects, and operators see
// the stream, bucket and consumer names in `nats` tooling.
const (
	// StreamName is the stream that stores hits and log events.
	StreamName = "CTWATCH"
	// CheckpointsBucket is the KV bucket in which the monitor keeps each
	// log's checkpoint.
	CheckpointsBucket = "ctwatch-checkpoints"
	// HitSubjectPrefix starts the subject of every hit; the last token is the
	// hit's severity, e.g. "ctwatch.hit.high".
	HitSubjectPrefix = "ctwatch.hit."
	// EventSubjectPrefix starts the subject of every log event; the last
	// token is the event's kind, e.g. "ctwatch.event.bad_signature".
	EventSubjectPrefix = "ctwatch.event."
	// HitSubjects matches every hit subject.
	HitSubjects = HitSubjectPrefix + "*"
	// EventSubjects matches every log event subject.
	EventSubjects = EventSubjectPrefix + "*"
	// ConsumerPrefix starts the durable consumer name of every sink: the
	// sink called "pager" reads through consumer "sink-pager".
	ConsumerPrefix = "sink-"
)

// HitSubject returns the subject a hit of severity sev is published on. It
// does not validate sev; publishing does.
func HitSubject(sev event.Severity) string { return HitSubjectPrefix + string(sev) }

// EventSubject returns the subject a log event of kind k is published on. It
// does not validate k; publishing does.
func EventSubject(k event.LogEventKind) string { return EventSubjectPrefix + string(k) }

// Notifier delivers one message to one destination (a terminal, a file, a
// webhook, a chat channel).
//
// Notify returns nil only once the destination has the message; any error
// makes the [Dispatcher] deliver the same message again later, so Notify must
// tolerate repeats (each message carries a stable ID, which integrations
// pass on as the receiver's idempotency key). To ask for a specific delay
// before the next attempt, return an error that wraps a [*RetryAfterError].
// The Dispatcher calls Notify for one message at a time per sink, and it
// alone retries: an implementation makes one attempt and honours ctx.
//
// A Message holds a hit, a log event or a digest of hits; an
// implementation must handle all three (a sink without grouping never
// receives a digest, but `ctwatch sinks test` may send anything).
type Notifier interface {
	Notify(ctx context.Context, m *Message) error
}

// Message is one hit, one log event or one digest of hits, as delivered to
// a sink. Exactly one of Hit, Event and Digest is non-nil.
type Message struct {
	// Subject is the stream subject the message was published on, e.g.
	// "ctwatch.hit.high"; for a digest, the subject of its hits.
	Subject string
	// Data is the JSON form of the hit, event or digest: for hits and
	// events the bytes exactly as stored in the stream. Sinks that forward
	// JSON send these bytes rather than re-encoding, so every sink shows
	// the same document. Notifiers must not modify it.
	Data []byte
	// Hit is the decoded hit, or nil.
	Hit *event.Hit
	// Event is the decoded log event, or nil.
	Event *event.LogEvent
	// Digest is a burst of hits of one rule grouped into one message, or
	// nil. Only sinks configured to group receive digests.
	Digest *event.Digest
	// Test marks a message sent by `ctwatch sinks test` rather than found
	// in a log: integrations must say so prominently where people read it
	// (the Slack text, the mail subject), so nobody acts on it.
	Test bool
}

// ID returns the dedupe key of the hit, event or digest: what a receiver
// should use as an idempotency key. It is "" only for a Message that
// carries none of them.
func (m *Message) ID() string {
	switch {
	case m.Hit != nil:
		return m.Hit.ID
	case m.Event != nil:
		return m.Event.ID
	case m.Digest != nil:
		return m.Digest.ID
	}
	return ""
}

// Kind names what the message carries: "hit", "event" or "digest" ("" for
// an empty Message). Integrations that tell receivers what they got (an
// HTTP header, an environment variable) use these words.
func (m *Message) Kind() string {
	switch {
	case m.Hit != nil:
		return "hit"
	case m.Event != nil:
		return "event"
	case m.Digest != nil:
		return event.DigestKind
	}
	return ""
}

// CrtshURL returns the crt.sh page of the certificate with the given
// SHA-256 (lower-case hex), the link integrations put next to a hit so
// that a reader can inspect the certificate without ctwatch.
func CrtshURL(sha256Hex string) string {
	return "https://crt.sh/?sha256=" + url.QueryEscape(sha256Hex)
}

// RetryAfterError asks the [Dispatcher] to wait a given time before the next
// attempt, instead of its own backoff: a receiver that says "429, retry after
// 30s" knows better than we do. Return it wrapped in the Notify error.
type RetryAfterError struct {
	// After is the requested delay; zero or negative means "use the
	// Dispatcher's backoff".
	After time.Duration
}

// Error implements error.
func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("retry after %s", e.After)
}
