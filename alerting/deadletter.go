package alerting

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Subjects and headers of dead letters and replays. A message that a sink
// failed to deliver for too long (SinkOptions.MaxAttempts, MaxAge) is moved
// to DeadSubjectPrefix+sink with the last error, and leaves the sink's
// queue so that it stops holding back the ones behind it. [Replay] puts
// dead letters back, on ReplaySubjectPrefix+sink, which only that sink's
// consumer reads: the other sinks, which delivered the message already, do
// not see it twice.
const (
	DeadSubjectPrefix   = "ctwatch.dead."
	ReplaySubjectPrefix = "ctwatch.replay."
	// DeadSubjects and ReplaySubjects match every sink's.
	DeadSubjects   = DeadSubjectPrefix + "*"
	ReplaySubjects = ReplaySubjectPrefix + "*"

	// SubjectHeader carries the original subject of a dead letter or a
	// replayed message (ctwatch.hit.high, ctwatch.event.log_unreachable).
	SubjectHeader = "Ctwatch-Subject"
	// ErrorHeader carries the error of a dead letter's last attempt.
	ErrorHeader = "Ctwatch-Error"
	// AttemptsHeader carries how many attempts a dead letter had.
	AttemptsHeader = "Ctwatch-Attempts"
	// FirstSeenHeader carries when the message was first published
	// (RFC 3339), so age survives a replay.
	FirstSeenHeader = "Ctwatch-First-Published"
)

// maxErrorHeader bounds the error text kept with a dead letter.
const maxErrorHeader = 1000

// DeadLetter is one message a sink gave up on.
type DeadLetter struct {
	// Seq is its sequence in the stream.
	Seq uint64
	// Subject is the subject it was first published on.
	Subject string
	// ID is the hit's or event's ID.
	ID string
	// Attempts is how many deliveries failed.
	Attempts int
	// Error is the last delivery error.
	Error string
	// Time is when it was dead-lettered.
	Time time.Time
	// Data is the hit or event JSON.
	Data []byte
}

// deadLetter moves msg (a message of sink s that failed with err) to the
// sink's dead-letter subject, then acknowledges it. The publish carries a
// Msg-Id made of the sink and the message's stream sequence, so repeating
// it after a lost ack stores one dead letter, not two.
func deadLetter(ctx context.Context, js jetstream.JetStream, sinkName string, h *held, cause error) error {
	errText := oneLine(cause.Error())
	if len(errText) > maxErrorHeader {
		errText = errText[:maxErrorHeader] + "…"
	}
	out := &nats.Msg{
		Subject: DeadSubjectPrefix + sinkName,
		Data:    h.m.Data,
		Header:  nats.Header{},
	}
	out.Header.Set(SubjectHeader, h.m.Subject)
	out.Header.Set(ErrorHeader, errText)
	out.Header.Set(AttemptsHeader, strconv.FormatUint(h.attempt, 10))
	out.Header.Set(FirstSeenHeader, h.firstPublished.UTC().Format(time.RFC3339Nano))
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	if _, err := js.PublishMsg(pctx, out,
		jetstream.WithMsgID(fmt.Sprintf("dead.%s.%d", sinkName, h.seq)),
		jetstream.WithExpectStream(StreamName),
	); err != nil {
		return fmt.Errorf("alerting: dead-letter %s: %w", h.m.ID(), err)
	}
	if err := h.msg.DoubleAck(pctx); err != nil {
		return fmt.Errorf("alerting: ack dead-lettered %s: %w", h.m.ID(), err)
	}
	return nil
}

// oneLine folds an error onto one line for a header.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// DeadLetters lists the dead letters of sink in stream order. It reads the
// stream with an ephemeral consumer and changes nothing.
func DeadLetters(ctx context.Context, js jetstream.JetStream, sinkName string) ([]DeadLetter, error) {
	var out []DeadLetter
	err := eachDead(ctx, js, sinkName, func(dl DeadLetter) error {
		out = append(out, dl)
		return nil
	})
	return out, err
}

// Replay gives every dead letter of sink another chance: it republishes
// each on the sink's replay subject (which only that sink reads) and then
// deletes the dead letter. It returns how many it replayed. Interrupted,
// it may be run again: a dead letter republished but not yet deleted is
// republished with the same Msg-Id, which the stream drops.
func Replay(ctx context.Context, js jetstream.JetStream, sinkName string) (int, error) {
	if !validToken(sinkName) {
		return 0, fmt.Errorf("alerting: replay: invalid sink name %q", sinkName)
	}
	stream, err := js.Stream(ctx, StreamName)
	if err != nil {
		return 0, fmt.Errorf("alerting: replay: stream %s: %w", StreamName, err)
	}
	n := 0
	err = eachDead(ctx, js, sinkName, func(dl DeadLetter) error {
		out := &nats.Msg{Subject: ReplaySubjectPrefix + sinkName, Data: dl.Data, Header: nats.Header{}}
		out.Header.Set(SubjectHeader, dl.Subject)
		if _, err := js.PublishMsg(ctx, out,
			jetstream.WithMsgID(fmt.Sprintf("replay.%s.%d", sinkName, dl.Seq)),
			jetstream.WithExpectStream(StreamName),
		); err != nil {
			return fmt.Errorf("alerting: replay %s: %w", dl.ID, err)
		}
		if err := stream.DeleteMsg(ctx, dl.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("alerting: replay %s: delete dead letter %d: %w", dl.ID, dl.Seq, err)
		}
		n++
		return nil
	})
	return n, err
}

// eachDead calls fn for each dead letter of sink, in stream order, until
// fn fails.
func eachDead(ctx context.Context, js jetstream.JetStream, sinkName string, fn func(DeadLetter) error) error {
	c, err := js.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{DeadSubjectPrefix + sinkName},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("alerting: read dead letters of %s: %w", sinkName, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return fmt.Errorf("alerting: read dead letters of %s: %w", sinkName, err)
	}
	remaining := info.NumPending
	for remaining > 0 {
		msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return fmt.Errorf("alerting: read dead letters of %s: %w", sinkName, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("alerting: read dead letters of %s: %w", sinkName, err)
		}
		remaining = md.NumPending
		dl := DeadLetter{
			Seq:     md.Sequence.Stream,
			Subject: msg.Headers().Get(SubjectHeader),
			Error:   msg.Headers().Get(ErrorHeader),
			Time:    md.Timestamp,
			Data:    msg.Data(),
		}
		dl.Attempts, _ = strconv.Atoi(msg.Headers().Get(AttemptsHeader))
		if m, err := decodeMessage(dl.Subject, dl.Data); err == nil {
			dl.ID = m.ID()
		}
		if err := fn(dl); err != nil {
			return err
		}
	}
	return nil
}
