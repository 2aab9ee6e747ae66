package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/monitor"
)

// LoadLogs returns the logs to follow: those of the configured log list
// (when any) plus the explicit `logs:` entries. An explicit entry with the
// same key as a listed log replaces it, so a user can tune one log.
func LoadLogs(ctx context.Context, cfg *config.Config, logger *slog.Logger) ([]monitor.Log, error) {
	var listed []monitor.Log
	if src := listSource(cfg, logger); src != nil {
		l, err := src.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("log list %s: %w", cfg.LogList, err)
		}
		listed = l
	}
	return mergeLogs(listed, explicitLogs(cfg)), nil
}

func explicitLogs(cfg *config.Config) []monitor.Log {
	out := make([]monitor.Log, 0, len(cfg.Logs))
	for _, lc := range cfg.Logs {
		l := monitor.Log{
			Name:          lc.Name,
			Kind:          monitor.Kind(lc.Kind),
			URL:           strings.TrimRight(lc.URL, "/"),
			MonitoringURL: strings.TrimRight(lc.MonitoringURL, "/"),
			Origin:        lc.Origin,
			Key:           lc.Key,
			ID:            sha256.Sum256(lc.Key),
			Start:         lc.Start,
		}
		out = append(out, l)
	}
	return out
}

func mergeLogs(listed, explicit []monitor.Log) []monitor.Log {
	byID := map[string]int{}
	var out []monitor.Log
	for _, l := range append(listed, explicit...) {
		k := hex.EncodeToString(l.ID[:])
		if i, ok := byID[k]; ok {
			out[i] = l
			continue
		}
		byID[k] = len(out)
		out = append(out, l)
	}
	return out
}

func perLogConfig(cfg *config.Config) map[string]config.Log {
	m := make(map[string]config.Log, len(cfg.Logs))
	for _, l := range cfg.Logs {
		m[l.Name] = l
	}
	return m
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// fetchOptions maps the monitor section of the configuration.
func fetchOptions(m config.Monitor) monitor.FetchOptions {
	o := monitor.DefaultFetchOptions()
	o.PollInterval = m.PollInterval
	o.BatchSize = m.BatchSize
	o.Concurrency = m.Concurrency
	o.Rate = m.Rate
	o.Timeout = m.Timeout
	o.MaxResponseBytes = m.MaxResponseBytes
	o.VerifyEvery = m.VerifyEvery
	o.MaxBacklog = m.MaxBacklog
	return o
}

// runner is a tailer of either log kind.
type runner interface {
	Run(ctx context.Context) error
	Stats() monitor.Stats
}

// runningTailer is one tailer goroutine and how to stop it.
type runningTailer struct {
	log  monitor.Log
	t    runner
	stop context.CancelFunc
	done chan struct{}
}

// supervisor keeps one tailer running per followed log and starts or stops
// tailers when the log list changes.
type supervisor struct {
	ctx         context.Context
	logger      *slog.Logger
	fetch       monitor.FetchOptions
	perLog      map[string]config.Log
	matcher     monitor.Matcher
	publisher   monitor.Publisher
	checkpoints monitor.CheckpointStore
	client      *http.Client
	errc        chan<- error
	// leases, when set, decides which of the followed logs this process
	// tails (the ones whose lease it holds, through Acquired and Lost);
	// nil tails them all. Set before apply is first called.
	leases logSharer

	mu      sync.Mutex
	running map[string]*runningTailer
	// want is the followed logs by key, whether tailed here or not.
	want map[string]monitor.Log
	wg   sync.WaitGroup
}

// logSharer shares the followed logs with the other processes on the same
// NATS: implemented by *lease.Manager.
type logSharer interface {
	// SetKeys says which logs (hex IDs) are followed.
	SetKeys(keys []string)
	// Drop says the tailer of key stopped because another process
	// fenced its checkpoint.
	Drop(key string)
}

// checkpointFencer is a checkpoint store that can take a log's checkpoint
// over from a previous owner (monitor.KVCheckpoints).
type checkpointFencer interface {
	Fence(ctx context.Context, logID string, epoch uint64) error
}

// apply makes the followed logs equal to logs: tailers of logs that left
// are stopped; new logs are tailed at once without leases, or offered to
// the lease manager with them.
func (s *supervisor) apply(logs []monitor.Log) {
	s.mu.Lock()
	want := map[string]monitor.Log{}
	keys := make([]string, 0, len(logs))
	for _, l := range logs {
		id := hex.EncodeToString(l.ID[:])
		if _, dup := want[id]; !dup {
			keys = append(keys, id)
		}
		want[id] = l
	}
	s.want = want
	for id, rt := range s.running {
		if _, ok := want[id]; !ok {
			s.logger.Info("log left the list; stopping its tailer", "log", rt.log.Name)
			rt.stop()
			<-rt.done
			delete(s.running, id)
		}
	}
	if s.leases == nil {
		for id, l := range want {
			if _, ok := s.running[id]; ok {
				continue
			}
			if err := s.start(id, l); err != nil {
				s.logger.Error("cannot follow log", "log", l.Name, "err", err)
			}
		}
	}
	s.mu.Unlock()
	if s.leases != nil {
		// Outside the lock: the manager calls Acquired and Lost.
		s.leases.SetKeys(keys)
	}
}

// Acquired starts tailing the log key now that this process holds its
// lease at epoch: first it fences the log's checkpoint, so that a previous
// owner still running can no longer save it, then starts the tailer, which
// loads the checkpoint as fenced. It implements lease.Holder.
func (s *supervisor) Acquired(ctx context.Context, key string, epoch uint64) error {
	s.mu.Lock()
	l, ok := s.want[key]
	_, running := s.running[key]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("log %s is not followed", key)
	}
	if running {
		return nil
	}
	if f, ok := s.checkpoints.(checkpointFencer); ok {
		if err := f.Fence(ctx, key, epoch); err != nil {
			return fmt.Errorf("log %s: %w", l.Name, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.running[key]; ok {
		return nil
	}
	if s.ctx.Err() != nil {
		return s.ctx.Err()
	}
	s.logger.Info("lease taken; following log", "log", l.Name, "epoch", epoch)
	return s.start(key, l)
}

// Lost stops the tailer of key, if any, and waits for it: this process no
// longer holds the log's lease. It implements lease.Holder.
func (s *supervisor) Lost(key string) {
	s.mu.Lock()
	rt, ok := s.running[key]
	delete(s.running, key)
	s.mu.Unlock()
	if !ok {
		return
	}
	s.logger.Info("lease lost or given back; stopping the log's tailer", "log", rt.log.Name)
	rt.stop()
	<-rt.done
}

func (s *supervisor) start(id string, l monitor.Log) error {
	opts := s.fetch
	if lc, ok := s.perLog[l.Name]; ok {
		if lc.Concurrency > 0 {
			opts.Concurrency = lc.Concurrency
		}
		if lc.Rate > 0 {
			opts.Rate = lc.Rate
		}
		if lc.BatchSize > 0 {
			opts.BatchSize = lc.BatchSize
		}
	}
	log := l
	tc := monitor.TailerConfig{
		Fetch:       opts,
		Matcher:     s.matcher,
		Publisher:   s.publisher,
		Checkpoints: s.checkpoints,
		HTTPClient:  s.client,
		Logger:      s.logger,
	}
	var t runner
	var err error
	switch l.Kind {
	case monitor.KindRFC6962:
		t, err = monitor.NewRFC6962Tailer(&log, tc)
	case monitor.KindStatic:
		t, err = monitor.NewStaticTailer(&log, tc)
	default:
		err = fmt.Errorf("unknown log kind %q", l.Kind)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	rt := &runningTailer{log: l, t: t, stop: cancel, done: make(chan struct{})}
	s.running[id] = rt
	s.wg.Go(func() {
		err := t.Run(ctx)
		close(rt.done)
		switch {
		case err == nil || errors.Is(err, context.Canceled):
		case errors.Is(err, monitor.ErrFenced):
			// Another process took the log over: stop tailing it, keep
			// the daemon and the other logs running.
			s.logger.Warn("another process took the log over; stopped its tailer", "log", l.Name, "err", err)
			s.mu.Lock()
			if s.running[id] == rt {
				delete(s.running, id)
			}
			s.mu.Unlock()
			if s.leases != nil {
				s.leases.Drop(id)
			}
		default:
			select {
			case s.errc <- err:
			default:
			}
		}
	})
	return nil
}

// refresh re-reads the log list every period and applies it.
func (s *supervisor) refresh(src *monitor.LogListSource, cfg *config.Config, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		listed, err := src.Load(s.ctx)
		if err != nil {
			s.logger.Warn("log list refresh failed; keeping the current logs", "err", err)
			continue
		}
		s.apply(mergeLogs(listed, explicitLogs(cfg)))
	}
}

// tailerStatus is one followed log and its tailer's counts and health.
type tailerStatus struct {
	Log   monitor.Log
	Stats monitor.Stats
}

// snapshot returns the followed logs with their tailers' stats, by name.
// Safe for concurrent use.
func (s *supervisor) snapshot() []tailerStatus {
	s.mu.Lock()
	out := make([]tailerStatus, 0, len(s.running))
	for _, rt := range s.running {
		out = append(out, tailerStatus{Log: rt.log, Stats: rt.t.Stats()})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b tailerStatus) int { return strings.Compare(a.Log.Name, b.Log.Name) })
	return out
}

// listed returns how many logs are followed, tailed here or not. Safe for
// concurrent use.
func (s *supervisor) listed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.want)
}

// pending adds to tailed (a snapshot) the followed logs not tailed here,
// with zero stats, sorted by name like snapshot. Safe for concurrent use.
func (s *supervisor) pending(tailed []tailerStatus) []tailerStatus {
	have := map[string]bool{}
	for _, ts := range tailed {
		have[hex.EncodeToString(ts.Log.ID[:])] = true
	}
	out := slices.Clone(tailed)
	s.mu.Lock()
	for id, l := range s.want {
		if !have[id] {
			out = append(out, tailerStatus{Log: l})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b tailerStatus) int { return strings.Compare(a.Log.Name, b.Log.Name) })
	return out
}

// wait blocks until every tailer has returned.
func (s *supervisor) wait() {
	s.wg.Wait()
}
