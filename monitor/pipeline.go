package monitor

import (
	"context"
	"iter"
	"sync"
)

// inOrder runs jobs on n goroutines and yields their results in the order
// of jobs, whatever order they finish in. It is the download half of both
// tailers: a job fetches a batch or tile and decodes and matches it, so
// fetching overlaps and decoding spreads over the cores, while the consumer
// still sees entries in index order, which committing in order needs.
//
// Memory is bounded by n, not by the number of jobs: at most n jobs run,
// and at most 2n results (finished or not) wait for the consumer; the
// producer blocks beyond that. Jobs get a context that ends when ctx does
// or when the consumer stops early; all goroutines have returned by the
// time the iteration ends.
func inOrder[R any](ctx context.Context, n int, jobs iter.Seq[func(context.Context) R]) iter.Seq[R] {
	return func(yield func(R) bool) {
		n = max(1, n)
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer func() {
			cancel()
			wg.Wait()
		}()
		type slot struct {
			run  func(context.Context) R
			done chan R // buffered: a worker never waits on the consumer
		}
		work := make(chan *slot)
		ordered := make(chan *slot, 2*n)
		for range n {
			wg.Go(func() {
				for s := range work {
					s.done <- s.run(ctx)
				}
			})
		}
		wg.Go(func() {
			defer close(ordered)
			defer close(work)
			for run := range jobs {
				s := &slot{run: run, done: make(chan R, 1)}
				select {
				case ordered <- s:
				case <-ctx.Done():
					return
				}
				select {
				case work <- s:
				case <-ctx.Done():
					return
				}
			}
		})
		for s := range ordered {
			select {
			case r := <-s.done:
				// A job that ended because ctx did has no result worth
				// yielding.
				if ctx.Err() != nil || !yield(r) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}
}
