package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/alerttest"
	"github.com/ctwatch/ctwatch/alerting/httpsink"
	"github.com/ctwatch/ctwatch/event"
)

// request is what the receiver saw.
type request struct {
	method, path string
	header       http.Header
	body         []byte
}

// receiver starts an httptest server that records every request and answers
// status.
func receiver(t *testing.T, status int) (*httptest.Server, <-chan request) {
	t.Helper()
	got := make(chan request, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver: read body: %v", err)
		}
		got <- request{r.Method, r.URL.Path, r.Header.Clone(), b}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hitMessage(t *testing.T, h *event.Hit) *alerting.Message {
	return &alerting.Message{Subject: alerting.HitSubject(h.Severity), Data: mustJSON(t, h), Hit: h}
}

// hmacHex is the signature as the README tells receivers to compute it,
// written here without the package's code.
func hmacHex(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "." + string(body)))
	return hex.EncodeToString(mac.Sum(nil))
}

func TestRequest(t *testing.T) {
	secret := []byte("s3cret-key")
	clock := time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z
	ts := strconv.FormatInt(clock.Unix(), 10)

	hit := hitMessage(t, alerttest.SampleHit())
	hitID := hit.Hit.ID
	ev := &event.LogEvent{ID: "ev-9", Kind: event.LogUnreachable, Log: event.LogRef{Name: "Argon"}, Time: clock, Detail: "dial tcp: refused"}
	evMsg := &alerting.Message{Subject: alerting.EventSubject(ev.Kind), Data: mustJSON(t, ev), Event: ev}
	dg := &event.Digest{
		ID: "dg-1", Kind: event.DigestKind, Rule: "our-names", Severity: event.SeverityHigh, Count: 2,
		First: clock, Last: clock.Add(time.Minute), Names: []string{"a.bank.example"}, MoreNames: 1,
		Hits: []event.Hit{*alerttest.SampleHit(), *alerttest.SampleHit()},
	}
	dgMsg := &alerting.Message{Subject: "ctwatch.hit.high", Data: mustJSON(t, dg), Digest: dg}
	testHit := hitMessage(t, alerttest.SampleHit())
	testHit.Test = true

	custom := http.Header{
		"Authorization": {"Bearer t0ken"},
		"X-Team":        {"secops", "pki"},
		// A configuration cannot forge what ctwatch says.
		"X-Ctwatch-Id":        {"forged"},
		"idempotency-key":     {"forged"},
		"Content-Type":        {"text/plain"},
		"X-Ctwatch-Test":      {"true"},
		"X-Ctwatch-Signature": {"v1=00"},
		"X-Ctwatch-Other":     {"forged"},
	}
	base := func(id, kind string) http.Header {
		return http.Header{
			"Authorization":   {"Bearer t0ken"},
			"X-Team":          {"secops", "pki"},
			"Content-Type":    {"application/json"},
			"X-Ctwatch-Id":    {id},
			"Idempotency-Key": {id},
			"X-Ctwatch-Kind":  {kind},
		}
	}
	with := func(h http.Header, kv ...string) http.Header {
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	signed := func(h http.Header, body []byte) http.Header {
		return with(h, "X-Ctwatch-Timestamp", ts, "X-Ctwatch-Signature", "v1="+hmacHex(secret, ts, body))
	}

	tests := []struct {
		name   string
		secret []byte
		m      *alerting.Message
		want   http.Header
	}{
		{"hit, unsigned", nil, hit, base(hitID, "hit")},
		{"hit, signed", secret, hit, signed(base(hitID, "hit"), hit.Data)},
		{"event, signed", secret, evMsg, signed(base("ev-9", "event"), evMsg.Data)},
		{"digest, signed", secret, dgMsg, signed(base("dg-1", "digest"), dgMsg.Data)},
		{"test hit, unsigned", nil, testHit, with(base(hitID, "hit"), "X-Ctwatch-Test", "true")},
		{"test hit, signed", secret, testHit, signed(with(base(hitID, "hit"), "X-Ctwatch-Test", "true"), testHit.Data)},
	}
	srv, got := receiver(t, http.StatusNoContent)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNotifier(t, Config{URL: srv.URL + "/hooks/ctwatch", Header: custom, Secret: tc.secret})
			n.now = func() time.Time { return clock }
			if err := n.Notify(t.Context(), tc.m); err != nil {
				t.Fatal(err)
			}
			r := <-got
			if r.method != http.MethodPost || r.path != "/hooks/ctwatch" {
				t.Errorf("request %s %s, want POST /hooks/ctwatch", r.method, r.path)
			}
			if string(r.body) != string(tc.m.Data) {
				t.Errorf("body %s, want m.Data %s", r.body, tc.m.Data)
			}
			// Go's client adds these on its own; not ctwatch's contract.
			for _, k := range []string{"User-Agent", "Content-Length", "Accept-Encoding"} {
				r.header.Del(k)
			}
			if !maps.EqualFunc(r.header, tc.want, slices.Equal) {
				t.Errorf("headers\n got %v\nwant %v", r.header, tc.want)
			}
			if tc.secret != nil {
				if err := Verify(tc.secret, r.header, r.body, clock.Add(time.Minute), 0); err != nil {
					t.Errorf("Verify of the delivered request: %v", err)
				}
			}
		})
	}
}

// Each attempt is signed with the time of the attempt, so a retry after a
// long outage is not refused as stale; the ID stays the same.
func TestRetrySignsAfresh(t *testing.T) {
	srv, got := receiver(t, http.StatusOK)
	secret := []byte("k")
	n := newNotifier(t, Config{URL: srv.URL, Secret: secret})
	m := hitMessage(t, alerttest.SampleHit())
	for _, at := range []time.Time{time.Unix(1767225600, 0), time.Unix(1767225600+3600, 0)} {
		n.now = func() time.Time { return at }
		if err := n.Notify(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if err := Verify(secret, r.header, r.body, at, time.Minute); err != nil {
			t.Errorf("attempt at %v: %v", at, err)
		}
		if id := r.header.Get(IDHeader); id != m.ID() {
			t.Errorf("attempt at %v: id %q, want %q", at, id, m.ID())
		}
	}
}

// The caller's slices are copied: changing them after New changes nothing.
func TestConfigIsCopied(t *testing.T) {
	srv, got := receiver(t, http.StatusOK)
	secret := []byte("original")
	header := http.Header{"X-Team": {"secops"}}
	n := newNotifier(t, Config{URL: srv.URL, Secret: secret, Header: header})
	copy(secret, "tampered")
	header["X-Team"][0] = "other"
	header.Set("X-Late", "1")
	m := hitMessage(t, alerttest.SampleHit())
	if err := n.Notify(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if err := Verify([]byte("original"), r.header, r.body, time.Now(), 0); err != nil {
		t.Errorf("signed with a changed secret: %v", err)
	}
	if r.header.Get("X-Team") != "secops" || r.header.Get("X-Late") != "" {
		t.Errorf("headers changed after New: %v", r.header)
	}
}

// Certificate fields travel verbatim in the JSON body (JSON escaping is the
// encoder's), and nothing from the message can add a header.
func TestHostileMessages(t *testing.T) {
	srv, got := receiver(t, http.StatusOK)
	n := newNotifier(t, Config{URL: srv.URL, Secret: []byte("k")})

	h := alerttest.SampleHit()
	h.Reason = "x\r\nX-Injected: 1"
	h.Cert.Issuer = "<script>alert(1)</script>"
	h.Cert.DNSNames = nil
	for i := range 5000 {
		h.Cert.DNSNames = append(h.Cert.DNSNames, "n"+strconv.Itoa(i)+".example")
	}
	m := hitMessage(t, h)
	if err := n.Notify(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if string(r.body) != string(m.Data) {
		t.Error("hostile body not delivered verbatim")
	}
	var back event.Hit
	if err := json.Unmarshal(r.body, &back); err != nil {
		t.Fatal(err)
	}
	if back.Reason != h.Reason || back.Cert.Issuer != h.Cert.Issuer || len(back.Cert.DNSNames) != 5000 {
		t.Errorf("receiver decoded %q, %q, %d names", back.Reason, back.Cert.Issuer, len(back.Cert.DNSNames))
	}
	if r.header.Get("X-Injected") != "" {
		t.Error("a field became a header")
	}
	if err := Verify([]byte("k"), r.header, r.body, time.Now(), 0); err != nil {
		t.Error(err)
	}

	for _, id := range []string{"abc\r\nX-Injected: 1", "abc\n", "a\x00b", "a\x7fb"} {
		bad := alerttest.SampleHit()
		bad.ID = id
		if err := n.Notify(t.Context(), hitMessage(t, bad)); err == nil {
			t.Errorf("Notify accepted id %q", id)
		}
	}
	select {
	case r := <-got:
		t.Errorf("a message with a hostile id was sent: %v", r.header)
	default:
	}
}

func TestNotifyErrors(t *testing.T) {
	srv, _ := receiver(t, http.StatusOK)
	tests := []struct {
		name string
		m    *alerting.Message
	}{
		{"no id", &alerting.Message{Data: []byte(`{}`)}},
		{"no body", &alerting.Message{Hit: &event.Hit{ID: "x"}}},
	}
	n := newNotifier(t, Config{URL: srv.URL})
	for _, tc := range tests {
		if err := n.Notify(t.Context(), tc.m); err == nil {
			t.Errorf("%s: Notify succeeded", tc.name)
		}
	}

	// httpsink's verdicts reach the Dispatcher intact.
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer busy.Close()
	err := newNotifier(t, Config{URL: busy.URL + "/s3cret"}).Notify(t.Context(), hitMessage(t, alerttest.SampleHit()))
	alerttest.CheckRetryAfter(t, err, 7*time.Second)
	if err != nil && strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error reveals the URL path: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"bad URL", Config{URL: "ftp://x/"}, "http"},
		{"negative timeout", Config{URL: "https://x.example/", Timeout: -time.Second}, "timeout"},
		{"empty secret", Config{URL: "https://x.example/", Secret: []byte{}}, "empty secret"},
		{"header name with space", Config{URL: "https://x.example/", Header: http.Header{"X Team": {"a"}}}, "header name"},
		{"header value with CRLF", Config{URL: "https://x.example/", Header: http.Header{"X-Team": {"a\r\nX-Evil: 1"}}}, "control character"},
		{"TLS cert without key", Config{URL: "https://x.example/", TLS: httpsink.TLS{CertFile: "c.pem"}}, "key_file"},
		{"TLS missing CA file", Config{URL: "https://x.example/", TLS: httpsink.TLS{CAFile: filepath.Join(t.TempDir(), "no.pem")}}, "ca_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New = %v, want an error about %q", err, tc.wantErr)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("s3cret-key")
	body := []byte(`{"id":"hit-1","rule":"r"}`)
	now := time.Unix(1767225600, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	good := "v1=" + hmacHex(secret, ts, body)
	other := "v1=" + hmacHex([]byte("old-secret"), ts, body)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}

	tests := []struct {
		name      string
		secret    []byte
		header    http.Header
		body      []byte
		now       time.Time
		tolerance time.Duration
		want      error // nil: accepted; else errors.Is target
	}{
		{"good", secret, hdr(TimestampHeader, ts, SignatureHeader, good), body, now, 0, nil},
		{"upper-case hex", secret, hdr(TimestampHeader, ts, SignatureHeader, "v1="+strings.ToUpper(good[3:])), body, now, 0, nil},
		{"tampered body", secret, hdr(TimestampHeader, ts, SignatureHeader, good), []byte(`{"id":"hit-1","rule":"x"}`), now, 0, ErrBadSignature},
		{"wrong secret", []byte("guess"), hdr(TimestampHeader, ts, SignatureHeader, good), body, now, 0, ErrBadSignature},
		{"timestamp changed", secret, hdr(TimestampHeader, strconv.FormatInt(now.Unix()+1, 10), SignatureHeader, good), body, now, 0, ErrBadSignature},
		{"truncated signature", secret, hdr(TimestampHeader, ts, SignatureHeader, good[:20]), body, now, 0, ErrBadSignature},
		{"not hex", secret, hdr(TimestampHeader, ts, SignatureHeader, "v1=zz"), body, now, 0, ErrBadSignature},
		{"within tolerance, late", secret, hdr(TimestampHeader, ts, SignatureHeader, good), body, now.Add(299 * time.Second), 0, nil},
		{"within tolerance, early clock", secret, hdr(TimestampHeader, ts, SignatureHeader, good), body, now.Add(-299 * time.Second), 0, nil},
		{"old timestamp", secret, hdr(TimestampHeader, ts, SignatureHeader, good), body, now.Add(301 * time.Second), 0, ErrStale},
		{"future timestamp", secret, hdr(TimestampHeader, ts, SignatureHeader, good), body, now.Add(-301 * time.Second), 0, ErrStale},
		{"custom tolerance", secret, hdr(TimestampHeader, ts, SignatureHeader, good), body, now.Add(31 * time.Second), 30 * time.Second, ErrStale},
		{"no timestamp", secret, hdr(SignatureHeader, good), body, now, 0, ErrUnsigned},
		{"malformed timestamp", secret, hdr(TimestampHeader, "yesterday", SignatureHeader, good), body, now, 0, ErrUnsigned},
		{"negative timestamp", secret, hdr(TimestampHeader, "-1", SignatureHeader, good), body, now, 0, ErrUnsigned},
		{"no signature", secret, hdr(TimestampHeader, ts), body, now, 0, ErrUnsigned},
		{"only another scheme", secret, hdr(TimestampHeader, ts, SignatureHeader, "v2="+good[3:]), body, now, 0, ErrUnsigned},
		{"rotation: new listed second", secret, hdr(TimestampHeader, ts, SignatureHeader, other+","+good), body, now, 0, nil},
		{"rotation: new listed first, spaces", secret, hdr(TimestampHeader, ts, SignatureHeader, good+" , "+other), body, now, 0, nil},
		{"rotation: several header lines", secret, hdr(TimestampHeader, ts, SignatureHeader, other, SignatureHeader, good), body, now, 0, nil},
		{"rotation: other scheme alongside", secret, hdr(TimestampHeader, ts, SignatureHeader, "v2=abcd,"+good), body, now, 0, nil},
		{"rotation: none matches", secret, hdr(TimestampHeader, ts, SignatureHeader, other+","+other), body, now, 0, ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secret, tc.header, tc.body, tc.now, tc.tolerance)
			switch {
			case tc.want == nil && err != nil:
				t.Errorf("Verify = %v, want nil", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	if err := Verify(nil, hdr(TimestampHeader, ts, SignatureHeader, good), body, now, 0); err == nil {
		t.Error("Verify with an empty secret succeeded")
	}
}
