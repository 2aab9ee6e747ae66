package alerting_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/ctwatch/ctwatch/alerting"
)

func TestClientAuthMethodAndOptions(t *testing.T) {
	seed := filepath.Join(t.TempDir(), "user.nk")
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	s, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seed, s, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		auth    alerting.ClientAuth
		method  string
		opts    int
		wantErr string
	}{
		{alerting.ClientAuth{}, "no credentials", 0, ""},
		{alerting.ClientAuth{TLS: &tls.Config{}}, "no credentials", 1, ""},
		{alerting.ClientAuth{User: "u", Password: "p"}, "user/password", 1, ""},
		{alerting.ClientAuth{Token: "t", TLS: &tls.Config{}}, "token", 2, ""},
		{alerting.ClientAuth{CredsFile: "x.creds"}, "creds file", 1, ""},
		{alerting.ClientAuth{NKeySeedFile: seed}, "nkey", 1, ""},
		{alerting.ClientAuth{NKeySeedFile: seed + ".missing"}, "nkey", 0, "nkey seed file"},
		{alerting.ClientAuth{User: "u", Password: "p", Token: "t"}, "user/password", 0, "more than one authentication method"},
		{alerting.ClientAuth{Password: "p"}, "no credentials", 0, "a password without a user"},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.method, tc.opts), func(t *testing.T) {
			if got := tc.auth.Method(); got != tc.method {
				t.Errorf("Method() = %q, want %q", got, tc.method)
			}
			opts, err := tc.auth.Options()
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Options() error %v, want %q", err, tc.wantErr)
				}
			case err != nil:
				t.Errorf("Options(): %v", err)
			case len(opts) != tc.opts:
				t.Errorf("Options() gave %d options, want %d", len(opts), tc.opts)
			}
		})
	}
}

// TestClientAuthAgainstServer: the options authenticate to a real server
// that wants a user and password, and a wrong password is an
// authorization error.
func TestClientAuthAgainstServer(t *testing.T) {
	t.Parallel()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		Username: "ctwatch", Password: "right"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(waitTimeout) {
		t.Fatal("test server not ready")
	}
	connect := func(password string) (*nats.Conn, error) {
		opts, err := alerting.ClientAuth{User: "ctwatch", Password: password}.Options()
		if err != nil {
			t.Fatal(err)
		}
		return alerting.Connect(t.Context(), srv.ClientURL(), opts...)
	}
	nc, err := connect("right")
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	nc.Close()
	nc, err = connect("wrong")
	if err == nil {
		nc.Close()
		t.Fatal("wrong password: connected")
	}
	if !alerting.IsAuthError(err) {
		t.Errorf("wrong password: %v is not an authorization error", err)
	}
	if alerting.IsAuthError(errors.New("nats: no servers available for connection")) {
		t.Error("IsAuthError on an unrelated error")
	}
}
