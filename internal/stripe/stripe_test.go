package stripe

import (
	"runtime"
	"sync"
	"testing"
	"unsafe"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSizeIsPowerOfTwoCoveringGOMAXPROCS(t *testing.T) {
	s := Size()
	if s < runtime.GOMAXPROCS(0) || s&(s-1) != 0 {
		t.Fatalf("Size() = %d for GOMAXPROCS %d", s, runtime.GOMAXPROCS(0))
	}
}

func TestSlotWithinGOMAXPROCS(t *testing.T) {
	for range 1000 {
		if p := Slot(); p < 0 || p >= runtime.GOMAXPROCS(0) {
			t.Fatalf("Slot() = %d", p)
		}
	}
}

func TestInt64IsPadded(t *testing.T) {
	if got := unsafe.Sizeof(Int64{}); got != CacheLine {
		t.Fatalf("sizeof(Int64) = %d, want %d", got, CacheLine)
	}
}

func TestCounterConcurrentSum(t *testing.T) {
	c := NewCounter()
	if c.Sum() != 0 {
		t.Fatal("fresh counter not zero")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				c.Add(1)
			}
		})
	}
	wg.Wait()
	if got := c.Sum(); got != 8000 {
		t.Fatalf("Sum = %d, want 8000", got)
	}
}

func TestCounterAddDoesNotAllocate(t *testing.T) {
	c := NewCounter()
	if a := testing.AllocsPerRun(1000, func() { c.Add(1) }); a != 0 {
		t.Fatalf("allocs = %v", a)
	}
}

func BenchmarkCounterAdd(b *testing.B) {
	c := NewCounter()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Add(1)
		}
	})
}
