package config

import (
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// valueKind is how a scalar setting is written and decoded.
type valueKind int

const (
	kindString valueKind = iota
	kindDuration
	kindInt
	kindInt64
	kindUint64
	kindFloat
	kindStringList
	kindBool
)

// setting is one key that can come from the file, the environment and a
// flag. def is written as it would be in the file and decoded by the same
// code as a user's value, so a default cannot bypass validation.
type setting struct {
	key   string // viper key, sections joined by "."
	kind  valueKind
	def   any
	flag  string
	usage string
}

// settings lists every scalar key (and rules.files) with its default and flag.
// It is a function, not a variable, so that nothing at package level can be
// changed at run time.
func settings() []setting {
	return append([]setting{
		{"data_dir", kindString, "./ctwatch-data", "data-dir", "directory for ctwatch's state (embedded NATS store, caches)"},
		{"log_level", kindString, "info", "log-level", "log level: debug, info, warn or error"},
		{"log_format", kindString, "text", "log-format", "log format: text or json"},
		{"log_list", kindString, DefaultLogList, "log-list", `CT log list: a file path or an http(s) URL; "" for none`},
		{"log_list_refresh", kindDuration, "24h", "log-list-refresh", "how often a log list URL is fetched again"},
		{"monitor.poll_interval", kindDuration, "10s", "monitor-poll-interval", "how often each log is asked for a new tree head"},
		{"monitor.batch_size", kindInt, 256, "monitor-batch-size", "entries asked for per get-entries request"},
		{"monitor.concurrency", kindInt, 4, "monitor-concurrency", "parallel entry downloads per log"},
		{"monitor.rate", kindFloat, 20, "monitor-rate", "requests per second per log (0 = unlimited)"},
		{"monitor.timeout", kindDuration, "30s", "monitor-timeout", "timeout of one request to a log"},
		{"monitor.max_response_bytes", kindInt64, 16 << 20, "monitor-max-response-bytes", "largest response accepted from a log, in bytes"},
		{"monitor.verify_every", kindUint64, 8192, "monitor-verify-every", "entries between commits verified against a signed tree head"},
		{"monitor.max_backlog", kindUint64, 1000000, "monitor-max-backlog", "entries a log may be ahead of ctwatch before a falling_behind event (0 = never)"},
		{"nats.url", kindString, "", "nats-url", `NATS server URL(s), comma-separated; "" runs an embedded server under the data directory`},
		{"nats.stream_max_age", kindDuration, "720h", "nats-stream-max-age", "how long hits are kept in the stream (0 = forever)"},
		{"nats.dedupe_window", kindDuration, "24h", "nats-dedupe-window", "window in which a repeated hit is dropped"},
		// nats.replicas, the credentials and TLS: natsSecuritySettings.
		{"cluster.lease_ttl", kindDuration, "15s", "cluster-lease-ttl", "how long a log's lease lasts unrenewed: how soon another process takes over a dead one's logs"},
		{"rules.files", kindStringList, []string{}, "rules", "rule files (glob patterns); repeat or comma-separate"},
		{"rules.builtin", kindBool, true, "rules-builtin", "also run the built-in rules (interception and distrusted CA feeds)"},
		{"web.listen", kindString, "127.0.0.1:9464", "web-listen", `host:port of ctwatch's HTTP server (metrics, health checks, status page, digest lists); "" runs none`},
		{"web.external_url", kindString, "", "web-external-url", "URL users reach the HTTP server at, for links in alerts"},
		{"web.status_page", kindBool, true, "web-status-page", "serve the status page (/, /status) and /api/status on web.listen"},
		{"web.pprof", kindBool, false, "web-pprof", "serve Go's profiler at /debug/pprof/ on web.listen"},
	}, natsSecuritySettings()...)
}

// DefaultLogList is Chrome's published v3 log list, followed when no other
// list is configured.
const DefaultLogList = "https://www.gstatic.com/ct/log_list/v3/log_list.json"

// envPrefix starts every environment variable ctwatch reads.
const envPrefix = "CTWATCH"

// EnvConfigFile names the environment variable a command may read the
// configuration file's path from. Load does not read it, but accepts it
// among the CTWATCH_* variables instead of calling it unknown.
const EnvConfigFile = "CTWATCH_CONFIG"

// envName is the environment variable for a key: CTWATCH_ and the key in
// upper case with sections joined by "_" (monitor.batch_size →
// CTWATCH_MONITOR_BATCH_SIZE).
func envName(key string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// RegisterFlags adds one flag per scalar setting to fs (--data-dir,
// --log-list, --nats-url, --log-level, --monitor-batch-size, …, and --rules
// for rules.files), with the defaults Load applies, for the caller to parse
// and then hand to Load.
//
// Call it once per flag set: pflag panics when a flag is defined twice.
func RegisterFlags(fs *pflag.FlagSet) {
	for _, s := range settings() {
		switch s.kind {
		case kindString:
			fs.String(s.flag, s.def.(string), s.usage)
		case kindDuration:
			d, _ := time.ParseDuration(s.def.(string)) // defaults are tested to parse
			fs.Duration(s.flag, d, s.usage)
		case kindInt:
			fs.Int(s.flag, s.def.(int), s.usage)
		case kindInt64:
			fs.Int64(s.flag, int64(s.def.(int)), s.usage)
		case kindUint64:
			fs.Uint64(s.flag, uint64(s.def.(int)), s.usage)
		case kindFloat:
			fs.Float64(s.flag, float64(s.def.(int)), s.usage)
		case kindStringList:
			fs.StringSlice(s.flag, nil, s.usage)
		case kindBool:
			fs.Bool(s.flag, s.def.(bool), s.usage)
		}
	}
}

// shape is what kind of YAML node a key holds.
type shape int

const (
	shapeLeaf     shape = iota // a scalar
	shapeSection               // a mapping with known keys
	shapeItems                 // a sequence of mappings with known keys
	shapeLeafList              // a sequence of scalars
	shapeMap                   // a mapping of any keys to scalars (headers, labels)
)

// spec describes the keys allowed at one level of the file.
type spec struct {
	shape  shape
	fields map[string]*spec // for shapeSection and the items of shapeItems; nil for shapeMap
}

func leaves(names ...string) map[string]*spec {
	m := make(map[string]*spec, len(names))
	for _, n := range names {
		m[n] = &spec{shape: shapeLeaf}
	}
	return m
}

// fileSpec is the whole file's schema: what counts as an unknown key.
func fileSpec() *spec {
	top := leaves("data_dir", "log_level", "log_format", "log_list", "log_list_refresh")
	top["logs"] = &spec{shape: shapeItems, fields: leaves(
		"name", "kind", "url", "key", "start", "monitoring_url", "origin", "concurrency", "rate", "batch_size")}
	top["monitor"] = &spec{shape: shapeSection, fields: leaves("poll_interval", "batch_size", "concurrency", "rate", "timeout", "max_response_bytes", "verify_every", "max_backlog")}
	top["nats"] = natsSpec()
	top["cluster"] = &spec{shape: shapeSection, fields: leaves("lease_ttl")}
	top["rules"] = &spec{shape: shapeSection, fields: map[string]*spec{"files": {shape: shapeLeafList}, "builtin": {shape: shapeLeaf}}}
	top["sinks"] = sinkItemSpec()
	top["web"] = &spec{shape: shapeSection, fields: leaves("listen", "external_url", "status_page", "pprof")}
	return &spec{shape: shapeSection, fields: top}
}
