package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

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
	// and not yet seen acknowledged, beyond those a grouping sink holds
	// for its groups. Deliveries run one at a time, so this only fills up
	// with messages waiting for a delayed retry while a sink is failing;
	// the bound keeps that set, and the server's memory for it, flat
	// however long the outage lasts.
	maxAckPending = 256
	// maxRetryAfter caps the delay a receiver may ask for, so that a wrong
	// or hostile Retry-After cannot park an alert for days.
	maxRetryAfter = time.Hour
	// ackTimeout bounds the wait for the server to confirm an ack.
	ackTimeout = 10 * time.Second
	// fetchWait is how long one fetch waits for a message; it bounds how
	// long Run takes to notice that its context was cancelled, and how
	// late a group is sent after its window.
	fetchWait = 500 * time.Millisecond
)

// SinkOptions tunes how the [Dispatcher] feeds one sink. The zero value
// gives every hit, no log events, no grouping, no rate limit, retries
// forever with the default timings.
type SinkOptions struct {
	// Events also delivers log events (ctwatch.event.*), not only hits.
	Events bool
	// Route selects the hits and events the sink takes; the zero Route
	// takes all.
	Route Route
	// Group turns bursts of hits of one rule into digests; the zero value
	// delivers every hit on its own.
	Group Grouping
	// MinBackoff is the delay before the first retry of a failed delivery;
	// each further failure of the same message doubles it, up to
	// MaxBackoff, with random jitter of up to half the delay. 0 means
	// DefaultMinBackoff and DefaultMaxBackoff respectively.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// MaxAttempts moves a message to the sink's dead-letter subject once
	// this many deliveries of it have failed; 0 retries forever.
	MaxAttempts int
	// MaxAge moves a message whose delivery failed to the dead-letter
	// subject once it is older than this (since it was published); 0
	// retries forever.
	MaxAge time.Duration
	// Rate limits deliveries to this many per second, with bursts of up
	// to Burst (at least 1); 0 means no limit. Chat services throttle
	// senders, and a digest already folds bursts of hits.
	Rate  float64
	Burst int
	// AckWait is how long the server waits for a delivery's outcome before
	// handing the message out again (to this or another ctwatch process);
	// while the Dispatcher holds a message (delivering it, or in a group)
	// it keeps extending it. 0 means DefaultAckWait.
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
	if o.Rate > 0 && o.Burst == 0 {
		o.Burst = 1
	}
	o.Group = o.Group.withDefaults()
	return o
}

func (o SinkOptions) valid() bool {
	return o.MinBackoff >= 0 && o.MaxBackoff >= o.MinBackoff && o.AckWait >= 0 && o.ShutdownGrace >= 0 &&
		o.MaxAttempts >= 0 && o.MaxAge >= 0 && o.Rate >= 0 && o.Burst >= 0 &&
		o.Group.Window >= 0 && o.Group.MaxNames > 0 && o.Group.MaxHits > 0
}

// Dispatcher delivers the stream to sinks. Each sink reads through its own
// durable pull consumer ("sink-<name>"), so sinks are independent: a sink
// that is down holds back only its own deliveries, and each sink resumes
// where it stopped after a restart of ctwatch or of the NATS server.
// Several ctwatch processes running the same sink share its consumer, and
// with it the work.
//
// Per sink, a message goes through these stages, each done here once for
// every integration: routing (is it for this sink?), grouping (wait for
// more hits of the rule, then send one digest), rate limiting, one
// delivery attempt by the Notifier, then acknowledgement, retry with
// backoff, or dead-lettering.
//
// Delivery is at least once. A message is acknowledged (and the ack
// confirmed by the server) only after Notify returned nil for it or for
// the digest that holds it; a failed delivery is retried after a backoff,
// until SinkOptions.MaxAttempts or MaxAge move it to the sink's dead-letter
// subject (see [Replay]): a sink that is down delays alerts but never drops
// them. A crash between Notify and the ack repeats a delivery, which is why
// every message carries a stable ID.
//
// Order: a sink receives messages one at a time, in stream order except
// for grouped hits, which wait for their window. A message whose delivery
// failed is retried after its backoff, and messages behind it are
// delivered meanwhile, so after a failure order is no longer strict; in
// exchange one message that a receiver keeps rejecting does not block the
// ones behind it.
//
// Configure with [Dispatcher.Add] (and, if wanted, [Dispatcher.SetArchive]
// and [Dispatcher.SetObserver]), then call [Dispatcher.Run] once.
type Dispatcher struct {
	js     jetstream.JetStream
	stream string
	logger *slog.Logger

	mu       sync.Mutex
	sinks    []*sink
	archive  DigestArchive
	observer Observer
	started  bool
}

// sink is one configured destination.
type sink struct {
	name    string
	n       Notifier
	opts    SinkOptions
	logger  *slog.Logger
	limiter *rate.Limiter // nil: no limit
	// obs is the Dispatcher's Observer, set by Run before the sink starts.
	obs Observer
}

// NewDispatcher returns a Dispatcher reading stream (normally [StreamName])
// through js. A nil logger means slog.Default().
func NewDispatcher(js jetstream.JetStream, stream string, logger *slog.Logger) *Dispatcher {
	if logger == nil {
		logger = slog.Default()
	}
	return &Dispatcher{js: js, stream: stream, logger: logger}
}

// SetArchive makes digests link to their full hit list, stored in a;
// without it digests carry no link. It fails after Run has started.
func (d *Dispatcher) SetArchive(a DigestArchive) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started {
		return errors.New("alerting: archive: dispatcher already running")
	}
	d.archive = a
	return nil
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
	if !opts.valid() {
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
	s := &sink{
		name:   name,
		n:      n,
		opts:   opts,
		logger: d.logger.With("sink", name),
	}
	if opts.Rate > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(opts.Rate), opts.Burst)
	}
	d.sinks = append(d.sinks, s)
	return nil
}

// Run creates or updates every sink's consumer, then delivers until ctx is
// cancelled. It returns an error if there is no sink or the server refuses
// a consumer; a consumer that cannot be set up for now (a timeout while the
// cluster elects a leader), and later failures (a lost connection, a
// deleted consumer), are logged and retried by that sink alone. Within half a second of ctx's cancellation it stops fetching;
// it then lets deliveries in progress finish (see SinkOptions.ShutdownGrace)
// or hands their messages back for immediate redelivery, as it does with
// the hits waiting in groups, and returns nil. Run may be called once.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return errors.New("alerting: dispatcher: Run called twice")
	}
	d.started = true
	sinks := d.sinks
	obs := d.observer
	if obs == nil {
		obs = nopObserver{}
	}
	for _, s := range sinks {
		s.obs = obs
	}
	d.mu.Unlock()
	if len(sinks) == 0 {
		return errors.New("alerting: dispatcher: no sinks")
	}

	consumers := make([]jetstream.Consumer, len(sinks))
	for i, s := range sinks {
		c, err := d.ensureConsumer(ctx, s)
		if err != nil && !Transient(err) {
			return err
		}
		// A transient failure (a cluster electing a leader) is the sink
		// loop's to retry: it must delay this sink, not stop the process.
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
	subjects := []string{HitSubjects, ReplaySubjectPrefix + s.name}
	if s.opts.Events {
		subjects = append(subjects, EventSubjects)
	}
	pending := maxAckPending
	if s.opts.Group.Window > 0 {
		pending += s.opts.Group.MaxHits
	}
	c, err := d.js.CreateOrUpdateConsumer(ctx, d.stream, jetstream.ConsumerConfig{
		Durable:        ConsumerPrefix + s.name,
		Description:    "ctwatch sink " + s.name,
		FilterSubjects: subjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        s.opts.AckWait,
		MaxAckPending:  pending,
		MaxDeliver:     -1,
	})
	if err != nil {
		return nil, fmt.Errorf("alerting: sink %s: consumer on stream %s: %w", s.name, d.stream, err)
	}
	return c, nil
}

// held is a message the Dispatcher has taken from a sink's consumer and not
// yet settled (acknowledged, handed back or dead-lettered).
type held struct {
	msg jetstream.Msg
	m   *Message
	// seq is the message's stream sequence; attempt counts its deliveries
	// to this sink, this one included.
	seq, attempt uint64
	// firstPublished is when the message was stored in the stream.
	firstPublished time.Time
}

// keeper tells the server, every third of the ack wait, that the messages
// a sink holds are still being worked on, so that neither a slow delivery
// nor a hit waiting in a group is handed out again. Safe for concurrent
// use.
type keeper struct {
	mu   sync.Mutex
	msgs map[*held]struct{}
}

func (k *keeper) add(hs ...*held) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, h := range hs {
		k.msgs[h] = struct{}{}
	}
}

func (k *keeper) remove(hs ...*held) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, h := range hs {
		delete(k.msgs, h)
	}
}

// run signals progress for every held message each interval until ctx
// ends.
func (k *keeper) run(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	tick := time.NewTicker(max(interval, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		k.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(k.msgs))
		for h := range k.msgs {
			msgs = append(msgs, h.msg)
		}
		k.mu.Unlock()
		for _, m := range msgs {
			if err := m.InProgress(); err != nil {
				logger.Debug("sink in-progress signal failed", "err", err)
			}
		}
	}
}

// runSink fetches messages one at a time and routes, groups and delivers
// them until ctx ends.
//
// Each fetch asks for one message and expires after fetchWait, when ctx and
// the groups' windows are checked again. Fetching one message per request
// (rather than with a prefetching iterator) means no message waits in a
// client buffer while its ack timer runs. Letting requests expire on the
// server, rather than cancelling them from the client, avoids abandoning a
// request while the server may be sending it a message: such a message
// would sit unseen until its ack wait ran out.
func (d *Dispatcher) runSink(ctx context.Context, s *sink, c jetstream.Consumer) {
	s.logger.Info("sink started", "consumer", ConsumerPrefix+s.name, "events", s.opts.Events, "group_window", s.opts.Group.Window)
	defer s.logger.Info("sink stopped")

	k := &keeper{msgs: map[*held]struct{}{}}
	kctx, stopKeeper := context.WithCancel(context.WithoutCancel(ctx))
	var kwg sync.WaitGroup
	kwg.Go(func() { k.run(kctx, s.opts.AckWait/3, s.logger) })
	defer func() {
		stopKeeper()
		kwg.Wait()
	}()
	g := &grouper{opts: s.opts.Group, groups: map[string]*group{}}
	defer func() {
		// Hits still waiting in groups go back to the server for the next
		// process (or this one after a restart) to group again.
		for _, members := range g.takeAll() {
			handBack(s, k, members)
		}
	}()

	failures := 0
	for c == nil && ctx.Err() == nil {
		failures++
		delay := backoff(uint64(failures), s.opts.MinBackoff, s.opts.MaxBackoff)
		if !wait(ctx, delay) {
			return
		}
		nc, err := d.ensureConsumer(ctx, s)
		if err != nil {
			s.logger.Warn("sink consumer set-up failed; retrying", "attempt", failures, "retry_in", delay, "err", err)
			continue
		}
		c = nc
	}
	failures = 0
	for ctx.Err() == nil {
		for _, members := range g.takeDue(time.Now()) {
			d.deliverGroup(ctx, s, k, members)
		}
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
			d.take(ctx, s, k, g, msg)
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

// take handles one fetched message: drop garbage, acknowledge what the
// route does not take, group hits when the sink groups, deliver the rest.
func (d *Dispatcher) take(ctx context.Context, s *sink, k *keeper, g *grouper, msg jetstream.Msg) {
	h := &held{msg: msg, attempt: 1, firstPublished: time.Now()}
	if md, err := msg.Metadata(); err == nil {
		h.attempt = max(md.NumDelivered, 1)
		h.seq = md.Sequence.Stream
		h.firstPublished = md.Timestamp
	}
	subject := msg.Subject()
	if strings.HasPrefix(subject, ReplaySubjectPrefix) {
		subject = msg.Headers().Get(SubjectHeader)
	}
	m, err := decodeMessage(subject, msg.Data())
	if err != nil {
		// Retrying cannot make garbage decodable; Term tells the server to
		// stop handing it out. Nothing ctwatch published can end up here.
		s.logger.Error("sink dropping undecodable message", "subject", msg.Subject(), "seq", h.seq, "err", err)
		if err := msg.Term(); err != nil {
			s.logger.Warn("sink term failed", "seq", h.seq, "err", err)
		}
		return
	}
	h.m = m
	if !s.opts.Route.Match(m) {
		s.obs.Skipped(observed(s, m, []*held{h}))
		ack(ctx, s, h)
		return
	}
	k.add(h)
	if s.opts.Group.Window > 0 && m.Hit != nil {
		if full := g.add(h, time.Now()); full != nil {
			d.deliverGroup(ctx, s, k, full)
		}
		return
	}
	d.deliver(ctx, s, k, []*held{h}, m)
}

// deliverGroup delivers the hits of one group: a lone hit as itself,
// several as one digest.
func (d *Dispatcher) deliverGroup(ctx context.Context, s *sink, k *keeper, members []*held) {
	if len(members) == 1 {
		d.deliver(ctx, s, k, members, members[0].m)
		return
	}
	hits := make([]event.Hit, len(members))
	first, last := members[0].firstPublished, members[0].firstPublished
	for i, h := range members {
		hits[i] = *h.m.Hit
		if h.firstPublished.Before(first) {
			first = h.firstPublished
		}
		if h.firstPublished.After(last) {
			last = h.firstPublished
		}
	}
	dg := newDigest(hits, first, last, s.opts.Group.MaxNames)
	d.mu.Lock()
	archive := d.archive
	d.mu.Unlock()
	if archive != nil {
		// A digest without its link is still worth sending: the archive
		// failing must not hold alerts back.
		if url, err := archive.Put(ctx, dg); err != nil {
			s.logger.Warn("sink digest not archived; sending it without a link", "id", dg.ID, "err", err)
		} else {
			dg.URL = url
		}
	}
	data, err := json.Marshal(dg)
	if err != nil {
		// Hits decoded from JSON encode again; this would be a bug.
		s.logger.Error("sink cannot encode digest; handing its hits back", "id", dg.ID, "err", err)
		handBack(s, k, members)
		return
	}
	d.deliver(ctx, s, k, members, &Message{Subject: members[0].m.Subject, Data: data, Digest: dg})
}

// deliver runs one delivery attempt of m, which carries the messages
// members, and settles them with the server: ack on success, immediate nak
// if shutting down, dead letter when they have failed too long, else a
// delayed nak.
func (d *Dispatcher) deliver(ctx context.Context, s *sink, k *keeper, members []*held, m *Message) {
	defer k.remove(members...)
	attempt := uint64(0)
	oldest := members[0].firstPublished
	for _, h := range members {
		attempt = max(attempt, h.attempt)
		if h.firstPublished.Before(oldest) {
			oldest = h.firstPublished
		}
	}
	log := s.logger.With("id", m.ID(), "kind", m.Kind(), "subject", m.Subject, "seq", members[0].seq, "attempt", attempt)
	if len(members) > 1 {
		log = log.With("hits", len(members))
	}

	err := notify(ctx, s, m)
	accepted := time.Now()
	interrupted := err != nil && ctx.Err() != nil
	if err != nil && !interrupted {
		// Every failed attempt counts, whether it is retried or
		// dead-lettered below.
		dv := observed(s, m, members)
		dv.Err = err
		s.obs.Failed(dv)
	}
	switch {
	case err == nil:
		dv := observed(s, m, members)
		dv.Accepted = accepted
		s.obs.Delivered(dv)
		for _, h := range members {
			ack(ctx, s, h)
		}
	case interrupted:
		log.Info("sink delivery interrupted by shutdown; handing it back", "err", err)
		handBack(s, nil, members)
	case (s.opts.MaxAttempts > 0 && attempt >= uint64(s.opts.MaxAttempts)) ||
		(s.opts.MaxAge > 0 && time.Since(oldest) >= s.opts.MaxAge):
		log.Error("sink giving up; moving to the dead-letter subject", "dead_subject", DeadSubjectPrefix+s.name, "err", err)
		for _, h := range members {
			if derr := deadLetter(ctx, d.js, s.name, h, err); derr != nil {
				// Not lost: the server hands it out again after the delay.
				log.Warn("sink dead-lettering failed; will retry the delivery", "err", derr)
				if err := h.msg.NakWithDelay(retryDelay(attempt, err, s.opts)); err != nil {
					log.Warn("sink nak failed; the server redelivers after the ack wait", "err", err)
				}
				continue
			}
			dv := observed(s, h.m, []*held{h})
			dv.Err = err
			s.obs.DeadLettered(dv)
		}
	default:
		delay := retryDelay(attempt, err, s.opts)
		log.Warn("sink delivery failed", "retry_in", delay, "err", err)
		for _, h := range members {
			if err := h.msg.NakWithDelay(delay); err != nil {
				log.Warn("sink nak failed; the server redelivers after the ack wait", "err", err)
			}
		}
	}
}

// ack acknowledges h and waits for the server to confirm it.
func ack(ctx context.Context, s *sink, h *held) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	if err := h.msg.DoubleAck(actx); err != nil {
		s.logger.Warn("sink ack failed; the message will be delivered again", "seq", h.seq, "err", err)
	}
}

// handBack returns messages to the server for immediate redelivery and, if
// k is not nil, stops keeping them.
func handBack(s *sink, k *keeper, members []*held) {
	if k != nil {
		k.remove(members...)
	}
	for _, h := range members {
		if err := h.msg.Nak(); err != nil {
			s.logger.Warn("sink nak failed; the server redelivers after the ack wait", "seq", h.seq, "err", err)
		}
	}
}

// notify waits for the sink's rate limit, then calls its Notifier. The
// Notifier's context survives the cancellation of ctx by the shutdown
// grace, so that a delivery under way can finish.
func notify(ctx context.Context, s *sink, m *Message) error {
	if s.limiter != nil {
		if err := s.limiter.Wait(ctx); err != nil {
			return fmt.Errorf("rate limit: %w", err)
		}
	}
	nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(s.opts.ShutdownGrace, cancel)
		context.AfterFunc(nctx, func() { t.Stop() })
	})
	defer stop()
	return safeNotify(nctx, s, m)
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

// grouper holds a sink's open groups: the hits of one rule waiting for the
// end of their window. Used by one goroutine.
type grouper struct {
	opts   Grouping
	groups map[string]*group
}

type group struct {
	members  []*held
	deadline time.Time
}

// add puts h into its rule's group, opening one if needed. It returns the
// group's members, removing it, when the group is full.
func (g *grouper) add(h *held, now time.Time) []*held {
	rule := h.m.Hit.Rule
	gr := g.groups[rule]
	if gr == nil {
		gr = &group{deadline: now.Add(g.opts.Window)}
		g.groups[rule] = gr
	}
	gr.members = append(gr.members, h)
	if len(gr.members) >= g.opts.MaxHits {
		delete(g.groups, rule)
		return gr.members
	}
	return nil
}

// takeDue removes and returns the groups whose window has ended, oldest
// first.
func (g *grouper) takeDue(now time.Time) [][]*held {
	var due []*group
	for rule, gr := range g.groups {
		if !now.Before(gr.deadline) {
			due = append(due, gr)
			delete(g.groups, rule)
		}
	}
	slices.SortFunc(due, func(a, b *group) int { return a.deadline.Compare(b.deadline) })
	out := make([][]*held, len(due))
	for i, gr := range due {
		out[i] = gr.members
	}
	return out
}

// takeAll removes and returns every group.
func (g *grouper) takeAll() [][]*held {
	var out [][]*held
	for rule, gr := range g.groups {
		out = append(out, gr.members)
		delete(g.groups, rule)
	}
	return out
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
