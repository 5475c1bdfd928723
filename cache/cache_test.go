package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cache"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// origin is a real loader with a call count; gate, when set, holds every
// call until closed.
type origin struct {
	calls atomic.Int64
	mu    sync.Mutex
	vals  map[string]string
	err   error
	gate  chan struct{}
	took  time.Duration
}

func newOrigin() *origin { return &origin{vals: map[string]string{}} }

func (o *origin) set(k, v string) { o.mu.Lock(); o.vals[k] = v; o.mu.Unlock() }
func (o *origin) fail(err error)  { o.mu.Lock(); o.err = err; o.mu.Unlock() }

func (o *origin) Load(ctx context.Context, k string) (string, error) {
	o.calls.Add(1)
	o.mu.Lock()
	gate, took := o.gate, o.took
	o.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
	}
	if took > 0 {
		time.Sleep(took) // fake time inside synctest: the load's duration, for XFetch
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return "", o.err
	}
	v, ok := o.vals[k]
	if !ok {
		return "", cache.ErrNotFound
	}
	return v, nil
}

func (o *origin) LoadMany(ctx context.Context, keys []string) (map[string]string, error) {
	o.calls.Add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return nil, o.err
	}
	m := map[string]string{}
	for _, k := range keys {
		if v, ok := o.vals[k]; ok {
			m[k] = v
		}
	}
	return m, nil
}

func newCache(t *testing.T, o *origin, cfg cache.Config[string, string]) *cache.Cache[string, string] {
	t.Helper()
	cfg.Load = o.Load
	c := cache.New(cfg)
	t.Cleanup(func() { c.Close() })
	return c
}

func get(t *testing.T, c *cache.Cache[string, string], k string) string {
	t.Helper()
	v, err := c.Get(context.Background(), k)
	if err != nil {
		t.Fatalf("Get(%q): %v", k, err)
	}
	return v
}

func TestThousandConcurrentMissesMakeOneLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("k", "v")
		o.gate = make(chan struct{})
		c := cache.New(cache.Config[string, string]{Load: o.Load})
		defer c.Close()
		var wg sync.WaitGroup
		var bad atomic.Int64
		for range 1000 {
			wg.Go(func() {
				if v, err := c.Get(context.Background(), "k"); err != nil || v != "v" {
					bad.Add(1)
				}
			})
		}
		synctest.Wait() // every Get is waiting for the one load
		close(o.gate)
		wg.Wait()
		if n := o.calls.Load(); n != 1 {
			t.Fatalf("origin calls = %d, want 1", n)
		}
		if bad.Load() != 0 {
			t.Fatalf("%d Gets got a wrong answer", bad.Load())
		}
		if s := c.Stats(); s.Loads != 1 || s.Misses != 1000 {
			t.Fatalf("stats %+v, want 1 load and 1000 misses", s)
		}
	})
}

func TestCallerGivingUpDoesNotCancelTheLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("k", "v")
		o.gate = make(chan struct{})
		c := cache.New(cache.Config[string, string]{Load: o.Load})
		defer c.Close()

		cause := errors.New("caller gave up")
		ctx, cancel := context.WithCancelCause(context.Background())
		first := make(chan error, 1)
		go func() { _, err := c.Get(ctx, "k"); first <- err }()
		second := make(chan string, 1)
		go func() { second <- get(t, c, "k") }()
		synctest.Wait()
		cancel(cause)
		if err := <-first; !errors.Is(err, cause) {
			t.Fatalf("first caller got %v, want its own cause", err)
		}
		close(o.gate)
		if v := <-second; v != "v" {
			t.Fatalf("second caller got %q", v)
		}
		if o.calls.Load() != 1 {
			t.Fatalf("origin calls = %d, want 1", o.calls.Load())
		}
		// The load filled the cache although its first caller left.
		get(t, c, "k")
		if o.calls.Load() != 1 {
			t.Fatal("value not cached")
		}
	})
}

func TestLoadTimeoutBoundsADetachedLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.gate = make(chan struct{}) // never opened
		c := cache.New(cache.Config[string, string]{Load: o.Load, LoadTimeout: time.Second})
		defer c.Close()
		_, err := c.Get(context.Background(), "k")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Get = %v, want the load's deadline", err)
		}
		if c.Stats().LoadErrors != 1 {
			t.Fatalf("LoadErrors = %d, want 1", c.Stats().LoadErrors)
		}
	})
}

func TestTTLExpiresAndReloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("k", "v1")
		c := cache.New(cache.Config[string, string]{Load: o.Load, TTL: 10 * time.Second, Jitter: -1})
		defer c.Close()
		get(t, c, "k")
		o.set("k", "v2")
		time.Sleep(10*time.Second - time.Nanosecond)
		if v := get(t, c, "k"); v != "v1" || o.calls.Load() != 1 {
			t.Fatalf("before TTL: %q after %d loads, want v1 after 1", v, o.calls.Load())
		}
		time.Sleep(time.Nanosecond)
		if v := get(t, c, "k"); v != "v2" || o.calls.Load() != 2 {
			t.Fatalf("at TTL: %q after %d loads, want v2 after 2", v, o.calls.Load())
		}
		if s := c.Stats(); s.HitsL1 != 1 || s.Misses != 2 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestJitterShortensLifetimesWithinBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		for i := range 200 {
			o.set(fmt.Sprint(i), "v")
		}
		c := cache.New(cache.Config[string, string]{Load: o.Load, TTL: 10 * time.Second, Jitter: 0.5})
		defer c.Close()
		for i := range 200 {
			get(t, c, fmt.Sprint(i))
		}
		time.Sleep(5*time.Second - time.Nanosecond) // no entry lives less than TTL*(1-Jitter)
		for i := range 200 {
			get(t, c, fmt.Sprint(i))
		}
		if n := o.calls.Load(); n != 200 {
			t.Fatalf("loads before 5s = %d, want 200", n)
		}
		time.Sleep(2500 * time.Millisecond) // some, not all, have expired by 7.5s
		for i := range 200 {
			get(t, c, fmt.Sprint(i))
		}
		early := o.calls.Load() - 200
		if early == 0 || early == 200 {
			t.Fatalf("reloads at 7.5s = %d, want some but not all: jitter spreads expiries", early)
		}
		time.Sleep(2500 * time.Millisecond) // none lives past TTL
		before := o.calls.Load()
		for i := range 200 {
			get(t, c, fmt.Sprint(i))
		}
		if n := o.calls.Load() - before; n != 200-early {
			t.Fatalf("reloads at 10s = %d, want the %d entries not reloaded at 7.5s: none outlives TTL", n, 200-early)
		}
	})
}

func TestNegativeCaching(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		c := cache.New(cache.Config[string, string]{Load: o.Load, NegativeTTL: 5 * time.Second, Jitter: -1})
		defer c.Close()
		for range 3 {
			if _, err := c.Get(context.Background(), "ghost"); !errors.Is(err, cache.ErrNotFound) {
				t.Fatalf("Get = %v, want ErrNotFound", err)
			}
		}
		if o.calls.Load() != 1 {
			t.Fatalf("origin calls = %d, want 1: not-found is cached", o.calls.Load())
		}
		o.set("ghost", "here")
		time.Sleep(5 * time.Second)
		if v := get(t, c, "ghost"); v != "here" || o.calls.Load() != 2 {
			t.Fatalf("after NegativeTTL: %q, %d calls", v, o.calls.Load())
		}
		if c.Stats().LoadErrors != 0 {
			t.Fatal("a not-found answer counted as a load error")
		}
	})
}

func TestNegativeCachingOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		c := cache.New(cache.Config[string, string]{Load: o.Load, NegativeTTL: -1})
		defer c.Close()
		for range 3 {
			if _, err := c.Get(context.Background(), "ghost"); !errors.Is(err, cache.ErrNotFound) {
				t.Fatalf("Get = %v, want ErrNotFound", err)
			}
		}
		if o.calls.Load() != 3 {
			t.Fatalf("origin calls = %d, want 3", o.calls.Load())
		}
	})
}

func TestStaleWhileRevalidate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("k", "v1")
		c := cache.New(cache.Config[string, string]{
			Load: o.Load, TTL: 10 * time.Second, Jitter: -1, StaleWhileRevalidate: 5 * time.Second,
		})
		defer c.Close()
		get(t, c, "k")
		time.Sleep(11 * time.Second)
		o.set("k", "v2")
		o.mu.Lock()
		o.gate = make(chan struct{})
		o.mu.Unlock()
		for range 10 {
			if v := get(t, c, "k"); v != "v1" {
				t.Fatalf("within the stale window Get = %q, want the stale v1 at once", v)
			}
		}
		synctest.Wait()
		if n := o.calls.Load(); n != 2 {
			t.Fatalf("origin calls = %d, want 2: one background refresh for 10 stale hits", n)
		}
		close(o.gate)
		synctest.Wait()
		if v := get(t, c, "k"); v != "v2" {
			t.Fatalf("after the refresh Get = %q, want v2", v)
		}
		if s := c.Stats(); s.StaleWhileRevalidate != 10 {
			t.Fatalf("StaleWhileRevalidate = %d, want 10", s.StaleWhileRevalidate)
		}
	})
}

func TestStaleWhileRevalidateEndsWithItsWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("k", "v1")
		c := cache.New(cache.Config[string, string]{
			Load: o.Load, TTL: 10 * time.Second, Jitter: -1, StaleWhileRevalidate: 5 * time.Second,
		})
		defer c.Close()
		get(t, c, "k")
		time.Sleep(15 * time.Second)
		o.set("k", "v2")
		if v := get(t, c, "k"); v != "v2" {
			t.Fatalf("past the stale window Get = %q, want a blocking load of v2", v)
		}
	})
}

func TestStaleIfError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("k", "v1")
		c := cache.New(cache.Config[string, string]{
			Load: o.Load, TTL: 10 * time.Second, Jitter: -1, StaleIfError: 30 * time.Second,
		})
		defer c.Close()
		get(t, c, "k")
		down := errors.New("origin down")
		o.fail(down)
		time.Sleep(20 * time.Second)
		if v := get(t, c, "k"); v != "v1" {
			t.Fatalf("origin failing, within StaleIfError: Get = %q, want stale v1", v)
		}
		if s := c.Stats(); s.StaleIfError != 1 || s.LoadErrors != 1 {
			t.Fatalf("stats %+v, want 1 stale-if-error serve and 1 load error", s)
		}
		time.Sleep(20 * time.Second) // 40s: past TTL+StaleIfError
		if _, err := c.Get(context.Background(), "k"); !errors.Is(err, down) {
			t.Fatalf("past StaleIfError Get = %v, want the origin's error", err)
		}
		o.fail(nil)
		if v := get(t, c, "k"); v != "v1" {
			t.Fatalf("origin back: %q", v)
		}
	})
}

func TestStaleIfErrorOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("k", "v1")
		c := cache.New(cache.Config[string, string]{Load: o.Load, TTL: 10 * time.Second, Jitter: -1})
		defer c.Close()
		get(t, c, "k")
		down := errors.New("origin down")
		o.fail(down)
		time.Sleep(11 * time.Second)
		if _, err := c.Get(context.Background(), "k"); !errors.Is(err, down) {
			t.Fatalf("Get = %v, want the origin's error", err)
		}
	})
}

func TestEarlyRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("k", "v1")
		o.took = time.Second
		c := cache.New(cache.Config[string, string]{
			Load: o.Load, TTL: 10 * time.Second, Jitter: -1, EarlyRefresh: 0.1,
		})
		defer c.Close()
		get(t, c, "k")
		// Far from expiry, a small beta never refreshes: it would need
		// -ln(rand) >= 90, and rand is never below 2^-53.
		for range 100 {
			get(t, c, "k")
		}
		synctest.Wait()
		if n := o.calls.Load(); n != 1 {
			t.Fatalf("origin calls = %d, want 1", n)
		}
		c.Close()

		c2 := cache.New(cache.Config[string, string]{
			Load: o.Load, TTL: 10 * time.Second, Jitter: -1, EarlyRefresh: 100,
		})
		defer c2.Close()
		get(t, c2, "k")
		o.set("k", "v2")
		o.mu.Lock()
		o.took = 0 // the entry remembers its 1s load; the refresh itself is instant
		o.mu.Unlock()
		time.Sleep(9900 * time.Millisecond)
		// Near expiry with beta 100 and a 1s load, each hit refreshes with
		// probability P(-ln(rand) >= 0.001) > 0.999; hits never wait for it.
		for range 20 {
			if v := get(t, c2, "k"); v != "v1" && v != "v2" {
				t.Fatalf("hit during early refresh = %q", v)
			}
		}
		synctest.Wait()
		if n := o.calls.Load(); n != 3 {
			t.Fatalf("origin calls = %d, want 3 (one early refresh)", n)
		}
		if v := get(t, c2, "k"); v != "v2" {
			t.Fatalf("after the early refresh Get = %q, want v2", v)
		}
	})
}

func TestLoaderPanicBecomesAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := cache.New(cache.Config[string, string]{Load: func(context.Context, string) (string, error) {
			panic("boom")
		}})
		defer c.Close()
		_, err := c.Get(context.Background(), "k")
		var pe *cache.PanicError
		if !errors.As(err, &pe) || pe.Value != "boom" {
			t.Fatalf("Get = %v, want a *PanicError carrying boom", err)
		}
	})
}

func TestSetAndDeleteInProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("k", "origin")
		c := cache.New(cache.Config[string, string]{Load: o.Load})
		defer c.Close()
		if err := c.Set(context.Background(), "k", "set"); err != nil {
			t.Fatal(err)
		}
		if v := get(t, c, "k"); v != "set" || o.calls.Load() != 0 {
			t.Fatalf("after Set: %q, %d loads", v, o.calls.Load())
		}
		if err := c.Delete(context.Background(), "k"); err != nil {
			t.Fatal(err)
		}
		if v := get(t, c, "k"); v != "origin" || o.calls.Load() != 1 {
			t.Fatalf("after Delete: %q, %d loads", v, o.calls.Load())
		}
	})
}

func TestDeleteDuringLoadIsNotUndone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("k", "old")
		o.gate = make(chan struct{})
		c := cache.New(cache.Config[string, string]{Load: o.Load})
		defer c.Close()
		done := make(chan string)
		go func() { done <- get(t, c, "k") }()
		synctest.Wait()
		c.Delete(context.Background(), "k") // the value being loaded is now outdated
		o.set("k", "new")
		close(o.gate)
		<-done
		if v := get(t, c, "k"); v != "new" {
			t.Fatalf("Get after a Delete that raced a load = %q, want a fresh load", v)
		}
	})
}

func TestNoInProcessTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("k", "v")
		c := cache.New(cache.Config[string, string]{Load: o.Load, MaxEntries: -1})
		defer c.Close()
		get(t, c, "k")
		get(t, c, "k")
		if o.calls.Load() != 2 {
			t.Fatalf("origin calls = %d, want 2 without any tier", o.calls.Load())
		}
	})
}

func TestEvictionsCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		for i := range 100 {
			o.set(fmt.Sprint(i), "v")
		}
		c := cache.New(cache.Config[string, string]{Load: o.Load, MaxEntries: 10})
		defer c.Close()
		for i := range 100 {
			get(t, c, fmt.Sprint(i))
		}
		c.Close() // otter's maintenance is asynchronous; Stats after Close may still lag
		synctest.Wait()
		if c.Stats().Evictions == 0 {
			t.Fatal("no eviction counted after 100 keys in a 10-entry cache")
		}
	})
}

func TestGetManyOneLoaderCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("a", "1")
		o.set("b", "2")
		o.set("c", "3")
		c := cache.New(cache.Config[string, string]{Load: o.Load, LoadMany: o.LoadMany})
		defer c.Close()
		get(t, c, "a")
		m, err := c.GetMany(context.Background(), []string{"a", "b", "c", "ghost", "b"})
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 3 || m["a"] != "1" || m["b"] != "2" || m["c"] != "3" {
			t.Fatalf("GetMany = %v", m)
		}
		if n := o.calls.Load(); n != 2 {
			t.Fatalf("origin calls = %d, want 2 (one Get, one LoadMany for b, c, ghost)", n)
		}
		m, err = c.GetMany(context.Background(), []string{"a", "b", "c", "ghost"})
		if err != nil || len(m) != 3 || o.calls.Load() != 2 {
			t.Fatalf("second GetMany = %v, %v after %d calls; want all from the cache, ghost negative", m, err, o.calls.Load())
		}
	})
}

func TestGetManyWithoutLoadMany(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("a", "1")
		o.set("b", "2")
		c := cache.New(cache.Config[string, string]{Load: o.Load})
		defer c.Close()
		m, err := c.GetMany(context.Background(), []string{"a", "b", "ghost"})
		if err != nil || len(m) != 2 || m["b"] != "2" {
			t.Fatalf("GetMany = %v, %v", m, err)
		}
		if o.calls.Load() != 3 {
			t.Fatalf("origin calls = %d, want 3 (one Load per key)", o.calls.Load())
		}
	})
}

func TestGetManyStaleIfError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("a", "1")
		c := cache.New(cache.Config[string, string]{Load: o.Load, LoadMany: o.LoadMany, TTL: time.Second, StaleIfError: time.Minute})
		defer c.Close()
		get(t, c, "a")
		down := errors.New("down")
		o.fail(down)
		time.Sleep(2 * time.Second)
		m, err := c.GetMany(context.Background(), []string{"a"})
		if err != nil || m["a"] != "1" {
			t.Fatalf("GetMany = %v, %v; want stale a", m, err)
		}
		m, err = c.GetMany(context.Background(), []string{"a", "b"})
		if !errors.Is(err, down) || m["a"] != "1" {
			t.Fatalf("GetMany = %v, %v; want stale a and the load error for b", m, err)
		}
	})
}

func TestL1HitAllocatesNothing(t *testing.T) {
	o := newOrigin()
	o.set("k", "v")
	c := newCache(t, o, cache.Config[string, string]{})
	get(t, c, "k")
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { c.Get(ctx, "k") }); n != 0 {
		t.Fatalf("an in-process hit allocates %v times", n)
	}
}

func TestCloseIsIdempotentAndStopsLoads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("k", "v")
		o.gate = make(chan struct{})
		c := cache.New(cache.Config[string, string]{Load: o.Load})
		errc := make(chan error)
		go func() { _, err := c.Get(context.Background(), "k"); errc <- err }()
		synctest.Wait()
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				if err := c.Close(); err != nil {
					t.Errorf("Close = %v", err)
				}
			})
		}
		wg.Wait()
		if err := <-errc; !errors.Is(err, cache.ErrClosed) {
			t.Fatalf("Get during Close = %v, want ErrClosed", err)
		}
		if _, err := c.Get(context.Background(), "k"); !errors.Is(err, cache.ErrClosed) {
			t.Fatalf("Get after Close = %v, want ErrClosed", err)
		}
	})
}

func TestNilArgumentsPanic(t *testing.T) {
	c := cache.New(cache.Config[string, string]{Load: newOrigin().Load})
	defer c.Close()
	for name, f := range map[string]func(){
		"Get":     func() { c.Get(nil, "k") }, //nolint:staticcheck // the point of the test
		"GetMany": func() { c.GetMany(nil, nil) },
		"Set":     func() { c.Set(nil, "k", "v") },
		"Delete":  func() { c.Delete(nil, "k") },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("%s(nil ctx) did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestConfigValidate(t *testing.T) {
	load := newOrigin().Load
	for name, cfg := range map[string]cache.Config[string, string]{
		"no loader":          {},
		"negative TTL":       {Load: load, TTL: -1},
		"huge TTL":           {Load: load, TTL: cache.MaxTTL + 1},
		"jitter > 1":         {Load: load, Jitter: 1.5},
		"NaN early refresh":  {Load: load, EarlyRefresh: nanF()},
		"huge max entries":   {Load: load, MaxEntries: cache.MaxMaxEntries + 1},
		"negative SWR":       {Load: load, StaleWhileRevalidate: -time.Second},
		"lock without store": {Load: load, LockTTL: time.Second},
		"huge load timeout":  {Load: load, LoadTimeout: cache.MaxLoadTimeout + 1},
	} {
		err := cfg.Validate()
		if !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
			continue
		}
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("%s: New did not panic", name)
				}
			}()
			cache.New(cfg)
		}()
	}
	ok := cache.Config[string, string]{Load: load, Jitter: -1, NegativeTTL: -1, MaxEntries: -1}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid Config: %v", err)
	}
}

func nanF() float64 { z := 0.0; return z / z }

func TestNonStringKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		c := cache.New(cache.Config[int, int]{Load: func(_ context.Context, k int) (int, error) {
			calls.Add(1)
			return k * 2, nil
		}})
		defer c.Close()
		for range 3 {
			if v, err := c.Get(context.Background(), 21); err != nil || v != 42 {
				t.Fatalf("Get = %v, %v", v, err)
			}
		}
		if calls.Load() != 1 {
			t.Fatalf("calls = %d", calls.Load())
		}
	})
}

// Regression: an entry fresh for less than the expiry timer's margin is
// judged by the clock from the start, and still served until its TTL.
func TestTTLShorterThanTheTimerMargin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("k", "v")
		c := cache.New(cache.Config[string, string]{Load: o.Load, TTL: 500 * time.Microsecond, Jitter: -1})
		defer c.Close()
		get(t, c, "k")
		time.Sleep(499 * time.Microsecond)
		get(t, c, "k")
		if o.calls.Load() != 1 {
			t.Fatalf("loads before TTL = %d, want 1", o.calls.Load())
		}
		time.Sleep(time.Microsecond)
		get(t, c, "k")
		if o.calls.Load() != 2 {
			t.Fatalf("loads at TTL = %d, want 2", o.calls.Load())
		}
	})
}

// Regression: a value Set again (replacing its entry, whose timer is
// stopped) expires with the new entry's TTL, not earlier or never.
func TestSetReplacesTheExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrigin()
		o.set("k", "origin")
		c := cache.New(cache.Config[string, string]{Load: o.Load, TTL: 10 * time.Second, Jitter: -1})
		defer c.Close()
		c.Set(context.Background(), "k", "a")
		time.Sleep(5 * time.Second)
		c.Set(context.Background(), "k", "b")
		time.Sleep(9 * time.Second)
		if v := get(t, c, "k"); v != "b" || o.calls.Load() != 0 {
			t.Fatalf("at 14s: %q after %d loads, want b from the second Set", v, o.calls.Load())
		}
		time.Sleep(time.Second)
		if v := get(t, c, "k"); v != "origin" {
			t.Fatalf("at 15s: %q, want a reload", v)
		}
	})
}
