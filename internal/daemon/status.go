package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/monitor"
)

// LogState says in one word how a followed log is doing.
type LogState string

// The states of a log. A running daemon reports the first five; the
// offline report (Status) the last two.
const (
	// LogStarting: no tree head verified yet since the daemon started.
	LogStarting LogState = "starting"
	// LogCaughtUp: every entry of the last verified tree head is done.
	LogCaughtUp LogState = "caught_up"
	// LogBehind: entries of the verified tree head are still to do (a
	// backfill, or a log growing faster than ctwatch reads it).
	LogBehind LogState = "behind"
	// LogUnreachable: requests to the log keep failing (an outage that
	// raised log_unreachable, not over yet).
	LogUnreachable LogState = "unreachable"
	// LogMisbehaving: since start the log served a bad signature, a fork
	// or a shrinking tree; ctwatch does not advance past that.
	LogMisbehaving LogState = "misbehaving"
	// LogStopped: no daemon answered; the position is the stored one.
	LogStopped LogState = "stopped"
	// LogUnknown: no daemon answered and no stored position could be read
	// (or the log was never started).
	LogUnknown LogState = "unknown"
)

// Label is the state as people read it ("caught up").
func (s LogState) Label() string { return strings.ReplaceAll(string(s), "_", " ") }

// LogStatus is one followed log and how far ctwatch has got in it. Its JSON
// form is part of /api/status.
type LogStatus struct {
	Name  string       `json:"name"`
	Kind  monitor.Kind `json:"kind"`
	URL   string       `json:"url"`
	State LogState     `json:"state"`
	// HasPosition is false when TreeSize and NextIndex mean nothing: the
	// log has no stored checkpoint, or positions could not be read.
	HasPosition bool `json:"has_position"`
	// TreeSize is the size of the last verified tree head; NextIndex the
	// first entry not yet committed; Lag the entries in between.
	TreeSize  uint64 `json:"tree_size"`
	NextIndex uint64 `json:"next_index"`
	Lag       uint64 `json:"lag"`

	// The rest is known only from a running daemon and counts since it
	// started; zero in the offline report.

	// BehindSince is when the tailer fell behind the verified tree head;
	// zero while caught up.
	BehindSince time.Time `json:"behind_since,omitzero"`
	// LastHead is when a tree head was last verified, LastCommit when
	// entries were last committed.
	LastHead   time.Time `json:"last_head,omitzero"`
	LastCommit time.Time `json:"last_commit,omitzero"`
	// LastError is the last failed request or log event, "" when none.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	Processed     uint64    `json:"processed"`
	Hits          uint64    `json:"hits"`
	Malformed     uint64    `json:"malformed"`
	// Events counts log events raised, by kind; FetchErrors failed
	// requests, by kind. Nil when none.
	Events      map[event.LogEventKind]uint64 `json:"events,omitempty"`
	FetchErrors map[string]uint64             `json:"fetch_errors,omitempty"`
}

// Progress is the share of the log's entries done, from 0 to 1; 1 for an
// empty log.
func (l LogStatus) Progress() float64 {
	if l.TreeSize == 0 {
		return 1
	}
	return float64(min(l.NextIndex, l.TreeSize)) / float64(l.TreeSize)
}

// Behind reports whether the log has entries still to do.
func (l LogStatus) Behind() bool { return l.HasPosition && l.Lag > 0 }

// LagTime is how long the log has been behind at now; 0 when caught up or
// not known.
func (l LogStatus) LagTime(now time.Time) time.Duration {
	if l.BehindSince.IsZero() {
		return 0
	}
	return max(now.Sub(l.BehindSince), 0)
}

// StatusReport is what is known of a daemon: the followed logs and, from a
// running daemon, its recent hits, rules and sinks. It is the JSON document
// of /api/status, which `ctwatch status` and `ctwatch logs` read, and what
// the status page shows. Fields a report does not have are absent (nil
// slices, zero times).
type StatusReport struct {
	// Live is true for a report of a running daemon, false for the
	// offline one of Status.
	Live bool `json:"live"`
	// Time is when the report was made.
	Time time.Time `json:"time"`
	// Version is the daemon's build; Started when it started.
	Version string    `json:"version,omitempty"`
	Started time.Time `json:"started,omitzero"`
	// NATS is the state of the daemon's NATS connection ("CONNECTED",
	// "RECONNECTING", …); NATSServer the server it is connected to, or
	// "embedded".
	NATS       string      `json:"nats,omitempty"`
	NATSServer string      `json:"nats_server,omitempty"`
	Logs       []LogStatus `json:"logs"`
	// Positions says where the offline report's positions came from, or
	// why there are none; "" in a live report.
	Positions string `json:"positions,omitempty"`
	// Hits are the newest hits in the stream (every process's, in a
	// cluster) that pass the report's filter; nil offline.
	Hits *HitsReport `json:"hits,omitempty"`
	// Rules are the rules loaded, in file order.
	Rules []RuleStatus `json:"rules,omitempty"`
	// Sinks are the sinks in force, in configuration order.
	Sinks []SinkStatus `json:"sinks,omitempty"`
	// LastReload is the outcome of the last reload; nil before the first.
	LastReload *ReloadReport `json:"last_reload,omitempty"`
}

// Uptime is how long the daemon had run when the report was made; 0 for
// an offline report.
func (r *StatusReport) Uptime() time.Duration {
	if r.Started.IsZero() {
		return 0
	}
	return r.Time.Sub(r.Started)
}

// HitsSinceStart adds up the hits every log's tailer has published since
// the daemon started (this process only).
func (r *StatusReport) HitsSinceStart() uint64 {
	var n uint64
	for _, l := range r.Logs {
		n += l.Hits
	}
	return n
}

// HitsReport is the recent-hits part of a report.
type HitsReport struct {
	// Filter is the filter the hits were selected with, limit included.
	Filter HitFilter `json:"filter"`
	// Recent are the matching hits, newest first, at most Filter.Limit.
	Recent []RecentHit `json:"recent"`
	// Searched is how many hits of the stream were read to find them.
	// Truncated is true when the search stopped (too many hits read, or
	// out of time) before it found Filter.Limit hits or reached the
	// oldest hit: older matching hits may exist.
	Searched  int  `json:"searched"`
	Truncated bool `json:"truncated,omitempty"`
	// Stored counts the hits the stream holds by severity: every
	// process's, within nats.stream_max_age.
	Stored map[event.Severity]uint64 `json:"stored,omitempty"`
	// Error is why the hits could not be read (in full), "" when they
	// could.
	Error string `json:"error,omitempty"`
}

// StoredTotal adds up Stored.
func (h *HitsReport) StoredTotal() uint64 {
	var n uint64
	for _, c := range h.Stored {
		n += c
	}
	return n
}

// RecentHit is a hit as stored in the stream, with when and where.
type RecentHit struct {
	// Published is when the stream stored the hit; Seq its sequence.
	Published time.Time `json:"published"`
	Seq       uint64    `json:"seq"`
	event.Hit
}

// RuleStatus is one loaded rule.
type RuleStatus struct {
	Name        string         `json:"name"`
	Severity    event.Severity `json:"severity"`
	Description string         `json:"description,omitempty"`
	Tags        []string       `json:"tags,omitempty"`
	// File and Line are where the rule starts.
	File string `json:"file"`
	Line int    `json:"line"`
}

// SinkStatus is one sink in force and its queue.
type SinkStatus struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Route summarises what the sink takes ("all", ">=high rules=a,b").
	Route string `json:"route"`
	// Events says whether it also takes log events.
	Events bool `json:"events"`
	// GroupWindow is its digest window ("8s"), "" when it sends every hit
	// alone; Rate its deliveries per second, 0 for unlimited.
	GroupWindow string  `json:"group_window,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	// Pending counts the messages its consumer has not yet had
	// acknowledged (waiting, being delivered or retried).
	Pending uint64 `json:"pending"`
	// DeadLetters counts the messages it gave up on and that have not
	// been replayed (`ctwatch sinks dead`, `ctwatch sinks replay`).
	DeadLetters uint64 `json:"dead_letters"`
	// Error is why Pending or DeadLetters could not be read; "" when they
	// could.
	Error string `json:"error,omitempty"`
}

// ReloadReport is the outcome of a reload.
type ReloadReport struct {
	Time time.Time `json:"time"`
	// Error is why the reload was refused; "" when it worked.
	Error string `json:"error,omitempty"`
}

// Status reads the followed logs and their checkpoints without starting any
// tailer: the report ctwatch gives when no daemon answers. With an embedded
// NATS it reads the data directory only when no daemon holds it (two
// servers on one store would corrupt it).
func Status(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*StatusReport, error) {
	logs, err := LoadLogs(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	rep := &StatusReport{Time: time.Now(), Logs: make([]LogStatus, len(logs))}
	for i, l := range logs {
		rep.Logs[i] = LogStatus{Name: l.Name, Kind: l.Kind, URL: l.URL, State: LogUnknown}
	}
	store, closeStore, why := openCheckpoints(ctx, cfg, logger)
	rep.Positions = why
	if store == nil {
		return rep, nil
	}
	defer closeStore()
	for i, l := range logs {
		cp, err := store.Load(ctx, hex.EncodeToString(l.ID[:]))
		if err != nil {
			return nil, err
		}
		if cp != nil {
			ls := &rep.Logs[i]
			ls.State, ls.HasPosition = LogStopped, true
			ls.TreeSize, ls.NextIndex = cp.TreeSize, cp.NextIndex
			ls.Lag = cp.TreeSize - min(cp.NextIndex, cp.TreeSize)
		}
	}
	return rep, nil
}

func openCheckpoints(ctx context.Context, cfg *config.Config, logger *slog.Logger) (monitor.CheckpointStore, func(), string) {
	if cfg.NATS.URL == "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "nats")); err != nil {
			return nil, nil, "no data yet in " + cfg.DataDir
		}
	}
	bus, closeBus, err := OpenBus(ctx, cfg, logger)
	if errors.Is(err, ErrDataDirInUse) {
		return nil, nil, "a running daemon holds " + cfg.DataDir + "; positions are shown only when it is stopped or NATS is external"
	}
	if err != nil {
		return nil, nil, err.Error()
	}
	where := "from " + cfg.DataDir
	if cfg.NATS.URL != "" {
		where = "from " + cfg.NATS.URL
	}
	return monitor.NewKVCheckpoints(bus.Checkpoints()), closeBus, where
}

// ErrDataDirInUse is returned by [OpenBus] when a running daemon holds the
// data directory of an embedded NATS server.
var ErrDataDirInUse = errors.New("in use by a running ctwatch; stop it, or use an external NATS (nats.url) to work beside it")

// OpenBus connects to the configured NATS (starting the embedded server on
// the data directory when no URL is set) and opens the hit stream, for
// commands that work on a daemon's state (`ctwatch sinks replay`, `ctwatch
// logs`). The returned function closes everything. With an embedded server
// it fails with an error wrapping ErrDataDirInUse while a daemon runs:
// two servers on one store would corrupt it.
func OpenBus(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*alerting.Bus, func(), error) {
	unlock := func() {}
	if cfg.NATS.URL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, nil, fmt.Errorf("create data dir: %w", err)
		}
		u, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return nil, nil, err
		}
		unlock = u
		logger = slog.New(slog.DiscardHandler) // the embedded server's chatter is not the command's output
	}
	nc, shutdown, err := connectNATS(ctx, cfg, logger)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	bus, err := alerting.Open(ctx, nc, streamConfig(cfg.NATS))
	if err != nil {
		shutdown()
		unlock()
		return nil, nil, fmt.Errorf("open hit stream: %w", err)
	}
	return bus, func() { shutdown(); unlock() }, nil
}
