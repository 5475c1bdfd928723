package limit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark"
)

// The cap holds under many goroutines (run with -race).
func TestBulkheadCapHoldsUnderManyGoroutines(t *testing.T) {
	for _, queue := range []int{0, 8} {
		b := NewBulkhead(BulkheadConfig{MaxConcurrent: 4, MaxQueue: queue, QueueTimeout: time.Minute})
		var cur, peak, ran, rejected atomic.Int64
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 200 {
					err := b.Do(context.Background(), func(context.Context) error {
						n := cur.Add(1)
						for {
							p := peak.Load()
							if n <= p || peak.CompareAndSwap(p, n) {
								break
							}
						}
						ran.Add(1)
						cur.Add(-1)
						return nil
					})
					if errors.Is(err, ErrConcurrencyLimited) {
						rejected.Add(1)
					} else if err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		b.Close()
		if p := peak.Load(); p > 4 || p < 1 {
			t.Fatalf("queue %d: %d calls ran at once, want at most 4", queue, p)
		}
		if ran.Load()+rejected.Load() != 32*200 || b.InFlight() != 0 {
			t.Fatalf("queue %d: ran %d + rejected %d != %d, in flight %d", queue, ran.Load(), rejected.Load(), 32*200, b.InFlight())
		}
	}
}

func TestBulkheadRejectsAtOnceWithoutQueue(t *testing.T) {
	b := NewBulkhead(BulkheadConfig{MaxConcurrent: 2})
	defer b.Close()
	ctx := context.Background()
	p1, _ := b.Acquire(ctx)
	p2, _ := b.Acquire(ctx)
	_, err := b.Acquire(ctx)
	var re *RejectedError
	if !errors.As(err, &re) || !errors.Is(err, ErrConcurrencyLimited) || re.RetryAfter() != 0 {
		t.Fatalf("third Acquire = %v, want ErrConcurrencyLimited", err)
	}
	if b.TryAcquire() {
		t.Fatal("TryAcquire took a slot from a full bulkhead")
	}
	p1.Release(bulwark.Success)
	if !b.TryAcquire() {
		t.Fatal("TryAcquire failed with a free slot")
	}
	b.Release()
	p2.Release(bulwark.Failure)
	if b.InFlight() != 0 || b.Limit() != 2 {
		t.Fatalf("InFlight %d Limit %d", b.InFlight(), b.Limit())
	}
}

func TestBulkheadQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxQueue: 2, QueueTimeout: time.Second})
		defer b.Close()
		ctx := context.Background()
		held, _ := b.Acquire(ctx)

		got := make(chan error, 3)
		for range 2 {
			go func() {
				p, err := b.Acquire(ctx)
				if err == nil {
					time.Sleep(100 * time.Millisecond)
					p.Release(bulwark.Success)
				}
				got <- err
			}()
		}
		synctest.Wait()
		// The queue is full: a third caller is rejected at once.
		if _, err := b.Acquire(ctx); !errors.Is(err, ErrConcurrencyLimited) {
			t.Fatalf("Acquire with a full queue = %v, want ErrConcurrencyLimited", err)
		}
		// Freeing the slot lets the queued calls through, one at a time.
		time.Sleep(500 * time.Millisecond)
		held.Release(bulwark.Success)
		for range 2 {
			if err := <-got; err != nil {
				t.Fatalf("queued call: %v", err)
			}
		}

		// A queued call gives up after QueueTimeout...
		held, _ = b.Acquire(ctx)
		start := time.Now()
		if _, err := b.Acquire(ctx); !errors.Is(err, ErrConcurrencyLimited) || time.Since(start) != time.Second {
			t.Fatalf("queued Acquire = %v after %v, want ErrConcurrencyLimited after 1s", err, time.Since(start))
		}
		// ...or when its context ends, with the context's cause.
		cause := errors.New("gone")
		cctx, cancel := context.WithCancelCause(ctx)
		go func() { _, err := b.Acquire(cctx); got <- err }()
		synctest.Wait()
		cancel(cause)
		if err := <-got; !errors.Is(err, cause) {
			t.Fatalf("cancelled queued Acquire = %v, want the cause", err)
		}
		held.Release(bulwark.Success)
		if b.InFlight() != 0 {
			t.Fatalf("InFlight = %d at the end", b.InFlight())
		}
	})
}

func TestBulkheadDoAndCall(t *testing.T) {
	b := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	defer b.Close()
	ctx := context.Background()
	v, err := Call(ctx, b, func(context.Context) (int, error) { return 42, nil })
	if v != 42 || err != nil {
		t.Fatalf("Call = %d, %v", v, err)
	}
	// A panic frees the slot and goes on.
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not go on")
			}
		}()
		b.Do(ctx, func(context.Context) error { panic("boom") })
	}()
	if b.InFlight() != 0 {
		t.Fatal("a panicking call kept its slot")
	}
	for _, f := range []func(){
		func() { b.Do(nil, func(context.Context) error { return nil }) }, //nolint:staticcheck
		func() { b.Do(ctx, nil) },
		func() { Call[int](ctx, b, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("nil argument did not panic")
				}
			}()
			f()
		}()
	}
}

// Regression: an unpaired Release used to take the count of calls in
// flight below zero and leave it there, so the bulkhead admitted one call
// more than MaxConcurrent ever after. It panics and frees nothing.
func TestBulkheadUnpairedReleasePanicsAndKeepsTheCap(t *testing.T) {
	b := NewBulkhead(BulkheadConfig{MaxConcurrent: 2})
	defer b.Close()
	if !b.TryAcquire() {
		t.Fatal("TryAcquire failed on an empty bulkhead")
	}
	b.Release()
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("a Release with no slot taken did not panic")
			}
		}()
		b.Release()
	}()
	if n := b.InFlight(); n != 0 {
		t.Fatalf("InFlight = %d after the unpaired Release, want 0", n)
	}
	for i := range 2 {
		if !b.TryAcquire() {
			t.Fatalf("TryAcquire %d failed with a free slot", i+1)
		}
	}
	if b.TryAcquire() {
		t.Fatal("a third call got a slot of a bulkhead capped at 2 after an unpaired Release")
	}
	if n := b.InFlight(); n != 2 {
		t.Fatalf("InFlight = %d, want 2", n)
	}
}

// The decisions counter counts every admission once, whether its slot is
// still taken or freed already, and every rejection; in_flight counts the
// slots taken.
func TestBulkheadCountsEveryAdmissionOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rd := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
		defer mp.Shutdown(context.Background())
		b := NewBulkhead(BulkheadConfig{Name: "b", MaxConcurrent: 3, MaxQueue: 1, QueueTimeout: time.Second, MeterProvider: mp})
		defer b.Close()
		ctx := context.Background()
		held, _ := b.Acquire(ctx) // 1 admitted, kept
		for range 4 {             // 4 admitted and freed
			if !b.TryAcquire() {
				t.Fatal("TryAcquire failed with free slots")
			}
			b.Release()
		}
		p1, _ := b.Acquire(ctx) // 2 admitted: the bulkhead is full
		p2, _ := b.Acquire(ctx)
		if b.TryAcquire() { // 1 rejected at once
			t.Fatal("TryAcquire took a slot of a full bulkhead")
		}
		if _, err := b.Acquire(ctx); !errors.Is(err, ErrConcurrencyLimited) { // 1 rejected after QueueTimeout
			t.Fatalf("queued Acquire on a full bulkhead = %v, want ErrConcurrencyLimited", err)
		}
		p1.Release(bulwark.Success)
		p2.Release(bulwark.Success)

		got := map[string]int64{}
		var rm metricdata.ResourceMetrics
		if err := rd.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				var dps []metricdata.DataPoint[int64]
				switch d := m.Data.(type) {
				case metricdata.Sum[int64]:
					dps = d.DataPoints
				case metricdata.Gauge[int64]:
					dps = d.DataPoints
				}
				for _, dp := range dps {
					dec, _ := dp.Attributes.Value(attrDecision)
					got[m.Name+"/"+dec.AsString()] = dp.Value
				}
			}
		}
		for key, want := range map[string]int64{
			"bulwark.limit.decisions/admitted": 7,
			"bulwark.limit.decisions/rejected": 2,
			"bulwark.limit.in_flight/":         1,
		} {
			if got[key] != want {
				t.Errorf("%s = %d, want %d", key, got[key], want)
			}
		}
		held.Release(bulwark.Success)
	})
}

// inFlight's fallback, taken when releases keep landing between its
// reads, still reads the slots taken when nothing moves.
func TestBulkheadInFlightFallback(t *testing.T) {
	var c slotCounts
	for range 5 {
		c.take(10)
	}
	c.free()
	if n := c.inFlightTries(0); n != 4 {
		t.Fatalf("fallback read %d slots taken, want 4", n)
	}
	if n := c.inFlight(); n != 4 {
		t.Fatalf("inFlight = %d, want 4", n)
	}
}
