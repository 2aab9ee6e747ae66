package daemon_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/internal/daemon"
	"github.com/ctwatch/ctwatch/internal/testca"
)

// hostileIssuer and hostileName are certificate fields chosen to break out
// of HTML if the page ever printed them unescaped.
const (
	hostileIssuer = `<script>alert("issuer")</script>`
	hostileName   = `"><img src=x onerror=alert(1)>.watched.example`
)

// addHostile logs a watched certificate whose issuer and one name are
// hostile HTML, and returns its SHA-256.
func (s *setup) addHostile(t *testing.T) string {
	t.Helper()
	ca, err := testca.New(hostileIssuer)
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.Leaf("evil.watched.example", hostileName)
	if err != nil {
		t.Fatal(err)
	}
	idx := s.log.AddX509(der, ca.Chain())
	s.log.Publish()
	sum := sha256.Sum256(der)
	s.watched[hex.EncodeToString(sum[:])] = idx
	return hex.EncodeToString(sum[:])
}

// apiStatus fetches /api/status with the given query.
func apiStatus(t *testing.T, base, query string) *daemon.StatusReport {
	t.Helper()
	code, body := get(t, base+"/api/status?"+query)
	if code != http.StatusOK {
		t.Fatalf("/api/status?%s: status %d: %s", query, code, body)
	}
	var rep daemon.StatusReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("/api/status?%s: %v\n%s", query, err, body)
	}
	return &rep
}

// After a known run, /api/status and the page show the log caught up, every
// hit (newest first, filtered as asked), the rules and the sinks; hostile
// certificate fields stay text.
func TestStatusPageAfterAKnownRun(t *testing.T) {
	s := newSetup(t)
	s.add(t, 40)
	hostileSHA := s.addHostile(t)
	total := int(s.log.Added())
	cfg := s.config(t)
	stop, base := runDaemonWeb(t, cfg)
	hits := awaitFile(t, filepath.Join(s.dir, "hits.jsonl"), "every hit", func(h []event.Hit) bool { return len(h) >= len(s.watched) })
	s.checkHits(t, hits)

	var rep *daemon.StatusReport
	awaitCond(t, "the log caught up and both sinks empty", func() (bool, string) {
		rep = apiStatus(t, base, "")
		if len(rep.Logs) != 1 || len(rep.Sinks) != 2 {
			return false, fmt.Sprintf("%d logs, %d sinks", len(rep.Logs), len(rep.Sinks))
		}
		l := rep.Logs[0]
		return l.State == daemon.LogCaughtUp && l.NextIndex == uint64(total) && rep.Sinks[0].Pending == 0 && rep.Sinks[1].Pending == 0,
			fmt.Sprintf("log %+v, sinks %+v", l, rep.Sinks)
	})

	l := rep.Logs[0]
	if !rep.Live || rep.Version == "" || rep.Started.IsZero() || rep.NATS != "CONNECTED" {
		t.Errorf("report header: live %v, version %q, started %v, nats %q", rep.Live, rep.Version, rep.Started, rep.NATS)
	}
	if l.Name != "test" || l.Kind != "rfc6962" || l.URL != s.log.URL() || !l.HasPosition || l.TreeSize != uint64(total) ||
		l.Lag != 0 || l.Hits != uint64(len(s.watched)) || l.Processed != uint64(total) || l.Malformed != 0 || l.LastHead.IsZero() || l.LastError != "" {
		t.Errorf("log: %+v; want test, caught up at %d with %d hits", l, total, len(s.watched))
	}
	// The built-in rules, then ours.
	if n := len(rep.Rules); n < 2 || rep.Rules[n-1].Name != "ours" || rep.Rules[n-1].Severity != event.SeverityHigh ||
		rep.Rules[n-1].File != filepath.Join(s.dir, "rules.yaml") || rep.Rules[n-1].Line != 2 || rep.Rules[0].File != daemon.BuiltinRulesName {
		t.Errorf("rules: %+v; want the built-in ones, then ours (high) at rules.yaml:2", rep.Rules)
	}
	wantSinks := []daemon.SinkStatus{
		{Name: "file", Type: "jsonl", Route: "all", Events: true},
		{Name: "hook", Type: "webhook", Route: "all", Events: false},
	}
	if !slices.Equal(rep.Sinks, wantSinks) {
		t.Errorf("sinks: %+v, want %+v", rep.Sinks, wantSinks)
	}
	// Every hit delivered is listed, newest first.
	h := rep.Hits
	if h == nil || h.Error != "" || h.Truncated || h.Filter.Limit != daemon.DefaultHitLimit || h.Stored[event.SeverityHigh] != uint64(len(s.watched)) {
		t.Fatalf("hits report: %+v", h)
	}
	var listed, delivered []string
	for i, rh := range h.Recent {
		listed = append(listed, rh.ID)
		if i > 0 && rh.Seq >= h.Recent[i-1].Seq {
			t.Errorf("hit %d (seq %d) listed after seq %d: not newest first", i, rh.Seq, h.Recent[i-1].Seq)
		}
	}
	for _, hit := range hits {
		delivered = append(delivered, hit.ID)
	}
	slices.Sort(listed)
	slices.Sort(delivered)
	if !slices.Equal(listed, delivered) {
		t.Errorf("listed hits %v\nwant the delivered %v", listed, delivered)
	}

	// The filters.
	one := hits[3]
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"rule=ours", len(s.watched)},
		{"rule=nope", 0},
		{"severity=high", len(s.watched)},
		{"severity=critical", 0},
		{"name=" + url.QueryEscape(one.Cert.DNSNames[0]), 1},
		{"name=nomatch", 0},
		{"limit=5", 5},
		{"limit=0", 0},
	} {
		got := apiStatus(t, base, tc.query).Hits.Recent
		if len(got) != tc.want {
			t.Errorf("?%s: %d hits, want %d", tc.query, len(got), tc.want)
		}
		if strings.HasPrefix(tc.query, "name=h") && len(got) == 1 && got[0].ID != one.ID {
			t.Errorf("?%s: hit %s, want %s", tc.query, got[0].ID, one.ID)
		}
	}
	if code, body := get(t, base+"/api/status?severity=urgent"); code != http.StatusBadRequest {
		t.Errorf("/api/status?severity=urgent: %d %s, want 400", code, body)
	}

	// The page, at / and /status: the same hits, hostile fields escaped.
	var hostileID string
	for _, hit := range hits {
		if hit.Cert.SHA256 == hostileSHA {
			hostileID = hit.ID
		}
	}
	for _, path := range []string{"/", "/status"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		body := string(b)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Fatalf("GET %s: %d, %q, CSP %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"))
		}
		if testing.Verbose() && path == "/" {
			t.Logf("%s", body)
		}
		for _, want := range []string{"caught up", one.ID, one.Cert.DNSNames[0], hostileID, "https://crt.sh/?sha256=" + hostileSHA,
			`CN=\&lt;script\&gt;alert(\&#34;issuer\&#34;)\&lt;/script\&gt; Issuing CA`, "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;.watched.example",
			filepath.Join(s.dir, "rules.yaml") + ":2", "jsonl", "webhook"} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s does not show %q", path, want)
			}
		}
		for _, bad := range []string{"<script", "<img"} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s holds %q: a certificate field was not escaped", path, bad)
			}
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// With web.status_page false the listener serves no status, page or API.
func TestStatusPageOff(t *testing.T) {
	s := newSetup(t)
	cfg := s.config(t)
	cfg.Web.StatusPage = false
	stop, base := runDaemonWeb(t, cfg)
	for _, path := range []string{"/", "/status", "/api/status"} {
		if code, _ := get(t, base+path); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	if _, err := daemon.FetchStatus(context.Background(), &config.Config{Web: config.Web{Listen: strings.TrimPrefix(base, "http://")}}, http.DefaultClient); err == nil ||
		!strings.Contains(err.Error(), "status_page") {
		t.Errorf("FetchStatus of a daemon without a status page: %v, want an error naming web.status_page", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// The profiler is served only when web.pprof is true.
func TestPprofRoutes(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("pprof=%v", on), func(t *testing.T) {
			s := newSetup(t)
			cfg := s.config(t)
			cfg.Web.Pprof = on
			stop, base := runDaemonWeb(t, cfg)
			code, body := get(t, base+"/debug/pprof/goroutine?debug=1")
			switch {
			case on && (code != http.StatusOK || !strings.Contains(body, "goroutine profile:")):
				t.Errorf("GET goroutine profile with pprof on: %d %.100q, want 200 and a goroutine profile", code, body)
			case !on && code != http.StatusNotFound:
				t.Errorf("GET goroutine profile with pprof off: %d, want 404", code)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
