package deploy_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/internal/daemon"
	"github.com/ctwatch/ctwatch/internal/testca"
	"github.com/ctwatch/ctwatch/monitor/ctlogtest"
)

// TestDashboardMetricsAreExported runs a real daemon (an in-process CT log
// with a watched certificate, a webhook sink) and scrapes its /metrics:
// every metric the dashboard and the alert rules may use (metricLabels)
// must be there, with exactly the labels they assume. This is what keeps
// the files in deploy/ and the exporter from drifting apart.
func TestDashboardMetricsAreExported(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a daemon")
	}
	log, err := ctlogtest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(log.Close)
	ca, err := testca.New("deploy test")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"www.watched.example", "www.other.example"} {
		der, err := ca.Leaf(name)
		if err != nil {
			t.Fatal(err)
		}
		log.AddX509(der, ca.Chain())
	}
	log.Publish()

	delivered := make(chan struct{}, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		select {
		case delivered <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)

	dir := t.TempDir()
	rules := "rules:\n  - name: ours\n    severity: high\n    match:\n      domains: [.watched.example]\n"
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgText := fmt.Sprintf(`data_dir: %s
log_list: ""
logs:
  - {name: test, url: %s, key: %s, start: 0}
monitor: {poll_interval: 20ms}
rules: {files: [%s], builtin: false}
sinks:
  - {name: hook, type: webhook, url: %q, events: false}
web: {listen: "127.0.0.1:0"}
`, filepath.Join(dir, "data"), log.URL(), base64.StdEncoding.EncodeToString(log.PublicKeyDER()),
		filepath.Join(dir, "rules.yaml"), hook.URL)
	cfgPath := filepath.Join(dir, "ctwatch.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}

	addr := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	// done closes once Run has returned, runErr holding its error: a
	// channel closed, not sent on, so that a failure seen below does not
	// leave the cleanup waiting for a second value.
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		runErr = daemon.Run(ctx, cfg, slog.New(slog.DiscardHandler), daemon.WithWebListening(func(a string) { addr <- a }))
	}()
	t.Cleanup(func() { cancel(); <-done })
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-done:
		t.Fatalf("daemon stopped: %v", runErr)
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon's web server did not start")
	}
	// A hit delivered: the log, hit and sink series all exist by now.
	select {
	case <-delivered:
	case <-done:
		t.Fatalf("daemon stopped: %v", runErr)
	case <-time.After(60 * time.Second):
		t.Fatal("no hit delivered")
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}

	for name, want := range metricLabels() {
		if name == "up" {
			continue // Prometheus' own
		}
		family, suffixLabel := name, ""
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if histogram, ok := strings.CutSuffix(name, suffix); ok && fams[histogram].GetType() == dto.MetricType_HISTOGRAM {
				family = histogram
				if suffix == "_bucket" {
					suffixLabel = "le" // a bucket's bound, not a label of the family
				}
			}
		}
		fam := fams[family]
		if fam == nil || len(fam.Metric) == 0 {
			t.Errorf("%s: not exported", name)
			continue
		}
		var expected []string
		for _, l := range want {
			if l != "job" && l != "instance" && l != suffixLabel {
				expected = append(expected, l)
			}
		}
		slices.Sort(expected)
		for _, m := range fam.Metric {
			var got []string
			for _, lp := range m.Label {
				got = append(got, lp.GetName())
			}
			slices.Sort(got)
			if !slices.Equal(got, expected) {
				t.Errorf("%s: exported with labels %v, the dashboard and alerts assume %v", name, got, expected)
				break
			}
		}
	}
}
