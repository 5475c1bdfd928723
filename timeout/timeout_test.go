package timeout

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// mk returns a Timeout closed when the test ends.
func mk(t *testing.T, cfg Config) *Timeout {
	t.Helper()
	to := New(cfg)
	t.Cleanup(func() { to.Close() })
	return to
}

func wantTimeout(t *testing.T, err error, limit time.Duration) *TimeoutError {
	t.Helper()
	var te *TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v (%T), want a *TimeoutError matching ErrTimeout and DeadlineExceeded", err, err)
	}
	if te.Limit != limit {
		t.Fatalf("Limit = %v, want %v", te.Limit, limit)
	}
	return te
}

func TestCooperativeTimeoutIsDistinguishable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := mk(t, Config{Timeout: 100 * time.Millisecond})
		start := time.Now()
		var cause error
		err := to.Do(context.Background(), func(ctx context.Context) error {
			<-ctx.Done()
			cause = context.Cause(ctx)
			return ctx.Err()
		})
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("Do returned after %v of fake time, want the 100ms limit", d)
		}
		te := wantTimeout(t, err, 100*time.Millisecond)
		if !errors.Is(te.Err, context.DeadlineExceeded) {
			t.Fatalf("TimeoutError.Err = %v, want fn's error", te.Err)
		}
		if _, ok := cause.(*TimeoutError); !ok {
			t.Fatalf("context.Cause inside fn = %v, want a *TimeoutError", cause)
		}
		if got := err.Error(); got != "timeout: timed out after 100ms: context deadline exceeded" {
			t.Fatalf("Error() = %q", got)
		}
		if to.timeouts.Load() != 1 {
			t.Fatalf("timeouts = %d, want 1", to.timeouts.Load())
		}
	})
}

func TestCooperativeFnIgnoringContextIsWaitedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := mk(t, Config{Timeout: 10 * time.Millisecond})
		start := time.Now()
		err := to.Do(context.Background(), func(ctx context.Context) error {
			time.Sleep(200 * time.Millisecond) // ignores ctx
			return errors.New("late failure")
		})
		if d := time.Since(start); d != 200*time.Millisecond {
			t.Fatalf("cooperative Do returned after %v, want when fn did (200ms)", d)
		}
		wantTimeout(t, err, 10*time.Millisecond)

		// A success after the deadline is a success: the work is done.
		v, err := Call(context.Background(), to, func(ctx context.Context) (int, error) {
			time.Sleep(20 * time.Millisecond)
			return 7, nil
		})
		if err != nil || v != 7 {
			t.Fatalf("Call = %v, %v; want 7, nil", v, err)
		}
	})
}

func TestCallerCancellationIsNotATimeout(t *testing.T) {
	for _, abandon := range []bool{false, true} {
		t.Run(fmt.Sprintf("abandon=%v", abandon), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				to := mk(t, Config{Timeout: time.Second, Abandon: abandon})
				userLeft := errors.New("user left")
				ctx, cancel := context.WithCancelCause(context.Background())
				time.AfterFunc(50*time.Millisecond, func() { cancel(userLeft) })
				start := time.Now()
				err := to.Do(ctx, func(ctx context.Context) error {
					<-ctx.Done()
					return ctx.Err() // context.Canceled: not the cause
				})
				if d := time.Since(start); d != 50*time.Millisecond {
					t.Fatalf("returned after %v, want at the cancellation (50ms)", d)
				}
				if !errors.Is(err, userLeft) || errors.Is(err, ErrTimeout) {
					t.Fatalf("err = %v, want the caller's cause and not ErrTimeout", err)
				}
				if !abandon && !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want fn's error kept too", err)
				}
				if to.timeouts.Load() != 0 {
					t.Fatal("a caller's cancellation was counted as a timeout")
				}
				// A context already done: fn is not called.
				called := false
				err = to.Do(ctx, func(context.Context) error { called = true; return nil })
				if called || err != userLeft {
					t.Fatalf("done ctx: called %v, err %v; want not called, the cause", called, err)
				}
			})
		})
	}
}

func TestCallerDeadlineFirstIsTheCallers(t *testing.T) {
	for _, abandon := range []bool{false, true} {
		t.Run(fmt.Sprintf("abandon=%v", abandon), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				to := mk(t, Config{Timeout: time.Second, Abandon: abandon})
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				defer cancel()
				want, _ := ctx.Deadline()
				err := to.Do(ctx, func(actx context.Context) error {
					if dl, _ := actx.Deadline(); !dl.Equal(want) {
						t.Errorf("fn's deadline %v, want the caller's %v", dl, want)
					}
					<-actx.Done()
					return actx.Err()
				})
				if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
					t.Fatalf("err = %v, want the caller's DeadlineExceeded, not ErrTimeout", err)
				}
				if to.timeouts.Load() != 0 {
					t.Fatal("the caller's deadline was counted as a timeout")
				}
			})
		})
	}
}

func TestAbandonReturnsAtTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := mk(t, Config{Timeout: 10 * time.Millisecond, Abandon: true})
		finished := make(chan struct{})
		start := time.Now()
		v, err := Call(context.Background(), to, func(ctx context.Context) (int, error) {
			defer close(finished)
			time.Sleep(200 * time.Millisecond) // ignores ctx
			return 42, nil
		})
		if d := time.Since(start); d != 10*time.Millisecond {
			t.Fatalf("Call returned after %v, want at the 10ms deadline", d)
		}
		wantTimeout(t, err, 10*time.Millisecond)
		if v != 0 {
			t.Fatalf("value %d from an abandoned call, want the zero value", v)
		}
		if n := to.abandoned.Load(); n != 1 {
			t.Fatalf("abandoned gauge = %d while fn runs, want 1", n)
		}
		<-finished
		synctest.Wait() // fn's goroutine has ended
		if n := to.abandoned.Load(); n != 0 {
			t.Fatalf("abandoned gauge = %d after fn returned, want 0", n)
		}
	})
}

func TestAbandonFastCallKeepsItsResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := mk(t, Config{Timeout: 100 * time.Millisecond, Abandon: true})
		boom := errors.New("boom")
		v, err := Call(context.Background(), to, func(ctx context.Context) (string, error) {
			time.Sleep(time.Millisecond)
			return "ok", nil
		})
		if v != "ok" || err != nil {
			t.Fatalf("Call = %q, %v", v, err)
		}
		if err := to.Do(context.Background(), func(context.Context) error { return boom }); err != boom {
			t.Fatalf("Do = %v, want fn's error unchanged", err)
		}
		// fn finishing exactly at the deadline: either outcome is
		// allowed, but it is consistent and the gauge returns to 0.
		for range 50 {
			v, err := Call(context.Background(), to, func(ctx context.Context) (int, error) {
				time.Sleep(100 * time.Millisecond)
				return 1, nil
			})
			if (err == nil) != (v == 1) {
				t.Fatalf("inconsistent result %d, %v", v, err)
			}
		}
		synctest.Wait()
		if n := to.abandoned.Load(); n != 0 {
			t.Fatalf("abandoned gauge = %d, want 0", n)
		}
	})
}

func TestAbandonPanicBeforeDeadlineReachesCaller(t *testing.T) {
	to := mk(t, Config{Timeout: time.Minute, Abandon: true})
	sentinel := errors.New("sentinel")
	got := func() (v any) {
		defer func() { v = recover() }()
		_ = to.Do(context.Background(), func(context.Context) error { panic(sentinel) })
		return nil
	}()
	pe, ok := got.(*PanicError)
	if !ok {
		t.Fatalf("recovered %v (%T), want a *PanicError", got, got)
	}
	if pe.Value != sentinel || !errors.Is(pe, sentinel) {
		t.Fatalf("PanicError.Value = %v", pe.Value)
	}
	if !strings.Contains(string(pe.Stack), "TestAbandonPanicBeforeDeadlineReachesCaller") {
		t.Fatalf("stack does not show fn:\n%s", pe.Stack)
	}
}

// TestAbandonPanicAfterAbandonCrashes runs itself in a child process: a
// panic in an abandoned fn must end the program with fn's own stack.
func TestAbandonPanicAfterAbandonCrashes(t *testing.T) {
	if os.Getenv("TIMEOUT_CRASH_CHILD") == "1" {
		to := New(Config{Timeout: time.Millisecond, Abandon: true})
		release := make(chan struct{})
		_ = to.Do(context.Background(), func(context.Context) error {
			<-release
			panic("late panic in abandoned fn")
		})
		close(release)
		select {} // the panic ends the process
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAbandonPanicAfterAbandonCrashes$")
	cmd.Env = append(os.Environ(), "TIMEOUT_CRASH_CHILD=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v, want it to crash\n%s", err, out)
	}
	if !strings.Contains(string(out), "panic: late panic in abandoned fn") ||
		!strings.Contains(string(out), "TestAbandonPanicAfterAbandonCrashes") {
		t.Fatalf("child output lacks the panic and fn's stack:\n%s", out)
	}
}

func TestNilArgumentsPanic(t *testing.T) {
	to := mk(t, Config{})
	fn := func(context.Context) error { return nil }
	fnv := func(context.Context) (int, error) { return 0, nil }
	for name, call := range map[string]func(){
		"Do nil ctx":   func() { _ = to.Do(nil, fn) },
		"Do nil fn":    func() { _ = to.Do(context.Background(), nil) },
		"Call nil ctx": func() { _, _ = Call(nil, to, fnv) },
		"Call nil t":   func() { _, _ = Call(context.Background(), nil, fnv) },
		"Call nil fn":  func() { _, _ = Call[int](context.Background(), to, nil) },
	} {
		got := func() (v any) {
			defer func() { v = recover() }()
			call()
			return nil
		}()
		if s, _ := got.(string); !strings.HasPrefix(s, "timeout: ") || !strings.Contains(s, "nil") {
			t.Errorf("%s: recovered %v, want a message naming the nil argument", name, got)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Timeout: -time.Second},
		{Timeout: MaxTimeout + 1},
		{Header: "Bad Header"},
		{Header: "Bad:Header"},
		{Header: "Ümlaut"},
		{Header: strings.Repeat("h", MaxHeaderLen+1)},
	} {
		err := c.Validate()
		var ce *bulwark.ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, bulwark.ErrInvalidConfig) || ce.Package != "timeout" {
			t.Fatalf("Validate(%+v) = %v, want a timeout ConfigError", c, err)
		}
		got := func() (v any) {
			defer func() { v = recover() }()
			New(c)
			return nil
		}()
		if e, _ := got.(error); !errors.Is(e, bulwark.ErrInvalidConfig) {
			t.Fatalf("New(%+v) recovered %v, want the ConfigError", c, got)
		}
	}
	for _, c := range []Config{{}, {Timeout: time.Nanosecond}, {Timeout: MaxTimeout}, {Header: NoHeader}, {Header: "x-budget_ms.v1"}} {
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate(%+v) = %v", c, err)
		}
	}
	to := mk(t, Config{})
	if to.limit != DefaultTimeout || to.header != DefaultHeader {
		t.Fatalf("zero Config: limit %v header %q", to.limit, to.header)
	}
	if to := mk(t, Config{Header: "x-budget"}); to.header != "X-Budget" {
		t.Fatalf("header %q, want canonical", to.header)
	}
	if to := mk(t, Config{Header: NoHeader}); to.header != "" {
		t.Fatalf("NoHeader: header %q", to.header)
	}
}

func TestTimeoutErrorIsANetTimeout(t *testing.T) {
	err := error(&url.Error{Op: "Get", URL: "http://x", Err: &TimeoutError{Limit: time.Second}})
	var ue *url.Error
	if !errors.As(err, &ue) || !ue.Timeout() || !errors.Is(err, ErrTimeout) {
		t.Fatalf("url.Error around a TimeoutError: Timeout() false or ErrTimeout lost")
	}
}

// TestCooperativeAllocations pins the allocations the package doc states
// for the cooperative mode, for a fn that does not call ctx.Done: none
// under a caller's earlier deadline; one (the context) under a caller's
// context that cannot be cancelled; context.WithTimeoutCause's under one
// that can; none with ReuseContexts.
func TestCooperativeAllocations(t *testing.T) {
	fn := func(context.Context) error { return nil }
	fnv := func(context.Context) (int, error) { return 1, nil }
	dl, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cc, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	bg := context.Background()
	std := testing.AllocsPerRun(1000, func() {
		_, c := context.WithTimeoutCause(cc, time.Hour, ErrTimeout)
		c()
	})
	for _, c := range []struct {
		name  string
		reuse bool
		ctx   context.Context
		want  float64
	}{
		{"earlier caller deadline", false, dl, 0},
		{"Background", false, bg, 1},
		{"cancellable", false, cc, std},
		{"ReuseContexts earlier caller deadline", true, dl, 0},
		{"ReuseContexts Background", true, bg, 0},
		{"ReuseContexts cancellable", true, cc, 0},
	} {
		to := mk(t, Config{Timeout: time.Hour, ReuseContexts: c.reuse})
		if a := testing.AllocsPerRun(1000, func() { _ = to.Do(c.ctx, fn) }); a != c.want {
			t.Errorf("Do, %s: %v allocs, want %v", c.name, a, c.want)
		}
		if a := testing.AllocsPerRun(1000, func() { _, _ = Call(c.ctx, to, fnv) }); a != c.want {
			t.Errorf("Call, %s: %v allocs, want %v", c.name, a, c.want)
		}
	}
}

// TestAbandonAllocations pins the figures the package doc states for
// Config.Abandon: 9 allocations per Do, 8 per Call (ReuseContexts does
// not apply).
func TestAbandonAllocations(t *testing.T) {
	to := mk(t, Config{Timeout: time.Hour, Abandon: true, ReuseContexts: true})
	fn := func(context.Context) error { return nil }
	fnv := func(context.Context) (int, error) { return 1, nil }
	if a := testing.AllocsPerRun(1000, func() { _ = to.Do(context.Background(), fn) }); a != 9 {
		t.Errorf("Do with Abandon: %v allocs, want 9", a)
	}
	if a := testing.AllocsPerRun(1000, func() { _, _ = Call(context.Background(), to, fnv) }); a != 8 {
		t.Errorf("Call with Abandon: %v allocs, want 8", a)
	}
}

func TestConcurrentCallsRace(t *testing.T) {
	for _, abandon := range []bool{false, true} {
		to := mk(t, Config{Timeout: time.Millisecond, Abandon: abandon})
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for j := range 50 {
					_, _ = Call(context.Background(), to, func(ctx context.Context) (int, error) {
						if (i+j)%2 == 0 {
							<-ctx.Done()
							return 0, ctx.Err()
						}
						return j, nil
					})
				}
			})
		}
		wg.Wait()
	}
}
