package daemon_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/daemon"
)

// get fetches base+path and returns the status and body.
func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp.StatusCode, string(b)
}

// scrape fetches and parses /metrics.
func scrape(t *testing.T, base string) scraped {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d: %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

// scraped is one parsed scrape.
type scraped map[string]*dto.MetricFamily

// value returns the value of the series of name whose labels include
// labels ("k=v" pairs): a gauge's or counter's value, a histogram's sample
// count. ok is false when there is no such series.
func (s scraped) value(name string, labels ...string) (float64, bool) {
	fam := s[name]
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			match = match && have[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// awaitCond polls cond until it holds. Metrics and readiness change on
// their own goroutines and offer no signal, so polling with a deadline is
// the honest way to wait.
func awaitCond(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flakyHook is a webhook receiver that answers 500 to its first fail
// requests and accepts the rest, recording the hit IDs.
type flakyHook struct {
	srv  *httptest.Server
	mu   sync.Mutex
	fail int
	ids  map[string]int
}

func newFlakyHook(t *testing.T, fail int) *flakyHook {
	h := &flakyHook{fail: fail, ids: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.fail > 0 {
			h.fail--
			http.Error(w, "down for a moment", http.StatusInternalServerError)
			return
		}
		var hit event.Hit
		if err := json.Unmarshal(body, &hit); err != nil || hit.ID == "" {
			http.Error(w, "bad hit", http.StatusBadRequest)
			return
		}
		h.ids[hit.ID]++
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// After a known run the metrics say exactly what happened: every entry
// processed, one hit per watched certificate, the one injected 503, one
// failed webhook attempt, every hit delivered to both sinks once.
func TestMetricsAfterAKnownRun(t *testing.T) {
	s := newSetup(t)
	s.add(t, 40)
	n, total := len(s.watched), 40
	hook := newFlakyHook(t, 1)
	cfg := s.configWith(t, fmt.Sprintf(`
  - {name: file, type: jsonl, path: %s}
  - {name: hook, type: webhook, url: %q, events: false, retry: {min_backoff: 10ms, max_backoff: 20ms}}
`, filepath.Join(s.dir, "hits.jsonl"), hook.srv.URL))
	s.log.FailNext("", 1, http.StatusServiceUnavailable, 0)
	engine, err := daemon.LoadRules(cfg)
	if err != nil {
		t.Fatal(err)
	}

	stop, base := runDaemonWeb(t, cfg)
	var m scraped
	awaitCond(t, "every entry processed and every hit delivered to both sinks", func() (bool, string) {
		m = scrape(t, base)
		processed, _ := m.value("ctwatch_log_entries_processed_total", "log=test")
		hookHits, _ := m.value("ctwatch_sink_delivered_total", "sink=hook", "kind=hit")
		fileHits, _ := m.value("ctwatch_sink_delivered_total", "sink=file", "kind=hit")
		hookPending, hp := m.value("ctwatch_sink_pending", "sink=hook")
		filePending, fp := m.value("ctwatch_sink_pending", "sink=file")
		next, _ := m.value("ctwatch_log_next_index", "log=test")
		return processed == float64(total) && next == float64(total) && hookHits == float64(n) && fileHits == float64(n) &&
				hp && fp && hookPending == 0 && filePending == 0,
			fmt.Sprintf("processed %v, next %v, delivered hook %v file %v, pending hook %v file %v", processed, next, hookHits, fileHits, hookPending, filePending)
	})

	for _, w := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ctwatch_log_tree_size", []string{"log=test"}, float64(total)},
		{"ctwatch_log_next_index", []string{"log=test"}, float64(total)},
		{"ctwatch_log_lag_entries", []string{"log=test"}, 0},
		{"ctwatch_log_lag_seconds", []string{"log=test"}, 0},
		{"ctwatch_log_entries_processed_total", []string{"log=test"}, float64(total)},
		{"ctwatch_log_malformed_entries_total", []string{"log=test"}, 0},
		{"ctwatch_log_hits_total", []string{"log=test"}, float64(n)},
		{"ctwatch_log_fetch_errors_total", []string{"log=test", "kind=http_5xx"}, 1},
		{"ctwatch_log_fetch_errors_total", []string{"log=test", "kind=network"}, 0},
		{"ctwatch_log_events_total", []string{"log=test", "kind=bad_signature"}, 0},
		{"ctwatch_log_events_total", []string{"log=test", "kind=log_unreachable"}, 0},
		{"ctwatch_log_unreachable", []string{"log=test"}, 0},
		{"ctwatch_hits_total", []string{"rule=ours", "severity=high"}, float64(n)},
		{"ctwatch_sink_delivered_total", []string{"sink=hook", "kind=hit"}, float64(n)},
		{"ctwatch_sink_delivered_total", []string{"sink=hook", "kind=digest"}, 0},
		{"ctwatch_sink_delivered_total", []string{"sink=hook", "kind=event"}, 0},
		{"ctwatch_sink_delivered_hits_total", []string{"sink=hook"}, float64(n)},
		{"ctwatch_sink_failures_total", []string{"sink=hook"}, 1},
		{"ctwatch_sink_dead_lettered_total", []string{"sink=hook"}, 0},
		{"ctwatch_sink_skipped_total", []string{"sink=hook"}, 0},
		{"ctwatch_sink_delivery_latency_seconds", []string{"sink=hook"}, float64(n)},
		{"ctwatch_sink_pending", []string{"sink=hook"}, 0},
		{"ctwatch_sink_delivered_total", []string{"sink=file", "kind=hit"}, float64(n)},
		{"ctwatch_sink_failures_total", []string{"sink=file"}, 0},
		{"ctwatch_nats_connected", nil, 1},
		{"ctwatch_jetstream_up", nil, 1},
		{"ctwatch_jetstream_stream_messages", nil, float64(n)},
		{"ctwatch_rules_loaded", nil, float64(len(engine.Rules()))},
		{"ctwatch_logs_followed", nil, 1},
		{"ctwatch_config_last_reload_success", nil, 1},
	} {
		got, ok := m.value(w.name, w.labels...)
		if !ok || got != w.want {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.want)
		}
	}
	now := float64(time.Now().Unix())
	for _, name := range []string{"ctwatch_log_last_head_timestamp_seconds", "ctwatch_log_last_commit_timestamp_seconds"} {
		if v, _ := m.value(name, "log=test"); v < now-120 || v > now+1 {
			t.Errorf("%s = %v, want about now (%v)", name, v, now)
		}
	}
	for _, name := range []string{"ctwatch_start_time_seconds", "ctwatch_config_last_reload_timestamp_seconds"} {
		if v, _ := m.value(name); v < now-120 || v > now+1 {
			t.Errorf("%s = %v, want about now (%v)", name, v, now)
		}
	}
	if v, ok := m.value("ctwatch_build_info"); !ok || v != 1 {
		t.Errorf("ctwatch_build_info = %v (present %v), want 1", v, ok)
	}
	if fam := m["ctwatch_jetstream_stream_bytes"]; fam == nil || fam.GetMetric()[0].GetGauge().GetValue() <= 0 {
		t.Errorf("ctwatch_jetstream_stream_bytes missing or zero: %v", fam)
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if m[name] == nil {
			t.Errorf("%s missing: the Go and process collectors are not registered", name)
		}
	}
	hook.mu.Lock()
	for id, c := range hook.ids {
		if c != 1 {
			t.Errorf("hook got hit %s %d times", id, c)
		}
	}
	if len(hook.ids) != n {
		t.Errorf("hook got %d distinct hits, want %d", len(hook.ids), n)
	}
	hook.mu.Unlock()

	if code, body := get(t, base+"/healthz"); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q, want 200 ok", code, body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// gate is a proxy in front of a test log that holds every request until it
// is opened: the daemon then has no tree head yet, without a failure that
// would make the log unreachable.
type gate struct {
	srv    *httptest.Server
	opened chan struct{}
	once   sync.Once
}

func newGate(t *testing.T, target string) *gate {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{opened: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(u)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-g.opened:
			proxy.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { g.open(); g.srv.Close() })
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.opened) }) }

// /readyz is 503 while the log has no verified tree head, 200 once it
// progresses, and 503 again when it becomes unreachable, each time with
// the reason in the body; /healthz is 200 throughout.
func TestReadinessTransitions(t *testing.T) {
	s := newSetup(t)
	s.add(t, 10)
	g := newGate(t, s.log.URL())
	cfg := s.config(t)
	cfg.Logs[0].URL = g.srv.URL
	_, base := runDaemonWeb(t, cfg)

	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "log test: FAIL starting") ||
		!strings.Contains(body, "nats: ok") || !strings.Contains(body, "rules: ok") || !strings.Contains(body, "logs: ok") {
		t.Errorf("/readyz before the first tree head: %d\n%s\nwant 503 with nats, rules and logs ok and log test starting", code, body)
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz while not ready: %d %q, want 200 ok", code, body)
	}

	g.open()
	awaitCond(t, "ready once the log answers", func() (bool, string) {
		code, body = get(t, base+"/readyz")
		return code == http.StatusOK, fmt.Sprintf("%d\n%s", code, body)
	})
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if !strings.HasSuffix(line, ": ok") {
			t.Errorf("ready, but /readyz says %q", line)
		}
	}
	if !strings.Contains(body, "log test: ok") {
		t.Errorf("/readyz when ready does not list the log:\n%s", body)
	}

	// A 4xx is not retried within a request, so every poll fails at once
	// and the log is unreachable after a few polls.
	s.log.FailNext("get-sth", 1<<30, http.StatusNotFound, 0)
	awaitCond(t, "not ready once the log is unreachable", func() (bool, string) {
		code, body = get(t, base+"/readyz")
		return code == http.StatusServiceUnavailable, fmt.Sprintf("%d\n%s", code, body)
	})
	if !strings.Contains(body, "log test: FAIL unreachable") || !strings.Contains(body, "404") {
		t.Errorf("/readyz with the log unreachable:\n%s\nwant log test FAIL unreachable with the last error", body)
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz while the log is unreachable: %d %q, want 200 ok", code, body)
	}
}
