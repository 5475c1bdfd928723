package lb

import (
	"cmp"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/internal/stripe"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Policy chooses an endpoint among the available ones. Policies are made
// by [RoundRobin], [WeightedRoundRobin], [Random], [LeastRequest], [P2C] and
// [RingHash]; the interface is sealed. A Policy value holds only its
// settings: each Balancer builds its own state from it, so one Policy may
// serve several balancers.
type Policy interface {
	// newPicker builds the pick state for one pool of members; it is
	// rebuilt whenever the pool changes.
	newPicker(ms []*member) picker
	validate(v *validate.V)
	// traits says what picks need.
	traits() traits
}

// traits says what a policy's picks need, so that the others skip it.
type traits struct {
	clock    bool // the time (latency-aware policies)
	random   bool // a random number
	inflight bool // per-endpoint calls in flight
	total    bool // calls in flight over all endpoints (bounded-load hashing)
}

// picker picks from one pool; r is a fresh random number, key a hash key
// (hasKey false when the call has none), now the Nanotime when
// Policy.clock is true.
type picker interface {
	pick(b *Balancer, r, key uint64, hasKey bool, now int64) *member
}

// fastrange maps a 32-bit random number to [0, n) without a division.
func fastrange(r uint32, n int) int { return int((uint64(r) * uint64(n)) >> 32) }

// ---- round robin

// RoundRobin returns the round-robin policy: endpoints in turn, weights
// ignored. Each balancer starts the rotation at a random place, so that
// many clients do not all begin with the first endpoint.
func RoundRobin() Policy { return roundRobin{} }

type roundRobin struct{}

func (roundRobin) validate(*validate.V) {}
func (roundRobin) traits() traits       { return traits{} }
func (roundRobin) newPicker(ms []*member) picker {
	return newRR(ms)
}

// newRR starts the rotation at a random place, so that many clients do
// not all begin with the first endpoint.
func newRR(ms []*member) *rrPicker {
	p := &rrPicker{ms: ms, pool: ms, n: uint64(len(ms)), magic: ^uint64(0)/uint64(len(ms)) + 1}
	p.next.Store(uint32(rand.Uint64N(uint64(len(ms)))))
	return p
}

type rrPicker struct {
	_     stripe.Pad
	next  atomic.Uint32
	_     stripe.Pad
	ms    []*member
	n     uint64
	magic uint64 // for fastmod
	// pool is the members once each (ms is the weighted schedule under
	// WeightedRoundRobin), for picks that pass over some (avoid.go).
	pool []*member
}

func (p *rrPicker) pick(_ *Balancer, _, _ uint64, _ bool, _ int64) *member {
	return p.ms[p.fastmod(p.next.Add(1))]
}

// fastmod returns x % n with two multiplications instead of a division
// (Lemire, Kaser and Kurz, "Faster remainder by direct computation",
// 2019), exact for every 32-bit x: the division was a third of a round
// robin pick. The counter is 32 bits, so every 4 billion picks the
// rotation skips ahead once.
func (p *rrPicker) fastmod(x uint32) uint64 {
	hi, _ := bits.Mul64(p.magic*uint64(x), p.n)
	return hi
}

// ---- weighted round robin

// WeightedRoundRobin returns nginx's smooth weighted round robin: over a
// cycle of the weights' sum, each endpoint gets its weight's share, and
// its picks are spread evenly through the cycle instead of coming in a
// burst (weights 5, 1, 1 give a a b a c a a). The schedule is computed
// once per endpoint set and then followed with one atomic add per pick, so
// picks take no lock. Weights are scaled down proportionally when their
// sum (after dividing by their greatest common divisor) exceeds
// MaxScheduleLength.
func WeightedRoundRobin() Policy { return weightedRoundRobin{} }

// MaxScheduleLength bounds the weighted round-robin schedule and the
// weighted-random table.
const MaxScheduleLength = 1 << 16

type weightedRoundRobin struct{}

func (weightedRoundRobin) validate(*validate.V) {}
func (weightedRoundRobin) traits() traits       { return traits{} }
func (weightedRoundRobin) newPicker(ms []*member) picker {
	p := newRR(smoothSchedule(ms))
	p.pool = ms
	return p
}

// scaledWeights returns the members' weights divided by their gcd and, if
// their sum still exceeds MaxScheduleLength, scaled down (each at least 1).
func scaledWeights(ms []*member) ([]int64, int64) { return scaledWeightsTo(ms, MaxScheduleLength) }

func scaledWeightsTo(ms []*member, limit int64) ([]int64, int64) {
	ws := make([]int64, len(ms))
	var g, sum int64
	for i, m := range ms {
		ws[i] = m.ep.weight()
		g = gcd(g, ws[i])
	}
	for i := range ws {
		ws[i] /= g
		sum += ws[i]
	}
	if sum > limit {
		scale := float64(limit-int64(len(ms))) / float64(sum)
		sum = 0
		for i := range ws {
			ws[i] = max(1, int64(float64(ws[i])*scale))
			sum += ws[i]
		}
	}
	return ws, sum
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// smoothSchedule returns one cycle of nginx's smooth weighted round
// robin: at each step every endpoint's current weight grows by its weight,
// the largest is picked and loses the total. That costs n steps per pick,
// paid here once per cycle rather than on every call. For very large
// sets (n × cycle > 4M steps) it uses the earliest-deadline-first order
// instead (each endpoint's picks at (k+½)/weight), just as even, built in
// O(cycle log cycle).
func smoothSchedule(ms []*member) []*member {
	ws, total := scaledWeights(ms)
	out := make([]*member, 0, total)
	if int64(len(ms))*total <= 1<<22 {
		cur := make([]int64, len(ms))
		for range total {
			best := 0
			for i := range cur {
				cur[i] += ws[i]
				if cur[i] > cur[best] {
					best = i
				}
			}
			cur[best] -= total
			out = append(out, ms[best])
		}
		return out
	}
	type slot struct {
		at float64
		i  int
	}
	slots := make([]slot, 0, total)
	for i, w := range ws {
		for k := range w {
			slots = append(slots, slot{(float64(k) + 0.5) / float64(w), i})
		}
	}
	slices.SortStableFunc(slots, func(a, b slot) int { return cmp.Compare(a.at, b.at) })
	for _, s := range slots {
		out = append(out, ms[s.i])
	}
	return out
}

// ---- random

// Random returns the random policy: each call picks an endpoint at random,
// in proportion to the endpoints' weights.
func Random() Policy { return random{} }

type random struct{}

func (random) validate(*validate.V) {}
func (random) traits() traits       { return traits{random: true} }
func (random) newPicker(ms []*member) picker {
	p := &randomPicker{ms: ms, pool: ms}
	for _, m := range ms {
		if m.ep.weight() != ms[0].ep.weight() {
			p.ms = smoothSchedule(ms) // a table with each endpoint weight times
			break
		}
	}
	return p
}

type randomPicker struct {
	ms   []*member // a weighted table when the weights differ
	pool []*member // the members once each
}

func (p *randomPicker) pick(_ *Balancer, r, _ uint64, _ bool, _ int64) *member {
	return p.ms[fastrange(uint32(r), len(p.ms))]
}

// ---- least request

// LeastRequest returns the least-request policy: two endpoints drawn at
// random, the one with fewer calls in flight wins (the power of two
// choices: Mitzenmacher showed that two choices already bring the
// maximum load down exponentially, while more choices, or the global
// least, make every client herd onto the same endpoint). Weights are
// ignored.
func LeastRequest() Policy { return leastRequest{} }

type leastRequest struct{}

func (leastRequest) validate(*validate.V) {}
func (leastRequest) traits() traits       { return traits{random: true, inflight: true} }
func (leastRequest) newPicker(ms []*member) picker {
	return &lrPicker{ms: ms}
}

type lrPicker struct{ ms []*member }

// two draws two distinct members from ms.
func two(ms []*member, r uint64) (*member, *member) {
	n := len(ms)
	if n == 1 {
		return ms[0], ms[0]
	}
	i := fastrange(uint32(r), n)
	j := fastrange(uint32(r>>32), n-1)
	if j >= i {
		j++
	}
	return ms[i], ms[j]
}

func (p *lrPicker) pick(_ *Balancer, r, _ uint64, _ bool, _ int64) *member {
	a, b := two(p.ms, r)
	if b.inflight() < a.inflight() {
		return b
	}
	return a
}

// ---- P2C with peak EWMA

// P2CConfig configures [P2C].
type P2CConfig struct {
	// Decay is the time constant of the latency average: a sample's
	// weight falls by e every Decay, and an endpoint's estimate decays
	// toward zero while it gets no calls, so that one that was slow gets
	// tried again. Default 10 s, Finagle's and linkerd's decay time: long
	// enough to ride over single slow calls, short enough to notice a
	// recovery within seconds.
	Decay time.Duration
	// Penalty is the latency a failed call counts as (when it took less),
	// and the cost of an endpoint that has calls in flight but no
	// estimate yet. Failures in a row count more each: the k-th counts
	// as k × Penalty (up to 10 × Penalty), so that an endpoint that
	// fails fast, with nothing in flight, does not keep winning
	// comparisons with working endpoints that are busy or were slow a
	// while ago. A response that asks the caller to wait (a Retry-After,
	// a breaker's RetryAfter) counts as that wait if it is longer.
	// Default 1 s: above any healthy RPC's latency, so that a failing
	// endpoint loses every comparison with an idle working one, and
	// short enough to decay within a minute.
	Penalty time.Duration
}

// Defaults of P2CConfig.
const (
	DefaultDecay   = 10 * time.Second
	DefaultPenalty = time.Second
)

// P2C returns the policy of Finagle and linkerd: two endpoints drawn at
// random, the one with the lower cost wins, where cost is the endpoint's
// peak-EWMA latency times its calls in flight plus one. Peak EWMA jumps to
// a latency above the average at once and comes down slowly (time
// constant Decay), so it reacts to an endpoint slowing down within a call;
// failures, 429/503 and Retry-After count as latency (Penalty, growing
// with each failure in a row). Weights
// are ignored. Picks read the clock, once in Pick and once in Done.
//
// It is the default policy.
func P2C(cfg P2CConfig) Policy { return p2c{cfg} }

type p2c struct{ cfg P2CConfig }

func (p p2c) validate(v *validate.V) {
	v.Duration("Policy.Decay", p.cfg.Decay, MaxDuration)
	v.Duration("Policy.Penalty", p.cfg.Penalty, MaxDuration)
}
func (p2c) traits() traits { return traits{clock: true, random: true, inflight: true} }
func (p p2c) newPicker(ms []*member) picker {
	return &p2cPicker{ms: ms}
}

type p2cPicker struct{ ms []*member }

func (p *p2cPicker) pick(b *Balancer, r, _ uint64, _ bool, now int64) *member {
	x, y := two(p.ms, r)
	if b.cost(y, now) < b.cost(x, now) {
		return y
	}
	return x
}

// cost is m's decayed peak-EWMA latency times its in-flight calls plus one.
func (b *Balancer) cost(m *member, now int64) float64 {
	c := math.Float64frombits(m.cost.Load())
	in := float64(m.inflight())
	if c == 0 {
		if in > 0 {
			return b.penalty + in
		}
		return 0
	}
	if dt := now - m.stamp.Load(); dt > 0 {
		if x := float64(dt) * b.invDecay; x < nearX {
			c *= expNear(x)
		} else {
			c *= expNeg(x)
		}
	}
	return c * (in + 1)
}

// expNeg returns exp(-x) for x >= 0, within a relative error of 1e-11
// (TestExpNegErrorBound), falling monotonically. Below nearX, the common
// case (calls microseconds or milliseconds apart against a Decay of
// seconds), it sums exp's series to x⁴ (expNear): the remainder is below
// x⁵/120 < 1e-11, and the sum exceeds exp(-x) there, so it meets math.Exp
// at nearX without a step up. That costs a few multiplications where
// math.Exp took 13 ns, on a path that evaluates it three times per call.
// The hot paths inline the test and expNear themselves (expNeg with its
// call to math.Exp is over the compiler's inlining budget).
func expNeg(x float64) float64 {
	if x < nearX {
		return expNear(x)
	}
	return math.Exp(-x)
}

// nearX is where expNeg hands over from the series to math.Exp.
const nearX = 0x1p-6

func expNear(x float64) float64 { return 1 - x*(1-x*(0.5-x*(1.0/6-x*(1.0/24)))) }

// observe folds a latency sample (ns) into m's peak EWMA. Concurrent
// updates may lose one another's sample; an estimate needs no more.
func (b *Balancer) observe(m *member, now int64, rtt float64) {
	c := math.Float64frombits(m.cost.Load())
	prev := m.stamp.Load()
	m.stamp.Store(now)
	if rtt > c || c == 0 {
		c = rtt // peak: jump up at once
	} else {
		w := 1.0
		if x := float64(max(0, now-prev)) * b.invDecay; x < nearX {
			w = expNear(x)
		} else {
			w = expNeg(x)
		}
		c = rtt + (c-rtt)*w
	}
	m.cost.Store(math.Float64bits(c))
}

// ---- consistent hashing

// HashConfig configures [RingHash].
type HashConfig struct {
	// RingSize is the minimum number of points on the ring, shared among
	// the endpoints in proportion to their weights: each gets the same
	// power-of-two number of points per unit of weight, the least that
	// reaches RingSize. So the ring holds up to twice RingSize points,
	// unless the weights (divided by their greatest common divisor) sum
	// to more: then it holds one point per unit of weight, as Envoy's
	// does, up to MaxRingSize points (weights are scaled down beyond).
	// Weights 1000 and 1 thus make a ring of 1001 points, and SRV
	// weights up to 65535 over many endpoints a ring of millions. More
	// points spread keys more evenly (an endpoint's share deviates by
	// about 1/sqrt(its points)) at the cost of memory (16 bytes a point)
	// and time: the ring is rebuilt, and sorted, on every change of the
	// endpoints in rotation. Default 1024, Envoy's minimum_ring_size; at
	// most MaxRingSize.
	RingSize int
	// BalanceFactor bounds the load: an endpoint with more than
	// BalanceFactor × the average calls in flight (plus one) is passed
	// over for the next one on the ring (consistent hashing with bounded
	// loads, Mirrokni, Thorup and Zadimoghaddam, 2016). Default 1.25,
	// the paper's and HAProxy's hash-balance-factor example: keys move
	// only when an endpoint runs 25% over the average. A negative value
	// disables the bound; otherwise at least 1.
	BalanceFactor float64
}

// Defaults and bounds of HashConfig.
const (
	DefaultRingSize      = 1024
	MaxRingSize          = 1 << 23
	DefaultBalanceFactor = 1.25
)

// RingHash returns consistent hashing on a ring (Karger et al.), with
// bounded load: a call's key (see [Balancer.PickKey] and Config.HashKey)
// goes to the first endpoint clockwise from the key's point, so adding or
// removing one of n endpoints moves only about 1/n of the keys. Keys are
// hashed with FNV-1a, so every client process maps a key alike. A call
// without a key lands at a random point.
func RingHash(cfg HashConfig) Policy { return ringHash{cfg} }

type ringHash struct{ cfg HashConfig }

func (p ringHash) validate(v *validate.V) {
	v.Size("Policy.RingSize", p.cfg.RingSize, MaxRingSize)
	if f := p.cfg.BalanceFactor; !off(f) {
		v.Check(f == 0 || f >= 1 && !math.IsInf(f, 1), "Policy.BalanceFactor", f,
			"0 (default), a negative value (off) or a finite value >= 1")
	}
}
func (p ringHash) traits() traits {
	bounded := p.cfg.BalanceFactor >= 0
	return traits{random: true, inflight: bounded, total: bounded}
}
func (p ringHash) newPicker(ms []*member) picker {
	size := or(p.cfg.RingSize, DefaultRingSize)
	factor := or(p.cfg.BalanceFactor, DefaultBalanceFactor)
	// Each endpoint gets k points per unit of weight, k the power of two
	// that brings the ring to at least size points. Rounding k to a
	// power of two keeps it unchanged as endpoints come and go (until
	// the set doubles or halves), so an endpoint's points never move and
	// adding one of n endpoints moves only the keys it takes over, about
	// 1/n. When k does change, the points of the smaller k are a prefix
	// of those of the larger, so few keys move then too.
	ws, sum := scaledWeightsTo(ms, MaxRingSize)
	k := int64(1)
	for k*sum < int64(size) {
		k <<= 1
	}
	type point struct {
		h uint64
		m *member
	}
	pts := make([]point, 0, k*sum)
	for i, m := range ms {
		base := hashString(m.ep.Addr)
		for j := range ws[i] * k {
			pts = append(pts, point{mix(base ^ mix(uint64(j)+1)), m})
		}
	}
	slices.SortFunc(pts, func(a, b point) int { return cmp.Compare(a.h, b.h) })
	r := &ringPicker{hashes: make([]uint64, len(pts)), owners: make([]*member, len(pts)), factor: factor, n: len(ms), pool: ms}
	for i, p := range pts {
		r.hashes[i], r.owners[i] = p.h, p.m
	}
	return r
}

type ringPicker struct {
	hashes []uint64
	owners []*member
	factor float64 // < 0: unbounded
	n      int
	pool   []*member // the members once each
}

func (p *ringPicker) pick(b *Balancer, r, key uint64, hasKey bool, _ int64) *member {
	if !hasKey {
		key = r
	}
	i := p.first(key)
	if p.factor < 0 {
		return p.owners[i]
	}
	// Bounded load: skip owners above factor × average in flight. Some
	// endpoint is always at or below the average, so the walk ends; it
	// is bounded by the ring anyway.
	limit := int64(math.Ceil(p.factor * float64(b.total.Load()+1) / float64(p.n)))
	for range len(p.owners) {
		if m := p.owners[i]; m.inflight()+1 <= limit {
			return m
		}
		if i++; i == len(p.owners) {
			i = 0
		}
	}
	return p.owners[i]
}

// first returns the index of the first point at or after key, wrapping
// around to 0 past the last. The search halves the range without a
// data-dependent branch (the comparison becomes a subtraction's borrow): a
// random key makes every branch of a classic binary search a coin toss,
// and the mispredictions were a third of a pick on a ring of 1024 points.
func (p *ringPicker) first(key uint64) int {
	hs := p.hashes
	i, n := 0, len(hs)
	for n > 1 {
		half := n >> 1
		// borrow is 1 when the point is below key: Go compiles an
		// if here into a branch, Sub64 into SBB.
		_, borrow := bits.Sub64(hs[i+half-1], key, 0)
		i += half & -int(borrow)
		n -= half
	}
	// hs[i] is now the first point >= key unless every point is below
	// it.
	if hs[i] < key {
		return 0
	}
	return i
}

// hashString is 64-bit FNV-1a, finished by mix: stable across processes
// and releases, unlike hash/maphash, so that every client maps a key to
// the same endpoint.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix(h)
}

// mix is splitmix64's finalizer: it spreads FNV's weak low bits over the
// whole word.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
