// Command harness is the benchmark of issue 8: it fills real local CT logs
// (Trillian/CTFE and TesseraCT, started with scripts/peers) with
// certificates shaped like the real ones of testdata/corpus, then measures
// full backfills by ctwatch and, on the RFC 6962 log, by SSLMate's
// certspotter v0.18.0 (entries/s, CPU seconds per 100,000 entries, peak
// RSS), and the latency from an entry's first appearance in a tree head to
// its hit at a webhook. bench/run builds the binaries and runs it; see the
// README's "Benchmark harness" section.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// options are the command line.
type options struct {
	n, staticN             int
	latencyN               int
	latencyRate            float64
	keep                   string
	only                   string
	jsonPath               string
	poll                   time.Duration
	work                   string
	ctwatchBin             string
	certspotterBin         string
	ctfeWorkers            int
	tesseraWorkers         int
	watchEvery             int
	watchDomains           int
	allExampleRules        bool
	timeout                time.Duration
	root                   string
	phaseA, phaseB, phaseC bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("harness", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 20000, "entries in the RFC 6962 log (phase A)")
	fs.IntVar(&o.staticN, "static-n", 100000, "entries in the static-ct-api log (phase B)")
	fs.IntVar(&o.latencyN, "latency-n", 200, "watched certificates submitted to each log in the latency phase (C)")
	fs.Float64Var(&o.latencyRate, "latency-rate", 20, "submissions per second to each log in the latency phase")
	fs.StringVar(&o.keep, "keep", "", "directory of a static log to reuse across runs (filled only when absent or smaller than -static-n)")
	fs.StringVar(&o.only, "only", "", "run one phase only: rfc6962, static or latency")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.DurationVar(&o.poll, "poll", time.Second, "ctwatch's monitor.poll_interval in the latency phase")
	fs.StringVar(&o.work, "work", "", "working directory, kept afterwards (default: a temporary one, removed after a successful run)")
	fs.StringVar(&o.ctwatchBin, "ctwatch", "", "the ctwatch binary to measure (bench/run builds it from this checkout)")
	fs.StringVar(&o.certspotterBin, "certspotter", "", "the certspotter v0.18.0 binary (bench/run builds it into the cache)")
	fs.IntVar(&o.ctfeWorkers, "ctfe-workers", 96, "submissions in flight while filling the RFC 6962 log")
	fs.IntVar(&o.tesseraWorkers, "tessera-workers", 256, "submissions in flight while filling the static log")
	fs.IntVar(&o.watchEvery, "watch-every", 20, "one entry in this many names a watched domain")
	fs.IntVar(&o.watchDomains, "watch-domains", 10, "number of watched domains (w<i>.bench.example)")
	fs.BoolVar(&o.allExampleRules, "all-example-rules", false, "also switch on the example rules configs/rules/example.yaml ships commented out")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "how long one backfill may take before the harness gives up")
	fs.StringVar(&o.root, "root", ".", "the ctwatch checkout (module root)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch o.only {
	case "":
		o.phaseA, o.phaseB, o.phaseC = true, true, true
	case "rfc6962":
		o.phaseA = true
	case "static":
		o.phaseB = true
	case "latency":
		o.phaseC = true
	default:
		return nil, fmt.Errorf("-only %q: want rfc6962, static or latency", o.only)
	}
	var problems []string
	if o.ctwatchBin == "" {
		problems = append(problems, "-ctwatch is required")
	}
	if o.phaseA && o.certspotterBin == "" {
		problems = append(problems, "-certspotter is required for the RFC 6962 phase")
	}
	if o.n < 1 || o.staticN < 1 || o.latencyN < 1 || o.latencyRate <= 0 || o.watchEvery < 1 || o.watchDomains < 1 {
		problems = append(problems, "-n, -static-n, -latency-n, -latency-rate, -watch-every and -watch-domains must be positive")
	}
	if o.poll <= 0 {
		problems = append(problems, "-poll must be positive")
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	var err error
	if o.root, err = filepath.Abs(o.root); err != nil {
		return nil, err
	}
	for _, p := range []*string{&o.ctwatchBin, &o.certspotterBin, &o.keep} {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				return nil, err
			}
		}
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		os.Exit(1)
	}
}
