// Package config loads ctwatch's configuration: an optional YAML file,
// CTWATCH_* environment variables and command-line flags, layered with
// viper (flag over environment over file over default), then checked as a
// whole so that every mistake is reported at once, each with where it was
// made (FILE:LINE, the variable or the flag).
//
// Every scalar key has a flag (RegisterFlags) and a variable: CTWATCH_ and
// the key's path in upper case joined by "_" (CTWATCH_DATA_DIR,
// CTWATCH_MONITOR_BATCH_SIZE). rules.files from the environment is a
// comma-separated list; logs and sinks from the environment (CTWATCH_LOGS,
// CTWATCH_SINKS) are YAML or JSON lists that replace the file's.
//
// Paths (data_dir, log_list, rules.files, jsonl sinks, the *_file keys of
// sinks) are kept as written: relative ones are relative to the working
// directory, not to the file.
//
// Secrets are never written in the file: sinks name an environment
// variable (secret_env, url_env, password_env) or a file (secret_file, …)
// and Load reads it, so that a missing secret stops ctwatch before it
// starts, reported at its key's line, without the value in any message.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

// Config is a complete, validated configuration. Load returns it only when
// every value is valid, so users of it need not check again.
type Config struct {
	// File is the configuration file it was read from; "" when none.
	File string

	// DataDir holds ctwatch's state (the embedded NATS store, caches).
	DataDir string
	// LogLevel is the least severe level logged.
	LogLevel slog.Level
	// LogFormat is "text" or "json".
	LogFormat string

	// LogList is where the CT log list comes from: a file path or an
	// http(s) URL; "" when no list is followed (only Logs).
	LogList string
	// LogListRefresh is how often a LogList URL is fetched again; always
	// positive.
	LogListRefresh time.Duration
	// Logs are followed in addition to the list's, in file order.
	Logs []Log

	Monitor Monitor
	NATS    NATS
	Cluster Cluster
	Rules   Rules
	// Sinks receive alerts, in file order; names are unique. Empty only
	// when the configuration says so explicitly ("sinks: []").
	Sinks []Sink
	// Web is ctwatch's own HTTP server.
	Web Web
}

// Web configures the HTTP server the daemon runs: Prometheus metrics
// (/metrics), health checks (/healthz, /readyz), and for people following
// links from alerts the full lists behind digests. Set from the web section,
// CTWATCH_WEB_LISTEN / CTWATCH_WEB_EXTERNAL_URL or --web-listen /
// --web-external-url.
type Web struct {
	// Listen is the server's host:port (":8080" for every address, port 0
	// for any free port); "" runs no server. The default, 127.0.0.1:9464,
	// serves this host only: the pages show what ctwatch watches, so
	// exposing them further is a decision for whoever deploys it.
	Listen string
	// ExternalURL is how users reach the server (through a proxy, say):
	// an http(s) URL without query or fragment and without a trailing
	// slash, which links in alerts start with; "" when unknown, and then
	// digests carry no link.
	ExternalURL string
	// StatusPage serves the status page (/ and /status) and its JSON form
	// (/api/status, which `ctwatch status` reads) on Listen; true by
	// default. Turning it off hides what ctwatch watches (rule names,
	// hit details) from anyone who can reach the listener; metrics and
	// health checks stay.
	StatusPage bool
	// Pprof serves Go's profiler (net/http/pprof) at /debug/pprof/ on
	// Listen; false by default. It is for finding where a running daemon
	// spends its CPU or memory (`go tool pprof
	// http://127.0.0.1:9464/debug/pprof/profile?seconds=30`); profiles
	// reveal code paths and timings, so keep the listener private.
	Pprof bool
}

// Log kinds, as written in the file's logs[].kind.
const (
	KindRFC6962 = "rfc6962"
	KindStatic  = "static"
)

// Log is a log named in the configuration rather than in the log list,
// e.g. a private log or a local test log.
type Log struct {
	// Name is unique among the configured logs.
	Name string
	// Kind is KindRFC6962 (the default) or KindStatic.
	Kind string
	// URL is the log's base URL without a trailing slash: for RFC 6962 the
	// part before "/ct/v1/", for a static log its submission prefix.
	URL string
	// Key is the log's public key as DER SubjectPublicKeyInfo; it parses
	// with x509.ParsePKIXPublicKey.
	Key []byte
	// Start is the first index to process when the log has no checkpoint;
	// nil means "end": the tree size at the first verified tree head.
	Start *uint64
	// MonitoringURL is a static log's monitoring prefix, without a trailing
	// slash; URL when not set. Always "" for RFC 6962 logs.
	MonitoringURL string
	// Origin is a static log's checkpoint origin; by default URL without
	// its scheme. Always "" for RFC 6962 logs.
	Origin string
	// Concurrency, Rate and BatchSize override the Monitor section's value
	// for this log when not zero.
	Concurrency int
	Rate        float64
	BatchSize   int
}

// Monitor tunes how logs are followed. All values are positive except
// Rate, which may be 0 for no limit.
type Monitor struct {
	// PollInterval is how often a log is asked for a new tree head.
	PollInterval time.Duration
	// BatchSize is how many entries one get-entries request asks for.
	BatchSize int
	// Concurrency is how many downloads run in parallel per log.
	Concurrency int
	// Rate is the request limit per second per log; 0 means unlimited.
	Rate float64
	// Timeout bounds one request.
	Timeout time.Duration
	// MaxResponseBytes is the largest response body accepted from a log.
	MaxResponseBytes int64
	// VerifyEvery is how many entries may be processed between commits
	// that are verified against a signed tree head.
	VerifyEvery uint64
	// MaxBacklog is how many entries a log may be ahead of ctwatch before
	// a falling_behind event says that hits arrive late; 0 never says so.
	MaxBacklog uint64
}

// NATS says where hits go.
type NATS struct {
	// URL is the NATS server URL, or several separated by commas; ""
	// means an embedded server storing under DataDir.
	URL string
	// StreamMaxAge is how long the hit stream keeps messages; 0 = forever.
	StreamMaxAge time.Duration
	// DedupeWindow is how long a hit's Msg-Id is remembered to drop
	// duplicates; positive and not above StreamMaxAge when that is set.
	DedupeWindow time.Duration
	// Replicas is how many servers of a cluster keep a copy of the hit
	// stream and of every bucket: from 1 to 5, and 1 without URL.
	Replicas int

	// The fields below are set only with URL: the embedded server takes
	// no credentials. At most one authentication method is set (see
	// AuthMethod); files were readable and well-formed at load time.

	// User and Password authenticate with a user name; both or neither.
	// Password came from password_env or password_file. Never log it.
	User     string
	Password string
	// Token authenticates with a token, from token_env or token_file;
	// "" for none. Never log it.
	Token string
	// CredsFile is a credentials file (user JWT and NKey seed); nats.go
	// reads it again at every connection, so it can be rotated in place.
	CredsFile string
	// NKeySeedFile holds a user NKey seed (SU…), read at every connection
	// too.
	NKeySeedFile string
	// TLS configures the connection; the zero value means TLS only when
	// the URL or the server asks for it, checked against the system roots.
	TLS TLS
}

// Cluster tunes how processes sharing one NATS (cluster) share the logs:
// each log is tailed by the one process holding its lease.
type Cluster struct {
	// LeaseTTL is how long a lease lasts without renewal, so how long a
	// log stays unfollowed after its process dies; leases are renewed
	// every third of it. Every process on one NATS should use the same
	// value. Always positive.
	LeaseTTL time.Duration
}

// Rules says which rules run.
type Rules struct {
	// Files are glob patterns (filepath.Match syntax, checked); empty means
	// only the built-in rules.
	Files []string
	// Builtin adds the rules shipped with ctwatch (the interception and
	// distrusted CA feeds); true unless the configuration says otherwise,
	// so that ctwatch with no configuration still watches for them.
	Builtin bool
}

// origin is where the effective value of a key came from.
type origin int

const (
	fromDefault origin = iota
	fromFile
	fromEnv
	fromFlag
)

// loader holds the state of one Load call.
type loader struct {
	v         *viper.Viper
	file      string
	lines     map[string]int  // file paths → line of the value
	flagged   map[string]bool // file paths already reported as malformed
	flags     *pflag.FlagSet
	flagNames map[string]string // key → bound flag
	defaults  map[string]any
	problems  []Problem
	// lists holds the file's logs and sinks as decoded by yaml.v3. They
	// are kept from viper, which lower-cases every key at every depth and
	// so would change header and label names.
	lists map[string]any
	// envRefs are the variables that *_env keys name; they may start with
	// CTWATCH_ without being unknown.
	envRefs map[string]bool
}

// Load reads the configuration from the YAML file at path ("" for none),
// the environment and flags (nil for none; parsed already, usually with
// flags from RegisterFlags) and validates it.
//
// When the configuration is invalid it returns a nil Config and an *Error
// listing every problem. A file that cannot be read gives an error wrapping
// the os error instead.
//
// Besides its inputs, Load reads what sinks refer to: the environment
// variables and files holding secrets and URLs, TLS files (checked to
// parse), and exec programs (looked up in PATH), so that each is found
// missing now rather than at the first alert. It changes nothing; calls
// are independent and may run concurrently.
func Load(path string, flags *pflag.FlagSet) (*Config, error) {
	l := &loader{
		v:         viper.New(),
		file:      path,
		lines:     map[string]int{},
		flagged:   map[string]bool{},
		flags:     flags,
		flagNames: map[string]string{},
		defaults:  map[string]any{},
		lists:     map[string]any{},
		envRefs:   map[string]bool{},
	}
	for _, s := range settings() {
		l.v.SetDefault(s.key, s.def)
		l.defaults[s.key] = s.def
	}
	l.defaults["logs"] = []any{}
	l.defaults["sinks"] = []any{map[string]any{"name": "stdout", "type": SinkStdout}}
	l.v.SetDefault("logs", l.defaults["logs"])
	l.v.SetDefault("sinks", l.defaults["sinks"])

	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if !l.readFile(data) {
			return nil, l.err()
		}
	}

	l.v.SetEnvPrefix(envPrefix)
	l.v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	l.v.AllowEmptyEnv(true) // CTWATCH_LOG_LIST= means "no list", not "unset"
	l.v.AutomaticEnv()

	if flags != nil {
		for _, s := range settings() {
			if f := flags.Lookup(s.flag); f != nil {
				if err := l.v.BindPFlag(s.key, f); err != nil {
					return nil, fmt.Errorf("bind flag --%s: %w", s.flag, err)
				}
				l.flagNames[s.key] = s.flag
			}
		}
	}

	cfg := l.decode()
	// After decoding, which learns the variables *_env keys name.
	l.checkEnvNames()
	if len(l.problems) > 0 {
		return nil, l.err()
	}
	return cfg, nil
}

func (l *loader) err() *Error {
	sortProblems(l.problems)
	return &Error{Problems: l.problems}
}

// readFile checks the file's structure and hands its values to viper. It
// returns false when nothing more can be learnt from the file (it is not
// YAML, or too large to check).
//
// The file is decoded here rather than by viper so that one mistake (a
// duplicate key, a list where a mapping belongs) does not hide the values
// around it: yaml.v3 decodes what it can and lists the rest, which the
// checker has reported with lines already.
func (l *loader) readFile(data []byte) bool {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := syntaxProblem(err)
		l.add(Problem{Source: l.file, Line: line, Message: msg})
		return false
	}
	before := len(l.problems)
	c := newChecker(func(line int, msg string) {
		l.add(Problem{Source: l.file, Line: line, Message: msg})
	})
	c.document(&doc, fileSpec())
	if c.exhausted() {
		return false
	}
	l.lines, l.flagged = c.lines, c.flagged
	if c.flagged[""] || doc.Kind == 0 || len(doc.Content) == 0 {
		return true // nothing to take from the file
	}
	values := map[string]any{}
	var typeErr *yaml.TypeError
	if err := doc.Content[0].Decode(&values); err != nil && !errors.As(err, &typeErr) {
		l.add(Problem{Source: l.file, Message: "cannot read: " + err.Error()})
		return false
	} else if err != nil && len(l.problems) == before {
		// The checker found nothing wrong, yet a value did not decode.
		l.add(Problem{Source: l.file, Message: "cannot read: " + err.Error()})
	}
	// viper matches keys without regard to case; give it only the keys
	// the checker accepted (and recorded lines for).
	prune(values, fileSpec())
	for _, key := range []string{"logs", "sinks"} {
		if v, ok := values[key]; ok {
			l.lists[key] = v
			delete(values, key)
		}
	}
	if err := l.v.MergeConfigMap(values); err != nil {
		l.add(Problem{Source: l.file, Message: "cannot read: " + err.Error()})
	}
	return true
}

// prune deletes from a decoded mapping every key that s does not allow,
// at every depth.
func prune(m map[string]any, s *spec) {
	for k, v := range m {
		sub, ok := s.fields[k]
		if !ok {
			delete(m, k)
			continue
		}
		switch sub.shape {
		case shapeSection:
			// A section with a non-string key (`{080, rate: 1}`) decodes
			// as map[any]any; normalise it so that its keys are pruned
			// too, instead of reaching viper unchecked.
			if vm, ok := asMap(v); ok {
				prune(vm, sub)
				m[k] = vm
			} else {
				delete(m, k)
			}
		case shapeItems:
			if list, ok := v.([]any); ok {
				for i, item := range list {
					if im, ok := asMap(item); ok {
						prune(im, sub)
						list[i] = im
					}
				}
			}
		}
	}
}

func (l *loader) add(p Problem) {
	p.Message = oneLine(p.Message)
	l.problems = append(l.problems, p)
}

// checkEnvNames reports CTWATCH_* variables that set nothing, which are
// almost always misspellings that would otherwise be silently ignored.
// Variables named by *_env keys (a secret in CTWATCH_WEBHOOK_SECRET) are
// used, so known.
func (l *loader) checkEnvNames() {
	known := map[string]bool{EnvConfigFile: true, envName("logs"): true, envName("sinks"): true}
	for _, s := range settings() {
		known[envName(s.key)] = true
	}
	for name := range l.envRefs {
		known[name] = true
	}
	var unknown []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix+"_") && !known[name] {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		msg := name + ": unknown variable"
		if known[name+"_ENV"] && known[name+"_FILE"] {
			// CTWATCH_NATS_PASSWORD: a secret set directly.
			msg += fmt.Sprintf(" (a secret is never set directly: name the variable holding it in %s_ENV, or a file in %s_FILE)", name, name)
			l.add(Problem{Source: SourceEnvironment, Message: msg})
			continue
		}
		best, bestDist := "", 3
		for k := range known {
			if d := editDistance(name, k); d < bestDist || (d == bestDist && k < best) {
				best, bestDist = k, d
			}
		}
		if best != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", best)
		}
		l.add(Problem{Source: SourceEnvironment, Message: msg})
	}
}

// origin says which layer the effective value of key comes from, with
// viper's precedence.
func (l *loader) origin(key string) origin {
	if name, ok := l.flagNames[key]; ok && l.flags.Changed(name) {
		return fromFlag
	}
	if _, ok := os.LookupEnv(envName(key)); ok {
		return fromEnv
	}
	if _, ok := l.lines[key]; ok {
		return fromFile
	}
	return fromDefault
}

// problem reports a bad value of key. path is the part of it at fault
// (key itself, or e.g. "sinks[1].url" inside the list key "sinks"); it
// picks the file line.
func (l *loader) problem(key, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	withPath := msg
	if path != key {
		withPath = path + ": " + msg
	}
	switch l.origin(key) {
	case fromFlag:
		l.add(Problem{Source: SourceFlag, Message: "--" + l.flagNames[key] + ": " + withPath})
	case fromEnv:
		l.add(Problem{Source: SourceEnvironment, Message: envName(key) + ": " + withPath})
	case fromFile:
		l.add(Problem{Source: l.file, Line: l.lineOf(path), Message: path + ": " + msg})
	default:
		// Defaults are valid (tested); this would be a bug in ctwatch.
		l.add(Problem{Source: "default", Message: path + ": " + msg})
	}
}

// lineOf finds the line of path, or of its nearest ancestor that has one.
func (l *loader) lineOf(path string) int {
	for path != "" {
		if n, ok := l.lines[path]; ok {
			return n
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// get returns the effective value of key, the default when it is unset or
// null, and false when the file's value was already reported as malformed.
func (l *loader) get(key string) (any, bool) {
	if l.flagged[key] && l.origin(key) == fromFile {
		return nil, false
	}
	var v any
	if raw, isList := l.lists[key]; isList && l.origin(key) == fromFile {
		v = raw
	} else {
		v = l.v.Get(key)
	}
	if v == nil {
		v = l.defaults[key]
	}
	return v, true
}
