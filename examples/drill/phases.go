package main

import (
	"time"

	"github.com/bulwark-go/bulwark/chaos"
)

// phase is one step of the drill: a fault switched on before the load runs
// and off after it.
type phase struct {
	name  string
	about string
	setup func(e *env) error
	// least is the least time the phase's fault forces on the bare
	// client (the slowest of the two), for the progress estimate; zero
	// for a phase that runs at the speed of loopback.
	least func(cfg config) time.Duration
	// hold, if set, keeps both clients sending past their requests
	// until the phase has lasted that long, and settle is when the
	// phase's settled p99 starts (see stats.p99Settled).
	hold, settle time.Duration
	// burst makes the phase's load the overload burst: open-loop
	// arrivals at config's burst rate, from its pool of workers, each
	// client on its own (see openLoop).
	burst bool
}

var phases = []phase{
	// The steady phase lasts a second at least, so that its p99, the
	// latency spike's yardstick, is taken over as many requests.
	{name: phaseSteady, about: "all three instances healthy", setup: func(e *env) error { return nil }, hold: time.Second},
	{name: phaseDown, about: "instance b refuses connections", setup: func(e *env) error {
		e.bs[1].down()
		return nil
	}},
	// bulwark's client keeps sending for 4s, about as long as the bare
	// client needs to wait out its deadlines in -quick, so that the p99
	// after the first second is taken over hundreds of requests: one
	// stall of the busy machine must not be 1% of them.
	{name: phaseSpike, about: "b is back; instance a answers after 1.5s", setup: func(e *env) error {
		if err := e.bs[0].chaos.SetFaults([]chaos.Fault{{Name: "latency spike", AllTraffic: true,
			Latency: chaos.Latency{Delay: 1500 * time.Millisecond}}}); err != nil {
			return err
		}
		return e.bs[1].up()
	}, least: func(cfg config) time.Duration {
		// Round-robin sends a third of the bare client's requests to a,
		// and each holds a worker until its deadline.
		return time.Duration(cfg.requests/3) * min(cfg.deadline, 1500*time.Millisecond) / time.Duration(cfg.concurrency)
	}, hold: 4 * time.Second, settle: time.Second},
	{name: phaseDropped, about: "a fast again; b does the work, then drops the response", setup: func(e *env) error {
		if err := e.bs[0].chaos.SetFaults(nil); err != nil {
			return err
		}
		return e.bs[1].chaos.SetFaults([]chaos.Fault{{Name: "dropped response", AllTraffic: true, Action: chaos.Drop}})
	}},
	{name: phaseOverload, about: "b answers again; requests arrive on a schedule, whatever the answers (open loop), from a bounded pool of callers, each with the deadline: 60% sheddable recommendations (90ms of work), 20% default cart requests, 20% critical orders, 2.3 times the work the instances can do; bare first, then bulwark, each alone", setup: func(e *env) error {
		return e.bs[1].chaos.SetFaults(nil)
	}, least: func(cfg config) time.Duration { return 2 * (cfg.burstFor + cfg.deadline) }, burst: true},
	{name: phaseRedis, about: "Redis is down: the cache, the sessions and the idempotency records lose their store", setup: func(e *env) error {
		return e.redis.down()
	}},
	{name: phaseRecovered, about: "all healthy again, Redis back", setup: func(e *env) error {
		return e.redis.up()
	}},
}

// env is what the phases act on.
type env struct {
	bs    []*backend
	redis *redisCtl
}

// The phases, by name.
const (
	phaseSteady    = "steady"
	phaseDown      = "instance down"
	phaseSpike     = "latency spike"
	phaseDropped   = "responses dropped"
	phaseOverload  = "overload burst"
	phaseRedis     = "Redis outage"
	phaseRecovered = "recovered"
)

func phaseIndex(name string) int {
	for i, ph := range phases {
		if ph.name == name {
			return i
		}
	}
	panic("drill: no phase " + name)
}

func rowOf(rows [][2]stats, name string) ([2]stats, bool) {
	for i, ph := range phases {
		if ph.name == name && i < len(rows) {
			return rows[i], true
		}
	}
	return [2]stats{}, false
}
