package lb

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/outcome"
	"github.com/bulwark-go/bulwark/internal/stripe"
)

// Balancer spreads calls over a set of endpoints. Create one with [New];
// the zero Balancer is not usable. A Balancer is safe for concurrent use.
//
// Picks take no lock and allocate nothing: the endpoints available for
// picking live in an immutable snapshot behind an atomic pointer, rebuilt
// (under a mutex, off the call path) when the set changes, an endpoint is
// ejected or returns, or its active checks change their verdict. Per-call
// state (calls in flight, outcomes, latency) lives in atomics on each
// endpoint.
//
// A Balancer runs background loops (the ejection sweep; active checks,
// resolver refreshes and the slow-start ramp when configured): call
// [Balancer.Close] when discarding it.
type Balancer struct {
	view  atomic.Pointer[view]
	_     stripe.Pad
	total atomic.Int64 // calls in flight over all endpoints, for bounded-load hashing
	_     stripe.Pad

	policy       Policy
	s            settings
	clk          clock.Clock
	realClk      bool          // clk is clock.Real: hot paths call clock.Nanotime directly
	rnd          func() uint64 // nil: math/rand/v2's runtime source, called directly
	classify     bulwark.Classifier
	classifyHTTP bulwark.HTTPClassifier
	breakers     *breaker.Set
	hook         func(context.Context, StateChangeEvent)
	name, zone   string
	hashKey      func(*http.Request) string
	host         HostPolicy
	useClock     bool
	useTotal     bool
	useRand      bool
	plainDone    bool // !useClock && !useTotal: a success only counts
	// Added to member.calls by Pick, and by Done on a success or on any
	// other outcome: policies that do not weigh calls in flight skip
	// counting them, which saves an atomic operation per call.
	pickAdd, successAdd, otherAdd uint64
	penalty                       float64 // ns
	invDecay                      float64 // 1/ns
	resolver                      Resolver
	checker                       Checker
	telem                         *telemetryState

	mu      sync.Mutex // set changes, ejections, health verdicts; fields below and members' cold fields
	members []*member
	byAddr  map[string]*member
	closed  bool
	ejected int64 // endpoints currently ejected
	// watchers are told of set changes (grpcx/balancer, via
	// internal/bridge).
	watchers map[uint64]func()
	watchSeq uint64

	refreshMu sync.Mutex // one Refresh at a time

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// view is an immutable snapshot of what picks choose from.
type view struct {
	all []*member
	// avail is what the pickers choose from (all of it in panic mode),
	// for the last resort of a pick whose breakers kept rejecting.
	avail []*member
	// local is the pool picks come from; remote, if set, receives the
	// calls that spill out of the local zone: a share of
	// (1<<32-localShare)/(1<<32).
	local, remote picker
	localShare    uint64
	panic         bool
}

// Ticket is one pick, to hand back to [Balancer.Done] or
// [Balancer.Record] exactly once when the call has finished. It is a small
// value; copying it is cheap. The zero Ticket is valid for Done and
// Record, which ignore it.
type Ticket struct {
	m     *member
	start int64
	br    *breaker.Breaker
	bt    breaker.Ticket
}

// Endpoint returns the picked endpoint (the zero Endpoint for a zero
// Ticket).
func (t Ticket) Endpoint() Endpoint {
	if t.m == nil {
		return Endpoint{}
	}
	return t.m.endpoint()
}

// Addr returns the picked endpoint's address ("" for a zero Ticket).
func (t Ticket) Addr() string {
	if t.m == nil {
		return ""
	}
	return t.m.ep.Addr
}

// New returns a balancer configured by cfg and starts its background
// loops. It panics with a [*bulwark.ConfigError] if cfg is invalid (see
// [Config.Validate]). It does not wait for the resolver: until its first
// answer, the balancer has cfg.Endpoints (call [Balancer.Refresh] to wait
// for an answer).
func New(cfg Config) *Balancer {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return newBalancer(cfg, clock.Real, nil)
}

func newBalancer(cfg Config, clk clock.Clock, rnd func() uint64) *Balancer {
	b := &Balancer{
		policy:       cfg.Policy,
		s:            resolve(&cfg),
		clk:          clk,
		realClk:      clk == clock.Real,
		rnd:          rnd,
		classify:     cfg.Classify,
		classifyHTTP: cfg.ClassifyHTTP,
		breakers:     cfg.Breakers,
		hook:         cfg.OnStateChange,
		name:         cfg.Name,
		zone:         cfg.Zone,
		hashKey:      cfg.HashKey,
		host:         cfg.Host,
		resolver:     cfg.Resolver,
		checker:      cfg.Health.Checker,
		byAddr:       map[string]*member{},
	}
	if b.policy == nil {
		b.policy = P2C(P2CConfig{})
	}
	tr := b.policy.traits()
	b.useClock, b.useTotal, b.useRand = tr.clock, tr.total, tr.random
	b.plainDone = !tr.clock && !tr.total
	b.pickAdd, b.successAdd, b.otherAdd = 0, 1<<inflightBits, 0
	if tr.inflight {
		b.pickAdd, b.successAdd, b.otherAdd = 1, doneSuccess, doneOther
	}
	if p, ok := b.policy.(p2c); ok {
		b.penalty = float64(or(p.cfg.Penalty, DefaultPenalty))
		b.invDecay = 1 / float64(or(p.cfg.Decay, DefaultDecay))
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.mu.Lock()
	b.setLocked(cfg.Endpoints, false)
	b.mu.Unlock()
	b.telem = newTelemetry(b, cfg.MeterProvider)
	b.loop(b.s.interval, 0, b.sweep)
	if b.checker != nil {
		b.loop(b.s.hInterval, b.s.hJitter, b.checkAll)
	}
	if b.resolver != nil {
		b.wg.Add(1)
		go func() { // ask at once, then every ResolveInterval
			defer b.wg.Done()
			_ = b.Refresh(b.ctx)
		}()
		b.loop(b.s.resolveEvery, 0, func() { _ = b.Refresh(b.ctx) })
	}
	if b.s.slowStart > 0 {
		b.loop(time.Duration(b.s.slowStart/10), 0, b.rampStep)
	}
	return b
}

// nanotime reads the balancer's clock; a direct call for the real one
// saves an interface call on the two reads of each P2C call.
func (b *Balancer) nanotime() int64 {
	if b.realClk {
		return clock.Nanotime()
	}
	return b.clk.Nanotime()
}

// rand returns a random number; a direct call to the runtime's per-M
// source unless a test seeded one.
func (b *Balancer) rand() uint64 {
	if b.rnd == nil {
		return rand.Uint64()
	}
	return b.rnd()
}

// loop runs fn every d (lengthened by a random fraction of up to jitter)
// until Close.
func (b *Balancer) loop(d time.Duration, jitter float64, fn func()) {
	d = max(d, time.Millisecond)
	next := func() time.Duration {
		if jitter <= 0 {
			return d
		}
		return d + time.Duration(rand.Float64()*jitter*float64(d))
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := b.clk.NewTimer(next())
		defer t.Stop()
		for {
			select {
			case <-b.ctx.Done():
				return
			case <-t.C():
				fn()
				t.Reset(next())
			}
		}
	}()
}

// Close stops the background loops (and cancels a check or resolution in
// progress), waits for them to return, and unregisters the metrics. The
// balancer still picks afterwards, from the endpoints and health verdicts
// it had: nothing is ejected or returned any more. Close is idempotent
// and always returns nil.
func (b *Balancer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
	b.telem.close()
	return nil
}

// Update replaces the endpoint set. Endpoints whose Addr was already in
// the set keep their state (calls in flight, latency, ejection); new ones
// start healthy (and ramp up, with SlowStart). It returns an error, and
// changes nothing, if two endpoints share an Addr, an Addr is empty, a
// Weight is out of range or there are more than MaxEndpoints. Update is
// how a service registry pushes changes; a Resolver's answers go through
// it too.
func (b *Balancer) Update(eps []Endpoint) error {
	if len(eps) > MaxEndpoints {
		return errors.New("lb: more than MaxEndpoints endpoints")
	}
	if err := checkEndpoints(eps); err != nil {
		return errors.New("lb: " + err.Error())
	}
	b.mu.Lock()
	b.setLocked(eps, true)
	b.mu.Unlock()
	b.notifyWatchers()
	return nil
}

func (b *Balancer) setLocked(eps []Endpoint, ramp bool) {
	now := b.nanotime()
	ms := make([]*member, len(eps))
	next := make(map[string]*member, len(eps))
	for i, e := range eps {
		m, ok := b.byAddr[e.Addr]
		if !ok {
			m = newMember(e)
			if ramp {
				b.startRampLocked(m, now)
			}
		} else {
			m.update(e) // a new Weight, Zone or Metadata: same member, same state
		}
		ms[i] = m
		next[e.Addr] = m
	}
	b.members, b.byAddr = ms, next
	b.ejected = 0
	for _, m := range ms {
		if m.ejected {
			b.ejected++
		}
	}
	b.rebuildLocked()
}

func (m *member) available() bool { return !m.ejected && !m.unhealthy && !m.down }

func (m *member) state() State {
	switch {
	case m.ejected:
		return Ejected
	case m.unhealthy, m.down:
		return Unhealthy
	}
	return Healthy
}

// rebuildLocked publishes a new view of the current members.
func (b *Balancer) rebuildLocked() {
	all := b.members
	v := &view{all: all}
	avail := make([]*member, 0, len(all))
	for _, m := range all {
		if m.available() {
			avail = append(avail, m)
		}
	}
	if len(all) > 0 && b.s.panicAt >= 0 && float64(len(avail)) < b.s.panicAt*float64(len(all)) {
		v.panic = true
		avail = all
	}
	if len(avail) == 0 {
		b.view.Store(v)
		return
	}
	v.avail = avail
	v.local = b.policy.newPicker(avail)
	if b.zone != "" && !v.panic {
		var localAll int
		var local, remote []*member
		for _, m := range all {
			if m.ep.Zone == b.zone {
				localAll++
			}
		}
		for _, m := range avail {
			if m.ep.Zone == b.zone {
				local = append(local, m)
			} else {
				remote = append(remote, m)
			}
		}
		if localAll > 0 && len(remote) > 0 {
			share := min(1, float64(len(local))/float64(localAll)/b.s.zoneSpill)
			switch {
			case len(local) == 0:
				v.local = b.policy.newPicker(remote)
			case share >= 1:
				v.local = b.policy.newPicker(local)
			default:
				v.local = b.policy.newPicker(local)
				v.remote = b.policy.newPicker(remote)
				v.localShare = uint64(share * (1 << 32))
			}
		}
	}
	b.view.Store(v)
}

// ErrNoEndpoints is returned by Pick when there is no endpoint to pick:
// the set is empty, or every endpoint is out of rotation and panic mode is
// off.
var ErrNoEndpoints = errors.New("lb: no endpoint available")

// maxPickTries bounds the draws of one Pick (slow-start admission,
// breaker rejections).
const maxPickTries = 8

// Pick chooses an endpoint for one call. Hand the Ticket back to
// [Balancer.Done] (or [Balancer.Record]) exactly once when the call has
// finished: the balancer counts the call in flight until then. Pick fails
// with ErrNoEndpoints when there is nothing to pick, and with a breaker's
// rejection (an error matching breaker.ErrOpen or breaker.ErrHalfOpenFull)
// when Config.Breakers is set and the breaker of every endpoint in
// rotation rejects the call: after a few draws by the policy meet
// rejecting breakers, Pick asks the others in turn. It never blocks,
// takes no lock and does not allocate (with Config.Breakers, the Set
// takes a lock the first time it sees an endpoint).
//
// With [RingHash], Pick lands at a random point of the ring; use PickKey.
func (b *Balancer) Pick() (Ticket, error) { return b.pick(0, false) }

// PickKey is Pick for a call with a hash key (a user id, a session, a
// client IP): with [RingHash], equal keys go to the same endpoint while
// it is available and within its load bound. Other policies ignore the
// key.
func (b *Balancer) PickKey(key string) (Ticket, error) { return b.pick(hashString(key), true) }

func (b *Balancer) pick(key uint64, hasKey bool) (Ticket, error) {
	v := b.view.Load()
	if v.local == nil {
		return Ticket{}, ErrNoEndpoints
	}
	var now int64
	if b.useClock {
		now = b.nanotime()
	}
	// The common path: one pool, no breakers, an endpoint at full share.
	if v.remote == nil && b.breakers == nil {
		var r uint64
		if b.useRand {
			r = b.rand()
		}
		var m *member
		if rr, ok := v.local.(*rrPicker); ok {
			// Round robin's pick inlined: the interface call was a
			// tenth of its Pick + Done (BenchmarkLBPickDone).
			m = rr.pick(b, r, key, hasKey, now)
		} else {
			m = v.local.pick(b, r, key, hasKey, now)
		}
		if ramp := m.ramp.Load(); ramp == rampFull || len(v.all) == 1 || b.rand()>>32 < ramp {
			// Inlined, not b.take: the call costs 5 ns on a 30 ns pick
			// (BenchmarkLBPickDone/bulwark-roundrobin).
			if b.pickAdd != 0 {
				m.calls.Add(1)
			}
			if b.useTotal {
				b.total.Add(1)
			}
			return Ticket{m: m, start: now}, nil
		}
		// A ramping endpoint declined: any other will do.
		return b.pickSlow(v, 0, false, now, 2)
	}
	return b.pickSlow(v, key, hasKey, now, 1)
}

// pickSlow is pick with zones, slow start and breakers: it may draw
// several times, starting with draw number first.
func (b *Balancer) pickSlow(v *view, key uint64, hasKey bool, now int64, first int) (Ticket, error) {
	var rejected error
	tries := min(maxPickTries, len(v.all))
	for try := first; ; try++ {
		// Randomness only where it is used: round robin needs none on
		// its fast path.
		var r, r2 uint64
		if b.useRand || v.remote != nil {
			r = b.rand()
			r2 = mix(r)
		}
		p := v.local
		if v.remote != nil && r2&0xffffffff >= v.localShare {
			p = v.remote
		}
		m := p.pick(b, r, key, hasKey, now)
		if ramp := m.ramp.Load(); ramp != rampFull && try < tries && b.rand()>>32 >= ramp {
			hasKey = false // a ramping endpoint declined: any other will do
			continue
		}
		t := Ticket{m: m, start: now}
		if b.breakers != nil {
			br := b.breakers.Get(m.ep.Addr)
			bt, err := br.Allow()
			if err != nil {
				rejected = err
				if try >= tries {
					return b.pickAdmitted(v, now, rejected)
				}
				hasKey = false
				continue
			}
			t.br, t.bt = br, bt
		}
		return b.take(t), nil
	}
}

// take counts t's call in flight, as the policy needs.
func (b *Balancer) take(t Ticket) Ticket {
	if b.pickAdd != 0 {
		t.m.calls.Add(1)
	}
	if b.useTotal {
		b.total.Add(1)
	}
	return t
}

// pickAdmitted is the last resort of a pick whose draws all met a
// rejecting breaker: it asks the breaker of every available endpoint in
// turn, from a random one, and takes the first that admits the call, so
// a pick fails only when every breaker rejects. It returns rejected, or a
// later rejection, if none admits.
func (b *Balancer) pickAdmitted(v *view, now int64, rejected error) (Ticket, error) {
	n := len(v.avail)
	start := fastrange(uint32(b.rand()), n)
	for i := range n {
		m := v.avail[(start+i)%n]
		br := b.breakers.Get(m.ep.Addr)
		bt, err := br.Allow()
		if err != nil {
			rejected = err
			continue
		}
		return b.take(Ticket{m: m, start: now, br: br, bt: bt}), nil
	}
	return Ticket{}, rejected
}

// Done reports the result of the call picked with t: a nil err is a
// success; otherwise Config.Classify decides (called with
// context.Background()), or by default context.Canceled is neutral and any
// other error a failure. An error with a RetryAfter() time.Duration method
// (a breaker's rejection, a pushback) counts, for P2C, as a call that
// took that long. Done never allocates on a success. A zero Ticket is
// ignored.
func (b *Balancer) Done(t Ticket, err error) {
	if err == nil && b.classify == nil {
		if m := t.m; m != nil && b.plainDone && t.br == nil {
			// finish's success path, inlined for the policies that
			// neither read the clock nor count the total in flight.
			m.calls.Add(b.successAdd)
			if m.consec.Load() != 0 {
				m.consec.Store(0)
			}
			return
		}
		b.finish(t, bulwark.Success, 0)
		return
	}
	o := b.classifyNoCtx(err)
	b.finish(t, o, pushbackOf(o, err))
}

// Record reports an outcome that the caller has already classified (an
// adapter with its own rules: HTTP status codes, gRPC codes). Otherwise
// it is Done.
func (b *Balancer) Record(t Ticket, o bulwark.Outcome) { b.finish(t, o, 0) }

func (b *Balancer) classifyNoCtx(err error) bulwark.Outcome {
	return outcome.NoContext(b.classify, err)
}

func (b *Balancer) classifyCtx(ctx context.Context, err error) bulwark.Outcome {
	return outcome.With(b.classify, ctx, err)
}

// pushbackOf returns the wait a failed call's error asks for.
func pushbackOf(o bulwark.Outcome, err error) time.Duration {
	if o != bulwark.Failure || err == nil {
		return 0
	}
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return ra.RetryAfter()
	}
	return 0
}

// finish records the outcome of t; wait is a pushback the endpoint asked
// for (a Retry-After), which P2C counts as latency.
func (b *Balancer) finish(t Ticket, o bulwark.Outcome, wait time.Duration) {
	m := t.m
	if m == nil {
		return
	}
	if b.useTotal {
		b.total.Add(-1)
	}
	if t.br != nil {
		t.br.Record(t.bt, o)
	}
	switch o {
	case bulwark.Success:
		m.calls.Add(b.successAdd)
		if m.consec.Load() != 0 {
			m.consec.Store(0)
		}
	case bulwark.Failure:
		if b.otherAdd != 0 {
			m.calls.Add(b.otherAdd)
		}
		m.fail.Add(1)
		n := m.consec.Add(1)
		if b.s.consecutive > 0 && n%b.s.consecutive == 0 {
			b.ejectNow(m)
		}
		if b.useClock {
			// P2C: the k-th failure in a row counts as k × Penalty (up
			// to maxPenaltyRun × Penalty), so that an endpoint failing
			// fast, with nothing in flight, soon costs more than a
			// working one that is busy or was slow a while ago.
			now := b.nanotime()
			rtt := max(float64(now-t.start), b.penalty*float64(min(n, maxPenaltyRun)), float64(wait))
			b.observe(m, now, rtt)
		}
		return
	default:
		if b.otherAdd != 0 {
			m.calls.Add(b.otherAdd)
		}
		return
	}
	if b.useClock {
		now := b.nanotime()
		b.observe(m, now, float64(now-t.start))
	}
}

// maxPenaltyRun caps the multiple of P2CConfig.Penalty that a run of
// failures in a row reaches.
const maxPenaltyRun = 10

// Do picks an endpoint, calls fn with it and records the outcome: the
// error classified with ctx (Config.Classify, or by default: nil a
// success, a cancellation by the caller neutral, anything else a
// failure). It returns fn's error (wrapped on a first attempt, see
// below), or Pick's without calling fn. If fn
// panics the call is recorded as a failure and the panic goes on. Do
// panics at once if ctx or fn is nil.
//
// Do tries one endpoint: retrying elsewhere is package retry's job (put
// it around Do). Under retry's Do or Call, each retry of the call goes to
// an endpoint that its earlier attempts did not use, while one is left
// (see "Retries and hedges go elsewhere" in the package doc): for that,
// when fn returns an error and ctx holds no record of the call's
// endpoints (a first attempt), Do returns the error wrapped with one; the
// wrapper prints as fn's error, errors.Is and errors.As see through it,
// and retry returns fn's error itself to its caller. A neutral error (the
// caller's cancellation) and Pick's errors are returned as they are.
func (b *Balancer) Do(ctx context.Context, fn func(ctx context.Context, ep Endpoint) error) error {
	if ctx == nil {
		panic("lb: Balancer.Do called with a nil ctx")
	}
	if fn == nil {
		panic("lb: Balancer.Do called with a nil fn")
	}
	rec := ctxRecord(ctx)
	t, err := b.pickCall(rec, 0, false)
	if err != nil {
		return err
	}
	returned := false
	defer outcome.OnAbort(&returned, func() { b.finish(t, bulwark.Failure, 0) })
	err = fn(ctx, t.m.endpoint())
	returned = true
	o := b.classifyCtx(ctx, err)
	b.finish(t, o, pushbackOf(o, err))
	if rec == nil && o != bulwark.Neutral && err != nil {
		return tagErr(err, nil, t)
	}
	return err
}

// Call is Do for a function that returns a value; its error is wrapped
// as Do's is. It panics at once if ctx, b or fn is nil.
func Call[T any](ctx context.Context, b *Balancer, fn func(ctx context.Context, ep Endpoint) (T, error)) (T, error) {
	if ctx == nil {
		panic("lb: Call called with a nil ctx")
	}
	if b == nil {
		panic("lb: Call called with a nil Balancer")
	}
	if fn == nil {
		panic("lb: Call called with a nil fn")
	}
	var zero T
	rec := ctxRecord(ctx)
	t, err := b.pickCall(rec, 0, false)
	if err != nil {
		return zero, err
	}
	returned := false
	defer outcome.OnAbort(&returned, func() { b.finish(t, bulwark.Failure, 0) })
	v, err := fn(ctx, t.m.endpoint())
	returned = true
	o := b.classifyCtx(ctx, err)
	b.finish(t, o, pushbackOf(o, err))
	if rec == nil && o != bulwark.Neutral && err != nil {
		return v, tagErr(err, nil, t)
	}
	return v, err
}

// Endpoints returns a snapshot of the endpoint set, in the order of the
// last update, with each endpoint's state.
func (b *Balancer) Endpoints() []EndpointState {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]EndpointState, len(b.members))
	for i, m := range b.members {
		out[i] = EndpointState{
			Endpoint:  m.endpoint(),
			State:     m.state(),
			InFlight:  m.inflight(),
			Successes: m.successes(),
			Failures:  m.fail.Load(),
			Ejections: m.ejections,
		}
	}
	return out
}

// Panicking reports whether the balancer is in panic mode: fewer than
// Config.PanicThreshold of its endpoints are available, so it balances
// across all of them.
func (b *Balancer) Panicking() bool { return b.view.Load().panic }

// ---- outlier ejection

// ejectNow ejects m after a run of consecutive failures, if the cap
// allows.
func (b *Balancer) ejectNow(m *member) {
	b.mu.Lock()
	ev, ok := b.ejectLocked(m, b.nanotime(), "consecutive failures")
	if ok {
		b.rebuildLocked()
	}
	b.mu.Unlock()
	if ok {
		b.notify(context.Background(), ev)
	}
}

func (b *Balancer) ejectLocked(m *member, now int64, reason string) (StateChangeEvent, bool) {
	if b.closed || b.byAddr[m.ep.Addr] != m || m.ejected {
		return StateChangeEvent{}, false
	}
	allowed := max(1, int64(b.s.maxEjectFrac*float64(len(b.members))))
	if b.ejected >= allowed {
		return StateChangeEvent{}, false
	}
	from := m.state()
	m.multiplier++
	m.ejections++
	d := min(float64(b.s.baseEject)*float64(m.multiplier), float64(b.s.maxEject))
	m.ejectedTill = now + int64(d)
	m.ejected = true
	m.consec.Store(0)
	b.ejected++
	return StateChangeEvent{Endpoint: m.endpoint(), From: from, To: Ejected, Reason: reason}, true
}

// sweep runs every Outlier.Interval: it ends ejections that have served
// their time and judges failure rates over the interval.
func (b *Balancer) sweep() {
	now := b.nanotime()
	var evs []StateChangeEvent
	b.mu.Lock()
	changed := false
	for _, m := range b.members {
		s, f := m.successes(), m.fail.Load()
		ds, df := s-m.lastSucc, f-m.lastFail
		m.lastSucc, m.lastFail = s, f
		if m.ejected {
			if now >= m.ejectedTill {
				m.ejected = false
				b.ejected--
				m.consec.Store(0)
				b.startRampLocked(m, now)
				if to := m.state(); to != Ejected {
					evs = append(evs, StateChangeEvent{Endpoint: m.endpoint(), From: Ejected, To: to, Reason: "ejection ended"})
				}
				changed = true
			}
			continue
		}
		if b.s.failureRate > 0 && ds+df >= b.s.minCalls && float64(df) >= b.s.failureRate*float64(ds+df) {
			if ev, ok := b.ejectLocked(m, now, "failure rate"); ok {
				evs = append(evs, ev)
				changed = true
				continue
			}
		}
		if m.multiplier > 0 {
			m.multiplier--
		}
	}
	if changed {
		b.rebuildLocked()
	}
	b.mu.Unlock()
	for _, ev := range evs {
		b.notify(context.Background(), ev)
	}
}

func (b *Balancer) notify(ctx context.Context, ev StateChangeEvent) {
	if b.hook != nil {
		b.hook(ctx, ev)
	}
}

// ---- slow start

func (b *Balancer) startRampLocked(m *member, now int64) {
	if b.s.slowStart <= 0 {
		return
	}
	m.rampStart = now
	m.ramp.Store(rampFull / 10) // DefaultSlowStartMinShare
}

// rampStep raises the share of ramping endpoints, every SlowStart/10.
func (b *Balancer) rampStep() {
	now := b.nanotime()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.members {
		if m.rampStart == 0 {
			continue
		}
		frac := float64(now-m.rampStart) / float64(b.s.slowStart)
		if frac >= 1 {
			m.rampStart = 0
			m.ramp.Store(rampFull)
			continue
		}
		m.ramp.Store(uint64(math.Max(DefaultSlowStartMinShare, frac) * rampFull))
	}
}
