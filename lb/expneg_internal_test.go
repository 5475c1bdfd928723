package lb

import (
	"math"
	"slices"
	"testing"
	"time"
)

// TestExpNegErrorBound guards the decay of P2C's latency average: expNeg
// must stay within 1e-11 of exp(-x) (relative) wherever exp(-x) is a
// normal float64, on both sides of the switch from the series to math.Exp
// at 1/64, and give 0 far beyond.
func TestExpNegErrorBound(t *testing.T) {
	const bound = 1e-11
	check := func(x float64) {
		t.Helper()
		got, want := expNeg(x), math.Exp(-x)
		if e := math.Abs(got/want - 1); e > bound {
			t.Fatalf("expNeg(%g) = %g, exp = %g: relative error %.3g > %g", x, got, want, e, bound)
		}
	}
	if got := expNeg(0); got != 1 {
		t.Fatalf("expNeg(0) = %g, want 1", got)
	}
	for i := range 1 << 20 { // [0, 708) in steps of 708/2^20
		check(708 * float64(i) / (1 << 20))
	}
	for i := range 1 << 16 { // the series' range, finely
		check(0x1p-6 * float64(i) / (1 << 16))
	}
	for _, x := range []float64{math.Nextafter(0x1p-6, 0), 0x1p-6, math.Nextafter(0x1p-6, 1)} {
		check(x)
	}
	for _, x := range []float64{746, 1e6, 1e300, math.Inf(1)} {
		if got := expNeg(x); got != 0 {
			t.Fatalf("expNeg(%g) = %g, want 0", x, got)
		}
	}
}

// TestExpNegFallsMonotonically guards the same function's shape: an idle
// endpoint's estimate never rises as time passes, including where the
// series hands over to math.Exp.
func TestExpNegFallsMonotonically(t *testing.T) {
	xs := []float64{}
	for i := range 1 << 20 {
		xs = append(xs, 710*float64(i)/(1<<20))
	}
	xs = append(xs, math.Nextafter(0x1p-6, 0), 0x1p-6, math.Nextafter(0x1p-6, 1))
	slices.Sort(xs)
	for i := 1; i < len(xs); i++ {
		if a, b := expNeg(xs[i-1]), expNeg(xs[i]); b > a {
			t.Fatalf("expNeg(%g) = %.17g > expNeg(%g) = %.17g", xs[i], b, xs[i-1], a)
		}
	}
}

// TestPeakEWMAFollowsDecay pins P2CConfig.Decay's documented meaning: an
// estimate falls by e every Decay while the endpoint gets no calls, a
// sample above the estimate replaces it at once (peak), and one below is
// averaged in with the weight 1 - exp(-elapsed/Decay).
func TestPeakEWMAFollowsDecay(t *testing.T) {
	const decayT = 10 * time.Second
	b := NewSeeded(Config{Endpoints: []Endpoint{{Addr: "a:1"}}, Policy: P2C(P2CConfig{Decay: decayT})}, 1)
	defer b.Close()
	m := b.members[0] // private: the estimate has no public reader
	const t0 = int64(1 << 40)
	near := func(got, want float64, what string) {
		t.Helper()
		if math.Abs(got/want-1) > 1e-5 {
			t.Fatalf("%s = %g, want %g", what, got, want)
		}
	}
	b.observe(m, t0, 1e9) // 1 s: the first sample is the estimate
	near(b.cost(m, t0), 1e9, "cost at once")
	near(b.cost(m, t0+int64(decayT)), 1e9/math.E, "cost after one Decay")
	near(b.cost(m, t0+3*int64(decayT)), 1e9*math.Exp(-3), "cost after three Decays")
	b.observe(m, t0+int64(decayT), 1e8) // 100 ms, below: averaged
	near(math.Float64frombits(m.cost.Load()), 1e8+(1e9-1e8)/math.E, "average after one Decay")
	b.observe(m, t0+int64(decayT)+1, 5e9) // above: peak
	near(math.Float64frombits(m.cost.Load()), 5e9, "peak")
}
