package alerting

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctwatch/ctwatch/event"
)

// Defaults of [Grouping].
const (
	DefaultDigestNames  = 20
	DefaultGroupMaxHits = 5000
)

// Grouping turns a burst of hits of one rule into one digest message, so
// that a CA misissuing for hundreds of names, or a feed rule firing on a
// whole batch, reaches people as one alert. The zero value disables it.
type Grouping struct {
	// Window is how long the first hit of a rule waits for more hits of the
	// same rule; when it ends, one hit is delivered as itself and several
	// as one digest. 0 disables grouping: every hit is delivered at once.
	// Grouping delays the first alert by up to Window; choose it with that
	// in mind (seconds to a minute for chat).
	Window time.Duration
	// MaxNames is how many distinct DNS names a digest lists; 0 means
	// DefaultDigestNames.
	MaxNames int
	// MaxHits sends a group at once when it reaches this many hits; 0
	// means DefaultGroupMaxHits. It bounds memory and the messages held
	// unacknowledged on the server.
	MaxHits int
}

func (g Grouping) withDefaults() Grouping {
	if g.MaxNames == 0 {
		g.MaxNames = DefaultDigestNames
	}
	if g.MaxHits == 0 {
		g.MaxHits = DefaultGroupMaxHits
	}
	return g
}

// DigestArchive keeps the full hit list of digests, so that a digest can
// link to it instead of carrying hundreds of names into a chat message.
type DigestArchive interface {
	// Put stores d under d.ID and returns the URL at which people can read
	// it, or "" when there is none to give. It is idempotent: storing the
	// same digest again is harmless. It must be safe for concurrent use.
	Put(ctx context.Context, d *event.Digest) (string, error)
}

// DigestsBucket is the KV bucket in which [KVArchive] keeps digests.
const DigestsBucket = "ctwatch-digests"

// KVArchive is a [DigestArchive] in a JetStream KV bucket, where digests
// expire with the stream's max age. Its Get serves them to the web page a
// digest links to. Safe for concurrent use.
type KVArchive struct {
	kv jetstream.KeyValue
	// base is the external URL digests are linked under, without a
	// trailing slash; "" gives no links.
	base string
}

// OpenArchive creates or opens the digest bucket. base is the external
// URL of ctwatch's web server ("" when it has none): digests link to
// base + "/digests/" + ID. maxAge bounds how long digests are kept (0 =
// forever); replicas is as for the stream (0 means 1).
func OpenArchive(ctx context.Context, js jetstream.JetStream, base string, maxAge time.Duration, replicas int) (*KVArchive, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      DigestsBucket,
		Description: "ctwatch digests: the full hit list behind each digest link",
		History:     1,
		TTL:         maxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("alerting: open bucket %s: %w", DigestsBucket, err)
	}
	return &KVArchive{kv: kv, base: strings.TrimRight(base, "/")}, nil
}

// Put implements DigestArchive.
func (a *KVArchive) Put(ctx context.Context, d *event.Digest) (string, error) {
	if !validDigestID(d.ID) {
		return "", fmt.Errorf("alerting: digest id %q", d.ID)
	}
	data, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("alerting: encode digest %s: %w", d.ID, err)
	}
	if _, err := a.kv.Put(ctx, d.ID, data); err != nil {
		return "", fmt.Errorf("alerting: store digest %s: %w", d.ID, err)
	}
	if a.base == "" {
		return "", nil
	}
	return a.base + "/digests/" + d.ID, nil
}

// ErrNoDigest is returned by [KVArchive.Get] for an unknown or expired
// digest.
var ErrNoDigest = errors.New("alerting: no such digest")

// Get returns the digest stored under id, or an error wrapping ErrNoDigest.
func (a *KVArchive) Get(ctx context.Context, id string) (*event.Digest, error) {
	if !validDigestID(id) {
		return nil, ErrNoDigest
	}
	e, err := a.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoDigest, id)
	}
	if err != nil {
		return nil, fmt.Errorf("alerting: read digest %s: %w", id, err)
	}
	var d event.Digest
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return nil, fmt.Errorf("alerting: decode digest %s: %w", id, err)
	}
	return &d, nil
}

// digestPrefix starts every digest ID.
const digestPrefix = "digest-"

// validDigestID accepts what digestID produces, and so what may be a KV key
// or a URL path element.
func validDigestID(id string) bool {
	hexPart, ok := strings.CutPrefix(id, digestPrefix)
	if !ok || len(hexPart) != 32 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil && strings.ToLower(hexPart) == hexPart
}

// digestID derives a digest's ID from its hits' IDs, independent of their
// order, so that the same burst delivered again has the same ID.
func digestID(hits []event.Hit) string {
	ids := make([]string, len(hits))
	for i := range hits {
		ids[i] = hits[i].ID
	}
	slices.Sort(ids)
	sum := sha256.Sum256([]byte(strings.Join(ids, "\n")))
	return digestPrefix + hex.EncodeToString(sum[:16])
}

// newDigest builds the digest of hits (at least one, all of one rule)
// published between first and last.
func newDigest(hits []event.Hit, first, last time.Time, maxNames int) *event.Digest {
	d := &event.Digest{
		ID:    digestID(hits),
		Kind:  event.DigestKind,
		Rule:  hits[0].Rule,
		Count: len(hits),
		First: first.UTC(),
		Last:  last.UTC(),
		Names: []string{},
		Hits:  hits,
	}
	seen := map[string]bool{}
	for i := range hits {
		if hits[i].Severity.Rank() > d.Severity.Rank() {
			d.Severity = hits[i].Severity
		}
		for _, n := range hits[i].Cert.DNSNames {
			if seen[n] {
				continue
			}
			seen[n] = true
			if len(d.Names) < maxNames {
				d.Names = append(d.Names, n)
			} else {
				d.MoreNames++
			}
		}
	}
	if d.Severity == "" {
		d.Severity = hits[0].Severity
	}
	return d
}
