package monitor_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/testca"
	"github.com/ctwatch/ctwatch/monitor"
	"github.com/ctwatch/ctwatch/monitor/ctlogtest"
	"github.com/ctwatch/ctwatch/monitor/statictest"
)

// These tests prove the "bounded resources" promise of issue 7 for the
// tailers: what a tailer holds does not grow with the backlog it works
// through, and a hostile log cannot make it hold more than fixed caps.
//
// Memory is measured as the live heap: a sampler forces a GC and reads
// HeapInuse every few milliseconds while the tailer runs, and keeps the
// maximum. Forcing the GC matters: without it HeapInuse also holds garbage
// not yet collected, and the GC lets that grow in proportion to the live
// heap, which here includes the in-process log (it holds every entry), so a
// bigger log would look like a bigger tailer. The log is filled and
// published, then a GC'd baseline is read, and only then does the tailer
// start; peak minus baseline is what tailing cost.

const mib = 1 << 20

// heapSampler records the peak live heap (HeapInuse right after a forced
// GC) until stopped.
type heapSampler struct {
	stop    chan struct{}
	done    chan struct{}
	base    uint64
	peak    uint64
	samples int
}

// liveHeap forces a collection and returns the bytes it marked live
// (runtime/metrics /gc/heap/live:bytes). Of the measures tried, this one
// moved least between runs: HeapInuse also counts partly filled spans, and
// HeapAlloc read after the GC adds what the tailer allocated meanwhile.
func liveHeap() uint64 {
	runtime.GC()
	m := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(m)
	return m[0].Value.Uint64()
}

// startHeapSampler reads the baseline and samples every interval from a
// goroutine until Stop.
func startHeapSampler(interval time.Duration) *heapSampler {
	s := &heapSampler{stop: make(chan struct{}), done: make(chan struct{}), base: liveHeap()}
	s.peak = s.base
	go func() {
		defer close(s.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			h := liveHeap()
			s.peak = max(s.peak, h)
			s.samples++
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// Stop ends sampling and returns the peak growth over the baseline.
func (s *heapSampler) Stop() uint64 {
	close(s.stop)
	<-s.done
	if s.peak < s.base {
		return 0
	}
	return s.peak - s.base
}

// countingStore is a Publisher and CheckpointStore that retains nothing
// that grows: it counts hits and events and keeps only the latest
// checkpoint, so that the heap measured is the tailer's, not the test's.
type countingStore struct {
	hits      atomic.Uint64
	events    atomic.Uint64
	malformed atomic.Uint64
	want      uint64
	reached   chan struct{}
	once      sync.Once

	mu sync.Mutex
	cp *monitor.Checkpoint
}

// newCountingStore returns a store whose reached channel closes once a
// checkpoint with NextIndex >= want is saved.
func newCountingStore(want uint64) *countingStore {
	return &countingStore{want: want, reached: make(chan struct{})}
}

func (c *countingStore) PublishHits(_ context.Context, hits []event.Hit) error {
	c.hits.Add(uint64(len(hits)))
	return nil
}

func (c *countingStore) PublishEvent(_ context.Context, ev event.LogEvent) error {
	c.events.Add(1)
	if ev.Kind == event.MalformedEntry {
		c.malformed.Add(1)
	}
	return nil
}

func (c *countingStore) Load(context.Context, string) (*monitor.Checkpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cp == nil {
		return nil, nil
	}
	cp := *c.cp
	return &cp, nil
}

func (c *countingStore) Save(_ context.Context, _ string, cp *monitor.Checkpoint) error {
	c.mu.Lock()
	n := *cp
	c.cp = &n
	c.mu.Unlock()
	if cp.NextIndex >= c.want {
		c.once.Do(func() { close(c.reached) })
	}
	return nil
}

func (c *countingStore) current() monitor.Checkpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cp == nil {
		return monitor.Checkpoint{}
	}
	return *c.cp
}

// certPool returns n distinct watched leaf certificates: filling a log of
// tens of thousands of entries from a small pool keeps the test fast; the
// entries still differ (each has its own timestamp and index).
func certPool(t testing.TB, ca *testca.CA, n int) [][]byte {
	t.Helper()
	pool := make([][]byte, n)
	for i := range pool {
		der, err := ca.Leaf(fmt.Sprintf("pool%d.watched.example", i))
		if err != nil {
			t.Fatal(err)
		}
		pool[i] = der
	}
	return pool
}

// backfillOpts are production settings (DefaultFetchOptions, which is what
// the configuration gives when it says nothing) except that there is no
// request rate cap and no wait between polls, so a backfill runs as fast
// as the machine allows.
func backfillOpts() monitor.FetchOptions {
	o := monitor.DefaultFetchOptions()
	o.Rate = 0
	o.PollInterval = 10 * time.Millisecond
	o.MinBackoff = 5 * time.Millisecond
	o.MaxBackoff = 50 * time.Millisecond
	return o
}

// backfillPeak fills a fresh log of the given kind with n entries, then
// measures the peak heap growth of a tailer backfilling all of them.
func backfillPeak(t testing.TB, kind monitor.Kind, n int) uint64 {
	t.Helper()
	ca, err := testca.New("memory test")
	if err != nil {
		t.Fatal(err)
	}
	pool := certPool(t, ca, 64)
	store := newCountingStore(uint64(n))
	cfg := monitor.TailerConfig{
		Fetch:       backfillOpts(),
		Matcher:     indexMatcher{},
		Publisher:   store,
		Checkpoints: store,
		Logger:      testLogger(t),
	}
	var tl interface {
		Run(context.Context) error
		Stats() monitor.Stats
	}
	switch kind {
	case monitor.KindRFC6962:
		l, err := ctlogtest.New()
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for i := range n {
			l.AddX509(pool[i%len(pool)], ca.Chain())
		}
		l.Publish()
		tl, err = monitor.NewRFC6962Tailer(&monitor.Log{Name: "mem", Kind: kind, URL: l.URL(), Key: l.PublicKeyDER(), Start: zero()}, cfg)
		if err != nil {
			t.Fatal(err)
		}
	case monitor.KindStatic:
		l, err := statictest.New()
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for i := range n {
			l.AddX509(pool[i%len(pool)], ca.Chain())
		}
		l.Publish()
		tl, err = monitor.NewStaticTailer(&monitor.Log{
			Name: "mem", Kind: kind, URL: l.SubmissionURL(), MonitoringURL: l.MonitoringURL(),
			Origin: l.Origin(), Key: l.PublicKeyDER(), Start: zero(),
		}, cfg)
		if err != nil {
			t.Fatal(err)
		}
	}
	// Baseline after the log holds everything it will serve.
	s := startHeapSampler(5 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- tl.Run(ctx) }()
	select {
	case <-store.reached:
	case err := <-errc:
		s.Stop()
		cancel()
		t.Fatalf("tailer stopped: %v", err)
	case <-time.After(2 * time.Minute):
		s.Stop()
		cancel()
		<-errc
		t.Fatalf("backfill of %d entries not done in 2 minutes (at %d)", n, store.current().NextIndex)
	}
	growth := s.Stop()
	cancel()
	<-errc
	// Every entry was processed and every one (the pool is all watched)
	// made a hit, so the measurement covers the whole pipeline.
	if st := tl.Stats(); st.Processed != uint64(n) || store.hits.Load() != uint64(n) {
		t.Fatalf("processed %d, hits %d, want %d each", st.Processed, store.hits.Load(), n)
	}
	t.Logf("%s backfill of %d entries: peak live heap growth %.1f MiB (%d samples, baseline %.1f MiB)",
		kind, n, float64(growth)/mib, s.samples, float64(s.base)/mib)
	return growth
}

// BenchmarkBackfillPeakHeap backfills logs with a small and a four times
// larger backlog and reports the tailer's peak live-heap growth for each
// (MiB, as peak-MiB/op): downloads are bounded by Concurrency and
// BatchSize (RFC 6962) or by the tile reads in flight (static), and
// verified-but-unpublished hits by VerifyEvery, so the figure should not
// follow the backlog. It is a measurement, not an assertion: a forced GC
// on the in-process log's own heap (100+ MiB) takes long enough for the
// tailer's fresh allocations to count as live, which makes the figures
// noisy (docs/benchmarks.md, "Memory under backlog", has them).
//
//	go test -run '^$' -bench BenchmarkBackfillPeakHeap -benchtime 1x ./monitor/
func BenchmarkBackfillPeakHeap(b *testing.B) {
	for _, kind := range []monitor.Kind{monitor.KindRFC6962, monitor.KindStatic} {
		for _, n := range []int{10240, 40960} {
			b.Run(fmt.Sprintf("%s/%d", kind, n), func(b *testing.B) {
				var peak uint64
				for range b.N {
					peak = max(peak, backfillPeak(b, kind, n))
				}
				b.ReportMetric(float64(peak)/mib, "peak-MiB/op")
			})
		}
	}
}

// hostileProxy stands in front of a test log: requests whose path contains
// one of endless get a 200 with a body that never ends (until the client
// hangs up), the rest are passed to the log.
func hostileProxy(t *testing.T, target string, endless ...string) (srv *httptest.Server, served *atomic.Int64) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	served = &atomic.Int64{}
	chunk := []byte(strings.Repeat(`{"entries":[`, 64<<10/12))
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range endless {
			if strings.Contains(r.URL.Path, p) {
				w.Header().Set("Content-Type", "application/json")
				for r.Context().Err() == nil {
					n, err := w.Write(chunk)
					served.Add(int64(n))
					if err != nil {
						return
					}
				}
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, served
}

// awaitStats polls the tailer's Stats (it has no change signal) until cond
// holds, failing the test after a generous deadline.
func awaitStats(t *testing.T, tl interface{ Stats() monitor.Stats }, what string, cond func(monitor.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond(tl.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stats %+v", what, tl.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A log that answers with bodies that never end costs at most the response
// cap per request in flight, however much it sends: the tailer counts each
// as too_large, raises log_unreachable, does not advance, and its heap stays
// under a fixed bound. The cap is 4 MiB here (16 MiB by default) to keep the
// test fast; the bound is what Concurrency requests each reading up to the
// cap (io.ReadAll's doubling makes that at most 2 × cap each) can hold, plus
// slack, and far below the bytes the log sends.
func TestTailerEndlessResponseBounded(t *testing.T) {
	const capBytes = 4 * mib
	for _, tc := range []struct {
		name    string
		kind    monitor.Kind
		endless string
	}{
		{"rfc6962 get-entries", monitor.KindRFC6962, "/ct/v1/get-entries"},
		{"rfc6962 get-sth", monitor.KindRFC6962, "/ct/v1/get-sth"},
		{"static data tile", monitor.KindStatic, "/tile/data/"},
		{"static hash tile", monitor.KindStatic, "/tile/0/"},
		{"static checkpoint", monitor.KindStatic, "/checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, err := testca.New("hostile")
			if err != nil {
				t.Fatal(err)
			}
			opts := backfillOpts()
			opts.MaxResponseBytes = capBytes
			opts.Concurrency = 4
			store := newCountingStore(1 << 62)
			cfg := monitor.TailerConfig{Fetch: opts, Matcher: indexMatcher{}, Publisher: store, Checkpoints: store, Logger: testLogger(t)}
			var tl interface {
				Run(context.Context) error
				Stats() monitor.Stats
			}
			var served *atomic.Int64
			switch tc.kind {
			case monitor.KindRFC6962:
				l, err := ctlogtest.New()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(l.Close)
				addLeaves(t, ca, l, 600)
				l.Publish()
				var srv *httptest.Server
				srv, served = hostileProxy(t, l.URL(), tc.endless)
				tl, err = monitor.NewRFC6962Tailer(&monitor.Log{Name: "hostile", Kind: tc.kind, URL: srv.URL, Key: l.PublicKeyDER(), Start: zero()}, cfg)
				if err != nil {
					t.Fatal(err)
				}
			case monitor.KindStatic:
				l, err := statictest.New()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(l.Close)
				addLeaves(t, ca, l, 600)
				l.Publish()
				base := strings.TrimSuffix(l.MonitoringURL(), "/mon")
				var srv *httptest.Server
				srv, served = hostileProxy(t, base, tc.endless)
				tl, err = monitor.NewStaticTailer(&monitor.Log{
					Name: "hostile", Kind: tc.kind, URL: l.SubmissionURL(), MonitoringURL: srv.URL + "/mon",
					Origin: l.Origin(), Key: l.PublicKeyDER(), Start: zero(),
				}, cfg)
				if err != nil {
					t.Fatal(err)
				}
			}
			s := startHeapSampler(5 * time.Millisecond)
			stop := run(t, tl)
			// Enough refused bodies that an uncapped reader would have
			// held far more than the bound below.
			const refusals = 12
			awaitStats(t, tl, fmt.Sprintf("%d too_large errors", refusals), func(st monitor.Stats) bool {
				return st.FetchErrors["too_large"] >= refusals && st.Unreachable
			})
			growth := s.Stop()
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			st := tl.Stats()
			bound := uint64(2*opts.Concurrency)*capBytes + 16*mib
			t.Logf("%s: %d too_large refusals, %.1f MiB sent by the log, peak heap growth %.1f MiB (bound %.1f MiB, %d samples)",
				tc.name, st.FetchErrors["too_large"], float64(served.Load())/mib, float64(growth)/mib, float64(bound)/mib, s.samples)
			if growth > bound {
				t.Errorf("peak heap growth %.1f MiB over the bound %.1f MiB", float64(growth)/mib, float64(bound)/mib)
			}
			if cp := store.current(); cp.NextIndex != 0 || st.Processed != 0 || store.hits.Load() != 0 {
				t.Errorf("advanced to %d (processed %d, %d hits) on bodies it could not read", cp.NextIndex, st.Processed, store.hits.Load())
			}
		})
	}
}

// issuerBlob returns a deterministic, distinct chain "certificate" of size
// bytes for entry i. It is not DER: the entry is reported malformed after
// its chain fails to decode, which is what a hostile log gets.
func issuerBlob(i, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint64(b, uint64(i))
	seed := sha256.Sum256(b[:8])
	for off := 8; off < size; off += len(seed) {
		copy(b[off:], seed[:])
	}
	return b
}

// A static log whose every entry names another large issuer cannot make
// the tailer's issuer cache grow without limit: the cache is capped by count
// (maxIssuers) and by bytes, so it holds a few MiB whatever the log serves.
// Here 1024 distinct issuers of 64 KiB (64 MiB in all, which the in-process
// log itself holds and is in the baseline) are fetched, verified against
// their fingerprints and then kept or evicted. Before the byte cap the
// growth was the whole 64 MiB (45 MiB measured at 640 issuers); the bound
// of 40 MiB is the cap (8 MiB) plus generous slack for the measuring noise
// described at TestTailerMemoryFlatUnderBacklog.
func TestStaticTailerManyIssuersBounded(t *testing.T) {
	const issuers, size = 1024, 64 << 10
	f := newStaticFixture(t)
	store := newCountingStore(issuers)
	pool := certPool(t, f.ca, 8)
	for i := range issuers {
		f.log.AddX509(pool[i%len(pool)], [][]byte{issuerBlob(i, size)})
	}
	f.log.Publish()
	l := &monitor.Log{
		Name: "issuers", Kind: monitor.KindStatic, URL: f.log.SubmissionURL(), MonitoringURL: f.log.MonitoringURL(),
		Origin: f.log.Origin(), Key: f.log.PublicKeyDER(), Start: zero(),
	}
	tl, err := monitor.NewStaticTailer(l, monitor.TailerConfig{
		Fetch: backfillOpts(), Matcher: indexMatcher{}, Publisher: store, Checkpoints: store, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := startHeapSampler(5 * time.Millisecond)
	stop := run(t, tl)
	select {
	case <-store.reached:
	case <-time.After(time.Minute):
		t.Fatalf("not caught up; at %d", store.current().NextIndex)
	}
	growth := s.Stop()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	const bound = 40 * mib
	t.Logf("%d issuers of %d KiB: %d issuer requests, peak heap growth %.1f MiB (bound %.1f MiB)",
		issuers, size>>10, f.log.Requests("/mon/issuer/"), float64(growth)/mib, float64(bound)/mib)
	if growth > bound {
		t.Errorf("peak heap growth %.1f MiB over the bound %.1f MiB: the issuer cache keeps too much", float64(growth)/mib, float64(bound)/mib)
	}
	// Every issuer was fetched (each is new), and every entry still
	// counted: matched (decoded without its chain) and reported malformed.
	if n := f.log.Requests("/mon/issuer/"); n < issuers {
		t.Errorf("%d issuer requests, want at least %d", n, issuers)
	}
	if st := tl.Stats(); st.Processed != issuers || store.hits.Load() != issuers || store.malformed.Load() != issuers {
		t.Errorf("processed %d, hits %d, malformed events %d; want %d each", st.Processed, store.hits.Load(), store.malformed.Load(), issuers)
	}
}
