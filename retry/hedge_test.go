package retry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowThenFast: attempt 1 blocks until cancelled; later attempts return
// at once with their attempt number.
func TestHedgeWinnerReturnedLosersCancelled(t *testing.T) {
	c := newFake()
	var events []RetryEvent
	p := New(Config{Clock: c, Budget: UnlimitedBudget(), Hedge: HedgeConfig{Delay: time.Second},
		OnRetry: func(_ context.Context, ev RetryEvent) { events = append(events, ev) }})
	defer p.Close()
	loserCancelled := make(chan error, 1)
	done := make(chan string, 1)
	go func() {
		v, err := Call(context.Background(), p, func(ctx context.Context) (string, error) {
			if Attempt(ctx) == 1 {
				<-ctx.Done()
				loserCancelled <- ctx.Err()
				return "", ctx.Err()
			}
			return fmt.Sprint("attempt ", Attempt(ctx)), nil
		})
		if err != nil {
			v = err.Error()
		}
		done <- v
	}()
	c.BlockUntil(1) // the hedge timer
	c.Advance(time.Second)
	if v := <-done; v != "attempt 2" {
		t.Fatalf("Call = %q", v)
	}
	// Call returned only after the loser did.
	select {
	case err := <-loserCancelled:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("loser saw %v", err)
		}
	default:
		t.Fatal("Call returned before the losing attempt")
	}
	if len(events) != 1 || !events[0].Hedge || events[0].Attempt != 2 || events[0].Delay != time.Second || events[0].Err != nil {
		t.Fatalf("events %+v", events)
	}
	if p.hedges.Load() != 1 || c.Timers() != 0 {
		t.Fatalf("hedges %d, timers left %d", p.hedges.Load(), c.Timers())
	}
}

func TestHedgeMaxInFlightAndAttempts(t *testing.T) {
	c := newFake()
	p := New(Config{Clock: c, MaxAttempts: 4, Budget: UnlimitedBudget(), NewBackOff: zeroBackOff,
		Hedge: HedgeConfig{Delay: time.Second, MaxInFlight: 2}})
	defer p.Close()
	var inflight, peak atomic.Int32
	release := make(chan struct{})
	started := make(chan int, 4)
	done := make(chan error, 1)
	go func() {
		done <- p.Do(context.Background(), func(ctx context.Context) error {
			n := inflight.Add(1)
			defer inflight.Add(-1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			started <- Attempt(ctx)
			select {
			case <-release:
				return errBoom
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	<-started
	c.BlockUntil(1)
	c.Advance(time.Second)
	<-started // the hedge
	c.BlockUntil(1)
	c.Advance(10 * time.Second) // no third attempt while two are in flight
	select {
	case n := <-started:
		t.Fatalf("attempt %d started beyond MaxInFlight", n)
	default:
	}
	close(release) // both fail; the remaining attempts run, then give up
	err := <-done
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Attempts != 4 || !errors.Is(err, errBoom) {
		t.Fatalf("err = %v", err)
	}
	if peak.Load() != 2 {
		t.Fatalf("peak in flight %d", peak.Load())
	}
}

func TestHedgesDrawOnBudget(t *testing.T) {
	c := newFake()
	b := NewBudget(BudgetConfig{Ratio: 0.1, MinPerSecond: -1, Clock: c})
	p := New(Config{Clock: c, Budget: b, Hedge: HedgeConfig{Delay: time.Second}})
	defer p.Close()
	// No deposits beyond this call's own: 0.1 tokens, so no hedge.
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- p.Do(context.Background(), func(ctx context.Context) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	c.BlockUntil(1)
	c.Advance(time.Second)
	close(release)
	if err := <-done; err != nil || p.hedges.Load() != 0 {
		t.Fatalf("err %v, hedges %d", err, p.hedges.Load())
	}
}

func TestHedgeCancelledByCaller(t *testing.T) {
	c := newFake()
	p := New(Config{Clock: c, Budget: UnlimitedBudget(), Hedge: HedgeConfig{Delay: time.Second}})
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var returned sync.WaitGroup
	returned.Add(2)
	done := make(chan error, 1)
	go func() {
		done <- p.Do(ctx, func(ctx context.Context) error {
			defer returned.Done()
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	c.BlockUntil(1)
	c.Advance(time.Second) // two attempts in flight
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	returned.Wait() // both attempts had returned: Wait does not block
}

func TestHedgePercentileDelay(t *testing.T) {
	c := newFake()
	var hedgeDelays []time.Duration
	p := New(Config{Clock: c, Budget: UnlimitedBudget(), Hedge: HedgeConfig{Percentile: 0.9},
		OnRetry: func(_ context.Context, ev RetryEvent) { hedgeDelays = append(hedgeDelays, ev.Delay) }})
	defer p.Close()
	// 20 calls taking 10ms, 20ms, ... 200ms: p90 is 190ms.
	for i := 1; i <= 20; i++ {
		err := p.Do(context.Background(), func(ctx context.Context) error {
			c.Advance(time.Duration(i) * 10 * time.Millisecond)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(hedgeDelays) != 0 {
		t.Fatalf("hedged before 20 samples: %v", hedgeDelays)
	}
	if d, ok := p.hedge.next(); !ok || d != 190*time.Millisecond {
		t.Fatalf("hedge delay %v %v", d, ok)
	}
	done := make(chan error, 1)
	go func() {
		done <- p.Do(context.Background(), func(ctx context.Context) error {
			if Attempt(ctx) == 1 {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
	}()
	c.BlockUntil(1)
	c.Advance(190 * time.Millisecond)
	if err := <-done; err != nil || fmt.Sprint(hedgeDelays) != "[190ms]" {
		t.Fatalf("err %v, hedge delays %v", err, hedgeDelays)
	}
}
