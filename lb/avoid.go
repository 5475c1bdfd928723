package lb

import (
	"context"
	"math"
	"unsafe"

	"github.com/bulwark-go/bulwark/internal/tried"
)

// A retry avoids the endpoints of its call's earlier attempts (Envoy's
// previous-hosts retry predicate). The call's attempts share a record of
// the endpoints they went to, in their context (internal/tried): package
// retry installs it in the contexts of the attempts after the first and
// of hedged attempts, without either package importing the other. The
// first attempt of a call has no record, and pays nothing for the
// feature but a context lookup: when it fails, the balancer hands a
// record back with the result (its error wrapped in a *tried.Error, or
// its response body answering TriedRecord), which retry adopts.

// pickCall is the pick of one attempt of a call whose context holds rec
// (nil: none, the common case, which is a plain pick). With a record it
// passes over the endpoints rec holds while any other endpoint in
// rotation admits the call, and records the endpoint it picks, so that a
// hedge running beside this attempt, or a later retry, avoids it.
func (b *Balancer) pickCall(rec *tried.Record, key uint64, hasKey bool) (Ticket, error) {
	if rec == nil {
		return b.pick(key, hasKey)
	}
	t, err := b.pickAvoid(rec, key, hasKey)
	if err == nil {
		rec.Add(unsafe.Pointer(t.m))
	}
	return t, err
}

// pickAvoid is pickCall without recording the pick.
func (b *Balancer) pickAvoid(rec *tried.Record, key uint64, hasKey bool) (Ticket, error) {
	if rec == nil || rec.Len() == 0 {
		return b.pick(key, hasKey)
	}
	return b.pickExcept(rec, key, hasKey)
}

// recordOf returns a new record holding t's endpoint and, if prev is
// not nil, prev's: what an attempt without a record in its context hands
// back when it fails.
func recordOf(prev *tried.Record, t Ticket) *tried.Record {
	r := new(tried.Record)
	r.Merge(prev)
	if t.m != nil {
		r.Add(unsafe.Pointer(t.m))
	}
	return r
}

// tagErr wraps the error of an attempt sent without a record in its
// context, so that a retry layer above learns the endpoints it went to.
func tagErr(err error, prev *tried.Record, t Ticket) error {
	e := tried.NewError(err)
	e.Rec.Merge(prev)
	e.Rec.Add(unsafe.Pointer(t.m))
	return e
}

// ctxRecord returns the record of ctx's call, or nil.
func ctxRecord(ctx context.Context) *tried.Record { return tried.From(ctx) }

// except is what a pick passes over: the endpoints of the call's earlier
// attempts (rec) and those this pick has turned down (a ramping endpoint
// that declined, a breaker that rejected).
type except struct {
	rec *tried.Record
	own [maxPickTries]*member
	n   int
}

func (e *except) has(m *member) bool {
	for _, x := range e.own[:e.n] {
		if x == m {
			return true
		}
	}
	return e.rec != nil && e.rec.Has(unsafe.Pointer(m))
}

// add passes over m for the rest of the pick; false if there is no room.
func (e *except) add(m *member) bool {
	if e.n == len(e.own) {
		return false
	}
	e.own[e.n] = m
	e.n++
	return true
}

// allIn reports whether e holds every member of ms.
func (e *except) allIn(ms []*member) bool {
	for _, m := range ms {
		if !e.has(m) {
			return false
		}
	}
	return true
}

// pickExcept is pick for an attempt whose call has already been sent to
// the endpoints in rec: the policy chooses among the others (see
// pickFrom); only when every endpoint in rotation is in rec, or turned
// the call down, does it pick as usual, from all of them.
func (b *Balancer) pickExcept(rec *tried.Record, key uint64, hasKey bool) (Ticket, error) {
	v := b.view.Load()
	if v.local == nil {
		return Ticket{}, ErrNoEndpoints
	}
	var now int64
	if b.useClock {
		now = b.nanotime()
	}
	ex := except{rec: rec}
	for try := 1; try <= maxPickTries; try++ {
		r := b.rand()
		p, other := v.local, v.remote
		if v.remote != nil && mix(r)&0xffffffff >= v.localShare {
			p, other = v.remote, v.local
		}
		m := pickFrom(p, b, r, key, hasKey, now, &ex)
		if m == nil && other != nil {
			m = pickFrom(other, b, mix(r^1), key, hasKey, now, &ex)
		}
		if m == nil {
			break // every endpoint in rotation was tried or turned the call down
		}
		if ramp := m.ramp.Load(); ramp != rampFull && try < maxPickTries && b.rand()>>32 >= ramp {
			ex.add(m) // a ramping endpoint declined: any other will do
			continue
		}
		t := Ticket{m: m, start: now}
		if b.breakers != nil {
			br := b.breakers.Get(m.ep.Addr)
			bt, err := br.Allow()
			if err != nil {
				ex.add(m)
				continue
			}
			t.br, t.bt = br, bt
		}
		return b.take(t), nil
	}
	return b.pick(key, hasKey)
}

// pickFrom picks from p's pool a member that ex does not hold, nil if
// there is none, following the policy among the members left: round
// robin takes the next one in its order, Random draws among them, P2C
// and LeastRequest compare two of them, and RingHash walks the ring on
// from the key's point to the next endpoint (so a key's retries go to
// the same second choice in every client, as its first attempts go to
// the same first).
func pickFrom(p picker, b *Balancer, r, key uint64, hasKey bool, now int64, ex *except) *member {
	switch p := p.(type) {
	case *rrPicker:
		if ex.allIn(p.pool) {
			return nil
		}
		i := p.next.Add(1)
		for k := uint32(0); ; k++ {
			if m := p.ms[p.fastmod(i+k)]; !ex.has(m) {
				return m
			}
		}
	case *randomPicker:
		if ex.allIn(p.pool) {
			return nil
		}
		for range 4 {
			if m := p.ms[fastrange(uint32(r), len(p.ms))]; !ex.has(m) {
				return m
			}
			r = mix(r + 1)
		}
		i := fastrange(uint32(r), len(p.ms))
		for {
			if m := p.ms[i]; !ex.has(m) {
				return m
			}
			if i++; i == len(p.ms) {
				i = 0
			}
		}
	case *lrPicker:
		x, y := twoExcept(p.ms, r, ex)
		if y != nil && y.inflight() < x.inflight() {
			return y
		}
		return x
	case *p2cPicker:
		x, y := twoExcept(p.ms, r, ex)
		if y != nil && b.cost(y, now) < b.cost(x, now) {
			return y
		}
		return x
	case *ringPicker:
		return p.pickExcept(b, r, key, hasKey, ex)
	}
	return nil
}

// twoExcept draws two distinct members of ms that ex does not hold: x is
// nil when there is none, y when there is only one.
func twoExcept(ms []*member, r uint64, ex *except) (x, y *member) {
	n := len(ms)
	// A few draws first: they find two quickly when few are held.
	for range 8 {
		m := ms[fastrange(uint32(r), n)]
		r = mix(r + 1)
		if m == x || ex.has(m) {
			continue
		}
		if x == nil {
			x = m
			continue
		}
		return x, m
	}
	// Then exactly: two distinct ranks among the members left.
	left := 0
	for _, m := range ms {
		if !ex.has(m) {
			left++
		}
	}
	switch left {
	case 0:
		return nil, nil
	case 1:
		for _, m := range ms {
			if !ex.has(m) {
				return m, nil
			}
		}
	}
	i := fastrange(uint32(r), left)
	j := fastrange(uint32(r>>32), left-1)
	if j >= i {
		j++
	}
	k := 0
	for _, m := range ms {
		if ex.has(m) {
			continue
		}
		if k == i {
			x = m
		} else if k == j {
			y = m
		}
		k++
	}
	return x, y
}

// pickExcept walks the ring from the key's point (a random one without a
// key) to the first endpoint ex does not hold and, with bounded load,
// whose load is within the bound (else the first one ex does not hold).
func (p *ringPicker) pickExcept(b *Balancer, r, key uint64, hasKey bool, ex *except) *member {
	if ex.allIn(p.pool) {
		return nil
	}
	if !hasKey {
		key = r
	}
	i := p.first(key)
	limit := int64(math.MaxInt64)
	if p.factor >= 0 {
		limit = int64(math.Ceil(p.factor * float64(b.total.Load()+1) / float64(p.n)))
	}
	var free *member
	for range len(p.owners) {
		if m := p.owners[i]; !ex.has(m) {
			if m.inflight()+1 <= limit {
				return m
			}
			if free == nil {
				free = m
			}
		}
		if i++; i == len(p.owners) {
			i = 0
		}
	}
	return free
}
