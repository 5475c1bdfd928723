// Package grpcx holds every gRPC integration of bulwark: client and server
// interceptors for each primitive, and the gRPC classification of outcomes.
// It is the only bulwark package that imports google.golang.org/grpc, so a
// program that uses bulwark only over HTTP never compiles gRPC.
//
// Interceptors are plain function values; compose them with
// grpc.WithChainUnaryInterceptor and grpc.WithChainStreamInterceptor, the
// first one outermost, as in the recommended client stack (retry, then
// breaker):
//
//	conn, err := grpc.NewClient(target,
//		grpc.WithChainUnaryInterceptor(
//			grpcx.UnaryClientRetry(policy),
//			grpcx.UnaryClientBreaker(set),
//		))
//
// # Retries
//
// [UnaryClientRetry] and [StreamClientRetry] follow gRPC's retry design
// (gRFC A6): grpc-previous-rpc-attempts on every retry, the server's
// grpc-retry-pushback-ms honoured, and a stream committed (never retried)
// once response headers or a message arrive. Call options that write back
// (grpc.Header, grpc.Trailer, grpc.Peer, grpc.OnFinish) see only the
// attempt whose result the caller gets, once, even when attempts are
// hedged.
//
// # Idempotency
//
// [UnaryServerIdempotency] gives unary methods the semantics of
// idempotency.Keeper.Handler, keyed by the "idempotency-key" metadata
// entry: the first call runs, later calls with the same key and request get
// its stored reply; a key in progress answers Aborted with a
// grpc-retry-pushback-ms trailer, which bulwark's retry honours.
//
// # Limits
//
// The limit interceptors admit calls through package limit's limiters:
// [UnaryServerLimit] and [UnaryClientLimit] (and their Stream and Keyed
// forms) take a limit.Limiter — a *limit.Rate or a golang.org/x/time/rate
// *rate.Limiter — and reject with ResourceExhausted and a
// grpc-retry-pushback-ms trailer; [UnaryServerConcurrency] and
// [UnaryClientConcurrency] take a *limit.Bulkhead or a *limit.Adaptive
// and reject with Unavailable. Rejected client calls never reach the
// network. See [LimitError].
//
// # Drills, health and degradation
//
// [UnaryServerChaos] and its client and stream forms inject package
// chaos's faults (aimed by the bulwark-chaos metadata); [HealthServer] is
// the grpc.health.v1 service fed by package health's checks, service
// names mapped to check groups; [UnaryServerShed] sheds load by
// criticality (bulwark-criticality metadata or the shedder's routes) and
// answers Unavailable with a grpc-retry-pushback-ms trailer, and
// [UnaryClientThrottle] is the SRE client-side throttler (rejections are
// ResourceExhausted, never sent).
//
// # Classification
//
// A call fails, for every primitive, when its status code is Unavailable,
// DeadlineExceeded, ResourceExhausted, Aborted, Internal or Unknown; any
// other code, and OK, is a success. A call cancelled by its caller
// (Canceled while the caller's context is done) is neutral. See [Classify].
//
// # Breakers
//
// [UnaryClientBreaker] and [StreamClientBreaker] guard each call with the
// breaker of its full method name from a breaker.Set, and reject with a
// [*BreakerError] (Unavailable, matching breaker.ErrOpen) without touching
// the network. [UnaryServerBreaker] and [StreamServerBreaker] shed calls
// to a method whose handler keeps failing, answering Unavailable with a
// grpc-retry-pushback-ms trailer. Calls get the breaker's span events, a
// caller's cancellation (any cause) is neutral, and an attempt cancelled
// with bulwark.ErrSuperseded (a hedge's loser) is a failure.
package grpcx
