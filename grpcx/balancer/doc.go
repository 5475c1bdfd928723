// Package balancer balances gRPC clients with package lb: the same
// policies, outlier ejection, active checks, panic threshold, slow start,
// locality and per-endpoint breakers as lb's RoundTripper, over gRPC
// SubConns.
//
// Importing it registers, with grpc-go, a load-balancing policy named
// "bulwark" and a resolver for the scheme "bulwark"; importing package
// grpcx alone registers nothing. Build an [lb.Balancer] (static endpoints,
// DNS, SRV, a registry), register it under a service name, and dial
// "bulwark:///<service>":
//
//	b := lb.New(lb.Config{Endpoints: eps, Policy: lb.P2C(lb.P2CConfig{})})
//	defer b.Close()
//	unregister, err := balancer.Register("inventory", b)
//	defer unregister()
//	conn, err := grpc.NewClient("bulwark:///inventory",
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//
// # How it works
//
// The resolver hands gRPC the balancer's endpoints (and every later change
// of them) with a service config selecting the "bulwark" policy. A
// ClientConn dialled with grpc.WithDisableServiceConfig ignores it and
// falls back to grpc-go's pick_first, past lb, without an error: add
// grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"bulwark":{}}]}`)
// to such a ClientConn. The
// policy opens one SubConn per endpoint; an endpoint with no READY
// SubConn is out of lb's rotation (it shows as lb.Unhealthy) until one
// is. Several ClientConns may share a balancer: an endpoint is out while
// none of their SubConns to it is READY, and a ClientConn that closes
// takes its SubConns out of the count.
// Each RPC is picked by lb.Balancer.Pick (PickKey with a hash header, see
// [Options]), and its outcome is recorded when it ends: judged by the
// balancer's lb.Config.Classify if set, else by grpcx.Classify
// (Unavailable, DeadlineExceeded, ResourceExhausted, Aborted, Internal,
// Unknown fail; the caller's cancellation is neutral), except that an RPC
// whose context was cancelled with bulwark.ErrSuperseded (a hedge's loser)
// is a failure. A failed RPC's grpc-retry-pushback-ms trailer counts, for
// P2C, as a call that took that long. So an endpoint that fails is
// ejected, and P2C steers away from a slow or pushing-back one, for gRPC
// as for HTTP.
//
// Under grpcx.UnaryClientRetry, each retry or hedge of a call goes to an
// endpoint that none of the call's other attempts went to, while one is
// left (lb's previous-hosts rule, see "Retries and hedges go elsewhere"
// in the lb package doc): the interceptor keeps a record of the call's
// endpoints in its context, which the picker reads from PickInfo.Ctx and
// fills. With lb.RingHash, a key's retry goes to the next endpoint of the
// ring. grpcx.StreamClientRetry keeps the same record for a stream: a
// retried stream is opened elsewhere too.
//
// When lb picks an endpoint whose SubConn is not READY (in panic mode, or
// in the moment before the state change arrives), the picker draws again,
// and as a last resort uses any READY SubConn, so an RPC never waits on a
// connection that another endpoint could serve. When lb.Balancer.Pick
// fails (every endpoint out of rotation with panic mode off, or every
// breaker of lb.Config.Breakers rejecting), the RPC fails at once with
// codes.Unavailable, whatever its WaitForReady, and is sent nowhere.
//
// [HealthChecker] runs the gRPC health-checking protocol for lb's active
// checks (lb.Config.Health.Checker).
package balancer
