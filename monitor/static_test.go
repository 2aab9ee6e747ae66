package monitor_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/testca"
	"github.com/ctwatch/ctwatch/monitor"
	"github.com/ctwatch/ctwatch/monitor/statictest"
)

type staticFixture struct {
	log *statictest.Log
	ca  *testca.CA
	rec *recorder
}

func newStaticFixture(t *testing.T) *staticFixture {
	t.Helper()
	l, err := statictest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	ca, err := testca.New("static tailer test")
	if err != nil {
		t.Fatal(err)
	}
	return &staticFixture{log: l, ca: ca, rec: newRecorder()}
}

func (f *staticFixture) add(t *testing.T, n int) []uint64 {
	t.Helper()
	return addLeaves(t, f.ca, f.log, n)
}

func (f *staticFixture) tailer(t *testing.T, start *uint64, opts monitor.FetchOptions, client *http.Client) *monitor.StaticTailer {
	t.Helper()
	l := &monitor.Log{
		Name: "test", Kind: monitor.KindStatic, URL: f.log.SubmissionURL(), MonitoringURL: f.log.MonitoringURL(),
		Origin: f.log.Origin(), Key: f.log.PublicKeyDER(), Start: start,
	}
	tl, err := monitor.NewStaticTailer(l, monitor.TailerConfig{
		Fetch:       opts,
		Matcher:     indexMatcher{},
		Publisher:   f.rec,
		Checkpoints: f.rec,
		HTTPClient:  client,
		Logger:      testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

func (f *staticFixture) caughtUp(n uint64) func() bool {
	return func() bool { cp := f.rec.checkpoint(); return cp != nil && cp.NextIndex == n }
}

func TestStaticTailerProcessesEveryEntryOnceInOrder(t *testing.T) {
	for _, n := range []int{1, 255, 256, 300, 700} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := newStaticFixture(t)
			watched := f.add(t, n)
			f.log.Publish()
			tl := f.tailer(t, zero(), fastOpts(), nil)
			stop := run(t, tl)
			f.rec.await(t, "catch-up", f.caughtUp(uint64(n)))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			checkHits(t, f.rec, watched)
			if st := tl.Stats(); st.Processed != uint64(n) || st.Malformed != 0 {
				t.Fatalf("stats %+v", st)
			}
			// The chain was resolved through the issuer endpoint.
			want := sha256.Sum256(f.ca.Intermediate().RawSubjectPublicKeyInfo)
			if got := f.rec.hits[0].Cert.IssuerSPKISHA256; got != fmt.Sprintf("%x", want) {
				t.Fatalf("issuer SPKI hash %s, want %x", got, want)
			}
		})
	}
}

func TestStaticTailerFollowsGrowth(t *testing.T) {
	f := newStaticFixture(t)
	f.log.SetKeepPartials(false)
	watched := f.add(t, 100)
	f.log.Publish()
	stop := run(t, f.tailer(t, zero(), fastOpts(), nil))
	for _, more := range []int{100, 200, 300, 1} {
		f.rec.await(t, "catch-up", f.caughtUp(f.log.TreeSize()))
		watched = append(watched, f.add(t, more)...)
		f.log.Publish()
	}
	f.rec.await(t, "catch-up", f.caughtUp(f.log.TreeSize()))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkHits(t, f.rec, watched)
}

// oldCheckpoint serves a checkpoint captured earlier instead of the log's
// current one, the way a CDN serves a stale copy. It is honestly signed, so
// the tailer follows it; the tiles it names may have moved on.
type oldCheckpoint struct {
	note []byte
}

func (o *oldCheckpoint) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/checkpoint") {
		return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(bytes.NewReader(o.note)), Header: http.Header{}, Request: req}, nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

func TestStaticTailerReadsFullTileWhenPartialVanished(t *testing.T) {
	f := newStaticFixture(t)
	f.log.SetKeepPartials(false)
	watched := f.add(t, 300)
	f.log.Publish()
	old := getCheckpoint(t, f.log)
	// The log fills the tile: its partial (.p/44) is gone, the full tile
	// is there. A tailer holding the old checkpoint must still read 300.
	f.add(t, 300)
	f.log.Publish()
	tl := f.tailer(t, zero(), fastOpts(), &http.Client{Transport: &oldCheckpoint{note: old}})
	stop := run(t, tl)
	f.rec.await(t, "catch-up", f.caughtUp(300))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkHits(t, f.rec, watched)
	// Entries 256..299 are the partial data tile 001.p/44: asked for, gone,
	// then read from the full tile 001 (and likewise its hash tile).
	for _, p := range []string{"/mon/tile/data/001.p/44", "/mon/tile/0/001.p/44"} {
		if n := f.log.Requests(p); n == 0 {
			t.Errorf("the tailer never asked for %s", p)
		}
		full := strings.TrimSuffix(p, ".p/44")
		if n := f.log.Requests(full); n <= f.log.Requests(p) {
			t.Errorf("the tailer did not fall back to %s (%d requests under that prefix)", full, n)
		}
	}
}

func getCheckpoint(t *testing.T, l *statictest.Log) []byte {
	t.Helper()
	resp, err := http.Get(l.MonitoringURL() + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("checkpoint: %v %d", err, resp.StatusCode)
	}
	return b
}

func TestStaticTailerRetries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(l *statictest.Log)
	}{
		{"500s on data tiles", func(l *statictest.Log) { l.FailNext("/mon/tile/data/", 4, http.StatusInternalServerError, 0) }},
		{"503 on checkpoint", func(l *statictest.Log) { l.FailNext("/mon/checkpoint", 3, http.StatusServiceUnavailable, 0) }},
		{"500s on issuers", func(l *statictest.Log) { l.FailNext("/mon/issuer/", 3, http.StatusInternalServerError, 0) }},
		{"gzip", func(l *statictest.Log) { l.SetGzip(true) }},
		{"gzip unasked", func(l *statictest.Log) { l.SetForceGzip(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newStaticFixture(t)
			watched := f.add(t, 600)
			f.log.Publish()
			tc.setup(f.log)
			stop := run(t, f.tailer(t, zero(), fastOpts(), nil))
			f.rec.await(t, "catch-up", f.caughtUp(600))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			checkHits(t, f.rec, watched)
		})
	}
}

func TestStaticTailerHonoursRetryAfter(t *testing.T) {
	f := newStaticFixture(t)
	watched := f.add(t, 50)
	f.log.Publish()
	f.log.FailNext("/mon/tile/data/", 1, http.StatusTooManyRequests, time.Second)
	tt := &timingTransport{}
	stop := run(t, f.tailer(t, zero(), fastOpts(), &http.Client{Transport: tt}))
	f.rec.await(t, "catch-up", f.caughtUp(50))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkHits(t, f.rec, watched)
	tt.mu.Lock()
	defer tt.mu.Unlock()
	var times []time.Time
	for path, ts := range tt.times {
		if strings.Contains(path, "/tile/data/") {
			times = append(times, ts...)
		}
	}
	if len(times) < 2 {
		t.Fatalf("want a retried data tile, got %d requests", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Fatalf("retried %v after a 429 with Retry-After: 1", gap)
	}
}

func TestStaticTailerMisbehaviourDoesNotAdvance(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind event.LogEventKind
		act  func(t *testing.T, f *staticFixture)
	}{
		{"bad signature", event.BadSignature, func(t *testing.T, f *staticFixture) {
			f.add(t, 50)
			f.log.SetBadSignature(true)
			f.log.Publish()
		}},
		{"fork", event.InconsistentTree, func(t *testing.T, f *staticFixture) {
			f.log.Fork(60)
			f.add(t, 20)
			f.log.Publish()
		}},
		{"shrink", event.ShrinkingTree, func(t *testing.T, f *staticFixture) {
			f.log.Shrink(80)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newStaticFixture(t)
			watched := f.add(t, 300)
			f.log.Publish()
			stop := run(t, f.tailer(t, zero(), fastOpts(), nil))
			f.rec.await(t, "catch-up", f.caughtUp(300))
			tc.act(t, f)
			f.rec.await(t, string(tc.kind)+" event", func() bool { return len(f.rec.eventsOf(tc.kind)) > 0 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			cp := f.rec.current()
			if cp.TreeSize != 300 || cp.NextIndex != 300 {
				t.Errorf("checkpoint moved to size %d next %d after misbehaviour", cp.TreeSize, cp.NextIndex)
			}
			checkHits(t, f.rec, watched)
		})
	}
}

func TestStaticTailerTamperedEntry(t *testing.T) {
	f := newStaticFixture(t)
	watched := f.add(t, 700)
	f.log.Publish()
	const bad = 517
	f.log.TamperEntry(bad)
	opts := fastOpts()
	opts.VerifyEvery = 100
	tl := f.tailer(t, zero(), opts, nil)
	stop := run(t, tl)
	f.rec.await(t, "inconsistent_tree event", func() bool { return len(f.rec.eventsOf(event.InconsistentTree)) > 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	cp := f.rec.current()
	if cp.NextIndex > bad {
		t.Fatalf("advanced to %d past the tampered entry %d", cp.NextIndex, bad)
	}
	var want []uint64
	for _, i := range watched {
		if i < cp.NextIndex {
			want = append(want, i)
		}
	}
	checkHits(t, f.rec, want)
}

func TestStaticTailerStartPositions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func() *uint64
		first uint64
	}{
		{"end", func() *uint64 { return nil }, 337},
		{"middle", func() *uint64 { s := uint64(261); return &s }, 261},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newStaticFixture(t)
			old := f.add(t, 337)
			f.log.Publish()
			stop := run(t, f.tailer(t, tc.start(), fastOpts(), nil))
			f.rec.await(t, "start", f.caughtUp(337))
			more := f.add(t, 40)
			f.log.Publish()
			f.rec.await(t, "catch-up", f.caughtUp(377))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			var want []uint64
			for _, i := range append(old, more...) {
				if i >= tc.first {
					want = append(want, i)
				}
			}
			checkHits(t, f.rec, want)
		})
	}
}

func TestStaticTailerResumesFromCheckpoint(t *testing.T) {
	f := newStaticFixture(t)
	watched := f.add(t, 900)
	f.log.Publish()
	f.log.SetDelay(2 * time.Millisecond)
	opts := fastOpts()
	opts.VerifyEvery = 100
	runInTurns(t, f.rec, 900, func() func() error { return run(t, f.tailer(t, zero(), opts, nil)) })
	checkHits(t, f.rec, watched)
}
