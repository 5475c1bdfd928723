// Package outcome is bulwark's shared classification of call results.
//
// Every primitive that counts successes and failures (breaker, retry, lb,
// ...) classifies with these functions unless its Config overrides them, so
// one call is judged the same way by every layer it passes through.
//
// The rules, written once here and quoted in the package docs:
//
//   - nil error: success.
//   - a call cancelled by its caller (the caller's context is done and the
//     error is, or wraps, context.Canceled): neutral, neither success nor
//     failure. The dependency did nothing wrong.
//   - any other error, including context.DeadlineExceeded: failure. A
//     timeout is the commonest symptom of a struggling dependency.
//   - HTTP: a transport error is classified as an error (above); otherwise
//     5xx except 501 Not Implemented, 408 Request Timeout and 429 Too Many
//     Requests are failures, and every other status is a success.
//
// gRPC codes are classified in package grpcx, so HTTP-only programs never
// compile gRPC.
package outcome

import (
	"context"
	"errors"
	"net/http"

	"github.com/bulwark-go/bulwark"
)

// Outcome is [bulwark.Outcome], re-exported so internal code reads well.
type Outcome = bulwark.Outcome

// The outcomes.
const (
	Success = bulwark.Success
	Failure = bulwark.Failure
	Neutral = bulwark.Neutral
)

// Error classifies the result of a call made with ctx.
func Error(ctx context.Context, err error) Outcome {
	if err == nil {
		return Success
	}
	if CallerCanceled(ctx, err) {
		return Neutral
	}
	return Failure
}

// CallerCanceled reports whether err is the result of the caller
// cancelling ctx (as opposed to a deadline, or a cancellation that came
// from somewhere else).
func CallerCanceled(ctx context.Context, err error) bool {
	if err == nil || !errors.Is(err, context.Canceled) {
		return false
	}
	return ctx != nil && errors.Is(ctx.Err(), context.Canceled)
}

// HTTPStatusFailure reports whether an HTTP status code counts as a failure:
// 5xx except 501, 408 and 429.
func HTTPStatusFailure(code int) bool {
	switch {
	case code == http.StatusNotImplemented:
		return false
	case code >= 500 && code <= 599:
		return true
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return true
	}
	return false
}

// HTTP classifies the result of an HTTP round trip made with ctx.
func HTTP(ctx context.Context, resp *http.Response, err error) Outcome {
	if err != nil {
		return Error(ctx, err)
	}
	if resp != nil && HTTPStatusFailure(resp.StatusCode) {
		return Failure
	}
	return Success
}
