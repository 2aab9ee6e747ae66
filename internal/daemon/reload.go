package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
)

// reloadSettle is how long the file watcher waits after a change before
// reloading, so that an editor's save (write, rename, chmod) or a
// `kubectl apply` of several files causes one reload, not several.
const reloadSettle = 300 * time.Millisecond

// ReloadStatus is the outcome of the last reload, for the status page and
// metrics.
type ReloadStatus struct {
	Time time.Time
	// Err is the reason the last reload was refused; "" when it worked.
	Err string
}

// watchReload reloads the configuration and rules on SIGHUP and whenever
// the configuration file or a rule file changes, until ctx ends. sighup
// must already be subscribed, so that a SIGHUP right after start-up is not
// taken as the default "terminate".
func (p *process) watchReload(ctx context.Context, load func() (*config.Config, error), sighup chan os.Signal) {
	defer signal.Stop(sighup)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		p.logger.Warn("cannot watch configuration files; reload with SIGHUP", "err", err)
	} else {
		defer w.Close()
		p.watchFiles(w)
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		events, errs = w.Events, w.Errors
	}
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-sighup:
			p.logger.Info("SIGHUP: reloading")
			p.reload(ctx, load)
			if w != nil {
				p.watchFiles(w)
			}
		case ev := <-events:
			if p.watched(ev.Name) {
				settle = time.After(reloadSettle)
			}
		case err := <-errs:
			p.logger.Warn("watching configuration files", "err", err)
		case <-settle:
			settle = nil
			p.logger.Info("configuration or rule file changed: reloading")
			p.reload(ctx, load)
			p.watchFiles(w)
		}
	}
}

// watchFiles watches the directories holding the configuration file and
// the rule files (directories rather than files, because editors and
// Kubernetes replace files by renaming, which ends a watch on the file).
// It adds and removes only what changed: a directory unwatched for a
// moment would miss a change made in that moment.
func (p *process) watchFiles(w *fsnotify.Watcher) {
	want := map[string]bool{}
	cfg := p.config()
	if cfg.File != "" {
		want[filepath.Clean(filepath.Dir(cfg.File))] = true
	}
	for _, pattern := range cfg.Rules.Files {
		want[filepath.Clean(filepath.Dir(pattern))] = true
	}
	for _, d := range w.WatchList() {
		if !want[filepath.Clean(d)] {
			_ = w.Remove(d)
		}
		delete(want, filepath.Clean(d))
	}
	for d := range want {
		if err := w.Add(d); err != nil {
			p.logger.Warn("cannot watch directory for reloads", "dir", d, "err", err)
		}
	}
}

// watched reports whether a changed path is the configuration file or
// matches a rule file pattern.
func (p *process) watched(name string) bool {
	if filepath.Base(name) == "..data" {
		// Kubernetes updates a mounted ConfigMap by swapping the "..data"
		// symlink in the watched directory; the files themselves see no
		// event of their own.
		return true
	}
	cfg := p.config()
	name = filepath.Clean(name)
	if cfg.File != "" && name == filepath.Clean(cfg.File) {
		return true
	}
	for _, pattern := range cfg.Rules.Files {
		// Both sides cleaned: fsnotify names "dir/file" however the
		// pattern spells the directory ("./rules/*.yaml").
		if ok, _ := filepath.Match(filepath.Clean(pattern), name); ok {
			return true
		}
	}
	return false
}

// reload applies a new configuration and rule set, or none of it: a file
// with a problem keeps everything running as it is, logs every problem with
// its file and line, and raises a reload_failed event so that the sinks
// tell people. Settings that only take effect at start (data_dir, nats,
// web, monitor tuning) are reported when they changed.
func (p *process) reload(ctx context.Context, load func() (*config.Config, error)) {
	err := p.tryReload(ctx, load)
	status := &ReloadStatus{Time: time.Now()}
	if err != nil {
		status.Err = err.Error()
		p.logger.Error("reload refused; the running configuration and rules stay in force", "err", err)
		p.raiseReloadFailed(ctx, err)
	}
	p.lastReload.Store(status)
	if p.onReload != nil {
		p.onReload(*status)
	}
}

func (p *process) tryReload(ctx context.Context, load func() (*config.Config, error)) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	engine, err := loadRules(cfg, p.issuers)
	if err != nil {
		return err
	}
	old := p.config()
	if !reflect.DeepEqual(old.Sinks, cfg.Sinks) {
		if err := p.sinks.replace(ctx, cfg); err != nil {
			return fmt.Errorf("sinks: %w", err)
		}
		p.logger.Info("sinks reloaded", "sinks", len(cfg.Sinks))
	}
	p.matcher.engine.Store(engine)
	if logsChanged(old, cfg) {
		logs, err := LoadLogs(ctx, cfg, p.logger)
		if err != nil {
			// Rules and sinks are in force already; the logs stay.
			p.logger.Error("reload: log list; keeping the followed logs", "err", err)
		} else {
			p.sup.apply(logs)
		}
	}
	if needs := restartOnly(old, cfg); len(needs) > 0 {
		p.logger.Warn("reload: these settings take effect at the next restart", "settings", strings.Join(needs, ", "))
	}
	p.cfg.Store(cfg)
	p.logger.Info("reloaded", "rules", len(engine.Rules()), "sinks", len(cfg.Sinks))
	return nil
}

// logsChanged reports whether the set of followed logs may differ.
func logsChanged(a, b *config.Config) bool {
	return a.LogList != b.LogList || !reflect.DeepEqual(a.Logs, b.Logs)
}

// restartOnly lists the settings that changed but apply only at start.
func restartOnly(a, b *config.Config) []string {
	var out []string
	for _, c := range []struct {
		name    string
		changed bool
	}{
		{"data_dir", a.DataDir != b.DataDir},
		{"nats", a.NATS != b.NATS},
		{"web", a.Web != b.Web},
		{"monitor", a.Monitor != b.Monitor},
		{"log_level/log_format", a.LogLevel != b.LogLevel || a.LogFormat != b.LogFormat},
		{"log_list_refresh", a.LogListRefresh != b.LogListRefresh},
	} {
		if c.changed {
			out = append(out, c.name)
		}
	}
	return out
}

// raiseReloadFailed publishes a reload_failed event naming the problem,
// with an ID of its text: the same broken file saved twice is one event.
func (p *process) raiseReloadFailed(ctx context.Context, cause error) {
	detail := cause.Error()
	sum := sha256.Sum256([]byte("reload\x00" + detail))
	ev := event.LogEvent{
		ID:     hex.EncodeToString(sum[:16]),
		Kind:   event.ReloadFailed,
		Log:    event.LogRef{Name: "ctwatch"},
		Time:   time.Now().UTC(),
		Detail: detail,
	}
	if err := p.bus.PublishEvent(ctx, ev); err != nil {
		p.logger.Error("publish reload_failed event", "err", err)
	}
}

// subscribeSIGHUP starts catching SIGHUP for the reloader.
func subscribeSIGHUP() chan os.Signal {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c
}
