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
	// Reset is how long until the limiter is back to a full burst.
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
// returns true and the debt (new TAT - now: Reset); rejected, false and
// the wait until a call would be admitted.
func (g gcra) take(p *atomic.Int64, now int64) (bool, int64) {
	for {
		tat := p.Load()
		next := max(tat, now) + g.t
		if d := next - now; d > g.tau {
			return false, d - g.tau
		}
		if p.CompareAndSwap(tat, next) {
			return true, next - now
		}
	}
}

// decision is take, described.
func (g gcra) decision(p *atomic.Int64, now int64, pol Policy) Decision {
	ok, d := g.take(p, now)
	if !ok {
		tat := p.Load()
		return Decision{RetryAfter: time.Duration(d), Reset: time.Duration(max(0, tat-now)), Policy: pol}
	}
	return Decision{Allowed: true, Remaining: (g.tau - d) / g.t, Reset: time.Duration(d), Policy: pol}
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

// Rate is a local rate limiter: the GCRA algorithm (see the package doc)
// on one atomic word, so [Rate.Allow] is one load and at most one
// compare-and-swap, with no lock and no allocation. It admits calls at
// RateConfig.Rate per second on average, and up to RateConfig.Burst at
// once after an idle period.
//
// A Rate is safe for concurrent use. Create it with [NewRate]; the zero
// Rate is not usable. Close it when discarding it, to unregister its
// metrics.
type Rate struct {
	tat    stripe.Int64 // the GCRA state, alone on its cache lines
	g      gcra
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
	r := newRate(cfg, clock.Real)
	r.tel = register(cfg.MeterProvider, "rate", cfg.name(), r.counts, nil, nil)
	return r
}

func newRate(cfg RateConfig, clk clock.Clock) *Rate {
	g := cfg.gcra()
	r := &Rate{g: g, clk: clk, pol: g.policy(cfg.name()), counts: newCounts()}
	r.tat.Store(emptyTAT)
	return r
}

// Allow reports whether one call may happen now, and if so counts it. It
// never blocks.
func (r *Rate) Allow() bool {
	ok, _ := r.g.take(&r.tat.Int64, r.clk.Nanotime())
	r.counts.record(ok)
	return ok
}

// Decide is Allow with the details a client is told: how many calls
// remain, and when a rejected call may try again. It never blocks.
func (r *Rate) Decide() Decision {
	d := r.g.decision(&r.tat.Int64, r.clk.Nanotime(), r.pol)
	r.counts.record(d.Allowed)
	return d
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
	return waitGCRA(ctx, r.g, &r.tat.Int64, r.clk.Nanotime(), r.clk, r.counts)
}

// waitGCRA is Wait on the TAT in p.
func waitGCRA(ctx context.Context, g gcra, p *atomic.Int64, now int64, clk clock.Clock, c counts) error {
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
		if ctx.Err() != nil {
			return context.Cause(ctx)
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
