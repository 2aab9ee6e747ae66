// Package webhook is the sink that POSTs every hit or log event, as JSON, to
// an HTTP endpoint.
//
// The request body is exactly the JSON document of the hit or event (the
// event package's contract), with Content-Type application/json and the
// header X-Ctwatch-Id carrying its stable ID: delivery is at least once, and
// a receiver that remembers IDs turns it into exactly once. Any 2xx answer
// means delivered. 429 and 503 with a Retry-After header ask the Dispatcher
// to wait that long; every other answer and every transport error is
// retried with backoff. Redirects are not followed (a POST must not turn
// into a GET somewhere else): they count as failures.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
)

// Header names and values of a delivery.
const (
	// IDHeader carries the hit's or event's ID, the receiver's idempotency
	// key.
	IDHeader    = "X-Ctwatch-Id"
	contentType = "application/json"
	userAgent   = "ctwatch"
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
)

// Config says where and how to deliver.
type Config struct {
	// URL is the endpoint, http or https. It may hold a secret (many
	// services put a token in the path), so errors and logs show only its
	// scheme and host.
	URL string
	// Timeout bounds one request; 0 means DefaultTimeout.
	Timeout time.Duration
	// Header holds extra request headers, e.g. Authorization. The headers
	// set by ctwatch (Content-Type, X-Ctwatch-Id) take precedence.
	Header http.Header
	// Client sends the requests; nil means a client of its own that does
	// not follow redirects. A Client given here is used as is.
	Client *http.Client
}

// Notifier delivers messages to one endpoint. It is safe for concurrent
// use.
type Notifier struct {
	url     string
	target  string // scheme://host, safe to show
	timeout time.Duration
	header  http.Header
	client  *http.Client
}

// New checks cfg and returns a Notifier for it.
func New(cfg Config) (*Notifier, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, errors.New("webhook: invalid URL") // err would echo the URL
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook: URL must be http(s)://host/..., got scheme %q", u.Scheme)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("webhook: negative timeout %s", cfg.Timeout)
	}
	n := &Notifier{
		url:     cfg.URL,
		target:  u.Scheme + "://" + u.Host,
		timeout: cfg.Timeout,
		header:  cfg.Header.Clone(),
		client:  cfg.Client,
	}
	if n.timeout == 0 {
		n.timeout = DefaultTimeout
	}
	if n.client == nil {
		n.client = &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return n, nil
}

// Notify POSTs m.Data. It returns nil on a 2xx answer; an error wrapping
// *alerting.RetryAfterError on 429 or 503 with a usable Retry-After; any
// other error otherwise. A message without ID is an error (no idempotency
// key, no delivery).
func (n *Notifier) Notify(ctx context.Context, m *alerting.Message) error {
	id := m.ID()
	if id == "" {
		return errors.New("webhook: message without id")
	}
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(m.Data))
	if err != nil {
		return fmt.Errorf("webhook %s: build request: %w", n.target, err)
	}
	for k, vs := range n.header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set(IDHeader, id)
	req.Header.Set("User-Agent", userAgent)

	resp, err := n.client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // *url.Error would print the full URL
		}
		return fmt.Errorf("webhook %s: %w", n.target, err)
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponse))

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// The receiver has said yes; a body cut short changes nothing.
		return nil
	}
	msg := fmt.Sprintf("webhook %s: status %d", n.target, resp.StatusCode)
	if q := quote(body); q != "" {
		msg += ": " + q
	} else if readErr != nil {
		msg += fmt.Sprintf(" (reading body: %v)", readErr)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
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

// parseRetryAfter reads a Retry-After value (RFC 9110: delay-seconds or an
// HTTP-date) relative to now. It reports false for a missing or malformed
// value; a date in the past gives 0.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
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
