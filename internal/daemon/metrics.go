package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/rules"
)

// scrapeTimeout bounds what one scrape asks NATS (stream state, every
// sink's pending count), so that a slow or partitioned server makes those
// series absent rather than the scrape time out as a whole (Prometheus
// gives up after 10 s by default).
const scrapeTimeout = 2 * time.Second

// metrics is one daemon's Prometheus registry. The few things counted as
// they happen (hits, sink outcomes) are instruments here; everything else
// is read from the process when scraped, so that it cannot drift from what
// the status page shows. Each daemon has its own registry: two daemons in
// one process (tests) never share a series. Safe for concurrent use.
type metrics struct {
	reg  *prometheus.Registry
	hits *prometheus.CounterVec // rule, severity
	// sinks is the Observer the sinkRunner gives every Dispatcher.
	sinks *sinkMetrics
}

// newMetrics builds the registry for p: the Go runtime and process
// collectors, the instruments, and a collector reading p's state at scrape
// time. It reads p only when scraped, so p may still be under construction.
func newMetrics(p *process) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ctwatch_hits_total",
			Help: "Hits the rules found, by rule and severity. A certificate matched again after a crash (before its checkpoint was saved) counts again; the stream drops the duplicate.",
		}, []string{"rule", "severity"}),
		sinks: newSinkMetrics(),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.hits,
		m.sinks.delivered, m.sinks.deliveredHits, m.sinks.failures, m.sinks.deadLettered, m.sinks.skipped, m.sinks.latency,
		newStateCollector(p),
	)
	return m
}

// countHit counts one hit of rule at severity; it implements hitCounter.
func (m *metrics) countHit(rule string, severity event.Severity) {
	m.hits.WithLabelValues(rule, string(severity)).Inc()
}

// touch creates the zero series of the rules and sinks in force, so that a
// rule or sink shows 0 before its first hit or delivery: rate() and
// increase() miss the first increment of a series that appears with it.
func (m *metrics) touch(sinks []config.Sink, rs []rules.RuleInfo) {
	for _, r := range rs {
		m.hits.WithLabelValues(r.Name, string(r.Severity))
	}
	for _, s := range sinks {
		m.sinks.touch(s.Name)
	}
}

// registerMetricsRoutes serves GET /metrics: the daemon's registry in the
// Prometheus text format. A series that fails to collect is left out (and
// logged) rather than failing the whole scrape.
func registerMetricsRoutes(mux *http.ServeMux, p *process) {
	if p.metrics == nil {
		return
	}
	h := promhttp.HandlerFor(p.metrics.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      promLogger{p.logger},
	})
	mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rs []rules.RuleInfo
		if p.matcher != nil {
			rs = p.matcher.Engine().Rules()
		}
		var sinks []config.Sink
		if p.sinks != nil {
			sinks = p.sinks.current()
		}
		p.metrics.touch(sinks, rs)
		h.ServeHTTP(w, r)
	}))
}

// promLogger hands promhttp's collection errors to slog.
type promLogger struct{ logger *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.logger.Warn("metrics: " + fmt.Sprint(v...))
}

// sinkMetrics counts what the Dispatchers do, by sink; it is the
// alerting.Observer of every Dispatcher the sinkRunner builds, so the counts
// carry over a reload that replaces the Dispatcher. Safe for concurrent use.
type sinkMetrics struct {
	delivered     *prometheus.CounterVec // sink, kind
	deliveredHits *prometheus.CounterVec
	failures      *prometheus.CounterVec
	deadLettered  *prometheus.CounterVec
	skipped       *prometheus.CounterVec
	latency       *prometheus.HistogramVec
}

var _ alerting.Observer = (*sinkMetrics)(nil)

func newSinkMetrics() *sinkMetrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append([]string{"sink"}, labels...))
	}
	return &sinkMetrics{
		delivered: counter("ctwatch_sink_delivered_total",
			"Deliveries the sink's receiver accepted, by kind (hit, event, digest); a digest counts once.", "kind"),
		deliveredHits: counter("ctwatch_sink_delivered_hits_total",
			"Hits in the deliveries the sink's receiver accepted; a digest counts its hits."),
		failures: counter("ctwatch_sink_failures_total",
			"Failed delivery attempts (each is retried, or dead-lettered after the last)."),
		deadLettered: counter("ctwatch_sink_dead_lettered_total",
			"Stream messages moved to the sink's dead-letter subject after their last failed attempt."),
		skipped: counter("ctwatch_sink_skipped_total",
			"Stream messages the sink's route did not take."),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ctwatch_sink_delivery_latency_seconds",
			Help: "Time from a message's publication in the stream to the receiver's acceptance, grouping window and retries included; one observation per stream message (each hit of a digest).",
			// From a prompt delivery on a local network to an hour of
			// outage or grouping.
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}, []string{"sink"}),
	}
}

func (s *sinkMetrics) touch(sink string) {
	for _, kind := range []string{"hit", "event", event.DigestKind} {
		s.delivered.WithLabelValues(sink, kind)
	}
	s.deliveredHits.WithLabelValues(sink)
	s.failures.WithLabelValues(sink)
	s.deadLettered.WithLabelValues(sink)
	s.skipped.WithLabelValues(sink)
	s.latency.WithLabelValues(sink)
}

// Delivered counts an accepted delivery and observes the latency of every
// stream message it carried.
func (s *sinkMetrics) Delivered(d alerting.Delivery) {
	s.delivered.WithLabelValues(d.Sink, d.Kind).Inc()
	s.deliveredHits.WithLabelValues(d.Sink).Add(float64(d.Hits))
	latency := s.latency.WithLabelValues(d.Sink)
	for _, p := range d.Published {
		latency.Observe(max(d.Accepted.Sub(p), 0).Seconds())
	}
}

// Failed counts a failed attempt.
func (s *sinkMetrics) Failed(d alerting.Delivery) { s.failures.WithLabelValues(d.Sink).Inc() }

// DeadLettered counts a message moved to the dead-letter subject.
func (s *sinkMetrics) DeadLettered(d alerting.Delivery) {
	s.deadLettered.WithLabelValues(d.Sink).Inc()
}

// Skipped counts a message the route did not take.
func (s *sinkMetrics) Skipped(d alerting.Delivery) { s.skipped.WithLabelValues(d.Sink).Inc() }

// stateCollector reads the process's state when scraped: the followed logs'
// counters and health, NATS and JetStream, the sinks' backlogs, the rules and
// the configuration.
type stateCollector struct {
	p *process

	// per log
	treeSize, nextIndex, lagEntries, lagSeconds           *prometheus.Desc
	processed, malformed, logHits, fetchErrors, logEvents *prometheus.Desc
	lastHead, lastCommit, unreachable                     *prometheus.Desc
	// NATS
	natsConnected, jsUp, streamMessages, streamBytes *prometheus.Desc
	// sinks
	sinkPending *prometheus.Desc
	// process
	buildInfo, rulesLoaded, logsFollowed, reloadSuccess, reloadTime, startTime *prometheus.Desc

	version, goVersion string
}

func newStateCollector(p *process) *stateCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	c := &stateCollector{
		p: p,

		treeSize:    desc("ctwatch_log_tree_size", "Size of the log's newest tree head seen.", "log"),
		nextIndex:   desc("ctwatch_log_next_index", "Index of the next entry to process: every entry before it is verified, matched and committed.", "log"),
		lagEntries:  desc("ctwatch_log_lag_entries", "Entries the log holds beyond ctwatch's position (tree size minus next index).", "log"),
		lagSeconds:  desc("ctwatch_log_lag_seconds", "How long ctwatch has been behind the log's verified tree head; 0 when caught up.", "log"),
		processed:   desc("ctwatch_log_entries_processed_total", "Entries downloaded and matched since the daemon started (rate() gives entries/s).", "log"),
		malformed:   desc("ctwatch_log_malformed_entries_total", "Entries no decoder could read, since the daemon started.", "log"),
		logHits:     desc("ctwatch_log_hits_total", "Hits published from this log since the daemon started.", "log"),
		fetchErrors: desc("ctwatch_log_fetch_errors_total", "Failed requests to the log, by kind (rate_limited, http_5xx, http_4xx, too_large, timeout, decode, network).", "log", "kind"),
		logEvents:   desc("ctwatch_log_events_total", "Events raised about the log, by kind; bad_signature, inconsistent_tree and shrinking_tree are verification failures.", "log", "kind"),
		lastHead:    desc("ctwatch_log_last_head_timestamp_seconds", "When the log's tree head was last fetched and verified (Unix time); 0 before the first.", "log"),
		lastCommit:  desc("ctwatch_log_last_commit_timestamp_seconds", "When a position in the log was last saved (Unix time); 0 before the first since start.", "log"),
		unreachable: desc("ctwatch_log_unreachable", "1 while requests to the log keep failing (a log_unreachable event was raised), else 0.", "log"),

		natsConnected:  desc("ctwatch_nats_connected", "1 while the NATS connection is up, else 0."),
		jsUp:           desc("ctwatch_jetstream_up", "1 if the hit stream's state could be read during this scrape, else 0."),
		streamMessages: desc("ctwatch_jetstream_stream_messages", "Messages in the hit stream (hits, events, dead letters); absent when it cannot be read."),
		streamBytes:    desc("ctwatch_jetstream_stream_bytes", "Bytes stored in the hit stream; absent when it cannot be read."),

		sinkPending: desc("ctwatch_sink_pending", "Stream messages the sink has not yet had acknowledged (not yet delivered, or awaiting a retry); absent when its consumer cannot be read.", "sink"),

		buildInfo:     desc("ctwatch_build_info", "Always 1; the labels say which ctwatch this is.", "version", "go_version"),
		rulesLoaded:   desc("ctwatch_rules_loaded", "Rules in force."),
		logsFollowed:  desc("ctwatch_logs_followed", "Logs with a running tailer."),
		reloadSuccess: desc("ctwatch_config_last_reload_success", "0 if the last reload was refused (the previous configuration stays in force), else 1; 1 before any reload."),
		reloadTime:    desc("ctwatch_config_last_reload_timestamp_seconds", "When the configuration was last reloaded, or refused (Unix time); the start time before any reload."),
		startTime:     desc("ctwatch_start_time_seconds", "When the daemon started (Unix time)."),
	}
	b := readBuild()
	c.version, c.goVersion = b.Version, b.GoVersion
	return c
}

// Describe sends every descriptor, so that the registry checks names and
// labels when it is built.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.treeSize, c.nextIndex, c.lagEntries, c.lagSeconds, c.processed, c.malformed, c.logHits, c.fetchErrors, c.logEvents,
		c.lastHead, c.lastCommit, c.unreachable,
		c.natsConnected, c.jsUp, c.streamMessages, c.streamBytes, c.sinkPending,
		c.buildInfo, c.rulesLoaded, c.logsFollowed, c.reloadSuccess, c.reloadTime, c.startTime,
	} {
		ch <- d
	}
}

// Collect reads the state. The registry runs collectors concurrently, so the
// NATS requests here do not hold up the runtime metrics.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	c.collectLogs(ch, time.Now())
	c.collectNATS(ctx, ch)
	c.collectProcess(ch)
}

func (c *stateCollector) collectLogs(ch chan<- prometheus.Metric, now time.Time) {
	if c.p.sup == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	unix := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	}
	for _, ts := range c.p.sup.snapshot() {
		name, st := ts.Log.Name, ts.Stats
		gauge(c.treeSize, float64(st.TreeSize), name)
		gauge(c.nextIndex, float64(st.NextIndex), name)
		gauge(c.lagEntries, float64(st.TreeSize-min(st.NextIndex, st.TreeSize)), name)
		lag := 0.0
		if !st.BehindSince.IsZero() {
			lag = max(now.Sub(st.BehindSince), 0).Seconds()
		}
		gauge(c.lagSeconds, lag, name)
		counter(c.processed, st.Processed, name)
		counter(c.malformed, st.Malformed, name)
		counter(c.logHits, st.Hits, name)
		// Every known kind is a series from the start, at 0 until it
		// happens, so that increase() sees the first one.
		for _, kind := range withKnown(st.FetchErrors, fetchErrorKinds()) {
			counter(c.fetchErrors, st.FetchErrors[kind], name, kind)
		}
		for _, kind := range withKnown(st.Events, logEventKinds()) {
			counter(c.logEvents, st.Events[kind], name, string(kind))
		}
		gauge(c.lastHead, unix(st.LastHead), name)
		gauge(c.lastCommit, unix(st.LastCommit), name)
		gauge(c.unreachable, boolFloat(st.Unreachable), name)
	}
}

func (c *stateCollector) collectNATS(ctx context.Context, ch chan<- prometheus.Metric) {
	p := c.p
	connected := p.nc != nil && p.nc.Status() == nats.CONNECTED
	ch <- prometheus.MustNewConstMetric(c.natsConnected, prometheus.GaugeValue, boolFloat(connected))
	if p.bus == nil {
		ch <- prometheus.MustNewConstMetric(c.jsUp, prometheus.GaugeValue, 0)
		return
	}
	up := 0.0
	if s, err := p.bus.JetStream().Stream(ctx, alerting.StreamName); err != nil {
		p.logger.Debug("metrics: read the hit stream", "err", err)
	} else if info := s.CachedInfo(); info != nil {
		up = 1
		ch <- prometheus.MustNewConstMetric(c.streamMessages, prometheus.GaugeValue, float64(info.State.Msgs))
		ch <- prometheus.MustNewConstMetric(c.streamBytes, prometheus.GaugeValue, float64(info.State.Bytes))
	}
	ch <- prometheus.MustNewConstMetric(c.jsUp, prometheus.GaugeValue, up)
	if p.sinks == nil {
		return
	}
	for _, s := range p.sinks.current() {
		n, err := pending(ctx, p.bus, s.Name)
		if err != nil {
			// Before the sink's first start its consumer does not exist.
			p.logger.Debug("metrics: read a sink's consumer", "sink", s.Name, "err", err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.sinkPending, prometheus.GaugeValue, float64(n), s.Name)
	}
}

func (c *stateCollector) collectProcess(ch chan<- prometheus.Metric) {
	p := c.p
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.buildInfo, 1, c.version, c.goVersion)
	if p.matcher != nil {
		gauge(c.rulesLoaded, float64(len(p.matcher.Engine().Rules())))
	}
	if p.sup != nil {
		gauge(c.logsFollowed, float64(len(p.sup.snapshot())))
	}
	success, at := true, p.started
	if r := p.lastReload.Load(); r != nil {
		success, at = r.Err == "", r.Time
	}
	gauge(c.reloadSuccess, boolFloat(success))
	gauge(c.reloadTime, float64(at.UnixNano())/1e9)
	gauge(c.startTime, float64(p.started.UnixNano())/1e9)
}

// fetchErrorKinds are the kinds monitor.FetchErrorKind returns.
func fetchErrorKinds() []string {
	return []string{"rate_limited", "http_5xx", "http_4xx", "too_large", "timeout", "decode", "network"}
}

// logEventKinds are the events a tailer raises about its log.
func logEventKinds() []event.LogEventKind {
	return []event.LogEventKind{event.BadSignature, event.InconsistentTree, event.ShrinkingTree,
		event.MalformedEntry, event.LogUnreachable, event.FallingBehind}
}

// withKnown returns the known keys and any others m holds, without
// repeats, the others sorted.
func withKnown[K ~string, V any](m map[K]V, known []K) []K {
	out := slices.Clone(known)
	extra := slices.Sorted(maps.Keys(m))
	for _, k := range extra {
		if !slices.Contains(known, k) {
			out = append(out, k)
		}
	}
	return out
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
