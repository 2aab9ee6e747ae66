// Package httpsink is the HTTP half shared by every integration that
// delivers by POSTing to a URL (webhook, Slack, Alertmanager): building the
// client with the operator's TLS settings, sending one request, and turning
// the answer into the error contract of [alerting.Notifier].
//
// The integrations decide what to send; this package decides what an answer
// means, so that "429 with Retry-After", "a redirect", "a 500" and "a
// hostile endpoint that never stops talking" are handled the same way by all
// of them.
package httpsink

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
)

// Headers every HTTP integration sets on a delivery. Both carry the hit's,
// event's or digest's ID: IDHeader under ctwatch's name, IdempotencyKeyHeader
// under the name many services deduplicate on.
const (
	IDHeader             = "X-Ctwatch-Id"
	IdempotencyKeyHeader = "Idempotency-Key"
)

const (
	// DefaultTimeout bounds one request, from dialling to the end of the
	// response body.
	DefaultTimeout = 10 * time.Second
	// maxResponse is how much of a response body is read: enough to keep
	// the connection reusable for short answers and to quote an error,
	// never so much that a hostile endpoint can fill memory.
	maxResponse = 64 << 10
	// maxQuoted is how much of an error response ends up in the error.
	maxQuoted = 200
	// maxRetryAfter caps a parsed Retry-After; the Dispatcher caps again.
	maxRetryAfter = 24 * time.Hour
	// userAgent identifies ctwatch to receivers.
	userAgent = "ctwatch"
)

// TLS holds the operator's TLS settings for an endpoint. The zero value
// means the system roots and no client certificate.
type TLS struct {
	// CAFile is a PEM bundle of roots that replace the system roots, for
	// endpoints behind a private CA.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key, for
	// endpoints that require mutual TLS; both or neither.
	CertFile string
	KeyFile  string
	// ServerName overrides the name the server certificate is checked
	// against.
	ServerName string
	// InsecureSkipVerify disables verification of the server certificate.
	// It exists for lab setups; a hit sent this way can be read and forged
	// by anyone on the path.
	InsecureSkipVerify bool
}

// IsZero reports whether t asks for nothing beyond the defaults.
func (t TLS) IsZero() bool { return t == TLS{} }

// Config says where one integration posts.
type Config struct {
	// URL is the endpoint, http or https. It may hold a secret (Slack and
	// many other services put a token in the path), so errors and logs
	// show only its scheme and host.
	URL string
	// Timeout bounds one request; 0 means DefaultTimeout.
	Timeout time.Duration
	// TLS configures the client's TLS; ignored when Client is set.
	TLS TLS
	// Client sends the requests; nil means a client of its own that does
	// not follow redirects. A Client given here (tests) is used as is.
	Client *http.Client
}

// Poster sends requests to one endpoint. It is safe for concurrent use.
type Poster struct {
	url     string
	target  string // scheme://host, safe to show
	timeout time.Duration
	client  *http.Client
}

// New checks cfg, loads its TLS files and returns a Poster. Errors name
// the problem but never echo the URL, which may hold a secret.
func New(cfg Config) (*Poster, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, errors.New("invalid URL") // err would echo the URL
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("URL must be http(s)://host/..., got scheme %q", u.Scheme)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("negative timeout %s", cfg.Timeout)
	}
	p := &Poster{
		url:     cfg.URL,
		target:  u.Scheme + "://" + u.Host,
		timeout: cfg.Timeout,
		client:  cfg.Client,
	}
	if p.timeout == 0 {
		p.timeout = DefaultTimeout
	}
	if p.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if !cfg.TLS.IsZero() {
			tc, err := cfg.TLS.Config("")
			if err != nil {
				return nil, err
			}
			tr.TLSClientConfig = tc
		}
		p.client = &http.Client{
			Transport: tr,
			// A POST must not turn into a GET somewhere else, and a
			// redirect to another host would carry the body (and any
			// signature) there: a redirect counts as a failure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return p, nil
}

// Config builds the client TLS configuration these settings describe,
// loading the files they name; defaultServerName is the name to check the
// server's certificate against unless ServerName says otherwise ("" lets
// the caller's transport use the host it dials). Integrations that speak
// TLS without HTTP (email) use it too, so every sink reads the same
// settings the same way.
func (t TLS) Config(defaultServerName string) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, // the operator asked; TLS.InsecureSkipVerify says what it costs
	}
	if tc.ServerName == "" {
		tc.ServerName = defaultServerName
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificate in it", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("tls: cert_file and key_file go together")
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// Target is the endpoint's scheme and host, safe to show in logs.
func (p *Poster) Target() string { return p.target }

// Post sends body with the given headers (Content-Type among them) and
// interprets the answer. It returns nil on any 2xx answer; an error
// wrapping *alerting.RetryAfterError on 429 or 503 with a usable
// Retry-After; any other error otherwise, quoting the start of the
// response body. Redirects are failures. Headers set here: User-Agent,
// unless header has one.
func (p *Poster) Post(ctx context.Context, body []byte, header http.Header) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: build request: %w", p.target, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", userAgent)
	}

	resp, err := p.client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // *url.Error would print the full URL
		}
		return fmt.Errorf("%s: %w", p.target, err)
	}
	defer resp.Body.Close()
	answer, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponse))

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// The receiver has said yes; a body cut short changes nothing.
		return nil
	}
	msg := fmt.Sprintf("%s: status %d", p.target, resp.StatusCode)
	if q := quote(answer); q != "" {
		msg += ": " + q
	} else if readErr != nil {
		msg += fmt.Sprintf(" (reading body: %v)", readErr)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return fmt.Errorf("%s: %w", msg, &alerting.RetryAfterError{After: d})
		}
	}
	return errors.New(msg)
}

// quote returns the start of a response body, trimmed and escaped, for an
// error message.
func quote(body []byte) string {
	s := strings.TrimSpace(string(body))
	if s == "" {
		return ""
	}
	if len(s) > maxQuoted {
		s = s[:maxQuoted] + "…"
	}
	return strconv.Quote(s)
}

// ParseRetryAfter reads a Retry-After value (RFC 9110: delay-seconds or an
// HTTP-date) relative to now. It reports false for a missing or malformed
// value; a date in the past gives 0; anything above a day gives a day.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		if secs > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxRetryAfter), true
}
