package breaker_test

// Tests of package breaker written from outside, against its docs.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/conformance"
)

var errFail = errors.New("fail")

func run(b *breaker.Breaker, err error) error {
	return b.Do(context.Background(), func(context.Context) error { return err })
}

func TestOutsideDefaultsRateMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var evs []breaker.StateChangeEvent
		b := breaker.New(breaker.Config{OpenJitter: -1, OnStateChange: func(_ context.Context, ev breaker.StateChangeEvent) { evs = append(evs, ev) }})
		defer b.Close()
		// DefaultMinimumCalls: 19 failures do not trip; the 20th does (rate 1 ≥ 0.5).
		for range breaker.DefaultMinimumCalls - 1 {
			run(b, errFail)
		}
		if b.State() != breaker.Closed {
			t.Fatalf("tripped before MinimumCalls: %v", b.State())
		}
		run(b, errFail)
		if b.State() != breaker.Open {
			t.Fatalf("state %v after MinimumCalls failures", b.State())
		}
		err := run(b, nil)
		var oe *breaker.OpenError
		if !errors.Is(err, breaker.ErrOpen) || !errors.As(err, &oe) || oe.RetryAfter() != breaker.DefaultOpenDuration {
			t.Fatalf("err %v", err)
		}
		time.Sleep(breaker.DefaultOpenDuration - time.Nanosecond)
		if b.State() != breaker.Open {
			t.Fatal("half-open before OpenDuration")
		}
		time.Sleep(time.Nanosecond)
		if b.State() != breaker.HalfOpen {
			t.Fatalf("state %v at OpenDuration", b.State())
		}
		// DefaultHalfOpenProbes probes admitted, the next rejected.
		var tickets []breaker.Ticket
		for range breaker.DefaultHalfOpenProbes {
			tk, err := b.Allow()
			if err != nil {
				t.Fatal(err)
			}
			tickets = append(tickets, tk)
		}
		if _, err := b.Allow(); !errors.Is(err, breaker.ErrHalfOpenFull) {
			t.Fatalf("probe %d: %v", breaker.DefaultHalfOpenProbes+1, err)
		}
		// 5 failures of 10 reach the rate: reopen, growing by 2.
		for i, tk := range tickets {
			if i < 5 {
				b.Done(tk, errFail)
			} else {
				b.Done(tk, nil)
			}
		}
		if b.State() != breaker.Open {
			t.Fatalf("state %v after 5/10 failing probes", b.State())
		}
		_, err = b.Allow()
		if !errors.As(err, &oe) || oe.RetryAfter() != 2*breaker.DefaultOpenDuration {
			t.Fatalf("second trip: %v", err)
		}
		// Growth up to DefaultMaxOpenDuration: 10, 20, 40, 60, 60.
		for _, want := range []time.Duration{20 * time.Second, 40 * time.Second, 60 * time.Second, 60 * time.Second} {
			time.Sleep(oe.RetryAfter())
			for range 5 { // 5 failing probes of 10: the verdict can only be failing
				tk, err := b.Allow()
				if err != nil {
					t.Fatal(err)
				}
				b.Done(tk, errFail)
			}
			_, err = b.Allow()
			if !errors.As(err, &oe) || oe.RetryAfter() != want {
				t.Fatalf("open duration %v, want %v", oe.RetryAfter(), want)
			}
		}
		// DefaultHalfOpenMaxWait: probes that never report free their slots.
		time.Sleep(oe.RetryAfter())
		for range breaker.DefaultHalfOpenProbes {
			if _, err := b.Allow(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(breaker.DefaultHalfOpenMaxWait - time.Nanosecond)
		if _, err := b.Allow(); !errors.Is(err, breaker.ErrHalfOpenFull) {
			t.Fatalf("before HalfOpenMaxWait: %v", err)
		}
		time.Sleep(time.Nanosecond)
		if _, err := b.Allow(); !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("at HalfOpenMaxWait: %v", err)
		}
		if len(evs) == 0 || evs[0].From != breaker.Closed || evs[0].To != breaker.Open || evs[0].Counts.Failures != int64(breaker.DefaultMinimumCalls) {
			t.Fatalf("first event %+v", evs[0])
		}
	})
}

func TestOutsideCountWindowSize(t *testing.T) {
	b := breaker.New(breaker.Config{WindowSize: 10, MinimumCalls: 10, FailureRate: 0.5})
	defer b.Close()
	for range 100 {
		run(b, nil)
	}
	for range 4 {
		run(b, errFail)
	}
	for range 5 {
		run(b, nil)
	}
	run(b, errFail) // 5 of the last 10
	if b.State() != breaker.Open {
		t.Fatalf("state %v with 5 failures in the last 10 calls", b.State())
	}
	b2 := breaker.New(breaker.Config{})
	defer b2.Close()
	for range 51 {
		run(b2, nil)
	}
	for range 49 {
		run(b2, errFail)
	}
	if b2.State() != breaker.Closed {
		t.Fatal("49/100 tripped")
	}
	run(b2, errFail) // 50 of the last DefaultWindowSize (100)
	if b2.State() != breaker.Open {
		t.Fatalf("state %v with 50 failures in the last 100", b2.State())
	}
}

func TestOutsideTimeWindowAgesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.Config{WindowDuration: 10 * time.Second, MinimumCalls: 6, FailureRate: 0.6})
		defer b.Close()
		for range 10 {
			run(b, nil)
		}
		time.Sleep(5 * time.Second)
		for range 5 {
			run(b, errFail)
		}
		run(b, nil)
		if b.State() != breaker.Closed {
			t.Fatal("tripped with 5 failures in 16 calls")
		}
		time.Sleep(6 * time.Second) // the 10 successes age out: 5 failures in 6 calls
		if err := run(b, nil); !errors.Is(err, breaker.ErrOpen) && b.State() != breaker.Open {
			t.Fatalf("state %v once old successes aged out, err %v", b.State(), err)
		}
	})
}

func TestOutsideSlowCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.Config{SlowCallDuration: time.Second, MinimumCalls: 4, WindowSize: 4})
		defer b.Close()
		for i := range 4 {
			b.Do(context.Background(), func(context.Context) error { time.Sleep(time.Second); return nil })
			if i < 3 && b.State() != breaker.Closed {
				t.Fatalf("tripped after %d slow calls", i+1)
			}
		}
		if b.State() != breaker.Open || b.Counts().State != breaker.Open {
			t.Fatalf("state %v after 4 slow calls of 4 (DefaultSlowCallRate 1)", b.State())
		}
	})
}

func TestOutsideConsecutiveAndOverrides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.Config{ConsecutiveFailures: 3})
		defer b.Close()
		run(b, errFail)
		run(b, errFail)
		run(b, nil)
		run(b, errFail)
		run(b, errFail)
		if b.State() != breaker.Closed || b.Counts().ConsecutiveFailures != 2 {
			t.Fatalf("%v %+v", b.State(), b.Counts())
		}
		run(b, errFail)
		if b.State() != breaker.Open {
			t.Fatal("not open after 3 in a row")
		}
		time.Sleep(breaker.DefaultOpenDuration)
		tk, err := b.Allow() // DefaultHalfOpenProbesConsecutive = 1
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Allow(); !errors.Is(err, breaker.ErrHalfOpenFull) {
			t.Fatalf("second probe: %v", err)
		}
		b.Done(tk, nil)
		if b.State() != breaker.Closed {
			t.Fatalf("state %v after the probe succeeded", b.State())
		}
		b.ForceOpen()
		err = run(b, nil)
		var oe *breaker.OpenError
		if !errors.Is(err, breaker.ErrOpen) || !errors.As(err, &oe) || !oe.Until.IsZero() || oe.RetryAfter() != 0 || b.State() != breaker.ForcedOpen {
			t.Fatalf("forced open: %v", err)
		}
		time.Sleep(breaker.MaxDuration)
		if b.State() != breaker.ForcedOpen {
			t.Fatal("forced open ended by itself")
		}
		b.Disable()
		for range 10 {
			if err := run(b, errFail); err != errFail {
				t.Fatal(err)
			}
		}
		if c := b.Counts(); b.State() != breaker.Disabled || c.Failures != 0 {
			t.Fatalf("disabled: %v %+v", b.State(), c)
		}
		b.Reset()
		if b.State() != breaker.Closed {
			t.Fatal("Reset")
		}
	})
}

func TestOutsideValidate(t *testing.T) {
	nan := math.NaN()
	for name, cfg := range map[string]breaker.Config{
		"FailureRate 50":         {FailureRate: 50},
		"FailureRate NaN":        {FailureRate: nan},
		"FailureRate<0":          {FailureRate: -0.5},
		"SlowCallRate 2":         {SlowCallRate: 2},
		"WindowSize MaxInt":      {WindowSize: math.MaxInt},
		"WindowSize>max":         {WindowSize: breaker.MaxWindowSize + 1},
		"WindowBuckets MaxInt":   {WindowDuration: time.Second, WindowBuckets: math.MaxInt},
		"ConsecutiveFailures<0":  {ConsecutiveFailures: -1},
		"MinimumCalls<0":         {MinimumCalls: -1},
		"OpenDuration>max":       {OpenDuration: breaker.MaxDuration + 1},
		"OpenDurationGrowth 0.5": {OpenDurationGrowth: 0.5},
		"OpenDurationGrowth NaN": {OpenDurationGrowth: nan},
		"OpenDurationGrowth>max": {OpenDurationGrowth: breaker.MaxOpenDurationGrowth + 1},
		"MaxOpenDuration<Open":   {OpenDuration: 10 * time.Second, MaxOpenDuration: 5 * time.Second},
		"OpenJitter 2":           {OpenJitter: 2},
		"OpenJitter NaN":         {OpenJitter: nan},
		"HalfOpenProbes<0":       {HalfOpenProbes: -1},
		"HalfOpenMaxWait<0":      {HalfOpenMaxWait: -1},
		"HalfOpenMaxWait>max":    {HalfOpenMaxWait: breaker.MaxDuration + 1},
		"WindowDuration<0":       {WindowDuration: -1},
		"SlowCallDuration<0":     {SlowCallDuration: -1},
		"WindowDuration>max":     {WindowDuration: breaker.MaxDuration + 1},
	} {
		if err := cfg.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
	for name, cfg := range map[string]breaker.SetConfig{
		"MaxKeys<0": {MaxKeys: -1}, "IdleTimeout<0": {IdleTimeout: -1}, "Config": {Config: breaker.Config{FailureRate: 2}},
	} {
		if err := cfg.Validate(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
}

func TestOutsideGobreakerConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := breaker.Config{ConsecutiveFailures: 6, OpenDuration: 60 * time.Second, OpenDurationGrowth: 1, OpenJitter: -1, HalfOpenProbes: 1, HalfOpenMaxWait: breaker.MaxDuration, Classify: func(_ context.Context, err error) bulwark.Outcome {
			if err == nil {
				return bulwark.Success
			}
			return bulwark.Failure
		}}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		b := breaker.New(cfg)
		defer b.Close()
		for round := range 3 {
			for range 6 {
				run(b, errFail)
			}
			var oe *breaker.OpenError
			if _, err := b.Allow(); !errors.As(err, &oe) || oe.RetryAfter() != time.Minute {
				t.Fatalf("round %d: %v", round, err)
			}
			time.Sleep(time.Minute)
			tk, err := b.Allow()
			if err != nil {
				t.Fatal(err)
			}
			b.Done(tk, errFail) // reopen, still for a fixed minute
			if _, err := b.Allow(); !errors.As(err, &oe) || oe.RetryAfter() != time.Minute {
				t.Fatalf("round %d reopen: %v", round, err)
			}
			time.Sleep(time.Minute)
			tk, _ = b.Allow()
			b.Done(tk, nil)
			if b.State() != breaker.Closed {
				t.Fatalf("round %d: %v", round, b.State())
			}
		}
		// a cancelled ctx is a failure, as in gobreaker
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		b.Do(ctx, func(ctx context.Context) error { return ctx.Err() })
		if b.Counts().Failures != 1 {
			t.Fatalf("%+v", b.Counts())
		}
	})
}

func TestOutsideCancelWithCauseNeutral(t *testing.T) {
	b := breaker.New(breaker.Config{ConsecutiveFailures: 1})
	defer b.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("user left"))
	b.Do(ctx, func(ctx context.Context) error { return context.Cause(ctx) })
	if c := b.Counts(); b.State() != breaker.Closed || c.Neutral != 1 {
		t.Fatalf("%v %+v", b.State(), c)
	}
	sctx, scancel := context.WithCancelCause(context.Background())
	scancel(bulwark.ErrSuperseded)
	b.Do(sctx, func(ctx context.Context) error { return context.Cause(ctx) })
	if b.State() != breaker.Open {
		t.Fatalf("superseded attempt not a failure: %v", b.State())
	}
	_ = fmt.Sprint
}

// A 101 Switching Protocols response's body is an io.ReadWriteCloser (the
// upgraded connection): the RoundTrippers must hand it up writable.
func TestOutsideRoundTripperKeepsUpgradedBodyWritable(t *testing.T) {
	srv := httptest.NewServer(conformance.UpgradeEcho(t))
	defer srv.Close()
	b := breaker.New(breaker.Config{})
	defer b.Close()
	set := breaker.NewSet(breaker.SetConfig{})
	defer set.Close()
	for name, rt := range map[string]http.RoundTripper{"Breaker": b.RoundTripper(nil), "Set": set.RoundTripper(nil)} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "echo")
		resp, err := (&http.Client{Transport: rt}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rw, ok := resp.Body.(io.ReadWriteCloser)
		if !ok {
			resp.Body.Close()
			t.Fatalf("%s: status %d, body %T is not an io.ReadWriteCloser", name, resp.StatusCode, resp.Body)
		}
		io.WriteString(rw, "hello\n")
		got, _ := bufio.NewReader(rw).ReadString('\n')
		rw.Close()
		if got != "hello\n" {
			t.Fatalf("%s: echo %q", name, got)
		}
	}
}

func TestOutsideDerivedDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// MinimumCalls (default 20) is capped at WindowSize.
		b := breaker.New(breaker.Config{WindowSize: 10})
		defer b.Close()
		for range 10 {
			run(b, errFail)
		}
		if b.State() != breaker.Open {
			t.Fatalf("WindowSize 10, 10 failures: %v (MinimumCalls not capped at WindowSize)", b.State())
		}
		// MaxOpenDuration defaults to OpenDuration when that is longer.
		b2 := breaker.New(breaker.Config{ConsecutiveFailures: 1, OpenDuration: 90 * time.Second, OpenJitter: -1})
		defer b2.Close()
		for _, want := range []time.Duration{90 * time.Second, 90 * time.Second} {
			run(b2, errFail)
			var oe *breaker.OpenError
			if _, err := b2.Allow(); !errors.As(err, &oe) || oe.RetryAfter() != want {
				t.Fatalf("open for %v, want %v", oe.RetryAfter(), want)
			}
			time.Sleep(want)
		}
		// DefaultOpenJitter: the first trip lasts (0.9·5s, 5s].
		for range 20 {
			b3 := breaker.New(breaker.Config{ConsecutiveFailures: 1})
			run(b3, errFail)
			var oe *breaker.OpenError
			b3.Allow()
			_, err := b3.Allow()
			errors.As(err, &oe)
			if d := oe.RetryAfter(); d < 4500*time.Millisecond || d > breaker.DefaultOpenDuration {
				t.Fatalf("jittered open duration %v", d)
			}
			b3.Close()
		}
		// HalfOpen rejection: RetryAfter at most a second, Until the max wait.
		b4 := breaker.New(breaker.Config{ConsecutiveFailures: 1, OpenJitter: -1})
		defer b4.Close()
		run(b4, errFail)
		time.Sleep(breaker.DefaultOpenDuration)
		b4.Allow()
		_, err := b4.Allow()
		var oe *breaker.OpenError
		if !errors.As(err, &oe) || oe.State != breaker.HalfOpen || oe.RetryAfter() != time.Second || !oe.Until.Equal(time.Now().Add(breaker.DefaultHalfOpenMaxWait)) {
			t.Fatalf("half-open rejection %v: %+v, RetryAfter %v", err, oe, oe.RetryAfter())
		}
	})
}

func TestOutsideRejectedRequestBodyClosed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	b := breaker.New(breaker.Config{})
	defer b.Close()
	b.ForceOpen()
	body := &closeRecorder{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest(http.MethodPost, srv.URL, body)
	_, err := (&http.Client{Transport: b.RoundTripper(nil)}).Do(req)
	if !errors.Is(err, breaker.ErrOpen) || !body.closed {
		t.Fatalf("err %v, body closed %v", err, body.closed)
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestOutsideNilArgumentsPanicAtOnce(t *testing.T) {
	b := breaker.New(breaker.Config{})
	defer b.Close()
	set := breaker.NewSet(breaker.SetConfig{})
	defer set.Close()
	var nilCtx context.Context
	ok := func(context.Context) error { return nil }
	for name, f := range map[string]func(){
		"Do ctx":     func() { b.Do(nilCtx, ok) },
		"Do fn":      func() { b.Do(context.Background(), nil) },
		"Call fn":    func() { breaker.Call[int](context.Background(), b, nil) },
		"Call ctx":   func() { breaker.Call(nilCtx, b, func(context.Context) (int, error) { return 0, nil }) },
		"Set.Do fn":  func() { set.Do(context.Background(), "k", nil) },
		"Set.Do ctx": func() { set.Do(nilCtx, "k", ok) },
	} {
		func() {
			defer func() {
				r := recover()
				msg := fmt.Sprint(r)
				if r == nil || !strings.HasPrefix(msg, "breaker: ") || !(strings.Contains(msg, "nil ctx") || strings.Contains(msg, "nil fn")) {
					t.Errorf("%s: panic %q", name, msg)
				}
			}()
			f()
		}()
	}
	if set.Len() != 0 || b.Counts().Successes+b.Counts().Failures+b.Counts().Neutral != 0 {
		t.Fatalf("a nil argument had side effects: set len %d, counts %+v", set.Len(), b.Counts())
	}
}

func TestOutsideStateAndEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var evs []breaker.StateChangeEvent
		b := breaker.New(breaker.Config{Name: "n", ConsecutiveFailures: 1, OpenJitter: -1, HalfOpenMaxWait: 3 * time.Second,
			OnStateChange: func(ctx context.Context, ev breaker.StateChangeEvent) {
				if ctx == nil {
					t.Error("nil ctx")
				}
				evs = append(evs, ev)
			}})
		defer b.Close()
		run(b, errFail)
		if len(evs) != 1 || evs[0].To != breaker.Open || !evs[0].Until.Equal(time.Now().Add(breaker.DefaultOpenDuration)) || evs[0].Counts.State != breaker.Closed || evs[0].Counts.Failures != 1 || evs[0].Name != "n" {
			t.Fatalf("trip event %+v", evs)
		}
		time.Sleep(breaker.DefaultOpenDuration)
		if _, err := b.Allow(); err != nil { // the probe hangs
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		if s := b.State(); s != breaker.Open {
			t.Fatalf("State past HalfOpenMaxWait with every slot taken = %v, documented Open", s)
		}
		last := evs[len(evs)-1]
		if last.From != breaker.HalfOpen || last.To != breaker.Open || !last.Until.Equal(time.Now().Add(2*breaker.DefaultOpenDuration)) {
			t.Fatalf("reopen event %+v (a hung probe reopens with a grown duration)", last)
		}
	})
}

func TestOutsideSetOverflowAndIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := breaker.NewSet(breaker.SetConfig{MaxKeys: 2, Config: breaker.Config{ConsecutiveFailures: 1}})
		defer set.Close()
		set.Do(context.Background(), "a", func(context.Context) error { return errFail })
		set.Do(context.Background(), "b", func(context.Context) error { return errFail })
		c := set.Get("c")
		if set.Len() != 2 || c == set.Get("a") || c == set.Get("b") || set.Get("d") != c {
			t.Fatalf("len %d: a full set of open breakers must share an overflow breaker", set.Len())
		}
		if set.Get("a").State() != breaker.Open {
			t.Fatal("an open member was evicted")
		}
		set2 := breaker.NewSet(breaker.SetConfig{IdleTimeout: time.Minute})
		defer set2.Close()
		a := set2.Get("a")
		time.Sleep(time.Minute)
		set2.Get("x") // a sweep: a has not been used since the previous one (creation)
		time.Sleep(time.Minute)
		set2.Get("y")
		if set2.Get("a") == a {
			t.Fatal("idle member not evicted after two IdleTimeouts")
		}
	})
}

func TestOutsideHandlerRejections(t *testing.T) {
	b := breaker.New(breaker.Config{ConsecutiveFailures: 1, OpenDuration: 90 * time.Second, OpenJitter: -1})
	defer b.Close()
	srv := httptest.NewServer(b.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	})))
	defer srv.Close()
	get := func() (*http.Response, string) {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body)
	}
	if resp, _ := get(); resp.StatusCode != 500 {
		t.Fatalf("first request %d", resp.StatusCode)
	}
	resp, body := get()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "90" || !strings.Contains(body, breaker.ErrOpen.Error()) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("open: %d Retry-After %q body %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	b.ForceOpen()
	if resp, _ := get(); resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "" {
		t.Fatalf("forced open: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestOutsideOutcomeRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New(breaker.Config{ConsecutiveFailures: 100})
		defer b.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		b.Do(ctx, func(context.Context) error { return errFail }) // own ctx cancelled: neutral whatever the error
		dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
		defer dcancel()
		b.Do(dctx, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }) // deadline: failure
		tk, _ := b.Allow()
		b.Done(tk, fmt.Errorf("wrapped: %w", context.Canceled)) // Done: Canceled is neutral
		tk, _ = b.Allow()
		b.Done(tk, context.DeadlineExceeded)
		if c := b.Counts(); c.Neutral != 2 || c.Failures != 2 || c.Successes != 0 {
			t.Fatalf("%+v", c)
		}
	})
}
