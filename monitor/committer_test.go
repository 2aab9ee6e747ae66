package monitor_test

import (
	"testing"

	"github.com/ctwatch/ctwatch/monitor/statictest"
)

// When most entries are hits, a window is handed over once it holds about
// 2048 hits (monitor's maxWindowHits) rather than after VerifyEvery entries,
// so the hits held in memory do not grow with VerifyEvery; every hit still
// arrives and the log is committed to its end. Both tailers share the
// committer; each is checked.
func TestCommitWindowsBoundedByHits(t *testing.T) {
	const entries = 6000 // 90% watched: ~5400 hits
	const maxWindowHits = 2048
	opts := fastOpts()
	opts.VerifyEvery = 1 << 20 // never the reason to hand a window over
	tests := []struct {
		name string
		run  func(t *testing.T) (*recorder, []uint64)
	}{
		{"rfc6962", func(t *testing.T) (*recorder, []uint64) {
			f := newFixture(t)
			watched := f.add(t, entries)
			f.log.Publish()
			stop := run(t, f.tailer(t, zero(), opts, nil))
			f.rec.await(t, "catch-up", func() bool { cp := f.rec.checkpoint(); return cp != nil && cp.NextIndex == entries })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			return f.rec, watched
		}},
		{"static", func(t *testing.T) (*recorder, []uint64) {
			f := newStaticFixture(t)
			watched := f.add(t, entries)
			f.log.Publish()
			stop := run(t, f.tailer(t, zero(), opts, nil))
			f.rec.await(t, "catch-up", f.caughtUp(entries))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			return f.rec, watched
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec, watched := tc.run(t)
			checkHits(t, rec, watched)
			rec.mu.Lock()
			most := rec.maxBatch
			rec.mu.Unlock()
			// A window closes after the batch or tile that reaches the
			// limit, so it may exceed it by one batch or tile of hits.
			limit := maxWindowHits + max(opts.BatchSize, statictest.TileWidth)
			if most > limit || most < maxWindowHits {
				t.Errorf("largest publish carried %d hits, want between %d and %d", most, maxWindowHits, limit)
			}
		})
	}
}
