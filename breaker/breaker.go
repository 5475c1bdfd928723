package breaker

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

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

// Config configures a [Breaker]. The zero Config is useful: a breaker that
// opens when at least half of the last 100 calls failed (once 20 calls have
// been seen), stays open 5 s, then 10 s, 20 s, ... up to 60 s on repeated
// trips, and lets 10 probes decide in half-open. Each field documents its
// default and where it comes from. [New] copies the Config; changing it
// afterwards has no effect.
//
// Trip rules: with ConsecutiveFailures set the breaker counts consecutive
// failures (gobreaker's default behaviour); otherwise it judges the
// failure rate, and the slow-call rate if SlowCallDuration is set, over a
// sliding window that is count-based (WindowSize calls) unless
// WindowDuration makes it time-based.
type Config struct {
	// Name names the breaker in errors, telemetry (the bulwark.name
	// attribute) and OnStateChange. Default "".
	Name string

	// ConsecutiveFailures, when positive, selects consecutive mode: the
	// breaker opens after this many failures in a row, and a success
	// resets the run; the window, rate and slow-call fields are then
	// unused. gobreaker's default trips on ConsecutiveFailures > 5, i.e.
	// ConsecutiveFailures: 6 here. Default 0: rate mode.
	ConsecutiveFailures int

	// WindowSize is the number of calls in the count-based window.
	// Default 100, resilience4j's slidingWindowSize.
	WindowSize int
	// WindowDuration, when positive, makes the window time-based: the
	// calls of the last WindowDuration, counted in WindowBuckets buckets
	// (so the window slides by WindowDuration/WindowBuckets steps).
	// Default 0: count window. Polly's SamplingDuration is 30 s and
	// resilience4j's time window 100 s, if you want a starting point.
	WindowDuration time.Duration
	// WindowBuckets is the number of buckets in a time window. Default 10
	// (Hystrix's metricsRollingStatisticalWindowBuckets).
	WindowBuckets int
	// FailureRate, in (0, 1], opens the breaker when failures/calls in the
	// window reach it. Default 0.5, resilience4j's failureRateThreshold
	// (Polly uses 0.1, which trips on background noise in our view).
	FailureRate float64
	// MinimumCalls is the number of calls the window must hold before any
	// rate is judged (capped at WindowSize). Default 20, Hystrix's
	// requestVolumeThreshold: resilience4j and Polly use 100, which on a
	// low-traffic dependency delays the first trip by minutes.
	MinimumCalls int
	// SlowCallDuration, when positive, counts calls that take at least
	// this long as slow (whatever their outcome), and opens the breaker
	// when slow calls/calls reach SlowCallRate. It costs a second clock
	// reading per call. Default 0: no slow-call detection (resilience4j's
	// default of 60 s at 100% is effectively off too).
	SlowCallDuration time.Duration
	// SlowCallRate, in (0, 1], is the slow-call rate that opens the
	// breaker. Default 1.0, resilience4j's slowCallRateThreshold.
	SlowCallRate float64

	// OpenDuration is how long the breaker stays open after its first
	// trip. Default 5 s, Polly's BreakDuration: a short first pause
	// recovers quickly from a blip, and growth (below) takes care of a
	// dependency that stays down.
	OpenDuration time.Duration
	// OpenDurationGrowth multiplies the open duration on each repeated
	// trip (a trip from half-open, or from closed before a successful
	// half-open); 1 keeps it fixed. Default 2 (as Polly's
	// BreakDurationGenerator examples and resilience4j's exponential
	// IntervalFunction do).
	OpenDurationGrowth float64
	// MaxOpenDuration caps the growing open duration. Default 60 s, the
	// fixed open duration of gobreaker and resilience4j.
	MaxOpenDuration time.Duration
	// OpenJitter, in [0, 1], shortens each open duration by a random
	// fraction of up to OpenJitter, so that many clients that tripped
	// together do not probe together; the cap is never exceeded. Default
	// 0.1. A negative value disables jitter.
	OpenJitter float64

	// HalfOpenProbes is the number of calls admitted in half-open. They
	// decide: in consecutive mode one failure reopens and HalfOpenProbes
	// successes close (gobreaker's MaxRequests); in rate mode, once all
	// probes have reported, the breaker closes unless their failure (or
	// slow-call) rate reaches the threshold, and reopens as soon as it
	// must. Default 1 in consecutive mode (gobreaker's default) and 10 in
	// rate mode (resilience4j's permittedNumberOfCallsInHalfOpenState: a
	// rate judged on one call is a coin toss).
	HalfOpenProbes int
	// HalfOpenMaxWait bounds the stay in half-open. A probe that hangs, or
	// whose result never comes back (an abandoned ticket, a cancelled
	// stream), would otherwise hold its slot forever. Once it has passed
	// and a call finds no free slot, the breaker reopens (with a grown
	// open duration: a hung probe is a bad sign) and late probe results
	// are discarded. Default 30 s (resilience4j's default, 0, waits
	// forever).
	HalfOpenMaxWait time.Duration

	// ClassifyHTTP overrides how RoundTripper judges a round trip and how
	// Handler judges a response (for Handler, resp carries the status code
	// and the headers the handler wrote, and err is nil). Default:
	// bulwark's HTTP rules, 5xx except 501, 408 and 429 are failures, and
	// a transport error is judged by Classify. Use it, say, to keep 429s
	// from an upstream rate limiter from tripping the breaker.
	ClassifyHTTP bulwark.HTTPClassifier

	// Classify overrides the classification of Done's and Do's error.
	// Default: nil is a success; an error that is context.Canceled while
	// the caller's ctx is done is neutral; anything else is a failure. In
	// Done, which has no context, Classify is called with
	// context.Background() (never nil, so a classifier may call ctx.Err())
	// and the default treats context.Canceled as neutral.
	Classify bulwark.Classifier

	// OnStateChange, if set, is called after every state change, in
	// order, never concurrently with itself, and outside the breaker's
	// lock: it may call any method of the breaker (State, Counts, even
	// ForceOpen). In a Set, name is the member's key. It runs in the
	// goroutine whose call caused the change, so it should be quick. A
	// panic in it reaches that caller; events queued meanwhile by other
	// goroutines are delivered with the next state change.
	OnStateChange func(name string, from, to State)

	// Clock is the time source; nil means the real clock. Tests use a
	// fake one.
	Clock clock.Clock

	// MeterProvider receives the breaker's metrics; nil means the global
	// provider.
	MeterProvider metric.MeterProvider
}

// Defaults, see Config.
const (
	DefaultWindowSize       = 100
	DefaultWindowBuckets    = 10
	DefaultFailureRate      = 0.5
	DefaultMinimumCalls     = 20
	DefaultSlowCallRate     = 1.0
	DefaultOpenDuration     = 5 * time.Second
	DefaultOpenGrowth       = 2.0
	DefaultMaxOpenDuration  = 60 * time.Second
	DefaultOpenJitter       = 0.1
	DefaultHalfOpenProbes   = 10
	DefaultConsecutiveProbe = 1
	DefaultHalfOpenMaxWait  = 30 * time.Second
)

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

func resolve(c *Config) settings {
	s := settings{
		size:     int64(c.WindowSize),
		nbuckets: int64(c.WindowBuckets),
		rate:     c.FailureRate,
		minCalls: int64(c.MinimumCalls),
		slowRate: c.SlowCallRate,
		growth:   c.OpenDurationGrowth,
		jitter:   c.OpenJitter,
		probes:   int64(c.HalfOpenProbes),
	}
	if s.size <= 0 {
		s.size = DefaultWindowSize
	}
	if s.nbuckets <= 0 {
		s.nbuckets = DefaultWindowBuckets
	}
	if !(s.rate > 0 && s.rate <= 1) {
		s.rate = DefaultFailureRate
	}
	if s.minCalls <= 0 {
		s.minCalls = DefaultMinimumCalls
	}
	if !(s.slowRate > 0 && s.slowRate <= 1) {
		s.slowRate = DefaultSlowCallRate
	}
	if c.SlowCallDuration > 0 {
		s.slowNs = int64(c.SlowCallDuration)
	}
	switch {
	case c.ConsecutiveFailures > 0:
		s.mode = modeConsecutive
		s.consec = int64(c.ConsecutiveFailures)
		s.slowNs = 0
		if s.probes <= 0 {
			s.probes = DefaultConsecutiveProbe
		}
	case c.WindowDuration > 0:
		s.mode = modeTime
		s.bucketNs = max(1, int64(c.WindowDuration)/s.nbuckets)
	default:
		s.mode = modeCount
		s.minCalls = min(s.minCalls, s.size)
	}
	if s.probes <= 0 {
		s.probes = DefaultHalfOpenProbes
	}
	s.openBase = float64(c.OpenDuration)
	if s.openBase <= 0 {
		s.openBase = float64(DefaultOpenDuration)
	}
	s.openMax = float64(c.MaxOpenDuration)
	if s.openMax <= 0 {
		s.openMax = float64(DefaultMaxOpenDuration)
	}
	// A duration past maxOpen (about 146 years) would overflow when added
	// to the clock; "open until Reset" is ForceOpen's job anyway.
	s.openBase = min(s.openBase, maxOpen)
	s.openMax = min(max(s.openMax, s.openBase), maxOpen)
	if s.growth == 0 || math.IsNaN(s.growth) {
		s.growth = DefaultOpenGrowth
	}
	s.growth = max(s.growth, 1)
	switch {
	case s.jitter == 0:
		s.jitter = DefaultOpenJitter
	case !(s.jitter > 0): // negative or NaN
		s.jitter = 0
	}
	s.jitter = min(s.jitter, 1)
	s.maxWaitNs = int64(c.HalfOpenMaxWait)
	if s.maxWaitNs <= 0 {
		s.maxWaitNs = int64(DefaultHalfOpenMaxWait)
	}
	return s
}

// Breaker is a circuit breaker. Create one with [New]; the zero Breaker is
// not usable. A Breaker is safe for concurrent use. Call [Breaker.Close]
// when discarding a breaker before the end of the program, to unregister
// its metrics.
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
	hook         func(name string, from, to State)
	telem        *telemetryState

	mu         sync.Mutex // state changes; fields below
	trips      int        // trips since the breaker last closed from half-open
	totals     [4]int64   // succ, fail, neutral, slow of retired periods
	rejected   int64
	moves      [numStates][numStates]int64
	events     [][2]State
	delivering bool
}

// Ticket is the permission Allow gives; hand it back to Done or Record.
// It is a small value: passing it costs nothing. The zero Ticket belongs to
// no generation, so Done ignores it.
type Ticket struct {
	gen   uint64
	start int64
}

// New returns a breaker configured by cfg, in the Closed state.
func New(cfg Config) *Breaker {
	return newBreaker(cfg, "", false)
}

func newBreaker(cfg Config, key string, inSet bool) *Breaker {
	b := &Breaker{
		s:            resolve(&cfg),
		clk:          clock.Or(cfg.Clock),
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
	b.telem = newTelemetry(b, cfg.MeterProvider)
	return b
}

// maxOpen bounds every open duration, in nanoseconds, so that the clock
// reading plus the duration stays within an int64.
const maxOpen = float64(math.MaxInt64 / 2)

// hookName is the name passed to OnStateChange and put in errors.
func (b *Breaker) hookName() string {
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
	t, err, _ := b.allowSlow()
	return t, err
}

// move describes a state change caused by a call, for span events.
type move struct {
	from, to State
	ok       bool
}

func (b *Breaker) allowSlow() (Ticket, error, move) {
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
			if m := b.transition(p, HalfOpen, now); m.ok {
				mv = m
			}
		case HalfOpen:
			for n := p.slots.Load(); n > 0; n = p.slots.Load() {
				if p.slots.CompareAndSwap(n, n-1) {
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
			if m := b.transition(p, Open, now); m.ok {
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
// context.Background()), or by default context.Canceled is neutral and
// any other error a failure. A result whose ticket belongs to an earlier
// generation (the breaker changed state since Allow) is discarded. Done
// never allocates on a success.
func (b *Breaker) Done(t Ticket, err error) {
	b.record(t, b.classifyNoCtx(err))
}

func (b *Breaker) classifyNoCtx(err error) bulwark.Outcome {
	if b.classify != nil {
		return b.classify(context.Background(), err)
	}
	if err == nil {
		return bulwark.Success
	}
	if errors.Is(err, context.Canceled) {
		return bulwark.Neutral
	}
	return bulwark.Failure
}

func (b *Breaker) classifyCtx(ctx context.Context, err error) bulwark.Outcome {
	if b.classify != nil {
		return b.classify(ctx, err)
	}
	return outcome.Error(ctx, err)
}

// Classifier returns Config.Classify, nil if none was set. Adapters that
// classify with their own rules (grpcx) use it to honour an override.
func (b *Breaker) Classifier() bulwark.Classifier { return b.classify }

// Record reports an outcome that the caller has already classified, for
// adapters with their own rules (HTTP status codes, gRPC codes). Otherwise
// it is Done.
func (b *Breaker) Record(t Ticket, o bulwark.Outcome) { b.record(t, o) }

func (b *Breaker) record(t Ticket, o bulwark.Outcome) move {
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
		return b.recordClosed(p, t, o)
	case HalfOpen:
		return b.recordHalfOpen(p, t, o)
	}
	return move{}
}

func (b *Breaker) recordClosed(p *period, t Ticket, o bulwark.Outcome) move {
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
		return b.transition(p, Open, b.nowIf(now))
	case modeCount:
		if !fail && !slow && !p.pending.Load() {
			return move{}
		}
		total := p.total()
		if fail {
			push(p.fring, &p.fhead, total)
		}
		if slow {
			push(p.sring, &p.shead, total)
		}
		calls, fails, slows = p.countWindow(total, b.s.size)
	case modeTime:
		epoch := now / b.s.bucketNs
		if bk := p.bucketAt(epoch, b.s.nbuckets); bk != nil {
			bk.calls.Add(1)
			if fail {
				bk.fails.Add(1)
			}
			if slow {
				bk.slows.Add(1)
			}
		}
		if !fail && !slow && !p.pending.Load() {
			return move{}
		}
		calls, fails, slows = p.timeWindow(epoch, b.s.nbuckets)
	}
	if !b.judge(p, calls, fails, slows) {
		return move{}
	}
	return b.transition(p, Open, b.nowIf(now))
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

func (b *Breaker) recordHalfOpen(p *period, t Ticket, o bulwark.Outcome) move {
	c := p.cell()
	if o == bulwark.Neutral {
		// The probe told us nothing: give its slot to another call.
		c.neutral.Add(1)
		p.slots.Add(1)
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
		p.hslow.Add(1)
	}
	if o == bulwark.Success {
		c.succ.Add(1)
		p.hsucc.Add(1)
	} else {
		c.fail.Add(1)
		p.hfail.Add(1)
	}
	n := b.s.probes
	// Reopen as soon as the outstanding probes cannot change the verdict.
	if b.halfOpenFailing(p, n) {
		return b.transition(p, Open, b.clk.Nanotime())
	}
	if p.hsucc.Load()+p.hfail.Load() >= n {
		if b.halfOpenFailing(p, n) { // read again: all n have reported now
			return b.transition(p, Open, b.clk.Nanotime())
		}
		return b.transition(p, Closed, b.clk.Nanotime())
	}
	return move{}
}

// halfOpenFailing reports whether the probes reported so far already
// condemn the dependency: any failure in consecutive mode, else a failure
// or slow-call rate over its threshold out of n probes.
func (b *Breaker) halfOpenFailing(p *period, n int64) bool {
	fails := p.hfail.Load()
	if b.s.mode == modeConsecutive {
		return fails > 0
	}
	return b.over(n, fails, p.hslow.Load())
}

// transition moves the breaker from period p to state to, unless another
// goroutine already moved it on. It reports the move it made.
func (b *Breaker) transition(p *period, to State, now int64) move {
	b.mu.Lock()
	if b.cur.Load() != p {
		b.mu.Unlock()
		return move{}
	}
	b.setLocked(p, to, now)
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
	b.setLocked(p, to, b.clk.Nanotime())
	b.mu.Unlock()
	b.deliver()
}

func (b *Breaker) setLocked(p *period, to State, now int64) {
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
		b.events = append(b.events, [2]State{from, to})
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
	done := false
	defer func() {
		if !done { // the hook panicked (outside the lock): let a later transition deliver
			b.mu.Lock()
			b.delivering = false
			b.mu.Unlock()
		}
	}()
	for len(b.events) > 0 {
		ev := b.events[0]
		b.events = b.events[1:]
		b.mu.Unlock()
		b.hook(b.hookName(), ev[0], ev[1])
		b.mu.Lock()
	}
	b.delivering = false
	b.mu.Unlock()
	done = true
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
	d = min(d, b.s.openMax) // openMax <= maxOpen: the conversion cannot overflow
	if b.s.jitter > 0 {
		d -= d * b.s.jitter * rand.Float64()
	}
	return time.Duration(d)
}

func (b *Breaker) newPeriod(gen uint64, st State, now int64) *period {
	n := stripe.Size()
	p := &period{gen: gen, state: st, start: now, cells: make([]cell, n), mask: n - 1}
	name := b.hookName()
	switch st {
	case Closed:
		switch b.s.mode {
		case modeCount:
			p.fring = make([]atomic.Int64, b.s.size)
			if b.s.slowNs > 0 {
				p.sring = make([]atomic.Int64, b.s.size)
			}
		case modeTime:
			p.stride = int(b.s.nbuckets) + bucketPad
			p.buckets = make([]bucket, n*p.stride)
		}
	case Open:
		d := b.openDuration()
		p.openUntil = now + int64(d)
		p.err = &OpenError{Name: name, State: Open, Until: b.clk.Now().Add(d), sentinel: ErrOpen, clk: b.clk}
	case HalfOpen:
		p.slots.Store(b.s.probes)
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
			b.transition(p, HalfOpen, now)
		case HalfOpen:
			if p.slots.Load() > 0 {
				return HalfOpen
			}
			now := b.clk.Nanotime()
			if now-p.start < b.s.maxWaitNs {
				return HalfOpen
			}
			b.transition(p, Open, now)
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
		Rejections: rejected, ConsecutiveFailures: p.consec.Load()}
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
// classified with ctx (Config.Classify, or by default: nil a success, a
// cancellation by the caller neutral, anything else a failure). It returns
// fn's error, or the rejection (an [*OpenError]) without calling fn. If fn
// panics the call is recorded as a failure and the panic continues.
//
// Where ctx carries a recording span, Do adds the events
// "bulwark.breaker.rejected" and "bulwark.breaker.state_change" to it.
func (b *Breaker) Do(ctx context.Context, fn func(context.Context) error) error {
	t, err := b.allowCtx(ctx)
	if err != nil {
		return err
	}
	finished := false
	defer func() {
		if !finished {
			b.recordCtx(ctx, t, bulwark.Failure)
		}
	}()
	err = fn(ctx)
	finished = true
	b.recordCtx(ctx, t, b.classifyCtx(ctx, err))
	return err
}

// Call is Do for a function that returns a value.
func Call[T any](ctx context.Context, b *Breaker, fn func(context.Context) (T, error)) (T, error) {
	t, err := b.allowCtx(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	finished := false
	defer func() {
		if !finished {
			b.recordCtx(ctx, t, bulwark.Failure)
		}
	}()
	v, err := fn(ctx)
	finished = true
	b.recordCtx(ctx, t, b.classifyCtx(ctx, err))
	return v, err
}

// allowCtx is Allow with span events.
func (b *Breaker) allowCtx(ctx context.Context) (Ticket, error) {
	if State(b.word.Load()) == Closed {
		return b.Allow()
	}
	t, err, mv := b.allowSlow()
	if mv.ok {
		b.telem.stateEvent(ctx, mv)
	}
	if err != nil {
		b.telem.rejectEvent(ctx, err)
	}
	return t, err
}

// recordCtx is Record with span events.
func (b *Breaker) recordCtx(ctx context.Context, t Ticket, o bulwark.Outcome) {
	if mv := b.record(t, o); mv.ok {
		b.telem.stateEvent(ctx, mv)
	}
}

// Close unregisters the breaker's metric callbacks. The breaker keeps
// working; only its metrics stop. Close is idempotent. A Set closes the
// breakers it evicts.
func (b *Breaker) Close() { b.telem.close() }
