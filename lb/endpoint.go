package lb

import (
	"fmt"
	"sync/atomic"

	"github.com/bulwark-go/bulwark/internal/stripe"
)

// Endpoint is one instance of a service.
type Endpoint struct {
	// Addr is the endpoint's address, "host:port". It identifies the
	// endpoint: two endpoints of one set never share it, and an update
	// that keeps an Addr keeps that endpoint's state (in-flight calls,
	// latency, ejections).
	Addr string
	// Weight is the endpoint's relative share for the weighted policies
	// ([WeightedRoundRobin], [Random], [RingHash]). 0 means
	// DefaultWeight (1); at most MaxWeight.
	Weight int
	// Zone is the endpoint's zone or data centre, for locality (see
	// Config.Zone). Default "": no zone.
	Zone string
	// Metadata is free-form data from the resolver or registry. The
	// balancer never changes it; treat it as read-only.
	Metadata map[string]string
}

func (e Endpoint) weight() int64 {
	if e.Weight <= 0 {
		return DefaultWeight
	}
	return int64(e.Weight)
}

// State is the health state of an endpoint.
type State uint8

// The states.
const (
	// Healthy endpoints are picked.
	Healthy State = iota
	// Ejected endpoints failed too often (passive outlier detection) and
	// are out of rotation until their ejection time has passed.
	Ejected
	// Unhealthy endpoints failed their active health checks and are out
	// of rotation until they pass HealthyThreshold checks in a row. Under
	// grpcx/balancer, an endpoint that has SubConns but none READY is
	// Unhealthy too, until one is.
	Unhealthy
)

// String returns "healthy", "ejected" or "unhealthy".
func (s State) String() string {
	switch s {
	case Healthy:
		return "healthy"
	case Ejected:
		return "ejected"
	case Unhealthy:
		return "unhealthy"
	}
	return "unknown"
}

// StateChangeEvent is the argument of Config.OnStateChange.
type StateChangeEvent struct {
	// Endpoint is the endpoint that changed state.
	Endpoint Endpoint
	// From and To are its states before and after.
	From, To State
	// Reason says why: "consecutive failures", "failure rate",
	// "ejection ended", "active check failed", "active check passed", or,
	// under grpcx/balancer, "connection not ready" and "connection
	// ready" (including the first connection of an endpoint, which
	// starts not ready).
	Reason string
}

// EndpointState is a snapshot of one endpoint, returned by
// [Balancer.Endpoints].
type EndpointState struct {
	Endpoint Endpoint
	// State is the endpoint's health state.
	State State
	// InFlight is the number of picks not yet handed back with Done, as
	// counted by the policies that weigh it (LeastRequest, P2C, RingHash
	// with its load bound); RoundRobin, WeightedRoundRobin and Random
	// skip the count, which saves an atomic operation per call, and
	// report 0.
	InFlight int64
	// Successes and Failures count the outcomes reported so far.
	Successes, Failures int64
	// Ejections counts the endpoint's ejections so far.
	Ejections int64
}

// member is an endpoint with its state. It lives as long as its address is
// in the set: snapshots come and go, members are carried over.
type member struct {
	// ep.Addr never changes; ep.Weight and ep.Zone change with an
	// update, under Balancer.mu, and are read only under it (pickers are
	// built under it). Metadata is not kept in ep: calls read the whole
	// Endpoint, lock-free, from info, which an update replaces.
	ep   Endpoint
	info atomic.Pointer[Endpoint]

	// Hot fields, written by Pick and Done.
	//
	// calls packs the calls in flight (low inflightBits bits) and the
	// successes (the rest), so that Pick adds 1 and a successful Done
	// adds 1<<inflightBits - 1: one atomic operation for both counts.
	// An endpoint would need a million calls in flight at once for the
	// first field to overflow into the second.
	calls  atomic.Uint64
	fail   atomic.Int64
	consec atomic.Int64
	cost   atomic.Uint64 // peak-EWMA latency, float64 bits, ns
	stamp  atomic.Int64  // Nanotime of the last cost update
	// ramp is the slow-start admission share in [0, 1<<32]; rampFull
	// when the endpoint is not ramping.
	ramp atomic.Uint64

	// Cold fields, guarded by Balancer.mu.
	ejected     bool
	ejectedTill int64
	multiplier  int64 // ejection time multiplier
	ejections   int64
	lastSucc    int64 // succ/fail at the last sweep
	lastFail    int64
	hcPass      int // active checks passed in a row (while unhealthy)
	hcFail      int // failed in a row (while healthy)
	unhealthy   bool
	down        bool  // unreachable: conns > 0 and ready == 0
	conns       int   // grpcx/balancer SubConns for the endpoint, of every ClientConn
	ready       int   // those of them READY
	rampStart   int64 // Nanotime the ramp began; 0: not ramping

	_ stripe.Pad
}

const rampFull = 1 << 32

const (
	inflightBits = 20
	inflightMask = 1<<inflightBits - 1
	doneSuccess  = 1<<inflightBits - 1 // added by a successful Done
	doneOther    = ^uint64(0)          // added by any other Done: -1
)

func (m *member) inflight() int64  { return int64(m.calls.Load() & inflightMask) }
func (m *member) successes() int64 { return int64(m.calls.Load() >> inflightBits) }

func newMember(ep Endpoint) *member {
	m := &member{ep: Endpoint{Addr: ep.Addr, Weight: ep.Weight, Zone: ep.Zone}}
	m.info.Store(&ep)
	m.ramp.Store(rampFull)
	return m
}

// update gives m the Weight, Zone and Metadata of ep (same Addr, which
// calls read without the lock); the caller holds Balancer.mu.
func (m *member) update(ep Endpoint) {
	m.ep.Weight, m.ep.Zone = ep.Weight, ep.Zone
	m.info.Store(&ep)
}

// endpoint returns the member's current Endpoint.
func (m *member) endpoint() Endpoint { return *m.info.Load() }

func checkEndpoints(eps []Endpoint) error {
	seen := make(map[string]struct{}, len(eps))
	for i, e := range eps {
		if e.Addr == "" {
			return fmt.Errorf("endpoint %d has an empty Addr", i)
		}
		if e.Weight < 0 || e.Weight > MaxWeight {
			return fmt.Errorf("endpoint %q has Weight %d", e.Addr, e.Weight)
		}
		if _, dup := seen[e.Addr]; dup {
			return fmt.Errorf("endpoint %q appears twice", e.Addr)
		}
		seen[e.Addr] = struct{}{}
	}
	return nil
}
