package alerting

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// clientName is how ctwatch's connections show up in NATS monitoring.
const clientName = "ctwatch"

// readyTimeout bounds how long StartEmbedded waits for a started server to
// accept connections; recovering a large store happens before Start returns,
// so this only covers the last, quick step.
const readyTimeout = 10 * time.Second

// Embedded is a NATS server with JetStream running inside the ctwatch
// process: what `ctwatch run` uses when no external NATS is configured. It
// listens on no port; clients reach it only through [Embedded.Connect].
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts an in-process NATS server with JetStream, storing its
// data under dataDir/nats, and returns once it accepts connections. The
// server installs no signal handlers (the process owner handles signals) and
// logs through logger: notices and debug output at debug level, warnings at
// warn, errors at error.
//
// If ctx ends before the server is ready, StartEmbedded stops the server and
// returns ctx's error. The caller must call [Embedded.Shutdown] on success.
func StartEmbedded(ctx context.Context, dataDir string, logger *slog.Logger) (*Embedded, error) {
	if dataDir == "" {
		return nil, errors.New("alerting: embedded nats: empty data directory")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("alerting: embedded nats: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	opts := &server.Options{
		ServerName: clientName,
		JetStream:  true,
		StoreDir:   filepath.Join(dataDir, "nats"),
		DontListen: true,
		NoSigs:     true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("alerting: embedded nats: %w", err)
	}
	debug := logger.Enabled(ctx, slog.LevelDebug)
	slogger := &serverLogger{l: logger.With("component", "nats-server")}
	srv.SetLoggerV2(slogger, debug, false, false)

	started := make(chan struct{})
	go func() {
		defer close(started)
		srv.Start()
	}()
	select {
	case <-started:
	case <-ctx.Done():
		// Start cannot be interrupted; stop the server as soon as it is up
		// so that nothing keeps the store open behind the caller's back.
		go func() {
			<-started
			srv.Shutdown()
		}()
		return nil, fmt.Errorf("alerting: embedded nats: %w", ctx.Err())
	}
	if msg := slogger.fatal(); msg != "" || !srv.JetStreamEnabled() {
		// Start reports a failure to start (typically an unusable store
		// directory) through Fatalf and returns early; ctwatch cannot work
		// without JetStream.
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("alerting: embedded nats: store %s: %s", opts.StoreDir, cmp.Or(msg, "jetstream not enabled"))
	}
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("alerting: embedded nats: not ready for connections")
	}
	return &Embedded{srv: srv}, nil
}

// Connect opens a client connection to the embedded server, in process
// (no socket). Extra options are applied after ctwatch's defaults. The
// caller closes the connection, before calling [Embedded.Shutdown]. Safe for
// concurrent use.
func (e *Embedded) Connect(opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{nats.InProcessServer(e.srv), nats.Name(clientName), nats.Timeout(5 * time.Second)}, opts...)
	nc, err := nats.Connect("", all...)
	if err != nil {
		return nil, fmt.Errorf("alerting: connect to embedded nats: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server and waits until it has stopped, flushing
// JetStream state to disk. Close every client connection (and stop every
// Dispatcher) first: a client still connected sees its connection drop and
// tries to reconnect to a server that is gone. Calling Shutdown more than
// once is harmless.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Connect connects to an external NATS server or cluster at url (a
// comma-separated list of server URLs is allowed). The connection reconnects
// forever, with a wait between attempts, so an outage of NATS delays ctwatch
// rather than stopping it; the first connection, however, must succeed, so
// that a wrong URL is reported at start-up. Extra options (credentials, TLS,
// handlers) are applied after the defaults and may override them.
//
// If ctx ends first, Connect returns ctx's error and closes the connection
// if it is established later.
func Connect(ctx context.Context, url string, opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{
		nats.Name(clientName),
		nats.Timeout(5 * time.Second), // per dial; the library's 2s is tight across a WAN
		nats.MaxReconnects(-1),
		nats.ReconnectWait(2 * time.Second),
		nats.ReconnectJitter(500*time.Millisecond, 2*time.Second),
	}, opts...)
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(url, all...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("alerting: connect to nats %s: %w", url, r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("alerting: connect to nats %s: %w", url, ctx.Err())
	}
}

// serverLogger routes nats-server's printf-style log calls to slog. The
// server is chatty at notice level about routine start-up, so notices go to
// debug; only warnings and errors reach a default (info) handler. It also
// remembers the first fatal message: the server's way of saying it could not
// start.
type serverLogger struct {
	l *slog.Logger

	mu       sync.Mutex
	fatalMsg string
}

// fatal returns the first message logged with Fatalf, or "".
func (s *serverLogger) fatal() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fatalMsg
}

func (s *serverLogger) Noticef(format string, v ...any) {
	s.l.Debug(fmt.Sprintf(format, v...))
}
func (s *serverLogger) Warnf(format string, v ...any) {
	s.l.Warn(fmt.Sprintf(format, v...))
}
func (s *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	s.mu.Lock()
	if s.fatalMsg == "" {
		s.fatalMsg = msg
	}
	s.mu.Unlock()
	s.l.Error(msg)
}
func (s *serverLogger) Errorf(format string, v ...any) {
	s.l.Error(fmt.Sprintf(format, v...))
}
func (s *serverLogger) Debugf(format string, v ...any) {
	s.l.Debug(fmt.Sprintf(format, v...))
}
func (s *serverLogger) Tracef(format string, v ...any) {
	s.l.Debug(fmt.Sprintf(format, v...))
}
