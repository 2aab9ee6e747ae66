// Package natstest starts real NATS servers for tests: nats-server itself,
// in the test process, listening on a random loopback port with JetStream
// in a temporary directory. Tests of leases, checkpoints and several
// daemons sharing one NATS need a server other clients can dial, which the
// daemon's embedded (non-listening) server is not.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Start starts a JetStream-enabled nats-server on 127.0.0.1 and a random
// port, with its store under t.TempDir(); tune, if not nil, may adjust the
// options first. The server is shut down at cleanup; connect with
// srv.ClientURL().
func Start(t testing.TB, tune func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true}
	if tune != nil {
		tune(opts)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}
