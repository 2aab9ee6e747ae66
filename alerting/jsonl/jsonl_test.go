package jsonl

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
)

func hitMessage(t *testing.T, id string) *alerting.Message {
	t.Helper()
	h := &event.Hit{ID: id, Rule: "r", Severity: event.SeverityLow, Cert: event.CertInfo{DNSNames: []string{"a.example"}}}
	data, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return &alerting.Message{Subject: "ctwatch.hit.low", Data: data, Hit: h}
}

func open(t *testing.T, path string) *Notifier {
	t.Helper()
	n, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAppendsExactJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.jsonl")
	n := open(t, path)
	m1, m2 := hitMessage(t, "one"), hitMessage(t, "two")
	for _, m := range []*alerting.Message{m1, m2} {
		if err := n.Notify(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := readFile(t, path), string(m1.Data)+"\n"+string(m2.Data)+"\n"; got != want {
		t.Errorf("file holds %q, want %q", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^FileMode != 0 {
		t.Errorf("file mode %v is wider than %v", perm, FileMode)
	}

	// Reopening appends.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n2 := open(t, path)
	if err := n2.Notify(t.Context(), hitMessage(t, "three")); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(readFile(t, path), "\n"); lines != 3 {
		t.Errorf("%d lines after reopen, want 3", lines)
	}
}

// A line cut short by a crash is terminated on open, so the next line is
// whole and parses.
func TestRepairsPartialLastLine(t *testing.T) {
	tests := []struct {
		name, before, wantPrefix string
	}{
		{"partial line", `{"id":"ok"}` + "\n" + `{"id":"cut`, `{"id":"ok"}` + "\n" + `{"id":"cut` + "\n"},
		{"whole lines", `{"id":"ok"}` + "\n", `{"id":"ok"}` + "\n"},
		{"empty file", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "alerts.jsonl")
			if err := os.WriteFile(path, []byte(tc.before), 0o600); err != nil {
				t.Fatal(err)
			}
			n := open(t, path)
			m := hitMessage(t, "next")
			if err := n.Notify(t.Context(), m); err != nil {
				t.Fatal(err)
			}
			if got, want := readFile(t, path), tc.wantPrefix+string(m.Data)+"\n"; got != want {
				t.Errorf("file holds %q, want %q", got, want)
			}
		})
	}
}

func TestRejectsAndCompacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.jsonl")
	n := open(t, path)
	for _, data := range []string{"", "not json", `{"id":"x"`} {
		if err := n.Notify(t.Context(), &alerting.Message{Data: []byte(data), Hit: &event.Hit{ID: "x"}}); err == nil {
			t.Errorf("Notify accepted %q", data)
		}
	}
	indented := "{\n  \"id\": \"x\",\r\n  \"rule\": \"r\"\n}"
	if err := n.Notify(t.Context(), &alerting.Message{Data: []byte(indented), Hit: &event.Hit{ID: "x"}}); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := json.Compact(&want, []byte(indented)); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != want.String()+"\n" {
		t.Errorf("file holds %q, want %q", got, want.String()+"\n")
	}
}

func TestNotifyAfterCloseFails(t *testing.T) {
	n, err := Open(filepath.Join(t.TempDir(), "a.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(t.Context(), hitMessage(t, "late")); err == nil {
		t.Error("Notify after Close succeeded")
	}
}

func TestOpenFailsOnDirectory(t *testing.T) {
	if _, err := Open(t.TempDir()); err == nil {
		t.Error("Open of a directory succeeded")
	}
}

// Digests and test alerts are written as their JSON, byte for byte, one
// line each.
func TestDigestAndTestMessages(t *testing.T) {
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	dg := &event.Digest{
		ID: "dg1", Kind: event.DigestKind, Rule: "our-names", Severity: event.SeverityHigh, Count: 2,
		First: first, Last: first.Add(time.Minute), Names: []string{"a.example", "b\nexample"}, MoreNames: 0,
		URL:  "https://ctwatch.example/d/dg1",
		Hits: []event.Hit{{ID: "h1", Rule: "our-names"}, {ID: "h2", Rule: "our-names"}},
	}
	dgData, err := json.Marshal(dg)
	if err != nil {
		t.Fatal(err)
	}
	testMsg := hitMessage(t, "test-hit")
	testMsg.Test = true

	tests := []struct {
		name string
		m    *alerting.Message
	}{
		{"digest", &alerting.Message{Subject: "ctwatch.hit.high", Data: dgData, Digest: dg}},
		{"test hit", testMsg},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "alerts.jsonl")
			if err := open(t, path).Notify(t.Context(), tc.m); err != nil {
				t.Fatal(err)
			}
			if got, want := readFile(t, path), string(tc.m.Data)+"\n"; got != want {
				t.Errorf("file holds %q, want %q", got, want)
			}
		})
	}

	// The digest line decodes back to the digest a reader expects.
	path := filepath.Join(t.TempDir(), "alerts.jsonl")
	if err := open(t, path).Notify(t.Context(), tests[0].m); err != nil {
		t.Fatal(err)
	}
	var back event.Digest
	if err := json.Unmarshal([]byte(readFile(t, path)), &back); err != nil {
		t.Fatal(err)
	}
	if back.Kind != event.DigestKind || back.ID != "dg1" || back.Count != 2 || len(back.Hits) != 2 || back.Names[1] != "b\nexample" || !back.First.Equal(first) {
		t.Errorf("digest line decodes to %+v", back)
	}
}
