package retry

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/tried"
)

const (
	hedgeSamples    = 128
	hedgeMinSamples = 20
	hedgeRecompute  = 16
)

// hedger holds the hedging settings and a lock-free sample of recent
// latencies: a ring of atomics written by an atomic index; the percentile
// is recomputed (sorting a copy on the stack) every 16 samples and cached.
type hedger struct {
	enabled     bool
	delay       time.Duration
	percentile  float64
	maxInFlight int
	clock       clock.Clock

	n       atomic.Uint64
	samples [hedgeSamples]atomic.Int64
	cached  atomic.Int64
}

func (h *hedger) init(cfg HedgeConfig, c clock.Clock) {
	h.enabled = cfg.Delay > 0 || (cfg.Percentile > 0 && cfg.Percentile < 1)
	h.delay = cfg.Delay
	if cfg.Percentile > 0 && cfg.Percentile < 1 {
		h.percentile = cfg.Percentile
	}
	h.maxInFlight = cfg.MaxInFlight
	if h.maxInFlight == 0 {
		h.maxInFlight = DefaultMaxInFlight
	}
	h.clock = c
}

func (h *hedger) record(d time.Duration) {
	if h.percentile == 0 {
		return
	}
	i := h.n.Add(1)
	h.samples[(i-1)%hedgeSamples].Store(int64(d))
	if i >= hedgeMinSamples && (i == hedgeMinSamples || i%hedgeRecompute == 0) {
		var buf [hedgeSamples]int64
		n := int(min(i, hedgeSamples))
		for j := range n {
			buf[j] = h.samples[j].Load()
		}
		s := buf[:n]
		slices.Sort(s)
		h.cached.Store(s[min(int(h.percentile*float64(n)), n-1)])
	}
}

// next returns the delay before the next hedge, or false for none.
func (h *hedger) next() (time.Duration, bool) {
	if h.percentile > 0 && h.n.Load() >= hedgeMinSamples {
		return time.Duration(h.cached.Load()), true
	}
	return h.delay, h.delay > 0
}

// hedgeResult is what one attempt's goroutine reports.
type hedgeResult[T any] struct {
	v     T
	err   error
	began int64 // clock reading when the attempt started
	n     int   // attempt number, 1-based
	// panicked: fn panicked (or called runtime.Goexit) with panicVal; the
	// panic is raised again in the caller's goroutine.
	panicked bool
	panicVal any
	// cancel releases the attempt's context; the loop sets it when the
	// result arrives.
	cancel context.CancelCauseFunc
}

// flight is an attempt still running.
type flight struct {
	n      int
	cancel context.CancelCauseFunc
}

// hedgedCall runs one call with hedging. Attempts run in goroutines of
// their own, each under a context of its own, and report on results; every
// field below is touched only by the goroutine running run, so nothing
// needs a lock. The first result that ends the call wins; the attempts
// still in flight are then cancelled with the cause bulwark.ErrSuperseded
// (so that the layers below count them as the failures they are: slower
// than the hedge delay), and run returns only once every attempt has
// returned, every result it does not return released through exec.drop.
//
// Its memory is bounded by HedgeConfig.MaxInFlight, never by MaxAttempts.
type hedgedCall[T any] struct {
	p     *Policy
	x     *exec[T]
	ctx   context.Context // the caller's
	start int64           // clock reading at the call's start
	// base is what the attempts' contexts derive from: ctx with a record
	// of the endpoints the attempts go to (internal/tried), so that a
	// balancer below sends each hedge or retry to an endpoint that no
	// attempt of the call has been sent to yet (rec, unless ctx had one).
	base context.Context
	rec  tried.Record

	results  chan hedgeResult[T] // capacity MaxInFlight: a report never blocks
	flights  []flight            // the attempts in flight, at most MaxInFlight
	launched int                 // attempts started so far
	// inline holds the flights of the default MaxInFlight without an
	// allocation of their own.
	inline [DefaultMaxInFlight]flight

	timer  clock.Timer
	timerC <-chan time.Time // nil when the timer is not armed

	// last is the latest retryable result, kept (its context alive) in
	// case the call ends on it: the RoundTripper returns the last response
	// of a call that runs out of attempts.
	last     hedgeResult[T]
	lastVd   verdict
	haveLast bool

	stopped bool          // no more attempts will start
	reason  Reason        // why, once stopped
	cause   error         // the failure that armed the timer; nil for a hedge delay
	pending time.Duration // the delay the timer was armed with
}

// hedged runs a call with hedging; see hedgedCall.
func hedged[T any](ctx context.Context, p *Policy, x *exec[T]) (T, error) {
	h := &hedgedCall[T]{
		p:       p,
		x:       x,
		ctx:     ctx,
		start:   p.clock.Nanotime(),
		results: make(chan hedgeResult[T], p.hedge.maxInFlight),
	}
	h.base = ctx
	if tried.From(ctx) == nil {
		h.base = tried.With(ctx, &h.rec)
	}
	h.flights = h.inline[:0]
	if p.hedge.maxInFlight > len(h.inline) {
		h.flights = make([]flight, 0, p.hedge.maxInFlight)
	}
	p.calls.Add(1)
	defer h.stopTimer()
	return h.run()
}

func (h *hedgedCall[T]) run() (T, error) {
	h.launch()
	if d, ok := h.p.hedge.next(); ok && h.p.maxAttempts > 1 {
		h.pending = d
		h.arm(d)
	}
	for {
		if h.stopped && len(h.flights) == 0 {
			return h.exhausted()
		}
		select {
		case r := <-h.results:
			if v, err, done := h.onResult(r); done {
				return v, err
			}
		case <-h.timerC:
			h.timerC = nil
			h.fire()
		case <-h.ctx.Done():
			return h.cancelled()
		}
	}
}

// launch starts the next attempt.
func (h *hedgedCall[T]) launch() {
	h.launched++
	n := h.launched
	actx, cancel := context.WithCancelCause(h.base)
	if n > 1 {
		actx = withAttempt(actx, n)
	}
	h.flights = append(h.flights, flight{n: n, cancel: cancel})
	began := h.p.clock.Nanotime()
	go func() {
		r := hedgeResult[T]{began: began, n: n}
		returned := false
		defer func() {
			if !returned {
				r.panicked, r.panicVal = true, recover()
			}
			h.results <- r
		}()
		r.v, r.err = h.x.fn(actx)
		returned = true
	}()
}

// land removes attempt n from the flights and returns its cancel func.
func (h *hedgedCall[T]) land(n int) context.CancelCauseFunc {
	for i, f := range h.flights {
		if f.n == n {
			h.flights = append(h.flights[:i], h.flights[i+1:]...)
			return f.cancel
		}
	}
	panic("retry: unreachable: a result from an attempt not in flight")
}

// onResult judges a finished attempt; done reports that the call ends with
// (v, err).
func (h *hedgedCall[T]) onResult(r hedgeResult[T]) (v T, err error, done bool) {
	r.cancel = h.land(r.n)
	if r.panicked {
		h.repanic(r)
	}
	vd := h.x.judge(h.ctx, r.v, r.err)
	if !vd.retry {
		if r.err == nil {
			h.p.hedge.record(time.Duration(h.p.clock.Nanotime() - r.began))
		}
		v, err = h.finish(r, vd.err)
		return v, err, true
	}
	if h.haveLast {
		h.release(h.last)
	}
	h.last, h.lastVd, h.haveLast = r, vd, true
	if h.ctx.Err() != nil {
		v, err = h.cancelled()
		return v, err, true
	}
	p := h.p
	switch {
	case vd.hasPushback && vd.pushback < 0:
		h.stop(ReasonPushback)
	case p.endsAtOnce(h.ctx, vd):
		h.stop(ReasonRejected)
	case h.launched >= p.maxAttempts:
		h.stop(ReasonAttempts)
	case h.stopped:
	case len(h.flights) > 0:
		// Replace the failed attempt now, or after the pushback, as in
		// gRPC's hedging policy.
		d := time.Duration(0)
		if vd.hasPushback && p.maxPushback >= 0 {
			d = min(vd.pushback, p.maxPushback)
		}
		h.cause, h.pending = vd.err, d
		h.arm(d)
	default:
		d, ok := h.x.nextDelay(h.launched, vd)
		switch {
		case !ok:
			h.stop(ReasonAttempts)
		case !p.fits(h.ctx, h.start, d):
			h.stop(ReasonDeadline)
		default:
			h.cause, h.pending = vd.err, d
			h.arm(d)
		}
	}
	return v, nil, false
}

// fire starts the next attempt when the timer fires, if it may start.
func (h *hedgedCall[T]) fire() {
	p := h.p
	switch {
	case h.stopped || h.launched >= p.maxAttempts:
		h.stop(ReasonAttempts)
		return
	case len(h.flights) >= p.hedge.maxInFlight:
		return // a result will re-arm the timer
	case !p.fits(h.ctx, h.start, 0):
		h.stop(ReasonDeadline)
		return
	case !p.budget.withdraw():
		h.stop(ReasonBudget)
		return
	}
	ev := Event{Attempt: h.launched + 1, Delay: h.pending, Err: h.cause, Hedge: len(h.flights) > 0}
	if ev.Hedge {
		p.hedges.Add(1)
	} else {
		p.retries.Add(1)
	}
	p.notify(h.ctx, ev)
	h.launch()
	if d, ok := p.hedge.next(); ok && h.launched < p.maxAttempts {
		h.cause, h.pending = nil, d
		h.arm(d)
	}
}

// arm schedules fire after d; at once for d <= 0 (a fake clock only fires
// on Advance).
func (h *hedgedCall[T]) arm(d time.Duration) {
	h.stopTimer()
	if d <= 0 {
		h.fire()
		return
	}
	if h.timer == nil {
		h.timer = h.p.clock.NewTimer(d)
	} else {
		h.timer.Reset(d)
	}
	h.timerC = h.timer.C()
}

func (h *hedgedCall[T]) stopTimer() {
	h.timerC = nil
	if h.timer == nil {
		return
	}
	h.timer.Stop()
	select { // a fake timer may have fired into its buffer
	case <-h.timer.C():
	default:
	}
}

func (h *hedgedCall[T]) stop(r Reason) {
	if !h.stopped {
		h.stopped, h.reason = true, r
	}
}

// finish ends the call with r's value: every other result is released and
// every attempt in flight superseded.
func (h *hedgedCall[T]) finish(r hedgeResult[T], err error) (T, error) {
	if h.haveLast {
		h.release(h.last)
		h.haveLast = false
	}
	v := h.handOver(r)
	h.settle(bulwark.ErrSuperseded)
	return v, err
}

// exhausted ends the call when no attempt may start and none is in
// flight: on the last result, which the RoundTripper may return (a 503 on
// the last attempt), so it is handed over like a winner.
func (h *hedgedCall[T]) exhausted() (T, error) {
	v := h.handOver(h.last)
	h.haveLast = false
	return h.x.stop(h.ctx, h.launched, h.reason, v, h.lastVd.err)
}

// cancelled ends the call when the caller's context is done. The attempts
// in flight are cancelled with the caller's own cause (their contexts are
// its children, so it is theirs already), never ErrSuperseded: the
// caller's cancellation stays neutral for the layers below.
func (h *hedgedCall[T]) cancelled() (T, error) {
	var lastErr error
	if h.haveLast {
		h.release(h.last)
		lastErr = h.lastVd.err
		h.haveLast = false
	}
	h.settle(context.Cause(h.ctx))
	var zero T
	return zero, canceled(h.ctx, lastErr)
}

// settle cancels every attempt in flight with cause and waits for each to
// return, releasing its result. A panic in one of them is raised once all
// have returned.
func (h *hedgedCall[T]) settle(cause error) {
	for _, f := range h.flights {
		f.cancel(cause)
	}
	var panicked *hedgeResult[T]
	for range len(h.flights) {
		r := <-h.results
		r.cancel = h.land(r.n)
		if r.panicked && panicked == nil {
			panicked = &r
			r.cancel(nil)
			continue
		}
		h.release(r)
	}
	if panicked != nil {
		panic(panicked.panicVal)
	}
}

// repanic raises an attempt's panic in the caller's goroutine, once every
// other attempt has returned (so no goroutine outlives the call).
func (h *hedgedCall[T]) repanic(r hedgeResult[T]) {
	r.cancel(nil)
	if h.haveLast {
		h.release(h.last)
		h.haveLast = false
	}
	h.settle(bulwark.ErrSuperseded)
	if r.panicVal == nil {
		panic("retry: a hedged attempt called runtime.Goexit or panicked with nil")
	}
	panic(r.panicVal)
}

// handOver returns r's value to the caller. With exec.keep, r's attempt
// context outlives the call (until an HTTP body is closed); otherwise it
// is released now.
func (h *hedgedCall[T]) handOver(r hedgeResult[T]) T {
	if h.x.keep != nil {
		return h.x.keep(r.v, func() { r.cancel(nil) })
	}
	r.cancel(nil)
	return r.v
}

// release drops a result that will not be returned (an HTTP response is
// drained and closed) and then releases its attempt's context.
func (h *hedgedCall[T]) release(r hedgeResult[T]) {
	h.x.drop(r.v)
	r.cancel(nil)
}
