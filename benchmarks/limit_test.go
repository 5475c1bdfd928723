package benchmarks

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	fsbulkhead "github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/ratelimiter"
	"golang.org/x/time/rate"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/limit"
)

// limitCase is one limiter doing one decision per op; op reports whether
// the limiter admitted the call. Each is built once, outside the loop, as
// a service would; run with -cpu 1,2 to see the serial and the contended
// cost.
type limitCase struct {
	name  string
	setup func() (op func() bool, done func())
}

// Admitting: the same limit for every limiter, far above what the
// benchmark can reach (1e9 calls a second, a burst of 1e6; failsafe-go's
// smooth limiter has no burst), so every call takes the admitting path,
// which writes the limiter's state (admitted/op shows 1 for each).
var limitAllowCases = []limitCase{
	{"bulwark", func() (func() bool, func()) {
		r := limit.NewRate(limit.RateConfig{Rate: 1e9, Burst: 1e6})
		return r.Allow, func() { r.Close() }
	}},
	{"x-time-rate", func() (func() bool, func()) {
		l := rate.NewLimiter(1e9, 1e6)
		return l.Allow, func() {}
	}},
	{"failsafe-go-smooth", func() (func() bool, func()) {
		l := ratelimiter.NewSmooth[any](1e9, time.Second)
		return l.TryAcquirePermit, func() {}
	}},
	{"failsafe-go-bursty", func() (func() bool, func()) {
		l := ratelimiter.NewBursty[any](1e6, time.Millisecond)
		return l.TryAcquirePermit, func() {}
	}},
}

// Saturated: a limit of one call a second (burst 1) for every limiter, so
// every call but a fresh limiter's first is rejected (the path a limiter
// takes under the overload it exists for; admitted/op shows the share).
var limitSaturatedCases = []limitCase{
	{"bulwark", func() (func() bool, func()) {
		r := limit.NewRate(limit.RateConfig{Rate: 1, Burst: 1})
		return r.Allow, func() { r.Close() }
	}},
	{"x-time-rate", func() (func() bool, func()) {
		l := rate.NewLimiter(1, 1)
		return l.Allow, func() {}
	}},
	{"failsafe-go-smooth", func() (func() bool, func()) {
		l := ratelimiter.NewSmooth[any](1, time.Second)
		return l.TryAcquirePermit, func() {}
	}},
	{"failsafe-go-bursty", func() (func() bool, func()) {
		l := ratelimiter.NewBursty[any](1, time.Second)
		return l.TryAcquirePermit, func() {}
	}},
}

// cpuTime returns the CPU time (user and system) the process has used
// (processCPU, in cputime_*_test.go).
func cpuTime() time.Duration { return time.Duration(max(processCPU(), 0)) }

// reportCPUSince adds cpu-ns/op: the CPU time the process spent per op. On a
// machine shared with other work, wall-clock ns/op under RunParallel
// depends on how many cores the benchmark got; CPU time per op does not
// (a goroutine parked on a mutex costs none, one spinning on a contended
// line does).
func reportCPUSince(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// reportAdmitted adds admitted/op: the share of ops the limiter admitted,
// so that a table compares limiters that did the same work (a rejection
// and an admission take different paths).
func reportAdmitted(b *testing.B, admitted int64) {
	b.ReportMetric(float64(admitted)/float64(b.N), "admitted/op")
}

func runLimitCases(b *testing.B, cases []limitCase) {
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			op, done := c.setup()
			defer done()
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuTime()
			var admitted int64
			for b.Loop() {
				if op() {
					admitted++
				}
			}
			reportCPUSince(b, start)
			reportAdmitted(b, admitted)
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			op, done := c.setup()
			defer done()
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuTime()
			var admitted atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				var n int64 // counted per goroutine: no shared write per op
				for pb.Next() {
					if op() {
						n++
					}
				}
				admitted.Add(n)
			})
			reportCPUSince(b, start)
			reportAdmitted(b, admitted.Load())
		})
	}
}

// BenchmarkLimitAllow: one admitted call per op.
func BenchmarkLimitAllow(b *testing.B) { runLimitCases(b, limitAllowCases) }

// BenchmarkLimitAllowSaturated: one rejected call per op.
func BenchmarkLimitAllowSaturated(b *testing.B) { runLimitCases(b, limitSaturatedCases) }

const keyedKeys = 1024

var keyNames = func() []string {
	k := make([]string, keyedKeys)
	for i := range k {
		k[i] = fmt.Sprintf("10.0.%d.%d", i/256, i%256)
	}
	return k
}()

// syncMapLimiters is what services write by hand today: a sync.Map of
// x/time/rate limiters, one per key (without eviction).
type syncMapLimiters struct{ m sync.Map }

func (s *syncMapLimiters) allow(key string) bool {
	if l, ok := s.m.Load(key); ok {
		return l.(*rate.Limiter).Allow()
	}
	l, _ := s.m.LoadOrStore(key, rate.NewLimiter(1e9, 1e6))
	return l.(*rate.Limiter).Allow()
}

// BenchmarkLimitKeyed: one admitted call per op for one of 1024 known
// keys (client IPs), each goroutine walking the keys from its own offset.
func BenchmarkLimitKeyed(b *testing.B) {
	for _, c := range []struct {
		name  string
		setup func() (func(string) bool, func())
	}{
		{"bulwark", func() (func(string) bool, func()) {
			k := limit.NewKeyed(limit.KeyedConfig{Rate: limit.RateConfig{Rate: 1e9, Burst: 1e6}})
			return k.Allow, func() { k.Close() }
		}},
		{"x-time-rate-syncmap", func() (func(string) bool, func()) {
			s := &syncMapLimiters{}
			return s.allow, func() {}
		}},
	} {
		for _, parallel := range []bool{false, true} {
			name := c.name
			if parallel {
				name += "-parallel"
			}
			b.Run(name, func(b *testing.B) {
				allow, done := c.setup()
				defer done()
				for _, k := range keyNames {
					allow(k)
				}
				b.ReportAllocs()
				b.ResetTimer()
				start := cpuTime()
				var admitted atomic.Int64
				defer func() {
					reportCPUSince(b, start)
					reportAdmitted(b, admitted.Load())
				}()
				if !parallel {
					i, n := 0, int64(0)
					for b.Loop() {
						if allow(keyNames[i%keyedKeys]) {
							n++
						}
						i++
					}
					admitted.Store(n)
					return
				}
				var seq sync.Mutex
				off := 0
				b.RunParallel(func(pb *testing.PB) {
					seq.Lock()
					i := off * 97
					off++
					seq.Unlock()
					var n int64
					for pb.Next() {
						if allow(keyNames[i%keyedKeys]) {
							n++
						}
						i++
					}
					admitted.Add(n)
				})
			})
		}
	}
}

// BenchmarkLimitKeyedMemory states the memory a tracked key costs
// (bytes/key: live heap after inserting 100,000 keys of 12-15 bytes,
// divided by the count), next to a sync.Map of *rate.Limiter.
func BenchmarkLimitKeyedMemory(b *testing.B) {
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
	}
	measure := func(b *testing.B, fill func() any) {
		for b.Loop() {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			keep := fill()
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(keep)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/key")
		}
	}
	b.Run("bulwark", func(b *testing.B) {
		measure(b, func() any {
			k := limit.NewKeyed(limit.KeyedConfig{MaxKeys: n})
			for _, key := range keys {
				k.Allow(key)
			}
			if k.Len() != n {
				b.Fatalf("Len = %d", k.Len())
			}
			return k
		})
	})
	b.Run("x-time-rate-syncmap", func(b *testing.B) {
		measure(b, func() any {
			s := &syncMapLimiters{}
			for _, key := range keys {
				s.allow(key)
			}
			return s
		})
	})
}

// BenchmarkLimitBulkhead: acquire and release one slot per op, never full.
func BenchmarkLimitBulkhead(b *testing.B) {
	ctx := context.Background()
	runLimitCases(b, []limitCase{
		{"bulwark", func() (func() bool, func()) {
			bh := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1 << 20})
			return func() bool {
				if bh.TryAcquire() {
					bh.Release()
					return true
				}
				return false
			}, func() { bh.Close() }
		}},
		{"bulwark-permit", func() (func() bool, func()) {
			bh := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1 << 20})
			return func() bool {
				if p, err := bh.Acquire(ctx); err == nil {
					p.Release(bulwark.Success)
					return true
				}
				return false
			}, func() { bh.Close() }
		}},
		{"failsafe-go", func() (func() bool, func()) {
			bh := fsbulkhead.New[any](1 << 20)
			return func() bool {
				if bh.TryAcquirePermit() {
					bh.ReleasePermit()
					return true
				}
				return false
			}, func() {}
		}},
	})
}

// BenchmarkLimitAdaptive: acquire and release one slot per op, with the
// latency bookkeeping each limiter does on release.
func BenchmarkLimitAdaptive(b *testing.B) {
	ctx := context.Background()
	runLimitCases(b, []limitCase{
		{"bulwark", func() (func() bool, func()) {
			a := limit.NewAdaptive(limit.AdaptiveConfig{MinLimit: 1000, InitialLimit: 1000, MaxLimit: 1000})
			return func() bool {
				if p, err := a.Acquire(ctx); err == nil {
					p.Release(bulwark.Success)
					return true
				}
				return false
			}, func() { a.Close() }
		}},
		{"failsafe-go", func() (func() bool, func()) {
			l := adaptivelimiter.NewBuilder[any]().WithLimits(1000, 1000, 1000).Build()
			return func() bool {
				if p, ok := l.TryAcquirePermit(); ok {
					p.Record()
					return true
				}
				return false
			}, func() {}
		}},
	})
}
