package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/monitor"
	"github.com/ctwatch/ctwatch/monitor/ctlogtest"
)

// memStore is an in-memory checkpoint store; the tailers under test need
// one, and what they save is not the point here.
type memStore struct {
	mu  sync.Mutex
	cps map[string]*monitor.Checkpoint
}

func (m *memStore) Load(_ context.Context, key string) (*monitor.Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cps[key], nil
}

func (m *memStore) Save(_ context.Context, key string, cp *monitor.Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cps[key] = cp
	return nil
}

// discard publishes nothing; no rule matches in this test anyway.
type discard struct{}

func (discard) PublishHits(context.Context, []event.Hit) error     { return nil }
func (discard) PublishEvent(context.Context, event.LogEvent) error { return nil }

// The log list refresh starts tailers for logs that enter the list and
// stops those of logs that leave it, without a restart.
func TestSupervisorRefreshStartsAndStopsTailers(t *testing.T) {
	logs := map[string]*ctlogtest.Log{}
	for _, name := range []string{"Alpha", "Beta"} {
		l, err := ctlogtest.New()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		l.Publish()
		logs[name] = l
	}
	var (
		mu     sync.Mutex
		listed []string
	)
	setList := func(names ...string) {
		mu.Lock()
		defer mu.Unlock()
		listed = names
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		var entries []string
		for _, name := range listed {
			l := logs[name]
			key := l.PublicKeyDER()
			id := sha256.Sum256(key)
			entries = append(entries, fmt.Sprintf(`{"description": %q, "log_id": %q, "key": %q, "url": %q, "state": {"usable": {"timestamp": "2025-01-01T00:00:00Z"}}}`,
				name, base64.StdEncoding.EncodeToString(id[:]), base64.StdEncoding.EncodeToString(key), l.URL()+"/"))
		}
		fmt.Fprintf(w, `{"version": "test", "log_list_timestamp": "2026-01-01T00:00:00Z", "operators": [{"name": "Op", "logs": [%s]}]}`, strings.Join(entries, ","))
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 4)
	opts := monitor.DefaultFetchOptions()
	opts.PollInterval = 10 * time.Millisecond
	sup := &supervisor{
		ctx:         ctx,
		logger:      slog.New(slog.DiscardHandler),
		fetch:       opts,
		perLog:      map[string]config.Log{},
		matcher:     newRuleMatcher(nil),
		publisher:   discard{},
		checkpoints: &memStore{cps: map[string]*monitor.Checkpoint{}},
		client:      srv.Client(),
		errc:        errc,
		running:     map[string]*runningTailer{},
	}
	defer func() { cancel(); sup.wait() }()
	src := monitor.NewLogListSource(srv.URL+"/log_list.json", srv.Client(), slog.New(slog.DiscardHandler), nil)

	// following waits until exactly names are followed, each tailer having
	// verified a tree head (so it really runs, not just exists).
	following := func(what string, names ...string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			var got []string
			running := true
			for _, ts := range sup.snapshot() {
				got = append(got, ts.Log.Name)
				running = running && !ts.Stats.LastHead.IsZero()
			}
			if slices.Equal(got, names) && running {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: following %v (all running: %v), want %v", what, got, running, names)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	setList("Alpha")
	first, err := src.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sup.apply(first)
	following("start", "Alpha")
	go sup.refresh(src, &config.Config{}, 20*time.Millisecond)

	setList("Beta")
	following("Alpha retired, Beta added", "Beta")
	alphaRequests := logs["Alpha"].Requests("")
	setList("Alpha", "Beta")
	following("Alpha back", "Alpha", "Beta")
	if logs["Alpha"].Requests("") <= alphaRequests {
		t.Error("Alpha was not asked for anything after it came back")
	}
	select {
	case err := <-errc:
		t.Fatalf("a tailer failed: %v", err)
	default:
	}
}
