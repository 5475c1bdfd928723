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
package grpcx
