package benchmarks

import (
	"bytes"
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
//
// Sub-benchmarks name bulwark's mode and what fn does with its context:
// plain ones return at once; -watchdone ones call ctx.Done(), as
// anything that selects on the context does (net/http, grpc-go), which
// makes every context arm its timer; -cancellable ones run under a
// caller's context that can be cancelled (a server request's), which the
// derived context must watch. cpu-ns/op beside wall time: the machine is
// shared.
func BenchmarkTimeoutDo(b *testing.B) {
	bg := context.Background()
	cancellable, cancelParent := context.WithCancel(bg)
	defer cancelParent()
	fn := func(context.Context) error { return nil }
	watch := func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		default:
			return nil
		}
	}
	run := func(name string, ctx context.Context, cfg timeout.Config, fn func(context.Context) error) {
		b.Run(name, func(b *testing.B) {
			t := timeout.New(cfg)
			defer t.Close()
			b.ReportAllocs()
			start := cpuTime()
			for b.Loop() {
				if err := t.Do(ctx, fn); err != nil {
					b.Fatal(err)
				}
			}
			reportCPUSince(b, start)
		})
	}
	coop := timeout.Config{Timeout: time.Hour}
	run("bulwark-cooperative", bg, coop, fn)
	run("bulwark-cooperative-watchdone", bg, coop, watch)
	run("bulwark-cooperative-cancellable", cancellable, coop, fn)
	run("bulwark-cooperative-cancellable-watchdone", cancellable, coop, watch)
	// The caller's deadline comes first: fn runs with the caller's
	// context, nothing is derived.
	callerCtx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	run("bulwark-cooperative-callerdeadline", callerCtx, coop, fn)
	// Config.ReuseContexts: fn's context is pooled (fn must not keep it).
	reuse := timeout.Config{Timeout: time.Hour, ReuseContexts: true}
	run("bulwark-reusecontexts", bg, reuse, fn)
	run("bulwark-reusecontexts-watchdone", bg, reuse, watch)
	run("bulwark-reusecontexts-cancellable", cancellable, reuse, fn)
	run("bulwark-reusecontexts-cancellable-watchdone", cancellable, reuse, watch)
	run("bulwark-abandon", bg, timeout.Config{Timeout: time.Hour, Abandon: true}, fn)
	b.Run("bulwark-cooperative-parallel", func(b *testing.B) {
		t := timeout.New(coop)
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
	std := func(name string, parent context.Context, fn func(context.Context) error) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			start := cpuTime()
			for b.Loop() {
				ctx, cancel := context.WithTimeout(parent, time.Hour)
				err := fn(ctx)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
			}
			reportCPUSince(b, start)
		})
	}
	std("context.WithTimeout", bg, fn)
	std("context.WithTimeout-watchdone", bg, watch)
	std("context.WithTimeout-cancellable-watchdone", cancellable, watch)
	b.Run("failsafe-go", func(b *testing.B) {
		ex := failsafe.With[any](fstimeout.New[any](time.Hour)).WithContext(bg)
		fsfn := func(exec failsafe.Execution[any]) error { return fn(exec.Context()) }
		b.ReportAllocs()
		start := cpuTime()
		for b.Loop() {
			if err := ex.RunWithExecution(fsfn); err != nil {
				b.Fatal(err)
			}
		}
		reportCPUSince(b, start)
	})
}

// memTransport answers every request in memory, with a 200 and a small
// body, after looking at the request's context as net/http's Transport
// does (it selects on ctx.Done() while it waits for the response).
type memTransport struct{}

var memBody = []byte("hello, world\n")

func (memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case <-req.Context().Done():
		return nil, context.Cause(req.Context())
	default:
	}
	return &http.Response{
		StatusCode:    http.StatusOK,
		Header:        http.Header{"Content-Type": {"text/plain"}},
		Body:          io.NopCloser(bytes.NewReader(memBody)),
		ContentLength: int64(len(memBody)),
		Request:       req,
	}, nil
}

// BenchmarkTimeoutRoundTripper: one request through timeout.RoundTripper
// over an in-memory transport, body read and closed: what a per-attempt
// timeout layer costs (the preset client stack has two). "none" is the
// transport alone, so the layer's cost is the difference.
func BenchmarkTimeoutRoundTripper(b *testing.B) {
	run := func(name string, parent context.Context, rt http.RoundTripper) {
		b.Run(name, func(b *testing.B) {
			req, err := http.NewRequestWithContext(parent, http.MethodGet, "http://backend.test/item", nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Accept", "text/plain")
			b.ReportAllocs()
			start := cpuTime()
			for b.Loop() {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
			reportCPUSince(b, start)
		})
	}
	bg := context.Background()
	cancellable, cancel := context.WithCancel(bg)
	defer cancel()
	t := timeout.New(timeout.Config{Timeout: time.Hour})
	defer t.Close()
	noHeader := timeout.New(timeout.Config{Timeout: time.Hour, Header: timeout.NoHeader})
	defer noHeader.Close()
	run("bulwark", bg, t.RoundTripper(memTransport{}))
	run("bulwark-cancellable", cancellable, t.RoundTripper(memTransport{}))
	run("bulwark-noheader", bg, noHeader.RoundTripper(memTransport{}))
	run("bulwark-2layers", bg, t.RoundTripper(t.RoundTripper(memTransport{})))
	run("none", bg, memTransport{})
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
