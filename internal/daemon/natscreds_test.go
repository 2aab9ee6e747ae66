package daemon_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/ctwatch/ctwatch/alerting"
)

// natsOperator is an operator of decentralised (JWT) authentication: its
// key signs account JWTs, which a server trusting it accepts.
type natsOperator struct {
	kp     nkeys.KeyPair
	claims *jwt.OperatorClaims // as a server loads it from the operator JWT
	// system is the operator's system account, which a server with
	// JetStream in operator mode cannot start without.
	system natsAccount
}

func newNATSOperator(t *testing.T) natsOperator {
	t.Helper()
	kp, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	o := natsOperator{kp: kp}
	o.system = o.newAccount(t, "SYS", false)
	claims := jwt.NewOperatorClaims(pub)
	claims.SystemAccount = o.system.pub
	token, err := claims.Encode(kp)
	if err != nil {
		t.Fatal(err)
	}
	// Decoded again, so that the server trusts what an operator JWT file
	// would give it rather than the claims the test built.
	if o.claims, err = jwt.DecodeOperatorClaims(token); err != nil {
		t.Fatal(err)
	}
	return o
}

// natsAccount is an account signed by an operator: its public key, its
// JWT (for a server's resolver) and its key, which signs user JWTs.
type natsAccount struct {
	kp       nkeys.KeyPair
	pub, jwt string
}

// account creates an account for ctwatch signed by o, with JetStream
// enabled without limits: an account whose JWT has no JetStream limits has
// no JetStream, and ctwatch could not create its stream and buckets.
func (o natsOperator) account(t *testing.T) natsAccount {
	t.Helper()
	return o.newAccount(t, "ctwatch", true)
}

func (o natsOperator) newAccount(t *testing.T, name string, jetStream bool) natsAccount {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.NewAccountClaims(pub)
	claims.Name = name
	if jetStream {
		claims.Limits.JetStreamLimits = jwt.JetStreamLimits{
			MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: jwt.NoLimit,
		}
	}
	token, err := claims.Encode(o.kp)
	if err != nil {
		t.Fatal(err)
	}
	return natsAccount{kp: kp, pub: pub, jwt: token}
}

// natsCreds is a user's credentials file and the seed in it, which no
// error may show.
type natsCreds struct {
	path, seed string
}

// userCreds writes a credentials file, as nsc would, for a new user of
// account a (its JWT signed by a's key), holding the seed of seedOf, or
// the user's own seed when seedOf is nil.
func (a natsAccount) userCreds(t *testing.T, seedOf nkeys.KeyPair) natsCreds {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.NewUserClaims(pub)
	claims.Name = "ctwatch"
	token, err := claims.Encode(a.kp)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		t.Fatal(err)
	}
	if seedOf != nil {
		// FormatUserConfig refuses a seed that is not the JWT's user's:
		// the mismatch is spliced in afterwards, as a hand-edited file
		// would have it.
		other, err := seedOf.Seed()
		if err != nil {
			t.Fatal(err)
		}
		creds = bytes.Replace(creds, seed, other, 1)
		seed = other
	}
	path := filepath.Join(t.TempDir(), "ctwatch.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return natsCreds{path: path, seed: string(seed)}
}

// TestNATSCredsFile: a server in operator (JWT) mode, trusting one
// operator whose account is in the server's resolver, accepts a creds file
// of that account's user; the daemon connects with it and opens its stream
// and buckets in the account's JetStream. Creds the server cannot trust are
// refused with an error naming the method and the file, never the seed.
// (A creds file that is not one is a configuration problem at FILE:LINE:
// see the config package's tests.)
func TestNATSCredsFile(t *testing.T) {
	cleanNATSEnv(t)
	operator := newNATSOperator(t)
	account := operator.account(t)
	resolver := &server.MemAccResolver{}
	for _, a := range []natsAccount{operator.system, account} {
		if err := resolver.Store(a.pub, a.jwt); err != nil {
			t.Fatal(err)
		}
	}
	// The resolver also holds an account that a foreign operator signed:
	// the server must check who signed it, not only that it knows it.
	foreign := newNATSOperator(t)
	forged := foreign.account(t)
	if err := resolver.Store(forged.pub, forged.jwt); err != nil {
		t.Fatal(err)
	}
	srv := startNATS(t, func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{operator.claims}
		o.AccountResolver = resolver
		// A configuration file's operator would set this from the
		// operator JWT; options built in code must say it themselves.
		o.SystemAccount = operator.system.pub
	})

	t.Run("right", func(t *testing.T) {
		creds := account.userCreds(t, nil)
		runWorks(t, natsConfig(t, srv.ClientURL(), "  creds_file: "+creds.path+"\n"))
		// The stream and the buckets are in the account's JetStream,
		// where another of its users finds them.
		streams := accountStreams(t, srv.ClientURL(), account.userCreds(t, nil))
		if !slices.Contains(streams, alerting.StreamName) || !slices.ContainsFunc(streams, func(s string) bool { return strings.HasPrefix(s, "KV_") }) {
			t.Errorf("the account's streams are %q, want %s and the buckets'", streams, alerting.StreamName)
		}
	})

	otherUser, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		creds natsCreds
	}{
		// The account exists nowhere the server looks.
		{"account of another operator", foreign.account(t).userCreds(t, nil)},
		{"account in the resolver signed by another operator", forged.userCreds(t, nil)},
		// The JWT is good, but the seed cannot sign for its user.
		{"seed of another user", account.userCreds(t, otherUser)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runFails(t, natsConfig(t, srv.ClientURL(), "  creds_file: "+tc.creds.path+"\n"),
				[]string{"creds file authentication with " + tc.creds.path + " refused", "authorization violation"},
				tc.creds.seed)
		})
	}
}

// accountStreams lists the JetStream streams of the account whose user
// creds are.
func accountStreams(t *testing.T, url string, creds natsCreds) []string {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserCredentials(creds.path))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	names := js.StreamNames(t.Context())
	var streams []string
	for name := range names.Name() {
		streams = append(streams, name)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return streams
}
