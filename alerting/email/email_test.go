package email_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/net/html"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/alerttest"
	"github.com/ctwatch/ctwatch/alerting/email"
	"github.com/ctwatch/ctwatch/alerting/httpsink"
	"github.com/ctwatch/ctwatch/event"
)

// ---- a throwaway CA and a real SMTP server on loopback ----

// testPKI is a root CA (written to a PEM file for Config.TLS.CAFile) and a
// server certificate for 127.0.0.1 and localhost issued by it.
type testPKI struct {
	caFile string
	server tls.Certificate
}

var (
	pkiOnce sync.Once
	pki     testPKI
	pkiErr  error
)

// getPKI builds the CA once per test binary: key generation is the slow
// part and nothing about it differs between tests.
func getPKI(t *testing.T) testPKI {
	t.Helper()
	pkiOnce.Do(func() { pki, pkiErr = newPKI() })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pki
}

func newPKI() (testPKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return testPKI{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "email test root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return testPKI{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return testPKI{}, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return testPKI{}, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return testPKI{}, err
	}
	dir, err := os.MkdirTemp("", "email-test-ca")
	if err != nil {
		return testPKI{}, err
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		return testPKI{}, err
	}
	return testPKI{
		caFile: caFile,
		server: tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey},
	}, nil
}

// received is one mail as the server got it.
type received struct {
	helo string
	user string // authenticated user, "" when none
	tls  bool
	from string
	to   []string
	data []byte
}

// backend is a go-smtp backend that accepts mail for any recipient except
// reject, requires AUTH PLAIN as user/pass when user is set, and hands
// every accepted mail to mails.
type backend struct {
	user, pass string
	reject     string
	mails      chan received
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{b: b, c: c}, nil
}

type session struct {
	b    *backend
	c    *smtp.Conn
	user string
	cur  received
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != s.b.user || password != s.b.pass {
			return smtp.ErrAuthFailed
		}
		s.user = username
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.b.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.cur = received{from: from}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == s.b.reject {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.c.TLSConnectionState()
	s.cur.data, s.cur.tls, s.cur.user, s.cur.helo = data, isTLS, s.user, s.c.Hostname()
	s.b.mails <- s.cur
	return nil
}

func (s *session) Reset()        { s.cur = received{} }
func (s *session) Logout() error { return nil }

// serverMode is how the test server speaks TLS.
type serverMode int

const (
	offerStartTLS serverMode = iota // plain, STARTTLS offered
	implicitTLS                     // TLS from the first byte
	plainOnly                       // no TLS at all
)

// startServer runs a go-smtp server on 127.0.0.1 and returns its address
// and the channel of accepted mails. The backend pushes a mail before it
// answers DATA, so once Notify has returned nil the mail is in the channel.
func startServer(t *testing.T, mode serverMode, be *backend, insecureAuth bool) string {
	t.Helper()
	p := getPKI(t)
	tc := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if be.mails == nil {
		be.mails = make(chan received, 16)
	}
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.AllowInsecureAuth = insecureAuth
	s.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case offerStartTLS:
		s.TLSConfig = tc
	case implicitTLS:
		l = tls.NewListener(l, tc)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
	return l.Addr().String()
}

// config is a Config for the test server at addr: STARTTLS verified
// against the test CA, AUTH PLAIN as ctwatch/s3cret.
func config(addr string, caFile string) email.Config {
	return email.Config{
		Addr:     addr,
		TLS:      httpsink.TLS{CAFile: caFile},
		From:     "ctwatch <ctwatch@example.com>",
		To:       []string{"secops@example.com", "Oncall Person <oncall@example.com>"},
		Username: "ctwatch",
		Password: "s3cret",
		Hostname: "ctwatch.test",
	}
}

func newNotifier(t *testing.T, cfg email.Config) *email.Notifier {
	t.Helper()
	n, err := email.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return n
}

// only returns the one mail the server should have accepted.
func only(t *testing.T, be *backend) received {
	t.Helper()
	select {
	case r := <-be.mails:
		select {
		case r2 := <-be.mails:
			t.Fatalf("a second mail arrived: %q", r2.data)
		default:
		}
		return r
	default:
		t.Fatal("no mail arrived")
	}
	return received{}
}

func none(t *testing.T, be *backend) {
	t.Helper()
	select {
	case r := <-be.mails:
		t.Fatalf("a mail arrived: %q", r.data)
	default:
	}
}

// ---- parsing what arrived ----

// parsed is a received mail taken apart with net/mail and mime/multipart.
type parsed struct {
	header  mail.Header
	subject string // decoded
	parts   []part
}

type part struct {
	header map[string]string // each part header's single value
	body   string            // decoded
}

func parse(t *testing.T, raw []byte) parsed {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Errorf("message has a bare LF")
	}
	for i, l := range strings.Split(string(raw), "\r\n") {
		if len(l) > 998 {
			t.Errorf("line %d is %d bytes long", i, len(l))
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("net/mail: %v", err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("subject: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	p := parsed{header: msg.Header, subject: subject}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		// NextRawPart: NextPart would hide Content-Transfer-Encoding.
		mp, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		pt := part{header: map[string]string{}}
		for k, vs := range mp.Header {
			if len(vs) != 1 {
				t.Errorf("part header %s: %q", k, vs)
			}
			pt.header[k] = vs[0]
		}
		var r io.Reader = mp
		if mp.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			r = quotedprintable.NewReader(mp)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("part body: %v", err)
		}
		pt.body = string(b)
		p.parts = append(p.parts, pt)
	}
	return p
}

// text and htmlPart return the two parts after checking their headers.
func (p parsed) text(t *testing.T) string {
	t.Helper()
	return p.part(t, 0, "text/plain; charset=utf-8")
}

func (p parsed) html(t *testing.T) string {
	t.Helper()
	return p.part(t, 1, "text/html; charset=utf-8")
}

func (p parsed) part(t *testing.T, i int, ctype string) string {
	t.Helper()
	if len(p.parts) != 2 {
		t.Fatalf("%d parts, want 2", len(p.parts))
	}
	want := map[string]string{"Content-Type": ctype, "Content-Transfer-Encoding": "quoted-printable"}
	if !maps.Equal(p.parts[i].header, want) {
		t.Errorf("part %d header = %v, want %v", i, p.parts[i].header, want)
	}
	return p.parts[i].body
}

// htmlDoc is what a reader sees of the HTML part: its title, the table's
// rows as label → cell text (a <br> as "\n"), the links, and the names of
// all elements (to prove that no <script> got in).
type htmlDoc struct {
	title    string
	rows     map[string]string
	links    []string
	elements map[string]bool
}

func parseHTML(t *testing.T, s string) htmlDoc {
	t.Helper()
	root, err := html.Parse(strings.NewReader(s))
	if err != nil {
		t.Fatalf("html: %v", err)
	}
	d := htmlDoc{rows: map[string]string{}, elements: map[string]bool{}}
	var text func(n *html.Node) string
	text = func(n *html.Node) string {
		switch {
		case n.Type == html.TextNode:
			return n.Data
		case n.Type == html.ElementNode && n.Data == "br":
			return "\n"
		}
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			b.WriteString(text(c))
		}
		return b.String()
	}
	for n := range root.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		d.elements[n.Data] = true
		switch n.Data {
		case "title":
			d.title = text(n)
		case "a":
			for _, a := range n.Attr {
				if a.Key == "href" {
					d.links = append(d.links, a.Val)
				}
			}
		case "tr":
			var th, td string
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && c.Data == "th" {
					th = text(c)
				}
				if c.Type == html.ElementNode && c.Data == "td" {
					td = text(c)
				}
			}
			d.rows[th] = td
		}
	}
	return d
}

// ---- inputs ----

// The hit is alerttest.SampleHit; the event and the digest start at its
// NotBefore, so one date reads the same in every expected output.

func testEvent() *event.LogEvent {
	return &event.LogEvent{
		ID:     "ev-bad-signature-1",
		Kind:   event.BadSignature,
		Log:    event.LogRef{Name: "Google Argon", URL: "https://ct.example/argon/", Index: 7},
		Time:   alerttest.SampleHit().Cert.NotBefore,
		Detail: "STH at size 1000 does not verify",
	}
}

// testDigest is 1000 hits of one rule from three issuers (600, 300, 100).
func testDigest() *event.Digest {
	notBefore := alerttest.SampleHit().Cert.NotBefore
	d := &event.Digest{
		ID:        "digest-1",
		Kind:      event.DigestKind,
		Rule:      "our-names",
		Severity:  event.SeverityHigh,
		Count:     1000,
		First:     notBefore,
		Last:      notBefore.Add(time.Minute),
		MoreNames: 980,
		URL:       "https://ctwatch.example/digests/digest-1",
	}
	for i := range 1000 {
		issuer := "CN=A"
		switch {
		case i >= 900:
			issuer = "CN=C"
		case i >= 600:
			issuer = "CN=B"
		}
		name := fmt.Sprintf("host%d.example.com", i)
		if i < 20 {
			d.Names = append(d.Names, name)
		}
		d.Hits = append(d.Hits, event.Hit{ID: fmt.Sprintf("h%d", i), Rule: d.Rule, Severity: d.Severity,
			Cert: event.CertInfo{DNSNames: []string{name}, Issuer: issuer}})
	}
	return d
}

// ---- tests ----

// TestHitOverStartTLS delivers a hit through STARTTLS and AUTH PLAIN and
// checks the envelope, every header and both parts exactly.
func TestHitOverStartTLS(t *testing.T) {
	be := &backend{user: "ctwatch", pass: "s3cret"}
	addr := startServer(t, offerStartTLS, be, false)
	n := newNotifier(t, config(addr, getPKI(t).caFile))
	h := alerttest.SampleHit()
	data := []byte(`{"id":"0123456789abcdef0123456789abcdef"}`)

	before := time.Now().Truncate(time.Second)
	if err := n.Notify(t.Context(), &alerting.Message{Subject: "ctwatch.hit.high", Data: data, Hit: h}); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	after := time.Now()
	r := only(t, be)

	if !r.tls || r.user != "ctwatch" || r.helo != "ctwatch.test" {
		t.Errorf("session: tls=%v user=%q helo=%q, want TLS, ctwatch, ctwatch.test", r.tls, r.user, r.helo)
	}
	if r.from != "ctwatch@example.com" || !slices.Equal(r.to, []string{"secops@example.com", "oncall@example.com"}) {
		t.Errorf("envelope from %q to %q", r.from, r.to)
	}

	p := parse(t, r.data)
	date, err := p.header.Date()
	if err != nil || date.Before(before) || date.After(after) {
		t.Errorf("Date %q (%v) not within [%v, %v]", p.header.Get("Date"), err, before, after)
	}
	wantHeader := map[string]string{
		"From":           `"ctwatch" <ctwatch@example.com>`,
		"To":             `<secops@example.com>, "Oncall Person" <oncall@example.com>`,
		"Subject":        "[ctwatch] HIGH our-names: www.example.com (+3 more)",
		"Message-Id":     "<" + h.ID + "@ctwatch>",
		"Mime-Version":   "1.0",
		"Auto-Submitted": "auto-generated",
		"X-Ctwatch-Id":   h.ID,
		"X-Ctwatch-Kind": "hit",
	}
	gotHeader := map[string]string{}
	for k, vs := range p.header {
		if len(vs) != 1 {
			t.Errorf("header %s appears %d times", k, len(vs))
		}
		switch k {
		case "Date", "Content-Type":
			continue // checked apart
		case "Subject":
			gotHeader[k] = p.subject
		default:
			gotHeader[k] = vs[0]
		}
	}
	if !maps.Equal(gotHeader, wantHeader) {
		t.Errorf("headers:\n got %q\nwant %q", gotHeader, wantHeader)
	}

	crt := "https://crt.sh/?sha256=" + h.Cert.SHA256
	wantText := strings.Join([]string{
		"Severity:  HIGH",
		"Rule:      our-names",
		"Reason:    name www.example.com matches *.example.com",
		"Tags:      kz, prod",
		"Names:     4",
		"  www.example.com",
		"  example.com",
		"  mail.example.com",
		"  api.example.com",
		"Subject:   CN=www.example.com",
		"Issuer:    CN=R11,O=Let's Encrypt,C=US",
		"Validity:  2026-01-02T03:04:05Z to 2026-04-02T03:04:05Z",
		"Type:      precertificate",
		"Log:       Google Argon (https://ct.example/argon/), index 42",
		"crt.sh:    " + crt,
		"SHA-256:   " + h.Cert.SHA256,
		"ID:        " + h.ID,
		"",
		"-- ",
		"Sent by ctwatch.",
		"",
	}, "\r\n")
	if got := p.text(t); got != wantText {
		t.Errorf("text part:\n%s\nwant:\n%s", got, wantText)
	}

	doc := parseHTML(t, p.html(t))
	if doc.title != "HIGH our-names: www.example.com (+3 more)" {
		t.Errorf("html title %q", doc.title)
	}
	wantRows := map[string]string{
		"Severity": "HIGH",
		"Rule":     "our-names",
		"Reason":   h.Reason,
		"Tags":     "kz, prod",
		"Names":    "4\nwww.example.com\nexample.com\nmail.example.com\napi.example.com",
		"Subject":  h.Cert.Subject,
		"Issuer":   h.Cert.Issuer,
		"Validity": "2026-01-02T03:04:05Z to 2026-04-02T03:04:05Z",
		"Type":     "precertificate",
		"Log":      "Google Argon (https://ct.example/argon/), index 42",
		"crt.sh":   crt,
		"SHA-256":  h.Cert.SHA256,
		"ID":       h.ID,
	}
	if !maps.Equal(doc.rows, wantRows) {
		t.Errorf("html rows:\n got %q\nwant %q", doc.rows, wantRows)
	}
	if !slices.Equal(doc.links, []string{crt}) {
		t.Errorf("html links %q, want [%s]", doc.links, crt)
	}
}

// TestKinds checks subject, kind header and body rows for every kind of
// message, test or not.
func TestKinds(t *testing.T) {
	be := &backend{user: "ctwatch", pass: "s3cret"}
	addr := startServer(t, offerStartTLS, be, false)
	n := newNotifier(t, config(addr, getPKI(t).caFile))

	tests := []struct {
		name     string
		msg      *alerting.Message
		subject  string
		kind     string
		id       string
		rows     map[string]string // a subset of the HTML rows
		textHead string            // how the text part starts
	}{
		{
			name:    "event",
			msg:     &alerting.Message{Event: testEvent()},
			subject: "[ctwatch] log bad_signature: Google Argon",
			kind:    "event",
			id:      "ev-bad-signature-1",
			rows: map[string]string{
				"Event": "bad_signature", "Log": "Google Argon", "Log URL": "https://ct.example/argon/",
				"Index": "7", "Time": "2026-01-02T03:04:05Z", "Detail": "STH at size 1000 does not verify",
				"ID": "ev-bad-signature-1",
			},
			textHead: "Event:     bad_signature\r\n",
		},
		{
			name:    "digest",
			msg:     &alerting.Message{Digest: testDigest()},
			subject: "[ctwatch] HIGH 1000 hits for rule our-names",
			kind:    "digest",
			id:      "digest-1",
			rows: map[string]string{
				"Hits":      "1000",
				"Period":    "2026-01-02T03:04:05Z to 2026-01-02T03:05:05Z",
				"Names":     "1000\n" + digestNames(20) + "\n… and 980 more",
				"Issuers":   "3\nCN=A (600)\nCN=B (300)\nCN=C (100)",
				"Full list": "https://ctwatch.example/digests/digest-1",
				"ID":        "digest-1",
			},
			textHead: "Severity:  HIGH\r\nRule:      our-names\r\nHits:      1000\r\n",
		},
		{
			name:     "test hit",
			msg:      &alerting.Message{Hit: alerttest.SampleHit(), Test: true},
			subject:  "[TEST] [ctwatch] HIGH our-names: www.example.com (+3 more)",
			kind:     "hit",
			id:       alerttest.SampleHit().ID,
			rows:     map[string]string{"Rule": "our-names"},
			textHead: "TEST MESSAGE sent by `ctwatch sinks test`: nothing was found, do not act on it.\r\n\r\nSeverity:  HIGH\r\n",
		},
		{
			name:     "test event",
			msg:      &alerting.Message{Event: testEvent(), Test: true},
			subject:  "[TEST] [ctwatch] log bad_signature: Google Argon",
			kind:     "event",
			id:       "ev-bad-signature-1",
			rows:     map[string]string{"Event": "bad_signature"},
			textHead: "TEST MESSAGE",
		},
		{
			name:     "test digest",
			msg:      &alerting.Message{Digest: testDigest(), Test: true},
			subject:  "[TEST] [ctwatch] HIGH 1000 hits for rule our-names",
			kind:     "digest",
			id:       "digest-1",
			rows:     map[string]string{"Hits": "1000"},
			textHead: "TEST MESSAGE",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := n.Notify(t.Context(), tt.msg); err != nil {
				t.Fatalf("Notify: %v", err)
			}
			p := parse(t, only(t, be).data)
			if p.subject != tt.subject {
				t.Errorf("Subject %q, want %q", p.subject, tt.subject)
			}
			if got := p.header.Get("X-Ctwatch-Kind"); got != tt.kind {
				t.Errorf("X-Ctwatch-Kind %q, want %q", got, tt.kind)
			}
			if got := p.header.Get("X-Ctwatch-Id"); got != tt.id {
				t.Errorf("X-Ctwatch-Id %q, want %q", got, tt.id)
			}
			wantTest := ""
			if tt.msg.Test {
				wantTest = "true"
			}
			if got := p.header.Get("X-Ctwatch-Test"); got != wantTest {
				t.Errorf("X-Ctwatch-Test %q, want %q", got, wantTest)
			}
			if txt := p.text(t); !strings.HasPrefix(txt, tt.textHead) {
				t.Errorf("text part starts %q, want %q", txt[:min(len(txt), 200)], tt.textHead)
			}
			doc := parseHTML(t, p.html(t))
			for k, want := range tt.rows {
				if got := doc.rows[k]; got != want {
					t.Errorf("html row %s = %q, want %q", k, got, want)
				}
			}
			if tt.msg.Digest != nil && !slices.Equal(doc.links, []string{tt.msg.Digest.URL}) {
				t.Errorf("digest links %q", doc.links)
			}
		})
	}
}

func digestNames(n int) string {
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("host%d.example.com", i))
	}
	return strings.Join(names, "\n")
}

// TestHostileFields sends a certificate whose fields try header injection,
// HTML injection and fake body lines.
func TestHostileFields(t *testing.T) {
	be := &backend{user: "ctwatch", pass: "s3cret"}
	addr := startServer(t, offerStartTLS, be, false)
	n := newNotifier(t, config(addr, getPKI(t).caFile))

	inject := "evil.example\r\nBcc: victim@example.com\r\nX-Evil: 1"
	script := "<script>alert(1)</script>.example"
	bidi := "moc.elpmaxe\u202e.example"
	h := alerttest.SampleHit()
	h.Rule = "rule\nX-Rule: 2"
	h.Cert.DNSNames = []string{inject, script, bidi}
	h.Cert.Issuer = `CN=<b>Evil</b> & "Co"`
	h.Reason = "looks fine\nSeverity:  low"
	h.Log.URL = "javascript:alert(1)"

	if err := n.Notify(t.Context(), &alerting.Message{Hit: h}); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	r := only(t, be)
	if bytes.Contains(r.data, []byte("\nBcc:")) || bytes.Contains(r.data, []byte("\nX-Evil:")) || bytes.Contains(r.data, []byte("\nX-Rule:")) {
		t.Errorf("injected header line in raw message:\n%s", r.data)
	}
	p := parse(t, r.data)
	for _, k := range []string{"Bcc", "X-Evil", "X-Rule"} {
		if _, ok := p.header[k]; ok {
			t.Errorf("header %s injected", k)
		}
	}
	wantSubject := "[ctwatch] HIGH " + strconv.Quote(h.Rule) + ": " + strconv.Quote(inject) + " (+2 more)"
	if p.subject != wantSubject {
		t.Errorf("Subject %q, want %q", p.subject, wantSubject)
	}

	txt := p.text(t)
	for _, l := range strings.Split(txt, "\r\n") {
		if strings.HasPrefix(l, "Bcc:") || strings.HasPrefix(l, "Severity:  low") || strings.HasPrefix(l, "X-") {
			t.Errorf("text part has a forged line %q", l)
		}
	}
	for _, want := range []string{
		"  " + strconv.Quote(inject) + "\r\n",
		"  " + script + "\r\n",
		"  " + strconv.Quote(bidi) + "\r\n",
		"Reason:    " + strconv.Quote(h.Reason) + "\r\n",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("text part lacks %q:\n%s", want, txt)
		}
	}

	doc := parseHTML(t, p.html(t))
	for _, el := range []string{"script", "b"} {
		if doc.elements[el] {
			t.Errorf("HTML part has a <%s> element", el)
		}
	}
	if got, want := doc.rows["Issuer"], h.Cert.Issuer; got != want {
		t.Errorf("html issuer %q, want the text %q", got, want)
	}
	if got, want := doc.rows["Names"], "3\n"+strconv.Quote(inject)+"\n"+script+"\n"+strconv.Quote(bidi); got != want {
		t.Errorf("html names %q, want %q", got, want)
	}
	for _, l := range doc.links {
		if strings.HasPrefix(l, "javascript:") {
			t.Errorf("html link %q", l)
		}
	}
}

// TestManyNames: a certificate with 10,000 names makes a mail of bounded
// size that lists the first hundred and counts the rest.
func TestManyNames(t *testing.T) {
	be := &backend{user: "ctwatch", pass: "s3cret"}
	addr := startServer(t, offerStartTLS, be, false)
	n := newNotifier(t, config(addr, getPKI(t).caFile))
	h := alerttest.SampleHit()
	h.Cert.DNSNames = nil
	for i := range 10000 {
		h.Cert.DNSNames = append(h.Cert.DNSNames, fmt.Sprintf("n%05d.example.com", i))
	}
	if err := n.Notify(t.Context(), &alerting.Message{Hit: h}); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	r := only(t, be)
	if len(r.data) > 64<<10 {
		t.Errorf("mail is %d bytes", len(r.data))
	}
	p := parse(t, r.data)
	if want := "[ctwatch] HIGH our-names: n00000.example.com (+9999 more)"; p.subject != want {
		t.Errorf("Subject %q, want %q", p.subject, want)
	}
	doc := parseHTML(t, p.html(t))
	lines := strings.Split(doc.rows["Names"], "\n")
	if len(lines) != 102 || lines[0] != "10000" || lines[1] != "n00000.example.com" ||
		lines[100] != "n00099.example.com" || lines[101] != "… and 9900 more" {
		t.Errorf("names row: %d lines, first %q, last %q", len(lines), lines[:2], lines[len(lines)-2:])
	}
}

// TestUnicodeSubject: a non-ASCII name is RFC 2047 encoded, folded into
// short lines, and cut at 100 characters.
func TestUnicodeSubject(t *testing.T) {
	be := &backend{user: "ctwatch", pass: "s3cret"}
	addr := startServer(t, offerStartTLS, be, false)
	n := newNotifier(t, config(addr, getPKI(t).caFile))
	h := alerttest.SampleHit()
	h.Cert.DNSNames = []string{strings.Repeat("ü", 150) + ".example"}
	if err := n.Notify(t.Context(), &alerting.Message{Hit: h}); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	r := only(t, be)
	for l := range strings.SplitSeq(string(r.data), "\r\n") {
		if len(l) > 78 && (strings.HasPrefix(l, "Subject:") || strings.HasPrefix(l, " =?")) {
			t.Errorf("subject line of %d bytes: %q", len(l), l)
		}
	}
	p := parse(t, r.data)
	if want := "[ctwatch] HIGH our-names: " + strings.Repeat("ü", 99) + "…"; p.subject != want {
		t.Errorf("Subject %q, want %q", p.subject, want)
	}
}

// TestOddID: an ID that is not a valid Message-ID local part still gives
// a well-formed Message-ID derived from it, and travels encoded in
// X-Ctwatch-Id.
func TestOddID(t *testing.T) {
	be := &backend{user: "ctwatch", pass: "s3cret"}
	addr := startServer(t, offerStartTLS, be, false)
	n := newNotifier(t, config(addr, getPKI(t).caFile))
	ev := testEvent()
	ev.ID = "log x/ü\r\nBcc: y"
	if err := n.Notify(t.Context(), &alerting.Message{Event: ev}); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	p := parse(t, only(t, be).data)
	sum := sha256.Sum256([]byte(ev.ID))
	if got, want := p.header.Get("Message-Id"), "<"+hex.EncodeToString(sum[:16])+"@ctwatch>"; got != want {
		t.Errorf("Message-Id %q, want %q", got, want)
	}
	id, err := new(mime.WordDecoder).DecodeHeader(p.header.Get("X-Ctwatch-Id"))
	if err != nil || id != ev.ID {
		t.Errorf("X-Ctwatch-Id decodes to %q (%v), want %q", id, err, ev.ID)
	}
	if _, ok := p.header["Bcc"]; ok {
		t.Error("Bcc injected through the ID")
	}
}

// TestTLSModes covers implicit TLS, plain text on loopback (with and
// without AUTH) and the refusals around them.
func TestTLSModes(t *testing.T) {
	caFile := getPKI(t).caFile
	t.Run("implicit TLS", func(t *testing.T) {
		be := &backend{user: "ctwatch", pass: "s3cret"}
		addr := startServer(t, implicitTLS, be, false)
		cfg := config(addr, caFile)
		cfg.TLSMode = email.TLSModeTLS
		if err := newNotifier(t, cfg).Notify(t.Context(), &alerting.Message{Hit: alerttest.SampleHit()}); err != nil {
			t.Fatalf("Notify: %v", err)
		}
		if r := only(t, be); !r.tls || r.user != "ctwatch" {
			t.Errorf("tls=%v user=%q", r.tls, r.user)
		}
	})
	t.Run("none on loopback with auth", func(t *testing.T) {
		be := &backend{user: "ctwatch", pass: "s3cret"}
		addr := startServer(t, plainOnly, be, true)
		cfg := config(addr, "")
		cfg.TLS = httpsink.TLS{}
		cfg.TLSMode = email.TLSModeNone
		if err := newNotifier(t, cfg).Notify(t.Context(), &alerting.Message{Hit: alerttest.SampleHit()}); err != nil {
			t.Fatalf("Notify: %v", err)
		}
		if r := only(t, be); r.tls || r.user != "ctwatch" {
			t.Errorf("tls=%v user=%q", r.tls, r.user)
		}
	})
	t.Run("none without auth", func(t *testing.T) {
		be := &backend{}
		addr := startServer(t, plainOnly, be, false)
		cfg := config(addr, "")
		cfg.TLS, cfg.TLSMode, cfg.Username, cfg.Password = httpsink.TLS{}, email.TLSModeNone, "", ""
		if err := newNotifier(t, cfg).Notify(t.Context(), &alerting.Message{Hit: alerttest.SampleHit()}); err != nil {
			t.Fatalf("Notify: %v", err)
		}
		if r := only(t, be); r.tls || r.user != "" {
			t.Errorf("tls=%v user=%q", r.tls, r.user)
		}
	})
	t.Run("starttls not offered", func(t *testing.T) {
		be := &backend{}
		addr := startServer(t, plainOnly, be, false)
		cfg := config(addr, caFile)
		cfg.Username, cfg.Password = "", ""
		err := newNotifier(t, cfg).Notify(t.Context(), &alerting.Message{Hit: alerttest.SampleHit()})
		if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
			t.Errorf("err = %v, want a STARTTLS refusal", err)
		}
		none(t, be)
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		be := &backend{}
		addr := startServer(t, offerStartTLS, be, false)
		cfg := config(addr, "") // system roots only
		cfg.TLS = httpsink.TLS{}
		cfg.Username, cfg.Password = "", ""
		err := newNotifier(t, cfg).Notify(t.Context(), &alerting.Message{Hit: alerttest.SampleHit()})
		if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok {
			t.Errorf("err = %v, want a certificate verification error", err)
		}
		none(t, be)
	})
	t.Run("wrong server name", func(t *testing.T) {
		be := &backend{}
		addr := startServer(t, offerStartTLS, be, false)
		cfg := config(addr, caFile)
		cfg.TLS.ServerName = "smtp.example.com"
		cfg.Username, cfg.Password = "", ""
		err := newNotifier(t, cfg).Notify(t.Context(), &alerting.Message{Hit: alerttest.SampleHit()})
		if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok {
			t.Errorf("err = %v, want a certificate verification error", err)
		}
		none(t, be)
	})
}

// TestRefusals: the server's refusals come back as errors quoting the SMTP
// code, and nothing is delivered.
func TestRefusals(t *testing.T) {
	caFile := getPKI(t).caFile
	tests := []struct {
		name   string
		be     *backend
		change func(*email.Config)
		want   []string
	}{
		{
			name:   "wrong password",
			be:     &backend{user: "ctwatch", pass: "s3cret"},
			change: func(c *email.Config) { c.Password = "wrong" },
			want:   []string{"AUTH PLAIN", "535"},
		},
		{
			name: "recipient refused",
			be:   &backend{user: "ctwatch", pass: "s3cret", reject: "oncall@example.com"},
			want: []string{"RCPT TO:<oncall@example.com>", "550", "5.1.1", "no such user here"},
		},
		{
			name:   "auth required but not configured",
			be:     &backend{user: "ctwatch", pass: "s3cret"},
			change: func(c *email.Config) { c.Username, c.Password = "", "" },
			want:   []string{"MAIL FROM", "502"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startServer(t, offerStartTLS, tt.be, false)
			cfg := config(addr, caFile)
			if tt.change != nil {
				tt.change(&cfg)
			}
			err := newNotifier(t, cfg).Notify(t.Context(), &alerting.Message{Hit: alerttest.SampleHit()})
			if err == nil {
				t.Fatal("Notify succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "wrong") {
				t.Errorf("err %q shows the password", err)
			}
			none(t, tt.be)
		})
	}
}

// TestCancel: a server that accepts the connection and never greets holds
// Notify only until the context is cancelled.
func TestCancel(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	n := newNotifier(t, config(l.Addr().String(), getPKI(t).caFile))
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- n.Notify(ctx, &alerting.Message{Hit: alerttest.SampleHit()}) }()
	c := <-accepted
	defer c.Close()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestNotifyWithoutID(t *testing.T) {
	n := newNotifier(t, config("127.0.0.1:1", ""))
	h := alerttest.SampleHit()
	h.ID = ""
	if err := n.Notify(t.Context(), &alerting.Message{Hit: h}); err == nil || !strings.Contains(err.Error(), "without id") {
		t.Errorf("err = %v", err)
	}
	if err := n.Notify(t.Context(), &alerting.Message{}); err == nil {
		t.Error("empty message accepted")
	}
}

func TestNewRejects(t *testing.T) {
	valid := email.Config{Addr: "smtp.example.com:587", From: "a@example.com", To: []string{"b@example.com"}}
	tests := []struct {
		name   string
		change func(*email.Config)
		want   string
	}{
		{"no port", func(c *email.Config) { c.Addr = "smtp.example.com" }, "host:port"},
		{"bad mode", func(c *email.Config) { c.TLSMode = "ssl" }, "smtp_tls"},
		{"no from", func(c *email.Config) { c.From = "" }, "from"},
		{"bad from", func(c *email.Config) { c.From = "not an address" }, "from"},
		{"header injection in from", func(c *email.Config) { c.From = "a@example.com\r\nBcc: x@example.com" }, "from"},
		{"no to", func(c *email.Config) { c.To = nil }, "recipient"},
		{"bad to", func(c *email.Config) { c.To = []string{"b@example.com", "nope"} }, "nope"},
		{"negative timeout", func(c *email.Config) { c.Timeout = -time.Second }, "timeout"},
		{"bad hostname", func(c *email.Config) { c.Hostname = "a b\r\nRSET" }, "hostname"},
		{"missing ca file", func(c *email.Config) { c.TLS.CAFile = "/nonexistent/ca.pem" }, "ca_file"},
		{"cert without key", func(c *email.Config) { c.TLS.CertFile = "/x.pem" }, "key_file"},
		{"password without user", func(c *email.Config) { c.Password = "x" }, "username"},
		{
			"auth in plain text to a remote host",
			func(c *email.Config) { c.TLSMode, c.Username, c.Password = email.TLSModeNone, "u", "p" },
			"refusing AUTH without TLS",
		},
		{
			"tls settings with mode none",
			func(c *email.Config) { c.TLSMode, c.TLS.InsecureSkipVerify = email.TLSModeNone, true },
			"tls settings",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			cfg.To = slices.Clone(valid.To)
			tt.change(&cfg)
			_, err := email.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := email.New(valid); err != nil {
		t.Errorf("valid config: %v", err)
	}
	for _, host := range []string{"localhost", "127.0.0.2", "[::1]"} {
		cfg := valid
		cfg.Addr = host + ":25"
		cfg.TLSMode, cfg.Username, cfg.Password = email.TLSModeNone, "u", "p"
		if _, err := email.New(cfg); err != nil {
			t.Errorf("auth without TLS on loopback %s: %v", host, err)
		}
	}
}
