package daemon

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/rules"
)

func TestStreamConfig(t *testing.T) {
	for _, tc := range []struct {
		n    config.NATS
		want alerting.StreamConfig
	}{
		{config.NATS{Replicas: 1}, alerting.StreamConfig{Replicas: 1}},
		{config.NATS{StreamMaxAge: time.Hour, DedupeWindow: time.Minute, Replicas: 3},
			alerting.StreamConfig{MaxAge: time.Hour, Duplicates: time.Minute, Replicas: 3}},
	} {
		if got := streamConfig(tc.n); got != tc.want {
			t.Errorf("streamConfig(%+v) = %+v, want %+v", tc.n, got, tc.want)
		}
	}
}

// TestReplicasReachJetStream: nats.replicas is what the stream and every
// bucket ask the server for. A single server cannot keep 3 copies, so it
// refuses each of them, which shows the number got there; 1 works.
func TestReplicasReachJetStream(t *testing.T) {
	srv, err := alerting.StartEmbedded(t.Context(), t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	// Every refusal says so; the server's wording is not ours to pin.
	refused := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s with 3 replicas on one server: no error", what)
		} else if !strings.Contains(strings.ToLower(err.Error()), "replica") {
			t.Errorf("%s with 3 replicas: %v, want a refusal about replicas", what, err)
		}
	}
	_, err = alerting.Open(t.Context(), nc, streamConfig(config.NATS{Replicas: 3}))
	refused("stream", err)

	bus, err := alerting.Open(t.Context(), nc, streamConfig(config.NATS{Replicas: 1}))
	if err != nil {
		t.Fatal(err)
	}
	mem := rules.NewMemoryIssuers(nil)
	_, err = openIssuerStore(t.Context(), bus.JetStream(), mem, 3, slog.New(slog.DiscardHandler))
	refused("issuer bucket", err)
	_, err = alerting.OpenArchive(t.Context(), bus.JetStream(), "", time.Hour, 3)
	refused("digest bucket", err)
	if _, err := openIssuerStore(t.Context(), bus.JetStream(), mem, 1, slog.New(slog.DiscardHandler)); err != nil {
		t.Errorf("issuer bucket with 1 replica: %v", err)
	}
}
