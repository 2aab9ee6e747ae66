//go:build e2e

package e2e

import (
	"encoding/base64"
	"os"
	"path/filepath"
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

	watched, unwatched := fillRestartLog(t, ca, lg, watchedN, unwatchedEvery)
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

	killDuringBackfill(t, bin, cfgPath, logPath, hitsPath, "restart-names", watched, unwatched)
}
