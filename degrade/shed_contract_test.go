package degrade

import (
	"errors"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
)

// The shedding contract, white-box with the fake clock (set through the
// unexported clk field): when a Critical request may be rejected.

// fakeShedder returns a shedder on a fake clock that has seen one bucket
// of 4 requests at a time, 10 ms each (36 completions: baseline 10 ms,
// capacity 3.6), and stands at the start of the next bucket.
func fakeShedder(t *testing.T, cfg ShedderConfig) (*Shedder, *clock.Fake) {
	t.Helper()
	s := NewShedder(cfg)
	t.Cleanup(func() { s.Close() })
	fc := clock.NewFake(time.Time{})
	s.clk = fc
	s.cur.Store(fc.Nanotime() / s.bucketNs)
	for range 9 {
		var tk [4]ShedTicket
		for i := range tk {
			tk[i], _ = s.Allow(Default)
		}
		fc.Advance(10 * time.Millisecond)
		for i := range tk {
			s.Done(tk[i])
		}
	}
	fc.Advance(s.bucketNs0() - 90*time.Millisecond)
	return s, fc
}

func (s *Shedder) bucketNs0() time.Duration { return time.Duration(s.bucketNs) }

// admit calls Allow(c) n times and returns the tickets admitted.
func admit(t *testing.T, s *Shedder, c Criticality, n int) []ShedTicket {
	t.Helper()
	var tk []ShedTicket
	for range n {
		if x, err := s.Allow(c); err == nil {
			tk = append(tk, x)
		}
	}
	return tk
}

// queueBuckets makes the current bucket and the next two that queued (4
// requests of 50 ms against a 10 ms baseline, in each) and moves to the
// one after.
func queueBuckets(s *Shedder, fc *clock.Fake) {
	queueBucket(s, fc)
	queueBucket(s, fc)
}

// queueBucket makes the current bucket one that queued and moves to the
// next one.
func queueBucket(s *Shedder, fc *clock.Fake) {
	tk := make([]ShedTicket, 0, 4)
	for range 4 {
		x, _ := s.Allow(Critical)
		tk = append(tk, x)
	}
	fc.Advance(50 * time.Millisecond)
	for _, x := range tk {
		s.Done(x)
	}
	fc.Advance(s.bucketNs0() - 50*time.Millisecond)
}

// TestShedCriticalCountsOnlyCriticalWork: with 40 sheddable and 40 default
// requests in flight, far over every limit, a queued server still admits
// Critical requests until the critical ones alone reach capacity × (1 +
// 2·Headroom); the next is shed, and from then on every lower tier is
// shed too (lower tiers go first, entirely).
func TestShedCriticalCountsOnlyCriticalWork(t *testing.T) {
	s, fc := fakeShedder(t, ShedderConfig{MinInFlight: 1})
	low := append(admit(t, s, Sheddable, 40), admit(t, s, Default, 40)...)
	if len(low) != 80 {
		t.Fatalf("before any queueing %d of 80 admitted", len(low))
	}
	queueBuckets(s, fc)
	st := s.Stats()
	if !st.Overloaded || math.Abs(st.Capacity-3.6) > 1e-9 {
		t.Fatalf("want a queued server of capacity 3.6: %+v", st)
	}
	if _, err := s.Allow(Sheddable); !errors.Is(err, ErrShed) {
		t.Fatalf("sheddable with 80 in flight: %v", err)
	}
	if _, err := s.Allow(Default); !errors.Is(err, ErrShed) {
		t.Fatalf("default with 40 default in flight: %v", err)
	}
	limit := int(math.Ceil(st.Capacity * 3)) // 10.8: the 11th is admitted with 10 in flight
	crit := admit(t, s, Critical, limit)
	if len(crit) != limit {
		t.Fatalf("%d of %d critical requests admitted with no critical work in flight", len(crit), limit)
	}
	_, err := s.Allow(Critical)
	var se *ShedError
	if !errors.As(err, &se) || se.Criticality != Critical {
		t.Fatalf("critical with %d critical in flight, over %.1f: %v", limit, st.Capacity*3, err)
	}
	for _, c := range []Criticality{Sheddable, Default} {
		if _, err := s.Allow(c); !errors.Is(err, ErrShed) {
			t.Errorf("%v admitted while critical requests are shed", c)
		}
	}
	for _, x := range append(low, crit...) {
		s.Done(x)
	}
	if st := s.Stats(); st.InFlight != 0 {
		t.Fatalf("in flight %d after every Done", st.InFlight)
	}
}

// TestShedCriticalNeedsTwoQueuedBuckets: one slow request (or the cool-off
// after a shed) makes the lower tiers shed at once, but not Critical
// ones: they are shed only while the last two full buckets queued, when
// the estimate holds a whole bucket of the server under load and not only
// a lighter load's low bound.
func TestShedCriticalNeedsTwoQueuedBuckets(t *testing.T) {
	s, fc := fakeShedder(t, ShedderConfig{MinInFlight: 1})
	slow, _ := s.Allow(Default)
	fc.Advance(50 * time.Millisecond)
	s.Done(slow) // 50 ms against 10: queueing, by one request
	if !s.Stats().Overloaded {
		t.Fatal("one slow request: not overloaded")
	}
	held := admit(t, s, Critical, 30) // 30 > 3.6 × 3
	if len(held) != 30 {
		t.Fatalf("%d of 30 critical requests admitted on one request's evidence", len(held))
	}
	if _, err := s.Allow(Sheddable); !errors.Is(err, ErrShed) {
		t.Fatalf("sheddable not shed: %v", err)
	}
	fc.Advance(60 * time.Millisecond) // the bucket (mean 50 ms) is over
	extra, err := s.Allow(Critical)
	if err != nil {
		t.Fatalf("critical, 30 in flight, after one queued bucket: %v", err)
	}
	queueBucket(s, fc) // a second one
	if _, err := s.Allow(Critical); !errors.Is(err, ErrShed) {
		t.Fatalf("critical, 31 in flight, after two queued buckets: %v", err)
	}
	for _, x := range held {
		s.Done(x)
	}
	s.Done(extra)
}

// TestShedMinInFlightPerCriticality: whatever the estimate, no request is
// shed while fewer than MinInFlight requests of its criticality or above
// are in flight.
func TestShedMinInFlightPerCriticality(t *testing.T) {
	s, fc := fakeShedder(t, ShedderConfig{MinInFlight: 20})
	low := admit(t, s, Sheddable, 100)
	queueBuckets(s, fc)
	crit := admit(t, s, Critical, 20)
	if len(crit) != 20 {
		t.Fatalf("%d of 20 critical admitted under MinInFlight 20 (limit 10.8)", len(crit))
	}
	if _, err := s.Allow(Critical); !errors.Is(err, ErrShed) {
		t.Fatalf("the 21st critical: %v", err)
	}
	for _, x := range append(low, crit...) {
		s.Done(x)
	}
}

// TestShedRelearnsASlowerServer: a server that becomes four times slower
// for good, at a load it still serves without queueing, is taken for
// overloaded at first (its latency is over LatencyFactor × the baseline,
// and the estimate, with latencies counted up to the baseline, is under
// what is in flight); once every bucket of the window has shed and
// queued, the shedder probes for a window, then learns the new baseline
// and, once the cool-off is over, sheds nothing more. (The cool-off is
// renewed only by sheds on evidence of queueing: renewed by every shed,
// it kept the shedder hot for good, in flight held under the estimate and
// the estimate at what was in flight.)
func TestShedRelearnsASlowerServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewShedder(ShedderConfig{})
		defer s.Close()
		srv := &simServer{sem: make(chan struct{}, 8), service: 10 * time.Millisecond}
		mix := []Criticality{Sheddable}
		var before simCounts
		simulate(s, srv, 3*time.Second, 5*time.Millisecond, time.Second, mix, &before) // 200/s: a quarter
		srv.service = 30 * time.Millisecond                                            // 200/s × 30 ms: 6 of 8 workers, no queue
		var slow simCounts
		simulate(s, srv, 12*time.Second, 5*time.Millisecond, time.Second, mix, &slow)
		var after simCounts
		simulate(s, srv, 3*time.Second, 5*time.Millisecond, time.Second, mix, &after)
		t.Logf("shed before %d, while slower %d of %d, after %d; %+v", before.shed[Sheddable].Load(), slow.shed[Sheddable].Load(), slow.sent[Sheddable].Load(), after.shed[Sheddable].Load(), s.Stats())
		if n := before.shed[Sheddable].Load() + after.shed[Sheddable].Load(); n != 0 {
			t.Errorf("%d requests shed on a server that does not queue", n)
		}
	})
}

// TestShedRefreshAllocatesNothing: the once-a-bucket refresh (it sorts the
// window's buckets, in a workspace made by NewShedder) allocates nothing,
// so Allow and Done stay allocation-free when one of them refreshes.
func TestShedRefreshAllocatesNothing(t *testing.T) {
	s, fc := fakeShedder(t, ShedderConfig{MinInFlight: 1})
	for range 2 * DefaultShedBuckets { // a full window of buckets
		tk, _ := s.Allow(Default)
		fc.Advance(s.bucketNs0())
		s.Done(tk)
	}
	if n := testing.AllocsPerRun(200, func() {
		tk, _ := s.Allow(Critical)
		fc.Advance(s.bucketNs0()) // each Done crosses into a new bucket: a refresh
		s.Done(tk)
	}); n != 0 {
		t.Errorf("Allow+Done with a refresh each: %v allocs", n)
	}
	if st := s.Stats(); st.Capacity <= 0 {
		t.Fatalf("no estimate: %+v", st)
	}
}
