package httpsink

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/alerting/alerttest"
)

// jsonHeader is what an integration passes to Post.
func jsonHeader() http.Header { return http.Header{"Content-Type": {"application/json"}} }

func newPoster(t *testing.T, cfg Config) *Poster {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPostSendsBodyAndHeaders(t *testing.T) {
	type seen struct{ method, path, ctype, ua, custom, body string }
	got := make(chan seen, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), r.Header.Get("X-Custom"), string(b)}
	}))
	defer srv.Close()
	p := newPoster(t, Config{URL: srv.URL + "/in"})
	if p.Target() != srv.URL {
		t.Errorf("Target() = %q, want %q", p.Target(), srv.URL)
	}

	tests := []struct {
		name   string
		header http.Header
		want   seen
	}{
		{"default user agent", http.Header{"Content-Type": {"application/json"}, "X-Custom": {"v"}},
			seen{"POST", "/in", "application/json", "ctwatch", "v", `{"a":1}`}},
		{"caller's user agent", http.Header{"Content-Type": {"text/plain"}, "User-Agent": {"other/1"}},
			seen{"POST", "/in", "text/plain", "other/1", "", `{"a":1}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := p.Post(t.Context(), []byte(`{"a":1}`), tc.header); err != nil {
				t.Fatal(err)
			}
			if s := <-got; s != tc.want {
				t.Errorf("request %+v, want %+v", s, tc.want)
			}
		})
	}
}

func TestStatusHandling(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		wantErr    bool
		wantAfter  time.Duration // > 0: want a RetryAfterError with this delay
	}{
		{"200", 200, "", false, 0},
		{"202", 202, "", false, 0},
		{"204", 204, "", false, 0},
		{"400", 400, "", true, 0},
		{"404", 404, "", true, 0},
		{"500", 500, "", true, 0},
		{"429 with seconds", 429, "3", true, 3 * time.Second},
		{"503 with seconds", 503, "120", true, 2 * time.Minute},
		{"429 without Retry-After", 429, "", true, 0},
		{"429 with garbage", 429, "soon", true, 0},
		{"500 with Retry-After ignored", 500, "3", true, 0},
		{"302 not followed", 302, "", true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var followed atomic.Bool
			mux := http.NewServeMux()
			mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { followed.Store(true) })
			mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				if tc.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, "nope")
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			err := newPoster(t, Config{URL: srv.URL + "/hook"}).Post(t.Context(), []byte(`{}`), jsonHeader())
			if (err != nil) != tc.wantErr {
				t.Fatalf("Post = %v, want error %v", err, tc.wantErr)
			}
			alerttest.CheckRetryAfter(t, err, tc.wantAfter)
			if tc.wantErr && !strings.Contains(err.Error(), "nope") && tc.status != 302 {
				t.Errorf("error %q does not quote the response", err)
			}
			if followed.Load() {
				t.Error("redirect was followed")
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"0", 0, true},
		{" 30 ", 30 * time.Second, true},
		{"999999999", maxRetryAfter, true},
		{"Fri, 01 May 2026 12:00:45 GMT", 45 * time.Second, true},
		{"Fri, 01 May 2026 11:00:00 GMT", 0, true}, // in the past
		{"Fri, 01 May 2099 11:00:00 GMT", maxRetryAfter, true},
		{"", 0, false},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"tomorrow", 0, false},
	}
	for _, tc := range tests {
		got, ok := ParseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.wantOK)
		}
	}
}

// A hostile endpoint cannot make Post read an unbounded body or hang past
// the timeout, and errors never show the URL's secret path.
func TestHostileEndpoint(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/big/s3cret", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		chunk := []byte(strings.Repeat("A", 1<<16))
		for range 1 << 10 { // 64 MiB if anyone read it all
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/slow/s3cret", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)

	err := newPoster(t, Config{URL: srv.URL + "/big/s3cret"}).Post(t.Context(), []byte(`{}`), jsonHeader())
	if err == nil || len(err.Error()) > 1000 {
		t.Errorf("huge error body: err = %.200v (len %d)", err, len(errString(err)))
	}
	err = newPoster(t, Config{URL: srv.URL + "/slow/s3cret", Timeout: 50 * time.Millisecond}).Post(t.Context(), []byte(`{}`), jsonHeader())
	if err == nil {
		t.Fatal("a request that never answers succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow endpoint: err = %v, want the deadline", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error reveals the URL path: %v", err)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	err = newPoster(t, Config{URL: closed.URL + "/hook/s3cret"}).Post(t.Context(), []byte(`{}`), jsonHeader())
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("connection refused: err = %v (must exist and not reveal the path)", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestConfigErrors(t *testing.T) {
	for _, u := range []string{"", "ftp://x/", "http://", "://bad", "/relative", "https://x.example/%zz"} {
		_, err := New(Config{URL: u})
		if err == nil {
			t.Errorf("New accepted URL %q", u)
			continue
		}
		if u != "" && strings.Contains(err.Error(), u) {
			t.Errorf("New(%q) error echoes the URL: %v", u, err)
		}
	}
	if _, err := New(Config{URL: "https://x.example/", Timeout: -time.Second}); err == nil {
		t.Error("New accepted a negative timeout")
	}
}

// pki is a throwaway CA with one client certificate, written as PEM files,
// for the mutual-TLS tests.
type pki struct {
	pool                  *x509.CertPool
	caFile                string
	clientCert, clientKey string
	garbage, keyAsCert    string
	clientCN              string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ctwatch test client CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{pool: x509.NewCertPool(), clientCN: "ctwatch-test-client"}
	p.pool.AddCert(ca)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: p.clientCN},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p.caFile = write("client-ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	p.clientCert = write("client.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}))
	p.clientKey = write("client-key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	p.garbage = write("garbage.pem", []byte("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"))
	p.keyAsCert = p.clientKey
	return p
}

// serverCAFile writes the certificate of an httptest TLS server as a PEM
// root bundle, what an operator with a private CA puts in ca_file.
func serverCAFile(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "server-ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTLS(t *testing.T) {
	p := newPKI(t)
	// httptest's certificate is valid for 127.0.0.1 and example.com; its
	// issuer is in no system root store.
	plain := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	plain.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	plain.StartTLS()
	defer plain.Close()
	plainCA := serverCAFile(t, plain)

	clientCNs := make(chan string, 1)
	mtls := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clientCNs <- r.TLS.PeerCertificates[0].Subject.CommonName
	}))
	mtls.Config.ErrorLog = log.New(io.Discard, "", 0)
	mtls.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool}
	mtls.StartTLS()
	defer mtls.Close()
	mtlsCA := serverCAFile(t, mtls)

	tests := []struct {
		name    string
		srv     *httptest.Server
		tls     TLS
		wantErr string // "" for success; else a substring of the Post error
	}{
		{"system roots do not know the server", plain, TLS{}, "certificate"},
		{"ca_file", plain, TLS{CAFile: plainCA}, ""},
		{"ca_file of another server", plain, TLS{CAFile: p.caFile}, "certificate"},
		{"server_name in the certificate", plain, TLS{CAFile: plainCA, ServerName: "example.com"}, ""},
		{"server_name not in the certificate", plain, TLS{CAFile: plainCA, ServerName: "wrong.example"}, "wrong.example"},
		{"insecure_skip_verify", plain, TLS{InsecureSkipVerify: true}, ""},
		{"client certificate required, none sent", mtls, TLS{CAFile: mtlsCA}, "certificate"},
		{"client certificate", mtls, TLS{CAFile: mtlsCA, CertFile: p.clientCert, KeyFile: p.clientKey}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := newPoster(t, Config{URL: tc.srv.URL + "/hook", TLS: tc.tls})
			err := ps.Post(t.Context(), []byte(`{}`), jsonHeader())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Post = %v, want success", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Post succeeded, want an error about %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Post = %v, want an error about %q", err, tc.wantErr)
			}
			if tc.srv == mtls && err == nil {
				if cn := <-clientCNs; cn != p.clientCN {
					t.Errorf("server saw client %q, want %q", cn, p.clientCN)
				}
			}
		})
	}
}

func TestTLSConfigErrors(t *testing.T) {
	p := newPKI(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name    string
		tls     TLS
		wantErr string
	}{
		{"cert_file without key_file", TLS{CertFile: p.clientCert}, "go together"},
		{"key_file without cert_file", TLS{KeyFile: p.clientKey}, "go together"},
		{"ca_file missing", TLS{CAFile: missing}, "ca_file"},
		{"ca_file bad PEM", TLS{CAFile: p.garbage}, "no PEM certificate"},
		{"ca_file holds a key", TLS{CAFile: p.keyAsCert}, "no PEM certificate"},
		{"cert_file bad PEM", TLS{CertFile: p.garbage, KeyFile: p.clientKey}, "client certificate"},
		{"key_file bad PEM", TLS{CertFile: p.clientCert, KeyFile: p.garbage}, "client certificate"},
		{"key_file missing", TLS{CertFile: p.clientCert, KeyFile: missing}, "client certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{URL: "https://hooks.example/x", TLS: tc.tls})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New = %v, want an error about %q", err, tc.wantErr)
			}
		})
	}
}

// A Client given in Config is used as is: TLS settings do not apply and
// are not even loaded.
func TestClientOverridesTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ps := newPoster(t, Config{URL: srv.URL, Client: srv.Client(), TLS: TLS{CAFile: filepath.Join(t.TempDir(), "missing.pem")}})
	if err := ps.Post(t.Context(), []byte(`{}`), jsonHeader()); err != nil {
		t.Fatal(err)
	}
}
