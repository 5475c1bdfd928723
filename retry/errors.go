package retry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/bulwark-go/bulwark/internal/tried"
)

// Sentinels. Test for them with [errors.Is]; never compare error text.
var (
	// ErrExhausted is matched by every [ExhaustedError]: the policy gave
	// up while the last attempt's error was still retryable.
	ErrExhausted = errors.New("retry: attempts exhausted")
	// ErrBudgetExhausted is matched by an [ExhaustedError] whose Reason is
	// [ReasonBudget]: the shared retry budget refused the retry.
	ErrBudgetExhausted = errors.New("retry: retry budget exhausted")
)

// Reason says why a policy stopped retrying.
type Reason uint8

const (
	// ReasonAttempts: Config.MaxAttempts attempts were made, or the
	// schedule (a backoff.BackOff) returned backoff.Stop.
	ReasonAttempts Reason = iota
	// ReasonBudget: the retry budget refused the retry.
	ReasonBudget
	// ReasonDeadline: the next delay would end past the context deadline
	// or past Config.MaxDuration, so it was not slept.
	ReasonDeadline
	// ReasonPushback: the server asked not to retry (a negative or
	// malformed gRPC pushback).
	ReasonPushback
	// ReasonRejected: a layer below rejected the attempt locally, without
	// sending it (an error with a RetryAfter method, such as an open
	// circuit breaker's), and the policy does not wait for it (see
	// Config.WaitRejected).
	ReasonRejected

	numReasons = iota
)

// String returns "attempts", "budget", "deadline", "pushback" or
// "rejected"; these are also the values of the bulwark.retry.reason
// metric attribute.
func (r Reason) String() string {
	switch r {
	case ReasonAttempts:
		return "attempts"
	case ReasonBudget:
		return "budget"
	case ReasonDeadline:
		return "deadline"
	case ReasonPushback:
		return "pushback"
	case ReasonRejected:
		return "rejected"
	}
	return "unknown"
}

// ExhaustedError is returned when a policy stops retrying an error that
// was still retryable. It matches [ErrExhausted] under [errors.Is], and
// also [ErrBudgetExhausted] when Reason is [ReasonBudget]; it unwraps to
// the last attempt's error, so errors.Is and errors.As see the cause too.
type ExhaustedError struct {
	// Attempts is the number of attempts made, the first one included.
	Attempts int
	// Last is the error of the last attempt to finish.
	Last error
	// Reason says why retrying stopped.
	Reason Reason
}

// Error describes the give-up and the last error.
func (e *ExhaustedError) Error() string {
	var what string
	switch e.Reason {
	case ReasonBudget:
		what = "retry budget exhausted"
	case ReasonDeadline:
		what = "no time left for another attempt"
	case ReasonPushback:
		what = "server asked not to retry"
	case ReasonRejected:
		what = "rejected without being sent"
	default:
		what = "attempts exhausted"
	}
	return "retry: " + what + " after " + strconv.Itoa(e.Attempts) + " attempt(s): " + errString(e.Last)
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// Unwrap returns the last attempt's error.
func (e *ExhaustedError) Unwrap() error { return e.Last }

// Is matches [ErrExhausted], and [ErrBudgetExhausted] when the budget
// stopped the retries.
func (e *ExhaustedError) Is(target error) bool {
	return target == ErrExhausted || (target == ErrBudgetExhausted && e.Reason == ReasonBudget)
}

// permanentError marks an error as not retryable.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not retryable: a policy that sees it (anywhere in
// the error's chain) stops at once and returns err itself, without the
// marker, so callers see the error their function returned. errors.Is and
// errors.As see through the marker. Permanent(nil) is nil.
//
// A [backoff.PermanentError] from github.com/cenkalti/backoff/v4 is honoured
// the same way, so functions written for backoff.Retry keep working.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// isPermanent reports whether err is marked permanent, and returns the
// error to hand back to the caller (the marker removed).
func isPermanent(err error) (error, bool) {
	var p *permanentError
	if errors.As(err, &p) {
		if p == err {
			return p.err, true
		}
		return err, true
	}
	var bp *backoff.PermanentError
	if errors.As(err, &bp) {
		if bp == err {
			return bp.Err, true
		}
		return err, true
	}
	return err, false
}

// pushbackError carries a delay requested by the server.
type pushbackError struct {
	err   error
	delay time.Duration
}

func (e *pushbackError) Error() string { return e.err.Error() }
func (e *pushbackError) Unwrap() error { return e.err }

// Pushback marks err with a delay requested by the server (an HTTP
// Retry-After, a gRPC grpc-retry-pushback-ms trailer). If the error is
// retried, the policy waits d, capped by Config.MaxPushback, instead of
// its own schedule; if d does not fit in the time left (context deadline,
// Config.MaxDuration), the policy gives up at once. A negative d means the
// server asked not to retry: the policy stops with an [ExhaustedError] of
// Reason [ReasonPushback]. errors.Is and errors.As see through the mark;
// the caller gets the mark removed. Pushback(nil, d) is nil.
//
// Pushback is the server's word. An error with a method RetryAfter()
// time.Duration and no Pushback mark (such as *breaker.OpenError) is a
// local rejection instead: a layer below refused the attempt without
// sending it, and by default the call ends at once (see
// Config.WaitRejected). A Pushback mark on such an error takes
// precedence: the error is then server pushback.
//
// The RoundTripper and the grpcx interceptors call Pushback themselves;
// call it from a function given to Do when a server tells you how long to
// wait by other means.
func Pushback(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &pushbackError{err: err, delay: d}
}

// retryAfterer is implemented by the errors of layers that reject a call
// locally and know when a new attempt may be let through, such as a
// circuit breaker's rejection (breaker.OpenError); CONTRIBUTING.md makes
// it the house convention. retry does not import the packages that define
// them.
type retryAfterer interface {
	RetryAfter() time.Duration
}

// pushbackOf returns the requested delay, if any, and whether the error is
// a local rejection: a Pushback mark is the server's request (local is
// false); otherwise an error with a RetryAfter method anywhere in err's
// chain is a local rejection, whose positive RetryAfter is its hint (zero
// or less is none; only an explicit Pushback can ask not to retry).
func pushbackOf(err error) (d time.Duration, has, local bool) {
	var p *pushbackError
	if errors.As(err, &p) {
		return p.delay, true, false
	}
	var ra retryAfterer
	if errors.As(err, &ra) {
		if d := ra.RetryAfter(); d > 0 {
			return d, true, true
		}
		return 0, false, true
	}
	return 0, false, false
}

// strip removes retry's own markers (Permanent, Pushback), and the record
// a balancer below attached (internal/tried), from the top of err, so
// callers get back what their function returned.
func strip(err error) error {
	for {
		switch e := err.(type) {
		case *permanentError:
			err = e.err
		case *pushbackError:
			err = e.err
		case *tried.Error:
			err = e.Err
		default:
			return err
		}
	}
}

// canceledError is returned when the caller's context ends a call between
// attempts: it matches the context's cause and the last attempt's error.
type canceledError struct {
	cause, last error
}

func (e *canceledError) Error() string {
	return fmt.Sprintf("retry: %v (last error: %v)", e.cause, e.last)
}
func (e *canceledError) Unwrap() []error { return []error{e.cause, e.last} }

// canceled builds the error for a call whose context is done: the last
// error itself when it already carries the context's cause (the usual case:
// fn returned ctx.Err()), else an error wrapping both.
func canceled(ctx context.Context, last error) error {
	cause := context.Cause(ctx)
	if last == nil || errors.Is(last, cause) {
		if last == nil {
			return cause
		}
		return last
	}
	return &canceledError{cause: cause, last: last}
}

// StatusError describes a retryable HTTP status. It is the Err of the
// Event of an HTTP retry, and is wrapped by the error returned when
// the request's context ends between attempts. (When attempts run out on
// such a status, the RoundTripper returns the last response, not an
// error.)
type StatusError struct {
	// StatusCode is the response's status code, e.g. 503.
	StatusCode int
}

// Error returns e.g. "retry: HTTP status 503".
func (e *StatusError) Error() string {
	return "retry: HTTP status " + strconv.Itoa(e.StatusCode)
}
