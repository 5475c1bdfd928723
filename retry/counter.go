package retry

import (
	"runtime"
	"sync/atomic"
	_ "unsafe" // for go:linkname
)

// counter is a striped event counter: Add touches the stripe of the
// current P (scheduler processor), so goroutines on different cores do not
// fight over one cache line; Load sums the stripes. It is what the success
// path pays for both the budget deposit and the attempts metric: one
// uncontended atomic add.
type counter struct {
	stripes []stripe
	mask    int
}

type stripe struct {
	n atomic.Uint64
	_ [56]byte // pad to a 64-byte cache line
}

func newCounter() *counter {
	n := 1
	for n < runtime.GOMAXPROCS(0) && n < 64 {
		n *= 2
	}
	return &counter{stripes: make([]stripe, n), mask: n - 1}
}

// procPin pins the goroutine to its P and returns the P's id; it is the
// same runtime hook sync.Pool uses for its per-P shards, one of the symbols
// the runtime keeps linkable (go.dev/issue/67401).
//
//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

func (c *counter) Add(n uint64) {
	i := procPin()
	procUnpin()
	// The goroutine may migrate between procUnpin and Add; that only costs
	// a little contention, never a lost count, since the add is atomic.
	c.stripes[i&c.mask].n.Add(n)
}

func (c *counter) Load() uint64 {
	var s uint64
	for i := range c.stripes {
		s += c.stripes[i].n.Load()
	}
	return s
}
