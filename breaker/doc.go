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
//     panicking fn is recorded as a failure and the panic continues. A
//     nil ctx or fn is the caller's bug: Do and Call panic at once, naming
//     the argument.
//   - Allow then Done (or Record): the two-step form for hot paths and
//     adapters, which allocates nothing and, in the closed state, takes
//     about as long as two atomic operations.
//   - Adapters: RoundTripper (client), Handler (server), [Set] for one
//     breaker per host, gRPC method or tenant (with its own RoundTripper
//     and Handler), and the gRPC client and server interceptors in
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
// default, for easy migration). The rule is judged when an outcome is
// recorded (see "Performance" for which ones), never by a timer: the
// breaker opens at the first recorded call that finds the rule met, and
// that call's own outcome is counted first.
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
// Unless Config.Classify says otherwise (the rules are bulwark's, shared by
// every package):
//
//   - A nil error is a success.
//   - A call whose own ctx was cancelled is neutral, whatever
//     [context.Cause] says and whatever error the call returned: with
//     [context.WithCancelCause], net/http and most libraries return the
//     cause, which need not wrap context.Canceled. It counts neither way.
//   - Except an attempt cancelled with the cause [bulwark.ErrSuperseded]:
//     package retry cancels a hedge's losers that way, and such an attempt
//     is a failure, since its endpoint was slower than the hedge delay (a
//     slow or hung endpoint would otherwise never trip its breaker, and
//     every request routed to it would pay the hedge delay).
//   - Anything else is a failure, context.DeadlineExceeded included.
//
// Done and Record have no context: Done treats an error matching
// context.Canceled as neutral and cannot see a cause; use Do, Call or the
// adapters, or classify yourself and call Record. HTTP adapters count
// 5xx except 501, and 408 and 429, as failures, unless Config.ClassifyHTTP
// says otherwise; Handler counts a request whose client went away as
// neutral. grpcx counts Unavailable, DeadlineExceeded, ResourceExhausted,
// Aborted, Internal and Unknown as failures, with the same rules for
// contexts.
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
// asynchronous, read from the breakers' own counters at collection time,
// so calls pay nothing for metrics:
//
//	bulwark.breaker.calls        counter {call}        bulwark.outcome = success|failure|neutral
//	bulwark.breaker.slow_calls   counter {call}
//	bulwark.breaker.rejections   counter {call}
//	bulwark.breaker.transitions  counter {transition}  bulwark.breaker.from, bulwark.breaker.to
//	bulwark.breaker.state        gauge   {state}       bulwark.breaker.state: 1 for the current
//	                                                   state, 0 for the others
//
// (A Prometheus exporter names them bulwark_breaker_calls_total, ...,
// bulwark_breaker_state.) All carry bulwark.name (Config.Name). A breaker
// made by New registers one callback; Close unregisters it. A [Set]
// registers one callback for all its members and reports each with
// bulwark.key, or, with SetConfig.AggregateMetrics, one series for the
// whole set (the state gauge then counts members in each state);
// Set.Close unregisters it. Attribute sets are built by the callback, when
// a reader collects, not kept per breaker.
//
// Do, Call, RoundTripper, Handler and the grpcx interceptors add the span
// events "bulwark.breaker.rejected" and "bulwark.breaker.state_change" to
// the caller's recording span.
//
// # Performance
//
// In the closed state, Allow reads one atomic word (state and generation
// packed together) that changes only on state changes, so every core keeps
// it cached. Done adds one to a counter cell that belongs to the current P
// (package internal/stripe), so cores do not fight over a cache line.
//
// Trip rules are judged on every failure and slow call; on successes
// while a window short of MinimumCalls has already seen its rate over the
// threshold (a success may then complete the minimum); and, in a time
// window, on the first call each P records in each bucket period
// (WindowDuration/WindowBuckets), because older calls may just have aged
// out of the window and left a rate over the threshold without any new
// failure. That last judgement sums WindowBuckets buckets per P, once per
// P per bucket period: with the defaults, a few dozen loads a second. A
// count window needs no such judgement: a success can only lower its
// rate. The clock is read not at all per call for a count window or
// consecutive mode, once for a time window, twice with slow-call
// detection. State changes take a mutex and allocate a new period; they
// are rare.
//
// # Memory
//
// A breaker in the closed state holds about 880 bytes at GOMAXPROCS=2:
// 128 bytes per P for its per-P counters (the P count rounded up to a
// power of two) and about 620 bytes for the rest. A count window adds its
// ring of WindowSize 8-byte slots (twice that with slow-call detection)
// at the first failure after a state change; a time window adds 32 bytes
// per bucket per P (plus 4 buckets of padding per P). Sizes are bounded:
// [MaxWindowSize], [MaxWindowBuckets]. See [NewSet] for a Set's members.
//
// # Migrating from gobreaker
//
// sony/gobreaker v2's Settings, field by field (checked against
// gobreaker v2.4.0):
//
//	gobreaker Settings           bulwark Config
//	Name                         Name
//	MaxRequests (0: 1)           HalfOpenProbes (0: 1 in consecutive mode, 10 in rate mode);
//	                             gobreaker closes after MaxRequests successes in a row and
//	                             reopens on any failure, as consecutive mode does
//	Interval (0: never clear)    no equivalent in consecutive mode (a success resets the run,
//	                             nothing else does); in rate mode WindowDuration, a sliding
//	                             window instead of a cyclic reset
//	BucketPeriod                 WindowDuration / WindowBuckets (rate mode)
//	Timeout (0: 60 s)            OpenDuration, with OpenDurationGrowth: 1 and OpenJitter: -1
//	                             for a fixed period (bulwark's default grows and jitters)
//	ReadyToTrip (0: >5 in a row) ConsecutiveFailures: 6, or FailureRate + MinimumCalls
//	                             (+ WindowSize or WindowDuration) for the usual
//	                             "requests >= n && ratio >= r"; no arbitrary function
//	OnStateChange(name, from, to) OnStateChange(ctx, StateChangeEvent{Name, Key, From, To,
//	                             Counts, Until})
//	IsSuccessful(err) bool       Classify returning bulwark.Success
//	IsExcluded(err) bool         Classify returning bulwark.Neutral
//	(none)                       HalfOpenMaxWait: gobreaker waits for ever for its probes
//
// gobreaker's zero Settings, reproduced:
//
//	breaker.Config{ConsecutiveFailures: 6, OpenDuration: 60 * time.Second, OpenDurationGrowth: 1, OpenJitter: -1, HalfOpenProbes: 1, HalfOpenMaxWait: breaker.MaxDuration, Classify: func(_ context.Context, err error) bulwark.Outcome { if err == nil { return bulwark.Success }; return bulwark.Failure }}
//
// Classify makes every error a failure, as gobreaker does (bulwark's
// default counts a caller's cancellation as neutral, which is usually
// what you want: drop Classify to keep it). Two differences remain: at
// exactly the end of the open period gobreaker still rejects and bulwark
// admits the probe (gobreaker opens the door one nanosecond later), and
// HalfOpenMaxWait cannot be infinite (MaxDuration is 24 hours). The
// benchmarks module's TestBreakerMatchesGobreaker feeds both the same
// sequences and requires the same decisions.
//
// With ConsecutiveFailures: 6 and nothing else, bulwark probes much sooner
// than gobreaker's zero Settings: the first trip lasts 4.5 to 5 s (5 s,
// minus up to 10% jitter) against a fixed 60 s, then 10, 20, 40 and 60 s
// on repeated trips; and a probe that hangs reopens the breaker after 30
// s (HalfOpenMaxWait) where gobreaker would wait for ever.
package breaker
