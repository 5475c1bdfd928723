package limit_test

// Black-box tests of package limit, written against its docs only.

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/limit"
)

func TestOutsideRateBurstThenSteady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := limit.NewRate(limit.RateConfig{Rate: 10, Burst: 5})
		defer r.Close()
		for i := range 5 {
			if !r.Allow() {
				t.Fatalf("call %d of the burst rejected", i)
			}
		}
		d := r.Decide()
		if d.Allowed {
			t.Fatal("6th call admitted")
		}
		if d.RetryAfter != 100*time.Millisecond {
			t.Errorf("RetryAfter = %v, want 100ms", d.RetryAfter)
		}
		if d.Remaining != 0 {
			t.Errorf("Remaining = %d, want 0", d.Remaining)
		}
		time.Sleep(99 * time.Millisecond)
		if r.Allow() {
			t.Fatal("admitted before the interval")
		}
		time.Sleep(time.Millisecond)
		if !r.Allow() {
			t.Fatal("rejected after the interval")
		}
		// After a full idle burst window, a full burst again.
		time.Sleep(time.Second)
		d = r.Decide()
		if !d.Allowed || d.Remaining != 4 {
			t.Fatalf("after idling: %+v, want admitted with 4 remaining", d)
		}
		if d.Reset != 100*time.Millisecond {
			t.Errorf("Reset = %v, want 100ms", d.Reset)
		}
	})
}

// The proof: over a simulated minute the admitted count is within
// 1% of the configured rate.
func TestOutsideRateAccuracyOverAMinute(t *testing.T) {
	for _, rps := range []float64{7, 100, 333, 1000, 20000} {
		t.Run(strconv.FormatFloat(rps, 'f', -1, 64), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := limit.NewRate(limit.RateConfig{Rate: rps})
				defer r.Close()
				burst := limit.RateConfig{Rate: rps}.BurstSize()
				// A burst of 1 loses whatever lateness a call has (as a
				// token bucket of 1 does), so poll finely then.
				step := time.Duration(float64(time.Second) / rps / 4)
				if burst == 1 {
					step /= 50
				}
				if step <= 0 {
					step = 1
				}
				start := time.Now()
				admitted := 0
				for time.Since(start) < time.Minute {
					for r.Allow() {
						admitted++
					}
					time.Sleep(step)
				}
				want := rps*60 + float64(burst)
				if math.Abs(float64(admitted)-want) > want/100 {
					t.Fatalf("admitted %d in a minute, want %v ±1%%", admitted, want)
				}
			})
		})
	}
}

func TestOutsideRateWaitAccuracy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := limit.NewRate(limit.RateConfig{Rate: 50, Burst: 1})
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n := 0
		for r.Wait(ctx) == nil {
			n++
		}
		if n < 2970 || n > 3001 {
			t.Fatalf("Wait admitted %d in a minute, want about 3000", n)
		}
	})
}

func TestOutsideRateWaitGivesUpAtOnceWhenDeadlineTooNear(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := limit.NewRate(limit.RateConfig{Every: time.Second, Burst: 1})
		defer r.Close()
		if !r.Allow() {
			t.Fatal("first call rejected")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := r.Wait(ctx)
		if time.Since(start) != 0 {
			t.Errorf("Wait took %v, want to give up at once", time.Since(start))
		}
		var re *limit.RejectedError
		if !errors.As(err, &re) || !errors.Is(err, limit.ErrRateLimited) {
			t.Fatalf("Wait = %v, want a *RejectedError matching ErrRateLimited", err)
		}
		if re.Wait != time.Second || re.RetryAfter() != time.Second {
			t.Errorf("Wait = %v, want 1s", re.Wait)
		}
		// Giving up reserved nothing: the turn after 1s is still free.
		time.Sleep(time.Second)
		if !r.Allow() {
			t.Fatal("turn lost to a Wait that gave up")
		}
	})
}

func TestOutsideRateWaitCancelledGivesTurnBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := limit.NewRate(limit.RateConfig{Every: time.Second, Burst: 1})
		defer r.Close()
		r.Allow()
		cause := errors.New("caller gave up")
		ctx, cancel := context.WithCancelCause(context.Background())
		done := make(chan error)
		go func() { done <- r.Wait(ctx) }()
		time.Sleep(300 * time.Millisecond)
		cancel(cause)
		if err := <-done; err != cause {
			t.Fatalf("Wait = %v, want the cause", err)
		}
		time.Sleep(700 * time.Millisecond)
		if !r.Allow() {
			t.Fatal("a cancelled Wait kept its turn")
		}
	})
}

// Regression: Wait with a context already done returned nil and took the
// turn when one was free, though its doc says it returns the cause
// without waiting (as x/time/rate's Wait does).
func TestWaitWithDoneContextTakesNoTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cause := errors.New("caller gave up")
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cause)
		r := limit.NewRate(limit.RateConfig{Every: time.Second, Burst: 1})
		defer r.Close()
		if err := r.Wait(ctx); err != cause {
			t.Fatalf("Rate.Wait(done ctx) = %v, want the cause", err)
		}
		if !r.Allow() {
			t.Fatal("Rate.Wait on a done ctx took the turn")
		}
		k := limit.NewKeyed(limit.KeyedConfig{Rate: limit.RateConfig{Every: time.Second, Burst: 1}})
		defer k.Close()
		if err := k.Wait(ctx, "a"); err != cause {
			t.Fatalf("Keyed.Wait(done ctx) = %v, want the cause", err)
		}
		if !k.Allow("a") {
			t.Fatal("Keyed.Wait on a done ctx took the turn")
		}
	})
}

func TestOutsideRateWaitFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := limit.NewRate(limit.RateConfig{Every: 10 * time.Millisecond, Burst: 1})
		defer r.Close()
		r.Allow()
		var mu sync.Mutex
		var order []int
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.Wait(context.Background()); err != nil {
					t.Error(err)
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
			}()
			synctest.Wait()
		}
		wg.Wait()
		for i, v := range order {
			if v != i {
				t.Fatalf("order %v, want FIFO", order)
			}
		}
	})
}

func TestOutsideWaitNilCtxPanics(t *testing.T) {
	r := limit.NewRate(limit.RateConfig{})
	defer r.Close()
	mustPanic(t, "Rate.Wait(nil)", func() { r.Wait(nil) }) //nolint:staticcheck
	k := limit.NewKeyed(limit.KeyedConfig{})
	defer k.Close()
	mustPanic(t, "Keyed.Wait(nil)", func() { k.Wait(nil, "a") }) //nolint:staticcheck
	b := limit.NewBulkhead(limit.BulkheadConfig{})
	defer b.Close()
	mustPanic(t, "Bulkhead.Acquire(nil)", func() { b.Acquire(nil) })                                //nolint:staticcheck
	mustPanic(t, "Bulkhead.Do nil fn", func() { b.Do(context.Background(), nil) })                  //nolint:staticcheck
	mustPanic(t, "Call nil fn", func() { limit.Call[int](context.Background(), b, nil) })           //nolint:staticcheck
	mustPanic(t, "Handler nil next", func() { limit.Handler(r, nil) })                              //nolint:staticcheck
	mustPanic(t, "ConcurrencyHandler nil c", func() { limit.ConcurrencyHandler(nil, okHandler()) }) //nolint:staticcheck
}

func mustPanic(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	fn()
}

func TestOutsideConfigValidate(t *testing.T) {
	bad := map[string]interface{ Validate() error }{
		"Rate NaN":              limit.RateConfig{Rate: math.NaN()},
		"Rate +Inf":             limit.RateConfig{Rate: math.Inf(1)},
		"Rate -Inf":             limit.RateConfig{Rate: math.Inf(-1)},
		"Rate negative":         limit.RateConfig{Rate: -1},
		"Rate too high":         limit.RateConfig{Rate: 2e9},
		"Rate and Every":        limit.RateConfig{Rate: 1, Every: time.Second},
		"Every negative":        limit.RateConfig{Every: -1},
		"Every too long":        limit.RateConfig{Every: 25 * time.Hour},
		"Burst MaxInt":          limit.RateConfig{Burst: math.MaxInt},
		"Burst negative":        limit.RateConfig{Burst: -1},
		"Burst window":          limit.RateConfig{Every: time.Hour, Burst: 1000},
		"Keyed MaxKeys MaxInt":  limit.KeyedConfig{MaxKeys: math.MaxInt},
		"Keyed MaxKeys neg":     limit.KeyedConfig{MaxKeys: -1},
		"Keyed Idle neg":        limit.KeyedConfig{IdleTimeout: -1},
		"Keyed Idle huge":       limit.KeyedConfig{IdleTimeout: math.MaxInt64},
		"Keyed bad rate":        limit.KeyedConfig{Rate: limit.RateConfig{Rate: math.NaN()}},
		"Bulkhead Max MaxInt":   limit.BulkheadConfig{MaxConcurrent: math.MaxInt},
		"Bulkhead Max neg":      limit.BulkheadConfig{MaxConcurrent: -1},
		"Bulkhead Queue MaxInt": limit.BulkheadConfig{MaxQueue: math.MaxInt},
		"Bulkhead QT neg":       limit.BulkheadConfig{MaxQueue: 1, QueueTimeout: -1},
		"Bulkhead QT huge":      limit.BulkheadConfig{MaxQueue: 1, QueueTimeout: math.MaxInt64},
		"Adaptive Tol NaN":      limit.AdaptiveConfig{Tolerance: math.NaN()},
		"Adaptive Tol Inf":      limit.AdaptiveConfig{Tolerance: math.Inf(1)},
		"Adaptive Tol 0.5":      limit.AdaptiveConfig{Tolerance: 0.5},
		"Adaptive Max MaxInt":   limit.AdaptiveConfig{MaxLimit: math.MaxInt},
		"Adaptive Min>Max":      limit.AdaptiveConfig{MinLimit: 10, MaxLimit: 5},
		"Adaptive Init>Max":     limit.AdaptiveConfig{InitialLimit: 2000},
		"Adaptive Init<Min":     limit.AdaptiveConfig{InitialLimit: 2, MinLimit: 3},
		"Adaptive Window neg":   limit.AdaptiveConfig{Window: -1},
		"Adaptive Window huge":  limit.AdaptiveConfig{Window: time.Hour},
		"Adaptive Probe MaxInt": limit.AdaptiveConfig{ProbeSamples: math.MaxInt},
		"Adaptive PI neg":       limit.AdaptiveConfig{ProbeInterval: -1},
	}
	for name, c := range bad {
		err := c.Validate()
		var ce *bulwark.ConfigError
		if !errors.Is(err, bulwark.ErrInvalidConfig) || !errors.As(err, &ce) {
			t.Errorf("%s: Validate = %v, want a *bulwark.ConfigError", name, err)
		}
	}
	good := map[string]interface{ Validate() error }{
		"Rate zero":     limit.RateConfig{},
		"Rate max":      limit.RateConfig{Rate: limit.MaxRate},
		"Rate min":      limit.RateConfig{Rate: limit.MinRate},
		"Every max":     limit.RateConfig{Every: limit.MaxEvery},
		"Burst max":     limit.RateConfig{Rate: 1e6, Burst: limit.MaxBurst},
		"Keyed zero":    limit.KeyedConfig{},
		"Bulkhead zero": limit.BulkheadConfig{},
		"Bulkhead max":  limit.BulkheadConfig{MaxConcurrent: limit.MaxMaxConcurrent, MaxQueue: limit.MaxMaxQueue, QueueTimeout: limit.MaxQueueTimeout},
		"Adaptive zero": limit.AdaptiveConfig{},
		"Adaptive 1":    limit.AdaptiveConfig{InitialLimit: 1, MinLimit: 1, MaxLimit: 1},
	}
	for name, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: Validate = %v, want nil", name, err)
		}
	}
	// New panics with the error.
	defer func() {
		err, _ := recover().(error)
		if !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Fatalf("NewRate(NaN) panicked with %v, want the ConfigError", err)
		}
	}()
	limit.NewRate(limit.RateConfig{Rate: math.NaN()})
}

func TestOutsideRateConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		c     limit.RateConfig
		burst int
		iv    time.Duration
	}{
		{limit.RateConfig{}, 10, 10 * time.Millisecond},
		{limit.RateConfig{Rate: 10}, 1, 100 * time.Millisecond},
		{limit.RateConfig{Rate: 11}, 2, 90909091},
		{limit.RateConfig{Every: time.Minute / 30}, 1, 2 * time.Second},
		{limit.RateConfig{Rate: 1000}, 100, time.Millisecond},
	} {
		if got := tc.c.BurstSize(); got != tc.burst {
			t.Errorf("%+v: BurstSize = %d, want %d", tc.c, got, tc.burst)
		}
		if got := tc.c.Interval(); got != tc.iv {
			t.Errorf("%+v: Interval = %v, want %v", tc.c, got, tc.iv)
		}
	}
}

func TestOutsideCloseIdempotent(t *testing.T) {
	r := limit.NewRate(limit.RateConfig{})
	k := limit.NewKeyed(limit.KeyedConfig{})
	b := limit.NewBulkhead(limit.BulkheadConfig{})
	a := limit.NewAdaptive(limit.AdaptiveConfig{})
	for _, c := range []io.Closer{r, k, b, a} {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.Close(); err != nil {
					t.Errorf("Close = %v", err)
				}
			}()
		}
		wg.Wait()
		if err := c.Close(); err != nil {
			t.Errorf("Close again = %v", err)
		}
	}
	// They keep working.
	if !r.Allow() || !k.Allow("x") || !b.TryAcquire() {
		t.Fatal("a closed limiter stopped working")
	}
	b.Release()
	if _, err := a.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// ----- x/time/rate plugged in -----

func TestOutsideXTimeRateIsALimiter(t *testing.T) {
	var _ limit.Limiter = rate.NewLimiter(1, 1)
	var _ limit.Limiter = limit.NewRate(limit.RateConfig{})
}

func TestOutsideXTimeRateHandlerHeaders(t *testing.T) {
	l := rate.NewLimiter(rate.Every(time.Minute), 4) // slow enough not to refill during the test
	var hits atomic.Int64
	srv := httptest.NewServer(limit.Handler(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })))
	defer srv.Close()
	for i := range 4 {
		resp := mustGet(t, srv.Client(), srv.URL)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		if p := resp.Header.Get("RateLimit-Policy"); p != `"default";q=1;w=60` {
			t.Errorf("policy %q", p)
		}
		if got := parseR(t, resp.Header.Get("RateLimit")); got != int64(3-i) {
			t.Errorf("request %d: r=%d, want %d (%q)", i, got, 3-i, resp.Header.Get("RateLimit"))
		}
	}
	resp := mustGet(t, srv.Client(), srv.URL)
	if ra := resp.Header.Get("Retry-After"); resp.StatusCode != 429 || (ra != "60" && ra != "59") {
		t.Fatalf("5th: %d Retry-After %q", resp.StatusCode, ra)
	}
	if hits.Load() != 4 {
		t.Fatalf("handler ran %d times, want 4", hits.Load())
	}
}

func parseR(t *testing.T, field string) int64 { t.Helper(); return param(t, field, "r") }

func parseT(t *testing.T, field string) int64 { t.Helper(); return param(t, field, "t") }

// param returns the integer parameter name of a RateLimit field.
func param(t *testing.T, field, name string) int64 {
	t.Helper()
	for _, p := range strings.Split(field, ";") {
		if v, ok := strings.CutPrefix(p, name+"="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("bad %s in %q", name, field)
			}
			return n
		}
	}
	t.Fatalf("no %s in %q", name, field)
	return 0
}

func TestOutsideXTimeRateRoundTripper(t *testing.T) {
	l := rate.NewLimiter(rate.Every(time.Hour), 1)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	c := &http.Client{Transport: limit.RoundTripper(l, srv.Client().Transport, limit.NoWait())}
	mustGet(t, c, srv.URL)
	_, err := c.Get(srv.URL)
	var re *limit.RejectedError
	if !errors.As(err, &re) || !errors.Is(err, limit.ErrRateLimited) {
		t.Fatalf("second = %v, want a rejection", err)
	}
	if re.Wait <= 59*time.Minute || re.Wait > time.Hour {
		t.Errorf("Wait = %v, want about an hour", re.Wait)
	}
	// Waiting mode: the deadline is too near, so it gives up at once.
	c = &http.Client{Transport: limit.RoundTripper(l, srv.Client().Transport)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	_, err = c.Do(req)
	if !errors.Is(err, limit.ErrRateLimited) {
		t.Fatalf("waiting = %v, want a rejection", err)
	}
	if hits.Load() != 1 {
		t.Fatalf("server saw %d requests, want 1", hits.Load())
	}
}

// ----- HTTP -----

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
}

func mustGet(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestOutsideHandlerFields(t *testing.T) {
	r := limit.NewRate(limit.RateConfig{Name: "api", Every: time.Minute, Burst: 3}) // no refill during the test
	defer r.Close()
	srv := httptest.NewServer(r.Handler(okHandler()))
	defer srv.Close()
	for i := range 3 {
		resp := mustGet(t, srv.Client(), srv.URL)
		if resp.StatusCode != 200 {
			t.Fatalf("%d: %d", i, resp.StatusCode)
		}
		if p := resp.Header.Get("RateLimit-Policy"); p != `"api";q=1;w=60` {
			t.Errorf("policy %q", p)
		}
		rl := resp.Header.Get("RateLimit")
		if !strings.HasPrefix(rl, `"api";r=`+strconv.Itoa(2-i)+`;t=`) {
			t.Errorf("%d: RateLimit %q", i, rl)
		}
		if resp.Header.Get("Retry-After") != "" {
			t.Errorf("Retry-After on a 200")
		}
	}
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || !strings.Contains(string(body), limit.ErrRateLimited.Error()) {
		t.Fatalf("4th: %d %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	if ra := resp.Header.Get("Retry-After"); (ra != "60" && ra != "59") || resp.Header.Get("RateLimit") != `"api";r=0;t=`+ra {
		t.Errorf("429 fields: Retry-After %q RateLimit %q", resp.Header.Get("Retry-After"), resp.Header.Get("RateLimit"))
	}
}

// The draft: the policy's name is an sf-string; q and w integers, w > 0.
func TestOutsidePolicyNameIsAValidSFString(t *testing.T) {
	for _, name := range []string{`a"b`, `back\slash`, "tab\there", "é"} {
		h := http.Header{}
		limit.SetHeaders(h, limit.Decision{Allowed: true, Remaining: 1, Policy: limit.Policy{Name: name, Quota: 1, Window: time.Second}})
		for _, f := range []string{"RateLimit", "RateLimit-Policy"} {
			v := h.Get(f)
			if !validSFItem(v) {
				t.Errorf("name %q: %s = %q is not a valid structured field item", name, f, v)
			}
		}
	}
}

// validSFItem checks an sf-string item followed by integer parameters.
func validSFItem(v string) bool {
	if len(v) < 2 || v[0] != '"' {
		return false
	}
	i := 1
	for ; i < len(v); i++ {
		c := v[i]
		if c == '\\' {
			if i+1 >= len(v) || (v[i+1] != '"' && v[i+1] != '\\') {
				return false
			}
			i++
			continue
		}
		if c == '"' {
			break
		}
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	if i >= len(v) {
		return false
	}
	for _, p := range strings.Split(v[i+1:], ";")[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return false
		}
		if _, err := strconv.ParseUint(val, 10, 63); err != nil {
			return false
		}
	}
	return true
}

func TestOutsidePolicyWindows(t *testing.T) {
	for _, tc := range []struct {
		c    limit.RateConfig
		want limit.Policy
	}{
		{limit.RateConfig{Rate: 100}, limit.Policy{"default", 100, time.Second}},
		{limit.RateConfig{Every: time.Minute}, limit.Policy{"default", 1, time.Minute}},
		{limit.RateConfig{Rate: 0.5}, limit.Policy{"default", 1, 2 * time.Second}},
		{limit.RateConfig{Every: 1500 * time.Millisecond}, limit.Policy{"default", 1, 2 * time.Second}},
		{limit.RateConfig{Rate: 2.5}, limit.Policy{"default", 2, time.Second}},
	} {
		p := tc.c.Policy()
		if p.Window%time.Second != 0 || p.Window <= 0 {
			t.Errorf("%+v: window %v is not a whole positive number of seconds", tc.c, p.Window)
		}
		if p != tc.want {
			t.Logf("%+v: Policy = %+v (expected %+v)", tc.c, p, tc.want)
		}
	}
}

func TestOutsideConcurrencyHandler503(t *testing.T) {
	b := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1})
	defer b.Close()
	release := make(chan struct{})
	entered := make(chan struct{})
	srv := httptest.NewServer(b.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})))
	defer srv.Close()
	go func() {
		if resp, err := srv.Client().Get(srv.URL); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	close(release)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), limit.ErrConcurrencyLimited.Error()) {
		t.Fatalf("%d Retry-After %q body %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp.Header.Get("RateLimit") != "" {
		t.Errorf("RateLimit field on a concurrency rejection: %q", resp.Header.Get("RateLimit"))
	}
}

func TestOutsideWriteRejection(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		ra     string
	}{
		{&limit.RejectedError{Wait: 1500 * time.Millisecond}, 429, "2"},
		{&limit.RejectedError{}, 429, ""},
		{errors.New("x"), 0, ""},
	} {
		rec := httptest.NewRecorder()
		ok := limit.WriteRejection(rec, tc.err)
		if tc.status == 0 {
			if ok || rec.Code != 200 || rec.Body.Len() != 0 {
				t.Errorf("%v: wrote something", tc.err)
			}
			continue
		}
		if !ok || rec.Code != tc.status || rec.Header().Get("Retry-After") != tc.ra {
			t.Errorf("%v: %v %d %q", tc.err, ok, rec.Code, rec.Header().Get("Retry-After"))
		}
	}
	// A wrapped rejection is still a rejection.
	rec := httptest.NewRecorder()
	if !limit.WriteRejection(rec, errors.Join(errors.New("ctx"), &limit.RejectedError{Wait: time.Second})) || rec.Code != 429 {
		t.Errorf("wrapped rejection: %d", rec.Code)
	}
}

type trackBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackBody) Close() error { b.closed.Store(true); return nil }

func TestOutsideRoundTripperRejectedNeverReachesServer(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	r := limit.NewRate(limit.RateConfig{Every: time.Hour, Burst: 1})
	defer r.Close()
	b := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1})
	defer b.Close()
	k := limit.NewKeyed(limit.KeyedConfig{Rate: limit.RateConfig{Every: time.Hour, Burst: 1}})
	defer k.Close()
	for name, rt := range map[string]http.RoundTripper{
		"rate-nowait": r.RoundTripper(srv.Client().Transport, limit.NoWait()),
		"keyed":       k.RoundTripper(srv.Client().Transport, limit.NoWait()),
	} {
		hits.Store(0)
		c := &http.Client{Transport: rt}
		mustGet(t, c, srv.URL)
		body := &trackBody{Reader: strings.NewReader("payload")}
		req, _ := http.NewRequest("POST", srv.URL, body)
		_, err := c.Do(req)
		if !errors.Is(err, limit.ErrRateLimited) {
			t.Errorf("%s: %v, want a rate rejection", name, err)
		}
		if !body.closed.Load() {
			t.Errorf("%s: the rejected request's body was not closed", name)
		}
		if hits.Load() != 1 {
			t.Errorf("%s: server saw %d requests", name, hits.Load())
		}
	}
	// Concurrency: hold the slot with an unclosed body.
	c := &http.Client{Transport: b.RoundTripper(srv.Client().Transport)}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body := &trackBody{Reader: strings.NewReader("payload")}
	req, _ := http.NewRequest("POST", srv.URL, body)
	_, err = c.Do(req)
	if !errors.Is(err, limit.ErrConcurrencyLimited) || !body.closed.Load() {
		t.Errorf("bulkhead: %v, body closed %v", err, body.closed.Load())
	}
	resp.Body.Close()
	if b.InFlight() != 0 {
		t.Errorf("slot not freed by closing the body")
	}
	mustGet(t, c, srv.URL)
}

// ----- Keyed -----

func TestOutsideKeyedBoundedAndLimitedKeyKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := limit.NewKeyed(limit.KeyedConfig{Rate: limit.RateConfig{Every: time.Minute, Burst: 1}, MaxKeys: 100})
		defer k.Close()
		if !k.Allow("victim") || k.Allow("victim") {
			t.Fatal("victim's burst of 1 wrong")
		}
		for i := range 10000 {
			k.Allow("flood-" + strconv.Itoa(i))
			if k.Len() > 100 {
				t.Fatalf("Len %d past MaxKeys", k.Len())
			}
		}
		if k.Allow("victim") {
			t.Fatal("the flood made the set forget a limited key")
		}
		// Past the idle timeout (a minute, the burst window), the
		// victim has nothing left to remember.
		time.Sleep(2*time.Minute + time.Second)
		if !k.Allow("victim") {
			t.Fatal("victim still limited after its interval")
		}
	})
}

func TestOutsideKeyedIdleEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := limit.NewKeyed(limit.KeyedConfig{Rate: limit.RateConfig{Rate: 10}, IdleTimeout: time.Minute})
		defer k.Close()
		for i := range 50 {
			k.Allow(strconv.Itoa(i))
		}
		if k.Len() != 50 {
			t.Fatalf("Len %d", k.Len())
		}
		time.Sleep(time.Minute + time.Second)
		k.Allow("new1")
		time.Sleep(time.Minute + time.Second)
		k.Allow("new2")
		if k.Len() > 2 {
			t.Fatalf("idle keys kept: Len %d after two idle timeouts", k.Len())
		}
	})
}

func TestOutsideKeyedDecideAndWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := limit.NewKeyed(limit.KeyedConfig{Rate: limit.RateConfig{Name: "per-ip", Rate: 10, Burst: 2}})
		defer k.Close()
		d := k.Decide(context.Background(), "a")
		if !d.Allowed || d.Remaining != 1 || d.Policy.Name != "per-ip" {
			t.Fatalf("%+v", d)
		}
		k.Decide(context.Background(), "a")
		d = k.Decide(context.Background(), "a")
		if d.Allowed || d.RetryAfter != 100*time.Millisecond {
			t.Fatalf("third: %+v", d)
		}
		if !k.Decide(context.Background(), "b").Allowed {
			t.Fatal("b limited by a")
		}
		start := time.Now()
		if err := k.Wait(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) != 100*time.Millisecond {
			t.Errorf("Wait took %v, want 100ms", time.Since(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		if err := k.Wait(ctx, "a"); !errors.Is(err, limit.ErrRateLimited) {
			t.Fatalf("Wait near deadline = %v", err)
		}
	})
}

func TestOutsideKeyedHandlerPerIP(t *testing.T) {
	k := limit.NewKeyed(limit.KeyedConfig{Rate: limit.RateConfig{Every: time.Hour, Burst: 1}})
	defer k.Close()
	srv := httptest.NewServer(k.Handler(okHandler()))
	defer srv.Close()
	if resp := mustGet(t, srv.Client(), srv.URL); resp.StatusCode != 200 || resp.Header.Get("RateLimit-Policy") == "" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	resp := mustGet(t, srv.Client(), srv.URL)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d", resp.StatusCode)
	}
}

func TestOutsideClientIP(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.3.4:5":         "1.2.3.4",
		"[::1]:80":          "::1",
		"1.2.3.4":           "1.2.3.4",
		"[fe80::1%eth0]:80": "fe80::1%eth0",
		"":                  "",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = in
		r.Header.Set("X-Forwarded-For", "9.9.9.9")
		if got := limit.ClientIP(r); got != want {
			t.Errorf("ClientIP(%q) = %q, want %q", in, got, want)
		}
	}
}

// ----- Bulkhead -----

func TestOutsideBulkheadCapUnderLoad(t *testing.T) {
	b := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 5})
	defer b.Close()
	var in, peak atomic.Int64
	var admitted, rejected atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				err := b.Do(context.Background(), func(context.Context) error {
					n := in.Add(1)
					for {
						p := peak.Load()
						if n <= p || peak.CompareAndSwap(p, n) {
							break
						}
					}
					in.Add(-1)
					return nil
				})
				if err == nil {
					admitted.Add(1)
				} else if errors.Is(err, limit.ErrConcurrencyLimited) {
					rejected.Add(1)
				} else {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if peak.Load() > 5 {
		t.Fatalf("peak %d in flight past the cap 5", peak.Load())
	}
	if b.InFlight() != 0 {
		t.Fatalf("InFlight %d after all calls", b.InFlight())
	}
	if admitted.Load()+rejected.Load() != 64*200 {
		t.Fatal("calls lost")
	}
}

func TestOutsideBulkheadQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 2, QueueTimeout: time.Second})
		defer b.Close()
		p, err := b.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		results := make(chan error, 3)
		for range 2 {
			go func() {
				p, err := b.Acquire(context.Background())
				if err == nil {
					p.Release(bulwark.Success)
				}
				results <- err
			}()
		}
		synctest.Wait()
		// The queue is full: the third is rejected at once.
		start := time.Now()
		if _, err := b.Acquire(context.Background()); !errors.Is(err, limit.ErrConcurrencyLimited) || time.Since(start) != 0 {
			t.Fatalf("third = %v after %v", err, time.Since(start))
		}
		// TryAcquire never queues and never jumps the queue.
		if b.TryAcquire() {
			t.Fatal("TryAcquire took a slot while full")
		}
		time.Sleep(500 * time.Millisecond)
		p.Release(bulwark.Success)
		for range 2 {
			if err := <-results; err != nil {
				t.Fatalf("queued call: %v", err)
			}
		}
		if time.Since(start) != 500*time.Millisecond {
			t.Errorf("queued calls done after %v", time.Since(start))
		}
		// Queue timeout.
		p, _ = b.Acquire(context.Background())
		start = time.Now()
		_, err = b.Acquire(context.Background())
		var re *limit.RejectedError
		if !errors.As(err, &re) || !errors.Is(err, limit.ErrConcurrencyLimited) {
			t.Fatalf("timed out = %v", err)
		}
		if time.Since(start) != time.Second {
			t.Errorf("queue timeout after %v, want 1s", time.Since(start))
		}
		// Context ends first: its cause.
		cause := errors.New("bye")
		ctx, cancel := context.WithCancelCause(context.Background())
		go func() { time.Sleep(100 * time.Millisecond); cancel(cause) }()
		if _, err := b.Acquire(ctx); err != cause {
			t.Fatalf("cancelled in queue = %v, want the cause", err)
		}
		p.Release(bulwark.Success)
		if b.InFlight() != 0 {
			t.Fatalf("InFlight %d", b.InFlight())
		}
	})
}

func TestOutsideCallReturnsValue(t *testing.T) {
	b := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1})
	defer b.Close()
	v, err := limit.Call(context.Background(), b, func(context.Context) (int, error) { return 42, nil })
	if v != 42 || err != nil {
		t.Fatal(v, err)
	}
	b.TryAcquire()
	v, err = limit.Call(context.Background(), b, func(context.Context) (int, error) { return 1, nil })
	if v != 0 || !errors.Is(err, limit.ErrConcurrencyLimited) {
		t.Fatal(v, err)
	}
}

// ----- Adaptive -----

// A simulated server: latency L0 up to a knee K, growing in proportion
// beyond it. The limit settles near Tolerance·K + √(Tolerance·K).
func TestOutsideAdaptiveConvergesOnKnee(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := limit.NewAdaptive(limit.AdaptiveConfig{})
		defer a.Close()
		if a.Limit() != limit.DefaultMinLimit {
			t.Errorf("Limit during the first measurement = %d, want MinLimit", a.Limit())
		}
		const knee = 40
		const l0 = 10 * time.Millisecond
		var inflight atomic.Int64
		var wg sync.WaitGroup
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for range 200 { // offered load far above the knee
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					err := a.Do(context.Background(), func(context.Context) error {
						n := inflight.Add(1)
						d := l0
						if n > knee {
							d = l0 * time.Duration(n) / knee
						}
						time.Sleep(d)
						inflight.Add(-1)
						return nil
					})
					if err != nil {
						time.Sleep(time.Millisecond)
					}
				}
			}()
		}
		wg.Wait()
		lim := float64(a.Limit())
		want := 1.1*knee + math.Sqrt(1.1*knee)
		if lim < want*0.7 || lim > want*1.3 {
			t.Fatalf("limit %v, want near %.0f", lim, want)
		}
	})
}

func TestOutsideAdaptiveRejectsAboveLimit(t *testing.T) {
	a := limit.NewAdaptive(limit.AdaptiveConfig{MinLimit: 2, InitialLimit: 2, MaxLimit: 2})
	defer a.Close()
	p1, err1 := a.Acquire(context.Background())
	p2, err2 := a.Acquire(context.Background())
	_, err3 := a.Acquire(context.Background())
	if err1 != nil || err2 != nil || !errors.Is(err3, limit.ErrConcurrencyLimited) {
		t.Fatal(err1, err2, err3)
	}
	if a.InFlight() != 2 {
		t.Fatal(a.InFlight())
	}
	p1.Release(bulwark.Success)
	p2.Release(bulwark.Failure)
	if a.InFlight() != 0 {
		t.Fatal(a.InFlight())
	}
	var zero limit.Permit
	zero.Release(bulwark.Success)
}

// Regression: the RateLimit field's "t" said when the limiter would be
// back to a full burst, not, as the draft's reset parameter says, when
// more quota is made available: the last admitted call of a burst of 10
// at one a minute got r=0;t=600 while the rejected call right after it got
// r=0;t=60 (and Retry-After: 60) for the same state.
func TestRateLimitResetIsWhenMoreQuotaComes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := limit.NewRate(limit.RateConfig{Name: "m", Every: time.Minute, Burst: 10})
		defer rt.Close()
		xt := rate.NewLimiter(rate.Every(time.Minute), 10)
		k := limit.NewKeyed(limit.KeyedConfig{Rate: limit.RateConfig{Name: "m", Every: time.Minute, Burst: 10}})
		defer k.Close()
		fast := limit.NewRate(limit.RateConfig{Name: "m", Rate: 20000, Burst: 4000}) // sharded
		defer fast.Close()
		for name, decide := range map[string]func() limit.Decision{
			"Rate":  rt.Decide,
			"Keyed": func() limit.Decision { return k.Decide(context.Background(), "a") },
			"x/time/rate": func() limit.Decision {
				rec := httptest.NewRecorder()
				limit.Handler(xt, okHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
				return limit.Decision{Allowed: rec.Code == 200, Remaining: parseR(t, rec.Header().Get("RateLimit")),
					Reset: time.Duration(parseT(t, rec.Header().Get("RateLimit"))) * time.Second}
			},
		} {
			for i := range 10 {
				d := decide()
				if !d.Allowed || d.Remaining != int64(9-i) {
					t.Fatalf("%s: call %d = %+v", name, i, d)
				}
				if d.Reset.Round(time.Second) != time.Minute {
					t.Errorf("%s: call %d: Reset %v, want a minute (the next unit of quota)", name, i, d.Reset)
				}
			}
			d := decide()
			if d.Allowed || d.Reset.Round(time.Second) != time.Minute {
				t.Errorf("%s: rejected call: %+v, want Reset a minute", name, d)
			}
		}
		for range 4000 {
			fast.Allow()
		}
		if d := fast.Decide(); d.Allowed || d.Reset != d.RetryAfter || d.Reset > time.Millisecond {
			t.Errorf("sharded, rejected: %+v", d)
		}
		time.Sleep(time.Second)
		if d := fast.Decide(); !d.Allowed || d.Reset <= 0 || d.Reset > time.Millisecond {
			t.Errorf("sharded, admitted: %+v, want more quota within a millisecond", d)
		}
	})
}

// An unknown reset is left out of the RateLimit field, not sent as t=0
// (which would tell clients that quota is back now).
func TestSetHeadersLeavesOutAnUnknownReset(t *testing.T) {
	h := http.Header{}
	limit.SetHeaders(h, limit.Decision{Policy: limit.Policy{Name: "x"}})
	if got := h.Get("RateLimit"); got != `"x";r=0` {
		t.Errorf("RateLimit = %q, want \"x\";r=0", got)
	}
	if h.Get("Retry-After") != "" || h.Get("RateLimit-Policy") != "" {
		t.Errorf("fields %v", h)
	}
}

// Regression: Keyed bounded the number of keys but kept each key whole
// (and whatever string it was cut from), so MaxKeys keys taken from a
// client's headers (an API key, up to net/http's 1 MB of headers) could
// hold gigabytes. Long keys are now kept as a hash, and short ones copied.
func TestKeyedMemoryDoesNotGrowWithKeyLength(t *testing.T) {
	k := limit.NewKeyed(limit.KeyedConfig{Rate: limit.RateConfig{Every: time.Hour, Burst: 1}, MaxKeys: 1000})
	defer k.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 200 {
		big := strings.Repeat(strconv.Itoa(i%10), 256<<10) + strconv.Itoa(i) // 256 KB
		if !k.Allow(big) {
			t.Fatalf("key %d rejected", i)
		}
		short, _, _ := strings.Cut(big[len(big)-8:]+"|"+big, "|") // a short key cut from a big string
		k.Allow(short)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Fatalf("200 keys of 256 KB hold %d MB", grew>>20)
	}
	// A long key is still its own limit.
	long := strings.Repeat("k", 100000)
	if !k.Allow(long + "1") {
		t.Fatal("a long key rejected")
	}
	if k.Allow(strings.Repeat("0", 256<<10) + "0") {
		t.Fatal("a long key forgot its limit")
	}
}

// Regression: RoundTripper around a *rate.Limiter returned ctx.Err(), not
// context.Cause, when the request's context ended, as its doc promises.
func TestRoundTripperReturnsTheCauseWithXTimeRate(t *testing.T) {
	srv := httptest.NewServer(okHandler())
	defer srv.Close()
	c := &http.Client{Transport: limit.RoundTripper(rate.NewLimiter(rate.Every(time.Hour), 1), srv.Client().Transport)}
	mustGet(t, c, srv.URL)
	cause := errors.New("caller gave up")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	if _, err := c.Do(req); !errors.Is(err, cause) {
		t.Fatalf("= %v, want the cause", err)
	}
}

// Regression: a *rate.Limiter with an infinite limit was described as
// RateLimit: "default";r=0, telling clients they had no quota left.
func TestHandlerSendsNoFieldsForAnInfiniteXTimeRate(t *testing.T) {
	rec := httptest.NewRecorder()
	limit.Handler(rate.NewLimiter(rate.Inf, 0), okHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Header().Get("RateLimit") != "" || rec.Header().Get("RateLimit-Policy") != "" {
		t.Fatalf("%d RateLimit %q Policy %q", rec.Code, rec.Header().Get("RateLimit"), rec.Header().Get("RateLimit-Policy"))
	}
}

// Any two distinct keys, short, long (hashed) or shaped like a hash, have
// limits of their own.
func FuzzKeyedKeys(f *testing.F) {
	f.Add("a", "b")
	f.Add(strings.Repeat("x", limit.MaxKeyLen+1), strings.Repeat("x", limit.MaxKeyLen))
	f.Add("\xff0123456789abcdef0123456789abcdef", "")
	f.Fuzz(func(t *testing.T, a, b string) {
		if a == b {
			return
		}
		k := limit.NewKeyed(limit.KeyedConfig{Rate: limit.RateConfig{Every: time.Hour, Burst: 1}})
		defer k.Close()
		if !k.Allow(a) || k.Allow(a) {
			t.Fatalf("key %q: burst of 1 wrong", a)
		}
		if !k.Allow(b) {
			t.Fatalf("key %q shares %q's limit", b, a)
		}
		if k.Len() != 2 {
			t.Fatalf("Len %d, want 2", k.Len())
		}
	})
}
