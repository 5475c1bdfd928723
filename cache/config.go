package cache

import (
	"context"
	"math"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/validate"
)

// Defaults of [Config]'s fields, named after the field they fill.
const (
	// DefaultMaxEntries is the in-process tier's capacity: otter's own
	// examples size caches in the tens of thousands; 10,000 entries of a
	// few hundred bytes stay around a few megabytes.
	DefaultMaxEntries = 10_000
	// DefaultTTL is how long a loaded value is fresh.
	DefaultTTL = time.Minute
	// DefaultJitter is the fraction of TTL taken off at random from each
	// entry's lifetime, so that values loaded together do not expire
	// together.
	DefaultJitter = 0.1
	// DefaultNegativeTTL is how long a not-found answer ([ErrNotFound]
	// from the loader) is remembered.
	DefaultNegativeTTL = 10 * time.Second
	// DefaultLoadTimeout bounds one origin call, which runs detached from
	// the callers' contexts (see [Cache.Get]).
	DefaultLoadTimeout = 10 * time.Second
	// DefaultLockPoll is how often an instance that lost the cross-instance
	// lock looks for the winner's value in the second tier.
	DefaultLockPoll = 20 * time.Millisecond
)

// Bounds of [Config]'s fields.
const (
	// MaxMaxEntries bounds MaxEntries.
	MaxMaxEntries = 1 << 30
	// MaxTTL bounds TTL, NegativeTTL, StaleWhileRevalidate, StaleIfError
	// and LockTTL.
	MaxTTL = 365 * 24 * time.Hour
	// MaxLoadTimeout bounds LoadTimeout.
	MaxLoadTimeout = time.Hour
	// MaxEarlyRefresh bounds EarlyRefresh (XFetch's beta).
	MaxEarlyRefresh = 100.0
)

// Loader loads the value of key from the origin. It returns [ErrNotFound]
// (or an error that matches it) when the origin has no value for key; that
// answer is cached for Config.NegativeTTL. Any other error is a load
// error: it is not cached.
type Loader[K comparable, V any] func(ctx context.Context, key K) (V, error)

// BulkLoader loads the values of keys from the origin in one call. Keys it
// leaves out of the map are not found (and cached as such, as for
// [ErrNotFound]); an error fails every key of the call.
type BulkLoader[K comparable, V any] func(ctx context.Context, keys []K) (map[K]V, error)

// Config configures a [Cache]. The zero value of every field but Load is
// useful; [New] copies it.
type Config[K comparable, V any] struct {
	// Name identifies the cache in telemetry (the bulwark.name attribute).
	Name string

	// Load loads a missing key from the origin. Required.
	Load Loader[K, V]
	// LoadMany loads several missing keys in one call, for [Cache.GetMany].
	// If nil, GetMany calls Load once per missing key, concurrently.
	LoadMany BulkLoader[K, V]
	// LoadTimeout bounds each origin call (Load or LoadMany). The call runs
	// detached from the contexts of the callers waiting for it, so that a
	// caller who gives up does not cancel it for the others; this bound and
	// [Cache.Close] are what stop it. Default [DefaultLoadTimeout], at most
	// [MaxLoadTimeout].
	LoadTimeout time.Duration

	// MaxEntries is the in-process tier's capacity in entries (otter
	// evicts beyond it). Default [DefaultMaxEntries], at most
	// [MaxMaxEntries]; negative: no in-process tier.
	MaxEntries int

	// TTL is how long a loaded or Set value is fresh. Default [DefaultTTL],
	// at most [MaxTTL].
	TTL time.Duration
	// Jitter is the largest fraction of TTL (and NegativeTTL) taken off at
	// random from each entry's lifetime. Default [DefaultJitter]; in
	// [0, 1]; negative (but not -Inf): no jitter.
	Jitter float64
	// NegativeTTL is how long a not-found answer is cached. Default
	// [DefaultNegativeTTL], at most [MaxTTL]; negative: not-found answers
	// are not cached. Either way, a not-found answer replaces or drops the
	// key's older value in both tiers, so it is never served stale.
	NegativeTTL time.Duration
	// StaleWhileRevalidate is how long past its TTL a value is still
	// served, at once, while one background refresh runs (RFC 5861's
	// stale-while-revalidate). Default 0: off. At most [MaxTTL].
	StaleWhileRevalidate time.Duration
	// StaleIfError is how long past its TTL a value is still served when
	// the origin fails to load a fresh one (RFC 5861's stale-if-error);
	// each such serve is counted (bulwark.cache.stale_serves with
	// bulwark.cache.reason=error). Default 0: off. At most [MaxTTL].
	StaleIfError time.Duration
	// EarlyRefresh turns on probabilistic early refresh (XFetch, Vattani,
	// Chierichetti and Lowenstein, VLDB 2015) with this beta: a hit on a
	// fresh entry starts one background refresh with a probability that
	// grows as expiry nears, scaled by how long the value took to load, so
	// that a hot key is refreshed before it expires and never stampedes.
	// 1 is the paper's recommended value; above 1 refreshes earlier.
	// Default 0: off. In [0, [MaxEarlyRefresh]].
	EarlyRefresh float64

	// Store is the second tier, shared by every instance (usually
	// cache/redisstore). Default nil: in-process tier only. If Store also
	// implements [Broadcaster], Set and Delete reach every instance's
	// in-process tier; if it implements [Locker] and LockTTL is set,
	// instances coordinate their origin calls.
	Store Store
	// Codec encodes values for Store. Default [JSON].
	Codec Codec[V]
	// KeyString turns a key into the Store's key (before the Store's own
	// prefix). Default: the key itself when K is a string, else
	// fmt.Sprint(key).
	KeyString func(K) string
	// FailOnStoreError makes Get and GetMany return a Store's read error
	// (matching [ErrStore]) instead of going on to the origin. Default
	// false: a failing Store is counted (bulwark.cache.store.errors) and
	// skipped, and the in-process tier and the origin keep serving. Set
	// and Delete always return a Store's error (see them).
	FailOnStoreError bool
	// LockTTL turns on the cross-instance lock: before an origin call, an
	// instance takes a short lock in the Store (SET NX PX with this expiry;
	// skipped when the Store just failed to read);
	// an instance that finds it taken polls the Store every LockPoll for
	// the winner's value, for up to LockTTL, then loads by itself (the
	// wait and the load together stay within LoadTimeout). Needs a Store
	// that implements [Locker]. Default 0: off. At most [MaxTTL].
	LockTTL time.Duration
	// LockPoll is the polling period of a lock loser. Default
	// [DefaultLockPoll], at most LockTTL.
	LockPoll time.Duration

	// OnInvalidate, if set, is called after the in-process tier dropped
	// keys on another instance's Set or Delete, or dropped everything
	// after a break in the invalidation subscription (ev.Gap). ctx is
	// context.Background(). It runs on the subscription's goroutine, one
	// call at a time, and must be quick; it may call the Cache, except
	// Close (which waits for that goroutine).
	OnInvalidate func(ctx context.Context, ev InvalidateEvent)

	// MeterProvider provides the instruments (nil: the global provider).
	MeterProvider metric.MeterProvider
}

// Validate reports the first bad field as a [*bulwark.ConfigError], or
// nil.
func (c *Config[K, V]) Validate() error {
	v := validate.New(pkg)
	v.Check(c.Load != nil, "Load", "nil", "a non-nil Loader")
	v.Duration("LoadTimeout", c.LoadTimeout, MaxLoadTimeout)
	if c.MaxEntries >= 0 {
		v.Size("MaxEntries", c.MaxEntries, MaxMaxEntries)
	}
	v.Duration("TTL", c.TTL, MaxTTL)
	if !(c.Jitter < 0) || math.IsInf(c.Jitter, -1) {
		v.Check(c.Jitter >= 0 && c.Jitter <= 1, "Jitter", c.Jitter, "0 (default), a value in (0, 1], or a finite negative value (off)")
	}
	v.DurationOrOff("NegativeTTL", c.NegativeTTL, MaxTTL)
	v.Duration("StaleWhileRevalidate", c.StaleWhileRevalidate, MaxTTL)
	v.Duration("StaleIfError", c.StaleIfError, MaxTTL)
	v.Check(!math.IsNaN(c.EarlyRefresh) && c.EarlyRefresh >= 0 && c.EarlyRefresh <= MaxEarlyRefresh,
		"EarlyRefresh", c.EarlyRefresh, "0 (off) or a value in (0, 100]")
	v.Duration("LockTTL", c.LockTTL, MaxTTL)
	v.Duration("LockPoll", c.LockPoll, MaxTTL)
	if c.LockTTL > 0 && c.LockPoll > c.LockTTL {
		v.Check(false, "LockPoll", c.LockPoll, "at most LockTTL")
	}
	if c.LockTTL > 0 {
		_, ok := c.Store.(Locker)
		v.Check(ok, "LockTTL", c.LockTTL, "0 unless Store implements cache.Locker")
	}
	return v.Err()
}

// InvalidateEvent is what Config.OnInvalidate receives.
type InvalidateEvent struct {
	// Keys are the Store keys another instance changed (nil for a gap).
	Keys []string
	// Gap reports that the invalidation subscription broke and was
	// restored: invalidations may have been missed, so the whole
	// in-process tier was dropped.
	Gap bool
}
