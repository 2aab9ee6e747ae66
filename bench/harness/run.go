package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/certificate-transparency-go/client"
)

// bench is one harness run: what every phase shares.
type bench struct {
	o       *options
	out     io.Writer
	work    string
	peers   *peers
	shapes  []shape
	ca      *benchCA
	roots   string // the bench root, PEM, for the logs' roots files
	domains []string
	plan    entryPlan // backfill entries
	rules   string    // rule file
	rule    string    // the rule whose hits are expected
	rfcEnv  map[string]string
	res     *results
}

func run(ctx context.Context, o *options, out io.Writer) (err error) {
	work := o.work
	if work == "" {
		if work, err = os.MkdirTemp("", "ctwatch-bench-"); err != nil {
			return fmt.Errorf("work dir: %w", err)
		}
	} else if work, err = filepath.Abs(work); err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	b := &bench{o: o, out: out, work: work, peers: &peers{root: o.root}}
	defer func() {
		// Stop the logs first: their files are in work.
		if serr := b.peers.stopAll(); serr != nil && err == nil {
			err = serr
		}
		switch {
		case err != nil:
			fmt.Fprintf(out, "the run's files are left in %s\n", work)
		case o.work == "":
			if rerr := os.RemoveAll(work); rerr != nil {
				fmt.Fprintf(out, "warning: remove %s: %v\n", work, rerr)
			}
		}
	}()
	if err := b.setup(); err != nil {
		return err
	}
	// A, then C while the RFC 6962 log is still up, then B with the
	// RFC 6962 log stopped, so that the static backfill has the
	// machine to itself too.
	if o.phaseA {
		if err := b.phaseA(ctx); err != nil {
			return fmt.Errorf("phase A (RFC 6962 backfill): %w", err)
		}
	}
	if o.phaseC {
		if err := b.phaseC(ctx); err != nil {
			return fmt.Errorf("phase C (latency): %w", err)
		}
	}
	if err := b.peers.stopAll(); err != nil {
		return err
	}
	if o.phaseB {
		if err := b.phaseB(ctx); err != nil {
			return fmt.Errorf("phase B (static backfill): %w", err)
		}
	}
	b.res.computeTargets(o.poll)
	b.res.printTable(out)
	if o.jsonPath != "" {
		if err := b.res.writeJSON(o.jsonPath); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nresults written to %s\n", o.jsonPath)
	}
	return nil
}

// setup loads the corpus, makes the CA and the rule file.
func (b *bench) setup() error {
	o := b.o
	b.res = &results{Started: time.Now(), Machine: readMachine(), Command: o.command(), Settings: o.settings()}
	var err error
	if b.shapes, err = loadCorpus(filepath.Join(o.root, "testdata", "corpus", "certs")); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "corpus: %d real certificates as models; generating keys and the bench CA\n", len(b.shapes))
	if b.ca, err = newBenchCA(kindsOf(b.shapes)); err != nil {
		return err
	}
	b.roots = filepath.Join(b.work, "roots.pem")
	if err := os.WriteFile(b.roots, b.ca.rootPEM(), 0o644); err != nil {
		return err
	}
	b.domains = benchDomains(o.watchDomains)
	b.plan = entryPlan{prefix: "b", watchEvery: o.watchEvery, precertEvery: 3, domains: b.domains}
	example, err := os.ReadFile(filepath.Join(o.root, "configs", "rules", "example.yaml"))
	if err != nil {
		return fmt.Errorf("example rules: %w", err)
	}
	builtin, err := builtinRuleNames(filepath.Join(o.root, "configs", "rules", "builtin.yaml"))
	if err != nil {
		return err
	}
	rules, rule, err := benchRules(example, b.domains, o.allExampleRules, builtin)
	if err != nil {
		return err
	}
	b.rules, b.rule = filepath.Join(b.work, "rules.yaml"), rule
	return os.WriteFile(b.rules, rules, 0o644)
}

func (o *options) command() string {
	c := fmt.Sprintf("bench/run -n %d -static-n %d -latency-n %d -latency-rate %g -poll %s", o.n, o.staticN, o.latencyN, o.latencyRate, o.poll)
	if o.only != "" {
		c += " -only " + o.only
	}
	if o.keep != "" {
		c += " -keep " + o.keep
	}
	if o.allExampleRules {
		c += " -all-example-rules"
	}
	return c
}

func (o *options) settings() map[string]string {
	rules := "configs/rules/example.yaml as shipped (its active rules) + built-in rules"
	if o.allExampleRules {
		rules = "configs/rules/example.yaml with its commented-out rules switched on + built-in rules"
	}
	return map[string]string{
		"poll":          o.poll.String(),
		"rules":         rules,
		"watch":         fmt.Sprintf("1 entry in %d under %d domains w<i>.bench.example", o.watchEvery, o.watchDomains),
		"precerts":      "1 entry in 3",
		"fill_workers":  fmt.Sprintf("CTFE %d, TesseraCT %d", o.ctfeWorkers, o.tesseraWorkers),
		"ctwatch_bin":   o.ctwatchBin,
		"certspotter":   o.certspotterBin,
		"ctwatch_phase": "rate: 0 (no cap); RFC 6962 batch_size: 1000 (certspotter's get-entries size, CTFE's maximum); other monitor settings default",
	}
}

// phaseA fills the RFC 6962 log and backfills it with ctwatch, then with
// certspotter.
func (b *bench) phaseA(ctx context.Context) error {
	o := b.o
	fmt.Fprintf(b.out, "\n== Phase A: RFC 6962 log (Trillian + CTFE), %d entries\n", o.n)
	env, lc, err := b.startRFC6962(ctx)
	if err != nil {
		return err
	}
	f := &filler{name: "rfc6962", lc: lc, ca: b.ca, plan: b.plan, shapes: b.shapes, workers: o.ctfeWorkers, progress: b.out}
	if err := f.fill(ctx, 0, o.n); err != nil {
		return err
	}
	size, err := waitTreeSize(ctx, rfcLog{lc}, uint64(o.n), 10*time.Minute)
	if err != nil {
		return err
	}
	if size != uint64(o.n) {
		fmt.Fprintf(b.out, "  note: the log holds %d entries for %d submissions\n", size, o.n)
	}
	expected := b.plan.watchedBelow(o.n)
	fmt.Fprintf(b.out, "  log ready: %d entries, %d of them watched\n", size, expected)

	fmt.Fprintf(b.out, "  ctwatch backfill...\n")
	cw, err := ctwatchBackfill{
		bin: o.ctwatchBin, dir: filepath.Join(b.work, "a-ctwatch"),
		log:       ctwatchLog{name: "bench-rfc6962", kind: "rfc6962", url: env["CT_URL"], key: env["CT_KEY"], fromStart: true},
		monitor:   []string{"rate: 0", "batch_size: 1000"},
		rulesFile: b.rules, rule: b.rule, plan: b.plan,
		size: size, expected: expected, timeout: o.timeout, progress: b.out,
	}.run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "  ctwatch: %.0f entries/s, %.2f CPU s/100k, peak RSS %.1f MB\n", cw.EntriesPerSecond, cw.CPUSecondsPer100k, cw.PeakRSSMB)
	fmt.Fprintf(b.out, "  certspotter backfill...\n")
	cs, err := certspotterBackfill{
		bin: o.certspotterBin, dir: filepath.Join(b.work, "a-certspotter"),
		logURL: env["CT_URL"], logKey: env["CT_KEY"], domains: b.domains,
		size: size, expected: expected, timeout: o.timeout, progress: b.out,
	}.run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "  certspotter: %.0f entries/s, %.2f CPU s/100k, peak RSS %.1f MB\n", cs.EntriesPerSecond, cs.CPUSecondsPer100k, cs.PeakRSSMB)
	b.res.RFC6962 = []*backfillResult{cw, cs}
	b.res.Ratios = &ratios{
		EntriesPerSecond:  cw.EntriesPerSecond / nonZero(cs.EntriesPerSecond),
		CPUSecondsPer100k: cw.CPUSecondsPer100k / nonZero(cs.CPUSecondsPer100k),
		PeakRSS:           cw.PeakRSSMB / nonZero(cs.PeakRSSMB),
	}
	return nil
}

// startRFC6962 starts the RFC 6962 log once per run and returns its env
// and a client.
func (b *bench) startRFC6962(ctx context.Context) (map[string]string, *client.LogClient, error) {
	if b.rfcEnv == nil {
		fmt.Fprintf(b.out, "  starting Trillian + CTFE (scripts/peers/rfc6962.sh)\n")
		env, err := b.peers.start(ctx, "rfc6962.sh", filepath.Join(b.work, "rfc6962"), b.roots)
		if err != nil {
			return nil, nil, err
		}
		b.rfcEnv = env
	}
	lc, err := newLogClient(b.rfcEnv["CT_URL"], b.o.ctfeWorkers)
	if err != nil {
		return nil, nil, err
	}
	return b.rfcEnv, lc, nil
}

// phaseB fills (or reuses) the static log and backfills it with ctwatch.
func (b *bench) phaseB(ctx context.Context) error {
	o := b.o
	fmt.Fprintf(b.out, "\n== Phase B: static-ct-api log (TesseraCT), %d entries\n", o.staticN)
	dir := o.keep
	if dir == "" {
		dir = filepath.Join(b.work, "static")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	log := ctwatchLog{name: "bench-static", kind: "static", fromStart: true}
	var entries, size uint64
	meta, err := b.reusable(dir)
	if err != nil {
		return err
	}
	if meta != nil {
		p, url, err := serveStatic(ctx, o.root, b.work, filepath.Join(dir, "storage"))
		if err != nil {
			return err
		}
		defer p.stop(10 * time.Second)
		log.url, log.key, log.origin, log.monitoringURL = meta.SubmissionURL, meta.Key, meta.Origin, url
		entries = meta.Entries
		if size, err = newStaticLog(url).treeSize(ctx); err != nil {
			return err
		}
		fmt.Fprintf(b.out, "  reusing the log kept in %s: %d entries, served by staticserve\n", dir, size)
	} else {
		fmt.Fprintf(b.out, "  starting TesseraCT (scripts/peers/static.sh) in %s\n", dir)
		env, err := b.peers.start(ctx, "static.sh", dir, b.roots)
		if err != nil {
			return err
		}
		lc, err := newLogClient(env["CT_SUBMISSION_URL"], o.tesseraWorkers)
		if err != nil {
			return err
		}
		f := &filler{name: "static", lc: lc, ca: b.ca, plan: b.plan, shapes: b.shapes, workers: o.tesseraWorkers, progress: b.out}
		if err := f.fill(ctx, 0, o.staticN); err != nil {
			return err
		}
		entries = uint64(o.staticN)
		if size, err = waitTreeSize(ctx, newStaticLog(env["CT_MONITORING_URL"]), entries, 10*time.Minute); err != nil {
			return err
		}
		if o.keep != "" {
			if err := writeStaticMeta(dir, staticMeta{
				Entries: entries, Key: env["CT_KEY"], Origin: env["CT_ORIGIN"], SubmissionURL: env["CT_SUBMISSION_URL"],
				WatchEvery: o.watchEvery, Domains: b.domains,
			}); err != nil {
				return err
			}
		}
		log.url, log.key, log.origin, log.monitoringURL = env["CT_SUBMISSION_URL"], env["CT_KEY"], env["CT_ORIGIN"], env["CT_MONITORING_URL"]
	}
	if size != entries {
		fmt.Fprintf(b.out, "  note: the log holds %d entries for %d submissions\n", size, entries)
	}
	expected := b.plan.watchedBelow(int(entries))
	fmt.Fprintf(b.out, "  ctwatch backfill of %d entries...\n", size)
	r, err := ctwatchBackfill{
		bin: o.ctwatchBin, dir: filepath.Join(b.work, "b-ctwatch"),
		log: log, monitor: []string{"rate: 0"},
		rulesFile: b.rules, rule: b.rule, plan: b.plan,
		size: size, expected: expected, sampleRSS: true, timeout: o.timeout, progress: b.out,
	}.run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "  ctwatch: %.0f entries/s, %.2f CPU s/100k, peak RSS %.1f MB\n", r.EntriesPerSecond, r.CPUSecondsPer100k, r.PeakRSSMB)
	b.res.Static = r
	return b.peers.stopAll()
}

// reusable returns the description of the static log kept in dir when it
// can serve this run (-keep, filled with at least -static-n entries by the
// same plan); nil when it must be filled.
func (b *bench) reusable(dir string) (*staticMeta, error) {
	if b.o.keep == "" {
		return nil, nil
	}
	meta, err := readStaticMeta(dir)
	if err != nil || meta == nil {
		return nil, err
	}
	cp, err := os.ReadFile(filepath.Join(dir, "storage", "checkpoint"))
	if err != nil {
		return nil, nil
	}
	size, err := checkpointSize(cp)
	if err != nil || size < meta.Entries {
		return nil, nil
	}
	if meta.Entries < uint64(b.o.staticN) || meta.WatchEvery != b.o.watchEvery || !slices.Equal(meta.Domains, b.domains) {
		return nil, nil
	}
	return meta, nil
}

// phaseC measures latency on both logs followed by one ctwatch.
func (b *bench) phaseC(ctx context.Context) error {
	o := b.o
	fmt.Fprintf(b.out, "\n== Phase C: latency, %d certificates per log at %g/s, poll %s\n", o.latencyN, o.latencyRate, o.poll)
	prefill := entryPlan{prefix: "p", precertEvery: 3, domains: b.domains}
	fresh := b.rfcEnv == nil
	rfcEnv, rlc, err := b.startRFC6962(ctx)
	if err != nil {
		return err
	}
	rf := &filler{name: "rfc6962", lc: rlc, ca: b.ca, shapes: b.shapes, workers: 8, progress: io.Discard}
	if fresh {
		// ctwatch follows from the end: give it a non-empty tree.
		f := *rf
		f.plan = prefill
		if err := f.fill(ctx, 0, 10); err != nil {
			return err
		}
		if _, err := waitTreeSize(ctx, rfcLog{rlc}, 10, 2*time.Minute); err != nil {
			return err
		}
	}
	dir := filepath.Join(b.work, "static-latency")
	fmt.Fprintf(b.out, "  starting a second TesseraCT (scripts/peers/static.sh) for this phase\n")
	senv, err := b.peers.start(ctx, "static.sh", dir, b.roots)
	if err != nil {
		return err
	}
	slc, err := newLogClient(senv["CT_SUBMISSION_URL"], 8)
	if err != nil {
		return err
	}
	sl := newStaticLog(senv["CT_MONITORING_URL"])
	sf := &filler{name: "static", lc: slc, ca: b.ca, shapes: b.shapes, workers: 8, progress: io.Discard}
	pf := *sf
	pf.plan = prefill
	if err := pf.fill(ctx, 0, 10); err != nil {
		return err
	}
	if _, err := waitTreeSize(ctx, sl, 10, 2*time.Minute); err != nil {
		return err
	}
	res, err := latencyPhase{
		bin: o.ctwatchBin, dir: filepath.Join(b.work, "c-ctwatch"),
		logs: []latencyLog{
			{label: "rfc6962", reader: rfcLog{rlc}, filler: rf,
				config: ctwatchLog{name: "bench-rfc6962", kind: "rfc6962", url: rfcEnv["CT_URL"], key: rfcEnv["CT_KEY"]}},
			{label: "static", reader: sl, filler: sf,
				config: ctwatchLog{name: "bench-static", kind: "static", url: senv["CT_SUBMISSION_URL"], key: senv["CT_KEY"],
					monitoringURL: senv["CT_MONITORING_URL"], origin: senv["CT_ORIGIN"]}},
		},
		plan:      entryPlan{prefix: "l", watchEvery: 1, precertEvery: 3, domains: b.domains},
		rule:      b.rule,
		rulesFile: b.rules,
		poll:      o.poll, n: o.latencyN, rate: o.latencyRate, timeout: o.timeout, progress: b.out,
	}.run(ctx)
	if err != nil {
		return err
	}
	for _, r := range res {
		fmt.Fprintf(b.out, "  %s: p50 %.0f ms, p99 %.0f ms, max %.0f ms, %d/%d delivered\n", r.Log, r.P50MS, r.P99MS, r.MaxMS, r.Delivered, r.Submitted)
	}
	b.res.Latency = res
	return b.peers.stop("static.sh", dir)
}
