package alerting_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
)

// observation is one call an observer received.
type observation struct {
	method string // Delivered, Failed, DeadLettered or Skipped
	d      alerting.Delivery
}

// observerLog is an Observer that records every call.
type observerLog struct {
	mu    sync.Mutex
	calls []observation
}

func (o *observerLog) add(method string, d alerting.Delivery) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, observation{method, d})
}

func (o *observerLog) Delivered(d alerting.Delivery)    { o.add("Delivered", d) }
func (o *observerLog) Failed(d alerting.Delivery)       { o.add("Failed", d) }
func (o *observerLog) DeadLettered(d alerting.Delivery) { o.add("DeadLettered", d) }
func (o *observerLog) Skipped(d alerting.Delivery)      { o.add("Skipped", d) }

func (o *observerLog) snapshot() []observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.calls)
}

// summary renders calls as "Method kind hits=N published=M" lines, sorted,
// so that a test can compare them regardless of delivery order.
func summary(calls []observation) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = fmt.Sprintf("%s %s hits=%d published=%d", c.method, c.d.Kind, c.d.Hits, len(c.d.Published))
	}
	slices.Sort(out)
	return out
}

// failing returns a Notifier that fails its first n calls with errTest,
// then accepts everything.
func failing(n int) alerting.Notifier {
	var mu sync.Mutex
	calls := 0
	return notifyFunc(func(context.Context, *alerting.Message) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= n {
			return errTest
		}
		return nil
	})
}

// The Observer hears each outcome once, with what the message carried and
// when it was published: deliveries, route skips, failed attempts (retried
// or not), dead letters, digests and log events.
//
// Not parallel: it starts a server per case, and running beside the
// package's parallel tests would eat into their grouping windows.
func TestDispatcherObserver(t *testing.T) {
	fast := alerting.SinkOptions{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	withOpts := func(f func(*alerting.SinkOptions)) alerting.SinkOptions {
		o := fast
		f(&o)
		return o
	}
	tests := []struct {
		name     string
		opts     alerting.SinkOptions
		notifier alerting.Notifier
		hits     int  // published hits, severities rotating high, low, critical, medium, info
		event    bool // also publish one log event
		msgs     uint64
		want     []string
	}{
		{
			name: "delivered and skipped by route", hits: 5, msgs: 5,
			opts:     withOpts(func(o *alerting.SinkOptions) { o.Route.MinSeverity = event.SeverityHigh }),
			notifier: &recorder{},
			want: []string{
				"Delivered hit hits=1 published=1", "Delivered hit hits=1 published=1",
				"Skipped hit hits=1 published=1", "Skipped hit hits=1 published=1", "Skipped hit hits=1 published=1",
			},
		},
		{
			name: "failed twice then delivered", hits: 1, msgs: 1, opts: fast, notifier: failing(2),
			want: []string{"Delivered hit hits=1 published=1", "Failed hit hits=1 published=1", "Failed hit hits=1 published=1"},
		},
		{
			name: "dead-lettered after max attempts", hits: 1, msgs: 1, notifier: failing(1 << 30),
			opts: withOpts(func(o *alerting.SinkOptions) { o.MaxAttempts = 2 }),
			want: []string{"DeadLettered hit hits=1 published=1", "Failed hit hits=1 published=1", "Failed hit hits=1 published=1"},
		},
		{
			name: "digest counts its hits", hits: 3, msgs: 3, notifier: &recorder{},
			opts: withOpts(func(o *alerting.SinkOptions) { o.Group = alerting.Grouping{Window: time.Minute, MaxHits: 3} }),
			want: []string{"Delivered digest hits=3 published=3"},
		},
		{
			name: "event carries no hit", event: true, msgs: 1, notifier: &recorder{},
			opts: withOpts(func(o *alerting.SinkOptions) { o.Events = true }),
			want: []string{"Delivered event hits=0 published=1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bus, _ := setup(t)
			before := time.Now()
			if tc.hits > 0 {
				publish(t, bus, makeHits("obs", tc.hits))
			}
			if tc.event {
				ev := event.LogEvent{ID: "ev-obs", Kind: event.LogUnreachable, Log: event.LogRef{Name: "L"}}
				if err := bus.PublishEvent(t.Context(), ev); err != nil {
					t.Fatal(err)
				}
			}
			obs := &observerLog{}
			d := dispatcherWith(t, bus.JetStream(), "obs", tc.notifier, tc.opts)
			if err := d.SetObserver(obs); err != nil {
				t.Fatal(err)
			}
			run(t, d)
			settled(t, bus.JetStream(), "obs", tc.msgs)
			// Dead letters are reported after their move, which the
			// consumer shows settled first.
			eventually(t, fmt.Sprintf("%d observations", len(tc.want)), func() bool { return len(obs.snapshot()) >= len(tc.want) },
				func() string { return fmt.Sprint(summary(obs.snapshot())) })
			calls := obs.snapshot()
			if got := summary(calls); !slices.Equal(got, tc.want) {
				t.Errorf("observations\n%v\nwant\n%v", got, tc.want)
			}
			for _, c := range calls {
				if c.d.Sink != "obs" {
					t.Errorf("%s: sink %q, want obs", c.method, c.d.Sink)
				}
				for _, p := range c.d.Published {
					if p.Before(before.Add(-time.Second)) || p.After(time.Now()) {
						t.Errorf("%s: published %v, want around the test's publish at %v", c.method, p, before)
					}
				}
				switch c.method {
				case "Delivered":
					if c.d.Err != nil || slices.ContainsFunc(c.d.Published, c.d.Accepted.Before) {
						t.Errorf("Delivered: err %v, accepted %v before a publication %v", c.d.Err, c.d.Accepted, c.d.Published)
					}
				case "Failed", "DeadLettered":
					if !errors.Is(c.d.Err, errTest) || !c.d.Accepted.IsZero() {
						t.Errorf("%s: err %v, accepted %v; want the notifier's error and no acceptance", c.method, c.d.Err, c.d.Accepted)
					}
				case "Skipped":
					if c.d.Err != nil || !c.d.Accepted.IsZero() {
						t.Errorf("Skipped: err %v, accepted %v", c.d.Err, c.d.Accepted)
					}
				}
			}
		})
	}
}

// The observer cannot change once the sinks run.
func TestDispatcherSetObserverAfterRun(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	d := dispatcherWith(t, bus.JetStream(), "late", &recorder{}, alerting.SinkOptions{})
	r := run(t, d)
	// Run marks itself started before it creates the consumer; once the
	// consumer exists SetObserver must refuse.
	settled(t, bus.JetStream(), "late", 0)
	if err := d.SetObserver(&observerLog{}); err == nil {
		t.Error("SetObserver after Run returned nil")
	}
	r.stop(t)
}
