package alerting_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
)

// Each sink takes only what its route selects; what it skips is
// acknowledged for it and still reaches the other sinks.
func TestDispatcherRouting(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	mk := func(id, rule string, sev event.Severity, tags []string, names ...string) event.Hit {
		h := makeHits(id, 1)[0]
		h.ID, h.Rule, h.Severity, h.Tags, h.Cert.DNSNames = id, rule, sev, tags, names
		return h
	}
	hits := []event.Hit{
		mk("low-ours", "our-names", event.SeverityLow, nil, "www.bank.example"),
		mk("crit-feed", "interception-ca", event.SeverityCritical, []string{"feed", "kz"}, "mail.other.example"),
		mk("high-wild", "our-names", event.SeverityHigh, nil, "*.shop.bank.example"),
		mk("high-near", "our-names", event.SeverityHigh, nil, "notbank.example"),
		mk("med-tag", "lookalike", event.SeverityMedium, []string{"brand"}, "bank-login.example"),
	}
	publish(t, bus, hits)
	events := []event.LogEvent{
		{ID: "ev-unreach", Kind: event.LogUnreachable, Log: event.LogRef{Name: "L"}},
		{ID: "ev-fork", Kind: event.InconsistentTree, Log: event.LogRef{Name: "L"}},
	}
	for _, ev := range events {
		if err := bus.PublishEvent(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name   string
		opts   alerting.SinkOptions
		wanted []string
	}{
		{"everything", alerting.SinkOptions{Events: true}, []string{"low-ours", "crit-feed", "high-wild", "high-near", "med-tag", "ev-unreach", "ev-fork"}},
		{"min-high", alerting.SinkOptions{Route: alerting.Route{MinSeverity: event.SeverityHigh}}, []string{"crit-feed", "high-wild", "high-near"}},
		{"rules", alerting.SinkOptions{Route: alerting.Route{Rules: []string{"lookalike", "interception-ca"}}}, []string{"crit-feed", "med-tag"}},
		{"tags", alerting.SinkOptions{Route: alerting.Route{Tags: []string{"kz"}}}, []string{"crit-feed"}},
		{"domains", alerting.SinkOptions{Route: alerting.Route{Domains: []string{"bank.example"}}}, []string{"low-ours", "high-wild"}},
		{"domains-and-severity", alerting.SinkOptions{Route: alerting.Route{Domains: []string{"shop.bank.example"}, MinSeverity: event.SeverityMedium}}, []string{"high-wild"}},
		{"event-kinds", alerting.SinkOptions{Events: true, Route: alerting.Route{Rules: []string{"none"}, EventKinds: []event.LogEventKind{event.InconsistentTree}}}, []string{"ev-fork"}},
	}
	d := alerting.NewDispatcher(bus.JetStream(), alerting.StreamName, testLogger(t))
	recs := make([]*recorder, len(tests))
	for i, tc := range tests {
		recs[i] = &recorder{}
		if err := d.Add(tc.name, recs[i], tc.opts); err != nil {
			t.Fatal(err)
		}
	}
	run(t, d)
	for i, tc := range tests {
		floor := uint64(len(hits))
		if tc.opts.Events {
			floor += uint64(len(events))
		}
		settled(t, bus.JetStream(), tc.name, floor)
		if got := recs[i].ids(); !slices.Equal(got, tc.wanted) {
			t.Errorf("sink %s got %v, want %v", tc.name, got, tc.wanted)
		}
	}
}

// waitMsgs waits for the recorder to hold n messages and returns them.
func waitMsgs(t *testing.T, r *recorder, n int) []*alerting.Message {
	t.Helper()
	eventually(t, fmt.Sprintf("%d deliveries", n), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.msgs) >= n
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// A burst of hits of one rule, arriving over time, becomes one digest
// holding every hit; hits of another rule in the same window get their own
// delivery (a lone hit is delivered as itself).
func TestDispatcherGroupsBurstIntoOneDigest(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	rec := &recorder{}
	// MaxHits is the burst's size, so the digest goes out when its last
	// hit arrives however slowly a loaded machine fetches them; the window
	// only has to outlast the lone hit's wait.
	d := dispatcherWith(t, bus.JetStream(), "chat", rec, alerting.SinkOptions{Group: alerting.Grouping{Window: 5 * time.Second, MaxNames: 5, MaxHits: 1000}})
	run(t, d)

	burst := makeHits("burst", 1000)
	for i := 0; i < len(burst); i += 100 {
		publish(t, bus, burst[i:i+100]) // a burst spread over many publishes
	}
	other := makeHits("other", 1)
	other[0].Rule = "lookalike"
	publish(t, bus, other)
	settled(t, bus.JetStream(), "chat", uint64(len(burst)+1))

	msgs := waitMsgs(t, rec, 2)
	if len(msgs) != 2 {
		t.Fatalf("got %d deliveries, want one digest and one hit: %v", len(msgs), rec.ids())
	}
	var dg *event.Digest
	var lone *alerting.Message
	for _, m := range msgs {
		if m.Digest != nil {
			dg = m.Digest
		} else {
			lone = m
		}
	}
	if dg == nil || lone == nil || lone.Hit == nil || lone.Hit.ID != other[0].ID {
		t.Fatalf("deliveries %v: want one digest and hit %s", rec.ids(), other[0].ID)
	}
	if dg.Count != len(burst) || len(dg.Hits) != len(burst) || dg.Rule != "our-names" || dg.Kind != event.DigestKind {
		t.Errorf("digest rule %q kind %q count %d with %d hits, want our-names/digest/1000", dg.Rule, dg.Kind, dg.Count, len(dg.Hits))
	}
	got := make([]string, len(dg.Hits))
	for i := range dg.Hits {
		got[i] = dg.Hits[i].ID
	}
	if !slices.Equal(got, ids(burst)) {
		t.Errorf("digest hits are not the burst in stream order")
	}
	// makeHits rotates severities; critical is the highest among them.
	if dg.Severity != event.SeverityCritical {
		t.Errorf("digest severity %s, want critical", dg.Severity)
	}
	// Names: distinct, in order, capped; each hit has its own host name
	// and the shared bank.example.
	wantNames := []string{"host0.bank.example", "bank.example", "host1.bank.example", "host2.bank.example", "host3.bank.example"}
	if !slices.Equal(dg.Names, wantNames) || dg.MoreNames != 1001-len(wantNames) {
		t.Errorf("names %v (+%d), want %v (+%d)", dg.Names, dg.MoreNames, wantNames, 1001-len(wantNames))
	}
	if !strings.HasPrefix(dg.ID, "digest-") || dg.First.After(dg.Last) {
		t.Errorf("digest id %q, first %s last %s", dg.ID, dg.First, dg.Last)
	}
	var fromData event.Digest
	if err := json.Unmarshal(msgs[slices.IndexFunc(msgs, func(m *alerting.Message) bool { return m.Digest != nil })].Data, &fromData); err != nil || fromData.ID != dg.ID || fromData.Count != dg.Count {
		t.Errorf("digest Data does not hold the digest: %v", err)
	}
}

// A group reaching MaxHits is sent at once rather than at the end of its
// window, and the digest links to the archived full list.
func TestDispatcherGroupMaxHitsAndArchive(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	archive, err := alerting.OpenArchive(t.Context(), bus.JetStream(), "https://ctwatch.example/", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	d := alerting.NewDispatcher(bus.JetStream(), alerting.StreamName, testLogger(t))
	if err := d.SetArchive(archive); err != nil {
		t.Fatal(err)
	}
	// An hour-long window: only MaxHits can send these within the test.
	if err := d.Add("chat", rec, alerting.SinkOptions{Group: alerting.Grouping{Window: time.Hour, MaxHits: 50}}); err != nil {
		t.Fatal(err)
	}
	hits := makeHits("max", 100)
	publish(t, bus, hits)
	run(t, d)
	settled(t, bus.JetStream(), "chat", 100)
	msgs := waitMsgs(t, rec, 2)
	if len(msgs) != 2 || msgs[0].Digest == nil || msgs[1].Digest == nil {
		t.Fatalf("got %v, want two digests of 50", rec.ids())
	}
	for i, m := range msgs {
		dg := m.Digest
		if dg.Count != 50 || dg.Hits[0].ID != hits[50*i].ID {
			t.Errorf("digest %d: count %d, first %s", i, dg.Count, dg.Hits[0].ID)
		}
		if want := "https://ctwatch.example/digests/" + dg.ID; dg.URL != want {
			t.Errorf("digest %d URL %q, want %q", i, dg.URL, want)
		}
		stored, err := archive.Get(t.Context(), dg.ID)
		if err != nil || stored.Count != 50 || len(stored.Hits) != 50 || stored.Hits[49].ID != dg.Hits[49].ID {
			t.Errorf("archive holds %+v, %v", stored, err)
		}
	}
	if _, err := archive.Get(t.Context(), "digest-00000000000000000000000000000000"); err == nil {
		t.Error("Get of an unknown digest succeeded")
	}
	if _, err := archive.Get(t.Context(), "../../etc/passwd"); err == nil {
		t.Error("Get of a malformed id succeeded")
	}
}

// On shutdown the hits waiting in a group go back to the server; the next
// run groups and delivers them, none lost.
func TestDispatcherGroupHandedBackOnShutdown(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	hits := makeHits("wait", 10)
	publish(t, bus, hits)
	first := &recorder{}
	d := dispatcherWith(t, bus.JetStream(), "chat", first, alerting.SinkOptions{Group: alerting.Grouping{Window: time.Hour}})
	r := run(t, d)
	eventually(t, "the group to hold every hit", func() bool {
		c, err := bus.JetStream().Consumer(t.Context(), alerting.StreamName, alerting.ConsumerPrefix+"chat")
		if err != nil {
			return false
		}
		info, err := c.Info(t.Context())
		return err == nil && info.NumPending == 0 && info.NumAckPending == len(hits)
	})
	r.stop(t)
	if got := first.ids(); len(got) != 0 {
		t.Fatalf("delivered %v before the window ended", got)
	}

	second := &recorder{}
	d2 := dispatcherWith(t, bus.JetStream(), "chat", second, alerting.SinkOptions{Group: alerting.Grouping{Window: 100 * time.Millisecond}})
	run(t, d2)
	settled(t, bus.JetStream(), "chat", uint64(len(hits)))
	var got []string
	for _, m := range waitMsgs(t, second, 1) {
		if m.Digest == nil {
			got = append(got, m.ID())
			continue
		}
		for _, h := range m.Digest.Hits {
			got = append(got, h.ID)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, ids(hits)) {
		t.Errorf("after restart delivered %v, want %v", got, ids(hits))
	}
}

// A message that keeps failing goes to the sink's dead-letter subject with
// the last error after MaxAttempts, stops blocking the sink, and Replay
// brings it back to that sink only.
func TestDispatcherDeadLetterAndReplay(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	js := bus.JetStream()
	hits := makeHits("dl", 3)
	publish(t, bus, hits)

	var failing atomic.Bool
	failing.Store(true)
	var attempts atomic.Int64
	delivered := &recorder{}
	flaky := notifyFunc(func(ctx context.Context, m *alerting.Message) error {
		if m.ID() == hits[1].ID && failing.Load() {
			attempts.Add(1)
			return fmt.Errorf("receiver says no to %s\nsecond line", m.ID())
		}
		return delivered.Notify(ctx, m)
	})
	other := &recorder{}
	d := dispatcherWith(t, js, "flaky", flaky, alerting.SinkOptions{MaxAttempts: 3, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err := d.Add("other", other, alerting.SinkOptions{}); err != nil {
		t.Fatal(err)
	}
	r := run(t, d)
	settled(t, js, "flaky", 3)
	settled(t, js, "other", 3)
	if n := attempts.Load(); n != 3 {
		t.Errorf("%d attempts before dead-lettering, want 3", n)
	}
	if got, want := delivered.ids(), []string{hits[0].ID, hits[2].ID}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}

	dead, err := alerting.DeadLetters(t.Context(), js, "flaky")
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(dead), dead)
	}
	dl := dead[0]
	wantErr := "receiver says no to " + hits[1].ID + " second line"
	if dl.ID != hits[1].ID || dl.Subject != alerting.HitSubject(hits[1].Severity) || dl.Attempts != 3 || dl.Error != wantErr {
		t.Errorf("dead letter %+v, want id %s subject %s attempts 3 error %q", dl, hits[1].ID, alerting.HitSubject(hits[1].Severity), wantErr)
	}
	if none, err := alerting.DeadLetters(t.Context(), js, "other"); err != nil || len(none) != 0 {
		t.Errorf("other sink has dead letters %v, %v", none, err)
	}

	// The receiver is fixed; replay while the dispatcher runs.
	failing.Store(false)
	n, err := alerting.Replay(t.Context(), js, "flaky")
	if err != nil || n != 1 {
		t.Fatalf("Replay = %d, %v; want 1", n, err)
	}
	eventually(t, "the replayed hit", func() bool { return len(delivered.ids()) == 3 })
	if got := delivered.ids()[2]; got != hits[1].ID {
		t.Errorf("replayed %s, want %s", got, hits[1].ID)
	}
	settled(t, js, "flaky", 0)
	if after, err := alerting.DeadLetters(t.Context(), js, "flaky"); err != nil || len(after) != 0 {
		t.Errorf("dead letters after replay: %v, %v", after, err)
	}
	// The other sink delivered the hit once and does not see the replay.
	r.stop(t)
	if got := other.ids(); !slices.Equal(got, ids(hits)) {
		t.Errorf("other sink got %v, want %v", got, ids(hits))
	}
	if n, err := alerting.Replay(t.Context(), js, "flaky"); err != nil || n != 0 {
		t.Errorf("second Replay = %d, %v; want 0", n, err)
	}
}

// MaxAge dead-letters a failing message once it is older than the limit,
// whatever its attempt count.
func TestDispatcherDeadLetterByAge(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	js := bus.JetStream()
	hits := makeHits("old", 1)
	publish(t, bus, hits)
	fail := notifyFunc(func(context.Context, *alerting.Message) error { return errTest })
	d := dispatcherWith(t, js, "aging", fail, alerting.SinkOptions{MaxAge: 200 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	run(t, d)
	settled(t, js, "aging", 1)
	dead, err := alerting.DeadLetters(t.Context(), js, "aging")
	if err != nil || len(dead) != 1 || dead[0].ID != hits[0].ID || dead[0].Error != errTest.Error() || dead[0].Attempts < 1 {
		t.Errorf("dead letters %+v, %v", dead, err)
	}
}

// A rate-limited sink still delivers everything, in order.
func TestDispatcherRateLimitedDeliversAll(t *testing.T) {
	t.Parallel()
	bus, _ := setup(t)
	hits := makeHits("rl", 20)
	publish(t, bus, hits)
	rec := &recorder{}
	d := dispatcherWith(t, bus.JetStream(), "slow", rec, alerting.SinkOptions{Rate: 100, Burst: 2})
	run(t, d)
	settled(t, bus.JetStream(), "slow", 20)
	if got := rec.ids(); !slices.Equal(got, ids(hits)) {
		t.Errorf("got %v, want %v", got, ids(hits))
	}
}

func TestRouteMatch(t *testing.T) {
	t.Parallel()
	hit := func(names ...string) *alerting.Message {
		return &alerting.Message{Hit: &event.Hit{Severity: event.SeverityMedium, Rule: "r", Cert: event.CertInfo{DNSNames: names}}}
	}
	tests := []struct {
		name  string
		route alerting.Route
		m     *alerting.Message
		want  bool
	}{
		{"zero route takes a hit", alerting.Route{}, hit("a.example"), true},
		{"exact domain", alerting.Route{Domains: []string{"bank.example"}}, hit("bank.example"), true},
		{"subdomain", alerting.Route{Domains: []string{"bank.example"}}, hit("a.b.bank.example"), true},
		{"upper-case name", alerting.Route{Domains: []string{"bank.example"}}, hit("WWW.Bank.Example"), true},
		{"trailing dot", alerting.Route{Domains: []string{"bank.example"}}, hit("www.bank.example."), true},
		{"wildcard name", alerting.Route{Domains: []string{"bank.example"}}, hit("*.bank.example"), true},
		{"suffix without dot is not under", alerting.Route{Domains: []string{"bank.example"}}, hit("evilbank.example"), false},
		{"parent is not under", alerting.Route{Domains: []string{"www.bank.example"}}, hit("bank.example"), false},
		{"no names", alerting.Route{Domains: []string{"bank.example"}}, hit(), false},
		{"severity equal", alerting.Route{MinSeverity: event.SeverityMedium}, hit("x"), true},
		{"severity below", alerting.Route{MinSeverity: event.SeverityHigh}, hit("x"), false},
		{"rule listed", alerting.Route{Rules: []string{"q", "r"}}, hit("x"), true},
		{"rule not listed", alerting.Route{Rules: []string{"q"}}, hit("x"), false},
		{"untagged hit with tag route", alerting.Route{Tags: []string{"t"}}, hit("x"), false},
		{"digest always", alerting.Route{Rules: []string{"q"}}, &alerting.Message{Digest: &event.Digest{}}, true},
		{"event kind listed", alerting.Route{EventKinds: []event.LogEventKind{event.FallingBehind}}, &alerting.Message{Event: &event.LogEvent{Kind: event.FallingBehind}}, true},
		{"event kind not listed", alerting.Route{EventKinds: []event.LogEventKind{event.FallingBehind}}, &alerting.Message{Event: &event.LogEvent{Kind: event.LogUnreachable}}, false},
		{"hit routes ignore events", alerting.Route{MinSeverity: event.SeverityCritical, Rules: []string{"q"}}, &alerting.Message{Event: &event.LogEvent{Kind: event.LogUnreachable}}, true},
	}
	for _, tc := range tests {
		if got := tc.route.Match(tc.m); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
}
