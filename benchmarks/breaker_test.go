package benchmarks

import (
	"context"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/sony/gobreaker/v2"
	zerobreaker "github.com/zeromicro/go-zero/core/breaker"

	"github.com/bulwark-go/bulwark/breaker"
)

// breakerCase is one breaker doing one successful call per op, in the
// closed state: the path every call takes while the dependency is healthy.
// Each breaker is built once, outside the loop, as a service would.
type breakerCase struct {
	name string
	// setup returns the op and a cleanup.
	setup func() (op func(), done func())
}

func bulwarkTwoStep(cfg breaker.Config) func() (func(), func()) {
	return func() (func(), func()) {
		b := breaker.New(cfg)
		return func() {
			t, err := b.Allow()
			if err != nil {
				panic(err)
			}
			b.Done(t, nil)
		}, func() { b.Close() }
	}
}

func bulwarkDo(cfg breaker.Config) func() (func(), func()) {
	return func() (func(), func()) {
		b := breaker.New(cfg)
		ctx := context.Background()
		fn := func(context.Context) error { return nil }
		return func() {
			if err := b.Do(ctx, fn); err != nil {
				panic(err)
			}
		}, func() { b.Close() }
	}
}

var breakerCases = []breakerCase{
	{"bulwark-twostep-count", bulwarkTwoStep(breaker.Config{})},
	{"bulwark-twostep-time", bulwarkTwoStep(breaker.Config{WindowDuration: time.Minute})},
	{"bulwark-twostep-consecutive", bulwarkTwoStep(breaker.Config{ConsecutiveFailures: 5})},
	{"bulwark-twostep-count-slow", bulwarkTwoStep(breaker.Config{SlowCallDuration: time.Second})},
	{"bulwark-do-count", bulwarkDo(breaker.Config{})},
	{"bulwark-do-time", bulwarkDo(breaker.Config{WindowDuration: time.Minute})},
	{"gobreaker-execute", func() (func(), func()) {
		cb := gobreaker.NewCircuitBreaker[any](gobreaker.Settings{})
		fn := func() (any, error) { return nil, nil }
		return func() {
			if _, err := cb.Execute(fn); err != nil {
				panic(err)
			}
		}, func() {}
	}},
	{"gobreaker-execute-interval", func() (func(), func()) {
		cb := gobreaker.NewCircuitBreaker[any](gobreaker.Settings{Interval: time.Minute})
		fn := func() (any, error) { return nil, nil }
		return func() {
			if _, err := cb.Execute(fn); err != nil {
				panic(err)
			}
		}, func() {}
	}},
	{"failsafe-get", func() (func(), func()) {
		cb := circuitbreaker.NewWithDefaults[any]()
		ex := failsafe.With[any](cb)
		fn := func() (any, error) { return nil, nil }
		return func() {
			if _, err := ex.Get(fn); err != nil {
				panic(err)
			}
		}, func() {}
	}},
	{"failsafe-permit", func() (func(), func()) {
		cb := circuitbreaker.NewWithDefaults[any]()
		return func() {
			if !cb.TryAcquirePermit() {
				panic("rejected")
			}
			cb.RecordSuccess()
		}, func() {}
	}},
	{"gozero-do", func() (func(), func()) {
		brk := zerobreaker.NewBreaker()
		fn := func() error { return nil }
		return func() {
			if err := brk.Do(fn); err != nil {
				panic(err)
			}
		}, func() {}
	}},
	{"gozero-allow", func() (func(), func()) {
		brk := zerobreaker.NewBreaker()
		return func() {
			p, err := brk.Allow()
			if err != nil {
				panic(err)
			}
			p.Accept()
		}, func() {}
	}},
}

// BenchmarkBreaker: one goroutine, one successful call per op.
func BenchmarkBreaker(b *testing.B) {
	for _, c := range breakerCases {
		b.Run(c.name, func(b *testing.B) {
			op, done := c.setup()
			defer done()
			b.ReportAllocs()
			for b.Loop() {
				op()
			}
		})
	}
}

// BenchmarkBreakerParallel: GOMAXPROCS goroutines (-cpu) sharing one
// breaker. ns/op is wall time per call across all goroutines, so on 2
// cores a breaker that scales shows about half its serial figure.
func BenchmarkBreakerParallel(b *testing.B) {
	for _, c := range breakerCases {
		b.Run(c.name, func(b *testing.B) {
			op, done := c.setup()
			defer done()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					op()
				}
			})
		})
	}
}

// BenchmarkBreakerRejected: the open breaker's fast "no".
func BenchmarkBreakerRejected(b *testing.B) {
	b.Run("bulwark-twostep", func(b *testing.B) {
		br := breaker.New(breaker.Config{})
		defer br.Close()
		br.ForceOpen()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := br.Allow(); err == nil {
				b.Fatal("admitted")
			}
		}
	})
	b.Run("gobreaker-execute", func(b *testing.B) {
		cb := gobreaker.NewCircuitBreaker[any](gobreaker.Settings{ReadyToTrip: func(gobreaker.Counts) bool { return true }})
		_, _ = cb.Execute(func() (any, error) { return nil, errBreakerBench })
		fn := func() (any, error) { return nil, nil }
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cb.Execute(fn); err == nil {
				b.Fatal("admitted")
			}
		}
	})
}
