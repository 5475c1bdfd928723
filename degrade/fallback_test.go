package degrade

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/limit"
)

// limitErr is what a rate limiter's rejection looks like to degrade: an
// error with a RetryAfter method (package limit's shape), recognised
// without importing it.
type limitErr struct{}

func (limitErr) Error() string             { return "limit: rate exceeded" }
func (limitErr) RetryAfter() time.Duration { return time.Second }

// TestFallbackForEachFailure: every kind of failure gets the fallback,
// with the right reason; a caller's cancellation does not.
func TestFallbackForEachFailure(t *testing.T) {
	b := breaker.New(breaker.Config{ConsecutiveFailures: 1})
	defer b.Close()
	b.ForceOpen()
	_, breakerErr := b.Allow()
	bh := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1})
	defer bh.Close()
	bh.TryAcquire() // the only slot is taken: the next call is rejected
	defer bh.Release()
	deadline, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-deadline.Done()

	for _, tc := range []struct {
		name   string
		ctx    context.Context
		err    func(context.Context) error
		reason Reason
	}{
		{"error", context.Background(), func(context.Context) error { return errors.New("boom") }, ReasonError},
		{"breaker", context.Background(), func(context.Context) error { return breakerErr }, ReasonBreaker},
		{"limiter", context.Background(), func(context.Context) error { return fmt.Errorf("wrapped: %w", limitErr{}) }, ReasonRejected},
		{"bulkhead", context.Background(), func(ctx context.Context) error {
			return bh.Do(ctx, func(context.Context) error { return nil })
		}, ReasonRejected},
		{"shed", context.Background(), func(context.Context) error { return &ShedError{} }, ReasonRejected},
		{"timeout", deadline, func(ctx context.Context) error { return ctx.Err() }, ReasonTimeout},
	} {
		var got []Event
		f := New(Config{OnFallback: func(_ context.Context, ev Event) { got = append(got, ev) }})
		v, err := Call(tc.ctx, f, "k", func(ctx context.Context) (string, error) { return "", tc.err(ctx) }, Value("static"))
		if v != "static" || err != nil || len(got) != 1 || got[0].Reason != tc.reason || got[0].Source != SourceFallback {
			t.Errorf("%s: %q %v %+v", tc.name, v, err, got)
		}
		// A function of the error.
		v, err = Call(tc.ctx, f, "k", func(ctx context.Context) (string, error) { return "", tc.err(ctx) },
			func(_ context.Context, err error) (string, error) { return "from " + string(ReasonOf(err)), nil })
		if v != "from "+string(tc.reason) || err != nil {
			t.Errorf("%s: func fallback %q %v", tc.name, v, err)
		}
		f.Close()
	}

	f := New(Config{})
	defer f.Close()
	ctx, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := Call(ctx, f, "k", func(ctx context.Context) (int, error) { return 0, ctx.Err() }, Value(7)); !errors.Is(err, context.Canceled) {
		t.Errorf("a caller's cancellation got a fallback: %v", err)
	}
	if _, err := Call(context.Background(), f, "k", func(context.Context) (int, error) { return 0, errors.New("x") }, nil); err == nil {
		t.Error("no fallback: the error must come back")
	}
}

// TestLastGood: the last good value serves failures within MaxAge, not
// after, and the key count stays bounded.
func TestLastGood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := New(Config{MaxAge: time.Minute, MaxKeys: 2})
		defer f.Close()
		ok := func(v int) func(context.Context) (int, error) {
			return func(context.Context) (int, error) { return v, nil }
		}
		fail := func(context.Context) (int, error) { return 0, errors.New("down") }
		if v, _ := Call(context.Background(), f, "a", ok(1), nil); v != 1 {
			t.Fatal(v)
		}
		if v, err := Call(context.Background(), f, "a", fail, Value(-1)); v != 1 || err != nil {
			t.Fatalf("last good: %v %v", v, err)
		}
		if v, _ := Call(context.Background(), f, "b", fail, Value(-1)); v != -1 {
			t.Fatalf("a key with no last good value: %v", v)
		}
		time.Sleep(61 * time.Second)
		if v, _ := Call(context.Background(), f, "a", fail, Value(-1)); v != -1 {
			t.Fatalf("a value past MaxAge was served: %v", v)
		}
		// Bounded: a third key evicts the expired one.
		Call(context.Background(), f, "b", ok(2), nil)
		Call(context.Background(), f, "c", ok(3), nil)
		if f.lg.n != 2 {
			t.Fatalf("%d keys kept, MaxKeys 2", f.lg.n) // private field: the bound is not visible otherwise
		}
		if v, _ := Call(context.Background(), f, "c", fail, nil); v != 3 {
			t.Fatalf("c: %v", v)
		}
		// A value of another type under the same key is not served.
		if v, _ := Call(context.Background(), f, "c", func(context.Context) (string, error) { return "", errors.New("x") }, Value("s")); v != "s" {
			t.Fatalf("typed: %v", v)
		}
	})
}

func TestSwitchOffServesFallback(t *testing.T) {
	sw := NewSwitches(SwitchesConfig{Defaults: map[string]bool{"recs": false}})
	defer sw.Close()
	f := New(Config{Switch: sw.Switch("recs")})
	defer f.Close()
	called := false
	v, err := Call(context.Background(), f, "", func(context.Context) (string, error) { called = true; return "live", nil }, Value("off"))
	if v != "off" || err != nil || called {
		t.Fatalf("%q %v called=%v", v, err, called)
	}
	if err := f.Do(context.Background(), func(context.Context) error { called = true; return nil }, nil); !errors.Is(err, ErrSwitchedOff) || called {
		t.Fatalf("Do: %v", err)
	}
	sw.Set(context.Background(), "recs", true)
	v, _ = Call(context.Background(), f, "", func(context.Context) (string, error) { return "live", nil }, Value("off"))
	if v != "live" {
		t.Fatal(v)
	}
}

func TestFallbackValidateAndNil(t *testing.T) {
	for _, c := range []Config{{MaxAge: -1}, {MaxKeys: MaxLastGoodKeys + 1}, {MaxBody: -5}} {
		if err := c.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	f := New(Config{})
	defer f.Close()
	for name, fn := range map[string]func(){
		"Call ctx": func() { Call[int](nil, f, "", func(context.Context) (int, error) { return 0, nil }, nil) }, //nolint:staticcheck
		"Call fn":  func() { Call[int](context.Background(), f, "", nil, nil) },
		"Do ctx":   func() { f.Do(nil, func(context.Context) error { return nil }, nil) }, //nolint:staticcheck
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

func TestSwitches(t *testing.T) {
	var events []SwitchEvent
	s := NewSwitches(SwitchesConfig{Defaults: map[string]bool{"a": false}, OnChange: func(_ context.Context, ev SwitchEvent) { events = append(events, ev) }})
	defer s.Close()
	if s.Switch("a").On() || !s.Switch("b").On() {
		t.Fatal("defaults")
	}
	s.Set(context.Background(), "a", true)
	s.Set(context.Background(), "a", true) // no change, no event
	s.Set(context.Background(), "b", false)
	if got := s.List(); !got["a"] || got["b"] || len(events) != 2 {
		t.Fatalf("%v %v", got, events)
	}
	if err := s.Set(context.Background(), "", true); !errors.Is(err, ErrTooManySwitches) {
		t.Fatalf("empty name: %v", err)
	}
	if sw := s.Switch(string(make([]byte, MaxSwitchName+1))); !sw.On() || len(s.List()) != 2 {
		t.Fatal("an over-long name must give a detached switch that is on")
	}
}
