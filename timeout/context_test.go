package timeout_test

// The context Do and Call give fn: made lazily (default mode under a
// caller's context that cannot be cancelled) or pooled
// (Config.ReuseContexts). These tests hold it to what context's own
// contexts do, and pin the reuse contract and the default's safety.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/timeout"
)

type ctxKey struct{}

// ctxModes are the ways Do derives fn's context: the default under a
// caller's context that cannot be cancelled (lazily made, never reused),
// the default under one that can (context.WithDeadlineCause), and
// ReuseContexts under each.
var ctxModes = []struct {
	name        string
	reuse       bool
	cancellable bool
}{
	{"default", false, false},
	{"default-cancellable", false, true},
	{"reuse", true, false},
	{"reuse-cancellable", true, true},
}

// parentFor returns the caller's context of a mode, with a Value, and its
// cancel func (a no-op for the context that cannot be cancelled).
func parentFor(cancellable bool) (context.Context, context.CancelCauseFunc) {
	ctx := context.WithValue(context.Background(), ctxKey{}, "request-1")
	if !cancellable {
		return ctx, func(error) {}
	}
	return context.WithCancelCause(ctx)
}

// TestFnContextBehavesAsAContext: before the deadline fn's context is
// live, with the deadline of the limit and the caller's Values; at the
// deadline it ends with DeadlineExceeded and context.Cause a
// *TimeoutError, seen by a fn that only polls Err as by one that waits on
// Done, and Do returns a *TimeoutError.
func TestFnContextBehavesAsAContext(t *testing.T) {
	for _, m := range ctxModes {
		for _, wait := range []string{"done", "err"} {
			t.Run(m.name+"/"+wait, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					to := newT(t, timeout.Config{Timeout: 10 * time.Millisecond, ReuseContexts: m.reuse})
					parent, cancel := parentFor(m.cancellable)
					defer cancel(nil)
					start := time.Now()
					err := to.Do(parent, func(ctx context.Context) error {
						if dl, ok := ctx.Deadline(); !ok || !dl.Equal(start.Add(10*time.Millisecond)) {
							t.Errorf("Deadline() = %v, %v, want start+10ms", dl, ok)
						}
						if ctx.Err() != nil || context.Cause(ctx) != nil {
							t.Errorf("live ctx: Err %v, Cause %v", ctx.Err(), context.Cause(ctx))
						}
						if v := ctx.Value(ctxKey{}); v != "request-1" {
							t.Errorf("Value = %v, want the caller's", v)
						}
						if wait == "done" {
							<-ctx.Done()
						} else {
							for ctx.Err() == nil {
								time.Sleep(time.Millisecond)
							}
							select {
							case <-ctx.Done():
							default:
								t.Error("Err is set but Done is not closed")
							}
						}
						// context's own timer runs in a goroutine of its own, which
						// a poller waking at the same instant may beat by one poll;
						// the lazy context ends at the poll that finds the deadline.
						want := 10 * time.Millisecond
						if d := time.Since(start); d != want && (m.reuse || !m.cancellable || wait == "done" || d != want+time.Millisecond) {
							t.Errorf("ended after %v, want %v", d, want)
						}
						if ctx.Err() != context.DeadlineExceeded {
							t.Errorf("Err = %v, want context.DeadlineExceeded", ctx.Err())
						}
						var te *timeout.TimeoutError
						if !errors.As(context.Cause(ctx), &te) || te.Limit != 10*time.Millisecond {
							t.Errorf("Cause = %v, want the *TimeoutError", context.Cause(ctx))
						}
						if v := ctx.Value(ctxKey{}); v != "request-1" {
							t.Errorf("Value after the deadline = %v, want the caller's", v)
						}
						return ctx.Err()
					})
					isOurs(t, err, 10*time.Millisecond)
				})
			})
		}
	}
}

// TestFnContextEndsWithTheCaller: the caller's cancellation ends fn's
// context with the caller's cause, and Do returns the caller's error.
func TestFnContextEndsWithTheCaller(t *testing.T) {
	for _, m := range ctxModes {
		if !m.cancellable {
			continue
		}
		for _, wait := range []string{"done", "err"} {
			t.Run(m.name+"/"+wait, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					to := newT(t, timeout.Config{Timeout: 10 * time.Millisecond, ReuseContexts: m.reuse})
					parent, cancel := parentFor(true)
					gone := errors.New("client went away")
					time.AfterFunc(4*time.Millisecond, func() { cancel(gone) })
					start := time.Now()
					err := to.Do(parent, func(ctx context.Context) error {
						if wait == "done" {
							<-ctx.Done()
						} else {
							for ctx.Err() == nil {
								time.Sleep(time.Millisecond)
							}
						}
						// The caller's cancel runs in a timer goroutine, which a
						// poller waking at the same instant may beat by one poll.
						if d := time.Since(start); d != 4*time.Millisecond && (wait == "done" || d != 5*time.Millisecond) {
							t.Errorf("ended after %v, want 4ms", d)
						}
						if ctx.Err() != context.Canceled || context.Cause(ctx) != gone {
							t.Errorf("Err %v, Cause %v, want Canceled and the caller's cause", ctx.Err(), context.Cause(ctx))
						}
						return ctx.Err()
					})
					notOurs(t, err)
					if !errors.Is(err, gone) {
						t.Fatalf("Do = %v, want the caller's cause", err)
					}
				})
			})
		}
	}
}

// TestFnContextChildren: contexts fn derives, and functions it registers
// with context.AfterFunc, end with fn's context, cause included; a
// stopped registration does not run.
func TestFnContextChildren(t *testing.T) {
	for _, m := range ctxModes {
		t.Run(m.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				to := newT(t, timeout.Config{Timeout: 10 * time.Millisecond, ReuseContexts: m.reuse})
				parent, cancel := parentFor(m.cancellable)
				defer cancel(nil)
				ran, stoppedRan := make(chan struct{}), false
				_ = to.Do(parent, func(ctx context.Context) error {
					child, cancelChild := context.WithCancel(ctx)
					defer cancelChild()
					valued := context.WithValue(ctx, ctxKey{}, "inner")
					grandchild, cancelGrand := context.WithTimeout(valued, time.Hour)
					defer cancelGrand()
					context.AfterFunc(ctx, func() { close(ran) })
					stop := context.AfterFunc(ctx, func() { stoppedRan = true })
					if !stop() {
						t.Error("stop() = false on a live context")
					}
					for _, c := range []context.Context{child, grandchild} {
						<-c.Done() // a child of a custom context ends in a goroutine of its own
						var te *timeout.TimeoutError
						if c.Err() != context.DeadlineExceeded || !errors.As(context.Cause(c), &te) {
							t.Errorf("child: Err %v, Cause %v, want DeadlineExceeded and the *TimeoutError", c.Err(), context.Cause(c))
						}
					}
					if v := grandchild.Value(ctxKey{}); v != "inner" {
						t.Errorf("grandchild Value = %v", v)
					}
					<-ran
					return ctx.Err()
				})
				synctest.Wait()
				if stoppedRan {
					t.Fatal("a stopped AfterFunc ran")
				}
			})
		})
	}
}

// TestFnContextEndsWhenFnReturns: Do ends fn's context when fn returns, in
// every mode: a goroutine fn left waiting on Done, a child context and an
// AfterFunc are released then, with context.Canceled.
func TestFnContextEndsWhenFnReturns(t *testing.T) {
	for _, m := range ctxModes {
		t.Run(m.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				to := newT(t, timeout.Config{Timeout: time.Hour, ReuseContexts: m.reuse})
				parent, cancel := parentFor(m.cancellable)
				defer cancel(nil)
				released := make(chan error, 1)
				afterRan := make(chan struct{})
				var child context.Context
				var cancelChild context.CancelFunc
				if err := to.Do(parent, func(ctx context.Context) error {
					go func() { <-ctx.Done(); released <- context.Cause(ctx) }()
					child, cancelChild = context.WithCancel(ctx) // cancelled below, after fn's context ended it
					context.AfterFunc(ctx, func() { close(afterRan) })
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				select {
				case err := <-released:
					// With ReuseContexts too: a watched context is never
					// reused, so what waits on it reads it cancelled.
					if err != context.Canceled {
						t.Errorf("Cause seen by the goroutine = %v, want context.Canceled", err)
					}
				default:
					t.Fatal("a goroutine waiting on fn's context was not released when fn returned")
				}
				<-afterRan
				defer cancelChild()
				if child.Err() != context.Canceled || context.Cause(child) != context.Canceled {
					t.Fatalf("child: Err %v, Cause %v, want Canceled", child.Err(), context.Cause(child))
				}
			})
		})
	}
}

// TestDefaultRetainedContextStaysCancelled: the default's safety. A
// context kept past Do, by a goroutine or a logger, stays cancelled with
// Canceled as its cause and keeps the caller's Values and deadline,
// however many calls come after it (none of them gets it back).
func TestDefaultRetainedContextStaysCancelled(t *testing.T) {
	for _, cancellable := range []bool{false, true} {
		to := newT(t, timeout.Config{Timeout: time.Hour})
		parent, cancel := parentFor(cancellable)
		var kept context.Context
		_ = to.Do(parent, func(ctx context.Context) error { kept = ctx; return nil })
		dl, _ := kept.Deadline()
		for i := range 100 {
			other := context.WithValue(context.Background(), ctxKey{}, "request-2")
			_ = to.Do(other, func(ctx context.Context) error {
				if ctx == kept {
					t.Fatalf("call %d got the retained context back", i)
				}
				_ = ctx.Done() // arm its timer: nothing of it may reach kept
				return nil
			})
		}
		cancel(errors.New("later"))
		if kept.Err() != context.Canceled || context.Cause(kept) != context.Canceled {
			t.Fatalf("retained ctx: Err %v, Cause %v, want Canceled", kept.Err(), context.Cause(kept))
		}
		if v := kept.Value(ctxKey{}); v != "request-1" {
			t.Fatalf("retained ctx Value = %v, want the original call's", v)
		}
		if dl2, ok := kept.Deadline(); !ok || !dl2.Equal(dl) {
			t.Fatalf("retained ctx Deadline = %v, %v, want %v", dl2, ok, dl)
		}
		select {
		case <-kept.Done():
		default:
			t.Fatal("retained ctx: Done not closed")
		}
	}
}

// TestReuseReleasedContextReadsAsCancelled: with ReuseContexts, a context
// used after its call has returned (the contract's breach) reads as
// cancelled, with no deadline and no Values, until a later call reuses
// it.
func TestReuseReleasedContextReadsAsCancelled(t *testing.T) {
	to := newT(t, timeout.Config{Timeout: time.Hour, ReuseContexts: true})
	parent, _ := parentFor(false)
	var kept context.Context
	_ = to.Do(parent, func(ctx context.Context) error { kept = ctx; return nil })
	if kept.Err() != context.Canceled || context.Cause(kept) != context.Canceled {
		t.Fatalf("released ctx: Err %v, Cause %v, want Canceled", kept.Err(), context.Cause(kept))
	}
	if v := kept.Value(ctxKey{}); v != nil {
		t.Fatalf("released ctx Value = %v, want nil", v)
	}
	if _, ok := kept.Deadline(); ok {
		t.Fatal("released ctx has a deadline")
	}
	select {
	case <-kept.Done():
	default:
		t.Fatal("released ctx: Done not closed")
	}
}

// TestReuseContextsAreReused: ReuseContexts does reuse (this is what
// makes it allocation-free, and what its contract is about), and the
// reused context carries the new call's deadline and Values, live.
func TestReuseContextsAreReused(t *testing.T) {
	to := newT(t, timeout.Config{Timeout: time.Hour, ReuseContexts: true})
	seen := map[context.Context]bool{}
	reused := false
	for i := range 100 {
		parent := context.WithValue(context.Background(), ctxKey{}, i)
		_ = to.Do(parent, func(ctx context.Context) error {
			if seen[ctx] {
				reused = true
			}
			seen[ctx] = true
			if ctx.Err() != nil || ctx.Value(ctxKey{}) != i {
				t.Fatalf("call %d: Err %v, Value %v", i, ctx.Err(), ctx.Value(ctxKey{}))
			}
			<-time.After(0) // let the pool's per-P cache be the same one
			return nil
		})
	}
	if !reused {
		t.Fatal("100 calls with ReuseContexts never reused a context")
	}
}

// TestReuseWatchedContextIsNotReused: a context that fn watched (called
// Done, or derived a context from, which registers with it) is never
// reused: whatever waits on it is woken when fn returns and may read it
// after (context's own child propagation reads Err and Cause then, and
// panics on a nil Err), so it must stay cancelled.
func TestReuseWatchedContextIsNotReused(t *testing.T) {
	to := newT(t, timeout.Config{Timeout: time.Hour, ReuseContexts: true})
	for _, watch := range []func(context.Context){
		func(ctx context.Context) { _ = ctx.Done() },
		func(ctx context.Context) {
			_, cancel := context.WithCancel(context.WithValue(ctx, ctxKey{}, 1)) // a goroutine watches ctx
			cancel()
		},
		func(ctx context.Context) { context.AfterFunc(ctx, func() {})() },
	} {
		var watched context.Context
		parent := context.WithValue(context.Background(), ctxKey{}, "watched")
		_ = to.Do(parent, func(ctx context.Context) error { watched = ctx; watch(ctx); return nil })
		for range 100 {
			_ = to.Do(context.Background(), func(ctx context.Context) error {
				if ctx == watched {
					t.Fatal("a watched context was reused")
				}
				return nil
			})
		}
		if watched.Err() != context.Canceled || context.Cause(watched) != context.Canceled || watched.Value(ctxKey{}) != "watched" {
			t.Fatalf("watched context: Err %v, Cause %v, Value %v, want Canceled and its own Values",
				watched.Err(), context.Cause(watched), watched.Value(ctxKey{}))
		}
	}
}

// TestReuseCannotTellWhichCameFirst pins the documented limit of
// ReuseContexts under a cancellable caller: when neither the deadline nor
// the caller's cancellation was watched (fn never called Done or Err),
// Do returns the caller's error, even if the deadline came first; the
// default, which arms a timer, reports the timeout.
func TestReuseCannotTellWhichCameFirst(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			to := newT(t, timeout.Config{Timeout: 10 * time.Millisecond, ReuseContexts: reuse})
			parent, cancel := parentFor(true)
			err := to.Do(parent, func(ctx context.Context) error {
				time.Sleep(15 * time.Millisecond) // the deadline passes
				cancel(errors.New("later"))
				time.Sleep(5 * time.Millisecond)
				return errors.New("fn failed")
			})
			var te *timeout.TimeoutError
			if got := errors.As(err, &te); got == reuse {
				t.Fatalf("ReuseContexts %v: Do = %v, TimeoutError %v", reuse, err, got)
			}
		})
	}
}

// TestReuseConcurrentCallsRace: many goroutines, contexts reused across
// them, some calls timing out while watching Done, some polling Err, some
// returning at once, under -race.
func TestReuseConcurrentCallsRace(t *testing.T) {
	to := newT(t, timeout.Config{Timeout: time.Millisecond, ReuseContexts: true})
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 100 {
				p := context.Background()
				if (g+i)%2 == 0 {
					p = parent
				}
				err := to.Do(p, func(ctx context.Context) error {
					switch i % 3 {
					case 0:
						<-ctx.Done()
						return ctx.Err()
					case 1:
						c, cc := context.WithCancel(ctx)
						defer cc()
						_ = c.Err()
						return ctx.Err()
					}
					return nil
				})
				if i%3 == 0 && !errors.Is(err, timeout.ErrTimeout) {
					t.Errorf("call waiting for its deadline: %v", err)
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
}

// rtFunc is a layer under the RoundTripper (a real net/http transport
// below it), for tests that look at or misuse what it is sent.
type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestRoundTripperSharesNothingWritable: the request RoundTripper sends
// has a header map of its own, and the caller's value slices it shares
// are capped, so a layer below that appends to one (against net/http's
// contract, but it happens) copies it instead of writing into the
// caller's spare capacity; the budget's value, shared by every request
// sent for the whole limit, is capped too.
func TestRoundTripperSharesNothingWritable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		got := make(chan http.Header, 1)
		tr := bubbleServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- r.Header.Clone()
		}))
		to := newT(t, timeout.Config{Timeout: time.Second})
		sloppy := rtFunc(func(r *http.Request) (*http.Response, error) {
			r.Header["Accept"] = append(r.Header["Accept"], "text/html")
			r.Header[timeout.DefaultHeader] = append(r.Header[timeout.DefaultHeader], "1")
			return tr.RoundTrip(r)
		})
		rt := to.RoundTripper(sloppy)
		for i := range 2 {
			req := httpGet(t)
			accept := make([]string, 1, 4)
			accept[0] = "text/plain"
			req.Header["Accept"] = accept
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(resp)
			h := <-got
			if v := h.Values(timeout.DefaultHeader); fmt.Sprint(v) != "[1000 1]" {
				t.Fatalf("request %d: budget sent %v, want [1000 1] (the layer's append on a fresh copy)", i, v)
			}
			if spare := accept[:2][1]; spare != "" || len(req.Header) != 1 || len(req.Header["Accept"]) != 1 {
				t.Fatalf("request %d: the caller's header was written: %v, spare capacity %q", i, req.Header, spare)
			}
		}
	})
}

// TestRoundTripperRetainedContextStaysCancelled: the context of an
// attempt, which net/http may keep after the body is closed, stays
// cancelled with the caller's Values; no later attempt gets it.
func TestRoundTripperRetainedContextStaysCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := bubbleServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}))
		to := newT(t, timeout.Config{Timeout: time.Second})
		seen := map[context.Context]bool{}
		var first context.Context
		rt := to.RoundTripper(rtFunc(func(r *http.Request) (*http.Response, error) {
			if seen[r.Context()] {
				t.Error("an attempt got a context another attempt had")
			}
			seen[r.Context()] = true
			if first == nil {
				first = r.Context()
			}
			return tr.RoundTrip(r)
		}))
		var cancels []context.CancelCauseFunc
		for i := range 20 {
			parent := context.WithValue(context.Background(), ctxKey{}, i)
			if i%2 == 0 { // half of them under a caller that can cancel
				var cancel context.CancelCauseFunc
				parent, cancel = context.WithCancelCause(parent)
				cancels = append(cancels, cancel)
			}
			req := httpGet(t).WithContext(parent)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(resp)
		}
		for _, cancel := range cancels { // the callers end later: the attempt had ended first
			cancel(errors.New("later"))
		}
		if first.Err() != context.Canceled || context.Cause(first) != context.Canceled || first.Value(ctxKey{}) != 0 {
			t.Fatalf("retained attempt ctx: Err %v, Cause %v, Value %v", first.Err(), context.Cause(first), first.Value(ctxKey{}))
		}
	})
}

// TestRoundTripperCallerCancelledAfterTheDeadlineIsATimeout: under a
// caller's context that can be cancelled, the attempt's context watches
// it from the start, so when the deadline comes first and the caller
// gives up later, the attempt still reports the timeout, as context's own
// contexts would, even through a layer that never looks at the context.
func TestRoundTripperCallerCancelledAfterTheDeadlineIsATimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := newT(t, timeout.Config{Timeout: 10 * time.Millisecond})
		parent, cancel := context.WithCancelCause(context.Background())
		rt := to.RoundTripper(rtFunc(func(r *http.Request) (*http.Response, error) {
			time.Sleep(15 * time.Millisecond) // ignores its context
			cancel(errors.New("later"))
			time.Sleep(time.Millisecond)
			return nil, errors.New("transport failed")
		}))
		_, err := rt.RoundTrip(httpGet(t).WithContext(parent))
		isOurs(t, err, 10*time.Millisecond)
	})
}

// TestRoundTripperAllocations pins the figure the package doc states: an
// attempt over a transport that watches the request's context (as
// net/http's does) costs 7 allocations, 5 without the header, 2 more
// under a caller's context that can be cancelled.
func TestRoundTripperAllocations(t *testing.T) {
	resp := &http.Response{StatusCode: 200, Body: http.NoBody}
	next := rtFunc(func(r *http.Request) (*http.Response, error) {
		_ = r.Context().Done()
		return resp, nil
	})
	bg := context.Background()
	cc, cancel := context.WithCancel(bg)
	defer cancel()
	for _, c := range []struct {
		name   string
		header string
		ctx    context.Context
		want   float64
	}{
		{"header", "", bg, 7},
		{"no header", timeout.NoHeader, bg, 5},
		{"cancellable", "", cc, 9},
	} {
		to := newT(t, timeout.Config{Timeout: time.Hour, Header: c.header})
		rt := to.RoundTripper(next)
		req, _ := http.NewRequestWithContext(c.ctx, http.MethodGet, "http://backend.test/", nil)
		req.Header.Set("Accept", "text/plain")
		a := testing.AllocsPerRun(1000, func() {
			r, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
		})
		if a != c.want {
			t.Errorf("%s: %v allocs, want %v", c.name, a, c.want)
		}
	}
}

// TestNestedRoundTrippers: the client stack's shape, a total timeout over
// an attempt timeout under a caller's context that cannot be cancelled.
// The attempt's context is made under the total's without arming it (the
// pair costs 2 allocations more than the attempt alone: the total's own
// context and request, no timer or registration), and it still ends when
// the total's does.
func TestNestedRoundTrippers(t *testing.T) {
	t.Run("allocations", func(t *testing.T) {
		resp := &http.Response{StatusCode: 200, Body: http.NoBody}
		next := rtFunc(func(r *http.Request) (*http.Response, error) {
			_ = r.Context().Done() // watched, as net/http's transport does
			return resp, nil
		})
		total := newT(t, timeout.Config{Timeout: time.Hour, Header: timeout.NoHeader})
		attempt := newT(t, timeout.Config{Timeout: time.Minute})
		rt := total.RoundTripper(attempt.RoundTripper(next))
		req, _ := http.NewRequest(http.MethodGet, "http://backend.test/", nil)
		a := testing.AllocsPerRun(1000, func() {
			r, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
		})
		if a != 7+2 {
			t.Errorf("%v allocs, want 9 (the attempt's 7, the total's 2)", a)
		}
	})
	t.Run("the attempt's deadline came first", func(t *testing.T) {
		// Both deadlines have passed before anything looked: the
		// attempt's came first, and the attempt's context says so.
		synctest.Test(t, func(t *testing.T) {
			total := newT(t, timeout.Config{Timeout: 2 * time.Second, Header: timeout.NoHeader})
			attempt := newT(t, timeout.Config{Timeout: time.Second})
			var seen context.Context
			rt := total.RoundTripper(attempt.RoundTripper(rtFunc(func(r *http.Request) (*http.Response, error) {
				time.Sleep(3 * time.Second) // a transport that never looks at the context
				seen = r.Context()
				return nil, errors.New("connection reset")
			})))
			req, _ := http.NewRequest(http.MethodGet, "http://backend.test/", nil)
			_, err := rt.RoundTrip(req)
			// The total's time has run out too by the time the call
			// returns: its layer reports its own timeout.
			isOurs(t, err, 2*time.Second)
			var te *timeout.TimeoutError
			if seen.Err() != context.DeadlineExceeded || !errors.As(context.Cause(seen), &te) || te.Limit != time.Second {
				t.Fatalf("attempt's context: Err %v, Cause %v, want the attempt's 1s timeout", seen.Err(), context.Cause(seen))
			}
		})
	})
	t.Run("the total's call returns first", func(t *testing.T) {
		// The attempt outlives the total's call (a hedged attempt left
		// behind does): whatever watches the attempt's context is
		// released when the total's call ends, with Canceled.
		synctest.Test(t, func(t *testing.T) {
			to := newT(t, timeout.Config{Timeout: time.Hour})
			attempt := newT(t, timeout.Config{Timeout: time.Minute})
			released := make(chan error, 1)
			rt := attempt.RoundTripper(rtFunc(func(r *http.Request) (*http.Response, error) {
				ctx := r.Context()
				go func() { <-ctx.Done(); released <- ctx.Err() }()
				return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
			}))
			if err := to.Do(context.Background(), func(ctx context.Context) error {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://backend.test/", nil)
				_, err := rt.RoundTrip(req) // the body is left open
				return err
			}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			select {
			case err := <-released:
				if err != context.Canceled {
					t.Fatalf("attempt's context ended with %v, want Canceled", err)
				}
			default:
				t.Fatal("the attempt's context outlived the call it was made under")
			}
		})
	})
	t.Run("the total's deadline", func(t *testing.T) {
		// The attempt's limit is longer than the time the total has
		// left: the total's deadline is the one that counts, and the
		// error is the total's.
		synctest.Test(t, func(t *testing.T) {
			total := newT(t, timeout.Config{Timeout: time.Second, Header: timeout.NoHeader})
			attempt := newT(t, timeout.Config{Timeout: time.Minute})
			rt := total.RoundTripper(attempt.RoundTripper(rtFunc(func(r *http.Request) (*http.Response, error) {
				<-r.Context().Done()
				return nil, r.Context().Err()
			})))
			req, _ := http.NewRequest(http.MethodGet, "http://backend.test/", nil)
			start := time.Now()
			_, err := rt.RoundTrip(req)
			isOurs(t, err, time.Second)
			if d := time.Since(start); d != time.Second {
				t.Fatalf("ended after %v, want 1s", d)
			}
		})
	})
}

// TestReleaseEndsChildrenAtOnce: when fn returns, the contexts fn derived
// with context.WithCancel have ended by the time Do returns, without a
// goroutine: net/http's transport derives one from every request's
// context, and a goroutine per request to cancel it would cost more
// than the rest of the layer.
func TestReleaseEndsChildrenAtOnce(t *testing.T) {
	to := newT(t, timeout.Config{Timeout: time.Hour})
	var child context.Context
	if err := to.Do(context.Background(), func(ctx context.Context) error {
		var cancel context.CancelFunc
		child, cancel = context.WithCancel(ctx)
		_ = cancel // ended by Do, not by us
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if child.Err() != context.Canceled {
		t.Fatalf("child's Err right after Do = %v, want Canceled", child.Err())
	}
}
