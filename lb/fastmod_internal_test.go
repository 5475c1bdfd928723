package lb

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestFastmodIsExact guards the round-robin index: fastmod must equal x %
// n for every 32-bit x and every set size.
func TestFastmodIsExact(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 10, 64, 1000, MaxEndpoints, MaxScheduleLength} {
		p := newRR(make([]*member, n))
		xs := []uint32{0, 1, uint32(n - 1), uint32(n), math.MaxUint32, math.MaxUint32 - 1}
		for range 100000 {
			xs = append(xs, rand.Uint32())
		}
		for _, x := range xs {
			if got, want := p.fastmod(x), uint64(x)%uint64(n); got != want {
				t.Fatalf("fastmod(%d) with n=%d = %d, want %d", x, n, got, want)
			}
		}
	}
}
