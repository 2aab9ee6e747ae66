package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/webhook"
	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/internal/daemon"
)

// `ctwatch sinks test` sends one marked, signed test alert through the
// sink and reports what the receiver said.
func TestSinksTest(t *testing.T) {
	t.Setenv("CTWATCHTEST_SINK_SECRET", "sink-test-secret")
	type request struct {
		header http.Header
		body   []byte
	}
	var (
		mu     sync.Mutex
		got    []request
		status = http.StatusNoContent
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, request{r.Header.Clone(), body})
		w.WriteHeader(status)
	}))
	defer srv.Close()
	dir := t.TempDir()
	cfgPath := write(t, dir, "ctwatch.yaml", fmt.Sprintf(`data_dir: %s
log_list: ""
sinks:
  - name: hook
    type: webhook
    url: %s/hook
    secret_env: CTWATCHTEST_SINK_SECRET
`, dir, srv.URL))

	tests := []struct {
		kind     string
		status   int
		wantCode int
		check    func(t *testing.T, body []byte)
	}{
		{"hit", http.StatusNoContent, 0, func(t *testing.T, body []byte) {
			var h event.Hit
			if err := json.Unmarshal(body, &h); err != nil || h.Rule != "ctwatch-sink-test" || !strings.Contains(h.Reason, "TEST") {
				t.Errorf("test hit %s: %v", body, err)
			}
		}},
		{"event", http.StatusOK, 0, func(t *testing.T, body []byte) {
			var ev event.LogEvent
			if err := json.Unmarshal(body, &ev); err != nil || !strings.Contains(ev.Detail, "TEST") {
				t.Errorf("test event %s: %v", body, err)
			}
		}},
		{"digest", http.StatusOK, 0, func(t *testing.T, body []byte) {
			var d event.Digest
			if err := json.Unmarshal(body, &d); err != nil || d.Kind != event.DigestKind || d.Count != 3 || len(d.Hits) != 3 {
				t.Errorf("test digest %s: %v", body, err)
			}
		}},
		{"hit", http.StatusInternalServerError, 1, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s-%d", tc.kind, tc.status), func(t *testing.T) {
			mu.Lock()
			got, status = nil, tc.status
			mu.Unlock()
			code, out, errOut := ctwatch(t, "", "sinks", "test", "hook", "--kind", tc.kind, "--config", cfgPath)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.wantCode, out, errOut)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 {
				t.Fatalf("receiver got %d requests, want 1", len(got))
			}
			r := got[0]
			if r.header.Get("X-Ctwatch-Test") != "true" || r.header.Get("X-Ctwatch-Kind") != tc.kind {
				t.Errorf("headers %v: want X-Ctwatch-Test true and kind %s", r.header, tc.kind)
			}
			if err := webhook.Verify([]byte("sink-test-secret"), r.header, r.body, time.Now(), time.Minute); err != nil {
				t.Errorf("signature: %v", err)
			}
			if tc.wantCode == 0 {
				if !strings.Contains(out, "delivered") {
					t.Errorf("stdout %q does not report the delivery", out)
				}
				tc.check(t, r.body)
			} else if !strings.Contains(errOut, "status 500") {
				t.Errorf("stderr %q does not give the receiver's answer", errOut)
			}
		})
	}

	if code, _, errOut := ctwatch(t, "", "sinks", "test", "nosuch", "--config", cfgPath); code != 2 || !strings.Contains(errOut, `no sink "nosuch"`) || !strings.Contains(errOut, "hook") {
		t.Errorf("unknown sink: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := ctwatch(t, "", "sinks", "test", "hook", "--kind", "bogus", "--config", cfgPath); code != 2 || !strings.Contains(errOut, "bogus") {
		t.Errorf("unknown kind: exit %d, stderr %q", code, errOut)
	}
}

// `ctwatch sinks dead` lists what a sink gave up on and `sinks replay`
// hands it back to that sink, with the embedded NATS of a stopped daemon.
func TestSinksDeadAndReplay(t *testing.T) {
	dir := t.TempDir()
	cfgPath := write(t, dir, "ctwatch.yaml", fmt.Sprintf(`data_dir: %s
log_list: ""
sinks:
  - {name: hook, type: webhook, url: "http://127.0.0.1:1/never", retry: {max_attempts: 2, min_backoff: 1ms, max_backoff: 2ms}}
`, dir))
	cfg, err := config.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	hit := event.Hit{ID: "0123456789abcdef0123456789abcdef", Rule: "ours", Severity: event.SeverityHigh, Reason: "test",
		Cert: event.CertInfo{DNSNames: []string{"a.watched.example"}}}

	// A daemon's worth of state: the hit published, and a sink that
	// fails it until it is dead-lettered.
	withBus(t, cfg, func(bus *alerting.Bus) {
		if err := bus.PublishHits(t.Context(), []event.Hit{hit}); err != nil {
			t.Fatal(err)
		}
		runUntil(t, bus, "hook", alerting.SinkOptions{MaxAttempts: 2, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond},
			func(context.Context, *alerting.Message) error { return errors.New("receiver down") },
			func() bool {
				dead, err := alerting.DeadLetters(t.Context(), bus.JetStream(), "hook")
				return err == nil && len(dead) == 1
			})
	})

	code, out, errOut := ctwatch(t, "", "sinks", "dead", "hook", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, hit.ID) || !strings.Contains(out, "receiver down") || !strings.Contains(out, "1 dead letters") {
		t.Fatalf("sinks dead: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = ctwatch(t, "", "sinks", "replay", "hook", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "replayed 1 dead letters") {
		t.Fatalf("sinks replay: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, _ := ctwatch(t, "", "sinks", "dead", "hook", "--config", cfgPath); code != 0 || !strings.Contains(out, "0 dead letters") {
		t.Errorf("after replay, sinks dead: exit %d, %q", code, out)
	}

	// The next run of the sink delivers the replayed hit.
	withBus(t, cfg, func(bus *alerting.Bus) {
		var (
			mu  sync.Mutex
			ids []string
		)
		runUntil(t, bus, "hook", alerting.SinkOptions{}, func(_ context.Context, m *alerting.Message) error {
			mu.Lock()
			defer mu.Unlock()
			ids = append(ids, m.ID())
			return nil
		}, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(ids) == 1 && ids[0] == hit.ID
		})
	})
}

// withBus opens the configuration's embedded NATS for fn, as a daemon
// would, and closes it before returning.
func withBus(t *testing.T, cfg *config.Config, fn func(bus *alerting.Bus)) {
	t.Helper()
	bus, closeBus, err := daemon.OpenBus(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer closeBus()
	fn(bus)
}

type notifyFunc func(context.Context, *alerting.Message) error

func (f notifyFunc) Notify(ctx context.Context, m *alerting.Message) error { return f(ctx, m) }

// runUntil runs one sink until done holds (polled; the dispatcher offers
// no signal), then stops it.
func runUntil(t *testing.T, bus *alerting.Bus, name string, opts alerting.SinkOptions, fn notifyFunc, done func() bool) {
	t.Helper()
	d := alerting.NewDispatcher(bus.JetStream(), alerting.StreamName, slog.New(slog.DiscardHandler))
	if err := d.Add(name, fn, opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("sink did not reach the expected state")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
