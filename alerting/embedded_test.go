package alerting_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ctwatch/ctwatch/alerting"
)

func TestStartEmbeddedStoresUnderDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bus, err := alerting.Open(t.Context(), connect(t, startServer(t, dir)), alerting.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, bus, makeHits("d", 1))
	if _, err := os.Stat(filepath.Join(dir, "nats", "jetstream")); err != nil {
		t.Errorf("no JetStream store under dataDir/nats: %v", err)
	}
}

func TestStartEmbeddedErrors(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if e, err := alerting.StartEmbedded(ctx, t.TempDir(), logger); err == nil {
		e.Shutdown()
		t.Error("StartEmbedded with a cancelled context succeeded")
	}
	if _, err := alerting.StartEmbedded(t.Context(), "", logger); err == nil {
		t.Error("StartEmbedded with no data directory succeeded")
	}
	// A regular file where the store directory must go.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nats"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if e, err := alerting.StartEmbedded(t.Context(), dir, logger); err == nil {
		e.Shutdown()
		t.Error("StartEmbedded on an unusable store succeeded")
	}
}

func TestConnectExternal(t *testing.T) {
	t.Parallel()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(waitTimeout) {
		t.Fatal("test server not ready")
	}

	nc, err := alerting.Connect(t.Context(), srv.ClientURL())
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer nc.Close()
	if !nc.IsConnected() {
		t.Error("not connected")
	}
	if nc.Opts.Name != "ctwatch" || nc.Opts.MaxReconnect != -1 || nc.Opts.ReconnectWait <= 0 {
		t.Errorf("options name=%q max reconnect=%d wait=%s; want ctwatch, -1 (forever), a wait",
			nc.Opts.Name, nc.Opts.MaxReconnect, nc.Opts.ReconnectWait)
	}

	// The first connection must succeed: a wrong address is an error.
	ln := srv.ClientURL()
	srv.Shutdown()
	srv.WaitForShutdown()
	if nc2, err := alerting.Connect(t.Context(), ln); err == nil {
		nc2.Close()
		t.Error("Connect to a stopped server succeeded")
	}
}
