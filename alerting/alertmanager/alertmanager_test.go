package alertmanager

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/alerttest"
	"github.com/ctwatch/ctwatch/event"
)

// wireAlert is a postableAlert as the fake Alertmanager reads it: times
// kept as the strings that were sent.
type wireAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

// request is one POST the fake Alertmanager accepted.
type request struct {
	path   string
	header http.Header
	alerts []wireAlert
}

var amLabelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// validate checks a request body the way Alertmanager's API v2 does (and
// a little stricter): a JSON array of objects with only the postableAlert
// fields, non-empty labels with valid names and non-empty UTF-8 values,
// RFC 3339 times with endsAt after startsAt, and a URI as generatorURL.
func validate(body []byte) ([]wireAlert, error) {
	var raws []map[string]json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, fmt.Errorf("body is not an array of objects: %w", err)
	}
	if len(raws) == 0 {
		return nil, errors.New("no alerts")
	}
	alerts := make([]wireAlert, len(raws))
	for i, raw := range raws {
		for k := range raw {
			switch k {
			case "labels", "annotations", "startsAt", "endsAt", "generatorURL":
			default:
				return nil, fmt.Errorf("alert %d: unknown field %q", i, k)
			}
		}
		a := &alerts[i]
		dec := json.NewDecoder(strings.NewReader(string(mustJSON(raw))))
		dec.DisallowUnknownFields()
		if err := dec.Decode(a); err != nil {
			return nil, fmt.Errorf("alert %d: %w", i, err)
		}
		if len(a.Labels) == 0 {
			return nil, fmt.Errorf("alert %d: no labels", i)
		}
		for k, v := range a.Labels {
			if !amLabelName.MatchString(k) || v == "" || !utf8.ValidString(v) {
				return nil, fmt.Errorf("alert %d: bad label %q=%q", i, k, v)
			}
		}
		for k, v := range a.Annotations {
			if !amLabelName.MatchString(k) || !utf8.ValidString(v) {
				return nil, fmt.Errorf("alert %d: bad annotation %q", i, k)
			}
		}
		start, err := time.Parse(time.RFC3339, a.StartsAt)
		if err != nil {
			return nil, fmt.Errorf("alert %d: startsAt: %w", i, err)
		}
		end, err := time.Parse(time.RFC3339, a.EndsAt)
		if err != nil {
			return nil, fmt.Errorf("alert %d: endsAt: %w", i, err)
		}
		if !end.After(start) {
			return nil, fmt.Errorf("alert %d: endsAt before startsAt", i)
		}
		if a.GeneratorURL != "" {
			if u, err := url.Parse(a.GeneratorURL); err != nil || !u.IsAbs() {
				return nil, fmt.Errorf("alert %d: generatorURL %q is not a URI", i, a.GeneratorURL)
			}
		}
	}
	return alerts, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// fakeAM starts an httptest server implementing POST /api/v2/alerts (under
// prefix) and records what it accepted. It answers like Alertmanager:
// 200 for a valid batch, 400 with a JSON error otherwise.
func fakeAM(t *testing.T, prefix string) (string, <-chan request) {
	t.Helper()
	got := make(chan request, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != prefix+"/api/v2/alerts" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			http.Error(w, "content type "+ct, http.StatusUnsupportedMediaType)
			return
		}
		body, _ := io.ReadAll(r.Body)
		alerts, err := validate(body)
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]any{"code": 400, "message": err.Error()})
			t.Errorf("fake Alertmanager refused the batch: %v", err)
			return
		}
		got <- request{path: r.URL.Path, header: r.Header.Clone(), alerts: alerts}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + prefix, got
}

var clock = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)

func fixedClock() time.Time { return clock }

func notifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = fixedClock
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// send delivers m to a fresh fake Alertmanager and returns the one request
// it received.
func send(t *testing.T, cfg Config, m *alerting.Message) request {
	t.Helper()
	base, got := fakeAM(t, "")
	cfg.URL = base
	if err := notifier(t, cfg).Notify(t.Context(), m); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	select {
	case r := <-got:
		return r
	default:
		t.Fatal("Notify returned nil without an accepted POST")
	}
	return request{}
}

func handHit() *event.Hit {
	return &event.Hit{
		ID: "hit-42", Rule: "our-names", Severity: event.SeverityHigh,
		Reason: `lookalike of "bank.example"`,
		Tags:   []string{"kz", "brand"},
		Log:    &event.LogRef{Name: "Google 'Argon2026h1' log", URL: "https://ct.googleapis.com/logs/us1/argon2026h1/", Index: 42},
		Cert: event.CertInfo{
			SHA256:    "1210e877747de0ef9611a9a4e1be36b8ed01e29af23e4284965f43d037c403b9",
			DNSNames:  []string{"www.login.bank.example.co.uk", "bank.example.co.uk"},
			Issuer:    "CN=R11,O=Let's Encrypt,C=US",
			NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			NotAfter:  time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC),
		},
	}
}

func TestHitAlert(t *testing.T) {
	h := handHit()
	r := send(t, Config{
		Labels: map[string]string{"team": "secops"},
		Header: http.Header{"Authorization": {"Bearer t0ken"}},
	}, &alerting.Message{Hit: h})

	for k, want := range map[string]string{
		"X-Ctwatch-Id":    "hit-42",
		"Idempotency-Key": "hit-42",
		"Authorization":   "Bearer t0ken",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	crtsh := "https://crt.sh/?sha256=1210e877747de0ef9611a9a4e1be36b8ed01e29af23e4284965f43d037c403b9"
	want := []wireAlert{{
		Labels: map[string]string{
			"alertname": "ctwatch_hit",
			"rule":      "our-names",
			"severity":  "high",
			"domain":    "example.co.uk",
			"issuer":    "CN=R11,O=Let's Encrypt,C=US",
			"id":        "hit-42",
			"team":      "secops",
		},
		Annotations: map[string]string{
			"summary":    "HIGH hit for rule our-names: www.login.bank.example.co.uk (+1 more)",
			"reason":     `lookalike of "bank.example"`,
			"names":      "www.login.bank.example.co.uk, bank.example.co.uk",
			"tags":       "kz,brand",
			"crtsh":      crtsh,
			"log":        "Google 'Argon2026h1' log",
			"index":      "42",
			"not_before": "2026-01-01T00:00:00Z",
			"not_after":  "2026-04-01T00:00:00Z",
			"description": "Rule our-names (high) matched a certificate for www.login.bank.example.co.uk (+1 more).\n" +
				"Reason: lookalike of \"bank.example\"\n" +
				"Issuer: CN=R11,O=Let's Encrypt,C=US\n" +
				"Valid: 2026-01-01T00:00:00Z to 2026-04-01T00:00:00Z\n" +
				"Log: Google 'Argon2026h1' log, index 42\n" +
				"Certificate: " + crtsh,
		},
		StartsAt:     "2026-05-06T07:08:09Z",
		EndsAt:       "2026-05-07T07:08:09Z",
		GeneratorURL: crtsh,
	}}
	compare(t, r.alerts, want)
}

func TestRealCertificate(t *testing.T) {
	// google.com certificate of the shared corpus: 137 names, issuer WR2.
	corpus, x, _ := alerttest.CorpusHit(t, "1210e877747de0ef.pem")
	// Only the certificate is kept: a low hit with no log, reason or tags.
	h := &event.Hit{ID: "g", Rule: "google", Severity: event.SeverityLow, Cert: corpus.Cert}
	r := send(t, Config{ResolveAfter: time.Hour}, &alerting.Message{Hit: h})
	a := r.alerts[0]
	wantLabels := map[string]string{
		"alertname": "ctwatch_hit", "rule": "google", "severity": "low",
		"domain": "google.com", // first name *.google.com
		"issuer": x.Issuer.String(), "id": "g",
	}
	if !reflect.DeepEqual(a.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", a.Labels, wantLabels)
	}
	if a.Labels["issuer"] != "CN=WR2,O=Google Trust Services,C=US" {
		t.Errorf("issuer %q: not the corpus certificate", a.Labels["issuer"])
	}
	if want := strings.Join(x.DNSNames, ", "); a.Annotations["names"] != want || len(x.DNSNames) != 137 {
		t.Errorf("names annotation %q, want all 137 names", a.Annotations["names"])
	}
	if a.Annotations["not_after"] != x.NotAfter.UTC().Format(time.RFC3339) {
		t.Errorf("not_after %q", a.Annotations["not_after"])
	}
	if a.EndsAt != "2026-05-06T08:08:09Z" {
		t.Errorf("endsAt %q with resolve_after 1h", a.EndsAt)
	}
	if _, ok := a.Annotations["log"]; ok {
		t.Error("log annotation for a hit without log")
	}
}

func TestSameHitSameAlert(t *testing.T) {
	// Sent twice, a day apart, and once inside a digest: Alertmanager must
	// see one alert, i.e. the same label set every time.
	base, got := fakeAM(t, "")
	now := clock
	n := notifier(t, Config{URL: base, Now: func() time.Time { return now }})
	h := handHit()
	other := handHit()
	other.ID = "hit-43"
	msgs := []*alerting.Message{
		{Hit: h},
		{Hit: h},
		{Digest: &event.Digest{ID: "d", Kind: event.DigestKind, Rule: h.Rule, Count: 2, Hits: []event.Hit{*other, *h}}},
	}
	var sets []map[string]string
	for _, m := range msgs {
		if err := n.Notify(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		r := <-got
		sets = append(sets, r.alerts[len(r.alerts)-1].Labels)
		now = now.Add(24 * time.Hour)
	}
	for i := 1; i < len(sets); i++ {
		if !reflect.DeepEqual(sets[i], sets[0]) {
			t.Errorf("delivery %d labels %v, first %v", i, sets[i], sets[0])
		}
	}
}

func TestLogEvents(t *testing.T) {
	tests := []struct {
		kind     event.LogEventKind
		severity string
	}{
		{event.BadSignature, "critical"},
		{event.InconsistentTree, "critical"},
		{event.ShrinkingTree, "critical"},
		{event.MalformedEntry, "warning"},
		{event.LogUnreachable, "warning"},
		{event.FallingBehind, "warning"},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			ev := &event.LogEvent{
				ID: "ev-" + string(tt.kind), Kind: tt.kind,
				Log:    event.LogRef{Name: "Argon", URL: "https://ct.example/argon/", Index: 7},
				Time:   time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600)),
				Detail: "something happened",
			}
			r := send(t, Config{}, &alerting.Message{Event: ev})
			want := []wireAlert{{
				Labels: map[string]string{
					"alertname": "ctwatch_log_event",
					"kind":      string(tt.kind),
					"log":       "Argon",
					"id":        ev.ID,
					"severity":  tt.severity,
				},
				Annotations: map[string]string{
					"summary":     "Log " + string(tt.kind) + ": Argon",
					"detail":      "something happened",
					"log_url":     "https://ct.example/argon/",
					"index":       "7",
					"time":        "2026-03-04T04:06:07Z",
					"description": "Log Argon (https://ct.example/argon/): " + string(tt.kind) + ": something happened",
				},
				StartsAt:     "2026-05-06T07:08:09Z",
				EndsAt:       "2026-05-07T07:08:09Z",
				GeneratorURL: "https://ct.example/argon/",
			}}
			compare(t, r.alerts, want)
		})
	}
}

func TestEventWithUnusableLogURL(t *testing.T) {
	ev := &event.LogEvent{ID: "e", Kind: event.LogUnreachable, Log: event.LogRef{Name: "L", URL: "ct.example/no-scheme"}}
	r := send(t, Config{}, &alerting.Message{Event: ev})
	if g := r.alerts[0].GeneratorURL; g != "" {
		t.Errorf("generatorURL %q from a URL without scheme", g)
	}
}

func TestDigestOneAlertPerHit(t *testing.T) {
	d := &event.Digest{ID: "digest-1", Kind: event.DigestKind, Rule: "our-names", Severity: event.SeverityHigh, Count: 1000}
	for i := range 1000 {
		d.Hits = append(d.Hits, event.Hit{
			ID: fmt.Sprintf("hit-%d", i), Rule: "our-names", Severity: event.SeverityHigh,
			Cert: event.CertInfo{DNSNames: []string{fmt.Sprintf("h%d.bank.example", i)}, Issuer: "CN=R11"},
		})
	}
	r := send(t, Config{}, &alerting.Message{Digest: d})
	if len(r.alerts) != 1000 {
		t.Fatalf("%d alerts, want 1000", len(r.alerts))
	}
	if got := r.header.Get("X-Ctwatch-Id"); got != "digest-1" {
		t.Errorf("X-Ctwatch-Id %q, want the digest's id", got)
	}
	for i, a := range r.alerts {
		want := map[string]string{
			"alertname": "ctwatch_hit", "rule": "our-names", "severity": "high",
			"domain": "bank.example", "issuer": "CN=R11", "id": fmt.Sprintf("hit-%d", i),
		}
		if !reflect.DeepEqual(a.Labels, want) {
			t.Fatalf("alert %d labels %v, want %v", i, a.Labels, want)
		}
	}
}

func TestTestAlerts(t *testing.T) {
	tests := []struct {
		name    string
		m       *alerting.Message
		summary string
	}{
		{"hit", &alerting.Message{Hit: handHit(), Test: true}, "TEST — HIGH hit for rule our-names: "},
		{"event", &alerting.Message{Event: &event.LogEvent{ID: "e", Kind: event.FallingBehind, Log: event.LogRef{Name: "L"}}, Test: true}, "TEST — Log falling_behind: L"},
		{"digest", &alerting.Message{Digest: &event.Digest{ID: "d", Hits: []event.Hit{*handHit()}}, Test: true}, "TEST — HIGH hit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, Config{}, tt.m)
			for _, a := range r.alerts {
				if a.Labels["test"] != "true" {
					t.Errorf("labels %v without test=\"true\"", a.Labels)
				}
				if !strings.HasPrefix(a.Annotations["summary"], tt.summary) {
					t.Errorf("summary %q, want prefix %q", a.Annotations["summary"], tt.summary)
				}
				if !strings.HasPrefix(a.Annotations["description"], "TEST alert") {
					t.Errorf("description %q does not start with the test warning", a.Annotations["description"])
				}
			}
		})
	}
	// Without Test, no test label at all (not test="false": a matcher
	// test!="true" must keep working, and the label set stays that of
	// the real alert).
	r := send(t, Config{}, &alerting.Message{Hit: handHit()})
	if _, ok := r.alerts[0].Labels["test"]; ok {
		t.Error("test label on a real alert")
	}
}

func TestHostileFields(t *testing.T) {
	names := []string{"bad\xffname.example\n<script>alert(1)</script>"}
	for i := range 5000 {
		names = append(names, fmt.Sprintf("n%d.bank.example", i))
	}
	h := &event.Hit{
		ID: "x", Rule: "r", Severity: event.SeverityHigh,
		Reason: strings.Repeat("é", 5000),
		Cert: event.CertInfo{
			DNSNames: names,
			Issuer:   "CN=\xc3" + strings.Repeat("🙂", 1000),
		},
	}
	// The fake Alertmanager rejects invalid UTF-8 and empty values, which
	// would fail the test.
	r := send(t, Config{}, &alerting.Message{Hit: h})
	a := r.alerts[0]
	if got := a.Labels["domain"]; got != "bad\uFFFDname.example\n<script>alert(1)</script>" {
		t.Errorf("domain label %q", got)
	}
	if l := a.Labels["issuer"]; len(l) > 1024 || !strings.HasPrefix(l, "CN=\uFFFD🙂") || !strings.HasSuffix(l, "…") {
		t.Errorf("issuer label of %d bytes: %.40q…", len(l), l)
	}
	if ann := a.Annotations["names"]; len(ann) > 4096 || !strings.HasSuffix(ann, " more)") {
		t.Errorf("names annotation of %d bytes ends %q", len(ann), ann[max(0, len(ann)-30):])
	} else {
		shown := strings.Count(ann, ", ") + 1
		if want := fmt.Sprintf(" (+%d more)", len(names)-shown); !strings.HasSuffix(ann, want) {
			t.Errorf("names annotation ends %q, want %q", ann[len(ann)-30:], want)
		}
	}
	if l := a.Annotations["reason"]; len(l) > 2048 || !utf8.ValidString(l) {
		t.Errorf("reason annotation of %d bytes", len(l))
	}
}

func TestStatusHandling(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		answer    string
		header    http.Header
		wantErr   string
		wantAfter time.Duration
	}{
		{"200", 200, "", nil, "", 0},
		{"400 quotes the body", 400, `{"code":400,"message":"labels: invalid"}`, nil, `status 400: "{\"code\":400,\"message\":\"labels: invalid\"}"`, 0},
		{"503 with Retry-After", 503, "overloaded", http.Header{"Retry-After": {"12"}}, "status 503", 12 * time.Second},
		{"429 with Retry-After", 429, "", http.Header{"Retry-After": {"7"}}, "status 429", 7 * time.Second},
		{"503 without", 503, "", nil, "status 503", 0},
		{"500", 500, "boom", nil, `status 500: "boom"`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.answer)
			}))
			defer srv.Close()
			n := notifier(t, Config{URL: srv.URL})
			err := n.Notify(t.Context(), &alerting.Message{Hit: handHit()})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
			alerttest.CheckRetryAfter(t, err, tt.wantAfter)
		})
	}
}

func TestURLs(t *testing.T) {
	tests := []struct {
		name, prefix, suffix string
	}{
		{"base", "", ""},
		{"trailing slash", "", "/"},
		{"under a path", "/alertmanager", ""},
		{"under a path with slash", "/alertmanager", "/"},
		{"full endpoint", "", "/api/v2/alerts"},
		{"full endpoint under a path", "/am", "/api/v2/alerts/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, got := fakeAM(t, tt.prefix)
			n := notifier(t, Config{URL: base + tt.suffix})
			if err := n.Notify(t.Context(), &alerting.Message{Hit: handHit()}); err != nil {
				t.Fatal(err)
			}
			if r := <-got; r.path != tt.prefix+"/api/v2/alerts" {
				t.Errorf("posted to %q", r.path)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	const u = "http://user:s3cret@am.example:9093"
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"label conflict", Config{URL: u, Labels: map[string]string{"severity": "page"}}, `label "severity" is set by ctwatch`},
		{"alertname conflict", Config{URL: u, Labels: map[string]string{"alertname": "x"}}, "set by ctwatch"},
		{"invalid label name", Config{URL: u, Labels: map[string]string{"team-name": "x"}}, "invalid label name"},
		{"label starting with a digit", Config{URL: u, Labels: map[string]string{"1team": "x"}}, "invalid label name"},
		{"reserved prefix", Config{URL: u, Labels: map[string]string{"__name__": "x"}}, "invalid label name"},
		{"empty label value", Config{URL: u, Labels: map[string]string{"team": ""}}, "non-empty"},
		{"invalid UTF-8 label value", Config{URL: u, Labels: map[string]string{"team": "\xff"}}, "non-empty UTF-8"},
		{"ctwatch header", Config{URL: u, Header: http.Header{"X-Ctwatch-Id": {"x"}}}, "set by ctwatch"},
		{"content type", Config{URL: u, Header: http.Header{"content-type": {"text/plain"}}}, "set by ctwatch"},
		{"header injection", Config{URL: u, Header: http.Header{"Authorization": {"Bearer s3cret\r\nX-Evil: 1"}}}, "header Authorization: invalid value"},
		{"invalid header name", Config{URL: u, Header: http.Header{"Bad Name": {"x"}}}, "invalid header name"},
		{"negative resolve", Config{URL: u, ResolveAfter: -time.Hour}, "negative resolve_after"},
		{"not http", Config{URL: "ftp://user:s3cret@am.example"}, "http(s)"},
		{"unparsable", Config{URL: "http://user:s3cret@am example\x7f"}, "invalid URL"},
		{"empty", Config{}, "http(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}

func TestNotifyRefuses(t *testing.T) {
	n := notifier(t, Config{URL: "http://am.invalid:9093"})
	tests := []struct {
		name string
		m    *alerting.Message
	}{
		{"empty", &alerting.Message{}},
		{"no id", &alerting.Message{Hit: &event.Hit{Rule: "r"}}},
		{"id with CR LF", &alerting.Message{Hit: &event.Hit{ID: "a\r\nX-Evil: 1"}}},
		{"empty digest", &alerting.Message{Digest: &event.Digest{ID: "d"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// am.invalid does not resolve: refusing must come first.
			if err := n.Notify(t.Context(), tt.m); err == nil || strings.Contains(err.Error(), "am.invalid") {
				t.Errorf("Notify = %v, want a refusal before any request", err)
			}
		})
	}
}

func TestRegisteredDomain(t *testing.T) {
	tests := []struct{ in, want string }{
		{"www.bank.example", "bank.example"},
		{"*.login.bank.co.uk", "bank.co.uk"},
		{"WWW.Bank.COM.", "bank.com"},
		{"bank.com", "bank.com"},
		{"co.uk", "co.uk"},               // a public suffix: itself
		{"192.0.2.1", "192.0.2.1"},       // an address has no registered domain
		{"a..b.example", "a..b.example"}, // empty label: itself
		{"xn--bnk-sna.example", "xn--bnk-sna.example"},
	}
	for _, tt := range tests {
		if got := registeredDomain(tt.in); got != tt.want {
			t.Errorf("registeredDomain(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestClean(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		want  string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "…"},
		{"abcdef", 5, "ab…"},
		{"ééé", 5, "é…"},
		{"ééé", 4, "…"}, // never half an é
		{"a\xffb", 10, "a\uFFFDb"},
	}
	for _, tt := range tests {
		got := clean(tt.in, tt.limit)
		if got != tt.want {
			t.Errorf("clean(%q, %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
		}
		if len(got) > tt.limit || !utf8.ValidString(got) {
			t.Errorf("clean(%q, %d) = %q: too long or invalid", tt.in, tt.limit, got)
		}
	}
}

func compare(t *testing.T, got, want []wireAlert) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d alerts, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !reflect.DeepEqual(g.Labels, w.Labels) {
			t.Errorf("alert %d labels\n got %v\nwant %v", i, g.Labels, w.Labels)
		}
		for k := range w.Annotations {
			if g.Annotations[k] != w.Annotations[k] {
				t.Errorf("alert %d annotation %s\n got %q\nwant %q", i, k, g.Annotations[k], w.Annotations[k])
			}
		}
		for k := range g.Annotations {
			if _, ok := w.Annotations[k]; !ok {
				t.Errorf("alert %d: unexpected annotation %s=%q", i, k, g.Annotations[k])
			}
		}
		if g.StartsAt != w.StartsAt || g.EndsAt != w.EndsAt || g.GeneratorURL != w.GeneratorURL {
			t.Errorf("alert %d: startsAt %q endsAt %q generatorURL %q, want %q %q %q",
				i, g.StartsAt, g.EndsAt, g.GeneratorURL, w.StartsAt, w.EndsAt, w.GeneratorURL)
		}
	}
}
