package main

import (
	"sort"
	"time"
)

// tally counts requests and the ones that succeeded.
type tally struct{ n, ok int }

func (t tally) rate() float64 {
	if t.n == 0 {
		return 0
	}
	return 100 * float64(t.ok) / float64(t.n)
}

// stats summarise one phase for one client.
type stats struct {
	n, ok         int
	p50, p99, max time.Duration
	// p99Settled is the p99 of the requests sent after the phase's
	// settle time, once the client has had time to learn of the
	// phase's fault (a breaker needs a few calls, and the first slow
	// calls their time, before it opens); settled counts them. Zero
	// for a phase without a settle time.
	p99Settled time.Duration
	settled    int
	dups       int             // side effects (orders, cart additions) done more than once: the extra ones
	kinds      [numKinds]tally // by kind of request
	crits      [3]tally        // by criticality (degrade.Default, Sheddable, Critical)
	throttled  int             // answered 429 (the gateway's rate limit)
	breaker    int64           // bulwark: breaker state changes
	ejections  int64           // bulwark: instances lb took out of rotation (ejected, failing checks)
	shed       [3]int64        // bulwark: requests the gateway shed, by criticality
	counts     counts          // bulwark: the library's own counts (cache, stores)
	results    []result        // every request, for the report's timeline
	offset     time.Duration   // when the client's load began, since the phase began
}

func summarise(rs []result, settle time.Duration) stats {
	s := stats{n: len(rs), results: rs}
	if settle > 0 {
		var late []result
		for _, r := range rs {
			if r.start >= settle {
				late = append(late, r)
			}
		}
		s.p99Settled, s.settled = p99(late), len(late)
	}
	lat := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		if r.cause == causeNotSent {
			// Failed, but never sent: no latency to count.
			s.kinds[r.kind].n++
			s.crits[r.crit].n++
			continue
		}
		t := &s.kinds[r.kind]
		c := &s.crits[r.crit]
		t.n++
		c.n++
		if r.ok {
			s.ok++
			t.ok++
			c.ok++
		}
		if r.throttled {
			s.throttled++
		}
		lat = append(lat, r.latency)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		s.p50 = lat[len(lat)*50/100]
		s.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
		s.max = lat[len(lat)-1]
	}
	return s
}

// p99 is the 99th-percentile latency of the requests of rs that were
// sent.
func p99(rs []result) time.Duration {
	lat := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		if r.cause != causeNotSent {
			lat = append(lat, r.latency)
		}
	}
	if len(lat) == 0 {
		return 0
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[min(len(lat)-1, len(lat)*99/100)]
}

func (s stats) rate() float64 {
	if s.n == 0 {
		return 0
	}
	return 100 * float64(s.ok) / float64(s.n)
}

func (s stats) shedTotal() int64 { return s.shed[0] + s.shed[1] + s.shed[2] }
