package retry

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/outcome"
	"github.com/bulwark-go/bulwark/internal/tried"
)

// Policy retries calls according to its Config. Create one with [New] per
// dependency and share it: it is safe for concurrent use, and its budget,
// latency sample and metrics are meant to see all the traffic to that
// dependency. Call Close when the policy is no longer used.
type Policy struct {
	name           string
	maxAttempts    int
	base, maxDelay time.Duration
	userCap        bool
	jitter         Jitter
	newBackOff     func() backoff.BackOff
	maxDuration    time.Duration
	maxPushback    time.Duration
	classify       bulwark.Classifier
	userClass      bool
	classifyHTTP   bulwark.HTTPClassifier
	waitRejected   bool
	idempotencyKey bool
	maxBuffered    int64
	budget         *Budget
	hedge          hedger
	onRetry        func(context.Context, Event)
	clock          clock.Clock
	closed         atomic.Bool

	calls   *counter // first attempts: the success path's one atomic add
	retries atomic.Uint64
	hedges  atomic.Uint64
	giveUps [numReasons]atomic.Uint64 // by Reason
	tel     instruments
}

// Event describes a retry or a hedge about to start, for Config.OnRetry.
type Event struct {
	// Attempt is the number of the attempt about to start (2 for the
	// first retry).
	Attempt int
	// Delay is the time waited before it.
	Delay time.Duration
	// Err is the error that caused the retry; nil for a hedge sent
	// because the attempts in flight were slow.
	Err error
	// Hedge reports whether the attempt is a hedge, run alongside the
	// attempts still in flight.
	Hedge bool
}

// New returns a Policy configured by cfg; cfg is copied. It panics with
// the *[bulwark.ConfigError] of [Config.Validate] if cfg has a bad value.
func New(cfg Config) *Policy {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	p := &Policy{
		name:           cfg.Name,
		maxAttempts:    cfg.MaxAttempts,
		base:           cfg.BaseDelay,
		maxDelay:       cfg.MaxDelay,
		userCap:        cfg.MaxDelay > 0,
		jitter:         cfg.Jitter,
		newBackOff:     cfg.NewBackOff,
		maxDuration:    cfg.MaxDuration,
		maxPushback:    cfg.MaxPushback,
		classify:       cfg.Classify,
		userClass:      cfg.Classify != nil,
		classifyHTTP:   cfg.ClassifyHTTP,
		waitRejected:   cfg.WaitRejected,
		idempotencyKey: cfg.IdempotencyKey,
		maxBuffered:    cfg.MaxBufferedBody,
		budget:         cfg.Budget,
		onRetry:        cfg.OnRetry,
		clock:          clock.Or(cfg.clock),
		calls:          newCounter(),
	}
	if p.maxAttempts <= 0 {
		p.maxAttempts = DefaultMaxAttempts
	}
	if p.base <= 0 {
		p.base = DefaultBaseDelay
	}
	if p.maxDelay <= 0 {
		p.maxDelay = DefaultMaxDelay
	}
	if p.maxPushback == 0 {
		p.maxPushback = DefaultMaxPushback
	}
	if p.maxBuffered == 0 {
		p.maxBuffered = DefaultMaxBufferedBody
	}
	if p.classify == nil {
		p.classify = outcome.Error
	}
	if p.budget == nil {
		p.budget = NewBudget(BudgetConfig{clock: cfg.clock})
	}
	p.budget.register(p.calls)
	p.hedge.init(cfg.Hedge, p.clock)
	p.tel.init(p, cfg.MeterProvider)
	return p
}

// Close unregisters the policy's metric callbacks and removes it from its
// budget (the calls it made still count until they leave the window). The
// policy remains usable, unobserved, and unbudgeted calls made after Close
// still draw on the budget without depositing. Close is safe to call more
// than once and from several goroutines; calls after the first return nil.
func (p *Policy) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	p.budget.unregister(p.calls)
	return p.tel.close()
}

// classifier returns Config.Classify, or nil when the policy uses the
// default rules of each transport; grpcx reaches it through
// internal/bridge to apply gRPC's rules when the user set none.
func (p *Policy) classifier() bulwark.Classifier {
	if !p.userClass {
		return nil
	}
	return p.classify
}

type attemptKey struct{}

type noHedgeKey struct{}

// WithoutHedging returns a context under which Do, Call and the
// RoundTripper never hedge: attempts run one after another, each with a
// context that stays valid after the call returns. Use it for calls that
// must not run twice at once, or whose result outlives the call (grpcx
// uses it for streams).
func WithoutHedging(ctx context.Context) context.Context {
	return context.WithValue(ctx, noHedgeKey{}, true)
}

// hedging reports whether Config.Hedge enables hedged attempts, so that
// grpcx (through internal/bridge) gives each concurrent attempt its own
// state: its own reply, header and trailer.
func (p *Policy) hedging() bool { return p.hedge.enabled }

// Attempt returns the number of the attempt that ctx belongs to, 1-based,
// inside a function run by Do or Call (grpcx sends it, minus one, as
// grpc-previous-rpc-attempts). It returns 1 for a context that no policy
// marked: the first attempt runs with the caller's context unchanged, to
// keep the success path free of allocations.
func Attempt(ctx context.Context) int {
	if n, ok := ctx.Value(attemptKey{}).(int); ok {
		return n
	}
	return 1
}

func withAttempt(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, attemptKey{}, n)
}

// Do calls fn, then retries it while it fails with a retryable error, the
// policy allows another attempt, the budget has a token and the time left
// allows the next delay. Each attempt gets a context derived from ctx
// (ctx itself for the first), so [Attempt] tells fn which attempt it is.
//
// Do returns nil as soon as fn does. Otherwise:
//   - an error that is not retryable (Permanent, or not a Failure for
//     Config.Classify) is returned as fn returned it, marks removed;
//   - when the policy gives up on a retryable error it returns an
//     *[ExhaustedError] wrapping the last error; errors.Is(err,
//     ErrBudgetExhausted) holds when the budget stopped it, so a call
//     fails fast with its own error when retries are throttled;
//   - an error with a RetryAfter method (a layer below, such as an open
//     breaker, rejected the attempt without running it) ends the call at
//     once with an *[ExhaustedError] of Reason [ReasonRejected] that
//     unwraps to it, unless Config.WaitRejected says to wait;
//   - when ctx is done between attempts, Do returns at once: the last
//     error if it already carries ctx's cause (fn returned ctx.Err()),
//     else an error that matches both the cause and the last error.
//
// With hedging configured, attempts may run concurrently in goroutines,
// each under a context of its own; the losers' are cancelled with the
// cause [bulwark.ErrSuperseded]. Do returns only once every attempt it
// started has returned, so fn must honour its context's cancellation; a
// panic in an attempt is raised again in Do's goroutine once the others
// have returned.
//
// A nil ctx or a nil fn is the caller's bug: Do panics at once, before any
// attempt, with a message naming the argument.
//
// A call whose first attempt succeeds costs one atomic add and allocates
// nothing (without hedging and MaxDuration).
func (p *Policy) Do(ctx context.Context, fn func(context.Context) error) error {
	if ctx == nil {
		panic("retry: Policy.Do called with a nil ctx")
	}
	if fn == nil {
		panic("retry: Policy.Do called with a nil fn")
	}
	if p.hedge.enabled && ctx.Value(noHedgeKey{}) == nil {
		_, err := hedged(ctx, p, newErrExec(p, fn))
		return err
	}
	var start int64
	if p.maxDuration > 0 {
		start = p.clock.Nanotime()
	}
	p.calls.Add(1)
	err := fn(ctx)
	if err == nil {
		return nil
	}
	_, err = newErrExec(p, fn).run(ctx, start, struct{}{}, err)
	return err
}

// Call is [Policy.Do] for a function that returns a value: it returns the
// value of the attempt that succeeded (with hedging, the winner's). On
// error it returns the value the last attempt returned with its error. A
// nil ctx or a nil fn panics at once, as in Do.
func Call[T any](ctx context.Context, p *Policy, fn func(context.Context) (T, error)) (T, error) {
	if ctx == nil {
		panic("retry: Call called with a nil ctx")
	}
	if fn == nil {
		panic("retry: Call called with a nil fn")
	}
	if p.hedge.enabled && ctx.Value(noHedgeKey{}) == nil {
		return hedged(ctx, p, newCallExec(p, fn))
	}
	var start int64
	if p.maxDuration > 0 {
		start = p.clock.Nanotime()
	}
	p.calls.Add(1)
	v, err := fn(ctx)
	if err == nil {
		return v, nil
	}
	return newCallExec(p, fn).run(ctx, start, v, err)
}

func newErrExec(p *Policy, fn func(context.Context) error) *exec[struct{}] {
	return &exec[struct{}]{
		p:  p,
		fn: func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) },
	}
}

func newCallExec[T any](p *Policy, fn func(context.Context) (T, error)) *exec[T] {
	return &exec[T]{p: p, fn: fn}
}

// verdict is the judgement on one attempt's result.
type verdict struct {
	retry       bool
	err         error // the error to return if the call ends here
	pushback    time.Duration
	hasPushback bool
	// rejected: a layer below rejected the attempt locally (the error has
	// a RetryAfter method and no Pushback mark); nothing was sent.
	rejected bool
}

func (p *Policy) judgeErr(ctx context.Context, err error) verdict {
	if err == nil {
		return verdict{}
	}
	if e, ok := isPermanent(err); ok {
		return verdict{err: strip(e)}
	}
	if e := strip(err); p.classify(ctx, e) != bulwark.Failure {
		return verdict{err: e}
	}
	return failed(err)
}

// failed is the verdict on a retryable error: with the pushback it
// carries, if any.
func failed(err error) verdict {
	pb, has, local := pushbackOf(err)
	return verdict{retry: true, err: strip(err), pushback: pb, hasPushback: has, rejected: local}
}

// exec runs the retries of one call. It is built only once the first
// attempt has failed, so the success path never pays for it.
type exec[T any] struct {
	p  *Policy
	fn func(context.Context) (T, error)
	// judgeResult judges an attempt's result; nil means Policy.judgeErr
	// (one closure fewer to allocate for Do and Call).
	judgeResult func(context.Context, T, error) verdict
	// discard releases a result that will not be returned (an HTTP
	// response to drain and close); nil for none.
	discard func(T)
	// giveUp builds the call's result when retries stop on a retryable
	// result; nil means (v, *ExhaustedError).
	giveUp func(attempts int, reason Reason, v T, err error) (T, error)
	// tag, if set, returns the record of the endpoints an attempt went
	// to that a balancer below hands back with a failed result (see
	// internal/tried); nil means tried.Of(err).
	tag func(T, error) *tried.Record
	// keep, if set, takes a hedged result that is to be returned (the
	// winner's, or the last one when retries stop, which giveUp may
	// return) and the cancel func of its attempt's context, which it must
	// arrange to call; without it, that context is cancelled when the
	// call returns.
	keep func(v T, cancel context.CancelFunc) T

	bo   backoff.BackOff
	prev time.Duration
}

func (x *exec[T]) judge(ctx context.Context, v T, err error) verdict {
	if x.judgeResult != nil {
		return x.judgeResult(ctx, v, err)
	}
	return x.p.judgeErr(ctx, err)
}

// recordOf returns the record a balancer below handed back with the
// result (v, err), or nil.
func (x *exec[T]) recordOf(v T, err error) *tried.Record {
	if x.tag != nil {
		return x.tag(v, err)
	}
	return tried.Of(err)
}

func (x *exec[T]) drop(v T) {
	if x.discard != nil {
		x.discard(v)
	}
}

func (x *exec[T]) stop(ctx context.Context, attempts int, reason Reason, v T, err error) (T, error) {
	x.p.giveUps[reason].Add(1)
	x.p.tel.exhausted(ctx, attempts, reason)
	if x.giveUp != nil {
		return x.giveUp(attempts, reason, v, err)
	}
	return v, &ExhaustedError{Attempts: attempts, Last: err, Reason: reason}
}

// nextDelay returns the delay before retry number retry (1-based), or
// false when the schedule says stop.
func (x *exec[T]) nextDelay(retry int, vd verdict) (time.Duration, bool) {
	p := x.p
	if vd.hasPushback && p.maxPushback >= 0 {
		return min(vd.pushback, p.maxPushback), true
	}
	if p.newBackOff != nil {
		if x.bo == nil {
			// Reset before first use, as backoff.Retry does: a BackOff
			// built as a literal has no start time until Reset.
			x.bo = p.newBackOff()
			x.bo.Reset()
		}
		d := x.bo.NextBackOff()
		if d == backoff.Stop {
			return 0, false
		}
		if p.userCap {
			d = min(d, p.maxDelay)
		}
		return d, true
	}
	d := delay(p.jitter, p.base, p.maxDelay, retry, x.prev, uniform())
	x.prev = d
	return d, true
}

// endsAtOnce reports whether a local rejection ends the call now: always,
// unless Config.WaitRejected is set and the call has a bound (a deadline or
// MaxDuration) that any wait will be checked against.
func (p *Policy) endsAtOnce(ctx context.Context, vd verdict) bool {
	if !vd.rejected {
		return false
	}
	if !p.waitRejected {
		return true
	}
	_, hasDeadline := ctx.Deadline()
	return !hasDeadline && p.maxDuration <= 0
}

// fits reports whether a delay d, starting now, ends before ctx's deadline
// and within MaxDuration of start.
func (p *Policy) fits(ctx context.Context, start int64, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && !p.clock.Now().Add(d).Before(dl) {
		return false
	}
	if p.maxDuration > 0 && time.Duration(p.clock.Nanotime()-start)+d >= p.maxDuration {
		return false
	}
	return true
}

// run retries after a failed first attempt whose result is (v, err).
//
// The attempts after the first run under a context that carries the
// call's record of the endpoints its attempts went to (internal/tried),
// so that a balancer below sends each to an endpoint not tried yet: the
// record of ctx, if it has one, else the record a balancer handed back
// with a failed attempt's result, adopted from then on.
func (x *exec[T]) run(ctx context.Context, start int64, v T, err error) (T, error) {
	p := x.p
	actx := ctx // what the attempts' contexts derive from
	rec := tried.From(ctx)
	for attempt := 1; ; attempt++ {
		vd := x.judge(ctx, v, err)
		if !vd.retry {
			return v, vd.err
		}
		if ctx.Err() != nil {
			x.drop(v)
			var zero T
			return zero, canceled(ctx, vd.err)
		}
		if vd.hasPushback && vd.pushback < 0 {
			return x.stop(ctx, attempt, ReasonPushback, v, vd.err)
		}
		if p.endsAtOnce(ctx, vd) {
			return x.stop(ctx, attempt, ReasonRejected, v, vd.err)
		}
		if attempt >= p.maxAttempts {
			return x.stop(ctx, attempt, ReasonAttempts, v, vd.err)
		}
		d, ok := x.nextDelay(attempt, vd)
		if !ok {
			return x.stop(ctx, attempt, ReasonAttempts, v, vd.err)
		}
		if !p.fits(ctx, start, d) {
			return x.stop(ctx, attempt, ReasonDeadline, v, vd.err)
		}
		if !p.budget.withdraw() {
			return x.stop(ctx, attempt, ReasonBudget, v, vd.err)
		}
		p.retries.Add(1)
		p.notify(ctx, Event{Attempt: attempt + 1, Delay: d, Err: vd.err})
		if r := x.recordOf(v, err); r != nil {
			if rec == nil {
				rec, actx = r, tried.With(ctx, r)
			} else {
				rec.Merge(r)
			}
		}
		x.drop(v)
		if err := clock.Sleep(ctx, p.clock, d); err != nil {
			var zero T
			return zero, canceled(ctx, vd.err)
		}
		v, err = x.fn(withAttempt(actx, attempt+1))
	}
}

func (p *Policy) notify(ctx context.Context, ev Event) {
	p.tel.retry(ctx, ev)
	if p.onRetry != nil {
		p.onRetry(ctx, ev)
	}
}
