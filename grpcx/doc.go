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
// # Classification
//
// A call fails, for every primitive, when its status code is Unavailable,
// DeadlineExceeded, ResourceExhausted, Aborted, Internal or Unknown; any
// other code, and OK, is a success. A call cancelled by its caller
// (Canceled while the caller's context is done) is neutral. See [Classify].
package grpcx
