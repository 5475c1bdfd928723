package breaker

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/outcome"
	"github.com/bulwark-go/bulwark/internal/stripe"
)

// State is the state of a breaker.
type State uint8

// The states. Closed, Open and HalfOpen are automatic; ForcedOpen and
// Disabled are manual overrides that last until [Breaker.Reset].
const (
	// Closed lets every call through and counts outcomes.
	Closed State = iota
	// Open rejects every call until the open duration has passed.
	Open
	// HalfOpen lets a fixed number of probe calls through and decides on
	// their results whether to close or to open again.
	HalfOpen
	// ForcedOpen rejects every call (set by ForceOpen).
	ForcedOpen
	// Disabled lets every call through and counts nothing (set by
	// Disable).
	Disabled
)

var stateNames = [...]string{"closed", "open", "half-open", "forced-open", "disabled"}

// String returns "closed", "open", "half-open", "forced-open" or
// "disabled".
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

const numStates = 5

// StateChangeEvent describes one state change, for Config.OnStateChange.
type StateChangeEvent struct {
	// Name is Config.Name; in a [Set], the set's Config.Name.
	Name string
	// Key is the member's key in a [Set]; "" for a breaker made by [New]
	// and for a set's overflow breaker.
	Key string
	// From and To are the states before and after the change.
	From, To State
	// Counts are the counters of the period that just ended: what the
	// breaker saw while in From (Counts.State is From).
	Counts Counts
	// Until is, when To is Open, the end of the open duration (when the
	// next probe may pass, as in [OpenError]); zero otherwise.
	Until time.Time
}

type mode uint8

const (
	modeCount mode = iota
	modeTime
	modeConsecutive
)

// settings is a resolved Config, in the units the hot path wants.
type settings struct {
	mode      mode
	consec    int64
	size      int64
	bucketNs  int64
	nbuckets  int64
	rate      float64
	minCalls  int64
	slowNs    int64
	slowRate  float64
	openBase  float64
	openMax   float64
	growth    float64
	jitter    float64
	probes    int64
	maxWaitNs int64
}

// resolve fills the defaults of a validated Config.
func resolve(c *Config) settings {
	s := settings{
		size:     int64(cmp0(c.WindowSize, DefaultWindowSize)),
		nbuckets: int64(cmp0(c.WindowBuckets, DefaultWindowBuckets)),
		rate:     cmp0(c.FailureRate, DefaultFailureRate),
		minCalls: int64(cmp0(c.MinimumCalls, DefaultMinimumCalls)),
		slowNs:   int64(c.SlowCallDuration),
		slowRate: cmp0(c.SlowCallRate, DefaultSlowCallRate),
		growth:   cmp0(c.OpenDurationGrowth, DefaultOpenDurationGrowth),
		jitter:   cmp0(c.OpenJitter, DefaultOpenJitter),
		probes:   int64(c.HalfOpenProbes),
	}
	switch {
	case c.ConsecutiveFailures > 0:
		s.mode = modeConsecutive
		s.consec = int64(c.ConsecutiveFailures)
		s.slowNs = 0
		if s.probes == 0 {
			s.probes = DefaultHalfOpenProbesConsecutive
		}
	case c.WindowDuration > 0:
		s.mode = modeTime
		s.bucketNs = max(1, int64(c.WindowDuration)/s.nbuckets)
	default:
		s.mode = modeCount
		s.minCalls = min(s.minCalls, s.size)
	}
	if s.probes == 0 {
		s.probes = DefaultHalfOpenProbes
	}
	s.openBase = float64(cmp0(c.OpenDuration, DefaultOpenDuration))
	s.openMax = max(float64(cmp0(c.MaxOpenDuration, DefaultMaxOpenDuration)), s.openBase)
	s.jitter = max(s.jitter, 0) // negative: off
	s.maxWaitNs = int64(cmp0(c.HalfOpenMaxWait, DefaultHalfOpenMaxWait))
	return s
}

// cmp0 returns v, or def when v is zero.
func cmp0[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Breaker is a circuit breaker. Create one with [New]; the zero Breaker is
// not usable. A Breaker is safe for concurrent use. Call [Breaker.Close]
// when discarding a breaker made by New before the end of the program, to
// unregister its metrics.
//
// The hot path takes no lock and allocates nothing: in the closed state,
// Allow reads one atomic word and Done adds to a counter that belongs to
// the current P. State changes take a mutex.
type Breaker struct {
	// word packs the generation (high 56 bits) and State (low 8 bits). It
	// changes only on state changes, so it stays in every core's cache.
	word atomic.Uint64
	cur  atomic.Pointer[period]

	s            settings
	clk          clock.Clock
	classify     bulwark.Classifier
	classifyHTTP bulwark.HTTPClassifier
	name         string
	key          string
	inSet        bool
	hook         func(context.Context, StateChangeEvent)
	telem        *instruments // nil for a Set's members: the Set reports them

	mu         sync.Mutex // state changes; fields below
	trips      int        // trips since the breaker last closed from half-open
	totals     [4]int64   // succ, fail, neutral, slow of retired periods
	rejected   int64
	moves      [numStates][numStates]uint32
	events     []queuedEvent
	delivering bool
}

type queuedEvent struct {
	ctx context.Context
	ev  StateChangeEvent
}

// Ticket is the permission Allow gives; hand it back to Done or Record.
// It is a small value: passing it costs nothing. The zero Ticket belongs to
// no generation, so Done ignores it.
type Ticket struct {
	gen   uint64
	start int64
}

// New returns a breaker configured by cfg, in the Closed state. It panics
// with a [*bulwark.ConfigError] (matching [bulwark.ErrInvalidConfig]) if
// cfg is not valid; see [Config.Validate].
func New(cfg Config) *Breaker {
	mustValidate(cfg.Validate())
	b := newBreaker(&cfg, "", false)
	b.telem = newInstruments(cfg.MeterProvider, b.observe)
	return b
}

// newBreaker builds a breaker from a validated cfg, without metrics.
func newBreaker(cfg *Config, key string, inSet bool) *Breaker {
	b := &Breaker{
		s:            resolve(cfg),
		clk:          clock.Or(cfg.clk),
		classify:     cfg.Classify,
		classifyHTTP: cfg.ClassifyHTTP,
		name:         cfg.Name,
		key:          key,
		inSet:        inSet,
		hook:         cfg.OnStateChange,
	}
	p := b.newPeriod(1, Closed, b.clk.Nanotime())
	b.cur.Store(p)
	b.word.Store(1<<8 | uint64(Closed))
	return b
}

// errName is the name put in errors: the key in a Set, else Config.Name.
func (b *Breaker) errName() string {
	if b.inSet {
		return b.key
	}
	return b.name
}

// Allow asks to make one call. It returns a Ticket to hand to Done (or
// Record) when the call has finished, or an [*OpenError] matching ErrOpen
// or ErrHalfOpenFull if the call must not be made. Every successful Allow
// must be followed by exactly one Done or Record; a ticket that is never
// handed back only matters in half-open, where HalfOpenMaxWait frees its
// slot.
//
// In the closed state Allow reads one atomic word, and the clock only when
// slow-call detection is on. It never allocates.
func (b *Breaker) Allow() (Ticket, error) {
	w := b.word.Load()
	if State(w) == Closed {
		t := Ticket{gen: w >> 8}
		if b.s.slowNs > 0 {
			t.start = b.clk.Nanotime()
		}
		return t, nil
	}
	t, err, _ := b.allowSlow(nil) // no call context: OnStateChange gets Background
	return t, err
}

// move describes a state change caused by a call, for span events.
type move struct {
	from, to State
	ok       bool
}

// allowSlow is Allow past the closed state. ctx is the call's context for
// OnStateChange, or nil when there is none (setLocked substitutes
// context.Background(), so a hook never sees nil).
func (b *Breaker) allowSlow(ctx context.Context) (Ticket, error, move) {
	var mv move
	for {
		p := b.cur.Load()
		switch p.state {
		case Closed, Disabled:
			t := Ticket{gen: p.gen}
			if b.s.slowNs > 0 && p.state == Closed {
				t.start = b.clk.Nanotime()
			}
			return t, nil, mv
		case ForcedOpen:
			return b.reject(p), p.err, mv
		case Open:
			now := b.clk.Nanotime()
			if now < p.openUntil {
				return b.reject(p), p.err, mv
			}
			if m := b.transition(ctx, p, HalfOpen, now); m.ok {
				mv = m
			}
		case HalfOpen:
			h := p.half
			for n := h.slots.Load(); n > 0; n = h.slots.Load() {
				if h.slots.CompareAndSwap(n, n-1) {
					t := Ticket{gen: p.gen}
					if b.s.slowNs > 0 {
						t.start = b.clk.Nanotime()
					}
					return t, nil, mv
				}
			}
			now := b.clk.Nanotime()
			if now-p.start < b.s.maxWaitNs {
				return b.reject(p), p.err, mv
			}
			if m := b.transition(ctx, p, Open, now); m.ok {
				mv = m
			}
		}
	}
}

func (b *Breaker) reject(p *period) Ticket {
	p.cell().rejected.Add(1)
	return Ticket{}
}

// Done reports the result of the call that Allow admitted with t: a nil
// err is a success; otherwise Config.Classify decides (called with
// context.Background()), or by default an error matching context.Canceled
// is neutral and any other error a failure (Done has no context, so it
// cannot tell a caller's cancellation with a cause, or a hedge's loser:
// use Do, or classify yourself and call Record). A result whose ticket
// belongs to an earlier generation (the breaker changed state since Allow)
// is discarded. Done never allocates on a success.
func (b *Breaker) Done(t Ticket, err error) {
	b.record(nil, t, b.classifyNoCtx(err))
}

func (b *Breaker) classifyNoCtx(err error) bulwark.Outcome {
	return outcome.NoContext(b.classify, err)
}

func (b *Breaker) classifyCtx(ctx context.Context, err error) bulwark.Outcome {
	return outcome.With(b.classify, ctx, err)
}

// Record reports an outcome that the caller has already classified, for
// adapters with their own rules (HTTP status codes, gRPC codes). Otherwise
// it is Done.
func (b *Breaker) Record(t Ticket, o bulwark.Outcome) { b.record(nil, t, o) }

// record counts outcome o of the call admitted with t. ctx is as for
// allowSlow: the call's context, or nil.
func (b *Breaker) record(ctx context.Context, t Ticket, o bulwark.Outcome) move {
	p := b.cur.Load()
	if p.gen != t.gen {
		return move{}
	}
	switch p.state {
	case Closed:
		// The success path of the count and consecutive modes: one add
		// to this P's cell and shared reads, no clock.
		if o == bulwark.Success && b.s.slowNs == 0 && b.s.mode != modeTime && !p.pending.Load() {
			p.cell().succ.Add(1)
			if b.s.mode == modeConsecutive && p.consec.Load() != 0 {
				p.consec.Store(0)
			}
			return move{}
		}
		return b.recordClosed(ctx, p, t, o)
	case HalfOpen:
		return b.recordHalfOpen(ctx, p, t, o)
	}
	return move{}
}

func (b *Breaker) recordClosed(ctx context.Context, p *period, t Ticket, o bulwark.Outcome) move {
	var now int64
	if b.s.slowNs > 0 || b.s.mode == modeTime {
		now = b.clk.Nanotime()
	}
	c := p.cell()
	slow := b.s.slowNs > 0 && o != bulwark.Neutral && now-t.start >= b.s.slowNs
	switch o {
	case bulwark.Neutral:
		c.neutral.Add(1)
		return move{}
	case bulwark.Success:
		c.succ.Add(1)
	default:
		c.fail.Add(1)
	}
	if slow {
		c.slow.Add(1)
	}
	fail := o == bulwark.Failure
	var calls, fails, slows int64
	switch b.s.mode {
	case modeConsecutive:
		if !fail {
			if p.consec.Load() != 0 {
				p.consec.Store(0)
			}
			return move{}
		}
		if p.consec.Add(1) < b.s.consec {
			return move{}
		}
		return b.transition(ctx, p, Open, b.nowIf(now))
	case modeCount:
		if !fail && !slow && !p.pending.Load() {
			return move{}
		}
		total := p.total()
		if fail || slow {
			r := p.countRing(b.s.size, b.s.slowNs > 0)
			if fail {
				push(r.fring, &r.fhead, total)
			}
			if slow {
				push(r.sring, &r.shead, total)
			}
		}
		calls, fails, slows = p.countWindow(total, b.s.size)
	case modeTime:
		epoch := now / b.s.bucketNs
		fresh := false
		if bk, f := p.bucketAt(epoch, b.s.nbuckets); bk != nil {
			fresh = f
			bk.calls.Add(1)
			if fail {
				bk.fails.Add(1)
			}
			if slow {
				bk.slows.Add(1)
			}
		}
		// A success judges too when it opens a new bucket on this P:
		// older calls may just have aged out of the window, which can
		// raise the rate without any failure (see the package doc,
		// "Performance").
		if !fail && !slow && !fresh && !p.pending.Load() {
			return move{}
		}
		calls, fails, slows = p.timeWindow(epoch, b.s.nbuckets)
	}
	if !b.judge(p, calls, fails, slows) {
		return move{}
	}
	return b.transition(ctx, p, Open, b.nowIf(now))
}

// nowIf returns now if it was read, else reads the clock.
func (b *Breaker) nowIf(now int64) int64 {
	if now != 0 {
		return now
	}
	return b.clk.Nanotime()
}

// over reports whether fails or slows reach their rate of calls.
func (b *Breaker) over(calls, fails, slows int64) bool {
	if calls <= 0 {
		return false
	}
	if float64(fails) >= b.s.rate*float64(calls) {
		return true
	}
	return b.s.slowNs > 0 && float64(slows) >= b.s.slowRate*float64(calls)
}

// judge decides whether the closed window trips the breaker.
func (b *Breaker) judge(p *period, calls, fails, slows int64) bool {
	over := b.over(calls, fails, slows)
	if calls < b.s.minCalls {
		if over && !p.pending.Load() {
			p.pending.Store(true)
		}
		return false
	}
	if p.pending.Load() {
		p.pending.Store(false)
	}
	return over
}

func (b *Breaker) recordHalfOpen(ctx context.Context, p *period, t Ticket, o bulwark.Outcome) move {
	c := p.cell()
	h := p.half
	if o == bulwark.Neutral {
		// The probe told us nothing: give its slot to another call.
		c.neutral.Add(1)
		h.slots.Add(1)
		return move{}
	}
	slow := false
	if b.s.slowNs > 0 {
		slow = b.clk.Nanotime()-t.start >= b.s.slowNs
	}
	// Every probe adds its slow mark and its failure before the counter
	// that completes the total: whoever sees the total reach n is then sure
	// to see every probe's failure and slowness (a probe that read the
	// failures before adding itself once closed a breaker that another
	// probe's failure, counted a moment later, should have reopened).
	if slow {
		c.slow.Add(1)
		h.slow.Add(1)
	}
	if o == bulwark.Success {
		c.succ.Add(1)
		h.succ.Add(1)
	} else {
		c.fail.Add(1)
		h.fail.Add(1)
	}
	if testHookProbeCounted != nil {
		testHookProbeCounted(o)
	}
	n := b.s.probes
	// Reopen as soon as the outstanding probes cannot change the verdict.
	if b.halfOpenFailing(h, n) {
		return b.transition(ctx, p, Open, b.clk.Nanotime())
	}
	if h.succ.Load()+h.fail.Load() >= n {
		if b.halfOpenFailing(h, n) { // read again: all n have reported now
			return b.transition(ctx, p, Open, b.clk.Nanotime())
		}
		return b.transition(ctx, p, Closed, b.clk.Nanotime())
	}
	return move{}
}

// testHookProbeCounted, set only by tests, runs in recordHalfOpen after a
// probe has counted itself and before it judges: the window in which
// another probe's report must not be missed.
var testHookProbeCounted func(bulwark.Outcome)

// halfOpenFailing reports whether the probes reported so far already
// condemn the dependency: any failure in consecutive mode, else a failure
// or slow-call rate over its threshold out of n probes.
func (b *Breaker) halfOpenFailing(h *halfState, n int64) bool {
	fails := h.fail.Load()
	if b.s.mode == modeConsecutive {
		return fails > 0
	}
	return b.over(n, fails, h.slow.Load())
}

// transition moves the breaker from period p to state to, unless another
// goroutine already moved it on. It reports the move it made.
func (b *Breaker) transition(ctx context.Context, p *period, to State, now int64) move {
	b.mu.Lock()
	if b.cur.Load() != p {
		b.mu.Unlock()
		return move{}
	}
	b.setLocked(ctx, p, to, now)
	b.mu.Unlock()
	b.deliver()
	return move{from: p.state, to: to, ok: true}
}

// force moves the breaker to state to from whatever state it is in.
func (b *Breaker) force(to State) {
	b.mu.Lock()
	p := b.cur.Load()
	if to == Closed {
		b.trips = 0
	}
	b.setLocked(context.Background(), p, to, b.clk.Nanotime())
	b.mu.Unlock()
	b.deliver()
}

func (b *Breaker) setLocked(ctx context.Context, p *period, to State, now int64) {
	from := p.state
	switch {
	case to == Open:
		b.trips++
	case to == Closed && from == HalfOpen:
		b.trips = 0
	}
	np := b.newPeriod(p.gen+1, to, now)
	succ, fail, neutral, slow, rejected := p.sums()
	b.totals[0] += succ
	b.totals[1] += fail
	b.totals[2] += neutral
	b.totals[3] += slow
	b.rejected += rejected
	b.cur.Store(np)
	b.word.Store(np.gen<<8 | uint64(to))
	b.moves[from][to]++
	if b.hook != nil {
		ev := StateChangeEvent{Name: b.name, Key: b.key, From: from, To: to,
			Counts: Counts{State: from, Successes: succ, Failures: fail, Neutral: neutral, Slow: slow,
				Rejections: rejected, ConsecutiveFailures: p.consecutive()}}
		if to == Open {
			ev.Until = np.err.Until
		}
		if ctx == nil { // Allow, Done, Record: no call context (kept nil on their hot path)
			ctx = context.Background()
		}
		b.events = append(b.events, queuedEvent{ctx: ctx, ev: ev})
	}
}

// deliver runs OnStateChange for queued events, outside the lock. One
// goroutine delivers at a time, in order; a transition made by the hook
// itself, or by another goroutine while the hook runs, is queued and
// delivered by the same loop. The loop clears delivering in the same
// critical section in which it finds the queue empty: clearing it later
// would let another goroutine queue an event, see delivering still set and
// leave, stranding its event.
func (b *Breaker) deliver() {
	if b.hook == nil {
		return
	}
	b.mu.Lock()
	if b.delivering {
		b.mu.Unlock()
		return
	}
	b.delivering = true
	returned := false
	defer outcome.OnAbort(&returned, func() {
		// The hook panicked (outside the lock): let a later transition
		// deliver.
		b.mu.Lock()
		b.delivering = false
		b.mu.Unlock()
	})
	for len(b.events) > 0 {
		q := b.events[0]
		b.events[0] = queuedEvent{} // drop the ctx reference
		b.events = b.events[1:]
		b.mu.Unlock()
		b.hook(q.ctx, q.ev)
		b.mu.Lock()
	}
	b.events = nil
	b.delivering = false
	b.mu.Unlock()
	returned = true
	if testHookDelivered != nil {
		testHookDelivered()
	}
}

// testHookDelivered, set only by tests, runs after deliver has emptied the
// queue and released the lock: the moment at which another goroutine's
// transition must find nobody delivering and deliver its own event.
var testHookDelivered func()

// openDuration returns the duration of the trip that is the b.trips-th in
// a row: OpenDuration × OpenDurationGrowth^(trips-1), capped, jittered
// down.
func (b *Breaker) openDuration() time.Duration {
	d := b.s.openBase * math.Pow(b.s.growth, float64(max(b.trips-1, 0)))
	d = min(d, b.s.openMax) // openMax <= MaxDuration: the conversion cannot overflow
	if b.s.jitter > 0 {
		d -= d * b.s.jitter * rand.Float64()
	}
	return time.Duration(d)
}

func (b *Breaker) newPeriod(gen uint64, st State, now int64) *period {
	n := stripe.Size()
	p := &period{gen: gen, state: st, start: now, cells: make([]cell, n), mask: n - 1}
	name := b.errName()
	switch st {
	case Closed:
		switch b.s.mode {
		case modeTime:
			p.stride = int(b.s.nbuckets) + bucketPad
			p.buckets = make([]bucket, n*p.stride)
		case modeConsecutive:
			p.consec = new(stripe.Int64)
		}
	case Open:
		d := b.openDuration()
		p.openUntil = now + int64(d)
		p.err = &OpenError{Name: name, State: Open, Until: b.clk.Now().Add(d), sentinel: ErrOpen, clk: b.clk}
	case HalfOpen:
		p.half = new(halfState)
		p.half.slots.Store(b.s.probes)
		p.err = &OpenError{Name: name, State: HalfOpen, Until: b.clk.Now().Add(time.Duration(b.s.maxWaitNs)),
			sentinel: ErrHalfOpenFull, clk: b.clk}
	case ForcedOpen:
		p.err = &OpenError{Name: name, State: ForcedOpen, sentinel: ErrOpen, clk: b.clk}
	}
	return p
}

// State returns the breaker's state. An open breaker whose open duration
// has passed reports HalfOpen (the change happens here or in the next
// Allow, whichever comes first), and a half-open breaker past
// HalfOpenMaxWait with no free probe slot reports Open.
func (b *Breaker) State() State {
	for {
		p := b.cur.Load()
		switch p.state {
		case Open:
			now := b.clk.Nanotime()
			if now < p.openUntil {
				return Open
			}
			b.transition(context.Background(), p, HalfOpen, now)
		case HalfOpen:
			if p.half.slots.Load() > 0 {
				return HalfOpen
			}
			now := b.clk.Nanotime()
			if now-p.start < b.s.maxWaitNs {
				return HalfOpen
			}
			b.transition(context.Background(), p, Open, now)
		default:
			return p.state
		}
	}
}

// Counts is a snapshot of a breaker's counters since its last state
// change. Under concurrent calls the fields are each exact but not taken
// at one instant.
type Counts struct {
	// State is the state the counts belong to.
	State State
	// Successes, Failures and Neutral count the recorded outcomes.
	Successes, Failures, Neutral int64
	// Slow counts the calls slower than SlowCallDuration (they are also
	// counted as successes or failures).
	Slow int64
	// Rejections counts the calls refused.
	Rejections int64
	// ConsecutiveFailures is the current run of failures (consecutive
	// mode, closed state).
	ConsecutiveFailures int64
}

// Counts returns a snapshot of the counters since the last state change.
// It takes no lock.
func (b *Breaker) Counts() Counts {
	p := b.cur.Load()
	succ, fail, neutral, slow, rejected := p.sums()
	return Counts{State: p.state, Successes: succ, Failures: fail, Neutral: neutral, Slow: slow,
		Rejections: rejected, ConsecutiveFailures: p.consecutive()}
}

// ForceOpen opens the breaker until Reset: every call is rejected with an
// error matching ErrOpen (with a zero Until).
func (b *Breaker) ForceOpen() { b.force(ForcedOpen) }

// Disable lets every call through and counts nothing until Reset.
func (b *Breaker) Disable() { b.force(Disabled) }

// Reset returns the breaker to Closed with empty counters and the open
// duration back at its base, whatever its state. Results of calls admitted
// before Reset are discarded.
func (b *Breaker) Reset() { b.force(Closed) }

// Do calls fn if the breaker allows it and records its outcome: the error
// classified with ctx (Config.Classify, or by default bulwark's rules: nil
// a success; neutral if ctx was cancelled, whatever the cause, unless the
// cause is [bulwark.ErrSuperseded]; anything else a failure). It returns
// fn's error, or the rejection (an [*OpenError]) without calling fn. If fn
// panics the call is recorded as a failure and the panic continues.
//
// A nil ctx or a nil fn is the caller's bug: Do panics at once, before
// anything is recorded, with a message naming the argument.
//
// Where ctx carries a recording span, Do adds the events
// "bulwark.breaker.rejected" and "bulwark.breaker.state_change" to it.
func (b *Breaker) Do(ctx context.Context, fn func(context.Context) error) error {
	if ctx == nil {
		panic("breaker: Breaker.Do called with a nil ctx")
	}
	if fn == nil {
		panic("breaker: Breaker.Do called with a nil fn")
	}
	t, err := b.allowCtx(ctx)
	if err != nil {
		return err
	}
	returned := false
	defer outcome.OnAbort(&returned, func() { b.recordCtx(ctx, t, bulwark.Failure) })
	err = fn(ctx)
	returned = true
	b.recordCtx(ctx, t, b.classifyCtx(ctx, err))
	return err
}

// Call is Do for a function that returns a value. Like Do, it panics at
// once on a nil ctx or a nil fn.
func Call[T any](ctx context.Context, b *Breaker, fn func(context.Context) (T, error)) (T, error) {
	if ctx == nil {
		panic("breaker: Call called with a nil ctx")
	}
	if fn == nil {
		panic("breaker: Call called with a nil fn")
	}
	t, err := b.allowCtx(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	returned := false
	defer outcome.OnAbort(&returned, func() { b.recordCtx(ctx, t, bulwark.Failure) })
	v, err := fn(ctx)
	returned = true
	b.recordCtx(ctx, t, b.classifyCtx(ctx, err))
	return v, err
}

// allowCtx is Allow with span events, and ctx for OnStateChange.
func (b *Breaker) allowCtx(ctx context.Context) (Ticket, error) {
	if State(b.word.Load()) == Closed {
		return b.Allow()
	}
	t, err, mv := b.allowSlow(ctx)
	if mv.ok {
		b.stateEvent(ctx, mv)
	}
	if err != nil {
		b.rejectEvent(ctx, err)
	}
	return t, err
}

// recordCtx is Record with span events, and ctx for OnStateChange.
func (b *Breaker) recordCtx(ctx context.Context, t Ticket, o bulwark.Outcome) {
	if mv := b.record(ctx, t, o); mv.ok {
		b.stateEvent(ctx, mv)
	}
}

// Close unregisters the breaker's metric callback: the breaker keeps
// working, only its metrics stop. A member of a [Set] has no callback of
// its own (the Set reports it), so Close does nothing to it. Close is
// safe to call more than once and from several goroutines; it returns nil.
func (b *Breaker) Close() error {
	if b.telem != nil {
		b.telem.close()
	}
	return nil
}
