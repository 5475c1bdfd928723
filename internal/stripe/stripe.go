// Package stripe spreads hot counters over cache-line-padded cells, one per
// P (the runtime's logical processor), in the manner of Java's LongAdder.
//
// On a multi-core machine a single atomic word that every goroutine adds to
// is a contended cache line: on 2 cores a contended atomic.Add costs about
// as much as a contended mutex (~20 ns). Striping helps only if a cell
// stays with one core: a stripe picked at random per call bounces cache
// lines just the same. [Slot] therefore returns the id of the P the calling
// goroutine runs on, so that goroutines on one P keep hitting one cell,
// which stays in that core's cache.
//
// Usage: allocate [Size] cells (each padded to [CacheLine] bytes, e.g. by
// embedding a [Pad]), index them with Slot()&(len-1), update them with
// atomic operations, and sum them on the (rare) read path:
//
//	c := stripe.NewCounter()
//	c.Add(1)            // hot path: one uncontended atomic add
//	n := c.Sum()        // read path: sums every cell
//
// Cells must still be updated atomically: a goroutine may be moved to
// another P between Slot and the update, and GOMAXPROCS may grow beyond the
// number of cells, so two Ps can occasionally share a cell. That costs a
// little contention, never a lost update.
//
// Reading a sum while writers run gives a value that was true at no single
// instant, only approximately; callers that need an exact count must use
// something else.
package stripe

import (
	"runtime"
	"sync/atomic"
	_ "unsafe" // for go:linkname
)

// CacheLine is the padding unit in bytes. It is two 64-byte lines, because
// x86 adjacent-line prefetching makes neighbours of a 64-byte cell share
// traffic too.
const CacheLine = 128

// Pad is CacheLine bytes of padding; embed it after a cell's fields (or use
// [Int64]).
type Pad [CacheLine]byte

// procPin and procUnpin are the runtime's P pinning, used by sync.Pool.
// They are among the runtime symbols kept linkable on purpose (see the
// "hall of shame" comment on runtime.procPin and go.dev/issue/67401).
//
//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

// Slot returns the id of the P the calling goroutine is running on: a small
// integer in [0, GOMAXPROCS). It costs about a nanosecond and does not
// allocate. Index cells with Slot()&mask, where mask is len(cells)-1 and
// len(cells) comes from [Size].
func Slot() int {
	p := procPin()
	procUnpin()
	return p
}

// Size returns the number of cells a striped structure should have: the
// current GOMAXPROCS rounded up to a power of two (so Slot()&(Size()-1) is
// a cheap index), at least 1.
func Size() int {
	n := runtime.GOMAXPROCS(0)
	s := 1
	for s < n {
		s <<= 1
	}
	return s
}

// Int64 is an atomic int64 alone on its cache lines.
type Int64 struct {
	atomic.Int64
	_ [CacheLine - 8]byte
}

// Counter is a striped int64 counter: Add is cheap under contention, Sum
// is O(cells). Create it with [NewCounter]; the zero Counter is not usable.
// A Counter is safe for concurrent use.
type Counter struct {
	cells []Int64
	mask  int
}

// NewCounter returns a Counter sized for the current GOMAXPROCS.
func NewCounter() *Counter {
	n := Size()
	return &Counter{cells: make([]Int64, n), mask: n - 1}
}

// Add adds n to the counter: one uncontended atomic add on the cell of the
// current P. It pins the P itself rather than calling [Slot], which saves a
// call level on the hottest path of the library.
func (c *Counter) Add(n int64) {
	p := procPin()
	procUnpin()
	c.cells[p&c.mask].Add(n)
}

// Sum returns the sum of every cell.
func (c *Counter) Sum() int64 {
	var s int64
	for i := range c.cells {
		s += c.cells[i].Load()
	}
	return s
}
