//go:build e2e

package e2e

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/testca"
	"github.com/ctwatch/ctwatch/monitor/statictest"
)

// TestRestartAfterSIGKILLStatic is TestRestartAfterSIGKILL over a static-ct-api
// log (the in-process monitor/statictest, slowed down): three SIGKILLs while
// ctwatch backfills it, then every watched certificate must have its hit at
// its index, and no unwatched one may.
func TestRestartAfterSIGKILLStatic(t *testing.T) {
	const (
		watchedN       = 5000
		unwatchedEvery = 10 // one unwatched leaf after every 10 watched ones
	)
	work := t.TempDir()
	ca, err := testca.New("ctwatch static restart")
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	lg, err := statictest.New()
	if err != nil {
		t.Fatalf("statictest: %v", err)
	}
	t.Cleanup(lg.Close)

	watched, unwatched := fillRestartLog(t, ca, lg, watchedN, unwatchedEvery)
	lg.Publish()
	// A tile holds 256 entries, so the 5,500 entries are only 22 data
	// tiles: slow responses keep the backfill running for several seconds,
	// long enough to kill ctwatch in the middle of it.
	lg.SetDelay(400 * time.Millisecond)

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
		dataDir: filepath.Join(work, "data"),
		logs: []logEntry{{
			name:          "statictest",
			kind:          "static",
			url:           lg.SubmissionURL(),
			key:           base64.StdEncoding.EncodeToString(lg.PublicKeyDER()),
			monitoringURL: lg.MonitoringURL(),
			origin:        lg.Origin(),
		}},
		rulesFile: rulesPath,
		hitsFile:  hitsPath,
		monitor:   "  poll_interval: 500ms\n  concurrency: 4\n  verify_every: 500\n  rate: 0\n",
	}.write(t, cfgPath)

	killDuringBackfill(t, bin, cfgPath, logPath, hitsPath, "restart-names", watched, unwatched)
}
