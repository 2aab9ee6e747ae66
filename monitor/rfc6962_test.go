package monitor_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/testca"
	"github.com/ctwatch/ctwatch/monitor"
	"github.com/ctwatch/ctwatch/monitor/ctlogtest"
)

// recorder is an in-memory Publisher and CheckpointStore that behaves like
// the JetStream-backed ones where the tailer can tell: hits dedupe by ID and
// a checkpoint is visible once saved. Every change wakes waiters.
type recorder struct {
	mu          sync.Mutex
	changed     chan struct{}
	hitIDs      map[string]bool
	hits        []event.Hit // in publish order, deduplicated
	events      []event.LogEvent
	cps         map[string]*monitor.Checkpoint
	failSave    error
	failPublish error
	// maxBatch is the most hits one PublishHits call carried.
	maxBatch int
}

func newRecorder() *recorder {
	return &recorder{changed: make(chan struct{}), hitIDs: map[string]bool{}, cps: map[string]*monitor.Checkpoint{}}
}

func (r *recorder) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) PublishHits(_ context.Context, hits []event.Hit) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failPublish != nil {
		return r.failPublish
	}
	r.maxBatch = max(r.maxBatch, len(hits))
	for _, h := range hits {
		if !r.hitIDs[h.ID] {
			r.hitIDs[h.ID] = true
			r.hits = append(r.hits, h)
		}
	}
	r.notify()
	return nil
}

func (r *recorder) PublishEvent(_ context.Context, ev event.LogEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	r.notify()
	return nil
}

func (r *recorder) Load(_ context.Context, id string) (*monitor.Checkpoint, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cp := r.cps[id]
	if cp == nil {
		return nil, nil
	}
	c := *cp
	return &c, nil
}

func (r *recorder) Save(_ context.Context, id string, cp *monitor.Checkpoint) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failSave != nil {
		return r.failSave
	}
	c := *cp
	r.cps[id] = &c
	r.notify()
	return nil
}

// await blocks until cond (called with the lock held) holds, or fails the
// test after a generous deadline.
func (r *recorder) await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		ok := cond()
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// current returns a copy of the saved checkpoint, taking the lock: for use
// outside await conditions while a tailer may be saving.
func (r *recorder) current() *monitor.Checkpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	cp := r.checkpoint()
	if cp == nil {
		return nil
	}
	c := *cp
	return &c
}

// checkpoint returns the saved checkpoint; the caller holds r.mu.
func (r *recorder) checkpoint() *monitor.Checkpoint {
	for _, cp := range r.cps {
		return cp
	}
	return nil
}

func (r *recorder) eventsOf(kind event.LogEventKind) []event.LogEvent {
	var out []event.LogEvent
	for _, e := range r.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// indexMatcher makes one hit per entry whose first DNS name ends in
// ".watched.example", with the entry's index in the reason so tests can
// check order and completeness.
type indexMatcher struct{}

func (indexMatcher) Match(e *monitor.Entry) []event.Hit {
	if len(e.Cert.DNSNames) == 0 || !strings.HasSuffix(e.Cert.DNSNames[0], ".watched.example") {
		return nil
	}
	return []event.Hit{{
		ID:     hex.EncodeToString(e.Cert.TBSHash[:16]),
		Rule:   "watched",
		Reason: fmt.Sprint(e.Index),
		Log:    &event.LogRef{Name: e.Log.Name, URL: e.Log.URL, Index: e.Index},
		Cert:   e.Cert.Info(),
	}}
}

type fixture struct {
	log *ctlogtest.Log
	ca  *testca.CA
	rec *recorder
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	l, err := ctlogtest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	ca, err := testca.New("tailer test")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{log: l, ca: ca, rec: newRecorder()}
}

// leafAdder is what both in-process test logs offer to fill them.
type leafAdder interface {
	AddX509(der []byte, chain [][]byte) uint64
	Added() uint64
}

// addLeaves appends n leaves issued by ca to l, one in ten for an unwatched
// name, and returns the indexes of the watched ones.
func addLeaves(t *testing.T, ca *testca.CA, l leafAdder, n int) []uint64 {
	t.Helper()
	var watched []uint64
	for i := range n {
		name := fmt.Sprintf("n%d-%d.watched.example", l.Added(), i)
		if i%10 == 9 {
			name = fmt.Sprintf("n%d-%d.other.example", l.Added(), i)
		}
		der, err := ca.Leaf(name)
		if err != nil {
			t.Fatal(err)
		}
		idx := l.AddX509(der, ca.Chain())
		if strings.HasSuffix(name, ".watched.example") {
			watched = append(watched, idx)
		}
	}
	return watched
}

func (f *fixture) add(t *testing.T, n int) []uint64 {
	t.Helper()
	return addLeaves(t, f.ca, f.log, n)
}

func (f *fixture) tailer(t *testing.T, start *uint64, opts monitor.FetchOptions, client *http.Client) *monitor.RFC6962Tailer {
	t.Helper()
	l := &monitor.Log{Name: "test", Kind: monitor.KindRFC6962, URL: f.log.URL(), Key: f.log.PublicKeyDER(), Start: start}
	tl, err := monitor.NewRFC6962Tailer(l, monitor.TailerConfig{
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

// run starts the tailer and returns a function that stops it and returns
// Run's error.
func run(t *testing.T, tl interface{ Run(context.Context) error }) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- tl.Run(ctx) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			err = <-errc
			if errors.Is(err, context.Canceled) {
				err = nil
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func fastOpts() monitor.FetchOptions {
	return monitor.FetchOptions{
		PollInterval: 10 * time.Millisecond,
		BatchSize:    50,
		Concurrency:  4,
		VerifyEvery:  120,
		MinBackoff:   5 * time.Millisecond,
		MaxBackoff:   50 * time.Millisecond,
		Timeout:      5 * time.Second,
	}
}

func zero() *uint64 { var z uint64; return &z }

// checkHits asserts that the recorded hits are exactly the watched indexes,
// each once, in index order.
func checkHits(t *testing.T, rec *recorder, watched []uint64) {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.hits) != len(watched) {
		t.Fatalf("got %d hits, want %d", len(rec.hits), len(watched))
	}
	for i, h := range rec.hits {
		if h.Log == nil || h.Log.Index != watched[i] {
			t.Fatalf("hit %d is for index %v, want %d (hits must be complete and in order)", i, h.Log, watched[i])
		}
	}
}

// checkRange asserts that the stored compact range hashes to the log's root
// at the checkpoint's position: what the tailer verified is what the log has.
func checkRange(t *testing.T, cp *monitor.Checkpoint, wantRoot []byte) {
	t.Helper()
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r, err := rf.NewRange(0, cp.NextIndex, cp.Range)
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, wantRoot) {
		t.Fatalf("checkpoint range root %x, want %x", root, wantRoot)
	}
}

// rootOf computes the root of the log's first n entries from the leaves it
// serves, independently of the tailer.
func rootOf(t *testing.T, l *ctlogtest.Log, n uint64) []byte {
	t.Helper()
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for i := range n {
		leaf, _, ok := l.Entry(i)
		if !ok {
			t.Fatalf("no entry %d", i)
		}
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(leaf), nil); err != nil {
			t.Fatal(err)
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestTailerProcessesEveryEntryOnceInOrder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pageSize int
		entries  int
	}{
		{"full pages", 1000, 700},
		{"pages of 32", 32, 700},
		{"pages of 7", 7, 300},
		{"pages of 1", 1, 90},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.log.SetPageSize(tc.pageSize)
			watched := f.add(t, tc.entries)
			f.log.Publish()
			tl := f.tailer(t, zero(), fastOpts(), nil)
			stop := run(t, tl)
			n := uint64(tc.entries)
			f.rec.await(t, "catch-up", func() bool { cp := f.rec.checkpoint(); return cp != nil && cp.NextIndex == n })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			checkHits(t, f.rec, watched)
			checkRange(t, f.rec.current(), rootOf(t, f.log, n))
			if st := tl.Stats(); st.Processed != n || st.Malformed != 0 {
				t.Fatalf("stats %+v: want %d processed, 0 malformed", st, n)
			}
		})
	}
}

func TestTailerFollowsGrowth(t *testing.T) {
	f := newFixture(t)
	f.log.SetPageSize(32)
	watched := f.add(t, 100)
	f.log.Publish()
	stop := run(t, f.tailer(t, zero(), fastOpts(), nil))
	for round := range 3 {
		f.rec.await(t, "catch-up", func() bool {
			cp := f.rec.checkpoint()
			return cp != nil && cp.NextIndex == f.log.TreeSize()
		})
		if round < 2 {
			watched = append(watched, f.add(t, 77)...)
			f.log.Publish()
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkHits(t, f.rec, watched)
}

// timingTransport records when each request for a path was sent.
type timingTransport struct {
	mu    sync.Mutex
	times map[string][]time.Time
}

func (tt *timingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tt.mu.Lock()
	if tt.times == nil {
		tt.times = map[string][]time.Time{}
	}
	tt.times[req.URL.Path] = append(tt.times[req.URL.Path], time.Now())
	tt.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func TestTailerRetries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(l *ctlogtest.Log)
	}{
		{"500s", func(l *ctlogtest.Log) { l.FailNext("get-entries", 5, http.StatusInternalServerError, 0) }},
		{"503 on get-sth", func(l *ctlogtest.Log) { l.FailNext("get-sth", 3, http.StatusServiceUnavailable, 0) }},
		{"truncated JSON", func(l *ctlogtest.Log) { l.TruncateNext("get-entries", 4) }},
		{"truncated consistency", func(l *ctlogtest.Log) { l.TruncateNext("get-sth-consistency", 2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.log.SetPageSize(40)
			watched := f.add(t, 300)
			f.log.Publish()
			tc.setup(f.log)
			stop := run(t, f.tailer(t, zero(), fastOpts(), nil))
			f.rec.await(t, "catch-up", func() bool { cp := f.rec.checkpoint(); return cp != nil && cp.NextIndex == 300 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			checkHits(t, f.rec, watched)
		})
	}
}

func TestTailerHonoursRetryAfter(t *testing.T) {
	f := newFixture(t)
	watched := f.add(t, 50)
	f.log.Publish()
	f.log.FailNext("get-entries", 1, http.StatusTooManyRequests, time.Second)
	tt := &timingTransport{}
	opts := fastOpts()
	opts.Concurrency = 1
	stop := run(t, f.tailer(t, zero(), opts, &http.Client{Transport: tt}))
	f.rec.await(t, "catch-up", func() bool { cp := f.rec.checkpoint(); return cp != nil && cp.NextIndex == 50 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkHits(t, f.rec, watched)
	tt.mu.Lock()
	defer tt.mu.Unlock()
	times := tt.times["/ct/v1/get-entries"]
	if len(times) < 2 {
		t.Fatalf("want a retried get-entries, got %d requests", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Fatalf("retried %v after a 429 with Retry-After: 1; must wait at least 1s", gap)
	}
}

// catchUp runs a tailer over the first n entries and waits for it.
func (f *fixture) catchUp(t *testing.T, n int) (watched []uint64, stop func() error) {
	t.Helper()
	watched = f.add(t, n)
	f.log.Publish()
	stop = run(t, f.tailer(t, zero(), fastOpts(), nil))
	f.rec.await(t, "catch-up", func() bool { cp := f.rec.checkpoint(); return cp != nil && cp.NextIndex == uint64(n) })
	return watched, stop
}

func TestTailerBadSignatureDoesNotAdvance(t *testing.T) {
	f := newFixture(t)
	watched, stop := f.catchUp(t, 100)
	more := f.add(t, 50)
	f.log.SetBadSignature(true)
	f.log.Publish()
	f.rec.await(t, "bad signature event", func() bool { return len(f.rec.eventsOf(event.BadSignature)) > 0 })
	f.rec.mu.Lock()
	if cp := f.rec.checkpoint(); cp.TreeSize != 100 || cp.NextIndex != 100 {
		t.Errorf("checkpoint moved to size %d next %d after a bad signature", cp.TreeSize, cp.NextIndex)
	}
	f.rec.mu.Unlock()
	checkHits(t, f.rec, watched)

	// The log fixes its signature: the tailer goes on.
	f.log.SetBadSignature(false)
	f.log.Publish()
	f.rec.await(t, "recovery", func() bool { return f.rec.checkpoint().NextIndex == 150 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkHits(t, f.rec, append(watched, more...))
}

func TestTailerMisbehaviourDoesNotAdvance(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind event.LogEventKind
		act  func(t *testing.T, f *fixture)
	}{
		{"fork", event.InconsistentTree, func(t *testing.T, f *fixture) {
			f.log.Fork(60)
			f.add(t, 20)
			f.log.Publish()
		}},
		{"fork at same size", event.InconsistentTree, func(t *testing.T, f *fixture) {
			f.log.Fork(60)
			f.log.Publish()
		}},
		{"shrink", event.ShrinkingTree, func(t *testing.T, f *fixture) {
			f.log.Shrink(80)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			watched, stop := f.catchUp(t, 100)
			tc.act(t, f)
			f.rec.await(t, string(tc.kind)+" event", func() bool { return len(f.rec.eventsOf(tc.kind)) > 0 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			cp := f.rec.current()
			if cp.TreeSize != 100 || cp.NextIndex != 100 {
				t.Errorf("checkpoint moved to size %d next %d after misbehaviour", cp.TreeSize, cp.NextIndex)
			}
			checkHits(t, f.rec, watched)
			ev := f.rec.eventsOf(tc.kind)[0]
			if ev.Log.Name != "test" || ev.Detail == "" || ev.ID == "" {
				t.Errorf("event lacks detail: %+v", ev)
			}
		})
	}
}

func TestTailerStartPositions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func() *uint64
		first uint64
	}{
		{"end", func() *uint64 { return nil }, 137},
		{"middle", func() *uint64 { s := uint64(61); return &s }, 61},
		{"one", func() *uint64 { s := uint64(1); return &s }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			old := f.add(t, 137)
			f.log.Publish()
			stop := run(t, f.tailer(t, tc.start(), fastOpts(), nil))
			f.rec.await(t, "start", func() bool { cp := f.rec.checkpoint(); return cp != nil && cp.NextIndex == 137 })
			more := f.add(t, 40)
			f.log.Publish()
			f.rec.await(t, "catch-up", func() bool { return f.rec.checkpoint().NextIndex == 177 })
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
			checkRange(t, f.rec.current(), rootOf(t, f.log, 177))
		})
	}
}

func TestTailerResumesFromCheckpoint(t *testing.T) {
	f := newFixture(t)
	f.log.SetPageSize(25)
	watched := f.add(t, 600)
	f.log.Publish()
	opts := fastOpts()
	opts.VerifyEvery = 100
	runInTurns(t, f.rec, 600, func() func() error { return run(t, f.tailer(t, zero(), opts, nil)) })
	checkHits(t, f.rec, watched)
}

// runInTurns runs tailers one after another, each stopped after its first
// commit, until the log's size is committed: the union of their work must
// then be every entry, in order, once.
func runInTurns(t *testing.T, rec *recorder, size uint64, start func() func() error) {
	t.Helper()
	for turn := 0; ; turn++ {
		before := uint64(0)
		if cp := rec.current(); cp != nil {
			before = cp.NextIndex
		}
		stop := start()
		rec.await(t, "a commit", func() bool { cp := rec.checkpoint(); return cp != nil && cp.NextIndex > before })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if rec.current().NextIndex == size {
			return
		}
		if turn > 30 {
			t.Fatal("no progress")
		}
	}
}

func TestTailerCountsMalformedEntries(t *testing.T) {
	f := newFixture(t)
	w1 := f.add(t, 10)
	bad := f.log.AddRaw([]byte("not a merkle tree leaf"), nil)
	w2 := f.add(t, 10)
	f.log.Publish()
	tl := f.tailer(t, zero(), fastOpts(), nil)
	stop := run(t, tl)
	f.rec.await(t, "catch-up", func() bool { cp := f.rec.checkpoint(); return cp != nil && cp.NextIndex == 21 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkHits(t, f.rec, append(w1, w2...))
	evs := f.rec.eventsOf(event.MalformedEntry)
	if len(evs) != 1 || evs[0].Log.Index != bad {
		t.Fatalf("want one malformed-entry event for index %d, got %+v", bad, evs)
	}
	if st := tl.Stats(); st.Malformed != 1 {
		t.Fatalf("malformed count %d, want 1", st.Malformed)
	}
}

// Our own storage failing (NATS restarting, a leader election) holds the
// tailer where it is: it retries, reports the error in Stats, and goes on
// once storage works again, skipping nothing.
func TestTailerHoldsWhileStorageFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(r *recorder, err error)
	}{
		{"checkpoint save", func(r *recorder, err error) { r.failSave = err }},
		{"publish", func(r *recorder, err error) { r.failPublish = err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			watched := f.add(t, 40)
			f.log.Publish()
			f.rec.mu.Lock()
			tc.fail(f.rec, errors.New("disk on fire"))
			f.rec.mu.Unlock()
			tl := f.tailer(t, zero(), fastOpts(), nil)
			stop := run(t, tl)
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(tl.Stats().LastError, "disk on fire") {
				if time.Now().After(deadline) {
					t.Fatalf("no storage error in Stats: %q", tl.Stats().LastError)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if cp := f.rec.current(); cp != nil && cp.NextIndex > 0 {
				t.Fatalf("advanced to %d while storage failed", cp.NextIndex)
			}
			f.rec.mu.Lock()
			tc.fail(f.rec, nil)
			f.rec.mu.Unlock()
			f.rec.await(t, "catch-up after storage recovered", func() bool { cp := f.rec.checkpoint(); return cp != nil && cp.NextIndex == 40 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			checkHits(t, f.rec, watched)
		})
	}
}

// testLogger discards logs unless CTWATCHTEST_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("CTWATCHTEST_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func TestTailerHostileResponses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(l *ctlogtest.Log, o *monitor.FetchOptions)
	}{
		{"oversized", func(_ *ctlogtest.Log, o *monitor.FetchOptions) { o.MaxResponseBytes = 1500 }},
		{"slow", func(l *ctlogtest.Log, o *monitor.FetchOptions) {
			l.SetDelay(300 * time.Millisecond)
			o.Timeout = 30 * time.Millisecond
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.add(t, 50)
			f.log.Publish()
			opts := fastOpts()
			tc.setup(f.log, &opts)
			tl := f.tailer(t, zero(), opts, nil)
			stop := run(t, tl)
			f.rec.await(t, "unreachable event", func() bool { return len(f.rec.eventsOf(event.LogUnreachable)) > 0 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if cp := f.rec.current(); cp != nil && cp.NextIndex != 0 {
				t.Fatalf("advanced to %d on responses it could not read", cp.NextIndex)
			}
			if st := tl.Stats(); st.Processed != 0 || len(f.rec.hits) != 0 {
				t.Fatalf("processed %d entries and %d hits from unreadable responses", st.Processed, len(f.rec.hits))
			}
			if n := len(f.rec.eventsOf(event.LogUnreachable)); n != 1 {
				t.Fatalf("%d unreachable events for one outage, want 1", n)
			}
		})
	}
}

func TestTailerStartBeyondTreeWaits(t *testing.T) {
	f := newFixture(t)
	f.add(t, 30)
	f.log.Publish()
	start := uint64(45)
	stop := run(t, f.tailer(t, &start, fastOpts(), nil))
	// The tailer keeps polling until the log is big enough; a get-sth
	// count past a few shows it polled rather than gave up.
	deadline := time.Now().Add(10 * time.Second)
	for f.log.Requests(ctlogtest.EndpointGetSTH) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("tailer stopped polling while waiting for its start index")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.rec.mu.Lock()
	if cp := f.rec.checkpoint(); cp != nil {
		t.Errorf("checkpoint %+v saved before the log reached the start index", cp)
	}
	f.rec.mu.Unlock()
	more := f.add(t, 40)
	f.log.Publish()
	f.rec.await(t, "catch-up", func() bool { cp := f.rec.checkpoint(); return cp != nil && cp.NextIndex == 70 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for _, i := range more {
		if i >= start {
			want = append(want, i)
		}
	}
	checkHits(t, f.rec, want)
}

func TestTailerCommitsDownloadedEntriesOnStop(t *testing.T) {
	f := newFixture(t)
	f.log.SetPageSize(10)
	watched := f.add(t, 400)
	f.log.Publish()
	f.log.SetDelay(20 * time.Millisecond)
	opts := fastOpts()
	opts.BatchSize = 10
	opts.Concurrency = 1
	opts.VerifyEvery = 1 << 20 // no periodic commit: only the stop commits
	stop := run(t, f.tailer(t, zero(), opts, nil))
	f.rec.await(t, "start", func() bool { return f.rec.checkpoint() != nil })
	deadline := time.Now().Add(10 * time.Second)
	for f.log.Requests(ctlogtest.EndpointGetEntries) < 5 {
		if time.Now().After(deadline) {
			t.Fatal("no downloads")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	cp := f.rec.current()
	if cp.NextIndex < 30 || cp.NextIndex >= 400 {
		t.Fatalf("stopped with next index %d: want the downloaded entries (≥ 30) committed, not all 400", cp.NextIndex)
	}
	checkRange(t, cp, rootOf(t, f.log, cp.NextIndex))
	var want []uint64
	for _, i := range watched {
		if i < cp.NextIndex {
			want = append(want, i)
		}
	}
	checkHits(t, f.rec, want)
}

// A log far ahead of the tailer raises one falling_behind event per
// episode: not again while still behind, again after catching up and
// falling behind anew.
func TestTailerFallingBehind(t *testing.T) {
	f := newFixture(t)
	f.add(t, 600)
	f.log.Publish()
	opts := fastOpts()
	opts.MaxBacklog = 200
	stop := run(t, f.tailer(t, zero(), opts, nil))
	f.rec.await(t, "catch-up", func() bool { cp := f.rec.checkpoint(); return cp != nil && cp.NextIndex == 600 })
	evs := f.rec.eventsOf(event.FallingBehind)
	if len(evs) != 1 {
		t.Fatalf("%d falling_behind events during one backlog, want 1: %+v", len(evs), evs)
	}
	if !strings.Contains(evs[0].Detail, "tree size 600") || evs[0].Log.Name != "test" {
		t.Errorf("event %+v", evs[0])
	}

	// Caught up; a small growth stays below the limit, a large one is a
	// new episode.
	f.add(t, 150)
	f.log.Publish()
	f.rec.await(t, "catch-up", func() bool { cp := f.rec.checkpoint(); return cp != nil && cp.NextIndex == 750 })
	if n := len(f.rec.eventsOf(event.FallingBehind)); n != 1 {
		t.Fatalf("%d falling_behind events after a growth below the limit, want 1", n)
	}
	f.add(t, 600)
	f.log.Publish()
	f.rec.await(t, "catch-up", func() bool { cp := f.rec.checkpoint(); return cp != nil && cp.NextIndex == 1350 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	evs = f.rec.eventsOf(event.FallingBehind)
	if len(evs) != 2 || evs[0].ID == evs[1].ID {
		t.Fatalf("falling_behind events %+v, want two with distinct ids", evs)
	}
}

// Stats report health as well as counts: failed requests by kind, the last
// error, when the head was verified and entries committed, and lag.
func TestTailerStatsHealth(t *testing.T) {
	f := newFixture(t)
	f.add(t, 100)
	f.log.Publish()
	f.log.FailNext("get-sth", 2, http.StatusServiceUnavailable, 0)
	start := time.Now()
	tl := f.tailer(t, zero(), fastOpts(), nil)
	stop := run(t, tl)
	f.rec.await(t, "catch-up", func() bool { cp := f.rec.checkpoint(); return cp != nil && cp.NextIndex == 100 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st := tl.Stats()
	if st.FetchErrors["http_5xx"] != 2 || len(st.FetchErrors) != 1 {
		t.Errorf("fetch errors %v, want two http_5xx", st.FetchErrors)
	}
	if !strings.Contains(st.LastError, "503") || st.LastErrorTime.Before(start) {
		t.Errorf("last error %q at %s", st.LastError, st.LastErrorTime)
	}
	if st.LastHead.Before(start) || st.LastCommit.Before(st.LastHead) || !st.BehindSince.IsZero() || st.Unreachable {
		t.Errorf("head %s commit %s behind since %s unreachable %v", st.LastHead, st.LastCommit, st.BehindSince, st.Unreachable)
	}
	if st.TreeSize != 100 || st.NextIndex != 100 || st.Processed != 100 {
		t.Errorf("sizes %+v", st)
	}
}
