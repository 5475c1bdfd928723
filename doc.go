// Package bulwark is a library of resilience primitives for Go services:
// the building blocks of a system that stays available while its
// dependencies fail. Each primitive is a small package that wraps a
// net/http client (as an [http.RoundTripper]), an [http.Handler] chain, or,
// through package grpcx, a gRPC client or server.
//
// # Start here
//
//  1. Run the failure drill from a clone of the repository:
//     go run ./examples/drill. It breaks a small service on loopback while
//     two clients send it the same load: a bare net/http client straight
//     to the instances, and a caller of a gateway built from bulwark's
//     server stack (stack.NewServer: shedding, a rate limit, a timeout,
//     idempotency) in front of its client stack (stack.NewClient: a cache,
//     retries with hedging, load balancing with a breaker per instance,
//     timeouts). It prints what each saw, phase by phase.
//  2. Put the recommended client stack (below) in front of your
//     [http.Client] in one call: stack.NewClient (retries, load balancing
//     with a breaker per instance, timeouts). The program
//     examples/httpclient does exactly that; examples/httpserver builds
//     the server stack with stack.NewServer, and examples/grpc assembles
//     the gRPC interceptors.
//  3. Then read the package docs of stack and of each layer, and the
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
//   - timeout: per-call and per-attempt timeouts told apart from the
//     caller's cancellation, an abandoning mode, a streaming 504 Handler,
//     and time-budget propagation between hops.
//   - limit: rate limits (local GCRA, per key, distributed over Redis in
//     limit/redisstore), bulkheads and adaptive concurrency limits.
//   - lb: client-side load balancing (round robin, weighted, random, least
//     request, P2C peak-EWMA, ring hash, zones) with health checks,
//     outlier ejection, panic threshold, slow start and a breaker per
//     endpoint; the gRPC balancer is in grpcx/balancer.
//   - idempotency: the server side of the Idempotency-Key header: the first
//     request with a key runs, a retry with the same key gets its stored
//     response; a memory store, and a Redis one in idempotency/redisstore.
//   - session: server-side sessions for HTTP handlers, safe against lost
//     updates and resurrection after logout; a memory store, and a Redis
//     one in session/redisstore.
//   - degrade: fallbacks, priority load shedding, client-side throttling
//     and feature switches (cluster-wide in degrade/redisstore).
//   - health: liveness and readiness probes, and the gRPC health service,
//     from time-bounded, cached checks.
//   - chaos: fault injection for failure drills, off by default and aimed
//     at drill traffic only.
//   - cache: a read-through cache, in process (otter) and in Redis
//     (cache/redisstore), stampede-proof and stale-serving, with an RFC 9111
//     HTTP cache in the same tiers.
//   - stack: the recommended HTTP client and server stacks in one call
//     (stack.NewClient, stack.NewServer), at the top of the import graph.
//   - grpcx: every gRPC interceptor (breaker, retry, timeout, limit,
//     degrade, chaos, idempotency), the grpc.health.v1 server over package
//     health, and the gRPC outcome classification, so that HTTP-only
//     programs never compile gRPC; grpcx/balancer registers lb as a gRPC
//     balancer and resolver, only when imported.
//   - internal/...: what the packages above share and users never see:
//     clock (time through package time only, so testing/synctest fakes
//     it), outcome (the classification rules), httpx (middleware plumbing),
//     telemetry (naming), stripe (per-P counters), pushback (Retry-After
//     and grpc-retry-pushback-ms parsing), validate (Config checks), bridge
//     (how grpcx reaches a core), tried (the endpoints a call's attempts
//     used, so that lb sends a retry or a hedge elsewhere without lb and
//     retry importing each other), conformance (the test suite every
//     RoundTripper, Handler and set of instruments runs), pipehttp (a
//     net/http server and client over net.Pipe, for tests in a synctest
//     bubble), and redistest, the test harness of the Redis-backed
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
// In this stack a request to a host whose breaker is open returns at once,
// deadline or not, with an error matching breaker.ErrOpen: retry does not
// sleep out the open period (unless retry.Config.WaitRejected, and then
// only within the request's deadline).
//
// Server, outermost first: health, load shedding, rate limits, timeout,
// session, idempotency, then the handler, composed with [ChainHandler].
//
// # Outcome classification
//
// All packages judge a call the same way unless a Config overrides it:
// every Config that judges outcomes has a Classify field ([Classifier],
// for errors) and, where HTTP exchanges are judged, a ClassifyHTTP field
// ([HTTPClassifier]); grpcx.Classify applies the same rules to gRPC. A nil
// error is a success. A call whose own context its caller cancelled is
// neutral, whatever [context.Cause] says: neither success nor failure.
// An attempt cancelled with the cause [ErrSuperseded] (a hedge won) is a
// failure. Any other error, context.DeadlineExceeded included, is a
// failure. For HTTP, 5xx statuses except 501, and 408 and 429, are
// failures. For gRPC, Unavailable, DeadlineExceeded, ResourceExhausted,
// Aborted, Internal and Unknown are failures.
//
// # Telemetry
//
// Every primitive reports metrics to OpenTelemetry through the global
// MeterProvider, unless its Config names one in its MeterProvider field.
// bulwark starts no spans: span events go to the recording span already in
// the call's context, so no Config has a TracerProvider. One naming scheme
// holds across the library:
//
//   - Meter (instrumentation scope): the package import path, e.g.
//     "github.com/bulwark-go/bulwark/breaker".
//   - Instruments: "bulwark.<package>.<plural noun>", e.g.
//     "bulwark.breaker.calls", "bulwark.breaker.rejections",
//     "bulwark.retry.attempts", with UCUM units ("{call}", "s"; never "1",
//     which a Prometheus exporter turns into a _ratio suffix), and
//     histograms with explicit bucket boundaries.
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
