package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/jsonl"
	"github.com/ctwatch/ctwatch/alerting/stdout"
	"github.com/ctwatch/ctwatch/alerting/webhook"
	"github.com/ctwatch/ctwatch/internal/config"
)

// newDispatcher builds one notifier per configured sink. Errors name the
// sink: a sink that cannot even be opened (an unwritable JSONL path) stops
// the start, since running without it would silently hold its alerts back.
func newDispatcher(bus *alerting.Bus, cfg *config.Config, logger *slog.Logger) (*alerting.Dispatcher, []io.Closer, error) {
	d := alerting.NewDispatcher(bus.JetStream(), alerting.StreamName, logger)
	var closers []io.Closer
	fail := func(err error) (*alerting.Dispatcher, []io.Closer, error) {
		for _, c := range closers {
			_ = c.Close()
		}
		return nil, nil, err
	}
	for _, s := range cfg.Sinks {
		var n alerting.Notifier
		switch s.Type {
		case config.SinkStdout:
			n = stdout.New(os.Stdout)
		case config.SinkJSONL:
			j, err := jsonl.Open(s.Path)
			if err != nil {
				return fail(fmt.Errorf("sink %s: %w", s.Name, err))
			}
			closers = append(closers, j)
			n = j
		case config.SinkWebhook:
			w, err := webhook.New(webhook.Config{URL: s.URL})
			if err != nil {
				return fail(fmt.Errorf("sink %s: %w", s.Name, err))
			}
			n = w
		default:
			return fail(fmt.Errorf("sink %s: unknown type %q", s.Name, s.Type))
		}
		if err := d.Add(s.Name, n, alerting.SinkOptions{Events: s.Events}); err != nil {
			return fail(fmt.Errorf("sink %s: %w", s.Name, err))
		}
	}
	return d, closers, nil
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
