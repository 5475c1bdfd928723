package bridge

import (
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/tried"
)

// Set by package lb's init, used by grpcx/balancer.
var (
	// LBWatch registers notify with the *lb.Balancer b: it is called,
	// outside the balancer's lock, after every change of b's endpoint
	// set. The returned function removes it.
	LBWatch func(b any, notify func()) (stop func())
	// LBConns adds conns to the number of gRPC SubConns (of every
	// ClientConn using the *lb.Balancer b) for endpoint addr, and ready
	// to the number of those READY. An endpoint that has SubConns but
	// none READY is unreachable: out of rotation, as a failed active
	// check would put it.
	LBConns func(b any, addr string, conns, ready int)
	// LBClassifier returns the Config.Classify of the *lb.Balancer b
	// (nil if unset).
	LBClassifier func(b any) bulwark.Classifier
	// LBRecordWait is Balancer.Record for the lb.Ticket t with a pushback
	// wait, which P2C counts as latency (a grpc-retry-pushback-ms
	// trailer).
	LBRecordWait func(b any, t any, o bulwark.Outcome, wait time.Duration)
	// LBPickAvoid picks an lb.Ticket from the *lb.Balancer b (by key if
	// not "") for an attempt of a call whose earlier attempts went to the
	// endpoints in rec: it passes over them while another endpoint in
	// rotation admits the call. It does not add its pick to rec (LBTried
	// does, once the attempt is sent).
	LBPickAvoid func(b any, rec *tried.Record, key string) (t any, err error)
	// LBTried adds the endpoint of the lb.Ticket t to rec.
	LBTried func(rec *tried.Record, t any)
)
