package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/monitor"
)

// Each way a log can fail to progress has its reason; a verified head or a
// commit within the limit is progress.
func TestLogProblem(t *testing.T) {
	started := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	limit := 40 * time.Second
	at := func(d time.Duration) time.Time { return started.Add(d) }
	for _, tc := range []struct {
		name string
		st   monitor.Stats
		now  time.Time
		want string // prefix of the problem; "" for none
	}{
		{"fresh head", monitor.Stats{LastHead: at(time.Minute)}, at(time.Minute + 10*time.Second), ""},
		{"head at the limit", monitor.Stats{LastHead: at(time.Minute)}, at(time.Minute + limit), ""},
		{"stale head", monitor.Stats{LastHead: at(time.Minute), LastError: "get-sth: timeout"}, at(time.Minute + limit + time.Second),
			"not progressing: last verified tree head or commit 41s ago (limit 40s); last error: get-sth: timeout"},
		{"backfill commits without a new head", monitor.Stats{LastHead: at(0), LastCommit: at(time.Hour)}, at(time.Hour + time.Second), ""},
		{"unreachable with a fresh head", monitor.Stats{LastHead: at(time.Minute), Unreachable: true, LastError: "http status 503"}, at(time.Minute + time.Second),
			"unreachable: http status 503"},
		{"no head, just started", monitor.Stats{}, at(limit - time.Second), "starting: no verified tree head yet"},
		{"no head long after start", monitor.Stats{LastError: "connection refused"}, at(5 * time.Minute),
			"no verified tree head since start 5m0s ago; last error: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := logProblem(tc.st, tc.now, started, limit)
			if (tc.want == "") != (got == "") || !strings.HasPrefix(got, tc.want) {
				t.Errorf("logProblem = %q, want %q", got, tc.want)
			}
		})
	}
}
