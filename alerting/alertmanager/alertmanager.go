// Package alertmanager is the sink that hands hits and log events to a
// Prometheus Alertmanager, so that teams who already run one get its
// routing, grouping, silences, inhibition and receivers for ctwatch alerts
// without any ctwatch-side configuration beyond the URL.
//
// Every message becomes alerts POSTed as one JSON array to the v2 API
// (<base>/api/v2/alerts): a hit is one alert, a digest is one alert per hit
// (Alertmanager groups them itself, and better: per the operator's
// group_by), a log event is one alert.
//
// Alertmanager identifies an alert by its label set, and merges an alert it
// receives again into the one it has. The labels of an alert are therefore
// a pure function of what it reports (the hit ID among them), never of when
// or how often it is sent: a retry, a replay after a restart, or the same
// hit once alone and once in a digest all update one alert. startsAt is
// the time of sending and endsAt startsAt + ResolveAfter, after which
// Alertmanager resolves the alert on its own: a certificate does not
// "recover", so nothing else would.
package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/publicsuffix"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/httpsink"
	"github.com/ctwatch/ctwatch/event"
)

// Alert names. Every hit is alertname="ctwatch_hit", whatever its rule,
// rather than the rule's name: one route (alertname="ctwatch_hit") then
// takes all of ctwatch's hits, an inhibition rule or silence can name
// them all at once, and a rule renamed in ctwatch does not fall out of
// the operator's routing tree; the rule is in its own label for finer
// matching.
const (
	HitAlertName   = "ctwatch_hit"
	EventAlertName = "ctwatch_log_event"
)

// Label names ctwatch sets. Config.Labels may not use them.
const (
	LabelAlertName = "alertname"
	LabelRule      = "rule"
	LabelSeverity  = "severity"
	// LabelDomain is the registered domain (eTLD+1, e.g. bank.example for
	// www.login.bank.example) of the certificate's first DNS name: the
	// unit teams own and route on. When the name has no registered
	// domain (a public suffix, an IP address, a hostile string) it is the
	// name itself.
	LabelDomain = "domain"
	// LabelIssuer is the issuer's full distinguished name as in the hit,
	// e.g. "CN=R11,O=Let's Encrypt,C=US": unambiguous, and matchable with
	// a regular expression on the CN.
	LabelIssuer = "issuer"
	// LabelID is the hit's or event's ID: it makes every hit its own
	// alert, and a hit sent again the same alert.
	LabelID   = "id"
	LabelTest = "test"
	LabelKind = "kind"
	LabelLog  = "log"
)

// ownLabel reports whether ctwatch sets a label of this name on some alert.
func ownLabel(name string) bool {
	switch name {
	case LabelAlertName, LabelRule, LabelSeverity, LabelDomain, LabelIssuer, LabelID, LabelTest, LabelKind, LabelLog:
		return true
	}
	return false
}

// validLabelName reports whether name has the classic Prometheus label
// name syntax [a-zA-Z_][a-zA-Z0-9_]*, which every Alertmanager version
// accepts (newer ones take any UTF-8 name, older ones reject the whole
// batch), and is not reserved for internal use (leading "__").
func validLabelName(name string) bool {
	if name == "" || strings.HasPrefix(name, "__") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

const (
	// DefaultResolveAfter is how long an alert stays active when
	// Config.ResolveAfter is 0.
	DefaultResolveAfter = 24 * time.Hour
	// apiPath is where Alertmanager takes alerts, under its base URL.
	apiPath = "/api/v2/alerts"

	// Size caps, in bytes, for values built from hostile certificate
	// fields: large enough for anything honest, small enough that one
	// certificate with thousands of names cannot bloat every
	// notification Alertmanager sends.
	maxLabel       = 1024
	maxAnnotation  = 2048
	maxNames       = 4096
	maxDescription = 8192
)

// Config says where and how to deliver. The loader resolves url /
// url_env / url_file into URL before New sees it.
type Config struct {
	// URL is Alertmanager's base URL, e.g. http://alertmanager:9093 or
	// https://example.com/alertmanager/; alerts go to URL + /api/v2/alerts.
	// A URL that already ends in /api/v2/alerts is taken as is. It may hold
	// credentials, so errors show only its scheme and host.
	URL string
	// Timeout bounds one request; 0 means httpsink.DefaultTimeout.
	Timeout time.Duration
	// TLS configures the client; ignored when Client is set.
	TLS httpsink.TLS
	// Header holds extra request headers, e.g. Authorization for an
	// Alertmanager behind an authenticating proxy. Headers ctwatch sets
	// (Content-Type, X-Ctwatch-*, Idempotency-Key) are refused.
	Header http.Header
	// Labels are added to every alert, e.g. team="secops" to route on.
	// Names must be classic label names and must not be one of ctwatch's
	// own (New refuses a conflict rather than silently picking a winner:
	// a route matching team= on the operator's label would otherwise
	// quietly stop matching); values must be non-empty UTF-8.
	Labels map[string]string
	// ResolveAfter is how long after sending an alert Alertmanager
	// considers it resolved; 0 means DefaultResolveAfter.
	ResolveAfter time.Duration
	// Client sends the requests; nil means one that does not follow
	// redirects. Tests set it.
	Client *http.Client
	// Now is the clock for startsAt; nil means time.Now. Tests fix it.
	Now func() time.Time
}

// Alert is one alert as Alertmanager's API v2 takes it (postableAlert).
// It is the wire format of this sink: tests and tools decode into it.
type Alert struct {
	// Labels identify the alert; never empty (alertname is always set).
	Labels map[string]string `json:"labels"`
	// Annotations carry what a person reads: summary, description and
	// the details of the hit or event.
	Annotations map[string]string `json:"annotations,omitempty"`
	// StartsAt and EndsAt are RFC 3339 times in UTC.
	StartsAt time.Time `json:"startsAt"`
	EndsAt   time.Time `json:"endsAt"`
	// GeneratorURL links to the cause: the certificate on crt.sh, or the
	// log for a log event; absent when there is no usable URL.
	GeneratorURL string `json:"generatorURL,omitempty"`
}

// Notifier delivers messages to one Alertmanager (or one cluster behind
// one URL). It is safe for concurrent use and keeps no state between
// calls.
type Notifier struct {
	poster       *httpsink.Poster
	header       http.Header
	labels       map[string]string
	resolveAfter time.Duration
	now          func() time.Time
}

// New checks cfg and returns a Notifier. Errors never echo the URL.
func New(cfg Config) (*Notifier, error) {
	endpoint, err := alertsURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("alertmanager: %w", err)
	}
	if cfg.ResolveAfter < 0 {
		return nil, fmt.Errorf("alertmanager: negative resolve_after %s", cfg.ResolveAfter)
	}
	for name, value := range cfg.Labels {
		switch {
		case ownLabel(name):
			return nil, fmt.Errorf("alertmanager: label %q is set by ctwatch; choose another name", name)
		case !validLabelName(name):
			return nil, fmt.Errorf("alertmanager: invalid label name %q", name)
		case value == "" || !utf8.ValidString(value):
			return nil, fmt.Errorf("alertmanager: label %q: value must be non-empty UTF-8", name)
		}
	}
	for name, values := range cfg.Header {
		canon := http.CanonicalHeaderKey(name)
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fmt.Errorf("alertmanager: invalid header name %q", name)
		}
		if canon == "Content-Type" || canon == httpsink.IdempotencyKeyHeader || strings.HasPrefix(canon, "X-Ctwatch-") {
			return nil, fmt.Errorf("alertmanager: header %s is set by ctwatch", canon)
		}
		for _, v := range values {
			if !httpguts.ValidHeaderFieldValue(v) {
				// The value may be a credential: name the header only.
				return nil, fmt.Errorf("alertmanager: header %s: invalid value", canon)
			}
		}
	}
	p, err := httpsink.New(httpsink.Config{URL: endpoint, Timeout: cfg.Timeout, TLS: cfg.TLS, Client: cfg.Client})
	if err != nil {
		return nil, fmt.Errorf("alertmanager: %w", err)
	}
	n := &Notifier{
		poster:       p,
		header:       cfg.Header.Clone(),
		labels:       maps.Clone(cfg.Labels),
		resolveAfter: cfg.ResolveAfter,
		now:          cfg.Now,
	}
	if n.resolveAfter == 0 {
		n.resolveAfter = DefaultResolveAfter
	}
	if n.now == nil {
		n.now = time.Now
	}
	return n, nil
}

// alertsURL returns the alerts endpoint under base.
func alertsURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", errors.New("invalid URL") // err would echo the URL
	}
	p := strings.TrimRight(u.Path, "/")
	if !strings.HasSuffix(p, apiPath) {
		p += apiPath
	}
	u.Path, u.RawPath = p, ""
	return u.String(), nil
}

// Notify POSTs the alerts for m, making exactly one attempt. It returns nil
// on a 2xx answer; an error wrapping *alerting.RetryAfterError on 429 or
// 503 with Retry-After; any other error otherwise, quoting Alertmanager's
// answer (a 400 says which field it rejected). A message without ID, or
// with neither hit, event nor digest, is an error.
func (n *Notifier) Notify(ctx context.Context, m *alerting.Message) error {
	id := m.ID()
	if id == "" {
		return errors.New("alertmanager: message without id")
	}
	if !httpguts.ValidHeaderFieldValue(id) {
		return errors.New("alertmanager: message id is not a valid header value")
	}
	alerts, err := n.alerts(m)
	if err != nil {
		return err
	}
	body, err := json.Marshal(alerts)
	if err != nil {
		return fmt.Errorf("alertmanager: encode: %w", err)
	}
	header := n.header.Clone()
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Type", "application/json")
	header.Set(httpsink.IDHeader, id)
	header.Set(httpsink.IdempotencyKeyHeader, id)
	if err := n.poster.Post(ctx, body, header); err != nil {
		return fmt.Errorf("alertmanager: %w", err)
	}
	return nil
}

// alerts returns what Notify posts for m.
func (n *Notifier) alerts(m *alerting.Message) ([]Alert, error) {
	start := n.now().UTC()
	end := start.Add(n.resolveAfter)
	switch {
	case m.Hit != nil:
		return []Alert{n.hitAlert(m.Hit, m.Test, start, end)}, nil
	case m.Event != nil:
		return []Alert{n.eventAlert(m.Event, m.Test, start, end)}, nil
	case m.Digest != nil:
		if len(m.Digest.Hits) == 0 {
			return nil, errors.New("alertmanager: digest holds no hits")
		}
		out := make([]Alert, len(m.Digest.Hits))
		for i := range m.Digest.Hits {
			out[i] = n.hitAlert(&m.Digest.Hits[i], m.Test, start, end)
		}
		return out, nil
	}
	return nil, errors.New("alertmanager: message holds no hit, event or digest")
}

// hitAlert is the alert for one hit; a hit alone and the same hit in a
// digest give the same alert.
func (n *Notifier) hitAlert(h *event.Hit, test bool, start, end time.Time) Alert {
	names := h.Cert.DNSNames
	labels := n.baseLabels(test)
	setLabel(labels, LabelAlertName, HitAlertName)
	setLabel(labels, LabelRule, h.Rule)
	setLabel(labels, LabelSeverity, string(h.Severity))
	if len(names) > 0 {
		setLabel(labels, LabelDomain, registeredDomain(names[0]))
	}
	setLabel(labels, LabelIssuer, h.Cert.Issuer)
	setLabel(labels, LabelID, h.ID)

	subject := "no DNS names"
	switch len(names) {
	case 0:
	case 1:
		subject = names[0]
	default:
		subject = fmt.Sprintf("%s (+%d more)", names[0], len(names)-1)
	}
	summary := fmt.Sprintf("%s%s hit for rule %s: %s", testPrefix(test), strings.ToUpper(string(h.Severity)), h.Rule, subject)

	ann := map[string]string{}
	setAnnotation(ann, "summary", summary, maxAnnotation)
	setAnnotation(ann, "reason", h.Reason, maxAnnotation)
	setAnnotation(ann, "names", joinNames(names, maxNames), maxNames)
	if len(h.Tags) > 0 {
		setAnnotation(ann, "tags", strings.Join(h.Tags, ","), maxAnnotation)
	}
	var crtsh string
	if h.Cert.SHA256 != "" {
		crtsh = alerting.CrtshURL(h.Cert.SHA256)
		setAnnotation(ann, "crtsh", crtsh, maxAnnotation)
	}
	if h.Log != nil {
		setAnnotation(ann, "log", h.Log.Name, maxAnnotation)
		ann["index"] = strconv.FormatUint(h.Log.Index, 10)
	}
	if !h.Cert.NotBefore.IsZero() {
		ann["not_before"] = h.Cert.NotBefore.UTC().Format(time.RFC3339)
	}
	if !h.Cert.NotAfter.IsZero() {
		ann["not_after"] = h.Cert.NotAfter.UTC().Format(time.RFC3339)
	}

	var d strings.Builder
	if test {
		d.WriteString("TEST alert sent by `ctwatch sinks test`: nothing was found, do not act on it.\n")
	}
	fmt.Fprintf(&d, "Rule %s (%s) matched a certificate for %s.\n", h.Rule, h.Severity, subject)
	if h.Reason != "" {
		fmt.Fprintf(&d, "Reason: %s\n", h.Reason)
	}
	fmt.Fprintf(&d, "Issuer: %s\n", h.Cert.Issuer)
	if !h.Cert.NotBefore.IsZero() || !h.Cert.NotAfter.IsZero() {
		fmt.Fprintf(&d, "Valid: %s to %s\n", ann["not_before"], ann["not_after"])
	}
	if h.Cert.Precert {
		d.WriteString("Seen as a precertificate.\n")
	}
	if h.Log != nil {
		fmt.Fprintf(&d, "Log: %s, index %d\n", h.Log.Name, h.Log.Index)
	}
	if crtsh != "" {
		fmt.Fprintf(&d, "Certificate: %s\n", crtsh)
	}
	setAnnotation(ann, "description", strings.TrimSuffix(d.String(), "\n"), maxDescription)

	return Alert{Labels: labels, Annotations: ann, StartsAt: start, EndsAt: end, GeneratorURL: crtsh}
}

// eventAlert is the alert for one log event.
func (n *Notifier) eventAlert(ev *event.LogEvent, test bool, start, end time.Time) Alert {
	labels := n.baseLabels(test)
	setLabel(labels, LabelAlertName, EventAlertName)
	setLabel(labels, LabelKind, string(ev.Kind))
	setLabel(labels, LabelLog, ev.Log.Name)
	setLabel(labels, LabelID, ev.ID)
	setLabel(labels, LabelSeverity, EventSeverity(ev.Kind))

	ann := map[string]string{}
	setAnnotation(ann, "summary", testPrefix(test)+"Log "+string(ev.Kind)+": "+ev.Log.Name, maxAnnotation)
	setAnnotation(ann, "detail", ev.Detail, maxDescription)
	setAnnotation(ann, "log_url", ev.Log.URL, maxAnnotation)
	if ev.Log.Index != 0 {
		ann["index"] = strconv.FormatUint(ev.Log.Index, 10)
	}
	if !ev.Time.IsZero() {
		ann["time"] = ev.Time.UTC().Format(time.RFC3339)
	}
	var d strings.Builder
	if test {
		d.WriteString("TEST alert sent by `ctwatch sinks test`: nothing happened, do not act on it.\n")
	}
	fmt.Fprintf(&d, "Log %s", ev.Log.Name)
	if ev.Log.URL != "" {
		fmt.Fprintf(&d, " (%s)", ev.Log.URL)
	}
	fmt.Fprintf(&d, ": %s", ev.Kind)
	if ev.Detail != "" {
		fmt.Fprintf(&d, ": %s", ev.Detail)
	}
	setAnnotation(ann, "description", d.String(), maxDescription)

	return Alert{Labels: labels, Annotations: ann, StartsAt: start, EndsAt: end, GeneratorURL: httpURL(ev.Log.URL)}
}

// EventSeverity is the severity label of a log event: "critical" for the
// kinds that mean the log misbehaved (its history can no longer be
// trusted), "warning" for the operational ones.
func EventSeverity(k event.LogEventKind) string {
	switch k {
	case event.BadSignature, event.InconsistentTree, event.ShrinkingTree:
		return "critical"
	}
	return "warning"
}

// baseLabels returns a fresh label set with the operator's labels and the
// test mark.
func (n *Notifier) baseLabels(test bool) map[string]string {
	labels := make(map[string]string, len(n.labels)+8)
	maps.Copy(labels, n.labels)
	if test {
		labels[LabelTest] = "true"
	}
	return labels
}

// setLabel sets a label to a sanitised v, or leaves it out when v is
// empty: Alertmanager drops empty labels itself, and an alert's identity
// should not depend on whether a receiver kept them.
func setLabel(labels map[string]string, name, v string) {
	if v = clean(v, maxLabel); v != "" {
		labels[name] = v
	}
}

// setAnnotation sets an annotation to a sanitised v, unless v is empty.
func setAnnotation(ann map[string]string, name, v string, limit int) {
	if v = clean(v, limit); v != "" {
		ann[name] = v
	}
}

// clean makes hostile v a valid UTF-8 string of at most limit bytes
// (Alertmanager rejects a whole batch over one invalid label value), cut
// on a rune boundary with "…" when cut.
func clean(v string, limit int) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	if len(v) <= limit {
		return v
	}
	cut := limit - len("…")
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut] + "…"
}

// joinNames lists names separated by ", " in at most limit bytes, ending
// with "(+N more)" for the names that did not fit.
func joinNames(names []string, limit int) string {
	var b strings.Builder
	for i, name := range names {
		name = clean(name, 256) // a DNS name is at most 253
		tail := fmt.Sprintf(" (+%d more)", len(names)-i)
		if b.Len()+len(", ")+len(name)+len(tail) > limit && i > 0 {
			b.WriteString(tail)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(name)
	}
	return b.String()
}

// registeredDomain returns the registered domain of a DNS name (wildcard
// and trailing dot removed, lower-cased), or the name itself when it has
// none (a public suffix, an IP address a hostile certificate put among
// its DNS names, a name with an empty label).
func registeredDomain(name string) string {
	n := strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(name), "*."), ".")
	if _, err := netip.ParseAddr(n); err == nil {
		return n
	}
	if d, err := publicsuffix.EffectiveTLDPlusOne(n); err == nil {
		return d
	}
	return n
}

// httpURL returns u when it is an absolute http(s) URL (Alertmanager
// rejects a generatorURL that is not a URI), else "".
func httpURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return ""
	}
	return p.String()
}

// testPrefix starts the summary of every test alert.
func testPrefix(test bool) string {
	if test {
		return "TEST — "
	}
	return ""
}
