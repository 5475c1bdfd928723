package limit

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
)

// simServer is a simulated service whose latency is flat up to a
// concurrency knee and grows in proportion beyond it (calls queue for a
// fixed capacity: throughput stays knee/base however many are let in).
type simServer struct {
	knee int
	base time.Duration
}

func (s simServer) latency(inflight int) time.Duration {
	if inflight <= s.knee {
		return s.base
	}
	return s.base * time.Duration(inflight) / time.Duration(s.knee)
}

type simResult struct {
	meanLimit   float64 // over the measured part
	meanLatency time.Duration
	served      int
}

// simulate offers clients closed-loop clients to a through srv for d on a
// fake clock in 1 ms steps (no real time passes); a rejected client tries
// again on the next step. It measures from warmup on.
func simulate(a *Adaptive, clk *clock.Fake, srv simServer, clients int, warmup, d time.Duration) simResult {
	type call struct {
		p   Permit
		end int64
	}
	var inflight []call
	var res simResult
	var latSum time.Duration
	samples := 0
	ctx := context.Background()
	start := clk.Nanotime()
	for step := time.Duration(0); step < d; step += time.Millisecond {
		now := clk.Nanotime()
		kept := inflight[:0]
		for _, c := range inflight {
			if c.end <= now {
				c.p.Release(bulwark.Success)
				if now-start >= int64(warmup) {
					res.served++
				}
			} else {
				kept = append(kept, c)
			}
		}
		inflight = kept
		for len(inflight) < clients {
			p, err := a.Acquire(ctx)
			if err != nil {
				break // every further client would be rejected on this step too
			}
			lat := srv.latency(a.InFlight())
			inflight = append(inflight, call{p, now + int64(lat)})
			if now-start >= int64(warmup) {
				latSum += lat
			}
		}
		if now-start >= int64(warmup) {
			res.meanLimit += float64(a.Limit())
			samples++
		}
		clk.Advance(time.Millisecond)
	}
	res.meanLimit /= float64(samples)
	if res.served > 0 {
		res.meanLatency = latSum / time.Duration(res.served)
	}
	return res
}

// The adaptive limit converges on a service whose latency rises past a
// concurrency knee: from below and from above, whatever the offered load,
// the limit settles just past the knee (Tolerance·K + √(Tolerance·K) ≈ 62
// for K = 50), latency stays near the no-load latency, and the service
// keeps its full throughput.
func TestAdaptiveConvergesOnTheKnee(t *testing.T) {
	srv := simServer{knee: 50, base: 10 * time.Millisecond}
	for _, c := range []struct {
		name    string
		initial int
		clients int
	}{
		{"from below", 20, 400},
		{"from above", 500, 400},
		{"heavier load", 20, 2000},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := clock.NewFake(time.Time{})
			a := newAdaptive(AdaptiveConfig{InitialLimit: c.initial}, clk)
			r := simulate(a, clk, srv, c.clients, 30*time.Second, 90*time.Second)
			t.Logf("mean limit %.1f, mean latency %v, served %d/s", r.meanLimit, r.meanLatency, r.served/60)
			if r.meanLimit < 50 || r.meanLimit > 80 {
				t.Errorf("mean limit %.1f, want it settled just past the knee of 50 (in [50, 80])", r.meanLimit)
			}
			if r.meanLatency > srv.base*3/2 {
				t.Errorf("mean latency %v, want within 1.5× the no-load %v", r.meanLatency, srv.base)
			}
			// The knee's capacity is 5000 calls/s; probes cost a little.
			if perSec := r.served / 60; perSec < 4500 {
				t.Errorf("served %d calls/s, want near the capacity of 5000", perSec)
			}
		})
	}
}

// A service with headroom never reached (the offered load is below the
// knee) does not push the limit up without bound.
func TestAdaptiveDoesNotGrowWhenIdle(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	a := newAdaptive(AdaptiveConfig{}, clk)
	simulate(a, clk, simServer{knee: 1000, base: 10 * time.Millisecond}, 5, 0, 60*time.Second)
	if l := a.Limit(); l > 3*DefaultInitialLimit {
		t.Fatalf("limit grew to %d with 5 clients", l)
	}
}

func TestAdaptiveMeasuresNoLoadFirstAndRejectsAboveTheLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAdaptive(AdaptiveConfig{MinLimit: 2, ProbeSamples: 4})
		defer a.Close()
		ctx := context.Background()
		if a.Limit() != 2 {
			t.Fatalf("Limit during the first measurement = %d, want MinLimit 2", a.Limit())
		}
		p1, _ := a.Acquire(ctx)
		p2, _ := a.Acquire(ctx)
		if _, err := a.Acquire(ctx); !errors.Is(err, ErrConcurrencyLimited) {
			t.Fatalf("Acquire above the limit = %v", err)
		}
		p1.Release(bulwark.Success)
		p2.Release(bulwark.Success)
		for range 4 {
			a.Do(ctx, func(context.Context) error { time.Sleep(time.Millisecond); return nil })
		}
		time.Sleep(DefaultWindow)
		a.Do(ctx, func(context.Context) error { return nil }) // closes the window
		if a.Limit() != DefaultInitialLimit {
			t.Fatalf("Limit after the measurement = %d, want InitialLimit %d", a.Limit(), DefaultInitialLimit)
		}
		if a.InFlight() != 0 {
			t.Fatalf("InFlight = %d", a.InFlight())
		}
	})
}
