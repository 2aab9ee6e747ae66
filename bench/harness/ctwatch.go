package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ctwatchLog is one entry of the logs list of a bench config.
type ctwatchLog struct {
	name, kind, url, key  string
	monitoringURL, origin string // static logs only
	fromStart             bool   // start: 0; otherwise start at the end
}

// ctwatchConfig is the config file of one ctwatch run of the harness.
type ctwatchConfig struct {
	dataDir   string
	listen    string // host:port of web.listen, which the harness polls
	logs      []ctwatchLog
	monitor   []string // lines of the monitor section, "key: value"
	rulesFile string
	webhook   string
}

// yamlString quotes s as a YAML double-quoted scalar (a JSON string is one).
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (c ctwatchConfig) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %s\n", yamlString(c.dataDir))
	b.WriteString("log_level: info\nlog_format: text\n")
	b.WriteString("log_list: \"\"\n")
	fmt.Fprintf(&b, "web:\n  listen: %s\n", yamlString(c.listen))
	b.WriteString("logs:\n")
	for _, l := range c.logs {
		fmt.Fprintf(&b, "  - name: %s\n    kind: %s\n    url: %s\n    key: %s\n", yamlString(l.name), l.kind, yamlString(l.url), yamlString(l.key))
		if l.fromStart {
			b.WriteString("    start: 0\n")
		}
		if l.monitoringURL != "" {
			fmt.Fprintf(&b, "    monitoring_url: %s\n", yamlString(l.monitoringURL))
		}
		if l.origin != "" {
			fmt.Fprintf(&b, "    origin: %s\n", yamlString(l.origin))
		}
	}
	if len(c.monitor) > 0 {
		b.WriteString("monitor:\n")
		for _, line := range c.monitor {
			fmt.Fprintf(&b, "  %s\n", line)
		}
	}
	fmt.Fprintf(&b, "rules:\n  files: [%s]\n  builtin: true\n", yamlString(c.rulesFile))
	fmt.Fprintf(&b, "sinks:\n  - {name: bench-hook, type: webhook, url: %s, timeout: 10s}\n", yamlString(c.webhook))
	return b.String()
}

// writeAndValidate writes the config to path and has the ctwatch binary
// load it and compile its rules (`ctwatch rules validate`), so that a bad
// config fails before anything is timed.
func (c ctwatchConfig) writeAndValidate(ctx context.Context, bin, path string) error {
	if err := os.WriteFile(path, []byte(c.render()), 0o644); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	out, err := exec.CommandContext(ctx, bin, "rules", "validate", "--config", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctwatch rules validate --config %s: %w: %s", path, err, out)
	}
	return nil
}

// metricsClient reads ctwatch's /metrics.
type metricsClient struct {
	url string
	hc  *http.Client
}

func newMetricsClient(listen string) metricsClient {
	return metricsClient{url: "http://" + listen + "/metrics", hc: &http.Client{Timeout: 5 * time.Second}}
}

// logProgress is what one scrape says of a log.
type logProgress struct {
	nextIndex uint64
	// lastCommit is when ctwatch last saved its position in the log;
	// zero before the first commit.
	lastCommit time.Time
}

// progress scrapes the next index and last commit time of every log (a
// log is absent before its first verified tree head).
func (m metricsClient) progress(ctx context.Context) (map[string]logProgress, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return nil, err
	}
	rsp, err := m.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", rsp.Status)
	}
	g, err := parseLogGauges(rsp.Body, "ctwatch_log_next_index", "ctwatch_log_last_commit_timestamp_seconds")
	if err != nil {
		return nil, err
	}
	out := map[string]logProgress{}
	for log, v := range g["ctwatch_log_next_index"] {
		p := logProgress{nextIndex: uint64(v)}
		if ts := g["ctwatch_log_last_commit_timestamp_seconds"][log]; ts > 0 {
			sec, frac := math.Modf(ts)
			p.lastCommit = time.Unix(int64(sec), int64(frac*1e9))
		}
		out[log] = p
	}
	return out, nil
}

// parseLogGauges reads, from the Prometheus text format, the values of the
// named metrics per value of their "log" label.
func parseLogGauges(r io.Reader, names ...string) (map[string]map[string]float64, error) {
	out := map[string]map[string]float64{}
	for _, n := range names {
		out[n] = map[string]float64{}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok || out[name] == nil {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			return nil, fmt.Errorf("metrics: malformed line %q", line)
		}
		log, ok := labelValue(labels, "log")
		if !ok {
			continue
		}
		if i := strings.IndexByte(value, ' '); i >= 0 { // a timestamp follows
			value = value[:i]
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("metrics: value of %q: %q", line, value)
		}
		out[name][log] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return out, nil
}

// labelValue finds key="value" in a label list. Log names in the bench
// configs hold no quotes or backslashes, so no unescaping is needed.
func labelValue(labels, key string) (string, bool) {
	for _, kv := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && k == key && len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			return v[1 : len(v)-1], true
		}
	}
	return "", false
}

// ctwatchRun is a ctwatch process started by launchCtwatch, with the
// webhook server its sink delivers to.
type ctwatchRun struct {
	proc   *proc
	hook   *webhookServer
	listen string // web.listen, where /metrics is scraped
	log    string // the process's output
}

// launchCtwatch starts the webhook server for recv, completes cfg with
// it, a data directory and a free web port in dir, writes and validates
// the configuration and starts ctwatch on it. close stops both.
func launchCtwatch(ctx context.Context, dir, bin string, cfg ctwatchConfig, recv *hitReceiver) (*ctwatchRun, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("mkdir: %w", err)
	}
	hook, err := serveWebhook(recv)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		hook.close()
		return nil, err
	}
	cfg.dataDir = filepath.Join(dir, "data")
	cfg.listen = fmt.Sprintf("127.0.0.1:%d", port)
	cfg.webhook = hook.url
	cfgPath := filepath.Join(dir, "ctwatch.yaml")
	if err := cfg.writeAndValidate(ctx, bin, cfgPath); err != nil {
		hook.close()
		return nil, err
	}
	logPath := filepath.Join(dir, "ctwatch.log")
	p, err := startProc("ctwatch", dir, logPath, logPath, bin, "run", "--config", cfgPath)
	if err != nil {
		hook.close()
		return nil, err
	}
	return &ctwatchRun{proc: p, hook: hook, listen: cfg.listen, log: logPath}, nil
}

// close stops ctwatch, then the webhook server.
func (r *ctwatchRun) close() {
	_ = r.proc.stop(30 * time.Second)
	r.hook.close()
}
