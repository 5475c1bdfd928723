package bridge

import (
	"time"

	"github.com/bulwark-go/bulwark"
)

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
	// LBClassifier returns the Config.Classify of the *lb.Balancer b
	// (nil if unset).
	LBClassifier func(b any) bulwark.Classifier
	// LBRecordWait is Balancer.Record for the lb.Ticket t with a pushback
	// wait, which P2C counts as latency (a grpc-retry-pushback-ms
	// trailer).
	LBRecordWait func(b any, t any, o bulwark.Outcome, wait time.Duration)
)
