package main

import (
	"reflect"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1, unsorted
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value is every percentile", ms(7), 99, 7 * time.Millisecond},
		{"median of odd count", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"median of even count is the lower middle (nearest rank)", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p100 is the max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99 of ten values is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"tiny p is the min", ms(3, 1, 2), 0.1, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.in, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
			}
		})
	}
}

func TestPercentileLeavesInputAlone(t *testing.T) {
	in := []time.Duration{3, 1, 2}
	percentile(in, 50)
	if !reflect.DeepEqual(in, []time.Duration{3, 1, 2}) {
		t.Errorf("input reordered to %v", in)
	}
}

func TestRSSAtQuarters(t *testing.T) {
	t0 := time.Unix(1795687595, 0)
	tests := []struct {
		name    string
		samples []rssSample
		want    []rssPoint
	}{
		{"none", nil, nil},
		{
			"each quarter takes the first sample at or past it, peak so far",
			[]rssSample{{t0, 0.1, 1000}, {t0, 0.3, 3000}, {t0, 0.4, 5000}, {t0, 0.55, 2000}, {t0, 0.8, 4000}, {t0, 1, 4500}},
			[]rssPoint{
				{Progress: 0.25, RSSMB: kbToMB(3000), PeakSoFar: kbToMB(3000)},
				{Progress: 0.5, RSSMB: kbToMB(2000), PeakSoFar: kbToMB(5000)},
				{Progress: 0.75, RSSMB: kbToMB(4000), PeakSoFar: kbToMB(5000)},
				{Progress: 1, RSSMB: kbToMB(4500), PeakSoFar: kbToMB(5000)},
			},
		},
		{
			"one jump past several quarters fills them all",
			[]rssSample{{t0, 0, 100}, {t0, 0.9, 200}},
			[]rssPoint{
				{Progress: 0.25, RSSMB: kbToMB(200), PeakSoFar: kbToMB(200)},
				{Progress: 0.5, RSSMB: kbToMB(200), PeakSoFar: kbToMB(200)},
				{Progress: 0.75, RSSMB: kbToMB(200), PeakSoFar: kbToMB(200)},
			},
		},
		{
			"samples after the end are left out",
			[]rssSample{{t0, 0.3, 100}, {t0.Add(time.Second), 1, 900}},
			[]rssPoint{{Progress: 0.25, RSSMB: kbToMB(100), PeakSoFar: kbToMB(100)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rssAtQuarters(tt.samples, t0); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("rssAtQuarters = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestKBToMB(t *testing.T) {
	// /proc counts KiB; the limit is in MB of 10^6 bytes, which
	// falls between 146,484 and 146,485 KiB.
	if got := kbToMB(1); got != 0.001024 {
		t.Errorf("kbToMB(1) = %v, want 0.001024", got)
	}
	if below, above := kbToMB(146484), kbToMB(146485); !(below < 150 && above > 150) {
		t.Errorf("kbToMB(146484) = %v, kbToMB(146485) = %v: want them either side of 150", below, above)
	}
}

func TestUsageAt(t *testing.T) {
	t0 := time.Unix(1795687595, 0)
	samples := []usageSample{
		{at: t0, u: usage{CPUSeconds: 1}},
		{at: t0.Add(20 * time.Millisecond), u: usage{CPUSeconds: 2}},
		{at: t0.Add(40 * time.Millisecond), u: usage{CPUSeconds: 3}},
	}
	tests := []struct {
		name string
		at   time.Time
		want float64
	}{
		{"before every sample: the first", t0.Add(-time.Second), 1},
		{"exactly at a sample", t0.Add(20 * time.Millisecond), 2},
		{"between two: the later", t0.Add(21 * time.Millisecond), 3},
		{"after every sample: the last", t0.Add(time.Second), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := usageAt(samples, tt.at).CPUSeconds; got != tt.want {
				t.Errorf("usageAt = %v CPU s, want %v", got, tt.want)
			}
		})
	}
}
