package alerting_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/jsonl"
	"github.com/ctwatch/ctwatch/alerting/webhook"
	"github.com/ctwatch/ctwatch/event"
)

// readIDs returns the "id" of every line of a JSONL file, failing the test
// on a line that is not a hit.
func readIDs(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var h event.Hit
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			t.Fatalf("line %d of %s is not a hit: %v: %q", len(out)+1, path, err, sc.Text())
		}
		out = append(out, h.ID)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func newJSONLDispatcher(t *testing.T, bus *alerting.Bus, path string) *alerting.Dispatcher {
	t.Helper()
	sink, err := jsonl.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	d := dispatcherWith(t, bus.JetStream(), "audit", sink, alerting.SinkOptions{})
	return d
}

// Every hit reaches the file once, in stream order; a restarted dispatcher
// resumes where the first stopped and delivers nothing twice.
func TestDispatcherJSONLExactlyOnceAcrossRestart(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	path := filepath.Join(t.TempDir(), "hits.jsonl")
	first := makeHits("first", 20)
	publish(t, bus, first)

	r := run(t, newJSONLDispatcher(t, bus, path))
	settled(t, bus.JetStream(), "audit", 20)
	r.stop(t)
	if got := readIDs(t, path); !slices.Equal(got, ids(first)) {
		t.Fatalf("first run delivered %v, want %v", got, ids(first))
	}

	second := makeHits("second", 10)
	publish(t, bus, second)
	publish(t, bus, first) // a replay: deduplicated by the stream

	run(t, newJSONLDispatcher(t, bus, path))
	settled(t, bus.JetStream(), "audit", 30)
	want := append(ids(first), ids(second)...)
	if got := readIDs(t, path); !slices.Equal(got, want) {
		t.Fatalf("after restart the file holds %v, want %v", got, want)
	}
}

// A restarted embedded server keeps the stream, the checkpoint bucket, its
// dedupe window and each sink's position.
func TestEmbeddedRestartKeepsState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hits := makeHits("r", 5)

	func() {
		e := startServer(t, dir)
		nc := connect(t, e)
		bus, err := alerting.Open(t.Context(), nc, alerting.StreamConfig{})
		if err != nil {
			t.Fatal(err)
		}
		publish(t, bus, hits)
		if _, err := bus.Checkpoints().Put(t.Context(), "log-a", []byte(`{"next_index":42}`)); err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		d := dispatcherWith(t, bus.JetStream(), "rec", rec, alerting.SinkOptions{})
		r := run(t, d)
		settled(t, bus.JetStream(), "rec", 5)
		r.stop(t)
		nc.Close()
		e.Shutdown()
		if !slices.Equal(rec.ids(), ids(hits)) {
			t.Fatalf("before restart delivered %v, want %v", rec.ids(), ids(hits))
		}
	}()

	e := startServer(t, dir)
	nc := connect(t, e)
	bus, err := alerting.Open(t.Context(), nc, alerting.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	js := bus.JetStream()
	if got := streamMsgs(t, js); got != 5 {
		t.Fatalf("after restart the stream holds %d messages, want 5", got)
	}
	kve, err := bus.Checkpoints().Get(t.Context(), "log-a")
	if err != nil {
		t.Fatalf("checkpoint lost: %v", err)
	}
	if string(kve.Value()) != `{"next_index":42}` {
		t.Errorf("checkpoint %q", kve.Value())
	}
	c, err := js.Consumer(t.Context(), alerting.StreamName, "sink-rec")
	if err != nil {
		t.Fatalf("consumer lost: %v", err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 5 {
		t.Errorf("consumer ack floor %d after restart, want 5", info.AckFloor.Stream)
	}

	publish(t, bus, hits[:1]) // still inside the dedupe window
	more := makeHits("after", 2)
	publish(t, bus, more)
	if got := streamMsgs(t, js); got != 7 {
		t.Errorf("stream holds %d messages, want 7 (replayed hit deduplicated)", got)
	}

	rec := &recorder{}
	d := dispatcherWith(t, js, "rec", rec, alerting.SinkOptions{})
	run(t, d)
	settled(t, js, "rec", 7)
	if !slices.Equal(rec.ids(), ids(more)) {
		t.Errorf("after restart delivered %v, want only %v", rec.ids(), ids(more))
	}
}

// A webhook that fails, then throttles, then recovers receives every hit.
func TestDispatcherWebhookOutage(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	const failures = 3
	type request struct {
		id     string
		at     time.Time
		status int
	}
	var (
		mu       sync.Mutex
		requests []request
		problems []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h event.Hit
		err := json.NewDecoder(r.Body).Decode(&h)
		id := r.Header.Get(webhook.IDHeader)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			problems = append(problems, "body: "+err.Error())
		case id == "" || id != h.ID:
			problems = append(problems, "X-Ctwatch-Id "+id+" for hit "+h.ID)
		case r.Header.Get("Content-Type") != "application/json":
			problems = append(problems, "Content-Type "+r.Header.Get("Content-Type"))
		}
		status := http.StatusOK
		switch n := len(requests); {
		case n < failures:
			status = http.StatusInternalServerError
		case n == failures:
			status = http.StatusTooManyRequests
			w.Header().Set("Retry-After", "1")
		}
		requests = append(requests, request{id: id, at: time.Now(), status: status})
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)

	hits := makeHits("wh", 6)
	publish(t, bus, hits)
	sink, err := webhook.New(webhook.Config{URL: srv.URL + "/hook/secret"})
	if err != nil {
		t.Fatal(err)
	}
	opts := alerting.SinkOptions{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	d := dispatcherWith(t, bus.JetStream(), "hook", sink, opts)
	run(t, d)
	settled(t, bus.JetStream(), "hook", uint64(len(hits)))

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	delivered := map[string]int{}
	var throttled request
	for _, r := range requests {
		if r.status == http.StatusOK {
			delivered[r.id]++
		}
		if r.status == http.StatusTooManyRequests {
			throttled = r
		}
	}
	for _, h := range hits {
		if delivered[h.ID] != 1 {
			t.Errorf("hit %s delivered %d times, want 1", h.ID, delivered[h.ID])
		}
	}
	if len(requests) != len(hits)+failures+1 {
		t.Errorf("%d requests, want %d (each hit once plus %d failures)", len(requests), len(hits)+failures+1, failures+1)
	}
	// The throttled hit is not tried again before its Retry-After.
	for _, r := range requests {
		if r.id == throttled.id && r.at.After(throttled.at) {
			if gap := r.at.Sub(throttled.at); gap < time.Second {
				t.Errorf("hit %s retried %s after a 429 with Retry-After: 1", r.id, gap)
			}
			break
		}
	}
}

// A sink with Events gets hits and log events; one without gets hits only.
func TestDispatcherEventsOption(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	hit := makeHits("h", 1)[0]
	ev := event.LogEvent{ID: "ev-1", Kind: event.LogUnreachable, Log: event.LogRef{Name: "L"}, Detail: "timeout"}
	publish(t, bus, []event.Hit{hit})
	if err := bus.PublishEvent(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	hitsOnly, all := &recorder{}, &recorder{}
	d := dispatcherWith(t, bus.JetStream(), "hits", hitsOnly, alerting.SinkOptions{})
	if err := d.Add("all", all, alerting.SinkOptions{Events: true}); err != nil {
		t.Fatal(err)
	}
	run(t, d)
	settled(t, bus.JetStream(), "hits", 1)
	settled(t, bus.JetStream(), "all", 2)

	if got := hitsOnly.ids(); !slices.Equal(got, []string{hit.ID}) {
		t.Errorf("hits-only sink got %v, want [%s]", got, hit.ID)
	}
	if got := all.ids(); !slices.Equal(got, []string{hit.ID, ev.ID}) {
		t.Fatalf("events sink got %v, want [%s %s]", got, hit.ID, ev.ID)
	}
	all.mu.Lock()
	defer all.mu.Unlock()
	h, e := all.msgs[0], all.msgs[1]
	if h.Hit == nil || h.Event != nil || h.Subject != alerting.HitSubject(hit.Severity) {
		t.Errorf("hit message decoded as %+v", h)
	}
	if e.Event == nil || e.Hit != nil || e.Event.Kind != ev.Kind || e.Subject != "ctwatch.event.log_unreachable" {
		t.Errorf("event message decoded as %+v", e)
	}
	var raw event.LogEvent
	if err := json.Unmarshal(e.Data, &raw); err != nil || raw.ID != ev.ID {
		t.Errorf("event Data %q does not hold the event: %v", e.Data, err)
	}
}

// Garbage on a hit subject (not from ctwatch) is dropped, not retried
// forever, and does not hold back the hits behind it.
func TestDispatcherDropsUndecodable(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	js := bus.JetStream()
	for _, body := range []string{"not json", `{"rule":"no id"}`} {
		if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: "ctwatch.hit.high", Data: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	hit := makeHits("ok", 1)
	publish(t, bus, hit)
	rec := &recorder{}
	d := dispatcherWith(t, js, "rec", rec, alerting.SinkOptions{})
	run(t, d)
	settled(t, js, "rec", 3)
	if got := rec.ids(); !slices.Equal(got, ids(hit)) {
		t.Errorf("delivered %v, want %v", got, ids(hit))
	}
}

// A delivery that outlasts the ack wait is kept alive: the server does not
// hand the message out again meanwhile.
func TestDispatcherLongDeliveryNotRedelivered(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	hits := makeHits("slow", 2)
	publish(t, bus, hits)
	const ackWait = 300 * time.Millisecond
	var (
		mu    sync.Mutex
		calls = map[string]int{}
	)
	slow := notifyFunc(func(ctx context.Context, m *alerting.Message) error {
		mu.Lock()
		calls[m.ID()]++
		first := len(calls) == 1 && calls[m.ID()] == 1
		mu.Unlock()
		if first {
			// Simulate a slow receiver: three ack waits.
			select {
			case <-time.After(3 * ackWait):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	d := dispatcherWith(t, bus.JetStream(), "slow", slow, alerting.SinkOptions{AckWait: ackWait})
	run(t, d)
	settled(t, bus.JetStream(), "slow", 2)
	mu.Lock()
	defer mu.Unlock()
	for _, h := range hits {
		if calls[h.ID] != 1 {
			t.Errorf("hit %s delivered %d times, want 1", h.ID, calls[h.ID])
		}
	}
}

// Cancelling Run lets a delivery in progress finish and acknowledges it.
func TestDispatcherShutdownFinishesDelivery(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	publish(t, bus, makeHits("inflight", 1))
	started, release := make(chan struct{}), make(chan struct{})
	n := notifyFunc(func(ctx context.Context, m *alerting.Message) error {
		close(started)
		<-release
		return ctx.Err() // nil: the grace period has not run out
	})
	d := dispatcherWith(t, bus.JetStream(), "x", n, alerting.SinkOptions{ShutdownGrace: time.Minute})
	r := run(t, d)
	<-started
	r.cancel()
	select {
	case <-r.done:
		t.Fatal("Run returned while a delivery was in progress")
	default:
	}
	close(release)
	r.stop(t)
	c, err := bus.JetStream().Consumer(t.Context(), alerting.StreamName, "sink-x")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 1 || info.NumAckPending != 0 {
		t.Errorf("ack floor %d, pending acks %d: the finished delivery was not acknowledged", info.AckFloor.Stream, info.NumAckPending)
	}
}

// A delivery still running when the shutdown grace ends is cancelled and
// handed back at once, so the next dispatcher delivers it without waiting
// for the (long) ack wait.
func TestDispatcherShutdownHandsBackStuckDelivery(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	hits := makeHits("stuck", 1)
	publish(t, bus, hits)
	started := make(chan struct{})
	stuck := notifyFunc(func(ctx context.Context, m *alerting.Message) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	opts := alerting.SinkOptions{ShutdownGrace: 10 * time.Millisecond, AckWait: time.Hour}
	d := dispatcherWith(t, bus.JetStream(), "x", stuck, opts)
	r := run(t, d)
	<-started
	r.stop(t)

	rec := &recorder{}
	d2 := dispatcherWith(t, bus.JetStream(), "x", rec, opts)
	run(t, d2)
	settled(t, bus.JetStream(), "x", 1)
	if got := rec.ids(); !slices.Equal(got, ids(hits)) {
		t.Errorf("second dispatcher delivered %v, want %v", got, ids(hits))
	}
}

func TestDispatcherAddAndRunErrors(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	d := alerting.NewDispatcher(bus.JetStream(), alerting.StreamName, testLogger(t))
	for _, name := range []string{"", "a.b", "a b", "a*", ">", "x/y"} {
		if err := d.Add(name, &recorder{}, alerting.SinkOptions{}); err == nil {
			t.Errorf("Add(%q) accepted an invalid name", name)
		}
	}
	if err := d.Add("nil", nil, alerting.SinkOptions{}); err == nil {
		t.Error("Add accepted a nil notifier")
	}
	if err := d.Add("b", &recorder{}, alerting.SinkOptions{MinBackoff: time.Minute, MaxBackoff: time.Second}); err == nil {
		t.Error("Add accepted MinBackoff > MaxBackoff")
	}
	if err := d.Run(t.Context()); err == nil {
		t.Error("Run without sinks returned nil")
	}

	d = alerting.NewDispatcher(bus.JetStream(), "NO_SUCH_STREAM", testLogger(t))
	if err := d.Add("a", &recorder{}, alerting.SinkOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := d.Add("a", &recorder{}, alerting.SinkOptions{}); err == nil {
		t.Error("Add accepted a duplicate name")
	}
	if err := d.Run(t.Context()); err == nil {
		t.Error("Run on a missing stream returned nil")
	}
	if err := d.Add("late", &recorder{}, alerting.SinkOptions{}); err == nil {
		t.Error("Add after Run returned nil")
	}
}

// Failures are retried with backoff; the attempt count reaches the log and
// the message arrives once the sink recovers.
func TestDispatcherRetriesUntilSuccess(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	hits := makeHits("retry", 1)
	publish(t, bus, hits)
	var (
		mu       sync.Mutex
		attempts int
	)
	flaky := notifyFunc(func(_ context.Context, m *alerting.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts < 4 {
			return errTest
		}
		return nil
	})
	d := dispatcherWith(t, bus.JetStream(), "flaky", flaky, alerting.SinkOptions{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	run(t, d)
	settled(t, bus.JetStream(), "flaky", 1)
	mu.Lock()
	defer mu.Unlock()
	if attempts != 4 {
		t.Errorf("%d attempts, want 4", attempts)
	}
}

// A Notifier that panics fails that attempt only; the message is retried
// and the process survives.
func TestDispatcherSurvivesPanickingNotifier(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	hits := makeHits("panic", 2)
	publish(t, bus, hits)
	var (
		mu       sync.Mutex
		panicked bool
		got      []string
	)
	n := notifyFunc(func(_ context.Context, m *alerting.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if !panicked {
			panicked = true
			panic("sink bug")
		}
		got = append(got, m.ID())
		return nil
	})
	d := alerting.NewDispatcher(bus.JetStream(), alerting.StreamName, slog.New(slog.DiscardHandler))
	if err := d.Add("p", n, alerting.SinkOptions{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	run(t, d)
	settled(t, bus.JetStream(), "p", 2)
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(got) // the retried message may arrive after the next one
	if !slices.Equal(got, ids(hits)) {
		t.Errorf("delivered %v, want %v", got, ids(hits))
	}
}
