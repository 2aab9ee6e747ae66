package alerting

import (
	"fmt"
	"math"
	"testing"
	"time"
)

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	tests := []struct {
		attempt uint64
		lo, hi  time.Duration
		// want is the delay before jitter; the result lies in [want/2, want].
		want time.Duration
	}{
		{1, time.Second, 5 * time.Minute, time.Second},
		{2, time.Second, 5 * time.Minute, 2 * time.Second},
		{4, time.Second, 5 * time.Minute, 8 * time.Second},
		{9, time.Second, 5 * time.Minute, 256 * time.Second},
		{10, time.Second, 5 * time.Minute, 5 * time.Minute},
		{1 << 40, time.Second, 5 * time.Minute, 5 * time.Minute},
		{math.MaxUint64, time.Second, math.MaxInt64, math.MaxInt64},
		{3, time.Second, time.Second, time.Second},
		{5, 1, 1, 1}, // too small to jitter
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d_%s_%s", tc.attempt, tc.lo, tc.hi), func(t *testing.T) {
			for range 50 {
				got := backoff(tc.attempt, tc.lo, tc.hi)
				if got < tc.want/2 || got > tc.want {
					t.Fatalf("backoff = %s, want within [%s, %s]", got, tc.want/2, tc.want)
				}
			}
		})
	}
}

func TestRetryDelayHonoursRetryAfter(t *testing.T) {
	opts := SinkOptions{MinBackoff: time.Second, MaxBackoff: time.Minute}
	tests := []struct {
		name     string
		err      error
		min, max time.Duration
	}{
		{"plain error uses backoff", fmt.Errorf("boom"), 500 * time.Millisecond, time.Second},
		{"wrapped retry-after", fmt.Errorf("status 429: %w", &RetryAfterError{After: 7 * time.Second}), 7 * time.Second, 7 * time.Second},
		{"retry-after beyond max backoff is honoured", &RetryAfterError{After: 10 * time.Minute}, 10 * time.Minute, 10 * time.Minute},
		{"hostile retry-after is capped", &RetryAfterError{After: 1000 * time.Hour}, maxRetryAfter, maxRetryAfter},
		{"zero retry-after uses backoff", &RetryAfterError{}, 500 * time.Millisecond, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := retryDelay(1, tc.err, opts)
			if got < tc.min || got > tc.max {
				t.Errorf("retryDelay = %s, want within [%s, %s]", got, tc.min, tc.max)
			}
		})
	}
}

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name      string
		subject   string
		data      string
		wantID    string
		wantHit   bool
		wantError bool
	}{
		{"hit", "ctwatch.hit.high", `{"id":"h1","rule":"r","severity":"high"}`, "h1", true, false},
		{"event", "ctwatch.event.bad_signature", `{"id":"e1","kind":"bad_signature"}`, "e1", false, false},
		{"hit without id", "ctwatch.hit.high", `{"rule":"r"}`, "", false, true},
		{"not json", "ctwatch.hit.low", `{"id":`, "", false, true},
		{"wrong type", "ctwatch.event.x", `{"id":5}`, "", false, true},
		{"foreign subject", "other.subject", `{"id":"x"}`, "", false, true},
		{"empty body", "ctwatch.hit.high", ``, "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decodeMessage(tc.subject, []byte(tc.data))
			if tc.wantError {
				if err == nil {
					t.Fatalf("decodeMessage accepted %q on %s", tc.data, tc.subject)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.ID() != tc.wantID || (m.Hit != nil) != tc.wantHit || (m.Event != nil) == tc.wantHit {
				t.Errorf("decoded %+v", m)
			}
			if string(m.Data) != tc.data || m.Subject != tc.subject {
				t.Errorf("Data/Subject not kept: %q %q", m.Data, m.Subject)
			}
		})
	}
}
