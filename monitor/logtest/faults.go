// Package logtest holds what the in-process test logs share:
// monitor/ctlogtest (RFC 6962) and monitor/statictest (static-ct-api) inject
// the same faults, count requests the same way, sign tree heads with the
// same RFC 6962 signature and build precertificate entries the same way.
// Keeping that in one place makes both logs misbehave alike when a test asks
// them to, and a fix to one a fix to both. It is test machinery: nothing in
// it is meant for a production log.
package logtest

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Match says how a selector (the argument of FailNext, TruncateNext and
// Requests) selects request keys. The two log kinds need different rules,
// which is why Faults takes one.
type Match int

const (
	// MatchExact selects the key equal to the selector, and every key for
	// "". RFC 6962 endpoints need it: "get-sth" must not select
	// "get-sth-consistency".
	MatchExact Match = iota
	// MatchPrefix selects every key that starts with the selector (so ""
	// selects them all). static-ct-api paths need it: "tile/" selects
	// every tile.
	MatchPrefix
)

// failure is a pending FailNext rule.
type failure struct {
	selector   string
	left       int
	status     int
	retryAfter time.Duration
}

// truncation is a pending TruncateNext rule.
type truncation struct {
	selector string
	left     int
}

// Faults is the misbehaviour a test log injects before serving a request
// (failures, rate limits with Retry-After, slow responses) and after
// (truncated bodies), and the count of requests it received, so that a test
// can tell a client retried, backed off or gave up. Requests are known by
// their key: the URL path with the log's root removed ("get-sth" under
// "/ct/v1/"), or the full path when it lies outside the root. Create it with
// NewFaults; all methods are safe for concurrent use, including while
// requests are being served.
type Faults struct {
	root  string
	match Match
	// done is closed by Close so that held requests end at once.
	done      chan struct{}
	closeOnce sync.Once

	mu          sync.Mutex
	failures    []failure
	truncations []truncation
	delay       time.Duration
	requests    map[string]int
}

// NewFaults returns Faults with nothing injected and no request counted,
// for a log serving under root ("/ct/v1/", "/mon/": with its trailing
// slash). Selectors are matched against request keys as match says; a
// selector under root ("/ct/v1/get-sth") is taken as its key ("get-sth").
func NewFaults(root string, match Match) *Faults {
	return &Faults{
		root:     root,
		match:    match,
		done:     make(chan struct{}),
		requests: make(map[string]int),
	}
}

// key maps a request path or selector to its key: without root when under
// it, unchanged otherwise.
func (f *Faults) key(path string) string {
	return strings.TrimPrefix(path, f.root)
}

// selects reports whether the (normalised) selector sel selects key.
func (f *Faults) selects(sel, key string) bool {
	if f.match == MatchPrefix {
		return strings.HasPrefix(key, sel)
	}
	return sel == "" || sel == key
}

// FailNext makes the next n requests selected by selector fail with status,
// without being served. When retryAfter > 0 the response has a Retry-After
// header of that many seconds, rounded up, as logs send with 429 and 503. A
// status outside 100-999 becomes 500. Rules queue in call order; a request
// consumes from the first one that selects it. n <= 0 does nothing.
func (f *Faults) FailNext(selector string, n, status int, retryAfter time.Duration) {
	if n <= 0 {
		return
	}
	if status < 100 || status > 999 {
		status = http.StatusInternalServerError
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, failure{
		selector:   f.key(selector),
		left:       n,
		status:     status,
		retryAfter: retryAfter,
	})
}

// TruncateNext marks the next n successful responses to requests selected
// by selector for truncation; the handler asks TakeTruncation whether to cut
// a body. n <= 0 does nothing.
func (f *Faults) TruncateNext(selector string, n int) {
	if n <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.truncations = append(f.truncations, truncation{selector: f.key(selector), left: n})
}

// SetDelay holds every request that arrives from now on for d (0 for none)
// before it is failed or served. A held request ends early when its client
// gives up or Close is called.
func (f *Faults) SetDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// Requests returns how many requests selector selects have been received,
// failed ones included. Requests are counted on arrival, before any delay,
// so polling Requests tells a test that a request is in flight.
func (f *Faults) Requests(selector string) int {
	sel := f.key(selector)
	f.mu.Lock()
	defer f.mu.Unlock()
	total := 0
	for k, n := range f.requests {
		if f.selects(sel, k) {
			total += n
		}
	}
	return total
}

// Intercept is what a log's handler calls first: it counts r, holds it for
// the delay, and answers it when a FailNext rule selects it. It returns r's
// key, and handled = true when the request is over (answered with a failure,
// answered 503 because Close was called while it was held, or abandoned by
// its client): the handler must then return without writing.
func (f *Faults) Intercept(w http.ResponseWriter, r *http.Request) (key string, handled bool) {
	key = f.key(r.URL.Path)
	f.mu.Lock()
	f.requests[key]++
	delay := f.delay
	fail, failed := f.takeFailure(key)
	f.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return key, true
		case <-f.done:
			t.Stop()
			http.Error(w, "log closed", http.StatusServiceUnavailable)
			return key, true
		}
	}
	if failed {
		if fail.retryAfter > 0 {
			secs := (fail.retryAfter + time.Second - 1) / time.Second
			w.Header().Set("Retry-After", strconv.FormatInt(int64(secs), 10))
		}
		http.Error(w, http.StatusText(fail.status), fail.status)
		return key, true
	}
	return key, false
}

// TakeTruncation reports whether the successful response to a request with
// key must be truncated, consuming one response from the first TruncateNext
// rule that selects key. Call it only for responses that succeed, so that
// error responses leave the rules pending.
func (f *Faults) TakeTruncation(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.truncations {
		t := &f.truncations[i]
		if !f.selects(t.selector, key) {
			continue
		}
		if t.left--; t.left == 0 {
			f.truncations = append(f.truncations[:i], f.truncations[i+1:]...)
		}
		return true
	}
	return false
}

// takeFailure consumes one request from the first FailNext rule that
// selects key. f.mu must be held.
func (f *Faults) takeFailure(key string) (failure, bool) {
	for i := range f.failures {
		fl := &f.failures[i]
		if !f.selects(fl.selector, key) {
			continue
		}
		got := *fl
		if fl.left--; fl.left == 0 {
			f.failures = append(f.failures[:i], f.failures[i+1:]...)
		}
		return got, true
	}
	return failure{}, false
}

// Close ends every held request at once with a 503, and every request held
// later, so that closing a log's server does not wait out a delay. It is
// idempotent.
func (f *Faults) Close() {
	f.closeOnce.Do(func() { close(f.done) })
}
