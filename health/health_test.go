package health

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func okCheck(context.Context) error { return nil }

func TestValidate(t *testing.T) {
	bad := map[string]Check{
		"Checks[0].Name":      {Func: okCheck},
		"Checks[0].Func":      {Name: "a"},
		"Checks[0].Timeout":   {Name: "a", Func: okCheck, Timeout: -1},
		"Checks[0].TTL":       {Name: "a", Func: okCheck, TTL: 2 * MaxTTL},
		"Checks[0].Groups[0]": {Name: "a", Func: okCheck, Groups: []string{Ready}},
	}
	for field, c := range bad {
		err := Config{Checks: []Check{c}}.Validate()
		var ce *bulwark.ConfigError
		if !errors.As(err, &ce) || ce.Field != field {
			t.Errorf("%s: Validate = %v", field, err)
		}
	}
	if err := (Config{Checks: []Check{{Name: "a", Func: okCheck}, {Name: "a", Func: okCheck}}}).Validate(); err == nil {
		t.Error("duplicate names accepted")
	}
	func() {
		defer func() {
			if err, _ := recover().(error); !errors.Is(err, bulwark.ErrInvalidConfig) {
				t.Errorf("New(bad) panicked with %v", err)
			}
		}()
		New(Config{Checks: []Check{{Name: "x"}}})
	}()
	h := New(Config{Checks: []Check{{Name: "a", Func: okCheck}}})
	if err := h.Add(Check{Name: "a", Func: okCheck}); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("Add(duplicate) = %v", err)
	}
	h.Close()
	h.Close()
	if err := h.Add(Check{Name: "b", Func: okCheck}); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close = %v", err)
	}
}

// TestCachedAndShared: a result is reused for TTL, and concurrent probes
// of a stale check share one run.
func TestCachedAndShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		h := New(Config{Checks: []Check{{Name: "db", TTL: 10 * time.Second, Func: func(ctx context.Context) error {
			runs.Add(1)
			time.Sleep(100 * time.Millisecond) // fake time: the run takes a while
			return nil
		}}}})
		defer h.Close()
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				if r := h.Report(context.Background(), Ready); r.Status != StatusOK {
					t.Errorf("report %+v", r)
				}
			})
		}
		wg.Wait()
		if runs.Load() != 1 {
			t.Fatalf("10 concurrent probes ran the check %d times, want 1", runs.Load())
		}
		time.Sleep(9 * time.Second)
		r := h.Report(context.Background(), Ready)
		if runs.Load() != 1 {
			t.Fatal("a probe within TTL ran the check again")
		}
		if got := r.Checks["db"]; got.Duration != 100*time.Millisecond || !got.Critical {
			t.Errorf("cached result %+v", got)
		}
		time.Sleep(2 * time.Second)
		h.Report(context.Background(), Ready)
		if runs.Load() != 2 {
			t.Fatalf("a probe after TTL: %d runs, want 2", runs.Load())
		}
	})
}

// TestHangingCheck: a check that ignores its context cannot hang the
// probe: the probe reports a timeout at the check's Timeout, later probes
// report it at once without starting a second run, and the check's real
// result replaces it once it returns.
func TestHangingCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var runs atomic.Int64
		h := New(Config{Checks: []Check{{Name: "stuck", Timeout: 2 * time.Second, TTL: time.Second, Func: func(context.Context) error {
			runs.Add(1)
			<-release
			return nil
		}}}})
		defer h.Close()
		start := time.Now()
		r := h.Report(context.Background(), Ready)
		if time.Since(start) != 2*time.Second {
			t.Fatalf("probe took %v, want the 2s timeout", time.Since(start))
		}
		if c := r.Checks["stuck"]; r.Status != StatusFail || c.Status != StatusTimeout || c.Error != "timeout after 2s" {
			t.Fatalf("report %+v", r)
		}
		time.Sleep(5 * time.Second)
		start = time.Now()
		r = h.Report(context.Background(), Ready)
		if time.Since(start) != 0 || r.Checks["stuck"].Status != StatusTimeout || runs.Load() != 1 {
			t.Fatalf("second probe: %v after %v with %d runs", r, time.Since(start), runs.Load())
		}
		close(release)
		synctest.Wait()
		time.Sleep(2 * time.Second)
		if r := h.Report(context.Background(), Ready); r.Status != StatusOK {
			t.Fatalf("after release: %+v", r)
		}
	})
}

// TestCheckHonouringTimeout: a check that waits on its context gets the
// Timeout as its deadline.
func TestCheckHonouringTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New(Config{Checks: []Check{{Name: "slow", Timeout: 300 * time.Millisecond, Func: func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}}}})
		defer h.Close()
		start := time.Now()
		r := h.Report(context.Background(), Ready)
		if time.Since(start) != 300*time.Millisecond || r.Checks["slow"].Status != StatusTimeout {
			t.Fatalf("%+v after %v", r, time.Since(start))
		}
	})
}

func TestProbeContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New(Config{Checks: []Check{{Name: "slow", Timeout: time.Minute, Func: func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}}}})
		defer h.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		r := h.Report(ctx, Ready)
		if time.Since(start) != time.Second || r.Status != StatusFail {
			t.Fatalf("%+v after %v", r, time.Since(start))
		}
	})
}

func TestCriticalOptionalAndGroups(t *testing.T) {
	boom := errors.New("boom")
	var liveRuns atomic.Int64
	h := New(Config{Checks: []Check{
		{Name: "cache", Optional: true, Func: func(context.Context) error { return boom }, Groups: []string{"search"}},
		{Name: "loop", Liveness: true, Func: func(context.Context) error { liveRuns.Add(1); return nil }},
		{Name: "db", Func: okCheck, Groups: []string{"orders"}},
	}})
	defer h.Close()
	r := h.Report(context.Background(), Ready)
	if r.Status != StatusOK || len(r.Checks) != 3 || r.Checks["cache"].Status != StatusFail || r.Checks["cache"].Error != "boom" || r.Checks["cache"].Critical {
		t.Fatalf("an optional failure must be reported and keep the probe ok: %+v", r)
	}
	if r := h.Report(context.Background(), Live); len(r.Checks) != 1 || r.Checks["loop"].Status != StatusOK {
		t.Fatalf("liveness ran %+v, want only loop", r)
	}
	if r := h.Report(context.Background(), "orders"); len(r.Checks) != 1 || r.Status != StatusOK {
		t.Fatalf("group orders: %+v", r)
	}
	if !h.HasGroup("search") || !h.HasGroup(Live) || h.HasGroup("nope") {
		t.Fatal("HasGroup")
	}
	if err := h.Add(Check{Name: "queue", Func: func(context.Context) error { return boom }}); err != nil {
		t.Fatal(err)
	}
	if r := h.Report(context.Background(), Ready); r.Status != StatusFail || r.Checks["queue"].Status != StatusFail {
		t.Fatalf("a critical failure must fail readiness: %+v", r)
	}
	if r := h.Report(context.Background(), Live); r.Status != StatusOK {
		t.Fatalf("a readiness failure reached liveness: %+v", r)
	}
}

func TestPanickingCheckFails(t *testing.T) {
	h := New(Config{Checks: []Check{{Name: "p", Func: func(context.Context) error { panic("oops") }}}})
	defer h.Close()
	r := h.Report(context.Background(), Ready)
	if c := r.Checks["p"]; c.Status != StatusFail || !strings.Contains(c.Error, "oops") {
		t.Fatalf("%+v", r)
	}
}

// TestBackground: a background check runs every TTL by itself, probes
// only read its result, and Close stops it.
func TestBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		h := New(Config{Checks: []Check{{Name: "bg", Background: true, TTL: time.Second, Func: func(context.Context) error {
			runs.Add(1)
			return nil
		}}}})
		synctest.Wait()
		if runs.Load() != 1 {
			t.Fatalf("runs at start = %d", runs.Load())
		}
		for range 10 {
			h.Report(context.Background(), Ready)
		}
		if runs.Load() != 1 {
			t.Fatalf("probes ran a background check: %d runs", runs.Load())
		}
		time.Sleep(3500 * time.Millisecond)
		if runs.Load() != 4 {
			t.Fatalf("after 3.5 TTLs: %d runs, want 4", runs.Load())
		}
		h.Close()
		time.Sleep(10 * time.Second)
		if runs.Load() != 4 {
			t.Fatalf("the check ran after Close: %d runs", runs.Load())
		}
		if r := h.Report(context.Background(), Ready); r.Status != StatusOK {
			t.Fatalf("after Close a background check reports its last result: %+v", r)
		}
	})
}

func TestBreakerCheck(t *testing.T) {
	set := breaker.NewSet(breaker.SetConfig{})
	defer set.Close()
	ctx := context.Background()
	critical := BreakerCheck(set, BreakerRule{Keys: []string{"a", "b", "c", "d"}, Critical: []string{"pay"}})
	if err := critical(ctx); err != nil {
		t.Fatalf("all closed: %v", err)
	}
	set.Get("pay").ForceOpen()
	if err := critical(ctx); err == nil || !strings.Contains(err.Error(), "critical breakers open: pay") {
		t.Fatalf("critical open: %v", err)
	}
	set.Get("pay").Reset()
	set.Get("a").ForceOpen()
	set.Get("b").ForceOpen()
	if err := critical(ctx); err != nil {
		t.Fatalf("2 of 5 open, under 0.5: %v", err)
	}
	set.Get("c").ForceOpen()
	if err := critical(ctx); err == nil || !strings.Contains(err.Error(), "3 of 5 breakers open: a, b, c") {
		t.Fatalf("3 of 5 open: %v", err)
	}
	set.Get("c").Disable()
	if err := critical(ctx); err != nil {
		t.Fatalf("a disabled breaker counted as open: %v", err)
	}
	all := BreakerCheck(set, BreakerRule{Keys: []string{"a", "b"}, OpenFraction: 1})
	if err := all(ctx); err == nil {
		t.Fatal("OpenFraction 1 with both open passed")
	}
	func() {
		defer func() {
			if err, _ := recover().(error); !errors.Is(err, bulwark.ErrInvalidConfig) {
				t.Errorf("bad OpenFraction: %v", err)
			}
		}()
		BreakerCheck(set, BreakerRule{OpenFraction: 2})
	}()
}

func TestEndpointCheck(t *testing.T) {
	healthy := 3
	c := EndpointCheck(EndpointsFunc(func() (int, int) { return healthy, 5 }), 2)
	if err := c(context.Background()); err != nil {
		t.Fatal(err)
	}
	healthy = 1
	if err := c(context.Background()); err == nil || err.Error() != "health: 1 of 5 endpoints healthy, want at least 2" {
		t.Fatalf("%v", err)
	}
	if err := EndpointCheck(EndpointsFunc(func() (int, int) { return 0, 0 }), 0)(context.Background()); err == nil {
		t.Fatal("no endpoints passed")
	}
}

func TestBreakerCheckWithoutKeysWatchesEveryMember(t *testing.T) {
	set := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{ConsecutiveFailures: 1}})
	defer set.Close()
	check := BreakerCheck(set, BreakerRule{})
	for _, k := range []string{"a", "b", "c"} {
		set.Get(k)
	}
	if err := check(context.Background()); err != nil {
		t.Fatalf("all closed: %v", err)
	}
	set.Get("a").ForceOpen()
	if err := check(context.Background()); err != nil {
		t.Fatalf("1 of 3 open, under the default half: %v", err)
	}
	set.Get("b").ForceOpen()
	if err := check(context.Background()); err == nil || !strings.Contains(err.Error(), "2 of 3") {
		t.Fatalf("2 of 3 open: %v, want a failure naming 2 of 3", err)
	}
}
