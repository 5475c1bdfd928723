package retry

import (
	"context"
	"math"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Defaults of [Config] and [HedgeConfig], named after the fields they fill.
const (
	DefaultMaxAttempts     = 3
	DefaultBaseDelay       = 100 * time.Millisecond
	DefaultMaxDelay        = 10 * time.Second
	DefaultMaxPushback     = 30 * time.Second
	DefaultMaxBufferedBody = 1 << 20
	DefaultMaxInFlight     = 2
)

// Bounds of the [Config] fields that size something. MaxAttempts has none:
// no memory grows with it, so math.MaxInt is a valid way to say "retry
// until MaxDuration or the context's deadline".
const (
	// MaxBufferedBodyLimit bounds Config.MaxBufferedBody (1 GiB).
	MaxBufferedBodyLimit = 1 << 30
	// MaxInFlightLimit bounds HedgeConfig.MaxInFlight: the attempts of one
	// call that may run at once.
	MaxInFlightLimit = 64
)

// Config configures a [Policy]. The zero value is useful: 3 attempts in
// all, exponential backoff from 100ms with full jitter capped at 10s, the
// default classification, a per-Policy retry budget, no hedging.
//
// Bad values (negative durations or counts where the field does not allow
// them, NaN, a Jitter or Percentile out of range, sizes past their bound)
// make [Config.Validate] return a *[bulwark.ConfigError] and [New] panic
// with it.
type Config struct {
	// Name identifies the policy in telemetry (attribute bulwark.name).
	Name string

	// MaxAttempts is the number of attempts, the first one and hedges
	// included. Default 3; 1 disables retries; math.MaxInt retries until
	// MaxDuration, the context's deadline or the budget stops it.
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
	// (never on the success path), and the BackOff it returns is Reset
	// before its first NextBackOff, as backoff.Retry does, so a literal
	// such as &backoff.ExponentialBackOff{...} works. A backoff.Stop ends
	// the retries with Reason ReasonAttempts.
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
	// ClassifyHTTP judges a round trip of the RoundTripper; only a Failure
	// is retried. Nil means bulwark's HTTP rules: 5xx except 501, 408 and
	// 429 are failures, and a transport error is judged by Classify.
	ClassifyHTTP bulwark.HTTPClassifier

	// MaxPushback caps the delay a server may request (Retry-After on a
	// 429 or 503, grpc-retry-pushback-ms, [Pushback]): the call is retried
	// after that delay, not the schedule's, and given up at once if the
	// delay does not fit in the time left, so that a call that cannot
	// succeed yet does not spend the budget. Default 30s. A negative value
	// ignores requested delays and keeps the policy's own schedule; a
	// request not to retry is still honoured.
	MaxPushback time.Duration

	// WaitRejected decides what happens when a layer below rejects an
	// attempt locally, without sending it: an error with a method
	// RetryAfter() time.Duration anywhere in its chain, such as an open
	// circuit breaker's *breaker.OpenError. By default (false) the call
	// ends at once with an *[ExhaustedError] of Reason [ReasonRejected]
	// that unwraps to the rejection (errors.Is(err, breaker.ErrOpen)
	// holds): nothing was sent, so there is nothing to retry yet, and a
	// caller without a deadline must not sleep out a breaker's open
	// period. When true, the rejection is retried like server pushback
	// (after its RetryAfter, capped by MaxPushback; the schedule if it
	// has none), but only within a bound: the context's deadline or
	// MaxDuration; a call with neither still ends at once.
	WaitRejected bool

	// IdempotencyKey (RoundTripper only) makes POST and PATCH requests
	// retryable by giving each one that has no Idempotency-Key header a
	// fresh one (a random UUIDv4), the same on every attempt of that
	// request, so that an idempotency middleware on the server (package
	// idempotency) runs it once. Off by default: without such a server, a
	// retried POST may act twice.
	IdempotencyKey bool
	// MaxBufferedBody (RoundTripper only) is the largest request body,
	// without GetBody, that is buffered in memory so that it can be sent
	// again. A larger body is sent once, not retried. Default 1 MiB, at
	// most MaxBufferedBodyLimit; negative means never buffer (only
	// requests with GetBody, as built by http.NewRequest for in-memory
	// bodies, or without a body, are retried).
	MaxBufferedBody int64

	// Budget bounds retries and hedges as a fraction of calls. Nil means
	// a budget of this Policy's own, with the defaults of BudgetConfig
	// (10% of calls plus 10 retries a second, over 10 seconds). Share one
	// Budget between the policies of a client; UnlimitedBudget disables
	// the bound.
	Budget *Budget

	// Hedge configures hedged attempts. The zero value disables hedging.
	Hedge HedgeConfig

	// OnRetry, if set, is called before each retry and each hedge, with
	// the caller's ctx, synchronously from the goroutine that runs the
	// call (Do, Call or RoundTrip), before the delay is slept. It must be
	// quick. It may run concurrently with itself for concurrent calls,
	// never for one call, and may use the Policy. A panic in it reaches
	// the caller.
	OnRetry func(ctx context.Context, ev Event)

	// MeterProvider receives the policy's metrics; nil means the global
	// provider.
	MeterProvider metric.MeterProvider

	// clock is the time source of the package's own white-box tests; nil
	// (always, outside them) means internal/clock.Real, which follows a
	// testing/synctest bubble's fake time.
	clock clock.Clock
}

// Validate reports the first bad field of c as a *[bulwark.ConfigError]
// (errors.Is(err, bulwark.ErrInvalidConfig)), or nil.
func (c Config) Validate() error {
	v := validate.New("retry")
	v.Check(c.MaxAttempts >= 0, "MaxAttempts", c.MaxAttempts, "0 (default) or a positive count")
	v.Duration("BaseDelay", c.BaseDelay, 0)
	v.Duration("MaxDelay", c.MaxDelay, 0)
	v.Check(c.Jitter <= NoJitter, "Jitter", c.Jitter, "FullJitter, DecorrelatedJitter, EqualJitter or NoJitter")
	v.Duration("MaxDuration", c.MaxDuration, 0)
	v.DurationOrOff("MaxPushback", c.MaxPushback, 0)
	v.Check(c.MaxBufferedBody <= MaxBufferedBodyLimit, "MaxBufferedBody", c.MaxBufferedBody,
		"0 (default), negative (never buffer) or up to MaxBufferedBodyLimit (1 GiB)")
	v.Duration("Hedge.Delay", c.Hedge.Delay, 0)
	p := c.Hedge.Percentile
	v.Check(p == 0 || (p > 0 && p < 1), "Hedge.Percentile", p, "0 (off) or a value in (0, 1)")
	v.Size("Hedge.MaxInFlight", c.Hedge.MaxInFlight, MaxInFlightLimit)
	return v.Err()
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

// Budget defaults, named after the [BudgetConfig] fields they fill.
const (
	DefaultBudgetRatio        = 0.1
	DefaultBudgetMinPerSecond = 10
	DefaultBudgetWindow       = 10 * time.Second
)

// Bounds of [BudgetConfig].
const (
	// MaxBudgetRatio bounds BudgetConfig.Ratio: 100 retries per call is
	// already no bound at all.
	MaxBudgetRatio = 100
	// MaxBudgetMinPerSecond bounds BudgetConfig.MinPerSecond.
	MaxBudgetMinPerSecond = 1e6
)

// BudgetConfig configures a [Budget]. The zero value is valid: retries up
// to 10% of calls plus 10 retries a second, over a 10-second window. Bad
// values (NaN, infinities, out of range) make [BudgetConfig.Validate]
// return a *[bulwark.ConfigError] and [NewBudget] panic with it.
type BudgetConfig struct {
	// Ratio is the number of retries (and hedges) allowed per call made
	// (first attempts), over the window. Default 0.1: retries add at most
	// 10% to the load a dependency sees, plus the floor below. At most
	// MaxBudgetRatio.
	Ratio float64
	// MinPerSecond is a floor of retries allowed per second whatever the
	// traffic, so that a low-traffic client can still retry. Default 10;
	// a negative value means no floor; at most MaxBudgetMinPerSecond.
	MinPerSecond float64
	// Window is how long a call's deposit and a retry's withdrawal count.
	// Default 10s.
	Window time.Duration

	clock clock.Clock // tests only; nil means internal/clock.Real
}

// Validate reports the first bad field of c as a *[bulwark.ConfigError],
// or nil.
func (c BudgetConfig) Validate() error {
	v := validate.New("retry")
	v.Float("Budget.Ratio", c.Ratio, 0, MaxBudgetRatio)
	m := c.MinPerSecond
	v.Check(!math.IsNaN(m) && !math.IsInf(m, -1) && m <= MaxBudgetMinPerSecond, "Budget.MinPerSecond", m,
		"0 (default), negative (no floor) or a value up to 1e6")
	v.Duration("Budget.Window", c.Window, 0)
	return v.Err()
}
