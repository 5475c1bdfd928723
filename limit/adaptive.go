package limit

import (
	"context"
	"math"
	"sync"
	"sync/atomic"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/stripe"
)

// Adaptive is a concurrency limiter whose limit follows the latency of the
// calls it lets through, so that it protects a service without anyone
// choosing the limit: while latency stays near the service's no-load
// latency the limit grows, and once calls start to queue inside the
// service (latency rises past AdaptiveConfig.Tolerance times the no-load
// latency) it shrinks to about the concurrency where queueing began. The
// algorithm is a gradient controller in the style of Netflix's Gradient2,
// with a periodic no-load measurement; the package doc describes it
// ("Adaptive concurrency").
//
// Taking a slot is one compare-and-swap, as for a [Bulkhead]; releasing
// one adds the call's latency to the current window with two atomic adds;
// the limit is recomputed once per window by the one call that closes it.
// Calls above the limit are rejected at once (no queue).
//
// An Adaptive is safe for concurrent use; the zero Adaptive is not usable,
// use [NewAdaptive]. Close it when discarding it.
type Adaptive struct {
	inflight stripe.Int64
	limit    stripe.Int64 // the enforced limit
	sum, n   stripe.Int64 // the current window's successful latencies (ns) and their count
	peak     atomic.Int64 // the most calls in flight seen in the window
	winEnd   atomic.Int64 // Nanotime at which the current window closes
	// probeStart is the Nanotime the current no-load measurement began, or
	// noProbe when none runs: calls started before it do not count.
	probeStart atomic.Int64

	cfg          AdaptiveConfig
	classify     bulwark.Classifier
	classifyHTTP bulwark.HTTPClassifier
	clk          clock.Clock
	counts       counts
	tel          *instruments

	mu        sync.Mutex // the window update; the fields below
	est       float64    // the estimated limit, the enforced one outside measurements
	minRTT    float64    // the no-load latency, ns (0 until measured)
	nextProbe int64
}

// NewAdaptive returns an adaptive concurrency limiter for cfg. It starts
// by measuring the no-load latency (holding concurrency to
// AdaptiveConfig.MinLimit for AdaptiveConfig.ProbeSamples calls), then
// moves from AdaptiveConfig.InitialLimit. It panics with a
// [*bulwark.ConfigError] if cfg is not valid (see
// [AdaptiveConfig.Validate]).
func NewAdaptive(cfg AdaptiveConfig) *Adaptive {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	a := newAdaptive(cfg, clock.Real)
	a.tel = register(cfg.MeterProvider, "adaptive", cfg.Name, a.counts, a.inflight.Load, a.limit.Load)
	return a
}

func newAdaptive(cfg AdaptiveConfig, clk clock.Clock) *Adaptive {
	cfg = cfg.withDefaults()
	a := &Adaptive{cfg: cfg, classify: cfg.Classify, classifyHTTP: cfg.ClassifyHTTP, clk: clk, counts: newCounts()}
	a.est = float64(cfg.InitialLimit)
	now := clk.Nanotime()
	a.winEnd.Store(now + int64(cfg.Window))
	a.startProbe(now)
	return a
}

// startProbe begins a no-load measurement: concurrency is held to
// MinLimit and the window collects only calls started from now.
func (a *Adaptive) startProbe(now int64) {
	a.limit.Store(int64(a.cfg.MinLimit))
	a.sum.Store(0)
	a.n.Store(0)
	a.probeStart.Store(now)
}

// noProbe is probeStart when no measurement runs: every call counts.
const noProbe = math.MinInt64

// Acquire takes a slot for one call if fewer than Limit calls are in
// flight; see [ConcurrencyLimiter.Acquire]. It never blocks. A nil ctx
// panics.
func (a *Adaptive) Acquire(ctx context.Context) (Permit, error) {
	if ctx == nil {
		panic("limit: Adaptive.Acquire called with a nil ctx")
	}
	for {
		n := a.inflight.Load()
		if n >= a.limit.Load() {
			a.counts.rejected.Add(1)
			return Permit{}, errConcurrency
		}
		if a.inflight.CompareAndSwap(n, n+1) {
			if n+1 > a.peak.Load() {
				a.raisePeak(n + 1)
			}
			a.counts.admitted.Add(1)
			return Permit{l: a, start: a.clk.Nanotime()}, nil
		}
	}
}

func (a *Adaptive) raisePeak(n int64) {
	for {
		p := a.peak.Load()
		if n <= p || a.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (a *Adaptive) release(p Permit, o bulwark.Outcome) {
	a.inflight.Add(-1)
	now := a.clk.Nanotime()
	if o == bulwark.Success {
		if p.start >= a.probeStart.Load() {
			a.sum.Add(now - p.start)
			a.n.Add(1)
		}
	}
	if end := a.winEnd.Load(); now >= end && a.winEnd.CompareAndSwap(end, now+int64(a.cfg.Window)) {
		a.update(now)
	}
}

// update closes a window: it finishes a no-load measurement, or moves the
// limit by the window's gradient, and starts a measurement when one is due.
func (a *Adaptive) update(now int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	peak := a.peak.Swap(a.inflight.Load())
	if ps := a.probeStart.Load(); ps != noProbe {
		n := a.n.Load()
		if n < int64(a.cfg.ProbeSamples) && (n == 0 || now-ps < 10*int64(a.cfg.Window)) {
			return // keep measuring
		}
		a.minRTT = float64(a.sum.Swap(0)) / float64(a.n.Swap(0))
		a.probeStart.Store(noProbe)
		a.nextProbe = now + int64(a.cfg.ProbeInterval)
		a.limit.Store(int64(math.Round(a.est)))
		return
	}
	sum, n := a.sum.Swap(0), a.n.Swap(0)
	if n > 0 {
		rtt := float64(sum) / float64(n)
		g := min(max(a.cfg.Tolerance*a.minRTT/rtt, 0.5), 2)
		if g < 1 || float64(peak) >= a.est/2 {
			// Grow only when the limit is what holds calls back: a
			// service using half its limit says nothing about more.
			a.est = g*a.est + math.Sqrt(g*a.est)
			a.est = min(max(a.est, float64(a.cfg.MinLimit)), float64(a.cfg.MaxLimit))
		}
		a.limit.Store(int64(math.Round(a.est)))
	}
	if now >= a.nextProbe {
		a.startProbe(now)
	}
}

// Do runs fn if a slot is free and returns its error; otherwise it
// returns the rejection without running fn. fn's latency teaches the
// limiter if AdaptiveConfig.Classify (default: bulwark's rules) judges its
// error a success. A nil ctx or fn panics.
func (a *Adaptive) Do(ctx context.Context, fn func(context.Context) error) error {
	return do(ctx, a, fn, "limit: Adaptive.Do")
}

// Limit returns the current limit: the most calls let through at once.
func (a *Adaptive) Limit() int { return int(a.limit.Load()) }

// InFlight returns the number of calls holding a slot.
func (a *Adaptive) InFlight() int { return int(a.inflight.Load()) }

// Close unregisters the limiter's metrics. The limiter keeps working. It
// is safe to call more than once; it always returns nil.
func (a *Adaptive) Close() error {
	if a.tel != nil {
		a.tel.close()
	}
	return nil
}
