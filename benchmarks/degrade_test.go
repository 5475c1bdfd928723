package benchmarks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	sre "github.com/go-kratos/aegis/circuitbreaker/sre"
	zerobreaker "github.com/zeromicro/go-zero/core/breaker"
	"github.com/zeromicro/go-zero/core/load"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/degrade"
)

// Every case reports cpu-ns/op too (see reportCPU), the figure that holds
// on a machine shared with other work.

// BenchmarkDegradeThrottler compares one admitted, accepted request
// through the SRE client-side throttler: bulwark's Throttler (Allow, then
// Done), go-zero's Google SRE breaker (core/breaker: Allow, then
// Promise.Accept) and kratos' SRE breaker (aegis/circuitbreaker/sre:
// Allow, then MarkSuccess). All three keep the default K = 2 (go-zero and
// kratos write it as a success ratio of 0.5 or k = 1.5 in newer versions)
// and a healthy backend, so nothing is rejected.
func BenchmarkDegradeThrottler(b *testing.B) {
	b.Run("bulwark", func(b *testing.B) {
		t := degrade.NewThrottler(degrade.ThrottlerConfig{})
		defer t.Close()
		b.ReportAllocs()
		defer reportCPUSince(b, cpuTime())
		for b.Loop() {
			if t.Allow() == nil {
				t.Done(bulwark.Success)
			}
		}
	})
	b.Run("go-zero", func(b *testing.B) {
		cb := zerobreaker.NewBreaker()
		b.ReportAllocs()
		defer reportCPUSince(b, cpuTime())
		for b.Loop() {
			if p, err := cb.Allow(); err == nil {
				p.Accept()
			}
		}
	})
	b.Run("kratos", func(b *testing.B) {
		cb := sre.NewBreaker()
		b.ReportAllocs()
		defer reportCPUSince(b, cpuTime())
		for b.Loop() {
			if cb.Allow() == nil {
				cb.MarkSuccess()
			}
		}
	})
}

// BenchmarkDegradeThrottlerParallel is BenchmarkDegradeThrottler from
// every P at once.
func BenchmarkDegradeThrottlerParallel(b *testing.B) {
	b.Run("bulwark", func(b *testing.B) {
		t := degrade.NewThrottler(degrade.ThrottlerConfig{})
		defer t.Close()
		b.ReportAllocs()
		defer reportCPUSince(b, cpuTime())
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if t.Allow() == nil {
					t.Done(bulwark.Success)
				}
			}
		})
	})
	b.Run("go-zero", func(b *testing.B) {
		cb := zerobreaker.NewBreaker()
		b.ReportAllocs()
		defer reportCPUSince(b, cpuTime())
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if p, err := cb.Allow(); err == nil {
					p.Accept()
				}
			}
		})
	})
	b.Run("kratos", func(b *testing.B) {
		cb := sre.NewBreaker()
		b.ReportAllocs()
		defer reportCPUSince(b, cpuTime())
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if cb.Allow() == nil {
					cb.MarkSuccess()
				}
			}
		})
	})
}

// BenchmarkDegradeShedder is the per-request overhead of load shedding
// on an admitted request: bulwark's Shedder (Allow, then Done) beside
// go-zero's adaptive shedder (Allow, then Promise.Pass).
func BenchmarkDegradeShedder(b *testing.B) {
	b.Run("bulwark", func(b *testing.B) {
		s := degrade.NewShedder(degrade.ShedderConfig{})
		defer s.Close()
		b.ReportAllocs()
		defer reportCPUSince(b, cpuTime())
		for b.Loop() {
			if t, err := s.Allow(degrade.Default); err == nil {
				s.Done(t)
			}
		}
	})
	b.Run("go-zero", func(b *testing.B) {
		s := load.NewAdaptiveShedder()
		b.ReportAllocs()
		defer reportCPUSince(b, cpuTime())
		for b.Loop() {
			if p, err := s.Allow(); err == nil {
				p.Pass()
			}
		}
	})
}

// BenchmarkDegradeShedderHandler is the shedder's HTTP middleware around
// a handler that does nothing, against the bare handler.
func BenchmarkDegradeShedderHandler(b *testing.B) {
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	s := degrade.NewShedder(degrade.ShedderConfig{})
	defer s.Close()
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bulwark", s.Handler(noop)}, {"none", noop}} {
		b.Run(bc.name, func(b *testing.B) {
			w, r := httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)
			r.Header.Set(degrade.DefaultCriticalityHdr, "critical")
			b.ReportAllocs()
			defer reportCPUSince(b, cpuTime())
			for b.Loop() {
				bc.h.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkDegradeFallbackCall is a successful Call through a Fallback,
// without and with last good values kept.
func BenchmarkDegradeFallbackCall(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  degrade.Config
	}{{"plain", degrade.Config{}}, {"last-good", degrade.Config{MaxAge: 1 << 40}}} {
		b.Run(bc.name, func(b *testing.B) {
			f := degrade.New(bc.cfg)
			defer f.Close()
			fn := func(context.Context) (int, error) { return 1, nil }
			ctx := context.Background()
			b.ReportAllocs()
			defer reportCPUSince(b, cpuTime())
			for b.Loop() {
				degrade.Call(ctx, f, "k", fn, nil)
			}
		})
	}
}
