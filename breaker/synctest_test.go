package breaker_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/breaker"
)

// These tests drive every timed behaviour through the public API inside
// testing/synctest bubbles: what a user who tests their own code with
// synctest gets. time.Sleep moves the bubble's fake clock; nothing waits in
// real time.

var errDown = errors.New("dependency down")

func fail(ctx context.Context) error { return errDown }
func ok(ctx context.Context) error   { return nil }

func mustState(t *testing.T, b *breaker.Breaker, want breaker.State) {
	t.Helper()
	if got := b.State(); got != want {
		t.Fatalf("state %v, want %v", got, want)
	}
}

func retryAfter(t *testing.T, b *breaker.Breaker) time.Duration {
	t.Helper()
	err := b.Do(context.Background(), ok)
	var oe *breaker.OpenError
	if !errors.As(err, &oe) {
		t.Fatalf("Do = %v, want a rejection", err)
	}
	return oe.RetryAfter()
}

func TestSynctestOpenPeriodAndGrowth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.Config{ConsecutiveFailures: 1, OpenDuration: 2 * time.Second,
			OpenDurationGrowth: 3, MaxOpenDuration: 10 * time.Second, OpenJitter: -1})
		defer b.Close()
		ctx := context.Background()
		_ = b.Do(ctx, fail)
		mustState(t, b, breaker.Open)
		if d := retryAfter(t, b); d != 2*time.Second {
			t.Fatalf("first trip: RetryAfter %v, want 2s", d)
		}
		time.Sleep(2*time.Second - time.Nanosecond)
		mustState(t, b, breaker.Open)
		time.Sleep(time.Nanosecond)
		mustState(t, b, breaker.HalfOpen)
		_ = b.Do(ctx, fail) // the probe fails: a repeated trip grows the period
		if d := retryAfter(t, b); d != 6*time.Second {
			t.Fatalf("second trip: RetryAfter %v, want 6s", d)
		}
		time.Sleep(6 * time.Second)
		_ = b.Do(ctx, fail)
		if d := retryAfter(t, b); d != 10*time.Second {
			t.Fatalf("third trip: RetryAfter %v, want the 10s cap", d)
		}
		time.Sleep(10 * time.Second)
		if err := b.Do(ctx, ok); err != nil { // a good probe closes...
			t.Fatal(err)
		}
		mustState(t, b, breaker.Closed)
		_ = b.Do(ctx, fail) // ...and the next trip starts from the base again
		if d := retryAfter(t, b); d != 2*time.Second {
			t.Fatalf("trip after closing: RetryAfter %v, want 2s", d)
		}
	})
}

func TestSynctestJitterShortensWithinBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.Config{ConsecutiveFailures: 1, OpenDuration: 10 * time.Second, OpenJitter: 0.5})
		defer b.Close()
		seen := map[time.Duration]bool{}
		for range 50 {
			b.Reset()
			_ = b.Do(context.Background(), fail)
			d := retryAfter(t, b)
			if d < 5*time.Second || d > 10*time.Second {
				t.Fatalf("jittered open duration %v outside [5s, 10s]", d)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Fatalf("only %d distinct open durations in 50 trips: no jitter?", len(seen))
		}
	})
}

func TestSynctestHalfOpenMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.Config{ConsecutiveFailures: 1, HalfOpenProbes: 1, OpenDuration: time.Second,
			OpenDurationGrowth: 1, OpenJitter: -1, HalfOpenMaxWait: 10 * time.Second})
		defer b.Close()
		_ = b.Do(context.Background(), fail)
		time.Sleep(time.Second)
		lost, err := b.Allow() // a probe that never reports
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(9 * time.Second)
		err = b.Do(context.Background(), ok)
		var oe *breaker.OpenError
		if !errors.As(err, &oe) || !errors.Is(err, breaker.ErrHalfOpenFull) || oe.RetryAfter() != time.Second {
			t.Fatalf("Do = %v, want ErrHalfOpenFull suggesting 1s", err)
		}
		mustState(t, b, breaker.HalfOpen)
		time.Sleep(time.Second)
		mustState(t, b, breaker.Open) // the lost probe's slot is reclaimed by reopening
		b.Done(lost, nil)             // late: a different generation, ignored
		mustState(t, b, breaker.Open)
		time.Sleep(time.Second)
		if err := b.Do(context.Background(), ok); err != nil {
			t.Fatal(err)
		}
		mustState(t, b, breaker.Closed)
	})
}

func TestSynctestTimeWindowForgetsOldCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.Config{WindowDuration: 10 * time.Second, WindowBuckets: 10, MinimumCalls: 4})
		defer b.Close()
		ctx := context.Background()
		for range 3 {
			_ = b.Do(ctx, fail) // below the minimum
		}
		time.Sleep(10 * time.Second) // they leave the window
		_ = b.Do(ctx, ok)
		_ = b.Do(ctx, fail)
		_ = b.Do(ctx, fail) // 3 calls in the window
		mustState(t, b, breaker.Closed)
		time.Sleep(9 * time.Second) // still inside
		_ = b.Do(ctx, fail)         // 4 calls, 3 failures
		mustState(t, b, breaker.Open)
	})
}

// TestRateJudgedWhenOldSuccessesAgeOut guards issue 7 item 9: in a time
// window whose old successes have aged out, the failures left over the
// threshold trip the breaker at the next recorded call, success or not
// (it once stayed closed until the next failure).
func TestRateJudgedWhenOldSuccessesAgeOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.Config{WindowDuration: 10 * time.Second, WindowBuckets: 10,
			FailureRate: 0.6, MinimumCalls: 5})
		defer b.Close()
		ctx := context.Background()
		for range 20 {
			_ = b.Do(ctx, ok)
		}
		time.Sleep(5 * time.Second)
		for range 5 {
			_ = b.Do(ctx, fail) // 5 of 25: 20%
		}
		mustState(t, b, breaker.Closed)
		time.Sleep(5 * time.Second) // the 20 successes age out; 5 failures remain
		if err := b.Do(ctx, ok); err != nil {
			t.Fatalf("the call that finds the window changed is still admitted: %v", err)
		}
		// 5 failures in 6 calls: 83% >= 60%, minimum met.
		mustState(t, b, breaker.Open)
	})
}
