package limit

import (
	"errors"
	"time"
)

// The sentinels a rejection matches with [errors.Is]. The error a limiter
// returns is a [*RejectedError], which also says how long to wait.
var (
	// ErrRateLimited: a rate limiter (Rate, Keyed, a distributed limiter
	// or a *rate.Limiter behind the middleware) did not admit the call.
	ErrRateLimited = errors.New("limit: rate limit exceeded")
	// ErrConcurrencyLimited: a Bulkhead or an Adaptive limiter had no
	// free slot (and no queue place, or the queue wait ran out).
	ErrConcurrencyLimited = errors.New("limit: concurrency limit reached")
)

// RejectedError is the error of a call a limiter did not admit.
// errors.Is(err, ErrRateLimited) or errors.Is(err, ErrConcurrencyLimited)
// tells which kind of limit it was; errors.As gives the wait. A
// RejectedError built outside this package (such as a custom limiter's
// &limit.RejectedError{Wait: d}) is a rate-limit rejection.
type RejectedError struct {
	// Wait is how long the caller would have had to wait to be admitted:
	// for a rate limit, until the limiter admits the next call; for
	// Wait, the wait that did not fit in the context's deadline. Zero
	// when unknown (concurrency limits, a *rate.Limiter that can never
	// admit the call).
	Wait time.Duration

	sentinel error
}

// Error returns the sentinel's message, e.g. "limit: rate limit exceeded".
func (e *RejectedError) Error() string { return e.Unwrap().Error() }

// Unwrap returns ErrRateLimited or ErrConcurrencyLimited.
func (e *RejectedError) Unwrap() error {
	if e.sentinel == nil {
		return ErrRateLimited
	}
	return e.sentinel
}

// RetryAfter returns Wait: how long a caller should wait before trying
// again (0 when unknown). HTTP adapters send it, rounded up to whole
// seconds, as Retry-After; grpcx sends it as grpc-retry-pushback-ms; and
// package retry honours it as pushback.
func (e *RejectedError) RetryAfter() time.Duration { return e.Wait }

func rateError(wait time.Duration) *RejectedError {
	return &RejectedError{Wait: max(wait, 0), sentinel: ErrRateLimited}
}

// errConcurrency is shared: a concurrency rejection carries no wait, so
// one value serves every rejection and rejections allocate nothing.
var errConcurrency = &RejectedError{sentinel: ErrConcurrencyLimited}
