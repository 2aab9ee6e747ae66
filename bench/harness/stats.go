package main

import (
	"math"
	"slices"
	"time"
)

// percentile returns the p-th percentile (0 < p ≤ 100) of d by the
// nearest-rank method: the smallest value with at least p% of the values
// at or below it. It is always one of the observed values, which is what
// a reader of "p99 = 812 ms" expects; 0 for no values.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// rssPoint is the resident memory when the backfill first reached a share
// of the log.
type rssPoint struct {
	Progress  float64 `json:"progress"`    // 0.25, 0.5, 0.75, 1
	RSSMB     float64 `json:"rss_mb"`      // VmRSS at that moment
	PeakSoFar float64 `json:"peak_so_far"` // largest sample up to then
}

// rssSample is one reading of the sampler.
type rssSample struct {
	at       time.Time
	progress float64
	rssKB    uint64
}

// rssAtQuarters picks, for each quarter of progress, the first sample at or
// beyond it and the largest sample up to it, among the samples taken up to
// end (the moment the backfill completed; the sampler runs on until the
// harness notices). A quarter never reached is left out.
func rssAtQuarters(samples []rssSample, end time.Time) []rssPoint {
	var out []rssPoint
	var peak uint64
	q := 0
	quarters := []float64{0.25, 0.5, 0.75, 1}
	for _, s := range samples {
		if s.at.After(end) {
			break
		}
		peak = max(peak, s.rssKB)
		for q < len(quarters) && s.progress >= quarters[q] {
			out = append(out, rssPoint{Progress: quarters[q], RSSMB: kbToMB(s.rssKB), PeakSoFar: kbToMB(peak)})
			q++
		}
	}
	return out
}

// kbToMB converts the kB (KiB) of /proc to MB (10^6 bytes), the unit of
// the memory target.
func kbToMB(kb uint64) float64 { return float64(kb) * 1024 / 1e6 }
