package retry

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
)

// HedgeConfig configures hedged attempts: while an attempt is still
// running after a delay, another one starts alongside it; the first
// success wins and the others are cancelled. Hedging trades a little
// extra load for a shorter tail latency, and is only safe for idempotent
// calls. The zero value disables hedging.
//
// Hedges count as attempts against MaxAttempts and each one draws a token
// from the retry budget, so hedging cannot multiply the load either. When
// an attempt fails while others are still in flight, the next hedge starts
// at once (after the server's pushback, if any), as in gRPC's hedging
// policy; when none is left in flight, the usual backoff applies.
type HedgeConfig struct {
	// Delay is the time to wait for an attempt before starting the next
	// one. With Percentile set, it is used until enough latencies have
	// been observed (zero then means: no hedges until then).
	Delay time.Duration
	// Percentile, if in (0, 1), hedges after that percentile (e.g. 0.95)
	// of the latencies of the policy's recent successful attempts (the
	// last 128), so that only the slowest few percent of calls are
	// hedged. It needs 20 observations first.
	Percentile float64
	// MaxInFlight bounds the attempts of one call running at once, the
	// first included. Default 2.
	MaxInFlight int
}

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
	if h.maxInFlight <= 0 {
		h.maxInFlight = 2
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

type hedgeResult[T any] struct {
	v     T
	err   error
	began int64
	n     int // attempt number
}

// hedged runs a call with hedging: attempts run in goroutines, the first
// result that ends the call wins, the others are cancelled, and hedged
// returns only once every attempt has returned (so no goroutine outlives
// the call, and losers' results are released through x.discard).
func hedged[T any](ctx context.Context, p *Policy, x *exec[T]) (T, error) {
	var zero T
	start := p.clock.Nanotime()
	p.calls.Add(1)
	// One context per attempt, so that the winner's can outlive the call
	// when its result still reads from it (an HTTP response body).
	cancels := make([]context.CancelFunc, 0, p.maxAttempts)
	defer func() {
		for _, c := range cancels {
			if c != nil {
				c()
			}
		}
	}()
	results := make(chan hedgeResult[T], p.maxAttempts)
	launched, inflight := 0, 0
	launch := func() {
		launched++
		inflight++
		actx, c := context.WithCancel(ctx)
		cancels = append(cancels, c)
		if launched > 1 {
			actx = withAttempt(actx, launched)
		}
		began, n := p.clock.Nanotime(), launched
		go func() {
			v, err := x.fn(actx)
			results <- hedgeResult[T]{v: v, err: err, began: began, n: n}
		}()
	}
	// handOver returns r's value to the caller: with x.keep, r's attempt
	// context outlives the call (until an HTTP body is closed) instead of
	// being cancelled on return.
	handOver := func(r hedgeResult[T]) T {
		if r.n > 0 && x.keep != nil {
			c := cancels[r.n-1]
			cancels[r.n-1] = nil
			return x.keep(r.v, c)
		}
		return r.v
	}
	finish := func(r hedgeResult[T], err error) (T, error) {
		v := handOver(r)
		for _, c := range cancels {
			if c != nil {
				c()
			}
		}
		for ; inflight > 0; inflight-- {
			x.drop((<-results).v)
		}
		return v, err
	}

	var timer clock.Timer
	var timerC <-chan time.Time
	// fire starts the next attempt, if it may start; arm schedules fire
	// after d (at once for d <= 0: a fake clock only fires on Advance).
	var fire func()
	arm := func(d time.Duration) {
		if timer != nil {
			timer.Stop()
			select {
			case <-timer.C():
			default:
			}
		}
		timerC = nil
		if d <= 0 {
			fire()
			return
		}
		if timer == nil {
			timer = p.clock.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		timerC = timer.C()
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()

	var (
		last     hedgeResult[T]
		lastVd   verdict
		haveLast bool
		stopped  = false // no more attempts will start
		reason   = ReasonAttempts
		cause    error         // the failure that armed the timer; nil for a hedge delay
		pending  time.Duration // the delay the timer was armed with
	)
	stopWith := func(r Reason) {
		if !stopped {
			stopped, reason = true, r
		}
	}
	fire = func() {
		if stopped || launched >= p.maxAttempts {
			stopWith(ReasonAttempts)
			return
		}
		if inflight >= p.hedge.maxInFlight {
			return // a result will re-arm the timer
		}
		if !p.fits(ctx, start, 0) {
			stopWith(ReasonDeadline)
			return
		}
		if !p.budget.withdraw() {
			stopWith(ReasonBudget)
			return
		}
		ev := RetryEvent{Attempt: launched + 1, Delay: pending, Err: cause, Hedge: inflight > 0}
		if ev.Hedge {
			p.hedges.Add(1)
		} else {
			p.retries.Add(1)
		}
		p.notify(ctx, ev)
		launch()
		if d, ok := p.hedge.next(); ok && launched < p.maxAttempts {
			cause, pending = nil, d
			arm(d)
		}
	}
	launch()
	if d, ok := p.hedge.next(); ok && p.maxAttempts > 1 {
		arm(d)
		pending = d
	}
	for {
		if stopped && inflight == 0 {
			// The last result may be returned (an HTTP response on a
			// failing status): like a winner's, it is handed over.
			return x.stop(ctx, launched, reason, handOver(last), lastVd.err)
		}
		select {
		case r := <-results:
			inflight--
			vd := x.judge(ctx, r.v, r.err)
			if !vd.retry {
				if r.err == nil {
					p.hedge.record(time.Duration(p.clock.Nanotime() - r.began))
				}
				return finish(r, vd.err)
			}
			if haveLast {
				x.drop(last.v)
			}
			last, lastVd, haveLast = r, vd, true
			if ctx.Err() != nil {
				x.drop(last.v)
				return finish(hedgeResult[T]{}, canceled(ctx, vd.err))
			}
			switch {
			case vd.hasPushback && vd.pushback < 0:
				stopWith(ReasonPushback)
			case launched >= p.maxAttempts:
				stopWith(ReasonAttempts)
			case stopped:
			case inflight > 0:
				// Replace the failed attempt now, or after the pushback.
				d := time.Duration(0)
				if vd.hasPushback && p.maxPushback >= 0 {
					d = min(vd.pushback, p.maxPushback)
				}
				cause, pending = vd.err, d
				arm(d)
			default:
				d, ok := x.nextDelay(launched, vd)
				if !ok {
					stopWith(ReasonAttempts)
					break
				}
				if !p.fits(ctx, start, d) {
					stopWith(ReasonDeadline)
					break
				}
				cause, pending = vd.err, d
				arm(d)
			}
		case <-timerC:
			timerC = nil
			fire()
		case <-ctx.Done():
			var lastErr error
			if haveLast {
				x.drop(last.v)
				lastErr = lastVd.err
			}
			_, _ = finish(hedgeResult[T]{}, nil)
			return zero, canceled(ctx, lastErr)
		}
	}
}
