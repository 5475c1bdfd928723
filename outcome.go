package bulwark

import (
	"context"
	"errors"
	"net/http"
)

// ErrSuperseded is the cancellation cause of an attempt that was abandoned
// because another attempt of the same call won (a hedged request): retry
// cancels the losers' contexts with [context.WithCancelCause] and this
// cause.
//
// Unlike a caller's own cancellation, which is neutral, an attempt
// cancelled with ErrSuperseded is judged a failure by every layer below the
// one that cancelled it (a breaker, a balancer's latency estimate): it is
// evidence that its endpoint was slower than the hedge delay, and a slow or
// hung endpoint that is never judged would keep receiving traffic and make
// every request routed to it pay the hedge delay.
var ErrSuperseded = errors.New("bulwark: attempt superseded by another attempt")

// Outcome is the verdict on one call, shared by every package: a breaker
// counts it, a retry policy decides on it, a balancer scores an endpoint
// with it. Each Config's Classify field returns one to override the
// default rules (see the package doc).
type Outcome uint8

const (
	// Success means the dependency did its job.
	Success Outcome = iota
	// Failure means the dependency failed or was too slow.
	Failure
	// Neutral means the result says nothing about the dependency (the
	// caller cancelled the call, whatever the cause, or the Config said to
	// ignore the error); it counts neither as a success nor as a failure.
	Neutral
)

// String returns "success", "failure" or "neutral".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Neutral:
		return "neutral"
	}
	return "unknown"
}

// Classifier judges the result of a call made with ctx. Configs take one to
// override bulwark's default classification; a nil Classifier means the
// default.
type Classifier func(ctx context.Context, err error) Outcome

// HTTPClassifier judges an HTTP exchange: the response and error of a
// round trip, or (server side) a response whose status code and headers a
// handler wrote, with a nil error. Configs take one to override bulwark's
// HTTP rules; nil means the default (5xx except 501, and 408 and 429, are
// failures; a transport error is judged like any other error).
type HTTPClassifier func(ctx context.Context, resp *http.Response, err error) Outcome
