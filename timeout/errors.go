package timeout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrTimeout is matched, with [errors.Is], by every error that reports a
// call, attempt or request whose time ran out: a [*TimeoutError]. It is
// never matched when the caller's own context ended first; Do, Call and
// RoundTripper then return the caller's error (see [context.Cause]),
// which matches ErrTimeout only if it is itself an outer Timeout's.
var ErrTimeout = errors.New("timeout: time ran out")

// TimeoutError reports that a [Timeout] ran out of time. It matches both
// [ErrTimeout] and [context.DeadlineExceeded] under [errors.Is], so code
// that already tests for DeadlineExceeded keeps working, and code that
// must tell a timeout of its own from its caller's cancellation tests for
// ErrTimeout. Its Timeout method also satisfies the `Timeout() bool`
// convention of [net.Error], which [*url.Error] (what an http.Client
// returns) consults.
//
// Treat a TimeoutError as read-only: the one a Timeout puts in its
// contexts as their cause is shared by every call.
type TimeoutError struct {
	// Limit is the time limit that ran out: Config.Timeout, or for
	// Handler the propagated budget when it was the smaller.
	Limit time.Duration
	// Err is the error the function, the transport or the body returned
	// once the time had run out, if any; nil when the call returned
	// without waiting for the function (Config.Abandon) or for the
	// context's cause itself.
	Err error
}

// Error returns e.g. "timeout: timed out after 100ms" followed by Err's
// message, if any.
func (e *TimeoutError) Error() string {
	msg := "timeout: timed out after " + e.Limit.String()
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is matches [ErrTimeout] and [context.DeadlineExceeded].
func (e *TimeoutError) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

// Unwrap returns Err.
func (e *TimeoutError) Unwrap() error { return e.Err }

// Timeout reports true: the error is a timeout, in the sense of
// [net.Error].
func (e *TimeoutError) Timeout() bool { return true }

// PanicError is what Do and Call panic with, in the caller's goroutine,
// when fn panicked in the goroutine Config.Abandon runs it in while the
// caller was still waiting for it. It carries the value fn panicked with
// and the stack of fn's goroutine at the panic, which the re-panic would
// otherwise lose. (In the default, cooperative mode fn runs in the
// caller's goroutine and its panic goes on untouched.)
type PanicError struct {
	// Value is the value fn panicked with.
	Value any
	// Stack is the stack of fn's goroutine when it panicked.
	Stack []byte
}

// Error returns the panic value and the stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("timeout: panic in the called function: %v\n\n%s", e.Value, e.Stack)
}

// Unwrap returns Value if it is an error, so that errors.Is and errors.As
// see what fn panicked with.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// callerError is what Do and Call return when the caller's context ended
// and fn returned an error that does not already carry the context's
// cause: it matches both.
type callerError struct{ cause, err error }

func (e *callerError) Error() string   { return e.cause.Error() + ": " + e.err.Error() }
func (e *callerError) Unwrap() []error { return []error{e.cause, e.err} }

// callerErr returns the error of a call whose caller's ctx ended: err if it
// already matches the cause, else both.
func callerErr(ctx context.Context, err error) error {
	cause := context.Cause(ctx)
	if cause == nil || errors.Is(err, cause) {
		return err
	}
	return &callerError{cause: cause, err: err}
}
