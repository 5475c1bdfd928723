package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errBoom = errors.New("boom")

// newFake returns a fake clock near real time, so that context deadlines
// (which run on real time) agree with it; tests keep those deadlines an
// hour or more away.
func newFake() *clock.Fake { return clock.NewFake(time.Now().Truncate(time.Second)) }

func zeroBackOff() backoff.BackOff { return &backoff.ZeroBackOff{} }

func TestDelayTable(t *testing.T) {
	const base, maxD = 100 * time.Millisecond, time.Second
	cases := []struct {
		j     Jitter
		retry int
		prev  time.Duration
		u     float64
		want  time.Duration
	}{
		{NoJitter, 1, 0, 0.7, 100 * time.Millisecond},
		{NoJitter, 2, 0, 0.7, 200 * time.Millisecond},
		{NoJitter, 4, 0, 0.7, 800 * time.Millisecond},
		{NoJitter, 5, 0, 0.7, time.Second},  // capped
		{NoJitter, 1000, 0, 0, time.Second}, // no overflow
		{FullJitter, 3, 0, 0, 0},            // lower bound
		{FullJitter, 3, 0, 0.5, 200 * time.Millisecond},
		{FullJitter, 30, 0, 0.5, 500 * time.Millisecond},
		{EqualJitter, 3, 0, 0, 200 * time.Millisecond},
		{EqualJitter, 3, 0, 0.5, 300 * time.Millisecond},
		{DecorrelatedJitter, 1, 0, 0, 100 * time.Millisecond},
		{DecorrelatedJitter, 1, 0, 0.5, 200 * time.Millisecond}, // [100ms, 300ms)
		{DecorrelatedJitter, 2, 200 * time.Millisecond, 0.5, 350 * time.Millisecond},
		{DecorrelatedJitter, 9, 900 * time.Millisecond, 0.5, 550 * time.Millisecond}, // hi capped at 1s
	}
	for _, c := range cases {
		if got := delay(c.j, base, maxD, c.retry, c.prev, c.u); got != c.want {
			t.Errorf("delay(%v, retry %d, prev %v, u %v) = %v, want %v", c.j, c.retry, c.prev, c.u, got, c.want)
		}
	}
}

func TestJitterBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const base, maxD = 50 * time.Millisecond, 3 * time.Second
	for _, j := range []Jitter{FullJitter, EqualJitter, DecorrelatedJitter, NoJitter} {
		prev := time.Duration(0)
		for retry := 1; retry <= 40; retry++ {
			d := delay(j, base, maxD, retry, prev, r.Float64())
			lo, hi := time.Duration(0), expCap(base, maxD, retry)
			switch j {
			case EqualJitter:
				lo = hi / 2
			case NoJitter:
				lo = hi
			case DecorrelatedJitter:
				lo, hi = base, min(maxD, 3*max(prev, base))
			}
			if d < lo || d > hi || d > maxD {
				t.Fatalf("%v retry %d: %v outside [%v, %v]", j, retry, d, lo, hi)
			}
			prev = d
		}
	}
}

// run starts p.Do(fn) in a goroutine and returns its result channel.
func run(ctx context.Context, p *Policy, fn func(context.Context) error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- p.Do(ctx, fn) }()
	return ch
}

func TestScheduleOnFakeClock(t *testing.T) {
	c := newFake()
	var delays []time.Duration
	p := New(Config{MaxAttempts: 4, BaseDelay: time.Second, Jitter: NoJitter, clock: c,
		Budget: UnlimitedBudget(),
		OnRetry: func(_ context.Context, ev Event) {
			delays = append(delays, ev.Delay)
			if ev.Err != errBoom || ev.Hedge {
				t.Errorf("event %+v", ev)
			}
		}})
	defer p.Close()
	var attempts []int
	done := run(context.Background(), p, func(ctx context.Context) error {
		attempts = append(attempts, Attempt(ctx))
		return errBoom
	})
	for _, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		c.BlockUntil(1)
		c.Advance(d - time.Nanosecond)
		select {
		case err := <-done:
			t.Fatalf("returned early: %v", err)
		default:
		}
		if c.Timers() != 1 {
			t.Fatalf("not waiting before %v", d)
		}
		c.Advance(time.Nanosecond)
	}
	err := <-done
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Attempts != 4 || ex.Reason != ReasonAttempts || ex.Last != errBoom {
		t.Fatalf("err = %#v", err)
	}
	if !errors.Is(err, ErrExhausted) || !errors.Is(err, errBoom) || errors.Is(err, ErrBudgetExhausted) {
		t.Fatalf("errors.Is wrong for %v", err)
	}
	if fmt.Sprint(attempts) != "[1 2 3 4]" || fmt.Sprint(delays) != "[1s 2s 4s]" {
		t.Fatalf("attempts %v delays %v", attempts, delays)
	}
}

func TestSuccessAfterRetries(t *testing.T) {
	p := New(Config{NewBackOff: zeroBackOff, Budget: UnlimitedBudget()})
	defer p.Close()
	n := 0
	v, err := Call(context.Background(), p, func(ctx context.Context) (string, error) {
		n++
		if n < 3 {
			return "", errBoom
		}
		return fmt.Sprint("ok", Attempt(ctx)), nil
	})
	if err != nil || v != "ok3" || n != 3 {
		t.Fatalf("Call = %q, %v after %d", v, err, n)
	}
}

func TestNotRetried(t *testing.T) {
	inner := errors.New("inner")
	notFound := errors.New("not found")
	p := New(Config{NewBackOff: zeroBackOff, Budget: UnlimitedBudget(),
		Classify: func(ctx context.Context, err error) bulwark.Outcome {
			if errors.Is(err, notFound) {
				return bulwark.Success
			}
			return bulwark.Failure
		}})
	defer p.Close()
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"Permanent", Permanent(inner), inner},
		{"wrapped Permanent", fmt.Errorf("ctx: %w", Permanent(inner)), nil},
		{"backoff.Permanent", backoff.Permanent(inner), inner},
		{"classified success", notFound, notFound},
	}
	for _, c := range cases {
		n := 0
		err := p.Do(context.Background(), func(context.Context) error { n++; return c.err })
		if n != 1 {
			t.Errorf("%s: %d attempts", c.name, n)
		}
		want := c.want
		if want == nil {
			want = c.err
		}
		if err != want || !errors.Is(err, inner) && !errors.Is(err, notFound) {
			t.Errorf("%s: err = %v, want %v", c.name, err, want)
		}
	}
	// The default classification does not retry a caller's cancellation.
	d := New(Config{NewBackOff: zeroBackOff})
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	err := d.Do(ctx, func(ctx context.Context) error { n++; return ctx.Err() })
	if n != 1 || err != context.Canceled {
		t.Fatalf("cancelled: %d attempts, %v", n, err)
	}
}

func TestDeadlineGiveUpWithoutSleeping(t *testing.T) {
	c := newFake()
	p := New(Config{BaseDelay: 2 * time.Hour, MaxDelay: 3 * time.Hour, Jitter: NoJitter, clock: c})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	n := 0
	err := p.Do(ctx, func(context.Context) error { n++; return errBoom }) // returns without Advance
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Reason != ReasonDeadline || ex.Attempts != 1 || n != 1 || !errors.Is(err, errBoom) {
		t.Fatalf("err = %v after %d attempts", err, n)
	}
	// A delay that fits is slept.
	p2 := New(Config{BaseDelay: 30 * time.Minute, Jitter: NoJitter, MaxDelay: time.Hour, MaxAttempts: 2, clock: c})
	defer p2.Close()
	done := run(ctx, p2, func(context.Context) error { return errBoom })
	c.BlockUntil(1)
	c.Advance(30 * time.Minute)
	if err := <-done; !errors.As(err, &ex) || ex.Reason != ReasonAttempts || ex.Attempts != 2 {
		t.Fatalf("err = %v", err)
	}
}

func TestMaxDuration(t *testing.T) {
	c := newFake()
	p := New(Config{MaxAttempts: 10, BaseDelay: time.Second, Jitter: NoJitter, MaxDuration: 5 * time.Second,
		clock: c, Budget: UnlimitedBudget()})
	defer p.Close()
	n := 0
	done := run(context.Background(), p, func(context.Context) error { n++; return errBoom })
	c.BlockUntil(1)
	c.Advance(time.Second) // t=1s, next delay 2s ends at 3s
	c.BlockUntil(1)
	c.Advance(2 * time.Second) // t=3s, next delay 4s would end at 7s > 5s
	err := <-done
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Reason != ReasonDeadline || ex.Attempts != 3 || n != 3 {
		t.Fatalf("err = %v, %d attempts", err, n)
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	c := newFake()
	p := New(Config{BaseDelay: time.Minute, Jitter: NoJitter, clock: c})
	defer p.Close()
	cause := errors.New("shutting down")
	ctx, cancel := context.WithCancelCause(context.Background())
	done := run(ctx, p, func(context.Context) error { return errBoom })
	c.BlockUntil(1)
	cancel(cause)
	err := <-done
	if !errors.Is(err, cause) || !errors.Is(err, errBoom) || errors.Is(err, ErrExhausted) {
		t.Fatalf("err = %v", err)
	}
}

func TestPushback(t *testing.T) {
	c := newFake()
	var got []time.Duration
	newP := func(maxPB time.Duration) *Policy {
		return New(Config{MaxAttempts: 2, BaseDelay: time.Second, Jitter: NoJitter, MaxPushback: maxPB, clock: c,
			Budget: UnlimitedBudget(), OnRetry: func(_ context.Context, ev Event) { got = append(got, ev.Delay) }})
	}
	for _, c2 := range []struct {
		maxPB, pb, want time.Duration
	}{
		{0, 5 * time.Second, 5 * time.Second},               // replaces the 1s schedule
		{2 * time.Second, 5 * time.Second, 2 * time.Second}, // capped
		{-1, 5 * time.Second, time.Second},                  // ignored
		{0, 0, 0},                                           // retry at once
		{time.Hour, 40 * time.Minute, 40 * time.Minute},     // fits the deadline
	} {
		got = nil
		p := newP(c2.maxPB)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		done := run(ctx, p, func(context.Context) error { return Pushback(errBoom, c2.pb) })
		if c2.want > 0 {
			c.BlockUntil(1)
			c.Advance(c2.want)
		}
		err := <-done
		cancel()
		p.Close()
		var ex *ExhaustedError
		if !errors.As(err, &ex) || ex.Attempts != 2 || ex.Last != errBoom || len(got) != 1 || got[0] != c2.want {
			t.Errorf("%+v: err %v delays %v", c2, err, got)
		}
	}
	// Longer than the time left: give up at once; negative: never retry.
	p := newP(2 * time.Hour)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for _, c2 := range []struct {
		pb   time.Duration
		want Reason
	}{{90 * time.Minute, ReasonDeadline}, {-1, ReasonPushback}} {
		n := 0
		err := p.Do(ctx, func(context.Context) error { n++; return Pushback(errBoom, c2.pb) })
		var ex *ExhaustedError
		if !errors.As(err, &ex) || ex.Reason != c2.want || n != 1 || ex.Last != errBoom {
			t.Errorf("pushback %v: err %v, %d attempts", c2.pb, err, n)
		}
	}
}

func TestNewBackOff(t *testing.T) {
	c := newFake()
	var got []time.Duration
	p := New(Config{MaxAttempts: 3, clock: c, Budget: UnlimitedBudget(),
		NewBackOff: func() backoff.BackOff { return backoff.NewConstantBackOff(3 * time.Second) },
		OnRetry:    func(_ context.Context, ev Event) { got = append(got, ev.Delay) }})
	defer p.Close()
	done := run(context.Background(), p, func(context.Context) error { return errBoom })
	c.BlockUntil(1)
	c.Advance(3 * time.Second)
	c.BlockUntil(1)
	c.Advance(3 * time.Second)
	if err := <-done; !errors.Is(err, ErrExhausted) || fmt.Sprint(got) != "[3s 3s]" {
		t.Fatalf("err %v delays %v", err, got)
	}
	stop := New(Config{NewBackOff: func() backoff.BackOff { return &backoff.StopBackOff{} }})
	defer stop.Close()
	n := 0
	err := stop.Do(context.Background(), func(context.Context) error { n++; return errBoom })
	if var_ := (*ExhaustedError)(nil); !errors.As(err, &var_) || var_.Attempts != 1 || n != 1 {
		t.Fatalf("Stop: %v after %d", err, n)
	}
}

func TestSuccessPathAllocatesNothing(t *testing.T) {
	p := New(Config{})
	defer p.Close()
	ctx := context.Background()
	ok := func(context.Context) error { return nil }
	if a := testing.AllocsPerRun(1000, func() { _ = p.Do(ctx, ok) }); a != 0 {
		t.Fatalf("Do allocates %v per call", a)
	}
	okv := func(context.Context) (int, error) { return 7, nil }
	if a := testing.AllocsPerRun(1000, func() { _, _ = Call(ctx, p, okv) }); a != 0 {
		t.Fatalf("Call allocates %v per call", a)
	}
}

// readMetrics collects the policy's metrics.
func readMetrics(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range s.DataPoints {
					for _, k := range []attribute.Key{attrKind, attrReason} {
						if v, ok := dp.Attributes.Value(k); ok {
							out[m.Name+"/"+v.AsString()] = dp.Value
						}
					}
				}
			}
		}
	}
	return out
}

func TestBudgetExhaustionAndRecovery(t *testing.T) {
	c := newFake()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	b := NewBudget(BudgetConfig{Ratio: 0.1, MinPerSecond: -1, Window: 10 * time.Second, clock: c})
	p := New(Config{Name: "db", MaxAttempts: 2, NewBackOff: zeroBackOff, Budget: b, clock: c, MeterProvider: mp})
	defer p.Close()
	ctx := context.Background()
	succeed := func(n int) {
		for range n {
			if err := p.Do(ctx, func(context.Context) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	// failing makes n calls that fail twice, and returns how many retried.
	failing := func(n int) (retried int) {
		for range n {
			attempts := 0
			err := p.Do(ctx, func(context.Context) error { attempts++; return errBoom })
			if attempts == 2 {
				retried++
			} else if !errors.Is(err, ErrBudgetExhausted) || !errors.Is(err, errBoom) || !errors.Is(err, ErrExhausted) {
				t.Fatalf("throttled call returned %v", err)
			}
		}
		return retried
	}
	succeed(100)
	// 100 successes + 20 failing calls = 120 calls: 12 retries allowed.
	if got := failing(20); got != 12 {
		t.Fatalf("retried %d, want 12", got)
	}
	m := readMetrics(t, reader)
	if m["bulwark.retry.exhaustions/budget"] != 8 || m["bulwark.retry.attempts/retry"] != 12 || m["bulwark.retry.attempts/first"] != 120 {
		t.Fatalf("metrics %v", m)
	}
	// Once the window has passed, the old calls no longer count...
	c.Advance(11 * time.Second)
	if got := failing(5); got != 0 {
		t.Fatalf("retried %d after the window, want 0", got)
	}
	// ...and new traffic earns retries again.
	c.Advance(11 * time.Second)
	if got := failing(1); got != 0 { // also makes the budget read its counters now
		t.Fatalf("retried %d, want 0", got)
	}
	succeed(54)
	if got := failing(10); got != 6 { // 65 calls in the window

		t.Fatalf("retried %d after recovery, want 6", got)
	}
}

func TestBudgetQuietSpellBuildsNoReserve(t *testing.T) {
	c := newFake()
	b := NewBudget(BudgetConfig{Ratio: 0.1, MinPerSecond: -1, clock: c})
	p := New(Config{MaxAttempts: 2, NewBackOff: zeroBackOff, Budget: b, clock: c})
	defer p.Close()
	for range 1000 {
		_ = p.Do(context.Background(), func(context.Context) error { return nil })
	}
	// 1000 calls spread over 100s: only the last 9-10s (90-100 calls)
	// count, not all 1000, which would allow every retry.
	c.Advance(100 * time.Second)
	retried := 0
	for range 50 {
		n := 0
		_ = p.Do(context.Background(), func(context.Context) error { n++; return errBoom })
		retried += n - 1
	}
	if retried < 9 || retried > 15 {
		t.Fatalf("retried %d, want 9 to 15", retried)
	}
}

func TestBudgetFloorAndSharing(t *testing.T) {
	c := newFake()
	b := NewBudget(BudgetConfig{Ratio: 0.1, MinPerSecond: 0.5, Window: 10 * time.Second, clock: c})
	p1 := New(Config{MaxAttempts: 2, NewBackOff: zeroBackOff, Budget: b, clock: c})
	p2 := New(Config{MaxAttempts: 2, NewBackOff: zeroBackOff, Budget: b, clock: c})
	defer p1.Close()
	defer p2.Close()
	retried := 0
	for i := range 10 {
		p := []*Policy{p1, p2}[i%2]
		n := 0
		_ = p.Do(context.Background(), func(context.Context) error { n++; return errBoom })
		retried += n - 1
	}
	// The floor (5 per 10s) plus 10% of 10 calls: 6, shared by both.
	if retried != 6 {
		t.Fatalf("retried %d, want 6", retried)
	}
}

func TestConcurrentRetriesRace(t *testing.T) {
	b := NewBudget(BudgetConfig{})
	p := New(Config{MaxAttempts: 3, NewBackOff: zeroBackOff, Budget: b})
	defer p.Close()
	var wg sync.WaitGroup
	var calls atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				_ = p.Do(context.Background(), func(ctx context.Context) error {
					calls.Add(1)
					if (g+i)%3 == 0 && Attempt(ctx) == 1 {
						return errBoom
					}
					return nil
				})
			}
		}()
	}
	wg.Wait()
	if calls.Load() < 1600 {
		t.Fatalf("calls %d", calls.Load())
	}
}

// TestNilArgumentsPanicAtOnce guards CONTRIBUTING.md's rule: a nil ctx or
// fn is the caller's bug, reported at once with a message naming the
// function and the argument, before any attempt, budget draw or hook.
func TestNilArgumentsPanicAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"plain", Config{}},
		{"hedging", Config{Hedge: HedgeConfig{Delay: time.Hour}}},
	} {
		p := New(tc.cfg)
		defer p.Close()
		ran := false
		fn := func(context.Context) error { ran = true; return nil }
		call := func(context.Context) (int, error) { ran = true; return 1, nil }
		var nilCtx context.Context
		for _, c := range []struct {
			want string
			f    func()
		}{
			{"retry: Policy.Do called with a nil ctx", func() { p.Do(nilCtx, fn) }},
			{"retry: Policy.Do called with a nil fn", func() { p.Do(context.Background(), nil) }},
			{"retry: Call called with a nil ctx", func() { Call(nilCtx, p, call) }},
			{"retry: Call called with a nil fn", func() { Call[int](context.Background(), p, nil) }},
		} {
			got := func() (v any) {
				defer func() { v = recover() }()
				c.f()
				return nil
			}()
			if got != c.want {
				t.Errorf("%s: panic %v, want %q", tc.name, got, c.want)
			}
		}
		if ran || p.calls.Load() != 0 {
			t.Fatalf("%s: an attempt ran (%v) or a call was counted (%d) before the panic", tc.name, ran, p.calls.Load())
		}
	}
}
