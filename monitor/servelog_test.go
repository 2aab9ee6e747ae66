package monitor_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/testca"
	"github.com/ctwatch/ctwatch/monitor"
	"github.com/ctwatch/ctwatch/monitor/ctlogtest"
	"github.com/ctwatch/ctwatch/monitor/statictest"
)

// The memory tests need a log that is not in the heap they measure: the
// in-process test logs hold every entry they serve, so a forced GC in the
// measuring process would walk (and count) the whole log. Instead the test
// binary runs itself a second time as a log server: the parent starts
// os.Args[0] with serveLogEnv set to "<kind>:<entries>" and only
// TestHelperServeLog selected; the child fills an in-process test log,
// prints one JSON line (servedLog) on stdout and serves until its stdin
// closes, which happens when the parent closes it or dies.

// serveLogEnv selects the helper-process mode of TestHelperServeLog.
const serveLogEnv = "CTWATCHTEST_SERVE_LOG"

// servedLog is what the helper process tells the parent: everything a
// tailer needs to follow the log, and what the log holds, so the parent
// can check that the tailer processed all of it.
type servedLog struct {
	Kind          monitor.Kind `json:"kind"`
	URL           string       `json:"url"`
	MonitoringURL string       `json:"monitoring_url,omitempty"`
	Origin        string       `json:"origin,omitempty"`
	// Key is the DER public key, base64 in the JSON.
	Key []byte `json:"key"`
	// Size is the published tree size; every entry is watched.
	Size uint64 `json:"size"`
	// EntryBytes is the average size of one entry as the log stores it
	// (certificate plus chain), so the parent can size its bounds.
	EntryBytes int `json:"entry_bytes"`
}

// log returns the monitor.Log that follows the served log from index 0.
func (s servedLog) log(name string) *monitor.Log {
	return &monitor.Log{
		Name: name, Kind: s.Kind, URL: s.URL, MonitoringURL: s.MonitoringURL,
		Origin: s.Origin, Key: s.Key, Start: zero(),
	}
}

// parseServeSpec reads "<kind>:<entries>".
func parseServeSpec(spec string) (monitor.Kind, int, error) {
	k, n, ok := strings.Cut(spec, ":")
	if !ok {
		return "", 0, fmt.Errorf("%s=%q: want <kind>:<entries>", serveLogEnv, spec)
	}
	size, err := strconv.Atoi(n)
	if err != nil || size < 0 {
		return "", 0, fmt.Errorf("%s=%q: bad entry count", serveLogEnv, spec)
	}
	switch kind := monitor.Kind(k); kind {
	case monitor.KindRFC6962, monitor.KindStatic:
		return kind, size, nil
	default:
		return "", 0, fmt.Errorf("%s=%q: unknown kind %q", serveLogEnv, spec, k)
	}
}

// filler is what both test logs offer to be filled and published.
type filler interface {
	AddX509(der []byte, chain [][]byte) uint64
	Publish()
	Close()
}

// TestHelperServeLog is not a test: it is the log server process of
// startLogProcess, and skips unless serveLogEnv is set. It fills the log
// from a small pool of watched leaves (the entries still differ: each has
// its own index and timestamp), which keeps filling fast.
func TestHelperServeLog(t *testing.T) {
	spec := os.Getenv(serveLogEnv)
	if spec == "" {
		t.Skip("helper process for the memory tests; runs only when started by them")
	}
	kind, n, err := parseServeSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := testca.New("memory test")
	if err != nil {
		t.Fatal(err)
	}
	pool := certPool(t, ca, 64)
	chain := ca.Chain()
	var (
		l   filler
		out = servedLog{Kind: kind, Size: uint64(n)}
	)
	switch kind {
	case monitor.KindRFC6962:
		cl, err := ctlogtest.New()
		if err != nil {
			t.Fatal(err)
		}
		l, out.URL, out.Key = cl, cl.URL(), cl.PublicKeyDER()
	case monitor.KindStatic:
		sl, err := statictest.New()
		if err != nil {
			t.Fatal(err)
		}
		l, out.URL, out.MonitoringURL, out.Origin, out.Key = sl, sl.SubmissionURL(), sl.MonitoringURL(), sl.Origin(), sl.PublicKeyDER()
	}
	defer l.Close()
	for i := range n {
		l.AddX509(pool[i%len(pool)], chain)
	}
	l.Publish()
	var total int
	for _, der := range pool {
		total += len(der)
	}
	for _, c := range chain {
		total += len(c)
	}
	out.EntryBytes = total / len(pool)
	line, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(os.Stdout, "%s\n", line); err != nil {
		t.Fatal(err)
	}
	// Serve until the parent closes stdin (or exits): the log must not
	// outlive the test that needs it.
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// syncBuffer is a bytes.Buffer safe to read while exec's copier writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil // enough to diagnose; drop the rest
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startLogProcess runs the test binary as a log server (TestHelperServeLog)
// holding n watched entries of the given kind, and returns what it serves.
// The process is ended when the test ends. Building a large log takes the
// child about a second per 100,000 entries, more with -race or on a busy
// machine, hence the generous wait.
func startLogProcess(t testing.TB, kind monitor.Kind, n int) servedLog {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServeLog$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%d", serveLogEnv, kind, n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start log process: %v", err)
	}
	type result struct {
		line []byte
		err  error
	}
	got := make(chan result, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		r := bufio.NewReader(stdout)
		line, err := r.ReadBytes('\n')
		got <- result{line, err}
		// Keep reading (the test framework's PASS comes at the end) so the
		// child never blocks on a full pipe, and so that Wait, which
		// closes the pipe, runs only after the last read.
		_, _ = io.Copy(io.Discard, r)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = stdin.Close()
			select {
			case <-drained:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-drained
			}
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)

	var r result
	select {
	case r = <-got:
	case <-time.After(5 * time.Minute):
		stop()
		t.Fatalf("log process built no %s log of %d entries in 5 minutes; stderr:\n%s", kind, n, stderr.String())
	}
	if r.err != nil {
		stop()
		t.Fatalf("log process: read its line: %v; stderr:\n%s", r.err, stderr.String())
	}
	var s servedLog
	if err := json.Unmarshal(r.line, &s); err != nil {
		stop()
		t.Fatalf("log process: line %q: %v; stderr:\n%s", r.line, err, stderr.String())
	}
	if s.Kind != kind || s.Size != uint64(n) {
		stop()
		t.Fatalf("log process serves a %s log of %d entries, want %s of %d", s.Kind, s.Size, kind, n)
	}
	return s
}
