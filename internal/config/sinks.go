package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/idna"

	"github.com/ctwatch/ctwatch/event"
)

// Sink types, as written in the file's sinks[].type.
const (
	// SinkStdout writes one line per alert on standard output.
	SinkStdout = "stdout"
	// SinkJSONL appends one JSON line per alert to Sink.Path.
	SinkJSONL = "jsonl"
	// SinkWebhook POSTs each alert's JSON to Sink.URL, signed with
	// Sink.Secret when set.
	SinkWebhook = "webhook"
	// SinkSlack posts to a Slack incoming webhook at Sink.URL.
	SinkSlack = "slack"
	// SinkEmail mails alerts through the SMTP server Sink.SMTP.
	SinkEmail = "email"
	// SinkAlertmanager POSTs alerts to the Alertmanager whose base URL is
	// Sink.URL.
	SinkAlertmanager = "alertmanager"
	// SinkExec runs Sink.Command once per alert.
	SinkExec = "exec"
)

// sinkTypes lists the types in the order messages name them.
func sinkTypes() []string {
	return []string{SinkStdout, SinkJSONL, SinkWebhook, SinkSlack, SinkEmail, SinkAlertmanager, SinkExec}
}

// Values of Sink.SMTPTLS, as written in the file's sinks[].smtp_tls.
const (
	// SMTPStartTLS connects in plain text and upgrades with STARTTLS
	// before anything else is sent; it fails when the server does not
	// offer it. The default, for the submission port 587.
	SMTPStartTLS = "starttls"
	// SMTPImplicitTLS speaks TLS from the first byte (port 465).
	SMTPImplicitTLS = "tls"
	// SMTPNoTLS never encrypts: for a relay on loopback or in a lab.
	SMTPNoTLS = "none"
)

// Defaults of the sink settings that have one, as Load fills them in.
const (
	// DefaultGroupMaxNames is Group.MaxNames when not set: enough names to
	// recognise a pattern, few enough to read on a phone.
	DefaultGroupMaxNames = 20
	// DefaultGroupMaxHits is Group.MaxHits when not set.
	DefaultGroupMaxHits = 5000
	// DefaultRetryMinBackoff and DefaultRetryMaxBackoff are Retry's
	// bounds when not set.
	DefaultRetryMinBackoff = time.Second
	DefaultRetryMaxBackoff = 5 * time.Minute
	// DefaultSlackRate is a Slack sink's Rate when not set: Slack allows
	// about one message per second per incoming webhook.
	DefaultSlackRate = 1
	// DefaultResolveAfter is an Alertmanager sink's ResolveAfter when not
	// set.
	DefaultResolveAfter = 24 * time.Hour
)

const (
	// maxSecretFileBytes bounds a secret or URL file: more is the wrong
	// file.
	maxSecretFileBytes = 64 << 10
	// maxTLSFileBytes bounds a TLS file; a CA bundle can be large, not
	// this large.
	maxTLSFileBytes = 16 << 20
	// maxSinkNameLen keeps a sink's consumer name short.
	maxSinkNameLen = 64
	// maxCountSetting bounds whole-number sink settings, so that they fit
	// an int anywhere.
	maxCountSetting = math.MaxInt32
	// reservedHeaderPrefix starts the headers ctwatch sets itself
	// (X-Ctwatch-Id, X-Ctwatch-Signature, …), lower-cased.
	reservedHeaderPrefix = "x-ctwatch-"
	// secretFileTrailingSpace is removed from the end of a secret file:
	// the line break editors and echo add.
	secretFileTrailingSpace = "\r\n"
)

// Sink is one destination of alerts, with every value resolved: secrets
// named by *_env and *_file keys arrive here as their values (read when the
// configuration was loaded), defaults are filled in, and fields that do not
// apply to Type are zero. A Sink is a plain value, safe to copy and to read
// from several goroutines.
type Sink struct {
	// Name is unique and made of letters, digits, "-" and "_" (at most 64),
	// so that it can name a durable NATS consumer.
	Name string
	// Type is one of the Sink* constants.
	Type string
	// Events says whether the sink also receives events about the logs
	// themselves (unreachable, inconsistent, …) besides hits; true unless
	// the file says "events: false".
	Events bool
	// Route selects the hits and events the sink takes; the zero Route
	// takes all.
	Route Route
	// Group folds bursts of hits of one rule into digests.
	Group Group
	// Retry says how failed deliveries are retried and when they are given
	// up (dead-lettered).
	Retry Retry
	// Rate limits deliveries per second; 0 means unlimited. The default is
	// 1 for Slack (which throttles incoming webhooks to about one message
	// a second) and 0 otherwise.
	Rate float64
	// Burst is how many deliveries may go at once under Rate: at least 1
	// when Rate > 0 (the default then), 0 when Rate is 0.
	Burst int
	// Timeout bounds one delivery attempt; 0 means the integration's own
	// default.
	Timeout time.Duration

	// Path is the file a jsonl sink appends to; "" for other types.
	Path string

	// URL is where a webhook or Slack sink posts, or the base URL of an
	// Alertmanager (without a query; the integration appends
	// /api/v2/alerts), from url, url_env or url_file. It may be a secret
	// (a Slack webhook URL is one): show only its scheme and host.
	URL string
	// Secret is a webhook sink's HMAC key, from secret_env or secret_file
	// (the file's trailing line break removed); nil means requests are not
	// signed. Never log it.
	Secret []byte
	// Headers are extra request headers of a webhook or Alertmanager
	// sink, names as written; nil when none. Names are valid header names,
	// values valid header values (no CR or LF), and none is a header
	// ctwatch or the HTTP client sets itself.
	Headers map[string]string
	// TLS configures the connection of webhook, Slack, Alertmanager and
	// email sinks; its files were readable and well-formed at load time.
	TLS TLS

	// SMTP is an email sink's server as host:port.
	SMTP string
	// SMTPTLS is an email sink's SMTPStartTLS (the default),
	// SMTPImplicitTLS or SMTPNoTLS; "" for other types.
	SMTPTLS string
	// From is an email sink's sender, as written; it parses with
	// net/mail.ParseAddress.
	From string
	// To are an email sink's recipients (at least one), as written; each
	// parses with net/mail.ParseAddress.
	To []string
	// Username, when not "", makes an email sink authenticate with
	// Password, which then is never "" (from password_env or
	// password_file). Never log the password.
	Username string
	Password string

	// Labels are extra labels on every alert of an Alertmanager sink; nil
	// when none. Names match [a-zA-Z_][a-zA-Z0-9_]*, values are not empty.
	Labels map[string]string
	// ResolveAfter is how long after it starts an Alertmanager alert ends
	// (endsAt); 24h by default, 0 for other types.
	ResolveAfter time.Duration

	// Command is the program an exec sink runs: a path, or a name found
	// in PATH when the configuration was loaded.
	Command string
	// Args are its arguments; nil when none.
	Args []string
}

// TLS holds a sink's TLS settings. The zero value means the system roots,
// no client certificate and verification on.
type TLS struct {
	// CAFile is a PEM bundle of roots replacing the system roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key for
	// mutual TLS; both or neither.
	CertFile string
	KeyFile  string
	// ServerName overrides the name the server's certificate is checked
	// against.
	ServerName string
	// InsecureSkipVerify turns off the check of the server's certificate;
	// for labs only, since anyone on the path can then read and forge
	// alerts.
	InsecureSkipVerify bool
}

// Route says which messages a sink takes. Each non-empty field narrows
// the selection; the zero Route takes everything.
type Route struct {
	// MinSeverity skips hits below it: "" (any), info, low, medium, high
	// or critical.
	MinSeverity string
	// Rules takes only hits of these rule names; Tags only hits of rules
	// with at least one of these tags. As written; nil when absent.
	Rules []string
	Tags  []string
	// Domains takes only hits with a name equal to or under one of these:
	// lower-case ASCII (IDNA), without a leading "*." or "." or a trailing
	// ".", so that they compare with certificate names as they are.
	Domains []string
	// Events takes only log events of these kinds (the event package's
	// LogEventKind values); nil takes all. Only set when Sink.Events is.
	Events []string
}

// Group folds hits of one rule that arrive within Window into one digest.
type Group struct {
	// Window is how long hits are collected; 0 (the default) sends every
	// hit on its own.
	Window time.Duration
	// MaxNames is how many names a digest lists (default 20).
	MaxNames int
	// MaxHits sends a group before its window ends once it holds this
	// many hits (default 5000), bounding memory and digest size.
	MaxHits int
}

// Retry says how a sink's failed deliveries are retried: exponential
// backoff with jitter from MinBackoff up to MaxBackoff, until MaxAttempts
// or MaxAge (each 0 = never) sends the message to the dead letters.
type Retry struct {
	// MinBackoff (default 1s) and MaxBackoff (default 5m, at least
	// MinBackoff) bound the delay between attempts.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// MaxAttempts is how many failed attempts dead-letter a message.
	MaxAttempts int
	// MaxAge is how old a failing message may get before it is
	// dead-lettered.
	MaxAge time.Duration
}

// typeKeys lists the keys that only some sink types take, in file order,
// so that a key written for the wrong type is reported rather than
// silently ignored.
func typeKeys() []struct {
	key   string
	types []string
} {
	http := []string{SinkWebhook, SinkSlack, SinkAlertmanager}
	email := []string{SinkEmail}
	return []struct {
		key   string
		types []string
	}{
		{"path", []string{SinkJSONL}},
		{"url", http}, {"url_env", http}, {"url_file", http},
		{"secret_env", []string{SinkWebhook}}, {"secret_file", []string{SinkWebhook}},
		{"headers", []string{SinkWebhook, SinkAlertmanager}},
		{"tls", []string{SinkWebhook, SinkSlack, SinkAlertmanager, SinkEmail}},
		{"smtp", email}, {"smtp_tls", email}, {"from", email}, {"to", email},
		{"username", email}, {"password_env", email}, {"password_file", email},
		{"labels", []string{SinkAlertmanager}}, {"resolve_after", []string{SinkAlertmanager}},
		{"command", []string{SinkExec}}, {"args", []string{SinkExec}},
	}
}

// sinkItemSpec is the schema of one sink.
func sinkItemSpec() *spec {
	fields := leaves("name", "type", "events", "rate", "burst", "timeout",
		"path", "url", "url_env", "url_file", "secret_env", "secret_file",
		"smtp", "smtp_tls", "from", "username", "password_env", "password_file",
		"resolve_after", "command")
	fields["route"] = &spec{shape: shapeSection, fields: map[string]*spec{
		"min_severity": {shape: shapeLeaf},
		"rules":        {shape: shapeLeafList},
		"tags":         {shape: shapeLeafList},
		"domains":      {shape: shapeLeafList},
		"events":       {shape: shapeLeafList},
	}}
	fields["group"] = &spec{shape: shapeSection, fields: leaves("window", "max_names", "max_hits")}
	fields["retry"] = &spec{shape: shapeSection, fields: leaves("min_backoff", "max_backoff", "max_attempts", "max_age")}
	fields["tls"] = &spec{shape: shapeSection, fields: leaves("ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify")}
	fields["headers"] = &spec{shape: shapeMap}
	fields["labels"] = &spec{shape: shapeMap}
	fields["to"] = &spec{shape: shapeLeafList}
	fields["args"] = &spec{shape: shapeLeafList}
	return &spec{shape: shapeItems, fields: fields}
}

func (l *loader) sinks() []Sink {
	sinks := []Sink{}
	names := map[string]string{}
	l.eachItem("sinks", func(it item) {
		s := Sink{
			Name:   it.required("name"),
			Type:   it.required("type"),
			Events: it.boolean("events", true),
		}
		if s.Name != "" {
			if !validSinkName(s.Name) {
				l.problem(it.key, it.path+".name", "%q: use only letters, digits, - and _ (at most %d)", truncate(s.Name), maxSinkNameLen)
			} else if first, dup := names[s.Name]; dup {
				l.problem(it.key, it.path+".name", "sink name %q is already used by %s", s.Name, first)
			} else {
				names[s.Name] = it.path
			}
		}
		known := slices.Contains(sinkTypes(), s.Type)
		if !known && s.Type != "" {
			types := sinkTypes()
			l.problem(it.key, it.path+".type", "must be %s or %s, not %q",
				strings.Join(types[:len(types)-1], ", "), types[len(types)-1], truncate(s.Type))
		}
		if known {
			it.onlyFor(s.Type)
		}
		s.Route = it.route(s.Events)
		s.Group = it.group()
		s.Retry = it.retry()
		s.Rate, s.Burst = it.rate(s.Type)
		if raw, path := it.field("timeout"); raw != nil {
			s.Timeout = l.asDuration(it.key, path, raw, false)
		}

		switch s.Type {
		case SinkJSONL:
			if s.Path = it.str("path"); s.Path == "" {
				l.problem(it.key, it.path, "path is required for a %s sink", SinkJSONL)
			}
		case SinkWebhook, SinkSlack, SinkAlertmanager:
			s.URL = it.url(s.Type)
			s.TLS = it.tls()
			if s.Type != SinkSlack {
				s.Headers = it.headers()
			}
			if s.Type == SinkWebhook {
				if secret, ok := it.indirect("secret", false, "the HMAC secret", nil); ok {
					s.Secret = []byte(secret)
				}
			}
			if s.Type == SinkAlertmanager {
				s.Labels = it.labels()
				s.ResolveAfter = it.duration("resolve_after", DefaultResolveAfter)
			}
		case SinkEmail:
			it.email(&s)
		case SinkExec:
			s.Command, s.Args = it.command()
		}
		sinks = append(sinks, s)
	})
	return sinks
}

// onlyFor reports the keys of it that sinks of type typ do not take.
func (it item) onlyFor(typ string) {
	for _, k := range typeKeys() {
		if it.m[k.key] == nil || slices.Contains(k.types, typ) {
			continue
		}
		types := k.types
		list := types[0]
		if len(types) > 1 {
			list = strings.Join(types[:len(types)-1], ", ") + " and " + types[len(types)-1]
		}
		it.l.problem(it.key, it.path+"."+k.key, "is only for %s sinks", list)
	}
}

// boolean returns a true/false field, def when absent.
func (it item) boolean(name string, def bool) bool {
	raw, path := it.field(name)
	return it.l.asBool(it.key, path, raw, def)
}

// duration returns a positive duration field, def when absent.
func (it item) duration(name string, def time.Duration) time.Duration {
	raw, path := it.field(name)
	if raw == nil {
		return def
	}
	return it.l.asDuration(it.key, path, raw, false)
}

// atLeastOne returns a whole-number field of at least 1, def when absent.
func (it item) atLeastOne(name string, def int) int {
	raw, path := it.field(name)
	if raw == nil {
		return def
	}
	n, ok := it.l.asInt(it.key, path, raw, 1)
	if ok && n > maxCountSetting {
		it.l.problem(it.key, path, "%d is too large", n)
		return 0
	}
	return int(n)
}

// section returns the nested mapping name of it as an item; false when it
// is absent or not a mapping (reported once).
func (it item) section(name string) (item, bool) {
	raw, path := it.field(name)
	sub := item{l: it.l, key: it.key, path: path, flagged: it.flagged}
	if raw == nil || it.flagged[path] {
		return sub, false
	}
	m, ok := asMap(raw)
	if !ok {
		it.l.problem(it.key, path, "must be a mapping of keys to values, not %s", describe(raw))
		return sub, false
	}
	sub.m = m
	return sub, true
}

// list returns a list field of strings (or, with text, of any scalars, as
// they read), each trimmed and not empty; nil when absent.
func (it item) list(name string, text bool) []string {
	raw, path := it.field(name)
	if raw == nil || it.flagged[path] {
		return nil
	}
	items, ok := raw.([]any)
	if !ok {
		it.l.problem(it.key, path, "must be a list, such as [a, b], not %s", describe(raw))
		return nil
	}
	out := make([]string, 0, len(items))
	for i, v := range items {
		p := fmt.Sprintf("%s[%d]", path, i)
		var s string
		if text {
			var ok bool
			if s, ok = it.scalarText(p, v); !ok {
				continue
			}
		} else if s, ok = it.l.asString(it.key, p, v); !ok {
			continue
		}
		if s = strings.TrimSpace(s); s == "" {
			it.l.problem(it.key, p, "must not be empty")
			continue
		}
		out = append(out, s)
	}
	return out
}

// scalarText turns a scalar into the text it reads as. Numbers with a
// fraction or an exponent are refused: YAML reads 1.10 as 1.1, which is
// not what was written.
func (it item) scalarText(path string, raw any) (string, bool) {
	switch v := raw.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case float64:
		it.l.problem(it.key, path, "write %v in quotes, so that it is kept as written", v)
	case nil:
		it.l.problem(it.key, path, "has no value")
	default:
		it.l.problem(it.key, path, "must be a single value, not %s", describe(raw))
	}
	return "", false
}

// stringMap returns a free-form mapping of names to scalar values, with
// each name checked by checkName (which returns "" or what is wrong).
func (it item) stringMap(name string, checkName func(string) string) map[string]string {
	raw, path := it.field(name)
	if raw == nil || it.flagged[path] {
		return nil
	}
	var m map[string]any
	switch v := raw.(type) {
	case map[string]any:
		m = v
	case map[any]any:
		// Names that are not text were reported by the checker.
		m = map[string]any{}
		for k, val := range v {
			if ks, ok := k.(string); ok {
				m[ks] = val
			}
		}
	default:
		it.l.problem(it.key, path, "must be a mapping of names to values, not %s", describe(raw))
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(map[string]string, len(m))
	for _, k := range keys {
		p := path + "." + k
		if it.flagged[p] {
			continue
		}
		v, ok := it.scalarText(p, m[k])
		if !ok {
			continue
		}
		if msg := checkName(k); msg != "" {
			it.l.problem(it.key, p, "%s", msg)
			continue
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// headers returns a sink's extra HTTP headers.
func (it item) headers() map[string]string {
	h := it.stringMap("headers", func(name string) string {
		lower := strings.ToLower(name)
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			return fmt.Sprintf("%q is not a valid header name", truncate(name))
		case strings.HasPrefix(lower, reservedHeaderPrefix), lower == "content-type", lower == "idempotency-key":
			return fmt.Sprintf("%s is set by ctwatch and cannot be configured", name)
		case lower == "host", lower == "content-length", lower == "transfer-encoding", lower == "connection":
			return fmt.Sprintf("%s is set by the HTTP client and cannot be configured", name)
		}
		return ""
	})
	path := it.path + ".headers"
	seen := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(h)) {
		if !httpguts.ValidHeaderFieldValue(h[name]) {
			// The value is not quoted: it may be a credential.
			it.l.problem(it.key, path+"."+name, "the value is not a valid header value (control characters such as line breaks)")
			delete(h, name)
			continue
		}
		canon := strings.ToLower(name)
		if first, dup := seen[canon]; dup {
			it.l.problem(it.key, path+"."+name, "is the same header as %s (names are case-insensitive)", first)
			delete(h, name)
			continue
		}
		seen[canon] = name
	}
	if len(h) == 0 {
		return nil
	}
	return h
}

// labelName is Prometheus' (and so Alertmanager's) syntax of label names.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// labels returns an Alertmanager sink's extra labels.
func (it item) labels() map[string]string {
	lb := it.stringMap("labels", func(name string) string {
		if !labelName.MatchString(name) {
			return fmt.Sprintf("%q is not a valid label name: use letters, digits and _, not starting with a digit", truncate(name))
		}
		return ""
	})
	for _, name := range slices.Sorted(maps.Keys(lb)) {
		if strings.TrimSpace(lb[name]) == "" {
			it.l.problem(it.key, it.path+".labels."+name, "is empty; Alertmanager treats an empty label as no label")
			delete(lb, name)
		}
	}
	if len(lb) == 0 {
		return nil
	}
	return lb
}

// route decodes a sink's route; events says whether the sink takes log
// events at all.
func (it item) route(events bool) Route {
	var r Route
	sub, ok := it.section("route")
	if !ok {
		return r
	}
	if sev := strings.ToLower(sub.str("min_severity")); sev != "" {
		if event.Severity(sev).Rank() == 0 {
			it.l.problem(it.key, sub.path+".min_severity", "must be info, low, medium, high or critical, not %q", truncate(sev))
		} else {
			r.MinSeverity = sev
		}
	}
	r.Rules = sub.list("rules", false)
	r.Tags = sub.list("tags", false)
	for i, d := range sub.list("domains", false) {
		norm, err := normaliseDomain(d)
		if err != nil {
			it.l.problem(it.key, fmt.Sprintf("%s.domains[%d]", sub.path, i), "%q is not a domain name: %v", truncate(d), err)
			continue
		}
		r.Domains = append(r.Domains, norm)
	}
	kinds := []string{
		string(event.BadSignature), string(event.InconsistentTree), string(event.ShrinkingTree),
		string(event.MalformedEntry), string(event.LogUnreachable), string(event.FallingBehind), string(event.ReloadFailed),
	}
	for i, k := range sub.list("events", false) {
		if !slices.Contains(kinds, k) {
			it.l.problem(it.key, fmt.Sprintf("%s.events[%d]", sub.path, i), "unknown log event kind %q: use %s", truncate(k), strings.Join(kinds, ", "))
			continue
		}
		r.Events = append(r.Events, k)
	}
	if len(r.Events) > 0 && !events {
		it.l.problem(it.key, sub.path+".events", "this sink takes no log events (events: false), so it cannot route them")
		r.Events = nil
	}
	return r
}

// normaliseDomain turns a route domain into the form certificate names are
// compared in: "*.Bücher.example." → "xn--bcher-kva.example".
func normaliseDomain(d string) (string, error) {
	d = strings.TrimPrefix(d, "*.")
	d = strings.TrimPrefix(d, ".")
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return "", errors.New("nothing is left without the dots and wildcard")
	}
	ascii, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", errors.New(strings.TrimPrefix(err.Error(), "idna: "))
	}
	// The Lookup profile lets empty labels through; no certificate name
	// has one, so such a route would silently match nothing.
	if strings.Contains(ascii, "..") {
		return "", errors.New("empty label")
	}
	return strings.ToLower(ascii), nil
}

func (it item) group() Group {
	g := Group{MaxNames: DefaultGroupMaxNames, MaxHits: DefaultGroupMaxHits}
	sub, ok := it.section("group")
	if !ok {
		return g
	}
	if raw, path := sub.field("window"); raw != nil {
		g.Window = it.l.asDuration(it.key, path, raw, true)
	}
	g.MaxNames = sub.atLeastOne("max_names", DefaultGroupMaxNames)
	g.MaxHits = sub.atLeastOne("max_hits", DefaultGroupMaxHits)
	return g
}

func (it item) retry() Retry {
	r := Retry{MinBackoff: DefaultRetryMinBackoff, MaxBackoff: DefaultRetryMaxBackoff}
	sub, ok := it.section("retry")
	if !ok {
		return r
	}
	r.MinBackoff = sub.duration("min_backoff", DefaultRetryMinBackoff)
	r.MaxBackoff = sub.duration("max_backoff", DefaultRetryMaxBackoff)
	r.MaxAttempts = sub.count("max_attempts")
	if raw, path := sub.field("max_age"); raw != nil {
		r.MaxAge = it.l.asDuration(it.key, path, raw, true)
	}
	if r.MinBackoff > 0 && r.MaxBackoff > 0 && r.MaxBackoff < r.MinBackoff {
		// Point at whichever of the two was written; max_backoff when both.
		at := sub.path + ".max_backoff"
		if sub.m["max_backoff"] == nil {
			at = sub.path + ".min_backoff"
		}
		it.l.problem(it.key, at, "max_backoff (%v) is shorter than min_backoff (%v)", r.MaxBackoff, r.MinBackoff)
	}
	return r
}

// rate returns a sink's rate limit and burst, with the type's defaults.
func (it item) rate(typ string) (float64, int) {
	rate := 0.0
	if typ == SinkSlack {
		rate = DefaultSlackRate
	}
	if raw, path := it.field("rate"); raw != nil {
		rate = it.l.asFloat(it.key, path, raw)
	}
	raw, path := it.field("burst")
	if raw == nil {
		if rate > 0 {
			return rate, 1
		}
		return rate, 0
	}
	burst := it.atLeastOne("burst", 1)
	if rate == 0 && burst > 0 {
		it.l.problem(it.key, path, "has no effect without a rate above 0")
		return rate, 0
	}
	return rate, burst
}

// url returns the URL of an HTTP sink, from exactly one of url, url_env
// and url_file. An Alertmanager URL is a base that paths are appended to,
// so it may not have a query.
func (it item) url(typ string) string {
	check := func(s string) string { return urlProblem(s, typ != SinkAlertmanager) }
	u, ok := it.indirect("url", true, "URL", check)
	if !ok && it.m["url"] == nil && it.m["url_env"] == nil && it.m["url_file"] == nil {
		it.l.problem(it.key, it.path, "url is required for %s sink (or url_env or url_file)", withArticle(typ))
	}
	return u
}

// indirect returns the value of a setting that may come from the file
// itself (name, only when clear), an environment variable (name_env) or a
// file (name_file): exactly one of them. what names the value in messages;
// check, when not nil, says what is wrong with a value without quoting it.
// It reports missing variables and unreadable files at their key's line,
// and never puts a value read from a variable or a file into a message.
// The second result is false when the setting is absent or invalid.
func (it item) indirect(name string, clear bool, what string, check func(string) string) (string, bool) {
	candidates := []string{name + "_env", name + "_file"}
	if clear {
		candidates = append([]string{name}, candidates...)
	}
	var given []string
	for _, k := range candidates {
		if it.m[k] != nil {
			given = append(given, k)
		}
	}
	switch len(given) {
	case 0:
		return "", false
	case 1:
	default:
		it.l.problem(it.key, it.path+"."+given[1], "use one of %s, not several", strings.Join(given, " and "))
		return "", false
	}
	key := given[0]
	raw, path := it.field(key)
	ref, ok := it.l.asString(it.key, path, raw)
	if ref = strings.TrimSpace(ref); !ok {
		return "", false
	}
	if ref == "" {
		it.l.problem(it.key, path, "must not be empty")
		return "", false
	}
	if key == name { // in clear
		if check != nil {
			if msg := check(ref); msg != "" {
				// Written in clear, so it may be quoted.
				it.l.problem(it.key, path, "%s %q %s", what, truncate(ref), msg)
				return "", false
			}
		}
		return ref, true
	}
	value, source, msg := it.l.readRef(ref, key == name+"_file")
	if msg != "" {
		it.l.problem(it.key, path, "%s", msg)
		return "", false
	}
	if check != nil {
		// Checked values are addresses, where surrounding space is noise.
		value = strings.TrimSpace(value)
		if msg := check(value); msg != "" {
			it.l.problem(it.key, path, "%s in %s %s", what, source, msg)
			return "", false
		}
	}
	return value, true
}

// readRef reads what a *_env key (ref is a variable's name) or, when
// isFile, a *_file key (ref is a path) refers to: the value and where it
// came from ("variable X", "file F"). When it cannot, msg says why, never
// quoting the value or ref when ref may be the value itself (a secret
// pasted where a variable's name belongs). A file's trailing line break is
// removed. Variables it reads are recorded as used, so that a CTWATCH_*
// one is not reported unknown.
func (l *loader) readRef(ref string, isFile bool) (value, source, msg string) {
	if isFile {
		data, err := readSmallFile(ref, maxSecretFileBytes)
		if err != nil {
			return "", "", err.Error()
		}
		if value = strings.TrimRight(string(data), secretFileTrailingSpace); value == "" {
			return "", "", fmt.Sprintf("file %s is empty", ref)
		}
		return value, "file " + ref, ""
	}
	if !validEnvName(ref) {
		// Not quoted: people paste the secret itself here.
		return "", "", "must be the name of an environment variable (letters, digits and _), not a value"
	}
	l.envRefs[ref] = true
	v, set := os.LookupEnv(ref)
	switch {
	case !set:
		return "", "", fmt.Sprintf("variable %s is not set", ref)
	case v == "":
		return "", "", fmt.Sprintf("variable %s is empty", ref)
	}
	return v, "variable " + ref, ""
}

// withArticle puts "a" or "an" before a sink type.
func withArticle(typ string) string {
	if strings.ContainsRune("aeio", rune(typ[0])) {
		return "an " + typ
	}
	return "a " + typ
}

// validEnvName accepts the portable names of environment variables.
func validEnvName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// readSmallFile reads a regular file of at most limit bytes. Devices and
// pipes are refused so that a wrong path cannot block the start.
func readSmallFile(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, reason(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cannot read %s: not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, reason(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, reason(err))
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("cannot read %s: larger than %d bytes, is it the right file?", path, limit)
	}
	return data, nil
}

// reason strips the operation and path from an os error, which the
// message around it already names.
func reason(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// tls decodes and checks a sink's TLS settings: the files must be
// readable and hold what they should, so that a wrong path is found at
// start rather than at the first alert.
func (it item) tls() TLS {
	var t TLS
	sub, ok := it.section("tls")
	if !ok {
		return t
	}
	t = TLS{
		CAFile:             sub.str("ca_file"),
		CertFile:           sub.str("cert_file"),
		KeyFile:            sub.str("key_file"),
		ServerName:         sub.str("server_name"),
		InsecureSkipVerify: sub.boolean("insecure_skip_verify", false),
	}
	checkTLS(t, func(field, msg string) { it.l.problem(it.key, sub.path+"."+field, "%s", msg) })
	return t
}

// checkTLS reports, through report with the field at fault (ca_file,
// cert_file or key_file), what is wrong with t's files: unreadable, not
// PEM, a certificate without its key. Sinks and NATS share it, so that
// both read the same settings the same way.
func checkTLS(t TLS, report func(field, msg string)) {
	if t.CAFile != "" {
		if pem, err := readSmallFile(t.CAFile, maxTLSFileBytes); err != nil {
			report("ca_file", err.Error())
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			report("ca_file", "no PEM certificate in "+t.CAFile)
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		report("cert_file", "needs key_file too")
	case t.CertFile == "" && t.KeyFile != "":
		report("key_file", "needs cert_file too")
	case t.CertFile != "":
		certPEM, certErr := readSmallFile(t.CertFile, maxTLSFileBytes)
		if certErr != nil {
			report("cert_file", certErr.Error())
		}
		keyPEM, keyErr := readSmallFile(t.KeyFile, maxTLSFileBytes)
		if keyErr != nil {
			report("key_file", keyErr.Error())
		}
		if certErr == nil && keyErr == nil {
			// crypto/tls's messages describe the PEM blocks, never
			// their contents, so the key cannot leak through them.
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				report("cert_file", "unusable client certificate and key: "+strings.TrimPrefix(err.Error(), "tls: "))
			}
		}
	}
}

// email decodes an email sink's settings into s.
func (it item) email(s *Sink) {
	s.TLS = it.tls()
	if s.SMTP = it.str("smtp"); s.SMTP == "" {
		it.l.problem(it.key, it.path, "smtp is required for an %s sink", SinkEmail)
	} else if msg := hostPortProblem(s.SMTP, 1); msg != "" {
		it.l.problem(it.key, it.path+".smtp", "%s", msg)
	}
	switch s.SMTPTLS = strings.ToLower(it.str("smtp_tls")); s.SMTPTLS {
	case "":
		s.SMTPTLS = SMTPStartTLS
	case SMTPStartTLS, SMTPImplicitTLS, SMTPNoTLS:
	default:
		it.l.problem(it.key, it.path+".smtp_tls", "must be %s, %s or %s, not %q", SMTPStartTLS, SMTPImplicitTLS, SMTPNoTLS, truncate(s.SMTPTLS))
	}
	if s.From = it.str("from"); s.From == "" {
		it.l.problem(it.key, it.path, "from is required for an %s sink", SinkEmail)
	} else if _, err := mail.ParseAddress(s.From); err != nil {
		it.l.problem(it.key, it.path+".from", "%q is not an email address: %s", truncate(s.From), strings.TrimPrefix(err.Error(), "mail: "))
	}
	s.To = it.list("to", false)
	for i, a := range s.To {
		if _, err := mail.ParseAddress(a); err != nil {
			it.l.problem(it.key, fmt.Sprintf("%s.to[%d]", it.path, i), "%q is not an email address: %s", truncate(a), strings.TrimPrefix(err.Error(), "mail: "))
		}
	}
	if len(s.To) == 0 && !it.flagged[it.path+".to"] {
		it.l.problem(it.key, it.path, "to is required for an %s sink (at least one address)", SinkEmail)
	}
	s.Username = it.str("username")
	password, ok := it.indirect("password", false, "the password", nil)
	switch {
	case ok && s.Username == "":
		at := "password_env"
		if it.m[at] == nil {
			at = "password_file"
		}
		it.l.problem(it.key, it.path+"."+at, "needs username too")
	case ok:
		s.Password = password
	case s.Username != "" && it.m["password_env"] == nil && it.m["password_file"] == nil:
		it.l.problem(it.key, it.path+".username", "needs password_env or password_file too")
	}
}

// hostPortProblem checks host:port with a numeric port of at least least;
// "" when it is fine.
func hostPortProblem(s string, least int) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q must be host:port: %s", truncate(s), strings.TrimPrefix(err.Error(), "address "+s+": "))
	}
	if n, err := strconv.Atoi(port); err != nil || n < least || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
		return fmt.Sprintf("%q: the port must be a number from %d to 65535", truncate(s), least)
	}
	if least > 0 && host == "" {
		return fmt.Sprintf("%q has no host", truncate(s))
	}
	return ""
}

// command decodes an exec sink's program and arguments. The program is
// looked up now: a hook that cannot be run is a mistake in the
// configuration, better reported before anything starts.
func (it item) command() (string, []string) {
	args := it.list("args", true)
	cmd := it.str("command")
	if cmd == "" {
		if it.m["command"] == nil {
			it.l.problem(it.key, it.path, "command is required for an %s sink", SinkExec)
		} else {
			it.l.problem(it.key, it.path+".command", "must not be empty")
		}
		return "", args
	}
	if _, err := exec.LookPath(cmd); err != nil {
		msg := reason(err).Error()
		var ee *exec.Error
		if errors.As(err, &ee) {
			msg = reason(ee.Err).Error()
		}
		if errors.Is(err, exec.ErrDot) {
			msg = "found only in the current directory through PATH; write ./" + cmd
		}
		it.l.problem(it.key, it.path+".command", "cannot run %q: %s", truncate(cmd), msg)
	}
	return cmd, args
}
