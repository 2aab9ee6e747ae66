package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "nats: ok\nlogs: FAIL argon2026: no tree head for 5m", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/healthz", http.StatusFound)
	})
	mux.HandleFunc("GET /hang", func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // until the client gives up
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	closed := httptest.NewServer(mux)
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string // substrings expected; "" expects nothing
		stderr     string
		unexpected string // must appear in neither output
	}{
		{name: "healthy", args: []string{srv.URL + "/healthz"}, code: 0, stdout: "200 OK\nok\n"},
		{name: "redirect followed", args: []string{srv.URL + "/moved"}, code: 0, stdout: "200 OK\nok\n"},
		{name: "not ready shows why", args: []string{srv.URL + "/readyz"}, code: 1,
			stderr: "503 Service Unavailable\nnats: ok\nlogs: FAIL argon2026: no tree head for 5m\n"},
		{name: "not found", args: []string{srv.URL + "/nothing"}, code: 1, stderr: "404 Not Found"},
		{name: "nobody listening", args: []string{closedURL + "/healthz"}, code: 1, stderr: "no answer"},
		{name: "timeout", args: []string{"-timeout", "100ms", srv.URL + "/hang"}, code: 1, stderr: "context deadline exceeded"},
		{name: "no URL", args: nil, code: 2, stderr: "usage:"},
		{name: "two URLs", args: []string{srv.URL, srv.URL}, code: 2, stderr: "usage:"},
		{name: "not http", args: []string{"ftp://127.0.0.1/readyz"}, code: 2, stderr: "bad URL"},
		{name: "no host", args: []string{"/readyz"}, code: 2, stderr: "bad URL"},
		{name: "zero timeout", args: []string{"-timeout", "0s", srv.URL + "/healthz"}, code: 2, stderr: "must be positive"},
		{name: "unknown flag", args: []string{"-x", srv.URL}, code: 2, stderr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stdout %q, stderr %q)", code, tt.code, stdout.String(), stderr.String())
			}
			for _, c := range []struct {
				name, got, want string
			}{{"stdout", stdout.String(), tt.stdout}, {"stderr", stderr.String(), tt.stderr}} {
				if c.want == "" && c.got != "" {
					t.Errorf("%s = %q, want nothing", c.name, c.got)
				}
				if !strings.Contains(c.got, c.want) {
					t.Errorf("%s = %q, want it to contain %q", c.name, c.got, c.want)
				}
			}
		})
	}
}
