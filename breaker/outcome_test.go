package breaker_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
)

var errUserLeft = errors.New("user went away")

// blockingServer answers once the request's context is done, after
// signalling that the request arrived.
func blockingServer(t *testing.T) (*httptest.Server, chan struct{}) {
	arrived := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv, arrived
}

func oneTripper() *breaker.Breaker {
	return breaker.New(breaker.Config{ConsecutiveFailures: 1})
}

// TestCallerCancelWithCauseIsNeutral guards issue 7 item 8: a caller who
// cancels with context.WithCancelCause gets the cause back from net/http
// and from its own fn, and that cause need not wrap context.Canceled; the
// call must still be neutral on every path.
func TestCallerCancelWithCauseIsNeutral(t *testing.T) {
	t.Run("Do", func(t *testing.T) {
		b := oneTripper()
		defer b.Close()
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errUserLeft)
		err := b.Do(ctx, func(ctx context.Context) error { return context.Cause(ctx) })
		if !errors.Is(err, errUserLeft) {
			t.Fatalf("Do = %v", err)
		}
		if c := b.Counts(); c.State != breaker.Closed || c.Neutral != 1 || c.Failures != 0 {
			t.Fatalf("counts %+v, want one neutral call", c)
		}
	})
	t.Run("Call", func(t *testing.T) {
		b := oneTripper()
		defer b.Close()
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errUserLeft)
		_, _ = breaker.Call(ctx, b, func(ctx context.Context) (int, error) { return 0, context.Cause(ctx) })
		if c := b.Counts(); c.State != breaker.Closed || c.Neutral != 1 {
			t.Fatalf("counts %+v, want one neutral call", c)
		}
	})
	t.Run("SetDo", func(t *testing.T) {
		s := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{ConsecutiveFailures: 1}})
		defer s.Close()
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errUserLeft)
		_ = s.Do(ctx, "k", func(ctx context.Context) error { return context.Cause(ctx) })
		if c := s.Get("k").Counts(); c.State != breaker.Closed || c.Neutral != 1 {
			t.Fatalf("counts %+v, want one neutral call", c)
		}
	})
	rts := map[string]func(*http.Transport) (http.RoundTripper, func() breaker.Counts, func()){
		"RoundTripper": func(tr *http.Transport) (http.RoundTripper, func() breaker.Counts, func()) {
			b := oneTripper()
			return b.RoundTripper(tr), b.Counts, func() { b.Close() }
		},
		"SetRoundTripper": func(tr *http.Transport) (http.RoundTripper, func() breaker.Counts, func()) {
			s := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{ConsecutiveFailures: 1},
				KeyFunc: func(*http.Request) string { return "k" }})
			return s.RoundTripper(tr), func() breaker.Counts { return s.Get("k").Counts() }, func() { s.Close() }
		},
	}
	for name, mk := range rts {
		t.Run(name, func(t *testing.T) {
			srv, arrived := blockingServer(t)
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			rt, counts, done := mk(tr)
			defer done()
			ctx, cancel := context.WithCancelCause(context.Background())
			go func() { <-arrived; cancel(errUserLeft) }()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			_, err := (&http.Client{Transport: rt}).Do(req)
			if !errors.Is(err, errUserLeft) {
				t.Fatalf("Do = %v, want the cause back", err)
			}
			if c := counts(); c.State != breaker.Closed || c.Failures != 0 || c.Neutral != 1 {
				t.Fatalf("counts %+v, want one neutral call", c)
			}
		})
	}
	t.Run("Handler", func(t *testing.T) {
		b := oneTripper()
		defer b.Close()
		h := b.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errUserLeft)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
		if c := b.Counts(); c.State != breaker.Closed || c.Neutral != 1 || c.Successes != 0 {
			t.Fatalf("counts %+v, want one neutral call", c)
		}
	})
}

// TestSupersededAttemptIsAFailure: an attempt cancelled with the cause
// bulwark.ErrSuperseded (a hedge won, issue 7 item 12) is evidence that
// its endpoint was slow, and counts as a failure through Do and
// RoundTripper; a plain cancellation beside it stays neutral.
func TestSupersededAttemptIsAFailure(t *testing.T) {
	t.Run("Do", func(t *testing.T) {
		b := breaker.New(breaker.Config{ConsecutiveFailures: 2})
		defer b.Close()
		for _, cause := range []error{nil, errUserLeft} { // neutral
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(cause)
			_ = b.Do(ctx, func(ctx context.Context) error { return context.Cause(ctx) })
		}
		if c := b.Counts(); c.Neutral != 2 || c.Failures != 0 {
			t.Fatalf("plain cancellations: counts %+v, want 2 neutral", c)
		}
		for range 2 {
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(bulwark.ErrSuperseded)
			_ = b.Do(ctx, func(ctx context.Context) error { return ctx.Err() })
		}
		if got := b.State(); got != breaker.Open {
			t.Fatalf("after 2 superseded attempts: %v, want open", got)
		}
	})
	t.Run("RoundTripper", func(t *testing.T) {
		srv, arrived := blockingServer(t)
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		b := breaker.New(breaker.Config{ConsecutiveFailures: 1})
		defer b.Close()
		client := &http.Client{Transport: b.RoundTripper(tr)}
		get := func(cause error) {
			ctx, cancel := context.WithCancelCause(context.Background())
			go func() { <-arrived; cancel(cause) }()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, strings.NewReader(""))
			if _, err := client.Do(req); err == nil {
				t.Fatal("cancelled request succeeded")
			}
		}
		get(errUserLeft)
		if c := b.Counts(); c.State != breaker.Closed || c.Neutral != 1 {
			t.Fatalf("plain cancellation: counts %+v", c)
		}
		get(bulwark.ErrSuperseded)
		if got := b.State(); got != breaker.Open {
			t.Fatalf("after a superseded attempt: %v, want open", got)
		}
	})
}

// TestNilContextOrFunctionPanicsAtOnce: the caller's bug is reported
// before anything is recorded, with a message naming the argument.
func TestNilContextOrFunctionPanicsAtOnce(t *testing.T) {
	b := oneTripper()
	defer b.Close()
	s := breaker.NewSet(breaker.SetConfig{})
	defer s.Close()
	var nilCtx context.Context
	cases := map[string]func(){
		"breaker: Breaker.Do called with a nil ctx": func() { _ = b.Do(nilCtx, ok) },
		"breaker: Breaker.Do called with a nil fn":  func() { _ = b.Do(context.Background(), nil) },
		"breaker: Call called with a nil ctx": func() {
			_, _ = breaker.Call(nilCtx, b, func(context.Context) (int, error) { return 0, nil })
		},
		"breaker: Call called with a nil fn":    func() { _, _ = breaker.Call[int](context.Background(), b, nil) },
		"breaker: Set.Do called with a nil ctx": func() { _ = s.Do(nilCtx, "k", ok) },
		"breaker: Set.Do called with a nil fn":  func() { _ = s.Do(context.Background(), "k", nil) },
	}
	for want, f := range cases {
		func() {
			defer func() {
				if r := recover(); r != want {
					t.Errorf("panic %v, want %q", r, want)
				}
			}()
			f()
		}()
	}
	if c := b.Counts(); c != (breaker.Counts{}) {
		t.Fatalf("a rejected nil argument was recorded: %+v", c)
	}
	if s.Len() != 0 {
		t.Fatal("Set.Do created a breaker before rejecting a nil argument")
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	b := breaker.New(breaker.Config{})
	s := breaker.NewSet(breaker.SetConfig{})
	s.Get("a")
	for range 3 {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Do(context.Background(), ok); err != nil { // still works, without metrics
		t.Fatal(err)
	}
	if s.Len() != 0 {
		t.Fatal("closed set not empty")
	}
}
