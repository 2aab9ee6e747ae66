// Package monitor follows CT logs: it fetches and verifies tree heads, downloads
// entries, checks that they hash to a verified root, decodes them, hands them to
// a Matcher and commits the log's position only after a Publisher has durably
// stored every hit before it.
//
// The package knows nothing of rules or sinks: it talks to them through the
// small interfaces below, defined here where they are used.
package monitor

import (
	"context"

	"github.com/ctwatch/ctwatch/cert"
	"github.com/ctwatch/ctwatch/event"
)

// Kind is the protocol a log speaks.
type Kind string

// The log protocols ctwatch follows.
const (
	KindRFC6962 Kind = "rfc6962"
	KindStatic  Kind = "static"
)

// Log describes one log to follow.
type Log struct {
	// Name is how the log is shown to people; it need not be unique.
	Name string
	Kind Kind
	// URL is the RFC 6962 base URL (ending before "/ct/v1/"), or a static
	// log's submission prefix. Shown in hits; no trailing slash.
	URL string
	// MonitoringURL is a static log's read prefix (checkpoint, tiles,
	// issuers); no trailing slash. Empty for RFC 6962 logs.
	MonitoringURL string
	// Origin is the first line a static log's checkpoints must carry, and
	// the name its note signatures are made under: by default the
	// submission URL without its scheme. Empty for RFC 6962 logs.
	Origin string
	// Key is the log's public key as DER SubjectPublicKeyInfo.
	Key []byte
	// ID is the RFC 6962 log ID: the SHA-256 of Key. It keys checkpoints.
	ID cert.Hash
	// Start is the first index to process when there is no checkpoint; nil
	// means the tree size at the first verified tree head ("end").
	Start *uint64
}

// Entry is one decoded log entry.
type Entry struct {
	Log   *Log
	Index uint64
	// Timestamp is the entry's CT timestamp in milliseconds since the epoch.
	Timestamp uint64
	Cert      *cert.Cert
}

// Matcher decides which hits an entry produces.
//
// Match must be safe for concurrent use: tailers call it from several
// goroutines. It must not do I/O; it returns nil when nothing matched.
type Matcher interface {
	Match(e *Entry) []event.Hit
}

// Publisher stores hits and log events durably.
//
// PublishHits returns nil only once every hit is durably stored; it is
// idempotent per hit ID, so a replay after a crash is harmless. Both methods
// are safe for concurrent use.
type Publisher interface {
	PublishHits(ctx context.Context, hits []event.Hit) error
	PublishEvent(ctx context.Context, ev event.LogEvent) error
}

// Checkpoint is how far a log has been followed and verified.
type Checkpoint struct {
	// STH is the last verified tree head, as the log signed it.
	TreeSize  uint64 `json:"tree_size"`
	Timestamp uint64 `json:"timestamp"`
	RootHash  []byte `json:"root_hash"`
	// Signature is the TLS-encoded DigitallySigned of the tree head, kept so
	// that a stored checkpoint can be shown to others as evidence.
	Signature []byte `json:"signature"`
	// NextIndex is the first entry not yet processed. Every entry before it
	// was verified against a signed root and its hits were published.
	NextIndex uint64 `json:"next_index"`
	// Range is the compact Merkle range [0, NextIndex), left to right: what
	// lets the next entries be verified without downloading old ones.
	Range [][]byte `json:"range"`
}

// CheckpointStore persists checkpoints per log.
//
// Load returns (nil, nil) when the log has no checkpoint yet. Save replaces
// the stored checkpoint. Both are safe for concurrent use.
type CheckpointStore interface {
	Load(ctx context.Context, logID string) (*Checkpoint, error)
	Save(ctx context.Context, logID string, cp *Checkpoint) error
}
