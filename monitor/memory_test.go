package monitor_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"runtime/metrics"
	"slices"
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
// Memory is measured as the live heap: a sampler forces a GC and reads the
// bytes it marked live every few milliseconds while the tailer runs, and
// keeps the maximum; peak minus a baseline read just before the tailer
// starts is what tailing cost. Forcing the GC matters: without it the heap
// also holds garbage not yet collected, which the GC lets grow with the
// live heap.
//
// The backlog tests serve their log from another process (servelog_test.go)
// so that the measured heap holds the tailer and little else. With the log
// in the same process (as the hostile-log tests below still have it), every
// forced GC walks the log's own 70-160 MiB, and while it does the tailer
// allocates tens of MiB that the GC counts as live: figures then varied 2x
// between runs of the same size and grew with the log rather than with the
// tailer, which is why they could only be benchmarked, not asserted.

const mib = 1 << 20

// heapSampler records the live heap until stopped: its peak, and the
// samples themselves for quantiles.
type heapSampler struct {
	stop chan struct{}
	done chan struct{}
	base uint64
	peak uint64
	// live holds the samples, up to its capacity, allocated before the
	// baseline is read so that recording them does not add to the figures.
	live    []uint64
	samples int
}

// maxHeapSamples caps the samples kept for quantiles: at a forced GC every
// 5-30 ms, several minutes' worth. The peak counts every sample.
const maxHeapSamples = 1 << 14

// liveHeap forces a collection and returns the bytes it marked live
// (runtime/metrics /gc/heap/live:bytes). Of the measures tried, this one
// moved least between runs: HeapInuse also counts partly filled spans, and
// HeapAlloc read after the GC adds what the tailer allocated meanwhile.
// Subtracting what was allocated during the collection was tried too, to
// remove what the GC counts live only because it was allocated while the
// GC marked; but it also subtracts what was allocated while the GC swept
// and drops below the baseline mid-backfill, so it is no bound at all.
func liveHeap() uint64 {
	runtime.GC()
	m := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(m)
	return m[0].Value.Uint64()
}

// startHeapSampler reads the baseline and samples every interval from a
// goroutine until Stop.
func startHeapSampler(interval time.Duration) *heapSampler {
	s := &heapSampler{stop: make(chan struct{}), done: make(chan struct{}), live: make([]uint64, 0, maxHeapSamples)}
	s.base = liveHeap()
	s.peak = s.base
	go func() {
		defer close(s.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			h := liveHeap()
			s.peak = max(s.peak, h)
			s.samples++
			if len(s.live) < cap(s.live) {
				s.live = append(s.live, h)
			}
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
	return s.growth(s.peak)
}

// growth is how far h is above the baseline.
func (s *heapSampler) growth(h uint64) uint64 {
	if h < s.base {
		return 0
	}
	return h - s.base
}

// quantile returns the growth that the fraction q of the samples did not
// exceed; call it after Stop. The peak is the maximum of a noisy measure,
// so it creeps up with the number of samples (a longer backfill gives the
// noise more chances); the 90th percentile does not, which makes it the
// figure to compare across backlogs of very different lengths.
func (s *heapSampler) quantile(q float64) uint64 {
	if len(s.live) == 0 {
		return 0
	}
	v := slices.Clone(s.live)
	slices.Sort(v)
	return s.growth(v[int(q*float64(len(v)-1))])
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

// backlogTailer is what the backlog tests need of either tailer.
type backlogTailer interface {
	Run(context.Context) error
	Stats() monitor.Stats
}

// heapFigures are the live-heap growth figures of one backfill.
type heapFigures struct {
	peak, p90 uint64
}

// backfill has a fresh tailer with opts backfill the whole log that s
// describes (served by another process, see startLogProcess) and returns
// the live-heap growth while it did. It fails the test unless every entry
// was processed and made its hit, so that the figures cover the whole
// pipeline: download, verification, matching and publishing.
func backfill(t testing.TB, s servedLog, opts monitor.FetchOptions) heapFigures {
	t.Helper()
	store := newCountingStore(s.Size)
	// A transport of its own (with the default one's settings, which is
	// what the daemon uses), so no run inherits another's connections.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	cfg := monitor.TailerConfig{
		Fetch:       opts,
		Matcher:     indexMatcher{},
		Publisher:   store,
		Checkpoints: store,
		HTTPClient:  &http.Client{Transport: tr},
		Logger:      testLogger(t),
	}
	var (
		tl  backlogTailer
		err error
	)
	switch s.Kind {
	case monitor.KindRFC6962:
		tl, err = monitor.NewRFC6962Tailer(s.log("mem"), cfg)
	case monitor.KindStatic:
		tl, err = monitor.NewStaticTailer(s.log("mem"), cfg)
	default:
		err = fmt.Errorf("unknown kind %q", s.Kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	// A backfill runs at 1,000 to 5,000 entries a second with -race on a
	// busy 2-core machine (20,000 and more without); this only catches a
	// tailer that stopped making progress.
	limit := 2*time.Minute + time.Duration(s.Size)*2*time.Millisecond
	sampler := startHeapSampler(5 * time.Millisecond)
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- tl.Run(ctx) }()
	select {
	case <-store.reached:
	case err := <-errc:
		sampler.Stop()
		t.Fatalf("tailer stopped: %v", err)
	case <-time.After(limit):
		sampler.Stop()
		cancel()
		<-errc
		t.Fatalf("backfill of %d entries not done in %s (at %d)", s.Size, limit, store.current().NextIndex)
	}
	fig := heapFigures{peak: sampler.Stop()}
	fig.p90 = sampler.quantile(0.9)
	took := time.Since(start)
	cancel()
	<-errc
	if st := tl.Stats(); st.Processed != s.Size || store.hits.Load() != s.Size {
		t.Fatalf("processed %d, hits %d, want %d each", st.Processed, store.hits.Load(), s.Size)
	}
	t.Logf("%s backfill of %d entries in %s: live heap growth peak %.1f MiB, 90th percentile %.1f MiB (%d samples, baseline %.1f MiB)",
		s.Kind, s.Size, took.Round(time.Millisecond), float64(fig.peak)/mib, float64(fig.p90)/mib, sampler.samples, float64(sampler.base)/mib)
	return fig
}

// The bound on what a backfilling tailer holds is built from its windows
// (see tailerHeapBound) and these costs.
const (
	// hitBytes is what one hit costs while it waits to be published. A hit
	// as indexMatcher makes it measured 764 bytes live, its 256-byte slot in
	// the slice that collects hits included; append's doubling can leave up
	// to one more empty slot per hit, hence 1 KiB.
	hitBytes = 1 << 10
	// tileWidth is the number of entries in a full static data tile.
	tileWidth = statictest.TileWidth
	// staticReadAhead is how many raw data tiles a static tailer may hold
	// ahead of the entries it has processed: torchwood's Entries reads up
	// to 50 at a time. A tile reader that replaces it must stay within this
	// for the bound to hold.
	staticReadAhead = 50
	// fixedSlack covers what no window scales: HTTP connections and their
	// buffers, runtime metadata, and the measure itself, which counts as
	// live what the tailer allocates while a forced GC is marking.
	fixedSlack = 8 * mib
)

// tailerHeapBound is the most a tailer of kind with opts should hold while
// it backfills entries of entryBytes each (certificate and chain, as the
// child log reports them, plus 64 bytes of framing), whatever the backlog.
// It adds up the tailers' windows, with u the unit of download: BatchSize
// entries for RFC 6962, a data tile (256) for static logs:
//
//   - hits waiting to be published: a commit window closes at the first
//     unit boundary at or past VerifyEvery entries, and one window may be
//     committing while the next is read, so 2 × (VerifyEvery + u) hits;
//   - units downloaded and decoded but not yet in a window: 2×Concurrency
//     queued in index order, Concurrency in the download workers, one in
//     the reader's hands and one in the producer's, (3×Concurrency + 2) × u
//     entries, each with its hit, its leaf hash, and at worst its share of
//     the response it came in: the body (base64 in JSON for RFC 6962, 4/3
//     of the entry) in an io.ReadAll buffer that may be twice as large, and
//     the decoded copy, so hitBytes + 4 × entryBytes;
//   - static logs only: staticReadAhead raw data tiles, 2 × entryBytes per
//     entry for the same io.ReadAll growth;
//   - fixedSlack.
//
// With the production windows (BatchSize 256, Concurrency 4, VerifyEvery
// 8192) and the test logs' 481-byte entries this is about 35 MiB for RFC 6962
// and 49 MiB for static logs; BenchmarkBackfillPeakHeap measured peaks of
// 11-29 MiB.
func tailerHeapBound(kind monitor.Kind, opts monitor.FetchOptions, entryBytes int) uint64 {
	e := uint64(entryBytes + 64)
	u := uint64(opts.BatchSize)
	if kind == monitor.KindStatic {
		u = tileWidth
	}
	c := uint64(opts.Concurrency)
	bound := 2*(opts.VerifyEvery+u)*hitBytes + (3*c+2)*u*(hitBytes+4*e) + fixedSlack
	if kind == monitor.KindStatic {
		bound += staticReadAhead * tileWidth * 2 * e
	}
	return bound
}

// TestTailerMemoryFlatUnderBacklog proves that a tailer's memory follows
// its configured windows, not the backlog: each kind backfills a backlog B
// and one of 4B, both well beyond every window, from a log served by
// another process, and
//
//   - (a) every entry is processed and makes its hit (backfill checks),
//   - (b) the peak live-heap growth for 4B is at most that for B × 1.25 +
//     4 MiB: anything the tailer kept per entry, from 128 bytes up (70 for
//     static), would add more than that over the 3B extra entries,
//   - (c) both peaks are within tailerHeapBound.
//
// The windows are smaller than production's (VerifyEvery 2048, BatchSize
// 128) so that B can be several windows and the test still take about 20 s
// for RFC 6962 and 15 s for static logs with -race on two shared cores (a
// few seconds without); the static tailer's read-ahead does not shrink
// with them, hence its larger B. BenchmarkBackfillPeakHeap measures the
// production windows.
//
// A peak is an upper bound on what the tailer held (everything allocated
// while a forced GC marks counts as live), and scheduling on a busy
// machine makes it overshoot now and then, by as much as 10 MiB. Each
// round measures both sizes once; the test keeps the smallest peak per
// size and passes as soon as they satisfy (b) and (c), measuring up to
// three rounds. An overshoot only ever adds, so the smallest of several
// peaks is the best estimate of what the tailer really holds.
func TestTailerMemoryFlatUnderBacklog(t *testing.T) {
	opts := backfillOpts()
	opts.BatchSize = 128
	opts.VerifyEvery = 2048
	const rounds = 3
	for _, tc := range []struct {
		kind    monitor.Kind
		backlog int
	}{
		// Windows: 2×(2048+128) + 14×128 = 6,144 entries.
		{monitor.KindRFC6962, 16384},
		// Windows: the 12,800 entries of staticReadAhead tiles, or
		// 2×(2048+256) + 14×256 = 8,192.
		{monitor.KindStatic, 32768},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			small := startLogProcess(t, tc.kind, tc.backlog)
			large := startLogProcess(t, tc.kind, 4*tc.backlog)
			bound := tailerHeapBound(tc.kind, opts, small.EntryBytes)
			minSmall, minLarge := uint64(math.MaxUint64), uint64(math.MaxUint64)
			for round := 1; ; round++ {
				minSmall = min(minSmall, backfill(t, small, opts).peak)
				minLarge = min(minLarge, backfill(t, large, opts).peak)
				flatLimit := minSmall + minSmall/4 + 4*mib
				flat, bounded := minLarge <= flatLimit, max(minSmall, minLarge) <= bound
				summary := fmt.Sprintf("smallest peaks after %d round(s): %.1f MiB for %d entries, %.1f MiB for %d (flat limit %.1f MiB, bound %.1f MiB)",
					round, float64(minSmall)/mib, tc.backlog, float64(minLarge)/mib, 4*tc.backlog, float64(flatLimit)/mib, float64(bound)/mib)
				if flat && bounded {
					t.Log(summary)
					return
				}
				if round == rounds {
					if !flat {
						t.Errorf("memory grows with the backlog: %s", summary)
					}
					if !bounded {
						t.Errorf("memory exceeds what the windows allow: %s", summary)
					}
					return
				}
				t.Logf("%s; measuring again", summary)
			}
		})
	}
}

// BenchmarkBackfillPeakHeap backfills logs of growing backlogs with the
// production windows (DefaultFetchOptions without the rate cap) and reports
// the tailer's live-heap growth for each, to show that it follows the
// windows, not the backlog: peak-MiB/op is the peak, p90-MiB/op the 90th
// percentile of the samples (steadier across backlogs, see quantile), and
// bound-MiB what tailerHeapBound allows. The log is served by another
// process, as for TestTailerMemoryFlatUnderBacklog; each size has its own,
// which builds 524,288 entries in a few seconds. docs/benchmarks.md
// ("Memory under backlog") quotes the figures.
//
//	go test -run '^$' -bench BenchmarkBackfillPeakHeap -benchtime 1x ./monitor/
func BenchmarkBackfillPeakHeap(b *testing.B) {
	opts := backfillOpts()
	for _, kind := range []monitor.Kind{monitor.KindRFC6962, monitor.KindStatic} {
		for _, n := range []int{32768, 131072, 524288} {
			b.Run(fmt.Sprintf("%s/%d", kind, n), func(b *testing.B) {
				s := startLogProcess(b, kind, n)
				b.ResetTimer()
				var peak, p90 uint64
				for range b.N {
					fig := backfill(b, s, opts)
					peak, p90 = max(peak, fig.peak), max(p90, fig.p90)
				}
				b.ReportMetric(float64(peak)/mib, "peak-MiB/op")
				b.ReportMetric(float64(p90)/mib, "p90-MiB/op")
				b.ReportMetric(float64(tailerHeapBound(kind, opts, s.EntryBytes))/mib, "bound-MiB")
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
			// Commit every tile: a static backfill that commits only at the
			// head compares roots and reads no hash tile, and the hash tile
			// case needs consistency proofs, which are built from them.
			opts.VerifyEvery = 100
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
			// Entries may have been read and matched ahead (the static
			// tailer reads data tiles while a proof is pending), but
			// nothing unproven may be published or committed.
			if cp := store.current(); cp.NextIndex != 0 || store.hits.Load() != 0 {
				t.Errorf("advanced to %d (%d hits published) on bodies it could not read", cp.NextIndex, store.hits.Load())
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
// of an in-process log (see the top of this file).
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
