// Package lease shares work items (ctwatch's followed logs) between the
// processes connected to one NATS server or cluster, so that each item is
// worked on by at most one process at a time and the items spread evenly.
//
// A lease is an entry of the JetStream KV bucket [LeasesBucket], keyed by
// the item, naming its owner and when the lease expires. Every change is a
// compare-and-swap on the entry's revision, so two processes can never
// both believe they took the same lease. Owners renew their leases every
// third of the TTL; a process that dies stops renewing and its leases are
// taken by others once they expire. Processes announce themselves in
// [ProcessesBucket], whose entries expire after the TTL, so that each can
// count the live processes and hold no more than its fair share.
//
// Expiry is compared with each process's wall clock: the processes'
// clocks must agree to well within the TTL (NTP does). A lease is only
// the first line of defence; what must never be corrupted (checkpoints)
// is fenced separately by its own revision.
package lease

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket names.
const (
	// LeasesBucket holds one lease per item: History 1, file storage.
	LeasesBucket = "ctwatch-leases"
	// ProcessesBucket holds one heartbeat per live process; entries
	// expire after the lease TTL.
	ProcessesBucket = "ctwatch-processes"
)

// DefaultTTL is the lease TTL when Config.TTL is 0.
const DefaultTTL = 15 * time.Second

// Holder starts and stops the work on an item; the Manager calls it from
// its own goroutine, one call at a time.
type Holder interface {
	// Acquired is called once the lease on key is taken, at epoch (one
	// more than the previous owner's). The holder prepares (fences the
	// item's state) and starts working; an error makes the Manager give
	// the lease back at once.
	Acquired(ctx context.Context, key string, epoch uint64) error
	// Lost is called when the lease on key is no longer held, or is
	// about to be given back: the holder must have stopped working on
	// the item when it returns. Lost for an item not being worked on
	// must be a no-op.
	Lost(key string)
}

// Config tunes a Manager.
type Config struct {
	// TTL is how long a lease lasts without renewal; 0 means DefaultTTL.
	// Leases are renewed every TTL/3. All processes should agree on it.
	TTL time.Duration
	// Replicas is the number of copies the buckets keep on a cluster; 0
	// means 1.
	Replicas int
	// Owner names this process in leases; "" makes one from the host
	// name, the process ID and a random suffix (see NewOwner).
	Owner string
	// Exclusive says no other process can reach the server (an embedded
	// server that listens on no port): leases left by a previous run of
	// this process, which crashed, are taken at once instead of after
	// they expire, so that a restart is not delayed by a TTL.
	Exclusive bool
	// Logger receives lease changes; nil means slog.Default().
	Logger *slog.Logger
}

// value is a lease as stored in the bucket.
type value struct {
	// Owner is the holding process; "" when the lease was given back.
	Owner string `json:"owner"`
	// Expires is when the lease ends unless renewed.
	Expires time.Time `json:"expires"`
	// Epoch grows by one at every change of owner.
	Epoch uint64 `json:"epoch"`
}

// held is a lease this process holds.
type held struct {
	rev     uint64
	epoch   uint64
	expires time.Time
}

// Manager holds leases for this process: it renews them, takes free ones
// up to its fair share and gives back the excess. Create it with Open,
// tell it the items with SetKeys, then call Run. Its methods are safe for
// concurrent use.
type Manager struct {
	leases jetstream.KeyValue
	procs  jetstream.KeyValue
	holder Holder
	owner  string
	ttl    time.Duration
	excl   bool
	logger *slog.Logger
	// poke asks Run for a round now (the keys changed).
	poke chan struct{}
	// rounds serialises rounds (Run's, and Round's called directly).
	rounds sync.Mutex
	// shared is set once a round has completed.
	shared atomic.Bool

	mu      sync.Mutex
	keys    []string
	held    map[string]held
	dropped map[string]bool
	live    int
}

// Open creates (or updates) the two buckets and returns a Manager holding
// nothing. It calls holder only from Round, Run and Release.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config, holder Holder) (*Manager, error) {
	ttl := cmp.Or(cfg.TTL, DefaultTTL)
	replicas := cmp.Or(cfg.Replicas, 1)
	leases, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeasesBucket,
		Description: "ctwatch log leases: which process follows which log",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("lease: open bucket %s: %w", LeasesBucket, err)
	}
	procs, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      ProcessesBucket,
		Description: "ctwatch processes alive (heartbeats expire after the lease TTL)",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("lease: open bucket %s: %w", ProcessesBucket, err)
	}
	owner := cfg.Owner
	if owner == "" {
		owner = NewOwner()
	}
	return &Manager{
		leases:  leases,
		procs:   procs,
		holder:  holder,
		owner:   owner,
		ttl:     ttl,
		excl:    cfg.Exclusive,
		logger:  cmp.Or(cfg.Logger, slog.Default()).With("owner", owner),
		poke:    make(chan struct{}, 1),
		held:    map[string]held{},
		dropped: map[string]bool{},
		live:    1,
	}, nil
}

// NewOwner returns a name for this process that no other process, here or
// on another host, uses: host name, process ID and a random suffix, in the
// characters KV keys allow.
func NewOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	host = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, host)
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Owner returns the name this process holds leases under.
func (m *Manager) Owner() string { return m.owner }

// SetKeys sets the items to share (the followed logs' keys) and asks Run
// for a round soon: leases on items no longer listed are given back, new
// items may be taken.
func (m *Manager) SetKeys(keys []string) {
	m.mu.Lock()
	m.keys = slices.Clone(keys)
	m.mu.Unlock()
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

// Drop tells the Manager that the holder stopped working on key by itself
// (its state was fenced by another owner): the next round gives the lease
// back if it is still ours, without calling Lost.
func (m *Manager) Drop(key string) {
	m.mu.Lock()
	m.dropped[key] = true
	m.mu.Unlock()
}

// Held returns the keys whose leases this process holds, sorted.
func (m *Manager) Held() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.held))
	for k := range m.held {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Live returns how many processes the last round counted, this one
// included.
func (m *Manager) Live() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live
}

// Run does a round every TTL/3, and soon after SetKeys, until ctx ends.
// It does not give the leases back when it returns: call Release once the
// holder has stopped (or don't, to let them expire, as a crash would).
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.poke:
		}
		m.Round(ctx)
	}
}

// Round announces this process, renews its leases, gives back those over
// its fair share or no longer wanted and takes free ones up to it. Errors
// talking to NATS are logged: the next round tries again, and a lease that
// could not be renewed before it expired counts as lost.
func (m *Manager) Round(ctx context.Context) {
	m.rounds.Lock()
	defer m.rounds.Unlock()
	if ctx.Err() != nil {
		return
	}
	m.heartbeat(ctx)
	m.mu.Lock()
	keys := slices.Clone(m.keys)
	live := m.live
	dropped := m.dropped
	m.dropped = map[string]bool{}
	m.mu.Unlock()
	owners, err := m.liveOwners(ctx)
	if err != nil {
		m.logger.Warn("cannot list live processes; sharing as if none changed", "err", err, "live", live)
	} else {
		live = len(owners)
	}
	share := len(keys)
	if !m.excl {
		share = fairShare(len(keys), live, slices.Index(owners, m.owner))
	}
	order := m.order(keys)
	wanted := make(map[string]bool, len(keys))
	for _, k := range keys {
		wanted[k] = true
	}

	// Renew or let go what we hold, in our order so that the excess given
	// back is always the end of it.
	var kept []string
	for _, k := range m.heldInOrder(order) {
		switch {
		case dropped[k]:
			m.release(ctx, k, false)
		case !wanted[k]:
			m.release(ctx, k, true)
		case m.renew(ctx, k):
			kept = append(kept, k)
		}
	}
	for _, k := range kept[min(share, len(kept)):] {
		m.logger.Info("giving a lease back to balance the logs", "key", k, "share", share, "live", live)
		m.release(ctx, k, true)
	}
	for _, k := range order {
		if m.count() >= share || ctx.Err() != nil {
			break
		}
		if _, ok := m.get(k); ok {
			continue
		}
		m.acquire(ctx, k)
	}
	m.mu.Lock()
	m.live = live
	m.mu.Unlock()
	m.shared.Store(true)
}

// Shared reports whether a round has completed: before it, which items
// this process will hold is not known yet.
func (m *Manager) Shared() bool { return m.shared.Load() }

// heartbeat announces this process as alive for the next TTL.
func (m *Manager) heartbeat(ctx context.Context) {
	b, _ := json.Marshal(struct {
		At time.Time `json:"at"`
	}{time.Now().UTC()})
	if _, err := m.procs.Put(ctx, m.owner, b); err != nil {
		m.logger.Warn("cannot announce this process", "err", err)
	}
}

// liveOwners lists the processes that announced themselves within the
// TTL, this one always included, sorted: every process sees the same list
// and so computes the same split (fairShare).
func (m *Manager) liveOwners(ctx context.Context) ([]string, error) {
	owners := []string{m.owner}
	lister, err := m.procs.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return owners, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	for k := range lister.Keys() {
		if k != m.owner {
			owners = append(owners, k)
		}
	}
	slices.Sort(owners)
	return owners, nil
}

// fairShare is how many of n items the process at position idx of the
// sorted live processes should hold: n/live each, one more for the first
// n%live of them. The shares add up to n exactly, so the items spread as
// evenly as they can (6 over 4 processes: 2/2/1/1, never 2/2/2/0), and
// since every process sorts the same list, no two claim the same extra
// item. A process not in the list (idx -1, its heartbeat not yet visible)
// takes the larger share until it is.
func fairShare(n, live, idx int) int {
	if live <= 0 {
		return n
	}
	if idx < 0 {
		return (n + live - 1) / live
	}
	share := n / live
	if idx < n%live {
		share++
	}
	return share
}

// order is keys in this process's preference: deterministic for one
// owner, different between owners, so that processes starting together
// reach for different leases first.
func (m *Manager) order(keys []string) []string {
	type ranked struct {
		key  string
		rank [sha256.Size]byte
	}
	rs := make([]ranked, len(keys))
	for i, k := range keys {
		rs[i] = ranked{k, sha256.Sum256([]byte(m.owner + "\x00" + k))}
	}
	slices.SortFunc(rs, func(a, b ranked) int { return strings.Compare(string(a.rank[:]), string(b.rank[:])) })
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.key
	}
	return out
}

// heldInOrder is the held keys, those in order first in its order, then
// the others (no longer wanted) sorted.
func (m *Manager) heldInOrder(order []string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.held))
	inOrder := map[string]bool{}
	for _, k := range order {
		if _, ok := m.held[k]; ok {
			out = append(out, k)
			inOrder[k] = true
		}
	}
	var rest []string
	for k := range m.held {
		if !inOrder[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

func (m *Manager) get(key string) (held, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.held[key]
	return h, ok
}

func (m *Manager) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.held)
}

func (m *Manager) set(key string, h held) {
	m.mu.Lock()
	m.held[key] = h
	m.mu.Unlock()
}

func (m *Manager) forget(key string) {
	m.mu.Lock()
	delete(m.held, key)
	m.mu.Unlock()
}

// renew extends a held lease; it reports whether the lease is still held.
// A lease whose revision changed was taken: it is lost at once. One that
// could not be renewed (NATS unreachable) is kept until it expires.
func (m *Manager) renew(ctx context.Context, key string) bool {
	h, _ := m.get(key)
	expires := time.Now().Add(m.ttl)
	rev, err := m.leases.Update(ctx, key, encode(value{Owner: m.owner, Expires: expires, Epoch: h.epoch}), h.rev)
	if err == nil {
		m.set(key, held{rev: rev, epoch: h.epoch, expires: expires})
		return true
	}
	taken := errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound)
	if !taken && time.Now().Before(h.expires) {
		m.logger.Warn("cannot renew a lease; retrying until it expires", "key", key, "expires", h.expires, "err", err)
		return true
	}
	m.logger.Warn("lease lost; stopping its work", "key", key, "err", err)
	m.holder.Lost(key)
	m.forget(key)
	return false
}

// release stops the work on key (when stop) and gives the lease back: it
// is marked expired, keeping its epoch, so that another process takes it
// at once. Giving back is compare-and-swap: a lease taken meanwhile is
// left alone.
func (m *Manager) release(ctx context.Context, key string, stop bool) {
	if stop {
		m.holder.Lost(key)
	}
	h, ok := m.get(key)
	if !ok {
		return
	}
	m.forget(key)
	if _, err := m.leases.Update(ctx, key, encode(value{Epoch: h.epoch}), h.rev); err != nil {
		m.logger.Debug("lease not given back; it expires by itself", "key", key, "err", err)
	}
}

// acquire takes the lease on key if it is free, given back or expired,
// then hands it to the holder.
func (m *Manager) acquire(ctx context.Context, key string) {
	var rev, epoch uint64
	now := time.Now()
	expires := now.Add(m.ttl)
	e, err := m.leases.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		epoch = 1
		rev, err = m.leases.Create(ctx, key, encode(value{Owner: m.owner, Expires: expires, Epoch: epoch}))
	case err != nil:
		m.logger.Warn("cannot read a lease", "key", key, "err", err)
		return
	default:
		var old value
		if jerr := json.Unmarshal(e.Value(), &old); jerr != nil {
			m.logger.Warn("unreadable lease; taking it over", "key", key, "err", jerr)
		} else if old.Owner != "" && old.Owner != m.owner && old.Expires.After(now) && !m.excl {
			return // held by a live peer
		}
		epoch = old.Epoch + 1
		rev, err = m.leases.Update(ctx, key, encode(value{Owner: m.owner, Expires: expires, Epoch: epoch}), e.Revision())
	}
	if err != nil {
		// Usually a peer was faster; nothing to do.
		m.logger.Debug("lease not taken", "key", key, "err", err)
		return
	}
	m.set(key, held{rev: rev, epoch: epoch, expires: expires})
	if err := m.holder.Acquired(ctx, key, epoch); err != nil {
		m.logger.Warn("cannot start work on a leased log; giving the lease back", "key", key, "err", err)
		m.release(ctx, key, false)
		return
	}
	m.logger.Debug("lease taken", "key", key, "epoch", epoch)
}

// Release gives back every lease held and withdraws this process's
// heartbeat, so that peers take its items at once rather than after the
// TTL. Call it after Run has returned and the holder has stopped all work
// (Lost is not called). Failures are logged: the leases then expire.
func (m *Manager) Release(ctx context.Context) {
	m.rounds.Lock()
	defer m.rounds.Unlock()
	for _, k := range m.Held() {
		m.release(ctx, k, false)
	}
	if err := m.procs.Delete(ctx, m.owner); err != nil {
		m.logger.Debug("cannot withdraw heartbeat; it expires by itself", "err", err)
	}
}

func encode(v value) []byte {
	b, _ := json.Marshal(v) // a struct of plain fields always encodes
	return b
}
