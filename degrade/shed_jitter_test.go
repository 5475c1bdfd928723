package degrade_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/degrade"
)

// A fast, lightly loaded service (20 µs requests at 2% busy) counted as
// overloaded as soon as a burst of 8 requests took 100 µs (a GC pause: 5x
// the best latency, but no queue), and shed Critical requests at
// MinInFlight. Overload now also needs the latency to exceed the best by
// QueueDelay (CoDel's 5 ms target).
func TestShedderIgnoresMicrosecondJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := degrade.NewShedder(degrade.ShedderConfig{})
		defer s.Close()
		for range 2000 {
			s.Do(context.Background(), degrade.Default, func(context.Context) error { time.Sleep(20 * time.Microsecond); return nil })
			time.Sleep(time.Millisecond)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		shed := 0
		for range 5 {
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := s.Do(context.Background(), degrade.Critical, func(context.Context) error { time.Sleep(100 * time.Microsecond); return nil }); err != nil {
						mu.Lock()
						shed++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			time.Sleep(time.Millisecond)
		}
		if st := s.Stats(); shed != 0 || st.Overloaded {
			t.Fatalf("shed %d critical requests of a healthy fast service: %+v", shed, st)
		}
	})
}
