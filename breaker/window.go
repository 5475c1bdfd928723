package breaker

import (
	"sync/atomic"

	"github.com/bulwark-go/bulwark/internal/stripe"
)

// A period is everything a breaker knows about one generation: one stay
// in one state. A state change builds a new period and swaps it in, so
// counters never need resetting and a result from an older generation
// cannot touch the new one: it finds a different period (or generation
// number) and is dropped.
//
// Fields above the padding are written once, before the period is
// published, and are only read afterwards; they share cache lines that
// every core can keep. Counters that change live in per-P cells or behind
// padding.
type period struct {
	gen       uint64
	state     State
	start     int64 // Nanotime when the period began
	openUntil int64 // Open: Nanotime from which a probe may pass
	err       *OpenError
	cells     []cell
	mask      int

	// Closed state, count window: the ring of failure and slow-call
	// positions, allocated by the first failure or slow call of the
	// period, so that a healthy breaker (a Set member that never failed)
	// does not hold one.
	ring atomic.Pointer[countRing]
	// Closed state, time window: per cell, stride buckets.
	buckets []bucket
	stride  int

	// pending is set when a failure saw the rate over its threshold while
	// the window held fewer than MinimumCalls calls: a success may then
	// complete the minimum and trip the breaker, so successes evaluate
	// while it is set. It is read on the success path and written rarely.
	pending atomic.Bool

	// consec is the current run of failures (Closed, consecutive mode
	// only), alone on its cache lines.
	consec *stripe.Int64
	// half holds the probe counters (HalfOpen only).
	half *halfState
}

// countRing holds the positions (running call totals) at which the
// latest failures and slow calls of a count window happened.
type countRing struct {
	fhead, shead stripe.Int64
	fring, sring []atomic.Int64
}

// halfState counts a half-open period's probes.
type halfState struct {
	slots atomic.Int64 // probe slots left
	succ  atomic.Int64
	fail  atomic.Int64
	slow  atomic.Int64
}

// countRing returns the period's ring, allocating it on first use.
func (p *period) countRing(size int64, slow bool) *countRing {
	if r := p.ring.Load(); r != nil {
		return r
	}
	r := &countRing{fring: make([]atomic.Int64, size)}
	if slow {
		r.sring = make([]atomic.Int64, size)
	}
	if p.ring.CompareAndSwap(nil, r) {
		return r
	}
	return p.ring.Load()
}

// consecutive returns the current run of failures, 0 outside consecutive
// mode.
func (p *period) consecutive() int64 {
	if p.consec == nil {
		return 0
	}
	return p.consec.Load()
}

// cell holds one P's share of a period's counters.
type cell struct {
	succ, fail, neutral, slow, rejected atomic.Int64
	_                                   [stripe.CacheLine - 40]byte
}

// bucket is one time slice of a time window in one cell.
type bucket struct {
	epoch, calls, fails, slows atomic.Int64
}

// bucketPad is the padding, in buckets, between two cells' bucket rows.
const bucketPad = stripe.CacheLine / 32

func (p *period) cell() *cell { return &p.cells[stripe.Slot()&p.mask] }

// sums returns the period's counters summed over cells.
func (p *period) sums() (succ, fail, neutral, slow, rejected int64) {
	for i := range p.cells {
		c := &p.cells[i]
		succ += c.succ.Load()
		fail += c.fail.Load()
		neutral += c.neutral.Load()
		slow += c.slow.Load()
		rejected += c.rejected.Load()
	}
	return
}

func (p *period) total() int64 {
	var t int64
	for i := range p.cells {
		t += p.cells[i].succ.Load() + p.cells[i].fail.Load()
	}
	return t
}

// push records an event at position pos in ring.
func push(ring []atomic.Int64, head *stripe.Int64, pos int64) {
	i := head.Add(1) - 1
	ring[i%int64(len(ring))].Store(pos)
}

// inLast counts the ring's events among the last n of total calls. The
// ring holds the positions of the latest len(ring) == n events; an older
// event is necessarily older than the last n calls.
func inLast(ring []atomic.Int64, total, n int64) int64 {
	lo := total - n
	var k int64
	for i := range ring {
		if v := ring[i].Load(); v > 0 && v > lo {
			k++
		}
	}
	return k
}

// countWindow returns the calls, failures and slow calls among the last n
// calls of the period.
//
// Position is the running total of recorded calls (summed over cells)
// just after the call recorded itself. Calls that finish concurrently have
// no true order, so two of them may see the same or swapped positions:
// the window is exact for serial calls and exact to within the number of
// calls in flight otherwise.
func (p *period) countWindow(total, n int64) (calls, fails, slows int64) {
	calls = min(total, n)
	r := p.ring.Load()
	if r == nil {
		return calls, 0, 0
	}
	fails = min(inLast(r.fring, total, n), calls)
	if r.sring != nil {
		slows = min(inLast(r.sring, total, n), calls)
	}
	return
}

// bucketAt returns this P's bucket for epoch, resetting it if it last
// counted an older epoch (fresh then reports that this call reset it), or
// nil if it already counts a newer one (the
// caller read the clock, then was descheduled for a whole window: its
// sample is too old to keep, and resetting the bucket back would wipe
// newer counts). Two writers on one cell (rare: see package stripe) may
// race the reset and lose a count; a reader summing during a reset may
// see the new epoch with the old counts. Both errors are one call wide.
func (p *period) bucketAt(epoch, nb int64) (bk *bucket, fresh bool) {
	bk = &p.buckets[(stripe.Slot()&p.mask)*p.stride+int(epoch%nb)]
	if e := bk.epoch.Load(); e != epoch {
		if e > epoch {
			return nil, false
		}
		if bk.epoch.CompareAndSwap(e, epoch) {
			bk.calls.Store(0)
			bk.fails.Store(0)
			bk.slows.Store(0)
			fresh = true
		}
	}
	return bk, fresh
}

// timeWindow sums the buckets of the last nb epochs, epoch included.
func (p *period) timeWindow(epoch, nb int64) (calls, fails, slows int64) {
	for c := range p.cells {
		row := p.buckets[c*p.stride : c*p.stride+int(nb)]
		for i := range row {
			bk := &row[i]
			if e := bk.epoch.Load(); e > epoch-nb && e <= epoch {
				calls += bk.calls.Load()
				fails += bk.fails.Load()
				slows += bk.slows.Load()
			}
		}
	}
	return
}
