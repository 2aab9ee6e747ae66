package alerting

import (
	"errors"
	"time"
)

// Observer hears what a [Dispatcher] does with the messages of its sinks, so
// that the daemon can count deliveries, failures and latencies without the
// Dispatcher knowing about metrics. Set it with [Dispatcher.SetObserver].
//
// The methods are called from the sinks' goroutines, concurrently, while
// the sink waits: an Observer must be safe for concurrent use and return
// quickly. Each is called before the outcome is settled with the server (the
// ack or nak), except DeadLettered, which follows the move; so once a
// consumer shows a message acknowledged, its Delivered or Skipped call has
// returned.
type Observer interface {
	// Delivered: the receiver accepted d (Accepted is set).
	Delivered(d Delivery)
	// Failed: one delivery attempt of d failed with d.Err. The message is
	// retried later, or dead-lettered (DeadLettered follows for each
	// message moved). An attempt cut short by shutdown is not a failure:
	// its messages are handed back untouched.
	Failed(d Delivery)
	// DeadLettered: the one stream message d describes was moved to the
	// sink's dead-letter subject after its last failed attempt (d.Err).
	DeadLettered(d Delivery)
	// Skipped: the sink's route did not take the one stream message d
	// describes; it was acknowledged without a delivery.
	Skipped(d Delivery)
}

// Delivery describes what a sink did with a message, for an [Observer].
type Delivery struct {
	// Sink is the name the sink was added under.
	Sink string
	// Kind is "hit", "event" or "digest" (see [Message.Kind]).
	Kind string
	// Hits is the number of hits carried: 1 for a hit, the digest's count
	// for a digest, 0 for an event.
	Hits int
	// Published holds when each stream message carried was stored in the
	// stream: one time for a hit or an event, one per hit for a digest.
	Published []time.Time
	// Accepted is when the receiver accepted the delivery; zero except in
	// Delivered. Accepted minus a Published time is how long that message
	// took from the stream to the receiver, grouping window and retries
	// included.
	Accepted time.Time
	// Err is why the attempt failed, in Failed and DeadLettered; nil
	// otherwise.
	Err error
}

// SetObserver makes the Dispatcher report every sink's deliveries,
// failures, dead letters and skipped messages to o; nil (the default)
// reports nothing. It fails after Run has started, so that the sinks never
// see the observer change under them.
func (d *Dispatcher) SetObserver(o Observer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started {
		return errors.New("alerting: observer: dispatcher already running")
	}
	d.observer = o
	return nil
}

// nopObserver is the Observer of a Dispatcher that was given none, so that
// the delivery path needs no nil checks.
type nopObserver struct{}

func (nopObserver) Delivered(Delivery)    {}
func (nopObserver) Failed(Delivery)       {}
func (nopObserver) DeadLettered(Delivery) {}
func (nopObserver) Skipped(Delivery)      {}

// observed describes members, carried by m, for the Observer.
func observed(s *sink, m *Message, members []*held) Delivery {
	d := Delivery{Sink: s.name, Kind: m.Kind(), Published: make([]time.Time, len(members))}
	switch {
	case m.Digest != nil:
		d.Hits = len(members)
	case m.Hit != nil:
		d.Hits = 1
	}
	for i, h := range members {
		d.Published[i] = h.firstPublished
	}
	return d
}
