package degrade

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// simServer is a server with a fixed number of workers and a fixed
// service time: requests beyond the workers queue (FIFO), so latency
// grows with load as a real server's does. It runs in fake time.
type simServer struct {
	sem     chan struct{}
	service time.Duration
}

func (s *simServer) handle(context.Context) error {
	s.sem <- struct{}{}
	time.Sleep(s.service)
	<-s.sem
	return nil
}

type simCounts struct{ sent, ok, shed [3]atomic.Int64 }

// simulate offers load for d: one request every gap, criticality cycling
// through mix, each successful when admitted and finished within slo.
func simulate(s *Shedder, srv *simServer, d, gap, slo time.Duration, mix []Criticality, cs *simCounts) {
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		c := mix[i%len(mix)]
		cs.sent[c].Add(1)
		wg.Go(func() {
			start := time.Now()
			err := s.Do(context.Background(), c, srv.handle)
			switch {
			case errors.Is(err, ErrShed):
				cs.shed[c].Add(1)
			case err == nil && time.Since(start) <= slo:
				cs.ok[c].Add(1)
			}
		})
		time.Sleep(gap)
	}
	wg.Wait()
}

// TestShedOrderUnderOverload: a server with 8 workers and 10 ms of work
// per request (800 requests/s) is offered twice that, a fifth of it
// critical. Critical requests keep at least 99% success (admitted and
// served within 250 ms); sheddable ones are shed first, default ones
// next. Deterministic: fake time, no real sleeping.
func TestShedOrderUnderOverload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewShedder(ShedderConfig{})
		defer s.Close()
		srv := &simServer{sem: make(chan struct{}, 8), service: 10 * time.Millisecond}
		mix := []Criticality{Critical, Default, Default, Sheddable, Sheddable}

		var warm simCounts
		simulate(s, srv, 2*time.Second, 2500*time.Microsecond, 250*time.Millisecond, mix, &warm) // 400/s: half the capacity
		for c := range 3 {
			if warm.shed[c].Load() != 0 || warm.ok[c].Load() != warm.sent[c].Load() {
				t.Fatalf("at half load %v: %d shed, %d of %d ok", Criticality(c), warm.shed[c].Load(), warm.ok[c].Load(), warm.sent[c].Load())
			}
		}

		var over simCounts
		simulate(s, srv, 10*time.Second, 625*time.Microsecond, 250*time.Millisecond, mix, &over) // 1600/s
		frac := func(a *[3]atomic.Int64, c Criticality) float64 {
			return float64(a[c].Load()) / float64(over.sent[c].Load())
		}
		for c := range Criticality(3) {
			t.Logf("%-9v sent %5d  ok %.3f  shed %.3f", c, over.sent[c].Load(), frac(&over.ok, c), frac(&over.shed, c))
		}
		if ok := frac(&over.ok, Critical); ok < 0.99 {
			t.Errorf("critical success %.3f under overload, want >= 0.99", ok)
		}
		if frac(&over.shed, Sheddable) < 0.5 {
			t.Errorf("only %.3f of sheddable requests shed", frac(&over.shed, Sheddable))
		}
		if !(frac(&over.shed, Sheddable) > frac(&over.shed, Default) && frac(&over.shed, Default) >= frac(&over.shed, Critical)) {
			t.Errorf("shedding order broken: sheddable %.3f, default %.3f, critical %.3f",
				frac(&over.shed, Sheddable), frac(&over.shed, Default), frac(&over.shed, Critical))
		}
		st := s.Stats()
		if st.Shed[Sheddable] != over.shed[Sheddable].Load() || st.InFlight != 0 {
			t.Errorf("Stats %+v", st)
		}
	})
}

// TestShedderBurstOnColdServerNotShed: a burst with no queueing history
// is not shed: capacity alone never triggers shedding.
func TestShedderBurstNotShedWithoutQueueing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewShedder(ShedderConfig{})
		defer s.Close()
		srv := &simServer{sem: make(chan struct{}, 1000), service: 10 * time.Millisecond}
		var cs simCounts
		simulate(s, srv, time.Second, 10*time.Millisecond, time.Second, []Criticality{Sheddable}, &cs)
		simulate(s, srv, 100*time.Millisecond, 10*time.Microsecond, time.Second, []Criticality{Sheddable}, &cs)
		if n := cs.shed[Sheddable].Load(); n != 0 {
			t.Fatalf("%d requests shed on a server that never queued", n)
		}
	})
}

func TestShedderValidate(t *testing.T) {
	for name, c := range map[string]ShedderConfig{
		"ShedderConfig.Window":                {Window: time.Millisecond},
		"ShedderConfig.Buckets":               {Buckets: MaxBuckets + 1},
		"ShedderConfig.LatencyFactor":         {LatencyFactor: 1},
		"ShedderConfig.Headroom":              {Headroom: -1},
		"ShedderConfig.MinInFlight":           {MinInFlight: -1},
		"ShedderConfig.CoolOff":               {CoolOff: time.Hour},
		"ShedderConfig.Routes[0].Criticality": {Routes: []Route{{Prefix: "/", Criticality: 7}}},
	} {
		var ce *bulwark.ConfigError
		if err := c.Validate(); !errors.As(err, &ce) || ce.Field != name {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseCriticality(t *testing.T) {
	for in, want := range map[string]Criticality{"critical": Critical, " Sheddable ": Sheddable, "DEFAULT": Default} {
		if c, ok := ParseCriticality(in); !ok || c != want {
			t.Errorf("%q: %v %v", in, c, ok)
		}
	}
	for _, in := range []string{"", "crit", "critical2", "высокий"} {
		if _, ok := ParseCriticality(in); ok {
			t.Errorf("%q parsed", in)
		}
	}
}

func FuzzParseCriticality(f *testing.F) {
	for _, s := range []string{"critical", "sheddable", "default", "", "\x00", " critical "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := ParseCriticality(s)
		if ok && c.String() == "" {
			t.Fatal("empty name")
		}
		if !ok && c != Default {
			t.Fatalf("%q: rejected value %v is not Default", s, c)
		}
	})
}
