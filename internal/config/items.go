package config

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
)

// item is one mapping of a list (a log or a sink) being decoded.
type item struct {
	l       *loader
	key     string // "logs" or "sinks"
	path    string // "logs[2]", "sinks[0].route"
	m       map[string]any
	flagged map[string]bool // paths the checker reported as malformed
}

func (it item) field(name string) (any, string) {
	return it.m[name], it.path + "." + name
}

// str returns a string field, trimmed; "" when absent or invalid.
func (it item) str(name string) string {
	raw, path := it.field(name)
	s, _ := it.l.asString(it.key, path, raw)
	return strings.TrimSpace(s)
}

// required returns a string field, reporting it when absent or empty.
func (it item) required(name string) string {
	raw, path := it.field(name)
	s, ok := it.l.asString(it.key, path, raw)
	if s = strings.TrimSpace(s); ok && s == "" {
		it.l.problem(it.key, it.path, "%s is required", name)
	}
	return s
}

// count returns a non-negative whole-number field; 0 when absent.
func (it item) count(name string) int {
	raw, path := it.field(name)
	if raw == nil {
		return 0
	}
	n, _ := it.l.asInt(it.key, path, raw, 0)
	if n > math.MaxInt32 {
		it.l.problem(it.key, path, "%d is too large", n)
		return 0
	}
	return int(n)
}

// asMap accepts a decoded YAML mapping. Mappings with non-string keys come
// as map[any]any; their keys were already reported by the checker.
func asMap(raw any) (map[string]any, bool) {
	switch m := raw.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, true
	}
	return nil, false
}

// eachItem calls fn for every well-formed mapping of the list under key.
func (l *loader) eachItem(key string, fn func(it item)) {
	list, flagged := l.items(key, fileSpec().fields[key])
	for i, raw := range list {
		path := fmt.Sprintf("%s[%d]", key, i)
		if flagged[path] {
			continue
		}
		m, ok := asMap(raw)
		if !ok {
			if raw == nil {
				l.problem(key, path, "is empty")
			} else {
				l.problem(key, path, "must be a mapping of keys to values, not %s", describe(raw))
			}
			continue
		}
		fn(item{l: l, key: key, path: path, m: m, flagged: flagged})
	}
}

func (l *loader) logs() []Log {
	logs := []Log{}
	names := map[string]string{}
	l.eachItem("logs", func(it item) {
		lg := Log{
			Name:        it.required("name"),
			Kind:        it.str("kind"),
			URL:         it.required("url"),
			Concurrency: it.count("concurrency"),
			BatchSize:   it.count("batch_size"),
		}
		if lg.Name != "" {
			if first, dup := names[lg.Name]; dup {
				l.problem(it.key, it.path+".name", "log name %q is already used by %s", lg.Name, first)
			} else {
				names[lg.Name] = it.path
			}
		}
		switch lg.Kind {
		case "":
			lg.Kind = KindRFC6962
		case KindRFC6962, KindStatic:
		default:
			l.problem(it.key, it.path+".kind", "must be %s or %s, not %q", KindRFC6962, KindStatic, lg.Kind)
		}
		if lg.URL != "" {
			if err := checkHTTPURL(lg.URL, false); err != nil {
				l.problem(it.key, it.path+".url", "%v", err)
			}
			lg.URL = strings.TrimRight(lg.URL, "/")
		}
		if key := it.required("key"); key != "" {
			der, err := decodeKey(key)
			if err != nil {
				l.problem(it.key, it.path+".key", "%v", err)
			}
			lg.Key = der
		}
		lg.Start = it.start()
		if raw, path := it.field("rate"); raw != nil {
			lg.Rate = l.asFloat(it.key, path, raw)
		}

		monitoring, origin := it.str("monitoring_url"), it.str("origin")
		if lg.Kind != KindStatic {
			if monitoring != "" {
				l.problem(it.key, it.path+".monitoring_url", "is only for kind %s", KindStatic)
			}
			if origin != "" {
				l.problem(it.key, it.path+".origin", "is only for kind %s", KindStatic)
			}
		} else {
			if monitoring == "" {
				monitoring = lg.URL
			} else if err := checkHTTPURL(monitoring, false); err != nil {
				l.problem(it.key, it.path+".monitoring_url", "%v", err)
			}
			lg.MonitoringURL = strings.TrimRight(monitoring, "/")
			if origin == "" {
				// static-ct-api: the origin is the submission prefix
				// without its scheme and trailing slash.
				if _, rest, ok := strings.Cut(lg.URL, "://"); ok {
					origin = rest
				}
			}
			lg.Origin = origin
		}
		logs = append(logs, lg)
	})
	return logs
}

// start decodes a log's start: "end" (nil, the default) or an index.
func (it item) start() *uint64 {
	raw, path := it.field("start")
	bad := func() *uint64 {
		it.l.problem(it.key, path, `must be "end" or a non-negative whole number, not %s`, describe(raw))
		return nil
	}
	var n uint64
	switch v := raw.(type) {
	case nil:
		return nil
	case string:
		s := strings.TrimSpace(v)
		if s == "end" {
			return nil
		}
		var err error
		if n, err = strconv.ParseUint(s, 10, 64); err != nil {
			return bad()
		}
	case int:
		if v < 0 {
			return bad()
		}
		n = uint64(v)
	case int64:
		if v < 0 {
			return bad()
		}
		n = uint64(v)
	case uint64:
		n = v
	default:
		return bad()
	}
	return &n
}

// decodeKey decodes a base64 DER SubjectPublicKeyInfo, ignoring white
// space so that long keys may be folded over several lines.
func decodeKey(s string) ([]byte, error) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	if _, err := x509.ParsePKIXPublicKey(der); err != nil {
		// Keep x509's own explanations (unknown algorithm, trailing
		// data); asn1's are long dumps of Go structures.
		if msg := err.Error(); strings.HasPrefix(msg, "x509: ") {
			return nil, fmt.Errorf("not a usable DER SubjectPublicKeyInfo: %s", strings.TrimPrefix(msg, "x509: "))
		}
		return nil, errors.New("not a DER SubjectPublicKeyInfo: malformed ASN.1")
	}
	return der, nil
}

func validSinkName(s string) bool {
	if len(s) > maxSinkNameLen {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// checkHTTPURL accepts absolute http(s) URLs with a host. A query is
// accepted only when query is true (a webhook may carry a token in it; a
// log's base URL may not, since paths are appended to it).
func checkHTTPURL(s string, query bool) error {
	if _, err := url.Parse(s); err != nil {
		return fmt.Errorf("invalid URL %q", truncate(s))
	}
	if msg := urlProblem(s, query); msg != "" {
		return fmt.Errorf("URL %q %s", truncate(s), msg)
	}
	return nil
}

// urlProblem says what is wrong with s as checkHTTPURL would, without
// quoting s (a URL may be a secret); "" when nothing is.
func urlProblem(s string, query bool) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "is not a valid URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must start with http:// or https://"
	case u.Host == "":
		return "has no host"
	case !query && (u.RawQuery != "" || u.Fragment != ""):
		return "must not have a query or fragment"
	}
	return ""
}

// checkNATSURL accepts what the NATS client does: host:port, or a URL with
// scheme nats, tls, ws or wss.
func checkNATSURL(s string) error {
	if s == "" {
		return errors.New("empty URL in the list")
	}
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL %q", truncate(s))
	}
	if u.User != nil {
		// Not quoted: the URL holds a secret.
		return errors.New("a URL with a user, password or token writes them in clear: use nats.user with nats.password_env or nats.password_file, or nats.token_env or nats.token_file")
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("URL %q: scheme must be nats, tls, ws or wss", truncate(s))
	}
	if u.Host == "" {
		return fmt.Errorf("URL %q has no host", truncate(s))
	}
	return nil
}
