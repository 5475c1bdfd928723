// Package outcome is bulwark's shared classification of call results.
//
// Every primitive that counts successes and failures (breaker, retry, lb,
// ...) classifies with these functions unless its Config overrides them, so
// one call is judged the same way by every layer it passes through.
//
// The rules, written once here and quoted in the package docs:
//
//   - nil error: success.
//   - a call cancelled by its caller (the context the call was made with
//     is cancelled, ctx.Err() is context.Canceled, whatever
//     [context.Cause] says and whatever error the call returned): neutral,
//     neither success nor failure. The dependency did nothing wrong.
//   - except an attempt cancelled with the cause [bulwark.ErrSuperseded]
//     (a hedge won): failure, since its endpoint was slower than the hedge
//     delay.
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

// CallerCanceled reports whether a call made with ctx that ended with a
// non-nil err was cancelled by its caller: ctx itself is cancelled (not
// past its deadline), for any cause but [bulwark.ErrSuperseded]. err is not
// inspected beyond being non-nil: with [context.WithCancelCause], net/http
// and most libraries return the cause, which need not wrap
// context.Canceled.
func CallerCanceled(ctx context.Context, err error) bool {
	if err == nil || ctx == nil || ctx.Err() != context.Canceled {
		return false
	}
	return !Superseded(ctx)
}

// Superseded reports whether ctx was cancelled because another attempt of
// the same call won (its cause is [bulwark.ErrSuperseded]).
func Superseded(ctx context.Context) bool {
	return ctx != nil && ctx.Err() != nil && errors.Is(context.Cause(ctx), bulwark.ErrSuperseded)
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

// OnAbort calls record if the function that deferred it is leaving by a
// panic or runtime.Goexit rather than a return, which the caller signals
// by setting *returned just after the wrapped call:
//
//	returned := false
//	defer outcome.OnAbort(&returned, func() { b.record(t, bulwark.Failure) })
//	resp, err = next.RoundTrip(req)
//	returned = true
//
// The panic then goes on unchanged, with its original stack: nothing is
// recovered. The closure does not escape, so the guard costs no
// allocation.
func OnAbort(returned *bool, record func()) {
	if !*returned {
		record()
	}
}

// With judges the result of a call made with ctx by c, a Config's
// Classify override, or by [Error] when c is nil.
func With(c bulwark.Classifier, ctx context.Context, err error) Outcome {
	if c != nil {
		return c(ctx, err)
	}
	return Error(ctx, err)
}

// NoContext judges the result of a call whose context the judge does not
// have (a two-step Done): by c called with context.Background(), or, when
// c is nil: nil a success, context.Canceled neutral, anything else a
// failure.
func NoContext(c bulwark.Classifier, err error) Outcome {
	if c != nil {
		return c(context.Background(), err)
	}
	if err == nil {
		return Success
	}
	if errors.Is(err, context.Canceled) {
		return Neutral
	}
	return Failure
}
