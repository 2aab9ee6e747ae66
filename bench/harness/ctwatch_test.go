package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/config"
)

// The configs the harness writes are ones ctwatch's own loader accepts,
// with the values the phases rely on.
func TestConfigLoads(t *testing.T) {
	keyB64, _ := testLogKey(t)
	dir := t.TempDir()
	c := ctwatchConfig{
		dataDir: filepath.Join(dir, "data"),
		listen:  "127.0.0.1:19464",
		logs: []ctwatchLog{
			{name: "bench-rfc6962", kind: "rfc6962", url: "http://127.0.0.1:6963/testlog", key: keyB64, fromStart: true},
			{name: "bench-static", kind: "static", url: "http://127.0.0.1:7000/tessera", key: keyB64,
				monitoringURL: "http://127.0.0.1:7001", origin: "127.0.0.1/tessera"},
		},
		monitor:   []string{"rate: 0", "batch_size: 1000", "poll_interval: 1s"},
		rulesFile: filepath.Join(dir, "rules.yaml"),
		webhook:   "http://127.0.0.1:9999/hook",
	}
	path := filepath.Join(dir, "ctwatch.yaml")
	if err := os.WriteFile(path, []byte(c.render()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("ctwatch refuses the config: %v\n%s", err, c.render())
	}
	if cfg.Monitor.Rate != 0 || cfg.Monitor.BatchSize != 1000 || cfg.Monitor.PollInterval != time.Second {
		t.Errorf("monitor %+v: want rate 0 (no cap), batch 1000, poll 1s", cfg.Monitor)
	}
	if cfg.Web.Listen != c.listen || cfg.DataDir != c.dataDir || cfg.LogList != "" || !cfg.Rules.Builtin {
		t.Errorf("listen %q, data dir %q, log list %q, builtin %v", cfg.Web.Listen, cfg.DataDir, cfg.LogList, cfg.Rules.Builtin)
	}
	if len(cfg.Logs) != 2 {
		t.Fatalf("%d logs, want 2", len(cfg.Logs))
	}
	if s := cfg.Logs[0].Start; s == nil || *s != 0 {
		t.Errorf("rfc6962 log start %v, want 0", s)
	}
	if s := cfg.Logs[1].Start; s != nil {
		t.Errorf("static log start %v, want nil (the end)", *s)
	}
	if l := cfg.Logs[1]; l.Kind != config.KindStatic || l.MonitoringURL != "http://127.0.0.1:7001" || l.Origin != "127.0.0.1/tessera" {
		t.Errorf("static log %+v", l)
	}
	if len(cfg.Sinks) != 1 || cfg.Sinks[0].Type != config.SinkWebhook || cfg.Sinks[0].URL != c.webhook {
		t.Errorf("sinks %+v, want the one webhook", cfg.Sinks)
	}
}

func TestParseLogGauges(t *testing.T) {
	page := strings.Join([]string{
		"# HELP ctwatch_log_next_index Index of the next entry to process.",
		"# TYPE ctwatch_log_next_index gauge",
		`ctwatch_log_next_index{log="bench-rfc6962"} 20000`,
		`ctwatch_log_next_index{log="bench-static"} 1e+06`,
		`ctwatch_log_next_index_other{log="bench-static"} 5`,
		`ctwatch_log_tree_size{log="bench-static"} 2e+06`,
		`ctwatch_log_last_commit_timestamp_seconds{log="bench-static"} 1.7956876e+09`,
		`ctwatch_log_next_index{kind="x",log="with-ts"} 7 1700000000000`,
		`ctwatch_log_next_index{kind="no log label"} 9`,
		"",
	}, "\n")
	got, err := parseLogGauges(strings.NewReader(page), "ctwatch_log_next_index", "ctwatch_log_last_commit_timestamp_seconds")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]float64{
		"ctwatch_log_next_index":                    {"bench-rfc6962": 20000, "bench-static": 1000000, "with-ts": 7},
		"ctwatch_log_last_commit_timestamp_seconds": {"bench-static": 1795687600},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{`ctwatch_log_next_index{log="x"} many`, `ctwatch_log_next_index{log="x"}`, `ctwatch_log_next_index{log="x"} -1`} {
		if _, err := parseLogGauges(strings.NewReader(bad), "ctwatch_log_next_index"); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

// progress turns a scrape into positions and commit times, to the
// microsecond the float carries.
func TestMetricsProgress(t *testing.T) {
	page := `ctwatch_log_next_index{log="a"} 500
ctwatch_log_last_commit_timestamp_seconds{log="a"} 1.795687595128456e+09
ctwatch_log_next_index{log="b"} 0
ctwatch_log_last_commit_timestamp_seconds{log="b"} 0
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, page)
	}))
	defer srv.Close()
	got, err := newMetricsClient(strings.TrimPrefix(srv.URL, "http://")).progress(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantCommit := time.Unix(1795687595, 128456000)
	if a := got["a"]; a.nextIndex != 500 || a.lastCommit.Sub(wantCommit).Abs() > time.Microsecond {
		t.Errorf("log a: %+v, want 500 committed at %v", a, wantCommit)
	}
	if b, ok := got["b"]; !ok || b.nextIndex != 0 || !b.lastCommit.IsZero() {
		t.Errorf("log b: %+v, %v; want 0 and no commit", b, ok)
	}
}
