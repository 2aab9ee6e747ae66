package logtest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/monitor/logtest"
)

// serve starts a server whose handler runs f's Intercept and then answers
// 200 with the request's key, the way the logs use Faults.
func serve(t *testing.T, f *logtest.Faults) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, handled := f.Intercept(w, r)
		if handled {
			return
		}
		_, _ = io.WriteString(w, key)
	}))
	t.Cleanup(func() {
		f.Close()
		srv.Close()
	})
	return srv
}

type response struct {
	status     int
	retryAfter string
	body       string
}

func get(t *testing.T, url string) response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return response{resp.StatusCode, resp.Header.Get("Retry-After"), string(body)}
}

func TestFailNext(t *testing.T) {
	type rule struct {
		selector   string
		n, status  int
		retryAfter time.Duration
	}
	tests := []struct {
		name  string
		match logtest.Match
		rules []rule
		paths []string
		want  []response // body checked only for status 200
	}{
		{"exact endpoint only", logtest.MatchExact, []rule{{"get-sth", 2, 503, 0}},
			[]string{"/ct/v1/get-sth-consistency", "/ct/v1/get-sth", "/ct/v1/get-sth", "/ct/v1/get-sth"},
			[]response{{200, "", "get-sth-consistency"}, {503, "", ""}, {503, "", ""}, {200, "", "get-sth"}}},
		{"exact empty selects all", logtest.MatchExact, []rule{{"", 2, 500, 0}},
			[]string{"/ct/v1/get-roots", "/robots.txt", "/ct/v1/get-roots"},
			[]response{{500, "", ""}, {500, "", ""}, {200, "", "get-roots"}}},
		{"selector under root", logtest.MatchExact, []rule{{"/ct/v1/get-entries", 1, 502, 0}},
			[]string{"/ct/v1/get-entries", "/ct/v1/get-entries"},
			[]response{{502, "", ""}, {200, "", "get-entries"}}},
		{"path outside root keeps its full path", logtest.MatchExact, []rule{{"/robots.txt", 1, 503, 0}},
			[]string{"/ct/v1/robots.txt", "/robots.txt", "/robots.txt"},
			[]response{{200, "", "robots.txt"}, {503, "", ""}, {200, "", "/robots.txt"}}},
		{"Retry-After rounded up", logtest.MatchExact, []rule{{"get-sth", 1, 429, 2500 * time.Millisecond}},
			[]string{"/ct/v1/get-sth"}, []response{{429, "3", ""}}},
		{"Retry-After whole seconds", logtest.MatchExact, []rule{{"get-sth", 1, 503, time.Second}},
			[]string{"/ct/v1/get-sth"}, []response{{503, "1", ""}}},
		{"invalid status becomes 500", logtest.MatchExact, []rule{{"", 1, 42, 0}, {"", 1, 1000, 0}},
			[]string{"/ct/v1/get-sth", "/ct/v1/get-sth"}, []response{{500, "", ""}, {500, "", ""}}},
		{"n <= 0 does nothing", logtest.MatchExact, []rule{{"", 0, 503, 0}, {"", -1, 503, 0}},
			[]string{"/ct/v1/get-sth"}, []response{{200, "", "get-sth"}}},
		{"prefix", logtest.MatchPrefix, []rule{{"tile/", 2, 503, 0}},
			[]string{"/ct/v1/checkpoint", "/ct/v1/tile/data/000", "/ct/v1/tile/0/000", "/ct/v1/tile/0/000"},
			[]response{{200, "", "checkpoint"}, {503, "", ""}, {503, "", ""}, {200, "", "tile/0/000"}}},
		{"rules queue in call order", logtest.MatchPrefix, []rule{{"tile/0/", 1, 502, 0}, {"tile/", 1, 429, time.Second}},
			[]string{"/ct/v1/tile/data/000", "/ct/v1/tile/0/000", "/ct/v1/tile/0/000"},
			[]response{{429, "1", ""}, {502, "", ""}, {200, "", "tile/0/000"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := logtest.NewFaults("/ct/v1/", tc.match)
			srv := serve(t, f)
			for _, r := range tc.rules {
				f.FailNext(r.selector, r.n, r.status, r.retryAfter)
			}
			for i, p := range tc.paths {
				got := get(t, srv.URL+p)
				want := tc.want[i]
				if got.status != want.status || got.retryAfter != want.retryAfter || (want.status == 200 && got.body != want.body) {
					t.Errorf("request %d (%s) = %+v, want %+v", i, p, got, want)
				}
			}
		})
	}
}

func TestRequests(t *testing.T) {
	paths := []string{"/mon/checkpoint", "/mon/checkpoint", "/mon/tile/0/000", "/mon/tile/data/000",
		"/mon/tile/data/000", "/robots.txt", "/mon/get-sth-consistency"}
	tests := []struct {
		match logtest.Match
		want  map[string]int
	}{
		{logtest.MatchExact, map[string]int{
			"": 7, "checkpoint": 2, "/mon/checkpoint": 2, "tile/": 0, "tile/data/000": 2,
			"/robots.txt": 1, "robots.txt": 0, "get-sth": 0, "get-sth-consistency": 1, "nothing": 0,
		}},
		{logtest.MatchPrefix, map[string]int{
			"": 7, "checkpoint": 2, "/mon/checkpoint": 2, "tile/": 3, "/mon/tile/": 3, "tile/data/": 2,
			"tile/0/": 1, "/robots.txt": 1, "/": 1, "get-sth": 1, "nothing": 0,
		}},
	}
	for _, tc := range tests {
		f := logtest.NewFaults("/mon/", tc.match)
		srv := serve(t, f)
		f.FailNext("checkpoint", 1, 503, 0) // failed requests count too
		for _, p := range paths {
			get(t, srv.URL+p)
		}
		for sel, want := range tc.want {
			if got := f.Requests(sel); got != want {
				t.Errorf("match %d: Requests(%q) = %d, want %d", tc.match, sel, got, want)
			}
		}
	}
}

func TestTakeTruncation(t *testing.T) {
	f := logtest.NewFaults("/ct/v1/", logtest.MatchExact)
	if f.TakeTruncation("get-sth") {
		t.Fatal("truncation without TruncateNext")
	}
	f.TruncateNext("get-entries", 0) // does nothing
	f.TruncateNext("/ct/v1/get-entries", 2)
	f.TruncateNext("", 1)
	steps := []struct {
		key  string
		want bool
	}{
		{"get-sth", true}, // the rule for any endpoint
		{"get-sth", false},
		{"get-entries", true},
		{"get-entries", true},
		{"get-entries", false},
	}
	for i, s := range steps {
		if got := f.TakeTruncation(s.key); got != s.want {
			t.Errorf("step %d: TakeTruncation(%q) = %v, want %v", i, s.key, got, s.want)
		}
	}

	p := logtest.NewFaults("/mon/", logtest.MatchPrefix)
	p.TruncateNext("tile/", 1)
	if p.TakeTruncation("checkpoint") || !p.TakeTruncation("tile/data/000") || p.TakeTruncation("tile/0/000") {
		t.Error("prefix truncation selected the wrong keys")
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func TestDelay(t *testing.T) {
	f := logtest.NewFaults("/ct/v1/", logtest.MatchExact)
	srv := serve(t, f)
	f.SetDelay(time.Hour)
	url := srv.URL + "/ct/v1/get-sth"

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err == nil {
			var resp *http.Response
			if resp, err = http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
		errc <- err
	}()
	waitFor(t, "the request to arrive", func() bool { return f.Requests("get-sth") == 1 })
	select {
	case err := <-errc:
		t.Fatalf("delayed request returned early: %v", err)
	default:
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: %v", err)
	}

	f.SetDelay(0)
	if got := get(t, url); got.status != 200 {
		t.Errorf("without delay: status %d", got.status)
	}

	// A failure waits out the delay too, and Close ends the wait with 503.
	f.SetDelay(time.Hour)
	f.FailNext("", 1, http.StatusTooManyRequests, 0)
	statusc := make(chan int, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			statusc <- 0
			return
		}
		resp.Body.Close()
		statusc <- resp.StatusCode
	}()
	waitFor(t, "the second request to arrive", func() bool { return f.Requests("") == 3 })
	f.Close()
	f.Close() // idempotent
	select {
	case status := <-statusc:
		if status != http.StatusServiceUnavailable {
			t.Errorf("request held across Close: status %d, want 503", status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the held request")
	}
	// Held requests arriving after Close end at once as well.
	if got := get(t, url); got.status != http.StatusServiceUnavailable {
		t.Errorf("request after Close: status %d, want 503", got.status)
	}
}

// TestConcurrentUse changes every switch while requests are served, for the
// race detector, and checks that only the expected statuses come back.
func TestConcurrentUse(t *testing.T) {
	f := logtest.NewFaults("/mon/", logtest.MatchPrefix)
	srv := serve(t, f)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(srv.URL + "/mon/tile/0/000")
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	for i := range 50 {
		f.FailNext("tile/", 1, http.StatusServiceUnavailable, time.Second)
		f.TruncateNext("", 1)
		f.TakeTruncation("tile/0/000")
		f.SetDelay(time.Duration(i%3) * time.Microsecond)
		_ = f.Requests("")
	}
	waitFor(t, "requests to be served", func() bool { return f.Requests("") > 50 })
	close(stop)
	wg.Wait()
	for status, n := range statuses {
		if status != 200 && status != 503 {
			t.Errorf("unexpected status %d (%d times)", status, n)
		}
	}
}
