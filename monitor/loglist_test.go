package monitor_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ctwatch/ctwatch/monitor"
)

// llBundled reads the log list ctwatch ships (a real Chrome "all logs"
// list; see configs/log_list.SOURCE.md).
func llBundled(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "configs", "log_list.json"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// llRawLog is one log as the JSON says, decoded independently of the code
// under test.
type llRawLog struct {
	Description   string                     `json:"description"`
	LogID         string                     `json:"log_id"`
	Key           string                     `json:"key"`
	URL           string                     `json:"url"`
	MonitoringURL string                     `json:"monitoring_url"`
	State         map[string]json.RawMessage `json:"state"`
}

type llRawList struct {
	Operators []struct {
		Logs      []llRawLog `json:"logs"`
		TiledLogs []llRawLog `json:"tiled_logs"`
	} `json:"operators"`
}

func llFollowedState(l llRawLog) bool {
	for s := range l.State {
		if s == "usable" || s == "qualified" || s == "readonly" {
			return true
		}
	}
	return false
}

func TestParseLogListBundled(t *testing.T) {
	data := llBundled(t)
	var raw llRawList
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	want := map[string]llRawLog{} // by base64 log_id
	wantRFC, wantStatic, total := 0, 0, 0
	for _, op := range raw.Operators {
		total += len(op.Logs) + len(op.TiledLogs)
		for _, l := range op.Logs {
			if llFollowedState(l) {
				wantRFC++
				want[l.LogID] = l
			}
		}
		for _, l := range op.TiledLogs {
			if llFollowedState(l) {
				wantStatic++
				want[l.LogID] = l
			}
		}
	}
	if wantRFC == 0 {
		t.Fatal("the bundled list has no followed RFC 6962 log: wrong file?")
	}

	logs, skipped, err := monitor.ParseLogList(data)
	if err != nil {
		t.Fatal(err)
	}
	gotRFC, gotStatic := 0, 0
	for _, l := range logs {
		switch l.Kind {
		case monitor.KindRFC6962:
			gotRFC++
		case monitor.KindStatic:
			gotStatic++
		default:
			t.Errorf("%s: kind %q", l.Name, l.Kind)
		}
		id := base64.StdEncoding.EncodeToString(l.ID[:])
		w, ok := want[id]
		if !ok {
			t.Errorf("%s: followed, but its state in the list is not usable/qualified/readonly", l.Name)
			continue
		}
		wantURL := w.URL
		if l.Kind == monitor.KindStatic {
			wantURL = w.MonitoringURL
		}
		if l.Name != w.Description || l.URL != strings.TrimSuffix(wantURL, "/") || strings.HasSuffix(l.URL, "/") {
			t.Errorf("got %q at %q, want %q at %q without trailing slash", l.Name, l.URL, w.Description, wantURL)
		}
		if base64.StdEncoding.EncodeToString(l.Key) != w.Key {
			t.Errorf("%s: key differs from the list's", l.Name)
		}
		if sum := sha256.Sum256(l.Key); sum != [32]byte(l.ID) {
			t.Errorf("%s: ID is not the SHA-256 of Key", l.Name)
		}
		if l.Start != nil {
			t.Errorf("%s: Start = %d, want nil (end)", l.Name, *l.Start)
		}
	}
	if gotRFC != wantRFC || gotStatic != wantStatic {
		t.Errorf("followed %d RFC 6962 and %d static logs, want %d and %d", gotRFC, gotStatic, wantRFC, wantStatic)
	}
	if len(logs)+len(skipped) != total {
		t.Errorf("%d followed + %d skipped != %d logs in the list", len(logs), len(skipped), total)
	}

	names := make([]string, len(logs))
	for i, l := range logs {
		names[i] = l.Name
	}
	for _, tc := range []struct {
		name     string
		followed bool
		reason   string
	}{
		{"Google 'Argon2025h1' log", true, ""},
		{"Sectigo 'Sabre' CT log", true, ""}, // readonly
		{"DigiCert Nessie2025 Log", false, "state retired"},
		{"Google 'Argon2020' log", false, "state rejected"},
		{"Google 'Testtube' log", false, "no state"},
	} {
		if got := slices.Contains(names, tc.name); got != tc.followed {
			t.Errorf("%s: followed = %v, want %v", tc.name, got, tc.followed)
		}
		if !tc.followed && !slices.ContainsFunc(skipped, func(s string) bool {
			return strings.HasPrefix(s, tc.name+" (") && strings.Contains(s, tc.reason)
		}) {
			t.Errorf("%s: not listed as skipped for %q", tc.name, tc.reason)
		}
	}
}

// llKey is a real log key from the bundled list, with its log_id.
func llKey(t *testing.T) (key, id string) {
	t.Helper()
	var raw llRawList
	if err := json.Unmarshal(llBundled(t), &raw); err != nil {
		t.Fatal(err)
	}
	for _, op := range raw.Operators {
		for _, l := range op.TiledLogs {
			return l.Key, l.LogID
		}
	}
	t.Fatal("no tiled log in the bundled list")
	return "", ""
}

func TestParseLogListEntries(t *testing.T) {
	key, id := llKey(t)
	otherKey := base64.StdEncoding.EncodeToString([]byte("not a key"))
	state := func(s string) string { return `"state": {"` + s + `": {"timestamp": "2025-01-01T00:00:00Z"}}` }
	rfc := func(extra string) string {
		return `{"operators": [{"name": "Op", "logs": [{"description": "L", "log_id": "` + id + `", "key": "` + key +
			`", "url": "https://log.example/ct/", "mmd": 86400` + extra + `}]}]}`
	}
	tiled := func(extra string) string {
		return `{"operators": [{"name": "Op", "tiled_logs": [{"description": "T", "log_id": "` + id + `", "key": "` + key +
			`", "submission_url": "https://sub.example/2025/", "monitoring_url": "https://mon.example/2025/", "mmd": 60` + extra + `}]}]}`
	}
	tests := []struct {
		name    string
		list    string
		want    *monitor.Log // nil when skipped
		skipped string       // part of the reason
	}{
		{"usable", rfc(", " + state("usable")), &monitor.Log{Name: "L", Kind: monitor.KindRFC6962, URL: "https://log.example/ct"}, ""},
		{"qualified", rfc(", " + state("qualified")), &monitor.Log{Name: "L", Kind: monitor.KindRFC6962, URL: "https://log.example/ct"}, ""},
		{"readonly", rfc(`, "state": {"readonly": {"timestamp": "2025-01-01T00:00:00Z", "final_tree_head": {"sha256_root_hash": "", "tree_size": 5}}}`),
			&monitor.Log{Name: "L", Kind: monitor.KindRFC6962, URL: "https://log.example/ct"}, ""},
		{"pending", rfc(", " + state("pending")), nil, "state pending"},
		{"retired", rfc(", " + state("retired")), nil, "state retired"},
		{"rejected", rfc(", " + state("rejected")), nil, "state rejected"},
		{"no state", rfc(""), nil, "no state"},
		{"tiled usable", tiled(", " + state("usable")), &monitor.Log{Name: "T", Kind: monitor.KindStatic, URL: "https://sub.example/2025", MonitoringURL: "https://mon.example/2025", Origin: "sub.example/2025"}, ""},
		{"tiled retired", tiled(", " + state("retired")), nil, "state retired"},
		{"wrong log_id", strings.Replace(rfc(", "+state("usable")), id, base64.StdEncoding.EncodeToString(make([]byte, 32)), 1), nil, "log_id"},
		{"bad key", strings.Replace(rfc(", "+state("usable")), key, otherKey, 1), nil, "key"},
		{"bad url", strings.Replace(rfc(", "+state("usable")), "https://log.example/ct/", "ftp://x", 1), nil, "URL"},
		{"no description", strings.Replace(rfc(", "+state("usable")), `"description": "L", `, "", 1),
			&monitor.Log{Name: "Op log https://log.example/ct/", Kind: monitor.KindRFC6962, URL: "https://log.example/ct"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs, skipped, err := monitor.ParseLogList([]byte(tc.list))
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if len(logs) != 0 || len(skipped) != 1 || !strings.Contains(skipped[0], tc.skipped) {
					t.Fatalf("got logs %v, skipped %q; want it skipped for %q", logs, skipped, tc.skipped)
				}
				return
			}
			if len(logs) != 1 || len(skipped) != 0 {
				t.Fatalf("got %d logs, skipped %q; want 1 log", len(logs), skipped)
			}
			got := logs[0]
			wantKey, _ := base64.StdEncoding.DecodeString(key)
			wantID, _ := base64.StdEncoding.DecodeString(id)
			if got.Name != tc.want.Name || got.Kind != tc.want.Kind || got.URL != tc.want.URL ||
				!bytes.Equal(got.Key, wantKey) || !bytes.Equal(got.ID[:], wantID) || got.Start != nil {
				t.Errorf("got %+v, want %+v with the list's key and ID", got, tc.want)
			}
		})
	}

	t.Run("same key twice", func(t *testing.T) {
		entry := `{"description": "D", "log_id": "` + id + `", "key": "` + key + `", "url": "https://a.example/", ` + state("usable") + `}`
		list := `{"operators": [{"name": "A", "logs": [` + entry + `, ` + strings.Replace(entry, `"D"`, `"E"`, 1) + `]}]}`
		logs, skipped, err := monitor.ParseLogList([]byte(list))
		if err != nil {
			t.Fatal(err)
		}
		if len(logs) != 1 || logs[0].Name != "D" || len(skipped) != 1 || !strings.HasPrefix(skipped[0], "E ") {
			t.Errorf("got %v, skipped %q; want D followed and E skipped", logs, skipped)
		}
	})
	t.Run("null entries", func(t *testing.T) {
		logs, skipped, err := monitor.ParseLogList([]byte(`{"operators": [null, {"logs": [null], "tiled_logs": [null]}]}`))
		if err != nil || len(logs) != 0 || len(skipped) != 0 {
			t.Errorf("got %v, %q, %v; want nothing and no error", logs, skipped, err)
		}
	})
}

func TestParseLogListBadInput(t *testing.T) {
	for _, in := range []string{"", "  ", "{", "not json", "null", "[]", "{}", `{"operators": 5}`, `{"operators": [{"logs": [{"key": 5}]}]}`} {
		if logs, _, err := monitor.ParseLogList([]byte(in)); err == nil {
			t.Errorf("%q: got %d logs and no error", in, len(logs))
		}
	}
}

func FuzzParseLogList(f *testing.F) {
	f.Add(llBundled(f))
	f.Add([]byte(`{"operators": [{"logs": [{"state": {"usable": {}}}], "tiled_logs": [{"state": {"readonly": {}}}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		logs, _, err := monitor.ParseLogList(data)
		if err != nil && logs != nil {
			t.Fatal("logs returned with an error")
		}
		for _, l := range logs {
			if sha256.Sum256(l.Key) != [32]byte(l.ID) {
				t.Fatalf("%s: ID is not the SHA-256 of Key", l.Name)
			}
		}
	})
}

// llLogBuffer collects log output; slog handlers may write from several
// goroutines.
type llLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *llLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *llLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func llLogger() (*slog.Logger, *llLogBuffer) {
	b := &llLogBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func llNames(logs []monitor.Log) []string {
	names := make([]string, len(logs))
	for i, l := range logs {
		names[i] = l.Name
	}
	return names
}

func TestLogListSource(t *testing.T) {
	bundled := llBundled(t)
	wantLogs, _, err := monitor.ParseLogList(bundled)
	if err != nil {
		t.Fatal(err)
	}
	want := llNames(wantLogs)

	// A small, different list: a source that returns it did not fall back.
	key, id := llKey(t)
	live := []byte(`{"version": "live", "log_list_timestamp": "2026-01-01T00:00:00Z", "operators": [{"name": "Op", "logs": [{"description": "Live", "log_id": "` +
		id + `", "key": "` + key + `", "url": "https://live.example/", "state": {"usable": {"timestamp": "2025-01-01T00:00:00Z"}}}]}]}`)

	serve := func(status int, body []byte) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			_, _ = w.Write(body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL + "/log_list.json"
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	unreachable := closed.URL + "/log_list.json"
	closed.Close()

	dir := t.TempDir()
	file := filepath.Join(dir, "list.json")
	if err := os.WriteFile(file, live, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		src      string
		fallback []byte
		want     []string // nil: an error is wanted
		warned   bool     // the fallback warning is logged
	}{
		{"url", serve(http.StatusOK, live), bundled, []string{"Live"}, false},
		{"url, the bundled list served", serve(http.StatusOK, bundled), nil, want, false},
		{"unreachable, fallback", unreachable, bundled, want, true},
		{"unreachable, no fallback", unreachable, nil, nil, false},
		{"HTTP 500, fallback", serve(http.StatusInternalServerError, live), bundled, want, true},
		{"HTTP 404, no fallback", serve(http.StatusNotFound, live), nil, nil, false},
		{"not JSON, fallback", serve(http.StatusOK, []byte("<html>captive portal</html>")), bundled, want, true},
		{"not JSON, no fallback", serve(http.StatusOK, []byte("<html>captive portal</html>")), nil, nil, false},
		{"too large", serve(http.StatusOK, bytes.Repeat([]byte(" "), 8<<20+1)), nil, nil, false},
		{"file", file, bundled, []string{"Live"}, false},
		{"missing file, fallback not used", filepath.Join(dir, "missing.json"), bundled, nil, false},
		{"bad fallback", unreachable, []byte("{"), nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logger, out := llLogger()
			src := monitor.NewLogListSource(tc.src, nil, logger, tc.fallback)
			logs, err := src.Load(context.Background())
			if tc.want == nil {
				if err == nil {
					t.Fatalf("got %d logs and no error", len(logs))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := llNames(logs); !slices.Equal(got, tc.want) {
				t.Errorf("got %d logs %q…, want %d", len(got), got[:min(3, len(got))], len(tc.want))
			}
			warned := strings.Contains(out.String(), "level=WARN") &&
				strings.Contains(out.String(), "bundled_log_list_timestamp=2025-05-05T12:54:12Z")
			if warned != tc.warned {
				t.Errorf("fallback warning logged = %v, want %v; log:\n%s", warned, tc.warned, out)
			}
		})
	}

	t.Run("no source", func(t *testing.T) {
		logs, err := monitor.NewLogListSource("", nil, nil, bundled).Load(context.Background())
		if logs != nil || err != nil {
			t.Errorf("got %v, %v; want nothing", logs, err)
		}
	})
	t.Run("cancelled, no fallback used", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		logs, err := monitor.NewLogListSource(serve(http.StatusOK, live), nil, nil, bundled).Load(ctx)
		if err == nil {
			t.Errorf("got %d logs and no error", len(logs))
		}
	})
}
