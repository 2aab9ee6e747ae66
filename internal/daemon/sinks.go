package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

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

// newDispatcher builds one notifier per configured sink. Errors name the
// sink: a sink that cannot even be opened (an unwritable JSONL path) stops
// the start, since running without it would silently hold its alerts back.
// The returned function closes what the notifiers opened.
func newDispatcher(bus *alerting.Bus, cfg *config.Config, logger *slog.Logger) (*alerting.Dispatcher, func(), error) {
	d := alerting.NewDispatcher(bus.JetStream(), alerting.StreamName, logger)
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for _, s := range cfg.Sinks {
		n, closeSink, err := NewNotifier(s, logger)
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
