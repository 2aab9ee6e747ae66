package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/httpsink"
	"github.com/ctwatch/ctwatch/internal/config"
)

// natsAuth builds the credentials and TLS configuration of an external
// NATS from n. TLS files are read here (they were checked at load time, but
// may have changed since).
func natsAuth(n config.NATS) (alerting.ClientAuth, error) {
	a := alerting.ClientAuth{
		User:         n.User,
		Password:     n.Password,
		Token:        n.Token,
		CredsFile:    n.CredsFile,
		NKeySeedFile: n.NKeySeedFile,
	}
	if n.TLS != (config.TLS{}) {
		// The sinks' reading of the same settings: one meaning for
		// ca_file, cert_file and the rest wherever they appear.
		tc, err := httpsink.TLS{
			CAFile:             n.TLS.CAFile,
			CertFile:           n.TLS.CertFile,
			KeyFile:            n.TLS.KeyFile,
			ServerName:         n.TLS.ServerName,
			InsecureSkipVerify: n.TLS.InsecureSkipVerify,
		}.Config("")
		if err != nil {
			return a, fmt.Errorf("nats %w", err)
		}
		a.TLS = tc
	}
	return a, nil
}

// connectExternal connects to the NATS server or cluster at n.URL with
// n's credentials and TLS. Its errors say which authentication method was
// refused, and for TLS failures which settings to check, without any
// secret: the start-up error is all an operator sees of a wrong password.
func connectExternal(ctx context.Context, n config.NATS) (*nats.Conn, error) {
	auth, err := natsAuth(n)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	opts, err := auth.Options()
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	nc, err := alerting.Connect(ctx, n.URL, opts...)
	if err == nil {
		return nc, nil
	}
	switch {
	case alerting.IsAuthError(err) && auth.Method() == "no credentials":
		return nil, fmt.Errorf("connect to nats: the server requires credentials and none are configured "+
			"(nats.user with nats.password_env or _file, nats.token_env or _file, nats.creds_file or nats.nkey_seed_file): %w", err)
	case alerting.IsAuthError(err):
		return nil, fmt.Errorf("connect to nats: %s authentication%s refused: %w", auth.Method(), authDetail(n), err)
	case isTLSError(err):
		return nil, fmt.Errorf("connect to nats: TLS failed (check nats.tls: ca_file for the server's CA, server_name, and cert_file/key_file when the server wants a client certificate): %w", err)
	}
	return nil, fmt.Errorf("connect to nats: %w", err)
}

// authDetail names who ctwatch claimed to be, for an authorization error:
// the user name or the file used, which are not secrets.
func authDetail(n config.NATS) string {
	switch {
	case n.User != "":
		return fmt.Sprintf(" as user %q", n.User)
	case n.CredsFile != "":
		return " with " + n.CredsFile
	case n.NKeySeedFile != "":
		return " with " + n.NKeySeedFile
	}
	return ""
}

// isTLSError recognises the failures of a TLS handshake: the server's
// certificate not trusted or not matching, the server refusing ours, or one
// side wanting TLS and the other not.
func isTLSError(err error) bool {
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	if errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.Is(err, nats.ErrTLS) || errors.Is(err, nats.ErrSecureConnRequired) || errors.Is(err, nats.ErrSecureConnWanted) {
		return true
	}
	// A refusal by the server (no client certificate, or one it does not
	// trust) arrives as an alert in a *net.OpError, whose type is private:
	// its message is all there is.
	return strings.Contains(err.Error(), "remote error: tls: ")
}

// streamConfig is the hit stream's configuration from the nats section:
// one place, so that the daemon and the commands that open its stream
// (OpenBus) never ask for different settings, which JetStream would apply
// as an update.
func streamConfig(n config.NATS) alerting.StreamConfig {
	return alerting.StreamConfig{MaxAge: n.StreamMaxAge, Duplicates: n.DedupeWindow, Replicas: n.Replicas}
}
