// Package daemon wires ctwatch's parts into the long-running process behind
// `ctwatch run`: NATS (embedded or external), the hit stream, the rules, one
// tailer per log and one delivery loop per sink.
//
// It holds no logic of its own beyond the wiring and the order of shutdown,
// which matters: tailers stop first so that no hit is published after the
// sinks have stopped reading, and NATS closes last.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/configs"
	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/monitor"
	"github.com/ctwatch/ctwatch/rules"
)

// Run starts the daemon described by cfg and blocks until ctx ends, then
// shuts down in order and returns nil. It returns an error when something it
// cannot work without fails: the data directory, NATS, the rules, or a
// tailer's storage.
func Run(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	issuers, err := newIssuerMemory()
	if err != nil {
		return err
	}
	engine, err := loadRules(cfg, issuers)
	if err != nil {
		return err
	}
	if len(engine.Rules()) == 0 {
		logger.Warn("no rules: logs are followed and verified, but nothing will alert (set rules.files, or rules.builtin: true)")
	}

	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()

	nc, shutdownNATS, err := connectNATS(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer shutdownNATS()

	bus, err := alerting.Open(ctx, nc, alerting.StreamConfig{MaxAge: cfg.NATS.StreamMaxAge, Duplicates: cfg.NATS.DedupeWindow})
	if err != nil {
		return fmt.Errorf("open hit stream: %w", err)
	}

	issuerStore, err := openIssuerStore(ctx, bus.JetStream(), issuers, logger)
	if err != nil {
		return err
	}

	disp, closeSinks, err := newDispatcher(bus, cfg, logger)
	if err != nil {
		return err
	}
	defer closeSinks()
	if cfg.Web.Listen != "" {
		// Without an external URL there is no address to give people
		// that is known to reach this server: digests carry no link.
		archive, err := alerting.OpenArchive(ctx, bus.JetStream(), cfg.Web.ExternalURL, cfg.NATS.StreamMaxAge, 0)
		if err != nil {
			return err
		}
		if err := disp.SetArchive(archive); err != nil {
			return err
		}
		stopWeb, err := serveWeb(ctx, cfg.Web.Listen, newWebHandler(archive, logger), logger)
		if err != nil {
			return err
		}
		defer stopWeb()
	}

	logs, err := LoadLogs(ctx, cfg, logger)
	if err != nil {
		return err
	}

	runCtx, stopTailers := context.WithCancel(ctx)
	defer stopTailers()
	sinkCtx, stopSinks := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSinks()

	errc := make(chan error, 2)
	var sinksDone sync.WaitGroup
	sinksDone.Go(func() {
		if err := disp.Run(sinkCtx); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("sinks: %w", err)
		}
	})

	sup := &supervisor{
		ctx:         runCtx,
		logger:      logger,
		fetch:       fetchOptions(cfg.Monitor),
		perLog:      perLogConfig(cfg),
		matcher:     &ruleMatcher{engine: engine},
		publisher:   bus,
		checkpoints: monitor.NewKVCheckpoints(bus.Checkpoints()),
		client:      &http.Client{},
		errc:        errc,
		running:     map[string]*runningTailer{},
	}
	issuersCtx, stopIssuers := context.WithCancel(context.WithoutCancel(ctx))
	var issuersDone sync.WaitGroup
	issuersDone.Go(func() { issuerStore.run(issuersCtx) })
	defer func() { stopIssuers(); issuersDone.Wait() }()
	sup.apply(logs)
	if src := listSource(cfg, logger); src != nil && isURL(cfg.LogList) && cfg.LogListRefresh > 0 {
		go sup.refresh(src, cfg, cfg.LogListRefresh)
	}
	logger.Info("ctwatch running", "logs", len(logs), "rules", len(engine.Rules()), "sinks", len(cfg.Sinks), "data_dir", cfg.DataDir)

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case runErr = <-errc:
		logger.Error("stopping on error", "err", runErr)
	}
	// Tailers first: after this no new hit is published.
	stopTailers()
	sup.wait()
	// Matching has stopped: store the last new issuer keys.
	stopIssuers()
	issuersDone.Wait()
	// Sinks next: let them deliver what is already in the stream for a
	// moment, then stop; whatever is left stays in JetStream for next time.
	drainSinks(bus, cfg, 5*time.Second)
	stopSinks()
	sinksDone.Wait()
	logger.Info("stopped")
	return runErr
}

// drainSinks waits until every sink consumer has nothing pending, or the
// grace period ends.
func drainSinks(bus *alerting.Bus, cfg *config.Config, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		total := uint64(0)
		for _, s := range cfg.Sinks {
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

// connectNATS starts the embedded server when no URL is configured, and
// returns a function that closes the connection before the server.
func connectNATS(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*nats.Conn, func(), error) {
	if cfg.NATS.URL != "" {
		nc, err := alerting.Connect(ctx, cfg.NATS.URL)
		if err != nil {
			return nil, nil, fmt.Errorf("connect to nats %s: %w", cfg.NATS.URL, err)
		}
		return nc, func() { _ = nc.Drain(); nc.Close() }, nil
	}
	srv, err := alerting.StartEmbedded(ctx, cfg.DataDir, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("start embedded nats: %w", err)
	}
	nc, err := srv.Connect()
	if err != nil {
		srv.Shutdown()
		return nil, nil, fmt.Errorf("connect to embedded nats: %w", err)
	}
	return nc, func() { _ = nc.Drain(); nc.Close(); srv.Shutdown() }, nil
}

// lockDataDir takes an exclusive lock on the data directory so that two
// daemons never share one embedded JetStream store, which would corrupt it.
func lockDataDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("data dir %s: %w (%v)", dir, ErrDataDirInUse, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

// LoadRules compiles the built-in rules (unless turned off) and the
// configured rule files, with the feeds and CA issuer sets shipped with
// ctwatch. Every problem in any file is in the returned error.
//
// new_issuer rules get a memory that knows the built-in CA keys and is not
// persisted (what `ctwatch check` and `rules validate` need); Run gives
// its own, backed by the IssuersBucket.
func LoadRules(cfg *config.Config) (*rules.Engine, error) {
	issuers, err := newIssuerMemory()
	if err != nil {
		return nil, err
	}
	return loadRules(cfg, issuers)
}

func loadRules(cfg *config.Config, issuers rules.IssuerMemory) (*rules.Engine, error) {
	opts := []rules.Option{rules.WithData(rules.Builtin()), rules.WithIssuerMemory(issuers)}
	if cfg.Rules.Builtin {
		opts = append(opts, rules.WithSources(rules.Source{Name: BuiltinRulesName, Data: configs.BuiltinRules()}))
	}
	return rules.Load(cfg.Rules.Files, opts...)
}

// BuiltinRulesName is how problems and rule listings name the built-in
// rule file.
const BuiltinRulesName = "(built-in) configs/rules/builtin.yaml"

// ruleMatcher adapts the rule engine to monitor.Matcher, adding where in
// which log the certificate was seen.
type ruleMatcher struct {
	engine *rules.Engine
}

func (m *ruleMatcher) Match(e *monitor.Entry) []event.Hit {
	ms := m.engine.Match(e.Cert)
	if len(ms) == 0 {
		return nil
	}
	ref := &event.LogRef{Name: e.Log.Name, URL: e.Log.URL, Index: e.Index}
	hits := make([]event.Hit, len(ms))
	for i, mt := range ms {
		hits[i] = m.engine.NewHit(mt, e.Cert, ref)
	}
	return hits
}

// listSource returns where the log list comes from, or nil when none is
// configured. The bundled list is the fallback for an unreachable URL.
func listSource(cfg *config.Config, logger *slog.Logger) *monitor.LogListSource {
	if cfg.LogList == "" {
		return nil
	}
	return monitor.NewLogListSource(cfg.LogList, &http.Client{Timeout: 30 * time.Second}, logger, configs.LogList())
}
