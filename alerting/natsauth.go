package alerting

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// ClientAuth says how ctwatch proves who it is to an external NATS server
// and how it protects the connection. At most one authentication method is
// set: User (with Password), Token, CredsFile or NKeySeedFile; the zero
// value sends no credentials and uses TLS only when the URL (tls://) or the
// server asks for it. A ClientAuth is a plain value, safe to copy; it holds
// secrets, so never log it.
type ClientAuth struct {
	// User and Password authenticate with a user name; both or neither.
	User     string
	Password string
	// Token authenticates with a bearer token.
	Token string
	// CredsFile is a credentials file (user JWT and NKey seed) as nsc
	// writes it. It is read at every connection, not once.
	CredsFile string
	// NKeySeedFile holds a user NKey seed (SU…), read at every
	// connection; the seed signs the server's challenge and never leaves
	// the process.
	NKeySeedFile string
	// TLS, when not nil, makes TLS mandatory with this configuration
	// (roots, client certificate, server name). nats.go fills in the
	// server name from the URL when it is empty.
	TLS *tls.Config
}

// Method names the authentication method for messages, never with the
// secret: "user/password", "token", "creds file", "nkey", or "no
// credentials".
func (a ClientAuth) Method() string {
	switch {
	case a.User != "":
		return "user/password"
	case a.Token != "":
		return "token"
	case a.CredsFile != "":
		return "creds file"
	case a.NKeySeedFile != "":
		return "nkey"
	}
	return "no credentials"
}

// Options turns a into options for [Connect]. It fails when several
// methods are set, or when the NKey seed file cannot be read or holds no
// user seed (nats.go reads that file once here to learn the public key).
// Errors name files but never their contents.
func (a ClientAuth) Options() ([]nats.Option, error) {
	set := 0
	for _, s := range []string{a.User, a.Token, a.CredsFile, a.NKeySeedFile} {
		if s != "" {
			set++
		}
	}
	if set > 1 {
		return nil, errors.New("alerting: nats auth: more than one authentication method")
	}
	if a.Password != "" && a.User == "" {
		return nil, errors.New("alerting: nats auth: a password without a user")
	}
	var opts []nats.Option
	switch {
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	case a.Token != "":
		opts = append(opts, nats.Token(a.Token))
	case a.CredsFile != "":
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(a.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("alerting: nats nkey seed file %s: %w", a.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	}
	if a.TLS != nil {
		opts = append(opts, nats.Secure(a.TLS))
	}
	return opts, nil
}

// IsAuthError reports whether err says the server refused the
// credentials (or their absence): wrong, expired or revoked. Retrying such
// an error with the same configuration cannot succeed.
func IsAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired)
}
