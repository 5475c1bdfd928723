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
// # Load balancing
//
// Client-side balancing lives in the subpackage grpcx/balancer, because it
// registers a load-balancing policy and a resolver (scheme "bulwark") with
// grpc-go when imported: register an lb.Balancer under a service name and
// dial "bulwark:///<service>" to get lb's policies, outlier ejection and
// health checks for gRPC.
//
// # Classification
//
// A call fails, for every primitive, when its status code is Unavailable,
// DeadlineExceeded, ResourceExhausted, Aborted, Internal or Unknown; any
// other code, and OK, is a success. A call cancelled by its caller
// (Canceled while the caller's context is done) is neutral. See [Classify].
package grpcx
