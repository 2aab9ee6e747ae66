package alerting_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
)

func TestPublishHitsDedupesAndRoutesBySeverity(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	js := bus.JetStream()
	high := makeHits("a", 1)[0]
	high.Severity = event.SeverityHigh
	low := makeHits("b", 1)[0]
	low.Severity = event.SeverityLow

	publish(t, bus, []event.Hit{high, low})
	publish(t, bus, []event.Hit{high})       // a replay after a crash
	publish(t, bus, []event.Hit{high, high}) // the same hit twice in one batch
	if got := streamMsgs(t, js); got != 2 {
		t.Fatalf("stream holds %d messages, want 2", got)
	}

	s, err := js.Stream(t.Context(), alerting.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	for subject, want := range map[string]event.Hit{"ctwatch.hit.high": high, "ctwatch.hit.low": low} {
		m, err := s.GetLastMsgForSubject(t.Context(), subject)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		var got event.Hit
		if err := json.Unmarshal(m.Data, &got); err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		if got.ID != want.ID || got.Severity != want.Severity {
			t.Errorf("%s holds %s/%s, want %s/%s", subject, got.ID, got.Severity, want.ID, want.Severity)
		}
		if id := m.Header.Get(jetstream.MsgIDHeader); id != want.ID {
			t.Errorf("%s: Nats-Msg-Id %q, want %q", subject, id, want.ID)
		}
	}
}

// PublishHits must not return before the server acknowledged every hit: the
// monitor advances checkpoints on its return. More hits than the publish
// window exercises the windowing.
func TestPublishHitsReturnsAfterEveryAck(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	hits := makeHits("w", 1000)
	publish(t, bus, hits)
	if got := streamMsgs(t, bus.JetStream()); got != uint64(len(hits)) {
		t.Fatalf("after PublishHits returned the stream holds %d messages, want %d", got, len(hits))
	}
	if err := bus.PublishHits(t.Context(), nil); err != nil {
		t.Errorf("PublishHits(nil) = %v, want nil", err)
	}
}

func TestPublishEvent(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	ev := event.LogEvent{
		ID:     "ev-1",
		Kind:   event.BadSignature,
		Log:    event.LogRef{Name: "Test Log", URL: "https://ct.example/log/"},
		Time:   time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC),
		Detail: "STH signature does not verify",
	}
	for range 2 {
		if err := bus.PublishEvent(t.Context(), ev); err != nil {
			t.Fatalf("PublishEvent: %v", err)
		}
	}
	js := bus.JetStream()
	if got := streamMsgs(t, js); got != 1 {
		t.Fatalf("stream holds %d messages, want 1", got)
	}
	s, err := js.Stream(t.Context(), alerting.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(t.Context(), "ctwatch.event.bad_signature")
	if err != nil {
		t.Fatalf("event subject: %v", err)
	}
	var got event.LogEvent
	if err := json.Unmarshal(m.Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != ev.ID || got.Detail != ev.Detail || !got.Time.Equal(ev.Time) {
		t.Errorf("stored event %+v, want %+v", got, ev)
	}
}

func TestPublishRejectsMalformed(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	good := makeHits("g", 1)[0]
	tests := []struct {
		name   string
		mutate func(h *event.Hit)
	}{
		{"empty id", func(h *event.Hit) { h.ID = "" }},
		{"id with newline", func(h *event.Hit) { h.ID = "a\r\nNats-Msg-Id: b" }},
		{"id too long", func(h *event.Hit) { h.ID = strings.Repeat("x", 300) }},
		{"empty severity", func(h *event.Hit) { h.Severity = "" }},
		{"severity with dot", func(h *event.Hit) { h.Severity = "high.extra" }},
		{"severity wildcard", func(h *event.Hit) { h.Severity = ">" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := good
			tc.mutate(&h)
			if err := bus.PublishHits(t.Context(), []event.Hit{good, h}); err == nil {
				t.Fatal("PublishHits accepted a malformed hit")
			}
		})
	}
	for _, ev := range []event.LogEvent{
		{ID: "", Kind: event.BadSignature},
		{ID: "e", Kind: ""},
		{ID: "e", Kind: "a.b"},
		{ID: "e", Kind: "*"},
	} {
		if err := bus.PublishEvent(t.Context(), ev); err == nil {
			t.Errorf("PublishEvent(%+v) accepted a malformed event", ev)
		}
	}
	// Validation happens before anything is sent.
	if got := streamMsgs(t, bus.JetStream()); got != 0 {
		t.Errorf("stream holds %d messages after rejected publishes, want 0", got)
	}
}

func TestOpenIsIdempotentAndUpdates(t *testing.T) {
	t.Parallel()
	bus, nc := setup(t)
	publish(t, bus, makeHits("o", 3))

	bus2, err := alerting.Open(t.Context(), nc, alerting.StreamConfig{MaxAge: 48 * time.Hour, Duplicates: time.Hour})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	s, err := bus2.JetStream().Stream(t.Context(), alerting.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 {
		t.Errorf("re-Open lost messages: %d, want 3", info.State.Msgs)
	}
	if info.Config.MaxAge != 48*time.Hour || info.Config.Duplicates != time.Hour {
		t.Errorf("config not updated: max age %s, duplicates %s", info.Config.MaxAge, info.Config.Duplicates)
	}
	if info.Config.Storage != jetstream.FileStorage {
		t.Errorf("storage %v, want file", info.Config.Storage)
	}
	kvStatus, err := bus2.Checkpoints().Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if kvStatus.Bucket() != alerting.CheckpointsBucket || kvStatus.History() != 1 {
		t.Errorf("bucket %s history %d, want %s history 1", kvStatus.Bucket(), kvStatus.History(), alerting.CheckpointsBucket)
	}

	if _, err := alerting.Open(t.Context(), nc, alerting.StreamConfig{MaxAge: time.Hour, Duplicates: 2 * time.Hour}); err == nil {
		t.Error("Open accepted a duplicates window longer than the max age")
	}
	if _, err := alerting.Open(t.Context(), nil, alerting.StreamConfig{}); err == nil {
		t.Error("Open accepted a nil connection")
	}
}
