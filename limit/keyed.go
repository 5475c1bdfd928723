package limit

import (
	"context"
	"crypto/sha256"
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
)

// keyedShards is the number of shards of a Keyed set: an insert copies
// one shard, so more shards make inserts cheaper; 256 keeps a copy under
// 40 entries at the default MaxKeys.
const keyedShards = 256

// Keyed is a set of rate limiters, one per key (per client IP, API key,
// tenant), each with the limit of KeyedConfig.Rate and created on the
// key's first call.
//
// Lookup of a known key takes no lock and allocates nothing: keys are
// spread over shards, each an immutable map behind an atomic pointer,
// copied on insert (one shard, so inserts stay cheap). A key's whole
// state is one GCRA word, as in [Rate].
//
// Memory is bounded: the set tracks at most KeyedConfig.MaxKeys keys,
// each in at most [MaxKeyLen] bytes (a longer key is kept as its SHA-256
// hash; a key is copied, so it never holds on to a string it was cut
// from).
//
//   - When a new key arrives and IdleTimeout has passed since the last
//     sweep, keys not used since that sweep are forgotten; so an idle key
//     lives between one and two IdleTimeouts.
//   - When the set is full, a key that is back to a full burst (whose
//     limiter remembers nothing) is forgotten to make room, the least
//     recently used as approximated by the CLOCK algorithm.
//   - When no key can go, the new key shares one overflow limiter (with
//     the same rate) with every other key that does not fit: a flood of
//     new keys is limited as one client, and cannot push out the state of
//     the clients already tracked.
//
// A forgotten key starts afresh with a full burst. A Keyed is safe for
// concurrent use; the zero Keyed is not usable, use [NewKeyed]. Close it
// when discarding it.
type Keyed struct {
	g   gcra
	pol Policy
	cfg KeyedConfig
	// userKey is the KeyFunc the user set (nil if none): the client side
	// then keys by URL host instead of ClientIP.
	userKey func(*http.Request) string
	idle    int64
	clk     clock.Clock
	seed    maphash.Seed
	shards  [keyedShards]atomic.Pointer[map[string]*keyEntry]
	over    keyEntry // the overflow limiter
	counts  counts
	tel     *instruments

	// saturated is the Nanotime until which the set is known to be full
	// with nothing to forget: new keys go to the overflow limiter
	// without taking mu.
	saturated atomic.Int64

	mu        sync.Mutex // inserts and sweeps; the fields below
	n         int
	hand      int
	lastSweep int64
}

type keyEntry struct {
	tat  atomic.Int64
	used atomic.Bool // set on use, cleared by each sweep and by the CLOCK hand
}

// saturatedRecheck is how long a full set with nothing to forget sends new
// keys straight to the overflow limiter before it looks for room again.
const saturatedRecheck = time.Second

// NewKeyed returns an empty set. It panics with a [*bulwark.ConfigError]
// if cfg is not valid (see [KeyedConfig.Validate]).
func NewKeyed(cfg KeyedConfig) *Keyed {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	k := newKeyed(cfg, clock.Real)
	k.tel = register(cfg.Rate.MeterProvider, "keyed", cfg.Rate.name(), k.counts, nil, nil)
	return k
}

func newKeyed(cfg KeyedConfig, clk clock.Clock) *Keyed {
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	userKey := cfg.KeyFunc
	if cfg.KeyFunc == nil {
		cfg.KeyFunc = ClientIP
	}
	g := cfg.Rate.gcra()
	k := &Keyed{g: g, pol: g.policy(cfg.Rate.name()), cfg: cfg, userKey: userKey, clk: clk, seed: maphash.MakeSeed(), counts: newCounts()}
	k.idle = int64(cfg.IdleTimeout)
	if k.idle == 0 {
		k.idle = max(int64(DefaultIdleTimeout), g.tau)
	}
	k.over.tat.Store(emptyTAT)
	k.saturated.Store(emptyTAT) // not saturated, whatever the clock reads (a synctest bubble's is before the process started)
	k.lastSweep = clk.Nanotime()
	for i := range k.shards {
		m := map[string]*keyEntry{}
		k.shards[i].Store(&m)
	}
	return k
}

func (k *Keyed) shard(key string) *atomic.Pointer[map[string]*keyEntry] {
	return &k.shards[maphash.String(k.seed, key)%keyedShards]
}

// entry returns key's state, creating it if needed.
func (k *Keyed) entry(key string, now int64) *keyEntry {
	if len(key) > MaxKeyLen {
		key = hashKey(key)
	}
	if e, ok := (*k.shard(key).Load())[key]; ok {
		if !e.used.Load() {
			e.used.Store(true)
		}
		return e
	}
	return k.insert(key, now)
}

// hashKey is the key a long key is kept under: its SHA-256 hash, after a
// byte (0xff) that no UTF-8 text starts with.
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "\xff" + string(sum[:])
}

func (k *Keyed) insert(key string, now int64) *keyEntry {
	if now < k.saturated.Load() {
		return &k.over
	}
	sh := k.shard(key)
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := (*sh.Load())[key]; ok { // created while we waited
		e.used.Store(true)
		return e
	}
	if now-k.lastSweep >= k.idle {
		k.sweepLocked(now)
	}
	if k.n >= k.cfg.MaxKeys && !k.evictOneLocked(now) {
		k.saturated.Store(now + int64(saturatedRecheck))
		return &k.over
	}
	e := &keyEntry{}
	e.tat.Store(emptyTAT)
	e.used.Store(true)
	old := *sh.Load()
	m := make(map[string]*keyEntry, len(old)+1)
	for k2, v := range old {
		m[k2] = v
	}
	m[strings.Clone(key)] = e // a copy: key may be cut from a larger string
	sh.Store(&m)
	k.n++
	return e
}

// sweepLocked forgets the keys unused since the last sweep and clears the
// used marks of the rest.
func (k *Keyed) sweepLocked(now int64) {
	for i := range k.shards {
		old := *k.shards[i].Load()
		m := make(map[string]*keyEntry, len(old))
		for key, e := range old {
			if e.used.Load() {
				e.used.Store(false)
				m[key] = e
			}
		}
		if len(m) != len(old) {
			k.shards[i].Store(&m)
			k.n -= len(old) - len(m)
		}
	}
	k.lastSweep = now
}

// evictOneLocked forgets one key that owes nothing (its TAT is past), by
// the CLOCK algorithm: the hand moves over the shards clearing used marks
// and takes the first such key it finds unmarked. It reports whether it
// found one.
func (k *Keyed) evictOneLocked(now int64) bool {
	for range 2 * keyedShards { // two rounds: the first may only clear marks
		i := k.hand
		k.hand = (k.hand + 1) % keyedShards
		old := *k.shards[i].Load()
		for key, e := range old {
			if e.tat.Load() > now {
				continue // still limited: forgetting it would let it past
			}
			if e.used.Load() {
				e.used.Store(false)
				continue
			}
			m := make(map[string]*keyEntry, len(old))
			for k2, e2 := range old {
				if k2 != key {
					m[k2] = e2
				}
			}
			k.shards[i].Store(&m)
			k.n--
			return true
		}
	}
	return false
}

// Allow reports whether one call for key may happen now, and if so counts
// it. It never blocks.
func (k *Keyed) Allow(key string) bool {
	now := k.clk.Nanotime()
	ok, _ := k.g.take(&k.entry(key, now).tat, now)
	k.counts.record(ok)
	return ok
}

// Decide is Allow with the details a client is told; see [Decision]. ctx
// is not used by the local set (it is part of the signature so that a
// Keyed and a distributed limiter are interchangeable, see
// [KeyedLimiter]); it may be nil.
func (k *Keyed) Decide(ctx context.Context, key string) Decision {
	now := k.clk.Nanotime()
	d := k.g.decision(&k.entry(key, now).tat, now, k.pol)
	k.counts.record(d.Allowed)
	return d
}

// Wait blocks until one call for key may happen, as [Rate.Wait] does. A
// nil ctx panics.
func (k *Keyed) Wait(ctx context.Context, key string) error {
	if ctx == nil {
		panic("limit: Keyed.Wait called with a nil ctx")
	}
	now := k.clk.Nanotime()
	return waitGCRA(ctx, k.g, &k.entry(key, now).tat, now, k.clk, k.counts)
}

// Len returns the number of keys the set tracks (the overflow limiter not
// included).
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n
}

// Policy returns each key's limit in the terms of the RateLimit-Policy
// header field.
func (k *Keyed) Policy() Policy { return k.pol }

// Close unregisters the set's metrics. The set keeps working. It is safe
// to call more than once; it always returns nil.
func (k *Keyed) Close() error {
	if k.tel != nil {
		k.tel.close()
	}
	return nil
}

// KeyedLimiter decides calls per key: [*Keyed] and the distributed
// limiter of limit/redisstore satisfy it, so middleware built with
// [KeyedHandler] and [KeyedRoundTripper] works with either.
type KeyedLimiter interface {
	// Decide decides one call for key now, never blocking longer than a
	// store's round trip; see [Decision].
	Decide(ctx context.Context, key string) Decision
}

var _ KeyedLimiter = (*Keyed)(nil)
