package retry

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/outcome"
)

// Defaults of [Config].
const (
	DefaultMaxAttempts = 3
	DefaultBaseDelay   = 100 * time.Millisecond
	DefaultMaxDelay    = 10 * time.Second
	DefaultMaxPushback = 30 * time.Second
)

// Config configures a [Policy]. The zero value is useful: 3 attempts in
// all, exponential backoff from 100ms with full jitter capped at 10s, the
// default classification, a per-Policy retry budget, no hedging.
type Config struct {
	// Name identifies the policy in telemetry (attribute bulwark.name).
	Name string

	// MaxAttempts is the number of attempts, the first one and hedges
	// included. Default 3; 1 disables retries.
	MaxAttempts int

	// BaseDelay is the delay before the first retry, before jitter; each
	// retry doubles it. Default 100ms.
	BaseDelay time.Duration
	// MaxDelay caps one delay. Default 10s. It also caps the delays of
	// NewBackOff, but only when set.
	MaxDelay time.Duration
	// Jitter randomises the exponential schedule. Default FullJitter.
	Jitter Jitter
	// NewBackOff, if set, replaces the built-in schedule with any
	// github.com/cenkalti/backoff/v4 BackOff. It is a factory because a
	// BackOff is stateful: it is called once per call that needs a retry
	// (never on the success path). A backoff.Stop ends the retries with
	// Reason ReasonAttempts.
	NewBackOff func() backoff.BackOff

	// MaxDuration bounds the time spent in one Do or Call, counted from
	// its start: no delay is slept, and so no retry started, that would
	// end past it. It does not cut an attempt short (stack a timeout for
	// that). Zero means only the context's deadline bounds the call. When
	// set, each call reads the clock once more.
	MaxDuration time.Duration

	// Classify decides what is retryable: only a Failure is retried.
	// Nil means the default rules of the transport: for Do and Call, any
	// error but the caller's own cancellation is a failure; the
	// RoundTripper and the grpcx interceptors apply the HTTP and gRPC
	// rules of the bulwark package doc. Errors marked with Permanent are
	// never retried, whatever Classify says.
	Classify bulwark.Classifier

	// MaxPushback caps the delay a server may request (Retry-After,
	// grpc-retry-pushback-ms, [Pushback]) or an error may carry: an
	// error with a method RetryAfter() time.Duration, such as the
	// rejection of an open circuit breaker (*breaker.OpenError), is
	// retried after that delay, not the schedule's, and given up at once
	// if the delay does not fit in the time left, so that a call that
	// cannot succeed yet does not spend the budget. Default 30s. A
	// negative value ignores requested delays and keeps the policy's own
	// schedule; a request not to retry is still honoured.
	MaxPushback time.Duration

	// Budget bounds retries and hedges as a fraction of calls. Nil means
	// a budget of this Policy's own, with the defaults of BudgetConfig
	// (10% of calls plus 10 retries a second, over 10 seconds). Share one
	// Budget between the policies of a client; UnlimitedBudget disables
	// the bound.
	Budget *Budget

	// Hedge configures hedged attempts. The zero value disables hedging.
	Hedge HedgeConfig

	// HTTP configures the RoundTripper.
	HTTP HTTPConfig

	// OnRetry, if set, is called before each retry and each hedge, from
	// the goroutine running the call, before the delay is slept. It must
	// not block.
	OnRetry func(ctx context.Context, ev RetryEvent)

	// Clock is the time source; nil means the real clock. Tests set a
	// fake one.
	Clock clock.Clock

	// MeterProvider receives the policy's metrics; nil means the global
	// provider.
	MeterProvider metric.MeterProvider
}

// RetryEvent describes a retry or a hedge about to start, for
// Config.OnRetry.
type RetryEvent struct {
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
	budget         *Budget
	hedge          hedger
	http           HTTPConfig
	onRetry        func(context.Context, RetryEvent)
	clock          clock.Clock

	calls   *counter // first attempts: the success path's one atomic add
	retries atomic.Uint64
	hedges  atomic.Uint64
	giveUps [4]atomic.Uint64 // by Reason
	tel     instruments
}

// New returns a Policy configured by cfg; cfg is copied.
func New(cfg Config) *Policy {
	p := &Policy{
		name:        cfg.Name,
		maxAttempts: cfg.MaxAttempts,
		base:        cfg.BaseDelay,
		maxDelay:    cfg.MaxDelay,
		userCap:     cfg.MaxDelay > 0,
		jitter:      cfg.Jitter,
		newBackOff:  cfg.NewBackOff,
		maxDuration: cfg.MaxDuration,
		maxPushback: cfg.MaxPushback,
		classify:    cfg.Classify,
		userClass:   cfg.Classify != nil,
		budget:      cfg.Budget,
		http:        cfg.HTTP.withDefaults(),
		onRetry:     cfg.OnRetry,
		clock:       clock.Or(cfg.Clock),
		calls:       newCounter(),
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
	if p.classify == nil {
		p.classify = outcome.Error
	}
	if p.budget == nil {
		p.budget = NewBudget(BudgetConfig{Clock: p.clock})
	}
	p.budget.register(p.calls)
	p.hedge.init(cfg.Hedge, p.clock)
	p.tel.init(p, cfg.MeterProvider)
	return p
}

// Close unregisters the policy's metric callbacks and removes it from its
// budget (the calls it made still count until they leave the window). The
// policy remains usable, unobserved.
func (p *Policy) Close() error {
	p.budget.unregister(p.calls)
	return p.tel.close()
}

// Classifier returns Config.Classify, or nil when the policy uses the
// default rules of each transport. Adapters (such as grpcx) use it to
// apply their own protocol's rules when the user set none.
func (p *Policy) Classifier() bulwark.Classifier {
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

// Hedging reports whether Config.Hedge enables hedged attempts, so that
// adapters can give each concurrent attempt its own state (grpcx decodes
// each hedged attempt into its own reply).
func (p *Policy) Hedging() bool { return p.hedge.enabled }

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
//   - when ctx is done between attempts, Do returns at once: the last
//     error if it already carries ctx's cause (fn returned ctx.Err()),
//     else an error that matches both the cause and the last error.
//
// With hedging configured, attempts may run concurrently in goroutines;
// Do returns only once every attempt it started has returned, so fn must
// honour its context's cancellation.
//
// A nil ctx is taken as [context.Background].
//
// A call whose first attempt succeeds costs one atomic add and allocates
// nothing (without hedging and MaxDuration).
func (p *Policy) Do(ctx context.Context, fn func(context.Context) error) error {
	if ctx == nil {
		ctx = context.Background()
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
// nil ctx is taken as [context.Background].
func Call[T any](ctx context.Context, p *Policy, fn func(context.Context) (T, error)) (T, error) {
	if ctx == nil {
		ctx = context.Background()
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
		judge: func(ctx context.Context, v struct{}, err error) verdict {
			return p.judgeErr(ctx, err)
		},
	}
}

func newCallExec[T any](p *Policy, fn func(context.Context) (T, error)) *exec[T] {
	return &exec[T]{
		p:  p,
		fn: fn,
		judge: func(ctx context.Context, v T, err error) verdict {
			return p.judgeErr(ctx, err)
		},
	}
}

// verdict is the judgement on one attempt's result.
type verdict struct {
	retry       bool
	err         error // the error to return if the call ends here
	pushback    time.Duration
	hasPushback bool
}

func (p *Policy) judgeErr(ctx context.Context, err error) verdict {
	if err == nil {
		return verdict{}
	}
	if e, ok := isPermanent(err); ok {
		return verdict{err: strip(e)}
	}
	pb, has := pushbackOf(err)
	err = strip(err)
	if p.classify(ctx, err) != bulwark.Failure {
		return verdict{err: err}
	}
	return verdict{retry: true, err: err, pushback: pb, hasPushback: has}
}

// exec runs the retries of one call. It is built only once the first
// attempt has failed, so the success path never pays for it.
type exec[T any] struct {
	p     *Policy
	fn    func(context.Context) (T, error)
	judge func(context.Context, T, error) verdict
	// discard releases a result that will not be returned (an HTTP
	// response to drain and close); nil for none.
	discard func(T)
	// giveUp builds the call's result when retries stop on a retryable
	// result; nil means (v, *ExhaustedError).
	giveUp func(attempts int, reason Reason, v T, err error) (T, error)
	// keep, if set, takes a hedged result that is to be returned (the
	// winner's, or the last one when retries stop, which giveUp may
	// return) and the cancel func of its attempt's context, which it must
	// arrange to call; without it, that context is cancelled when the
	// call returns.
	keep func(v T, cancel context.CancelFunc) T

	bo   backoff.BackOff
	prev time.Duration
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
			x.bo = p.newBackOff()
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
func (x *exec[T]) run(ctx context.Context, start int64, v T, err error) (T, error) {
	p := x.p
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
		p.notify(ctx, RetryEvent{Attempt: attempt + 1, Delay: d, Err: vd.err})
		x.drop(v)
		if err := clock.Sleep(ctx, p.clock, d); err != nil {
			var zero T
			return zero, canceled(ctx, vd.err)
		}
		v, err = x.fn(withAttempt(ctx, attempt+1))
	}
}

func (p *Policy) notify(ctx context.Context, ev RetryEvent) {
	p.tel.retry(ctx, ev)
	if p.onRetry != nil {
		p.onRetry(ctx, ev)
	}
}
