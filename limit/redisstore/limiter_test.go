package redisstore

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/conformance"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/limit"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{}) // the outage tests make go-redis log every failed redial
	goleak.VerifyTestMain(m)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// hourly is a limit that does not refill within a test: 1 call an hour,
// so counts do not depend on how long the test takes.
func hourly(burst int) limit.RateConfig {
	return limit.RateConfig{Name: "hourly", Every: time.Hour, Burst: burst}
}

// The suite every limit.KeyedLimiter passes: the local Keyed set and the
// distributed Limiter on every Redis flavour decide alike.
func TestKeyedLimiterSuite(t *testing.T) {
	redistest.Stores(t,
		func(t *testing.T) limit.KeyedLimiter {
			k := limit.NewKeyed(limit.KeyedConfig{Rate: hourly(3)})
			t.Cleanup(func() { k.Close() })
			return k
		},
		func(t *testing.T, h *redistest.Harness) limit.KeyedLimiter {
			l := New(h.Client, Config{Rate: hourly(3), Prefix: h.Prefix})
			t.Cleanup(func() { l.Close() })
			return l
		},
		func(t *testing.T, newStore func(t *testing.T) limit.KeyedLimiter) {
			ctx := context.Background()
			t.Run("BurstThenWait", func(t *testing.T) {
				l := newStore(t)
				for i := range 3 {
					d := l.Decide(ctx, "k")
					if !d.Allowed || d.Remaining != int64(2-i) {
						t.Fatalf("call %d = %+v, want admitted with %d remaining", i, d, 2-i)
					}
				}
				d := l.Decide(ctx, "k")
				if d.Allowed || d.RetryAfter <= 59*time.Minute || d.RetryAfter > time.Hour || d.Reset != d.RetryAfter {
					t.Fatalf("fourth call = %+v, want rejected for about an hour, reset the same", d)
				}
				if d.Policy != (limit.Policy{Name: "hourly", Quota: 1, Window: time.Hour}) {
					t.Fatalf("policy = %+v", d.Policy)
				}
			})
			t.Run("KeysAreIndependent", func(t *testing.T) {
				l := newStore(t)
				for range 3 {
					l.Decide(ctx, "a")
				}
				if l.Decide(ctx, "a").Allowed || !l.Decide(ctx, "b").Allowed {
					t.Fatal("keys a and b share a limit")
				}
			})
			t.Run("OddKeys", func(t *testing.T) {
				l := newStore(t)
				for _, k := range []string{"", "{tag}", "}{", strings.Repeat("x", 1000), "ünïcode", "a b\nc"} {
					if !l.Decide(ctx, k).Allowed {
						t.Fatalf("first call for key %q rejected", k)
					}
				}
			})
		})
}

// N instances against one Redis hold the shared limit: across 4
// limiters with clients of their own, 16 goroutines and 800 calls, exactly
// the burst is admitted.
func TestInstancesShareOneLimit(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		const burst = 40
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for i := range 4 {
			l := New(h.NewClient(nil), Config{Rate: hourly(burst), Prefix: h.Prefix, Timeout: 5 * time.Second})
			defer l.Close()
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 50 {
						if l.Allow(context.Background(), "shared") {
							admitted.Add(1)
						}
					}
				}()
			}
			_ = i
		}
		wg.Wait()
		if n := admitted.Load(); n != burst {
			t.Fatalf("4 instances admitted %d calls, want exactly the shared burst of %d", n, burst)
		}
	})
}

// The distributed limiter runs the local limiter's arithmetic: fed the
// same call times (on miniredis's clock, set per call), it admits exactly
// the calls x/time/rate admits (which limit's own tests show Rate agrees
// with), and over a simulated 20 seconds the admitted count is within 1%
// of the rate.
func TestAgreesWithTheLocalLimitOverSimulatedTime(t *testing.T) {
	h := redistest.NewMiniredis(t)
	m := h.Miniredis()
	cfg := limit.RateConfig{Rate: 50, Burst: 5}
	l := New(h.Client, Config{Rate: cfg, Prefix: h.Prefix, Timeout: 5 * time.Second})
	defer l.Close()
	tb := rate.NewLimiter(50, 5)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	admitted, mismatches := 0, 0
	for i := 0; now.Sub(start) < 20*time.Second; i++ {
		now = now.Add(time.Duration(1+(i*7919)%4000) * time.Microsecond) // ~2000 calls a second, uneven
		m.SetTime(now)
		got := l.Allow(context.Background(), "k")
		if got != tb.AllowN(now, 1) {
			mismatches++
		}
		if got {
			admitted++
		}
	}
	if mismatches > 2 {
		t.Fatalf("%d decisions differ from the local limit", mismatches)
	}
	if want := 50*20 + 5; admitted < want*99/100 || admitted > want*101/100 {
		t.Fatalf("admitted %d in a simulated 20s, want %d ± 1%%", admitted, want)
	}
}

func storeErrors(t *testing.T, rd *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "bulwark.limit.store.errors" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				f, _ := dp.Attributes.Value(attribute.Key("bulwark.limit.fallback"))
				got[f.AsString()] = dp.Value
			}
		}
	}
	return got
}

// Redis failure: taken down mid-test, each fallback decides as
// documented, says so in the metric and the hook, and the shared state is
// back when Redis is.
func TestRedisDownFollowsTheFallback(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		for _, c := range []struct {
			f    Fallback
			want []bool // decisions while Redis is down
		}{
			{FallbackOpen, []bool{true, true, true, true}},
			{FallbackClosed, []bool{false, false, false, false}},
			{FallbackLocal, []bool{true, true, false, false}}, // burst 4 over 2 instances
		} {
			t.Run(c.f.String(), func(t *testing.T) {
				h := h.For(t)
				rd := sdkmetric.NewManualReader()
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
				defer mp.Shutdown(context.Background())
				var hooked atomic.Int64
				l := New(h.Client, Config{Rate: hourly(4), Prefix: h.Prefix, Fallback: c.f, Instances: 2,
					Timeout: 200 * time.Millisecond, MeterProvider: mp,
					OnStoreError: func(ctx context.Context, ev StoreErrorEvent) {
						if ev.Key == "k" && ev.Err != nil && ev.Fallback == c.f {
							hooked.Add(1)
						}
					}})
				defer l.Close()
				ctx := context.Background()
				for range 4 {
					if !l.Allow(ctx, "k") {
						t.Fatal("burst rejected while Redis is up")
					}
				}
				h.Down()
				for i, want := range c.want {
					if got := l.Allow(ctx, "k"); got != want {
						t.Fatalf("call %d with Redis down: admitted %v, want %v", i, got, want)
					}
				}
				if n := storeErrors(t, rd)[c.f.String()]; n != 4 || hooked.Load() != 4 {
					t.Fatalf("store errors counted %d, hooked %d; want 4 each", n, hooked.Load())
				}
				h.Up()
				if d := l.Decide(ctx, "k"); d.Allowed || d.RetryAfter < 59*time.Minute {
					t.Fatalf("after Up: %+v, want the shared state kept (rejected for about an hour)", d)
				}
				if n := storeErrors(t, rd)[c.f.String()]; n != 4 {
					t.Fatalf("store errors %d after Up, want still 4", n)
				}
				conformance.Instruments(t, rd)
			})
		}
	})
}

// A Redis slower than Config.Timeout is an outage, and so is a full one
// (the script's write is refused).
func TestSlowOrFullRedisIsAnOutage(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		ctx := context.Background()
		var errs atomic.Int64
		l := New(h.Client, Config{Rate: hourly(4), Prefix: h.Prefix, Fallback: FallbackClosed,
			Timeout:      50 * time.Millisecond,
			OnStoreError: func(context.Context, StoreErrorEvent) { errs.Add(1) }})
		defer l.Close()
		h.SetLatency(500 * time.Millisecond)
		if l.Allow(ctx, "slow") || errs.Load() != 1 {
			t.Fatalf("slow Redis: admitted, or %d errors (want 1)", errs.Load())
		}
		h.SetLatency(0)
		h.SetFull(true)
		if l.Allow(ctx, "full") || errs.Load() != 2 {
			t.Fatalf("full Redis: admitted, or %d errors (want 2)", errs.Load())
		}
		h.SetFull(false)
		if !l.Allow(ctx, "full") {
			t.Fatal("rejected once Redis had room again")
		}
	})
}

func TestCallerCancellationIsARejectionNotAnError(t *testing.T) {
	h := redistest.NewMiniredis(t)
	var errs atomic.Int64
	l := New(h.Client, Config{Prefix: h.Prefix, Fallback: FallbackOpen,
		OnStoreError: func(context.Context, StoreErrorEvent) { errs.Add(1) }})
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if l.Allow(ctx, "k") || errs.Load() != 0 {
		t.Fatalf("a cancelled caller was admitted or counted as a store error (%d)", errs.Load())
	}
}

func TestHandlerOverRedis(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		l := New(h.Client, Config{Rate: hourly(1), Prefix: h.Prefix})
		defer l.Close()
		srv := httptest.NewServer(l.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		})))
		defer srv.Close()
		for i, want := range []int{200, 429} {
			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want || resp.Header.Get("RateLimit-Policy") != `"hourly";q=1;w=3600` {
				t.Fatalf("request %d: %d, policy %q; want %d", i, resp.StatusCode, resp.Header.Get("RateLimit-Policy"), want)
			}
			if want == 429 && resp.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		}
		// The client side: one host, NoWait, rejected before the network.
		c := &http.Client{Transport: l.RoundTripper(srv.Client().Transport, limit.NoWait())}
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatalf("first client request: %v", err)
		}
		resp.Body.Close()
		if _, err := c.Get(srv.URL); !errors.Is(err, limit.ErrRateLimited) {
			t.Fatalf("second client request = %v, want ErrRateLimited", err)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Rate: limit.RateConfig{Rate: 2e6}},
		{Rate: limit.RateConfig{Every: time.Nanosecond}},
		{Timeout: -1},
		{Timeout: time.Hour},
		{Fallback: 7},
		{Instances: -1},
		{Prefix: strings.Repeat("p", 500)},
	} {
		if err := cfg.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%+v: Validate = %v, want ErrInvalidConfig", cfg, err)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("New with a bad Config did not panic")
			}
		}()
		New(redistest.NewMiniredis(t).Client, Config{Instances: -1})
	}()
}

func FuzzKey(f *testing.F) {
	l := &Limiter{cfg: Config{Prefix: "p:"}}
	for _, s := range []string{"", "a", "{x}", "}", strings.Repeat("z", 300), "h:abc"} {
		f.Add(s, "b")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ka := l.Key(a)
		if !strings.HasPrefix(ka, "p:{") || len(ka) > 2+2+MaxKeyLen+1 {
			t.Fatalf("Key(%q) = %q", a, ka)
		}
		tag := ka[3:strings.IndexByte(ka, '}')]
		if strings.ContainsAny(tag, "{}") || tag == "" && a != "" {
			t.Fatalf("Key(%q) = %q: tag %q", a, ka, tag)
		}
		if a != b && ka == l.Key(b) {
			t.Fatalf("Key(%q) == Key(%q) = %q", a, b, ka)
		}
		// An empty tag ("{}") hashes the whole key, which is as good for
		// a one-key script.
		if tag != "" && redistest.Slot(ka) != redistest.Slot("x{"+tag+"}") {
			t.Fatalf("Key(%q) = %q is not in its tag's slot", a, ka)
		}
	})
}
