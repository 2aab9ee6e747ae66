package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fixture holds files the sink tests point at.
type fixture struct {
	dir        string
	cert, key  string // a PEM certificate and its key
	otherKey   string // a key that does not go with cert
	notPEM     string
	script     string // an executable program
	notExec    string // a file without the execute bit
	secretFile string // "file secret\n"
	urlFile    string // "https://hooks.example/from-file\r\n"
	emptyFile  string // "\n"
	bigFile    string // larger than a secret may be
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certPEM, keyPEM := selfSigned(t)
	_, otherKeyPEM := selfSigned(t)
	return fixture{
		dir:        dir,
		cert:       write("cert.pem", certPEM, 0o600),
		key:        write("key.pem", keyPEM, 0o600),
		otherKey:   write("other-key.pem", otherKeyPEM, 0o600),
		notPEM:     write("not.pem", "hello\n", 0o600),
		script:     write("hook.sh", "#!/bin/sh\nexit 0\n", 0o700),
		notExec:    write("hook.txt", "#!/bin/sh\nexit 0\n", 0o600),
		secretFile: write("secret", "file secret\n", 0o600),
		urlFile:    write("url", "https://hooks.example/from-file\r\n", 0o600),
		emptyFile:  write("empty", "\n", 0o600),
		bigFile:    write("big", strings.Repeat("x", maxSecretFileBytes+1), 0o600),
	}
}

// selfSigned makes a throwaway CA certificate and its key, PEM-encoded.
func selfSigned(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ctwatch config test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// sinkFile is a file with one sink: line 1 "sinks:", line 2 its name, and
// the given lines (indented by the caller with 4 spaces) from line 3.
func sinkFile(lines ...string) string {
	return "sinks:\n  - name: s\n" + strings.Join(lines, "\n") + "\n"
}

// TestSinkTypes: every key of every sink type, decoded into the whole
// expected Sink.
func TestSinkTypes(t *testing.T) {
	f := newFixture(t)
	defaultRetry := Retry{MinBackoff: time.Second, MaxBackoff: 5 * time.Minute}
	defaultGroup := Group{MaxNames: 20, MaxHits: 5000}
	tests := []struct {
		name string
		in   input
		want Sink
	}{
		{"stdout with defaults", input{yaml: sinkFile("    type: stdout")},
			Sink{Name: "s", Type: SinkStdout, Events: true, Group: defaultGroup, Retry: defaultRetry}},
		{"jsonl with every common key", input{yaml: sinkFile(
			"    type: jsonl",
			"    path: ./hits.jsonl",
			"    events: false",
			"    route:",
			"      min_severity: HIGH",
			"      rules: [our-names, ' lookalikes ']",
			"      tags: [kz]",
			"      domains: [Example.COM, '*.Bücher.example', .sub.example.org.]",
			"    group: {window: 1m, max_names: 7, max_hits: 100}",
			"    retry: {min_backoff: 2s, max_backoff: 1h, max_attempts: 10, max_age: 72h}",
			"    rate: 2.5",
			"    burst: 3",
			"    timeout: 5s",
		)}, Sink{
			Name: "s", Type: SinkJSONL, Path: "./hits.jsonl", Events: false,
			Route: Route{
				MinSeverity: "high",
				Rules:       []string{"our-names", "lookalikes"},
				Tags:        []string{"kz"},
				Domains:     []string{"example.com", "xn--bcher-kva.example", "sub.example.org"},
			},
			Group:   Group{Window: time.Minute, MaxNames: 7, MaxHits: 100},
			Retry:   Retry{MinBackoff: 2 * time.Second, MaxBackoff: time.Hour, MaxAttempts: 10, MaxAge: 72 * time.Hour},
			Rate:    2.5,
			Burst:   3,
			Timeout: 5 * time.Second,
		}},
		{"webhook with url, secret from a variable, headers, TLS", input{
			yaml: sinkFile(
				"    type: webhook",
				"    url: https://hooks.example/x?token=1",
				"    secret_env: HOOK_SECRET",
				"    headers: {X-Team: secops, X-Count: 5, Authorization: 'Bearer abc', X-Empty: ''}",
				"    tls:",
				"      ca_file: "+f.cert,
				"      cert_file: "+f.cert,
				"      key_file: "+f.key,
				"      server_name: hooks.internal",
				"      insecure_skip_verify: true",
				"    route:",
				"      events: [log_unreachable, inconsistent_tree]",
			),
			env: map[string]string{"HOOK_SECRET": " env secret "},
		}, Sink{
			Name: "s", Type: SinkWebhook, Events: true,
			URL:     "https://hooks.example/x?token=1",
			Secret:  []byte(" env secret "),
			Headers: map[string]string{"X-Team": "secops", "X-Count": "5", "Authorization": "Bearer abc", "X-Empty": ""},
			TLS:     TLS{CAFile: f.cert, CertFile: f.cert, KeyFile: f.key, ServerName: "hooks.internal", InsecureSkipVerify: true},
			Route:   Route{Events: []string{"log_unreachable", "inconsistent_tree"}},
			Group:   defaultGroup, Retry: defaultRetry,
		}},
		{"webhook with url and secret from files", input{yaml: sinkFile(
			"    type: webhook",
			"    url_file: "+f.urlFile,
			"    secret_file: "+f.secretFile,
		)}, Sink{
			Name: "s", Type: SinkWebhook, Events: true,
			URL: "https://hooks.example/from-file", Secret: []byte("file secret"),
			Group: defaultGroup, Retry: defaultRetry,
		}},
		{"unsigned webhook", input{yaml: sinkFile("    type: webhook", "    url: http://127.0.0.1:9/h")}, Sink{
			Name: "s", Type: SinkWebhook, Events: true, URL: "http://127.0.0.1:9/h", Group: defaultGroup, Retry: defaultRetry,
		}},
		{"slack defaults to one message a second", input{
			yaml: sinkFile("    type: slack", "    url_env: SLACK_URL", "    tls: {ca_file: "+f.cert+"}"),
			env:  map[string]string{"SLACK_URL": "https://hooks.slack.com/services/T0/B0/secret\n"},
		}, Sink{
			Name: "s", Type: SinkSlack, Events: true, URL: "https://hooks.slack.com/services/T0/B0/secret",
			Rate: 1, Burst: 1, TLS: TLS{CAFile: f.cert}, Group: defaultGroup, Retry: defaultRetry,
		}},
		{"slack without a rate limit", input{
			yaml: sinkFile("    type: slack", "    url: https://hooks.slack.com/services/x", "    rate: 0"),
		}, Sink{
			Name: "s", Type: SinkSlack, Events: true, URL: "https://hooks.slack.com/services/x",
			Rate: 0, Burst: 0, Group: defaultGroup, Retry: defaultRetry,
		}},
		{"slack with its own rate and burst", input{
			yaml: sinkFile("    type: slack", "    url: https://hooks.slack.com/services/x", "    rate: 0.5", "    burst: 4"),
		}, Sink{
			Name: "s", Type: SinkSlack, Events: true, URL: "https://hooks.slack.com/services/x",
			Rate: 0.5, Burst: 4, Group: defaultGroup, Retry: defaultRetry,
		}},
		{"webhook with a rate gets a burst of 1", input{
			yaml: sinkFile("    type: webhook", "    url: https://h.example/", "    rate: 3"),
		}, Sink{
			Name: "s", Type: SinkWebhook, Events: true, URL: "https://h.example/",
			Rate: 3, Burst: 1, Group: defaultGroup, Retry: defaultRetry,
		}},
		{"email with every key", input{
			yaml: sinkFile(
				"    type: email",
				"    smtp: smtp.example.com:587",
				"    smtp_tls: STARTTLS",
				"    from: ctwatch <ctwatch@example.com>",
				"    to: [secops@example.com, Oncall <oncall@example.com>]",
				"    username: ctwatch",
				"    password_env: CTWATCH_SMTP_PASSWORD",
				"    tls: {server_name: smtp.internal}",
				"    timeout: 1m",
			),
			env: map[string]string{"CTWATCH_SMTP_PASSWORD": "pw"},
		}, Sink{
			Name: "s", Type: SinkEmail, Events: true,
			SMTP: "smtp.example.com:587", SMTPTLS: SMTPStartTLS,
			From: "ctwatch <ctwatch@example.com>", To: []string{"secops@example.com", "Oncall <oncall@example.com>"},
			Username: "ctwatch", Password: "pw", TLS: TLS{ServerName: "smtp.internal"},
			Timeout: time.Minute, Group: defaultGroup, Retry: defaultRetry,
		}},
		{"email over implicit TLS, password from a file", input{yaml: sinkFile(
			"    type: email",
			"    smtp: '[::1]:465'",
			"    smtp_tls: tls",
			"    from: a@example.com",
			"    to: [b@example.com]",
			"    username: a",
			"    password_file: "+f.secretFile,
		)}, Sink{
			Name: "s", Type: SinkEmail, Events: true, SMTP: "[::1]:465", SMTPTLS: SMTPImplicitTLS,
			From: "a@example.com", To: []string{"b@example.com"}, Username: "a", Password: "file secret",
			Group: defaultGroup, Retry: defaultRetry,
		}},
		{"email defaults: STARTTLS, no authentication", input{yaml: sinkFile(
			"    type: email", "    smtp: localhost:25", "    from: a@example.com", "    to: [b@example.com]",
		)}, Sink{
			Name: "s", Type: SinkEmail, Events: true, SMTP: "localhost:25", SMTPTLS: SMTPStartTLS,
			From: "a@example.com", To: []string{"b@example.com"}, Group: defaultGroup, Retry: defaultRetry,
		}},
		{"alertmanager with labels and headers, names as written", input{yaml: sinkFile(
			"    type: alertmanager",
			"    url: http://alertmanager:9093/",
			"    labels: {team: secops, Tier: 1, _x: 'a b'}",
			"    headers: {X-Scope-OrgID: secops}",
			"    resolve_after: 1h",
		)}, Sink{
			Name: "s", Type: SinkAlertmanager, Events: true, URL: "http://alertmanager:9093/",
			Labels:       map[string]string{"team": "secops", "Tier": "1", "_x": "a b"},
			Headers:      map[string]string{"X-Scope-OrgID": "secops"},
			ResolveAfter: time.Hour, Group: defaultGroup, Retry: defaultRetry,
		}},
		{"alertmanager defaults", input{yaml: sinkFile("    type: alertmanager", "    url: http://am:9093")}, Sink{
			Name: "s", Type: SinkAlertmanager, Events: true, URL: "http://am:9093",
			ResolveAfter: 24 * time.Hour, Group: defaultGroup, Retry: defaultRetry,
		}},
		{"exec", input{yaml: sinkFile(
			"    type: exec",
			"    command: "+f.script,
			"    args: [--flag, 5, true, 'two words']",
			"    timeout: 2m",
		)}, Sink{
			Name: "s", Type: SinkExec, Events: true, Command: f.script,
			Args: []string{"--flag", "5", "true", "two words"}, Timeout: 2 * time.Minute,
			Group: defaultGroup, Retry: defaultRetry,
		}},
		{"exec found in PATH", input{
			yaml: sinkFile("    type: exec", "    command: hook.sh"),
			env:  map[string]string{"PATH": f.dir},
		}, Sink{Name: "s", Type: SinkExec, Events: true, Command: "hook.sh", Group: defaultGroup, Retry: defaultRetry}},
		{"slack from CTWATCH_SINKS", input{env: map[string]string{
			"CTWATCH_SINKS":     `[{name: s, type: slack, url_env: CTWATCH_SLACK_URL, route: {min_severity: critical}, group: {window: 30s}}]`,
			"CTWATCH_SLACK_URL": "https://hooks.slack.com/services/T/B/x",
		}}, Sink{
			Name: "s", Type: SinkSlack, Events: true, URL: "https://hooks.slack.com/services/T/B/x",
			Route: Route{MinSeverity: "critical"}, Group: Group{Window: 30 * time.Second, MaxNames: 20, MaxHits: 5000},
			Retry: defaultRetry, Rate: 1, Burst: 1,
		}},
		{"null values take the defaults", input{yaml: sinkFile(
			"    type: webhook", "    url: https://h.example", "    route: ~", "    group:", "    retry: {min_backoff: ~}", "    headers: ~", "    events: ~",
		)}, Sink{Name: "s", Type: SinkWebhook, Events: true, URL: "https://h.example", Group: defaultGroup, Retry: defaultRetry}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, cfg, err := tc.in.load(t)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Sinks) != 1 {
				t.Fatalf("got %d sinks, want 1", len(cfg.Sinks))
			}
			if got := cfg.Sinks[0]; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// TestSinkProblems: each case has exactly one problem, at the given place
// ("FILE:LINE", "environment"), whose text contains msg.
func TestSinkProblems(t *testing.T) {
	f := newFixture(t)
	hook := func(lines ...string) string {
		return sinkFile(append([]string{"    type: webhook", "    url: https://h.example/"}, lines...)...)
	}
	mail := func(lines ...string) string {
		return sinkFile(append([]string{"    type: email"}, lines...)...)
	}
	mailOK := func(lines ...string) string {
		return mail(append([]string{"    smtp: smtp.example.com:587", "    from: a@example.com", "    to: [b@example.com]"}, lines...)...)
	}
	tests := []struct {
		name  string
		in    input
		where string
		msg   string
	}{
		// keys of other types, secrets in clear
		{"smtp on a webhook", input{yaml: hook("    smtp: smtp.example.com:25")}, "FILE:5", "sinks[0].smtp: is only for email sinks"},
		{"headers on slack", input{yaml: sinkFile("    type: slack", "    url: https://s.example", "    headers: {a: b}")}, "FILE:5", "sinks[0].headers: is only for webhook and alertmanager sinks"},
		{"tls on exec", input{yaml: sinkFile("    type: exec", "    command: "+f.script, "    tls: {server_name: x}")}, "FILE:5", "sinks[0].tls: is only for webhook, slack, alertmanager and email sinks"},
		{"labels on a webhook", input{yaml: hook("    labels: {a: b}")}, "FILE:5", "sinks[0].labels: is only for alertmanager sinks"},
		{"args on stdout", input{yaml: sinkFile("    type: stdout", "    args: [x]")}, "FILE:4", "sinks[0].args: is only for exec sinks"},
		{"secret in clear", input{yaml: hook("    secret: hunter2")}, "FILE:5", `unknown key "secret" in sinks[0] (a secret is never written in the file: use secret_env for an environment variable or secret_file`},
		{"password in clear", input{yaml: mailOK("    username: u", "    password: hunter2", "    password_env: P"), env: map[string]string{"P": "x"}}, "FILE:8", `unknown key "password" in sinks[0] (a secret is never written in the file: use password_env`},

		// URLs and secrets
		{"webhook without url", input{yaml: sinkFile("    type: webhook")}, "FILE:2", "sinks[0]: url is required for a webhook sink (or url_env or url_file)"},
		{"alertmanager without url", input{yaml: sinkFile("    type: alertmanager")}, "FILE:2", "sinks[0]: url is required for an alertmanager sink"},
		{"url and url_env", input{yaml: sinkFile("    type: slack", "    url: https://s.example", "    url_env: X"), env: map[string]string{"X": "https://s.example"}}, "FILE:5", "sinks[0].url_env: use one of url and url_env, not several"},
		{"secret_env and secret_file", input{yaml: hook("    secret_env: X", "    secret_file: "+f.secretFile), env: map[string]string{"X": "y"}}, "FILE:6", "sinks[0].secret_file: use one of secret_env and secret_file, not several"},
		{"variable not set", input{yaml: hook("    secret_env: WEBHOOK_SECRET")}, "FILE:5", "sinks[0].secret_env: variable WEBHOOK_SECRET is not set"},
		{"variable empty", input{yaml: sinkFile("    type: slack", "    url_env: SLACK_URL"), env: map[string]string{"SLACK_URL": ""}}, "FILE:4", "sinks[0].url_env: variable SLACK_URL is empty"},
		{"variable name not a name", input{yaml: hook("    secret_env: 'hunter2!'")}, "FILE:5", "sinks[0].secret_env: must be the name of an environment variable (letters, digits and _), not a value"},
		{"secret_env empty", input{yaml: hook("    secret_env: ''")}, "FILE:5", "sinks[0].secret_env: must not be empty"},
		{"secret_env not a string", input{yaml: hook("    secret_env: [A]")}, "FILE:5", "sinks[0].secret_env: must be a string, not a list"},
		{"file missing", input{yaml: hook("    secret_file: " + filepath.Join(f.dir, "nope"))}, "FILE:5", "sinks[0].secret_file: cannot read " + filepath.Join(f.dir, "nope") + ": no such file or directory"},
		{"file empty", input{yaml: hook("    secret_file: " + f.emptyFile)}, "FILE:5", "sinks[0].secret_file: file " + f.emptyFile + " is empty"},
		{"file a directory", input{yaml: sinkFile("    type: slack", "    url_file: "+f.dir)}, "FILE:4", "sinks[0].url_file: cannot read " + f.dir + ": not a regular file"},
		{"file too large", input{yaml: hook("    secret_file: " + f.bigFile)}, "FILE:5", "sinks[0].secret_file: cannot read " + f.bigFile + ": larger than 65536 bytes"},
		{"bad url in clear", input{yaml: sinkFile("    type: slack", "    url: hooks.slack.com/x")}, "FILE:4", `sinks[0].url: URL "hooks.slack.com/x" must start with http:// or https://`},
		{"bad url in a variable", input{yaml: sinkFile("    type: slack", "    url_env: SLACK_URL"), env: map[string]string{"SLACK_URL": "hooks.slack.com/x"}}, "FILE:4", "sinks[0].url_env: URL in variable SLACK_URL must start with http:// or https://"},
		{"bad url in a file", input{yaml: sinkFile("    type: webhook", "    url_file: "+f.secretFile)}, "FILE:4", "sinks[0].url_file: URL in file " + f.secretFile + " must start with http:// or https://"},
		{"alertmanager url with a query", input{yaml: sinkFile("    type: alertmanager", "    url: http://am:9093/?x=1")}, "FILE:4", "sinks[0].url: URL \"http://am:9093/?x=1\" must not have a query or fragment"},

		// headers and labels
		{"header name", input{yaml: hook("    headers: {'X Team': a}")}, "FILE:5", `sinks[0].headers.X Team: "X Team" is not a valid header name`},
		{"header value with a line break", input{yaml: hook("    headers:", `      X-A: "a\r\nX-B: b"`)}, "FILE:6", "sinks[0].headers.X-A: the value is not a valid header value"},
		{"ctwatch header", input{yaml: hook("    headers: {X-Ctwatch-Signature: forged}")}, "FILE:5", "sinks[0].headers.X-Ctwatch-Signature: X-Ctwatch-Signature is set by ctwatch and cannot be configured"},
		{"content type", input{yaml: hook("    headers: {content-type: text/plain}")}, "FILE:5", "content-type is set by ctwatch"},
		{"idempotency key", input{yaml: hook("    headers: {Idempotency-Key: x}")}, "FILE:5", "Idempotency-Key is set by ctwatch"},
		{"host header", input{yaml: hook("    headers: {Host: x}")}, "FILE:5", "Host is set by the HTTP client"},
		{"header twice", input{yaml: hook("    headers:", "      X-A: a", "      x-a: b")}, "FILE:7", "sinks[0].headers.x-a: is the same header as X-A"},
		{"header with a mapping value", input{yaml: hook("    headers:", "      X-A:", "        b: c")}, "FILE:6", "sinks[0].headers.X-A: must be a single value, not a mapping"},
		{"header with a list value", input{yaml: hook("    headers: {X-A: [1, 2]}")}, "FILE:5", "sinks[0].headers.X-A: must be a single value, not a list"},
		{"header with a fraction", input{yaml: hook("    headers:", "      X-Version: 1.10")}, "FILE:6", "sinks[0].headers.X-Version: write 1.1 in quotes, so that it is kept as written"},
		{"header without a value", input{yaml: hook("    headers:", "      X-A:")}, "FILE:6", "sinks[0].headers.X-A: has no value"},
		{"headers a list", input{yaml: hook("    headers: [a, b]")}, "FILE:5", "sinks[0].headers: must be a mapping"},
		{"header name a number", input{yaml: hook("    headers:", "      1: a")}, "FILE:6", "sinks[0].headers: the name 1 must be text: write it in quotes"},
		{"label name null", input{yaml: sinkFile("    type: alertmanager", "    url: http://am", "    labels: {~: a, ok: b}")}, "FILE:5", "sinks[0].labels: the name ~ must be text"},
		{"header duplicate key", input{yaml: hook("    headers:", "      X-A: a", "      X-A: b")}, "FILE:7", `duplicate key "X-A" in sinks[0].headers (first at line 6)`},
		{"label name", input{yaml: sinkFile("    type: alertmanager", "    url: http://am", "    labels: {team-name: x}")}, "FILE:5", `sinks[0].labels.team-name: "team-name" is not a valid label name`},
		{"label empty", input{yaml: sinkFile("    type: alertmanager", "    url: http://am", "    labels: {team: ''}")}, "FILE:5", "sinks[0].labels.team: is empty"},

		// route, group, retry, rate
		{"min_severity", input{yaml: sinkFile("    type: stdout", "    route:", "      min_severity: urgent")}, "FILE:5", `sinks[0].route.min_severity: must be info, low, medium, high or critical, not "urgent"`},
		{"event kind", input{yaml: sinkFile("    type: stdout", "    route:", "      events: [log_unreachable, log_down]")}, "FILE:5", `sinks[0].route.events[1]: unknown log event kind "log_down"`},
		{"route events without events", input{yaml: sinkFile("    type: stdout", "    events: false", "    route:", "      events: [log_unreachable]")}, "FILE:6", "sinks[0].route.events: this sink takes no log events (events: false)"},
		{"domain", input{yaml: sinkFile("    type: stdout", "    route:", "      domains:", "        - example.com", "        - 'exa mple.com'")}, "FILE:7", `sinks[0].route.domains[1]: "exa mple.com" is not a domain name: disallowed rune U+0020`},
		{"domain with an empty label", input{yaml: sinkFile("    type: stdout", "    route: {domains: [a..example]}")}, "FILE:4", "is not a domain name: empty label"},
		{"domain only a wildcard", input{yaml: sinkFile("    type: stdout", "    route: {domains: ['*.']}")}, "FILE:4", "nothing is left"},
		{"route not a mapping", input{yaml: sinkFile("    type: stdout", "    route: high")}, "FILE:4", "sinks[0].route: must be a mapping"},
		{"unknown route key", input{yaml: sinkFile("    type: stdout", "    route:", "      min_severty: high")}, "FILE:5", `unknown key "min_severty" in sinks[0].route (did you mean "min_severity"?)`},
		{"rules not a list", input{yaml: sinkFile("    type: stdout", "    route:", "      rules: our-names")}, "FILE:5", `sinks[0].route.rules: must be a list, such as [a, b], not "our-names"`},
		{"empty rule", input{yaml: sinkFile("    type: stdout", "    route:", "      rules: [a, '']")}, "FILE:5", "sinks[0].route.rules[1]: must not be empty"},
		{"tags a mapping", input{yaml: sinkFile("    type: stdout", "    route:", "      tags: {a: b}")}, "FILE:5", "sinks[0].route.tags: must be a list"},
		{"negative window", input{yaml: sinkFile("    type: stdout", "    group:", "      window: -1m")}, "FILE:5", "sinks[0].group.window: must not be negative"},
		{"no names", input{yaml: sinkFile("    type: stdout", "    group: {window: 1m, max_names: 0}")}, "FILE:4", "sinks[0].group.max_names: must be at least 1, got 0"},
		{"max_backoff below min_backoff", input{yaml: sinkFile("    type: stdout", "    retry:", "      min_backoff: 1m", "      max_backoff: 10s")}, "FILE:6", "sinks[0].retry.max_backoff: max_backoff (10s) is shorter than min_backoff (1m0s)"},
		{"min_backoff above the default max", input{yaml: sinkFile("    type: stdout", "    retry:", "      min_backoff: 1h")}, "FILE:5", "sinks[0].retry.min_backoff: max_backoff (5m0s) is shorter than min_backoff (1h0m0s)"},
		{"zero min_backoff", input{yaml: sinkFile("    type: stdout", "    retry: {min_backoff: 0s}")}, "FILE:4", "sinks[0].retry.min_backoff: must be longer than 0"},
		{"negative max_attempts", input{yaml: sinkFile("    type: stdout", "    retry: {max_attempts: -1}")}, "FILE:4", "sinks[0].retry.max_attempts: must not be negative"},
		{"negative rate", input{yaml: sinkFile("    type: stdout", "    rate: -1")}, "FILE:4", "sinks[0].rate: must not be negative"},
		{"zero burst", input{yaml: sinkFile("    type: stdout", "    rate: 1", "    burst: 0")}, "FILE:5", "sinks[0].burst: must be at least 1, got 0"},
		{"burst without rate", input{yaml: sinkFile("    type: stdout", "    burst: 5")}, "FILE:4", "sinks[0].burst: has no effect without a rate above 0"},
		{"zero timeout", input{yaml: sinkFile("    type: stdout", "    timeout: 0s")}, "FILE:4", "sinks[0].timeout: must be longer than 0"},
		{"zero resolve_after", input{yaml: sinkFile("    type: alertmanager", "    url: http://am", "    resolve_after: 0s")}, "FILE:5", "sinks[0].resolve_after: must be longer than 0"},

		// TLS
		{"cert without key", input{yaml: hook("    tls:", "      cert_file: "+f.cert)}, "FILE:6", "sinks[0].tls.cert_file: needs key_file too"},
		{"key without cert", input{yaml: hook("    tls:", "      key_file: "+f.key)}, "FILE:6", "sinks[0].tls.key_file: needs cert_file too"},
		{"ca_file not PEM", input{yaml: hook("    tls:", "      ca_file: "+f.notPEM)}, "FILE:6", "sinks[0].tls.ca_file: no PEM certificate in " + f.notPEM},
		{"ca_file missing", input{yaml: hook("    tls: {ca_file: /nonexistent/ca.pem}")}, "FILE:5", "sinks[0].tls.ca_file: cannot read /nonexistent/ca.pem: no such file or directory"},
		{"key_file missing", input{yaml: hook("    tls:", "      cert_file: "+f.cert, "      key_file: /nonexistent/key.pem")}, "FILE:7", "sinks[0].tls.key_file: cannot read /nonexistent/key.pem"},
		{"key of another certificate", input{yaml: hook("    tls:", "      cert_file: "+f.cert, "      key_file: "+f.otherKey)}, "FILE:6", "sinks[0].tls.cert_file: unusable client certificate and key: private key does not match public key"},
		{"insecure_skip_verify not a bool", input{yaml: hook("    tls: {insecure_skip_verify: perhaps}")}, "FILE:5", `sinks[0].tls.insecure_skip_verify: must be true or false, not "perhaps"`},

		// email
		{"email without smtp", input{yaml: mail("    from: a@example.com", "    to: [b@example.com]")}, "FILE:2", "sinks[0]: smtp is required for an email sink"},
		{"email without from", input{yaml: mail("    smtp: h:25", "    to: [b@example.com]")}, "FILE:2", "sinks[0]: from is required for an email sink"},
		{"email without to", input{yaml: mail("    smtp: h:25", "    from: a@example.com")}, "FILE:2", "sinks[0]: to is required for an email sink (at least one address)"},
		{"email with an empty to", input{yaml: mail("    smtp: h:25", "    from: a@example.com", "    to: []")}, "FILE:2", "sinks[0]: to is required for an email sink"},
		{"smtp without port", input{yaml: mail("    smtp: smtp.example.com", "    from: a@example.com", "    to: [b@example.com]")}, "FILE:4", `sinks[0].smtp: "smtp.example.com" must be host:port: missing port in address`},
		{"smtp port a name", input{yaml: mail("    smtp: smtp.example.com:smtp", "    from: a@example.com", "    to: [b@example.com]")}, "FILE:4", `sinks[0].smtp: "smtp.example.com:smtp": the port must be a number from 1 to 65535`},
		{"smtp port zero", input{yaml: mail("    smtp: h:0", "    from: a@example.com", "    to: [b@example.com]")}, "FILE:4", "the port must be a number from 1 to 65535"},
		{"smtp without host", input{yaml: mail("    smtp: ':25'", "    from: a@example.com", "    to: [b@example.com]")}, "FILE:4", `sinks[0].smtp: ":25" has no host`},
		{"smtp_tls", input{yaml: mailOK("    smtp_tls: ssl")}, "FILE:7", `sinks[0].smtp_tls: must be starttls, tls or none, not "ssl"`},
		{"from not an address", input{yaml: mail("    smtp: h:25", "    from: ctwatch", "    to: [b@example.com]")}, "FILE:5", `sinks[0].from: "ctwatch" is not an email address`},
		{"header injection in to", input{yaml: mail("    smtp: h:25", "    from: a@example.com", "    to:", "      - b@example.com", `      - "c@example.com\r\nBcc: x@evil.example"`)}, "FILE:8", `sinks[0].to[1]: "c@example.com\r\nBcc: x@evil.example" is not an email address`},
		{"two addresses in one", input{yaml: mail("    smtp: h:25", "    from: a@example.com", "    to: ['b@example.com, c@example.com']")}, "FILE:6", "sinks[0].to[0]"},
		{"username without password", input{yaml: mailOK("    username: u")}, "FILE:7", "sinks[0].username: needs password_env or password_file too"},
		{"password without username", input{yaml: mailOK("    password_env: P"), env: map[string]string{"P": "x"}}, "FILE:7", "sinks[0].password_env: needs username too"},
		{"password variable not set", input{yaml: mailOK("    username: u", "    password_env: SMTP_PASSWORD")}, "FILE:8", "sinks[0].password_env: variable SMTP_PASSWORD is not set"},

		// exec
		{"exec without command", input{yaml: sinkFile("    type: exec")}, "FILE:2", "sinks[0]: command is required for an exec sink"},
		{"exec empty command", input{yaml: sinkFile("    type: exec", "    command: ' '")}, "FILE:4", "sinks[0].command: must not be empty"},
		{"exec missing program", input{yaml: sinkFile("    type: exec", "    command: /nonexistent/hook")}, "FILE:4", `sinks[0].command: cannot run "/nonexistent/hook": no such file or directory`},
		{"exec not in PATH", input{yaml: sinkFile("    type: exec", "    command: ctwatch-no-such-hook"), env: map[string]string{"PATH": f.dir}}, "FILE:4", `sinks[0].command: cannot run "ctwatch-no-such-hook": executable file not found in $PATH`},
		{"exec not executable", input{yaml: sinkFile("    type: exec", "    command: "+f.notExec)}, "FILE:4", "permission denied"},
		{"exec args not a list", input{yaml: sinkFile("    type: exec", "    command: "+f.script, "    args: --flag")}, "FILE:5", "sinks[0].args: must be a list"},
		{"exec arg a mapping", input{yaml: sinkFile("    type: exec", "    command: "+f.script, "    args: [{a: b}]")}, "FILE:5", "sinks[0].args[0]: must be a single value, not a mapping"},

		// the environment
		{"env sink variable not set", input{env: map[string]string{"CTWATCH_SINKS": "[{name: s, type: slack, url_env: SLACK_URL}]"}}, "environment", "CTWATCH_SINKS: sinks[0].url_env: variable SLACK_URL is not set"},
		{"env sink header mapping", input{env: map[string]string{"CTWATCH_SINKS": "[{name: s, type: webhook, url: 'https://h', headers: {X-A: {b: c}}}]"}}, "environment", "CTWATCH_SINKS: sinks[0].headers.X-A: must be a single value, not a mapping"},
		{"env sink secret in clear", input{env: map[string]string{"CTWATCH_SINKS": "[{name: s, type: webhook, url: 'https://h', secret: x}]"}}, "environment", `CTWATCH_SINKS: unknown key "secret" in sinks[0] (a secret is never written in the file`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, cfg, err := tc.in.load(t)
			if err == nil {
				t.Fatalf("no error; got %+v", cfg)
			}
			if cfg != nil {
				t.Error("a Config was returned with the error")
			}
			ps := problems(t, err)
			where := strings.Replace(tc.where, "FILE", path, 1)
			if len(ps) != 1 || !strings.HasPrefix(ps[0].String(), where+": ") || !strings.Contains(ps[0].String(), tc.msg) {
				t.Errorf("got\n%v\nwant one problem like\n%s: %s", err, where, tc.msg)
			}
		})
	}
}

// TestSecretsNotInErrors: a secret's value appears in no message, however
// it is wrong or whatever else is.
func TestSecretsNotInErrors(t *testing.T) {
	const secret = "s3cr3t-T0KEN"
	dir := t.TempDir()
	n := 0
	file := func(content string) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("file%d", n))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		in   input
	}{
		{"URL variable not a URL", input{yaml: sinkFile("    type: slack", "    url_env: U"), env: map[string]string{"U": "hooks.slack.com/services/" + secret}}},
		{"URL variable without host", input{yaml: sinkFile("    type: slack", "    url_env: U"), env: map[string]string{"U": "https:///" + secret}}},
		{"URL variable unparsable", input{yaml: sinkFile("    type: slack", "    url_env: U"), env: map[string]string{"U": "https://h/%zz" + secret}}},
		{"URL file not a URL", input{yaml: sinkFile("    type: webhook", "    url_file: "+file("ftp://x/"+secret))}},
		{"alertmanager URL variable with a query", input{yaml: sinkFile("    type: alertmanager", "    url_env: U"), env: map[string]string{"U": "http://am/?token=" + secret}}},
		{"secret pasted as a variable name", input{yaml: sinkFile("    type: webhook", "    url: https://h", "    secret_env: "+secret)}},
		{"URL pasted as a variable name", input{yaml: sinkFile("    type: slack", "    url_env: https://hooks.slack.com/services/"+secret)}},
		{"header value with a line break", input{yaml: sinkFile("    type: webhook", "    url: https://h", "    headers:", `      Authorization: "Bearer `+secret+`\n"`)}},
		{"secrets read, another problem", input{
			yaml: sinkFile("    type: webhook", "    url_env: U", "    secret_env: S", "    rate: -1"),
			env:  map[string]string{"U": "https://h/" + secret, "S": secret},
		}},
		{"password read, another problem", input{
			yaml: sinkFile("    type: email", "    smtp: h", "    from: a@example.com", "    to: [b@example.com]", "    username: u", "    password_file: "+file(secret)),
		}},
		{"password without username", input{
			yaml: sinkFile("    type: email", "    smtp: h:25", "    from: a@example.com", "    to: [b@example.com]", "    password_env: P"),
			env:  map[string]string{"P": secret},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.in.load(t)
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the secret is in the error:\n%v", err)
			}
		})
	}
}

// TestSecretVariableNames: variables that *_env keys name may start with
// CTWATCH_; others that set nothing are still unknown, with the names the
// configuration uses as suggestions.
func TestSecretVariableNames(t *testing.T) {
	file := sinkFile("    type: webhook", "    url_env: CTWATCH_HOOK_URL", "    secret_env: CTWATCH_HOOK_SECRET")
	t.Run("named by the file", func(t *testing.T) {
		_, cfg, err := input{yaml: file, env: map[string]string{
			"CTWATCH_HOOK_URL": "https://h.example/x", "CTWATCH_HOOK_SECRET": "k",
		}}.load(t)
		if err != nil {
			t.Fatal(err)
		}
		if s := cfg.Sinks[0]; s.URL != "https://h.example/x" || string(s.Secret) != "k" {
			t.Errorf("got %+v", s)
		}
	})
	t.Run("named by CTWATCH_SINKS", func(t *testing.T) {
		_, cfg, err := input{env: map[string]string{
			"CTWATCH_SINKS":       "[{name: s, type: webhook, url: 'https://h.example', secret_env: CTWATCH_HOOK_SECRET}]",
			"CTWATCH_HOOK_SECRET": "k",
		}}.load(t)
		if err != nil {
			t.Fatal(err)
		}
		if s := cfg.Sinks[0]; string(s.Secret) != "k" {
			t.Errorf("got %+v", s)
		}
	})
	t.Run("misspelt", func(t *testing.T) {
		path, _, err := input{yaml: file, env: map[string]string{
			"CTWATCH_HOOK_URL": "https://h.example/x", "CTWATCH_HOOK_SECRT": "k",
		}}.load(t)
		got := make([]string, 0, 2)
		for _, p := range problems(t, err) {
			got = append(got, p.String())
		}
		want := []string{
			path + ":5: sinks[0].secret_env: variable CTWATCH_HOOK_SECRET is not set",
			"environment: CTWATCH_HOOK_SECRT: unknown variable (did you mean CTWATCH_HOOK_SECRET?)",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("named by a sink of another type", func(t *testing.T) {
		// A key reported as misplaced is not read, so its variable is
		// unknown as well; both say so.
		_, _, err := input{yaml: sinkFile("    type: stdout", "    secret_env: CTWATCH_HOOK_SECRET"),
			env: map[string]string{"CTWATCH_HOOK_SECRET": "k"}}.load(t)
		if n := len(problems(t, err)); n != 2 {
			t.Errorf("got %d problems, want 2:\n%v", n, err)
		}
	})
}

// TestSinksKeepNames: header and label names reach the Sink as written,
// although viper lower-cases the keys it holds.
func TestSinksKeepNames(t *testing.T) {
	_, cfg, err := input{yaml: `
sinks:
  - &am
    name: am
    type: alertmanager
    url: http://am:9093
    labels: {Team: secops, team: other}
    headers: {X-Scope-OrgID: a}
  - <<: *am
    name: am2
`}.load(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cfg.Sinks {
		if want := map[string]string{"Team": "secops", "team": "other"}; !reflect.DeepEqual(s.Labels, want) {
			t.Errorf("%s: labels %v, want %v", s.Name, s.Labels, want)
		}
		if want := map[string]string{"X-Scope-OrgID": "a"}; !reflect.DeepEqual(s.Headers, want) {
			t.Errorf("%s: headers %v, want %v", s.Name, s.Headers, want)
		}
	}
}

// TestSeveralSinkProblems: one sink's mistakes are all reported, at their
// lines, and other sinks are still checked.
func TestSeveralSinkProblems(t *testing.T) {
	path, _, err := input{yaml: `sinks:
  - name: mail
    type: email
    smtp: smtp.example.com
    from: nobody
    to: [ok@example.com, not-an-address]
    url: https://x.example
    route: {min_severity: severe}
  - name: hook
    type: webhook
    url_env: NOT_SET
    headers: {X-Ctwatch-Id: x}
`}.load(t)
	want := []string{
		path + `:4: sinks[0].smtp: "smtp.example.com" must be host:port: missing port in address`,
		path + `:5: sinks[0].from: "nobody" is not an email address`,
		path + `:6: sinks[0].to[1]: "not-an-address" is not an email address`,
		path + `:7: sinks[0].url: is only for webhook, slack and alertmanager sinks`,
		path + `:8: sinks[0].route.min_severity: must be info, low, medium, high or critical, not "severe"`,
		path + `:11: sinks[1].url_env: variable NOT_SET is not set`,
		path + `:12: sinks[1].headers.X-Ctwatch-Id: X-Ctwatch-Id is set by ctwatch and cannot be configured`,
	}
	ps := problems(t, err)
	if len(ps) != len(want) {
		t.Fatalf("got %d problems:\n%v\nwant %d", len(ps), err, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(ps[i].String(), w) {
			t.Errorf("problem %d: got %q, want it to start with %q", i+1, ps[i].String(), w)
		}
	}
}

func TestWeb(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    input
		want  Web
		where string // of the one problem, when not ""
		msg   string
	}{
		{"default: this host only", input{}, Web{Listen: "127.0.0.1:9464", StatusPage: true}, "", ""},
		{"file turns it off", input{yaml: "web:\n  listen: \"\"\n"}, Web{StatusPage: true}, "", ""},
		{"environment turns it off", input{env: map[string]string{"CTWATCH_WEB_LISTEN": ""}}, Web{StatusPage: true}, "", ""},
		{"file", input{yaml: "web:\n  listen: 127.0.0.1:8080\n  external_url: https://ctwatch.example/base/\n"},
			Web{Listen: "127.0.0.1:8080", ExternalURL: "https://ctwatch.example/base", StatusPage: true}, "", ""},
		{"environment over file", input{yaml: "web:\n  listen: 127.0.0.1:8080\n", env: map[string]string{"CTWATCH_WEB_LISTEN": ":9090", "CTWATCH_WEB_EXTERNAL_URL": "http://h:9090"}},
			Web{Listen: ":9090", ExternalURL: "http://h:9090", StatusPage: true}, "", ""},
		{"flags over environment", input{env: map[string]string{"CTWATCH_WEB_LISTEN": ":9090"}, args: []string{"--web-listen", "[::1]:0", "--web-external-url=https://x.example"}},
			Web{Listen: "[::1]:0", ExternalURL: "https://x.example", StatusPage: true}, "", ""},
		{"listen without port", input{yaml: "web:\n  listen: localhost\n"}, Web{}, "FILE:2", `web.listen: "localhost" must be host:port: missing port in address, such as 127.0.0.1:8080 or :8080`},
		{"listen port a word", input{env: map[string]string{"CTWATCH_WEB_LISTEN": ":http"}}, Web{}, "environment", `CTWATCH_WEB_LISTEN: ":http": the port must be a number from 0 to 65535`},
		{"external_url with a query", input{yaml: "web:\n  listen: ':1'\n  external_url: https://x.example/?a=b\n"}, Web{}, "FILE:3", "web.external_url: URL \"https://x.example/?a=b\" must not have a query or fragment"},
		{"external_url scheme", input{args: []string{"--web-external-url=x.example"}}, Web{}, "flag", `--web-external-url: URL "x.example" must start with http:// or https://`},
		{"unknown key", input{yaml: "web:\n  listn: ':1'\n"}, Web{}, "FILE:2", `unknown key "listn" in web (did you mean "listen"?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, cfg, err := tc.in.load(t)
			if tc.where == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Web != tc.want {
					t.Errorf("got %+v, want %+v", cfg.Web, tc.want)
				}
				return
			}
			ps := problems(t, err)
			where := strings.Replace(tc.where, "FILE", path, 1)
			if len(ps) != 1 || !strings.HasPrefix(ps[0].String(), where+": ") || !strings.Contains(ps[0].String(), tc.msg) {
				t.Errorf("got\n%v\nwant one problem like\n%s: %s", err, where, tc.msg)
			}
		})
	}
}
