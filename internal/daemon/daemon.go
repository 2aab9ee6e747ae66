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
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/configs"
	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/internal/lease"
	"github.com/ctwatch/ctwatch/monitor"
	"github.com/ctwatch/ctwatch/rules"
)

// Option adjusts how Run behaves beyond the configuration.
type Option func(*options)

type options struct {
	reload      func() (*config.Config, error)
	onReload    func(ReloadStatus)
	onListening func(addr string)
	// keepLeases leaves the leases held at shutdown to expire instead
	// of giving them back: what a crash does, for tests.
	keepLeases bool
}

// WithReload lets the daemon reload its configuration and rules on SIGHUP
// and when the files change: load reads the configuration again (from the
// same file, environment and flags). Without it the daemon runs with the
// configuration it was given until it stops.
func WithReload(load func() (*config.Config, error)) Option {
	return func(o *options) { o.reload = load }
}

// WithReloadHook calls fn after every reload attempt with its outcome, from
// the reloader's goroutine; fn must not block. Tests wait on it; nothing
// else needs it.
func WithReloadHook(fn func(ReloadStatus)) Option {
	return func(o *options) { o.onReload = fn }
}

// WithWebListening calls fn once, from Run's goroutine, with the address
// (host:port) the web server listens on, as soon as its listener is open
// and before any log is followed; fn must not block. It is never called
// without web.listen. web.listen may name port 0 and let the system pick a
// free port, as tests do so that they can run side by side: this is how
// they learn the port. A supervisor that starts the daemon in-process could
// use it the same way, to know where to probe /readyz.
func WithWebListening(fn func(addr string)) Option {
	return func(o *options) { o.onListening = fn }
}

// process is one running daemon: the parts Run wires together, which the
// web server, the reloader and the status page read. Fields set before the
// tailers start never change; cfg, the rule engine and the sinks are
// swapped whole on reload.
type process struct {
	logger  *slog.Logger
	started time.Time
	nc      *nats.Conn
	bus     *alerting.Bus
	issuers *rules.MemoryIssuers
	matcher *ruleMatcher
	sup     *supervisor
	// leases shares the logs with the other processes on the same NATS.
	leases *lease.Manager
	sinks  *sinkRunner
	// archive keeps digests for the web server; nil without one.
	archive *alerting.KVArchive
	cfg     atomic.Pointer[config.Config]
	// lastReload is the outcome of the last reload; nil before the first.
	lastReload atomic.Pointer[ReloadStatus]
	// onReload, if set, hears every reload outcome.
	onReload func(ReloadStatus)
	// errc carries failures that must stop the daemon.
	errc chan error
	// metrics is the daemon's Prometheus registry, served on /metrics.
	metrics *metrics
}

// config returns the configuration in force.
func (p *process) config() *config.Config { return p.cfg.Load() }

// Run starts the daemon described by cfg and blocks until ctx ends, then
// shuts down in order and returns nil. It returns an error when something it
// cannot work without fails: the data directory, NATS, the rules, a sink, or
// a tailer's storage.
func Run(ctx context.Context, cfg *config.Config, logger *slog.Logger, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	p := &process{logger: logger, started: time.Now(), errc: make(chan error, 4), onReload: o.onReload}
	p.metrics = newMetrics(p)
	p.cfg.Store(cfg)
	issuers, err := newIssuerMemory()
	if err != nil {
		return err
	}
	p.issuers = issuers
	engine, err := loadRules(cfg, issuers)
	if err != nil {
		return err
	}
	if len(engine.Rules()) == 0 {
		logger.Warn("no rules: logs are followed and verified, but nothing will alert (set rules.files, or rules.builtin: true)")
	}
	p.matcher = newRuleMatcher(engine)
	p.matcher.hits = p.metrics

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
	p.nc = nc

	// Each JetStream set-up call is retried while it fails transiently:
	// several processes creating a replicated stream at once, or a cluster
	// electing a leader, take a few seconds, not a restart.
	if err := retryTransient(ctx, logger, "open hit stream", func(ctx context.Context) (err error) {
		p.bus, err = alerting.Open(ctx, nc, streamConfig(cfg.NATS))
		return err
	}); err != nil {
		return fmt.Errorf("open hit stream: %w", err)
	}

	var issuersKV *issuerStore
	if err := retryTransient(ctx, logger, "open issuer bucket", func(ctx context.Context) (err error) {
		issuersKV, err = openIssuerStore(ctx, p.bus.JetStream(), issuers, cfg.NATS.Replicas, logger)
		return err
	}); err != nil {
		return err
	}

	if cfg.Web.Listen != "" {
		// Without an external URL there is no address to give people
		// that is known to reach this server: digests carry no link.
		if err := retryTransient(ctx, logger, "open digest bucket", func(ctx context.Context) (err error) {
			p.archive, err = alerting.OpenArchive(ctx, p.bus.JetStream(), cfg.Web.ExternalURL, cfg.NATS.StreamMaxAge, cfg.NATS.Replicas)
			return err
		}); err != nil {
			return err
		}
	}
	p.sinks = &sinkRunner{bus: p.bus, archive: p.archive, observer: p.metrics.sinks, logger: logger, errc: p.errc}
	if err := p.sinks.start(ctx, cfg); err != nil {
		return err
	}
	defer p.sinks.stop(0)

	logs, err := LoadLogs(ctx, cfg, logger)
	if err != nil {
		return err
	}

	runCtx, stopTailers := context.WithCancel(ctx)
	defer stopTailers()
	p.sup = &supervisor{
		ctx:         runCtx,
		logger:      logger,
		fetch:       fetchOptions(cfg.Monitor),
		perLog:      perLogConfig(cfg),
		matcher:     p.matcher,
		publisher:   p.bus,
		checkpoints: monitor.NewKVCheckpoints(p.bus.Checkpoints()),
		client:      &http.Client{},
		errc:        p.errc,
		running:     map[string]*runningTailer{},
	}
	// With an embedded server, which listens on no port, no other process
	// can share the logs: leases a crashed previous run left are taken at
	// once instead of after they expire.
	if err := retryTransient(ctx, logger, "open lease buckets", func(ctx context.Context) (err error) {
		p.leases, err = lease.Open(ctx, p.bus.JetStream(), lease.Config{TTL: cfg.Cluster.LeaseTTL, Replicas: cfg.NATS.Replicas, Exclusive: cfg.NATS.URL == "", Logger: logger}, p.sup)
		return err
	}); err != nil {
		return err
	}
	p.sup.leases = p.leases
	if cfg.Web.Listen != "" {
		// Now that every part the pages read is in place, and before any
		// tailer runs: a listener that cannot open stops the start cleanly.
		stopWeb, addr, err := serveWeb(ctx, cfg.Web.Listen, p.webHandler(), logger)
		if err != nil {
			return err
		}
		defer stopWeb()
		if o.onListening != nil {
			o.onListening(addr.String())
		}
	}
	issuersCtx, stopIssuers := context.WithCancel(context.WithoutCancel(ctx))
	var issuersDone sync.WaitGroup
	issuersDone.Go(func() { issuersKV.run(issuersCtx) })
	defer func() { stopIssuers(); issuersDone.Wait() }()
	p.sup.apply(logs)
	// The first round before anything else, so that a lone process
	// follows its logs at once.
	p.leases.Round(runCtx)
	var leasesDone sync.WaitGroup
	leasesDone.Go(func() { p.leases.Run(runCtx) })
	if src := listSource(cfg, logger); src != nil && isURL(cfg.LogList) && cfg.LogListRefresh > 0 {
		go p.sup.refresh(src, cfg, cfg.LogListRefresh)
	}
	if o.reload != nil {
		go p.watchReload(runCtx, o.reload, subscribeSIGHUP())
	}
	logger.Info("ctwatch running", "logs", len(logs), "leased", len(p.leases.Held()), "owner", p.leases.Owner(), "rules", len(engine.Rules()), "sinks", len(cfg.Sinks), "data_dir", cfg.DataDir)

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case runErr = <-p.errc:
		logger.Error("stopping on error", "err", runErr)
	}
	// Tailers first: after this no new hit is published.
	stopTailers()
	// No lease taken after this, so no tailer started.
	leasesDone.Wait()
	p.sup.wait()
	if !o.keepLeases {
		// Let peers take this process's logs at once.
		releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		p.leases.Release(releaseCtx)
		cancel()
	}
	// Matching has stopped: store the last new issuer keys.
	stopIssuers()
	issuersDone.Wait()
	// Sinks next: let them deliver what is already in the stream for a
	// moment, then stop; whatever is left stays in JetStream for next time.
	p.sinks.stop(5 * time.Second)
	logger.Info("stopped")
	return runErr
}

// connectNATS starts the embedded server when no URL is configured, and
// returns a function that closes the connection before the server.
func connectNATS(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*nats.Conn, func(), error) {
	if cfg.NATS.URL != "" {
		nc, err := connectExternal(ctx, cfg.NATS)
		if err != nil {
			return nil, nil, err
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
// which log the certificate was seen. The engine can be replaced while
// tailers run (a reload): each Match uses one engine throughout.
type ruleMatcher struct {
	engine atomic.Pointer[rules.Engine]
	// hits counts the hits found; nil counts nothing. Set before the
	// tailers start.
	hits hitCounter
}

func newRuleMatcher(e *rules.Engine) *ruleMatcher {
	m := &ruleMatcher{}
	m.engine.Store(e)
	return m
}

// hitCounter counts the hits the rules find, by rule and severity. It is
// called from every tailer's goroutines at once, so it must be safe for
// concurrent use.
type hitCounter interface {
	countHit(rule string, severity event.Severity)
}

// Engine returns the engine in use.
func (m *ruleMatcher) Engine() *rules.Engine { return m.engine.Load() }

func (m *ruleMatcher) Match(e *monitor.Entry) []event.Hit {
	engine := m.engine.Load()
	ms := engine.Match(e.Cert)
	if len(ms) == 0 {
		return nil
	}
	ref := &event.LogRef{Name: e.Log.Name, URL: e.Log.URL, Index: e.Index}
	hits := make([]event.Hit, len(ms))
	for i, mt := range ms {
		hits[i] = engine.NewHit(mt, e.Cert, ref)
		if m.hits != nil {
			m.hits.countHit(mt.Rule, mt.Severity)
		}
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

// startupPatience bounds how long a set-up call is retried at start: long
// enough for a cluster to elect leaders or a peer to finish creating the
// stream, short enough that a NATS that never answers ends in an error a
// supervisor reports.
const startupPatience = 2 * time.Minute

// retryTransient runs fn until it succeeds, fails with an error that
// retrying cannot fix (see alerting.Transient), ctx ends, or
// startupPatience has passed; it returns fn's last error then.
func retryTransient(ctx context.Context, logger *slog.Logger, what string, fn func(context.Context) error) error {
	deadline := time.Now().Add(startupPatience)
	delay := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || !alerting.Transient(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		logger.Warn(what+" failed; retrying", "attempt", attempt, "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}
