// Package retry retries calls that failed, without turning a dependency's
// bad minute into an outage: exponential backoff with jitter, a retry
// budget shared by all calls, server pushback (Retry-After,
// grpc-retry-pushback-ms), deadline-aware give-up, and hedged requests.
//
//	p := retry.New(retry.Config{Name: "inventory"})
//	defer p.Close()
//	err := p.Do(ctx, func(ctx context.Context) error { return call(ctx) })
//	item, err := retry.Call(ctx, p, func(ctx context.Context) (Item, error) { ... })
//	client := &http.Client{Transport: p.RoundTripper(nil)}
//
// gRPC interceptors built on a Policy are in package grpcx.
//
// # Defaults
//
// The zero Config makes 3 attempts in all; waits before retry n a random
// time in [0, min(10s, 100ms·2ⁿ⁻¹)) (exponential backoff with full
// jitter; decorrelated, equal and no jitter are available, and any
// github.com/cenkalti/backoff/v4 BackOff can be the schedule); retries
// only failures as classified by bulwark (see the bulwark package doc);
// honours server pushback up to 30s; and bounds retries with a budget of
// its own of 10% of calls plus 10 retries a second over 10 seconds.
// Hedging is off.
//
// # Why budgets
//
// Retries multiply load exactly when a dependency is weakest: with 3
// attempts, a dependency that fails everything sees three times its normal
// traffic, which keeps it down. A [Budget] caps retries (and hedges) at a
// fraction of calls over a sliding window, so the extra load stays bounded
// (by default 10%) however hard the dependency fails, while isolated
// failures are still retried. When the budget is exhausted a call fails
// fast with its own error, wrapped so that errors.Is(err,
// ErrBudgetExhausted) holds, and the bulwark.retry.exhaustions metric
// counts it. Share one Budget between the policies of one client with
// Config.Budget.
//
// # Why idempotency
//
// A retry repeats a request that may already have had its effect: the
// response was lost, not the request. So [Policy.RoundTripper] retries
// only methods that are idempotent by definition (GET, HEAD, OPTIONS,
// TRACE, PUT, DELETE) and requests that carry an Idempotency-Key header,
// which a server-side idempotency middleware uses to run a request once.
// Config.IdempotencyKey adds such a key to POST and PATCH requests,
// the same on every attempt. Hedging runs attempts concurrently, so it is
// only for idempotent calls too. For Do and Call, idempotency is the
// caller's business.
//
// # Deadlines and pushback
//
// A delay that would end past the context's deadline, or past
// Config.MaxDuration, is not slept: the call gives up at once with an
// [ExhaustedError] (Reason ReasonDeadline), leaving the remaining time to
// the caller. A server's requested delay ([Pushback]; Retry-After on a 429
// or 503; the gRPC trailer grpc-retry-pushback-ms) replaces the schedule,
// capped by Config.MaxPushback; if it does not fit in the time left the
// call gives up at once; a negative gRPC pushback means do not retry.
//
// # Local rejections
//
// Pushback is the server's word. An error that says itself when to try
// again, through a method RetryAfter() time.Duration anywhere in its chain,
// comes from a layer of this process that refused the attempt without
// sending it: an open circuit breaker (*breaker.OpenError), a full
// bulkhead, a local rate limit. With the recommended stack, retry
// outermost over a breaker, a call to an open breaker therefore returns
// at once, deadline or not, with an *[ExhaustedError] of Reason
// [ReasonRejected] that unwraps to the rejection, so errors.Is(err,
// breaker.ErrOpen) holds; no delay is slept and no budget spent. A
// service that would rather wait for the breaker sets
// Config.WaitRejected: the call then waits the rejection's RetryAfter
// (capped by MaxPushback), but only when the context's deadline or
// MaxDuration bounds it and the wait fits; a call with no bound still
// returns at once. A function given to Do that learns a server's
// requested delay marks its error with [Pushback], which is always
// honoured.
//
// # Errors
//
//   - The function's own error, unchanged, when it is not retryable:
//     marked with [Permanent] (the mark is removed), or not a Failure.
//   - *[ExhaustedError] when the policy stops retrying a retryable error:
//     errors.Is(err, ErrExhausted) always, errors.Is(err,
//     ErrBudgetExhausted) when the budget stopped it; it unwraps to the
//     last error (a breaker's rejection, for Reason ReasonRejected) and
//     carries the attempt count and the [Reason].
//   - When the caller's context ends between attempts: the last error if
//     it already carries the context's cause, else an error matching both
//     the cause and the last error. Never an ExhaustedError.
//
// The RoundTripper returns the last response, not an error, when the
// attempts run out on a failing status, as net/http expects.
//
// # Hedging
//
// With Config.Hedge set, a call starts another attempt when the first has
// run for a fixed delay or for the observed percentile (e.g. p95) of
// recent latencies; the first success wins and the others are cancelled
// with the cause [bulwark.ErrSuperseded]. A layer below (a breaker per
// endpoint) judges an attempt so cancelled a failure, since its endpoint
// was slower than the hedge delay: a slow or hung endpoint's breaker
// opens, and the requests after that stop paying the hedge delay. A
// caller's own cancellation, whatever its cause, stays neutral. Hedges
// count as attempts and draw on the budget; a call's memory is bounded by
// HedgeConfig.MaxInFlight, not by MaxAttempts. Do and Call return only
// once every attempt has returned, so no goroutine outlives a call, and
// every response the caller does not get is drained and closed. A panic
// in an attempt (which runs in a goroutine of its own) is raised again in
// the caller's goroutine once the other attempts have returned.
//
// # Retries go to other endpoints
//
// Over a balancer of package lb (its RoundTripper, Balancer.Do or Call,
// or gRPC through grpcx/balancer), each retry or hedge of a call goes to
// an endpoint that none of the call's other attempts went to, while one
// is left (Envoy's previous-hosts retry predicate; see the lb package
// doc): the attempts after the first, and every attempt of a hedged
// call, run under a context holding the call's record of the endpoints
// its attempts went to. A call's first attempt runs under the caller's
// context unchanged, so a call that succeeds at once pays nothing for it;
// when it fails, lb hands its record back with the result (an error
// wrapper that retry takes off, so the caller gets the error itself), and
// retry adopts it. A record lives as long as its call: the next call
// starts afresh, even with the same context.
//
// # Contexts, functions and time
//
// A nil ctx or a nil fn given to Do or Call is the caller's bug: it
// panics at once, before any attempt, with a message naming the argument.
// Every delay and deadline is read through package time, so code tested
// with testing/synctest sees retries follow the bubble's fake time. A bad
// Config value (NaN, negative durations, a Jitter or Percentile out of
// range, a size past its bound) makes New panic with a
// *bulwark.ConfigError; [Config.Validate] reports it without panicking.
//
// # Telemetry
//
// Meter "github.com/bulwark-go/bulwark/retry", all with attribute
// bulwark.name = Config.Name:
//
//   - bulwark.retry.attempts {attempt}, by bulwark.retry.kind: first,
//     retry, hedge (observable; the success path pays one atomic add);
//   - bulwark.retry.exhaustions {call}, by bulwark.retry.reason: attempts,
//     budget, deadline, pushback, rejected (observable);
//   - bulwark.retry.delays (s), a histogram of the delays slept, with
//     buckets from 1ms to 60s.
//
// Span events on the caller's recording span: bulwark.retry.attempt
// before each retry or hedge, bulwark.retry.exhausted when a call gives
// up; gRPC calls through grpcx get the same events. Config.OnRetry is a
// hook for anything else. Close unregisters the metric callbacks.
//
// # Migrating from cenkalti/backoff and failsafe-go
//
// backoff.Retry(op, b) becomes p.Do(ctx, fn) with Config.NewBackOff
// returning b (a fresh BackOff per call; it is Reset before use, as
// backoff.Retry does), and backoff.Permanent errors are honoured as
// [Permanent] ones. From failsafe-go's retrypolicy: WithMaxRetries(n) is
// MaxAttempts n+1, WithBackoff(d, max) is BaseDelay and MaxDelay with
// NoJitter (the default FullJitter spreads retries better),
// WithMaxDuration is MaxDuration, and its HTTP adapter's Retry-After
// handling is built in. What neither has: the shared retry [Budget], and
// hedging that tells the layers below which attempts lost.
//
// # Performance
//
// A call whose first attempt succeeds takes no lock, allocates nothing and
// costs one atomic add on a per-CPU counter (the attempts metric and the
// budget deposit are the same counter). Everything else happens only once
// an attempt has failed.
package retry
