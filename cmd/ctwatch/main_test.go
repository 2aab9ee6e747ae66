package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/testca"
)

// ctwatch runs the CLI in-process and returns its exit code and output.
func ctwatch(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = execute(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const watchRules = `rules:
  - name: ours
    severity: high
    match:
      domains: [.watched.example]
`

func TestBadConfigExitsTwoNamingFileLineAndKey(t *testing.T) {
	dir := t.TempDir()
	cfg := write(t, dir, "bad.yaml", "data_dir: "+dir+"\nlog_list: \"\"\nnats:\n  url: \"\"\n  ulr: typo\n")
	for _, cmd := range [][]string{
		{"run", "--config", cfg},
		{"rules", "validate", "--config", cfg},
		{"logs", "--config", cfg},
	} {
		code, _, stderr := ctwatch(t, "", cmd...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", cmd, code)
		}
		if !strings.Contains(stderr, cfg+":5:") || !strings.Contains(stderr, "ulr") {
			t.Errorf("%v: stderr %q does not name %s:5 and the key", cmd, stderr, cfg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "nats")); err == nil {
		t.Error("run started NATS despite a bad config")
	}
}

func TestBadRulesExitTwoBeforeStarting(t *testing.T) {
	dir := t.TempDir()
	rules := write(t, dir, "r.yaml", "rules:\n  - name: x\n    severity: urgent\n    match:\n      domains: [example.com]\n")
	cfg := write(t, dir, "c.yaml", "data_dir: "+filepath.Join(dir, "data")+"\nlog_list: \"\"\nrules:\n  files: ["+rules+"]\n")
	for _, cmd := range [][]string{{"run", "--config", cfg}, {"rules", "validate", "--config", cfg}} {
		code, _, stderr := ctwatch(t, "", cmd...)
		if code != 2 || !strings.Contains(stderr, rules+":3:") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %s:3", cmd, code, stderr, rules)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("run created its data dir despite bad rules")
	}
	good := write(t, dir, "good.yaml", watchRules)
	cfg = write(t, dir, "c2.yaml", "log_list: \"\"\nrules:\n  files: ["+good+"]\n")
	if code, out, stderr := ctwatch(t, "", "rules", "validate", "--config", cfg); code != 0 || !strings.Contains(out, "3 rules") {
		t.Errorf("validate good rules: exit %d, out %q, err %q", code, out, stderr)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	ca, err := testca.New("check")
	if err != nil {
		t.Fatal(err)
	}
	hitDER, err := ca.Leaf("www.watched.example")
	if err != nil {
		t.Fatal(err)
	}
	missDER, err := ca.Leaf("www.elsewhere.example")
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	hit := write(t, dir, "hit.pem", pemOf(hitDER))
	miss := write(t, dir, "miss.der", string(missDER))
	garbage := write(t, dir, "garbage.pem", "not a certificate")
	rules := write(t, dir, "rules.yaml", watchRules)
	cfg := write(t, dir, "c.yaml", "log_list: \"\"\nrules:\n  files: ["+rules+"]\n")

	sum := sha256.Sum256(hitDER)
	for _, tc := range []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"hit", "", []string{hit}, 1, "ours"},
		{"no hit (DER)", "", []string{miss}, 0, ""},
		{"both", "", []string{miss, hit}, 1, "ours"},
		{"stdin", pemOf(hitDER), []string{"-"}, 1, "ours"},
		{"json", "", []string{"--json", hit}, 1, hex.EncodeToString(sum[:])},
		{"garbage", "", []string{garbage}, 2, ""},
		{"missing file", "", []string{filepath.Join(dir, "nope.pem")}, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"check", "--config", cfg}, tc.args...)
			code, out, stderr := ctwatch(t, tc.stdin, args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.wantCode, out, stderr)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Fatalf("stdout %q lacks %q", out, tc.wantOut)
			}
		})
	}

	_, out, _ := ctwatch(t, "", "check", "--config", cfg, "--json", hit)
	var h event.Hit
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &h); err != nil {
		t.Fatalf("check --json printed %q: %v", out, err)
	}
	if h.Rule != "ours" || h.Severity != event.SeverityHigh || h.Log != nil || h.Cert.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("unexpected hit %+v", h)
	}
	if strings.Contains(out, `"log"`) {
		t.Fatalf("check hits must not carry a log: %s", out)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := ctwatch(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "ctwatch ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}
