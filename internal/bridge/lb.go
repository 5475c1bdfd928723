package bridge

// Set by package lb's init, used by grpcx/balancer.
var (
	// LBWatch registers notify with the *lb.Balancer b: it is called,
	// outside the balancer's lock, after every change of b's endpoint
	// set. The returned function removes it.
	LBWatch func(b any, notify func()) (stop func())
	// LBSetReachable marks endpoint addr of the *lb.Balancer b as
	// reachable or not (a gRPC SubConn's connectivity): an unreachable
	// endpoint is out of rotation, as a failed active check would put it.
	LBSetReachable func(b any, addr string, ok bool)
)
