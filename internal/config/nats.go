package config

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/nats-io/nkeys"
)

// maxReplicas is the most copies JetStream keeps of a stream or bucket.
const maxReplicas = 5

// NATS authentication methods, as [NATS.AuthMethod] names them.
const (
	NATSAuthNone     = ""
	NATSAuthPassword = "user/password"
	NATSAuthToken    = "token"
	NATSAuthCreds    = "creds file"
	NATSAuthNKey     = "nkey"
)

// AuthMethod names how ctwatch authenticates to NATS, for messages (never
// with the secret): one of the NATSAuth* constants, NATSAuthNone when it
// sends no credentials.
func (n NATS) AuthMethod() string {
	switch {
	case n.User != "":
		return NATSAuthPassword
	case n.Token != "":
		return NATSAuthToken
	case n.CredsFile != "":
		return NATSAuthCreds
	case n.NKeySeedFile != "":
		return NATSAuthNKey
	}
	return NATSAuthNone
}

// natsSecuritySettings are the keys of an external NATS's credentials and
// TLS. Every one is a name or a path, never a secret, so that a flag or a
// variable may carry it like any other key.
func natsSecuritySettings() []setting {
	return []setting{
		{"nats.replicas", kindInt, 1, "nats-replicas", "copies of the hit stream and buckets on a NATS cluster (1 with the embedded server)"},
		{"nats.user", kindString, "", "nats-user", "user name for an external NATS (with nats.password_env or nats.password_file)"},
		{"nats.password_env", kindString, "", "nats-password-env", "environment variable holding the NATS password"},
		{"nats.password_file", kindString, "", "nats-password-file", "file holding the NATS password"},
		{"nats.token_env", kindString, "", "nats-token-env", "environment variable holding the NATS token"},
		{"nats.token_file", kindString, "", "nats-token-file", "file holding the NATS token"},
		{"nats.creds_file", kindString, "", "nats-creds-file", "NATS credentials file (user JWT and NKey seed)"},
		{"nats.nkey_seed_file", kindString, "", "nats-nkey-seed-file", "file holding a NATS user NKey seed"},
		{"nats.tls.ca_file", kindString, "", "nats-tls-ca-file", "PEM roots the NATS server's certificate is checked against, instead of the system's"},
		{"nats.tls.cert_file", kindString, "", "nats-tls-cert-file", "PEM client certificate for NATS (with nats.tls.key_file)"},
		{"nats.tls.key_file", kindString, "", "nats-tls-key-file", "PEM key of the NATS client certificate"},
		{"nats.tls.server_name", kindString, "", "nats-tls-server-name", "name the NATS server's certificate is checked against, instead of the URL's host"},
		{"nats.tls.insecure_skip_verify", kindBool, false, "nats-tls-insecure-skip-verify", "do not check the NATS server's certificate (labs only)"},
	}
}

// natsSpec is the schema of the nats section. password and token are not
// keys: written in clear they are reported as unknown, with a hint that
// names their _env and _file forms.
func natsSpec() *spec {
	fields := leaves("url", "stream_max_age", "dedupe_window", "replicas",
		"user", "password_env", "password_file", "token_env", "token_file", "creds_file", "nkey_seed_file")
	fields["tls"] = &spec{shape: shapeSection, fields: leaves("ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify")}
	return &spec{shape: shapeSection, fields: fields}
}

// natsSecurity decodes nats.replicas, the credentials and TLS into n,
// whose URL is decoded already. Credentials and TLS only make sense for an
// external server: the embedded one listens on no port and checks nothing,
// so setting them without nats.url is a mistake worth reporting rather
// than ignoring.
func (l *loader) natsSecurity(n *NATS) {
	n.Replicas = int(l.integer("nats.replicas", 1))
	switch {
	case n.Replicas > maxReplicas:
		l.problem("nats.replicas", "nats.replicas", "must be at most %d (JetStream's limit), got %d", maxReplicas, n.Replicas)
	case n.Replicas > 1 && n.URL == "":
		l.problem("nats.replicas", "nats.replicas", "must be 1 with the embedded server: set nats.url to use a cluster")
	}

	// Each value once (a bad one is reported once), and every key set,
	// in the order of natsSecuritySettings, for the checks that span
	// several.
	val := map[string]string{}
	insecure := false
	var set []string
	for _, s := range natsSecuritySettings() {
		switch {
		case s.key == "nats.replicas":
			continue
		case s.kind == kindBool:
			if raw, ok := l.get(s.key); ok {
				insecure = l.asBool(s.key, s.key, raw, false)
			}
			if insecure {
				set = append(set, s.key)
			}
		default:
			if val[s.key] = strings.TrimSpace(l.str(s.key)); val[s.key] != "" {
				set = append(set, s.key)
			}
		}
	}
	if n.URL == "" {
		for _, key := range set {
			l.problem(key, key, "is only for an external NATS (nats.url); the embedded server takes no credentials or TLS")
		}
		return
	}

	// At most one method, reported at the first key of a second one.
	methods := map[string]string{
		"nats.user": NATSAuthPassword, "nats.password_env": NATSAuthPassword, "nats.password_file": NATSAuthPassword,
		"nats.token_env": NATSAuthToken, "nats.token_file": NATSAuthToken,
		"nats.creds_file": NATSAuthCreds, "nats.nkey_seed_file": NATSAuthNKey,
	}
	var first string
	for _, key := range set {
		m, ok := methods[key]
		if !ok {
			continue
		}
		if first == "" {
			first = m
		} else if m != first {
			l.problem(key, key, "authenticates with %s, but %s is set too: use one of user and password, token, creds_file and nkey_seed_file", m, first)
			return
		}
	}

	n.User = val["nats.user"]
	password, passwordKey, ok := l.natsSecret("nats.password", val)
	switch {
	case !ok:
	case n.User != "" && passwordKey == "":
		l.problem("nats.user", "nats.user", "needs nats.password_env or nats.password_file too")
	case n.User == "" && passwordKey != "":
		l.problem(passwordKey, passwordKey, "needs nats.user too")
	default:
		n.Password = password
	}
	n.Token, _, _ = l.natsSecret("nats.token", val)
	if n.CredsFile = val["nats.creds_file"]; n.CredsFile != "" {
		if msg := credsProblem(n.CredsFile); msg != "" {
			l.problem("nats.creds_file", "nats.creds_file", "%s", msg)
		}
	}
	if n.NKeySeedFile = val["nats.nkey_seed_file"]; n.NKeySeedFile != "" {
		if msg := seedProblem(n.NKeySeedFile); msg != "" {
			l.problem("nats.nkey_seed_file", "nats.nkey_seed_file", "%s", msg)
		}
	}

	n.TLS = TLS{
		CAFile:             val["nats.tls.ca_file"],
		CertFile:           val["nats.tls.cert_file"],
		KeyFile:            val["nats.tls.key_file"],
		ServerName:         val["nats.tls.server_name"],
		InsecureSkipVerify: insecure,
	}
	checkTLS(n.TLS, func(field, msg string) {
		key := "nats.tls." + field
		l.problem(key, key, "%s", msg)
	})
}

// natsSecret reads the secret named by base+"_env" or base+"_file" (at
// most one of them; val holds the keys' values) and returns it with the key
// it came from: "" and "" when neither is set. ok is false when the one set
// is unusable or both are (reported).
func (l *loader) natsSecret(base string, val map[string]string) (value, key string, ok bool) {
	envKey, fileKey := base+"_env", base+"_file"
	envRef, fileRef := val[envKey], val[fileKey]
	switch {
	case envRef != "" && fileRef != "":
		l.problem(fileKey, fileKey, "use one of %s and %s, not both", envKey, fileKey)
		return "", "", false
	case envRef == "" && fileRef == "":
		return "", "", true
	}
	key = envKey
	if envRef == "" {
		key = fileKey
	}
	value, _, msg := l.readRef(cmp.Or(envRef, fileRef), envRef == "")
	if msg != "" {
		l.problem(key, key, "%s", msg)
		return "", key, false
	}
	return value, key, true
}

// credsProblem checks that path is a NATS credentials file: a user JWT
// and a user NKey seed, as nsc writes them. It says what is wrong without
// quoting the file, which holds a secret; "" when it is fine.
func credsProblem(path string) string {
	data, err := readSmallFile(path, maxSecretFileBytes)
	if err != nil {
		return err.Error()
	}
	defer wipe(data)
	jwt, err := nkeys.ParseDecoratedJWT(data)
	if err != nil || strings.Count(jwt, ".") != 2 || strings.ContainsAny(jwt, " \n") {
		return fmt.Sprintf("%s is not a NATS credentials file: no user JWT in it", path)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(data)
	if err != nil {
		return fmt.Sprintf("%s is not a NATS credentials file: no user NKey seed in it (%s)", path, strings.TrimPrefix(err.Error(), "nkeys: "))
	}
	kp.Wipe()
	return ""
}

// seedProblem checks that path holds a user NKey seed (SU…), the only
// kind a client signs in with; "" when it does.
func seedProblem(path string) string {
	data, err := readSmallFile(path, maxSecretFileBytes)
	if err != nil {
		return err.Error()
	}
	defer wipe(data)
	kp, err := nkeys.ParseDecoratedUserNKey(data)
	if err != nil {
		return fmt.Sprintf("%s does not hold a user NKey seed (SU…): %s", path, strings.TrimPrefix(err.Error(), "nkeys: "))
	}
	kp.Wipe()
	return ""
}

// wipe overwrites a buffer that held a secret, so that it does not linger
// in memory longer than needed.
func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}
