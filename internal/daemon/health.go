package daemon

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/monitor"
)

// registerHealthRoutes serves the probes an orchestrator or load balancer
// asks: GET /healthz answers 200 "ok" whenever the process serves HTTP
// (restart it if not), GET /readyz 200 only while ctwatch does its job (see
// process.readiness), else 503. Both bodies are plain text; /readyz lists
// every check with "ok" or "FAIL" and the reason, for the human who looks.
func registerHealthRoutes(mux *http.ServeMux, p *process) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		checks := p.readiness(time.Now())
		status := http.StatusOK
		var b strings.Builder
		for _, c := range checks {
			if c.problem == "" {
				fmt.Fprintf(&b, "%s: ok\n", c.name)
				continue
			}
			status = http.StatusServiceUnavailable
			fmt.Fprintf(&b, "%s: FAIL %s\n", c.name, c.problem)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(b.String()))
	})
}

// readinessCheck is one condition of readiness; problem is "" when it
// holds.
type readinessCheck struct {
	name    string
	problem string
}

// progressLimit is how old a log's last verified progress may be before
// the log counts as not progressing: three polls that each may take a full
// request timeout.
func progressLimit(m config.Monitor) time.Duration {
	return 3*m.PollInterval + m.Timeout
}

// readiness checks, as of now, that ctwatch does its job: NATS is
// connected (hits can be published and delivered), rules are loaded, at
// least one log is followed unless none is configured, and every followed
// log progresses.
//
// A log progresses while its last verified progress is younger than
// progressLimit and it is not unreachable. Verified progress is a verified
// tree head or a committed position: a tailer working through a long
// backfill verifies each commit against the head it started from, and asks
// for a new head only when done, so its commits are its sign of life then.
// For progressLimit after start a log without a head yet is "starting",
// which is not ready either.
func (p *process) readiness(now time.Time) []readinessCheck {
	var checks []readinessCheck
	check := func(name, problem string) { checks = append(checks, readinessCheck{name, problem}) }

	switch {
	case p.nc == nil:
		check("nats", "no connection")
	case p.nc.Status() != nats.CONNECTED:
		check("nats", "not connected ("+strings.ToLower(p.nc.Status().String())+")")
	default:
		check("nats", "")
	}
	if p.matcher == nil || p.matcher.Engine() == nil {
		check("rules", "not loaded")
	} else {
		check("rules", "")
	}

	cfg := p.config()
	var followed []tailerStatus
	var listed int
	if p.sup != nil {
		followed = p.sup.snapshot()
		listed = p.sup.listed()
		if p.leases != nil && !p.leases.Shared() {
			// Until the first lease round it is not known which logs
			// are ours: every one is starting.
			followed = p.sup.pending(followed)
		}
	}
	// With leases a live process may hold no log (more processes than
	// logs): what must not be empty is the list.
	if configured := cfg.LogList != "" || len(cfg.Logs) > 0; len(followed) == 0 && listed == 0 && configured {
		check("logs", "no log followed, although log_list or logs configures some")
	} else {
		check("logs", "")
	}
	limit := progressLimit(cfg.Monitor)
	for _, ts := range followed {
		check("log "+ts.Log.Name, logProblem(ts.Stats, now, p.started, limit))
	}
	return checks
}

// logProblem says why a log with stats st is not progressing as of now,
// for a daemon started at started; "" when it is (see process.readiness).
func logProblem(st monitor.Stats, now, started time.Time, limit time.Duration) string {
	last := st.LastHead
	if st.LastCommit.After(last) {
		last = st.LastCommit
	}
	switch {
	case st.Unreachable:
		return "unreachable: " + st.LastError
	case last.IsZero() && now.Sub(started) < limit:
		return "starting: no verified tree head yet"
	case last.IsZero():
		return fmt.Sprintf("no verified tree head since start %s ago%s", roundAge(now.Sub(started)), lastError(st.LastError))
	case now.Sub(last) > limit:
		return fmt.Sprintf("not progressing: last verified tree head or commit %s ago (limit %s)%s",
			roundAge(now.Sub(last)), limit, lastError(st.LastError))
	}
	return ""
}

func roundAge(d time.Duration) time.Duration { return d.Round(time.Second) }

func lastError(e string) string {
	if e == "" {
		return ""
	}
	return "; last error: " + e
}
