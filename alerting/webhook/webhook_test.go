package webhook

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
)

func message(id string) *alerting.Message {
	return &alerting.Message{
		Subject: "ctwatch.hit.high",
		Data:    []byte(`{"id":"` + id + `","rule":"r"}`),
		Hit:     &event.Hit{ID: id, Rule: "r"},
	}
}

func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRequest(t *testing.T) {
	type seen struct {
		method, path, ctype, id, auth, body string
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("X-Ctwatch-Id"), r.Header.Get("Authorization"), string(b)}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	n := newNotifier(t, Config{
		URL:    srv.URL + "/hooks/ctwatch",
		Header: http.Header{"Authorization": {"Bearer t0ken"}, "X-Ctwatch-Id": {"forged"}},
	})
	m := message("abc123")
	if err := n.Notify(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	s := <-got
	want := seen{"POST", "/hooks/ctwatch", "application/json", "abc123", "Bearer t0ken", string(m.Data)}
	if s != want {
		t.Errorf("request %+v, want %+v", s, want)
	}

	ev := &alerting.Message{Data: []byte(`{"id":"ev1"}`), Event: &event.LogEvent{ID: "ev1"}}
	if err := n.Notify(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s.id != "ev1" {
		t.Errorf("event delivered with id %q, want ev1", s.id)
	}
}

func TestStatusHandling(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		wantErr    bool
		wantAfter  time.Duration // > 0: want a RetryAfterError with this delay
	}{
		{"200", 200, "", false, 0},
		{"202", 202, "", false, 0},
		{"204", 204, "", false, 0},
		{"400", 400, "", true, 0},
		{"404", 404, "", true, 0},
		{"500", 500, "", true, 0},
		{"429 with seconds", 429, "3", true, 3 * time.Second},
		{"503 with seconds", 503, "120", true, 2 * time.Minute},
		{"429 without Retry-After", 429, "", true, 0},
		{"429 with garbage", 429, "soon", true, 0},
		{"500 with Retry-After ignored", 500, "3", true, 0},
		{"302 not followed", 302, "", true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var followed atomic.Bool
			mux := http.NewServeMux()
			mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { followed.Store(true) })
			mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				if tc.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, "nope")
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			err := newNotifier(t, Config{URL: srv.URL + "/hook"}).Notify(t.Context(), message("x"))
			if (err != nil) != tc.wantErr {
				t.Fatalf("Notify = %v, want error %v", err, tc.wantErr)
			}
			ra, isRA := errors.AsType[*alerting.RetryAfterError](err)
			switch {
			case tc.wantAfter > 0 && (!isRA || ra.After != tc.wantAfter):
				t.Errorf("Notify = %v, want RetryAfterError{%s}", err, tc.wantAfter)
			case tc.wantAfter == 0 && isRA:
				t.Errorf("Notify = %v, want no RetryAfterError", err)
			}
			if tc.wantErr && !strings.Contains(err.Error(), "nope") && tc.status != 302 {
				t.Errorf("error %q does not quote the response", err)
			}
			if followed.Load() {
				t.Error("redirect was followed")
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"0", 0, true},
		{" 30 ", 30 * time.Second, true},
		{"999999999", maxRetryAfter, true},
		{"Fri, 01 May 2026 12:00:45 GMT", 45 * time.Second, true},
		{"Fri, 01 May 2026 11:00:00 GMT", 0, true}, // in the past
		{"Fri, 01 May 2099 11:00:00 GMT", maxRetryAfter, true},
		{"", 0, false},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"tomorrow", 0, false},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.wantOK)
		}
	}
}

// A hostile endpoint cannot make Notify read an unbounded body or hang
// past the timeout, and errors never show the URL's secret path.
func TestHostileEndpoint(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/big/s3cret", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		chunk := []byte(strings.Repeat("A", 1<<16))
		for range 1 << 10 { // 64 MiB if anyone read it all
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/slow/s3cret", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)

	err := newNotifier(t, Config{URL: srv.URL + "/big/s3cret"}).Notify(t.Context(), message("x"))
	if err == nil || len(err.Error()) > 1000 {
		t.Errorf("huge error body: err = %.200v (len %d)", err, len(errString(err)))
	}
	err = newNotifier(t, Config{URL: srv.URL + "/slow/s3cret", Timeout: 50 * time.Millisecond}).Notify(t.Context(), message("x"))
	if err == nil {
		t.Fatal("a request that never answers succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error reveals the URL path: %v", err)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	err = newNotifier(t, Config{URL: closed.URL + "/hook/s3cret"}).Notify(t.Context(), message("x"))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("connection refused: err = %v (must exist and not reveal the path)", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestConfigAndMessageErrors(t *testing.T) {
	for _, u := range []string{"", "ftp://x/", "http://", "://bad", "/relative"} {
		if _, err := New(Config{URL: u}); err == nil {
			t.Errorf("New accepted URL %q", u)
		}
	}
	if _, err := New(Config{URL: "https://x.example/", Timeout: -time.Second}); err == nil {
		t.Error("New accepted a negative timeout")
	}
	n := newNotifier(t, Config{URL: "http://127.0.0.1:1/"})
	if err := n.Notify(t.Context(), &alerting.Message{Data: []byte(`{}`)}); err == nil {
		t.Error("Notify accepted a message without id")
	}
}
