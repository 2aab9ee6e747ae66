package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"golang.org/x/sync/errgroup"
)

// submitted is one certificate a log accepted.
type submitted struct {
	n      int
	sha256 string // hex SHA-256 of the DER submitted: a hit's cert.sha256
	at     time.Time
}

// filler submits generated entries to one log.
type filler struct {
	name     string // for progress lines
	lc       *client.LogClient
	ca       *benchCA
	plan     entryPlan
	shapes   []shape
	workers  int
	progress io.Writer
	// onSubmitted, when set, is called (from many goroutines) for every
	// accepted entry.
	onSubmitted func(submitted)
}

// fill submits entries from..to-1 with f.workers requests in flight,
// printing progress every five seconds.
func (f *filler) fill(ctx context.Context, from, to int) error {
	if from >= to {
		return nil
	}
	start := time.Now()
	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	next := make(chan int)
	g.Go(func() error {
		defer close(next)
		for n := from; n < to; n++ {
			select {
			case next <- n:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	for range f.workers {
		g.Go(func() error {
			for n := range next {
				if err := f.submitOne(gctx, n); err != nil {
					return err
				}
				done.Add(1)
			}
			return nil
		})
	}
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				d := done.Load()
				fmt.Fprintf(f.progress, "  fill %s: %d/%d entries (%.0f/s)\n", f.name, d, to-from, float64(d)/time.Since(start).Seconds())
			case <-stopProgress:
				return
			}
		}
	}()
	err := g.Wait()
	close(stopProgress)
	<-progressDone
	if err != nil {
		return fmt.Errorf("fill %s: %w", f.name, err)
	}
	fmt.Fprintf(f.progress, "  fill %s: %d entries in %.1f s (%.0f/s)\n", f.name, to-from, time.Since(start).Seconds(),
		float64(to-from)/time.Since(start).Seconds())
	return nil
}

// submitOne generates entry n and submits it, retrying what a busy log
// answers (429, 5xx, timeouts, refused connections) with back-off.
func (f *filler) submitOne(ctx context.Context, n int) error {
	e := f.plan.spec(n, f.shapes)
	der, err := f.ca.issue(e, time.Now())
	if err != nil {
		return err
	}
	chain := make([]ct.ASN1Cert, 0, 1+len(f.ca.chain))
	chain = append(chain, ct.ASN1Cert{Data: der})
	for _, c := range f.ca.chain {
		chain = append(chain, ct.ASN1Cert{Data: c})
	}
	const attempts = 10
	for attempt := range attempts {
		actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		if e.precert {
			_, err = f.lc.AddPreChain(actx, chain)
		} else {
			_, err = f.lc.AddChain(actx, chain)
		}
		cancel()
		if err == nil {
			if f.onSubmitted != nil {
				sum := sha256.Sum256(der)
				f.onSubmitted(submitted{n: n, sha256: hex.EncodeToString(sum[:]), at: time.Now()})
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retryable(err) || attempt == attempts-1 {
			break
		}
		select {
		case <-time.After(min(time.Duration(100<<attempt)*time.Millisecond, 5*time.Second)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("entry %d (model %s, precert %v): %w", n, e.shape.file, e.precert, err)
}

// retryable reports whether a submission failure is the log being busy
// rather than refusing the certificate.
func retryable(err error) bool {
	var rsp client.RspError
	if errors.As(err, &rsp) && rsp.StatusCode != 0 {
		return rsp.StatusCode == http.StatusTooManyRequests || rsp.StatusCode >= 500
	}
	return true // a network error or a timeout
}

// treeSizer is a log whose tree head the harness can read.
type treeSizer interface {
	treeSize(ctx context.Context) (uint64, error)
}

// waitTreeSize polls the log's tree head until it covers want entries and
// returns the size it saw.
func waitTreeSize(ctx context.Context, l treeSizer, want uint64, timeout time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	var size uint64
	for {
		s, err := l.treeSize(ctx)
		if err == nil && s >= want {
			return s, nil
		}
		if err != nil {
			lastErr = err
		} else {
			size = s
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if lastErr != nil {
				return size, fmt.Errorf("tree head at %d of %d entries after %v (last error %v): %w", size, want, timeout, lastErr, ctx.Err())
			}
			return size, fmt.Errorf("tree head at %d of %d entries after %v: %w", size, want, timeout, ctx.Err())
		}
	}
}
