package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// backfillResult is one monitor's full backfill of one log.
type backfillResult struct {
	Tool    string `json:"tool"`
	Log     string `json:"log"`
	Entries uint64 `json:"entries"`
	// WallSeconds runs from the process's start until it had committed
	// (ctwatch) or verified (certspotter) the whole log.
	WallSeconds       float64 `json:"wall_seconds"`
	EntriesPerSecond  float64 `json:"entries_per_second"`
	CPUSeconds        float64 `json:"cpu_seconds"`
	CPUSecondsPer100k float64 `json:"cpu_seconds_per_100k"`
	PeakRSSMB         float64 `json:"peak_rss_mb"`
	HitsExpected      int     `json:"hits_expected"`
	HitsFound         int     `json:"hits_found"`
	// HitsSeconds runs from the start until the webhook had every
	// expected hit (ctwatch only; certspotter prints before it advances).
	HitsSeconds float64 `json:"hits_seconds,omitempty"`
	// PollCPUPerSecond is ctwatch's CPU use once idle while the harness
	// keeps scraping /metrics every 250 ms: an upper bound on what the
	// scraping adds to CPUSeconds per second of wall time.
	PollCPUPerSecond float64           `json:"poll_cpu_per_second,omitempty"`
	Webhook          *receiverStats    `json:"webhook,omitempty"`
	RSSByProgress    []rssPoint        `json:"rss_by_progress,omitempty"`
	Settings         map[string]string `json:"settings,omitempty"`
}

// progressPoll is how often the harness reads a monitor's /proc files and
// certspotter's state file.
const progressPoll = 20 * time.Millisecond

// scrapeEvery is how often the harness scrapes ctwatch's /metrics: each
// scrape costs ctwatch about 2 ms of CPU (the stream and consumer state it
// reads from JetStream), 10% of a core if done every 20 ms, which would
// distort the very figure measured. The completion time does not depend on
// it: it is the commit time ctwatch reports.
const scrapeEvery = 250 * time.Millisecond

// usageSample is one /proc reading.
type usageSample struct {
	at time.Time
	u  usage
}

// usageAt returns the first reading at or after t, or the last one.
func usageAt(samples []usageSample, t time.Time) usage {
	for _, s := range samples {
		if !s.at.Before(t) {
			return s.u
		}
	}
	return samples[len(samples)-1].u
}

// ctwatchBackfill describes one timed ctwatch backfill.
type ctwatchBackfill struct {
	bin       string
	dir       string // fresh directory for this run
	log       ctwatchLog
	monitor   []string
	rulesFile string
	rule      string
	plan      entryPlan
	size      uint64 // entries in the log
	expected  int    // hits the rule must deliver
	sampleRSS bool
	timeout   time.Duration
	progress  io.Writer
}

// run starts ctwatch, waits until it has committed the whole log and
// delivered every expected hit, and measures it.
func (b ctwatchBackfill) run(ctx context.Context) (*backfillResult, error) {
	recv := newHitReceiver(b.plan, b.rule, b.expected)
	run, err := launchCtwatch(ctx, b.dir, b.bin, ctwatchConfig{
		logs:      []ctwatchLog{b.log},
		monitor:   b.monitor,
		rulesFile: b.rulesFile,
	}, recv)
	if err != nil {
		return nil, err
	}
	defer run.close()
	p := run.proc
	metrics := newMetricsClient(run.listen)

	// /proc is read every 20 ms (it costs ctwatch nothing); /metrics only
	// every scrapeEvery, because a scrape costs ctwatch ~2 ms of CPU. The
	// moment the backfill completed is the last commit time the scrape
	// reports, and the figures are those of the first /proc reading at
	// or after it.
	var recent []usageSample
	var rss []rssSample
	var atEnd usage
	var doneAt time.Time
	var idx uint64
	tick := time.NewTicker(progressPoll)
	defer tick.Stop()
	deadline := time.After(b.timeout)
	var lastScrape time.Time
	lastPrint := time.Now()
	for i := 0; doneAt.IsZero(); i++ {
		select {
		case <-tick.C:
		case <-p.done:
			return nil, fmt.Errorf("ctwatch exited during the backfill (%v); see %s:\n%s", p.err, run.log, tailFile(run.log, 30))
		case <-deadline:
			return nil, fmt.Errorf("ctwatch did not finish the backfill within %v; see %s", b.timeout, run.log)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		u, err := readUsage(p.pid())
		if err != nil {
			return nil, err
		}
		now := time.Now()
		recent = append(recent, usageSample{at: now, u: u})
		if len(recent) > 1000 {
			recent = append(recent[:0], recent[500:]...)
		}
		if b.sampleRSS && i%5 == 0 {
			rss = append(rss, rssSample{at: now, progress: float64(idx) / float64(b.size), rssKB: u.RSSKB})
		}
		if now.Sub(lastScrape) < scrapeEvery {
			continue
		}
		lastScrape = now
		// Before the web server is up an error only means "not yet".
		prog, err := metrics.progress(ctx)
		if err != nil {
			continue
		}
		lp := prog[b.log.name]
		idx = lp.nextIndex
		if idx >= b.size && !lp.lastCommit.IsZero() {
			doneAt = lp.lastCommit
			atEnd = usageAt(recent, doneAt)
			rss = append(rss, rssSample{at: doneAt, progress: 1, rssKB: atEnd.RSSKB})
			slices.SortStableFunc(rss, func(a, b rssSample) int { return a.at.Compare(b.at) })
			break
		}
		if now.Sub(lastPrint) >= 5*time.Second {
			lastPrint = now
			st, _, _ := recv.stats()
			fmt.Fprintf(b.progress, "  ctwatch: %d/%d entries committed, %d/%d hits\n", idx, b.size, st.Distinct, b.expected)
		}
	}
	wall := doneAt.Sub(p.started)

	// The hits may trail the commit: delivery is asynchronous.
	select {
	case <-recv.allIn:
	case <-time.After(2 * time.Minute):
	case <-p.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	st, lastHit, bad := recv.stats()

	// What the scraping costs: CPU over two idle seconds of scraping.
	pollCPU, err := idleScrapeCPU(ctx, p, metrics, 2*time.Second)
	if err != nil {
		return nil, err
	}
	if err := p.stop(30 * time.Second); err != nil {
		fmt.Fprintf(b.progress, "  warning: ctwatch: %v\n", err)
	}
	r := &backfillResult{
		Tool: "ctwatch", Log: b.log.name, Entries: b.size,
		WallSeconds:      wall.Seconds(),
		EntriesPerSecond: float64(b.size) / wall.Seconds(),
		CPUSeconds:       atEnd.CPUSeconds,
		PeakRSSMB:        kbToMB(atEnd.PeakRSSKB),
		HitsExpected:     b.expected,
		HitsFound:        st.Distinct,
		PollCPUPerSecond: pollCPU,
		Webhook:          &st,
		Settings:         map[string]string{"monitor": fmt.Sprint(b.monitor), "rules": b.rulesFile},
	}
	if b.size > 0 {
		r.CPUSecondsPer100k = atEnd.CPUSeconds / float64(b.size) * 100000
	}
	if st.Distinct == b.expected && !lastHit.IsZero() {
		r.HitsSeconds = lastHit.Sub(p.started).Seconds()
	}
	if b.sampleRSS {
		r.RSSByProgress = rssAtQuarters(rss, doneAt)
	}
	if st.Distinct != b.expected {
		fmt.Fprintf(b.progress, "  WARNING: ctwatch delivered %d distinct expected hits, want %d\n", st.Distinct, b.expected)
	}
	for _, s := range bad {
		fmt.Fprintf(b.progress, "  WARNING: webhook: %s\n", s)
	}
	return r, nil
}

// idleScrapeCPU measures ctwatch's CPU per second over d while the harness
// scrapes /metrics as often as during a backfill: an upper bound of what
// the harness adds to the figures.
func idleScrapeCPU(ctx context.Context, p *proc, m metricsClient, d time.Duration) (float64, error) {
	before, err := readUsage(p.pid())
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	tick := time.NewTicker(scrapeEvery)
	defer tick.Stop()
	for time.Since(t0) < d {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		_, _ = m.progress(ctx)
	}
	after, err := readUsage(p.pid())
	if err != nil {
		return 0, err
	}
	return (after.CPUSeconds - before.CPUSeconds) / time.Since(t0).Seconds(), nil
}

// certspotterBackfill describes one timed certspotter backfill.
type certspotterBackfill struct {
	bin      string
	dir      string
	logURL   string
	logKey   string // base64 DER
	domains  []string
	size     uint64
	expected int
	timeout  time.Duration
	progress io.Writer
}

func (b certspotterBackfill) run(ctx context.Context) (*backfillResult, error) {
	stateDir := filepath.Join(b.dir, "state")
	// Its config directory (hooks.d, email file) is empty, so nothing
	// but -stdout notifies.
	configDir := filepath.Join(b.dir, "config")
	for _, d := range []string{stateDir, configDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("mkdir: %w", err)
		}
	}
	list, err := certspotterLogList("ctwatch bench RFC 6962 log", b.logURL, b.logKey, time.Now())
	if err != nil {
		return nil, err
	}
	listPath := filepath.Join(b.dir, "loglist.json")
	watchPath := filepath.Join(b.dir, "watchlist")
	if err := os.WriteFile(listPath, list, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(watchPath, certspotterWatchlist(b.domains), 0o644); err != nil {
		return nil, err
	}
	stdoutPath := filepath.Join(b.dir, "stdout.txt")
	logPath := filepath.Join(b.dir, "certspotter.log")
	// Matching certificates are saved in the state directory (no
	// -no_save): ctwatch stores each hit in JetStream, so certspotter
	// keeps its copy too.
	p, err := startProcEnv("certspotter", b.dir, stdoutPath, logPath, []string{"CERTSPOTTER_CONFIG_DIR=" + configDir},
		b.bin, "-logs", listPath, "-watchlist", watchPath, "-state_dir", stateDir, "-stdout")
	if err != nil {
		return nil, err
	}
	defer p.stop(30 * time.Second)

	// As for ctwatch, the moment of completion is the monitor's own
	// record of it (the state file's modification time), and the figures
	// those of the first /proc reading at or after it.
	var recent []usageSample
	var atEnd usage
	var doneAt time.Time
	tick := time.NewTicker(progressPoll)
	defer tick.Stop()
	deadline := time.After(b.timeout)
	lastPrint := time.Now()
	for doneAt.IsZero() {
		select {
		case <-tick.C:
		case <-p.done:
			return nil, fmt.Errorf("certspotter exited during the backfill (%v); see %s:\n%s", p.err, logPath, tailFile(logPath, 30))
		case <-deadline:
			return nil, fmt.Errorf("certspotter did not finish the backfill within %v; see %s", b.timeout, logPath)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		// The state file first, then /proc: this tick's reading is
		// then at or after the file's last write.
		size, written, stateErr := certspotterStateSize(stateDir, b.logKey)
		u, err := readUsage(p.pid())
		if err != nil {
			return nil, err
		}
		recent = append(recent, usageSample{at: time.Now(), u: u})
		if len(recent) > 1000 {
			recent = append(recent[:0], recent[500:]...)
		}
		if stateErr != nil {
			continue // caught mid-write; the next poll reads it whole
		}
		if size >= b.size {
			doneAt = written
			atEnd = usageAt(recent, doneAt)
			break
		}
		if time.Since(lastPrint) >= 5*time.Second {
			lastPrint = time.Now()
			fmt.Fprintf(b.progress, "  certspotter: %d/%d entries verified (state file, every 10,000)\n", size, b.size)
		}
	}
	wall := doneAt.Sub(p.started)
	if err := p.stop(30 * time.Second); err != nil {
		fmt.Fprintf(b.progress, "  warning: certspotter: %v\n", err)
	}
	found, err := countCertspotterMatches(stdoutPath)
	if err != nil {
		return nil, err
	}
	if found != b.expected {
		fmt.Fprintf(b.progress, "  WARNING: certspotter reported %d matching certificates, expected %d\n", found, b.expected)
	}
	r := &backfillResult{
		Tool: "certspotter", Log: "rfc6962", Entries: b.size,
		WallSeconds:      wall.Seconds(),
		EntriesPerSecond: float64(b.size) / wall.Seconds(),
		CPUSeconds:       atEnd.CPUSeconds,
		PeakRSSMB:        kbToMB(atEnd.PeakRSSKB),
		HitsExpected:     b.expected,
		HitsFound:        found,
		Settings:         map[string]string{"flags": "-stdout, matches saved in the state dir (no -no_save), get-entries batch 1000 (its maximum)"},
	}
	if b.size > 0 {
		r.CPUSecondsPer100k = atEnd.CPUSeconds / float64(b.size) * 100000
	}
	return r, nil
}

// tailFile returns the last n lines of a file, for error messages.
func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "(no output)"
		}
		return err.Error()
	}
	return lastLines(string(data), n)
}
