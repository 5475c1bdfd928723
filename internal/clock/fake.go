package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a manual clock for tests. Time starts at the instant given to
// [NewFake] and moves only through [Fake.Advance] and [Fake.Set]; timers
// whose deadline is reached fire during that call, in deadline order.
// AfterFunc callbacks run synchronously in the goroutine that advances the
// clock, outside the clock's lock, so a callback may use the clock.
//
// A Fake is safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	origin  time.Time
	timers  []*fakeTimer
	seq     uint64
	waiters []waiter
}

type waiter struct {
	n  int
	ch chan struct{}
}

// NewFake returns a Fake clock set to start. A zero start means
// 2026-01-01T00:00:00Z, so tests print stable times.
func NewFake(start time.Time) *Fake {
	if start.IsZero() {
		start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return &Fake{now: start, origin: start}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Nanotime returns the nanoseconds elapsed since the clock's start, plus
// one hour, so that zero is never a valid reading.
func (f *Fake) Nanotime() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(f.now.Sub(f.origin)) + int64(time.Hour)
}

// NewTimer returns a timer that fires when the clock has been advanced by d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{clock: f, ch: make(chan time.Time, 1)}
	f.schedule(t, d)
	return t
}

// AfterFunc returns a timer that calls fn from Advance once the clock has
// been advanced by d.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{clock: f, fn: fn}
	f.schedule(t, d)
	return t
}

// Advance moves the clock forward by d, firing every timer that comes due,
// each at its own deadline, in order.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	target := f.now.Add(d)
	f.mu.Unlock()
	f.advanceTo(target)
}

// Set moves the clock to t (never backwards), firing timers that come due.
func (f *Fake) Set(t time.Time) { f.advanceTo(t) }

// Timers returns the number of active timers. Tests use it, with
// [Fake.BlockUntil], to know that the code under test is waiting.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// BlockUntil blocks until at least n timers are active. A test calls it
// before Advance to be sure that a goroutine under test has started to
// wait; this replaces sleeping in the test.
func (f *Fake) BlockUntil(n int) {
	f.mu.Lock()
	if len(f.timers) >= n {
		f.mu.Unlock()
		return
	}
	w := waiter{n: n, ch: make(chan struct{})}
	f.waiters = append(f.waiters, w)
	f.mu.Unlock()
	<-w.ch
}

func (f *Fake) advanceTo(target time.Time) {
	for {
		f.mu.Lock()
		if len(f.timers) == 0 || f.timers[0].when.After(target) {
			if target.After(f.now) {
				f.now = target
			}
			f.mu.Unlock()
			return
		}
		t := f.timers[0]
		f.timers = f.timers[1:]
		t.active = false
		if t.when.After(f.now) {
			f.now = t.when
		}
		now := f.now
		f.mu.Unlock()
		if t.fn != nil {
			t.fn()
		} else {
			select {
			case t.ch <- now:
			default:
			}
		}
	}
}

// schedule adds t to the queue; the caller must not hold f.mu.
func (f *Fake) schedule(t *fakeTimer, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scheduleLocked(t, d)
}

func (f *Fake) scheduleLocked(t *fakeTimer, d time.Duration) {
	if d < 0 {
		d = 0
	}
	f.seq++
	t.when = f.now.Add(d)
	t.seq = f.seq
	t.active = true
	f.timers = append(f.timers, t)
	sort.SliceStable(f.timers, func(i, j int) bool {
		a, b := f.timers[i], f.timers[j]
		if a.when.Equal(b.when) {
			return a.seq < b.seq
		}
		return a.when.Before(b.when)
	})
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if len(f.timers) >= w.n {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	f.waiters = kept
}

func (f *Fake) removeLocked(t *fakeTimer) bool {
	if !t.active {
		return false
	}
	for i, x := range f.timers {
		if x == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			break
		}
	}
	t.active = false
	return true
}

type fakeTimer struct {
	clock  *Fake
	ch     chan time.Time
	fn     func()
	when   time.Time
	seq    uint64
	active bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	return t.clock.removeLocked(t)
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.clock.removeLocked(t)
	t.clock.scheduleLocked(t, d)
	return was
}
