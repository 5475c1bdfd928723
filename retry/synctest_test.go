package retry_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/pipehttp"
	"github.com/bulwark-go/bulwark/retry"
)

// These tests run inside testing/synctest bubbles through the public API
// only: they prove that a user who tests their own code with synctest gets
// retry's delays, deadlines, pushback and budget on the bubble's fake time
// (there is no Clock in the Config any more).

var errDown = errors.New("dependency down")

// attemptTimes runs p.Do with a function that always fails and returns
// the fake time of each attempt, relative to the call's start.
func attemptTimes(ctx context.Context, p *retry.Policy) ([]time.Duration, error) {
	start := time.Now()
	var at []time.Duration
	err := p.Do(ctx, func(context.Context) error {
		at = append(at, time.Since(start))
		return errDown
	})
	return at, err
}

func TestSynctestExponentialDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := retry.New(retry.Config{MaxAttempts: 6, BaseDelay: time.Second, MaxDelay: 10 * time.Second,
			Jitter: retry.NoJitter, Budget: retry.UnlimitedBudget()})
		defer p.Close()
		at, err := attemptTimes(context.Background(), p)
		want := []time.Duration{0, 1 * time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second, 25 * time.Second}
		if !errors.Is(err, retry.ErrExhausted) || len(at) != len(want) {
			t.Fatalf("attempts at %v, err %v", at, err)
		}
		for i := range want {
			if at[i] != want[i] {
				t.Fatalf("attempts at %v, want %v (1s, 2s, 4s, 8s, then capped at 10s)", at, want)
			}
		}
	})
}

func TestSynctestJitterBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const base = time.Second
		for _, j := range []retry.Jitter{retry.FullJitter, retry.EqualJitter, retry.DecorrelatedJitter} {
			p := retry.New(retry.Config{MaxAttempts: 5, BaseDelay: base, MaxDelay: 6 * time.Second,
				Jitter: j, Budget: retry.UnlimitedBudget()})
			for range 50 {
				at, _ := attemptTimes(context.Background(), p)
				prev := time.Duration(0)
				for n := 1; n < len(at); n++ {
					d := at[n] - at[n-1]
					cap := min(base<<(n-1), 6*time.Second)
					var lo, hi time.Duration
					switch j {
					case retry.FullJitter:
						lo, hi = 0, cap
					case retry.EqualJitter:
						lo, hi = cap/2, cap
					case retry.DecorrelatedJitter:
						lo, hi = base, min(3*max(prev, base), 6*time.Second)
					}
					if d < lo || d > hi {
						t.Fatalf("%v: retry %d waited %v, want within [%v, %v]", j, n, d, lo, hi)
					}
					prev = d
				}
			}
			p.Close()
		}
	})
}

func TestSynctestMaxDurationGivesUpEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Attempts at 0 and 4s; the next delay (8s) would end at 12s, past
		// MaxDuration: no sleep, an ExhaustedError at once, at 4s.
		p := retry.New(retry.Config{MaxAttempts: 10, BaseDelay: 4 * time.Second, Jitter: retry.NoJitter,
			MaxDuration: 10 * time.Second, Budget: retry.UnlimitedBudget()})
		defer p.Close()
		start := time.Now()
		at, err := attemptTimes(context.Background(), p)
		var ex *retry.ExhaustedError
		if !errors.As(err, &ex) || ex.Reason != retry.ReasonDeadline || len(at) != 2 || time.Since(start) != 4*time.Second {
			t.Fatalf("attempts at %v, err %v, returned after %v", at, err, time.Since(start))
		}
		// The context's deadline works the same way.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p2 := retry.New(retry.Config{MaxAttempts: 10, BaseDelay: 4 * time.Second, Jitter: retry.NoJitter, Budget: retry.UnlimitedBudget()})
		defer p2.Close()
		at, err = attemptTimes(ctx, p2)
		if !errors.As(err, &ex) || ex.Reason != retry.ReasonDeadline || len(at) != 2 {
			t.Fatalf("deadline: attempts at %v, err %v", at, err)
		}
	})
}

func TestSynctestPushbackWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The schedule would wait an hour; the server asks for 3s.
		p := retry.New(retry.Config{BaseDelay: time.Hour, MaxDelay: time.Hour, Jitter: retry.NoJitter, Budget: retry.UnlimitedBudget()})
		defer p.Close()
		start := time.Now()
		var at []time.Duration
		err := p.Do(context.Background(), func(context.Context) error {
			at = append(at, time.Since(start))
			if len(at) == 1 {
				return retry.Pushback(errDown, 3*time.Second)
			}
			return nil
		})
		if err != nil || len(at) != 2 || at[1] != 3*time.Second {
			t.Fatalf("attempts at %v, err %v", at, err)
		}
	})
}

// The RoundTripper honours a 503's Retry-After on the bubble's time, over
// a real net/http server and transport.
func TestSynctestRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var mu sync.Mutex
		var at []time.Duration
		tr := pipehttp.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			at = append(at, time.Since(start))
			n := len(at)
			mu.Unlock()
			if n == 1 {
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			io.WriteString(w, "ok")
		}))
		p := retry.New(retry.Config{BaseDelay: time.Hour, MaxDelay: time.Hour, Budget: retry.UnlimitedBudget()})
		defer p.Close()
		resp, err := (&http.Client{Transport: p.RoundTripper(tr)}).Get("http://backend.test/")
		if err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		resp.Body.Close()
		mu.Lock()
		defer mu.Unlock()
		if resp.StatusCode != 200 || line != "ok" || len(at) != 2 || at[1] != 7*time.Second {
			t.Fatalf("%d %q, attempts at %v, want the retry exactly 7s later", resp.StatusCode, line, at)
		}
	})
}

// The budget refills as its window slides: once exhausted, retries are
// refused until the withdrawals have left the window.
func TestSynctestBudgetRefills(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// No ratio to speak of: the floor alone, 0.5 a second over 10s,
		// allows 5 retries per window.
		b := retry.NewBudget(retry.BudgetConfig{Ratio: 1e-9, MinPerSecond: 0.5, Window: 10 * time.Second})
		p := retry.New(retry.Config{MaxAttempts: 2, BaseDelay: time.Millisecond, Jitter: retry.NoJitter, Budget: b})
		defer p.Close()
		retried := func() int {
			n := 0
			for range 10 {
				_, err := attemptTimes(context.Background(), p)
				if !errors.Is(err, retry.ErrBudgetExhausted) {
					n++
				}
			}
			return n
		}
		if n := retried(); n != 5 {
			t.Fatalf("%d calls retried in the first window, want 5", n)
		}
		if n := retried(); n != 0 {
			t.Fatalf("%d calls retried with the budget exhausted, want 0", n)
		}
		time.Sleep(11 * time.Second) // fake time: the window slides past
		if n := retried(); n != 5 {
			t.Fatalf("%d calls retried after the window slid, want 5", n)
		}
	})
}

// TestSynctestHedgeDelay: a hedge starts exactly HedgeConfig.Delay after
// the attempt in flight, on the bubble's fake time, and its success ends
// the call at once, the slow attempt cancelled with bulwark.ErrSuperseded.
func TestSynctestHedgeDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := retry.New(retry.Config{Hedge: retry.HedgeConfig{Delay: 300 * time.Millisecond},
			Budget: retry.UnlimitedBudget()})
		defer p.Close()
		start := time.Now()
		var mu sync.Mutex
		var at []time.Duration
		var loserCause error
		err := p.Do(context.Background(), func(ctx context.Context) error {
			mu.Lock()
			at = append(at, time.Since(start))
			n := len(at)
			mu.Unlock()
			if n == 1 { // hangs until abandoned
				<-ctx.Done()
				mu.Lock()
				loserCause = context.Cause(ctx)
				mu.Unlock()
				return ctx.Err()
			}
			return nil
		})
		mu.Lock()
		defer mu.Unlock()
		if err != nil || len(at) != 2 || at[1] != 300*time.Millisecond || time.Since(start) != 300*time.Millisecond {
			t.Fatalf("err %v, attempts at %v, returned after %v; want the hedge at 300ms to win at once", err, at, time.Since(start))
		}
		if !errors.Is(loserCause, bulwark.ErrSuperseded) {
			t.Fatalf("the slow attempt was cancelled with %v, want bulwark.ErrSuperseded", loserCause)
		}
	})
}
