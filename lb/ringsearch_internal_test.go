package lb

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRingFirstMatchesBinarySearch guards the ring's search: for rings of
// every size up to 70 points and a few large ones, and for keys below,
// between, on and above the points, first must return the first point at
// or after the key, or 0 past the last one.
func TestRingFirstMatchesBinarySearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1024, 1025, 4096 + 3, 1 << 16}
	for n := 1; n <= 70; n++ {
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		hs := make([]uint64, n)
		for i := range hs {
			hs[i] = rng.Uint64()
		}
		if n > 3 {
			hs[1] = hs[0] // equal points happen (64-bit hashes of distinct inputs rarely collide, but may)
		}
		slices.Sort(hs)
		p := &ringPicker{hashes: hs}
		keys := []uint64{0, 1, math.MaxUint64, hs[0], hs[n-1], hs[0] - 1, hs[n-1] + 1}
		for _, h := range hs {
			keys = append(keys, h, h-1, h+1)
		}
		for range 1000 {
			keys = append(keys, rng.Uint64())
		}
		for _, k := range keys {
			want, _ := slices.BinarySearch(hs, k)
			if want == n {
				want = 0
			}
			if got := p.first(k); got != want {
				t.Fatalf("ring of %d: first(%d) = %d, want %d", n, k, got, want)
			}
		}
	}
}
