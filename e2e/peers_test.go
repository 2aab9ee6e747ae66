//go:build e2e

package e2e

import (
	"bufio"
	"encoding/base64"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/jsonclient"
)

// rfc6962Peer is a running Trillian + CTFE log started by
// scripts/peers/rfc6962.sh.
type rfc6962Peer struct {
	url    string // base URL, before /ct/v1/
	keyB64 string // base64 DER SubjectPublicKeyInfo, as the config takes it
	key    []byte // the same key, decoded
}

// startRFC6962 starts a real RFC 6962 log in dir (created) that accepts
// chains to the roots in rootsPEM, and stops it when the test ends. A failure
// to start fails the test: only CTWATCHTEST_E2E_SKIP_RFC6962=1, checked by the
// caller, may skip it.
func startRFC6962(t *testing.T, dir, rootsPEM string) rfc6962Peer {
	t.Helper()
	env := startPeer(t, "rfc6962.sh", dir, rootsPEM,
		"trillian_log_server.log", "trillian_log_signer.log", "ct_server.log")
	p := rfc6962Peer{url: env["CT_URL"], keyB64: env["CT_KEY"]}
	if p.url == "" || p.keyB64 == "" {
		t.Fatalf("env file lacks CT_URL or CT_KEY: %v", env)
	}
	var err error
	if p.key, err = base64.StdEncoding.DecodeString(p.keyB64); err != nil {
		t.Fatalf("CT_KEY is not base64: %v", err)
	}
	return p
}

// readEnvFile parses KEY=VALUE lines.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open env file: %v", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read env file: %v", err)
	}
	return env
}

// newLogClient returns a ct-go client for the log at url that verifies every
// SCT and STH signature with key (DER SPKI).
func newLogClient(t *testing.T, url string, key []byte) *client.LogClient {
	t.Helper()
	lc, err := client.New(url, &http.Client{Timeout: 30 * time.Second}, jsonclient.Options{PublicKeyDER: key})
	if err != nil {
		t.Fatalf("ct client: %v", err)
	}
	return lc
}
