// Package webhook is the sink that POSTs every hit, log event or digest, as
// JSON, to an HTTP endpoint, optionally signed so that the receiver can tell
// ctwatch's requests from anyone else's.
//
// The request body is exactly the JSON document of the message (m.Data: the
// hit or event as stored in the stream, the digest's JSON for a digest). The
// headers say what it is and how to deduplicate it:
//
//	Content-Type: application/json
//	X-Ctwatch-Id: <id>              the hit's, event's or digest's ID
//	Idempotency-Key: <id>           the same, under the name many services know
//	X-Ctwatch-Kind: hit|event|digest
//	X-Ctwatch-Test: true            only for `ctwatch sinks test`
//	X-Ctwatch-Timestamp: <unix s>   only when a secret is set
//	X-Ctwatch-Signature: v1=<hex>   only when a secret is set
//
// The signature is the lower-case hex HMAC-SHA256, keyed with the shared
// secret, of the timestamp, a dot and the body. Binding the timestamp lets
// a receiver refuse old requests replayed by someone who recorded one; a
// receiver written in Go calls [Verify]. Each attempt is signed afresh, so a
// message retried after an hour-long outage carries a current timestamp
// (and the same ID, which is what deduplication uses).
//
// Delivery is at least once; a receiver that remembers IDs makes it exactly
// once. Status handling (2xx is success, 429/503 Retry-After, redirects are
// failures, bounded reads, TLS options) is [httpsink]'s.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/httpsink"
)

// Header names of a delivery. They are part of the external contract.
const (
	// IDHeader carries the message's ID, the receiver's idempotency key.
	IDHeader = httpsink.IDHeader
	// IdempotencyKeyHeader carries the ID again, under the name that
	// services with built-in deduplication look for.
	IdempotencyKeyHeader = httpsink.IdempotencyKeyHeader
	// KindHeader says what the body is: "hit", "event" or "digest".
	KindHeader = "X-Ctwatch-Kind"
	// TestHeader is "true" on a test alert from `ctwatch sinks test`, which
	// nobody should act on; absent otherwise.
	TestHeader = "X-Ctwatch-Test"
	// TimestampHeader is the signing time, in Unix seconds, of a signed
	// request.
	TimestampHeader = "X-Ctwatch-Timestamp"
	// SignatureHeader holds the signature of a signed request: one or more
	// comma-separated "v1=<hex>" values (see [Verify]).
	SignatureHeader = "X-Ctwatch-Signature"
)

const (
	// DefaultTimeout bounds one request when Config.Timeout is 0.
	DefaultTimeout = httpsink.DefaultTimeout
	// DefaultTolerance is how far a timestamp may be from the receiver's
	// clock when [Verify] is given no tolerance: long enough for clock skew
	// and a slow network, short enough that a recorded request soon stops
	// working.
	DefaultTolerance = 5 * time.Minute

	// signatureScheme prefixes each signature value, so that a future
	// scheme can be sent alongside during a migration.
	signatureScheme = "v1="
	contentType     = "application/json"
)

// Errors returned by [Verify], for receivers that answer differently (or
// log differently) depending on why a request was refused.
var (
	// ErrUnsigned means the request lacks the timestamp or a v1 signature.
	ErrUnsigned = errors.New("webhook: request not signed")
	// ErrBadSignature means no signature matches the body and secret: the
	// request was forged, altered, or signed with another secret.
	ErrBadSignature = errors.New("webhook: signature does not match")
	// ErrStale means the signature is good but the timestamp is outside the
	// tolerance: most likely a replay of a recorded request.
	ErrStale = errors.New("webhook: timestamp outside tolerance")
)

// Config says where and how to deliver. The config loader has already
// resolved secrets (Secret is the key itself, not where to find it).
type Config struct {
	// URL is the endpoint, http or https. It may hold a secret (many
	// services put a token in the path), so errors show only its scheme
	// and host.
	URL string
	// Timeout bounds one request; 0 means DefaultTimeout.
	Timeout time.Duration
	// Header holds extra request headers, e.g. Authorization. Headers that
	// ctwatch sets (Content-Type, Idempotency-Key and every X-Ctwatch-*)
	// cannot be set here: ctwatch's own values win, and the others are
	// dropped, so a configuration cannot forge a test marker or signature.
	Header http.Header
	// TLS holds the operator's TLS settings; ignored when Client is set.
	TLS httpsink.TLS
	// Secret is the HMAC-SHA256 key that signs every request; nil means
	// unsigned. An empty non-nil Secret is refused: it would sign with a
	// key anyone knows.
	Secret []byte
	// Client sends the requests; nil means httpsink's client, which does
	// not follow redirects. A Client given here (tests) is used as is.
	Client *http.Client
}

// Notifier delivers messages to one endpoint. It is safe for concurrent
// use.
type Notifier struct {
	poster *httpsink.Poster
	header http.Header // custom headers, ctwatch's removed
	secret []byte      // nil: unsigned
	now    func() time.Time
}

// New checks cfg, loads its TLS files and returns a Notifier. Errors never
// echo the URL or the secret.
func New(cfg Config) (*Notifier, error) {
	if cfg.Secret != nil && len(cfg.Secret) == 0 {
		return nil, errors.New("webhook: empty secret")
	}
	header := make(http.Header, len(cfg.Header))
	for k, vs := range cfg.Header {
		if !validName(k) {
			return nil, fmt.Errorf("webhook: invalid header name %q", k)
		}
		for _, v := range vs {
			if !validValue(v) {
				return nil, fmt.Errorf("webhook: header %s: control character in value", k)
			}
		}
		if reserved(k) {
			continue
		}
		header[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	p, err := httpsink.New(httpsink.Config{URL: cfg.URL, Timeout: cfg.Timeout, TLS: cfg.TLS, Client: cfg.Client})
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return &Notifier{
		poster: p,
		header: header,
		secret: bytes.Clone(cfg.Secret),
		now:    time.Now,
	}, nil
}

// reserved reports whether a header name is one ctwatch sets itself.
func reserved(name string) bool {
	switch c := http.CanonicalHeaderKey(name); {
	case c == "Content-Type", c == IdempotencyKeyHeader:
		return true
	case strings.HasPrefix(c, "X-Ctwatch-"):
		return true
	}
	return false
}

// validName reports whether s is an HTTP token (RFC 9110 section 5.1).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validValue reports whether s can be a header value: no control
// characters other than tab, so no CR or LF that would start a header of
// its own.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// Notify POSTs m.Data with ctwatch's headers, signed when a secret is
// set, making one attempt. It returns nil on a 2xx answer; an error
// wrapping *alerting.RetryAfterError on 429 or 503 with a usable
// Retry-After; any other error otherwise. A message without ID or body is
// an error (no idempotency key, nothing to send), and so is an ID that
// cannot travel in a header.
func (n *Notifier) Notify(ctx context.Context, m *alerting.Message) error {
	id := m.ID()
	if id == "" {
		return errors.New("webhook: message without id")
	}
	if !validValue(id) {
		// IDs are hashes, but the stream is input like any other.
		return fmt.Errorf("webhook: message id %q cannot be a header value", id)
	}
	if len(m.Data) == 0 {
		return fmt.Errorf("webhook: message %s: empty body", id)
	}
	h := n.header.Clone()
	h.Set("Content-Type", contentType)
	h.Set(IDHeader, id)
	h.Set(IdempotencyKeyHeader, id)
	h.Set(KindHeader, m.Kind())
	if m.Test {
		h.Set(TestHeader, "true")
	}
	if n.secret != nil {
		ts := strconv.FormatInt(n.now().Unix(), 10)
		h.Set(TimestampHeader, ts)
		h.Set(SignatureHeader, signatureScheme+hex.EncodeToString(sign(n.secret, ts, m.Data)))
	}
	if err := n.poster.Post(ctx, m.Data, h); err != nil {
		return fmt.Errorf("webhook: message %s: %w", id, err)
	}
	return nil
}

// sign returns HMAC-SHA256(secret, ts + "." + body).
func sign(secret []byte, ts string, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// Verify is what a receiver written in Go calls to check that a request
// came from ctwatch with the shared secret: header and body are the
// request's headers and its raw body, exactly as received (not re-encoded
// JSON), and now is the receiver's clock.
//
// It returns nil when some "v1=" value in X-Ctwatch-Signature (there may be
// several, comma-separated or in several header lines, e.g. while a signer
// moves to a new secret) is the HMAC-SHA256 of X-Ctwatch-Timestamp, ".",
// and body, and the timestamp is within tolerance of now, either way; a
// tolerance of 0 or less means DefaultTolerance. Otherwise it returns an
// error wrapping ErrUnsigned, ErrBadSignature or ErrStale. Signatures are
// compared in constant time. A receiver that accepts several secrets (during
// its own rotation) calls Verify once per secret.
//
// A good signature proves who sent the request and, with the tolerance,
// that it is recent; it does not make a recent request unique: receivers
// still deduplicate on X-Ctwatch-Id. Verify is safe for concurrent use.
func Verify(secret []byte, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return errors.New("webhook: verify with an empty secret")
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	ts := header.Get(TimestampHeader)
	if ts == "" {
		return fmt.Errorf("%w: no %s header", ErrUnsigned, TimestampHeader)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix < 0 {
		return fmt.Errorf("%w: malformed %s header", ErrUnsigned, TimestampHeader)
	}
	want := sign(secret, ts, body)
	found := false
	for _, line := range header.Values(SignatureHeader) {
		for v := range strings.SplitSeq(line, ",") {
			hexSig, ok := strings.CutPrefix(strings.TrimSpace(v), signatureScheme)
			if !ok {
				continue // another scheme, for another verifier
			}
			found = true
			got, err := hex.DecodeString(hexSig)
			if err == nil && hmac.Equal(got, want) {
				// Checked after the signature, so that ErrStale means
				// "authentic but old": a replay, not a forgery.
				if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
					return fmt.Errorf("%w: signed %s ago, tolerance %s", ErrStale, d.Round(time.Second), tolerance)
				}
				return nil
			}
		}
	}
	if !found {
		return fmt.Errorf("%w: no %s value in %s", ErrUnsigned, signatureScheme, SignatureHeader)
	}
	return ErrBadSignature
}
