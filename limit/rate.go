package limit

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/stripe"
)

// Limiter is what bulwark's rate-limit middleware takes ([Handler],
// [RoundTripper], and grpcx's rate-limit interceptors): a limiter that
// admits a call at once or not ([Limiter.Allow]), or blocks until it
// admits one ([Limiter.Wait]).
//
// [*Rate] satisfies it, and so does golang.org/x/time/rate's
// [*rate.Limiter], so a service that already has token buckets plugs them
// in unchanged. A Limiter that also has a Decide() [Decision] method (as
// *Rate has; a *rate.Limiter is read through its Reserve and Tokens) lets
// the middleware tell clients their quota (RateLimit fields) and how long
// to wait (Retry-After, grpc-retry-pushback-ms).
type Limiter interface {
	// Allow reports whether one call may happen now, and if so counts it.
	Allow() bool
	// Wait blocks until one call may happen, or returns an error when ctx
	// ends first or when its deadline cannot be met.
	Wait(ctx context.Context) error
}

var (
	_ Limiter = (*Rate)(nil)
	_ Limiter = (*rate.Limiter)(nil)
)

// Decision is one rate-limit decision, with what a client is told about
// it. Decisions are plain values: making one allocates nothing.
type Decision struct {
	// Allowed reports whether the call was admitted (and counted).
	Allowed bool
	// Remaining is how many more calls the limiter would admit at once,
	// right after this decision.
	Remaining int64
	// RetryAfter is, for a rejected call, how long until the limiter
	// would admit one; zero for an admitted call, and when unknown.
	RetryAfter time.Duration
	// Reset is how long until the limiter admits more calls than
	// Remaining says (the next call, for a rejected call: RetryAfter):
	// the reset parameter ("t") of the RateLimit field, which the draft
	// defines as the time until additional quota is made available. It
	// is not the time until a full burst is back, which may be Burst
	// times longer. Zero when unknown.
	Reset time.Duration
	// Policy is the limit that decided.
	Policy Policy
}

// Policy describes a rate limit in the terms of the RateLimit-Policy
// header field: a quota of calls per window.
type Policy struct {
	// Name identifies the policy (RateConfig.Name, default "default").
	Name string
	// Quota is the number of calls the limit admits per Window (at the
	// sustained rate; a full burst can add to it once).
	Quota int64
	// Window is the policy's time window, a whole number of seconds: one
	// second, or the interval between calls if that is longer.
	Window time.Duration
}

// gcra is the Generic Cell Rate Algorithm (the "virtual scheduling" form
// of a leaky bucket): the limiter's whole state is one time, the
// theoretical arrival time (TAT) at which the limiter would be empty of
// debt again. A call at now advances TAT to max(TAT, now) + t, and is
// admitted if the new TAT is no further than tau ahead of now, where t is
// the interval between calls and tau = burst × t. So after an idle period
// burst calls pass at once, and after that one every t. The distributed
// limiter in limit/redisstore runs the same arithmetic in Redis.
type gcra struct {
	t, tau int64 // nanoseconds (or any unit, consistently)
}

// take decides one call at now against the TAT in p. Admitted, it
// returns true and the debt (new TAT - now); rejected, false and
// the wait until a call would be admitted.
//
// It is GCRA with one read-modify-write per admission: an idle limiter
// (TAT in the past) is restarted from now with a compare-and-swap; a busy
// one is advanced with an atomic add, and a call that finds its add went
// past the tolerance (it lost the race for the last slot) takes it back.
// Under contention this costs one cache-line transfer per call where a
// compare-and-swap loop retries; it never admits more than the limit (a
// transient add only makes others see the limiter fuller than it is).
func (g gcra) take(p *atomic.Int64, now int64) (bool, int64) {
	for {
		tat := p.Load()
		if tat < now {
			if p.CompareAndSwap(tat, now+g.t) {
				return true, g.t
			}
			continue
		}
		if d := tat + g.t - now; d > g.tau {
			return false, d - g.tau // full: reject without writing
		}
		next := p.Add(g.t)
		d := next - now
		if d <= g.tau {
			return true, d
		}
		p.Add(-g.t)
		return false, d - g.tau
	}
}

// decision is take, described.
func (g gcra) decision(p *atomic.Int64, now int64, pol Policy) Decision {
	ok, d := g.take(p, now)
	if !ok {
		return Decision{RetryAfter: time.Duration(d), Reset: time.Duration(d), Policy: pol}
	}
	rem, next := g.remaining(d)
	return Decision{Allowed: true, Remaining: rem, Reset: time.Duration(next), Policy: pol}
}

// remaining returns, for a limiter that owes debt (TAT - now), how many
// calls it would admit at once, and how long until it would admit one
// more (0 if it owes nothing: it is at a full burst, and gets no more).
func (g gcra) remaining(debt int64) (n, next int64) {
	if debt <= 0 {
		return g.tau / g.t, 0
	}
	n = max(0, (g.tau-debt)/g.t)
	// One more call fits once debt has fallen to tau - (n+1)t.
	return n, debt - g.tau + (n+1)*g.t
}

func (g gcra) policy(name string) Policy {
	w := max(int64(time.Second), g.t)
	w = (w + int64(time.Second) - 1) / int64(time.Second) * int64(time.Second)
	return Policy{Name: name, Quota: w / g.t, Window: time.Duration(w)}
}

// emptyTAT is the TAT of a limiter that owes nothing: far enough in the
// past that max(TAT, now) is now for any clock reading (including a
// synctest bubble's, which may lie before the process started), and far
// enough from MinInt64 that arithmetic on it cannot overflow.
const emptyTAT = math.MinInt64 / 2

// Sharding: a fast limit is split over per-P shards, so that goroutines on
// different cores do not all write one cache line (on a 2-vCPU VM a
// contended line costs more than the whole decision). Shard i holds rate
// R/n and a share of the burst; a call tries its own P's shard, then the
// others, so a single goroutine still gets the whole burst and the whole
// rate. Sharding keeps GCRA's bound exactly — at most Burst + w·Rate calls
// in any window w, the sum of the shards' bounds — but the moments at
// which calls are admitted may differ from one GCRA's by the shards'
// phases, up to n intervals of the whole limit. It is used only where
// that is far below what anyone can observe: rates of at least
// shardMinRate calls a second, with a burst of at least shardMinBurst per
// shard.
const (
	shardMinRate  = 10000
	shardMinBurst = 8
	maxShards     = 16
)

// shard is one GCRA word with what a call on it reads: its parameters
// and its admission count share the word's cache line, which the call
// writes anyway, and the padding keeps every other shard's line apart. (The
// parameters once sat after the padding, on the line of the next shard's
// word: a core deciding on its own shard then reread a line the other
// core had just written, and two cores took twice the CPU per call and
// were no faster together than one.)
type shard struct {
	tat      atomic.Int64
	admitted atomic.Int64 // calls Allow and Decide admitted here
	g        gcra
	_        [stripe.CacheLine - 32]byte
}

// Rate is a local rate limiter: the GCRA algorithm (see the package doc)
// on one atomic word, so [Rate.Allow] is one load of the word and, to
// admit, one read-modify-write of it, with no lock and no allocation;
// counting the decision for the metrics is one more atomic add (for an
// admission, on the cache line the word's write holds already). It
// admits calls at RateConfig.Rate per second on average, and up to
// RateConfig.Burst at once after an idle period. A limit of 10,000 calls
// a second or more is spread over one word per processor (see the package
// doc, "Fast limits"), so that cores calling at once do not contend.
//
// A Rate is safe for concurrent use. Create it with [NewRate]; the zero
// Rate is not usable. Close it when discarding it, to unregister its
// metrics.
type Rate struct {
	shards []shard
	mask   int
	g      gcra // the whole limit
	clk    clock.Clock
	pol    Policy
	counts counts
	tel    *instruments
}

// NewRate returns a rate limiter for cfg. It panics with a
// [*bulwark.ConfigError] if cfg is not valid (see [RateConfig.Validate]).
func NewRate(cfg RateConfig) *Rate {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	r := newRate(cfg, clock.Real, stripe.Size())
	r.tel = register(cfg.MeterProvider, "rate", cfg.name(), r.counts, nil, nil)
	return r
}

// newRate builds a Rate on clk with up to n shards (a power of two).
func newRate(cfg RateConfig, clk clock.Clock, n int) *Rate {
	g := cfg.gcra()
	burst := g.tau / g.t
	n = min(n, maxShards)
	for n > 1 && (g.t*int64(n) > int64(time.Second)/shardMinRate || burst < int64(n)*shardMinBurst) {
		n >>= 1
	}
	r := &Rate{shards: make([]shard, n), mask: n - 1, g: g, clk: clk, pol: g.policy(cfg.name()), counts: newCounts()}
	r.counts.more = func() int64 {
		var sum int64
		for i := range r.shards {
			sum += r.shards[i].admitted.Load()
		}
		return sum
	}
	for i := range r.shards {
		b := burst / int64(n)
		if int64(i) < burst%int64(n) {
			b++
		}
		r.shards[i].g = gcra{t: g.t * int64(n), tau: g.t * int64(n) * b}
		r.shards[i].tat.Store(emptyTAT)
	}
	return r
}

// take decides and counts one call at now: on the caller's P's shard,
// else on the first other shard that admits it. Rejected, it returns the
// shortest wait.
func (r *Rate) take(now int64) (ok bool, d int64, s *shard) {
	if len(r.shards) == 1 {
		s = &r.shards[0]
		if ok, d = s.g.take(&s.tat, now); ok {
			s.admitted.Add(1)
		} else {
			r.counts.rejected.Add(1)
		}
		return ok, d, s
	}
	i := stripe.Slot()
	wait := int64(math.MaxInt64)
	for j := range r.shards {
		s = &r.shards[(i+j)&r.mask]
		ok, d = s.g.take(&s.tat, now)
		if ok {
			s.admitted.Add(1)
			return true, d, s
		}
		wait = min(wait, d)
	}
	r.counts.rejected.Add(1)
	return false, wait, nil
}

// Allow reports whether one call may happen now, and if so counts it. It
// never blocks.
func (r *Rate) Allow() bool {
	ok, _, _ := r.take(r.clk.Nanotime())
	return ok
}

// Decide is Allow with the details a client is told: how many calls
// remain, and when a rejected call may try again. It never blocks.
func (r *Rate) Decide() Decision {
	now := r.clk.Nanotime()
	ok, d, _ := r.take(now)
	dec := Decision{Allowed: ok, Policy: r.pol}
	var next int64 = math.MaxInt64
	for i := range r.shards {
		s := &r.shards[i]
		n, nx := s.g.remaining(s.tat.Load() - now)
		dec.Remaining += n
		if nx > 0 {
			next = min(next, nx)
		}
	}
	if !ok {
		dec.Remaining = 0
		next = d
		dec.RetryAfter = time.Duration(d)
	}
	if next != math.MaxInt64 {
		dec.Reset = time.Duration(next)
	}
	return dec
}

// Wait blocks until one call may happen and counts it. It reserves the
// call's turn at once, so waiters are served in the order they called
// and none can be overtaken. It returns, without waiting:
//
//   - a [*RejectedError] (errors.Is ErrRateLimited) whose Wait is the
//     wait needed, if ctx has a deadline that comes before the turn;
//   - context.Cause(ctx) if ctx is already done.
//
// If ctx ends during the wait, Wait gives the turn back and returns
// context.Cause(ctx). A nil ctx panics.
func (r *Rate) Wait(ctx context.Context) error {
	if ctx == nil {
		panic("limit: Rate.Wait called with a nil ctx")
	}
	now := r.clk.Nanotime()
	s := &r.shards[0]
	if len(r.shards) > 1 { // the shard whose next turn comes first
		best := int64(math.MaxInt64)
		for i := range r.shards {
			c := &r.shards[i]
			if t := max(c.tat.Load(), now) + c.g.t - c.g.tau; t < best {
				best, s = t, c
			}
		}
	}
	return waitGCRA(ctx, s.g, &s.tat, now, r.clk, r.counts)
}

// waitGCRA is Wait on the TAT in p.
func waitGCRA(ctx context.Context, g gcra, p *atomic.Int64, now int64, clk clock.Clock, c counts) error {
	if ctx.Err() != nil { // a done ctx takes no turn, even a free one
		return context.Cause(ctx)
	}
	var wait int64
	for {
		tat := p.Load()
		next := max(tat, now) + g.t
		wait = next - now - g.tau
		if wait <= 0 {
			if p.CompareAndSwap(tat, next) {
				c.record(true)
				return nil
			}
			continue
		}
		if dl, ok := ctx.Deadline(); ok && dl.Sub(clk.Now()) < time.Duration(wait) {
			c.record(false)
			return rateError(time.Duration(wait))
		}
		if p.CompareAndSwap(tat, next) {
			break
		}
	}
	t := clk.NewTimer(time.Duration(wait))
	defer t.Stop()
	select {
	case <-t.C():
		c.record(true)
		return nil
	case <-ctx.Done():
		p.Add(-g.t) // give the turn back
		return context.Cause(ctx)
	}
}

// Policy returns the limit in the terms of the RateLimit-Policy header
// field.
func (r *Rate) Policy() Policy { return r.pol }

// Close unregisters the limiter's metrics. The limiter keeps working. It
// is safe to call more than once; it always returns nil.
func (r *Rate) Close() error {
	if r.tel != nil {
		r.tel.close()
	}
	return nil
}
