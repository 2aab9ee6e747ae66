package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testLogKey(t *testing.T) (string, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der), der
}

// The log list is read the way certspotter v0.18.0 reads it
// (loglist/schema.go, validate.go and monitor/loglist.go there), written
// out here without importing it: log_id and key are base64 strings, the
// ID must be the SHA-256 of the key, logs are keyed by ID, and the URL
// gets /ct/v1/... appended after trailing slashes are trimmed.
func TestCertspotterLogList(t *testing.T) {
	keyB64, der := testLogKey(t)
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	data, err := certspotterLogList("bench", "http://127.0.0.1:6963/testlog", keyB64, now)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Version          string    `json:"version"`
		LogListTimestamp time.Time `json:"log_list_timestamp"`
		Operators        []struct {
			Name string `json:"name"`
			Logs []struct {
				Key   []byte `json:"key"`
				LogID string `json:"log_id"`
				MMD   int    `json:"mmd"`
				URL   string `json:"url"`
				State struct {
					Usable *struct {
						Timestamp time.Time `json:"timestamp"`
					} `json:"usable"`
				} `json:"state"`
			} `json:"logs"`
		} `json:"operators"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&list); err != nil {
		t.Fatalf("log list does not decode: %v\n%s", err, data)
	}
	if len(list.Operators) != 1 || len(list.Operators[0].Logs) != 1 {
		t.Fatalf("want one operator with one log: %s", data)
	}
	l := list.Operators[0].Logs[0]
	if !bytes.Equal(l.Key, der) {
		t.Errorf("key does not decode to the log's DER key")
	}
	id, err := base64.StdEncoding.DecodeString(l.LogID)
	sum := sha256.Sum256(der)
	if err != nil || !bytes.Equal(id, sum[:]) {
		t.Errorf("log_id %q is not the base64 SHA-256 of the key (%v)", l.LogID, err)
	}
	if got := strings.TrimRight(l.URL, "/") + "/ct/v1/get-sth"; got != "http://127.0.0.1:6963/testlog/ct/v1/get-sth" {
		t.Errorf("get-sth URL certspotter builds: %q", got)
	}
	if l.State.Usable == nil || !l.State.Usable.Timestamp.Equal(now) || !list.LogListTimestamp.Equal(now) {
		t.Errorf("state %+v, timestamp %v: want usable since %v", l.State, list.LogListTimestamp, now)
	}
	if l.MMD <= 0 {
		t.Errorf("mmd %d", l.MMD)
	}
	if _, err := certspotterLogList("bench", "http://x", "not base64!", now); err == nil {
		t.Error("a key that is not base64 was accepted")
	}
}

func TestCertspotterWatchlist(t *testing.T) {
	got := string(certspotterWatchlist([]string{"w0.bench.example", "w1.bench.example"}))
	if want := ".w0.bench.example\n.w1.bench.example\n"; got != want {
		t.Errorf("watchlist %q, want %q (a leading dot: the domain and every name below it)", got, want)
	}
}

func TestCertspotterState(t *testing.T) {
	keyB64, der := testLogKey(t)
	dir := t.TempDir()
	if n, _, err := certspotterStateSize(dir, keyB64); n != 0 || err != nil {
		t.Errorf("before the state file exists: %d, %v; want 0, nil", n, err)
	}
	// certspotter names the directory with LogID.Base64URLString():
	// base64url without padding.
	id := sha256.Sum256(der)
	logDir := filepath.Join(dir, "logs", base64.RawURLEncoding.EncodeToString(id[:]))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The shape of certspotter's state.json (statefile.go, merkletree's
	// CollapsedTree JSON).
	state := `{"download_position":{"nodes":["AA=="],"size":20000},"verified_position":{"nodes":[],"size":19000},` +
		`"verified_sth":null,"last_success":"2026-11-26T10:00:00Z"}`
	statePath := filepath.Join(logDir, "state.json")
	if err := os.WriteFile(statePath, []byte(state), 0o644); err != nil {
		t.Fatal(err)
	}
	written := time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.UTC)
	if err := os.Chtimes(statePath, written, written); err != nil {
		t.Fatal(err)
	}
	n, at, err := certspotterStateSize(dir, keyB64)
	if n != 19000 || err != nil {
		t.Errorf("state size %d, %v; want the verified 19000", n, err)
	}
	if !at.Equal(written) {
		t.Errorf("state written at %v, want the file's modification time %v", at, written)
	}
	for _, tt := range []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{`{"verified_position":{"size":5}}`, 5, false},
		{`{"download_position":{"size":5}}`, 0, false},
		{`{"verified_posi`, 0, true}, // caught mid-write
	} {
		n, err := parseCertspotterState([]byte(tt.in))
		if n != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseCertspotterState(%s) = %d, %v", tt.in, n, err)
		}
	}
}

func TestCountCertspotterMatches(t *testing.T) {
	// What certspotter -stdout prints per certificate (discoveredcert.go
	// Text()): the hex SHA-256 and a colon, then indented fields.
	out := strings.Repeat("0123456789abcdef", 4) + ":\n" +
		"\t     DNS Name = b0.w0.bench.example\n" +
		"\t       Pubkey = " + strings.Repeat("ab", 32) + "\n" +
		"\t    Log Entry = 17 @ http://127.0.0.1/testlog/\n\n" +
		strings.Repeat("fedcba9876543210", 4) + ":\n" +
		"\t     DNS Name = b20.w1.bench.example\n\n"
	path := filepath.Join(t.TempDir(), "stdout.txt")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := countCertspotterMatches(path); n != 2 || err != nil {
		t.Errorf("countCertspotterMatches = %d, %v; want 2", n, err)
	}
}
