package config

import (
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// decode turns the merged settings into a Config, reporting every bad
// value. The result is only meaningful when no problem was reported.
func (l *loader) decode() *Config {
	cfg := &Config{File: l.file}

	if raw, ok := l.get("data_dir"); ok {
		if s, ok := l.asString("data_dir", "data_dir", raw); ok && strings.TrimSpace(s) == "" {
			l.problem("data_dir", "data_dir", "must not be empty")
		} else {
			cfg.DataDir = s
		}
	}
	level := l.str("log_level")
	switch strings.ToLower(level) {
	case "debug":
		cfg.LogLevel = slog.LevelDebug
	case "info":
		cfg.LogLevel = slog.LevelInfo
	case "warn":
		cfg.LogLevel = slog.LevelWarn
	case "error":
		cfg.LogLevel = slog.LevelError
	default:
		l.problem("log_level", "log_level", "must be debug, info, warn or error, not %q", level)
	}
	switch cfg.LogFormat = strings.ToLower(l.str("log_format")); cfg.LogFormat {
	case "text", "json":
	default:
		l.problem("log_format", "log_format", "must be text or json, not %q", cfg.LogFormat)
	}
	cfg.LogList = l.str("log_list")
	if strings.Contains(cfg.LogList, "://") {
		if err := checkHTTPURL(cfg.LogList, true); err != nil {
			l.problem("log_list", "log_list", "must be a file path or an http(s) URL: %v", err)
		}
	}
	cfg.LogListRefresh = l.dur("log_list_refresh", false)

	cfg.Monitor = Monitor{
		PollInterval:     l.dur("monitor.poll_interval", false),
		BatchSize:        int(l.integer("monitor.batch_size", 1)),
		Concurrency:      int(l.integer("monitor.concurrency", 1)),
		Rate:             l.float("monitor.rate"),
		Timeout:          l.dur("monitor.timeout", false),
		MaxResponseBytes: l.integer("monitor.max_response_bytes", 1),
		VerifyEvery:      uint64(l.integer("monitor.verify_every", 1)),
		MaxBacklog:       uint64(l.integer("monitor.max_backlog", 0)),
	}

	cfg.NATS = NATS{
		URL:          strings.TrimSpace(l.str("nats.url")),
		StreamMaxAge: l.dur("nats.stream_max_age", true),
		DedupeWindow: l.dur("nats.dedupe_window", false),
	}
	if cfg.NATS.URL != "" {
		for _, u := range strings.Split(cfg.NATS.URL, ",") {
			if err := checkNATSURL(strings.TrimSpace(u)); err != nil {
				l.problem("nats.url", "nats.url", "%v", err)
			}
		}
	}
	if n := cfg.NATS; n.StreamMaxAge > 0 && n.DedupeWindow > n.StreamMaxAge {
		l.problem("nats.dedupe_window", "nats.dedupe_window",
			"%v is longer than nats.stream_max_age (%v); JetStream refuses that", n.DedupeWindow, n.StreamMaxAge)
	}
	l.natsSecurity(&cfg.NATS)

	cfg.Cluster.LeaseTTL = l.dur("cluster.lease_ttl", false)
	if ttl := cfg.Cluster.LeaseTTL; ttl > 0 && ttl < minLeaseTTL {
		l.problem("cluster.lease_ttl", "cluster.lease_ttl", "%v is shorter than %v: renewals (every third of it) would not keep up", ttl, minLeaseTTL)
	}

	cfg.Rules.Files = l.stringList("rules.files")
	if raw, ok := l.get("rules.builtin"); ok {
		cfg.Rules.Builtin = l.asBool("rules.builtin", "rules.builtin", raw, true)
	} else {
		cfg.Rules.Builtin = true
	}
	for i, pattern := range cfg.Rules.Files {
		if _, err := filepath.Match(pattern, ""); err != nil {
			l.problem("rules.files", fmt.Sprintf("rules.files[%d]", i), "bad pattern %q: %v", pattern, err)
		}
	}

	cfg.Web.Listen = strings.TrimSpace(l.str("web.listen"))
	if cfg.Web.Listen != "" {
		if msg := hostPortProblem(cfg.Web.Listen, 0); msg != "" {
			l.problem("web.listen", "web.listen", "%s, such as 127.0.0.1:8080 or :8080", msg)
		}
	}
	cfg.Web.ExternalURL = strings.TrimSpace(l.str("web.external_url"))
	if cfg.Web.ExternalURL != "" {
		if err := checkHTTPURL(cfg.Web.ExternalURL, false); err != nil {
			l.problem("web.external_url", "web.external_url", "%v", err)
		}
		// Links are made by appending paths.
		cfg.Web.ExternalURL = strings.TrimRight(cfg.Web.ExternalURL, "/")
	}
	if raw, ok := l.get("web.status_page"); ok {
		cfg.Web.StatusPage = l.asBool("web.status_page", "web.status_page", raw, true)
	} else {
		cfg.Web.StatusPage = true
	}
	if raw, ok := l.get("web.pprof"); ok {
		cfg.Web.Pprof = l.asBool("web.pprof", "web.pprof", raw, false)
	}

	cfg.Logs = l.logs()
	cfg.Sinks = l.sinks()
	return cfg
}

// Effective top-level values, decoded; zero when invalid (reported).

func (l *loader) str(key string) string {
	raw, ok := l.get(key)
	if !ok {
		return ""
	}
	s, _ := l.asString(key, key, raw)
	return s
}

// minLeaseTTL is the shortest cluster.lease_ttl accepted: a renewal, a
// round trip to NATS, must fit in a third of it with room to spare.
const minLeaseTTL = 300 * time.Millisecond

func (l *loader) dur(key string, zeroOK bool) time.Duration {
	raw, ok := l.get(key)
	if !ok {
		return 0
	}
	return l.asDuration(key, key, raw, zeroOK)
}

func (l *loader) integer(key string, least int64) int64 {
	raw, ok := l.get(key)
	if !ok {
		return 0
	}
	n, _ := l.asInt(key, key, raw, least)
	return n
}

func (l *loader) float(key string) float64 {
	raw, ok := l.get(key)
	if !ok {
		return 0
	}
	return l.asFloat(key, key, raw)
}

func (l *loader) stringList(key string) []string {
	out := []string{}
	raw, ok := l.get(key)
	if !ok {
		return out
	}
	switch v := raw.(type) {
	case nil:
	case []string: // a flag or the default
		for _, s := range v {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	case string: // the environment, or a single pattern in the file
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	case []any:
		for i, item := range v {
			path := fmt.Sprintf("%s[%d]", key, i)
			s, ok := l.asString(key, path, item)
			if ok && strings.TrimSpace(s) == "" {
				l.problem(key, path, "must not be empty")
			}
			out = append(out, s)
		}
	default:
		l.problem(key, key, "must be a list of strings, not %s", describe(raw))
	}
	return out
}

// Converters of one raw value (as YAML, viper, a flag or the environment
// gives it) at path, part of key. They report problems and return the zero
// value (and false) for invalid input.

func (l *loader) asString(key, path string, raw any) (string, bool) {
	switch v := raw.(type) {
	case nil:
		return "", true
	case string:
		return v, true
	default:
		l.problem(key, path, "must be a string, not %s", describe(raw))
		return "", false
	}
}

func (l *loader) asDuration(key, path string, raw any, zeroOK bool) time.Duration {
	var d time.Duration
	switch v := raw.(type) {
	case string:
		var err error
		if d, err = time.ParseDuration(strings.TrimSpace(v)); err != nil {
			l.problem(key, path, "invalid duration %q: write a number and a unit, such as 30s, 5m or 24h", v)
			return 0
		}
	case int, int64, uint64, float64:
		l.problem(key, path, "invalid duration %v: a unit is needed, such as 30s, 5m or 24h", v)
		return 0
	default:
		l.problem(key, path, "must be a duration such as 30s, not %s", describe(raw))
		return 0
	}
	switch {
	case d < 0:
		l.problem(key, path, "must not be negative, got %v", d)
		return 0
	case d == 0 && !zeroOK:
		l.problem(key, path, "must be longer than 0")
		return 0
	}
	return d
}

func (l *loader) asInt(key, path string, raw any, least int64) (int64, bool) {
	var n int64
	switch v := raw.(type) {
	case int:
		n = int64(v)
	case int64:
		n = v
	case uint64:
		if v > math.MaxInt64 {
			l.problem(key, path, "%d is too large", v)
			return 0, false
		}
		n = int64(v)
	case float64:
		if v != math.Trunc(v) || v < math.MinInt64 || v >= math.MaxInt64 {
			l.problem(key, path, "must be a whole number, not %v", v)
			return 0, false
		}
		n = int64(v)
	case string:
		var err error
		if n, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
			l.problem(key, path, "must be a whole number, not %q", v)
			return 0, false
		}
	default:
		l.problem(key, path, "must be a whole number, not %s", describe(raw))
		return 0, false
	}
	if n < least {
		if least == 0 {
			l.problem(key, path, "must not be negative, got %d", n)
		} else {
			l.problem(key, path, "must be at least %d, got %d", least, n)
		}
		return 0, false
	}
	return n, true
}

func (l *loader) asFloat(key, path string, raw any) float64 {
	var f float64
	switch v := raw.(type) {
	case int:
		f = float64(v)
	case int64:
		f = float64(v)
	case uint64:
		f = float64(v)
	case float64:
		f = v
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
			l.problem(key, path, "must be a number, not %q", v)
			return 0
		}
	default:
		l.problem(key, path, "must be a number, not %s", describe(raw))
		return 0
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		l.problem(key, path, "must be a finite number, not %v", f)
		return 0
	}
	if f < 0 {
		l.problem(key, path, "must not be negative, got %v", f)
		return 0
	}
	return f
}

func (l *loader) asBool(key, path string, raw any, def bool) bool {
	switch v := raw.(type) {
	case nil:
		return def
	case bool:
		return v
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err == nil {
			return b
		}
	}
	l.problem(key, path, "must be true or false, not %s", describe(raw))
	return def
}

// describe names a bad value briefly for a message.
func describe(raw any) string {
	switch v := raw.(type) {
	case []any, []string:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	case string:
		return strconv.Quote(truncate(v))
	default:
		return truncate(fmt.Sprint(v))
	}
}

// truncate shortens s to 60 runes for quoting in a message.
func truncate(s string) string {
	const most = 60
	if utf8.RuneCountInString(s) <= most {
		return s
	}
	return string([]rune(s)[:most]) + "…"
}

// items returns the effective list of mappings under key (logs or sinks)
// and the paths already reported as malformed. From the environment the
// value is YAML (or JSON) text, checked here like the file.
func (l *loader) items(key string, item *spec) ([]any, map[string]bool) {
	raw, ok := l.get(key)
	if !ok {
		return nil, nil
	}
	if text, isText := raw.(string); isText && l.origin(key) == fromEnv {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
			_, msg := syntaxProblem(err)
			l.problem(key, key, "%s", msg)
			return nil, nil
		}
		c := newChecker(func(line int, msg string) {
			if line > 1 {
				msg = fmt.Sprintf("%s (line %d of the value)", msg, line)
			}
			l.problem(key, key, "%s", msg)
		})
		listSpec := &spec{shape: shapeItems, fields: item.fields}
		root := &doc
		if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
			root = root.Content[0]
		}
		if root.Kind == 0 {
			return nil, nil
		}
		c.value(root, listSpec, key)
		if c.exhausted() || c.flagged[key] {
			return nil, nil
		}
		var decoded any
		if err := root.Decode(&decoded); err != nil {
			l.problem(key, key, "%s", oneLine(err.Error()))
			return nil, nil
		}
		list, _ := decoded.([]any) // a sequence, checked above, or null
		return list, c.flagged
	}
	switch v := raw.(type) {
	case nil:
		return nil, nil
	case []any:
		return v, l.flagged
	default:
		l.problem(key, key, "must be a list, not %s", describe(raw))
		return nil, nil
	}
}
