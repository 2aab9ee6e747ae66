package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// certspotter v0.18.0 reads a v3 log list (loglist/schema.go there): per
// log, key (base64 DER SubjectPublicKeyInfo), log_id (base64 SHA-256 of the
// key, which it checks), url (the base URL before /ct/v1/) and a state. It
// follows every log of the list, whatever the state; usable is what a log
// being monitored for real would have.

type csLogList struct {
	Version          string       `json:"version"`
	LogListTimestamp time.Time    `json:"log_list_timestamp"`
	Operators        []csOperator `json:"operators"`
}

type csOperator struct {
	Name  string   `json:"name"`
	Email []string `json:"email"`
	Logs  []csLog  `json:"logs"`
}

type csLog struct {
	Description string  `json:"description"`
	LogID       []byte  `json:"log_id"` // encoding/json writes []byte as standard base64
	Key         []byte  `json:"key"`
	URL         string  `json:"url"`
	MMD         int     `json:"mmd"`
	State       csState `json:"state"`
}

type csState struct {
	Usable *csTimestamp `json:"usable,omitempty"`
}

type csTimestamp struct {
	Timestamp time.Time `json:"timestamp"`
}

// certspotterLogList writes a log list naming only the log at url with the
// base64 DER key keyB64.
func certspotterLogList(description, url, keyB64 string, now time.Time) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	id := sha256.Sum256(key)
	list := csLogList{
		Version:          "1.0",
		LogListTimestamp: now.UTC().Truncate(time.Second),
		Operators: []csOperator{{
			Name:  "ctwatch bench",
			Email: []string{"bench@bench.example"},
			Logs: []csLog{{
				Description: description,
				LogID:       id[:],
				Key:         key,
				URL:         strings.TrimRight(url, "/") + "/",
				MMD:         86400,
				State:       csState{Usable: &csTimestamp{Timestamp: now.UTC().Truncate(time.Second)}},
			}},
		}},
	}
	return json.MarshalIndent(list, "", "  ")
}

// certspotterWatchlist writes domains in certspotter's syntax: one per
// line, a leading dot for the domain and every name below it — what the
// bench rule's ".domain" entries mean to ctwatch.
func certspotterWatchlist(domains []string) []byte {
	var b strings.Builder
	for _, d := range domains {
		b.WriteString("." + d + "\n")
	}
	return []byte(b.String())
}

// certspotterStateSize reads verified_position.size of certspotter's state
// file for the log whose base64 DER key is keyB64
// (STATE/logs/<unpadded base64url log ID>/state.json) and when the file was
// written. It returns 0 before the file exists; certspotter writes it every
// 10,000 entries and at every verified tree head.
func certspotterStateSize(stateDir, keyB64 string) (uint64, time.Time, error) {
	key, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("log key: %w", err)
	}
	id := sha256.Sum256(key)
	path := filepath.Join(stateDir, "logs", base64.RawURLEncoding.EncodeToString(id[:]), "state.json")
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("certspotter state: %w", err)
	}
	defer f.Close()
	// Stat and read the same file: certspotter replaces it as a whole.
	fi, err := f.Stat()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("certspotter state: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("certspotter state: %w", err)
	}
	size, err := parseCertspotterState(data)
	return size, fi.ModTime(), err
}

func parseCertspotterState(data []byte) (uint64, error) {
	var st struct {
		Verified *struct {
			Size uint64 `json:"size"`
		} `json:"verified_position"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return 0, fmt.Errorf("certspotter state: %w", err)
	}
	if st.Verified == nil {
		return 0, nil
	}
	return st.Verified.Size, nil
}

// certspotterMatch is the first line of each certificate certspotter -stdout
// prints: its hex SHA-256 and a colon.
var certspotterMatch = regexp.MustCompile(`^[0-9a-f]{64}:$`)

// countCertspotterMatches counts the certificates in certspotter's -stdout
// output.
func countCertspotterMatches(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("certspotter output: %w", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if certspotterMatch.MatchString(sc.Text()) {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("certspotter output: %w", err)
	}
	return n, nil
}
