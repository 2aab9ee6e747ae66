package monitor_test

import (
	"context"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctwatch/ctwatch/internal/natstest"
	"github.com/ctwatch/ctwatch/monitor"
)

// checkpointBucket starts a real nats-server and returns a fresh
// checkpoint bucket on it; each call to open gives another process's view
// of it (its own KVCheckpoints).
func checkpointBucket(t *testing.T) (open func() *monitor.KVCheckpoints) {
	t.Helper()
	srv := natstest.Start(t, nil)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "checkpoints", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	return func() *monitor.KVCheckpoints { return monitor.NewKVCheckpoints(kv) }
}

func cpAt(next uint64) *monitor.Checkpoint {
	return &monitor.Checkpoint{TreeSize: 1000, NextIndex: next, RootHash: []byte{1}}
}

func loadNext(t *testing.T, s *monitor.KVCheckpoints, key string) int64 {
	t.Helper()
	cp, err := s.Load(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if cp == nil {
		return -1
	}
	return int64(cp.NextIndex)
}

// A previous owner that keeps running after a new owner fenced the log
// can neither move the checkpoint forwards nor backwards; the new owner
// resumes from what was stored and goes on.
func TestKVCheckpointsFencing(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name string
		// before is what the old owner saved before the take-over; 0 for
		// nothing (the log had no checkpoint).
		before []uint64
		// stale is what the old owner tries to save afterwards.
		stale uint64
	}{
		{"forwards", []uint64{10, 20}, 30},
		{"backwards", []uint64{10, 20}, 5},
		{"no checkpoint yet", nil, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			open := checkpointBucket(t)
			old, next, observer := open(), open(), open()
			const key = "log"
			if got := loadNext(t, old, key); got != -1 {
				t.Fatalf("fresh bucket: next index %d", got)
			}
			for _, n := range tt.before {
				if err := old.Save(ctx, key, cpAt(n)); err != nil {
					t.Fatalf("owner saving %d: %v", n, err)
				}
			}
			want := int64(-1)
			if len(tt.before) > 0 {
				want = int64(tt.before[len(tt.before)-1])
			}

			if err := next.Fence(ctx, key, 2); err != nil {
				t.Fatal(err)
			}
			if got := loadNext(t, next, key); got != want {
				t.Fatalf("new owner resumes at %d, want %d", got, want)
			}
			err := old.Save(ctx, key, cpAt(tt.stale))
			if !errors.Is(err, monitor.ErrFenced) {
				t.Fatalf("stale owner's save: %v, want ErrFenced", err)
			}
			if got := loadNext(t, observer, key); got != want {
				t.Fatalf("after the stale save the checkpoint is at %d, want %d", got, want)
			}
			if err := next.Save(ctx, key, cpAt(uint64(want+100))); err != nil {
				t.Fatalf("new owner saving: %v", err)
			}
			if err := next.Save(ctx, key, cpAt(uint64(want+200))); err != nil {
				t.Fatalf("new owner saving again: %v", err)
			}
			if got := loadNext(t, observer, key); got != want+200 {
				t.Fatalf("checkpoint at %d, want %d", got, want+200)
			}
			// Still fenced: one failure does not let the old owner in.
			if err := old.Save(ctx, key, cpAt(tt.stale)); !errors.Is(err, monitor.ErrFenced) {
				t.Fatalf("stale owner's second save: %v, want ErrFenced", err)
			}
		})
	}
}

// A store that never loaded a log cannot overwrite its checkpoint.
func TestKVCheckpointsSaveWithoutLoad(t *testing.T) {
	open := checkpointBucket(t)
	a, b := open(), open()
	if _, err := a.Load(t.Context(), "log"); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(t.Context(), "log", cpAt(5)); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(t.Context(), "log", cpAt(1)); !errors.Is(err, monitor.ErrFenced) {
		t.Fatalf("blind save: %v, want ErrFenced", err)
	}
}

// A tailer whose log was taken over stops with ErrFenced at its next
// commit, and the checkpoint it could not save never moves backwards.
func TestTailerStopsWhenFenced(t *testing.T) {
	f := newFixture(t)
	f.add(t, 100)
	f.log.Publish()
	open := checkpointBucket(t)
	mine := open()
	l := &monitor.Log{Name: "test", Kind: monitor.KindRFC6962, URL: f.log.URL(), Key: f.log.PublicKeyDER(), Start: zero()}
	tl, err := monitor.NewRFC6962Tailer(l, monitor.TailerConfig{
		Fetch: fastOpts(), Matcher: indexMatcher{}, Publisher: f.rec, Checkpoints: mine, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	key := hex.EncodeToString(l.ID[:])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- tl.Run(ctx) }()
	observer := open()
	deadline := time.Now().Add(10 * time.Second)
	for loadNext(t, observer, key) != 100 {
		if time.Now().After(deadline) {
			t.Fatal("tailer did not reach 100")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Another process takes the log over.
	if err := open().Fence(t.Context(), key, 2); err != nil {
		t.Fatal(err)
	}
	f.add(t, 50)
	f.log.Publish()
	select {
	case err := <-errc:
		if !errors.Is(err, monitor.ErrFenced) {
			t.Fatalf("tailer returned %v, want ErrFenced", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fenced tailer still running")
	}
	if got := loadNext(t, observer, key); got != 100 {
		t.Fatalf("checkpoint at %d after the fenced tailer stopped, want 100", got)
	}
}
