package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
)

// Bounds of a recent-hits search. The stream may hold millions of hits (a
// month of a broad rule); a status page must answer in bounded time, so a
// search with a narrow filter stops after maxHitsSearched and says so.
const (
	// DefaultHitLimit is how many hits the status page lists when the
	// request does not say.
	DefaultHitLimit = 200
	// MaxHitLimit is the most hits one request lists.
	MaxHitLimit = 5000
	// maxHitsSearched is the most hits one request reads.
	maxHitsSearched = 50000
	// firstHitWindow and maxHitWindow bound the stretch of stream
	// sequences read at once, from the newest backwards: small first (the
	// common case is a page of the newest hits), doubling while the
	// filter finds too few.
	firstHitWindow = 256
	maxHitWindow   = 16384
	// hitFetchBatch is how many messages one pull asks for.
	hitFetchBatch = 256
)

// HitFilter selects hits for the status page and /api/status. The zero
// value takes every hit and lists none (Limit 0); ParseHitFilter fills in
// the default limit.
type HitFilter struct {
	// Rule takes only hits of the rule of this name (exactly).
	Rule string `json:"rule,omitempty"`
	// MinSeverity takes only hits of this severity or higher; "" takes all.
	MinSeverity event.Severity `json:"min_severity,omitempty"`
	// Name takes only hits with a DNS name containing it, ignoring case.
	Name string `json:"name,omitempty"`
	// Limit is the most hits listed, newest first.
	Limit int `json:"limit"`
}

// ParseHitFilter reads a filter from request parameters: rule, severity
// (the minimum), name (a substring of a DNS name) and limit (default
// DefaultHitLimit, at most MaxHitLimit; 0 lists no hits). It fails on a
// severity or limit that means nothing, so that a typo does not silently
// show everything.
func ParseHitFilter(get func(string) string) (HitFilter, error) {
	f := HitFilter{
		Rule:        strings.TrimSpace(get("rule")),
		MinSeverity: event.Severity(strings.ToLower(strings.TrimSpace(get("severity")))),
		Name:        strings.TrimSpace(get("name")),
		Limit:       DefaultHitLimit,
	}
	if f.MinSeverity != "" && f.MinSeverity.Rank() == 0 {
		return HitFilter{}, fmt.Errorf("severity %q: must be info, low, medium, high or critical", f.MinSeverity)
	}
	if s := strings.TrimSpace(get("limit")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return HitFilter{}, fmt.Errorf("limit %q: must be a whole number from 0 to %d", s, MaxHitLimit)
		}
		f.Limit = min(n, MaxHitLimit)
	}
	return f, nil
}

// matches reports whether h passes the filter (the severity included, so
// that a hit on an unexpected subject is still judged by its content).
func (f *HitFilter) matches(h *event.Hit) bool {
	if f.Rule != "" && h.Rule != f.Rule {
		return false
	}
	if f.MinSeverity != "" && h.Severity.Rank() < f.MinSeverity.Rank() {
		return false
	}
	if f.Name != "" {
		want := strings.ToLower(f.Name)
		for _, n := range h.Cert.DNSNames {
			if strings.Contains(strings.ToLower(n), want) {
				return true
			}
		}
		return false
	}
	return true
}

// subjects are the stream subjects holding the hits the filter can take:
// with a minimum severity, only those of that severity and higher, so the
// server skips the rest.
func (f *HitFilter) subjects() []string {
	if f.MinSeverity == "" {
		return []string{alerting.HitSubjects}
	}
	var out []string
	for _, s := range severities() {
		if s.Rank() >= f.MinSeverity.Rank() {
			out = append(out, alerting.HitSubject(s))
		}
	}
	return out
}

// severities lists the severities, lowest first.
func severities() []event.Severity {
	return []event.Severity{event.SeverityInfo, event.SeverityLow, event.SeverityMedium, event.SeverityHigh, event.SeverityCritical}
}

// recentHits reads the hits of the stream (sequences first to last) that
// pass f, newest first, at most f.Limit of them. It reads backwards in
// growing stretches of sequences with a short-lived consumer per stretch,
// so it holds nothing between requests and sees every process's hits. It
// returns how many hits it read and whether it stopped early, having read
// maxSearched hits (see HitsReport.Truncated); with an error, the hits
// found before it.
func recentHits(ctx context.Context, js jetstream.JetStream, first, last uint64, f HitFilter, maxSearched int) (hits []RecentHit, searched int, truncated bool, err error) {
	if f.Limit <= 0 || last == 0 || last < first {
		return nil, 0, false, nil
	}
	first = max(first, 1)
	end := last
	window := uint64(max(firstHitWindow, 2*f.Limit))
	for {
		start := first
		if end-first+1 > window {
			start = end - window + 1
		}
		stretch, err := readHitRange(ctx, js, f.subjects(), start, end)
		searched += len(stretch)
		for i := len(stretch) - 1; i >= 0 && len(hits) < f.Limit; i-- {
			if f.matches(&stretch[i].Hit) {
				hits = append(hits, stretch[i])
			}
		}
		switch {
		case err != nil:
			return hits, searched, true, err
		case len(hits) >= f.Limit || start == first:
			return hits, searched, false, nil
		case searched >= maxSearched:
			return hits, searched, true, nil
		}
		end = start - 1
		window = min(window*2, maxHitWindow)
	}
}

// readHitRange returns the hits stored on subjects with sequences from
// start to end, in stream order. A hit that does not decode is skipped:
// the page shows what it can.
func readHitRange(ctx context.Context, js jetstream.JetStream, subjects []string, start, end uint64) ([]RecentHit, error) {
	c, err := js.CreateConsumer(ctx, alerting.StreamName, jetstream.ConsumerConfig{
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
		AckPolicy:      jetstream.AckNonePolicy,
		FilterSubjects: subjects,
		// Deleted below; the server removes it anyway if this process
		// dies first.
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return nil, fmt.Errorf("read hits: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(dctx, alerting.StreamName, c.CachedInfo().Name)
	}()
	// Pending counts the matching messages from start to the end of the
	// stream as it is now: asking for no more than that never waits for
	// messages that do not exist.
	remaining := c.CachedInfo().NumPending
	var out []RecentHit
	for remaining > 0 {
		// The caller's deadline bounds each pull; without one, a pull
		// waits at most the library's default expiry.
		batch, err := c.Fetch(int(min(remaining, hitFetchBatch)), jetstream.FetchContext(ctx))
		if err != nil {
			return out, fmt.Errorf("read hits: %w", err)
		}
		got, done := 0, false
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil || done {
				continue // drain the batch
			}
			remaining = md.NumPending
			if md.Sequence.Stream > end {
				done = true
				continue
			}
			var h event.Hit
			if json.Unmarshal(msg.Data(), &h) == nil {
				out = append(out, RecentHit{Published: md.Timestamp, Seq: md.Sequence.Stream, Hit: h})
			}
			if md.NumPending == 0 {
				done = true
			}
		}
		if err := batch.Error(); err != nil {
			return out, fmt.Errorf("read hits: %w", err)
		}
		if done {
			break
		}
		if got == 0 {
			// Messages the consumer counted did not come: expired in
			// between (max age), or the server is too slow.
			return out, errors.New("read hits: the stream sent nothing in time")
		}
	}
	return out, nil
}
