// Package event defines what ctwatch tells the world: hits (a rule matched a
// certificate) and log events (a log misbehaved or an entry could not be
// read). Both the producers (monitor, rules) and the consumers (alerting
// sinks) import it, so it holds only data types and their JSON form.
package event

import "time"

// Severity orders hits by urgency. The zero value is not valid.
type Severity string

// The severities a rule may carry, lowest first.
const (
	SeverityInfo     Severity = "info"
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Hit is one rule matching one certificate. Its JSON form is the external
// contract: a JSONL line, a webhook body, a `ctwatch check --json` line.
type Hit struct {
	// ID is the dedupe key: derived from the rule name and the certificate's
	// TBS hash, so the same certificate seen twice (a replay after restart,
	// another log, or its precertificate) yields the same ID.
	ID       string   `json:"id"`
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Reason   string   `json:"reason"`
	// Tags are the rule's tags (absent when it has none); sinks route on
	// them.
	Tags []string `json:"tags,omitempty"`
	// Log is absent for hits that did not come from a log (ctwatch check).
	Log  *LogRef  `json:"log,omitempty"`
	Cert CertInfo `json:"cert"`
}

// LogRef names the place in a log where a certificate was seen.
type LogRef struct {
	Name  string `json:"name"`
	URL   string `json:"url"`
	Index uint64 `json:"index"`
}

// CertInfo is the part of a decoded certificate that travels in a hit.
// Hashes are lower-case hex; times are RFC 3339 in UTC.
type CertInfo struct {
	SHA256           string    `json:"sha256"`
	TBSSHA256        string    `json:"tbs_sha256"`
	Precert          bool      `json:"precert"`
	DNSNames         []string  `json:"dns_names"`
	Subject          string    `json:"subject"`
	Issuer           string    `json:"issuer"`
	IssuerSPKISHA256 string    `json:"issuer_spki_sha256"`
	NotBefore        time.Time `json:"not_before"`
	NotAfter         time.Time `json:"not_after"`
}

// LogEventKind says what happened to or in a log.
type LogEventKind string

// The kinds of log events. Misbehaviour kinds mean the log served something
// that cannot be true of an honest log; ctwatch never advances past them.
const (
	// BadSignature: a tree head whose signature does not verify.
	BadSignature LogEventKind = "bad_signature"
	// InconsistentTree: a tree head that is not consistent with one
	// verified before (a fork), or whose entries do not hash to its root.
	InconsistentTree LogEventKind = "inconsistent_tree"
	// ShrinkingTree: a tree head smaller than one verified before.
	ShrinkingTree LogEventKind = "shrinking_tree"
	// MalformedEntry: an entry that no decoder could read.
	MalformedEntry LogEventKind = "malformed_entry"
	// LogUnreachable: requests to the log keep failing.
	LogUnreachable LogEventKind = "log_unreachable"
	// FallingBehind: the log grows faster than ctwatch processes it, so
	// hits arrive later and later.
	FallingBehind LogEventKind = "falling_behind"
	// ReloadFailed: a changed configuration or rule file was refused; the
	// running configuration stays in force. Log names "ctwatch" and
	// Detail lists every problem with its file and line.
	ReloadFailed LogEventKind = "reload_failed"
)

// Rank orders severities: 1 for info up to 5 for critical, 0 for anything
// else, so that routing can compare a hit with a sink's minimum.
func (s Severity) Rank() int {
	switch s {
	case SeverityInfo:
		return 1
	case SeverityLow:
		return 2
	case SeverityMedium:
		return 3
	case SeverityHigh:
		return 4
	case SeverityCritical:
		return 5
	}
	return 0
}

// DigestKind is the value of Digest.Kind.
const DigestKind = "digest"

// Digest is a burst of hits of one rule delivered as one message, so that
// a CA misissuing for hundreds of names produces one alert per sink instead
// of hundreds. Its JSON form is part of the external contract (a webhook
// body for a grouping sink).
type Digest struct {
	// ID is the dedupe key: derived from the IDs of the hits it holds, so
	// a digest delivered again after a failure or restart carries the same
	// ID when it holds the same hits.
	ID string `json:"id"`
	// Kind is always DigestKind; it tells a digest from a hit in a stream
	// of JSON documents.
	Kind string `json:"kind"`
	Rule string `json:"rule"`
	// Severity is the highest severity among the hits.
	Severity Severity `json:"severity"`
	// Count is len(Hits).
	Count int `json:"count"`
	// First and Last are when the first and the last of the hits were
	// published, in UTC.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Names are the first distinct DNS names of the hits, in order, at most
	// the sink's limit; MoreNames counts the distinct names left out.
	Names     []string `json:"names"`
	MoreNames int      `json:"more_names"`
	// URL links to the full list of the digest's hits; absent when ctwatch
	// has no external URL configured.
	URL string `json:"url,omitempty"`
	// Hits are all the hits, in stream order.
	Hits []Hit `json:"hits"`
}

// LogEvent reports something about a log rather than a certificate.
type LogEvent struct {
	// ID is a stable key for dedupe: equal events (same log, kind, and
	// subject such as tree size or index) have equal IDs.
	ID     string       `json:"id"`
	Kind   LogEventKind `json:"kind"`
	Log    LogRef       `json:"log"`
	Time   time.Time    `json:"time"`
	Detail string       `json:"detail"`
}
