package timeout

import (
	"context"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/internal/bridge"
	"github.com/bulwark-go/bulwark/internal/clock"
)

// Timeout bounds the time of calls, HTTP attempts and HTTP requests. Build
// one with [New]; it is safe for concurrent use, and one Timeout serves any
// number of calls. The zero Timeout is not usable.
type Timeout struct {
	name    string
	limit   time.Duration
	abandon bool
	header  string // canonical header name; "" when propagation is off

	// cause is the cause of every context Do, Call and RoundTripper
	// derive: shared, so that deriving one costs nothing more than
	// context.WithTimeoutCause itself, and compared by identity to tell
	// this Timeout's deadline from the caller's.
	cause *TimeoutError
	// causeCtx is a done context whose cause is cause: what a callCtx
	// that timed out answers context.Cause's question with.
	causeCtx context.Context
	reuse    bool // Config.ReuseContexts
	// budgetValue is the budget header's value for the whole limit,
	// shared (capped, read-only) by the requests RoundTripper sends.
	budgetValue []string

	timeouts  atomic.Int64 // calls, attempts and requests that timed out
	abandoned atomic.Int64 // abandoned functions still running
	tel       instruments
}

// New returns a Timeout configured by cfg; cfg is copied. It panics with a
// *bulwark.ConfigError if cfg.Validate reports a bad value: a bad Config is
// a programming error.
func New(cfg Config) *Timeout {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	t := &Timeout{
		name:    cfg.Name,
		limit:   cfg.Timeout,
		abandon: cfg.Abandon,
		reuse:   cfg.ReuseContexts,
		header:  http.CanonicalHeaderKey(cfg.Header),
	}
	if t.limit == 0 {
		t.limit = DefaultTimeout
	}
	switch cfg.Header {
	case "":
		t.header = DefaultHeader
	case NoHeader:
		t.header = ""
	}
	t.cause = &TimeoutError{Limit: t.limit}
	t.causeCtx = newCause(t.cause)
	v := formatBudget(t.limit)
	t.budgetValue = []string{v}[:1:1]
	t.tel.init(t, cfg.MeterProvider)
	return t
}

// Close unregisters the Timeout's metric callbacks. It is safe to call more
// than once and concurrently; calls after the first return nil. The
// Timeout keeps working, unobserved.
func (t *Timeout) Close() error { return t.tel.close() }

// Do runs fn with a context that ends after Config.Timeout, or at ctx's
// own deadline if that comes first, and returns:
//
//   - nil when fn returns nil, even after the deadline: the work is done.
//   - a [*TimeoutError] (errors.Is ErrTimeout and context.DeadlineExceeded)
//     when this Timeout's time ran out: in the default, cooperative mode
//     when fn returns an error after the deadline (the TimeoutError wraps
//     it); with Config.Abandon at the deadline, without waiting for fn.
//   - the caller's error when ctx ended first, whatever the cause: in
//     cooperative mode fn's error if it already matches context.Cause(ctx),
//     else an error that matches both; with Config.Abandon
//     context.Cause(ctx) at once. A ctx already done returns its cause
//     without calling fn. Never ErrTimeout for the caller's own deadline.
//   - fn's error, unchanged, otherwise.
//
// In cooperative mode fn runs in the caller's goroutine, a panic in it
// goes on untouched (fn's context ending with it), and Do returns when fn
// does; fn's context ends when fn returns. With Config.ReuseContexts a
// later call may get the same context: fn must then neither use nor
// keep it once it has returned (see Config.ReuseContexts). With
// Config.Abandon see the package doc for what becomes of an abandoned
// fn, and of its panics.
//
// Do panics at once if ctx or fn is nil.
func (t *Timeout) Do(ctx context.Context, fn func(context.Context) error) error {
	if ctx == nil {
		panic("timeout: Timeout.Do called with a nil ctx")
	}
	if fn == nil {
		panic("timeout: Timeout.Do called with a nil fn")
	}
	if t.abandon {
		_, err := abandon(t, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	dl, ok := t.deadline(ctx)
	if !ok {
		err := fn(ctx)
		if err != nil && ctx.Err() != nil {
			return callerErr(ctx, err)
		}
		return err
	}
	if q := quiet(ctx); t.reuse || q {
		c := t.newCallCtx(ctx, dl, t.reuse, q)
		defer c.release() // on a panic in fn too
		return t.judge(ctx, c, fn(c))
	}
	actx, cancel := context.WithDeadlineCause(ctx, dl, t.cause)
	defer cancel() // on a panic in fn too: what fn started under actx stops
	return t.judge(ctx, actx, fn(actx))
}

// Call is [Timeout.Do] for a function that returns a value: it returns
// fn's value and the error Do would return. When Config.Abandon returns
// without waiting for fn, the value is T's zero value and fn's eventual
// result is discarded.
//
// Call panics at once if ctx, t or fn is nil.
func Call[T any](ctx context.Context, t *Timeout, fn func(context.Context) (T, error)) (T, error) {
	if ctx == nil {
		panic("timeout: Call called with a nil ctx")
	}
	if t == nil {
		panic("timeout: Call called with a nil *Timeout")
	}
	if fn == nil {
		panic("timeout: Call called with a nil fn")
	}
	return callReusing(ctx, t, fn, t.reuse)
}

// callReusing is Call, reusing contexts if reuse is set (Config.ReuseContexts;
// grpcx's server interceptor never does: a handler's code is not the
// caller's to vouch for).
func callReusing[T any](ctx context.Context, t *Timeout, fn func(context.Context) (T, error), reuse bool) (T, error) {
	if t.abandon {
		return abandon(t, ctx, fn)
	}
	if ctx.Err() != nil {
		var zero T
		return zero, context.Cause(ctx)
	}
	dl, ok := t.deadline(ctx)
	if !ok {
		v, err := fn(ctx)
		if err != nil && ctx.Err() != nil {
			return v, callerErr(ctx, err)
		}
		return v, err
	}
	if q := quiet(ctx); reuse || q {
		c := t.newCallCtx(ctx, dl, reuse, q)
		defer c.release() // on a panic in fn too
		v, err := fn(c)
		return v, t.judge(ctx, c, err)
	}
	actx, cancel := context.WithDeadlineCause(ctx, dl, t.cause)
	defer cancel() // on a panic in fn too: what fn started under actx stops
	v, err := fn(actx)
	return v, t.judge(ctx, actx, err)
}

// derive returns the context a call runs with: ctx itself, with a nil
// cancel, when ctx's own deadline comes no later than this Timeout's (the
// caller's deadline is then the one that counts, and deriving would only
// cost allocations); otherwise a child of ctx that ends after the limit,
// with t.cause as its cause.
func (t *Timeout) derive(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := t.deadline(ctx)
	if !ok {
		return ctx, nil
	}
	return context.WithDeadlineCause(ctx, dl, t.cause)
}

// deadline returns the deadline of a call made with ctx now, and whether
// a context must be derived for it: false when ctx's own deadline comes
// no later (the caller's deadline is then the one that counts).
func (t *Timeout) deadline(ctx context.Context) (time.Time, bool) {
	dl := clock.Real.Now().Add(t.limit)
	if cdl, ok := ctx.Deadline(); ok && !cdl.After(dl) {
		return cdl, false
	}
	return dl, true
}

// expired reports whether actx, a context derive made from ctx (with its
// own deadline), ended because this Timeout's time ran out, not because
// ctx ended. A deadline that has passed counts even when the context's
// timer has not fired yet, or when the context was cancelled since by its
// own cancel func: code that checks the deadline against the clock
// (grpc-go does) can fail with DeadlineExceeded first, and a stream's end
// (grpc.OnFinish) may cancel it before its error is judged.
func (t *Timeout) expired(ctx, actx context.Context) bool {
	if c, ok := actx.(*callCtx); ok {
		if c.Err() != nil && c.state.Load() == timedOut {
			return true
		}
	} else if actx.Err() != nil && context.Cause(actx) == error(t.cause) {
		return true
	}
	dl, ok := actx.Deadline()
	return ok && ctx.Err() == nil && !clock.Real.Now().Before(dl)
}

// judge maps the error of a call made with actx, derived from ctx with its
// own deadline: see Do. It counts the timeout.
func (t *Timeout) judge(ctx, actx context.Context, err error) error {
	return t.judgeOnce(ctx, actx, err, nil)
}

// judgeOnce is judge for a call that may report several errors (a
// stream): it counts the timeout only if seen is nil or was false.
func (t *Timeout) judgeOnce(ctx, actx context.Context, err error, seen *atomic.Bool) error {
	switch {
	case err == nil:
		return nil
	case t.expired(ctx, actx):
		if seen == nil || !seen.Swap(true) {
			t.timedOut(ctx, t.limit)
		}
		if err == error(t.cause) {
			return err
		}
		return &TimeoutError{Limit: t.limit, Err: err}
	case ctx.Err() != nil:
		return callerErr(ctx, err)
	}
	return err
}

// timedOut counts a timeout and tells the caller's span.
func (t *Timeout) timedOut(ctx context.Context, limit time.Duration) {
	t.timeouts.Add(1)
	t.tel.event(ctx, limit)
}

// The states of an abandonable call.
const (
	running uint32 = iota
	finished
	abandoned
)

// call is one abandonable call. Its goroutine and its caller race to move
// state out of running: the goroutine when fn returns or panics, the
// caller when it stops waiting. Whoever wins decides: the caller takes
// fn's result (or panic), or leaves without it.
type call[T any] struct {
	state    atomic.Uint32
	done     chan struct{}
	v        T
	err      error
	panicked bool
	pv       any
	stack    []byte
}

// start runs fn(ctx) in a goroutine of its own.
func (c *call[T]) start(t *Timeout, ctx context.Context, fn func(context.Context) (T, error)) {
	c.done = make(chan struct{})
	go c.run(t, ctx, fn)
}

// wait waits for fn to return, or for stop to close. It reports false if
// it left without fn: fn is then abandoned, and counted in the gauge
// until it returns.
func (c *call[T]) wait(t *Timeout, stop <-chan struct{}) bool {
	select {
	case <-c.done:
		return true
	case <-stop:
		t.abandoned.Add(1) // before the CAS, so the goroutine's -1 comes after it
		if c.state.CompareAndSwap(running, abandoned) {
			return false
		}
		t.abandoned.Add(-1)
		<-c.done // fn has just finished: its result wins
		return true
	}
}

// repanic re-raises, in the caller's goroutine, a panic of fn that the
// caller waited for: http.ErrAbortHandler as it is (net/http knows it), a
// runtime.Goexit as a Goexit, anything else as a *PanicError carrying
// fn's stack.
func (c *call[T]) repanic() {
	switch {
	case !c.panicked:
		return
	case c.pv == nil: // fn called runtime.Goexit
		runtime.Goexit()
	case c.pv == http.ErrAbortHandler:
		panic(c.pv)
	}
	panic(&PanicError{Value: c.pv, Stack: c.stack})
}

func (c *call[T]) run(t *Timeout, ctx context.Context, fn func(context.Context) (T, error)) {
	returned := false
	defer func() {
		if returned {
			return
		}
		if !c.state.CompareAndSwap(running, finished) {
			// Abandoned: nobody is left to take the panic. Not
			// recovering lets it go on with its own stack and end the
			// program, as a panic in any goroutine does.
			t.abandoned.Add(-1)
			return
		}
		c.panicked = true
		c.pv = recover() // nil for runtime.Goexit, which goes on
		if c.pv != nil {
			c.stack = debug.Stack()
		}
		close(c.done)
	}()
	v, err := fn(ctx)
	returned = true
	if !c.state.CompareAndSwap(running, finished) {
		t.abandoned.Add(-1) // abandoned: the result is discarded
		return
	}
	c.v, c.err = v, err
	close(c.done)
}

// abandon runs fn in a goroutine of its own and returns when it does or
// when actx ends, whichever comes first.
func abandon[T any](t *Timeout, ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if ctx.Err() != nil {
		return zero, context.Cause(ctx)
	}
	actx, cancel := t.derive(ctx)
	c := new(call[T])
	c.start(t, actx, fn)
	if !c.wait(t, actx.Done()) {
		err := context.Cause(ctx)
		if cancel != nil {
			if t.expired(ctx, actx) {
				t.timedOut(ctx, t.limit)
				err = &TimeoutError{Limit: t.limit}
			}
			cancel()
		}
		return zero, err
	}
	if c.panicked {
		if cancel != nil {
			cancel()
		}
		c.repanic()
	}
	err := c.err
	if cancel != nil {
		err = t.judge(ctx, actx, err)
		cancel()
	} else if err != nil && ctx.Err() != nil {
		err = callerErr(ctx, err)
	}
	return c.v, err
}

func init() {
	bridge.TimeoutDerive = func(t any, ctx context.Context) (context.Context, context.CancelFunc) {
		return t.(*Timeout).derive(ctx)
	}
	bridge.TimeoutCall = func(t any, ctx context.Context, fn func(context.Context) (any, error)) (any, error) {
		return callReusing(ctx, t.(*Timeout), fn, false)
	}
	bridge.TimeoutJudge = func(t any, ctx, actx context.Context, err error, seen *atomic.Bool) error {
		return t.(*Timeout).judgeOnce(ctx, actx, err, seen)
	}
}
