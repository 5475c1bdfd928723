package clock

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFakeTimersFireInOrderAtTheirDeadline(t *testing.T) {
	c := NewFake(time.Time{})
	start := c.Now()
	var order []time.Duration
	c.AfterFunc(3*time.Second, func() { order = append(order, c.Now().Sub(start)) })
	c.AfterFunc(1*time.Second, func() { order = append(order, c.Now().Sub(start)) })
	t2 := c.NewTimer(2 * time.Second)

	c.Advance(1500 * time.Millisecond)
	if len(order) != 1 || order[0] != time.Second {
		t.Fatalf("after 1.5s fired %v, want [1s]", order)
	}
	select {
	case <-t2.C():
		t.Fatal("2s timer fired early")
	default:
	}
	c.Advance(2 * time.Second)
	if len(order) != 2 || order[1] != 3*time.Second {
		t.Fatalf("fired %v, want [1s 3s]", order)
	}
	if got := <-t2.C(); got.Sub(start) != 2*time.Second {
		t.Fatalf("timer fired at %v, want 2s", got.Sub(start))
	}
	if c.Now().Sub(start) != 3500*time.Millisecond {
		t.Fatalf("now = %v", c.Now().Sub(start))
	}
}

func TestFakeStopAndReset(t *testing.T) {
	c := NewFake(time.Time{})
	var fired atomic.Int32
	tm := c.AfterFunc(time.Second, func() { fired.Add(1) })
	if !tm.Stop() {
		t.Fatal("Stop of active timer returned false")
	}
	if tm.Stop() {
		t.Fatal("second Stop returned true")
	}
	c.Advance(2 * time.Second)
	if fired.Load() != 0 {
		t.Fatal("stopped timer fired")
	}
	if tm.Reset(time.Second) {
		t.Fatal("Reset of stopped timer reported active")
	}
	c.Advance(999 * time.Millisecond)
	if fired.Load() != 0 {
		t.Fatal("reset timer fired early")
	}
	c.Advance(time.Millisecond)
	if fired.Load() != 1 {
		t.Fatal("reset timer did not fire")
	}
	if c.Timers() != 0 {
		t.Fatalf("Timers() = %d after all fired", c.Timers())
	}
}

func TestNanotimeMovesWithAdvance(t *testing.T) {
	c := NewFake(time.Time{})
	a := c.Nanotime()
	if a <= 0 {
		t.Fatalf("Nanotime = %d, want > 0", a)
	}
	c.Advance(42 * time.Millisecond)
	if d := c.Nanotime() - a; d != int64(42*time.Millisecond) {
		t.Fatalf("delta = %d", d)
	}
}

func TestSleepWithBlockUntil(t *testing.T) {
	c := NewFake(time.Time{})
	done := make(chan error)
	go func() { done <- Sleep(context.Background(), c, time.Minute) }()
	c.BlockUntil(1)
	c.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Fatalf("Sleep = %v", err)
	}
	if c.Timers() != 0 {
		t.Fatal("Sleep left a timer behind")
	}
}

func TestSleepCancelled(t *testing.T) {
	c := NewFake(time.Time{})
	cause := errors.New("stop")
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error)
	go func() { done <- Sleep(ctx, c, time.Hour) }()
	c.BlockUntil(1)
	cancel(cause)
	if err := <-done; !errors.Is(err, cause) {
		t.Fatalf("Sleep = %v, want cause", err)
	}
	if err := Sleep(ctx, c, 0); !errors.Is(err, cause) {
		t.Fatalf("Sleep on done ctx = %v", err)
	}
	if err := Sleep(context.Background(), c, 0); err != nil {
		t.Fatalf("Sleep(0) = %v", err)
	}
}

func TestRealClock(t *testing.T) {
	c := Or(nil)
	a := c.Nanotime()
	if b := c.Nanotime(); b < a {
		t.Fatal("real Nanotime went backwards")
	}
	tm := c.NewTimer(time.Hour)
	if !tm.Stop() {
		t.Fatal("Stop of fresh real timer returned false")
	}
	f := c.AfterFunc(time.Hour, func() {})
	if !f.Stop() || f.Reset(time.Hour) {
		t.Fatal("real AfterFunc Stop/Reset")
	}
	f.Stop()
	if c.Now().IsZero() {
		t.Fatal("zero Now")
	}
	fake := NewFake(time.Time{})
	if Or(fake) != Clock(fake) {
		t.Fatal("Or replaced a non-nil clock")
	}
}

// TestRealFollowsSynctest guards the reason Real reads time through
// package time: inside a bubble, Nanotime and timers follow fake time.
func TestRealFollowsSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := Real.Nanotime()
		if a <= 0 {
			t.Fatalf("Nanotime = %d in a bubble, want > 0 (callers use 0 as unset)", a)
		}
		time.Sleep(5 * time.Second) // fake time: returns at once
		if d := Real.Nanotime() - a; d != int64(5*time.Second) {
			t.Fatalf("Nanotime moved %v in a bubble's 5s, want exactly 5s", time.Duration(d))
		}
		tm := Real.NewTimer(time.Minute)
		defer tm.Stop()
		start := Real.Now()
		<-tm.C()
		if d := Real.Now().Sub(start); d != time.Minute {
			t.Fatalf("timer fired after %v of fake time, want 1m", d)
		}
	})
}
