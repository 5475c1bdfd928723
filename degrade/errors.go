package degrade

import (
	"context"
	"errors"
	"time"

	"github.com/bulwark-go/bulwark/breaker"
)

// The sentinels of package degrade, matched with [errors.Is].
var (
	// ErrShed: a [Shedder] rejected the request because the server is
	// overloaded. The error returned is a [*ShedError].
	ErrShed = errors.New("degrade: request shed, server overloaded")
	// ErrThrottled: a [Throttler] rejected the request locally, without
	// sending it, because the backend has been rejecting requests. The
	// error returned is a [*ThrottleError].
	ErrThrottled = errors.New("degrade: request throttled by the client")
	// ErrSwitchedOff: the feature's [Switch] is off, so the call was not
	// made.
	ErrSwitchedOff = errors.New("degrade: feature switched off")
)

// ShedError is the error of a request a [Shedder] rejected. Its Is
// matches [ErrShed].
type ShedError struct {
	// Criticality is the request's criticality.
	Criticality Criticality
	// Wait is how long the shedder suggests waiting before trying again.
	Wait time.Duration
}

// Error returns ErrShed's message.
func (e *ShedError) Error() string { return ErrShed.Error() }

// Is reports whether target is ErrShed.
func (e *ShedError) Is(target error) bool { return target == ErrShed }

// RetryAfter returns Wait: HTTP adapters send it as Retry-After, gRPC as
// grpc-retry-pushback-ms, and package retry honours it.
func (e *ShedError) RetryAfter() time.Duration { return e.Wait }

// ThrottleError is the error of a request a [Throttler] rejected
// locally, without sending it. Its Is matches [ErrThrottled].
type ThrottleError struct {
	// Probability is the rejection probability the request faced.
	Probability float64
	// Wait is how soon the probability can change: one bucket of the
	// throttler's window (Window/Buckets, 250 ms by default).
	Wait time.Duration
}

// RetryAfter returns Wait, the house's mark of a local rejection (package
// retry returns such an error at once rather than retrying it).
func (e *ThrottleError) RetryAfter() time.Duration { return e.Wait }

// Error returns ErrThrottled's message.
func (e *ThrottleError) Error() string { return ErrThrottled.Error() }

// Is reports whether target is ErrThrottled.
func (e *ThrottleError) Is(target error) bool { return target == ErrThrottled }

// Reason says why a fallback was served. It is the value of the
// Bulwark-Fallback header on HTTP fallback responses.
type Reason string

// The reasons, from [ReasonOf].
const (
	// ReasonSwitch: the feature's Switch is off.
	ReasonSwitch Reason = "switch"
	// ReasonBreaker: a circuit breaker rejected the call
	// (breaker.ErrOpen or breaker.ErrHalfOpenFull).
	ReasonBreaker Reason = "breaker"
	// ReasonRejected: a limiter, shedder or throttler rejected the call:
	// ErrShed, ErrThrottled, or any error with a
	// RetryAfter() time.Duration method (the house's mark of a
	// rejection that knows when to come back, as package limit's errors
	// have).
	ReasonRejected Reason = "rejected"
	// ReasonTimeout: the call ran out of time (context.DeadlineExceeded).
	ReasonTimeout Reason = "timeout"
	// ReasonStatus: an HTTP response with a failure status.
	ReasonStatus Reason = "status"
	// ReasonError: any other failure.
	ReasonError Reason = "error"
)

// retryAfterer is how a rejection from a limiter is recognised without
// importing its package.
type retryAfterer interface{ RetryAfter() time.Duration }

// ReasonOf classifies a failure's error into a [Reason]; a nil err is
// ReasonStatus (a failed HTTP exchange has a response and no error).
func ReasonOf(err error) Reason {
	var ra retryAfterer
	switch {
	case err == nil:
		return ReasonStatus
	case errors.Is(err, ErrSwitchedOff):
		return ReasonSwitch
	case errors.Is(err, breaker.ErrOpen), errors.Is(err, breaker.ErrHalfOpenFull):
		return ReasonBreaker
	case errors.Is(err, ErrShed), errors.Is(err, ErrThrottled), errors.As(err, &ra):
		return ReasonRejected
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	}
	return ReasonError
}
