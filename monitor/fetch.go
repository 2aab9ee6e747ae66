package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// FetchOptions says how hard a tailer may pull on one log. Logs are run by
// other people on shared infrastructure; these limits keep ctwatch a polite
// client while letting a backfill use what the log allows.
type FetchOptions struct {
	// PollInterval is how often to ask for a new tree head once caught up.
	PollInterval time.Duration
	// BatchSize is how many entries one get-entries request asks for. Logs
	// may return fewer; the tailer asks again for the rest.
	BatchSize int
	// Concurrency is how many downloads run at once for this log.
	Concurrency int
	// Rate caps requests per second to this log; 0 means no cap.
	Rate float64
	// Timeout bounds one request, body included.
	Timeout time.Duration
	// MaxResponseBytes caps one response body; a larger body is an error,
	// so a hostile log cannot exhaust memory.
	MaxResponseBytes int64
	// VerifyEvery is how many entries may be downloaded between two verified
	// commits. Hits wait in memory until the entries before them are proven
	// to be in a signed tree, so this also bounds memory.
	VerifyEvery uint64
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// retries of a failed request.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// MaxBacklog is how many entries the log may be ahead of the tailer
	// before a falling_behind event is raised (once, until the backlog is
	// down to half of it); 0 raises none. It rides with the fetch options
	// because it is tuned with them, per log.
	MaxBacklog uint64
}

// DefaultFetchOptions are the settings used where the configuration says
// nothing.
func DefaultFetchOptions() FetchOptions {
	return FetchOptions{
		PollInterval:     10 * time.Second,
		BatchSize:        256,
		Concurrency:      4,
		Rate:             20,
		Timeout:          30 * time.Second,
		MaxResponseBytes: 16 << 20,
		VerifyEvery:      8192,
		MinBackoff:       500 * time.Millisecond,
		MaxBackoff:       2 * time.Minute,
	}
}

// withDefaults fills zero fields from DefaultFetchOptions.
func (o FetchOptions) withDefaults() FetchOptions {
	d := DefaultFetchOptions()
	if o.PollInterval <= 0 {
		o.PollInterval = d.PollInterval
	}
	if o.BatchSize <= 0 {
		o.BatchSize = d.BatchSize
	}
	if o.Concurrency <= 0 {
		o.Concurrency = d.Concurrency
	}
	if o.Rate < 0 {
		o.Rate = 0
	}
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = d.MaxResponseBytes
	}
	if o.VerifyEvery == 0 {
		o.VerifyEvery = d.VerifyEvery
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = d.MinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(d.MaxBackoff, o.MinBackoff)
	}
	return o
}

// httpError is a response with a status other than 200.
type httpError struct {
	Status     int
	RetryAfter time.Duration
	Body       string
}

func (e *httpError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("http status %d (retry after %s): %s", e.Status, e.RetryAfter, e.Body)
	}
	return fmt.Sprintf("http status %d: %s", e.Status, e.Body)
}

// errTooLarge marks a response over FetchOptions.MaxResponseBytes.
var errTooLarge = errors.New("response body exceeds the configured cap")

// fetcher makes rate-limited, size-capped JSON GET requests to one log and
// retries them with backoff. It is safe for concurrent use.
type fetcher struct {
	base    string
	client  *http.Client
	limiter *rate.Limiter
	opts    FetchOptions
	// failures counts consecutive failed requests; it drives the
	// log-unreachable event.
	failures atomic.Int64
	// onFailure, if set, is told about every failed attempt with the
	// running count of consecutive failures.
	onFailure func(ctx context.Context, consecutive int64, err error)
	// bodies recycles the buffers of response bodies handed back with
	// recycle: a backfill reads a data tile or get-entries page of a few
	// hundred KiB per 256 entries, and growing a fresh buffer for each
	// was a quarter of all the bytes a backfill allocated.
	bodies sync.Pool
}

// maxRecycled is the largest body buffer kept for reuse: the default
// MaxResponseBytes, since a get-entries page of 1000 entries is several
// MiB. Bigger buffers (a configured cap above the default) are left to the
// GC. The pool holds at most about one buffer per download worker between
// collections, and drops them all when the GC runs twice.
const maxRecycled = 16 << 20

// minBodyBuffer is the first capacity a body buffer grows to.
const minBodyBuffer = 16 << 10

// recycle hands back a body returned by getRaw (or passed to a fetchRetry
// callback) once nothing refers to it any more; its buffer is then reused
// for a later response. Calling it is optional.
func (f *fetcher) recycle(body []byte) {
	if cap(body) == 0 || cap(body) > maxRecycled {
		return
	}
	body = body[:0]
	f.bodies.Put(&body)
}

// readBody reads r to the end into buf (reusing its capacity), refusing
// more than limit bytes: it returns errTooLarge once limit+1 bytes were
// read. A Content-Length within the limit sizes the buffer once, instead
// of growing it by doubling; a larger or absent one is not trusted.
func readBody(r io.Reader, contentLength, limit int64, buf []byte) ([]byte, error) {
	if contentLength > 0 && contentLength <= limit && int64(cap(buf)) < contentLength+1 {
		// +1 so that reading the end of the body needs no growth.
		buf = make([]byte, 0, contentLength+1)
	}
	lr := io.LimitReader(r, limit+1)
	for {
		if len(buf) == cap(buf) {
			// Double: append's growth for large slices is about 1.25×,
			// and a multi-MiB body of unknown length (logs that send no
			// Content-Length) then spent a sixth of a backfill's CPU
			// copying itself.
			buf = slices.Grow(buf, max(cap(buf), minBodyBuffer))
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func newFetcher(base string, client *http.Client, opts FetchOptions) *fetcher {
	lim := rate.NewLimiter(rate.Inf, 1)
	if opts.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(opts.Rate), max(1, opts.Concurrency))
	}
	if client == nil {
		client = &http.Client{}
	}
	return &fetcher{base: strings.TrimRight(base, "/"), client: client, limiter: lim, opts: opts}
}

// get fetches base+path?params and decodes the JSON body into out,
// retrying transient failures (a body that does not decode is one: logs
// behind flaky proxies truncate responses) until ctx ends.
func (f *fetcher) get(ctx context.Context, path string, params url.Values, out any) error {
	return f.fetchRetry(ctx, path, params, func(body []byte) error {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("decode %s response: %w", path, err)
		}
		return nil
	})
}

// getRaw fetches base+path?params and returns the body, retrying like get.
func (f *fetcher) getRaw(ctx context.Context, path string, params url.Values) ([]byte, error) {
	var out []byte
	err := f.fetchRetry(ctx, path, params, func(body []byte) error {
		out = body
		return nil
	})
	return out, err
}

// fetchRetry fetches until use accepts the body or ctx ends. A 4xx other
// than 408/429 is not retried: the request itself is wrong (or the
// resource absent) and repeating it will not help.
func (f *fetcher) fetchRetry(ctx context.Context, path string, params url.Values, use func([]byte) error) error {
	for attempt := 0; ; attempt++ {
		body, err := f.getOnce(ctx, path, params)
		if err == nil {
			err = use(body)
		}
		if err == nil {
			f.failures.Store(0)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n := f.failures.Add(1)
		if f.onFailure != nil {
			f.onFailure(ctx, n, err)
		}
		var he *httpError
		if errors.As(err, &he) && he.Status >= 400 && he.Status < 500 && he.Status != http.StatusTooManyRequests && he.Status != http.StatusRequestTimeout {
			return err
		}
		delay := backoff(attempt, f.opts.MinBackoff, f.opts.MaxBackoff)
		if errors.As(err, &he) && he.RetryAfter > 0 {
			// The log told us when to come back; coming back earlier only
			// earns another 429.
			delay = he.RetryAfter
		}
		if err := sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// getOnce makes one request and returns the body of a 200 response.
func (f *fetcher) getOnce(ctx context.Context, path string, params url.Values) ([]byte, error) {
	if err := f.limiter.Wait(ctx); err != nil {
		return nil, fmt.Errorf("rate limit wait: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	u := f.base + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var buf []byte
	if b, ok := f.bodies.Get().(*[]byte); ok {
		buf = *b
	}
	body, err := readBody(resp.Body, resp.ContentLength, f.opts.MaxResponseBytes, buf)
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("get %s: %w (%d bytes)", path, errTooLarge, f.opts.MaxResponseBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		snippet := string(body)
		if len(snippet) > 200 {
			snippet = snippet[:200]
		}
		return nil, fmt.Errorf("get %s: %w", path, &httpError{
			Status:     resp.StatusCode,
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
			Body:       strings.TrimSpace(snippet),
		})
	}
	return body, nil
}

// FetchErrorKind names the kind of a failed request, for counting:
// "rate_limited" (429), "http_5xx", "http_4xx", "too_large", "timeout",
// "decode" (JSON that does not parse) or "network" (anything else:
// refused, reset, DNS, a body another decoder refused).
func FetchErrorKind(err error) string {
	var he *httpError
	switch {
	case errors.As(err, &he) && he.Status == http.StatusTooManyRequests:
		return "rate_limited"
	case errors.As(err, &he) && he.Status >= 500:
		return "http_5xx"
	case errors.As(err, &he):
		return "http_4xx"
	case errors.Is(err, errTooLarge):
		return "too_large"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "timeout"
	case isDecode(err):
		return "decode"
	}
	return "network"
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// isDecode reports whether err is a response that did not parse.
func isDecode(err error) bool {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	return errors.As(err, &se) || errors.As(err, &te)
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// It returns 0 when the header is absent or unreadable. The delay is capped
// at an hour so a hostile log cannot park a tailer forever.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		d = time.Duration(min(secs, 3600)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}

// backoff returns the delay before retry number attempt: exponential from
// lo, capped at hi, with full jitter on the upper half so that many tailers
// failing together do not retry together.
func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	half := d / 2
	return half + rand.N(half+1)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
