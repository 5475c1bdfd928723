package timeout

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
)

// callCtx is the context Do and Call give fn when they derive one without
// context.WithTimeoutCause: the caller's context cannot be cancelled (its
// Done is nil, as Background's), or Config.ReuseContexts is set. It is
// one allocation (none when pooled) because everything a context usually
// sets up at once is made lazily:
//
//   - Err compares the clock with the deadline (and asks the parent), so a
//     fn that only checks Err or Deadline needs no timer;
//   - the Done channel, the timer that closes it at the deadline and the
//     registration with a cancellable parent are made by the first call
//     to Done or AfterFunc (context.WithCancel and context.AfterFunc call
//     them), the moment something starts watching.
//
// Handler's request contexts are callCtxs too, started at once (the
// timer, which also wakes the Handler's writer at the deadline, and the
// registration with the server's context), with the Done channel made
// when asked for: one timer per request where context.WithTimeoutCause
// and a timer of the writer's own would be two.
//
// A ctx ends once, in one of three states, and stays so. Its cause is
// what context.Cause finds, by asking Value for the key of context's
// *cancelCtx (see Value): the Timeout's *TimeoutError for timedOut,
// context.Canceled for canceled (fn returned), the parent's cause for
// parentDone.
//
// Pooled (Config.ReuseContexts), a ctx is reused by later calls once its
// call has returned, if nothing watched it (see release). Every field a
// holder reads is then read under mu (fresh ctxs read the fields set
// before they were published without it), so a holder that broke the
// contract and kept the ctx gets wrong answers (the next call's), never
// a torn read; until the ctx is reused it reads as Canceled, with no
// deadline and no Values.
type callCtx struct {
	state atomic.Uint32
	// quiet is set when c can end only at its deadline or when a call
	// returns (its own or an ancestor's): its parent is quiet (see
	// quiet). A child derived from a quiet c is made lazily too, and
	// watches it without arming it (see watch). Set when c is made (or
	// reused), before it is published.
	quiet atomic.Bool
	// started is set once c's timer and registration with its parent
	// exist (startLocked): from then on they end c, and Err reads no
	// clock.
	started atomic.Bool
	pooled  bool // set at creation, never changed
	// inherit is set when c's deadline is its parent's (a Handler's
	// request whose caller's deadline comes first): c then ends only
	// with its parent, and has no timer of its own.
	inherit bool
	// parentDeadline: c ended with its parent (parentDone), whose Err
	// was DeadlineExceeded (else Canceled, the only other Err a context
	// may have).
	parentDeadline bool
	regd           bool // reg is registered with the parent
	// watched is set by Done and AfterFunc: something may be waiting for
	// c to end, and may read it once woken, after its call has returned
	// (context's own propagation does: a child's goroutine or AfterFunc
	// reads Err and Cause when c ends, and panics on a nil Err). A pooled
	// c that was watched is never reused; see release.
	watched bool

	done atomic.Value // of chan struct{}: nil (or nothing) until Done, closedchan or closed once ended

	mu       sync.Mutex
	parent   context.Context
	deadline time.Time
	cause    context.Context // a done *cancelCtx carrying the Timeout's cause
	// causeTE, when cause is nil, is the cause to carry: the done
	// context is made only if asked for (timeoutCause), once c has timed
	// out. Handler's contexts have one, for a limit of their own.
	causeTE *TimeoutError
	// ending counts the wakes running c's registrations after ending it
	// (at the deadline, or when the parent ended): release waits for
	// them.
	ending sync.WaitGroup
	timer  clock.Timer  // started by Done (startLocked)
	wakeFn func()       // c.wake, made once
	stop   func() bool  // unregisters wakeFn from the parent
	afters []*afterFunc // AfterFunc registrations, run when c ends
	// aftersBuf holds the first registrations, without an allocation:
	// a context derived from c (retry's attempt context under a total
	// timeout) registers one.
	aftersBuf [2]*afterFunc
	// reg is c's registration with a quiet *callCtx parent (see watch):
	// c's wake, run if the parent ends first.
	reg afterFunc
}

// The states of a callCtx.
const (
	live uint32 = iota
	timedOut
	canceled
	parentDone
)

// closedchan is the Done channel of a ctx that ended before anyone asked
// for one.
var closedchan = make(chan struct{})

// canceledCause is a done context whose cause is context.Canceled: what
// Value answers context.Cause with for a ctx that ended with its call.
// released is the parent of a pooled ctx between two calls: no Values.
var (
	canceledCause context.Context
	released      = context.Background()
)

func init() {
	close(closedchan)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	canceledCause = ctx
}

// newCause returns a done context whose cause (per context.Cause) is
// cause, for a Timeout's callCtxs to answer Value with once timed out.
func newCause(cause error) context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	return ctx
}

// ctxPool holds pooled callCtxs (Config.ReuseContexts).
var ctxPool = sync.Pool{New: func() any {
	c := &callCtx{pooled: true}
	c.wakeFn = c.wake
	return c
}}

// newCallCtx returns a ctx that ends at deadline or when parent does:
// from ctxPool when reuse is set, else fresh.
//
// q is quiet(parent).
func (t *Timeout) newCallCtx(parent context.Context, deadline time.Time, reuse, q bool) *callCtx {
	if !reuse {
		c := &callCtx{parent: parent, deadline: deadline, cause: t.causeCtx}
		c.quiet.Store(q)
		return c
	}
	c := ctxPool.Get().(*callCtx)
	c.mu.Lock()
	c.parent, c.deadline, c.cause, c.parentDeadline, c.watched = parent, deadline, t.causeCtx, false, false
	c.done.Store(nilchan)
	c.quiet.Store(q)
	c.state.Store(live)
	c.mu.Unlock()
	return c
}

// quiet reports whether ctx can end only at its deadline or when the call
// it serves returns: a context that never ends (its Done is nil, as
// Background's), or a quiet *callCtx (one made under such a context, or
// under a quiet *callCtx). A context derived from a quiet one can be
// made lazily, as a *callCtx, and needs neither a timer nor a
// registration with its parent until something watches it: whatever the
// parent does before, the child learns by polling it (Err), and the
// child's own deadline always comes first (a Timeout derives only an
// earlier deadline than its caller's). A quiet *callCtx is not armed by
// the question, as calling its Done would.
func quiet(ctx context.Context) bool {
	if p, ok := ctx.(*callCtx); ok {
		return p.quiet.Load()
	}
	return ctx.Done() == nil
}

var nilchan chan struct{}

// release ends c as cancelled, its call having returned, and puts it back
// in the pool if it is pooled and nothing watched it. Only a c that was
// never watched is reused: whatever waits on Done (a goroutine fn
// started, a context fn derived from c, a function it registered with
// context.AfterFunc) is woken by this end and may read c afterwards, and
// must find it cancelled, with its own deadline and Values, not serving
// another call. What is left to
// break the contract is code that kept c itself and reads it later
// (a logger's Value, a detached context.WithoutCancel(c)).
func (c *callCtx) release() {
	c.mu.Lock()
	run := c.end(canceled, context.Canceled)
	if !c.pooled || c.watched { // never reused: it keeps its deadline and Values
		c.mu.Unlock()
		// The registrations run here, in the goroutine that ends the
		// call, which holds no lock: a goroutine each would cost more
		// than all the rest. net/http's transport registers one for every
		// request (its own context derived from the request's), which it
		// has usually not yet withdrawn when the caller closes the body.
		for _, a := range run {
			a.run()
		}
		if c.started.Load() {
			c.ending.Wait() // an end by the deadline or the parent, still running them
		}
		return
	}
	c.parent, c.deadline, c.cause, c.causeTE, c.inherit = released, time.Time{}, nil, nil, false
	c.mu.Unlock()
	ctxPool.Put(c)
}

// fields returns what a holder reads: under mu when c is pooled.
func (c *callCtx) fields() (parent context.Context, deadline time.Time) {
	if !c.pooled {
		return c.parent, c.deadline
	}
	c.mu.Lock()
	parent, deadline = c.parent, c.deadline
	c.mu.Unlock()
	return
}

// Deadline returns the deadline the call runs under. A released pooled
// ctx has none.
func (c *callCtx) Deadline() (time.Time, bool) {
	_, dl := c.fields()
	return dl, !dl.IsZero()
}

// Err returns nil until c ends, then why, as context's contexts do. Before
// anything armed a timer, it ends c itself once the deadline has passed
// or the parent has ended: a fn that polls Err sees the same as one that
// waits on Done.
func (c *callCtx) Err() error {
	// The fast path: nothing to lock. Once started, c's timer ends it at
	// the deadline, as a context of context's own is ended by its timer:
	// no clock to read. The parent is asked every time, so that a parent
	// cancelled a moment ago reads as ending c at once, as it does for
	// context's own children, not once its registration has run.
	if c.state.Load() == live && !c.pooled && c.parent.Err() == nil &&
		(c.started.Load() || clock.Real.Now().Before(c.deadline)) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.Load() == live {
		c.pollLocked(clock.Real.Now())
	}
	switch c.state.Load() {
	case timedOut:
		return context.DeadlineExceeded
	case canceled:
		return context.Canceled
	case parentDone:
		if c.parentDeadline {
			return context.DeadlineExceeded
		}
		return context.Canceled
	}
	return nil
}

// Done returns a channel closed when c ends. The first call arms the
// timer (and the parent's registration).
func (c *callCtx) Done() <-chan struct{} {
	if d := c.doneChan(); d != nil {
		return d
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.armLocked(clock.Real.Now())
}

// Value answers context.Cause's question (the key of context's cancelCtx)
// with a done *cancelCtx carrying c's cause once c has ended, and every
// other key from the parent. The keys a done cancelCtx made from
// Background answers are exactly that one: every other key it passes to
// Background, which answers nil.
func (c *callCtx) Value(key any) any {
	parent, _ := c.fields()
	switch c.state.Load() {
	case timedOut:
		if cause := c.timeoutCause(); cause != nil {
			if v := cause.Value(key); v != nil {
				return v
			}
		}
	case canceled:
		if v := canceledCause.Value(key); v != nil {
			return v
		}
	}
	return parent.Value(key)
}

// initHandler makes c, the zero callCtx of a Handler's request, the
// context next runs with: it ends limit from now, or when parent does
// (with parent's deadline when that comes first, as context.WithDeadline
// does), with cause (the Timeout's done context, or nil and causeTE).
// It is armed at once: its timer, and its registration with a parent that
// can be cancelled, made from the start, so it knows which ended first.
// reg, registered with c, wakes w (the Handler's writer) when c ends; it
// is left unregistered if c has already ended (the parent had).
func (c *callCtx) initHandler(parent context.Context, now time.Time, limit time.Duration,
	cause context.Context, causeTE *TimeoutError, reg *afterFunc, w waker) {
	c.parent, c.deadline, c.cause, c.causeTE = parent, now.Add(limit), cause, causeTE
	if dl, ok := parent.Deadline(); ok && !dl.After(c.deadline) {
		c.deadline, c.inherit = dl, true
	}
	c.quiet.Store(quiet(parent))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watched = true
	if !c.pollLocked(now) {
		// Started, but with no Done channel until asked for (Done makes
		// it), as context's own contexts do.
		c.startLocked(now)
	}
	if c.state.Load() == live {
		reg.w = w
		reg.state.Store(afterPending)
		c.addLocked(reg)
	}
}

// timeoutCause returns the done context that carries c's cause once c
// has timed out, making it from causeTE the first time.
func (c *callCtx) timeoutCause() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause == nil && c.causeTE != nil {
		c.cause = newCause(c.causeTE)
	}
	return c.cause
}

// doneChan returns c's Done channel: nil until made (a fresh c's done
// holds nothing yet, a reused one's nilchan).
func (c *callCtx) doneChan() chan struct{} {
	d, _ := c.done.Load().(chan struct{})
	return d
}

// String names c as context's contexts do, for debugging.
func (c *callCtx) String() string { return "timeout.Context" }

// AfterFunc is the method context.AfterFunc and context.WithCancel look
// for: f runs once when c ends, without a goroutine waiting for it
// meanwhile. When c ends because its call returned, f runs in the
// goroutine that returned, once it holds no lock of c's, as a cancel
// func does its work in its caller's goroutine; otherwise f runs in
// another goroutine: the one c's timer or its parent's end woke (and the
// call's return waits for it, see ending), or one of its own (c had
// already ended, or Err found it past its deadline). The functions
// context registers only cancel its own contexts, and context.AfterFunc
// starts the caller's function in a goroutine of its own either way.
func (c *callCtx) AfterFunc(f func()) func() bool {
	a := &afterFunc{w: funcWaker(f)}
	c.mu.Lock()
	c.armLocked(clock.Real.Now())
	if c.state.Load() != live {
		c.mu.Unlock()
		a.state.Store(afterRan)
		go f()
		return a.stop
	}
	c.addLocked(a)
	c.mu.Unlock()
	return a.stop
}

// addLocked adds a to the registrations run when c ends.
func (c *callCtx) addLocked(a *afterFunc) {
	if c.afters == nil {
		c.afters = c.aftersBuf[:0]
	}
	if len(c.afters) == cap(c.afters) { // drop the stopped ones before growing
		kept := c.afters[:0]
		for _, x := range c.afters {
			if x.state.Load() == afterPending {
				kept = append(kept, x)
			}
		}
		clear(c.afters[len(kept):])
		c.afters = kept
	}
	c.afters = append(c.afters, a)
}

// afterFunc is one AfterFunc registration (w a funcWaker), or one of
// bulwark's own made without an allocation (a child's with its quiet
// parent, see watch; a Handler's writer's with its request's context):
// it wakes w once.
type afterFunc struct {
	w     waker
	state atomic.Uint32
}

// A waker is woken by the end of a context it registered with.
type waker interface{ wake() }

// funcWaker is a function registered through AfterFunc.
type funcWaker func()

func (f funcWaker) wake() { f() }

// run runs the registration.
func (a *afterFunc) run() { a.w.wake() }

const (
	afterPending uint32 = iota
	afterRan
	afterStopped
)

func (a *afterFunc) stop() bool { return a.state.CompareAndSwap(afterPending, afterStopped) }

// armLocked returns c's Done channel, making it, the timer and the
// parent's registration if need be; now is the time.
func (c *callCtx) armLocked(now time.Time) chan struct{} {
	c.watched = true
	if d := c.doneChan(); d != nil {
		return d
	}
	if c.pollLocked(now) {
		return c.doneChan()
	}
	d := make(chan struct{})
	c.done.Store(d)
	c.startLocked(now)
	return d
}

// startLocked starts, once, what ends c on time: its timer, and its
// registration with the parent. c must be live.
func (c *callCtx) startLocked(now time.Time) {
	if c.started.Load() {
		return
	}
	c.started.Store(true)
	if c.wakeFn == nil {
		c.wakeFn = c.wake
	}
	if !c.inherit {
		c.timer = clock.Real.AfterFunc(c.deadline.Sub(now), c.wakeFn)
	}
	if p, ok := c.parent.(*callCtx); ok && c.quiet.Load() {
		// The parent's deadline comes after c's, so c's timer is the only
		// one needed: c watches the parent for an earlier end (its call
		// returning) without arming it.
		if !p.watch(c) {
			c.pollLocked(now) // the parent has ended
		}
	} else if c.parent.Done() != nil {
		c.stop = context.AfterFunc(c.parent, c.wakeFn)
	}
}

// watch registers child, a ctx derived from c (quiet), to be woken when c
// ends, without arming c: no Done channel, no timer. It reports false if
// c has already ended. c is linked to its own quiet parent the same way,
// once, so that an end anywhere up the chain reaches child. Locks are
// taken child first, then parent, everywhere; c wakes child in a
// goroutine of its own (endLocked), never under its lock.
func (c *callCtx) watch(child *callCtx) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pollLocked(clock.Real.Now()) {
		return false
	}
	c.watched = true // a pooled c is never reused now: child holds it
	if !c.regd {
		if p, ok := c.parent.(*callCtx); ok && c.quiet.Load() {
			if !p.watch(c) {
				c.pollLocked(clock.Real.Now())
				return false
			}
		}
	}
	child.reg.w = child
	child.reg.state.Store(afterPending)
	child.regd = true
	c.addLocked(&child.reg)
	return true
}

// wake runs at the deadline and when the parent ends (a timer or parent
// registration exists only once c was watched, and a watched c is never
// reused, so wake always concerns c's own call).
func (c *callCtx) wake() {
	c.mu.Lock()
	_, run := c.poll(clock.Real.Now())
	if len(run) == 0 {
		c.mu.Unlock()
		return
	}
	// The registrations run here, holding no lock; release waits for
	// them (ending), so that what was derived from c has ended by the
	// time c's call returns, as context's own contexts guarantee (a
	// cancel func waits for the timer's cancel in progress).
	c.ending.Add(1)
	c.mu.Unlock()
	defer c.ending.Done()
	for _, a := range run {
		a.run()
	}
}

// pollLocked ends c if its parent has ended or its deadline has passed
// at now, and reports whether c has ended. The parent comes first: when both
// happened before anything looked, c cannot tell which came first, and a
// caller that has gone away is not a timeout of the callee. Under a quiet
// *callCtx parent c can tell: the parent's deadline comes after c's.
func (c *callCtx) pollLocked(now time.Time) bool {
	ended, run := c.poll(now)
	for _, a := range run {
		go a.run()
	}
	return ended
}

// poll is pollLocked, but it returns the registrations to run instead of
// starting them (see end).
func (c *callCtx) poll(now time.Time) (bool, []*afterFunc) {
	if c.state.Load() != live {
		return true, nil
	}
	if p, ok := c.parent.(*callCtx); ok && c.quiet.Load() {
		// A quiet parent's deadline comes after c's: if c's has passed,
		// it came first, unless the parent had already ended otherwise
		// (its call returned).
		if s := p.state.Load(); s == canceled || s == parentDone || now.Before(c.deadline) {
			if err := p.Err(); err != nil {
				return true, c.end(parentDone, err)
			}
		}
	} else if err := c.parent.Err(); err != nil {
		return true, c.end(parentDone, err)
	}
	if !c.inherit && !now.Before(c.deadline) {
		return true, c.end(timedOut, context.DeadlineExceeded)
	}
	return false, nil
}

// endLocked ends c in state s with err, if it is still live: it closes
// Done, stops the timer, leaves the parent and starts the AfterFunc
// functions.
func (c *callCtx) endLocked(s uint32, err error) {
	for _, a := range c.end(s, err) {
		go a.run()
	}
}

// end is endLocked, but it returns the registrations that are to run
// instead of starting them: the caller runs them once it holds no lock
// (release does, in its own goroutine).
func (c *callCtx) end(s uint32, err error) []*afterFunc {
	if c.state.Load() != live {
		return nil
	}
	if s == parentDone {
		c.parentDeadline = err == context.DeadlineExceeded
	}
	c.state.Store(s)
	if d := c.doneChan(); d == nil {
		c.done.Store(closedchan)
	} else {
		close(d)
	}
	if c.timer != nil {
		// Not kept for reuse: a timer made in a testing/synctest bubble
		// cannot be used outside it, and a pooled ctx may serve a call
		// in another bubble, or in none, next.
		c.timer.Stop()
		c.timer = nil
	}
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
	if c.regd {
		c.reg.stop()
		c.regd = false
	}
	run := c.afters[:0]
	for _, a := range c.afters {
		if a.state.CompareAndSwap(afterPending, afterRan) {
			run = append(run, a)
		}
	}
	clear(c.afters[len(run):])
	// c ended: nothing registers with it again (AfterFunc and watch find
	// it ended), so the caller may read run after unlocking.
	c.afters = nil
	return run
}
