package breaker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errBoom = errors.New("boom")

// mk builds a breaker on a fake clock, without jitter unless cfg sets it.
func mk(t testing.TB, cfg Config) (*Breaker, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Time{})
	cfg.clk = clk
	if cfg.OpenJitter == 0 {
		cfg.OpenJitter = -1
	}
	b := New(cfg)
	t.Cleanup(func() { b.Close() })
	return b, clk
}

// feed runs one call per letter: S success, F failure, N neutral. Every
// call must be admitted.
func feed(t testing.TB, b *Breaker, seq string) {
	t.Helper()
	for i, c := range seq {
		tk, err := b.Allow()
		if err != nil {
			t.Fatalf("call %d (%c) of %q rejected: %v (state %v)", i, c, seq, err, b.State())
		}
		switch c {
		case 'S':
			b.Done(tk, nil)
		case 'F':
			b.Done(tk, errBoom)
		case 'N':
			b.Done(tk, context.Canceled)
		default:
			t.Fatalf("bad letter %c", c)
		}
	}
}

func wantState(t testing.TB, b *Breaker, want State) {
	t.Helper()
	if got := b.State(); got != want {
		t.Fatalf("state = %v, want %v", got, want)
	}
}

func TestStateString(t *testing.T) {
	want := map[State]string{Closed: "closed", Open: "open", HalfOpen: "half-open", ForcedOpen: "forced-open", Disabled: "disabled", 9: "unknown"}
	for s, w := range want {
		if s.String() != w {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), w)
		}
	}
}

func TestZeroConfigTripsAtHalfOfTwentyCalls(t *testing.T) {
	b, _ := mk(t, Config{})
	feed(t, b, "SSSSSSSSSSFFFFFFFFF") // 19 calls: below MinimumCalls 20
	wantState(t, b, Closed)
	feed(t, b, "F") // 20 calls, 10 failures: 50%
	wantState(t, b, Open)
	_, err := b.Allow()
	var oe *OpenError
	if !errors.Is(err, ErrOpen) || !errors.As(err, &oe) || oe.RetryAfter() != DefaultOpenDuration {
		t.Fatalf("Allow = %v, RetryAfter %v", err, oe.RetryAfter())
	}
	if err.Error() != "breaker: circuit open" {
		t.Fatalf("Error() = %q", err)
	}
}

func TestCountWindowSlides(t *testing.T) {
	b, _ := mk(t, Config{WindowSize: 10, MinimumCalls: 10})
	feed(t, b, "FFFF")
	feed(t, b, strings.Repeat("S", 60)) // the four failures slide out
	feed(t, b, "FFFF")                  // last 10: 6 S, 4 F
	wantState(t, b, Closed)
	if c := b.Counts(); c.Failures != 8 || c.Successes != 60 {
		t.Fatalf("counts %+v", c)
	}
	feed(t, b, "F") // last 10: 5 S, 5 F
	wantState(t, b, Open)
}

func TestCountWindowBelowRateStaysClosed(t *testing.T) {
	b, _ := mk(t, Config{WindowSize: 10, MinimumCalls: 10, FailureRate: 0.5})
	for range 20 {
		feed(t, b, "SFSSSFSSSS") // 20% failures, forever
	}
	wantState(t, b, Closed)
}

func TestMinimumCallsCompletedBySuccessTrips(t *testing.T) {
	b, _ := mk(t, Config{WindowSize: 10, MinimumCalls: 10})
	feed(t, b, "FFFFFFFFF") // 9 calls, all failed: rate over, but too few calls
	wantState(t, b, Closed)
	feed(t, b, "S") // 10 calls, 9 failures
	wantState(t, b, Open)
}

func TestMinimumCallsCappedAtWindowSize(t *testing.T) {
	b, _ := mk(t, Config{WindowSize: 4, MinimumCalls: 50})
	feed(t, b, "SSFF")
	wantState(t, b, Open)
}

func TestTimeWindowForgetsOldCalls(t *testing.T) {
	b, clk := mk(t, Config{WindowDuration: 10 * time.Second, WindowBuckets: 10, MinimumCalls: 4})
	feed(t, b, "FFF") // below the minimum
	clk.Advance(10 * time.Second)
	feed(t, b, "SFF") // the old failures have left the window: 3 calls
	wantState(t, b, Closed)
	clk.Advance(9 * time.Second) // SFF still inside
	feed(t, b, "F")              // 4 calls, 3 failures
	wantState(t, b, Open)
}

func TestTimeWindowRate(t *testing.T) {
	b, clk := mk(t, Config{WindowDuration: time.Minute, MinimumCalls: 10, FailureRate: 0.3})
	for range 10 {
		feed(t, b, "SSSSF") // 20%
		clk.Advance(time.Second)
	}
	wantState(t, b, Closed)
	feed(t, b, "FFFFFFF") // 17 failures of 57 calls: 29.8%
	wantState(t, b, Closed)
	feed(t, b, "F") // 18 of 58: 31%
	wantState(t, b, Open)
}

func timed(t *testing.T, b *Breaker, clk *clock.Fake, d time.Duration, err error) {
	t.Helper()
	tk, aerr := b.Allow()
	if aerr != nil {
		t.Fatal(aerr)
	}
	clk.Advance(d)
	b.Done(tk, err)
}

func TestSlowCallRateTrips(t *testing.T) {
	for _, window := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprint("window=", window), func(t *testing.T) {
			b, clk := mk(t, Config{WindowSize: 4, WindowDuration: window, MinimumCalls: 4,
				SlowCallDuration: time.Second, SlowCallRate: 0.5})
			timed(t, b, clk, time.Millisecond, nil)
			timed(t, b, clk, time.Millisecond, nil)
			timed(t, b, clk, 2*time.Second, nil)
			if c := b.Counts(); c.Slow != 1 || c.Successes != 3 {
				t.Fatalf("counts %+v", c)
			}
			wantState(t, b, Closed)
			timed(t, b, clk, time.Second, nil) // exactly the threshold is slow
			wantState(t, b, Open)
		})
	}
}

func TestConsecutiveFailures(t *testing.T) {
	b, _ := mk(t, Config{ConsecutiveFailures: 3})
	feed(t, b, "FFSFFSFF")
	wantState(t, b, Closed)
	if c := b.Counts(); c.ConsecutiveFailures != 2 {
		t.Fatalf("consecutive = %d", c.ConsecutiveFailures)
	}
	feed(t, b, "N") // neutral does not break the run
	feed(t, b, "F")
	wantState(t, b, Open)
}

func TestEveryTransition(t *testing.T) {
	b, clk := mk(t, Config{ConsecutiveFailures: 1, HalfOpenProbes: 2, OpenDuration: time.Second, OpenDurationGrowth: 1})
	feed(t, b, "F") // closed -> open
	wantState(t, b, Open)
	clk.Advance(time.Second - 1)
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("before open duration: %v", err)
	}
	clk.Advance(1)
	feed(t, b, "S") // open -> half-open, lazily, by Allow
	wantState(t, b, HalfOpen)
	feed(t, b, "F") // half-open -> open on a failed probe
	wantState(t, b, Open)
	clk.Advance(time.Second)
	wantState(t, b, HalfOpen) // State makes the lazy move too
	feed(t, b, "SS")          // half-open -> closed after all probes succeed
	wantState(t, b, Closed)
	b.ForceOpen()
	wantState(t, b, ForcedOpen)
	b.Disable()
	wantState(t, b, Disabled)
	b.Reset()
	wantState(t, b, Closed)
}

func TestHalfOpenRateDecision(t *testing.T) {
	cases := []struct {
		probes string
		want   State
	}{
		{"SSSS", Closed},
		{"SFSS", Closed}, // 25% < 50%
		{"SFF", Open},    // 2 of 4 reach 50%: reopens without waiting for the 4th
		{"FF", Open},
	}
	for _, c := range cases {
		b, clk := mk(t, Config{WindowSize: 2, MinimumCalls: 2, HalfOpenProbes: 4, OpenDuration: time.Second})
		feed(t, b, "FF")
		clk.Advance(time.Second)
		feed(t, b, c.probes)
		if got := b.State(); got != c.want {
			t.Errorf("probes %s: state %v, want %v", c.probes, got, c.want)
		}
	}
}

func TestHalfOpenAdmitsExactlyNProbes(t *testing.T) {
	const probes = 7
	b, clk := mk(t, Config{ConsecutiveFailures: 1, HalfOpenProbes: probes, OpenDuration: time.Second})
	feed(t, b, "F")
	clk.Advance(time.Second)
	var admitted, full atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	tickets := make(chan Ticket, 200)
	for range 200 {
		wg.Go(func() {
			<-start
			tk, err := b.Allow()
			switch {
			case err == nil:
				admitted.Add(1)
				tickets <- tk
			case errors.Is(err, ErrHalfOpenFull):
				full.Add(1)
			default:
				t.Errorf("unexpected %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if admitted.Load() != probes || full.Load() != 200-probes {
		t.Fatalf("admitted %d, full %d, want %d", admitted.Load(), full.Load(), probes)
	}
	close(tickets)
	for tk := range tickets {
		b.Done(tk, nil)
	}
	wantState(t, b, Closed)
}

func TestHalfOpenNeutralProbeFreesItsSlot(t *testing.T) {
	b, clk := mk(t, Config{ConsecutiveFailures: 1, HalfOpenProbes: 1, OpenDuration: time.Second})
	feed(t, b, "F")
	clk.Advance(time.Second)
	tk, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Allow(); !errors.Is(err, ErrHalfOpenFull) {
		t.Fatalf("second probe: %v", err)
	}
	b.Done(tk, context.Canceled) // neutral
	wantState(t, b, HalfOpen)
	feed(t, b, "S")
	wantState(t, b, Closed)
}

func TestHalfOpenMaxWaitReopens(t *testing.T) {
	b, clk := mk(t, Config{ConsecutiveFailures: 1, HalfOpenProbes: 1, OpenDuration: time.Second,
		OpenDurationGrowth: 1, HalfOpenMaxWait: 10 * time.Second})
	feed(t, b, "F")
	clk.Advance(time.Second)
	lost, err := b.Allow() // a probe that never reports
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(9 * time.Second)
	_, err = b.Allow()
	var oe *OpenError
	if !errors.As(err, &oe) || !errors.Is(err, ErrHalfOpenFull) || oe.RetryAfter() != time.Second {
		t.Fatalf("Allow = %v (RetryAfter %v), want ErrHalfOpenFull in 1s", err, oe.RetryAfter())
	}
	clk.Advance(time.Second)
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("after max wait: %v, want ErrOpen", err)
	}
	b.Done(lost, nil) // late: a different generation, ignored
	wantState(t, b, Open)
	clk.Advance(time.Second)
	feed(t, b, "S")
	wantState(t, b, Closed)
}

func TestGenerationDiscardsLateResults(t *testing.T) {
	b, clk := mk(t, Config{ConsecutiveFailures: 2, OpenDuration: time.Second})
	old, _ := b.Allow()
	feed(t, b, "FF") // trips
	b.Done(old, nil)
	if c := b.Counts(); c.Successes != 0 || c.State != Open {
		t.Fatalf("late success counted in open state: %+v", c)
	}
	clk.Advance(time.Second)
	probeOld, _ := b.Allow() // probe of the first half-open
	b.Reset()
	feed(t, b, "F")
	b.Done(probeOld, errBoom) // from the half-open generation: would make 2 failures
	wantState(t, b, Closed)
	if c := b.Counts(); c.Failures != 1 || c.ConsecutiveFailures != 1 {
		t.Fatalf("counts %+v", c)
	}
	b.Done(Ticket{}, errBoom) // the zero ticket belongs to no generation
	if c := b.Counts(); c.Failures != 1 {
		t.Fatalf("zero ticket counted: %+v", c)
	}
}

func TestForceOpenDisableReset(t *testing.T) {
	b, clk := mk(t, Config{ConsecutiveFailures: 1})
	b.ForceOpen()
	clk.Advance(time.Hour)
	_, err := b.Allow()
	var oe *OpenError
	if !errors.As(err, &oe) || !errors.Is(err, ErrOpen) || oe.State != ForcedOpen || oe.RetryAfter() != 0 || !oe.Until.IsZero() {
		t.Fatalf("forced open Allow = %v %+v", err, oe)
	}
	wantState(t, b, ForcedOpen)
	if c := b.Counts(); c.Rejections != 1 {
		t.Fatalf("rejections %d", c.Rejections)
	}
	b.Disable()
	feed(t, b, "FFFFF")
	wantState(t, b, Disabled)
	if c := b.Counts(); c.Failures != 0 {
		t.Fatalf("disabled breaker counted: %+v", c)
	}
	b.Reset()
	wantState(t, b, Closed)
	feed(t, b, "F")
	wantState(t, b, Open)
}

// openFor returns the open duration of the current trip.
func openFor(t *testing.T, b *Breaker) time.Duration {
	t.Helper()
	_, err := b.Allow()
	var oe *OpenError
	if !errors.As(err, &oe) || oe.State != Open {
		t.Fatalf("not open: %v", err)
	}
	return oe.RetryAfter()
}

func TestOpenDurationGrowsCappedAndResets(t *testing.T) {
	b, clk := mk(t, Config{ConsecutiveFailures: 1, OpenDuration: time.Second, OpenDurationGrowth: 2, MaxOpenDuration: 5 * time.Second})
	feed(t, b, "F")
	var got []time.Duration
	for range 5 {
		d := openFor(t, b)
		got = append(got, d)
		clk.Advance(d)
		feed(t, b, "F") // failed probe: a repeated trip
	}
	want := []time.Duration{1, 2, 4, 5, 5}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("open durations %v, want %v s", got, want)
		}
	}
	clk.Advance(openFor(t, b))
	feed(t, b, "S") // closes
	feed(t, b, "F") // a fresh first trip
	if d := openFor(t, b); d != time.Second {
		t.Fatalf("after closing, open duration %v, want 1s", d)
	}
}

func TestOpenJitterWithinBounds(t *testing.T) {
	b, _ := mk(t, Config{ConsecutiveFailures: 1, OpenDuration: 10 * time.Second, OpenJitter: 0.5})
	seen := map[time.Duration]bool{}
	for range 50 {
		b.Reset()
		feed(t, b, "F")
		d := openFor(t, b)
		if d < 5*time.Second || d > 10*time.Second {
			t.Fatalf("jittered duration %v outside [5s, 10s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct durations in 50 trips: no jitter?", len(seen))
	}
}

// TestHalfOpenVerdictSeesConcurrentProbes guards recordHalfOpen: when the
// last two probes report at the same moment, one success and one failure,
// the verdict must count both (50% failures with FailureRate 0.5 reopens).
// A probe that read the failures before adding itself once closed the
// breaker here. The test seam testHookProbeCounted stops the first probe
// between counting itself and judging, and reports the second probe in
// full meanwhile: the interleaving that matters, every time, in either
// order.
func TestHalfOpenVerdictSeesConcurrentProbes(t *testing.T) {
	for _, first := range []error{nil, errBoom} {
		for _, probes := range []int{2, 4} {
			t.Run(fmt.Sprintf("first=%v/probes=%d", first, probes), func(t *testing.T) {
				b, clk := mk(t, Config{WindowSize: 2, MinimumCalls: 2, HalfOpenProbes: probes, OpenDuration: time.Second})
				feed(t, b, "FF")
				clk.Advance(time.Second)
				if probes == 4 {
					feed(t, b, "SF") // 1 of 2 so far; the last two decide
				}
				t1, t2 := b.mustAllow(t), b.mustAllow(t)
				second := errBoom
				if first != nil {
					second = nil
				}
				var hooked atomic.Bool
				testHookProbeCounted = func(bulwark.Outcome) {
					if hooked.CompareAndSwap(false, true) {
						b.Done(t2, second) // the other probe reports while this one is between count and verdict
					}
				}
				defer func() { testHookProbeCounted = nil }()
				b.Done(t1, first)
				if !hooked.Load() {
					t.Fatal("the seam did not run")
				}
				if st := b.State(); st != Open {
					t.Fatalf("state %v after one success and one failure of the last two probes, want open", st)
				}
			})
		}
	}
}

// TestHalfOpenVerdictSeesConcurrentSlowProbe is the same guard for slow
// marks: a slow success reporting inside another probe's count-to-verdict
// window must reopen the breaker (1 slow call of 2 reaches SlowCallRate
// 0.5), whichever probe completes the total.
func TestHalfOpenVerdictSeesConcurrentSlowProbe(t *testing.T) {
	for _, slowFirst := range []bool{false, true} {
		t.Run(fmt.Sprint("slowFirst=", slowFirst), func(t *testing.T) {
			b, clk := mk(t, Config{WindowSize: 2, MinimumCalls: 2, FailureRate: 1, HalfOpenProbes: 2,
				SlowCallDuration: time.Second, SlowCallRate: 0.5, OpenDuration: time.Second})
			feed(t, b, "FF")
			clk.Advance(time.Second)
			slow := b.mustAllow(t)
			clk.Advance(2 * time.Second)
			fast := b.mustAllow(t)
			first, second := fast, slow
			if slowFirst {
				first, second = slow, fast
			}
			var hooked atomic.Bool
			testHookProbeCounted = func(bulwark.Outcome) {
				if hooked.CompareAndSwap(false, true) {
					b.Done(second, nil)
				}
			}
			defer func() { testHookProbeCounted = nil }()
			b.Done(first, nil)
			if st := b.State(); st != Open || !hooked.Load() {
				t.Fatalf("state %v (seam ran: %v) after a slow and a fast probe, want open", st, hooked.Load())
			}
		})
	}
}

func TestTimeBucketIgnoresASampleOlderThanItsEpoch(t *testing.T) {
	// One P, so one row of buckets: every bucketAt call below lands in the
	// same row whichever P the test goroutine runs on.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	b, _ := mk(t, Config{WindowDuration: 10 * time.Second, WindowBuckets: 10})
	p := b.cur.Load()
	const nb = 10
	bk, fresh := p.bucketAt(25, nb)
	if !fresh {
		t.Fatal("first use of a bucket is not fresh")
	}
	bk.calls.Add(3)
	// A writer that read the clock a whole window ago maps to the same
	// bucket with an older epoch: its sample is dropped, not allowed to
	// wipe the newer counts.
	if old, _ := p.bucketAt(15, nb); old != nil {
		t.Fatal("stale epoch got a bucket")
	}
	if again, fresh := p.bucketAt(25, nb); again.calls.Load() != 3 || fresh {
		t.Fatalf("newer bucket holds %d calls (fresh %v), want 3, not fresh", again.calls.Load(), fresh)
	}
	if nb2, fresh := p.bucketAt(35, nb); nb2 == nil || nb2.calls.Load() != 0 || !fresh {
		t.Fatal("a newer epoch did not reset the bucket")
	}
}

func TestOnStateChangeMayReadTheBreaker(t *testing.T) {
	type ev struct {
		name     string
		from, to State
		seen     State
		counts   Counts
	}
	var evs []ev
	var b *Breaker
	clk := clock.NewFake(time.Time{})
	b = New(Config{Name: "db", clk: clk, ConsecutiveFailures: 2, OpenDuration: time.Second, OpenJitter: -1,
		OnStateChange: func(ctx context.Context, e StateChangeEvent) {
			if ctx == nil {
				t.Error("nil ctx")
			}
			evs = append(evs, ev{e.Name, e.From, e.To, b.State(), b.Counts()})
			if e.To == Disabled {
				b.Reset() // a transition from inside the hook is queued, not deadlocked
			}
		}})
	defer b.Close()
	feed(t, b, "FF")
	clk.Advance(time.Second)
	feed(t, b, "S")
	b.Disable()
	want := []ev{{"db", Closed, Open, Open, Counts{}}, {"db", Open, HalfOpen, HalfOpen, Counts{}},
		{"db", HalfOpen, Closed, Closed, Counts{}}, {"db", Closed, Disabled, Disabled, Counts{}}, {"db", Disabled, Closed, Closed, Counts{}}}
	if len(evs) != len(want) {
		t.Fatalf("events %+v", evs)
	}
	for i := range want {
		w, g := want[i], evs[i]
		if g.name != w.name || g.from != w.from || g.to != w.to {
			t.Fatalf("event %d = %+v, want %+v", i, g, w)
		}
		if i < 4 && g.seen != w.seen { // the 4th hook's Reset runs before State: seen may be Closed
			t.Fatalf("event %d: State() in hook = %v, want %v", i, g.seen, w.seen)
		}
	}
}

// TestOnStateChangeNeverStrandsAnEvent guards deliver: a transition made
// by another goroutine just as a delivery loop ends must still reach the
// hook (it once found the loop's flag still set, left its event to that
// loop, and the loop had already finished).
func TestOnStateChangeNeverStrandsAnEvent(t *testing.T) {
	var calls atomic.Int64
	b := New(Config{clk: clock.NewFake(time.Time{}), OnStateChange: func(context.Context, StateChangeEvent) { calls.Add(1) }})
	defer b.Close()
	var fired atomic.Bool
	testHookDelivered = func() {
		if fired.CompareAndSwap(false, true) { // only after the first delivery
			done := make(chan struct{})
			go func() { b.Disable(); close(done) }()
			<-done
		}
	}
	defer func() { testHookDelivered = nil }()
	b.ForceOpen()
	if calls.Load() != 2 {
		t.Fatalf("hook ran %d times for 2 transitions: an event was stranded", calls.Load())
	}
}

func TestOnStateChangePanicDoesNotWedgeDelivery(t *testing.T) {
	var calls int
	b := New(Config{clk: clock.NewFake(time.Time{}), OnStateChange: func(_ context.Context, e StateChangeEvent) {
		calls++
		if e.To == ForcedOpen && calls == 1 {
			panic("hook bug")
		}
	}})
	defer b.Close()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("hook panic was swallowed")
			}
		}()
		b.ForceOpen()
	}()
	b.Reset()
	if calls != 2 {
		t.Fatalf("hook ran %d times after a panicking call, want 2", calls)
	}
}

func TestDoRecordsPanicAsFailureAndRepanics(t *testing.T) {
	b, _ := mk(t, Config{ConsecutiveFailures: 1})
	func() {
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Fatalf("recovered %v, want kaboom", r)
			}
		}()
		_ = b.Do(context.Background(), func(context.Context) error { panic("kaboom") })
		t.Fatal("Do returned")
	}()
	wantState(t, b, Open)
	b.Reset()
	func() {
		defer func() { _ = recover() }()
		_, _ = Call(context.Background(), b, func(context.Context) (int, error) { panic("kaboom") })
	}()
	wantState(t, b, Open)
}

func TestDoAndCall(t *testing.T) {
	b, _ := mk(t, Config{ConsecutiveFailures: 2})
	v, err := Call(context.Background(), b, func(context.Context) (string, error) { return "ok", nil })
	if v != "ok" || err != nil {
		t.Fatalf("Call = %q, %v", v, err)
	}
	for range 2 {
		if err := b.Do(context.Background(), func(context.Context) error { return errBoom }); err != errBoom {
			t.Fatalf("Do = %v, want fn's error", err)
		}
	}
	called := false
	err = b.Do(context.Background(), func(context.Context) error { called = true; return nil })
	if !errors.Is(err, ErrOpen) || called {
		t.Fatalf("Do while open = %v, called %v", err, called)
	}
	v, err = Call(context.Background(), b, func(context.Context) (string, error) { return "x", nil })
	if v != "" || !errors.Is(err, ErrOpen) {
		t.Fatalf("Call while open = %q %v", v, err)
	}
}

func TestNeutralOutcomes(t *testing.T) {
	b, _ := mk(t, Config{ConsecutiveFailures: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = b.Do(ctx, func(ctx context.Context) error { return ctx.Err() }) // the caller cancelled
	tk, _ := b.Allow()
	b.Done(tk, fmt.Errorf("dial: %w", context.Canceled))
	wantState(t, b, Closed)
	if c := b.Counts(); c.Neutral != 2 || c.Failures != 0 {
		t.Fatalf("counts %+v", c)
	}
	// A Canceled error while the caller's own ctx is alive is a failure.
	_ = b.Do(context.Background(), func(context.Context) error { return context.Canceled })
	wantState(t, b, Open)

	errIgnored := errors.New("not found")
	var gotCtx []context.Context
	b2, _ := mk(t, Config{ConsecutiveFailures: 1, Classify: func(ctx context.Context, err error) bulwark.Outcome {
		gotCtx = append(gotCtx, ctx)
		if errors.Is(err, errIgnored) {
			return bulwark.Neutral
		}
		if err != nil {
			return bulwark.Failure
		}
		return bulwark.Success
	}})
	_ = b2.Do(context.Background(), func(context.Context) error { return errIgnored })
	tk, _ = b2.Allow()
	b2.Done(tk, errIgnored)
	wantState(t, b2, Closed)
	if gotCtx[0] == nil || gotCtx[1] != context.Background() {
		t.Fatalf("Classify contexts %v: Do passes its ctx, Done context.Background()", gotCtx)
	}
	b2.Record(b2.mustAllow(t), bulwark.Failure)
	wantState(t, b2, Open)
}

func (b *Breaker) mustAllow(t *testing.T) Ticket {
	t.Helper()
	tk, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestHotPathsDoNotAllocate(t *testing.T) {
	cfgs := map[string]Config{
		"count":       {},
		"time":        {WindowDuration: time.Minute},
		"consecutive": {ConsecutiveFailures: 5},
		"slow":        {SlowCallDuration: time.Second},
	}
	for name, cfg := range cfgs {
		b := New(cfg) // the real clock: Nanotime must not allocate either
		defer b.Close()
		ctx := context.Background()
		fn := func(context.Context) error { return nil }
		if a := testing.AllocsPerRun(1000, func() {
			tk, err := b.Allow()
			b.Done(tk, err)
		}); a != 0 {
			t.Errorf("%s: Allow+Done allocs = %v", name, a)
		}
		if a := testing.AllocsPerRun(1000, func() { _ = b.Do(ctx, fn) }); a != 0 {
			t.Errorf("%s: Do allocs = %v", name, a)
		}
		if a := testing.AllocsPerRun(100, func() {
			tk, _ := b.Allow()
			b.Done(tk, errBoom)
			b.Reset()
		}); a > 20 {
			t.Errorf("%s: failure path allocs = %v", name, a) // only the state change allocates
		}
		b.ForceOpen()
		if a := testing.AllocsPerRun(1000, func() {
			if _, err := b.Allow(); err == nil {
				panic("admitted")
			}
		}); a != 0 {
			t.Errorf("%s: rejection allocs = %v", name, a)
		}
		if a := testing.AllocsPerRun(1000, func() { _ = b.Do(ctx, fn) }); a != 0 {
			t.Errorf("%s: rejected Do allocs = %v", name, a)
		}
	}
}

// TestConcurrentUse hammers every path at once for the race detector, and
// checks that the counters add up.
func TestConcurrentUse(t *testing.T) {
	for _, cfg := range []Config{{}, {WindowDuration: time.Second, MinimumCalls: 5}, {ConsecutiveFailures: 3}, {SlowCallDuration: time.Millisecond}} {
		cfg.OpenDuration = time.Millisecond
		cfg.HalfOpenProbes = 3
		b, clk := mk(t, cfg)
		var wg sync.WaitGroup
		var admitted, rejected atomic.Int64
		for g := range 8 {
			wg.Go(func() {
				for i := range 2000 {
					tk, err := b.Allow()
					if err != nil {
						rejected.Add(1)
						continue
					}
					admitted.Add(1)
					if (i+g)%3 == 0 {
						b.Done(tk, errBoom)
					} else {
						b.Done(tk, nil)
					}
					if i%100 == 0 {
						_ = b.State()
						_ = b.Counts()
					}
				}
			})
		}
		wg.Go(func() {
			for range 200 {
				clk.Advance(time.Millisecond)
			}
		})
		wg.Wait()
		if admitted.Load()+rejected.Load() != 16000 || admitted.Load() == 0 {
			t.Fatalf("admitted %d rejected %d", admitted.Load(), rejected.Load())
		}
	}
}
