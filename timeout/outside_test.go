package timeout_test

// Black-box tests: package timeout tried from outside, through its public
// API and against its docs, over real net/http servers. The time-based
// ones run in a testing/synctest bubble (the Timeout is built inside it),
// over in-memory connections (net.Pipe) so that the bubble's fake time
// follows them exactly; HTTP/2 runs over a real TLS loopback server.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/conformance"
	"github.com/bulwark-go/bulwark/internal/pipehttp"
	"github.com/bulwark-go/bulwark/retry"
	"github.com/bulwark-go/bulwark/timeout"
)

// newT returns a Timeout closed when the test ends.
func newT(t *testing.T, cfg timeout.Config) *timeout.Timeout {
	t.Helper()
	to := timeout.New(cfg)
	t.Cleanup(func() { to.Close() })
	return to
}

// isOurs fails the test unless err is a *timeout.TimeoutError with the
// given limit that matches ErrTimeout and context.DeadlineExceeded.
func isOurs(t *testing.T, err error, limit time.Duration) *timeout.TimeoutError {
	t.Helper()
	var te *timeout.TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, timeout.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v (%T), want a *TimeoutError matching ErrTimeout and DeadlineExceeded", err, err)
	}
	if te.Limit != limit {
		t.Fatalf("Limit = %v, want %v", te.Limit, limit)
	}
	return te
}

// notOurs fails the test if err is nil or matches ErrTimeout.
func notOurs(t *testing.T, err error) {
	t.Helper()
	var te *timeout.TimeoutError
	if err == nil || errors.Is(err, timeout.ErrTimeout) || errors.As(err, &te) {
		t.Fatalf("err = %v (%T), want the caller's error, not ErrTimeout", err, err)
	}
}

var modes = []struct {
	name    string
	abandon bool
}{{"cooperative", false}, {"abandon", true}}

func TestOutsideDoTimesOut(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				to := newT(t, timeout.Config{Timeout: 300 * time.Millisecond, Abandon: m.abandon})
				start := time.Now()
				var cause error
				err := to.Do(context.Background(), func(ctx context.Context) error {
					<-ctx.Done()
					cause = context.Cause(ctx)
					return ctx.Err()
				})
				if d := time.Since(start); d != 300*time.Millisecond {
					t.Fatalf("Do returned after %v, want 300ms", d)
				}
				te := isOurs(t, err, 300*time.Millisecond)
				synctest.Wait()
				if !errors.Is(cause, timeout.ErrTimeout) {
					t.Fatalf("context.Cause inside fn = %v, want a *TimeoutError", cause)
				}
				// With Abandon, fn's return races the deadline: Err is nil
				// (Do did not wait) or fn's error.
				if te.Err != nil && !errors.Is(te.Err, context.DeadlineExceeded) || !m.abandon && te.Err == nil {
					t.Fatalf("cooperative: TimeoutError.Err = %v, want fn's error", te.Err)
				}
				if !strings.Contains(err.Error(), "300ms") {
					t.Fatalf("message %q does not name the limit", err.Error())
				}
			})
		})
	}
}

func TestOutsideCallTimesOut(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				to := newT(t, timeout.Config{Timeout: time.Second, Abandon: m.abandon})
				v, err := timeout.Call(context.Background(), to, func(ctx context.Context) (int, error) {
					<-ctx.Done()
					return 7, ctx.Err()
				})
				isOurs(t, err, time.Second)
				if m.abandon {
					done := make(chan struct{})
					v, err = timeout.Call(context.Background(), to, func(ctx context.Context) (int, error) {
						defer close(done)
						time.Sleep(time.Hour) // ignores ctx: abandoned
						return 7, nil
					})
					if isOurs(t, err, time.Second); v != 0 {
						t.Fatalf("Abandon: value %d, want the zero value", v)
					}
					<-done
				}
				v, err = timeout.Call(context.Background(), to, func(ctx context.Context) (int, error) { return 42, nil })
				if v != 42 || err != nil {
					t.Fatalf("fast Call = %d, %v", v, err)
				}
			})
		})
	}
}

// fn's own error before the deadline comes back unchanged; nil after the
// deadline stays nil (the work is done) in cooperative mode; an error
// after the deadline is wrapped in the TimeoutError.
func TestOutsideDoFnResults(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				to := newT(t, timeout.Config{Timeout: time.Second, Abandon: m.abandon})
				mine := errors.New("mine")
				if err := to.Do(context.Background(), func(context.Context) error { return mine }); err != mine {
					t.Fatalf("fn's error came back as %v", err)
				}
				if m.abandon {
					return
				}
				err := to.Do(context.Background(), func(ctx context.Context) error {
					time.Sleep(2 * time.Second) // ignores ctx
					return nil
				})
				if err != nil {
					t.Fatalf("fn returned nil after the deadline: Do = %v, want nil", err)
				}
				err = to.Do(context.Background(), func(ctx context.Context) error {
					time.Sleep(2 * time.Second)
					return mine
				})
				if te := isOurs(t, err, time.Second); te.Err != mine || !errors.Is(err, mine) {
					t.Fatalf("TimeoutError.Err = %v, want fn's error", te.Err)
				}
			})
		})
	}
}

func TestOutsideCallerCancellationIsNotATimeout(t *testing.T) {
	userLeft := errors.New("user left")
	for _, m := range modes {
		for _, withCause := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/cause=%v", m.name, withCause), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					to := newT(t, timeout.Config{Timeout: time.Second, Abandon: m.abandon})
					ctx, cancel := context.WithCancelCause(context.Background())
					defer cancel(nil)
					go func() {
						time.Sleep(100 * time.Millisecond)
						if withCause {
							cancel(userLeft)
						} else {
							cancel(nil)
						}
					}()
					start := time.Now()
					err := to.Do(ctx, func(ctx context.Context) error {
						<-ctx.Done()
						return ctx.Err()
					})
					if d := time.Since(start); d != 100*time.Millisecond {
						t.Fatalf("Do returned after %v, want the caller's 100ms", d)
					}
					notOurs(t, err)
					if !errors.Is(err, context.Cause(ctx)) {
						t.Fatalf("err = %v, want it to match the cause %v", err, context.Cause(ctx))
					}
					if withCause && !m.abandon && !errors.Is(err, context.Canceled) {
						t.Fatalf("err = %v, want it to match fn's context.Canceled too", err)
					}
				})
			})
		}
	}
}

func TestOutsideCallerDeadlineIsNotATimeout(t *testing.T) {
	theirs := errors.New("caller's budget")
	for _, m := range modes {
		for _, withCause := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/cause=%v", m.name, withCause), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					to := newT(t, timeout.Config{Timeout: time.Second, Abandon: m.abandon})
					var ctx context.Context
					var cancel context.CancelFunc
					if withCause {
						ctx, cancel = context.WithTimeoutCause(context.Background(), 200*time.Millisecond, theirs)
					} else {
						ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
					}
					defer cancel()
					start := time.Now()
					err := to.Do(ctx, func(ctx context.Context) error {
						<-ctx.Done()
						return ctx.Err()
					})
					if d := time.Since(start); d != 200*time.Millisecond {
						t.Fatalf("Do returned after %v, want the caller's 200ms", d)
					}
					notOurs(t, err)
					// Abandon returns context.Cause(ctx) as it is; cooperative
					// mode fn's ctx.Err() joined with the cause.
					if (!withCause || !m.abandon) && !errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("err = %v, want DeadlineExceeded", err)
					}
					if withCause && !errors.Is(err, theirs) {
						t.Fatalf("err = %v, want the caller's cause", err)
					}
				})
			})
		}
	}
}

// The deadlines are equal: the caller's context ends at the same instant
// as the Timeout's limit. The doc says the caller's deadline counts when
// it is "no later"; either way the error must be coherent.
func TestOutsideCallerDeadlineEqualToTheLimit(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				to := newT(t, timeout.Config{Timeout: time.Second, Abandon: m.abandon})
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				err := to.Do(ctx, func(ctx context.Context) error {
					<-ctx.Done()
					return ctx.Err()
				})
				notOurs(t, err)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v", err)
				}
			})
		})
	}
}

func TestOutsideDoneContextDoesNotRunFn(t *testing.T) {
	cause := errors.New("gone")
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			to := newT(t, timeout.Config{Abandon: m.abandon})
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(cause)
			ran := false
			err := to.Do(ctx, func(context.Context) error { ran = true; return nil })
			if ran || !errors.Is(err, cause) {
				t.Fatalf("Do on a done ctx: ran=%v err=%v, want the cause without running fn", ran, err)
			}
			_, err = timeout.Call(ctx, to, func(context.Context) (int, error) { ran = true; return 1, nil })
			if ran || !errors.Is(err, cause) {
				t.Fatalf("Call on a done ctx: ran=%v err=%v", ran, err)
			}
		})
	}
}

// With Abandon, Do returns at the deadline even when fn ignores its
// context, the abandoned fn runs to its end, and its goroutine then ends
// (synctest.Test would fail on a goroutine left behind).
func TestOutsideAbandonReturnsAtTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := newT(t, timeout.Config{Timeout: 50 * time.Millisecond, Abandon: true})
		finished := make(chan struct{})
		start := time.Now()
		err := to.Do(context.Background(), func(context.Context) error {
			time.Sleep(time.Hour) // ignores its context
			close(finished)
			return errors.New("late")
		})
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Fatalf("Do returned after %v, want 50ms", d)
		}
		isOurs(t, err, 50*time.Millisecond)
		<-finished
	})
}

func TestOutsidePanics(t *testing.T) {
	type boom struct{ n int }
	errBoom := errors.New("boom")
	t.Run("cooperative", func(t *testing.T) {
		to := newT(t, timeout.Config{})
		defer func() {
			if v := recover(); v != (boom{1}) {
				t.Fatalf("recovered %v (%T), want fn's own value", v, v)
			}
		}()
		to.Do(context.Background(), func(context.Context) error { panic(boom{1}) })
	})
	t.Run("abandon", func(t *testing.T) {
		to := newT(t, timeout.Config{Abandon: true})
		defer func() {
			v := recover()
			pe, ok := v.(*timeout.PanicError)
			if !ok || !errors.Is(pe, errBoom) || pe.Value != errBoom || len(pe.Stack) == 0 {
				t.Fatalf("recovered %v (%T), want a *PanicError carrying fn's error and stack", v, v)
			}
			if !strings.Contains(pe.Error(), "boom") {
				t.Fatalf("PanicError message %q", pe.Error())
			}
		}()
		timeout.Call(context.Background(), to, func(context.Context) (int, error) { panic(errBoom) })
	})
}

func mustPanic(t *testing.T, what string, words []string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		v := recover()
		if v == nil {
			t.Fatalf("%s did not panic", what)
		}
		msg := fmt.Sprint(v)
		for _, w := range words {
			if !strings.Contains(msg, w) {
				t.Fatalf("%s panicked with %q, want it to name %q", what, msg, w)
			}
		}
	}()
	f()
}

func TestOutsideNilArguments(t *testing.T) {
	for _, m := range modes {
		to := newT(t, timeout.Config{Abandon: m.abandon})
		fn := func(context.Context) error { return nil }
		vfn := func(context.Context) (int, error) { return 0, nil }
		mustPanic(t, "Do(nil ctx)", []string{"Do", "ctx"}, func() { to.Do(nil, fn) })
		mustPanic(t, "Do(nil fn)", []string{"Do", "fn"}, func() { to.Do(context.Background(), nil) })
		mustPanic(t, "Call(nil ctx)", []string{"Call", "ctx"}, func() { timeout.Call(nil, to, vfn) })
		mustPanic(t, "Call(nil t)", []string{"Call"}, func() { timeout.Call(context.Background(), nil, vfn) })
		mustPanic(t, "Call(nil fn)", []string{"Call", "fn"}, func() {
			timeout.Call[int](context.Background(), to, nil)
		})
	}
}

func TestOutsideConfigValidate(t *testing.T) {
	good := []timeout.Config{
		{},
		{Timeout: time.Nanosecond},
		{Timeout: timeout.MaxTimeout},
		{Header: timeout.NoHeader},
		{Header: "X-Budget"},
		{Header: strings.Repeat("a", timeout.MaxHeaderLen)},
	}
	for _, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", c, err)
		}
	}
	bad := []struct {
		c     timeout.Config
		field string
	}{
		{timeout.Config{Timeout: -1}, "Timeout"},
		{timeout.Config{Timeout: timeout.MaxTimeout + 1}, "Timeout"},
		{timeout.Config{Timeout: time.Duration(1<<63 - 1)}, "Timeout"},
		{timeout.Config{Header: "Bad Header"}, "Header"},
		{timeout.Config{Header: "a:b"}, "Header"},
		{timeout.Config{Header: "x\r\ny"}, "Header"},
		{timeout.Config{Header: "é"}, "Header"},
		{timeout.Config{Header: " "}, "Header"},
		{timeout.Config{Header: "--"}, ""}, // a valid token: must be accepted
		{timeout.Config{Header: strings.Repeat("a", timeout.MaxHeaderLen+1)}, "Header"},
	}
	for _, b := range bad {
		err := b.c.Validate()
		if b.field == "" {
			if err != nil {
				t.Errorf("Validate(Header %q) = %v, want nil", b.c.Header, err)
			}
			continue
		}
		var ce *bulwark.ConfigError
		if !errors.Is(err, bulwark.ErrInvalidConfig) || !errors.As(err, &ce) {
			t.Errorf("Validate(%+v) = %v, want a *bulwark.ConfigError", b.c, err)
			continue
		}
		if !strings.Contains(err.Error(), b.field) || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("Validate(%+v) = %q, want it to name the package and %s", b.c, err, b.field)
		}
		mustPanic(t, "New(bad)", []string{b.field}, func() { timeout.New(b.c) })
	}
}

func TestOutsideCloseIsIdempotent(t *testing.T) {
	to := timeout.New(timeout.Config{})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = to.Close() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Close #%d = %v", i, err)
		}
	}
	if err := to.Close(); err != nil {
		t.Fatalf("Close again = %v", err)
	}
	// It keeps working, unobserved.
	synctest.Test(t, func(t *testing.T) {
		to := timeout.New(timeout.Config{Timeout: time.Second})
		to.Close()
		err := to.Do(context.Background(), func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		isOurs(t, err, time.Second)
	})
}

// bubbleServer serves h inside the current synctest bubble and returns a
// transport that reaches it (any URL); both are closed when the test ends.
func bubbleServer(t *testing.T, h http.Handler) *http.Transport { return pipehttp.Serve(t, h) }

// readAll reads resp's body to its end and closes it.
func readAll(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// --- RoundTripper ---

func TestOutsideRoundTripperTimesOutBeforeHeaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := bubbleServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}))
		to := newT(t, timeout.Config{Timeout: 300 * time.Millisecond})
		c := &http.Client{Transport: to.RoundTripper(tr)}
		start := time.Now()
		_, err := c.Get("http://backend.test/")
		if d := time.Since(start); d != 300*time.Millisecond {
			t.Fatalf("Get returned after %v, want 300ms", d)
		}
		isOurs(t, err, 300*time.Millisecond)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("err %v: not a net.Error with Timeout() true", err)
		}
	})
}

// The limit covers the body: a body that stops coming fails the Read at
// the deadline with a TimeoutError, and one that comes in time is read
// whole even when reading it takes most of the limit.
func TestOutsideRoundTripperCoversTheBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := bubbleServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "head\n")
			http.NewResponseController(w).Flush()
			select {
			case <-time.After(time.Duration(len(r.URL.Query().Get("wait"))) * 100 * time.Millisecond):
				io.WriteString(w, "tail\n")
			case <-r.Context().Done():
			}
		}))
		rd := sdkmetric.NewManualReader()
		to := newT(t, timeout.Config{Timeout: 300 * time.Millisecond, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))})
		c := &http.Client{Transport: to.RoundTripper(tr)}
		start := time.Now()
		resp, err := c.Get("http://backend.test/?wait=xx") // 200ms: in time
		if err != nil {
			t.Fatal(err)
		}
		if body, err := readAll(resp); body != "head\ntail\n" || err != nil {
			t.Fatalf("body %q, %v", body, err)
		}
		start = time.Now()
		resp, err = c.Get("http://backend.test/?wait=xxxxxxxxxx") // 1s: too late
		if err != nil {
			t.Fatal(err)
		}
		body, err := readAll(resp)
		if d := time.Since(start); d != 300*time.Millisecond || body != "head\n" {
			t.Fatalf("body %q after %v, want the head, cut at 300ms", body, d)
		}
		isOurs(t, err, 300*time.Millisecond)
		if got := metrics(t, rd); got["bulwark.timeout.timeouts"] != 1 {
			t.Fatalf("metrics %v, want one timeout (the body's), none for the read in time", got)
		}
	})
}

// metrics collects rd: each bulwark.timeout instrument's value.
func metrics(t *testing.T, rd *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					out[m.Name] += dp.Value
				}
			}
		}
	}
	conformance.Instruments(t, rd)
	return out
}

// The budget crosses a hop: a client's per-attempt limit becomes the next
// hop's request deadline, exactly, and a hop's own longer limit does not
// extend it; a hop's outgoing call then sends what is left.
func TestOutsideBudgetCrossesTwoHops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		last := make(chan string, 1)
		backTr := bubbleServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			last <- r.Header.Get(timeout.DefaultHeader)
		}))
		hop := newT(t, timeout.Config{Timeout: time.Hour})
		front := bubbleServer(t, hop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if d := time.Until(deadlineOf(r.Context())); d != 300*time.Millisecond {
				t.Errorf("the hop had %v, want the caller's 300ms", d)
			}
			time.Sleep(100 * time.Millisecond) // its own work
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://backend.test/", nil)
			resp, err := hop.RoundTripper(backTr).RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			readAll(resp)
		})))
		caller := newT(t, timeout.Config{Timeout: 300 * time.Millisecond})
		resp, err := caller.RoundTripper(front).RoundTrip(httpGet(t))
		if err != nil {
			t.Fatal(err)
		}
		readAll(resp)
		if got := <-last; got != "200" {
			t.Fatalf("the second hop was sent %q, want the 200ms left", got)
		}
	})
}

func deadlineOf(ctx context.Context) time.Time {
	dl, _ := ctx.Deadline()
	return dl
}

func TestOutsideRoundTripperCallerCancellation(t *testing.T) {
	userLeft := errors.New("user left")
	for _, withCause := range []bool{false, true} {
		t.Run(fmt.Sprint("cause=", withCause), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := bubbleServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					<-r.Context().Done()
				}))
				to := newT(t, timeout.Config{Timeout: time.Second})
				ctx, cancel := context.WithCancelCause(context.Background())
				time.AfterFunc(100*time.Millisecond, func() {
					if withCause {
						cancel(userLeft)
					} else {
						cancel(nil)
					}
				})
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://backend.test/", nil)
				_, err := (&http.Client{Transport: to.RoundTripper(tr)}).Do(req)
				notOurs(t, err)
				if !errors.Is(err, context.Cause(ctx)) && !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want the caller's cancellation", err)
				}
				// A caller's deadline shorter than the limit is the caller's.
				ctx, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel2()
				req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://backend.test/", nil)
				_, err = (&http.Client{Transport: to.RoundTripper(tr)}).Do(req)
				notOurs(t, err)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want the caller's DeadlineExceeded", err)
				}
			})
		})
	}
}

// The header carries the attempt's time left in whole milliseconds,
// rounded down: Config.Timeout, or the time to the request's deadline
// when that is shorter. The caller's request is never modified.
func TestOutsideRoundTripperPropagates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		got := make(chan http.Header, 1)
		tr := bubbleServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- r.Header.Clone()
		}))
		send := func(to *timeout.Timeout, ctx context.Context, h http.Header) http.Header {
			t.Helper()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://backend.test/", nil)
			if h != nil {
				req.Header = h
			}
			before := req.Header.Clone()
			resp, err := to.RoundTripper(tr).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(resp)
			if fmt.Sprint(req.Header) != fmt.Sprint(before) {
				t.Fatalf("the caller's header changed: %v, was %v", req.Header, before)
			}
			return <-got
		}
		to := newT(t, timeout.Config{Timeout: 1500 * time.Millisecond})
		if h := send(to, context.Background(), nil); fmt.Sprint(h.Values("Request-Timeout-Ms")) != "[1500]" {
			t.Fatalf("Request-Timeout-Ms = %q, want [1500]", h.Values("Request-Timeout-Ms"))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond+999*time.Microsecond)
		defer cancel()
		if h := send(to, ctx, nil); fmt.Sprint(h.Values("Request-Timeout-Ms")) != "[700]" {
			t.Fatalf("Request-Timeout-Ms = %q, want [700] (the caller's 700.999ms, rounded down)", h.Values("Request-Timeout-Ms"))
		}
		// A caller's own header of that name is replaced, not added to.
		if h := send(to, context.Background(), http.Header{"Request-Timeout-Ms": {"99999", "5"}}); fmt.Sprint(h.Values("Request-Timeout-Ms")) != "[1500]" {
			t.Fatalf("Request-Timeout-Ms = %q, want [1500]", h.Values("Request-Timeout-Ms"))
		}
		custom := newT(t, timeout.Config{Timeout: time.Second, Header: "x-budget"})
		if h := send(custom, context.Background(), nil); fmt.Sprint(h.Values("X-Budget")) != "[1000]" || h.Get("Request-Timeout-Ms") != "" {
			t.Fatalf("custom header: %v", h)
		}
		off := newT(t, timeout.Config{Timeout: time.Second, Header: timeout.NoHeader})
		if h := send(off, context.Background(), nil); h.Get("Request-Timeout-Ms") != "" || h.Get("-") != "" {
			t.Fatalf("NoHeader: %v", h)
		}
		// A caller's deadline less than a millisecond away: 0, the server
		// answers 504 at once.
		ctx, cancel = context.WithTimeout(context.Background(), 500*time.Microsecond)
		defer cancel()
		if h := send(to, ctx, nil); h.Get("Request-Timeout-Ms") != "0" {
			t.Fatalf("Request-Timeout-Ms = %q, want 0", h.Get("Request-Timeout-Ms"))
		}
	})
}

// Under retry, the Timeout bounds each attempt: a slow first attempt
// times out (headers late, or body stalled), the retry succeeds, and each
// attempt was sent the full budget.
func TestOutsideRoundTripperUnderRetry(t *testing.T) {
	for _, stall := range []string{"headers", "body"} {
		t.Run(stall, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var budgets []string
				tr := bubbleServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					budgets = append(budgets, r.Header.Get("Request-Timeout-Ms"))
					n := len(budgets)
					mu.Unlock()
					if n == 1 {
						if stall == "body" {
							io.WriteString(w, "partial")
							http.NewResponseController(w).Flush()
						}
						<-r.Context().Done() // the first attempt hangs
						return
					}
					io.WriteString(w, "ok")
				}))
				to := newT(t, timeout.Config{Timeout: 200 * time.Millisecond})
				p := retry.New(retry.Config{BaseDelay: time.Millisecond, Jitter: retry.NoJitter, Budget: retry.UnlimitedBudget()})
				defer p.Close()
				c := &http.Client{Transport: p.RoundTripper(to.RoundTripper(tr))}
				resp, err := c.Get("http://backend.test/")
				if err != nil {
					t.Fatalf("Get: %v, want the retry's success", err)
				}
				body, err := readAll(resp)
				if stall == "headers" {
					if body != "ok" || err != nil {
						t.Fatalf("body %q, %v", body, err)
					}
				} else {
					// The stalled body was returned before the retry could
					// see it: retry does not read bodies, so the read fails
					// with the attempt's timeout.
					if body != "partial" {
						t.Fatalf("body %q", body)
					}
					isOurs(t, err, 200*time.Millisecond)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if fmt.Sprint(budgets) != "[200 200]" {
					t.Fatalf("budgets sent %v, want [200 200]", budgets)
				}
			})
		})
	}
}

// --- Handler ---

// deadlineSeen serves one request with header values hv through to's
// Handler in a bubble, and returns the time the handler's context had
// left, the status and whether the handler ran.
func deadlineSeen(t *testing.T, cfg timeout.Config, hv ...string) (left time.Duration, code int, ran bool) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		to := newT(t, cfg)
		tr := bubbleServer(t, to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ran = true
			dl, ok := r.Context().Deadline()
			if !ok {
				t.Error("no deadline")
			}
			left = time.Until(dl)
		})))
		req, _ := http.NewRequest(http.MethodGet, "http://backend.test/", nil)
		for _, v := range hv {
			req.Header.Add(timeout.DefaultHeader, v)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(resp)
		code = resp.StatusCode
	})
	return left, code, ran
}

func TestOutsideHandlerAppliesTheSmallerLimit(t *testing.T) {
	own := 2 * time.Second
	cases := []struct {
		hv   []string
		want time.Duration
	}{
		{nil, own},
		{[]string{"500"}, 500 * time.Millisecond},
		{[]string{"0000500"}, 500 * time.Millisecond},
		{[]string{"1"}, time.Millisecond},
		{[]string{"2000"}, own},
		{[]string{"5000"}, own},       // an untrusted client asks for more: no
		{[]string{"9999999999"}, own}, // 10 digits, past 24 h
		{[]string{"99999999999"}, own},
		{[]string{"18446744073709551616"}, own},
		{[]string{"-5"}, own},
		{[]string{"+5"}, own},
		{[]string{"5ms"}, own},
		{[]string{"1.5"}, own},
		{[]string{"1e3"}, own},
		{[]string{"0x10"}, own},
		{[]string{"5 5"}, own},
		{[]string{"5\t"}, 5 * time.Millisecond}, // OWS is not part of a field value
		{[]string{""}, own},
		{[]string{"５"}, own}, // a full-width digit
		{[]string{"5", "5"}, own},
		{[]string{"5,6"}, own},
		{[]string{strings.Repeat("9", 4096)}, own},
	}
	for _, c := range cases {
		left, code, ran := deadlineSeen(t, timeout.Config{Timeout: own}, c.hv...)
		if !ran || code != 200 || left != c.want {
			t.Errorf("header %q: ran %v, status %d, time left %v, want %v", c.hv, ran, code, left, c.want)
		}
	}
	// A budget above the server's own, with the server's own near the max.
	left, _, _ := deadlineSeen(t, timeout.Config{Timeout: timeout.MaxTimeout}, "9999999999")
	if left != timeout.MaxTimeout {
		t.Errorf("a 10-digit budget under a 24 h limit: %v", left)
	}
	// Propagation off: the header means nothing.
	left, _, _ = deadlineSeen(t, timeout.Config{Timeout: own, Header: timeout.NoHeader}, "5")
	if left != own {
		t.Errorf("NoHeader: time left %v, want %v", left, own)
	}
}

// A caller with no time left is answered 504 without running the handler.
func TestOutsideHandlerZeroBudget(t *testing.T) {
	_, code, ran := deadlineSeen(t, timeout.Config{}, "0")
	if ran || code != http.StatusGatewayTimeout {
		t.Fatalf("budget 0: ran %v, status %d, want 504 without running", ran, code)
	}
	_, code, ran = deadlineSeen(t, timeout.Config{}, "0000000000")
	if ran || code != http.StatusGatewayTimeout {
		t.Fatalf("budget 0000000000: ran %v, status %d, want 504 without running", ran, code)
	}
}

// want504 checks a timeout answer as Handler documents it.
func want504(t *testing.T, resp *http.Response, body string, limit time.Duration, http1 bool) {
	t.Helper()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want text/plain", ct)
	}
	if resp.ContentLength != int64(len(body)) || resp.ContentLength <= 0 {
		t.Fatalf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
	}
	if !strings.Contains(body, limit.String()) || !strings.Contains(body, "timeout") {
		t.Fatalf("body %q does not name the limit %v", body, limit)
	}
	if resp.Header.Get("Retry-After") != "" {
		t.Fatalf("Retry-After %q on a timeout", resp.Header.Get("Retry-After"))
	}
	if http1 && !resp.Close {
		t.Fatalf("HTTP/1 504 without Connection: close")
	}
}

// A handler that ignores its context and keeps writing: the client gets
// the 504 at the deadline, whole, never a 200; every later write, flush
// and WriteHeader is refused with http.ErrHandlerTimeout; memory does not
// grow with the refused writes (nothing is buffered). In both modes.
func TestOutsideHandlerIgnoringContextAndWritingOn(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rd := sdkmetric.NewManualReader()
				to := newT(t, timeout.Config{Timeout: 250 * time.Millisecond, Abandon: m.abandon,
					MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))})
				type result struct {
					refused, accepted int
					flushErr, lastErr error
					grew              int64
				}
				done := make(chan result, 1)
				chunk := make([]byte, 32<<10)
				tr := bubbleServer(t, to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					time.Sleep(time.Second) // ignores its context
					var res result
					rc := http.NewResponseController(w)
					var ms0, ms1 runtime.MemStats
					runtime.ReadMemStats(&ms0)
					for i := range 512 { // 16 MiB, if anything kept them
						w.Header().Set("X-Late", fmt.Sprint(i))
						w.WriteHeader(http.StatusOK)
						if _, err := w.Write(chunk); err != nil {
							res.refused++
							res.lastErr = err
						} else {
							res.accepted++
						}
						res.flushErr = rc.Flush()
					}
					runtime.ReadMemStats(&ms1)
					res.grew = int64(ms1.TotalAlloc - ms0.TotalAlloc)
					done <- res
				})))
				start := time.Now()
				resp, err := tr.RoundTrip(httpGet(t))
				if err != nil {
					t.Fatal(err)
				}
				body, err := readAll(resp)
				if d := time.Since(start); d != 250*time.Millisecond || err != nil {
					t.Fatalf("504 read in %v, %v, want whole at the 250ms deadline", d, err)
				}
				want504(t, resp, body, 250*time.Millisecond, true)
				if resp.Header.Get("X-Late") != "" {
					t.Fatalf("the handler's header leaked into the 504: %v", resp.Header)
				}
				res := <-done
				if res.accepted != 0 || res.refused != 512 || !errors.Is(res.lastErr, http.ErrHandlerTimeout) || !errors.Is(res.flushErr, http.ErrHandlerTimeout) {
					t.Fatalf("late writes: %+v, want all refused with http.ErrHandlerTimeout", res)
				}
				if res.grew > 4<<20 {
					t.Fatalf("the 512 refused 32 KiB writes allocated %d bytes: something keeps them", res.grew)
				}
				if got := metrics(t, rd); got["bulwark.timeout.timeouts"] != 1 {
					t.Fatalf("metrics %v, want one timeout", got)
				}
			})
		})
	}
}

func httpGet(t *testing.T) *http.Request {
	req, err := http.NewRequest(http.MethodGet, "http://backend.test/", nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// A handler that started its response and writes after the deadline has
// its response aborted: the client sees an error, never a body that looks
// complete. In both modes; with Abandon at the refused write at once.
func TestOutsideHandlerStartedResponseIsAborted(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				to := newT(t, timeout.Config{Timeout: 250 * time.Millisecond, Abandon: m.abandon})
				lateErr := make(chan error, 1)
				tr := bubbleServer(t, to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", "20")
					io.WriteString(w, "partial\n")
					http.NewResponseController(w).Flush()
					time.Sleep(time.Second) // ignores its context
					_, err := io.WriteString(w, "more\n")
					lateErr <- err
				})))
				resp, err := tr.RoundTrip(httpGet(t))
				if err != nil {
					t.Fatal(err)
				}
				body, err := readAll(resp)
				if resp.StatusCode != 200 || body != "partial\n" || err == nil {
					t.Fatalf("got %d %q, %v; want 200 \"partial\\n\" then a read error", resp.StatusCode, body, err)
				}
				if err := <-lateErr; !errors.Is(err, http.ErrHandlerTimeout) {
					t.Fatalf("late write: %v", err)
				}
			})
		})
	}
}

// Streaming handlers keep working through the middleware: each flush
// reaches the client while the handler is still running.
func TestOutsideHandlerStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := newT(t, timeout.Config{Timeout: 10 * time.Second})
		next := make(chan struct{})
		tr := bubbleServer(t, to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
				t.Errorf("SetWriteDeadline: %v", err)
			}
			if err := rc.EnableFullDuplex(); err != nil {
				t.Errorf("EnableFullDuplex: %v", err)
			}
			for i := range 3 {
				fmt.Fprintf(w, "event %d\n", i)
				if i%2 == 0 {
					w.(http.Flusher).Flush()
				} else if err := rc.Flush(); err != nil {
					t.Errorf("Flush: %v", err)
				}
				<-next
			}
		})))
		resp, err := tr.RoundTrip(httpGet(t))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 64)
		for i := range 3 {
			n, err := resp.Body.Read(buf)
			if string(buf[:n]) != fmt.Sprintf("event %d\n", i) || err != nil {
				t.Fatalf("read %d: %q, %v", i, buf[:n], err)
			}
			next <- struct{}{}
		}
	})
}

// Over HTTP/2 (a real TLS server on loopback): the 504 reaches the client,
// late writes are refused without a race, and with Abandon the body ends
// while the handler is still running.
func TestOutsideHandlerHTTP2(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			to := newT(t, timeout.Config{Timeout: 50 * time.Millisecond, Abandon: m.abandon})
			release := make(chan struct{})
			lateErr := make(chan error, 1)
			srv := httptest.NewUnstartedServer(to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.ProtoMajor != 2 {
					t.Errorf("proto %s", r.Proto)
				}
				if r.URL.Path == "/stream" {
					io.WriteString(w, "first\n")
					w.(http.Flusher).Flush()
					<-r.Context().Done() // then writes on
				} else {
					<-release // ignores its context
				}
				var err error
				for range 100 {
					w.Header().Set("X-Late", "1")
					if _, err = io.WriteString(w, "late"); err == nil {
						break
					}
				}
				lateErr <- err
			})))
			srv.EnableHTTP2 = true
			srv.StartTLS()
			defer srv.Close()
			c := srv.Client()

			resp, err := c.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			if resp.ProtoMajor != 2 {
				t.Fatalf("proto %s", resp.Proto)
			}
			if m.abandon {
				// The body ends while the handler is still held.
				body, err := readAll(resp)
				if err != nil {
					t.Fatal(err)
				}
				want504(t, resp, body, 50*time.Millisecond, false)
				close(release)
			} else {
				// The stream ends when the handler returns.
				close(release)
				body, err := readAll(resp)
				if err != nil {
					t.Fatal(err)
				}
				want504(t, resp, body, 50*time.Millisecond, false)
			}
			if err := <-lateErr; !errors.Is(err, http.ErrHandlerTimeout) {
				t.Fatalf("late write: %v", err)
			}

			// A started response is reset, not truncated.
			resp, err = c.Get(srv.URL + "/stream")
			if err != nil {
				t.Fatal(err)
			}
			body, err := readAll(resp)
			// (On a loaded machine the first line may itself come after the
			// 50ms: then the 504 is the right answer.)
			if resp.StatusCode != http.StatusGatewayTimeout && (resp.StatusCode != 200 || body != "first\n" || err == nil) {
				t.Fatalf("started response: %d %q, %v; want a stream error after the first line", resp.StatusCode, body, err)
			}
			if err := <-lateErr; !errors.Is(err, http.ErrHandlerTimeout) {
				t.Fatalf("late write: %v", err)
			}
		})
	}
}

// With Abandon, Handler returns at the deadline even when next ignores
// its context; a panic in next before the deadline reaches Handler's
// caller as a *PanicError, http.ErrAbortHandler as it is.
func TestOutsideHandlerAbandon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := newT(t, timeout.Config{Timeout: 100 * time.Millisecond, Abandon: true})
		finished := make(chan struct{})
		h := to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer close(finished)
			time.Sleep(time.Hour)
		}))
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if d := time.Since(start); d != 100*time.Millisecond || rec.Code != http.StatusGatewayTimeout {
			t.Fatalf("ServeHTTP returned %d after %v, want 504 at 100ms", rec.Code, d)
		}
		<-finished
	})
	for _, v := range []any{"boom", http.ErrAbortHandler} {
		to := newT(t, timeout.Config{Abandon: true})
		h := to.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(v) }))
		func() {
			defer func() {
				got := recover()
				if v == http.ErrAbortHandler {
					if got != http.ErrAbortHandler {
						t.Fatalf("recovered %v, want http.ErrAbortHandler as it is", got)
					}
					return
				}
				if pe, ok := got.(*timeout.PanicError); !ok || pe.Value != v {
					t.Fatalf("recovered %v (%T), want a *PanicError", got, got)
				}
			}()
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		}()
	}
}

// A header of the budget's name that the caller set under a non-canonical
// key (req.Header["request-timeout-ms"]) is replaced too: before, the
// clone carried both values, and the next hop, which ignores a repeated
// header, lost the budget.
func TestRoundTripperReplacesANonCanonicalBudgetHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		got := make(chan []string, 1)
		tr := bubbleServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- r.Header.Values("X-Budget")
		}))
		to := newT(t, timeout.Config{Timeout: 1500 * time.Millisecond, Header: "x-budget"})
		for _, key := range []string{"x-budget", "X-BUDGET", "X-Budget"} {
			req := httpGet(t)
			req.Header[key] = []string{"99999"}
			resp, err := to.RoundTripper(tr).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(resp)
			if v := <-got; fmt.Sprint(v) != "[1500]" {
				t.Errorf("caller's key %q: the server saw %q, want [1500]", key, v)
			}
			if fmt.Sprint(req.Header) != "map["+key+":[99999]]" {
				t.Errorf("the caller's header changed: %v", req.Header)
			}
		}
	})
}

// A started response whose handler stops at the deadline, as a handler
// that honours its context does (a query cut short, a copy from a
// dependency that failed), is aborted when the handler returns: the
// client sees an error, not a body cut short that looks complete. Before,
// only a write after the deadline aborted it, so the common, cooperative
// handler produced silently truncated 200s.
func TestHandlerStartedResponseCutByTheDeadlineIsAborted(t *testing.T) {
	for _, m := range modes {
		for _, proto := range []string{"chunked", "content-length"} {
			t.Run(m.name+"/"+proto, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					to := newT(t, timeout.Config{Timeout: 250 * time.Millisecond, Abandon: m.abandon})
					tr := bubbleServer(t, to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if proto == "content-length" {
							w.Header().Set("Content-Length", "100")
						}
						io.WriteString(w, "[1, 2, ")
						http.NewResponseController(w).Flush()
						<-r.Context().Done() // the rest is cut short: the handler gives up
					})))
					start := time.Now()
					resp, err := tr.RoundTrip(httpGet(t))
					if err != nil {
						t.Fatal(err)
					}
					body, err := readAll(resp)
					if resp.StatusCode != 200 || body != "[1, 2, " || err == nil {
						t.Fatalf("got %d %q, %v; want the start of the 200, then an error", resp.StatusCode, body, err)
					}
					if d := time.Since(start); d != 250*time.Millisecond {
						t.Fatalf("the error came after %v, want at the 250ms deadline", d)
					}
				})
			})
		}
	}
}

// With Abandon, a started response whose handler hangs without writing
// again is aborted at the deadline, not when the handler returns: Handler
// returns at the deadline even when next ignores its context, as
// documented. Before, the connection stayed held until next returned.
func TestHandlerAbandonAbortsAHungStartedResponseAtTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := newT(t, timeout.Config{Timeout: 250 * time.Millisecond, Abandon: true})
		finished := make(chan struct{})
		tr := bubbleServer(t, to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer close(finished)
			io.WriteString(w, "partial")
			http.NewResponseController(w).Flush()
			time.Sleep(time.Hour) // ignores its context and never writes again
		})))
		start := time.Now()
		resp, err := tr.RoundTrip(httpGet(t))
		if err != nil {
			t.Fatal(err)
		}
		body, err := readAll(resp)
		if d := time.Since(start); d != 250*time.Millisecond || body != "partial" || err == nil {
			t.Fatalf("got %q, %v after %v; want \"partial\" then an error at the 250ms deadline", body, err, d)
		}
		<-finished
	})
}

// A response complete before the deadline stands, however late the
// handler returns: one whose declared Content-Length was written whole,
// and one without a body (HEAD, 204, 304). With Abandon, Handler returns
// at the deadline.
func TestHandlerCompleteResponseOutlivesTheDeadline(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				to := newT(t, timeout.Config{Timeout: 250 * time.Millisecond, Abandon: m.abandon})
				var finished sync.WaitGroup
				tr := bubbleServer(t, to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					finished.Add(1)
					defer finished.Done()
					switch r.URL.Path {
					case "/length":
						w.Header().Set("Content-Length", "6")
						io.WriteString(w, "whole\n")
					case "/204":
						w.WriteHeader(http.StatusNoContent)
					case "/304":
						w.WriteHeader(http.StatusNotModified)
					case "/head":
						w.Header().Set("Content-Length", "6")
						w.WriteHeader(http.StatusOK)
					}
					http.NewResponseController(w).Flush()
					time.Sleep(time.Second) // slow cleanup past the deadline
				})))
				for _, c := range []struct {
					method, path, body string
					code               int
				}{
					{http.MethodGet, "/length", "whole\n", 200},
					{http.MethodGet, "/204", "", 204},
					{http.MethodGet, "/304", "", 304},
					{http.MethodHead, "/head", "", 200},
				} {
					req, _ := http.NewRequest(c.method, "http://backend.test"+c.path, nil)
					resp, err := tr.RoundTrip(req)
					if err != nil {
						t.Fatalf("%s %s: %v", c.method, c.path, err)
					}
					body, err := readAll(resp)
					if resp.StatusCode != c.code || body != c.body || err != nil {
						t.Fatalf("%s %s: got %d %q, %v; want the whole response", c.method, c.path, resp.StatusCode, body, err)
					}
				}
				finished.Wait()
			})
		})
	}
}

// A nil *Timeout, or a nil next handler, is the caller's bug: it panics
// when the middleware is built, with a message naming it, not with a nil
// dereference in the middle of a request (in a goroutine of its own with
// Abandon).
func TestNilTimeoutOrNextHandlerPanicsAtOnce(t *testing.T) {
	var none *timeout.Timeout
	mustPanic(t, "nil Timeout's RoundTripper", []string{"RoundTripper", "nil *Timeout"}, func() { none.RoundTripper(nil) })
	mustPanic(t, "nil Timeout's Handler", []string{"Handler", "nil *Timeout"}, func() { none.Handler(http.NotFoundHandler()) })
	for _, m := range modes {
		to := newT(t, timeout.Config{Abandon: m.abandon})
		mustPanic(t, "Handler(nil)", []string{"Handler", "nil next"}, func() { to.Handler(nil) })
	}
}

// A panic in a cooperative fn ends fn's context as it goes on: whatever
// fn started that waits on the context stops then, not when the limit
// (up to 24 h) would have run out. Before, the context and its timer were
// left behind, and with them anything fn had started under it.
func TestCooperativePanicEndsTheFunctionsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := newT(t, timeout.Config{Timeout: time.Hour})
		for _, call := range []func(fn func(context.Context)){
			func(fn func(context.Context)) {
				to.Do(context.Background(), func(ctx context.Context) error { fn(ctx); return nil })
			},
			func(fn func(context.Context)) {
				timeout.Call(context.Background(), to, func(ctx context.Context) (int, error) { fn(ctx); return 0, nil })
			},
		} {
			stopped := make(chan struct{})
			func() {
				defer func() { recover() }()
				call(func(ctx context.Context) {
					go func() { <-ctx.Done(); close(stopped) }() // work fn started
					panic("bug")
				})
			}()
			synctest.Wait()
			select {
			case <-stopped:
			default:
				t.Fatal("fn's context still alive after its panic")
			}
		}
	})
}

// A 101 Switching Protocols response (a WebSocket or other upgrade made
// through an http.Client) hands the caller the connection: its Body is
// an io.ReadWriteCloser, as net/http documents, and the connection is the
// caller's for as long as it likes, not the attempt's limit.
func TestRoundTripperKeepsAnUpgradedConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := bubbleServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			brw.Flush()
			io.Copy(conn, brw) // echo until the client closes
		}))
		to := newT(t, timeout.Config{Timeout: 100 * time.Millisecond})
		req := httpGet(t)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "echo")
		resp, err := to.RoundTripper(tr).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d", resp.StatusCode)
		}
		rwc, ok := resp.Body.(io.ReadWriteCloser)
		if !ok {
			resp.Body.Close()
			t.Fatalf("a 101's Body is a %T, not an io.ReadWriteCloser", resp.Body)
		}
		defer rwc.Close()
		time.Sleep(time.Second) // well past the attempt's limit
		if _, err := io.WriteString(rwc, "ping"); err != nil {
			t.Fatalf("write on the upgraded connection: %v", err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(rwc, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo %q, %v", buf, err)
		}
	})
}

// An abandoned handler that goes on using http.ResponseController past
// its deadline (SetWriteDeadline, SetReadDeadline, EnableFullDuplex) is
// refused like any other use of its writer: before, the controller went
// through Unwrap to the server's writer, which the server had already
// recycled (HTTP/2: a nil dereference that crashed the program; HTTP/1:
// the deadline of the connection's next request).
func TestHandlerAbandonedResponseControllerIsRefused(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprint("h2=", h2), func(t *testing.T) {
			to := newT(t, timeout.Config{Timeout: 20 * time.Millisecond, Abandon: true})
			release := make(chan struct{})
			errs := make(chan []error, 2)
			srv := httptest.NewUnstartedServer(to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-release // ignores its context; Handler has returned
				rc := http.NewResponseController(w)
				errs <- []error{
					rc.SetWriteDeadline(time.Now().Add(time.Minute)),
					rc.SetReadDeadline(time.Now().Add(time.Minute)),
					rc.EnableFullDuplex(),
				}
			})))
			srv.EnableHTTP2 = h2
			srv.StartTLS()
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			readAll(resp)
			if resp.StatusCode != http.StatusGatewayTimeout {
				t.Fatalf("status %d", resp.StatusCode)
			}
			// A second request on the same connection, so that the first
			// one's writer has been recycled by the time the abandoned
			// handler uses it.
			resp, err = srv.Client().Get(srv.URL)
			if err == nil {
				readAll(resp)
			}
			close(release)
			for range 2 { // both requests' abandoned handlers
				for i, err := range <-errs {
					if !errors.Is(err, http.ErrHandlerTimeout) {
						t.Errorf("call %d of the abandoned handler's controller: %v, want http.ErrHandlerTimeout", i, err)
					}
				}
			}
		})
	}
}

// unwrapOnly is an outer middleware's writer that offers nothing but
// Unwrap, as many do.
type unwrapOnly struct{ http.ResponseWriter }

func (u unwrapOnly) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// Under an outer writer that only has Unwrap, a hijack through
// http.ResponseController still goes through the middleware: refused
// after the deadline (the client has its 504), and, before it, leaving
// the connection to next (no 504 written on it at the deadline). Before,
// the controller went past the middleware's writer to the server's.
func TestHandlerHijackThroughAnUnwrapOnlyWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := newT(t, timeout.Config{Timeout: 100 * time.Millisecond})
		late := make(chan error, 1)
		inner := to.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			if r.URL.Path == "/late" {
				<-r.Context().Done()
				conn, _, err := rc.Hijack()
				if conn != nil {
					conn.Close()
				}
				late <- err
				return
			}
			conn, brw, err := rc.Hijack()
			if err != nil {
				t.Errorf("hijack before the deadline: %v", err)
				return
			}
			defer conn.Close()
			time.Sleep(time.Second) // the connection is next's: no 504 on it
			brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nmine")
			brw.Flush()
		}))
		tr := bubbleServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inner.ServeHTTP(unwrapOnly{w}, r)
		}))
		req, _ := http.NewRequest(http.MethodGet, "http://backend.test/late", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(resp)
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("status %d, want 504", resp.StatusCode)
		}
		if err := <-late; !errors.Is(err, http.ErrHandlerTimeout) {
			t.Fatalf("hijack after the deadline: %v, want http.ErrHandlerTimeout", err)
		}
		resp, err = tr.RoundTrip(httpGet(t))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := readAll(resp)
		if resp.StatusCode != 200 || body != "min" {
			t.Fatalf("hijacked connection: %d %q, want next's own answer", resp.StatusCode, body)
		}
	})
}

// A Config.Header naming a field HTTP itself manages (Content-Length,
// Host, Transfer-Encoding, or a hop-by-hop field a proxy removes) is a bad
// Config: before, Validate accepted it, the client's transport did not
// send it (or a proxy dropped it), and a server with Header
// "Content-Length" read every request's body length as its budget (a
// bodiless POST, "0", was answered 504 without running the handler).
func TestConfigRejectsAHeaderHTTPManages(t *testing.T) {
	for _, h := range []string{"Content-Length", "content-length", "Host", "Transfer-Encoding", "Connection",
		"Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade", "Expect"} {
		err := timeout.Config{Header: h}.Validate()
		if !errors.Is(err, bulwark.ErrInvalidConfig) || !strings.Contains(err.Error(), "Header") {
			t.Errorf("Validate(Header %q) = %v, want a ConfigError naming Header", h, err)
		}
	}
}

// A request built by hand without a header map (Header nil, which
// http.Client fills in but RoundTrip callers may not) is sent with the
// budget, not a panic on the nil map.
func TestRoundTripperRequestWithoutHeaderMap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		got := make(chan string, 1)
		tr := bubbleServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- r.Header.Get(timeout.DefaultHeader)
		}))
		to := newT(t, timeout.Config{Timeout: time.Second})
		req := httpGet(t)
		req.Header = nil
		resp, err := to.RoundTripper(tr).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(resp)
		if v := <-got; v != "1000" || req.Header != nil {
			t.Fatalf("budget %q, caller's header %v", v, req.Header)
		}
	})
}
