package redisstore_test

// Black-box tests of limit/redisstore, written against its docs only.

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/conformance"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/limit"
	"github.com/bulwark-go/bulwark/limit/redisstore"
)

func slow(burst int) limit.RateConfig {
	return limit.RateConfig{Name: "slow", Every: time.Hour, Burst: burst}
}

func TestOutsideInstancesShareTheLimit(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		var ls []*redisstore.Limiter
		for range 4 {
			l := redisstore.New(h.Client, redisstore.Config{Rate: slow(10), Prefix: h.Prefix, Instances: 4})
			t.Cleanup(func() { l.Close() })
			ls = append(ls, l)
		}
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					if ls[i%4].Allow(context.Background(), "tenant") {
						admitted.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if admitted.Load() != 10 {
			t.Fatalf("admitted %d across 4 instances, want the shared burst 10", admitted.Load())
		}
		if !ls[0].Allow(context.Background(), "other") {
			t.Fatal("another key shares the limit")
		}
	})
}

// A local and a distributed limiter with the same Config agree.
func TestOutsideAgreesWithLocal(t *testing.T) {
	h := redistest.NewMiniredis(t)
	mr := h.Miniredis()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	mr.SetTime(start)
	cfg := limit.RateConfig{Rate: 10, Burst: 3}
	l := redisstore.New(h.Client, redisstore.Config{Rate: cfg, Prefix: h.Prefix})
	defer l.Close()
	pattern := []time.Duration{0, 0, 0, 0, 50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond, 301 * time.Millisecond, 301 * time.Millisecond}
	want := []bool{true, true, true, false, false, true, false, true, true, false}
	for i, at := range pattern {
		mr.SetTime(start.Add(at))
		d := l.Decide(context.Background(), "k")
		if d.Allowed != want[i] {
			t.Fatalf("call %d at %v: %+v, want allowed=%v", i, at, d, want[i])
		}
		if !d.Allowed && i == 3 && d.RetryAfter != 100*time.Millisecond {
			t.Errorf("RetryAfter %v, want 100ms", d.RetryAfter)
		}
	}
}

func TestOutsideRedisDownFallback(t *testing.T) {
	for _, fb := range []redisstore.Fallback{redisstore.FallbackLocal, redisstore.FallbackOpen, redisstore.FallbackClosed} {
		t.Run(fb.String(), func(t *testing.T) {
			redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
				reader := sdkmetric.NewManualReader()
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
				defer mp.Shutdown(context.Background())
				var events atomic.Int64
				l := redisstore.New(h.Client, redisstore.Config{
					Rate: slow(4), Prefix: h.Prefix, Instances: 2, Fallback: fb,
					Timeout: 200 * time.Millisecond, MeterProvider: mp, // room for a loaded machine
					OnStoreError: func(ctx context.Context, ev redisstore.StoreErrorEvent) {
						if ev.Err == nil || ev.Key != "k" || ev.Fallback != fb || ctx == nil {
							t.Errorf("event %+v", ev)
						}
						events.Add(1)
					},
				})
				defer l.Close()
				if !l.Allow(context.Background(), "k") {
					t.Fatal("first call rejected")
				}
				h.Down()
				admitted := 0
				for range 5 {
					if l.Allow(context.Background(), "k") {
						admitted++
					}
				}
				want := map[redisstore.Fallback]int{redisstore.FallbackLocal: 2, redisstore.FallbackOpen: 5, redisstore.FallbackClosed: 0}[fb]
				if admitted != want {
					t.Errorf("admitted %d while Redis was down, want %d", admitted, want)
				}
				if events.Load() != 5 {
					t.Errorf("OnStoreError ran %d times, want 5", events.Load())
				}
				if got := storeErrors(t, reader, fb.String()); got != 5 {
					t.Errorf("bulwark.limit.store.errors{fallback=%s} = %d, want 5", fb, got)
				}
				conformance.Instruments(t, reader)
				h.Up()
				pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer pcancel()
				if err := h.Client.Ping(pctx).Err(); err != nil { // reconnected
					t.Fatal(err)
				}
				// Back on Redis: 3 left of the shared burst.
				n := 0
				for range 5 {
					if l.Allow(context.Background(), "k") {
						n++
					}
				}
				if n != 3 {
					t.Errorf("after Up: admitted %d, want the 3 left in Redis", n)
				}
				// A caller whose ctx ended: rejected, not counted.
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				h.Down()
				if l.Allow(ctx, "k") {
					t.Error("a cancelled call was admitted")
				}
				if got := storeErrors(t, reader, fb.String()); got != 5 {
					t.Errorf("a cancelled call was counted as a store error (%d)", got)
				}
			})
		})
	}
}

func storeErrors(t *testing.T, reader *sdkmetric.ManualReader, fb string) int64 {
	t.Helper()
	return counter(t, reader, "bulwark.limit.store.errors", "bulwark.limit.fallback")[fb]
}

// counter collects reader and returns the int64 sum called name, in
// package limit's scope, by the value of the attribute attr.
func counter(t *testing.T, reader *sdkmetric.ManualReader, name string, attr attribute.Key) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			if sm.Scope.Name != "github.com/bulwark-go/bulwark/limit" {
				t.Errorf("%s under scope %q", name, sm.Scope.Name)
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s is %T", name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				v, _ := dp.Attributes.Value(attr)
				got[v.AsString()] += dp.Value
			}
		}
	}
	return got
}

func TestOutsideKeys(t *testing.T) {
	h := redistest.NewMiniredis(t)
	l := redisstore.New(h.Client, redisstore.Config{Prefix: "p:"})
	defer l.Close()
	if k := l.Key("alice"); k != "p:{alice}" {
		t.Errorf("Key(alice) = %q", k)
	}
	for _, key := range []string{"a{b", "a}b", strings.Repeat("x", redisstore.MaxKeyLen+1)} {
		k := l.Key(key)
		if !strings.HasPrefix(k, "p:{") || !strings.HasSuffix(k, "}h") || strings.Count(k, "{") != 1 {
			t.Errorf("Key(%.20q) = %q, want hashed", key, k)
		}
	}
	if l.Key(strings.Repeat("x", redisstore.MaxKeyLen)) != "p:{"+strings.Repeat("x", redisstore.MaxKeyLen)+"}" {
		t.Error("a key of MaxKeyLen bytes is hashed")
	}
	// A hashed key and a key that looks like its hash are different.
	if l.Key("a{b") == l.Key(strings.TrimSuffix(strings.TrimPrefix(l.Key("a{b"), "p:{"), "}h")) {
		t.Error("hashed and plain keys collide")
	}
	// Keys with odd bytes work end to end.
	for _, key := range []string{"", "a{b}", "\x00\xff", strings.Repeat("é", 300)} {
		if !l.Allow(context.Background(), key) {
			t.Errorf("key %.20q rejected", key)
		}
	}
}

func TestOutsideConfigValidate(t *testing.T) {
	for name, c := range map[string]redisstore.Config{
		"rate NaN":        {Rate: limit.RateConfig{Rate: math.NaN()}},
		"rate > 1e6":      {Rate: limit.RateConfig{Rate: 2e6}},
		"timeout neg":     {Timeout: -1},
		"timeout huge":    {Timeout: math.MaxInt64},
		"instances neg":   {Instances: -1},
		"instances huge":  {Instances: math.MaxInt},
		"prefix huge":     {Prefix: strings.Repeat("p", redisstore.MaxPrefixLen+1)},
		"fallback absurd": {Fallback: 99},
		"fallback neg":    {Fallback: -1},
	} {
		err := c.Validate()
		var ce *bulwark.ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
	if err := (redisstore.Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	if err := (redisstore.Config{Rate: limit.RateConfig{Rate: 1e6}}).Validate(); err != nil {
		t.Errorf("1e6/s: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("New(nil client) did not panic")
		}
	}()
	redisstore.New(nil, redisstore.Config{})
}

func TestOutsideHandlerOverRedis(t *testing.T) {
	h := redistest.NewMiniredis(t)
	l := redisstore.New(h.Client, redisstore.Config{Rate: slow(1), Prefix: h.Prefix})
	defer l.Close()
	var hits atomic.Int64
	srv := httptest.NewServer(l.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Policy") != `"slow";q=1;w=3600` || resp.Header.Get("RateLimit") != `"slow";r=0;t=3600` {
		t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("RateLimit-Policy"), resp.Header.Get("RateLimit"))
	}
	resp, err = srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3600" || hits.Load() != 1 {
		t.Fatalf("%d Retry-After %q hits %d", resp.StatusCode, resp.Header.Get("Retry-After"), hits.Load())
	}
}

func TestOutsideCloseIdempotent(t *testing.T) {
	h := redistest.NewMiniredis(t)
	l := redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix})
	for range 3 {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if !l.Allow(context.Background(), "k") {
		t.Fatal("closed limiter stopped working")
	}
	if h.Client.Ping(context.Background()).Err() != nil {
		t.Fatal("Close closed the caller's client")
	}
}

// Regression: the distributed limiter's Reset (the RateLimit field's "t")
// was the time until a full burst, not until more quota comes, as the
// draft defines it: r=0;t=600 on the last admitted call of a burst of 10
// at one a minute, where the next call is admitted after 60s.
func TestRedisResetIsWhenMoreQuotaComes(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		l := redisstore.New(h.Client, redisstore.Config{Rate: limit.RateConfig{Every: time.Minute, Burst: 10}, Prefix: h.Prefix})
		defer l.Close()
		for i := range 10 {
			d := l.Decide(context.Background(), "k")
			if !d.Allowed || d.Remaining != int64(9-i) || d.Reset.Round(time.Second) != time.Minute {
				t.Fatalf("call %d = %+v, want Reset a minute", i, d)
			}
		}
		if d := l.Decide(context.Background(), "k"); d.Allowed || d.Reset != d.RetryAfter {
			t.Fatalf("rejected = %+v, want Reset = RetryAfter", d)
		}
	})
}

// Regression: the distributed limiter exported no bulwark.limit.decisions,
// though package limit says each limiter does and a redisstore reports
// under its primitive's names, so that one dashboard covers every store.
func TestRedisLimiterCountsDecisions(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())
		l := redisstore.New(h.Client, redisstore.Config{Rate: slow(2), Prefix: h.Prefix, MeterProvider: mp, Timeout: 200 * time.Millisecond})
		defer l.Close()
		for range 3 {
			l.Allow(context.Background(), "k")
		}
		h.Down()
		l.Allow(context.Background(), "other") // the local fallback admits
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		l.Allow(ctx, "k") // the caller gave up: not a decision
		conformance.Instruments(t, reader)
		if kinds := counter(t, reader, "bulwark.limit.decisions", "bulwark.limit.kind"); len(kinds) != 1 || kinds["distributed"] != 4 {
			t.Errorf("decisions by kind = %v, want 4 distributed", kinds)
		}
		if names := counter(t, reader, "bulwark.limit.decisions", "bulwark.name"); names["slow"] != 4 {
			t.Errorf("decisions by name = %v, want 4 for slow", names)
		}
		got := counter(t, reader, "bulwark.limit.decisions", "bulwark.limit.decision")
		want := map[string]int64{"admitted": 3, "rejected": 1}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
			}
		}
	})
}

// Regression: KeyedRoundTripper over the distributed limiter answered a
// request whose context had already ended with a *RejectedError (the
// limiter rejects such a call) instead of the context's cause.
func TestRoundTripperReturnsTheCause(t *testing.T) {
	h := redistest.NewMiniredis(t)
	l := redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix})
	defer l.Close()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	cause := errors.New("caller gave up")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	_, err := (&http.Client{Transport: l.RoundTripper(srv.Client().Transport)}).Do(req)
	if !errors.Is(err, cause) || hits.Load() != 0 {
		t.Fatalf("= %v (hits %d), want the cause", err, hits.Load())
	}
}
