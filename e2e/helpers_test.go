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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/event"
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
	logKey    string // base64 DER SPKI
	rulesFile string
	hitsFile  string
	monitor   string // extra lines of the monitor section, indented by 2
}

// write writes the config to path.
func (c ctwatchConfig) write(t *testing.T, path string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %s\n", yamlQuote(c.dataDir))
	b.WriteString("log_level: info\nlog_format: text\n")
	b.WriteString("log_list: \"\"\n")
	b.WriteString("logs:\n")
	fmt.Fprintf(&b, "  - name: %s\n    kind: rfc6962\n    url: %s\n    key: %s\n    start: 0\n",
		yamlQuote(c.logName), yamlQuote(c.logURL), yamlQuote(c.logKey))
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
