package limit

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/outcome"
	"github.com/bulwark-go/bulwark/internal/stripe"
)

// ConcurrencyLimiter caps the calls in flight: [*Bulkhead] (a fixed cap)
// and [*Adaptive] (a cap that follows latency) satisfy it, and the
// concurrency middleware ([ConcurrencyHandler], [ConcurrencyRoundTripper],
// grpcx's concurrency interceptors) takes either. It is sealed: only this
// package's limiters implement it.
type ConcurrencyLimiter interface {
	// Acquire takes a slot for one call, or returns a [*RejectedError]
	// (errors.Is ErrConcurrencyLimited), or context.Cause(ctx) if ctx
	// ended while the call was queued. Release the Permit when the call
	// ends.
	Acquire(ctx context.Context) (Permit, error)
	release(p Permit, o bulwark.Outcome)
}

// Permit is a slot taken by [ConcurrencyLimiter.Acquire]. It is a small
// value (taking one allocates nothing); release it exactly once.
type Permit struct {
	l     ConcurrencyLimiter
	start int64
}

// Release frees the slot. o is the call's outcome: an [Adaptive] limiter
// learns from successful calls' latencies only (a failure often returns
// fast and would make the service look idle), and a [Bulkhead] ignores
// it. Releasing the zero Permit does nothing.
func (p Permit) Release(o bulwark.Outcome) {
	if p.l != nil {
		p.l.release(p, o)
	}
}

// Bulkhead caps the calls in flight at BulkheadConfig.MaxConcurrent,
// so that one slow dependency cannot take every goroutine, connection or
// byte of memory of a service. Taking a slot is one compare-and-swap on
// an atomic counter, and freeing it one atomic add on another: no lock,
// no allocation.
//
// With BulkheadConfig.MaxQueue set, a call that finds every slot taken
// waits, up to QueueTimeout (or its context's end), for a slot; at most
// MaxQueue calls wait at once, and further calls are rejected at once.
// While calls are queued, newcomers queue behind them rather than take a
// freed slot first; a freed slot wakes one waiter, and waiters are not
// served in a strict order among themselves.
//
// A Bulkhead is safe for concurrent use; the zero Bulkhead is not usable,
// use [NewBulkhead]. Close it when discarding it.
type Bulkhead struct {
	slots    slotCounts
	waiting  stripe.Int64
	max      int64
	maxQueue int64
	timeout  time.Duration
	wake     chan struct{} // one token per freed slot while calls wait
	clk      clock.Clock
	counts   counts
	tel      *instruments
}

// slotCounts count the slots taken and freed since the bulkhead was made:
// the calls in flight are acquired - released, and acquired is also the
// number of calls admitted, so admitting a call writes one word where a
// counter of calls in flight would need a second one for telemetry. Both
// words share a cache line (a call takes a slot and frees it), alone.
//
// Both only grow while every free pairs with a take, as Release's
// contract requires; the arguments below assume it. An unpaired free is
// undone at once (see free).
type slotCounts struct {
	acquired, released atomic.Int64
	_                  [stripe.CacheLine - 16]byte
}

// take takes a slot if fewer than limit are taken. Released is read after
// acquired, so a rejection is right at the moment of that read (in flight
// then: at least a - r), and an admission is right at the moment its
// compare-and-swap succeeds (at most a - r in flight, as released only
// grows). Acquired is never written but by this compare-and-swap, so it
// never goes back, and the admission count it doubles as never drops.
func (c *slotCounts) take(limit int64) bool {
	for {
		a := c.acquired.Load()
		if a-c.released.Load() >= limit {
			return false
		}
		if c.acquired.CompareAndSwap(a, a+1) {
			return true
		}
	}
}

// free frees a slot. It reports false, and frees nothing, if that would
// free more slots than were taken (its add is taken back at once).
//
// It is an add, not a compare-and-swap loop like take's: with two cores
// taking and freeing slots at once, loading the line and then writing it
// costs two trips of the cache line between the cores where an add costs
// one, and a compare-and-swap may fail and go round again. (Measured on
// a 2-vCPU VM with both cores busy on one bulkhead, TryAcquire+Release
// under RunParallel: about 34 ns with a compare-and-swap here, 29 ns with
// the add; the single counter of calls in flight that these counts
// replaced took 22 ns there, and 17.5 ns of CPU against 10.7 on one core.)
func (c *slotCounts) free() bool {
	if c.released.Add(1) > c.acquired.Load() {
		c.released.Add(-1)
		return false
	}
	return true
}

// inFlight returns the slots taken at the moment acquired is read, when
// released reads the same on either side of that read (released only
// grows, so it did not change). If releases keep coming between the
// reads, it gives up after 64 tries and returns acquired - released read
// in that order: no more than the slots taken at either read, and at
// least zero unless an unpaired free is being undone.
func (c *slotCounts) inFlight() int64 { return c.inFlightTries(64) }

func (c *slotCounts) inFlightTries(n int) int64 {
	for range n {
		r := c.released.Load()
		a := c.acquired.Load()
		if c.released.Load() == r {
			return a - r
		}
	}
	return c.acquired.Load() - c.released.Load()
}

// NewBulkhead returns a bulkhead for cfg. It panics with a
// [*bulwark.ConfigError] if cfg is not valid (see
// [BulkheadConfig.Validate]).
func NewBulkhead(cfg BulkheadConfig) *Bulkhead {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	b := newBulkhead(cfg, clock.Real)
	b.tel = register(cfg.MeterProvider, "bulkhead", cfg.Name, b.counts, b.slots.inFlight, func() int64 { return b.max })
	return b
}

func newBulkhead(cfg BulkheadConfig, clk clock.Clock) *Bulkhead {
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.QueueTimeout == 0 {
		cfg.QueueTimeout = DefaultQueueTimeout
	}
	b := &Bulkhead{max: int64(cfg.MaxConcurrent), maxQueue: int64(cfg.MaxQueue), timeout: cfg.QueueTimeout,
		clk: clk, counts: newCounts()}
	b.counts.more = b.slots.acquired.Load // every admission took a slot
	if cfg.MaxQueue > 0 {
		b.wake = make(chan struct{}, cfg.MaxQueue) // zero-size tokens: no memory
	}
	return b
}

// tryAcquire takes a slot if one is free; a slot taken is an admission
// counted (counts.more reads the slots taken).
func (b *Bulkhead) tryAcquire() bool { return b.slots.take(b.max) }

// TryAcquire takes a slot if one is free, never waiting (not even with a
// queue configured), and reports whether it did. Pair a true result with
// one [Bulkhead.Release].
func (b *Bulkhead) TryAcquire() bool {
	if (b.maxQueue == 0 || b.waiting.Load() == 0) && b.tryAcquire() {
		return true
	}
	b.counts.rejected.Add(1)
	return false
}

// Release frees a slot taken by TryAcquire. Called when no slot is taken,
// it panics and frees nothing, so the cap still holds afterwards.
func (b *Bulkhead) Release() {
	if !b.slots.free() {
		panic("limit: Bulkhead.Release without a slot taken")
	}
	if b.wake != nil && b.waiting.Load() > 0 {
		select {
		case b.wake <- struct{}{}:
		default: // enough wake-ups are pending already
		}
	}
}

func (b *Bulkhead) release(Permit, bulwark.Outcome) { b.Release() }

// Acquire takes a slot for one call; see [ConcurrencyLimiter.Acquire].
// Without a queue it never blocks. A nil ctx panics.
func (b *Bulkhead) Acquire(ctx context.Context) (Permit, error) {
	if ctx == nil {
		panic("limit: Bulkhead.Acquire called with a nil ctx")
	}
	if (b.maxQueue == 0 || b.waiting.Load() == 0) && b.tryAcquire() {
		return Permit{l: b}, nil
	}
	if b.maxQueue == 0 {
		b.counts.rejected.Add(1)
		return Permit{}, errConcurrency
	}
	return b.queue(ctx)
}

// queue waits for a slot: the slow path, which may allocate a timer.
func (b *Bulkhead) queue(ctx context.Context) (Permit, error) {
	if b.waiting.Add(1) > b.maxQueue {
		b.waiting.Add(-1)
		b.counts.rejected.Add(1)
		return Permit{}, errConcurrency
	}
	defer b.waiting.Add(-1)
	// A Release between a failed tryAcquire and the wait below sees
	// waiting > 0 (set above, before the attempt) and leaves a token, so
	// no wake-up is lost.
	t := b.clk.NewTimer(b.timeout)
	defer t.Stop()
	for {
		if b.tryAcquire() {
			return Permit{l: b}, nil
		}
		select {
		case <-b.wake:
		case <-t.C():
			b.counts.rejected.Add(1)
			return Permit{}, errConcurrency
		case <-ctx.Done():
			return Permit{}, context.Cause(ctx)
		}
	}
}

// Do runs fn if a slot is free (or frees up within the queue timeout) and
// returns its error; otherwise it returns the rejection without running
// fn. A nil ctx or fn panics.
func (b *Bulkhead) Do(ctx context.Context, fn func(context.Context) error) error {
	return do(ctx, b, fn, "limit: Bulkhead.Do")
}

// InFlight returns the number of slots taken.
func (b *Bulkhead) InFlight() int { return int(b.slots.inFlight()) }

// Limit returns BulkheadConfig.MaxConcurrent.
func (b *Bulkhead) Limit() int { return int(b.max) }

// Close unregisters the bulkhead's metrics. The bulkhead keeps working.
// It is safe to call more than once; it always returns nil.
func (b *Bulkhead) Close() error {
	if b.tel != nil {
		b.tel.close()
	}
	return nil
}

// do runs fn under a slot of c.
func do(ctx context.Context, c ConcurrencyLimiter, fn func(context.Context) error, name string) error {
	if ctx == nil {
		panic(name + " called with a nil ctx")
	}
	if fn == nil {
		panic(name + " called with a nil fn")
	}
	p, err := c.Acquire(ctx)
	if err != nil {
		return err
	}
	returned := false
	defer func() {
		if !returned {
			p.Release(bulwark.Failure)
		}
	}()
	err = fn(ctx)
	returned = true
	p.Release(classify(ctx, c, err))
	return err
}

// Call runs fn under a slot of c, as Do does, and returns its value. A nil
// ctx, c or fn panics.
func Call[T any](ctx context.Context, c ConcurrencyLimiter, fn func(context.Context) (T, error)) (T, error) {
	if c == nil {
		panic("limit: Call called with a nil ConcurrencyLimiter")
	}
	if fn == nil {
		panic("limit: Call called with a nil fn")
	}
	var v T
	err := do(ctx, c, func(ctx context.Context) error {
		var err error
		v, err = fn(ctx)
		return err
	}, "limit: Call")
	return v, err
}

// classify judges a call's error: with the limiter's Classify if it has
// one (Adaptive), else by bulwark's rules (a caller's cancellation is
// neutral).
func classify(ctx context.Context, c ConcurrencyLimiter, err error) bulwark.Outcome {
	if a, ok := c.(*Adaptive); ok && a.classify != nil {
		return a.classify(ctx, err)
	}
	return outcome.Error(ctx, err)
}
