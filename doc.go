// Package bulwark is a library of resilience primitives for Go services:
// the building blocks of a system that stays available while its
// dependencies fail. Each primitive is a small package that wraps a
// net/http client (as an [http.RoundTripper]), an [http.Handler] chain, or,
// through package grpcx, a gRPC client or server.
//
// # Start here
//
//  1. Run the failure drill from a clone of the repository:
//     go run ./examples/drill. It breaks a small service on loopback while a
//     bare net/http client and a bulwark client send it the same load, and
//     prints what each saw.
//  2. Put the recommended client stack (below) in front of your
//     [http.Client]: a retry.Policy over a breaker.Set, composed with
//     [ChainTransport]. The program examples/httpclient does exactly that;
//     examples/httpserver and examples/grpc do the same for a server and
//     for gRPC.
//  3. Then read the package docs of breaker, retry and grpcx, and the
//     sections below on classification and telemetry, which hold for every
//     package.
//
// # The packages
//
//   - breaker: circuit breakers (count and time windows, slow calls,
//     consecutive failures, per-key sets), lock-free and allocation-free on
//     the hot path.
//   - retry: retries with backoff and jitter, retry budgets, Retry-After and
//     gRPC pushback, hedged requests, automatic Idempotency-Key.
//   - grpcx: every gRPC interceptor, so that HTTP-only programs never
//     compile gRPC.
//   - internal/...: the clock, outcome classification, telemetry
//     conventions, striped counters and pushback parsing shared by all of
//     the above, and redistest, the test harness of the Redis-backed
//     packages (miniredis, a real server or a Cluster; outages on demand).
//
// # Layers
//
// Every primitive has three layers: a transport-free core built from a
// Config struct whose zero value is useful (Do, a generic Call, and on hot
// paths a two-step, allocation-free form), net/http adapters
// (RoundTripper and Handler methods), and gRPC interceptors in grpcx.
//
// # Recommended stacks
//
// Client, outermost first: overall deadline, retry (budget, hedging,
// Idempotency-Key), load balancing with a breaker per endpoint, per-attempt
// timeout, fault injection (drills only), then the [http.Transport]:
//
//	client := &http.Client{Transport: bulwark.ChainTransport(nil,
//		policy.RoundTripper, // retry.Policy
//		set.RoundTripper,    // breaker.Set: one breaker per host
//	)}
//
// Server, outermost first: health, load shedding, rate limits, timeout,
// session, idempotency, then the handler, composed with [ChainHandler].
//
// # Outcome classification
//
// All packages judge a call the same way unless a Config overrides it
// (each Config has an IsFailure or Classify field). A nil error is a
// success. A call cancelled by its own caller is neutral: neither success
// nor failure. Any other error, context.DeadlineExceeded included, is a
// failure. For HTTP, 5xx statuses except 501, and 408 and 429, are
// failures. For gRPC, Unavailable, DeadlineExceeded, ResourceExhausted,
// Aborted, Internal and Unknown are failures.
//
// # Telemetry
//
// Every primitive reports to OpenTelemetry through the global providers,
// unless its Config names a MeterProvider or TracerProvider. One naming
// scheme holds across the library:
//
//   - Meter and tracer (instrumentation scope): the package import path,
//     e.g. "github.com/bulwark-go/bulwark/breaker".
//   - Instruments: "bulwark.<package>.<plural noun>", e.g.
//     "bulwark.breaker.calls", "bulwark.breaker.rejections",
//     "bulwark.retry.attempts", with UCUM units ("{call}", "s").
//   - Attributes: "bulwark.name" (Config.Name of the instance),
//     "bulwark.key" (the key within a per-key set), "bulwark.outcome"
//     ("success", "failure", "neutral"), and package-specific attributes
//     named "bulwark.<package>.<attribute>", e.g. "bulwark.breaker.state".
//   - Span events: "bulwark.<package>.<event>", added to the caller's
//     current span, e.g. "bulwark.breaker.rejected", "bulwark.retry.attempt".
//
// On hot paths telemetry costs at most an atomic add: counters are read by
// asynchronous instrument callbacks at collection time.
package bulwark

import "net/http"

// ChainHandler wraps h in the given middleware, the first one outermost,
// so the list reads in the order a request passes through it:
//
//	h := bulwark.ChainHandler(app, shed.Handler, limiter.Handler, timeout.Handler)
//
// is limiter-wrapped app inside shed, i.e. shed(limiter(timeout(app))).
// Nil middleware entries are skipped.
func ChainHandler(h http.Handler, middleware ...func(http.Handler) http.Handler) http.Handler {
	for i := len(middleware) - 1; i >= 0; i-- {
		if middleware[i] != nil {
			h = middleware[i](h)
		}
	}
	return h
}

// ChainTransport wraps base in the given layers, the first one outermost,
// so the list reads in the order a request passes through it. A nil base
// means [http.DefaultTransport]. Nil layers are skipped.
//
//	rt := bulwark.ChainTransport(nil, policy.RoundTripper, set.RoundTripper)
//
// sends each request through the retry policy first, then the breakers,
// then http.DefaultTransport.
func ChainTransport(base http.RoundTripper, layers ...func(http.RoundTripper) http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	for i := len(layers) - 1; i >= 0; i-- {
		if layers[i] != nil {
			base = layers[i](base)
		}
	}
	return base
}
