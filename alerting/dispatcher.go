package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctwatch/ctwatch/event"
)

// Defaults of [SinkOptions].
const (
	DefaultMinBackoff    = time.Second
	DefaultMaxBackoff    = 5 * time.Minute
	DefaultAckWait       = 30 * time.Second
	DefaultShutdownGrace = 10 * time.Second
)

const (
	// maxAckPending bounds the messages a sink's consumer has handed out
	// and not yet seen acknowledged. Deliveries run one at a time, so this
	// only fills up with messages waiting for a delayed retry while a sink
	// is failing; the bound keeps that set, and the server's memory for it,
	// flat however long the outage lasts.
	maxAckPending = 256
	// maxRetryAfter caps the delay a receiver may ask for, so that a wrong
	// or hostile Retry-After cannot park an alert for days.
	maxRetryAfter = time.Hour
	// ackTimeout bounds the wait for the server to confirm an ack.
	ackTimeout = 10 * time.Second
	// fetchWait is how long one fetch waits for a message; it bounds how
	// long Run takes to notice that its context was cancelled.
	fetchWait = 500 * time.Millisecond
)

// SinkOptions tunes how the [Dispatcher] feeds one sink. The zero value
// gives hits only, with the default timings.
type SinkOptions struct {
	// Events also delivers log events (ctwatch.event.*), not only hits.
	Events bool
	// MinBackoff is the delay before the first retry of a failed delivery;
	// each further failure of the same message doubles it, up to
	// MaxBackoff, with random jitter of up to half the delay. 0 means
	// DefaultMinBackoff and DefaultMaxBackoff respectively.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// AckWait is how long the server waits for a delivery's outcome before
	// handing the message out again (to this or another ctwatch process);
	// while Notify runs, the Dispatcher keeps extending it. 0 means
	// DefaultAckWait.
	AckWait time.Duration
	// ShutdownGrace is how long a delivery in progress may continue once
	// Run's context is cancelled before its context is cancelled too; 0
	// means DefaultShutdownGrace.
	ShutdownGrace time.Duration
}

func (o SinkOptions) withDefaults() SinkOptions {
	if o.MinBackoff == 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.AckWait == 0 {
		o.AckWait = DefaultAckWait
	}
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	return o
}

// Dispatcher delivers the stream to sinks. Each sink reads through its own
// durable pull consumer ("sink-<name>"), so sinks are independent: a sink
// that is down holds back only its own deliveries, and each sink resumes
// where it stopped after a restart of ctwatch or of the NATS server.
// Several ctwatch processes running the same sink share its consumer, and
// with it the work.
//
// Delivery is at least once. A message is acknowledged (and the ack
// confirmed by the server) only after Notify returned nil; a failed delivery
// is retried after a backoff, forever: a sink that is down delays alerts but
// never drops them. A crash between Notify and the ack repeats a delivery,
// which is why every message carries a stable ID.
//
// Order: a sink receives messages one at a time, in stream order. A message
// whose delivery failed is retried after its backoff, and messages behind it
// are delivered meanwhile, so after a failure order is no longer strict; in
// exchange one message that a receiver keeps rejecting does not block the
// ones behind it.
//
// Configure with [Dispatcher.Add], then call [Dispatcher.Run] once.
type Dispatcher struct {
	js     jetstream.JetStream
	stream string
	logger *slog.Logger

	mu      sync.Mutex
	sinks   []*sink
	started bool
}

// sink is one configured destination.
type sink struct {
	name   string
	n      Notifier
	opts   SinkOptions
	logger *slog.Logger
}

// NewDispatcher returns a Dispatcher reading stream (normally [StreamName])
// through js. A nil logger means slog.Default().
func NewDispatcher(js jetstream.JetStream, stream string, logger *slog.Logger) *Dispatcher {
	if logger == nil {
		logger = slog.Default()
	}
	return &Dispatcher{js: js, stream: stream, logger: logger}
}

// Add registers a sink under name, which becomes part of the consumer name
// and must be unique, made of letters, digits, '_' and '-'. It fails after
// Run has started. Safe for concurrent use.
func (d *Dispatcher) Add(name string, n Notifier, opts SinkOptions) error {
	if !validToken(name) {
		return fmt.Errorf("alerting: sink name %q: use letters, digits, '_' and '-' (at most 64)", name)
	}
	if n == nil {
		return fmt.Errorf("alerting: sink %s: nil notifier", name)
	}
	opts = opts.withDefaults()
	if opts.MinBackoff < 0 || opts.MaxBackoff < opts.MinBackoff || opts.AckWait < 0 || opts.ShutdownGrace < 0 {
		return fmt.Errorf("alerting: sink %s: invalid options %+v", name, opts)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started {
		return fmt.Errorf("alerting: sink %s: dispatcher already running", name)
	}
	for _, s := range d.sinks {
		if s.name == name {
			return fmt.Errorf("alerting: sink %s added twice", name)
		}
	}
	d.sinks = append(d.sinks, &sink{
		name:   name,
		n:      n,
		opts:   opts,
		logger: d.logger.With("sink", name),
	})
	return nil
}

// Run creates or updates every sink's consumer, then delivers until ctx is
// cancelled. It returns an error if there is no sink or a consumer cannot be
// set up; later failures (a lost connection, a deleted consumer) are logged
// and retried. Within half a second of ctx's cancellation it stops fetching;
// it then lets deliveries in progress finish (see SinkOptions.ShutdownGrace)
// or hands their messages back for immediate redelivery, and returns nil.
// Run may be called once.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return errors.New("alerting: dispatcher: Run called twice")
	}
	d.started = true
	sinks := d.sinks
	d.mu.Unlock()
	if len(sinks) == 0 {
		return errors.New("alerting: dispatcher: no sinks")
	}

	consumers := make([]jetstream.Consumer, len(sinks))
	for i, s := range sinks {
		c, err := d.ensureConsumer(ctx, s)
		if err != nil {
			return err
		}
		consumers[i] = c
	}
	var wg sync.WaitGroup
	for i, s := range sinks {
		wg.Go(func() { d.runSink(ctx, s, consumers[i]) })
	}
	wg.Wait()
	return nil
}

// ensureConsumer creates the sink's durable consumer, or updates it to the
// current options; an existing consumer keeps its position.
func (d *Dispatcher) ensureConsumer(ctx context.Context, s *sink) (jetstream.Consumer, error) {
	subjects := []string{HitSubjects}
	if s.opts.Events {
		subjects = append(subjects, EventSubjects)
	}
	c, err := d.js.CreateOrUpdateConsumer(ctx, d.stream, jetstream.ConsumerConfig{
		Durable:        ConsumerPrefix + s.name,
		Description:    "ctwatch sink " + s.name,
		FilterSubjects: subjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        s.opts.AckWait,
		MaxAckPending:  maxAckPending,
		MaxDeliver:     -1,
	})
	if err != nil {
		return nil, fmt.Errorf("alerting: sink %s: consumer on stream %s: %w", s.name, d.stream, err)
	}
	return c, nil
}

// runSink fetches and delivers one message at a time until ctx ends.
//
// Each fetch asks for one message and expires after fetchWait, when ctx is
// checked again. Fetching one message per request (rather than with a
// prefetching iterator) means no message waits in a client buffer while its
// ack timer runs. Letting requests expire on the server, rather than
// cancelling them from the client, avoids abandoning a request while the
// server may be sending it a message: such a message would sit unseen until
// its ack wait ran out.
func (d *Dispatcher) runSink(ctx context.Context, s *sink, c jetstream.Consumer) {
	s.logger.Info("sink started", "consumer", ConsumerPrefix+s.name, "events", s.opts.Events)
	defer s.logger.Info("sink stopped")
	failures := 0
	for ctx.Err() == nil {
		msg, err := c.Next(jetstream.FetchMaxWait(fetchWait))
		if err == nil {
			failures = 0
			if ctx.Err() != nil {
				// Stopped while this one arrived: hand it straight back.
				if err := msg.Nak(); err != nil {
					s.logger.Warn("sink nak on shutdown failed", "err", err)
				}
				return
			}
			d.deliver(ctx, s, msg)
			continue
		}
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
			continue // nothing new within the request's expiry
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		delay := backoff(uint64(failures), s.opts.MinBackoff, s.opts.MaxBackoff)
		s.logger.Warn("sink fetch failed", "attempt", failures, "retry_in", delay, "err", err)
		if !wait(ctx, delay) {
			return
		}
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			if nc, err := d.ensureConsumer(ctx, s); err != nil {
				s.logger.Warn("sink consumer recreate failed", "err", err)
			} else {
				c = nc
			}
		}
	}
}

// deliver runs one delivery attempt of msg and settles it with the server:
// ack on success, delayed nak on failure, immediate nak if shutting down.
func (d *Dispatcher) deliver(ctx context.Context, s *sink, msg jetstream.Msg) {
	attempt := uint64(1)
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		attempt = max(md.NumDelivered, 1)
		seq = md.Sequence.Stream
	}
	m, err := decodeMessage(msg.Subject(), msg.Data())
	if err != nil {
		// Retrying cannot make garbage decodable; Term tells the server to
		// stop handing it out. Nothing ctwatch published can end up here.
		s.logger.Error("sink dropping undecodable message", "subject", msg.Subject(), "seq", seq, "err", err)
		if err := msg.Term(); err != nil {
			s.logger.Warn("sink term failed", "seq", seq, "err", err)
		}
		return
	}
	log := s.logger.With("id", m.ID(), "subject", m.Subject, "seq", seq, "attempt", attempt)

	err = notify(ctx, s, msg, m)
	switch {
	case err == nil:
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
		defer cancel()
		if err := msg.DoubleAck(actx); err != nil {
			log.Warn("sink ack failed; the message will be delivered again", "err", err)
		}
	case ctx.Err() != nil:
		log.Info("sink delivery interrupted by shutdown; handing it back", "err", err)
		if err := msg.Nak(); err != nil {
			log.Warn("sink nak failed", "err", err)
		}
	default:
		delay := retryDelay(attempt, err, s.opts)
		log.Warn("sink delivery failed", "retry_in", delay, "err", err)
		if err := msg.NakWithDelay(delay); err != nil {
			log.Warn("sink nak failed; the server redelivers after the ack wait", "err", err)
		}
	}
}

// notify calls the sink's Notifier while telling the server, every third of
// the ack wait, that the delivery is still in progress. The Notifier's
// context survives the cancellation of ctx by the shutdown grace.
func notify(ctx context.Context, s *sink, msg jetstream.Msg, m *Message) error {
	nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(max(s.opts.AckWait/3, time.Millisecond))
		defer tick.Stop()
		stopping := ctx.Done()
		var grace <-chan time.Time
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if err := msg.InProgress(); err != nil {
					s.logger.Debug("sink in-progress signal failed", "err", err)
				}
			case <-stopping:
				stopping = nil
				t := time.NewTimer(s.opts.ShutdownGrace)
				defer t.Stop()
				grace = t.C
			case <-grace:
				grace = nil
				cancel()
			}
		}
	})
	err := safeNotify(nctx, s, m)
	close(done)
	wg.Wait()
	return err
}

// safeNotify calls the Notifier, turning a panic into an error: the message
// is then retried like any failed delivery, and a sink that chokes on one
// message does not take the process (and every other sink) down with it.
func safeNotify(ctx context.Context, s *sink, m *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("sink notifier panicked", "id", m.ID(), "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("notifier panicked: %v", r)
		}
	}()
	return s.n.Notify(ctx, m)
}

// decodeMessage turns a stream message into a Message, choosing the type by
// subject. It rejects bodies that do not decode or carry no ID.
func decodeMessage(subject string, data []byte) (*Message, error) {
	m := &Message{Subject: subject, Data: data}
	switch {
	case strings.HasPrefix(subject, HitSubjectPrefix):
		var h event.Hit
		if err := json.Unmarshal(data, &h); err != nil {
			return nil, fmt.Errorf("decode hit: %w", err)
		}
		m.Hit = &h
	case strings.HasPrefix(subject, EventSubjectPrefix):
		var ev event.LogEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			return nil, fmt.Errorf("decode event: %w", err)
		}
		m.Event = &ev
	default:
		return nil, fmt.Errorf("unexpected subject %q", subject)
	}
	if m.ID() == "" {
		return nil, errors.New("message without id")
	}
	return m, nil
}

// retryDelay is the wait before attempt+1 after attempt failed with err: the
// delay the receiver asked for, if any (capped), else the backoff.
func retryDelay(attempt uint64, err error, opts SinkOptions) time.Duration {
	if ra, ok := errors.AsType[*RetryAfterError](err); ok && ra.After > 0 {
		return min(ra.After, maxRetryAfter)
	}
	return backoff(attempt, opts.MinBackoff, opts.MaxBackoff)
}

// backoff returns the delay after the attempt-th consecutive failure
// (attempt ≥ 1): lo doubled attempt-1 times, capped at hi, then jittered
// down by up to half so that retries of many messages spread out. The
// result lies in [d/2, d] for that capped d.
func backoff(attempt uint64, lo, hi time.Duration) time.Duration {
	d := lo
	for i := uint64(1); i < attempt && d < hi; i++ {
		if d > hi/2 {
			d = hi // doubling would pass hi (or overflow)
			break
		}
		d *= 2
	}
	d = min(d, hi)
	if half := d / 2; half > 0 {
		d = half + rand.N(half+1)
	}
	return d
}

// wait blocks for d or until ctx ends; it reports whether d elapsed.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
