package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
)

// natsFiles are credential and TLS files for the nats tests, in a
// temporary directory.
type natsFiles struct {
	dir                    string
	password, token        string // files holding secretPassword, secretToken
	creds, seed, acctSeed  string
	cert, key, notPEM, bad string
}

const (
	secretPassword = "pa55-w0rd-never-shown"
	secretToken    = "t0ken-never-shown"
)

func writeNATSFiles(t *testing.T) natsFiles {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	acct, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	acctSeed, err := acct.Seed()
	if err != nil {
		t.Fatal(err)
	}
	// The shape nsc writes; the JWT is not checked beyond its form here
	// (the server checks it).
	creds := "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJVIn0.c2ln\n------END NATS USER JWT------\n\n" +
		"************************* IMPORTANT *************************\nNKEY Seed printed below can be used to sign and prove identity.\n\n" +
		"-----BEGIN USER NKEY SEED-----\n" + string(seed) + "\n------END USER NKEY SEED------\n"

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return natsFiles{
		dir:      dir,
		password: write("password", []byte(secretPassword+"\n")),
		token:    write("token", []byte(secretToken)),
		creds:    write("ctwatch.creds", []byte(creds)),
		seed:     write("user.nk", append(seed, '\n')),
		acctSeed: write("account.nk", acctSeed),
		cert:     write("cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		key:      write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})),
		notPEM:   write("not.pem", []byte("not a certificate")),
		bad:      write("bad", []byte("neither a seed nor a JWT: "+secretPassword)),
	}
}

func TestNATSSecurityValues(t *testing.T) {
	f := writeNATSFiles(t)
	ext := "nats:\n  url: nats://n1.example:4222,nats://n2.example:4222\n"
	tests := []struct {
		name string
		in   input
		want NATS // besides URL, the defaults of the durations
	}{
		{"user and password from a variable", input{yaml: ext + "  user: ctwatch\n  password_env: NATS_PW\n", env: map[string]string{"NATS_PW": secretPassword}},
			NATS{User: "ctwatch", Password: secretPassword}},
		{"password file, trailing line break removed", input{yaml: ext + "  user: ctwatch\n  password_file: " + f.password + "\n"},
			NATS{User: "ctwatch", Password: secretPassword}},
		{"a CTWATCH_ variable named by password_env is used, not unknown", input{yaml: ext + "  user: u\n  password_env: CTWATCH_NATS_SECRET\n", env: map[string]string{"CTWATCH_NATS_SECRET": secretPassword}},
			NATS{User: "u", Password: secretPassword}},
		{"token from a variable", input{yaml: ext + "  token_env: NATS_TOKEN\n", env: map[string]string{"NATS_TOKEN": secretToken}},
			NATS{Token: secretToken}},
		{"token file", input{yaml: ext + "  token_file: " + f.token + "\n"}, NATS{Token: secretToken}},
		{"creds file", input{yaml: ext + "  creds_file: " + f.creds + "\n"}, NATS{CredsFile: f.creds}},
		{"nkey seed file", input{yaml: ext + "  nkey_seed_file: " + f.seed + "\n"}, NATS{NKeySeedFile: f.seed}},
		{"tls", input{yaml: ext + "  tls:\n    ca_file: " + f.cert + "\n    cert_file: " + f.cert + "\n    key_file: " + f.key + "\n    server_name: nats.internal\n    insecure_skip_verify: true\n"},
			NATS{TLS: TLS{CAFile: f.cert, CertFile: f.cert, KeyFile: f.key, ServerName: "nats.internal", InsecureSkipVerify: true}}},
		{"replicas", input{yaml: ext + "  replicas: 3\n"}, NATS{Replicas: 3}},
		{"from the environment", input{env: map[string]string{
			"CTWATCH_NATS_URL": "nats://n1.example:4222,nats://n2.example:4222", "CTWATCH_NATS_USER": "ctwatch", "CTWATCH_NATS_PASSWORD_FILE": f.password,
			"CTWATCH_NATS_TLS_CA_FILE": f.cert, "CTWATCH_NATS_REPLICAS": "5"}},
			NATS{User: "ctwatch", Password: secretPassword, TLS: TLS{CAFile: f.cert}, Replicas: 5}},
		{"from flags", input{args: []string{"--nats-url=nats://n1.example:4222,nats://n2.example:4222", "--nats-nkey-seed-file=" + f.seed,
			"--nats-tls-server-name=nats.internal", "--nats-tls-insecure-skip-verify", "--nats-replicas=3"}},
			NATS{NKeySeedFile: f.seed, TLS: TLS{ServerName: "nats.internal", InsecureSkipVerify: true}, Replicas: 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, cfg, err := tc.in.load(t)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			want.URL = "nats://n1.example:4222,nats://n2.example:4222"
			want.StreamMaxAge, want.DedupeWindow = 720*time.Hour, 24*time.Hour
			if want.Replicas == 0 {
				want.Replicas = 1
			}
			if !reflect.DeepEqual(cfg.NATS, want) {
				t.Errorf("got\n%+v\nwant\n%+v", cfg.NATS, want)
			}
		})
	}
}

func TestNATSAuthMethod(t *testing.T) {
	for _, tc := range []struct {
		n    NATS
		want string
	}{
		{NATS{}, NATSAuthNone},
		{NATS{TLS: TLS{CAFile: "ca.pem"}}, NATSAuthNone},
		{NATS{User: "u", Password: "p"}, NATSAuthPassword},
		{NATS{Token: "t"}, NATSAuthToken},
		{NATS{CredsFile: "c"}, NATSAuthCreds},
		{NATS{NKeySeedFile: "s"}, NATSAuthNKey},
	} {
		if got := tc.n.AuthMethod(); got != tc.want {
			t.Errorf("%+v: AuthMethod %q, want %q", tc.n, got, tc.want)
		}
	}
}

// TestNATSProblems: each case has exactly one problem, at the given place
// (as in TestProblems), and no message holds a secret.
func TestNATSProblems(t *testing.T) {
	f := writeNATSFiles(t)
	ext := "nats:\n  url: nats://n.example:4222\n" // keys below start at line 3
	tests := []struct {
		name  string
		in    input
		where string
		msg   string
	}{
		{"password in clear", input{yaml: ext + "  password: " + secretPassword + "\n"}, "FILE:3",
			`unknown key "password" in nats (a secret is never written in the file: use password_env for an environment variable or password_file for a file holding it)`},
		{"token in clear", input{yaml: ext + "  token: " + secretToken + "\n"}, "FILE:3", `unknown key "token" in nats (a secret is never written in the file: use token_env`},
		{"password variable set directly", input{env: map[string]string{"CTWATCH_NATS_PASSWORD": secretPassword}}, "environment",
			"CTWATCH_NATS_PASSWORD: unknown variable (a secret is never set directly: name the variable holding it in CTWATCH_NATS_PASSWORD_ENV, or a file in CTWATCH_NATS_PASSWORD_FILE)"},
		{"credentials in the URL", input{yaml: "nats:\n  url: nats://u:" + secretPassword + "@n.example:4222\n"}, "FILE:2", "nats.url: a URL with a user, password or token writes them in clear"},
		{"token in the URL", input{env: map[string]string{"CTWATCH_NATS_URL": "nats://" + secretToken + "@n.example:4222"}}, "environment", "CTWATCH_NATS_URL: a URL with a user"},

		{"user with the embedded server", input{yaml: "nats:\n  user: u\n"}, "FILE:2", "nats.user: is only for an external NATS (nats.url)"},
		{"tls with the embedded server", input{yaml: "nats:\n  tls:\n    server_name: x\n"}, "FILE:3", "nats.tls.server_name: is only for an external NATS"},
		{"insecure with the embedded server", input{args: []string{"--nats-tls-insecure-skip-verify"}}, "flag", "--nats-tls-insecure-skip-verify: is only for an external NATS"},
		{"token variable with the embedded server", input{env: map[string]string{"CTWATCH_NATS_TOKEN_ENV": "T"}}, "environment", "CTWATCH_NATS_TOKEN_ENV: is only for an external NATS"},
		{"replicas with the embedded server", input{yaml: "nats:\n  replicas: 3\n"}, "FILE:2", "nats.replicas: must be 1 with the embedded server: set nats.url"},
		{"replicas above 5", input{yaml: ext + "  replicas: 7\n"}, "FILE:3", "nats.replicas: must be at most 5 (JetStream's limit), got 7"},
		{"replicas 0", input{yaml: ext + "  replicas: 0\n"}, "FILE:3", "nats.replicas: must be at least 1, got 0"},
		{"replicas from a flag", input{args: []string{"--nats-replicas=-1"}}, "flag", "--nats-replicas: must be at least 1, got -1"},

		{"user without password", input{yaml: ext + "  user: u\n"}, "FILE:3", "nats.user: needs nats.password_env or nats.password_file too"},
		{"password without user", input{yaml: ext + "  password_file: " + f.password + "\n"}, "FILE:3", "nats.password_file: needs nats.user too"},
		{"password from both", input{yaml: ext + "  user: u\n  password_env: PW\n  password_file: " + f.password + "\n", env: map[string]string{"PW": "x"}}, "FILE:5",
			"nats.password_file: use one of nats.password_env and nats.password_file, not both"},
		{"two methods", input{yaml: ext + "  user: u\n  password_env: PW\n  token_file: " + f.token + "\n", env: map[string]string{"PW": "x"}}, "FILE:5",
			"nats.token_file: authenticates with token, but user/password is set too"},
		{"creds and nkey", input{yaml: ext + "  creds_file: " + f.creds + "\n  nkey_seed_file: " + f.seed + "\n"}, "FILE:4", "nats.nkey_seed_file: authenticates with nkey, but creds file is set too"},
		{"password variable not set", input{yaml: ext + "  user: u\n  password_env: NATS_PW_UNSET\n"}, "FILE:4", "nats.password_env: variable NATS_PW_UNSET is not set"},
		{"password variable empty", input{yaml: ext + "  user: u\n  password_env: NATS_PW_EMPTY\n", env: map[string]string{"NATS_PW_EMPTY": ""}}, "FILE:4", "variable NATS_PW_EMPTY is empty"},
		{"secret pasted as a variable name", input{yaml: ext + "  token_env: " + secretToken + "\n"}, "FILE:3", "nats.token_env: must be the name of an environment variable"},
		{"password file missing", input{yaml: ext + "  user: u\n  password_file: " + filepath.Join(f.dir, "nope") + "\n"}, "FILE:4", "nats.password_file: cannot read"},
		{"token file empty", input{yaml: ext + "  token_file: /dev/null\n"}, "FILE:3", "nats.token_file: cannot read /dev/null: not a regular file"},
		{"creds file missing", input{yaml: ext + "  creds_file: " + filepath.Join(f.dir, "nope") + "\n"}, "FILE:3", "nats.creds_file: cannot read"},
		{"creds file without credentials", input{yaml: ext + "  creds_file: " + f.bad + "\n"}, "FILE:3", "is not a NATS credentials file"},
		{"creds file without a seed", input{yaml: ext + "  creds_file: " + f.cert + "\n"}, "FILE:3", "is not a NATS credentials file"},
		{"seed file with no seed", input{yaml: ext + "  nkey_seed_file: " + f.bad + "\n"}, "FILE:3", "does not hold a user NKey seed"},
		{"account seed", input{yaml: ext + "  nkey_seed_file: " + f.acctSeed + "\n"}, "FILE:3", "does not hold a user NKey seed"},
		{"seed file from a flag, missing", input{args: []string{"--nats-url=nats://n.example:4222", "--nats-nkey-seed-file=" + filepath.Join(f.dir, "nope")}}, "flag", "--nats-nkey-seed-file: cannot read"},
		{"tls ca not PEM", input{yaml: ext + "  tls:\n    ca_file: " + f.notPEM + "\n"}, "FILE:4", "nats.tls.ca_file: no PEM certificate in"},
		{"tls cert without key", input{yaml: ext + "  tls:\n    cert_file: " + f.cert + "\n"}, "FILE:4", "nats.tls.cert_file: needs key_file too"},
		{"tls key is no key", input{yaml: ext + "  tls:\n    cert_file: " + f.cert + "\n    key_file: " + f.cert + "\n"}, "FILE:4", "nats.tls.cert_file: unusable client certificate and key"},
		{"tls ca from the environment", input{env: map[string]string{"CTWATCH_NATS_URL": "nats://n.example:4222", "CTWATCH_NATS_TLS_CA_FILE": f.notPEM}}, "environment", "CTWATCH_NATS_TLS_CA_FILE: no PEM certificate"},
		{"tls not a mapping", input{yaml: ext + "  tls: yes\n"}, "FILE:3", "nats.tls: must be a mapping"},
		{"unknown tls key", input{yaml: ext + "  tls:\n    ca: x\n"}, "FILE:4", `unknown key "ca" in nats.tls`},
		{"insecure not a bool", input{yaml: ext + "  tls:\n    insecure_skip_verify: maybe\n"}, "FILE:4", `nats.tls.insecure_skip_verify: must be true or false`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, cfg, err := tc.in.load(t)
			if err == nil {
				t.Fatalf("no error; got %+v", cfg.NATS)
			}
			ps := problems(t, err)
			where := strings.Replace(tc.where, "FILE", path, 1)
			if len(ps) != 1 || !strings.HasPrefix(ps[0].String(), where+": ") || !strings.Contains(ps[0].String(), tc.msg) {
				t.Errorf("got\n%v\nwant one problem like\n%s: %s", err, where, tc.msg)
			}
			for _, secret := range []string{secretPassword, secretToken} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows a secret: %v", err)
				}
			}
		})
	}
}

// TestNATSExample: the example's commented-out nats settings are valid once
// uncommented, one authentication method at a time, with a URL, but for
// the files and the variable that only exist on a real host.
func TestNATSExample(t *testing.T) {
	cleanEnv(t)
	data, err := os.ReadFile(filepath.Join("..", "..", "configs", "ctwatch.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var section []string
	in := false
	for _, line := range strings.Split(uncommentNATS(string(data)), "\n") {
		switch {
		case line == "nats:":
			in = true
		case in && line != "" && line[0] != ' ':
			in = false
		}
		if in && !strings.HasPrefix(strings.TrimSpace(line), "#") && strings.TrimSpace(line) != "" {
			section = append(section, line)
		}
	}
	methods := map[string][]string{
		"user":           {"user", "password_env"},
		"password_file":  {"user", "password_file"},
		"token_env":      {"token_env"},
		"token_file":     {"token_file"},
		"creds_file":     {"creds_file"},
		"nkey_seed_file": {"nkey_seed_file"},
	}
	others := map[string]bool{}
	for _, keys := range methods {
		for _, k := range keys {
			others[k] = true
		}
	}
	for name, keys := range methods {
		t.Run(name, func(t *testing.T) {
			var lines []string
			for _, line := range section {
				key, _, _ := strings.Cut(strings.TrimSpace(line), ":")
				switch {
				case key == "url":
					line = "  url: nats://n.example:4222"
				case strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "    ") && others[key]:
					found := false
					for _, k := range keys {
						found = found || k == key
					}
					if !found {
						continue
					}
				}
				lines = append(lines, line)
			}
			_, err := Load(writeConfig(t, strings.Join(lines, "\n")+"\n"), nil)
			for _, p := range problems(t, err) {
				if !strings.Contains(p.Message, "cannot read /etc/ctwatch/") && !strings.Contains(p.Message, "variable NATS_") {
					t.Errorf("uncommented example: %v", p)
				}
			}
		})
	}
}
