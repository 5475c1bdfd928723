// Package clock is the time source of every bulwark package.
//
// Production code uses [Real], which reads time only through package time,
// so it follows a testing/synctest bubble's fake time. The project's own
// tests use synctest or [Fake], whose time moves only when the test calls
// [Fake.Advance], so state machines, windows, backoffs and TTLs are tested
// without sleeping.
//
// No exported identifier of any bulwark package has a type from this
// package: a Config reaches it through an unexported field that only the
// package's own tests set (see CONTRIBUTING.md, "Time").
//
// Hot paths read [Clock.Nanotime], a monotonic reading that does not read
// the wall clock.
package clock

import (
	"context"
	"time"
)

// Clock is a source of time and timers. Implementations are safe for
// concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Nanotime returns monotonic nanoseconds since an arbitrary, fixed
	// origin. Only differences between two readings are meaningful.
	Nanotime() int64
	// NewTimer returns a timer that sends on its channel once d has
	// elapsed.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine once d has elapsed (the fake
	// clock calls it synchronously from Advance).
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is the subset of [time.Timer] that bulwark uses.
type Timer interface {
	// C returns the channel the timer fires on; nil for AfterFunc timers.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was
	// stopped before firing.
	Stop() bool
	// Reset changes the timer to fire after d; it reports whether the
	// timer was active.
	Reset(d time.Duration) bool
}

// Or returns c, or [Real] when c is nil. Every Config that takes a clock
// resolves it with Or, so nil always means the real clock.
func Or(c Clock) Clock {
	if c == nil {
		return Real
	}
	return c
}

// Sleep waits for d on c, or until ctx is done; it returns ctx's error
// (context.Cause) in the latter case. A d of zero or less returns at once
// (after checking ctx).
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	if d <= 0 {
		return nil
	}
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
