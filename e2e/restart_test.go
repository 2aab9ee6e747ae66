//go:build e2e

package e2e

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/testca"
	"github.com/ctwatch/ctwatch/monitor/ctlogtest"
)

// TestRestartAfterSIGKILL kills ctwatch with SIGKILL three times while it
// backfills a log, restarting it each time on the same data directory, and
// then lets it finish: every watched certificate must end up in the JSONL
// sink at its log index (nothing lost across crashes), nothing unwatched
// may, and the last run must stop cleanly on SIGTERM. Duplicates are allowed
// by the design (at-least-once delivery) and are reported.
func TestRestartAfterSIGKILL(t *testing.T) {
	const (
		watchedN       = 5000
		unwatchedEvery = 10 // one unwatched leaf after every 10 watched ones
	)
	work := t.TempDir()
	ca, err := testca.New("ctwatch restart")
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	lg, err := ctlogtest.New()
	if err != nil {
		t.Fatalf("ctlogtest: %v", err)
	}
	t.Cleanup(lg.Close)

	chain := ca.Chain()
	watched := make(map[string]uint64, watchedN) // cert sha256 -> log index
	unwatched := map[string]uint64{}
	for i := 0; i < watchedN; i++ {
		der, err := ca.Leaf(fmt.Sprintf("n%d.restart.example", i))
		if err != nil {
			t.Fatal(err)
		}
		watched[sha256Hex(der)] = lg.AddX509(der, chain)
		if i%unwatchedEvery == unwatchedEvery-1 {
			der, err := ca.Leaf(fmt.Sprintf("u%d.other.example", i), fmt.Sprintf("restart.example.u%d.test", i))
			if err != nil {
				t.Fatal(err)
			}
			unwatched[sha256Hex(der)] = lg.AddX509(der, chain)
		}
	}
	lg.Publish()
	// Short, slow pages keep the backfill running for several seconds, long
	// enough to kill ctwatch in the middle of it.
	lg.SetPageSize(10)
	lg.SetDelay(50 * time.Millisecond)

	bin := buildCtwatch(t)
	cfgPath := filepath.Join(work, "ctwatch.yaml")
	rulesPath := filepath.Join(work, "rules.yaml")
	hitsPath := filepath.Join(work, "hits.jsonl")
	logPath := filepath.Join(work, "ctwatch.log")
	dumpOnFailure(t, logPath)
	if err := os.WriteFile(rulesPath, []byte(rulesYAML("restart-names", ".restart.example")), 0o644); err != nil {
		t.Fatal(err)
	}
	ctwatchConfig{
		dataDir:   filepath.Join(work, "data"),
		logName:   "ctlogtest",
		logURL:    lg.URL(),
		logKey:    base64.StdEncoding.EncodeToString(lg.PublicKeyDER()),
		rulesFile: rulesPath,
		hitsFile:  hitsPath,
		monitor:   "  poll_interval: 500ms\n  batch_size: 100\n  concurrency: 4\n  verify_every: 500\n  rate: 0\n",
	}.write(t, cfgPath)

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
		want := int(frac * watchedN)
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
		if h.Rule != "restart-names" {
			wrong = append(wrong, fmt.Sprintf("line %d: rule %q, want restart-names", hl.line, h.Rule))
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
