package alerting_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/stdout"
)

// How `ctwatch run` wires alerting with no configuration: an embedded
// server under the data directory, the stream, and stdout as the one sink.
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	logger := slog.Default()

	srv, err := alerting.StartEmbedded(ctx, "/var/lib/ctwatch", logger)
	if err != nil {
		logger.Error("nats", "err", err)
		return
	}
	defer srv.Shutdown() // after the connection is closed: defers run last-in first-out
	nc, err := srv.Connect()
	if err != nil {
		logger.Error("nats", "err", err)
		return
	}
	defer nc.Close()

	bus, err := alerting.Open(ctx, nc, alerting.StreamConfig{})
	if err != nil {
		logger.Error("stream", "err", err)
		return
	}
	// bus is the monitor's Publisher; bus.Checkpoints() backs its
	// CheckpointStore.

	d := alerting.NewDispatcher(bus.JetStream(), alerting.StreamName, logger)
	if err := d.Add("stdout", stdout.New(os.Stdout), alerting.SinkOptions{Events: true}); err != nil {
		logger.Error("sink", "err", err)
		return
	}
	if err := d.Run(ctx); err != nil { // until ctx is cancelled
		logger.Error("dispatcher", "err", err)
	}
}
