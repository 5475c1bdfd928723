// Package grpcx holds every gRPC integration of bulwark: the interceptors
// of each primitive, on the sides that make sense (breaker: client and
// server; retry: client; idempotency: server), and the gRPC classification
// of outcomes.
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
// once response headers or a message arrive. Over [UnaryClientBreaker],
// a call to an open breaker ends at once, without a retry or a delay, with
// an error matching breaker.ErrOpen whose code is Unavailable (see
// retry.Config.WaitRejected to wait instead). Call options that write back
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
// [UnaryServerLimit] and [UnaryClientLimit] (and their Stream forms) take
// a limit.Limiter — a *limit.Rate or a golang.org/x/time/rate
// *rate.Limiter — and reject with ResourceExhausted, servers with a
// grpc-retry-pushback-ms trailer; [UnaryServerKeyedLimit] and
// [StreamServerKeyedLimit] do the same per key (per client address by
// default) with a limit.KeyedLimiter — a *limit.Keyed or the distributed
// limiter of limit/redisstore (there is no keyed client interceptor);
// [UnaryServerConcurrency] and [UnaryClientConcurrency] (and their Stream
// forms) take a *limit.Bulkhead or a *limit.Adaptive and reject with
// Unavailable, without a pushback trailer (the wait is not known).
// Rejected client calls never reach the network. See [LimitError].
//
// Timeouts: [UnaryClientTimeout] and [StreamClientTimeout] give calls
// made without a deadline the limit of a *timeout.Timeout;
// [UnaryServerTimeout] and [StreamServerTimeout] enforce it as a maximum
// over the client's deadline. A timeout of the Timeout's own keeps its
// DeadlineExceeded code and matches timeout.ErrTimeout.
//
// # Load balancing
//
// Client-side balancing lives in the subpackage grpcx/balancer, because it
// registers a load-balancing policy and a resolver (scheme "bulwark") with
// grpc-go when imported: register an lb.Balancer under a service name and
// dial "bulwark:///<service>" to get lb's policies, outlier ejection and
// health checks for gRPC.
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
// other code, and OK, is a success. A call whose context its caller
// cancelled is neutral, whatever its code and whatever [context.Cause]
// says; an attempt cancelled with the cause bulwark.ErrSuperseded (a
// hedge's loser) is a failure. See [Classify].
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
