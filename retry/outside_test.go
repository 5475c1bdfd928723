package retry_test

// Tests of package retry written from outside, against its docs, over real
// loopback servers.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/conformance"
	"github.com/bulwark-go/bulwark/retry"
)

// upgradeServer answers every request with 101 Switching Protocols and then
// echoes one line over the upgraded connection.
func upgradeServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(conformance.UpgradeEcho(t))
	t.Cleanup(srv.Close)
	return srv
}

// checkUpgrade sends an upgrade request through rt and talks over the
// upgraded connection: net/http makes a 101 response's body an
// io.ReadWriteCloser, which a RoundTripper must not hide.
func checkUpgrade(t *testing.T, rt http.RoundTripper, url string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("a 101 response's body is a %T, not an io.ReadWriteCloser: the upgraded connection cannot be written", resp.Body)
	}
	if _, err := io.WriteString(rw, "hello\n"); err != nil {
		t.Fatal(err)
	}
	if got, _ := bufio.NewReader(rw).ReadString('\n'); got != "hello\n" {
		t.Fatalf("echo over the upgraded connection = %q, want %q", got, "hello\n")
	}
}

func TestRoundTripperKeepsUpgradedBodyWritable(t *testing.T) {
	srv := upgradeServer(t)
	for name, cfg := range map[string]retry.Config{
		"plain":  {},
		"hedged": {Hedge: retry.HedgeConfig{Delay: time.Second}},
	} {
		t.Run(name, func(t *testing.T) {
			p := retry.New(cfg)
			defer p.Close()
			checkUpgrade(t, p.RoundTripper(nil), srv.URL)
		})
	}
}

// delays runs p.Do on a function that always fails (with err) inside a
// synctest bubble and returns the delays OnRetry reported and Do's error.
func delaysOf(t *testing.T, cfg retry.Config, fail func(ctx context.Context) error) (ds []time.Duration, slept []time.Duration, err error) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		cfg.OnRetry = func(_ context.Context, ev retry.Event) { ds = append(ds, ev.Delay) }
		if cfg.Budget == nil {
			cfg.Budget = retry.UnlimitedBudget()
		}
		p := retry.New(cfg)
		defer p.Close()
		last := time.Now()
		err = p.Do(context.Background(), func(ctx context.Context) error {
			slept = append(slept, time.Since(last))
			defer func() { last = time.Now() }()
			return fail(ctx)
		})
	})
	return ds, slept[1:], err
}

var errBoom = errors.New("boom")

func TestDefaultsApply(t *testing.T) {
	ds, slept, err := delaysOf(t, retry.Config{Jitter: retry.NoJitter}, func(context.Context) error { return errBoom })
	if fmt.Sprint(ds) != "[100ms 200ms]" || fmt.Sprint(slept) != "[100ms 200ms]" {
		t.Fatalf("default MaxAttempts/BaseDelay: delays %v slept %v", ds, slept)
	}
	var ex *retry.ExhaustedError
	if !errors.As(err, &ex) || ex.Attempts != retry.DefaultMaxAttempts || ex.Reason != retry.ReasonAttempts || !errors.Is(err, errBoom) {
		t.Fatalf("err %v", err)
	}
	// DefaultMaxDelay caps the schedule.
	ds, _, _ = delaysOf(t, retry.Config{Jitter: retry.NoJitter, BaseDelay: 4 * time.Second, MaxAttempts: 4}, func(context.Context) error { return errBoom })
	if fmt.Sprint(ds) != "[4s 8s 10s]" {
		t.Fatalf("DefaultMaxDelay: %v", ds)
	}
	// DefaultMaxPushback caps a requested delay.
	ds, slept, _ = delaysOf(t, retry.Config{MaxAttempts: 2}, func(context.Context) error { return retry.Pushback(errBoom, time.Hour) })
	if fmt.Sprint(ds) != fmt.Sprint([]time.Duration{retry.DefaultMaxPushback}) || fmt.Sprint(slept) != "[30s]" {
		t.Fatalf("DefaultMaxPushback: %v %v", ds, slept)
	}
}

func TestJitterBounds(t *testing.T) {
	for _, tc := range []struct {
		j      retry.Jitter
		lo, hi func(n int, prev time.Duration) time.Duration
	}{
		{retry.FullJitter, func(int, time.Duration) time.Duration { return 0 }, func(n int, _ time.Duration) time.Duration { return min(time.Second, 10*time.Millisecond<<(n-1)) }},
		{retry.EqualJitter, func(n int, _ time.Duration) time.Duration { return min(time.Second, 10*time.Millisecond<<(n-1)) / 2 }, func(n int, _ time.Duration) time.Duration { return min(time.Second, 10*time.Millisecond<<(n-1)) }},
		{retry.DecorrelatedJitter, func(int, time.Duration) time.Duration { return 10 * time.Millisecond }, func(_ int, prev time.Duration) time.Duration { return min(time.Second, 3*prev) }},
	} {
		for range 20 {
			ds, slept, _ := delaysOf(t, retry.Config{Jitter: tc.j, BaseDelay: 10 * time.Millisecond, MaxDelay: time.Second, MaxAttempts: 12}, func(context.Context) error { return errBoom })
			prev := 10 * time.Millisecond
			for i, d := range ds {
				n := i + 1
				lo, hi := tc.lo(n, prev), tc.hi(n, prev)
				if d < lo || d > hi || (d == hi && tc.j != retry.DecorrelatedJitter && hi < time.Second) {
					t.Fatalf("%v: retry %d delay %v outside [%v, %v)", tc.j, n, d, lo, hi)
				}
				if slept[i] != d {
					t.Fatalf("%v: retry %d slept %v, event said %v", tc.j, n, slept[i], d)
				}
				prev = d
			}
		}
	}
}

func TestMaxDurationGivesUpAtOnce(t *testing.T) {
	ds, _, err := delaysOf(t, retry.Config{Jitter: retry.NoJitter, BaseDelay: time.Second, MaxAttempts: 100, MaxDuration: 2500 * time.Millisecond}, func(context.Context) error { return errBoom })
	var ex *retry.ExhaustedError
	if fmt.Sprint(ds) != "[1s]" || !errors.As(err, &ex) || ex.Reason != retry.ReasonDeadline || ex.Attempts != 2 {
		t.Fatalf("delays %v err %v", ds, err)
	}
}

func TestValidateRejectsAbsurdValues(t *testing.T) {
	nan := math.NaN()
	for name, cfg := range map[string]retry.Config{
		"MaxAttempts<0":        {MaxAttempts: -1},
		"BaseDelay<0":          {BaseDelay: -1},
		"MaxDelay<0":           {MaxDelay: -1},
		"Jitter":               {Jitter: 9},
		"MaxDuration<0":        {MaxDuration: -1},
		"MaxBufferedBody>max":  {MaxBufferedBody: retry.MaxBufferedBodyLimit + 1},
		"Hedge.Delay<0":        {Hedge: retry.HedgeConfig{Delay: -1}},
		"Hedge.Percentile NaN": {Hedge: retry.HedgeConfig{Percentile: nan}},
		"Hedge.Percentile>1":   {Hedge: retry.HedgeConfig{Percentile: 1.5}},
		"Hedge.MaxInFlight>":   {Hedge: retry.HedgeConfig{Delay: 1, MaxInFlight: retry.MaxInFlightLimit + 1}},
		"Hedge.MaxInFlight<0":  {Hedge: retry.HedgeConfig{Delay: 1, MaxInFlight: -1}},
	} {
		err := cfg.Validate()
		if !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v", name, err)
			continue
		}
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("%s: New did not panic", name)
				}
			}()
			retry.New(cfg)
		}()
	}
	for name, cfg := range map[string]retry.BudgetConfig{
		"Ratio NaN": {Ratio: nan}, "Ratio<0": {Ratio: -1}, "Ratio inf": {Ratio: math.Inf(1)}, "Ratio>max": {Ratio: retry.MaxBudgetRatio + 1},
		"MinPerSecond NaN": {MinPerSecond: nan}, "MinPerSecond>max": {MinPerSecond: retry.MaxBudgetMinPerSecond * 2},
		"Window<0": {Window: -1},
	} {
		if err := cfg.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
	if err := (retry.Config{MaxAttempts: math.MaxInt, Hedge: retry.HedgeConfig{Delay: time.Millisecond}}).Validate(); err != nil {
		t.Errorf("MaxAttempts math.MaxInt is documented as valid: %v", err)
	}
}

// script is a server answering its requests with the given statuses in
// turn (200 once they run out), with Retry-After headers as given.
type script struct {
	mu       sync.Mutex
	n        int
	statuses []int
	after    []string
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	i := s.n
	s.n++
	s.mu.Unlock()
	code := 200
	if i < len(s.statuses) {
		code = s.statuses[i]
	}
	if i < len(s.after) && s.after[i] != "" {
		w.Header().Set("Retry-After", s.after[i])
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, "attempt %d", i+1)
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func TestHTTPRetryAfterBothForms(t *testing.T) {
	for name, after := range map[string]string{
		"seconds":   "7",
		"HTTP-date": time.Now().Add(20 * time.Second).UTC().Format(http.TimeFormat),
	} {
		t.Run(name, func(t *testing.T) {
			sc := &script{statuses: []int{503}, after: []string{after}}
			srv := httptest.NewServer(sc)
			defer srv.Close()
			var evs []retry.Event
			p := retry.New(retry.Config{MaxPushback: 20 * time.Millisecond, BaseDelay: time.Nanosecond, Jitter: retry.NoJitter,
				OnRetry: func(_ context.Context, ev retry.Event) { evs = append(evs, ev) }})
			defer p.Close()
			resp, err := (&http.Client{Transport: p.RoundTripper(nil)}).Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			var se *retry.StatusError
			if resp.StatusCode != 200 || len(evs) != 1 || evs[0].Delay != 20*time.Millisecond || !errors.As(evs[0].Err, &se) || se.StatusCode != 503 || evs[0].Attempt != 2 {
				t.Fatalf("status %d, events %+v", resp.StatusCode, evs)
			}
		})
	}
}

// A Retry-After that does not fit in the request's deadline: the call
// gives up at once, and the RoundTripper hands the 503 to the caller.
func TestHTTPRetryAfterPastDeadlineReturnsResponse(t *testing.T) {
	sc := &script{statuses: []int{503, 503}, after: []string{"5"}}
	srv := httptest.NewServer(sc)
	defer srv.Close()
	p := retry.New(retry.Config{})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := (&http.Client{Transport: p.RoundTripper(nil)}).Do(req)
	if err != nil {
		t.Fatalf("err %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || string(b) != "attempt 1" || sc.count() != 1 {
		t.Fatalf("%d %q after %d requests", resp.StatusCode, b, sc.count())
	}
}

func TestHTTPBudgetExhaustedReturnsResponse(t *testing.T) {
	sc := &script{statuses: []int{503, 503, 503}}
	srv := httptest.NewServer(sc)
	defer srv.Close()
	p := retry.New(retry.Config{Budget: retry.NewBudget(retry.BudgetConfig{MinPerSecond: -1, Ratio: 0.01})})
	defer p.Close()
	resp, err := (&http.Client{Transport: p.RoundTripper(nil)}).Get(srv.URL)
	if err != nil {
		t.Fatalf("err %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || sc.count() != 1 {
		t.Fatalf("%d after %d requests", resp.StatusCode, sc.count())
	}
}

func TestHTTPOpenBreakerBelowReturnsAtOnce(t *testing.T) {
	sc := &script{statuses: []int{500, 500, 500, 500, 500, 500, 500, 500}}
	srv := httptest.NewServer(sc)
	defer srv.Close()
	set := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{ConsecutiveFailures: 2}})
	defer set.Close()
	var evs int
	p := retry.New(retry.Config{BaseDelay: time.Millisecond, OnRetry: func(context.Context, retry.Event) { evs++ }})
	defer p.Close()
	c := &http.Client{Transport: bulwark.ChainTransport(nil, p.RoundTripper, set.RoundTripper)}
	resp, err := c.Get(srv.URL) // two 500s trip the breaker; the third attempt is rejected
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got %d, want the breaker's rejection", resp.StatusCode)
	}
	var ex *retry.ExhaustedError
	if !errors.Is(err, breaker.ErrOpen) || !errors.As(err, &ex) || ex.Reason != retry.ReasonRejected || sc.count() != 2 || evs != 2 {
		t.Fatalf("err %v after %d requests, %d retries", err, sc.count(), evs)
	}
	for _, wait := range []bool{false, true} {
		p := retry.New(retry.Config{WaitRejected: wait})
		_, err := (&http.Client{Transport: bulwark.ChainTransport(nil, p.RoundTripper, set.RoundTripper)}).Get(srv.URL)
		p.Close()
		// Had it slept out the open period, its probe would have reached the server.
		if !errors.Is(err, breaker.ErrOpen) || sc.count() != 2 {
			t.Fatalf("WaitRejected %v, no deadline: err %v after %d requests", wait, err, sc.count())
		}
	}
}

// bodyCounter sits below the policy over a real transport: it counts the
// response bodies handed up and closed, and records the cause each
// attempt's context ended with.
type bodyCounter struct {
	mu             sync.Mutex
	opened, closed int
	causes         []error
}

type countedBody struct {
	io.ReadCloser
	c    *bodyCounter
	once sync.Once
}

func (b *countedBody) Close() error {
	b.once.Do(func() { b.c.mu.Lock(); b.c.closed++; b.c.mu.Unlock() })
	return b.ReadCloser.Close()
}

func (c *bodyCounter) wrap(next http.RoundTripper) http.RoundTripper {
	return rtFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(r)
		c.mu.Lock()
		defer c.mu.Unlock()
		if r.Context().Err() != nil {
			c.causes = append(c.causes, context.Cause(r.Context()))
		}
		if resp != nil {
			c.opened++
			resp.Body = &countedBody{ReadCloser: resp.Body, c: c}
		}
		return resp, err
	})
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestHTTPHedgeLosersSupersededAndEveryBodyClosed(t *testing.T) {
	var n sync.Mutex
	first := true
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Lock()
		slow := first
		first = false
		n.Unlock()
		if slow {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			w.WriteHeader(503)
			return
		}
		fmt.Fprint(w, "fast")
	}))
	defer srv.Close()
	defer close(release)
	c := &bodyCounter{}
	p := retry.New(retry.Config{Hedge: retry.HedgeConfig{Delay: 5 * time.Millisecond}})
	defer p.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: bulwark.ChainTransport(tr, p.RoundTripper, c.wrap)}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if string(b) != "fast" || c.opened != c.closed || len(c.causes) != 1 || !errors.Is(c.causes[0], bulwark.ErrSuperseded) {
		t.Fatalf("got %q; %d bodies opened, %d closed; loser causes %v", b, c.opened, c.closed, c.causes)
	}
}

func TestHTTPDefaultMaxBufferedBody(t *testing.T) {
	for _, tc := range []struct {
		size     int
		requests int
	}{{retry.DefaultMaxBufferedBody, 2}, {retry.DefaultMaxBufferedBody + 1, 1}} {
		sc := &script{statuses: []int{503}}
		srv := httptest.NewServer(sc)
		p := retry.New(retry.Config{BaseDelay: time.Nanosecond})
		body := io.MultiReader(strings.NewReader(strings.Repeat("x", tc.size))) // no GetBody, unknown length
		req, _ := http.NewRequest(http.MethodPut, srv.URL, body)
		resp, err := (&http.Client{Transport: p.RoundTripper(nil)}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		p.Close()
		srv.Close()
		if sc.count() != tc.requests {
			t.Errorf("body of %d bytes without GetBody: %d requests, want %d", tc.size, sc.count(), tc.requests)
		}
	}
}

func TestWaitRejectedWithinDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.Config{ConsecutiveFailures: 1, OpenDuration: 2 * time.Second, OpenJitter: -1})
		defer b.Close()
		b.Do(context.Background(), func(context.Context) error { return errBoom })
		p := retry.New(retry.Config{WaitRejected: true, Budget: retry.UnlimitedBudget()})
		defer p.Close()
		through := func(ctx context.Context) error {
			return b.Do(ctx, func(context.Context) error { return nil })
		}
		// No bound: at once.
		start := time.Now()
		err := p.Do(context.Background(), through)
		var ex *retry.ExhaustedError
		if !errors.Is(err, breaker.ErrOpen) || !errors.As(err, &ex) || ex.Reason != retry.ReasonRejected || time.Since(start) != 0 {
			t.Fatalf("no deadline: %v after %v", err, time.Since(start))
		}
		// A deadline too short for the open period: at once.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = p.Do(ctx, through)
		cancel()
		if !errors.Is(err, breaker.ErrOpen) || time.Since(start) != 0 {
			t.Fatalf("short deadline: %v after %v", err, time.Since(start))
		}
		// A deadline that fits: waits out the open period, then the probe passes.
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Do(ctx, through); err != nil || time.Since(start) != 2*time.Second {
			t.Fatalf("deadline that fits: %v after %v", err, time.Since(start))
		}
	})
}

func TestHTTPRetryAfterOnlyOn429And503(t *testing.T) {
	for _, tc := range []struct {
		code  int
		after string
		want  time.Duration
	}{
		{502, "7", time.Nanosecond},
		{429, "7", 20 * time.Millisecond},
		{503, "soon", time.Nanosecond},
		{503, time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0},
	} {
		sc := &script{statuses: []int{tc.code}, after: []string{tc.after}}
		srv := httptest.NewServer(sc)
		var evs []retry.Event
		p := retry.New(retry.Config{MaxPushback: 20 * time.Millisecond, BaseDelay: time.Nanosecond, Jitter: retry.NoJitter,
			OnRetry: func(_ context.Context, ev retry.Event) { evs = append(evs, ev) }})
		resp, err := (&http.Client{Transport: p.RoundTripper(nil)}).Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		p.Close()
		srv.Close()
		if err != nil || len(evs) != 1 || evs[0].Delay != tc.want {
			t.Errorf("%d Retry-After %q: err %v, events %+v, want delay %v", tc.code, tc.after, err, evs, tc.want)
		}
	}
}

func TestBudgetBoundsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var retries int
		budget := retry.NewBudget(retry.BudgetConfig{})
		p := retry.New(retry.Config{MaxAttempts: 2, Budget: budget, OnRetry: func(context.Context, retry.Event) { retries++ }})
		defer p.Close()
		budgetStops := 0
		for range 200 {
			err := p.Do(context.Background(), func(context.Context) error { return errBoom })
			if errors.Is(err, retry.ErrBudgetExhausted) {
				budgetStops++
			}
		}
		// retries made before + 1 ≤ 0.1·200 + 10·10 = 120
		if retries > 120 || retries < 100 || budgetStops != 200-retries {
			t.Fatalf("%d retries, %d calls stopped by the budget", retries, budgetStops)
		}
		// After a whole window without calls, the floor is back.
		time.Sleep(retry.DefaultBudgetWindow + time.Second)
		retries = 0
		for range 50 {
			p.Do(context.Background(), func(context.Context) error { return errBoom })
		}
		if retries != 50 {
			t.Fatalf("after a quiet window: %d retries of 50", retries)
		}
	})
}

func TestHTTPHedgedPostAutoKeySameOnEveryAttempt(t *testing.T) {
	var mu sync.Mutex
	var keys, bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		bodies = append(bodies, string(b))
		first := len(keys) == 1
		mu.Unlock()
		if first {
			<-r.Context().Done() // the first attempt hangs until it loses
			return
		}
	}))
	defer srv.Close()
	p := retry.New(retry.Config{IdempotencyKey: true, Hedge: retry.HedgeConfig{Delay: time.Millisecond}})
	defer p.Close()
	body := io.MultiReader(strings.NewReader("charge")) // no GetBody: buffered
	req, _ := http.NewRequest(http.MethodPost, srv.URL, body)
	resp, err := (&http.Client{Transport: p.RoundTripper(nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	srv.Close() // waits for the loser's handler
	if req.Header.Get("Idempotency-Key") != "" {
		t.Fatal("the caller's request got the key")
	}
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] || bodies[1] != "charge" {
		t.Fatalf("keys %q bodies %q", keys, bodies)
	}
}

func TestHedgeEventsAndPercentile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var evs []retry.Event
		p := retry.New(retry.Config{Budget: retry.UnlimitedBudget(), Hedge: retry.HedgeConfig{Percentile: 0.5},
			OnRetry: func(_ context.Context, ev retry.Event) { evs = append(evs, ev) }})
		defer p.Close()
		sleepy := func(d time.Duration) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				select {
				case <-time.After(d):
					return nil
				case <-ctx.Done():
					return context.Cause(ctx)
				}
			}
		}
		for range 19 {
			if err := p.Do(context.Background(), sleepy(10*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
		}
		if len(evs) != 0 {
			t.Fatalf("hedged before 20 observations: %+v", evs)
		}
		p.Do(context.Background(), sleepy(10*time.Millisecond))
		start := time.Now()
		var mu sync.Mutex
		var losers []error
		err := p.Do(context.Background(), func(ctx context.Context) error {
			if retry.Attempt(ctx) == 1 {
				err := sleepy(time.Hour)(ctx)
				mu.Lock()
				losers = append(losers, err)
				mu.Unlock()
				return err
			}
			return nil
		})
		if err != nil || len(evs) != 1 || !evs[0].Hedge || evs[0].Err != nil || evs[0].Attempt != 2 || evs[0].Delay != 10*time.Millisecond || time.Since(start) != 10*time.Millisecond {
			t.Fatalf("err %v after %v, events %+v", err, time.Since(start), evs)
		}
		if len(losers) != 1 || !errors.Is(losers[0], bulwark.ErrSuperseded) {
			t.Fatalf("loser ended with %v", losers)
		}
	})
}

func TestHTTPCancelWithCauseBetweenAttempts(t *testing.T) {
	sc := &script{statuses: []int{503, 503, 503}}
	srv := httptest.NewServer(sc)
	defer srv.Close()
	cause := errors.New("user left")
	ctx, cancel := context.WithCancelCause(context.Background())
	p := retry.New(retry.Config{BaseDelay: time.Hour, OnRetry: func(context.Context, retry.Event) { cancel(cause) }})
	defer p.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := (&http.Client{Transport: p.RoundTripper(nil)}).Do(req)
	if err == nil {
		resp.Body.Close()
	}
	var se *retry.StatusError
	if !errors.Is(err, cause) || !errors.As(err, &se) || se.StatusCode != 503 || errors.Is(err, retry.ErrExhausted) || sc.count() != 1 {
		t.Fatalf("err %v after %d requests", err, sc.count())
	}
}

func TestNewBackOffResetStopAndPermanent(t *testing.T) {
	// A literal that needs Reset, as backoff.Retry accepts it.
	ds, _, err := delaysOf(t, retry.Config{MaxAttempts: 4, NewBackOff: func() backoff.BackOff {
		return &backoff.ExponentialBackOff{InitialInterval: time.Second, Multiplier: 2, MaxInterval: time.Minute, Clock: backoff.SystemClock}
	}}, func(context.Context) error { return errBoom })
	if len(ds) != 3 || ds[0] < 500*time.Millisecond || ds[0] > 1500*time.Millisecond {
		t.Fatalf("ExponentialBackOff literal: delays %v, err %v", ds, err)
	}
	// MaxDelay caps NewBackOff's delays when set.
	ds, _, _ = delaysOf(t, retry.Config{MaxAttempts: 3, MaxDelay: time.Second, NewBackOff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) }},
		func(context.Context) error { return errBoom })
	if fmt.Sprint(ds) != "[1s 1s]" {
		t.Fatalf("MaxDelay over NewBackOff: %v", ds)
	}
	// backoff.Stop ends with ReasonAttempts.
	_, _, err = delaysOf(t, retry.Config{MaxAttempts: 5, NewBackOff: func() backoff.BackOff { return &backoff.StopBackOff{} }}, func(context.Context) error { return errBoom })
	var ex *retry.ExhaustedError
	if !errors.As(err, &ex) || ex.Reason != retry.ReasonAttempts || ex.Attempts != 1 {
		t.Fatalf("StopBackOff: %v", err)
	}
	// Permanent and backoff.Permanent: returned unmarked, at once.
	for _, mark := range []func(error) error{retry.Permanent, func(e error) error { return backoff.Permanent(e) }} {
		ds, _, err := delaysOf(t, retry.Config{}, func(context.Context) error { return mark(errBoom) })
		if len(ds) != 0 || err != errBoom && !errors.Is(err, errBoom) {
			t.Fatalf("permanent: %v %v", ds, err)
		}
		if err != errBoom {
			t.Errorf("permanent error returned as %T %v, documented: the error itself, mark removed", err, err)
		}
	}
}

func TestCallReturnsLastValueOnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := retry.New(retry.Config{Budget: retry.UnlimitedBudget()})
		defer p.Close()
		v, err := retry.Call(context.Background(), p, func(ctx context.Context) (int, error) { return retry.Attempt(ctx) * 10, errBoom })
		if v != 30 || !errors.Is(err, retry.ErrExhausted) {
			t.Fatalf("%d %v", v, err)
		}
	})
}

func TestHedgedCallMemoryDoesNotGrowWithMaxAttempts(t *testing.T) {
	bytesPerCall := func(maxAttempts int) uint64 {
		p := retry.New(retry.Config{MaxAttempts: maxAttempts, Budget: retry.UnlimitedBudget(), Hedge: retry.HedgeConfig{Delay: time.Hour}})
		defer p.Close()
		fn := func(context.Context) error { return nil }
		p.Do(context.Background(), fn)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 100 {
			p.Do(context.Background(), fn)
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / 100
	}
	small, huge := bytesPerCall(3), bytesPerCall(math.MaxInt)
	if huge > 2*small+1024 {
		t.Fatalf("a hedged call allocates %d bytes with MaxAttempts math.MaxInt, %d with 3", huge, small)
	}
}

func TestNegativeMaxPushbackKeepsSchedule(t *testing.T) {
	ds, _, _ := delaysOf(t, retry.Config{MaxAttempts: 2, MaxPushback: -1, BaseDelay: 10 * time.Millisecond, Jitter: retry.NoJitter},
		func(context.Context) error { return retry.Pushback(errBoom, time.Hour) })
	if fmt.Sprint(ds) != "[10ms]" {
		t.Fatalf("MaxPushback < 0: delays %v, want the schedule", ds)
	}
	ds, _, err := delaysOf(t, retry.Config{MaxPushback: -1}, func(context.Context) error { return retry.Pushback(errBoom, -1) })
	var ex *retry.ExhaustedError
	if len(ds) != 0 || !errors.As(err, &ex) || ex.Reason != retry.ReasonPushback {
		t.Fatalf("a request not to retry: %v %v", ds, err)
	}
}
