// Package limit holds admission control: rate limits (local, per key, and
// distributed over Redis in limit/redisstore), bulkheads (a fixed cap on
// calls in flight) and adaptive concurrency limits (a cap that follows
// latency), with net/http middleware for each; grpcx has the gRPC
// interceptors.
//
//	r := limit.NewRate(limit.RateConfig{Rate: 100, Burst: 20})
//	if !r.Allow() { ... }                      // never blocks
//	err := r.Wait(ctx)                         // blocks; gives up at once if ctx's deadline is too near
//	mux.Handle("/api/", r.Handler(api))        // 429 + Retry-After + RateLimit fields
//
// # Rate limits: GCRA on one word
//
// [Rate] and [Keyed] run the Generic Cell Rate Algorithm. A limit of
// rate R and burst B has an interval T = 1/R between calls and a
// tolerance τ = B·T. The limiter's whole state is one time, the
// theoretical arrival time TAT: a call at time now moves it to
// TAT' = max(TAT, now) + T and is admitted when TAT' − now ≤ τ, storing
// TAT'. After an idle period B calls pass at once; after that one every T.
// A rejected call stores nothing and learns its wait, TAT' − now − τ.
//
// This is the same limit as a token bucket of B tokens refilled at R per
// second (golang.org/x/time/rate), but the state is one int64: Allow is
// one atomic load and, to admit, one read-modify-write (a
// compare-and-swap when the limiter is idle, an atomic add while it is
// busy), with no lock and no allocation; rejecting a full limiter is a
// load only (one per word of a fast limit, below; a call that loses a race
// for the last slot takes its add back). Counting the decision for the
// metrics adds one atomic add (see Telemetry). The distributed limiter in
// limit/redisstore runs the same arithmetic in a Lua script on Redis's
// clock, so a local and a distributed limit with the same Config admit
// the same calls.
//
// # Fast limits
//
// A limit of 10,000 calls a second or more (with a burst of at least 8 per
// processor) is split over one GCRA word per processor, each with its
// share of the rate and the burst, alone on its cache line with
// everything a call on it reads: a call tries its own processor's word
// first, then the others, so cores calling at once do not fight over one
// cache line, and one caller still gets the whole burst and the whole
// rate. The bound holds exactly (at most Burst + w·Rate calls in any
// window w); only the moments of admission may differ from a single
// GCRA's, by a few intervals of a limit that fast.
//
// [Rate.Wait] reserves the caller's turn with the same compare-and-swap
// (moving TAT even into the future), then sleeps until it; it fails at
// once with a [*RejectedError] carrying the wait when the context's
// deadline comes before the turn, and gives the turn back when the
// context ends during the wait.
//
// # Limiters from golang.org/x/time/rate
//
// Middleware takes a [Limiter] — Allow() bool and Wait(ctx) error — which
// *rate.Limiter satisfies: a service that has token buckets already
// passes them to [Handler], [RoundTripper] and grpcx's interceptors as
// they are. The middleware reads a *rate.Limiter's state (for the
// RateLimit fields and Retry-After) through a reservation it gives back.
// Migrating: rate.NewLimiter(rate.Limit(r), b) becomes
// limit.NewRate(limit.RateConfig{Rate: r, Burst: b}); rate.Every(d)
// becomes RateConfig.Every: d. The differences: Burst has a default;
// AllowN, ReserveN and SetLimit do not exist (a Rate's limit is fixed at
// construction); and errors are typed ([ErrRateLimited] with the wait).
//
// # Keys and memory
//
// [Keyed] keeps one GCRA word per key (client IP, API key, tenant) in
// sharded copy-on-write maps read without a lock, and bounds its memory:
// KeyedConfig.MaxKeys keys at most, each in MaxKeyLen bytes at most (longer
// keys are kept as their SHA-256 hash), idle keys forgotten after
// IdleTimeout, and keys beyond the bound sharing one overflow limiter. By
// default only keys back to a full burst are forgotten, so forgetting
// never lets a client past its limit. The cost per key is stated by the
// benchmark BenchmarkLimitKeyedMemory in the benchmarks module.
//
// # Bulkheads
//
// [Bulkhead] caps calls in flight: taking a slot is one compare-and-swap
// on a count of slots taken, freeing it one atomic add on a count of slots
// freed (the calls in flight are the difference, and the count of slots
// taken doubles as the count of admissions the metrics report); an
// optional bounded queue holds calls for up to QueueTimeout when every
// slot is taken.
//
// # Adaptive concurrency
//
// [Adaptive] finds the concurrency a service can take by watching its
// latency, as TCP congestion control finds a path's window. It is a
// gradient controller in the style of Netflix's concurrency-limits
// Gradient2, with the periodic no-load measurement of Envoy's adaptive
// concurrency filter (both read for their semantics; no code is shared):
//
//  1. Measure: hold concurrency to MinLimit (default 3) until ProbeSamples
//     calls (default 50) started under that cap have succeeded; their
//     average latency is the no-load latency L0. This happens at start
//     and again every ProbeInterval (default 1 minute), so L0 follows the
//     service when it gets faster or slower for good (a measurement may
//     take at most ten windows once a call has succeeded).
//  2. Adapt: every Window (default 100 ms), take the average latency L of
//     the calls that succeeded in it, and the gradient
//     g = clamp(Tolerance·L0 / L, 0.5, 2) (Tolerance default 1.1: latency
//     may rise 10% before the limit shrinks). The limit becomes
//     g·limit + √(g·limit), clamped to [MinLimit, MaxLimit]: the square
//     root is a small queue the service is allowed, so that it is never
//     starved. When g ≥ 1 and fewer than half the limit's calls were in
//     flight, the limit stays: a service using half of it says nothing
//     about more.
//
// On a service whose latency stays flat up to a concurrency knee K and
// grows in proportion beyond it, the limit settles near
// Tolerance·K + √(Tolerance·K) — just past the knee, with latency within
// about Tolerance·(1+1/√K) of the no-load latency — whatever the offered
// load. Only successful calls teach the limiter (failures often return
// fast and would make an overloaded service look idle); calls above the
// limit are rejected at once. [Adaptive.Limit] reports the current limit.
//
// # HTTP and gRPC
//
// Rate limits answer 429 Too Many Requests, concurrency limits 503
// Service Unavailable, both with Retry-After; rate-limit middleware also
// sends the RateLimit and RateLimit-Policy fields of
// draft-ietf-httpapi-ratelimit-headers-10 on every response ([SetHeaders]).
// Client-side RoundTrippers hold requests back before they reach the
// network. grpcx maps rate limits to ResourceExhausted and concurrency
// limits to Unavailable, with a grpc-retry-pushback-ms trailer where the
// wait is known.
//
// # Telemetry
//
// Each limiter exports bulwark.limit.decisions (admitted or rejected,
// attribute bulwark.limit.decision), and concurrency limiters
// bulwark.limit.in_flight and bulwark.limit.concurrency_limit, with the
// attribute bulwark.limit.kind (rate, keyed, bulkhead, adaptive; the
// distributed limiter of limit/redisstore reports distributed, under this
// package's scope). Counting costs at most one atomic add per decision.
// In this package's limiters, a rejection, and a keyed or adaptive
// limiter's admission, add to a per-processor counter; a Rate's admission
// adds to a counter on its GCRA word's cache line, which the admission has
// just written; a Bulkhead's admission adds nothing, its count of slots
// taken being the count.
//
// # Dependencies
//
// golang.org/x/time/rate is imported so that its *rate.Limiter can be
// read in detail by the middleware; nothing of it runs in bulwark's own
// limiters.
package limit
