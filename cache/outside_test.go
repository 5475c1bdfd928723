package cache_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cache"
)

// outLoader is a loader whose answers a test scripts per call.
type outLoader struct {
	calls atomic.Int64
	fn    func(ctx context.Context, k string) (string, error)
}

func (l *outLoader) load(ctx context.Context, k string) (string, error) {
	l.calls.Add(1)
	return l.fn(ctx, k)
}

func TestOutsideNotFoundDropsAStaleValue(t *testing.T) {
	// The origin now says the key is gone: stale-if-error must not bring
	// back the old value, since not-found is an answer, not an error.
	synctest.Test(t, func(t *testing.T) {
		gone := false
		l := &outLoader{fn: func(ctx context.Context, k string) (string, error) {
			if gone {
				return "", cache.ErrNotFound
			}
			return "v", nil
		}}
		c := cache.New(cache.Config[string, string]{Load: l.load, TTL: time.Minute, Jitter: -1, StaleIfError: time.Hour})
		defer c.Close()
		ctx := context.Background()
		if v, err := c.Get(ctx, "k"); err != nil || v != "v" {
			t.Fatalf("Get = %q, %v", v, err)
		}
		time.Sleep(2 * time.Minute)
		gone = true
		if v, err := c.Get(ctx, "k"); !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("Get after the origin lost the key = %q, %v; want ErrNotFound", v, err)
		}
	})
}

func TestOutsideWrappedNotFoundIsCached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &outLoader{fn: func(ctx context.Context, k string) (string, error) {
			return "", errors.Join(errors.New("db: no row"), cache.ErrNotFound)
		}}
		c := cache.New(cache.Config[string, string]{Load: l.load, NegativeTTL: 5 * time.Second, Jitter: -1})
		defer c.Close()
		for range 3 {
			if _, err := c.Get(context.Background(), "k"); !errors.Is(err, cache.ErrNotFound) {
				t.Fatalf("Get = %v, want ErrNotFound", err)
			}
		}
		if n := l.calls.Load(); n != 1 {
			t.Fatalf("origin calls = %d, want 1", n)
		}
		time.Sleep(6 * time.Second)
		c.Get(context.Background(), "k")
		if n := l.calls.Load(); n != 2 {
			t.Fatalf("origin calls after NegativeTTL = %d, want 2", n)
		}
	})
}

func TestOutsideTTLJitterBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &outLoader{fn: func(ctx context.Context, k string) (string, error) { return k, nil }}
		c := cache.New(cache.Config[string, string]{Load: l.load, TTL: 100 * time.Second, Jitter: 0.5})
		defer c.Close()
		const n = 200
		keys := make([]string, n)
		for i := range keys {
			keys[i] = string(rune('a'+i%26)) + string(rune('a'+i/26))
			c.Get(context.Background(), keys[i])
		}
		time.Sleep(49 * time.Second)
		for _, k := range keys {
			c.Get(context.Background(), k)
		}
		if got := l.calls.Load(); got != n {
			t.Fatalf("calls before TTL*(1-Jitter) = %d, want %d", got, n)
		}
		time.Sleep(52 * time.Second) // 101s: past every TTL
		for _, k := range keys {
			c.Get(context.Background(), k)
		}
		if got := l.calls.Load(); got != 2*n {
			t.Fatalf("calls after TTL = %d, want %d", got, 2*n)
		}
	})
}

func TestOutsideLoaderPanicThenRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int64
		l := &outLoader{fn: func(ctx context.Context, k string) (string, error) {
			if n.Add(1) == 1 {
				panic("boom")
			}
			return "ok", nil
		}}
		c := cache.New(cache.Config[string, string]{Load: l.load})
		defer c.Close()
		_, err := c.Get(context.Background(), "k")
		var pe *cache.PanicError
		if !errors.As(err, &pe) || pe.Value != "boom" || len(pe.Stack) == 0 {
			t.Fatalf("Get = %v, want a *PanicError with the value and stack", err)
		}
		if v, err := c.Get(context.Background(), "k"); err != nil || v != "ok" {
			t.Fatalf("Get after a panic = %q, %v", v, err)
		}
		if s := c.Stats(); s.LoadErrors != 1 {
			t.Fatalf("LoadErrors = %d, want 1", s.LoadErrors)
		}
	})
}

func TestOutsideBulkLoaderPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := cache.New(cache.Config[string, string]{
			Load:     func(ctx context.Context, k string) (string, error) { return k, nil },
			LoadMany: func(ctx context.Context, k []string) (map[string]string, error) { panic("bulk boom") },
		})
		defer c.Close()
		_, err := c.GetMany(context.Background(), []string{"a", "b"})
		var pe *cache.PanicError
		if !errors.As(err, &pe) {
			t.Fatalf("GetMany = %v, want a *PanicError", err)
		}
	})
}

func TestOutsideGetManyEdges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var batches [][]string
		var mu sync.Mutex
		c := cache.New(cache.Config[string, string]{
			Load: func(ctx context.Context, k string) (string, error) { return k, nil },
			LoadMany: func(ctx context.Context, ks []string) (map[string]string, error) {
				mu.Lock()
				batches = append(batches, append([]string(nil), ks...))
				mu.Unlock()
				m := map[string]string{"extra": "x"}
				for _, k := range ks {
					if k != "gone" {
						m[k] = "v" + k
					}
				}
				return m, nil
			},
		})
		defer c.Close()
		ctx := context.Background()
		m, err := c.GetMany(ctx, nil)
		if err != nil || len(m) != 0 {
			t.Fatalf("GetMany(nil) = %v, %v", m, err)
		}
		if len(batches) != 0 {
			t.Fatalf("GetMany(nil) called the origin: %v", batches)
		}
		m, err = c.GetMany(ctx, []string{"a", "a", "gone", "b"})
		if err != nil || len(m) != 2 || m["a"] != "va" || m["b"] != "vb" {
			t.Fatalf("GetMany = %v, %v", m, err)
		}
		if len(batches) != 1 || len(batches[0]) != 3 {
			t.Fatalf("batches = %v, want one of 3 distinct keys", batches)
		}
		// "extra" was not asked for: it must not be cached as if it had been loaded
		// (harmless either way) -- but "gone" must be negatively cached.
		if _, err := c.Get(ctx, "gone"); !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("Get(gone) = %v", err)
		}
		if len(batches) != 1 {
			t.Fatalf("Get(gone) after GetMany reached the origin")
		}
		m, _ = c.GetMany(ctx, []string{"a", "b", "gone"})
		if len(batches) != 1 || len(m) != 2 {
			t.Fatalf("second GetMany: batches %v, m %v", batches, m)
		}
	})
}

func TestOutsideConfigValidate(t *testing.T) {
	load := func(ctx context.Context, k string) (string, error) { return k, nil }
	bad := map[string]cache.Config[string, string]{
		"nil load":         {},
		"NaN jitter":       {Load: load, Jitter: math.NaN()},
		"jitter>1":         {Load: load, Jitter: 1.5},
		"inf jitter":       {Load: load, Jitter: math.Inf(1)},
		"-inf jitter":      {Load: load, Jitter: math.Inf(-1)},
		"NaN early":        {Load: load, EarlyRefresh: math.NaN()},
		"neg early":        {Load: load, EarlyRefresh: -1},
		"huge early":       {Load: load, EarlyRefresh: 1e9},
		"neg TTL":          {Load: load, TTL: -time.Second},
		"huge TTL":         {Load: load, TTL: cache.MaxTTL + 1},
		"huge negTTL":      {Load: load, NegativeTTL: cache.MaxTTL + 1},
		"neg SWR":          {Load: load, StaleWhileRevalidate: -1},
		"neg SIE":          {Load: load, StaleIfError: -1},
		"huge SIE":         {Load: load, StaleIfError: cache.MaxTTL + 1},
		"neg LoadTimeout":  {Load: load, LoadTimeout: -1},
		"huge LoadTimeout": {Load: load, LoadTimeout: cache.MaxLoadTimeout + 1},
		"huge MaxEntries":  {Load: load, MaxEntries: cache.MaxMaxEntries + 1},
		"neg LockTTL":      {Load: load, LockTTL: -1},
		"neg LockPoll":     {Load: load, LockTTL: time.Second, LockPoll: -1},
		"LockPoll>LockTTL": {Load: load, LockTTL: time.Second, LockPoll: 2 * time.Second},
		"LockTTL no store": {Load: load, LockTTL: time.Second},
	}
	for name, cfg := range bad {
		err := cfg.Validate()
		var ce *bulwark.ConfigError
		if !errors.Is(err, bulwark.ErrInvalidConfig) || !errors.As(err, &ce) {
			t.Errorf("%s: Validate = %v, want a *bulwark.ConfigError", name, err)
			continue
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: New did not panic", name)
				}
			}()
			cache.New(cfg)
		}()
	}
	good := cache.Config[string, string]{Load: load, MaxEntries: -1, NegativeTTL: -1, Jitter: -1}
	if err := good.Validate(); err != nil {
		t.Errorf("negative 'off' values: %v", err)
	}
}

func TestOutsideCloseBehaviour(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &outLoader{fn: func(ctx context.Context, k string) (string, error) { return k, nil }}
		c := cache.New(cache.Config[string, string]{Load: l.load})
		ctx := context.Background()
		c.Get(ctx, "a")
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := c.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
		}
		wg.Wait()
		if v, err := c.Get(ctx, "a"); err != nil || v != "a" {
			t.Fatalf("Get of an L1 value after Close = %q, %v", v, err)
		}
		if _, err := c.Get(ctx, "b"); !errors.Is(err, cache.ErrClosed) {
			t.Fatalf("Get needing a load after Close = %v, want ErrClosed", err)
		}
		if _, err := c.GetMany(ctx, []string{"a", "c"}); !errors.Is(err, cache.ErrClosed) {
			t.Fatalf("GetMany needing a load after Close = %v, want ErrClosed", err)
		}
		if l.calls.Load() != 1 {
			t.Fatalf("origin called after Close")
		}
	})
}

func TestCloseGivesWaitersErrClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{})
		l := &outLoader{fn: func(ctx context.Context, k string) (string, error) {
			close(started)
			<-ctx.Done()
			return "", context.Cause(ctx)
		}}
		c := cache.New(cache.Config[string, string]{Load: l.load})
		errc := make(chan error, 1)
		go func() { _, err := c.Get(context.Background(), "k"); errc <- err }()
		<-started
		c.Close()
		if err := <-errc; !errors.Is(err, cache.ErrClosed) {
			t.Fatalf("Get waiting when Close came = %v, want ErrClosed", err)
		}
	})
}

func TestOutsideStaleWhileRevalidateOneRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ver atomic.Int64
		l := &outLoader{fn: func(ctx context.Context, k string) (string, error) {
			time.Sleep(time.Second)
			return string(rune('0' + ver.Add(1))), nil
		}}
		c := cache.New(cache.Config[string, string]{Load: l.load, TTL: time.Minute, Jitter: -1, StaleWhileRevalidate: time.Minute})
		defer c.Close()
		ctx := context.Background()
		if v, _ := c.Get(ctx, "k"); v != "1" {
			t.Fatalf("first = %q", v)
		}
		time.Sleep(61 * time.Second)
		for range 50 {
			if v, err := c.Get(ctx, "k"); v != "1" || err != nil {
				t.Fatalf("stale Get = %q, %v; want the stale value at once", v, err)
			}
		}
		synctest.Wait()
		if n := l.calls.Load(); n != 2 {
			t.Fatalf("loads = %d, want 2 (one refresh)", n)
		}
		time.Sleep(2 * time.Second)
		if v, _ := c.Get(ctx, "k"); v != "2" {
			t.Fatalf("after refresh = %q, want 2", v)
		}
		if s := c.Stats(); s.StaleWhileRevalidate != 50 {
			t.Fatalf("StaleWhileRevalidate = %d, want 50", s.StaleWhileRevalidate)
		}
		// Past TTL + SWR: a blocking load.
		time.Sleep(3 * time.Minute)
		if v, _ := c.Get(ctx, "k"); v != "3" {
			t.Fatalf("past every window = %q, want 3", v)
		}
	})
}

func TestOutsideStaleIfErrorWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fail atomic.Bool
		boom := errors.New("origin down")
		l := &outLoader{fn: func(ctx context.Context, k string) (string, error) {
			if fail.Load() {
				return "", boom
			}
			return "v", nil
		}}
		c := cache.New(cache.Config[string, string]{Load: l.load, TTL: time.Minute, Jitter: -1, StaleIfError: 10 * time.Minute})
		defer c.Close()
		ctx := context.Background()
		c.Get(ctx, "k")
		fail.Store(true)
		time.Sleep(5 * time.Minute)
		if v, err := c.Get(ctx, "k"); v != "v" || err != nil {
			t.Fatalf("within stale-if-error: %q, %v", v, err)
		}
		time.Sleep(7 * time.Minute) // 12m: past TTL + StaleIfError
		if _, err := c.Get(ctx, "k"); !errors.Is(err, boom) {
			t.Fatalf("past stale-if-error: %v, want the origin's error", err)
		}
		s := c.Stats()
		if s.StaleIfError != 1 || s.LoadErrors != 2 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestOutsideEarlyRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &outLoader{fn: func(ctx context.Context, k string) (string, error) {
			time.Sleep(5 * time.Second) // delta: a slow load
			return "v", nil
		}}
		c := cache.New(cache.Config[string, string]{Load: l.load, TTL: time.Minute, Jitter: -1, EarlyRefresh: 1})
		defer c.Close()
		ctx := context.Background()
		c.Get(ctx, "k")
		// Well before expiry with delta=5s: P(refresh) = exp(-(55)/5) tiny.
		time.Sleep(5 * time.Second)
		for range 100 {
			c.Get(ctx, "k")
		}
		synctest.Wait()
		if n := l.calls.Load(); n != 1 {
			t.Fatalf("early refresh far from expiry: %d loads", n)
		}
		// 1s before expiry: P = exp(-1/5) = 0.8 per hit; with 100 hits, one refresh.
		time.Sleep(49 * time.Second)
		for range 100 {
			if _, err := c.Get(ctx, "k"); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		time.Sleep(6 * time.Second)
		if n := l.calls.Load(); n != 2 {
			t.Fatalf("loads near expiry = %d, want 2 (one refresh)", n)
		}
		// The refresh happened before expiry, so at the old expiry (+ a bit) there is no blocking load.
		c.Get(ctx, "k")
		if n := l.calls.Load(); n != 2 {
			t.Fatalf("loads = %d after refresh", n)
		}
	})
}

func TestOutsideSetThenGetAndDelete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &outLoader{fn: func(ctx context.Context, k string) (string, error) { return "origin", nil }}
		c := cache.New(cache.Config[string, string]{Load: l.load, TTL: time.Minute, Jitter: -1})
		defer c.Close()
		ctx := context.Background()
		if err := c.Set(ctx, "k", "set"); err != nil {
			t.Fatal(err)
		}
		if v, _ := c.Get(ctx, "k"); v != "set" {
			t.Fatalf("after Set = %q", v)
		}
		if err := c.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if v, _ := c.Get(ctx, "k"); v != "origin" {
			t.Fatalf("after Delete = %q", v)
		}
		// Set over a cached not-found.
		l.fn = func(ctx context.Context, k string) (string, error) { return "", cache.ErrNotFound }
		c.Get(ctx, "n")
		c.Set(ctx, "n", "now")
		if v, err := c.Get(ctx, "n"); v != "now" || err != nil {
			t.Fatalf("Set over not-found: %q %v", v, err)
		}
	})
}

func TestOutsideNoL1(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &outLoader{fn: func(ctx context.Context, k string) (string, error) { return "v", nil }}
		c := cache.New(cache.Config[string, string]{Load: l.load, MaxEntries: -1})
		defer c.Close()
		for range 3 {
			if v, err := c.Get(context.Background(), "k"); v != "v" || err != nil {
				t.Fatal(v, err)
			}
		}
		if l.calls.Load() != 3 {
			t.Fatalf("calls %d, want 3 (no tier at all)", l.calls.Load())
		}
		if err := c.Set(context.Background(), "k", "x"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOutsideCancelledCallerWithCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		l := &outLoader{fn: func(ctx context.Context, k string) (string, error) {
			select {
			case <-release:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			return "v", nil
		}}
		c := cache.New(cache.Config[string, string]{Load: l.load})
		defer c.Close()
		cause := errors.New("client left")
		ctx, cancel := context.WithCancelCause(context.Background())
		errc := make(chan error)
		go func() { _, err := c.Get(ctx, "k"); errc <- err }()
		other := make(chan string)
		synctest.Wait()
		go func() { v, _ := c.Get(context.Background(), "k"); other <- v }()
		synctest.Wait()
		cancel(cause)
		if err := <-errc; !errors.Is(err, cause) {
			t.Fatalf("Get = %v, want the cause", err)
		}
		close(release)
		if v := <-other; v != "v" {
			t.Fatalf("other caller = %q", v)
		}
		if v, _ := c.Get(context.Background(), "k"); v != "v" || l.calls.Load() != 1 {
			t.Fatalf("value not cached for the next caller")
		}
	})
}

func TestNotFoundOnRefreshEndsStaleServing(t *testing.T) {
	for _, negTTL := range []time.Duration{0, -1} {
		synctest.Test(t, func(t *testing.T) {
			var gone atomic.Bool
			l := &outLoader{fn: func(ctx context.Context, k string) (string, error) {
				if gone.Load() {
					return "", cache.ErrNotFound
				}
				return "v", nil
			}}
			c := cache.New(cache.Config[string, string]{Load: l.load, TTL: time.Minute, Jitter: -1,
				StaleWhileRevalidate: time.Hour, NegativeTTL: negTTL})
			defer c.Close()
			ctx := context.Background()
			c.Get(ctx, "k")
			time.Sleep(2 * time.Minute)
			gone.Store(true)
			if v, _ := c.Get(ctx, "k"); v != "v" {
				t.Fatalf("stale serve = %q", v)
			}
			synctest.Wait() // the refresh learns the key is gone
			if v, err := c.Get(ctx, "k"); !errors.Is(err, cache.ErrNotFound) {
				t.Fatalf("NegativeTTL %v: Get after the origin said not found = %q, %v; want ErrNotFound", negTTL, v, err)
			}
		})
	}
}

func TestNotFoundInGetManyEndsStaleServing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var state atomic.Int64 // 0 value, 1 gone, 2 failing
		boom := errors.New("origin down")
		c := cache.New(cache.Config[string, string]{
			Load: func(ctx context.Context, k string) (string, error) { return "", boom },
			LoadMany: func(ctx context.Context, ks []string) (map[string]string, error) {
				switch state.Load() {
				case 0:
					return map[string]string{"k": "v"}, nil
				case 1:
					return map[string]string{}, nil
				}
				return nil, boom
			},
			TTL: time.Minute, Jitter: -1, StaleIfError: time.Hour, NegativeTTL: -1,
		})
		defer c.Close()
		ctx := context.Background()
		c.GetMany(ctx, []string{"k"})
		time.Sleep(2 * time.Minute)
		state.Store(1)
		if m, err := c.GetMany(ctx, []string{"k"}); err != nil || len(m) != 0 {
			t.Fatalf("GetMany after the origin lost k = %v, %v", m, err)
		}
		state.Store(2)
		if m, err := c.GetMany(ctx, []string{"k"}); !errors.Is(err, boom) || len(m) != 0 {
			t.Fatalf("GetMany with a failing origin served the value of a gone key: %v, %v", m, err)
		}
	})
}

func TestCloseGivesGetManyErrClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{})
		c := cache.New(cache.Config[string, string]{
			Load: func(ctx context.Context, k string) (string, error) { return k, nil },
			LoadMany: func(ctx context.Context, ks []string) (map[string]string, error) {
				close(started)
				<-ctx.Done()
				return nil, context.Cause(ctx)
			},
		})
		errc := make(chan error, 1)
		go func() { _, err := c.GetMany(context.Background(), []string{"a", "b"}); errc <- err }()
		<-started
		c.Close()
		if err := <-errc; !errors.Is(err, cache.ErrClosed) {
			t.Fatalf("GetMany waiting when Close came = %v, want ErrClosed", err)
		}
	})
}

func TestExpiryIsExactAroundTheClocklessHitWindow(t *testing.T) {
	// Hits that read no clock must stop the instant an entry expires,
	// whatever its TTL relative to the cache's internal timer, and also
	// after Close (which stops that timer).
	for _, ttl := range []time.Duration{time.Millisecond, 700 * time.Millisecond, 1500 * time.Millisecond, time.Minute} {
		synctest.Test(t, func(t *testing.T) {
			l := &outLoader{fn: func(ctx context.Context, k string) (string, error) { return k, nil }}
			c := cache.New(cache.Config[string, string]{Load: l.load, TTL: ttl, Jitter: -1})
			ctx := context.Background()
			c.Get(ctx, "k")
			step := ttl / 7
			var elapsed time.Duration
			for elapsed+step < ttl {
				time.Sleep(step)
				elapsed += step
				c.Get(ctx, "k")
			}
			if n := l.calls.Load(); n != 1 {
				t.Fatalf("TTL %v: %d loads before expiry", ttl, n)
			}
			time.Sleep(ttl - elapsed)
			c.Get(ctx, "k")
			if n := l.calls.Load(); n != 2 {
				t.Fatalf("TTL %v: %d loads at expiry, want 2", ttl, n)
			}
			c.Get(ctx, "k") // sets the clockless window again
			c.Close()
			time.Sleep(ttl)
			if _, err := c.Get(ctx, "k"); !errors.Is(err, cache.ErrClosed) {
				t.Fatalf("TTL %v: expired entry after Close = %v, want ErrClosed", ttl, err)
			}
		})
	}
}
