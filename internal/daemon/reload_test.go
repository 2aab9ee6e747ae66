package daemon_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/internal/daemon"
)

// jsonlLines reads a JSONL sink file that holds hits and log events, told
// apart by the "kind" field that only events have.
func jsonlLines(t *testing.T, path string) (hits []event.Hit, events []event.LogEvent) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(wholeLines(b)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var probe struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(sc.Bytes(), &probe); err != nil {
			t.Fatalf("bad JSONL line %q: %v", sc.Text(), err)
		}
		if probe.Kind != "" {
			var ev event.LogEvent
			_ = json.Unmarshal(sc.Bytes(), &ev)
			events = append(events, ev)
			continue
		}
		var h event.Hit
		_ = json.Unmarshal(sc.Bytes(), &h)
		hits = append(hits, h)
	}
	return hits, events
}

// awaitLines polls a JSONL file until cond holds; the sink offers no
// signal of its own.
func awaitLines(t *testing.T, path, what string, cond func([]event.Hit, []event.LogEvent) bool) ([]event.Hit, []event.LogEvent) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		hits, events := jsonlLines(t, path)
		if cond(hits, events) {
			return hits, events
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; have %d hits, %d events", what, len(hits), len(events))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countRule(hits []event.Hit, rule string) int {
	n := 0
	for _, h := range hits {
		if h.Rule == rule {
			n++
		}
	}
	return n
}

// reloadDaemon runs the daemon with reloading from the setup's
// configuration file, and returns a channel of reload outcomes.
func (s *setup) reloadDaemon(t *testing.T) (<-chan daemon.ReloadStatus, func() error) {
	t.Helper()
	path := filepath.Join(s.dir, "ctwatch.yaml")
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	reloads := make(chan daemon.ReloadStatus, 16)
	stop := runDaemon(t, cfg,
		daemon.WithReload(func() (*config.Config, error) { return config.Load(path, nil) }),
		daemon.WithReloadHook(func(st daemon.ReloadStatus) { reloads <- st }))
	return reloads, stop
}

func awaitReload(t *testing.T, reloads <-chan daemon.ReloadStatus, wantErr string) daemon.ReloadStatus {
	t.Helper()
	select {
	case st := <-reloads:
		if wantErr == "" && st.Err != "" {
			t.Fatalf("reload failed: %s", st.Err)
		}
		if wantErr != "" && !strings.Contains(st.Err, wantErr) {
			t.Fatalf("reload error %q, want one containing %q", st.Err, wantErr)
		}
		return st
	case <-time.After(30 * time.Second):
		t.Fatal("no reload")
	}
	panic("unreachable")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Write then rename, as editors and Kubernetes do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Changing a rule file reloads the rules without a restart; a broken rule
// file is refused with its file and line, raises a reload_failed event, and
// keeps the running rules; SIGHUP reloads too; a changed sink list takes
// effect.
func TestDaemonReloadsRulesAndSinks(t *testing.T) {
	s := newSetup(t)
	file := filepath.Join(s.dir, "hits.jsonl")
	s.configWith(t, fmt.Sprintf("\n  - {name: file, type: jsonl, path: %s}\n", file))
	s.add(t, 8) // 6 watched, 2 unwatched
	reloads, stop := s.reloadDaemon(t)
	awaitLines(t, file, "the first hits", func(h []event.Hit, _ []event.LogEvent) bool { return len(h) >= 6 })

	// A second rule, for the names the first ignores.
	rulesPath := filepath.Join(s.dir, "rules.yaml")
	writeFile(t, rulesPath, `rules:
  - name: ours
    severity: high
    match:
      domains: [.watched.example]
  - name: theirs
    severity: low
    tags: [other]
    match:
      domains: [.unwatched.example]
`)
	awaitReload(t, reloads, "")
	s.add(t, 8)
	hits, _ := awaitLines(t, file, "hits of the new rule", func(h []event.Hit, _ []event.LogEvent) bool { return countRule(h, "theirs") >= 2 })
	for _, h := range hits {
		if h.Rule == "theirs" && (h.Log.Index < 8 || !strings.HasSuffix(h.Cert.DNSNames[0], ".unwatched.example") || len(h.Tags) != 1) {
			t.Errorf("unexpected hit of the new rule: %+v", h)
		}
	}

	// A broken file: refused, reported with file and line, rules kept.
	writeFile(t, rulesPath, "rules:\n  - name: ours\n    severity: high\n    match:\n      domainz: [.watched.example]\n")
	st := awaitReload(t, reloads, "rules.yaml:5")
	_, events := awaitLines(t, file, "the reload_failed event", func(_ []event.Hit, e []event.LogEvent) bool { return len(e) > 0 })
	if events[0].Kind != event.ReloadFailed || !strings.Contains(events[0].Detail, "rules.yaml:5") {
		t.Errorf("event %+v, want reload_failed naming rules.yaml:5 (reload said %q)", events[0], st.Err)
	}
	s.add(t, 8)
	awaitLines(t, file, "the kept rule still matching", func(h []event.Hit, _ []event.LogEvent) bool { return countRule(h, "theirs") >= 4 })

	// SIGHUP reloads as well (the file is still broken: refused again).
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	awaitReload(t, reloads, "rules.yaml:5")

	// Fix the rules and add a sink in one configuration change.
	writeFile(t, rulesPath, "rules:\n  - name: ours\n    severity: high\n    match:\n      domains: [.watched.example]\n")
	awaitReload(t, reloads, "")
	second := filepath.Join(s.dir, "second.jsonl")
	s.configWith(t, fmt.Sprintf("\n  - {name: file, type: jsonl, path: %s}\n  - {name: second, type: jsonl, path: %s, events: false}\n", file, second))
	awaitReload(t, reloads, "")
	// The new sink starts from the beginning of the stream: every hit so
	// far, of both rules.
	awaitLines(t, second, "the new sink's backlog", func(h []event.Hit, _ []event.LogEvent) bool {
		return countRule(h, "ours") == len(s.watched) && countRule(h, "theirs") >= 4
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// A ConfigMap update, as the kubelet makes it (a new timestamped directory,
// then the "..data" symlink swapped to it), reloads the rules although the
// rule file's own path sees no event.
func TestDaemonReloadsOnConfigMapSwap(t *testing.T) {
	s := newSetup(t)
	file := filepath.Join(s.dir, "hits.jsonl")
	// The layout of a mounted ConfigMap: rules.yaml -> ..data/rules.yaml,
	// ..data -> ..v1.
	mount := filepath.Join(s.dir, "rules.d")
	for _, v := range []string{"..v1", "..v2"} {
		if err := os.MkdirAll(filepath.Join(mount, v), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ours := "rules:\n  - name: ours\n    severity: high\n    match:\n      domains: [.watched.example]\n"
	both := ours + "  - name: theirs\n    severity: low\n    match:\n      domains: [.unwatched.example]\n"
	if err := os.WriteFile(filepath.Join(mount, "..v1", "rules.yaml"), []byte(ours), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mount, "..v2", "rules.yaml"), []byte(both), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..v1", filepath.Join(mount, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "rules.yaml"), filepath.Join(mount, "rules.yaml")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(s.dir, "rules.yaml"), "rules: []\n")
	s.configWith(t, fmt.Sprintf("\n  - {name: file, type: jsonl, path: %s}\n", file))
	path := filepath.Join(s.dir, "ctwatch.yaml")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, strings.Replace(string(text), filepath.Join(s.dir, "rules.yaml"), filepath.Join(mount, "rules.yaml"), 1))
	s.add(t, 4)
	reloads, stop := s.reloadDaemon(t)
	awaitLines(t, file, "the first hits", func(h []event.Hit, _ []event.LogEvent) bool { return len(h) >= 3 })

	// The kubelet's swap: a temporary symlink to the new version renamed
	// over "..data".
	if err := os.Symlink("..v2", filepath.Join(mount, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(mount, "..data_tmp"), filepath.Join(mount, "..data")); err != nil {
		t.Fatal(err)
	}
	awaitReload(t, reloads, "")
	s.add(t, 4)
	awaitLines(t, file, "a hit of the rule the ConfigMap added", func(h []event.Hit, _ []event.LogEvent) bool { return countRule(h, "theirs") >= 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
