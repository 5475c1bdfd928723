package breaker

import (
	"context"
	"hash/maphash"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
)

// SetConfig configures a [Set].
type SetConfig struct {
	// Config configures every breaker of the set. Config.Name names the
	// set (the bulwark.name attribute; each member adds bulwark.key), and
	// OnStateChange receives the member's key as its name.
	Config Config
	// MaxKeys bounds the number of breakers the set holds, so that a flood
	// of distinct keys cannot exhaust memory. Default 10000.
	MaxKeys int
	// IdleTimeout is how long a breaker may go unused before the set may
	// evict it. Eviction is lazy: when a new key is added and IdleTimeout
	// has passed since the last sweep, breakers unused since that sweep
	// are dropped; so an idle breaker lives between one and two
	// IdleTimeouts. Default 10 minutes.
	IdleTimeout time.Duration
	// KeyFunc picks the key of an HTTP request for [Set.RoundTripper].
	// Default: the request's URL host (host:port), one breaker per host.
	KeyFunc func(*http.Request) string
}

// Defaults, see SetConfig.
const (
	DefaultMaxKeys     = 10000
	DefaultIdleTimeout = 10 * time.Minute
)

const setShards = 64

// saturatedRecheck is how long a full set with nothing to evict sends new
// keys straight to the overflow breaker before it searches for a victim
// again.
const saturatedRecheck = time.Second

// Set holds one breaker per key (per host, per gRPC method, per tenant),
// each created from SetConfig.Config on first use. Lookup of an existing
// key takes no lock and does not allocate: keys are spread over shards,
// each an immutable map behind an atomic pointer, copied on insert (a copy
// of one shard, so inserts stay cheap). The set holds at most MaxKeys
// breakers:
//
//   - when a new key arrives and IdleTimeout has passed since the last
//     sweep, breakers not used since that sweep are evicted;
//   - when the set is full, one closed breaker is evicted, the least
//     recently used as approximated by the CLOCK algorithm (a breaker in
//     constant use is never chosen), at O(1) amortized cost;
//   - open and half-open breakers carry state worth keeping and are not
//     evicted for room: if no closed breaker can go, the new key shares
//     one overflow breaker with every other key that does not fit. The set
//     then remembers for a second that it is saturated: new keys go to the
//     overflow breaker without a lock or a search for a victim, so a flood
//     of new keys during a wide outage costs no more than a lookup.
//
// An evicted breaker is closed (its metrics unregistered); callers still
// holding it may finish their calls. A Set is safe for concurrent use;
// call Close when discarding it. The zero Set is not usable; use [NewSet].
type Set struct {
	cfg    SetConfig
	clk    clock.Clock
	seed   maphash.Seed
	shards [setShards]atomic.Pointer[map[string]*setEntry]

	// saturated is the Nanotime until which the set is known to be full
	// with nothing to evict; overflowB is s.overflow, readable without mu.
	saturated atomic.Int64
	overflowB atomic.Pointer[Breaker]

	mu        sync.Mutex // inserts, sweeps; fields below
	n         int
	hand      int // evictOneLocked's position
	lastSweep int64
	overflow  *Breaker
	closed    bool
}

type setEntry struct {
	b    *Breaker
	used atomic.Bool // set on use, cleared by each sweep
}

// NewSet returns an empty set.
func NewSet(cfg SetConfig) *Set {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.KeyFunc == nil {
		cfg.KeyFunc = func(r *http.Request) string { return r.URL.Host }
	}
	s := &Set{cfg: cfg, clk: clock.Or(cfg.Config.Clock), seed: maphash.MakeSeed()}
	s.lastSweep = s.clk.Nanotime()
	for i := range s.shards {
		m := map[string]*setEntry{}
		s.shards[i].Store(&m)
	}
	return s
}

func (s *Set) shard(key string) *atomic.Pointer[map[string]*setEntry] {
	return &s.shards[maphash.String(s.seed, key)%setShards]
}

// Get returns the breaker for key, creating it if needed.
func (s *Set) Get(key string) *Breaker {
	if e, ok := (*s.shard(key).Load())[key]; ok {
		if !e.used.Load() {
			e.used.Store(true)
		}
		return e.b
	}
	return s.insert(key)
}

func (s *Set) insert(key string) *Breaker {
	if s.clk.Nanotime() < s.saturated.Load() {
		if o := s.overflowB.Load(); o != nil {
			return o
		}
	}
	sh := s.shard(key)
	s.mu.Lock()
	if e, ok := (*sh.Load())[key]; ok { // created while we waited
		s.mu.Unlock()
		e.used.Store(true)
		return e.b
	}
	var evicted []*Breaker
	now := s.clk.Nanotime()
	if now-s.lastSweep >= int64(s.cfg.IdleTimeout) {
		evicted = s.sweepLocked(now)
	}
	if s.n >= s.cfg.MaxKeys {
		if v := s.evictOneLocked(); v != nil {
			evicted = append(evicted, v)
		}
	}
	var b *Breaker
	if s.n >= s.cfg.MaxKeys || s.closed {
		if s.overflow == nil {
			s.overflow = newBreaker(s.cfg.Config, "", true)
			if s.closed {
				s.overflow.Close()
			}
			s.overflowB.Store(s.overflow)
		}
		if !s.closed {
			s.saturated.Store(now + int64(saturatedRecheck))
		}
		b = s.overflow
	} else {
		b = newBreaker(s.cfg.Config, key, true)
		e := &setEntry{b: b}
		e.used.Store(true)
		old := *sh.Load()
		m := make(map[string]*setEntry, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		m[key] = e
		sh.Store(&m)
		s.n++
	}
	s.mu.Unlock()
	for _, e := range evicted {
		e.Close()
	}
	return b
}

// sweepLocked evicts the entries unused since the last sweep and clears
// the used marks of the rest.
func (s *Set) sweepLocked(now int64) []*Breaker {
	var evicted []*Breaker
	for i := range s.shards {
		old := *s.shards[i].Load()
		m := make(map[string]*setEntry, len(old))
		for k, e := range old {
			if e.used.Load() {
				e.used.Store(false)
				m[k] = e
			} else {
				evicted = append(evicted, e.b)
			}
		}
		if len(m) != len(old) {
			s.shards[i].Store(&m)
			s.n -= len(old) - len(m)
		}
	}
	s.lastSweep = now
	return evicted
}

// evictOneLocked evicts one closed breaker, choosing by the CLOCK
// algorithm (an approximation of least-recently-used): the hand moves over
// the shards, clearing used marks, and takes the first closed breaker it
// finds unmarked. A breaker in constant use keeps getting its mark back and
// is never taken. Open and half-open breakers are never taken. It returns
// nil if there is no candidate.
func (s *Set) evictOneLocked() *Breaker {
	for range 2 * setShards { // two rounds: the first may only clear marks
		i := s.hand
		s.hand = (s.hand + 1) % setShards
		old := *s.shards[i].Load()
		for k, e := range old {
			// Read the state word, not State(): that could change state
			// and run OnStateChange under s.mu.
			if State(e.b.word.Load()) != Closed {
				continue
			}
			if e.used.Load() {
				e.used.Store(false)
				continue
			}
			m := make(map[string]*setEntry, len(old))
			for k2, e2 := range old {
				if k2 != k {
					m[k2] = e2
				}
			}
			s.shards[i].Store(&m)
			s.n--
			return e.b
		}
	}
	return nil
}

// Len returns the number of breakers the set holds (the overflow breaker
// not included).
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Do runs fn through the breaker for key; see [Breaker.Do].
func (s *Set) Do(ctx context.Context, key string, fn func(context.Context) error) error {
	return s.Get(key).Do(ctx, fn)
}

// RoundTripper returns an [http.RoundTripper] that sends each request
// through the breaker for SetConfig.KeyFunc(req) (by default the URL's
// host) to next (nil means [http.DefaultTransport]); see
// [Breaker.RoundTripper] for how responses are judged.
func (s *Set) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper{next: next, pick: func(r *http.Request) *Breaker { return s.Get(s.cfg.KeyFunc(r)) }}
}

// Close closes every breaker of the set (unregistering their metrics) and
// empties it. Breakers handed out before keep working; keys asked for
// after Close all share one unregistered-metrics overflow breaker.
func (s *Set) Close() {
	s.mu.Lock()
	var all []*Breaker
	for i := range s.shards {
		for _, e := range *s.shards[i].Load() {
			all = append(all, e.b)
		}
		m := map[string]*setEntry{}
		s.shards[i].Store(&m)
	}
	s.n = 0
	s.closed = true
	if s.overflow != nil {
		all = append(all, s.overflow)
	}
	s.mu.Unlock()
	for _, b := range all {
		b.Close()
	}
}
