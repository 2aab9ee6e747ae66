// Package email is the sink that mails every hit, log event or digest to a
// list of recipients over SMTP.
//
// Each message is one RFC 5322 mail, multipart/alternative with a
// text/plain and a text/html part (both UTF-8, quoted-printable), sent in one
// SMTP session: connect, TLS (STARTTLS or implicit), optional AUTH PLAIN,
// MAIL, RCPT for every recipient, DATA. Any refusal on the way is returned
// as an error that quotes the server's reply code (e.g. "550 5.1.1 ..."), so
// an operator can tell a full mailbox (4xx, passes) from a wrong address
// (5xx, dead-letter); the Dispatcher retries both alike.
//
// The Message-ID is derived from the message's ID, so a mail delivered twice
// (a retry after a lost reply) carries the same Message-ID and mail systems
// can drop the copy; the ID also travels in the X-Ctwatch-Id header.
//
// Certificate fields are attacker-chosen bytes: they never reach a header
// unencoded (the Subject is RFC 2047 encoded, so a CR/LF in a DNS name cannot
// add a header), the HTML part is built with html/template, and values with
// control or invisible characters are shown Go-quoted so they cannot fake a
// line of the message.
//
// The client is the standard library's net/smtp: it does everything this
// sink needs (STARTTLS, AUTH, reply codes as *textproto.Error) and keeps the
// daemon free of a third-party SMTP stack; the context is honoured through
// deadlines on the connection, which net/smtp leaves to the caller.
package email

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/httpsink"
)

// TLS modes of Config.TLSMode.
const (
	// TLSModeStartTLS connects in plain text and upgrades with STARTTLS
	// before anything else is sent; a server that does not offer STARTTLS
	// is an error, never a silent downgrade. Usual port: 587.
	TLSModeStartTLS = "starttls"
	// TLSModeTLS speaks TLS from the first byte (implicit TLS, RFC 8314).
	// Usual port: 465.
	TLSModeTLS = "tls"
	// TLSModeNone never encrypts: anyone on the path reads the alerts.
	// Only sensible for a relay on the same host; AUTH is refused unless
	// the server is on a loopback address.
	TLSModeNone = "none"
)

// DefaultTimeout bounds one delivery, from dialling to the server's answer
// to the end of DATA.
const DefaultTimeout = 30 * time.Second

// Config says where and how to mail. It holds plain values: the config
// loader has already resolved secrets (Password arrives as a value).
type Config struct {
	// Addr is the SMTP server as host:port.
	Addr string
	// TLSMode is TLSModeStartTLS (the default when empty), TLSModeTLS or
	// TLSModeNone.
	TLSMode string
	// TLS configures server verification (CAFile, ServerName,
	// InsecureSkipVerify) and an optional client certificate. The server
	// name checked defaults to Addr's host.
	TLS httpsink.TLS
	// From is the sender, "addr@example.com" or "Name <addr@example.com>";
	// it is also the envelope sender.
	From string
	// To are the recipients, in the same forms; at least one.
	To []string
	// Username enables AUTH PLAIN when not empty; Password goes with it.
	Username string
	Password string
	// Timeout bounds one delivery; 0 means DefaultTimeout.
	Timeout time.Duration
	// Hostname is the name sent in EHLO; empty means os.Hostname, or
	// "localhost" when that fails.
	Hostname string
}

// Notifier mails messages through one SMTP server. It holds no connection
// between deliveries (alerts are rare; a fresh session per mail is simpler
// than keeping one alive), so it is safe for concurrent use.
type Notifier struct {
	addr      string // host:port
	host      string
	mode      string
	tls       *tls.Config
	from      *mail.Address
	to        []*mail.Address
	username  string
	password  string
	plainAuth bool // AUTH allowed without TLS: only on loopback
	timeout   time.Duration
	hostname  string
	dialer    net.Dialer
}

// New checks cfg, loads its TLS files and returns a Notifier. It does not
// connect: a server that is down at startup is a delivery failure to retry,
// not a configuration error.
func New(cfg Config) (*Notifier, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("email: smtp address %q: want host:port", cfg.Addr)
	}
	n := &Notifier{
		addr:     cfg.Addr,
		host:     host,
		mode:     cfg.TLSMode,
		username: cfg.Username,
		password: cfg.Password,
		timeout:  cfg.Timeout,
		hostname: cfg.Hostname,
	}
	switch n.mode {
	case "":
		n.mode = TLSModeStartTLS
	case TLSModeStartTLS, TLSModeTLS, TLSModeNone:
	default:
		return nil, fmt.Errorf("email: smtp_tls %q: want starttls, tls or none", cfg.TLSMode)
	}
	if n.timeout < 0 {
		return nil, fmt.Errorf("email: negative timeout %s", cfg.Timeout)
	}
	if n.timeout == 0 {
		n.timeout = DefaultTimeout
	}
	if n.mode == TLSModeNone {
		if !cfg.TLS.IsZero() {
			return nil, errors.New("email: tls settings given but smtp_tls is none")
		}
		if n.username != "" && !isLoopback(host) {
			// The password would cross the network in clear text.
			return nil, fmt.Errorf("email: refusing AUTH without TLS to %s: not a loopback address", host)
		}
		n.plainAuth = true
	} else {
		if n.tls, err = cfg.TLS.Config(host); err != nil {
			return nil, fmt.Errorf("email: %w", err)
		}
	}
	if n.password != "" && n.username == "" {
		return nil, errors.New("email: password without username")
	}

	if cfg.From == "" {
		return nil, errors.New("email: from is required")
	}
	if n.from, err = mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("email: from %q: %w", cfg.From, err)
	}
	if len(cfg.To) == 0 {
		return nil, errors.New("email: at least one recipient (to) is required")
	}
	for _, s := range cfg.To {
		a, err := mail.ParseAddress(s)
		if err != nil {
			return nil, fmt.Errorf("email: to %q: %w", s, err)
		}
		n.to = append(n.to, a)
	}

	if n.hostname == "" {
		if h, err := os.Hostname(); err == nil && validHostname(h) {
			n.hostname = h
		} else {
			n.hostname = "localhost"
		}
	} else if !validHostname(n.hostname) {
		return nil, fmt.Errorf("email: hostname %q: not a host name", cfg.Hostname)
	}
	return n, nil
}

// isLoopback reports whether host names this machine: "localhost" or a
// loopback IP. Only there may a password travel without TLS.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validHostname accepts what may follow EHLO: letters, digits, '-', '.',
// or an address literal in brackets. Anything else (a space, a CR/LF) would
// corrupt the command.
func validHostname(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '[' || c == ']' || c == ':'
		if !ok {
			return false
		}
	}
	return true
}

// Notify mails m to every recipient in one SMTP session. It returns nil
// once the server has accepted the message after DATA; any other outcome
// is an error quoting the SMTP reply where there was one. Recipients are
// all-or-nothing: if the server refuses one, no message is sent, so a
// retry does not mail the others twice. A message without ID is an error.
func (n *Notifier) Notify(ctx context.Context, m *alerting.Message) error {
	if m.ID() == "" {
		return errors.New("email: message without id")
	}
	msg, err := compose(m, n.from, n.to, time.Now())
	if err != nil {
		return fmt.Errorf("email: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	if err := n.send(ctx, msg); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			// The I/O error says "i/o timeout"; say why.
			return fmt.Errorf("email %s: %w: %w", n.addr, cerr, err)
		}
		return fmt.Errorf("email %s: %w", n.addr, err)
	}
	return nil
}

// send runs one SMTP session delivering msg. ctx bounds every step.
func (n *Notifier) send(ctx context.Context, msg []byte) error {
	conn, err := n.dialer.DialContext(ctx, "tcp", n.addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	// net/smtp knows no context: the deadline bounds every read and
	// write, and cancellation moves it into the past, which fails the
	// pending operation at once.
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fmt.Errorf("set deadline: %w", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if n.mode == TLSModeTLS {
		tc := tls.Client(conn, n.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, n.host)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(n.hostname); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if n.mode == TLSModeStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("server does not offer STARTTLS (set smtp_tls: tls for implicit TLS)")
		}
		if err := c.StartTLS(n.tls); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if n.username != "" {
		ok, mechs := c.Extension("AUTH")
		if !ok {
			return errors.New("server does not offer AUTH")
		}
		if !slices.Contains(strings.Fields(strings.ToUpper(mechs)), "PLAIN") {
			return fmt.Errorf("server does not offer AUTH PLAIN (offers %q)", mechs)
		}
		if err := c.Auth(&plainAuth{username: n.username, password: n.password, allowPlain: n.plainAuth}); err != nil {
			return fmt.Errorf("AUTH PLAIN: %w", err)
		}
	}
	if err := c.Mail(n.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM:<%s>: %w", n.from.Address, err)
	}
	for _, a := range n.to {
		if err := c.Rcpt(a.Address); err != nil {
			return fmt.Errorf("RCPT TO:<%s>: %w", a.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	// The server has taken responsibility for the message; a failed QUIT
	// changes nothing about that.
	_ = c.Quit()
	return nil
}

// plainAuth is SASL PLAIN (RFC 4616) for net/smtp. Unlike smtp.PlainAuth
// it checks for loopback by address rather than by the literal names
// "localhost", "127.0.0.1" and "::1", and it leaves the host check to New.
type plainAuth struct {
	username, password string
	allowPlain         bool // no TLS needed: the server is on loopback
}

// Start implements smtp.Auth.
func (a *plainAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !a.allowPlain {
		return "", nil, errors.New("refusing to send the password over an unencrypted connection")
	}
	resp := make([]byte, 0, 2+len(a.username)+len(a.password))
	resp = append(resp, 0)
	resp = append(resp, a.username...)
	resp = append(resp, 0)
	resp = append(resp, a.password...)
	return "PLAIN", resp, nil
}

// Next implements smtp.Auth: PLAIN is one step, so any challenge is an
// error.
func (a *plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected server challenge after AUTH PLAIN")
	}
	return nil, nil
}

// messageIDLocal returns the left part of the Message-ID for id: id itself
// when it is a valid dot-atom of safe characters (hit IDs are hex), else a
// hash of it, so the Message-ID is always derived from the ID and always
// well-formed.
func messageIDLocal(id string) string {
	ok := id != "" && len(id) <= 128 && id[0] != '.' && id[len(id)-1] != '.' && !strings.Contains(id, "..")
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if ok {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// messageID returns the Message-ID header value of the mail for a message
// with the given ID, "<local@ctwatch>". It depends on nothing but id, so a
// redelivered mail has the Message-ID of the first delivery.
func messageID(id string) string {
	return "<" + messageIDLocal(id) + "@ctwatch>"
}

// compose renders m as a complete RFC 5322 message with CRLF line ends.
func compose(m *alerting.Message, from *mail.Address, to []*mail.Address, now time.Time) ([]byte, error) {
	if err := checkHeaderValue("id", m.ID()); err != nil {
		return nil, err
	}
	c := render(m)
	var b bytes.Buffer
	header := func(k, v string) {
		b.WriteString(k)
		first, _, _ := strings.Cut(v, "\r\n")
		if strings.HasPrefix(v, "=?") && len(k)+2+len(first) > 78 {
			// Fold before the first encoded-word too, so that no line
			// holding one is longer than RFC 2047 allows.
			b.WriteString(":\r\n ")
		} else {
			b.WriteString(": ")
		}
		b.WriteString(v)
		b.WriteString("\r\n")
	}
	header("From", from.String())
	tos := make([]string, len(to))
	for i, a := range to {
		tos[i] = a.String()
	}
	header("To", strings.Join(tos, ",\r\n "))
	header("Subject", encodeHeader(c.subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", messageID(m.ID()))
	header("MIME-Version", "1.0")
	// RFC 3834: tells vacation responders and the like not to answer.
	header("Auto-Submitted", "auto-generated")
	header("X-Ctwatch-Id", encodeHeader(m.ID()))
	header("X-Ctwatch-Kind", m.Kind())
	if m.Test {
		header("X-Ctwatch-Test", "true")
	}
	body, boundary, err := alternative(c.text, c.html)
	if err != nil {
		return nil, err
	}
	header("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes(), nil
}
