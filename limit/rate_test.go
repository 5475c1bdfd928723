package limit

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/stripe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRateBurstThenOneEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRate(RateConfig{Rate: 10, Burst: 3}) // one every 100 ms
		defer r.Close()
		for i := range 3 {
			if !r.Allow() {
				t.Fatalf("call %d of the burst rejected", i)
			}
		}
		if r.Allow() {
			t.Fatal("call past the burst admitted")
		}
		time.Sleep(99 * time.Millisecond)
		if r.Allow() {
			t.Fatal("admitted 1 ms before the interval")
		}
		time.Sleep(time.Millisecond)
		if !r.Allow() {
			t.Fatal("rejected once the interval had passed")
		}
		if r.Allow() {
			t.Fatal("a second call admitted in the same interval")
		}
		time.Sleep(time.Second) // idle: back to a full burst, no more
		n := 0
		for r.Allow() {
			n++
		}
		if n != 3 {
			t.Fatalf("after idling, %d calls passed, want the burst of 3", n)
		}
	})
}

func TestRateDecideDescribesTheState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRate(RateConfig{Name: "api", Rate: 2, Burst: 4}) // one every 500 ms
		defer r.Close()
		d := r.Decide()
		want := Decision{Allowed: true, Remaining: 3, Reset: 500 * time.Millisecond,
			Policy: Policy{Name: "api", Quota: 2, Window: time.Second}}
		if d != want {
			t.Fatalf("first Decide = %+v, want %+v", d, want)
		}
		r.Decide()
		r.Decide()
		// Reset is when one more call fits (the draft's "t"), not when
		// the full burst is back (2s).
		if d = r.Decide(); !d.Allowed || d.Remaining != 0 || d.Reset != 500*time.Millisecond {
			t.Fatalf("last of the burst = %+v, want allowed, 0 remaining, reset 500ms", d)
		}
		time.Sleep(200 * time.Millisecond)
		if d = r.Decide(); d.Allowed || d.RetryAfter != 300*time.Millisecond || d.Reset != 300*time.Millisecond {
			t.Fatalf("over the limit = %+v, want rejected, retry after and reset 300ms", d)
		}
	})
}

// The accuracy the issue asks for: over a simulated minute of calls far
// above the limit, the admitted count is within 1% of the configured rate
// (plus the initial burst). (With a burst of 1, every admission loses the
// gap between its turn and the next arrival, by design of any limiter
// with no slack; the cases with a sub-second interval use a burst of 2 or
// more, as real limits do.)
func TestRateAccuracyOverASimulatedMinute(t *testing.T) {
	for _, cfg := range []RateConfig{
		{Rate: 100, Burst: 10},
		{Rate: 333, Burst: 2}, // an interval that is not a whole number of µs
		{Every: 7 * time.Millisecond, Burst: 5},
		{Rate: 0.5}, // one call every 2 s
	} {
		synctest.Test(t, func(t *testing.T) {
			r := NewRate(cfg)
			defer r.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			admitted := 0
			start := time.Now()
			for time.Since(start) < time.Minute {
				if r.Allow() {
					admitted++
				}
				time.Sleep(time.Duration(rng.IntN(int(time.Millisecond))) + 1) // ~2000 calls a second
			}
			perSec := cfg.Rate
			if cfg.Every > 0 {
				perSec = float64(time.Second) / float64(cfg.Every)
			}
			want := perSec*60 + float64(cfg.gcra().tau/cfg.gcra().t)
			if math.Abs(float64(admitted)-want) > 0.01*want+1 {
				t.Errorf("%+v: admitted %d in a simulated minute, want %.0f ± 1%%", cfg, admitted, want)
			}
		})
	}
}

// GCRA and a token bucket are the same limit: fed the same call times,
// Rate admits exactly the calls x/time/rate admits.
func TestRateAgreesWithTokenBucket(t *testing.T) {
	cfg := RateConfig{Rate: 50, Burst: 7}
	r := newRate(cfg, nil, 4)
	if len(r.shards) != 1 {
		t.Fatalf("a limit of 50/s was split over %d shards", len(r.shards))
	}
	tb := rate.NewLimiter(50, 7)
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := int64(0)
	mismatches := 0
	for i := range 20000 {
		now += int64(rng.ExpFloat64() * float64(10*time.Millisecond)) // bursts and lulls around the rate
		ok, _, _ := r.take(now)
		if ok != tb.AllowN(base.Add(time.Duration(now)), 1) {
			mismatches++
			if mismatches < 5 {
				t.Logf("call %d at %v: Rate %v, rate.Limiter %v", i, time.Duration(now), ok, !ok)
			}
		}
	}
	// x/time/rate works on float64 tokens; a call landing within rounding
	// of a boundary may go either way. None should in practice.
	if mismatches > 2 {
		t.Fatalf("%d of 20000 decisions differ from x/time/rate", mismatches)
	}
}

func TestRateWaitServesInOrderAndGivesUpEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRate(RateConfig{Every: time.Second, Burst: 1})
		defer r.Close()
		ctx := context.Background()
		if err := r.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var order []int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.Wait(ctx); err != nil {
					t.Error(err)
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
			}()
			synctest.Wait() // the waiter has reserved its turn
		}
		// A caller whose deadline comes before its turn fails at once,
		// told the wait it would have needed.
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		before := time.Now()
		err := r.Wait(dctx)
		var re *RejectedError
		if !errors.As(err, &re) || !errors.Is(err, ErrRateLimited) || re.Wait != 4*time.Second || re.RetryAfter() != 4*time.Second {
			t.Fatalf("Wait with a 2s deadline = %v (%+v), want ErrRateLimited needing 4s", err, re)
		}
		if time.Since(before) != 0 {
			t.Fatal("Wait blocked before giving up")
		}
		wg.Wait()
		if got := time.Since(start); got != 3*time.Second {
			t.Fatalf("three waiters took %v, want 3s", got)
		}
		if order[0] != 0 || order[1] != 1 || order[2] != 2 {
			t.Fatalf("waiters served in order %v, want [0 1 2]", order)
		}
	})
}

func TestRateWaitCancelledGivesItsTurnBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRate(RateConfig{Every: time.Second, Burst: 1})
		defer r.Close()
		r.Allow()
		cause := errors.New("caller left")
		ctx, cancel := context.WithCancelCause(context.Background())
		done := make(chan error)
		go func() { done <- r.Wait(ctx) }()
		synctest.Wait()
		cancel(cause)
		if err := <-done; !errors.Is(err, cause) {
			t.Fatalf("Wait = %v, want the cancel cause", err)
		}
		time.Sleep(time.Second)
		if !r.Allow() {
			t.Fatal("the cancelled waiter's turn was not given back")
		}
		if err := r.Wait(ctx); !errors.Is(err, cause) {
			t.Fatalf("Wait on a done ctx = %v, want its cause", err)
		}
	})
}

func TestRateConcurrentCallsNeverPassTheBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRate(RateConfig{Rate: 1, Burst: 50})
		defer r.Close()
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 100 {
					if r.Allow() {
						admitted.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if n := admitted.Load(); n != 50 {
			t.Fatalf("16 goroutines got %d calls admitted at one instant, want exactly the burst of 50", n)
		}
	})
}

// Many goroutines calling through a simulated 10 seconds never get more
// than the limit admitted, and get nearly all of it (the add-and-take-back
// path under contention loses no slot for good).
func TestRateConcurrentAccuracy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRate(RateConfig{Rate: 1000, Burst: 20})
		defer r.Close()
		var admitted atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 9))
				for time.Since(start) < 10*time.Second {
					if r.Allow() {
						admitted.Add(1)
					}
					time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
				}
			}()
		}
		wg.Wait()
		max := int64(1000*10 + 20 + 2) // the limit over the run (which may overshoot 10s by a sleep)
		if n := admitted.Load(); n > max || n < 9900 {
			t.Fatalf("admitted %d over 10 simulated seconds at 1000/s, want at most %d and within 1%% of 10000", n, max)
		}
	})
}

// A fast limit split over shards keeps GCRA's bound: a single caller gets
// the whole burst at once, and goroutines on every core together get the
// whole rate and never more.
func TestShardedRateKeepsTheBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRate(RateConfig{Rate: 1e5, Burst: 1000}, clock.Real, 4)
		if len(r.shards) != 4 {
			t.Fatalf("%d shards, want 4", len(r.shards))
		}
		n := 0
		for r.Allow() {
			n++
		}
		if n != 1000 {
			t.Fatalf("one caller got %d calls at once, want the burst of 1000", n)
		}
		if d := r.Decide(); d.Allowed || d.Remaining != 0 || d.RetryAfter <= 0 || d.RetryAfter > 40*time.Microsecond {
			t.Fatalf("Decide on the exhausted limit = %+v, want rejected for at most 4 intervals", d)
		}
		var admitted atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 1))
				for time.Since(start) < time.Second {
					if r.Allow() {
						admitted.Add(1)
					}
					time.Sleep(time.Duration(rng.IntN(100)) * time.Microsecond)
				}
			}()
		}
		wg.Wait()
		// The burst is spent: the bound over the second is the rate, plus
		// the last sleep's overshoot (100µs: 10 calls) and one per shard.
		if got, bound := admitted.Load(), int64(1e5+10+4); got > bound || got < 99000 {
			t.Fatalf("admitted %d over a simulated second at 1e5/s, want within 1%% of 1e5 and at most %d", got, bound)
		}
	})
}

// Regression: a shard's GCRA parameters sat after its padding, on the
// cache line of the next shard's word, so two cores on two shards kept
// taking that line from each other: with two cores free, BenchmarkLimitAllow
// under RunParallel took 45 ns a call (82 ns of CPU) against 21 ns (37 ns
// of CPU) with the parameters on the shard's own line. Everything a call
// on a shard touches must share one line, and no two shards may share one.
func TestShardsKeepToTheirOwnCacheLines(t *testing.T) {
	const line = 64
	var s shard
	if end := unsafe.Offsetof(s.g) + unsafe.Sizeof(s.g); unsafe.Offsetof(s.tat) != 0 || end > line {
		t.Fatalf("a call touches bytes 0 to %d of its shard, want all within the first %d-byte line", end, line)
	}
	if unsafe.Offsetof(s.admitted)+8 > line {
		t.Fatalf("the admission count sits at byte %d, want within the first line", unsafe.Offsetof(s.admitted))
	}
	if size := unsafe.Sizeof(s); size%stripe.CacheLine != 0 {
		t.Fatalf("a shard is %d bytes, want a multiple of %d so that shards start on their own lines", size, stripe.CacheLine)
	}
	for _, n := range []int{1, 2, 4, 8, 16} {
		r := newRate(RateConfig{Rate: 1e9, Burst: 1e6}, clock.Real, n)
		if got := len(r.shards); got != n {
			t.Fatalf("newRate(..., %d) made %d shards", n, got)
		}
		if a := uintptr(unsafe.Pointer(&r.shards[0])); a%line != 0 {
			t.Fatalf("%d shards start at %#x, not on a cache line", n, a)
		}
	}
}

func TestRateNilContextPanics(t *testing.T) {
	r := NewRate(RateConfig{})
	defer r.Close()
	defer func() {
		if v := recover(); v == nil {
			t.Fatal("Wait(nil) did not panic")
		}
	}()
	r.Wait(nil) //nolint:staticcheck // the point of the test
}

func TestConfigValidation(t *testing.T) {
	bad := []struct {
		name string
		f    func()
	}{
		{"Rate NaN", func() { NewRate(RateConfig{Rate: math.NaN()}) }},
		{"Rate negative", func() { NewRate(RateConfig{Rate: -1}) }},
		{"Rate Inf", func() { NewRate(RateConfig{Rate: math.Inf(1)}) }},
		{"Rate too high", func() { NewRate(RateConfig{Rate: 2e9}) }},
		{"Rate and Every", func() { NewRate(RateConfig{Rate: 1, Every: time.Second}) }},
		{"Every negative", func() { NewRate(RateConfig{Every: -time.Second}) }},
		{"Burst negative", func() { NewRate(RateConfig{Burst: -1}) }},
		{"Burst absurd", func() { NewRate(RateConfig{Burst: math.MaxInt}) }},
		{"Burst window", func() { NewRate(RateConfig{Every: time.Hour, Burst: 1000}) }},
		{"MaxKeys", func() { NewKeyed(KeyedConfig{MaxKeys: math.MaxInt}) }},
		{"IdleTimeout", func() { NewKeyed(KeyedConfig{IdleTimeout: -1}) }},
		{"Keyed Rate", func() { NewKeyed(KeyedConfig{Rate: RateConfig{Rate: math.NaN()}}) }},
		{"MaxConcurrent", func() { NewBulkhead(BulkheadConfig{MaxConcurrent: -1}) }},
		{"MaxQueue", func() { NewBulkhead(BulkheadConfig{MaxQueue: math.MaxInt}) }},
		{"QueueTimeout", func() { NewBulkhead(BulkheadConfig{QueueTimeout: -time.Second}) }},
		{"Tolerance NaN", func() { NewAdaptive(AdaptiveConfig{Tolerance: math.NaN()}) }},
		{"Tolerance < 1", func() { NewAdaptive(AdaptiveConfig{Tolerance: 0.5}) }},
		{"Min > Max", func() { NewAdaptive(AdaptiveConfig{MinLimit: 10, MaxLimit: 5}) }},
		{"Initial < Min", func() { NewAdaptive(AdaptiveConfig{MinLimit: 10, InitialLimit: 5}) }},
		{"Window", func() { NewAdaptive(AdaptiveConfig{Window: time.Hour}) }},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				err, _ := recover().(error)
				var ce *bulwark.ConfigError
				if !errors.Is(err, bulwark.ErrInvalidConfig) || !errors.As(err, &ce) || ce.Package != "limit" {
					t.Fatalf("New panicked with %v, want a limit *bulwark.ConfigError", err)
				}
			}()
			c.f()
		})
	}
	for _, err := range []error{
		RateConfig{}.Validate(), RateConfig{Rate: MaxRate}.Validate(), RateConfig{Every: MaxEvery}.Validate(),
		KeyedConfig{}.Validate(), BulkheadConfig{MaxQueue: 10}.Validate(), AdaptiveConfig{MinLimit: 50}.Validate(),
	} {
		if err != nil {
			t.Errorf("valid config rejected: %v", err)
		}
	}
}

func TestDefaults(t *testing.T) {
	g := RateConfig{}.gcra()
	if g.t != int64(10*time.Millisecond) || g.tau != 10*g.t {
		t.Fatalf("zero RateConfig: interval %v, burst %d; want 10ms and 10", time.Duration(g.t), g.tau/g.t)
	}
	if g := (RateConfig{Rate: 5}).gcra(); g.tau != g.t {
		t.Fatalf("Rate 5: burst %d, want 1", g.tau/g.t)
	}
	if g := (RateConfig{Rate: 1000}).gcra(); g.tau/g.t != 100 {
		t.Fatalf("Rate 1000: burst %d, want 100", g.tau/g.t)
	}
}

func TestHotPathsDoNotAllocate(t *testing.T) {
	r := NewRate(RateConfig{Rate: 1e6})
	defer r.Close()
	k := NewKeyed(KeyedConfig{Rate: RateConfig{Rate: 1e6}})
	defer k.Close()
	b := NewBulkhead(BulkheadConfig{})
	defer b.Close()
	a := NewAdaptive(AdaptiveConfig{})
	defer a.Close()
	ctx := context.Background()
	key := "client-1"
	k.Allow(key)
	for name, f := range map[string]func(){
		"Rate.Allow":       func() { r.Allow() },
		"Rate.Decide":      func() { r.Decide() },
		"Rate.Wait":        func() { r.Wait(ctx) },
		"Keyed.Allow":      func() { k.Allow(key) },
		"Keyed.Decide":     func() { k.Decide(ctx, key) },
		"Bulkhead.Acquire": func() { p, _ := b.Acquire(ctx); p.Release(bulwark.Success) },
		"Bulkhead.Do":      func() { b.Do(ctx, func(context.Context) error { return nil }) },
		"Adaptive.Acquire": func() { p, _ := a.Acquire(ctx); p.Release(bulwark.Success) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocs per call, want 0", name, n)
		}
	}
}
