package alerting_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/monitor"
)

// The Bus is what the monitor publishes through.
var _ monitor.Publisher = (*alerting.Bus)(nil)

// waitTimeout bounds every wait for an asynchronous outcome in these tests.
const waitTimeout = 15 * time.Second

// startServer starts an embedded server on dir; it is shut down at cleanup
// (Shutdown is idempotent, so tests may also stop it early).
func startServer(t *testing.T, dir string) *alerting.Embedded {
	t.Helper()
	e, err := alerting.StartEmbedded(t.Context(), dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

// connect opens a client to e, closed at cleanup (before the server's
// shutdown, cleanups running last-in first-out).
func connect(t *testing.T, e *alerting.Embedded) *nats.Conn {
	t.Helper()
	nc, err := e.Connect()
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// setup starts a server in a fresh directory and opens the bus on it.
func setup(t *testing.T) (*alerting.Bus, *nats.Conn) {
	t.Helper()
	nc := connect(t, startServer(t, t.TempDir()))
	bus, err := alerting.Open(t.Context(), nc, alerting.StreamConfig{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return bus, nc
}

// testLogger logs to the test's output, so failures show the dispatcher's
// warnings.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

var severities = []event.Severity{event.SeverityHigh, event.SeverityLow, event.SeverityCritical, event.SeverityMedium, event.SeverityInfo}

// makeHits returns n distinct hits, IDs prefix-0…, severities rotating.
func makeHits(prefix string, n int) []event.Hit {
	hits := make([]event.Hit, n)
	for i := range hits {
		hits[i] = event.Hit{
			ID:       fmt.Sprintf("%s-%04d", prefix, i),
			Rule:     "our-names",
			Severity: severities[i%len(severities)],
			Reason:   "domain bank.example is watched",
			Log:      &event.LogRef{Name: "Test Log", URL: "https://ct.example/log/", Index: uint64(1000 + i)},
			Cert: event.CertInfo{
				SHA256:    fmt.Sprintf("%064x", i),
				TBSSHA256: fmt.Sprintf("%064x", i+1),
				DNSNames:  []string{fmt.Sprintf("host%d.bank.example", i), "bank.example"},
				Subject:   "CN=bank.example",
				Issuer:    "CN=Test CA,O=Example,C=US",
				NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
				NotAfter:  time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC),
			},
		}
	}
	return hits
}

func ids(hits []event.Hit) []string {
	out := make([]string, len(hits))
	for i := range hits {
		out[i] = hits[i].ID
	}
	return out
}

// publish publishes hits and fails the test on error.
func publish(t *testing.T, bus *alerting.Bus, hits []event.Hit) {
	t.Helper()
	if err := bus.PublishHits(t.Context(), hits); err != nil {
		t.Fatalf("PublishHits: %v", err)
	}
}

// streamMsgs returns the number of messages in the CTWATCH stream.
func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), alerting.StreamName)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatalf("Stream info: %v", err)
	}
	return info.State.Msgs
}

// eventually polls cond until it holds or waitTimeout passes; on timeout
// the test fails with what, and the state that state (if not nil) describes.
func eventually(t *testing.T, what string, cond func() bool, state ...func() string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			detail := ""
			for _, s := range state {
				detail += " " + s()
			}
			t.Fatalf("timed out waiting for %s%s", what, detail)
		}
		<-tick.C
	}
}

// settled waits until the sink's consumer has nothing left to deliver and
// nothing awaiting an ack, and its ack floor is at least floor; it returns
// the consumer's info at that point.
func settled(t *testing.T, js jetstream.JetStream, sinkName string, floor uint64) *jetstream.ConsumerInfo {
	t.Helper()
	var (
		info    *jetstream.ConsumerInfo
		lastErr error
	)
	eventually(t, "consumer "+sinkName+" to settle", func() bool {
		c, err := js.Consumer(t.Context(), alerting.StreamName, alerting.ConsumerPrefix+sinkName)
		if err != nil {
			lastErr = err
			return false
		}
		info, err = c.Info(t.Context())
		lastErr = err
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= floor
	}, func() string {
		if info == nil {
			return fmt.Sprintf("(no info: %v)", lastErr)
		}
		return fmt.Sprintf("(pending %d, ack pending %d, redelivered %d, waiting %d, delivered %d/%d, ack floor %d/%d)",
			info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting,
			info.Delivered.Consumer, info.Delivered.Stream, info.AckFloor.Consumer, info.AckFloor.Stream)
	})
	return info
}

// dispatcherWith returns a Dispatcher on the CTWATCH stream, logging to
// the test, with one sink added under name; the test may Add more before
// it starts it with run. A refused Add fails the test.
func dispatcherWith(t *testing.T, js jetstream.JetStream, name string, n alerting.Notifier, opts alerting.SinkOptions) *alerting.Dispatcher {
	t.Helper()
	d := alerting.NewDispatcher(js, alerting.StreamName, testLogger(t))
	if err := d.Add(name, n, opts); err != nil {
		t.Fatalf("Add %s: %v", name, err)
	}
	return d
}

// running is a Dispatcher started in the background.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, set before done is closed
	once   sync.Once
}

// run starts d.Run; stop (also called at cleanup) cancels it and waits.
func run(t *testing.T, d *alerting.Dispatcher) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = d.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the dispatcher and waits for Run to return nil. Calling it
// again is harmless.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after cancel")
	}
	r.once.Do(func() {
		if r.err != nil {
			t.Errorf("Run: %v", r.err)
		}
	})
}

// recorder is a Notifier that remembers what it was given.
type recorder struct {
	mu   sync.Mutex
	msgs []*alerting.Message
}

func (r *recorder) Notify(_ context.Context, m *alerting.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return nil
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.msgs))
	for i, m := range r.msgs {
		out[i] = m.ID()
	}
	return out
}

// notifyFunc adapts a function to Notifier.
type notifyFunc func(ctx context.Context, m *alerting.Message) error

func (f notifyFunc) Notify(ctx context.Context, m *alerting.Message) error { return f(ctx, m) }

var errTest = errors.New("test failure")
