package lease_test

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctwatch/ctwatch/internal/lease"
	"github.com/ctwatch/ctwatch/internal/natstest"
)

// ttl is short so that take-overs happen within a test's patience.
const ttl = 600 * time.Millisecond

func startServer(t *testing.T) string {
	t.Helper()
	srv := natstest.Start(t, nil)
	return srv.ClientURL()
}

// work records which process works on which key, and fails the test when
// two work on one key at once: what leases exist to prevent.
type work struct {
	t  *testing.T
	mu sync.Mutex
	by map[string]string // key → process
}

func (w *work) snapshot() map[string][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]string{}
	for k, p := range w.by {
		out[p] = append(out[p], k)
	}
	for _, ks := range out {
		sort.Strings(ks)
	}
	return out
}

// holder is one process's side of work.
type holder struct {
	w    *work
	name string
}

func (h *holder) Acquired(_ context.Context, key string, _ uint64) error {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	if other, ok := h.w.by[key]; ok && other != h.name {
		h.w.t.Errorf("%s took %s while %s still works on it", h.name, key, other)
	}
	h.w.by[key] = h.name
	return nil
}

func (h *holder) Lost(key string) {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	if h.w.by[key] == h.name {
		delete(h.w.by, key)
	}
}

// crash forgets h's work without giving anything back, as a killed
// process would.
func (h *holder) crash() {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	for k, p := range h.w.by {
		if p == h.name {
			delete(h.w.by, k)
		}
	}
}

type proc struct {
	h    *holder
	m    *lease.Manager
	stop context.CancelFunc
	done chan struct{}
}

func startProc(t *testing.T, url string, w *work, name string, keys []string) *proc {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	h := &holder{w: w, name: name}
	m, err := lease.Open(t.Context(), js, lease.Config{TTL: ttl, Owner: name, Logger: slog.New(slog.DiscardHandler)}, h)
	if err != nil {
		t.Fatal(err)
	}
	m.SetKeys(keys)
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{h: h, m: m, stop: cancel, done: make(chan struct{})}
	m.Round(ctx)
	go func() { defer close(p.done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-p.done })
	return p
}

// shutdown stops p cleanly: work first, then the leases are given back.
func (p *proc) shutdown() {
	p.stop()
	<-p.done
	for _, k := range p.m.Held() {
		p.h.Lost(k)
	}
	p.m.Release(context.Background())
}

// await waits until every key is worked on and the spread over procs is
// as cond wants.
func await(t *testing.T, w *work, keys []string, what string, cond func(map[string][]string) bool) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := w.snapshot()
		n := 0
		for _, ks := range s {
			n += len(ks)
		}
		if n == len(keys) && cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: work is %v", what, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func spread(names ...string) func(map[string][]string) bool {
	return func(s map[string][]string) bool {
		return len(s) == len(names)
	}
}

func maxEach(n int) func(map[string][]string) bool {
	return func(s map[string][]string) bool {
		for _, ks := range s {
			if len(ks) > n {
				return false
			}
		}
		return true
	}
}

func TestLeasesSpreadFailOverAndRebalance(t *testing.T) {
	url := startServer(t)
	w := &work{t: t, by: map[string]string{}}
	var keys []string
	for i := range 6 {
		keys = append(keys, fmt.Sprintf("log%02d", i))
	}
	a := startProc(t, url, w, "a", keys)
	await(t, w, keys, "alone, a takes every log", spread("a"))
	b := startProc(t, url, w, "b", keys)
	c := startProc(t, url, w, "c", keys)
	s := await(t, w, keys, "three processes share six logs 2/2/2", func(s map[string][]string) bool {
		return len(s) == 3 && maxEach(2)(s)
	})
	t.Logf("spread: %v", s)

	// b crashes: its renewals stop, nothing is given back. a and c take
	// its logs over once its leases and heartbeat expire.
	crashed := time.Now()
	b.stop()
	<-b.done
	b.h.crash()
	s = await(t, w, keys, "b's logs taken over", func(s map[string][]string) bool {
		return len(s) == 2 && s["b"] == nil && maxEach(3)(s)
	})
	t.Logf("after b crashed, in %v: %v", time.Since(crashed).Round(time.Millisecond), s)

	// Two processes join: six logs over four processes is 2/2/1/1, every
	// process working.
	startProc(t, url, w, "d", keys)
	startProc(t, url, w, "e", keys)
	s = await(t, w, keys, "rebalanced 2/2/1/1 over a, c, d, e", func(s map[string][]string) bool {
		return len(s) == 4 && maxEach(2)(s)
	})
	t.Logf("after d and e joined: %v", s)

	// A clean shutdown gives the logs back at once.
	c.shutdown()
	a.shutdown()
	s = await(t, w, keys, "d and e hold everything after a and c left", func(s map[string][]string) bool {
		return s["a"] == nil && s["c"] == nil
	})
	t.Logf("after a and c left: %v", s)
}

// Fewer keys than processes: each key is held once, nobody holds two.
func TestLeasesMoreProcessesThanKeys(t *testing.T) {
	url := startServer(t)
	w := &work{t: t, by: map[string]string{}}
	keys := []string{"x", "y"}
	for _, n := range []string{"p", "q", "r"} {
		startProc(t, url, w, n, keys)
	}
	await(t, w, keys, "two keys over three processes", maxEach(1))
}

// A key leaving the list is given back and its work stopped.
func TestLeasesFollowTheKeys(t *testing.T) {
	url := startServer(t)
	w := &work{t: t, by: map[string]string{}}
	p := startProc(t, url, w, "p", []string{"x", "y"})
	await(t, w, []string{"x", "y"}, "both keys", spread("p"))
	p.m.SetKeys([]string{"y", "z"})
	await(t, w, []string{"y", "z"}, "x left, z came", func(s map[string][]string) bool {
		return fmt.Sprint(s["p"]) == "[y z]"
	})
}

// The shares of every live process add up to the number of items, and
// differ by at most one: the spread is as even as it can be.
func TestFairShare(t *testing.T) {
	for _, tc := range []struct{ n, live int }{
		{6, 1}, {6, 3}, {6, 4}, {6, 5}, {6, 6}, {6, 7}, {0, 3}, {30, 4}, {31, 7}, {1, 2},
	} {
		sum, lo, hi := 0, tc.n, 0
		for idx := range tc.live {
			s := lease.FairShare(tc.n, tc.live, idx)
			sum += s
			lo, hi = min(lo, s), max(hi, s)
		}
		if sum != tc.n || hi-lo > 1 {
			t.Errorf("%d items over %d processes: shares add up to %d (want %d), range %d..%d (want at most one apart)", tc.n, tc.live, sum, tc.n, lo, hi)
		}
		if got, want := lease.FairShare(tc.n, tc.live, -1), (tc.n+tc.live-1)/tc.live; got != want {
			t.Errorf("%d items over %d processes, not yet listed: share %d, want the larger %d", tc.n, tc.live, got, want)
		}
	}
}
