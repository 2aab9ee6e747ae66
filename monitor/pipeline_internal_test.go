package monitor

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// inOrder yields results in job order although jobs finish out of order,
// never runs more than n jobs at once, never lets the producer run more
// than 2n jobs ahead of the consumer, and leaves no goroutine behind when
// the consumer stops early.
func TestInOrder(t *testing.T) {
	for _, tc := range []struct {
		name      string
		n, jobs   int
		stopAfter int // 0: consume everything
	}{
		{"one worker", 1, 50, 0},
		{"four workers", 4, 200, 0},
		{"more workers than jobs", 16, 5, 0},
		{"stop early", 4, 200, 17},
		{"no jobs", 4, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var running, maxRunning, started atomic.Int64
			consumed := 0
			jobs := func(yield func(func(context.Context) int) bool) {
				for i := range tc.jobs {
					job := func(ctx context.Context) int {
						started.Add(1)
						r := running.Add(1)
						for {
							m := maxRunning.Load()
							if r <= m || maxRunning.CompareAndSwap(m, r) {
								break
							}
						}
						// Jobs finish in a scrambled order.
						select {
						case <-time.After(time.Duration(rand.IntN(200)) * time.Microsecond):
						case <-ctx.Done():
						}
						running.Add(-1)
						return i
					}
					if !yield(job) {
						return
					}
				}
			}
			var got []int
			for r := range inOrder(context.Background(), tc.n, jobs) {
				got = append(got, r)
				consumed++
				// The producer may be at most 2n slots ahead of the
				// consumer: n running and the rest finished, waiting.
				if ahead := started.Load() - int64(consumed); ahead > int64(2*tc.n) {
					t.Fatalf("%d jobs started beyond the %d consumed, want at most %d", ahead, consumed, 2*tc.n)
				}
				if tc.stopAfter > 0 && consumed == tc.stopAfter {
					break
				}
			}
			want := tc.jobs
			if tc.stopAfter > 0 {
				want = tc.stopAfter
			}
			if len(got) != want {
				t.Fatalf("got %d results, want %d", len(got), want)
			}
			for i, r := range got {
				if r != i {
					t.Fatalf("result %d is job %d's: out of order", i, r)
				}
			}
			if m := maxRunning.Load(); m > int64(tc.n) {
				t.Errorf("%d jobs ran at once, want at most %d", m, tc.n)
			}
			if r := running.Load(); r != 0 {
				t.Errorf("%d jobs still running after the iteration ended", r)
			}
		})
	}
}

// Cancelling the context ends the iteration and the jobs' contexts.
func TestInOrderCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	jobs := func(yield func(func(context.Context) int) bool) {
		for i := 0; ; i++ {
			if !yield(func(ctx context.Context) int { <-ctx.Done(); return i }) {
				return
			}
		}
	}
	done := make(chan int)
	go func() {
		n := 0
		for range inOrder(ctx, 3, jobs) {
			n++
		}
		done <- n
	}()
	cancel()
	select {
	case n := <-done:
		if n != 0 {
			t.Errorf("yielded %d results of jobs that only end when cancelled", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("iteration did not end after its context was cancelled")
	}
}
