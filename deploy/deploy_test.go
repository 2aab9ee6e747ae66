package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/internal/daemon"
)

// metricLabels is every metric ctwatch exports, with its labels (besides
// job and instance, which Prometheus adds). The dashboard and the alert
// rules may use these and nothing else; "up" is Prometheus' own.
func metricLabels() map[string][]string {
	m := map[string][]string{
		"ctwatch_log_tree_size":                        {"log"},
		"ctwatch_log_next_index":                       {"log"},
		"ctwatch_log_lag_entries":                      {"log"},
		"ctwatch_log_lag_seconds":                      {"log"},
		"ctwatch_log_entries_processed_total":          {"log"},
		"ctwatch_log_malformed_entries_total":          {"log"},
		"ctwatch_log_hits_total":                       {"log"},
		"ctwatch_log_fetch_errors_total":               {"log", "kind"},
		"ctwatch_log_events_total":                     {"log", "kind"},
		"ctwatch_log_last_head_timestamp_seconds":      {"log"},
		"ctwatch_log_last_commit_timestamp_seconds":    {"log"},
		"ctwatch_log_unreachable":                      {"log"},
		"ctwatch_hits_total":                           {"rule", "severity"},
		"ctwatch_sink_delivered_total":                 {"sink", "kind"},
		"ctwatch_sink_delivered_hits_total":            {"sink"},
		"ctwatch_sink_failures_total":                  {"sink"},
		"ctwatch_sink_dead_lettered_total":             {"sink"},
		"ctwatch_sink_skipped_total":                   {"sink"},
		"ctwatch_sink_delivery_latency_seconds_bucket": {"sink", "le"},
		"ctwatch_sink_delivery_latency_seconds_sum":    {"sink"},
		"ctwatch_sink_delivery_latency_seconds_count":  {"sink"},
		"ctwatch_sink_pending":                         {"sink"},
		"ctwatch_nats_connected":                       nil,
		"ctwatch_jetstream_up":                         nil,
		"ctwatch_jetstream_stream_messages":            nil,
		"ctwatch_jetstream_stream_bytes":               nil,
		"ctwatch_build_info":                           {"version", "go_version"},
		"ctwatch_rules_loaded":                         nil,
		"ctwatch_logs_followed":                        nil,
		"ctwatch_config_last_reload_success":           nil,
		"ctwatch_config_last_reload_timestamp_seconds": nil,
		"ctwatch_start_time_seconds":                   nil,
		"up":                                           nil,
	}
	for name, labels := range m {
		m[name] = append(labels, "job", "instance")
	}
	return m
}

// checkPromQL parses expr as Prometheus does and checks that every series
// it selects is a metric ctwatch exports, matched on labels it has. It
// returns the metric names and the labels of those metrics.
func checkPromQL(t *testing.T, where, expr string) (metrics []string, labels map[string]bool) {
	t.Helper()
	e, err := parser.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: PromQL does not parse: %v\n%s", where, err, expr)
		return nil, nil
	}
	known := metricLabels()
	labels = map[string]bool{}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if vs.Name == "" {
			t.Errorf("%s: a selector without a metric name: %s", where, vs)
			return nil
		}
		have, ok := known[vs.Name]
		if !ok {
			t.Errorf("%s: metric %s is not one ctwatch exports", where, vs.Name)
			return nil
		}
		metrics = append(metrics, vs.Name)
		for _, l := range have {
			labels[l] = true
		}
		for _, m := range vs.LabelMatchers {
			if m.Name != "__name__" && !slices.Contains(have, m.Name) {
				t.Errorf("%s: %s has no label %q", where, vs.Name, m.Name)
			}
		}
		return nil
	})
	return metrics, labels
}

func TestPrometheusAlertRules(t *testing.T) {
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	decodeStrict(t, "prometheus/ctwatch-alerts.yaml", readFile(t, "prometheus/ctwatch-alerts.yaml"), &file)

	alerts := map[string]bool{}
	groups := map[string]bool{}
	for _, g := range file.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("group name %q empty or repeated", g.Name)
		}
		groups[g.Name] = true
		for _, r := range g.Rules {
			where := "alert " + r.Alert
			if r.Alert == "" || alerts[r.Alert] {
				t.Errorf("alert name %q empty or repeated", r.Alert)
			}
			alerts[r.Alert] = true
			_, labels := checkPromQL(t, where, r.Expr)
			if r.For != "" {
				if d, err := time.ParseDuration(r.For); err != nil || d <= 0 {
					t.Errorf("%s: for: %q is not a positive duration", where, r.For)
				}
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", where, s)
			}
			for _, key := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[key]) == "" {
					t.Errorf("%s: no %s annotation", where, key)
				}
			}
			for key, text := range r.Annotations {
				checkAlertTemplate(t, where+" "+key, text, labels)
			}
		}
	}
	// What the issue asks to be paged for, and what operating ctwatch needs.
	for _, name := range []string{
		"CtwatchDown", "CtwatchLogNotProgressing", "CtwatchLogLagGrowing", "CtwatchLogMisbehaving",
		"CtwatchSinkFailing", "CtwatchSinkDeadLetters", "CtwatchReloadFailed", "CtwatchNATSDisconnected",
	} {
		if !alerts[name] {
			t.Errorf("no alert %s", name)
		}
	}
}

// checkAlertTemplate runs an annotation through Go's text/template the way
// Prometheus does (with $labels and $value defined), so that a template
// error shows here rather than as a broken page, and checks that every
// $labels.X it uses is a label the expression's metrics carry.
func checkAlertTemplate(t *testing.T, where, text string, labels map[string]bool) {
	t.Helper()
	const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}"
	funcs := template.FuncMap{
		"humanizeDuration": func(v float64) string { return time.Duration(v * float64(time.Second)).String() },
	}
	tmpl, err := template.New(where).Funcs(funcs).Option("missingkey=zero").Parse(defs + text)
	if err != nil {
		t.Errorf("%s: template: %v", where, err)
		return
	}
	data := struct {
		Labels, ExternalLabels map[string]string
		Value                  float64
	}{Labels: map[string]string{}, ExternalLabels: map[string]string{}, Value: 1}
	if err := tmpl.Execute(io.Discard, data); err != nil {
		t.Errorf("%s: template: %v", where, err)
	}
	for _, m := range regexp.MustCompile(`\$labels\.(\w+)`).FindAllStringSubmatch(text, -1) {
		if labels != nil && !labels[m[1]] {
			t.Errorf("%s: uses $labels.%s, which the expression's metrics do not have", where, m[1])
		}
	}
}

// grafanaVar matches Grafana's variables in queries: $name, ${name},
// ${name:format}.
var grafanaVar = regexp.MustCompile(`\$(\w+)|\$\{(\w+)(?::\w+)?\}`)

// expandGrafana replaces Grafana's variables with what they stand for, so
// that a query can be parsed as PromQL: a duration for the interval
// variables, a match-everything regex for the dashboard's own.
func expandGrafana(q string) string {
	return grafanaVar.ReplaceAllStringFunc(q, func(v string) string {
		switch strings.Trim(v, "${}") {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		}
		return ".*"
	})
}

func TestGrafanaDashboard(t *testing.T) {
	data := readFile(t, "grafana/ctwatch-dashboard.json")
	if !json.Valid(data) {
		t.Fatal("not valid JSON")
	}
	type datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	type panel struct {
		ID         int         `json:"id"`
		Type       string      `json:"type"`
		Title      string      `json:"title"`
		Datasource *datasource `json:"datasource"`
		GridPos    struct {
			H, W, X, Y int
		} `json:"gridPos"`
		Targets []struct {
			Expr       string      `json:"expr"`
			RefID      string      `json:"refId"`
			Datasource *datasource `json:"datasource"`
		} `json:"targets"`
	}
	var dash struct {
		Inputs []struct {
			Name     string `json:"name"`
			Type     string `json:"type"`
			PluginID string `json:"pluginId"`
		} `json:"__inputs"`
		UID           string  `json:"uid"`
		Title         string  `json:"title"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name       string      `json:"name"`
				Type       string      `json:"type"`
				Definition string      `json:"definition"`
				Datasource *datasource `json:"datasource"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("uid %q, title %q: both are needed for a stable import", dash.UID, dash.Title)
	}
	if dash.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: too old for the panel types used", dash.SchemaVersion)
	}
	inputs := map[string]bool{}
	for _, in := range dash.Inputs {
		if in.Type == "datasource" && in.PluginID == "prometheus" {
			inputs["${"+in.Name+"}"] = true
		}
	}
	if len(inputs) != 1 {
		t.Fatalf("want one Prometheus datasource input, have %v", dash.Inputs)
	}
	checkDS := func(where string, ds *datasource) {
		if ds == nil || ds.Type != "prometheus" || !inputs[ds.UID] {
			t.Errorf("%s: datasource %+v is not the dashboard's Prometheus input", where, ds)
		}
	}

	used := map[string]bool{}
	ids := map[int]bool{}
	var boxes []panel
	for _, p := range dash.Panels {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("%s: id missing or repeated", where)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24-column grid", where, g)
		}
		for _, o := range boxes {
			og := o.GridPos
			if g.X < og.X+og.W && og.X < g.X+g.W && g.Y < og.Y+og.H && og.Y < g.Y+g.H {
				t.Errorf("%s overlaps panel %d %q", where, o.ID, o.Title)
			}
		}
		boxes = append(boxes, p)
		if p.Type == "row" {
			continue
		}
		checkDS(where, p.Datasource)
		if p.Title == "" || len(p.Targets) == 0 {
			t.Errorf("%s: needs a title and a query", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if refs[tg.RefID] {
				t.Errorf("%s: refId %s repeated", where, tg.RefID)
			}
			refs[tg.RefID] = true
			checkDS(where, tg.Datasource)
			metrics, _ := checkPromQL(t, where, expandGrafana(tg.Expr))
			for _, m := range metrics {
				used[m] = true
			}
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		checkDS("variable "+v.Name, v.Datasource)
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		_, labels := checkPromQL(t, "variable "+v.Name, expandGrafana(m[1]))
		if labels != nil && !labels[m[2]] {
			t.Errorf("variable %s: the selected metric has no label %s", v.Name, m[2])
		}
	}
	// Every metric is on the dashboard somewhere (histogram series count
	// once, by their buckets).
	for name := range metricLabels() {
		if name == "up" || strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") {
			continue
		}
		if !used[name] {
			t.Errorf("no panel shows %s", name)
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	unit := parseUnit(t, readFile(t, "systemd/ctwatch.service"))
	for _, section := range []string{"Unit", "Service", "Install"} {
		if unit[section] == nil {
			t.Errorf("no [%s] section", section)
		}
	}
	svc := unit["Service"]
	// The hardening the unit promises, each with its value.
	want := map[string]string{
		"DynamicUser":             "yes",
		"StateDirectory":          "ctwatch",
		"ConfigurationDirectory":  "ctwatch",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"RestrictNamespaces":      "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"Restart":                 "on-failure",
		"EnvironmentFile":         "-/etc/ctwatch/env",
	}
	for key, value := range want {
		got, ok := svc[key]
		if !ok {
			t.Errorf("[Service] has no %s=", key)
			continue
		}
		if got[len(got)-1] != value {
			t.Errorf("%s=%s, want %s=%s", key, got[len(got)-1], key, value)
		}
	}
	if !slices.Contains(svc["SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter=%v, want @system-service among them", svc["SystemCallFilter"])
	}
	if n, err := strconv.Atoi(last(svc["LimitNOFILE"])); err != nil || n < 4096 {
		t.Errorf("LimitNOFILE=%s, want a number of at least 4096", last(svc["LimitNOFILE"]))
	}
	// The daemon flushes for up to 10 s and drains sinks for up to 5 s.
	if n, err := strconv.Atoi(last(svc["TimeoutStopSec"])); err != nil || n < 20 {
		t.Errorf("TimeoutStopSec=%s, want seconds leaving room for 15 s of shutdown", last(svc["TimeoutStopSec"]))
	}

	args := strings.Fields(last(svc["ExecStart"]))
	if len(args) < 2 || args[0] != "/usr/local/bin/ctwatch" || args[1] != "run" {
		t.Fatalf("ExecStart=%v, want /usr/local/bin/ctwatch run ...", args)
	}
	flags := flagValues(args[2:])
	if flags["--config"] != "/etc/ctwatch/ctwatch.yaml" || flags["--data-dir"] != "${STATE_DIRECTORY}" {
		t.Errorf("ExecStart flags %v, want --config /etc/ctwatch/ctwatch.yaml --data-dir ${STATE_DIRECTORY}", flags)
	}
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	for name := range flags {
		if name != "--config" && fs.Lookup(strings.TrimPrefix(name, "--")) == nil {
			t.Errorf("ExecStart passes %s, which ctwatch run does not have", name)
		}
	}
}

func TestSystemdConfig(t *testing.T) {
	svc := parseUnit(t, readFile(t, "systemd/ctwatch.service"))["Service"]
	stateDir := "/var/lib/" + last(svc["StateDirectory"])
	confDir := "/etc/" + last(svc["ConfigurationDirectory"])

	cfg := loadConfig(t, filepath.Join("systemd", "ctwatch.yaml"), nil)
	if cfg.DataDir != stateDir {
		t.Errorf("data_dir %s, want the unit's state directory %s", cfg.DataDir, stateDir)
	}
	// The issue: the HTTP listener binds 127.0.0.1 by default.
	if cfg.Web.Listen != "127.0.0.1:9464" {
		t.Errorf("web.listen %q, want 127.0.0.1:9464", cfg.Web.Listen)
	}
	// ProtectSystem=strict: the state directory is the only writable one.
	for _, s := range cfg.Sinks {
		if s.Type == config.SinkJSONL && !strings.HasPrefix(s.Path, stateDir+"/") {
			t.Errorf("sink %s writes %s, which the unit makes read-only", s.Name, s.Path)
		}
	}
	for _, pattern := range cfg.Rules.Files {
		if !strings.HasPrefix(pattern, confDir+"/") {
			t.Errorf("rules %s outside the unit's configuration directory %s", pattern, confDir)
		}
	}
	// The install steps copy configs/rules/example.yaml into the rules
	// directory: the result must load.
	rulesDir := t.TempDir()
	copyFile(t, filepath.Join("..", "configs", "rules", "example.yaml"), filepath.Join(rulesDir, "example.yaml"))
	loadRulesFrom(t, cfg, map[string]string{confDir + "/rules": rulesDir})
}

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, readFile(t, "Dockerfile"))
	args := map[string]string{}
	var froms []string
	var builds []string
	final := map[string][]string{} // instructions of the last stage
	for _, in := range ins {
		switch in.cmd {
		case "ARG":
			if name, def, ok := strings.Cut(in.args, "="); ok && len(froms) == 0 {
				args[name] = def
			}
		case "FROM":
			f := strings.Fields(in.args)
			image := f[0]
			for _, w := range f {
				if !strings.HasPrefix(w, "--") {
					image = w
					break
				}
			}
			for name, def := range args {
				image = strings.ReplaceAll(image, "${"+name+"}", def)
			}
			froms = append(froms, image)
			final = map[string][]string{}
		case "RUN":
			if strings.Contains(in.args, "go build") {
				builds = append(builds, in.args)
			}
		}
		final[in.cmd] = append(final[in.cmd], in.args)
	}
	if len(froms) < 2 {
		t.Fatalf("FROM %v: want a build stage and a final stage", froms)
	}
	// The builder's Go is the one go.mod asks for.
	goVersion := goDirective(t)
	if want := "golang:" + goVersion; !strings.HasPrefix(froms[0], want) {
		t.Errorf("build stage FROM %s, want %s (go.mod says go %s)", froms[0], want, goVersion)
	}
	if base := froms[len(froms)-1]; base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s, want a static distroless image or scratch", base)
	}
	if len(builds) == 0 {
		t.Fatal("no go build")
	}
	built := map[string]bool{}
	for _, b := range builds {
		for _, cmd := range strings.Split(b, "&&") {
			if !strings.Contains(cmd, "go build") {
				continue
			}
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`} {
				if !strings.Contains(cmd, want) {
					t.Errorf("go build without %s: %s", want, cmd)
				}
			}
			f := strings.Fields(cmd)
			pkg := f[len(f)-1]
			if fi, err := os.Stat(filepath.Join("..", pkg)); err != nil || !fi.IsDir() {
				t.Errorf("go build of %s, which is not a package directory", pkg)
			}
			built[path.Base(pkg)] = true
		}
	}
	if !built["ctwatch"] || !built["healthcheck"] {
		t.Errorf("go build makes %v, want ctwatch and healthcheck", built)
	}
	if user := last(final["USER"]); user != "65532:65532" {
		t.Errorf("USER %q, want the numeric non-root 65532:65532", user)
	}
	if got := final["EXPOSE"]; !slices.Equal(got, []string{"9464"}) {
		t.Errorf("EXPOSE %v, want 9464", got)
	}
	if got := final["VOLUME"]; !slices.Equal(got, []string{"/var/lib/ctwatch"}) {
		t.Errorf("VOLUME %v, want /var/lib/ctwatch", got)
	}
	if got := jsonArgs(t, "ENTRYPOINT", last(final["ENTRYPOINT"])); !slices.Equal(got, []string{"/ctwatch"}) {
		t.Errorf("ENTRYPOINT %v, want [/ctwatch]", got)
	}
	cmd := jsonArgs(t, "CMD", last(final["CMD"]))
	if len(cmd) != 3 || cmd[0] != "run" || cmd[1] != "--config" {
		t.Fatalf("CMD %v, want run --config FILE", cmd)
	}
	configPath := cmd[2]

	// COPY from the context: the files exist, and the configuration lands
	// where CMD reads it.
	var configSource string
	for _, in := range ins {
		if in.cmd != "COPY" || strings.Contains(in.args, "--from=") {
			continue
		}
		f := strings.Fields(in.args)
		for _, src := range f[:len(f)-1] {
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("COPY %s: not in the repository", src)
			}
		}
		if f[len(f)-1] == configPath {
			configSource = f[0]
		}
	}
	if configSource == "" {
		t.Fatalf("no COPY puts a configuration at %s", configPath)
	}

	health := strings.TrimSpace(last(final["HEALTHCHECK"]))
	_, probe, ok := strings.Cut(health, "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %q: want one with CMD", health)
	}
	probeArgs := jsonArgs(t, "HEALTHCHECK", probe)
	if probeArgs[0] != "/healthcheck" {
		t.Errorf("HEALTHCHECK runs %s, want /healthcheck", probeArgs[0])
	}
	probeURL := probeArgs[len(probeArgs)-1]

	// The configuration the image carries: it loads, listens where EXPOSE
	// and HEALTHCHECK say, and keeps its state in the volume.
	cfg := loadConfig(t, filepath.Join("..", configSource), nil)
	if cfg.DataDir != "/var/lib/ctwatch" {
		t.Errorf("%s: data_dir %s, want the volume /var/lib/ctwatch", configSource, cfg.DataDir)
	}
	host, port, err := net.SplitHostPort(cfg.Web.Listen)
	if err != nil || host != "0.0.0.0" || port != "9464" {
		t.Errorf("%s: web.listen %q, want 0.0.0.0:9464 (reachable from outside the container)", configSource, cfg.Web.Listen)
	}
	if u, err := url.Parse(probeURL); err != nil || u.Port() != port || u.Path != "/healthz" {
		t.Errorf("HEALTHCHECK asks %s, want /healthz on port %s", probeURL, port)
	}
	if len(cfg.Rules.Files) != 0 {
		t.Errorf("%s: rules.files %v: the image has no rule file, and a pattern that matches none stops ctwatch", configSource, cfg.Rules.Files)
	}
}

// composeFile is the part of deploy/compose/compose.yaml the tests read;
// decoding it strictly makes a misspelt key an error.
type composeFile struct {
	Name     string                    `yaml:"name"`
	XNATS    any                       `yaml:"x-nats"`
	XCtwatch any                       `yaml:"x-ctwatch"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Restart     string            `yaml:"restart"`
	Volumes     []string          `yaml:"volumes"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	ReadOnly    bool              `yaml:"read_only"`
	Tmpfs       []string          `yaml:"tmpfs"`
	CapDrop     []string          `yaml:"cap_drop"`
	SecurityOpt []string          `yaml:"security_opt"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		Retries     int      `yaml:"retries"`
		StartPeriod string   `yaml:"start_period"`
	} `yaml:"healthcheck"`
}

// natsServices parses the command of every NATS service with the NATS
// server's own flag parser.
func natsServices(t *testing.T, cf composeFile) map[string]*server.Options {
	t.Helper()
	out := map[string]*server.Options{}
	for name, s := range cf.Services {
		if !strings.HasPrefix(s.Image, "nats:") {
			continue
		}
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		opts, err := server.ConfigureOptions(fs, s.Command, func() {}, func() {}, func() {})
		if err != nil {
			t.Fatalf("%s: nats-server would not start with %v: %v", name, s.Command, err)
		}
		out[name] = opts
	}
	return out
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	var cf composeFile
	decodeStrict(t, "compose/compose.yaml", readFile(t, "compose/compose.yaml"), &cf)
	return cf
}

func TestComposeFile(t *testing.T) {
	cf := readCompose(t)
	natsOpts := natsServices(t, cf)
	if len(natsOpts) != 3 {
		t.Fatalf("%d NATS services, want 3", len(natsOpts))
	}
	for name, opts := range natsOpts {
		s := cf.Services[name]
		if !opts.JetStream || opts.ServerName != name || opts.Cluster.Name != "ctwatch" {
			t.Errorf("%s: jetstream %v, name %q, cluster %q: want JetStream on, the service's name, cluster ctwatch",
				name, opts.JetStream, opts.ServerName, opts.Cluster.Name)
		}
		var routed []string
		for _, r := range opts.Routes {
			if r.Port() != strconv.Itoa(opts.Cluster.Port) {
				t.Errorf("%s: route %s not to the cluster port %d", name, r, opts.Cluster.Port)
			}
			routed = append(routed, r.Hostname())
		}
		slices.Sort(routed)
		var others []string
		for other := range natsOpts {
			if other != name {
				others = append(others, other)
			}
		}
		slices.Sort(others)
		if !slices.Equal(routed, others) {
			t.Errorf("%s: routes to %v, want the other servers %v", name, routed, others)
		}
		if !slices.ContainsFunc(s.Volumes, func(v string) bool { return strings.HasSuffix(v, ":"+opts.StoreDir) }) {
			t.Errorf("%s: JetStream stores in %s, which is no volume (%v)", name, opts.StoreDir, s.Volumes)
		}
		if s.Healthcheck == nil || !strings.Contains(strings.Join(s.Healthcheck.Test, " "), fmt.Sprintf(":%d/healthz", opts.HTTPPort)) {
			t.Errorf("%s: no health check on its monitoring port %d", name, opts.HTTPPort)
		}
	}

	var ctwatch []string
	for name, s := range cf.Services {
		if s.Build != nil {
			ctwatch = append(ctwatch, name)
		}
	}
	slices.Sort(ctwatch)
	if len(ctwatch) != 2 {
		t.Fatalf("ctwatch services %v, want 2", ctwatch)
	}
	dataVolumes := map[string]string{}
	for _, name := range ctwatch {
		s := cf.Services[name]
		if _, err := os.Stat(filepath.Join("compose", s.Build.Context, s.Build.Dockerfile)); err != nil {
			t.Errorf("%s: build: %v", name, err)
		}
		for nats := range natsOpts {
			if s.DependsOn[nats].Condition != "service_healthy" {
				t.Errorf("%s: does not wait for %s to be healthy", name, nats)
			}
		}
		if s.Healthcheck == nil || !slices.Contains(s.Healthcheck.Test, "/healthcheck") ||
			!strings.HasSuffix(last(s.Healthcheck.Test), "/readyz") {
			t.Errorf("%s: health check %v, want /healthcheck on /readyz", name, s.Healthcheck)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: read_only %v, cap_drop %v: want a read-only root and no capabilities", name, s.ReadOnly, s.CapDrop)
		}
		mounts := map[string]string{} // target → source
		for _, v := range s.Volumes {
			f := strings.Split(v, ":")
			mounts[f[1]] = f[0]
			if !strings.HasPrefix(f[0], ".") {
				if _, ok := cf.Volumes[f[0]]; !ok {
					t.Errorf("%s: volume %s is not declared", name, f[0])
				}
			}
		}
		src, ok := mounts["/etc/ctwatch/ctwatch.yaml"]
		if !ok {
			t.Fatalf("%s: nothing mounted at the image's configuration path", name)
		}

		// The configuration loads with this service's environment (an
		// unknown CTWATCH_ variable would stop ctwatch) and points at the
		// cluster.
		cfg := loadConfig(t, filepath.Join("compose", src), s.Environment)
		var hosts []string
		for _, u := range strings.Split(cfg.NATS.URL, ",") {
			pu, err := url.Parse(u)
			if err != nil || pu.Scheme != "nats" || pu.Port() != "4222" {
				t.Errorf("nats.url %q: want nats://SERVICE:4222 for each server", u)
				continue
			}
			hosts = append(hosts, pu.Hostname())
		}
		slices.Sort(hosts)
		if want := slices.Sorted(maps.Keys(natsOpts)); !slices.Equal(hosts, want) {
			t.Errorf("nats.url names %v, want every NATS service %v", hosts, want)
		}
		dataVol, ok := mounts[cfg.DataDir]
		if !ok {
			t.Errorf("%s: data_dir %s is not a volume", name, cfg.DataDir)
		}
		if other, dup := dataVolumes[dataVol]; dup {
			t.Errorf("%s and %s share the data volume %s (ctwatch locks it)", name, other, dataVol)
		}
		dataVolumes[dataVol] = name
		_, port, _ := net.SplitHostPort(cfg.Web.Listen)
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") || !strings.HasSuffix(p, ":"+port) {
				t.Errorf("%s: port %s, want the host's loopback to the web port %s", name, p, port)
			}
		}
		dirs := map[string]string{}
		for target, source := range mounts {
			if strings.HasPrefix(source, ".") {
				dirs[target] = filepath.Join("compose", source)
			}
		}
		loadRulesFrom(t, cfg, dirs)
	}
}

// TestComposeNATSClusterForms starts the three NATS servers in-process with
// the options their compose commands give (on loopback and free ports, the
// routes pointing at the servers started before), and has ctwatch create
// its stream and buckets on the cluster: the flags make a JetStream
// cluster ctwatch can use.
func TestComposeNATSClusterForms(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster")
	}
	natsOpts := natsServices(t, readCompose(t))
	names := slices.Sorted(maps.Keys(natsOpts))
	// Cluster ports are chosen up front: a clustered JetStream server will
	// not start without its routes, and the routes need the ports.
	clusterPorts := map[string]int{}
	for _, name := range names {
		clusterPorts[name] = freePort(t)
	}
	var servers []*server.Server
	for _, name := range names {
		opts := natsOpts[name]
		opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
		opts.HTTPPort = 0
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", clusterPorts[name]
		opts.StoreDir = t.TempDir()
		opts.NoLog, opts.NoSigs = true, true
		var routes []*url.URL
		for _, r := range opts.Routes {
			port, ok := clusterPorts[r.Hostname()]
			if !ok {
				t.Fatalf("%s: route to %s, which is no NATS service", name, r)
			}
			routes = append(routes, &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))})
		}
		opts.Routes, opts.RoutesStr = routes, ""
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		servers = append(servers, s)
	}
	var clientURLs []string
	for i, s := range servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("%s: not ready", names[i])
		}
		clientURLs = append(clientURLs, s.ClientURL())
	}

	// Like ctwatch's nats.url in compose: every server, comma-separated.
	nc, err := nats.Connect(strings.Join(clientURLs, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A new cluster elects its JetStream leader first; until then stream
	// creation fails as unavailable and is retried.
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, time.Second)
		_, err = alerting.Open(attempt, nc, alerting.StreamConfig{})
		cancelAttempt()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("ctwatch cannot open its stream on the cluster: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Three JetStream peers, not three lone servers: only then can a
	// stream keep three replicas.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3}); err != nil {
		t.Errorf("a stream with 3 replicas: %v", err)
	}
}

// k8sObject is one Kubernetes manifest; decoding it strictly makes a
// misspelt top-level key an error. Spec is decoded per kind.
type k8sObject struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   k8sMeta           `yaml:"metadata"`
	Type       string            `yaml:"type"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`
	file       string
}

type k8sMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type deploymentSpec struct {
	Replicas *int `yaml:"replicas"`
	Strategy struct {
		Type string `yaml:"type"`
	} `yaml:"strategy"`
	Selector labelSelector `yaml:"selector"`
	Template struct {
		Metadata k8sMeta `yaml:"metadata"`
		Spec     podSpec `yaml:"spec"`
	} `yaml:"template"`
}

type podSpec struct {
	EnableServiceLinks            *bool `yaml:"enableServiceLinks"`
	AutomountServiceAccountToken  *bool `yaml:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds *int  `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot        *bool  `yaml:"runAsNonRoot"`
		RunAsUser           *int64 `yaml:"runAsUser"`
		RunAsGroup          *int64 `yaml:"runAsGroup"`
		FSGroup             *int64 `yaml:"fsGroup"`
		FSGroupChangePolicy string `yaml:"fsGroupChangePolicy"`
		SeccompProfile      struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	Containers []k8sContainer `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
		EmptyDir *struct {
			Medium    string `yaml:"medium"`
			SizeLimit string `yaml:"sizeLimit"`
		} `yaml:"emptyDir"`
	} `yaml:"volumes"`
}

type k8sContainer struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Args            []string `yaml:"args"`
	Ports           []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	EnvFrom []struct {
		SecretRef *struct {
			Name     string `yaml:"name"`
			Optional *bool  `yaml:"optional"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			ResourceFieldRef *struct {
				Resource string `yaml:"resource"`
				Divisor  string `yaml:"divisor"`
			} `yaml:"resourceFieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	StartupProbe    *k8sProbe `yaml:"startupProbe"`
	LivenessProbe   *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe  *k8sProbe `yaml:"readinessProbe"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
}

type serviceSpec struct {
	Type                     string            `yaml:"type"`
	Selector                 map[string]string `yaml:"selector"`
	PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
	Ports                    []servicePort     `yaml:"ports"`
}

type servicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort any    `yaml:"targetPort"`
	Protocol   string `yaml:"protocol"`
}

type pvcSpec struct {
	AccessModes []string `yaml:"accessModes"`
	Resources   struct {
		Requests map[string]string `yaml:"requests"`
	} `yaml:"resources"`
}

type serviceMonitorSpec struct {
	Selector  labelSelector `yaml:"selector"`
	Endpoints []struct {
		Port     string `yaml:"port"`
		Path     string `yaml:"path"`
		Interval string `yaml:"interval"`
	} `yaml:"endpoints"`
}

// readManifests decodes every document of every YAML file under
// kubernetes/, optional/ included.
func readManifests(t *testing.T) []k8sObject {
	t.Helper()
	var objs []k8sObject
	err := filepath.WalkDir("kubernetes", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(readFile(t, p)))
		for i := 1; ; i++ {
			var doc yaml.Node
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return fmt.Errorf("%s document %d: %w", p, i, err)
			}
			if len(doc.Content) == 0 || doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null" {
				continue // only comments
			}
			var obj k8sObject
			decodeNodeStrict(t, fmt.Sprintf("%s document %d", p, i), &doc, &obj)
			obj.file = fmt.Sprintf("%s document %d", p, i)
			objs = append(objs, obj)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestKubernetesManifests(t *testing.T) {
	objs := readManifests(t)
	byKind := map[string][]k8sObject{}
	namespaces := map[string]bool{}
	for _, o := range objs {
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Errorf("%s: apiVersion %q, kind %q, metadata.name %q: all are needed", o.file, o.APIVersion, o.Kind, o.Metadata.Name)
		}
		byKind[o.Kind] = append(byKind[o.Kind], o)
		if o.Kind == "Namespace" {
			namespaces[o.Metadata.Name] = true
		}
	}
	for _, o := range objs {
		if o.Kind != "Namespace" && !namespaces[o.Metadata.Namespace] {
			t.Errorf("%s: %s %s in namespace %q, which the manifests do not create", o.file, o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
		switch o.Kind {
		case "Namespace", "ConfigMap", "Deployment", "Service", "PersistentVolumeClaim", "Secret", "ServiceMonitor":
		default:
			t.Errorf("%s: no checks for kind %s: add them here", o.file, o.Kind)
		}
	}
	named := func(kind, name string) *k8sObject {
		for i, o := range byKind[kind] {
			if o.Metadata.Name == name {
				return &byKind[kind][i]
			}
		}
		return nil
	}

	deployments := byKind["Deployment"]
	if len(deployments) != 1 {
		t.Fatalf("%d Deployments, want 1", len(deployments))
	}
	dep := deployments[0]
	var spec deploymentSpec
	decodeNodeStrict(t, dep.file+" spec", &dep.Spec, &spec)
	if spec.Replicas == nil || *spec.Replicas != 1 {
		t.Errorf("replicas %v: want 1 (two would both follow every log, and the volume is ReadWriteOnce)", spec.Replicas)
	}
	if spec.Strategy.Type != "Recreate" {
		t.Errorf("strategy %q: want Recreate, so that the old pod releases the volume and lock first", spec.Strategy.Type)
	}
	pod := spec.Template.Spec
	for k, v := range spec.Selector.MatchLabels {
		if spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod's labels", k, v)
		}
	}
	// A Service named ctwatch would put CTWATCH_SERVICE_HOST and friends
	// in the environment (TestKubernetesServiceLinksWouldStopCtwatch).
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Error("enableServiceLinks must be false")
	}
	sc := pod.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Error("pod securityContext must run as a non-root user")
	}
	if sc.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("seccompProfile %q, want RuntimeDefault", sc.SeccompProfile.Type)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image == "" {
		t.Error("container has no image")
	}
	csc := c.SecurityContext
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
		csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
		!slices.Equal(csc.Capabilities.Drop, []string{"ALL"}) {
		t.Error("container securityContext: want allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities drop [ALL]")
	}
	if c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Error("container needs memory requests and limits")
	}
	if len(c.Ports) != 1 {
		t.Fatalf("container ports %v, want one", c.Ports)
	}
	port := c.Ports[0]
	probes := []struct {
		name  string
		probe *k8sProbe
		path  string
	}{
		{"startupProbe", c.StartupProbe, "/healthz"},
		{"livenessProbe", c.LivenessProbe, "/healthz"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
	}
	for _, p := range probes {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no %s with httpGet", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || !samePort(p.probe.HTTPGet.Port, port.Name, port.ContainerPort) {
			t.Errorf("%s on %s port %v, want %s on the container port (%s, %d)",
				p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port, p.path, port.Name, port.ContainerPort)
		}
	}
	if spec.Template.Metadata.Annotations["prometheus.io/port"] != strconv.Itoa(port.ContainerPort) {
		t.Errorf("prometheus.io/port %q, want %d", spec.Template.Metadata.Annotations["prometheus.io/port"], port.ContainerPort)
	}

	// Volumes: each mount has a volume, each volume its object.
	volumes := map[string]int{}
	for i, v := range pod.Volumes {
		volumes[v.Name] = i
		switch {
		case v.ConfigMap != nil:
			if named("ConfigMap", v.ConfigMap.Name) == nil {
				t.Errorf("volume %s: no ConfigMap %s", v.Name, v.ConfigMap.Name)
			}
		case v.PersistentVolumeClaim != nil:
			if named("PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName) == nil {
				t.Errorf("volume %s: no PersistentVolumeClaim %s", v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		}
	}
	var configDir string
	var configMap *k8sObject
	mounts := map[string]string{} // mount path → volume name
	for _, m := range c.VolumeMounts {
		i, ok := volumes[m.Name]
		if !ok {
			t.Errorf("mount %s: no volume %s", m.MountPath, m.Name)
			continue
		}
		mounts[m.MountPath] = m.Name
		if cm := pod.Volumes[i].ConfigMap; cm != nil {
			if m.SubPath != "" {
				t.Errorf("mount %s uses subPath: such files are never updated, so no reload", m.MountPath)
			}
			configDir, configMap = m.MountPath, named("ConfigMap", cm.Name)
		}
	}
	if configMap == nil {
		t.Fatal("no ConfigMap mounted")
	}
	for _, s := range byKind["Secret"] {
		for _, ref := range c.EnvFrom {
			if ref.SecretRef != nil && ref.SecretRef.Name == s.Metadata.Name && (ref.SecretRef.Optional == nil || !*ref.SecretRef.Optional) {
				t.Errorf("secret %s is not optional, but only an example is shipped", s.Metadata.Name)
			}
		}
		for k, v := range s.StringData {
			if !strings.Contains(v, "REPLACE") {
				t.Errorf("secret %s key %s: %q does not look like a placeholder", s.Metadata.Name, k, v)
			}
		}
	}

	// The configuration: the container reads it from the ConfigMap, it
	// loads, listens on the container port, keeps state on the volume,
	// and its rules are ConfigMap keys that load.
	if len(c.Args) < 3 || c.Args[0] != "run" || flagValues(c.Args[1:])["--config"] == "" {
		t.Fatalf("args %v, want run --config FILE", c.Args)
	}
	configPath := flagValues(c.Args[1:])["--config"]
	if path.Dir(configPath) != configDir {
		t.Fatalf("--config %s is not in the ConfigMap's mount %s", configPath, configDir)
	}
	dir := t.TempDir()
	for key, value := range configMap.Data {
		if err := os.WriteFile(filepath.Join(dir, key), []byte(value), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := loadConfig(t, filepath.Join(dir, path.Base(configPath)), nil)
	host, listenPort, err := net.SplitHostPort(cfg.Web.Listen)
	if err != nil || host != "0.0.0.0" || listenPort != strconv.Itoa(port.ContainerPort) {
		t.Errorf("web.listen %q, want 0.0.0.0:%d (the kubelet probes the pod's address)", cfg.Web.Listen, port.ContainerPort)
	}
	if vol, ok := mounts[cfg.DataDir]; !ok || pod.Volumes[volumes[vol]].PersistentVolumeClaim == nil {
		t.Errorf("data_dir %s is not on the PersistentVolumeClaim", cfg.DataDir)
	}
	loadRulesFrom(t, cfg, map[string]string{configDir: dir})

	for _, s := range byKind["Service"] {
		var svc serviceSpec
		decodeNodeStrict(t, s.file+" spec", &s.Spec, &svc)
		for k, v := range svc.Selector {
			if spec.Template.Metadata.Labels[k] != v {
				t.Errorf("service %s selector %s=%s does not match the pod", s.Metadata.Name, k, v)
			}
		}
		for _, p := range svc.Ports {
			if !samePort(p.TargetPort, port.Name, port.ContainerPort) {
				t.Errorf("service %s targetPort %v is not the container port", s.Metadata.Name, p.TargetPort)
			}
		}
		for _, sm := range byKind["ServiceMonitor"] {
			var mon serviceMonitorSpec
			decodeNodeStrict(t, sm.file+" spec", &sm.Spec, &mon)
			for k, v := range mon.Selector.MatchLabels {
				if s.Metadata.Labels[k] != v {
					t.Errorf("ServiceMonitor %s does not select service %s", sm.Metadata.Name, s.Metadata.Name)
				}
			}
			for _, e := range mon.Endpoints {
				onService := slices.ContainsFunc(svc.Ports, func(p servicePort) bool { return p.Name == e.Port })
				if !onService || e.Path != "/metrics" {
					t.Errorf("ServiceMonitor endpoint %s%s, want /metrics on a port of the service", e.Port, e.Path)
				}
			}
		}
	}
	for _, p := range byKind["PersistentVolumeClaim"] {
		var pvc pvcSpec
		decodeNodeStrict(t, p.file+" spec", &p.Spec, &pvc)
		if pvc.Resources.Requests["storage"] == "" {
			t.Errorf("PersistentVolumeClaim %s requests no storage", p.Metadata.Name)
		}
	}
}

// TestKubernetesServiceLinksWouldStopCtwatch shows why the Deployment sets
// enableServiceLinks: false: the variables Kubernetes sets for a Service
// named ctwatch look like misspelt settings, which ctwatch refuses.
func TestKubernetesServiceLinksWouldStopCtwatch(t *testing.T) {
	t.Setenv("CTWATCH_SERVICE_HOST", "10.96.0.10")
	t.Setenv("CTWATCH_PORT", "tcp://10.96.0.10:9464")
	_, err := config.Load("", nil)
	if err == nil || !strings.Contains(err.Error(), "CTWATCH_SERVICE_HOST") {
		t.Fatalf("Load with service link variables: %v, want an error naming them", err)
	}
}

// loadConfig loads a configuration file with config.Load, as ctwatch run
// does, with env set for the duration of the test.
func loadConfig(t *testing.T, file string, env map[string]string) *config.Config {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := config.Load(file, nil)
	if err != nil {
		t.Fatalf("%s does not load: %v", file, err)
	}
	return cfg
}

// loadRulesFrom loads cfg's rules as the daemon does, with each rule
// pattern's directory (as the deployment mounts it) replaced by the local
// directory that dirs maps it to.
func loadRulesFrom(t *testing.T, cfg *config.Config, dirs map[string]string) {
	t.Helper()
	local := *cfg
	local.Rules.Files = nil
	for _, pattern := range cfg.Rules.Files {
		dir, ok := dirs[path.Dir(pattern)]
		if !ok {
			t.Errorf("rules %s: nothing is mounted at %s", pattern, path.Dir(pattern))
			continue
		}
		local.Rules.Files = append(local.Rules.Files, filepath.Join(dir, path.Base(pattern)))
	}
	if _, err := daemon.LoadRules(&local); err != nil {
		t.Errorf("rules %v do not load: %v", cfg.Rules.Files, err)
	}
}

// unitFile is a parsed systemd unit: section → key → values in order
// (keys such as SystemCallFilter may repeat).
type unitFile map[string]map[string][]string

// parseUnit reads a unit file as systemd does: [Section] headers, Key=Value
// lines, # and ; comments, lines continued with a trailing backslash.
func parseUnit(t *testing.T, data []byte) unitFile {
	t.Helper()
	u := unitFile{}
	var section string
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		for strings.HasSuffix(line, `\`) && sc.Scan() {
			n++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(sc.Text())
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			key, value, ok := strings.Cut(line, "=")
			key = strings.TrimSpace(key)
			if !ok || section == "" || key == "" || strings.ContainsAny(key, " \t") {
				t.Fatalf("unit line %d: %q is not Key=Value in a section", n, line)
			}
			u[section][key] = append(u[section][key], strings.TrimSpace(value))
		}
	}
	return u
}

type dockerInstruction struct {
	cmd, args string
}

// parseDockerfile splits a Dockerfile into instructions, joining
// continued lines and dropping comments (parser directives included).
func parseDockerfile(t *testing.T, data []byte) []dockerInstruction {
	t.Helper()
	known := map[string]bool{"FROM": true, "ARG": true, "RUN": true, "COPY": true, "ADD": true, "ENV": true,
		"WORKDIR": true, "USER": true, "VOLUME": true, "EXPOSE": true, "ENTRYPOINT": true, "CMD": true,
		"HEALTHCHECK": true, "LABEL": true, "STOPSIGNAL": true, "SHELL": true, "ONBUILD": true}
	var out []dockerInstruction
	var cur string
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "#") || (line == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		cur += line
		cmd, args, _ := strings.Cut(cur, " ")
		if !known[strings.ToUpper(cmd)] {
			t.Fatalf("Dockerfile line %d: unknown instruction %q", i+1, cmd)
		}
		out = append(out, dockerInstruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur = ""
	}
	if cur != "" {
		t.Fatal("Dockerfile ends in a continued line")
	}
	return out
}

// jsonArgs decodes the exec (JSON array) form of ENTRYPOINT, CMD and
// HEALTHCHECK CMD; the shell form would need a shell the image lacks.
func jsonArgs(t *testing.T, what, s string) []string {
	t.Helper()
	var args []string
	if err := json.Unmarshal([]byte(s), &args); err != nil || len(args) == 0 {
		t.Fatalf("%s %s: want a non-empty JSON array (the image has no shell): %v", what, s, err)
	}
	return args
}

// goDirective is go.mod's language version, major.minor.
func goDirective(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(readFile(t, filepath.Join("..", "go.mod")))
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// flagValues maps --flag to its value in "--flag value" or "--flag=value"
// arguments.
func flagValues(args []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		if !strings.HasPrefix(args[i], "--") {
			continue
		}
		if k, v, ok := strings.Cut(args[i], "="); ok {
			out[k] = v
		} else if i+1 < len(args) {
			out[args[i]] = args[i+1]
			i++
		}
	}
	return out
}

// samePort reports whether a probe's or Service's port (a name or a
// number) is the container port.
func samePort(p any, name string, number int) bool {
	switch v := p.(type) {
	case string:
		return v == name
	case int:
		return v == number
	}
	return false
}

func decodeStrict(t *testing.T, where string, data []byte, v any) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
}

// decodeNodeStrict decodes a node rejecting unknown keys, which
// yaml.Node.Decode cannot do.
func decodeNodeStrict(t *testing.T, where string, n *yaml.Node, v any) {
	t.Helper()
	data, err := yaml.Marshal(n)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	decodeStrict(t, where, data, v)
}

// freePort returns a TCP port on loopback that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.WriteFile(to, readFile(t, from), 0o644); err != nil {
		t.Fatal(err)
	}
}

func last(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[len(values)-1]
}
