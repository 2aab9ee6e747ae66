package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/monitor"
)

func TestParseHitFilter(t *testing.T) {
	for _, tc := range []struct {
		query   string
		want    HitFilter
		wantErr string
	}{
		{"", HitFilter{Limit: DefaultHitLimit}, ""},
		{"rule=ours&severity=HIGH&name=+Watched+&limit=5", HitFilter{Rule: "ours", MinSeverity: event.SeverityHigh, Name: "Watched", Limit: 5}, ""},
		{"limit=0", HitFilter{Limit: 0}, ""},
		{"limit=999999", HitFilter{Limit: MaxHitLimit}, ""},
		{"severity=urgent", HitFilter{}, `severity "urgent"`},
		{"limit=-1", HitFilter{}, `limit "-1"`},
		{"limit=ten", HitFilter{}, `limit "ten"`},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseHitFilter(q.Get)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestHitFilterMatches(t *testing.T) {
	h := event.Hit{Rule: "ours", Severity: event.SeverityMedium, Cert: event.CertInfo{DNSNames: []string{"a.example", "Login.Watched.example"}}}
	for _, tc := range []struct {
		name string
		f    HitFilter
		want bool
	}{
		{"no filter", HitFilter{}, true},
		{"rule", HitFilter{Rule: "ours"}, true},
		{"other rule", HitFilter{Rule: "our"}, false},
		{"severity equal", HitFilter{MinSeverity: event.SeverityMedium}, true},
		{"severity below minimum", HitFilter{MinSeverity: event.SeverityHigh}, false},
		{"name substring, any case", HitFilter{Name: "login.WATCHED"}, true},
		{"name of no DNS name", HitFilter{Name: "nomatch"}, false},
		{"all three", HitFilter{Rule: "ours", MinSeverity: event.SeverityLow, Name: "a.ex"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f.matches(&h); got != tc.want {
				t.Fatalf("matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLiveLogState(t *testing.T) {
	now := time.Now()
	head := now.Add(-time.Second)
	for _, tc := range []struct {
		name    string
		stats   monitor.Stats
		want    LogState
		wantLag uint64
	}{
		{"no head yet", monitor.Stats{}, LogStarting, 0},
		{"stored position, no head yet", monitor.Stats{TreeSize: 10, NextIndex: 4}, LogStarting, 6},
		{"caught up", monitor.Stats{TreeSize: 10, NextIndex: 10, LastHead: head}, LogCaughtUp, 0},
		{"behind", monitor.Stats{TreeSize: 10, NextIndex: 4, LastHead: head, BehindSince: head}, LogBehind, 6},
		{"unreachable", monitor.Stats{TreeSize: 10, NextIndex: 10, LastHead: head, Unreachable: true}, LogUnreachable, 0},
		{"forked", monitor.Stats{TreeSize: 10, NextIndex: 10, LastHead: head, Unreachable: true,
			Events: map[event.LogEventKind]uint64{event.InconsistentTree: 1}}, LogMisbehaving, 0},
		{"shrank", monitor.Stats{Events: map[event.LogEventKind]uint64{event.ShrinkingTree: 1}}, LogMisbehaving, 0},
		{"bad signature", monitor.Stats{Events: map[event.LogEventKind]uint64{event.BadSignature: 2}}, LogMisbehaving, 0},
		{"malformed entries are not misbehaviour", monitor.Stats{TreeSize: 3, NextIndex: 3, LastHead: head,
			Events: map[event.LogEventKind]uint64{event.MalformedEntry: 5, event.FallingBehind: 1}}, LogCaughtUp, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls := liveLogStatus(tailerStatus{Log: monitor.Log{Name: "l"}, Stats: tc.stats})
			if ls.State != tc.want || ls.Lag != tc.wantLag {
				t.Fatalf("state %s, lag %d; want %s, %d", ls.State, ls.Lag, tc.want, tc.wantLag)
			}
		})
	}
}

func TestLogStatusProgress(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name     string
		ls       LogStatus
		progress float64
		behind   bool
		lagTime  time.Duration
	}{
		{"empty log", LogStatus{HasPosition: true}, 1, false, 0},
		{"half", LogStatus{HasPosition: true, TreeSize: 200, NextIndex: 100, Lag: 100, BehindSince: now.Add(-time.Minute)}, 0.5, true, time.Minute},
		{"no position", LogStatus{Lag: 5}, 1, false, 0},
		{"next past size", LogStatus{HasPosition: true, TreeSize: 10, NextIndex: 12}, 1, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p := tc.ls.Progress(); p != tc.progress {
				t.Errorf("Progress = %v, want %v", p, tc.progress)
			}
			if b := tc.ls.Behind(); b != tc.behind {
				t.Errorf("Behind = %v, want %v", b, tc.behind)
			}
			if d := tc.ls.LagTime(now); d != tc.lagTime {
				t.Errorf("LagTime = %v, want %v", d, tc.lagTime)
			}
		})
	}
}

func TestStatusURL(t *testing.T) {
	for _, tc := range []struct {
		listen  string
		want    string
		wantErr string
	}{
		{"127.0.0.1:9464", "http://127.0.0.1:9464/api/status", ""},
		{"0.0.0.0:9464", "http://127.0.0.1:9464/api/status", ""},
		{"[::]:9464", "http://127.0.0.1:9464/api/status", ""},
		{":9464", "http://127.0.0.1:9464/api/status", ""},
		{"[::1]:8080", "http://[::1]:8080/api/status", ""},
		{"ctwatch.internal:80", "http://ctwatch.internal:80/api/status", ""},
		{"", "", "no web server"},
		{"127.0.0.1:0", "", "free port"},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			got, err := StatusURL(&config.Config{Web: config.Web{Listen: tc.listen}})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestTextHelpers(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{GroupDigits(0), "0"},
		{GroupDigits(999), "999"},
		{GroupDigits(1000), "1,000"},
		{GroupDigits(1234567), "1,234,567"},
		{roundDuration(1500 * time.Millisecond), "2s"},
		{roundDuration(3*time.Minute + 12*time.Second), "3m12s"},
		{roundDuration(2*time.Hour + 5*time.Minute + 40*time.Second), "2h6m"},
		{roundDuration(50 * time.Hour), "2d2h"},
		{RouteSummary(config.Route{}), "all"},
		{RouteSummary(config.Route{MinSeverity: "high", Rules: []string{"a", "b"}, Domains: []string{"example.com"}}), ">=high rules=a,b domains=example.com"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// recentHits reads the newest hits backwards through a real JetStream
// stream holding hits of several rules and severities, events and dead
// letters in between, and finds old matches past the first stretch it
// reads.
func TestRecentHits(t *testing.T) {
	ctx := context.Background()
	srv, err := alerting.StartEmbedded(ctx, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	bus, err := alerting.Open(ctx, nc, alerting.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// 2 "rare" hits, then 1,000 others (every fifth high, the rest low),
	// with a log event after every tenth hit.
	hit := func(i int, rule string, sev event.Severity) event.Hit {
		return event.Hit{ID: fmt.Sprintf("%s-%d", rule, i), Rule: rule, Severity: sev, Reason: "test",
			Cert: event.CertInfo{DNSNames: []string{fmt.Sprintf("h%d.example", i)}}}
	}
	var all []event.Hit
	all = append(all, hit(0, "rare", event.SeverityCritical), hit(1, "rare", event.SeverityLow))
	for i := 2; i < 1002; i++ {
		sev := event.SeverityLow
		if i%5 == 0 {
			sev = event.SeverityHigh
		}
		all = append(all, hit(i, "common", sev))
	}
	for i := 0; i < len(all); i += 10 {
		if err := bus.PublishHits(ctx, all[i:min(i+10, len(all))]); err != nil {
			t.Fatal(err)
		}
		if err := bus.PublishEvent(ctx, event.LogEvent{ID: fmt.Sprintf("ev-%d", i), Kind: event.MalformedEntry, Log: event.LogRef{Name: "l"}, Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := bus.JetStream().Stream(ctx, alerting.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	st := stream.CachedInfo().State

	ids := func(hs []RecentHit) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name          string
		f             HitFilter
		maxSearched   int
		want          []string
		wantTruncated bool
	}{
		{"newest three", HitFilter{Limit: 3}, maxHitsSearched, []string{"common-1001", "common-1000", "common-999"}, false},
		{"minimum severity", HitFilter{MinSeverity: event.SeverityHigh, Limit: 2}, maxHitsSearched, []string{"common-1000", "common-995"}, false},
		{"the oldest rule, past every stretch", HitFilter{Rule: "rare", Limit: 10}, maxHitsSearched, []string{"rare-1", "rare-0"}, false},
		{"rule and severity", HitFilter{Rule: "rare", MinSeverity: event.SeverityCritical, Limit: 10}, maxHitsSearched, []string{"rare-0"}, false},
		{"name", HitFilter{Name: "h77.", Limit: 10}, maxHitsSearched, []string{"common-77"}, false},
		{"no match", HitFilter{Name: "nomatch", Limit: 10}, maxHitsSearched, nil, false},
		{"limit 0 reads nothing", HitFilter{Limit: 0}, maxHitsSearched, nil, false},
		{"search bound", HitFilter{Rule: "rare", Limit: 10}, 300, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, searched, truncated, err := recentHits(ctx, bus.JetStream(), st.FirstSeq, st.LastSeq, tc.f, tc.maxSearched)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) || truncated != tc.wantTruncated {
				t.Fatalf("got %v (searched %d, truncated %v); want %v, truncated %v", ids(got), searched, truncated, tc.want, tc.wantTruncated)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Seq >= got[i-1].Seq || got[i].Published.IsZero() {
					t.Fatalf("hits not newest first with publish times: %+v", got)
				}
			}
		})
	}
	// Every consumer the reads made is gone.
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Errorf("%d consumers left on the stream", info.State.Consumers)
	}
}
