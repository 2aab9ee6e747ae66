package daemon_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/internal/daemon"
	"github.com/ctwatch/ctwatch/internal/natstest"
)

// natsPassword and natsToken are what the test servers accept; no error
// may show them, nor the wrong ones tried.
const (
	natsPassword      = "right-pa55word"
	natsWrongPassword = "wrong-pa55word"
	natsToken         = "right-t0ken"
	natsWrongToken    = "wrong-t0ken"
)

// startNATS runs a real nats-server with JetStream on a loopback port,
// configured by adjust and quiet, until the test ends.
func startNATS(t *testing.T, adjust func(*server.Options)) *server.Server {
	t.Helper()
	return natstest.Start(t, func(o *server.Options) {
		o.NoLog = true
		adjust(o)
	})
}

// natsConfig loads a configuration for a daemon with no logs whose nats
// section is natsYAML (indented two spaces), with the web server on a free
// port so that its start can be awaited.
func natsConfig(t *testing.T, url, natsYAML string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	text := "data_dir: " + filepath.Join(dir, "data") + "\nlog_list: \"\"\nweb:\n  listen: 127.0.0.1:0\n" +
		"sinks: []\nnats:\n  url: " + url + "\n" + natsYAML
	path := filepath.Join(dir, "ctwatch.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runFails runs the daemon, which must fail at start with an error that
// holds every one of want and none of the secrets.
func runFails(t *testing.T, cfg *config.Config, want []string, secrets ...string) {
	t.Helper()
	err := daemon.Run(t.Context(), cfg, testLogger())
	if err == nil {
		t.Fatal("the daemon started")
	}
	t.Logf("error at start: %v", err)
	for _, w := range want {
		// nats.go spells it "Authorization Violation".
		if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(w)) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q shows a secret", err)
		}
	}
}

// runWorks runs the daemon until its web server listens, which happens
// after it connected to NATS and opened the stream and buckets, then stops
// it cleanly.
func runWorks(t *testing.T, cfg *config.Config) {
	t.Helper()
	stop, _ := runDaemonWeb(t, cfg)
	if err := stop(); err != nil {
		t.Fatalf("daemon: %v", err)
	}
}

func TestNATSUserPassword(t *testing.T) {
	cleanNATSEnv(t)
	srv := startNATS(t, func(o *server.Options) { o.Username, o.Password = "ctwatch", natsPassword })
	t.Setenv("NATS_TEST_PASSWORD", natsPassword)
	runWorks(t, natsConfig(t, srv.ClientURL(), "  user: ctwatch\n  password_env: NATS_TEST_PASSWORD\n"))

	t.Setenv("NATS_TEST_PASSWORD", natsWrongPassword)
	runFails(t, natsConfig(t, srv.ClientURL(), "  user: ctwatch\n  password_env: NATS_TEST_PASSWORD\n"),
		[]string{"user/password authentication", `as user "ctwatch"`, "authorization violation"}, natsPassword, natsWrongPassword)

	runFails(t, natsConfig(t, srv.ClientURL(), ""),
		[]string{"requires credentials and none are configured", "authorization violation"})
}

func TestNATSToken(t *testing.T) {
	cleanNATSEnv(t)
	srv := startNATS(t, func(o *server.Options) { o.Authorization = natsToken })
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(natsToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runWorks(t, natsConfig(t, srv.ClientURL(), "  token_file: "+tokenFile+"\n"))

	t.Setenv("NATS_TEST_TOKEN", natsWrongToken)
	runFails(t, natsConfig(t, srv.ClientURL(), "  token_env: NATS_TEST_TOKEN\n"),
		[]string{"token authentication refused", "authorization violation"}, natsToken, natsWrongToken)
}

// TestNATSTLSAndNKey: a server that requires TLS with a client certificate
// from its CA, and an NKey user.
func TestNATSTLSAndNKey(t *testing.T) {
	cleanNATSEnv(t)
	pki := newPKI(t)
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := user.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	srv := startNATS(t, func(o *server.Options) {
		o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
		o.TLS, o.TLSVerify = true, true
		o.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{pki.server},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pki.pool,
			MinVersion:   tls.VersionTLS12,
		}
	})
	seedFile := writeSeed(t, user)
	other, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	wrongSeedFile := writeSeed(t, other)
	tlsYAML := "  tls:\n    ca_file: " + pki.caFile + "\n    cert_file: " + pki.certFile + "\n    key_file: " + pki.keyFile + "\n"

	t.Run("right", func(t *testing.T) {
		runWorks(t, natsConfig(t, srv.ClientURL(), "  nkey_seed_file: "+seedFile+"\n"+tlsYAML))
	})
	t.Run("tls:// URL", func(t *testing.T) {
		runWorks(t, natsConfig(t, strings.Replace(srv.ClientURL(), "nats://", "tls://", 1), "  nkey_seed_file: "+seedFile+"\n"+tlsYAML))
	})
	t.Run("wrong seed", func(t *testing.T) {
		runFails(t, natsConfig(t, srv.ClientURL(), "  nkey_seed_file: "+wrongSeedFile+"\n"+tlsYAML),
			[]string{"nkey authentication with " + wrongSeedFile + " refused", "authorization violation"})
	})
	t.Run("no CA", func(t *testing.T) {
		runFails(t, natsConfig(t, srv.ClientURL(), "  nkey_seed_file: "+seedFile+"\n  tls:\n    cert_file: "+pki.certFile+"\n    key_file: "+pki.keyFile+"\n"),
			[]string{"TLS failed", "ca_file", "certificate"})
	})
	t.Run("no client certificate", func(t *testing.T) {
		runFails(t, natsConfig(t, srv.ClientURL(), "  nkey_seed_file: "+seedFile+"\n  tls:\n    ca_file: "+pki.caFile+"\n"),
			[]string{"TLS failed", "cert_file"})
	})
	t.Run("no TLS settings", func(t *testing.T) {
		runFails(t, natsConfig(t, srv.ClientURL(), "  nkey_seed_file: "+seedFile+"\n"),
			[]string{"TLS failed"})
	})
}

// cleanNATSEnv keeps the developer's CTWATCH_* variables out of the
// configurations these tests load.
func cleanNATSEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "CTWATCH_") {
			t.Setenv(name, "")
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func writeSeed(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// pki is a test CA with a server certificate for 127.0.0.1 and a client
// certificate, the client's in files as ctwatch's configuration names them.
type pki struct {
	pool                      *x509.CertPool
	server                    tls.Certificate
	caFile, certFile, keyFile string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ctwatch test NATS CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		key := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "ctwatch test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := &pki{pool: x509.NewCertPool(), caFile: write("ca.pem", "CERTIFICATE", caDER)}
	p.pool.AddCert(ca)
	serverDER, serverKey := issue(2, x509.ExtKeyUsageServerAuth)
	p.server = tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}
	clientDER, clientKey := issue(3, x509.ExtKeyUsageClientAuth)
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	p.certFile = write("client.pem", "CERTIFICATE", clientDER)
	p.keyFile = write("client-key.pem", "EC PRIVATE KEY", keyDER)
	return p
}
