package benchmarks

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/failsafe-go/failsafe-go"
	fstimeout "github.com/failsafe-go/failsafe-go/timeout"

	"github.com/bulwark-go/bulwark/timeout"
)

// A call that succeeds well within its limit: what a timeout layer costs
// on every call. Every library's policy is built once, outside the loop.
// The limit is an hour, so no timer ever fires.
func BenchmarkTimeoutDo(b *testing.B) {
	bg := context.Background()
	fn := func(context.Context) error { return nil }
	run := func(name string, ctx context.Context, t *timeout.Timeout) {
		b.Run(name, func(b *testing.B) {
			defer t.Close()
			b.ReportAllocs()
			for b.Loop() {
				if err := t.Do(ctx, fn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	run("bulwark-cooperative", bg, timeout.New(timeout.Config{Timeout: time.Hour}))
	// The caller's deadline comes first: fn runs with the caller's
	// context, nothing is derived.
	callerCtx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	run("bulwark-cooperative-callerdeadline", callerCtx, timeout.New(timeout.Config{Timeout: time.Hour}))
	run("bulwark-abandon", bg, timeout.New(timeout.Config{Timeout: time.Hour, Abandon: true}))
	b.Run("bulwark-cooperative-parallel", func(b *testing.B) {
		t := timeout.New(timeout.Config{Timeout: time.Hour})
		defer t.Close()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := t.Do(bg, fn); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("context.WithTimeout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := context.WithTimeout(bg, time.Hour)
			err := fn(ctx)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("failsafe-go", func(b *testing.B) {
		ex := failsafe.With[any](fstimeout.New[any](time.Hour)).WithContext(bg)
		fsfn := func(exec failsafe.Execution[any]) error { return fn(exec.Context()) }
		b.ReportAllocs()
		for b.Loop() {
			if err := ex.RunWithExecution(fsfn); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTimeoutHandler: a small response through the Handler, against
// net/http's TimeoutHandler, which buffers the whole response and runs
// the handler in a goroutine of its own.
func BenchmarkTimeoutHandler(b *testing.B) {
	body := []byte("hello, world\n")
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	run := func(name string, h http.Handler) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatal(rec.Code)
				}
			}
		})
	}
	t := timeout.New(timeout.Config{Timeout: time.Hour})
	defer t.Close()
	run("bulwark", t.Handler(next))
	run("http.TimeoutHandler", http.TimeoutHandler(next, time.Hour, "timeout"))
	run("none", next)
}

// TestTimeoutReturnsAtTheDeadline is the behaviour the issue asks for, side
// by side: a 10 ms timeout around a 200 ms call that ignores its context.
// failsafe-go's timeout waits for the function (200 ms); bulwark's
// cooperative mode does too, and with Abandon returns at 10 ms. Fake time
// (testing/synctest), so the figures are exact.
func TestTimeoutReturnsAtTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := func() { time.Sleep(200 * time.Millisecond) }
		elapsed := func(f func() error) (time.Duration, error) {
			start := time.Now()
			err := f()
			return time.Since(start), err
		}

		ex := failsafe.With[any](fstimeout.New[any](10 * time.Millisecond))
		d, err := elapsed(func() error { return ex.Run(func() error { slow(); return nil }) })
		if d != 200*time.Millisecond || !errors.Is(err, fstimeout.ErrExceeded) {
			t.Fatalf("failsafe-go: %v after %v, want ErrExceeded after 200ms", err, d)
		}

		coop := timeout.New(timeout.Config{Timeout: 10 * time.Millisecond})
		defer coop.Close()
		d, err = elapsed(func() error {
			return coop.Do(context.Background(), func(context.Context) error { slow(); return io.ErrUnexpectedEOF })
		})
		if d != 200*time.Millisecond || !errors.Is(err, timeout.ErrTimeout) {
			t.Fatalf("bulwark cooperative: %v after %v, want ErrTimeout after 200ms", err, d)
		}

		ab := timeout.New(timeout.Config{Timeout: 10 * time.Millisecond, Abandon: true})
		defer ab.Close()
		finished := make(chan struct{})
		d, err = elapsed(func() error {
			return ab.Do(context.Background(), func(context.Context) error { defer close(finished); slow(); return nil })
		})
		if d != 10*time.Millisecond || !errors.Is(err, timeout.ErrTimeout) {
			t.Fatalf("bulwark Abandon: %v after %v, want ErrTimeout after 10ms", err, d)
		}
		<-finished // the abandoned call runs on to its end
		synctest.Wait()
	})
}
