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
)

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
