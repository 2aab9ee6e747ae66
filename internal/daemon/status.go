package daemon

import (
	"context"
	"encoding/hex"
	"errors"
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
	}
	bus, closeBus, err := OpenBus(ctx, cfg, logger)
	if errors.Is(err, ErrDataDirInUse) {
		return nil, nil, "a running daemon holds " + cfg.DataDir + "; positions are shown only when it is stopped or NATS is external"
	}
	if err != nil {
		return nil, nil, err.Error()
	}
	where := "from " + cfg.DataDir
	if cfg.NATS.URL != "" {
		where = "from " + cfg.NATS.URL
	}
	return monitor.NewKVCheckpoints(bus.Checkpoints()), closeBus, where
}

// ErrDataDirInUse is returned by [OpenBus] when a running daemon holds the
// data directory of an embedded NATS server.
var ErrDataDirInUse = errors.New("in use by a running ctwatch; stop it, or use an external NATS (nats.url) to work beside it")

// OpenBus connects to the configured NATS (starting the embedded server on
// the data directory when no URL is set) and opens the hit stream, for
// commands that work on a daemon's state (`ctwatch sinks replay`, `ctwatch
// logs`). The returned function closes everything. With an embedded server
// it fails with an error wrapping ErrDataDirInUse while a daemon runs:
// two servers on one store would corrupt it.
func OpenBus(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*alerting.Bus, func(), error) {
	unlock := func() {}
	if cfg.NATS.URL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, nil, fmt.Errorf("create data dir: %w", err)
		}
		u, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return nil, nil, err
		}
		unlock = u
		logger = slog.New(slog.DiscardHandler) // the embedded server's chatter is not the command's output
	}
	nc, shutdown, err := connectNATS(ctx, cfg, logger)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	bus, err := alerting.Open(ctx, nc, alerting.StreamConfig{MaxAge: cfg.NATS.StreamMaxAge, Duplicates: cfg.NATS.DedupeWindow})
	if err != nil {
		shutdown()
		unlock()
		return nil, nil, fmt.Errorf("open hit stream: %w", err)
	}
	return bus, func() { shutdown(); unlock() }, nil
}
