package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/internal/daemon"
	"github.com/ctwatch/ctwatch/internal/testca"
	"github.com/ctwatch/ctwatch/monitor/ctlogtest"
	"github.com/ctwatch/ctwatch/monitor/statictest"
)

// setup is a test log with watched and unwatched certificates, a rule file
// and a configuration pointing the daemon at them.
type setup struct {
	dir     string
	log     *ctlogtest.Log
	ca      *testca.CA
	watched map[string]uint64 // cert sha256 hex → index
	hook    *receiver
}

func newSetup(t *testing.T) *setup {
	t.Helper()
	l, err := ctlogtest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	l.SetPageSize(64)
	ca, err := testca.New("daemon test")
	if err != nil {
		t.Fatal(err)
	}
	s := &setup{dir: t.TempDir(), log: l, ca: ca, watched: map[string]uint64{}, hook: newReceiver(t)}
	rules := "rules:\n  - name: ours\n    severity: high\n    match:\n      domains: [.watched.example]\n"
	if err := os.WriteFile(filepath.Join(s.dir, "rules.yaml"), []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *setup) add(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		name := fmt.Sprintf("h%d-%d.watched.example", s.log.Added(), i)
		if i%4 == 3 {
			name = fmt.Sprintf("h%d-%d.unwatched.example", s.log.Added(), i)
		}
		der, err := s.ca.Leaf(name)
		if err != nil {
			t.Fatal(err)
		}
		idx := s.log.AddX509(der, s.ca.Chain())
		if strings.Contains(name, ".watched.") {
			sum := sha256.Sum256(der)
			s.watched[hex.EncodeToString(sum[:])] = idx
		}
	}
	s.log.Publish()
}

func (s *setup) config(t *testing.T) *config.Config {
	t.Helper()
	return s.configWith(t, fmt.Sprintf(`
  - {name: file, type: jsonl, path: %s}
  - {name: hook, type: webhook, url: %q, events: false}
`, filepath.Join(s.dir, "hits.jsonl"), s.hook.srv.URL))
}

// configWith writes and loads the test configuration with the given sinks
// (YAML list items), so tests can set up the sinks they exercise.
func (s *setup) configWith(t *testing.T, sinks string) *config.Config {
	t.Helper()
	yaml := fmt.Sprintf(`data_dir: %s
log_list: ""
logs:
  - name: test
    url: %s
    key: %s
    start: 0
monitor:
  poll_interval: 20ms
  batch_size: 50
  verify_every: 200
web:
  listen: 127.0.0.1:0
rules:
  files: [%s]
sinks:%s`, filepath.Join(s.dir, "data"), s.log.URL(), base64.StdEncoding.EncodeToString(s.log.PublicKeyDER()),
		filepath.Join(s.dir, "rules.yaml"), sinks)
	path := filepath.Join(s.dir, "ctwatch.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// receiver is a webhook endpoint that records hit ids and can be told to
// fail.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	ids     []string
	failing bool
	changed chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{changed: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.failing {
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			return
		}
		var h event.Hit
		if err := json.Unmarshal(body, &h); err != nil || h.ID == "" || req.Header.Get("X-Ctwatch-Id") != h.ID {
			http.Error(w, "bad hit", http.StatusBadRequest)
			return
		}
		r.ids = append(r.ids, h.ID)
		close(r.changed)
		r.changed = make(chan struct{})
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) distinct() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for _, id := range r.ids {
		m[id]++
	}
	return m
}

// readHits parses the JSONL sink file.
func readHits(t *testing.T, path string) []event.Hit {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var hits []event.Hit
	sc := bufio.NewScanner(bytes.NewReader(wholeLines(b)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var h event.Hit
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			t.Fatalf("bad JSONL line %q: %v", sc.Text(), err)
		}
		hits = append(hits, h)
	}
	return hits
}

// wholeLines drops a last line without its newline: the JSONL sink may
// be writing it, and a test polling the file can see part of it.
func wholeLines(b []byte) []byte {
	return b[:bytes.LastIndexByte(b, '\n')+1]
}

// testLogger is the daemon's logger in tests: silent, unless
// CTWATCHTEST_TEST_LOG asks for every record on stderr.
func testLogger() *slog.Logger {
	if os.Getenv("CTWATCHTEST_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// daemonRun is daemon.Run running in the background for one test.
type daemonRun struct {
	cancel context.CancelFunc
	done   chan struct{} // closed once Run has returned
	err    error         // what Run returned; read only after done
}

// startDaemon starts daemon.Run with cfg and opts; the test's cleanup
// stops it.
func startDaemon(t *testing.T, cfg *config.Config, opts ...daemon.Option) *daemonRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemonRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		d.err = daemon.Run(ctx, cfg, testLogger(), opts...)
	}()
	t.Cleanup(func() { _ = d.stop() })
	return d
}

// stop cancels the daemon and returns Run's error; called again (as the
// cleanup does) it returns the same error.
func (d *daemonRun) stop() error {
	d.cancel()
	<-d.done
	return d.err
}

// runDaemon starts daemon.Run with cfg and opts and returns its stop
// function.
func runDaemon(t *testing.T, cfg *config.Config, opts ...daemon.Option) func() error {
	t.Helper()
	return startDaemon(t, cfg, opts...).stop
}

// runDaemonWeb starts daemon.Run with cfg, whose web.listen must be set
// (port 0 is fine), and returns its stop function and the base URL of its
// web server once that listens.
func runDaemonWeb(t *testing.T, cfg *config.Config, opts ...daemon.Option) (func() error, string) {
	t.Helper()
	if cfg.Web.Listen == "" {
		t.Fatal("runDaemonWeb needs web.listen")
	}
	addr := make(chan string, 1)
	d := startDaemon(t, cfg, append(opts, daemon.WithWebListening(func(a string) { addr <- a }))...)
	select {
	case a := <-addr:
		return d.stop, "http://" + a
	case <-d.done:
		t.Fatalf("daemon stopped before its web server listened: %v", d.err)
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon's web server did not start")
	}
	return nil, ""
}

// awaitFile polls the JSONL file until cond holds. The sink writes the file
// from another goroutine and offers no signal, so polling with a deadline
// is the honest way to wait.
func awaitFile(t *testing.T, path string, what string, cond func([]event.Hit) bool) []event.Hit {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		hits := readHits(t, path)
		if cond(hits) {
			return hits
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; have %d hits", what, len(hits))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *setup) checkHits(t *testing.T, hits []event.Hit) {
	t.Helper()
	seen := map[string]bool{}
	for _, h := range hits {
		if seen[h.ID] {
			t.Errorf("hit %s delivered twice to the JSONL sink", h.ID)
		}
		seen[h.ID] = true
		idx, ok := s.watched[h.Cert.SHA256]
		if !ok {
			t.Errorf("hit for a certificate that is not watched: %+v", h.Cert)
			continue
		}
		if h.Log == nil || h.Log.Index != idx || h.Log.Name != "test" || h.Rule != "ours" || h.Severity != event.SeverityHigh {
			t.Errorf("hit %+v: want log test index %d, rule ours, severity high", h, idx)
		}
	}
	if len(seen) != len(s.watched) {
		t.Errorf("%d distinct hits, want %d", len(seen), len(s.watched))
	}
}

func TestDaemonDeliversEveryHitAndResumes(t *testing.T) {
	s := newSetup(t)
	s.add(t, 400)
	cfg := s.config(t)
	jsonl := filepath.Join(s.dir, "hits.jsonl")

	stop := runDaemon(t, cfg)
	hits := awaitFile(t, jsonl, "first backfill", func(h []event.Hit) bool { return len(h) >= len(s.watched) })
	if err := stop(); err != nil {
		t.Fatalf("daemon returned %v after cancel", err)
	}
	s.checkHits(t, hits)

	// While it is stopped the log grows and the webhook goes down; after a
	// restart every new hit arrives once in the file, and the webhook gets
	// everything once it is back.
	s.add(t, 300)
	s.hook.mu.Lock()
	s.hook.failing = true
	s.hook.mu.Unlock()
	stop = runDaemon(t, s.config(t))
	hits = awaitFile(t, jsonl, "second backfill", func(h []event.Hit) bool { return len(h) >= len(s.watched) })
	s.checkHits(t, hits)
	s.hook.mu.Lock()
	s.hook.failing = false
	s.hook.mu.Unlock()
	deadline := time.After(60 * time.Second)
	for {
		s.hook.mu.Lock()
		ch := s.hook.changed
		s.hook.mu.Unlock()
		if len(s.hook.distinct()) == len(s.watched) {
			break
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("webhook got %d distinct hits, want %d", len(s.hook.distinct()), len(s.watched))
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("daemon returned %v after cancel", err)
	}
	for id := range s.hook.distinct() {
		found := false
		for _, h := range hits {
			found = found || h.ID == id
		}
		if !found {
			t.Errorf("webhook got id %s that the file does not have", id)
		}
	}
}

func TestDaemonRefusesASecondProcessOnOneDataDir(t *testing.T) {
	s := newSetup(t)
	s.add(t, 10)
	cfg := s.config(t)
	stop := runDaemon(t, cfg)
	awaitFile(t, filepath.Join(s.dir, "hits.jsonl"), "hits", func(h []event.Hit) bool { return len(h) >= len(s.watched) })
	err := daemon.Run(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second daemon on the same data dir: %v, want an in-use error", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestDaemonFollowsBothLogKinds(t *testing.T) {
	s := newSetup(t)
	st, err := statictest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	// 75 watched certificates in the RFC 6962 log, 120 others in the static log,
	// and 10 in both: one hit each, whichever log shows it first.
	s.add(t, 100)
	want := map[string]bool{}
	for sum := range s.watched {
		want[sum] = true
	}
	for i := range 130 {
		der, err := s.ca.Leaf(fmt.Sprintf("st%d.watched.example", i))
		if err != nil {
			t.Fatal(err)
		}
		st.AddX509(der, s.ca.Chain())
		if i < 10 {
			s.log.AddX509(der, s.ca.Chain())
		}
		sum := sha256.Sum256(der)
		want[hex.EncodeToString(sum[:])] = true
	}
	s.log.Publish()
	st.Publish()

	cfg := s.config(t)
	cfg.Logs = append(cfg.Logs, config.Log{
		Name: "static", Kind: config.KindStatic, URL: st.SubmissionURL(), MonitoringURL: st.MonitoringURL(),
		Origin: st.Origin(), Key: st.PublicKeyDER(), Start: new(uint64),
	})
	stop := runDaemon(t, cfg)
	hits := awaitFile(t, filepath.Join(s.dir, "hits.jsonl"), "hits from both logs", func(h []event.Hit) bool { return len(h) >= len(want) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	byLog := map[string]int{}
	for _, h := range hits {
		seen[h.Cert.SHA256]++
		byLog[h.Log.Name]++
		if !want[h.Cert.SHA256] {
			t.Errorf("unexpected hit %+v", h.Cert)
		}
	}
	for sum := range want {
		if seen[sum] != 1 {
			t.Errorf("certificate %s has %d hits, want 1", sum[:12], seen[sum])
		}
	}
	if byLog["test"] < 75 || byLog["static"] < 120 {
		t.Errorf("hits by log %v: want ≥75 from the RFC 6962 log and ≥120 from the static one", byLog)
	}
}
