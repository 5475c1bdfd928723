// Package breaker is a circuit breaker: it stops calling a dependency that
// keeps failing, so that the caller fails fast instead of piling up on a
// dead backend, and probes the dependency now and then to notice when it is
// back.
//
//	b := breaker.New(breaker.Config{Name: "payments"})
//	err := b.Do(ctx, func(ctx context.Context) error { return callPayments(ctx) })
//	if errors.Is(err, breaker.ErrOpen) { ... serve a fallback ... }
//
// # Three ways to call
//
//   - Do(ctx, fn) and the generic Call[T]: the breaker runs fn and judges
//     its error with ctx (a cancellation by the caller is neutral). A
//     panicking fn is recorded as a failure and the panic continues.
//   - Allow then Done (or Record): the two-step form for hot paths and
//     adapters, which allocates nothing and, in the closed state, takes
//     about as long as two atomic operations.
//   - Adapters: RoundTripper (client), Handler (server), [Set] for one
//     breaker per host, gRPC method or tenant, and the gRPC interceptors in
//     package grpcx.
//
// # States
//
//	                 trip rule met
//	   ┌────────┐ ───────────────────▶ ┌────────┐
//	   │ Closed │                      │  Open  │ ◀─┐ probe verdict: failing,
//	   └────────┘ ◀──┐                 └────────┘   │ or HalfOpenMaxWait passed
//	                 │  probes healthy      │       │ with every slot taken
//	                 │                      │ open duration passed
//	                 │                      ▼ (lazily, on the next call)
//	                 │                ┌──────────┐  │
//	                 └─────────────── │ HalfOpen │ ─┘
//	                                  └──────────┘
//
//	ForceOpen() ─▶ ForcedOpen (rejects all)   Disable() ─▶ Disabled (admits all,
//	Reset() ─▶ Closed, from any state                      counts nothing)
//
// Closed admits every call and counts outcomes. The trip rule is one of:
// the failure rate (and, with SlowCallDuration, the slow-call rate) over a
// sliding window of the last WindowSize calls or of the last
// WindowDuration, judged once the window holds MinimumCalls calls; or, in
// consecutive mode, ConsecutiveFailures failures in a row (gobreaker's
// default, for easy migration).
//
// Open rejects every call for the open duration: OpenDuration on a first
// trip, multiplied by OpenDurationGrowth on each repeated trip up to
// MaxOpenDuration, minus up to OpenJitter of it at random. No timer runs:
// the first call (or State) after the duration moves the breaker to
// HalfOpen.
//
// HalfOpen admits exactly HalfOpenProbes calls and rejects the rest with
// ErrHalfOpenFull. The probes decide: the breaker closes when all have
// reported and their failure rate is under the threshold (in consecutive
// mode: when all succeeded), and reopens as soon as the verdict can only be
// "failing". A neutral probe gives its slot back. Once HalfOpenMaxWait has
// passed, a call that finds no free slot reopens the breaker, so a probe
// that hangs or never reports cannot wedge it.
//
// Every state change starts a new generation. A Ticket remembers the
// generation it was issued in, and a result that comes back in a later one
// is discarded: a slow call admitted before a trip does not count toward
// the half-open verdict, and so on.
//
// # Defaults
//
// The zero Config gives a rate-mode breaker with a count window:
//
//	field               default   from
//	WindowSize          100       resilience4j slidingWindowSize
//	WindowBuckets       10        Hystrix rolling-window buckets (time window)
//	FailureRate         0.5       resilience4j failureRateThreshold
//	MinimumCalls        20        Hystrix requestVolumeThreshold
//	SlowCallDuration    off       resilience4j's 60 s / 100% is off in effect
//	SlowCallRate        1.0       resilience4j slowCallRateThreshold
//	OpenDuration        5 s       Polly BreakDuration
//	OpenDurationGrowth  2         exponential, as Polly/resilience4j generators
//	MaxOpenDuration     60 s      gobreaker Timeout, resilience4j open wait
//	OpenJitter          0.1       so that clients do not probe in lockstep
//	HalfOpenProbes      10 (1)    resilience4j (gobreaker MaxRequests in
//	                              consecutive mode)
//	HalfOpenMaxWait     30 s      resilience4j has this, off by default
//
// # Outcomes
//
// A nil error is a success. A call cancelled by its own caller is neutral:
// it counts neither way (Done, which has no context, treats
// context.Canceled as neutral). Anything else is a failure, unless
// Config.Classify says otherwise. HTTP adapters count 5xx except 501, and
// 408 and 429, as failures, unless Config.ClassifyHTTP says otherwise;
// grpcx counts Unavailable, DeadlineExceeded,
// ResourceExhausted, Aborted, Internal and Unknown.
//
// # Errors
//
// A rejected call gets an [*OpenError]: errors.Is(err, ErrOpen) when the
// breaker is open or forced open, errors.Is(err, ErrHalfOpenFull) when
// half-open with no probe slot free. It carries Until, when the breaker
// will next let a call through (for half-open only an upper bound), and
// RetryAfter, the wait to suggest: until Until when open, at most one
// second when half-open, where probes usually settle quickly; package
// retry honours it as pushback. One OpenError is built per
// state change and shared by every rejection, so rejecting allocates
// nothing. Handler and [WriteRejection] turn it into 503 Service
// Unavailable with Retry-After; grpcx turns it into codes.Unavailable
// (keeping errors.Is working).
//
// # Telemetry
//
// Meter "github.com/bulwark-go/bulwark/breaker"; every instrument is
// asynchronous, read from the breaker's own counters at collection time,
// so calls pay nothing for metrics:
//
//	bulwark.breaker.calls        counter {call}   bulwark.outcome = success|failure|neutral
//	bulwark.breaker.slow_calls   counter {call}
//	bulwark.breaker.rejections   counter {call}
//	bulwark.breaker.transitions  counter {transition}  bulwark.breaker.from, bulwark.breaker.to
//	bulwark.breaker.state        gauge   1 for the current state, 0 for the others,
//	                                     by bulwark.breaker.state
//
// All carry bulwark.name (Config.Name), and bulwark.key in a Set. Do,
// Call, RoundTripper and Handler add the span events
// "bulwark.breaker.rejected" and "bulwark.breaker.state_change" to the
// caller's recording span. Each breaker registers a metric callback; Close
// unregisters it (a Set closes the breakers it evicts).
//
// # Performance
//
// In the closed state, Allow reads one atomic word (state and generation
// packed together) that changes only on state changes, so every core keeps
// it cached. Done adds one to a counter cell that belongs to the current P
// (package internal/stripe), so cores do not fight over a cache line.
// Trip rules are only evaluated on failures and slow calls, and on
// successes only while a window short of MinimumCalls has already seen its
// rate over the threshold (a success may then complete the minimum). The clock is read not at all per call
// for a count window or consecutive mode, once for a time window, twice
// with slow-call detection. State changes take a mutex and allocate a new
// period; they are rare.
package breaker
