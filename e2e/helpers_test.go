//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/testca"
)

// moduleRoot is where `go build ./cmd/ctwatch` and the peers script are
// found: the tests run in <root>/e2e.
const moduleRoot = ".."

// sha256Hex is the lower-case hex SHA-256 of der, as hits carry it.
func sha256Hex(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// buildCtwatch builds the ctwatch binary into a temporary directory and
// returns its path. The Go build cache makes every build after the first
// one a link step.
func buildCtwatch(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ctwatch")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"build", "-o", bin}
	if os.Getenv("CTWATCHTEST_E2E_RACE") == "1" {
		// The daemon under test runs with the race detector: a data race
		// makes it exit 66, which the tests' exit-code checks catch.
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/ctwatch")...)
	cmd.Dir = moduleRoot
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/ctwatch: %v\n%s", err, out)
	}
	t.Logf("built ctwatch in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// tail returns the last n lines of the file at path, for failure reports.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// process is one run of a subprocess whose stdout and stderr go to a log
// file. Its exit is observed once, by the goroutine that waits for it.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result; read only after done is closed
}

// startProcess starts bin with args, appending its output to logPath (so
// several runs of one daemon share one file), and makes sure it is dead when
// the test ends.
func startProcess(t *testing.T, name, logPath, bin string, args ...string) *process {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("open %s: %v", logPath, err)
	}
	fmt.Fprintf(logFile, "===== %s: %s %s\n", name, bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// signal sends sig to the process; it is harmless when the process ended.
func (p *process) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// wait waits up to timeout for the process to end and returns its exit code
// (-1 when a signal ended it).
func (p *process) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v", p.name, timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// kill9 ends the process with SIGKILL, as a crash or an OOM kill would, and
// waits for it to be gone.
func (p *process) kill9(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGKILL)
	p.wait(t, 30*time.Second)
}

// dumpOnFailure logs the tail of each file when the test has failed, so
// that a failing run shows what the subprocesses said.
func dumpOnFailure(t *testing.T, paths ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range paths {
			t.Logf("----- tail of %s:\n%s", p, tail(p, 60))
		}
	})
}

// hitLine is one parsed line of a JSONL sink file.
type hitLine struct {
	line int // 1-based line number, for messages
	hit  event.Hit
}

// readHits parses the JSONL file at path. A missing file has no hits. A last
// line without its newline is being written and is left for the next read;
// any other line that is not a hit is returned as an error, because the sink
// promises one hit per line.
func readHits(path string) ([]hitLine, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read hits: %w", err)
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	var hits []hitLine
	var bad []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var h event.Hit
		if err := json.Unmarshal(line, &h); err != nil {
			bad = append(bad, fmt.Sprintf("line %d: %v: %.200q", n, err, line))
			continue
		}
		hits = append(hits, hitLine{line: n, hit: h})
	}
	if err := sc.Err(); err != nil {
		return hits, fmt.Errorf("scan %s: %w", path, err)
	}
	if len(bad) > 0 {
		return hits, fmt.Errorf("%s has %d lines that are not hits: %s", path, len(bad), strings.Join(bad, "; "))
	}
	return hits, nil
}

// pollUntil calls cond every interval until it reports done, the deadline
// passes (a test failure naming what was awaited and cond's last status), or
// stop is closed (a failure too: the thing producing the condition ended).
func pollUntil(t *testing.T, what string, timeout time.Duration, stop <-chan struct{}, cond func() (done bool, status string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		done, status := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, status)
		}
		select {
		case <-tick.C:
		case <-stop:
			if done, status = cond(); done {
				return
			}
			t.Fatalf("gave up waiting for %s: the process exited (%s)", what, status)
		}
	}
}

// yamlQuote quotes s for a YAML double-quoted scalar.
func yamlQuote(s string) string {
	b, _ := json.Marshal(s) // a JSON string is a valid YAML double-quoted scalar
	return string(b)
}

// rulesYAML is a rule file with one rule watching domain (".x" = x and every
// subdomain) at severity high.
func rulesYAML(rule, domain string) string {
	return fmt.Sprintf(`rules:
  - name: %s
    severity: high
    description: end-to-end test names
    match:
      domains: [%s]
`, rule, yamlQuote(domain))
}

// ctwatchConfig describes the config file the tests write.
type ctwatchConfig struct {
	dataDir   string
	logName   string
	logURL    string
	logKey    string     // base64 DER SPKI
	logs      []logEntry // when set, the logs instead of logName, logURL and logKey
	rulesFile string
	hitsFile  string
	monitor   string // extra lines of the monitor section, indented by 2
}

// logEntry is one entry of the config's logs list, followed from index 0.
type logEntry struct {
	name string
	kind string // "rfc6962" or "static"
	url  string // RFC 6962 base URL, or a static log's submission prefix
	key  string // base64 DER SPKI
	// monitoringURL and origin are for static logs only.
	monitoringURL string
	origin        string
}

// write writes the config to path.
func (c ctwatchConfig) write(t *testing.T, path string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %s\n", yamlQuote(c.dataDir))
	b.WriteString("log_level: info\nlog_format: text\n")
	b.WriteString("log_list: \"\"\n")
	// Several daemons run at once (peers, restarts): any free port each.
	b.WriteString("web:\n  listen: 127.0.0.1:0\n")
	b.WriteString("logs:\n")
	logs := c.logs
	if len(logs) == 0 {
		logs = []logEntry{{name: c.logName, kind: "rfc6962", url: c.logURL, key: c.logKey}}
	}
	for _, l := range logs {
		fmt.Fprintf(&b, "  - name: %s\n    kind: %s\n    url: %s\n    key: %s\n    start: 0\n",
			yamlQuote(l.name), l.kind, yamlQuote(l.url), yamlQuote(l.key))
		if l.monitoringURL != "" {
			fmt.Fprintf(&b, "    monitoring_url: %s\n", yamlQuote(l.monitoringURL))
		}
		if l.origin != "" {
			fmt.Fprintf(&b, "    origin: %s\n", yamlQuote(l.origin))
		}
	}
	b.WriteString("monitor:\n")
	b.WriteString(c.monitor)
	b.WriteString("rules:\n")
	fmt.Fprintf(&b, "  files: [%s]\n", yamlQuote(c.rulesFile))
	b.WriteString("sinks:\n")
	fmt.Fprintf(&b, "  - {name: file, type: jsonl, path: %s}\n", yamlQuote(c.hitsFile))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatalf("write config: %v", err)
	}
}

// startPeer starts a real CT log with `scripts/peers/<script> start dir
// rootsPEM` and returns the KEY=VALUE pairs of dir/env. It stops the log
// when the test ends (after a half-done start too: the scripts' stop is
// idempotent), and when the test fails it shows the tails of logs, files
// in dir named by the caller. A failure to start fails the test.
func startPeer(t *testing.T, script, dir, rootsPEM string, logs ...string) map[string]string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join(moduleRoot, "scripts", "peers", script))
	if err != nil {
		t.Fatalf("script path: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "bash", path, "stop", dir).CombinedOutput()
		if err != nil {
			t.Errorf("%s stop: %v\n%s", script, err, out)
		}
	})
	var logPaths []string
	for _, l := range logs {
		logPaths = append(logPaths, filepath.Join(dir, l))
	}
	dumpOnFailure(t, logPaths...)

	// The output goes to a file, not a pipe: the servers the script leaves
	// running would otherwise hold the pipe open.
	outPath := filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"-start.out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatalf("create %s: %v", outPath, err)
	}
	defer out.Close()
	// Generous: on a fresh machine the script builds the peers (minutes).
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", path, "start", dir, rootsPEM)
	cmd.Stdout = out
	cmd.Stderr = out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s start: %v\n%s", script, err, tail(outPath, 80))
	}
	t.Logf("%s: log ready in %v", script, time.Since(start).Round(time.Millisecond))
	return readEnvFile(t, filepath.Join(dir, "env"))
}

// checkLogHits judges the JSONL hits of a clean run over one log named
// logName at logURL, where index gives each submitted certificate's position
// (by SHA-256): exactly one hit per watched certificate, at its index, with
// the certificate's details; exactly one for the precertificate/final pair;
// none for unwatched ones or anything never submitted.
func checkLogHits(t *testing.T, hits []hitLine, subs []*submitted, index map[string]uint64, logName, logURL string, pre, final *submitted) {
	t.Helper()
	bySHA := map[string]*submitted{}
	for _, s := range subs {
		bySHA[s.sha] = s
	}
	lines := map[string]int{} // cert sha256 -> hit lines
	pairTBS := map[string]int{}
	for _, hl := range hits {
		h := hl.hit
		sub := bySHA[h.Cert.SHA256]
		if sub == nil {
			t.Errorf("line %d: hit for a certificate the test never submitted: %+v", hl.line, h)
			continue
		}
		if !sub.watched {
			t.Errorf("line %d: hit for unwatched certificate %s %v (rule %q)", hl.line, sub.label, sub.names, h.Rule)
			continue
		}
		lines[sub.sha]++
		if h.Rule != "e2e-names" || h.Severity != event.SeverityHigh {
			t.Errorf("line %d: rule %q severity %q, want e2e-names high", hl.line, h.Rule, h.Severity)
		}
		if h.ID == "" || h.Reason == "" {
			t.Errorf("line %d: empty id or reason: %+v", hl.line, h)
		}
		if h.Log == nil {
			t.Errorf("line %d: hit has no log reference", hl.line)
		} else {
			if h.Log.Name != logName || h.Log.URL != logURL {
				t.Errorf("line %d: log %q %q, want %q %q", hl.line, h.Log.Name, h.Log.URL, logName, logURL)
			}
			if want := index[sub.sha]; h.Log.Index != want {
				t.Errorf("line %d: %s at log.index %d, but the log has it at %d", hl.line, sub.label, h.Log.Index, want)
			}
		}
		if h.Cert.TBSSHA256 != sub.tbs {
			t.Errorf("line %d: %s tbs_sha256 %s, want %s", hl.line, sub.label, h.Cert.TBSSHA256, sub.tbs)
		}
		if h.Cert.Precert != sub.precert {
			t.Errorf("line %d: %s precert = %v, want %v", hl.line, sub.label, h.Cert.Precert, sub.precert)
		}
		if got, want := sortedSet(h.Cert.DNSNames), sortedSet(sub.names); !slices.Equal(got, want) {
			t.Errorf("line %d: %s dns_names %v, want %v", hl.line, sub.label, got, want)
		}
		if h.Cert.Subject == "" || h.Cert.Issuer == "" || h.Cert.IssuerSPKISHA256 == "" {
			t.Errorf("line %d: %s lacks subject, issuer or issuer_spki_sha256: %+v", hl.line, sub.label, h.Cert)
		}
		if !h.Cert.NotBefore.Before(h.Cert.NotAfter) {
			t.Errorf("line %d: %s validity %v..%v", hl.line, sub.label, h.Cert.NotBefore, h.Cert.NotAfter)
		}
		if sub == pre || sub == final {
			pairTBS[h.Cert.TBSSHA256]++
		}
	}
	for _, s := range subs {
		switch {
		case !s.watched || s == pre || s == final:
		case lines[s.sha] == 0:
			t.Errorf("no hit for watched certificate %s %v (sha256 %s, index %d)", s.label, s.names, s.sha, index[s.sha])
		case lines[s.sha] > 1:
			t.Errorf("%d hits for %s, want exactly one (a clean run writes no duplicates)", lines[s.sha], s.label)
		}
	}
	if len(pairTBS) != 1 || pairTBS[pre.tbs] != 1 {
		t.Errorf("precert/final pair: hits per tbs_sha256 = %v, want exactly one hit, for %s", pairTBS, pre.tbs)
	}
}

// killDuringBackfill runs ctwatch (bin, with the config at cfgPath, its
// output appended to logPath) over a log that holds the watched and
// unwatched certificates (SHA-256 to log index), kills it with SIGKILL three
// times while it backfills, at about 10, 35 and 60 per cent of the watched
// hits in the JSONL sink at hitsPath, restarting it on the same data
// directory each time, and then lets it finish: every watched certificate
// must end up in the sink at its index with rule rule (nothing lost across
// crashes), nothing unwatched may, and the last run must stop cleanly on
// SIGTERM. Duplicates are allowed by the design (at-least-once delivery) and
// are reported. The log must be slow enough that the backfill outlasts the
// third kill; the test fails, saying so, when it is not.
func killDuringBackfill(t *testing.T, bin, cfgPath, logPath, hitsPath, rule string, watched, unwatched map[string]uint64) {
	t.Helper()
	watchedN := len(watched)
	// distinct counts the watched certificates with at least one hit.
	distinct := func() int {
		hits, _ := readHits(hitsPath) // malformed lines are judged at the end
		seen := map[string]bool{}
		for _, h := range hits {
			if _, ok := watched[h.hit.Cert.SHA256]; ok {
				seen[h.hit.Cert.SHA256] = true
			}
		}
		return len(seen)
	}

	for i, frac := range []float64{0.10, 0.35, 0.60} {
		run := startProcess(t, fmt.Sprintf("ctwatch run #%d", i+1), logPath, bin, "run", "--config", cfgPath)
		want := int(frac * float64(watchedN))
		pollUntil(t, fmt.Sprintf("%d watched hits before SIGKILL #%d", want, i+1), 120*time.Second, run.done,
			func() (bool, string) {
				n := distinct()
				return n >= want, fmt.Sprintf("%d of %d watched certificates have hits", n, watchedN)
			})
		run.kill9(t)
		n := distinct()
		t.Logf("SIGKILL #%d with %d of %d watched certificates in the sink", i+1, n, watchedN)
		if n >= watchedN {
			t.Fatalf("the backfill ended before SIGKILL #%d: the test no longer crashes ctwatch mid-way; slow the log down", i+1)
		}
	}

	run := startProcess(t, "ctwatch run (final)", logPath, bin, "run", "--config", cfgPath)
	pollUntil(t, "hits for every watched certificate", 120*time.Second, run.done, func() (bool, string) {
		n := distinct()
		return n == watchedN, fmt.Sprintf("%d of %d watched certificates have hits", n, watchedN)
	})
	run.signal(t, syscall.SIGTERM)
	if code := run.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("ctwatch run exited with %d after SIGTERM, want 0", code)
	}

	hits, err := readHits(hitsPath)
	if err != nil {
		t.Errorf("after SIGKILLs the JSONL file must still hold one hit per line: %v", err)
	}
	ids := map[string]bool{}
	indexes := map[uint64]bool{}
	var wrong []string // one message per bad line; the first few are shown
	for _, hl := range hits {
		h := hl.hit
		if idx, ok := unwatched[h.Cert.SHA256]; ok {
			wrong = append(wrong, fmt.Sprintf("line %d: hit for unwatched certificate at index %d: %v", hl.line, idx, h.Cert.DNSNames))
			continue
		}
		idx, ok := watched[h.Cert.SHA256]
		if !ok {
			wrong = append(wrong, fmt.Sprintf("line %d: hit for a certificate not in the log: %+v", hl.line, h))
			continue
		}
		if h.Log == nil || h.Log.Index != idx {
			wrong = append(wrong, fmt.Sprintf("line %d: log reference %+v, want index %d", hl.line, h.Log, idx))
			continue
		}
		if h.Rule != rule {
			wrong = append(wrong, fmt.Sprintf("line %d: rule %q, want %q", hl.line, h.Rule, rule))
		}
		ids[h.ID] = true
		indexes[idx] = true
	}
	if len(wrong) > 0 {
		t.Errorf("%d wrong hit lines, the first ones:\n%s", len(wrong), strings.Join(wrong[:min(len(wrong), 10)], "\n"))
	}
	var skipped []uint64
	for _, idx := range watched {
		if !indexes[idx] {
			skipped = append(skipped, idx)
		}
	}
	if len(skipped) > 0 {
		t.Errorf("%d watched log indexes have no hit (lost across a crash), e.g. %v", len(skipped), skipped[:min(len(skipped), 20)])
	}
	if len(ids) != watchedN {
		t.Errorf("%d distinct hit ids, want %d (one per watched certificate)", len(ids), watchedN)
	}
	t.Logf("%d hit lines, %d distinct ids: %d duplicates after 3 SIGKILLs", len(hits), len(ids), len(hits)-len(ids))
}

// leafAdder is what both in-process test logs offer to fill them.
type leafAdder interface {
	AddX509(der []byte, chain [][]byte) uint64
}

// fillRestartLog adds n leaves for watched names (n<i>.restart.example) to
// lg, and after every `every` of them one leaf whose names only resemble
// them, and returns both sets as certificate SHA-256 → log index.
func fillRestartLog(t *testing.T, ca *testca.CA, lg leafAdder, n, every int) (watched, unwatched map[string]uint64) {
	t.Helper()
	chain := ca.Chain()
	watched = make(map[string]uint64, n)
	unwatched = map[string]uint64{}
	for i := 0; i < n; i++ {
		der, err := ca.Leaf(fmt.Sprintf("n%d.restart.example", i))
		if err != nil {
			t.Fatal(err)
		}
		watched[sha256Hex(der)] = lg.AddX509(der, chain)
		if i%every == every-1 {
			der, err := ca.Leaf(fmt.Sprintf("u%d.other.example", i), fmt.Sprintf("restart.example.u%d.test", i))
			if err != nil {
				t.Fatal(err)
			}
			unwatched[sha256Hex(der)] = lg.AddX509(der, chain)
		}
	}
	return watched, unwatched
}
