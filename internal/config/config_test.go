package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// testKey is a P-256 public key (DER SubjectPublicKeyInfo, base64) made for
// these tests and the example configuration.
const testKey = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEDESOZ00J9HKBJWV22qOp2AQn7ZK7I4MioNNQk8uvWmnapBhc/Xn55owvLiMPVHRdZwIqpM41nuYwMND6CnT1aQ=="

func testKeyDER(t *testing.T) []byte {
	t.Helper()
	der, err := base64.StdEncoding.DecodeString(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// cleanEnv unsets every CTWATCH_* variable for the test, so that the
// developer's environment cannot change the results.
func cleanEnv(t testing.TB) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "CTWATCH_") {
			t.Setenv(name, "")
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// writeConfig writes a configuration file and returns its path.
func writeConfig(t testing.TB, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctwatch.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// input is what one Load sees: a file (when yaml is not ""), variables
// and command-line arguments.
type input struct {
	yaml string
	env  map[string]string
	args []string
}

func (in input) load(t *testing.T) (path string, cfg *Config, err error) {
	t.Helper()
	cleanEnv(t)
	for k, v := range in.env {
		t.Setenv(k, v)
	}
	fs := pflag.NewFlagSet("ctwatch", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse(in.args); err != nil {
		t.Fatal(err)
	}
	if in.yaml != "" {
		path = writeConfig(t, in.yaml)
	}
	cfg, err = Load(path, fs)
	return path, cfg, err
}

func problems(t *testing.T, err error) []Problem {
	t.Helper()
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("got error %v (%T), want *Error", err, err)
	}
	if len(cerr.Problems) == 0 {
		t.Fatal("*Error with no problems")
	}
	return cerr.Problems
}

// defaults is the configuration documented for "no file", written out by
// hand.
func defaults() *Config {
	return &Config{
		DataDir:        "./ctwatch-data",
		LogLevel:       slog.LevelInfo,
		LogFormat:      "text",
		LogList:        "https://www.gstatic.com/ct/log_list/v3/log_list.json",
		LogListRefresh: 24 * time.Hour,
		Logs:           []Log{},
		Monitor: Monitor{
			PollInterval:     10 * time.Second,
			BatchSize:        256,
			Concurrency:      4,
			Rate:             20,
			Timeout:          30 * time.Second,
			MaxResponseBytes: 16777216,
			VerifyEvery:      8192,
			MaxBacklog:       1000000,
		},
		NATS:    NATS{StreamMaxAge: 720 * time.Hour, DedupeWindow: 24 * time.Hour, Replicas: 1},
		Cluster: Cluster{LeaseTTL: 15 * time.Second},
		Rules:   Rules{Files: []string{}, Builtin: true},
		Sinks:   []Sink{sinkWithDefaults(Sink{Name: "stdout", Type: "stdout", Events: true})},
		Web:     Web{Listen: "127.0.0.1:9464", StatusPage: true},
	}
}

// sinkWithDefaults fills in the defaults every sink type shares (grouping
// and retry timings), which tests of other fields need not repeat.
func sinkWithDefaults(s Sink) Sink {
	s.Group = Group{MaxNames: 20, MaxHits: 5000}
	s.Retry = Retry{MinBackoff: time.Second, MaxBackoff: 5 * time.Minute}
	return s
}

func TestDefaults(t *testing.T) {
	cleanEnv(t)
	for _, tc := range []struct {
		name  string
		flags *pflag.FlagSet
	}{
		{"no flags", nil},
		{"registered flags, none given", func() *pflag.FlagSet {
			fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
			RegisterFlags(fs)
			return fs
		}()},
		{"unrelated flag set", pflag.NewFlagSet("x", pflag.ContinueOnError)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load("", tc.flags)
			if err != nil {
				t.Fatal(err)
			}
			if want := defaults(); !reflect.DeepEqual(cfg, want) {
				t.Errorf("got\n%+v\nwant\n%+v", cfg, want)
			}
		})
	}
}

// TestEmptyFiles: a file that sets nothing gives the defaults.
func TestEmptyFiles(t *testing.T) {
	for _, text := range []string{"", "\n", "# only a comment\n", "---\n", "null\n", "monitor:\nnats: ~\nsinks:\n"} {
		t.Run(fmt.Sprintf("%q", text), func(t *testing.T) {
			cleanEnv(t)
			path := writeConfig(t, text)
			cfg, err := Load(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			want.File = path
			if !reflect.DeepEqual(cfg, want) {
				t.Errorf("got\n%+v\nwant\n%+v", cfg, want)
			}
		})
	}
}

func TestFileValues(t *testing.T) {
	path, cfg, err := input{yaml: `
data_dir: /var/lib/ctwatch
log_level: debug
log_format: json
log_list: ./list.json
log_list_refresh: 1h30m
logs:
  - name: local
    kind: rfc6962
    url: http://127.0.0.1:6963/testlog/
    key: ` + testKey + `
    start: 0
    concurrency: 2
    rate: 0.5
    batch_size: 32
  - name: tiles
    kind: static
    url: https://log.example/2025h1/
    key: ` + testKey + `
    start: end
  - name: tiles2
    kind: static
    url: https://log.example/2025h2
    key: ` + testKey + `
    start: 18446744073709551615
    monitoring_url: https://mon.example/2025h2/
    origin: log.example/custom
monitor:
  poll_interval: 1m
  batch_size: 1000
  concurrency: 8
  rate: 0
  timeout: 5s
  max_response_bytes: 1024
  verify_every: 1
  max_backlog: 0
nats:
  url: nats://10.0.0.1:4222, tls://10.0.0.2:4222
  stream_max_age: 0s
  dedupe_window: 2m
  replicas: 3
cluster:
  lease_ttl: 2s
rules:
  files: ["rules/*.yaml", /etc/ctwatch/extra.yaml]
sinks:
  - {name: file, type: jsonl, path: ./hits.jsonl}
  - {name: hook, type: webhook, url: "https://hooks.example/x?token=1", events: false}
  - {name: out, type: stdout, events: true}
`}.load(t)
	if err != nil {
		t.Fatal(err)
	}
	zero, huge := uint64(0), uint64(18446744073709551615)
	key := testKeyDER(t)
	want := &Config{
		File:           path,
		DataDir:        "/var/lib/ctwatch",
		LogLevel:       slog.LevelDebug,
		LogFormat:      "json",
		LogList:        "./list.json",
		LogListRefresh: 90 * time.Minute,
		Logs: []Log{
			{Name: "local", Kind: "rfc6962", URL: "http://127.0.0.1:6963/testlog", Key: key, Start: &zero, Concurrency: 2, Rate: 0.5, BatchSize: 32},
			{Name: "tiles", Kind: "static", URL: "https://log.example/2025h1", Key: key,
				MonitoringURL: "https://log.example/2025h1", Origin: "log.example/2025h1"},
			{Name: "tiles2", Kind: "static", URL: "https://log.example/2025h2", Key: key, Start: &huge,
				MonitoringURL: "https://mon.example/2025h2", Origin: "log.example/custom"},
		},
		Monitor: Monitor{PollInterval: time.Minute, BatchSize: 1000, Concurrency: 8, Rate: 0, Timeout: 5 * time.Second, MaxResponseBytes: 1024, VerifyEvery: 1, MaxBacklog: 0},
		NATS:    NATS{URL: "nats://10.0.0.1:4222, tls://10.0.0.2:4222", StreamMaxAge: 0, DedupeWindow: 2 * time.Minute, Replicas: 3},
		Cluster: Cluster{LeaseTTL: 2 * time.Second},
		Rules:   Rules{Files: []string{"rules/*.yaml", "/etc/ctwatch/extra.yaml"}, Builtin: true},
		Sinks: []Sink{
			sinkWithDefaults(Sink{Name: "file", Type: "jsonl", Path: "./hits.jsonl", Events: true}),
			sinkWithDefaults(Sink{Name: "hook", Type: "webhook", URL: "https://hooks.example/x?token=1", Events: false}),
			sinkWithDefaults(Sink{Name: "out", Type: "stdout", Events: true}),
		},
		Web: Web{Listen: "127.0.0.1:9464", StatusPage: true},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestExplicitlyEmptyLists(t *testing.T) {
	_, cfg, err := input{yaml: "sinks: []\nlogs: []\nrules: {files: []}\n"}.load(t)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sinks) != 0 || len(cfg.Logs) != 0 || len(cfg.Rules.Files) != 0 {
		t.Errorf("got sinks %v, logs %v, rules %v; want all empty", cfg.Sinks, cfg.Logs, cfg.Rules.Files)
	}
}

func TestRegisterFlags(t *testing.T) {
	fs := pflag.NewFlagSet("ctwatch", pflag.ContinueOnError)
	RegisterFlags(fs)
	for name, def := range map[string]string{
		"data-dir":              "./ctwatch-data",
		"log-list":              "https://www.gstatic.com/ct/log_list/v3/log_list.json",
		"nats-url":              "",
		"log-level":             "info",
		"log-format":            "text",
		"rules":                 "[]",
		"monitor-poll-interval": "10s",
		"monitor-batch-size":    "256",
		"monitor-rate":          "20",
		"nats-stream-max-age":   "720h0m0s",
		"web-listen":            "127.0.0.1:9464",
		"web-external-url":      "",
		"web-status-page":       "true",
	} {
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("no flag --%s", name)
			continue
		}
		if f.DefValue != def {
			t.Errorf("--%s: default %q, want %q", name, f.DefValue, def)
		}
		if f.Usage == "" {
			t.Errorf("--%s: no usage text", name)
		}
	}
}

// commentedSink matches the lines of the example's commented-out sinks:
// "#" right before YAML ("  #- name: x", "  #  type: slack"), as opposed to
// prose comments ("  # Slack: …").
var commentedSink = regexp.MustCompile(`(?m)^(  )#(- |  )`)

// commentedNATS matches the example's commented-out nats settings: "#"
// right before a key ("  #user: x") or a key of the tls section
// ("  #  ca_file: x").
var commentedNATS = regexp.MustCompile(`(?m)^  #((?:  )?[a-z_]+:)`)

// uncommentNATS turns the commented-out nats settings into keys.
func uncommentNATS(sec string) string { return commentedNATS.ReplaceAllString(sec, "  $1") }

// inSection applies fn to the example's top-level section name only, from
// its key to the next top-level key.
func inSection(text, name string, fn func(string) string) string {
	start := strings.Index(text, "\n"+name+":")
	if start < 0 {
		return text
	}
	end := len(text)
	if m := regexp.MustCompile(`\n[a-z_]+:`).FindStringIndex(text[start+1:]); m != nil {
		end = start + 1 + m[0]
	}
	return text[:start] + fn(text[start:end]) + text[end:]
}

// TestExample: the shipped example is valid and shows every key, counting
// the commented-out sinks, which are valid too once uncommented but for
// the files and the program that only exist on a real host.
func TestExample(t *testing.T) {
	cleanEnv(t)
	path := filepath.Join("..", "..", "configs", "ctwatch.example.yaml")
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Logs) != 1 || len(cfg.Sinks) != 3 {
		t.Errorf("example has %d logs and %d sinks, want 1 and 3", len(cfg.Logs), len(cfg.Sinks))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	uncommented := inSection(string(data), "sinks", func(sec string) string { return commentedSink.ReplaceAllString(sec, "$1$2") })
	if uncommented == string(data) {
		t.Fatal("the example has no commented-out sinks")
	}

	t.Setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T000/B000/XXXX")
	t.Setenv("CTWATCH_WEBHOOK_SECRET", "webhook secret")
	t.Setenv("SMTP_PASSWORD", "smtp password")
	_, err = Load(writeConfig(t, uncommented), nil)
	hostOnly := regexp.MustCompile(`^sinks\[\d+\]\.(tls\.ca_file|tls\.cert_file|tls\.key_file|url_file|secret_file|password_file|command): cannot (read|run)`)
	reported := map[string]bool{}
	for _, p := range problems(t, err) {
		m := hostOnly.FindStringSubmatch(p.Message)
		if m == nil {
			t.Errorf("uncommented example: %v", p)
			continue
		}
		reported[m[1]] = true
	}
	for _, k := range []string{"tls.ca_file", "tls.cert_file", "tls.key_file", "url_file", "secret_file", "password_file", "command"} {
		if !reported[k] {
			t.Errorf("uncommented example: no problem with %s (does the file exist here?)", k)
		}
	}

	// The external NATS's settings are shown commented out too, but they
	// exclude one another and need a server: only their keys are checked
	// here (TestNATSExample loads them).
	shown := inSection(uncommented, "nats", uncommentNATS)
	if shown == uncommented {
		t.Fatal("the example has no commented-out nats settings")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(shown), &doc); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	var collect func(n *yaml.Node, prefix string)
	collect = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				collect(c, prefix)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := prefix + n.Content[i].Value
				present[k] = true
				collect(n.Content[i+1], k+".")
			}
		}
	}
	collect(&doc, "")
	var walk func(s *spec, prefix string)
	walk = func(s *spec, prefix string) {
		for name, sub := range s.fields {
			k := prefix + name
			if !present[k] {
				t.Errorf("the example does not show key %s", k)
			}
			walk(sub, k+".")
		}
	}
	walk(fileSpec(), "")
}

func TestPrecedence(t *testing.T) {
	file := `
data_dir: from-file
log_list: ./file-list.json
monitor: {batch_size: 10, poll_interval: 1m}
rules: {files: [file.yaml]}
sinks: [{name: file, type: stdout}]
`
	tests := []struct {
		name  string
		in    input
		check func(c *Config) error
	}{
		{"file over default", input{yaml: file}, func(c *Config) error {
			return expect(c.DataDir == "from-file" && c.Monitor.BatchSize == 10 && c.Monitor.Concurrency == 4, c)
		}},
		{"env over file", input{yaml: file, env: map[string]string{"CTWATCH_DATA_DIR": "from-env", "CTWATCH_MONITOR_BATCH_SIZE": "20"}}, func(c *Config) error {
			return expect(c.DataDir == "from-env" && c.Monitor.BatchSize == 20 && c.Monitor.PollInterval == time.Minute, c)
		}},
		{"flag over env", input{yaml: file, env: map[string]string{"CTWATCH_DATA_DIR": "from-env", "CTWATCH_MONITOR_BATCH_SIZE": "20"},
			args: []string{"--data-dir", "from-flag", "--monitor-batch-size=30"}}, func(c *Config) error {
			return expect(c.DataDir == "from-flag" && c.Monitor.BatchSize == 30, c)
		}},
		{"flag without file or env", input{args: []string{"--nats-url", "nats://h:4222", "--log-level", "warn", "--monitor-poll-interval", "2s"}}, func(c *Config) error {
			return expect(c.NATS.URL == "nats://h:4222" && c.LogLevel == slog.LevelWarn && c.Monitor.PollInterval == 2*time.Second, c)
		}},
		{"env without file", input{env: map[string]string{"CTWATCH_NATS_URL": "nats://e:4222", "CTWATCH_LOG_FORMAT": "json", "CTWATCH_MONITOR_RATE": "2.5"}}, func(c *Config) error {
			return expect(c.NATS.URL == "nats://e:4222" && c.LogFormat == "json" && c.Monitor.Rate == 2.5, c)
		}},
		{"empty env is a value", input{yaml: file, env: map[string]string{"CTWATCH_LOG_LIST": ""}}, func(c *Config) error {
			return expect(c.LogList == "", c)
		}},
		{"rules from env, comma-separated", input{yaml: file, env: map[string]string{"CTWATCH_RULES_FILES": "a.yaml, b/*.yaml,"}}, func(c *Config) error {
			return expect(reflect.DeepEqual(c.Rules.Files, []string{"a.yaml", "b/*.yaml"}), c)
		}},
		{"rules flag over env", input{yaml: file, env: map[string]string{"CTWATCH_RULES_FILES": "a.yaml"}, args: []string{"--rules", "x.yaml", "--rules", "y.yaml,z.yaml"}}, func(c *Config) error {
			return expect(reflect.DeepEqual(c.Rules.Files, []string{"x.yaml", "y.yaml", "z.yaml"}), c)
		}},
		{"sinks from env replace the file's", input{yaml: file, env: map[string]string{"CTWATCH_SINKS": `[{"name": "e", "type": "jsonl", "path": "/tmp/h.jsonl"}]`}}, func(c *Config) error {
			return expect(reflect.DeepEqual(c.Sinks, []Sink{sinkWithDefaults(Sink{Name: "e", Type: "jsonl", Path: "/tmp/h.jsonl", Events: true})}), c)
		}},
		{"logs from env", input{env: map[string]string{"CTWATCH_LOGS": "- {name: l, url: 'https://l.example/', key: " + testKey + ", start: 5}"}}, func(c *Config) error {
			return expect(len(c.Logs) == 1 && c.Logs[0].URL == "https://l.example" && *c.Logs[0].Start == 5, c)
		}},
		{"config path variable is accepted", input{env: map[string]string{"CTWATCH_CONFIG": "/somewhere.yaml"}}, func(c *Config) error {
			return expect(c.DataDir == "./ctwatch-data", c)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, cfg, err := tc.in.load(t)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.check(cfg); err != nil {
				t.Error(err)
			}
		})
	}
}

func expect(ok bool, c *Config) error {
	if ok {
		return nil
	}
	return fmt.Errorf("unexpected configuration: %+v", c)
}

// TestProblems: each case has exactly one problem, at the given place.
// where is "FILE:LINE" (FILE stands for the file's path), "environment"
// or "flag"; the message must contain msg.
func TestProblems(t *testing.T) {
	log := func(fields string) string {
		return "logs:\n  - name: l\n    url: https://l.example/\n    key: " + testKey + "\n" + fields
	}
	tests := []struct {
		name  string
		in    input
		where string
		msg   string
	}{
		// unknown keys, at every depth
		{"unknown top-level key", input{yaml: "data_dir: x\nmonitr:\n  rate: 3\n"}, "FILE:2", `unknown key "monitr" (did you mean "monitor"?)`},
		{"unknown key in a section", input{yaml: "monitor:\n  pol_interval: 1s\n"}, "FILE:2", `unknown key "pol_interval" in monitor`},
		{"unknown key in a sink", input{yaml: "sinks:\n  - name: a\n    type: jsonl\n    path: x\n  - {name: b, type: jsonl, pth: x, path: y}\n"}, "FILE:5", `unknown key "pth" in sinks[1]`},
		{"unknown key in a log", input{yaml: log("    stat: 0\n")}, "FILE:5", `unknown key "stat" in logs[0]`},
		{"unknown key in env sinks", input{env: map[string]string{"CTWATCH_SINKS": `[{"name": "a", "type": "stdout", "evnts": true}]`}}, "environment", `CTWATCH_SINKS: unknown key "evnts" in sinks[0]`},
		{"keys are case-sensitive", input{yaml: "Data_Dir: x\n"}, "FILE:1", `unknown key "Data_Dir"`},
		{"duplicate key", input{yaml: "log_level: info\nlog_level: debug\n"}, "FILE:2", `duplicate key "log_level" (first at line 1)`},
		{"unknown variable", input{env: map[string]string{"CTWATCH_NATS_ULR": "x"}}, "environment", "CTWATCH_NATS_ULR: unknown variable (did you mean CTWATCH_NATS_URL?)"},

		// file syntax and shape
		{"not YAML", input{yaml: "data_dir: x\nrules: [a\n"}, "FILE:2", "invalid YAML: did not find expected ',' or ']'"},
		{"bad indentation", input{yaml: "data_dir: x\nmonitor:\n  rate: 1\n timeout: 2s\n"}, "FILE:4", "invalid YAML: did not find expected key"},
		{"tab indentation", input{yaml: "monitor:\n\trate: 1\n"}, "FILE:2", "invalid YAML"},
		{"top level not a mapping", input{yaml: "- a\n- b\n"}, "FILE:1", "top level: must be a mapping"},
		{"section not a mapping", input{yaml: "monitor: 5\n"}, "FILE:1", "monitor: must be a mapping"},
		{"logs not a list", input{yaml: "logs: {name: x}\n"}, "FILE:1", "logs: must be a list"},
		{"log not a mapping", input{yaml: "logs:\n  - just-a-name\n"}, "FILE:2", "logs[0]: must be a mapping"},
		{"empty list item", input{yaml: "sinks:\n  -\n"}, "FILE:2", "sinks[0]: is empty"},
		{"rules.files a mapping", input{yaml: "rules:\n  files: {a: b}\n"}, "FILE:2", "rules.files: must be a list"},
		{"rules.files with a number", input{yaml: "rules:\n  files: [a, 5]\n"}, "FILE:2", "rules.files[1]: must be a string"},
		{"rules.files bad pattern", input{yaml: "rules:\n  files:\n    - ok/*.yaml\n    - '[z-'\n"}, "FILE:4", `rules.files[1]: bad pattern "[z-"`},
		{"env logs not YAML", input{env: map[string]string{"CTWATCH_LOGS": "[{"}}, "environment", "CTWATCH_LOGS: invalid YAML"},
		{"env logs not a list", input{env: map[string]string{"CTWATCH_LOGS": "name: x"}}, "environment", "CTWATCH_LOGS: logs: must be a list"},

		// scalar values
		{"data_dir not a string", input{yaml: "data_dir: [a]\n"}, "FILE:1", "data_dir: must be a string, not a list"},
		{"data_dir empty", input{yaml: "data_dir: ''\n"}, "FILE:1", "data_dir: must not be empty"},
		{"log_level", input{yaml: "log_level: verbose\n"}, "FILE:1", `log_level: must be debug, info, warn or error, not "verbose"`},
		{"log_level from flag", input{args: []string{"--log-level=loud"}}, "flag", `--log-level: must be debug, info, warn or error, not "loud"`},
		{"log_format", input{env: map[string]string{"CTWATCH_LOG_FORMAT": "xml"}}, "environment", `CTWATCH_LOG_FORMAT: must be text or json, not "xml"`},
		{"log_list scheme", input{yaml: "log_list: ftp://x/list.json\n"}, "FILE:1", "log_list: must be a file path or an http(s) URL"},
		{"duration without unit", input{yaml: "monitor:\n  poll_interval: 10\n"}, "FILE:2", "monitor.poll_interval: invalid duration 10: a unit is needed"},
		{"bad duration", input{yaml: "log_list_refresh: soon\n"}, "FILE:1", `log_list_refresh: invalid duration "soon"`},
		{"negative duration", input{yaml: "nats:\n  stream_max_age: -1h\n"}, "FILE:2", "nats.stream_max_age: must not be negative"},
		{"zero duration", input{yaml: "monitor:\n  timeout: 0s\n"}, "FILE:2", "monitor.timeout: must be longer than 0"},
		{"negative duration from flag", input{args: []string{"--monitor-timeout=-5s"}}, "flag", "--monitor-timeout: must not be negative"},
		{"bad duration from env", input{env: map[string]string{"CTWATCH_NATS_DEDUPE_WINDOW": "1 day"}}, "environment", `CTWATCH_NATS_DEDUPE_WINDOW: invalid duration "1 day"`},
		{"dedupe window above max age", input{yaml: "nats:\n  stream_max_age: 1h\n  dedupe_window: 2h\n"}, "FILE:3", "nats.dedupe_window: 2h0m0s is longer than nats.stream_max_age"},
		{"lease ttl too short", input{yaml: "cluster:\n  lease_ttl: 100ms\n"}, "FILE:2", "cluster.lease_ttl: 100ms is shorter than 300ms"},
		{"zero lease ttl from env", input{env: map[string]string{"CTWATCH_CLUSTER_LEASE_TTL": "0s"}}, "environment", "CTWATCH_CLUSTER_LEASE_TTL: must be longer than 0"},
		{"negative batch size", input{yaml: "monitor:\n  batch_size: -1\n"}, "FILE:2", "monitor.batch_size: must be at least 1, got -1"},
		{"zero concurrency", input{yaml: "monitor:\n  concurrency: 0\n"}, "FILE:2", "monitor.concurrency: must be at least 1, got 0"},
		{"fractional count", input{yaml: "monitor:\n  verify_every: 1.5\n"}, "FILE:2", "monitor.verify_every: must be a whole number, not 1.5"},
		{"count too large", input{yaml: "monitor:\n  max_response_bytes: 18446744073709551615\n"}, "FILE:2", "too large"},
		{"count from env", input{env: map[string]string{"CTWATCH_MONITOR_BATCH_SIZE": "many"}}, "environment", `CTWATCH_MONITOR_BATCH_SIZE: must be a whole number, not "many"`},
		{"negative count from flag", input{args: []string{"--monitor-concurrency=-2"}}, "flag", "--monitor-concurrency: must be at least 1, got -2"},
		{"negative rate", input{yaml: "monitor:\n  rate: -0.5\n"}, "FILE:2", "monitor.rate: must not be negative"},
		{"rate not a number", input{yaml: "monitor:\n  rate: fast\n"}, "FILE:2", `monitor.rate: must be a number, not "fast"`},
		{"rate infinite", input{yaml: "monitor:\n  rate: .inf\n"}, "FILE:2", "monitor.rate: must be a finite number"},
		{"nats url scheme", input{yaml: "nats:\n  url: http://x:4222\n"}, "FILE:2", "nats.url: URL \"http://x:4222\": scheme must be nats, tls, ws or wss"},
		{"nats url empty element", input{env: map[string]string{"CTWATCH_NATS_URL": "nats://a:1,,nats://b:2"}}, "environment", "CTWATCH_NATS_URL: empty URL in the list"},

		// logs
		{"log name missing", input{yaml: "logs:\n  - url: https://x.example\n    key: " + testKey + "\n"}, "FILE:2", "logs[0]: name is required"},
		{"log url missing", input{yaml: "logs:\n  - name: a\n    key: " + testKey + "\n"}, "FILE:2", "logs[0]: url is required"},
		{"log key missing", input{yaml: "logs:\n  - name: a\n    url: https://x.example\n"}, "FILE:2", "logs[0]: key is required"},
		{"log key not base64", input{yaml: log("")[:len(log(""))-len(testKey)-1] + "'%%%'\n"}, "FILE:4", "logs[0].key: not base64"},
		{"log key not SPKI", input{yaml: "logs:\n  - name: a\n    url: https://x.example\n    key: aGVsbG8gd29ybGQ=\n"}, "FILE:4", "logs[0].key: not a DER SubjectPublicKeyInfo"},
		{"log key with trailing data", input{yaml: "logs:\n  - name: a\n    url: https://x.example\n    key: " +
			base64.StdEncoding.EncodeToString(append(testKeyDER(t), 0)) + "\n"}, "FILE:4", "logs[0].key: not a usable DER SubjectPublicKeyInfo: trailing data"},
		{"log url scheme", input{yaml: "logs:\n  - name: a\n    url: file:///x\n    key: " + testKey + "\n"}, "FILE:3", `logs[0].url: URL "file:///x" must start with http:// or https://`},
		{"log url query", input{yaml: "logs:\n  - name: a\n    url: https://x.example/?a=b\n    key: " + testKey + "\n"}, "FILE:3", "must not have a query"},
		{"log kind", input{yaml: log("    kind: tiled\n")}, "FILE:5", `logs[0].kind: must be rfc6962 or static, not "tiled"`},
		{"start negative", input{yaml: log("    start: -1\n")}, "FILE:5", `logs[0].start: must be "end" or a non-negative whole number, not -1`},
		{"start word", input{yaml: log("    start: beginning\n")}, "FILE:5", `not "beginning"`},
		{"start fraction", input{yaml: log("    start: 1.5\n")}, "FILE:5", "not 1.5"},
		{"origin on rfc6962", input{yaml: log("    origin: x\n")}, "FILE:5", "logs[0].origin: is only for kind static"},
		{"monitoring_url on rfc6962", input{yaml: log("    monitoring_url: https://m.example\n")}, "FILE:5", "logs[0].monitoring_url: is only for kind static"},
		{"static monitoring_url scheme", input{yaml: log("    kind: static\n    monitoring_url: m.example\n")}, "FILE:6", "logs[0].monitoring_url: URL \"m.example\" must start with http"},
		{"negative per-log override", input{yaml: log("    batch_size: -5\n")}, "FILE:5", "logs[0].batch_size: must not be negative, got -5"},
		{"negative per-log rate", input{yaml: log("    rate: -1\n")}, "FILE:5", "logs[0].rate: must not be negative"},
		{"duplicate log name", input{yaml: log("  - name: l\n    url: https://m.example\n    key: " + testKey + "\n")}, "FILE:5", `logs[1].name: log name "l" is already used by logs[0]`},

		// sinks
		{"sink name missing", input{yaml: "sinks:\n  - type: stdout\n"}, "FILE:2", "sinks[0]: name is required"},
		{"sink type missing", input{yaml: "sinks:\n  - name: a\n"}, "FILE:2", "sinks[0]: type is required"},
		{"sink type unknown", input{yaml: "sinks:\n  - name: a\n    type: pager\n"}, "FILE:3", `sinks[0].type: must be stdout, jsonl, webhook, slack, email, alertmanager or exec, not "pager"`},
		{"jsonl without path", input{yaml: "sinks:\n  - {name: a, type: jsonl}\n"}, "FILE:2", "sinks[0]: path is required for a jsonl sink"},
		{"webhook without url", input{yaml: "sinks:\n  - {name: a, type: webhook}\n"}, "FILE:2", "sinks[0]: url is required for a webhook sink"},
		{"webhook bad url", input{yaml: "sinks:\n  - {name: a, type: webhook, url: 'hooks.example/x'}\n"}, "FILE:2", "sinks[0].url: URL \"hooks.example/x\" must start with http"},
		{"path on stdout", input{yaml: "sinks:\n  - {name: a, type: stdout, path: x}\n"}, "FILE:2", "sinks[0].path: is only for jsonl sinks"},
		{"url on jsonl", input{yaml: "sinks:\n  - {name: a, type: jsonl, path: x, url: 'https://x'}\n"}, "FILE:2", "sinks[0].url: is only for webhook, slack and alertmanager sinks"},
		{"events not a bool", input{yaml: "sinks:\n  - name: a\n    type: stdout\n    events: sometimes\n"}, "FILE:4", `sinks[0].events: must be true or false, not "sometimes"`},
		{"sink name with a dot", input{yaml: "sinks:\n  - {name: a.b, type: stdout}\n"}, "FILE:2", `sinks[0].name: "a.b": use only letters, digits, - and _`},
		{"duplicate sink name", input{yaml: "sinks:\n  - {name: a, type: stdout}\n  - {name: a, type: stdout}\n"}, "FILE:3", `sinks[1].name: sink name "a" is already used by sinks[0]`},
		{"env sink missing url", input{env: map[string]string{"CTWATCH_SINKS": `[{"name": "h", "type": "webhook"}]`}}, "environment", "CTWATCH_SINKS: sinks[0]: url is required for a webhook sink"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, cfg, err := tc.in.load(t)
			if err == nil {
				t.Fatalf("no error; got %+v", cfg)
			}
			if cfg != nil {
				t.Error("a Config was returned with the error")
			}
			ps := problems(t, err)
			want := strings.Replace(tc.where, "FILE", path, 1) + ": " + tc.msg
			if len(ps) != 1 || !strings.HasPrefix(ps[0].String(), strings.Replace(tc.where, "FILE", path, 1)+": ") ||
				!strings.Contains(ps[0].String(), tc.msg) {
				t.Errorf("got\n%v\nwant one problem like\n%s", err, want)
			}
		})
	}
}

func TestSeveralProblems(t *testing.T) {
	path, _, err := input{
		yaml: `monitr: {}
log_level: loud
monitor:
  batch_size: 0
sinks:
  - {name: a, type: jsonl, pth: x}
`,
		env:  map[string]string{"CTWATCH_MONITOR_RATE": "-1"},
		args: []string{"--nats-dedupe-window=0s"},
	}.load(t)
	ps := problems(t, err)
	want := []string{
		path + `:1: unknown key "monitr"`,
		path + `:2: log_level: must be debug, info, warn or error, not "loud"`,
		path + `:4: monitor.batch_size: must be at least 1, got 0`,
		path + `:6: unknown key "pth" in sinks[0]`,
		path + `:6: sinks[0]: path is required for a jsonl sink`,
		`environment: CTWATCH_MONITOR_RATE: must not be negative, got -1`,
		`flag: --nats-dedupe-window: must be longer than 0`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(ps) != len(want) || len(lines) != len(want) {
		t.Fatalf("got %d problems:\n%v\nwant %d", len(ps), err, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: got %q, want it to start with %q", i+1, lines[i], w)
		}
	}
}

func TestMissingFile(t *testing.T) {
	cleanEnv(t)
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	var cerr *Error
	if !errors.Is(err, fs.ErrNotExist) || errors.As(err, &cerr) {
		t.Errorf("got %v, want an error wrapping fs.ErrNotExist", err)
	}
}

func TestAnchorsAndMerges(t *testing.T) {
	_, cfg, err := input{yaml: `
sinks:
  - &base {name: a, type: jsonl, path: ./a.jsonl, events: false}
  - <<: *base
    name: b
  - <<: [*base]
    name: c
    path: ./c.jsonl
`}.load(t)
	if err != nil {
		t.Fatal(err)
	}
	want := []Sink{
		sinkWithDefaults(Sink{Name: "a", Type: "jsonl", Path: "./a.jsonl"}),
		sinkWithDefaults(Sink{Name: "b", Type: "jsonl", Path: "./a.jsonl"}),
		sinkWithDefaults(Sink{Name: "c", Type: "jsonl", Path: "./c.jsonl"}),
	}
	if !reflect.DeepEqual(cfg.Sinks, want) {
		t.Errorf("got %+v, want %+v", cfg.Sinks, want)
	}

	t.Run("unknown key in a merged mapping", func(t *testing.T) {
		path, _, err := input{yaml: "sinks:\n  - &b {name: a, type: stdout, colour: red}\n  - {<<: *b, name: b}\n"}.load(t)
		ps := problems(t, err)
		// Reported where it is written and where it is merged in.
		for _, p := range ps {
			if p.Source != path || p.Line != 2 || !strings.Contains(p.Message, `unknown key "colour"`) {
				t.Errorf("unexpected problem %v", p)
			}
		}
	})
}

// TestAliasBombs: documents whose aliases expand exponentially, or refer to
// themselves, are refused quickly rather than expanded.
func TestAliasBombs(t *testing.T) {
	var lists strings.Builder
	lists.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		fmt.Fprintf(&lists, "a%d: &a%d [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				lists.WriteString(", ")
			}
			fmt.Fprintf(&lists, "*a%d", i-1)
		}
		lists.WriteString("]\n")
	}
	lists.WriteString("logs: *a11\n")

	var merges strings.Builder
	merges.WriteString("sinks:\n  - &m0 {name: a, type: stdout}\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&merges, "  - &m%d {<<: [*m%d, *m%d, *m%d], name: n%d}\n", i, i-1, i-1, i-1, i)
	}

	for name, text := range map[string]string{
		"nested lists":  lists.String(),
		"nested merges": merges.String(),
		"self merge":    "sinks: [&a {name: x, type: stdout, <<: *a}]\n",
	} {
		t.Run(name, func(t *testing.T) {
			path, _, err := input{yaml: text}.load(t)
			ps := problems(t, err)
			for _, p := range ps {
				if p.Source != path {
					t.Errorf("problem not about the file: %v", p)
				}
			}
		})
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{Source: "c.yaml", Line: 3, Message: "m"}, "c.yaml:3: m"},
		{Problem{Source: "c.yaml", Message: "m"}, "c.yaml: m"},
		{Problem{Source: SourceEnvironment, Message: "CTWATCH_X: m"}, "environment: CTWATCH_X: m"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func FuzzLoad(f *testing.F) {
	cleanEnv(f)
	if example, err := os.ReadFile(filepath.Join("..", "..", "configs", "ctwatch.example.yaml")); err == nil {
		f.Add(string(example))
	}
	for _, seed := range []string{
		"",
		"monitr: 1\n",
		"logs:\n  - {name: a, url: 'https://a', key: " + testKey + ", start: 7}\n",
		"sinks:\n  - &s {name: a, type: stdout}\n  - {<<: *s, name: b}\n",
		"a: &a [*a]\n",
		"monitor: {batch_size: 1.5e300, rate: .nan, timeout: -1s}\n",
		"rules: {files: ['[']}\nnats: {url: 'nats://a:1,tls://b'}\n",
		"? [a]\n: b\n",
		"logs: [[], {}, ~, 1]\n",
	} {
		f.Add(seed)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, text string) {
		path := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, nil)
		if err != nil {
			if cfg != nil {
				t.Fatal("a Config was returned with an error")
			}
			var cerr *Error
			if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
				t.Fatalf("got %v (%T), want *Error with problems", err, err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, path+":") {
					t.Fatalf("problem %q does not start with the file name", line)
				}
			}
			return
		}
		// A valid configuration satisfies the documented invariants.
		m := cfg.Monitor
		if m.PollInterval <= 0 || m.BatchSize < 1 || m.Concurrency < 1 || m.Rate < 0 || m.Timeout <= 0 ||
			m.MaxResponseBytes < 1 || m.VerifyEvery < 1 || cfg.LogListRefresh <= 0 || cfg.NATS.DedupeWindow <= 0 {
			t.Fatalf("invalid values accepted: %+v", cfg)
		}
		names := map[string]bool{}
		for _, s := range cfg.Sinks {
			if names[s.Name] || !validSinkName(s.Name) {
				t.Fatalf("sink name %q accepted", s.Name)
			}
			names[s.Name] = true
			if !slices.Contains(sinkTypes(), s.Type) || s.Rate < 0 || (s.Rate > 0) != (s.Burst > 0) ||
				s.Retry.MinBackoff <= 0 || s.Retry.MaxBackoff < s.Retry.MinBackoff || s.Group.Window < 0 ||
				s.Group.MaxNames < 1 || s.Group.MaxHits < 1 || s.Timeout < 0 || (s.Username != "") != (s.Password != "") {
				t.Fatalf("sink accepted: %+v", s)
			}
			if (s.Type == SinkWebhook || s.Type == SinkSlack || s.Type == SinkAlertmanager) && checkHTTPURL(s.URL, true) != nil {
				t.Fatalf("sink URL accepted: %+v", s)
			}
			if len(s.Route.Events) > 0 && !s.Events {
				t.Fatalf("route events on a sink without events: %+v", s)
			}
		}
		if w := cfg.Web; (w.Listen != "" && hostPortProblem(w.Listen, 0) != "") || (w.ExternalURL != "" && checkHTTPURL(w.ExternalURL, false) != nil) {
			t.Fatalf("web accepted: %+v", w)
		}
		for _, l := range cfg.Logs {
			if l.Name == "" || len(l.Key) == 0 || strings.HasSuffix(l.URL, "/") {
				t.Fatalf("log accepted: %+v", l)
			}
		}
	})
}

// TestBoolSettings checks each on/off setting the same way: its default,
// file then environment then flag each overriding the one before, and a
// value other than true or false refused at its line.
func TestBoolSettings(t *testing.T) {
	type boolCase struct {
		name    string
		in      input
		want    bool
		wantErr string
	}
	for _, setting := range []struct {
		key   string
		get   func(*Config) bool
		cases []boolCase
	}{
		{"rules.builtin", func(c *Config) bool { return c.Rules.Builtin }, []boolCase{
			{"default", input{}, true, ""},
			{"file false", input{yaml: "rules:\n  builtin: false\n"}, false, ""},
			{"env false over file true", input{yaml: "rules:\n  builtin: true\n", env: map[string]string{"CTWATCH_RULES_BUILTIN": "false"}}, false, ""},
			{"flag true over env false", input{env: map[string]string{"CTWATCH_RULES_BUILTIN": "false"}, args: []string{"--rules-builtin=true"}}, true, ""},
			{"bad value", input{yaml: "rules:\n  builtin: maybe\n"}, false, ":2: rules.builtin: must be true or false"},
		}},
		{"web.status_page", func(c *Config) bool { return c.Web.StatusPage }, []boolCase{
			{"default on", input{}, true, ""},
			{"file false", input{yaml: "web:\n  status_page: false\n"}, false, ""},
			{"env false over file true", input{yaml: "web:\n  status_page: true\n", env: map[string]string{"CTWATCH_WEB_STATUS_PAGE": "false"}}, false, ""},
			{"flag true over env false", input{env: map[string]string{"CTWATCH_WEB_STATUS_PAGE": "false"}, args: []string{"--web-status-page=true"}}, true, ""},
			{"bad value", input{yaml: "web:\n  status_page: sometimes\n"}, false, ":2: web.status_page: must be true or false"},
		}},
		{"web.pprof", func(c *Config) bool { return c.Web.Pprof }, []boolCase{
			{"default off", input{}, false, ""},
			{"file true", input{yaml: "web:\n  pprof: true\n"}, true, ""},
			{"env false over file true", input{yaml: "web:\n  pprof: true\n", env: map[string]string{"CTWATCH_WEB_PPROF": "false"}}, false, ""},
			{"flag true over env false", input{env: map[string]string{"CTWATCH_WEB_PPROF": "false"}, args: []string{"--web-pprof=true"}}, true, ""},
			{"bad value", input{yaml: "web:\n  pprof: yes please\n"}, false, ":2: web.pprof: must be true or false"},
		}},
	} {
		for _, tc := range setting.cases {
			t.Run(setting.key+"/"+tc.name, func(t *testing.T) {
				_, cfg, err := tc.in.load(t)
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("err = %v, want %q", err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := setting.get(cfg); got != tc.want {
					t.Fatalf("%s = %v, want %v", setting.key, got, tc.want)
				}
			})
		}
	}
}
