package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// latencyLog is one log of the latency phase: where to submit, how to read
// it, and how ctwatch follows it.
type latencyLog struct {
	label  string // "rfc6962" or "static"
	reader entryReader
	filler *filler
	config ctwatchLog
}

// entryReader is a log whose tree head and entries the harness can read.
type entryReader interface {
	treeSize(ctx context.Context) (uint64, error)
	leaves(ctx context.Context, start, end uint64) ([][]byte, error)
}

// latencyResult is the latency of one log.
type latencyResult struct {
	Log       string  `json:"log"`
	Submitted int     `json:"submitted"`
	Delivered int     `json:"delivered"`
	Missing   int     `json:"missing"`
	Unseen    int     `json:"unseen_in_tree_head"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	MaxMS     float64 `json:"max_ms"`
	// P99OverPollMS is p99 minus ctwatch's poll interval: what the
	// target (500 ms) bounds.
	P99OverPollMS float64 `json:"p99_over_poll_ms"`
	PollMS        float64 `json:"poll_interval_ms"`
	Rate          float64 `json:"rate_per_second"`
}

// headWatcher records, for each certificate appearing in a log, when the
// harness first saw a tree head covering it: it reads the tree head every
// 10 ms and, when it grows, the new entries.
type headWatcher struct {
	r        entryReader
	mu       sync.Mutex
	size     uint64
	firstIn  map[string]time.Time // cert SHA-256 → first tree head covering it
	errCount int
	lastErr  error
}

func (w *headWatcher) run(ctx context.Context) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		size, err := w.r.treeSize(ctx)
		seen := time.Now()
		if err != nil || size <= w.size {
			w.noteErr(err)
			continue
		}
		certs, err := w.r.leaves(ctx, w.size, size)
		if err != nil {
			// Read them again at the next growth (or tick).
			w.noteErr(err)
			continue
		}
		w.mu.Lock()
		for _, c := range certs {
			sum := sha256.Sum256(c)
			k := hex.EncodeToString(sum[:])
			if _, ok := w.firstIn[k]; !ok {
				w.firstIn[k] = seen
			}
		}
		w.size = size
		w.mu.Unlock()
	}
}

func (w *headWatcher) noteErr(err error) {
	if err == nil {
		return
	}
	w.mu.Lock()
	w.errCount++
	w.lastErr = err
	w.mu.Unlock()
}

func (w *headWatcher) first(sha string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.firstIn[sha]
	return t, ok
}

// latencyPhase runs one ctwatch following every log from its end, and
// submits n watched certificates to each at rate per second.
type latencyPhase struct {
	bin       string
	dir       string
	logs      []latencyLog
	plan      entryPlan // every entry watched
	rule      string
	rulesFile string
	poll      time.Duration
	n         int
	rate      float64
	timeout   time.Duration
	progress  io.Writer
}

func (ph latencyPhase) run(ctx context.Context) ([]latencyResult, error) {
	recv := newHitReceiver(ph.plan, ph.rule, ph.n*len(ph.logs))
	cfg := ctwatchConfig{
		monitor:   []string{"poll_interval: " + ph.poll.String()},
		rulesFile: ph.rulesFile,
	}
	sizes := map[string]uint64{}
	for _, l := range ph.logs {
		cfg.logs = append(cfg.logs, l.config)
		s, err := l.reader.treeSize(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.label, err)
		}
		sizes[l.config.name] = s
	}
	run, err := launchCtwatch(ctx, ph.dir, ph.bin, cfg, recv)
	if err != nil {
		return nil, err
	}
	defer run.close()
	p := run.proc

	// Caught up: every log's position at the size it had before any
	// submission (ctwatch starts at the end).
	metrics := newMetricsClient(run.listen)
	caughtUp := time.After(2 * time.Minute)
	for {
		next, err := metrics.progress(ctx)
		ok := err == nil
		for name, s := range sizes {
			got, has := next[name]
			ok = ok && has && got.nextIndex >= s
		}
		if ok {
			break
		}
		select {
		case <-time.After(scrapeEvery):
		case <-caughtUp:
			return nil, fmt.Errorf("ctwatch did not catch up with %v within 2 minutes (last %v, %v); see %s", sizes, next, err, run.log)
		case <-p.done:
			return nil, fmt.Errorf("ctwatch exited (%v); see %s:\n%s", p.err, run.log, tailFile(run.log, 30))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	fmt.Fprintf(ph.progress, "  ctwatch caught up with %v; submitting %d watched certificates to each log at %.0f/s\n", sizes, ph.n, ph.rate)

	wctx, stopWatch := context.WithCancel(ctx)
	watchers := make([]*headWatcher, len(ph.logs))
	var wwg sync.WaitGroup
	defer func() { stopWatch(); wwg.Wait() }()
	for i, l := range ph.logs {
		watchers[i] = &headWatcher{r: l.reader, size: sizes[l.config.name], firstIn: map[string]time.Time{}}
		wwg.Go(func() { watchers[i].run(wctx) })
	}

	subs := make([][]submitted, len(ph.logs))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for i, l := range ph.logs {
		f := *l.filler
		f.plan = ph.plan
		f.onSubmitted = func(s submitted) {
			mu.Lock()
			subs[i] = append(subs[i], s)
			mu.Unlock()
		}
		base := i * ph.n
		g.Go(func() error {
			return paced(gctx, ph.n, ph.rate, func(k int) error { return f.submitOne(gctx, base+k) })
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("latency submissions: %w", err)
	}
	// Every certificate is in a tree head within seconds; its hit then
	// within a poll interval and the delivery.
	select {
	case <-recv.allIn:
	case <-time.After(ph.poll + time.Minute):
	case <-p.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	stopWatch()
	wwg.Wait()

	var out []latencyResult
	for i, l := range ph.logs {
		r := latencyResult{Log: l.label, Submitted: len(subs[i]), PollMS: ms(ph.poll), Rate: ph.rate}
		var lat []time.Duration
		for _, s := range subs[i] {
			arrived, ok := recv.arrivalOf(s.sha256)
			if !ok {
				r.Missing++
				continue
			}
			r.Delivered++
			first, ok := watchers[i].first(s.sha256)
			if !ok {
				r.Unseen++
				continue
			}
			lat = append(lat, arrived.Sub(first))
		}
		r.P50MS, r.P99MS, r.MaxMS = ms(percentile(lat, 50)), ms(percentile(lat, 99)), ms(percentile(lat, 100))
		r.P99OverPollMS = r.P99MS - ms(ph.poll)
		if r.Missing > 0 || r.Unseen > 0 {
			fmt.Fprintf(ph.progress, "  WARNING: %s: %d submitted certificates never arrived at the webhook, %d were never seen in a tree head (watcher errors: %d, last %v)\n",
				l.label, r.Missing, r.Unseen, watchers[i].errCount, watchers[i].lastErr)
		}
		out = append(out, r)
	}
	if err := p.stop(30 * time.Second); err != nil {
		fmt.Fprintf(ph.progress, "  warning: ctwatch: %v\n", err)
	}
	return out, nil
}

// paced calls fn(0..n-1) at rate calls per second, each in its own
// goroutine so that a slow submission does not delay the next.
func paced(ctx context.Context, n int, rate float64, fn func(int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for k := range n {
		due := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		select {
		case <-time.After(time.Until(due)):
		case <-gctx.Done():
			return g.Wait()
		}
		g.Go(func() error { return fn(k) })
	}
	return g.Wait()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
