package breaker

import (
	"context"
	"hash/maphash"
	"iter"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/telemetry"
)

// setShards spreads keys so that an insert copies a small shard: with
// 10,000 keys, about 40 entries.
const setShards = 256

// emptyShard is the shard every set starts with and Close leaves: shards
// are never written in place (inserts copy them), so all may share it.
var emptyShard = new(map[string]*setEntry)

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
// Callers still holding an evicted breaker may finish their calls (what
// they record after the eviction is not reported). A Set is safe for
// concurrent use; call Close when discarding it, to unregister its
// metrics. The zero Set is not usable; use [NewSet].
type Set struct {
	cfg    SetConfig
	clk    clock.Clock
	seed   maphash.Seed
	shards [setShards]atomic.Pointer[map[string]*setEntry]

	// saturated is the Nanotime until which the set is known to be full
	// with nothing to evict; overflowB is s.overflow, readable without mu.
	saturated atomic.Int64
	overflowB atomic.Pointer[Breaker]

	telem *instruments

	mu        sync.Mutex // inserts, sweeps, collections; fields below
	n         int
	hand      int // evictOneLocked's position
	lastSweep int64
	overflow  *Breaker
	closed    bool
	retired   snapshot // AggregateMetrics: the counts of evicted members
}

type setEntry struct {
	b    *Breaker
	used atomic.Bool // set on use, cleared by each sweep
}

// NewSet returns an empty set. It panics with a [*bulwark.ConfigError]
// (matching [bulwark.ErrInvalidConfig]) if cfg is not valid; see
// [SetConfig.Validate].
//
// A member costs, in the closed state with a count window and no failure
// yet, about 880 bytes at GOMAXPROCS=2: 128 bytes per P for its per-P
// counters (the P count rounded up to a power of two) and about 620 bytes
// for the rest, so about 750 bytes at 1, 1.1 KiB at 4, 1.6 KiB at 8 and
// 4.6 KiB at 32 (BenchmarkBreakerSetMember in the benchmarks module). A
// failure adds the window's ring (8 bytes per WindowSize call, twice that
// with slow-call detection) until the next state change; a time window
// adds 32 bytes per bucket per P from the start. Metrics cost nothing per
// member: the set reports its members from one callback, building
// attributes at collection time.
func NewSet(cfg SetConfig) *Set {
	mustValidate(cfg.Validate())
	cfg.MaxKeys = cmp0(cfg.MaxKeys, DefaultMaxKeys)
	cfg.IdleTimeout = cmp0(cfg.IdleTimeout, DefaultIdleTimeout)
	if cfg.KeyFunc == nil {
		cfg.KeyFunc = func(r *http.Request) string { return r.URL.Host }
	}
	s := &Set{cfg: cfg, clk: clock.Or(cfg.Config.clk), seed: maphash.MakeSeed()}
	s.lastSweep = s.clk.Nanotime()
	for i := range s.shards {
		s.shards[i].Store(emptyShard)
	}
	s.telem = newInstruments(cfg.Config.MeterProvider, s.observe)
	return s
}

// observe reports every member (one series each, or their sum).
func (s *Set) observe(t *instruments, o metric.Observer) {
	name := telemetry.AttrName.String(s.cfg.Config.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	var sum snapshot
	each := func(b *Breaker) {
		if s.cfg.AggregateMetrics {
			b.addTo(&sum)
			return
		}
		var one snapshot
		b.addTo(&one)
		t.report(o, &one, name, telemetry.AttrKey.String(b.key))
	}
	for i := range s.shards {
		for _, e := range *s.shards[i].Load() {
			each(e.b)
		}
	}
	if s.overflow != nil {
		each(s.overflow)
	}
	if s.cfg.AggregateMetrics {
		sum.add(&s.retired)
		t.report(o, &sum, name)
	}
}

// retireLocked keeps an evicted member's counts in the aggregate.
func (s *Set) retireLocked(b *Breaker) {
	if s.cfg.AggregateMetrics {
		var one snapshot
		b.addTo(&one)
		one.states = [numStates]int64{}
		s.retired.add(&one)
	}
}

func (s *Set) shard(key string) *atomic.Pointer[map[string]*setEntry] {
	return &s.shards[maphash.String(s.seed, key)%setShards]
}

// All returns an iterator over the set's members and their keys, for
// readiness checks and dashboards. It reads the current snapshots without
// a lock and creates nothing: a member added or evicted while the loop runs
// may or may not be seen, and the overflow breaker (used while the set is
// full) is not a member. Order is unspecified.
func (s *Set) All() iter.Seq2[string, *Breaker] {
	return func(yield func(string, *Breaker) bool) {
		for i := range s.shards {
			m := s.shards[i].Load()
			if m == nil {
				continue
			}
			for k, e := range *m {
				if !yield(k, e.b) {
					return
				}
			}
		}
	}
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
			s.overflow = newBreaker(&s.cfg.Config, "", true)
			s.overflowB.Store(s.overflow)
		}
		if !s.closed {
			s.saturated.Store(now + int64(saturatedRecheck))
		}
		b = s.overflow
	} else {
		b = newBreaker(&s.cfg.Config, key, true)
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
	for _, e := range evicted {
		s.retireLocked(e)
	}
	s.mu.Unlock()
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

// Do runs fn through the breaker for key; see [Breaker.Do]. Like it, Do
// panics at once on a nil ctx or a nil fn (before creating a breaker).
func (s *Set) Do(ctx context.Context, key string, fn func(context.Context) error) error {
	if ctx == nil {
		panic("breaker: Set.Do called with a nil ctx")
	}
	if fn == nil {
		panic("breaker: Set.Do called with a nil fn")
	}
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

// Handler returns server-side middleware that guards next with the
// breaker for SetConfig.KeyFunc(r) (set KeyFunc: its default, the URL's
// host, is usually empty on a server); see [Breaker.Handler]. A nil next
// panics.
func (s *Set) Handler(next http.Handler) http.Handler {
	if next == nil {
		panic("breaker: Set.Handler called with a nil next")
	}
	return handler(next, func(r *http.Request) *Breaker { return s.Get(s.cfg.KeyFunc(r)) })
}

// Close unregisters the set's metrics and empties it. Breakers handed out
// before keep working; keys asked for after Close all share one overflow
// breaker, which no metric reports. Close is safe to call more than once
// and from several goroutines; it returns nil.
func (s *Set) Close() error {
	s.telem.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.shards {
		s.shards[i].Store(emptyShard)
	}
	s.n = 0
	s.closed = true
	return nil
}
