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
// HTTPConfig.IdempotencyKey adds such a key to POST and PATCH requests,
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
// An error that says itself when to try again, through a method
// RetryAfter() time.Duration anywhere in its chain, is pushback too when
// the duration is positive (zero means no hint). The
// rejection of an open circuit breaker (*breaker.OpenError) is one: with
// the recommended stack, retry outermost over a breaker, a call rejected
// by the breaker is retried once the breaker may let it through, or given
// up at once if that is too late, instead of spending attempts and budget
// on the ordinary backoff. A [Pushback] mark on the error takes
// precedence.
//
// # Errors
//
//   - The function's own error, unchanged, when it is not retryable:
//     marked with [Permanent] (the mark is removed), or not a Failure.
//   - *[ExhaustedError] when the policy stops retrying a retryable error:
//     errors.Is(err, ErrExhausted) always, errors.Is(err,
//     ErrBudgetExhausted) when the budget stopped it; it unwraps to the
//     last error and carries the attempt count and the [Reason].
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
// recent latencies; the first success wins and the others are cancelled.
// Hedges count as attempts and draw on the budget. Do and Call return
// only once every attempt has returned, so no goroutine outlives a call.
//
// # Telemetry
//
// Meter "github.com/bulwark-go/bulwark/retry", all with attribute
// bulwark.name = Config.Name:
//
//   - bulwark.retry.attempts {attempt}, by bulwark.retry.kind: first,
//     retry, hedge (observable; the success path pays one atomic add);
//   - bulwark.retry.exhaustions {call}, by bulwark.retry.reason: attempts,
//     budget, deadline, pushback (observable);
//   - bulwark.retry.delays (s), a histogram of the delays slept.
//
// Span events on the caller's recording span: bulwark.retry.attempt
// before each retry or hedge, bulwark.retry.exhausted when a call gives
// up. Config.OnRetry is a hook for anything else. Close unregisters the
// metric callbacks.
//
// # Performance
//
// A call whose first attempt succeeds takes no lock, allocates nothing and
// costs one atomic add on a per-CPU counter (the attempts metric and the
// budget deposit are the same counter). Everything else happens only once
// an attempt has failed.
package retry
