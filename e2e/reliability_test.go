//go:build e2e && reliability

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctwatch/ctwatch/internal/testca"
)

// reliabilityPlan sizes one run of TestReliability.
type reliabilityPlan struct {
	name         string
	staticN      int // entries submitted to the TesseraCT log
	rfcN         int // entries submitted to the Trillian + CTFE log
	kills        int // SIGKILLs of ctwatch processes during the backfill
	natsRestarts int // SIGKILL + start again of one NATS node
	// Monitor settings that pace each process's backfill so that it lasts
	// long enough for the kills to land in the middle of it.
	rate      string // requests per second per log
	batchSize int    // entries per get-entries request (RFC 6962)
}

// reliabilityPlans are the variants CTWATCHTEST_RELIABILITY chooses from:
// short is what scripts/test runs (bounded to a few minutes on two cores),
// long runs longer for a release or a suspicion.
func reliabilityPlans() map[string]reliabilityPlan {
	return map[string]reliabilityPlan{
		"short": {name: "short", staticN: 12000, rfcN: 8000, kills: 6, natsRestarts: 1, rate: "4", batchSize: 64},
		"long":  {name: "long", staticN: 36000, rfcN: 24000, kills: 20, natsRestarts: 3, rate: "4", batchSize: 64},
	}
}

const (
	relProcs        = 3              // ctwatch processes
	relNATSNodes    = 3              // nats-server cluster nodes
	relUnwatchedOne = 4              // every 4th entry is unwatched
	relRule         = "reliability"  // the rule's name
	relDomain       = ".rel.example" // what the rule watches
)

// TestReliability is issue 7's reliability suite: a three-node nats-server
// cluster, three `ctwatch run` processes sharing it, a real TesseraCT log and
// a real Trillian + CTFE log holding at least 20,000 entries between them
// (watched and unwatched names), and a webhook receiver that records every
// delivery. While the processes backfill the logs it kills them with SIGKILL
// at random moments and starts them again, and kills one NATS node and
// starts it again on the same store directory; any process that exits on
// its own is restarted, as systemd would, and counted. At the end every
// watched certificate must have been delivered to the webhook (nothing
// lost), nothing else may have been, and the deliveries of the same hit id
// more than once (duplicates, allowed by at-least-once delivery) are
// reported with the kills, restarts and run time.
//
// The moments are drawn from a seeded RNG: the seed is logged, and
// CTWATCHTEST_SEED=<seed> repeats a run's schedule. CTWATCHTEST_RELIABILITY
// picks the plan: short (default) or long.
func TestReliability(t *testing.T) {
	if os.Getenv("CTWATCHTEST_E2E_SKIP_RFC6962") == "1" {
		t.Skip("CTWATCHTEST_E2E_SKIP_RFC6962=1: not starting the real RFC 6962 log")
	}
	planName := os.Getenv("CTWATCHTEST_RELIABILITY")
	if planName == "" {
		planName = "short"
	}
	plan, ok := reliabilityPlans()[planName]
	if !ok {
		t.Fatalf("CTWATCHTEST_RELIABILITY=%q: want short or long", planName)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CTWATCHTEST_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CTWATCHTEST_SEED=%q: %v", s, err)
		}
	}
	t.Logf("reliability plan %s, CTWATCHTEST_SEED=%d", plan.name, seed)
	rng := rand.New(rand.NewPCG(seed, 0x63747761746368)) // "ctwatch"
	began := time.Now()

	work := t.TempDir()
	ca, err := testca.New("ctwatch reliability")
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	rootsPath := filepath.Join(work, "roots.pem")
	if err := os.WriteFile(rootsPath, ca.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	static := startStatic(t, filepath.Join(work, "static"), rootsPath)
	trillian := startRFC6962(t, filepath.Join(work, "trillian"), rootsPath)
	cluster := startNATSCluster(t, filepath.Join(work, "nats"))
	bin := buildCtwatch(t)

	// Fill both logs at once, each with its own pool of submitters.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	fillStart := time.Now()
	fills := []*relFill{
		{log: "tessera", prefix: "s", n: plan.staticN, workers: 256,
			lc: newLogClient(t, static.submissionURL, static.key)},
		{log: "trillian", prefix: "r", n: plan.rfcN, workers: 64,
			lc: newLogClient(t, trillian.url, trillian.key)},
	}
	var wg sync.WaitGroup
	for _, f := range fills {
		wg.Go(func() { f.run(ctx, ca) })
	}
	wg.Wait()
	for _, f := range fills {
		if f.err != nil {
			t.Fatalf("fill %s: %v", f.log, f.err)
		}
		t.Logf("filled %s: %d entries (%d watched) in %v (%.0f/s)", f.log, f.n, len(f.watched),
			f.took.Round(time.Millisecond), float64(f.n)/f.took.Seconds())
	}
	waitCheckpoint(t, ctx, static, uint64(plan.staticN))
	waitTreeSize(t, ctx, fills[1].lc, uint64(plan.rfcN))
	t.Logf("both logs hold their %d entries after %v", plan.staticN+plan.rfcN, time.Since(fillStart).Round(time.Millisecond))

	// What the webhook may receive: certificate SHA-256 → the log it is in.
	watched := map[string]string{}
	unwatched := map[string]string{}
	for _, f := range fills {
		for sha := range f.watched {
			watched[sha] = f.log
		}
		for sha := range f.unwatched {
			unwatched[sha] = f.log
		}
	}

	recv := newHitReceiver()
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)

	rulesPath := filepath.Join(work, "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(rulesYAML(relRule, relDomain)), 0o644); err != nil {
		t.Fatal(err)
	}
	procs := make([]*relProc, relProcs)
	for i := range procs {
		dir := filepath.Join(work, fmt.Sprintf("ctwatch-%d", i+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := &relProc{name: fmt.Sprintf("ctwatch-%d", i+1), bin: bin,
			cfg: filepath.Join(dir, "ctwatch.yaml"), log: filepath.Join(dir, "ctwatch.log")}
		writeRelConfig(t, p.cfg, relConfig{
			dataDir:   filepath.Join(dir, "data"),
			natsURL:   cluster.url(),
			logs:      []logEntry{static.logEntry("tessera"), {name: "trillian", kind: "rfc6962", url: trillian.url, key: trillian.keyB64}},
			rulesFile: rulesPath,
			webhook:   srv.URL + "/hook",
			plan:      plan,
		})
		dumpOnFailure(t, p.log)
		procs[i] = p
	}

	// The schedule: each kill and NATS restart happens once the webhook has
	// received a drawn fraction of the watched certificates, so all of them
	// land during the backfill however fast the machine is.
	var sched []relEvent
	for range plan.kills {
		sched = append(sched, relEvent{at: 0.03 + 0.85*rng.Float64(), proc: rng.IntN(relProcs)})
	}
	for range plan.natsRestarts {
		sched = append(sched, relEvent{at: 0.10 + 0.70*rng.Float64(), nats: true, node: rng.IntN(relNATSNodes),
			down: time.Duration(500+rng.IntN(2500)) * time.Millisecond})
	}
	sort.Slice(sched, func(i, j int) bool { return sched[i].at < sched[j].at })
	for i := range sched {
		if !sched[i].nats {
			sched[i].down = time.Duration(rng.IntN(2000)) * time.Millisecond
		}
	}

	backfill := time.Now()
	for _, p := range procs {
		p.start(t)
	}
	st := runSchedule(t, procs, cluster, recv, watched, sched)
	backfillTook := time.Since(backfill)

	// Stop every process cleanly: a race report or a crash on the way
	// out fails the run. Only then are deliveries final.
	for _, p := range procs {
		p.run.signal(t, syscall.SIGTERM)
	}
	for _, p := range procs {
		if code := p.run.wait(t, 90*time.Second); code != 0 {
			t.Errorf("%s exited with %d after SIGTERM, want 0", p.name, code)
		}
	}
	for _, p := range procs {
		if data, err := os.ReadFile(p.log); err == nil && strings.Contains(string(data), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race; see %s", p.name, p.log)
		}
	}

	res := recv.judge(watched, unwatched)
	for _, msg := range res.wrong[:min(len(res.wrong), 10)] {
		t.Error(msg)
	}
	if len(res.wrong) > 10 {
		t.Errorf("... and %d more wrong deliveries", len(res.wrong)-10)
	}
	if len(res.lost) > 0 {
		t.Errorf("%d of %d watched certificates were never delivered (lost), e.g. %v",
			len(res.lost), len(watched), res.lost[:min(len(res.lost), 5)])
	}
	t.Logf("RESULT plan=%s seed=%d entries=%d watched=%d kills=%d nats_restarts=%d supervisor_restarts=%d "+
		"hits_delivered=%d distinct_ids=%d lost=%d duplicates=%d events=%d backfill=%v total=%v",
		plan.name, seed, plan.staticN+plan.rfcN, len(watched), st.kills, st.natsRestarts, st.supervisorRestarts,
		res.deliveries, res.distinct, len(res.lost), res.deliveries-res.distinct, res.events,
		backfillTook.Round(time.Second), time.Since(began).Round(time.Second))
}

// relEvent is one fault of the schedule, due once the webhook holds the
// fraction at of the watched certificates.
type relEvent struct {
	at   float64
	nats bool          // restart a NATS node rather than kill a process
	proc int           // the ctwatch process to kill
	node int           // the NATS node to restart
	down time.Duration // how long it stays down
}

// relStats counts what runSchedule did.
type relStats struct {
	kills, natsRestarts, supervisorRestarts int
}

// runSchedule supervises the processes until the webhook has received every
// watched certificate: it carries out the schedule, starts killed processes
// and nodes again after their down time, and restarts any process that
// exited on its own (a supervisor's job), failing the test on a race report
// (exit 66) or when deliveries stall.
func runSchedule(t *testing.T, procs []*relProc, cluster *natsCluster, recv *hitReceiver, watched map[string]string, sched []relEvent) relStats {
	t.Helper()
	var st relStats
	total := len(watched)
	restartAt := make([]time.Time, len(procs)) // zero: running (or to be checked)
	var nodeBack time.Time
	nodeDown := -1
	const stallLimit = 150 * time.Second
	lastN, lastProgress := -1, time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		n := recv.watchedSeen(watched)
		now := time.Now()
		if n != lastN {
			lastN, lastProgress = n, now
		}
		if n >= total && len(sched) == 0 && nodeDown < 0 {
			return st
		}
		if now.Sub(lastProgress) > stallLimit {
			t.Fatalf("no new watched certificate delivered for %v: %d of %d (%d faults still scheduled)",
				stallLimit, n, total, len(sched))
		}
		if n >= total && len(sched) > 0 {
			t.Fatalf("the backfill finished before %d scheduled faults: slow it down (plan rate)", len(sched))
		}

		// Supervisor: processes that exited without being killed by us.
		for i, p := range procs {
			if !restartAt[i].IsZero() {
				if now.After(restartAt[i]) {
					restartAt[i] = time.Time{}
					p.start(t)
				}
				continue
			}
			select {
			case <-p.run.done:
				code := p.run.cmd.ProcessState.ExitCode()
				if code == 66 {
					t.Fatalf("%s exited with 66: the race detector found a data race (see %s)", p.name, p.log)
				}
				st.supervisorRestarts++
				t.Logf("%s exited on its own with %d (%d of %d delivered); restarting it; it said:\n%s",
					p.name, code, n, total, tail(p.log, 6))
				restartAt[i] = now.Add(time.Second) // like systemd's RestartSec
			default:
			}
		}
		if nodeDown >= 0 && now.After(nodeBack) {
			cluster.start(t, nodeDown)
			t.Logf("NATS node-%d started again", nodeDown+1)
			nodeDown = -1
		}

		if len(sched) > 0 && float64(n) >= sched[0].at*float64(total) {
			ev := sched[0]
			switch {
			case ev.nats && nodeDown >= 0:
				// One node down at a time: wait for the other to return.
			case ev.nats:
				sched = sched[1:]
				cluster.kill(t, ev.node)
				st.natsRestarts++
				nodeDown, nodeBack = ev.node, now.Add(ev.down)
				t.Logf("SIGKILL NATS node-%d at %d of %d delivered; down for %v", ev.node+1, n, total, ev.down)
			case !restartAt[ev.proc].IsZero():
				// Already down: let it come back first.
			default:
				sched = sched[1:]
				p := procs[ev.proc]
				p.run.kill9(t)
				if code := p.run.cmd.ProcessState.ExitCode(); code == 66 {
					t.Fatalf("%s had exited with 66 (data race) before the kill", p.name)
				}
				st.kills++
				restartAt[ev.proc] = now.Add(ev.down + time.Millisecond)
				t.Logf("SIGKILL %s at %d of %d delivered; restart in %v", p.name, n, total, ev.down)
			}
		}
		<-tick.C
	}
}

// relProc is one of the ctwatch processes, started again after each death
// with the same config and data directory; its output of every run goes to
// one log file.
type relProc struct {
	name, bin, cfg, log string
	runs                int
	run                 *process
}

func (p *relProc) start(t *testing.T) {
	t.Helper()
	p.runs++
	p.run = startProcess(t, fmt.Sprintf("%s run #%d", p.name, p.runs), p.log, p.bin, "run", "--config", p.cfg)
}

// relConfig is what differs between the reliability suite's config files.
type relConfig struct {
	dataDir   string
	natsURL   string
	logs      []logEntry
	rulesFile string
	webhook   string
	plan      reliabilityPlan
}

// writeRelConfig writes a ctwatch config for one of the processes.
func writeRelConfig(t *testing.T, path string, c relConfig) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %s\n", yamlQuote(c.dataDir))
	b.WriteString("log_level: info\nlog_format: text\nlog_list: \"\"\n")
	b.WriteString("web:\n  listen: 127.0.0.1:0\n")
	// Three copies of the stream and buckets: a NATS node's restart then
	// leaves two, and JetStream keeps answering.
	fmt.Fprintf(&b, "nats:\n  url: %s\n  replicas: %d\n", yamlQuote(c.natsURL), relNATSNodes)
	b.WriteString("logs:\n")
	for _, l := range c.logs {
		fmt.Fprintf(&b, "  - name: %s\n    kind: %s\n    url: %s\n    key: %s\n    start: 0\n",
			yamlQuote(l.name), l.kind, yamlQuote(l.url), yamlQuote(l.key))
		if l.monitoringURL != "" {
			fmt.Fprintf(&b, "    monitoring_url: %s\n    origin: %s\n", yamlQuote(l.monitoringURL), yamlQuote(l.origin))
		}
	}
	fmt.Fprintf(&b, "monitor:\n  poll_interval: 1s\n  batch_size: %d\n  concurrency: 2\n  verify_every: 2000\n  rate: %s\n",
		c.plan.batchSize, c.plan.rate)
	fmt.Fprintf(&b, "rules:\n  files: [%s]\n", yamlQuote(c.rulesFile))
	fmt.Fprintf(&b, "sinks:\n  - {name: hook, type: webhook, url: %s, timeout: 5s}\n", yamlQuote(c.webhook))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatalf("write config: %v", err)
	}
}

// relFill submits n fresh certificates to one log with `workers` concurrent
// add-chain calls: after every relUnwatchedOne-1 watched names
// (<prefix><i>.rel.example) one unwatched one whose names only resemble
// them. Its results are read after run returns.
type relFill struct {
	log     string
	prefix  string
	n       int
	workers int
	lc      *client.LogClient

	watched, unwatched map[string]bool // certificate SHA-256
	took               time.Duration
	err                error
}

func (f *relFill) run(ctx context.Context, ca *testca.CA) {
	start := time.Now()
	f.watched, f.unwatched = map[string]bool{}, map[string]bool{}
	var mu sync.Mutex
	jobs := make(chan int)
	errs := make(chan error, f.workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range f.workers {
		wg.Go(func() {
			for i := range jobs {
				isWatched := i%relUnwatchedOne != relUnwatchedOne-1
				names := []string{fmt.Sprintf("%s%d%s", f.prefix, i, relDomain)}
				if !isWatched {
					names = []string{fmt.Sprintf("%s%d.other.example", f.prefix, i), fmt.Sprintf("rel.example.%s%d.test", f.prefix, i)}
				}
				der, err := ca.Leaf(names...)
				if err == nil {
					err = addChainRetrying(ctx, f.lc, der, ca.Chain())
				}
				if err != nil {
					errs <- fmt.Errorf("entry %d %v: %w", i, names, err)
					cancel()
					return
				}
				mu.Lock()
				if isWatched {
					f.watched[sha256Hex(der)] = true
				} else {
					f.unwatched[sha256Hex(der)] = true
				}
				mu.Unlock()
			}
		})
	}
feed:
	for i := range f.n {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	f.err = <-errs
	if f.err == nil && ctx.Err() != nil {
		f.err = ctx.Err()
	}
	f.took = time.Since(start)
}

// addChainRetrying submits der with add-chain, trying again a few times when
// the log pushes back (TesseraCT answers 429 or 503 while its sequencing
// queue is full; a loaded Trillian may time out).
func addChainRetrying(ctx context.Context, lc *client.LogClient, der []byte, chain [][]byte) error {
	certs := []ct.ASN1Cert{{Data: der}}
	for _, c := range chain {
		certs = append(certs, ct.ASN1Cert{Data: c})
	}
	var err error
	for attempt := range 8 {
		if _, err = lc.AddChain(ctx, certs); err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("add-chain, 8 attempts: %w", err)
}

// hitReceiver is the webhook endpoint: it records every delivery. Safe for
// concurrent use (the HTTP server calls it from many goroutines).
type hitReceiver struct {
	mu     sync.Mutex
	byID   map[string]int      // hit id → deliveries
	shaOf  map[string][]string // hit id → certificate SHA-256 of each delivery
	logOf  map[string]string   // certificate SHA-256 → log named by its (last) hit
	shas   map[string]bool     // certificate SHA-256 with at least one hit
	events int                 // log events (not hits) received
	bad    []string
}

func newHitReceiver() *hitReceiver {
	return &hitReceiver{byID: map[string]int{}, shaOf: map[string][]string{}, logOf: map[string]string{}, shas: map[string]bool{}}
}

func (r *hitReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var doc struct {
		ID   string `json:"id"`
		Kind string `json:"kind"`
		Rule string `json:"rule"`
		Log  *struct {
			Name string `json:"name"`
		} `json:"log"`
		Cert *struct {
			SHA256 string `json:"sha256"`
		} `json:"cert"`
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch err := json.Unmarshal(body, &doc); {
	case err != nil:
		r.bad = append(r.bad, fmt.Sprintf("delivery that is not JSON: %v: %.200q", err, body))
	case doc.Cert == nil || doc.Cert.SHA256 == "":
		// A log event or a digest: the sink has no group, so it is an
		// event (falling_behind and the like), counted but not judged.
		r.events++
	case doc.ID == "" || doc.Rule != relRule || doc.Log == nil:
		r.bad = append(r.bad, fmt.Sprintf("hit without id, log or rule %q: %.300s", relRule, body))
	default:
		r.byID[doc.ID]++
		r.shaOf[doc.ID] = append(r.shaOf[doc.ID], doc.Cert.SHA256)
		r.logOf[doc.Cert.SHA256] = doc.Log.Name
		r.shas[doc.Cert.SHA256] = true
	}
	w.WriteHeader(http.StatusNoContent)
}

// watchedSeen counts the watched certificates delivered at least once.
func (r *hitReceiver) watchedSeen(watched map[string]string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for sha := range r.shas {
		if _, ok := watched[sha]; ok {
			n++
		}
	}
	return n
}

// relResult is the webhook's record judged against what the logs hold.
type relResult struct {
	deliveries, distinct, events int
	lost                         []string // watched certificate SHA-256 never delivered
	wrong                        []string // deliveries that should not have happened
}

func (r *hitReceiver) judge(watched, unwatched map[string]string) relResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := relResult{distinct: len(r.byID), events: r.events, wrong: append([]string(nil), r.bad...)}
	shaIDs := map[string]map[string]bool{}
	for id, n := range r.byID {
		res.deliveries += n
		for _, sha := range r.shaOf[id] {
			if shaIDs[sha] == nil {
				shaIDs[sha] = map[string]bool{}
			}
			shaIDs[sha][id] = true
		}
		if len(dedupe(r.shaOf[id])) != 1 {
			res.wrong = append(res.wrong, fmt.Sprintf("hit id %s delivered for different certificates %v", id, dedupe(r.shaOf[id])))
		}
	}
	for sha, ids := range shaIDs {
		switch log, isWatched := watched[sha]; {
		case unwatched[sha] != "":
			res.wrong = append(res.wrong, fmt.Sprintf("hit for unwatched certificate %s in %s", sha, unwatched[sha]))
		case !isWatched:
			res.wrong = append(res.wrong, fmt.Sprintf("hit for certificate %s that the test never submitted", sha))
		case r.logOf[sha] != log:
			res.wrong = append(res.wrong, fmt.Sprintf("hit for %s names log %q, but the certificate is in %q", sha, r.logOf[sha], log))
		case len(ids) != 1:
			res.wrong = append(res.wrong, fmt.Sprintf("certificate %s delivered under %d ids, want one", sha, len(ids)))
		}
	}
	for sha := range watched {
		if !r.shas[sha] {
			res.lost = append(res.lost, sha)
		}
	}
	sort.Strings(res.lost)
	return res
}

// dedupe returns the distinct strings of s.
func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// natsCluster is a three-node nats-server cluster with JetStream on
// 127.0.0.1, run from the binary scripts/peers/nats.sh builds. Each node
// keeps its ports and store directory across restarts.
type natsCluster struct {
	bin   string
	dir   string
	ports []int // client ports
	cport []int // cluster (route) ports
	nodes []*process
}

// startNATSCluster starts the cluster under dir and returns once JetStream
// answers (a meta leader is elected); the nodes die with the test.
func startNATSCluster(t *testing.T, dir string) *natsCluster {
	t.Helper()
	script, err := filepath.Abs(filepath.Join(moduleRoot, "scripts", "peers", "nats.sh"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, "bin")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nats.sh bin: %v\n%s", err, stderr.String())
	}
	c := &natsCluster{bin: strings.TrimSpace(string(out)), dir: dir, nodes: make([]*process, relNATSNodes)}
	ports := freePorts(t, 2*relNATSNodes)
	c.ports, c.cport = ports[:relNATSNodes], ports[relNATSNodes:]
	for i := range relNATSNodes {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("node-%d", i+1)), 0o755); err != nil {
			t.Fatal(err)
		}
		dumpOnFailure(t, c.logPath(i))
		c.start(t, i)
	}
	start := time.Now()
	pollUntil(t, "JetStream on the NATS cluster", 60*time.Second, nil, func() (bool, string) {
		nc, err := nats.Connect(c.url(), nats.Timeout(2*time.Second))
		if err != nil {
			return false, err.Error()
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false, err.Error()
		}
		actx, acancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer acancel()
		if _, err := js.AccountInfo(actx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	t.Logf("NATS cluster of %d nodes up, JetStream ready in %v", relNATSNodes, time.Since(start).Round(time.Millisecond))
	return c
}

func (c *natsCluster) logPath(i int) string {
	return filepath.Join(c.dir, fmt.Sprintf("node-%d.log", i+1))
}

// url is the comma-separated client URL list of every node.
func (c *natsCluster) url() string {
	var urls []string
	for _, p := range c.ports {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	return strings.Join(urls, ",")
}

// start starts node i (again) on its ports and store directory.
func (c *natsCluster) start(t *testing.T, i int) {
	t.Helper()
	var routes []string
	for _, p := range c.cport {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	c.nodes[i] = startProcess(t, fmt.Sprintf("nats node-%d", i+1), c.logPath(i), c.bin,
		"-a", "127.0.0.1", "-p", strconv.Itoa(c.ports[i]), "-js",
		"-sd", filepath.Join(c.dir, fmt.Sprintf("node-%d", i+1)),
		"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", c.cport[i]),
		"--routes", strings.Join(routes, ","),
		"--cluster_name", "ctwatch", "-n", fmt.Sprintf("node-%d", i+1))
}

// kill ends node i with SIGKILL, as a crash or a power cut would.
func (c *natsCluster) kill(t *testing.T, i int) {
	t.Helper()
	c.nodes[i].kill9(t)
}

// freePorts returns n distinct ports of 127.0.0.1 that nothing listens on,
// below the kernel's ephemeral range: a node restarted on its old port must
// not find it taken by some outgoing connection's local port meanwhile.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	lo, hi := 10000, 32768
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > lo+1000 {
				hi = v
			}
		}
	}
	seen := map[int]bool{}
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatalf("found only %d free ports", len(ports))
		}
		p := lo + rand.IntN(hi-lo)
		if seen[p] {
			continue
		}
		seen[p] = true
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			t.Fatalf("listen: %v", err)
		}
		l.Close()
		ports = append(ports, p)
	}
	return ports
}
