package degrade

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark"
)

func TestThrottleFormula(t *testing.T) {
	for _, tc := range []struct {
		r, a int64
		k    float64
		want float64
	}{{0, 0, 2, 0}, {100, 100, 2, 0}, {100, 50, 2, 0}, {100, 40, 2, 20.0 / 101}, {1000, 0, 2, 1000.0 / 1001}, {10, 5, 1.5, 2.5 / 11}} {
		if got := rejectProbability(tc.r, tc.a, tc.k); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("p(%d, %d, %v) = %v, want %v", tc.r, tc.a, tc.k, got, tc.want)
		}
	}
}

// TestThrottleProbabilityOnRecordedCounts records outcomes, checks that
// Probability is the formula on them, then checks every Allow decision
// against the formula with the same seeded source, and the rejection
// rate against its expectation.
func TestThrottleProbabilityOnRecordedCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := NewThrottler(ThrottlerConfig{})
		defer th.Close()
		for range 200 {
			th.Done(bulwark.Success)
		}
		for range 800 {
			th.Done(bulwark.Failure)
		}
		th.Done(bulwark.Neutral) // not counted
		if r, a := th.Counts(); r != 1000 || a != 200 {
			t.Fatalf("Counts = %d, %d", r, a)
		}
		if p, want := th.Probability(), 600.0/1001; p != want {
			t.Fatalf("Probability = %v, want %v", p, want)
		}

		src := rand.New(rand.NewPCG(1, 2))
		th.setRand(src.Float64)
		mirror := rand.New(rand.NewPCG(1, 2))
		requests, accepts := int64(1000), int64(200)
		rejected, expected := 0, 0.0
		const n = 5000
		for i := range n {
			p := max(0, (float64(requests)-2*float64(accepts))/float64(requests+1))
			expected += p
			wantReject := p > 0 && mirror.Float64() < p
			err := th.Allow()
			if gotReject := errors.Is(err, ErrThrottled); gotReject != wantReject {
				t.Fatalf("request %d: rejected %v, formula says %v (p=%v)", i, gotReject, wantReject, p)
			}
			requests++
			if err != nil {
				rejected++
				var te *ThrottleError
				if !errors.As(err, &te) || te.Probability != p {
					t.Fatalf("ThrottleError %v, want probability %v", err, p)
				}
				continue
			}
			// The backend accepts one request in three.
			o := bulwark.Failure
			if i%3 == 0 {
				o = bulwark.Success
				accepts++
			}
			th.Done(o)
		}
		sd := math.Sqrt(expected)
		if math.Abs(float64(rejected)-expected) > 5*sd {
			t.Errorf("%d rejections, expected %.0f ± %.0f", rejected, expected, 5*sd)
		}
	})
}

func TestThrottleWindowSlides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := NewThrottler(ThrottlerConfig{Window: 10 * time.Second})
		defer th.Close()
		for range 100 {
			th.Done(bulwark.Failure)
		}
		if th.Probability() < 0.99*100/101 {
			t.Fatalf("p = %v", th.Probability())
		}
		time.Sleep(11 * time.Second)
		if r, _ := th.Counts(); r != 0 || th.Probability() != 0 {
			t.Fatalf("after the window: %d requests, p = %v", r, th.Probability())
		}
	})
}

func TestThrottleDo(t *testing.T) {
	th := NewThrottler(ThrottlerConfig{})
	defer th.Close()
	boom := errors.New("boom")
	th.Do(context.Background(), func(context.Context) error { return nil })
	if err := th.Do(context.Background(), func(context.Context) error { return boom }); err != boom {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	th.Do(ctx, func(ctx context.Context) error { return ctx.Err() })
	if r, a := th.Counts(); r != 2 || a != 1 {
		t.Fatalf("counts %d %d: a caller's cancellation must not count", r, a)
	}
	func() {
		defer func() { recover() }()
		th.Do(context.Background(), func(context.Context) error { panic("x") })
	}()
	if r, _ := th.Counts(); r != 3 {
		t.Fatalf("a panic was not recorded: %d requests", r)
	}
}

func TestThrottlerValidate(t *testing.T) {
	for _, c := range []ThrottlerConfig{{K: 1}, {K: math.NaN()}, {Window: time.Millisecond}, {Buckets: -1}} {
		if err := c.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// TestHotPathsAllocateNothing: the admitted paths of the shedder and the
// throttler, and a successful Call without last good values.
func TestHotPathsAllocateNothing(t *testing.T) {
	s := NewShedder(ShedderConfig{})
	defer s.Close()
	if n := testing.AllocsPerRun(1000, func() {
		tk, _ := s.Allow(Critical)
		s.Done(tk)
	}); n != 0 {
		t.Errorf("Shedder Allow+Done: %v allocs", n)
	}
	th := NewThrottler(ThrottlerConfig{})
	defer th.Close()
	if n := testing.AllocsPerRun(1000, func() {
		if th.Allow() == nil {
			th.Done(bulwark.Success)
		}
	}); n != 0 {
		t.Errorf("Throttler Allow+Done: %v allocs", n)
	}
	f := New(Config{})
	defer f.Close()
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	if n := testing.AllocsPerRun(1000, func() { Call(ctx, f, "k", fn, nil) }); n != 0 {
		t.Errorf("Call: %v allocs", n)
	}
}
