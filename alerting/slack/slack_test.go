package slack

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/alerttest"
	"github.com/ctwatch/ctwatch/alerting/httpsink"
	"github.com/ctwatch/ctwatch/event"
)

// The wire shapes a test decodes the posted JSON into: our own, not
// slack-go's, so that the test checks what goes on the wire rather than
// what a library makes of it.
type wireText struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Emoji    *bool  `json:"emoji,omitempty"`
	Verbatim bool   `json:"verbatim,omitempty"`
}

type wireBlock struct {
	Type     string     `json:"type"`
	Text     *wireText  `json:"text,omitempty"`
	Fields   []wireText `json:"fields,omitempty"`
	Elements []wireText `json:"elements,omitempty"`
}

type wireMessage struct {
	Text        string      `json:"text"`
	Blocks      []wireBlock `json:"blocks"`
	UnfurlLinks *bool       `json:"unfurl_links"`
	UnfurlMedia *bool       `json:"unfurl_media"`
}

// posted is one request the test receiver got.
type posted struct {
	method, path string
	header       http.Header
	body         []byte
	msg          wireMessage
}

// receiver starts an httptest server standing in for Slack: it records
// every request on the returned channel and answers with status and body.
func receiver(t *testing.T, status int, answer string, header http.Header) (string, <-chan posted) {
	t.Helper()
	got := make(chan posted, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver: %v", err)
		}
		p := posted{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body}
		if err := json.Unmarshal(body, &p.msg); err != nil {
			t.Errorf("receiver: body is not JSON: %v", err)
		}
		got <- p
		for k, vs := range header {
			w.Header()[k] = vs
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/services/T000/B000/SECRETTOKEN", got
}

func notifier(t *testing.T, url string) *Notifier {
	t.Helper()
	n, err := New(Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// deliver posts m through a fresh receiver answering 200 "ok" and returns
// what Slack would have received.
func deliver(t *testing.T, m *alerting.Message) posted {
	t.Helper()
	url, got := receiver(t, http.StatusOK, "ok", nil)
	if err := notifier(t, url).Notify(t.Context(), m); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	select {
	case p := <-got:
		select {
		case extra := <-got:
			t.Fatalf("a second POST: %s", extra.body)
		default:
		}
		checkLimits(t, p.msg)
		return p
	default:
		t.Fatal("Notify returned nil without posting")
	}
	return posted{}
}

func plainText(s string) *wireText {
	yes := true
	return &wireText{Type: "plain_text", Text: s, Emoji: &yes}
}

func md(s string) wireText { return wireText{Type: "mrkdwn", Text: s, Verbatim: true} }

func mdp(s string) *wireText { t := md(s); return &t }

func TestHitFromRealCertificate(t *testing.T) {
	// google.com certificate of the corpus: 137 DNS names (manifest.tsv),
	// issued by WR2.
	h, x, der := alerttest.CorpusHit(t, "1210e877747de0ef.pem")
	sum := sha256.Sum256(der)
	wantSHA := hex.EncodeToString(sum[:])
	if wantSHA != "1210e877747de0ef9611a9a4e1be36b8ed01e29af23e4284965f43d037c403b9" {
		t.Fatalf("wrong corpus file: sha256 %s", wantSHA)
	}
	if len(x.DNSNames) != 137 || !reflect.DeepEqual(h.Cert.DNSNames, x.DNSNames) {
		t.Fatalf("hit names %d, certificate has %d (manifest: 137)", len(h.Cert.DNSNames), len(x.DNSNames))
	}

	p := deliver(t, &alerting.Message{Subject: "ctwatch.hit.high", Hit: h})

	if p.method != http.MethodPost || p.path != "/services/T000/B000/SECRETTOKEN" {
		t.Errorf("request %s %s", p.method, p.path)
	}
	for k, want := range map[string]string{
		"Content-Type":    "application/json",
		"X-Ctwatch-Id":    h.ID,
		"Idempotency-Key": h.ID,
	} {
		if got := p.header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}

	var names strings.Builder
	for _, n := range x.DNSNames[:10] {
		names.WriteString("`" + n + "`\n")
	}
	names.WriteString("+127 more")
	layout := "2006-01-02 15:04:05 UTC"
	want := wireMessage{
		Text: "HIGH google-brand: " + x.DNSNames[0] + " +136 more",
		Blocks: []wireBlock{
			{Type: "header", Text: plainText(":red_circle: HIGH · google-brand")},
			{Type: "section", Fields: []wireText{
				md("*Severity*\nHIGH"),
				md("*Rule*\n`google-brand`"),
				md("*Reason*\nname \"google.com\" is under watched domain google.com"),
				md("*Names*\n" + names.String()),
				md("*Issuer*\n`" + x.Issuer.String() + "`"),
				md("*Validity*\n" + x.NotBefore.UTC().Format(layout) + " → " + x.NotAfter.UTC().Format(layout)),
				md("*Log*\n`Google 'Argon2026h1' log`"),
				md("*Index*\n123456789"),
			}},
			{Type: "section", Text: mdp("<https://crt.sh/?sha256=" + wantSHA + "|View the certificate on crt.sh>")},
			{Type: "context", Elements: []wireText{md("id `" + h.ID + "`"), md("tags `brand` `kz`")}},
		},
		UnfurlLinks: new(false),
		UnfurlMedia: new(false),
	}
	if x.Issuer.String() != "CN=WR2,O=Google Trust Services,C=US" {
		t.Errorf("issuer %q: not the corpus certificate", x.Issuer.String())
	}
	compare(t, p.msg, want)
}

func TestHitWithoutLog(t *testing.T) {
	// A hit from `ctwatch check` has no log: no Log or Index field.
	h := &event.Hit{
		ID: "id-1", Rule: "r", Severity: event.SeverityCritical, Reason: "why",
		Cert: event.CertInfo{SHA256: "ab", Precert: true, DNSNames: []string{"a.example"}, Issuer: "CN=X"},
	}
	p := deliver(t, &alerting.Message{Hit: h})
	want := wireMessage{
		Text: "CRITICAL r: a.example",
		Blocks: []wireBlock{
			{Type: "header", Text: plainText(":rotating_light: CRITICAL · r")},
			{Type: "section", Fields: []wireText{
				md("*Severity*\nCRITICAL"),
				md("*Rule*\n`r`"),
				md("*Reason*\nwhy"),
				md("*Names*\n`a.example`"),
				md("*Issuer*\n`CN=X`"),
				md("*Validity*\nunknown → unknown"),
			}},
			{Type: "section", Text: mdp("<https://crt.sh/?sha256=ab|View the certificate on crt.sh> (precertificate)")},
			{Type: "context", Elements: []wireText{md("id `id-1`")}},
		},
		UnfurlLinks: new(false),
		UnfurlMedia: new(false),
	}
	compare(t, p.msg, want)
}

func TestLogEvent(t *testing.T) {
	tm := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600))
	tests := []struct {
		name  string
		ev    event.LogEvent
		emoji string
		extra []wireText
	}{
		{
			name:  "misbehaviour",
			ev:    event.LogEvent{ID: "ev-1", Kind: event.BadSignature, Log: event.LogRef{Name: "Argon", URL: "https://ct.example/argon/", Index: 0}, Time: tm, Detail: "STH at size 42 does not verify"},
			emoji: ":rotating_light:",
			extra: []wireText{md("*Log URL*\n`https://ct.example/argon/`")},
		},
		{
			name:  "operational with index",
			ev:    event.LogEvent{ID: "ev-2", Kind: event.MalformedEntry, Log: event.LogRef{Name: "Argon", Index: 77}, Time: tm, Detail: "entry 77: asn1: syntax error"},
			emoji: ":large_orange_circle:",
			extra: []wireText{md("*Index*\n77")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := deliver(t, &alerting.Message{Event: &tt.ev})
			title := "Log " + string(tt.ev.Kind) + ": Argon"
			want := wireMessage{
				Text: title + " — " + tt.ev.Detail,
				Blocks: []wireBlock{
					{Type: "header", Text: plainText(tt.emoji + " " + title)},
					{Type: "section", Text: mdp("*Detail*\n" + tt.ev.Detail)},
					{Type: "section", Fields: append([]wireText{
						md("*Kind*\n`" + string(tt.ev.Kind) + "`"),
						md("*Log*\n`Argon`"),
						md("*Time*\n2026-03-04 04:06:07 UTC"),
					}, tt.extra...)},
					{Type: "context", Elements: []wireText{md("id `" + tt.ev.ID + "`")}},
				},
				UnfurlLinks: new(false),
				UnfurlMedia: new(false),
			}
			compare(t, p.msg, want)
			if got := p.header.Get("X-Ctwatch-Id"); got != tt.ev.ID {
				t.Errorf("X-Ctwatch-Id %q", got)
			}
		})
	}
}

// burst returns a digest of n hits of one rule spread over issuers with
// distinct counts, as the Dispatcher would build it with max_names 20.
func burst(n int) *event.Digest {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	d := &event.Digest{
		ID: "digest-1", Kind: event.DigestKind, Rule: "our-names", Severity: event.SeverityHigh,
		Count: n, First: t0, Last: t0.Add(59 * time.Second),
		URL: "https://ctwatch.example/digests/digest-1?a=1&b=2|x",
	}
	// Issuer i gets weight 7-i: counts descend from "CN=Issuer 0".
	issuers := 7
	for i := range n {
		name := fmt.Sprintf("host%04d.bank.example", i)
		k := i % 28 // 7+6+…+1 = 28 slots
		is := 0
		for w := issuers; k >= w; w-- {
			k -= w
			is++
		}
		d.Hits = append(d.Hits, event.Hit{
			ID: fmt.Sprintf("hit-%d", i), Rule: "our-names", Severity: event.SeverityHigh,
			Cert: event.CertInfo{DNSNames: []string{name}, Issuer: fmt.Sprintf("CN=Issuer %d,O=CA & Co <x>", is)},
		})
		if len(d.Names) < 20 {
			d.Names = append(d.Names, name)
		} else {
			d.MoreNames++
		}
	}
	return d
}

func TestDigestOfThousandHits(t *testing.T) {
	d := burst(1000)
	// Independent count of each issuer.
	counts := map[string]int{}
	for _, h := range d.Hits {
		counts[h.Cert.Issuer]++
	}
	if len(counts) != 7 {
		t.Fatalf("%d issuers", len(counts))
	}

	p := deliver(t, &alerting.Message{Digest: d})
	if len(p.body) > 40_000 {
		t.Errorf("digest of 1000 hits is %d bytes: the hits are being listed", len(p.body))
	}

	var names strings.Builder
	names.WriteString("*Names*\n")
	for _, n := range d.Names {
		names.WriteString("`" + n + "`\n")
	}
	names.WriteString("+980 more")

	var issuers strings.Builder
	issuers.WriteString("*Issuers*")
	for i := range 5 {
		dn := fmt.Sprintf("CN=Issuer %d,O=CA & Co <x>", i)
		fmt.Fprintf(&issuers, "\n• `CN=Issuer %d,O=CA &amp; Co &lt;x&gt;` — %d", i, counts[dn])
	}
	issuers.WriteString("\n+2 more issuers")

	want := wireMessage{
		Text: "HIGH: 1000 hits for rule our-names: host0000.bank.example, host0001.bank.example, host0002.bank.example +997 more",
		Blocks: []wireBlock{
			{Type: "header", Text: plainText(":red_circle: 1000 hits for rule our-names")},
			{Type: "section", Fields: []wireText{
				md("*Severity*\nHIGH"),
				md("*Rule*\n`our-names`"),
				md("*Hits*\n1000"),
				md("*First*\n2026-01-02 03:00:00 UTC"),
				md("*Last*\n2026-01-02 03:00:59 UTC"),
			}},
			{Type: "section", Text: mdp(names.String())},
			{Type: "section", Text: mdp(issuers.String())},
			{Type: "section", Text: mdp("<https://ctwatch.example/digests/digest-1?a=1&amp;b=2%7Cx|Full list of the 1000 hits>")},
			{Type: "context", Elements: []wireText{md("id `digest-1`")}},
		},
		UnfurlLinks: new(false),
		UnfurlMedia: new(false),
	}
	compare(t, p.msg, want)
	if got := p.header.Get("Idempotency-Key"); got != "digest-1" {
		t.Errorf("Idempotency-Key %q", got)
	}
}

func TestDigestWithoutURL(t *testing.T) {
	d := burst(3)
	d.URL = ""
	p := deliver(t, &alerting.Message{Digest: d})
	for _, b := range p.msg.Blocks {
		if b.Text != nil && strings.Contains(b.Text.Text, "Full list") {
			t.Errorf("link block without URL: %q", b.Text.Text)
		}
	}
	if len(p.msg.Blocks) != 5 {
		t.Errorf("%d blocks, want 5 (header, fields, names, issuers, context)", len(p.msg.Blocks))
	}
}

func TestTestMessagesSayTest(t *testing.T) {
	h, _, _ := alerttest.CorpusHit(t, "1320847b7a978103.pem")
	ev := &event.LogEvent{ID: "ev", Kind: event.LogUnreachable, Log: event.LogRef{Name: "Xenon"}, Detail: "timeout"}
	tests := []struct {
		name   string
		m      *alerting.Message
		header string
		text   string
	}{
		{"hit", &alerting.Message{Hit: h, Test: true}, "TEST — :red_circle: HIGH · google-brand", "TEST — HIGH google-brand: "},
		{"event", &alerting.Message{Event: ev, Test: true}, "TEST — :large_orange_circle: Log log_unreachable: Xenon", "TEST — Log log_unreachable: Xenon — timeout"},
		{"digest", &alerting.Message{Digest: burst(2), Test: true}, "TEST — :red_circle: 2 hits for rule our-names", "TEST — HIGH: 2 hits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := deliver(t, tt.m)
			if got := p.msg.Blocks[0].Text.Text; got != tt.header {
				t.Errorf("header %q, want %q", got, tt.header)
			}
			if !strings.HasPrefix(p.msg.Text, tt.text) {
				t.Errorf("text %q, want prefix %q", p.msg.Text, tt.text)
			}
			ctx := p.msg.Blocks[len(p.msg.Blocks)-1]
			if ctx.Type != "context" || !strings.HasPrefix(ctx.Elements[0].Text, "*TEST* message") {
				t.Errorf("last block %+v: no test warning", ctx)
			}
		})
	}
}

func TestHostileCertificate(t *testing.T) {
	many := make([]string, 5000)
	for i := range many {
		many[i] = fmt.Sprintf("n%d.%s.example", i, strings.Repeat("x", 60))
	}
	hostile := []string{
		"evil.example\n*Issuer*\n`CN=Trusted CA`", // fakes a field
		"<!channel> <@U123> <https://evil.example|bank.example>",
		"<script>alert(1)</script>.example",
		"a&b.example",
		"`closes`code*bold*_it_",
		"moc.\u202eknab.example", // bidi override
		"zero\u200bwidth.example",
		"bad\xff\xfeutf8.example",
		strings.Repeat("é", 400), // longer than any name may be
	}
	h := &event.Hit{
		ID: "hostile", Rule: "r", Severity: event.SeverityHigh,
		Reason: strings.Repeat("<b>&</b> ", 2000) + "end",
		Log:    &event.LogRef{Name: "log\r\nX-Injected: yes", Index: 1},
		Cert: event.CertInfo{
			SHA256:   "ab|cd>ef",
			DNSNames: append(hostile, many...),
			Issuer:   strings.Repeat("CN=🙂<", 1000),
		},
	}
	p := deliver(t, &alerting.Message{Hit: h})

	fields := p.msg.Blocks[1].Fields
	byLabel := map[string]string{}
	for _, f := range fields {
		label, value, _ := strings.Cut(f.Text, "\n")
		byLabel[label] = value
	}
	lines := strings.Split(byLabel["*Names*"], "\n")
	wantLines := []string{
		"`evil.example\\n*Issuer*\\n\\x60CN=Trusted CA\\x60`",
		"`&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil.example|bank.example&gt;`",
		"`&lt;script&gt;alert(1)&lt;/script&gt;.example`",
		"`a&amp;b.example`",
		"`\\x60closes\\x60code*bold*_it_`",
		"`moc.\\u202eknab.example`",
		"`zero\\u200bwidth.example`",
		"`bad\\xff\\xfeutf8.example`",
		"`" + strings.Repeat("é", 252) + "…`",
	}
	if len(lines) < len(wantLines)+1 {
		t.Fatalf("names field has %d lines:\n%s", len(lines), byLabel["*Names*"])
	}
	for i, want := range wantLines {
		if lines[i] != want {
			t.Errorf("name line %d = %q, want %q", i, lines[i], want)
		}
	}
	// Whatever fit after the hostile ones, the total is accounted for.
	shown := len(lines) - 1
	if want := fmt.Sprintf("+%d more", len(h.Cert.DNSNames)-shown); lines[len(lines)-1] != want {
		t.Errorf("last names line %q, want %q", lines[len(lines)-1], want)
	}
	if got := byLabel["*Log*"]; got != "`log\\r\\nX-Injected: yes`" {
		t.Errorf("log field %q", got)
	}
	if got := byLabel["*Reason*"]; !strings.HasPrefix(got, "&lt;b&gt;&amp;&lt;/b&gt; ") || !strings.HasSuffix(got, "…") {
		t.Errorf("reason field not escaped and cut: %.80q…%q", got, got[max(0, len(got)-20):])
	}
	if got := byLabel["*Issuer*"]; !strings.HasPrefix(got, "`CN=🙂&lt;CN=🙂&lt;") || !strings.HasSuffix(got, "…`") {
		t.Errorf("issuer field not escaped and cut: %.40q…", got)
	}
	// The link cannot be broken out of by the hash.
	if got := p.msg.Blocks[2].Text.Text; got != "<https://crt.sh/?sha256=ab%7Ccd%3Eef|View the certificate on crt.sh>" {
		t.Errorf("link %q", got)
	}
	// Outside our own links, no raw angle bracket reaches Slack.
	for _, s := range allTexts(p.msg) {
		if s.Type == "mrkdwn" && strings.HasPrefix(s.Text, "<https://crt.sh/") {
			continue
		}
		if strings.ContainsAny(s.Text, "<>") {
			t.Errorf("raw angle bracket in %q", s.Text)
		}
	}
}

func TestStatusHandling(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		answer    string
		header    http.Header
		wantErr   string        // substring; "" means success
		wantAfter time.Duration // > 0: a RetryAfterError with this delay
	}{
		{"ok", 200, "ok", nil, "", 0},
		{"invalid payload", 400, "invalid_payload", nil, `status 400: "invalid_payload"`, 0},
		{"no service", 404, "no_service", nil, `status 404: "no_service"`, 0},
		{"archived", 410, "channel_is_archived", nil, `"channel_is_archived"`, 0},
		{"rate limited", 429, "rate_limited", http.Header{"Retry-After": {"7"}}, "status 429", 7 * time.Second},
		{"rate limited without delay", 429, "", nil, "status 429", 0},
		{"unavailable", 503, "", http.Header{"Retry-After": {"30"}}, "status 503", 30 * time.Second},
		{"server error", 500, "oops", nil, "status 500", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, got := receiver(t, tt.status, tt.answer, tt.header)
			err := notifier(t, url).Notify(t.Context(), &alerting.Message{Event: &event.LogEvent{ID: "e", Kind: event.FallingBehind}})
			<-got
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Notify: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "SECRETTOKEN") {
				t.Errorf("error shows the webhook URL: %v", err)
			}
			alerttest.CheckRetryAfter(t, err, tt.wantAfter)
		})
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/services/SECRETTOKEN"
	srv.Close()
	err := notifier(t, url).Notify(t.Context(), &alerting.Message{Hit: &event.Hit{ID: "x"}})
	if err == nil || strings.Contains(err.Error(), "SECRETTOKEN") {
		t.Fatalf("error %v: want a failure that does not show the URL", err)
	}
}

func TestRefusals(t *testing.T) {
	n := notifier(t, "https://hooks.slack.example/services/x")
	tests := []struct {
		name string
		m    *alerting.Message
	}{
		{"empty", &alerting.Message{}},
		{"no id", &alerting.Message{Hit: &event.Hit{Rule: "r"}}},
		{"header injection in id", &alerting.Message{Hit: &event.Hit{ID: "a\r\nX-Evil: 1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No server: refusing must happen before any request.
			if err := n.Notify(t.Context(), tt.m); err == nil || !strings.HasPrefix(err.Error(), "slack: message") {
				t.Errorf("Notify = %v, want a refusal", err)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"empty URL", Config{}},
		{"not http", Config{URL: "ftp://hooks.slack.com/services/SECRETTOKEN"}},
		{"no host", Config{URL: "https:///services/SECRETTOKEN"}},
		{"negative timeout", Config{URL: "https://hooks.slack.com/services/SECRETTOKEN", Timeout: -time.Second}},
		{"missing CA file", Config{URL: "https://hooks.slack.com/services/SECRETTOKEN", TLS: httpsink.TLS{CAFile: filepath.Join(t.TempDir(), "none.pem")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatal("New accepted it")
			}
			if strings.Contains(err.Error(), "SECRETTOKEN") {
				t.Errorf("error shows the URL: %v", err)
			}
		})
	}
}

// units is what render cuts by and what checkLimits measures Slack's
// limits with, so it is pinned here on its own: against written-out
// counts and against the standard library's UTF-16 encoder.
func TestUnits(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{"ééé", 3},        // two bytes each, one unit each
		{"a🙂b", 4},        // an astral rune is a surrogate pair
		{"a\xc3", 2},      // an invalid byte counts as one U+FFFD
		{"漢字🀄", 4},        // BMP ideographs one unit, the tile two
		{"\u2028\x00", 2}, // controls are units like any rune
	}
	for _, tt := range tests {
		if got := units(tt.in); got != tt.want {
			t.Errorf("units(%q) = %d, want %d", tt.in, got, tt.want)
		}
		if enc := len(utf16.Encode([]rune(tt.in))); enc != tt.want {
			t.Errorf("table wrong: %q is %d UTF-16 units", tt.in, enc)
		}
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		limit      int
		md, inCode bool
		want       string
	}{
		{"fits", "abc", 3, true, false, "abc"},
		{"cut", "abcd", 3, true, false, "ab…"},
		{"entity not split", "a&b", 5, true, false, "a…"},
		{"entity fits when last", "a&", 6, true, false, "a&amp;"},
		{"astral rune counts two", "a🙂b", 3, false, false, "a…"},
		{"astral rune fits", "a🙂", 3, false, false, "a🙂"},
		{"multibyte not split", "ééé", 2, false, false, "é…"},
		{"plain keeps brackets", "<b>&", 10, false, false, "<b>&"},
		{"escape not split", "a\nb", 3, false, false, "a…"},
		{"controls", "a\tb\x00c\u2028d\u00a0e", 100, false, false, `a\tb\x00c\u2028d\u00a0e`},
		{"invalid utf8", "a\xc3", 10, false, false, `a\xc3`},
		{"backtick in code", "a`b", 10, true, true, `a\x60b`},
		{"backtick in text", "a`b", 10, true, false, "a`b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := render(tt.in, tt.limit, tt.md, tt.inCode)
			if got != tt.want {
				t.Errorf("render(%q, %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
			}
			if units(got) > tt.limit || !utf8.ValidString(got) {
				t.Errorf("render(%q, %d) = %q: over the limit or invalid", tt.in, tt.limit, got)
			}
		})
	}
}

// compare reports the first differences between got and want block by
// block, which reads better than one huge diff.
func compare(t *testing.T, got, want wireMessage) {
	t.Helper()
	if got.Text != want.Text {
		t.Errorf("text\n got %q\nwant %q", got.Text, want.Text)
	}
	if !reflect.DeepEqual(got.UnfurlLinks, want.UnfurlLinks) || !reflect.DeepEqual(got.UnfurlMedia, want.UnfurlMedia) {
		t.Errorf("unfurl %v %v, want %v %v", deref(got.UnfurlLinks), deref(got.UnfurlMedia), deref(want.UnfurlLinks), deref(want.UnfurlMedia))
	}
	if len(got.Blocks) != len(want.Blocks) {
		t.Errorf("%d blocks, want %d", len(got.Blocks), len(want.Blocks))
	}
	for i := range min(len(got.Blocks), len(want.Blocks)) {
		g, w := got.Blocks[i], want.Blocks[i]
		if !reflect.DeepEqual(g, w) {
			gj, _ := json.MarshalIndent(g, "", "  ")
			wj, _ := json.MarshalIndent(w, "", "  ")
			t.Errorf("block %d\n got %s\nwant %s", i, gj, wj)
		}
	}
}

func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

func allTexts(m wireMessage) []wireText {
	var all []wireText
	for _, b := range m.Blocks {
		if b.Text != nil {
			all = append(all, *b.Text)
		}
		all = append(all, b.Fields...)
		all = append(all, b.Elements...)
	}
	return all
}

// checkLimits fails the test when the message breaks one of Slack's
// documented Block Kit limits (Slack would answer invalid_blocks and the
// message would be retried forever).
func checkLimits(t *testing.T, m wireMessage) {
	t.Helper()
	if len(m.Blocks) == 0 || len(m.Blocks) > maxBlocks {
		t.Errorf("%d blocks", len(m.Blocks))
	}
	if m.Text == "" || units(m.Text) > maxFallback {
		t.Errorf("fallback text of %d units", units(m.Text))
	}
	for i, b := range m.Blocks {
		switch b.Type {
		case "header":
			if b.Text == nil || b.Text.Type != "plain_text" || units(b.Text.Text) > 150 {
				t.Errorf("block %d: bad header %+v", i, b.Text)
			}
		case "section":
			if b.Text == nil && len(b.Fields) == 0 {
				t.Errorf("block %d: empty section", i)
			}
			if b.Text != nil && units(b.Text.Text) > 3000 {
				t.Errorf("block %d: section text of %d units", i, units(b.Text.Text))
			}
			if len(b.Fields) > 10 {
				t.Errorf("block %d: %d fields", i, len(b.Fields))
			}
			for _, f := range b.Fields {
				if units(f.Text) > 2000 {
					t.Errorf("block %d: field of %d units", i, units(f.Text))
				}
			}
		case "context":
			if len(b.Elements) == 0 || len(b.Elements) > 10 {
				t.Errorf("block %d: %d context elements", i, len(b.Elements))
			}
		default:
			t.Errorf("block %d: unexpected type %q", i, b.Type)
		}
	}
	for _, s := range allTexts(m) {
		if s.Text == "" || !utf8.ValidString(s.Text) || strings.ContainsRune(s.Text, utf8.RuneError) {
			t.Errorf("empty or mangled text %q", s.Text)
		}
		if s.Type == "mrkdwn" && !s.Verbatim {
			t.Errorf("mrkdwn text not verbatim: %q", s.Text)
		}
	}
}
