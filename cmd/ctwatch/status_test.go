package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
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
)

func TestWriteStatus(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	behind := daemon.LogStatus{Name: "argon", Kind: "rfc6962", URL: "https://ct.example/argon", State: daemon.LogBehind, HasPosition: true,
		TreeSize: 2000, NextIndex: 1000, Lag: 1000, BehindSince: now.Add(-90 * time.Second),
		LastError: "get-entries: 503\nService Unavailable", LastErrorTime: now.Add(-time.Minute), Hits: 7}
	caughtUp := daemon.LogStatus{Name: "xenon", Kind: "static", URL: "https://ct.example/xenon", State: daemon.LogCaughtUp, HasPosition: true,
		TreeSize: 1234567, NextIndex: 1234567, Hits: 3}
	live := &daemon.StatusReport{Live: true, Time: now, Started: now.Add(-2 * time.Hour), Version: "v1.2.3", NATS: "CONNECTED",
		Logs:       []daemon.LogStatus{behind, caughtUp},
		Hits:       &daemon.HitsReport{Stored: map[event.Severity]uint64{event.SeverityHigh: 1500, event.SeverityCritical: 2}},
		Rules:      []daemon.RuleStatus{{Name: "ours"}},
		Sinks:      []daemon.SinkStatus{{Name: "pager", Type: "webhook", Route: ">=high", Pending: 12, DeadLetters: 1}},
		LastReload: &daemon.ReloadReport{Time: now.Add(-5 * time.Minute), Error: "rules.yaml:3: bad severity"}}
	offline := &daemon.StatusReport{Time: now, Positions: "from ./data",
		Logs: []daemon.LogStatus{{Name: "argon", Kind: "rfc6962", URL: "https://ct.example/argon", State: daemon.LogUnknown}}}

	for _, tc := range []struct {
		name    string
		rep     *daemon.StatusReport
		view    statusView
		want    []string
		notWant []string
	}{
		{"status on a terminal", live, statusView{full: true, tty: true}, []string{
			"PROGRESS", "[##########----------]   50.0%  1,000 left",
			"argon  rfc6962  behind", "2,000", "1,000 (1m30s)",
			"get-entries: 503 Service Unavailable (1m0s ago)",
			"xenon  static   caught up", "1,234,567",
			"2 logs; live from here",
			"Daemon: ctwatch v1.2.3, up 2h0m0s; NATS CONNECTED",
			"Hits: 10 published by this daemon since it started; 1,502 stored in the stream (2 critical, 1,500 high)",
			"Last reload: 5m0s ago, refused: rules.yaml:3: bad severity",
			"Rules: 1 loaded",
			"pager  webhook  >=high  12",
		}, []string{"URL", "https://ct.example"}},
		{"status into a pipe", live, statusView{full: true}, []string{"argon  rfc6962  behind     2000       1000        1000 (1m30s)", "1234567", "Hits: 10", "1502 stored in the stream (2 critical, 1500 high)"},
			[]string{"PROGRESS", "[#", "left", "1,"}},
		{"logs", live, statusView{urls: true}, []string{"NEXT INDEX", "URL", "https://ct.example/argon", "2 logs; live from here"}, []string{"Hits:", "Daemon:", "PROGRESS"}},
		{"logs offline", offline, statusView{urls: true, tty: true}, []string{"argon  rfc6962  unknown", "1 logs; live from here"}, []string{"[#"}},
		{"status offline", offline, statusView{full: true}, []string{"Hits, sinks and reloads are known only to a running daemon."}, []string{"Daemon:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			writeStatus(&b, tc.rep, "live from here", tc.view, now)
			out := b.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestProgressBar(t *testing.T) {
	for _, tc := range []struct {
		next, size uint64
		want       string
	}{
		{0, 100, "[--------------------]    0.0%  100 left"},
		{1, 3, "[######--------------]   33.3%  2 left"},
		{999999, 1000000, "[###################-]  100.0%  1 left"},
	} {
		l := daemon.LogStatus{HasPosition: true, TreeSize: tc.size, NextIndex: tc.next, Lag: tc.size - tc.next}
		if got := progressBar(l); got != tc.want {
			t.Errorf("%d of %d: %q, want %q", tc.next, tc.size, got, tc.want)
		}
	}
}

// notifyBuffer is an output that says when it is first written to, and
// may be read while a command writes to it.
type notifyBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{}
	once    sync.Once
}

func (n *notifyBuffer) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.once.Do(func() { close(n.written) })
	return n.b.Write(p)
}

func (n *notifyBuffer) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.b.String()
}

// `ctwatch status` and `ctwatch logs` show a running daemon's live state,
// --watch ends cleanly on interrupt, and once the daemon has stopped both
// fall back to the stored positions and say so.
func TestStatusAndLogsOfARunningDaemon(t *testing.T) {
	dir := t.TempDir()
	l, err := ctlogtest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	ca, err := testca.New("status test")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		name := fmt.Sprintf("h%d.watched.example", i)
		if i%2 == 1 {
			name = fmt.Sprintf("h%d.elsewhere.example", i)
		}
		der, err := ca.Leaf(name)
		if err != nil {
			t.Fatal(err)
		}
		l.AddX509(der, ca.Chain())
	}
	l.Publish()
	// A free port for the daemon: the commands find it by web.listen,
	// so it cannot be port 0.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	rules := write(t, dir, "rules.yaml", watchRules)
	cfgPath := write(t, dir, "ctwatch.yaml", fmt.Sprintf(`data_dir: %s
log_list: ""
logs:
  - {name: test, url: %s, key: %s, start: 0}
monitor: {poll_interval: 20ms}
rules: {files: [%s], builtin: false}
sinks:
  - {name: file, type: jsonl, path: %s}
web: {listen: "%s"}
`, filepath.Join(dir, "data"), l.URL(), base64.StdEncoding.EncodeToString(l.PublicKeyDER()), rules, filepath.Join(dir, "hits.jsonl"), listen))
	cfg, err := config.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan int, 1)
	var runErr bytes.Buffer
	go func() {
		runDone <- execute(ctx, []string{"run", "--config", cfgPath}, strings.NewReader(""), &bytes.Buffer{}, &runErr)
	}()
	// The daemon answers and has every entry and hit done (polled: the
	// daemon offers no signal).
	deadline := time.Now().Add(60 * time.Second)
	for {
		rep, err := daemon.FetchStatus(ctx, cfg, http.DefaultClient)
		if err == nil && len(rep.Logs) == 1 && rep.Logs[0].State == daemon.LogCaughtUp && rep.Logs[0].NextIndex == 30 &&
			rep.HitsSinceStart() == 15 && len(rep.Sinks) == 1 && rep.Sinks[0].Pending == 0 {
			break
		}
		select {
		case code := <-runDone:
			t.Fatalf("run exited %d: %s", code, runErr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not caught up: %+v, %v", rep, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	code, out, errOut := ctwatch(t, "", "status", "--config", cfgPath)
	for _, want := range []string{"test  rfc6962  caught up  30", "1 logs; live from http://" + listen,
		"Hits: 15 published by this daemon since it started; 15 stored in the stream (15 high)",
		"Last reload: none since start", "Rules: 1 loaded", "file  jsonl  all    0        0"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status: exit %d, output lacks %q:\n%s%s", code, want, out, errOut)
		}
	}
	if strings.Contains(out, "[#") {
		t.Errorf("status drew a progress bar into a pipe:\n%s", out)
	}
	code, out, errOut = ctwatch(t, "", "logs", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "caught up") || !strings.Contains(out, l.URL()) || strings.Contains(out, "Hits:") {
		t.Errorf("logs: exit %d:\n%s%s", code, out, errOut)
	}

	// --watch shows the status until interrupted, then exits 0.
	wctx, wcancel := context.WithCancel(ctx)
	watchOut := &notifyBuffer{written: make(chan struct{})}
	watchDone := make(chan int, 1)
	go func() {
		watchDone <- execute(wctx, []string{"status", "--watch", "--config", cfgPath}, strings.NewReader(""), watchOut, &bytes.Buffer{})
	}()
	select {
	case <-watchOut.written:
	case code := <-watchDone:
		t.Fatalf("status --watch exited %d before showing anything", code)
	case <-time.After(30 * time.Second):
		t.Fatal("status --watch showed nothing")
	}
	wcancel()
	if code := <-watchDone; code != 0 || !strings.Contains(watchOut.String(), "caught up") || !strings.Contains(watchOut.String(), "Ctrl-C") {
		t.Errorf("status --watch: exit %d:\n%s", code, watchOut.String())
	}

	cancel()
	if code := <-runDone; code != 0 {
		t.Fatalf("run exited %d: %s", code, runErr.String())
	}
	code, out, errOut = ctwatch(t, "", "logs", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "no running daemon answered") || !strings.Contains(out, "test  rfc6962  stopped  30") {
		t.Errorf("logs without a daemon: exit %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut = ctwatch(t, "", "status", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "no running daemon answered") || !strings.Contains(out, "known only to a running daemon") {
		t.Errorf("status without a daemon: exit %d:\n%s%s", code, out, errOut)
	}
}
