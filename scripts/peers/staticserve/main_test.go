package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// layout writes a miniature TesseraCT storage directory and returns it.
func layout(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"checkpoint":         "127.0.0.1/test\n1\nroot\n",
		"tile/data/000.p/1":  "entry bundle",
		"tile/0/000.p/1":     "hash tile",
		"issuer/abcdef":      "issuer der",
		".state/treeState":   "private tree state",
		"tile/.tmp-00000001": "half-written file",
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(newHandler(layout(t)))
	t.Cleanup(srv.Close)
	tests := []struct {
		method, path string
		status       int
		body         string // checked when status is 200
	}{
		{"GET", "/checkpoint", 200, "127.0.0.1/test\n1\nroot\n"},
		{"GET", "/tile/data/000.p/1", 200, "entry bundle"},
		{"GET", "/tile/0/000.p/1", 200, "hash tile"},
		{"GET", "/issuer/abcdef", 200, "issuer der"},
		{"HEAD", "/checkpoint", 200, ""},
		{"GET", "/missing", 404, ""},
		{"GET", "/.state/treeState", 404, ""},
		{"GET", "/tile/../.state/treeState", 404, ""},
		{"GET", "/tile/%2e%2e/.state/treeState", 404, ""},
		{"GET", "/tile/.tmp-00000001", 404, ""},
		{"GET", "/", 404, ""},
		{"GET", "/tile/", 404, ""},
		{"GET", "/tile", 404, ""},
		{"POST", "/checkpoint", 405, ""},
		{"PUT", "/checkpoint", 405, ""},
		{"DELETE", "/checkpoint", 405, ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(""))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tc.status, body)
			}
			if tc.status == 200 && string(body) != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
		})
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:8080", true},
		{"127.0.0.1:0", true},
		{"[::1]:8080", true},
		{"0.0.0.0:8080", false},
		{":8080", false},
		{"localhost:8080", false}, // names are not resolved: an IP is required
		{"192.0.2.1:8080", false},
		{"127.0.0.1", false},
	}
	for _, tc := range tests {
		if err := checkLoopback(tc.addr); (err == nil) != tc.ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}

func TestRunArguments(t *testing.T) {
	dir := layout(t)
	file := filepath.Join(dir, "checkpoint")
	tests := []struct {
		name string
		args []string
		want string // substring of the error
	}{
		{"no dir", nil, "-dir is required"},
		{"missing dir", []string{"-dir", filepath.Join(dir, "nope")}, "directory to serve"},
		{"file as dir", []string{"-dir", file}, "is not a directory"},
		{"public address", []string{"-dir", dir, "-addr", "0.0.0.0:0"}, "loopback"},
		{"extra argument", []string{"-dir", dir, "extra"}, "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

// TestRunServesUntilCancelled runs the command as static.sh does, reads the
// address it prints, fetches the checkpoint and stops it.
func TestRunServesUntilCancelled(t *testing.T) {
	dir := layout(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-dir", dir}, pw, slog.New(slog.DiscardHandler))
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the address line: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("first line %q does not name the address", line)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "127.0.0.1/test\n") {
		t.Fatalf("GET /checkpoint: %d %q", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10 s of cancel")
	}
	if _, err := client.Get("http://" + addr + "/checkpoint"); err == nil {
		t.Error("the server still answers after run returned")
	}
}
