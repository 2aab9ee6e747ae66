package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/alertmanager"
	"github.com/ctwatch/ctwatch/alerting/email"
	"github.com/ctwatch/ctwatch/alerting/exec"
	"github.com/ctwatch/ctwatch/alerting/httpsink"
	"github.com/ctwatch/ctwatch/alerting/jsonl"
	"github.com/ctwatch/ctwatch/alerting/slack"
	"github.com/ctwatch/ctwatch/alerting/stdout"
	"github.com/ctwatch/ctwatch/alerting/webhook"
	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
)

// sinkRunner runs the sinks of the configuration in force: one Dispatcher
// at a time, replaced whole when a reload changes the sinks. Because every
// sink reads through a durable consumer, the gap between stopping one
// Dispatcher and starting the next only delays deliveries.
type sinkRunner struct {
	bus     *alerting.Bus
	archive alerting.DigestArchive // nil: digests without links
	// observer hears every Dispatcher's outcomes (metrics); nil: none.
	observer alerting.Observer
	logger   *slog.Logger
	errc     chan<- error

	mu      sync.Mutex
	sinks   []config.Sink
	cancel  context.CancelFunc
	done    chan struct{}
	release func()
}

// build makes a Dispatcher for the configured sinks, without starting it.
// Errors name the sink: a sink that cannot even be opened (an unwritable
// JSONL path) must not be silently left out, since its alerts would wait.
func (r *sinkRunner) build(cfg *config.Config) (*alerting.Dispatcher, func(), error) {
	d := alerting.NewDispatcher(r.bus.JetStream(), alerting.StreamName, r.logger)
	if r.archive != nil {
		if err := d.SetArchive(r.archive); err != nil {
			return nil, nil, err
		}
	}
	if r.observer != nil {
		if err := d.SetObserver(r.observer); err != nil {
			return nil, nil, err
		}
	}
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for _, s := range cfg.Sinks {
		n, closeSink, err := NewNotifier(s, r.logger)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, closeSink)
		if err := d.Add(s.Name, n, SinkOptions(s)); err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("sink %s: %w", s.Name, err)
		}
	}
	return d, closeAll, nil
}

// start builds and runs the sinks of cfg; it fails if one cannot be built
// and nothing runs then. With no sinks it runs nothing.
func (r *sinkRunner) start(ctx context.Context, cfg *config.Config) error {
	d, release, err := r.build(cfg)
	if err != nil {
		return err
	}
	r.run(ctx, cfg, d, release)
	return nil
}

func (r *sinkRunner) run(ctx context.Context, cfg *config.Config, d *alerting.Dispatcher, release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	r.sinks, r.cancel, r.done, r.release = slices.Clone(cfg.Sinks), cancel, done, release
	if len(cfg.Sinks) == 0 {
		close(done)
		return
	}
	go func() {
		defer close(done)
		if err := d.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			select {
			case r.errc <- fmt.Errorf("sinks: %w", err):
			default:
			}
		}
	}()
}

// replace builds the sinks of cfg and, only if that worked, stops the
// running ones and starts the new. A failed build leaves the running sinks
// as they are.
func (r *sinkRunner) replace(ctx context.Context, cfg *config.Config) error {
	d, release, err := r.build(cfg)
	if err != nil {
		return err
	}
	r.stop(0)
	r.run(ctx, cfg, d, release)
	return nil
}

// stop lets the running sinks deliver what is pending for up to grace,
// then stops them and releases what they opened. Calling it again is
// harmless.
func (r *sinkRunner) stop(grace time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel == nil {
		return
	}
	if grace > 0 {
		drainSinks(r.bus, r.sinks, grace)
	}
	r.cancel()
	<-r.done
	r.release()
	r.cancel = nil
}

// current returns the sinks that run.
func (r *sinkRunner) current() []config.Sink {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sinks)
}

// drainSinks waits until every sink's consumer has nothing pending, or the
// grace period ends.
func drainSinks(bus *alerting.Bus, sinks []config.Sink, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		total := uint64(0)
		for _, s := range sinks {
			n, err := pending(ctx, bus, s.Name)
			if err != nil {
				return
			}
			total += n
		}
		if total == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// NewNotifier builds the integration a configured sink names, for the
// daemon and for `ctwatch sinks test`. The returned function releases what
// it opened (a JSONL file); it is never nil when err is nil.
func NewNotifier(s config.Sink, logger *slog.Logger) (alerting.Notifier, func(), error) {
	noop := func() {}
	wrap := func(err error) (alerting.Notifier, func(), error) {
		return nil, nil, fmt.Errorf("sink %s: %w", s.Name, err)
	}
	tlsOpts := httpsink.TLS{
		CAFile:             s.TLS.CAFile,
		CertFile:           s.TLS.CertFile,
		KeyFile:            s.TLS.KeyFile,
		ServerName:         s.TLS.ServerName,
		InsecureSkipVerify: s.TLS.InsecureSkipVerify,
	}
	var header http.Header
	if len(s.Headers) > 0 {
		header = http.Header{}
		for k, v := range s.Headers {
			header.Set(k, v)
		}
	}
	switch s.Type {
	case config.SinkStdout:
		return stdout.New(os.Stdout), noop, nil
	case config.SinkJSONL:
		j, err := jsonl.Open(s.Path)
		if err != nil {
			return wrap(err)
		}
		return j, func() { _ = j.Close() }, nil
	case config.SinkWebhook:
		w, err := webhook.New(webhook.Config{URL: s.URL, Timeout: s.Timeout, Header: header, TLS: tlsOpts, Secret: s.Secret})
		if err != nil {
			return wrap(err)
		}
		return w, noop, nil
	case config.SinkSlack:
		n, err := slack.New(slack.Config{URL: s.URL, Timeout: s.Timeout, TLS: tlsOpts})
		if err != nil {
			return wrap(err)
		}
		return n, noop, nil
	case config.SinkAlertmanager:
		n, err := alertmanager.New(alertmanager.Config{URL: s.URL, Timeout: s.Timeout, TLS: tlsOpts, Header: header,
			Labels: s.Labels, ResolveAfter: s.ResolveAfter})
		if err != nil {
			return wrap(err)
		}
		return n, noop, nil
	case config.SinkEmail:
		n, err := email.New(email.Config{Addr: s.SMTP, TLSMode: s.SMTPTLS, TLS: tlsOpts, From: s.From, To: s.To,
			Username: s.Username, Password: s.Password, Timeout: s.Timeout})
		if err != nil {
			return wrap(err)
		}
		return n, noop, nil
	case config.SinkExec:
		n, err := exec.New(exec.Config{Command: s.Command, Args: s.Args, Timeout: s.Timeout, Logger: logger.With("sink", s.Name)})
		if err != nil {
			return wrap(err)
		}
		return n, noop, nil
	}
	return wrap(fmt.Errorf("unknown type %q", s.Type))
}

// SinkOptions translates a configured sink's routing, grouping, retry and
// rate settings into the Dispatcher's terms.
func SinkOptions(s config.Sink) alerting.SinkOptions {
	o := alerting.SinkOptions{
		Events: s.Events,
		Route: alerting.Route{
			MinSeverity: event.Severity(s.Route.MinSeverity),
			Rules:       s.Route.Rules,
			Tags:        s.Route.Tags,
			Domains:     s.Route.Domains,
		},
		Group:       alerting.Grouping{Window: s.Group.Window, MaxNames: s.Group.MaxNames, MaxHits: s.Group.MaxHits},
		MinBackoff:  s.Retry.MinBackoff,
		MaxBackoff:  s.Retry.MaxBackoff,
		MaxAttempts: s.Retry.MaxAttempts,
		MaxAge:      s.Retry.MaxAge,
		Rate:        s.Rate,
		Burst:       s.Burst,
	}
	for _, k := range s.Route.Events {
		o.Route.EventKinds = append(o.Route.EventKinds, event.LogEventKind(k))
	}
	return o
}

// pending returns how many messages the sink's consumer has not yet had
// acknowledged; 0 when the consumer does not exist yet.
func pending(ctx context.Context, bus *alerting.Bus, sink string) (uint64, error) {
	c, err := bus.JetStream().Consumer(ctx, alerting.StreamName, alerting.ConsumerPrefix+sink)
	if err != nil {
		return 0, fmt.Errorf("consumer of sink %s: %w", sink, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("consumer of sink %s: %w", sink, err)
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}
