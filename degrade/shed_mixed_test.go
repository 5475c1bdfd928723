package degrade_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/degrade"
)

// The drill's gateway in fake time: a cache answers some GETs in 100 µs
// (no queue), and a backend of 24 workers × 40 ms (600 requests/s, a
// concurrency knee: requests beyond the workers queue, FIFO) serves the
// rest. The shedder has the drill's settings (MinInFlight 12, Headroom
// 3). These tests guard the defect the failure drill found: a Critical
// request shed while lower tiers were still admitted, after the latency
// baseline was learned from cache hits (every backend call then looked
// queued, and the capacity estimate, best latency × most completions,
// fell to a few hundredths of a request).

const (
	cacheHit       = 100 * time.Microsecond
	backendWork    = 40 * time.Millisecond
	backendWorkers = 24 // 600 backend requests/s
	slo            = time.Second
)

var drillShed = degrade.ShedderConfig{MinInFlight: 12, Headroom: 3}

type gateway struct{ backend chan struct{} }

func newGateway() *gateway { return &gateway{backend: make(chan struct{}, backendWorkers)} }

func (g *gateway) serve(cached bool) {
	if cached {
		time.Sleep(cacheHit)
		return
	}
	g.backend <- struct{}{}
	time.Sleep(backendWork)
	<-g.backend
}

// req is one arrival of a workload.
type req struct {
	crit   degrade.Criticality
	cached bool
}

type tally struct{ sent, ok, shed [3]atomic.Int64 }

func (t *tally) frac(a *[3]atomic.Int64, c degrade.Criticality) float64 {
	if n := t.sent[c].Load(); n > 0 {
		return float64(a[c].Load()) / float64(n)
	}
	return 0
}

func (t *tally) log(tb testing.TB, phase string) {
	for c := range degrade.Criticality(3) {
		tb.Logf("%s: %-9v sent %5d  ok %.3f  shed %.3f", phase, c, t.sent[c].Load(), t.frac(&t.ok, c), t.frac(&t.shed, c))
	}
}

// offer sends open-loop arrivals (they do not wait for each other), one
// every gap for d, the i-th being pick(i), through serve; an arrival is
// ok when admitted and served within slo.
func offer(s *degrade.Shedder, serve func(req) error, d, gap time.Duration, pick func(int) req, t *tally) {
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		r := pick(i)
		t.sent[r.crit].Add(1)
		wg.Go(func() {
			start := time.Now()
			err := serve(r)
			switch {
			case errors.Is(err, degrade.ErrShed):
				t.shed[r.crit].Add(1)
			case err == nil && time.Since(start) <= slo:
				t.ok[r.crit].Add(1)
			}
		})
		time.Sleep(gap)
	}
	wg.Wait()
}

// do serves r through the shedder's Do.
func do(s *degrade.Shedder, g *gateway) func(req) error {
	return func(r req) error {
		return s.Do(context.Background(), r.crit, func(context.Context) error { g.serve(r.cached); return nil })
	}
}

// ordinary is the drill's ordinary load: Default, one request in four a
// cache hit.
func ordinary(i int) req { return req{crit: degrade.Default, cached: i%4 == 0} }

// burst is the drill's overload burst: 60% sheddable (catalogue GETs,
// half of them cache hits), 20% default, 20% critical.
func burst(i int) req {
	switch j := i % 10; {
	case j < 6:
		return req{crit: degrade.Sheddable, cached: j%2 == 0}
	case j < 8:
		return req{crit: degrade.Default}
	}
	return req{crit: degrade.Critical}
}

func cacheHits(int) req { return req{crit: degrade.Default, cached: true} }

// burstGap is the burst's arrival gap: 2000 requests/s, 1400 of them for
// the backend, 2.3 times what it serves.
const burstGap = 500 * time.Microsecond

// checkBurst asserts the SRE order on a burst: Critical requests at
// least 99% served within the SLO, the overload absorbed by the lower
// tiers, sheddable first. At most 0.5% of the critical requests may be
// shed: at the onset, before a whole bucket of the server under load is
// in the estimate, critical requests stuck in the backend's queue behind
// lower tiers admitted before the overload was seen can outnumber
// capacity × (1 + 2·Headroom) of the low-load estimate (0 to 4 of 1200 in
// these runs, depending on who queues first). Before the fix, 79% were.
func checkBurst(t *testing.T, over *tally) {
	t.Helper()
	over.log(t, "burst")
	if f := over.frac(&over.shed, degrade.Critical); f > 0.005 {
		t.Errorf("%.3f of critical requests shed while lower tiers were admitted", f)
	}
	if ok := over.frac(&over.ok, degrade.Critical); ok < 0.99 {
		t.Errorf("critical success %.3f, want >= 0.99", ok)
	}
	if f := over.frac(&over.shed, degrade.Sheddable); f < 0.5 {
		t.Errorf("only %.3f of sheddable requests shed: the lower tiers did not absorb the overload", f)
	}
	if !(over.frac(&over.shed, degrade.Sheddable) > over.frac(&over.shed, degrade.Default)) {
		t.Errorf("sheddable (%.3f shed) not shed before default (%.3f)", over.frac(&over.shed, degrade.Sheddable), over.frac(&over.shed, degrade.Default))
	}
}

// warm runs the ordinary load (200/s, a third of the backend) for 2 s
// and returns the capacity it taught the shedder.
func warm(t *testing.T, s *degrade.Shedder, g *gateway) float64 {
	t.Helper()
	var w tally
	offer(s, do(s, g), 2*time.Second, 5*time.Millisecond, ordinary, &w)
	st := s.Stats()
	if st.Shed != [3]int64{} || st.Capacity <= 0 {
		t.Fatalf("at a third of the load: %+v", st)
	}
	return st.Capacity
}

// TestShedCriticalAfterCacheHitLull is the drill's 2290 critical sheds: a
// lull in which only a few cache hits completed taught the shedder a 100 µs
// baseline and a capacity of 0.02 requests, so the burst that followed
// was shed at MinInFlight whatever its criticality. The baseline is now
// weighted by work (a cache hit weighs 100 µs), so the lull moves
// neither the baseline nor the capacity.
func TestShedCriticalAfterCacheHitLull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := degrade.NewShedder(drillShed)
		defer s.Close()
		g := newGateway()
		before := warm(t, s, g)
		var lull tally
		offer(s, do(s, g), 300*time.Millisecond, 50*time.Millisecond, cacheHits, &lull)
		if after := s.Stats().Capacity; after < before/2 {
			t.Errorf("capacity %.3f after a lull of cache hits, %.3f before: collapsed", after, before)
		}
		var over tally
		offer(s, do(s, g), 3*time.Second, burstGap, burst, &over)
		checkBurst(t, &over)
	})
}

// TestShedCriticalAfterFastBurst: a second of cache hits only, at 5000/s
// (many completions, each cheap), then the overload burst. The capacity
// estimate is the most work done in a bucket, not the most completions ×
// the best latency, so the fast burst neither collapses nor inflates it.
func TestShedCriticalAfterFastBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := degrade.NewShedder(drillShed)
		defer s.Close()
		g := newGateway()
		before := warm(t, s, g)
		var fast tally
		offer(s, do(s, g), time.Second, 200*time.Microsecond, cacheHits, &fast)
		if after := s.Stats().Capacity; after < before/2 || after > 2*before {
			t.Errorf("capacity %.3f after a burst of cache hits, %.3f before", after, before)
		}
		var over tally
		offer(s, do(s, g), 3*time.Second, burstGap, burst, &over)
		checkBurst(t, &over)
	})
}

// TestShedCriticalAfterIdleAndLowLoad: after an idle spell longer than the
// window (the estimate forgets: nothing is shed on no history) and two
// seconds of very low load (20/s, capacity about one request), the
// burst comes. The low-load estimate is only a low bound of the capacity:
// Critical requests are not shed on it (they need two full buckets that
// queued, the work of which the estimate then holds), while the lower
// tiers are. Before the fix, the low load's buckets that held only a
// cache hit set a 100 µs baseline and 78% of critical requests were shed.
func TestShedCriticalAfterIdleAndLowLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := degrade.NewShedder(drillShed)
		defer s.Close()
		g := newGateway()
		warm(t, s, g)
		time.Sleep(6 * time.Second)
		if st := s.Stats(); st.Capacity != 0 || st.Overloaded {
			t.Errorf("after an idle window: %+v, want a cold estimate", st)
		}
		var low tally
		offer(s, do(s, g), 2*time.Second, 50*time.Millisecond, ordinary, &low)
		if st := s.Stats(); st.Capacity <= 0 || st.Capacity >= 2 {
			t.Fatalf("after low load: capacity %.3f, want in (0, 2)", st.Capacity)
		}
		var over tally
		offer(s, do(s, g), 3*time.Second, burstGap, burst, &over)
		checkBurst(t, &over)
	})
}

// TestShedLongOverload: twenty seconds of overload, four windows, so the
// buckets from before it leave the window. The default and critical load
// alone (800/s) is over the backend's 600/s, so the headroom lets a
// standing queue form: learned from, it would drift the baseline up to
// queued latencies and the capacity with it (before the fix, critical
// success fell to 68%). The baseline stays put while the shedder sheds
// into a queue, the shedder probes when the whole window queued, and
// critical requests keep their 99% to the end, the lower tiers shed, the
// capacity near the backend's own concurrency (24), in the last two
// seconds as in the first eighteen.
func TestShedLongOverload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := degrade.NewShedder(drillShed)
		defer s.Close()
		g := newGateway()
		warm(t, s, g)
		var over, last tally
		offer(s, do(s, g), 18*time.Second, burstGap, burst, &over)
		offer(s, do(s, g), 2*time.Second, burstGap, burst, &last)
		checkBurst(t, &over)
		checkBurst(t, &last)
		if cp := s.Stats().Capacity; cp < backendWorkers/4 || cp > 4*backendWorkers {
			t.Errorf("capacity %.3f after 20 s of overload, want within 4x of %d", cp, backendWorkers)
		}
	})
}

// TestShedHandlerCriticalityHeader is the burst through Shedder.Handler,
// each request stating its criticality in the Bulwark-Criticality header
// as the drill's callers do.
func TestShedHandlerCriticalityHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := degrade.NewShedder(drillShed)
		defer s.Close()
		g := newGateway()
		h := s.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g.serve(r.URL.Path == "/cached")
		}))
		serve := func(r req) error {
			path := "/backend"
			if r.cached {
				path = "/cached"
			}
			hr := httptest.NewRequest("GET", path, nil)
			hr.Header.Set(degrade.DefaultCriticalityHdr, r.crit.String())
			w := httptest.NewRecorder()
			h.ServeHTTP(w, hr)
			switch w.Code {
			case http.StatusOK:
				return nil
			case http.StatusServiceUnavailable:
				return degrade.ErrShed
			}
			return errors.New(w.Result().Status)
		}
		var w, lull, over tally
		offer(s, serve, 2*time.Second, 5*time.Millisecond, ordinary, &w)
		offer(s, serve, 300*time.Millisecond, 50*time.Millisecond, cacheHits, &lull)
		offer(s, serve, 3*time.Second, burstGap, burst, &over)
		checkBurst(t, &over)
	})
}
