package daemon

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/monitor"
)

// LogStatus is one followed log and how far ctwatch has got in it.
type LogStatus struct {
	Log monitor.Log
	// Checkpoint is nil when the log has not been started yet, or when
	// positions could not be read (see Positions on the report).
	Checkpoint *monitor.Checkpoint
}

// StatusReport lists the followed logs.
type StatusReport struct {
	Logs []LogStatus
	// Positions says where the positions came from, or why there are none.
	Positions string
}

// Status reads the followed logs and their checkpoints without starting any
// tailer. With an embedded NATS it reads the data directory only when no
// daemon holds it (two servers on one store would corrupt it).
func Status(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*StatusReport, error) {
	logs, err := LoadLogs(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	rep := &StatusReport{Logs: make([]LogStatus, len(logs))}
	for i, l := range logs {
		rep.Logs[i].Log = l
	}
	store, closeStore, why := openCheckpoints(ctx, cfg, logger)
	rep.Positions = why
	if store == nil {
		return rep, nil
	}
	defer closeStore()
	for i := range rep.Logs {
		id := rep.Logs[i].Log.ID
		cp, err := store.Load(ctx, hex.EncodeToString(id[:]))
		if err != nil {
			return nil, err
		}
		rep.Logs[i].Checkpoint = cp
	}
	return rep, nil
}

func openCheckpoints(ctx context.Context, cfg *config.Config, logger *slog.Logger) (monitor.CheckpointStore, func(), string) {
	if cfg.NATS.URL == "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "nats")); err != nil {
			return nil, nil, "no data yet in " + cfg.DataDir
		}
		unlock, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return nil, nil, "a running daemon holds " + cfg.DataDir + "; positions are shown only when it is stopped or NATS is external"
		}
		quiet := slog.New(slog.DiscardHandler)
		nc, shutdown, err := connectNATS(ctx, cfg, quiet)
		if err != nil {
			unlock()
			return nil, nil, fmt.Sprintf("cannot open %s: %v", cfg.DataDir, err)
		}
		bus, err := alerting.Open(ctx, nc, alerting.StreamConfig{MaxAge: cfg.NATS.StreamMaxAge, Duplicates: cfg.NATS.DedupeWindow})
		if err != nil {
			shutdown()
			unlock()
			return nil, nil, fmt.Sprintf("cannot open the stream: %v", err)
		}
		return monitor.NewKVCheckpoints(bus.Checkpoints()), func() { shutdown(); unlock() }, "from " + cfg.DataDir
	}
	nc, shutdown, err := connectNATS(ctx, cfg, logger)
	if err != nil {
		return nil, nil, fmt.Sprintf("cannot reach nats: %v", err)
	}
	bus, err := alerting.Open(ctx, nc, alerting.StreamConfig{MaxAge: cfg.NATS.StreamMaxAge, Duplicates: cfg.NATS.DedupeWindow})
	if err != nil {
		shutdown()
		return nil, nil, fmt.Sprintf("cannot open the stream: %v", err)
	}
	return monitor.NewKVCheckpoints(bus.Checkpoints()), shutdown, "from " + cfg.NATS.URL
}
