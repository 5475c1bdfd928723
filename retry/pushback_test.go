package retry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/bulwark-go/bulwark/internal/clock"
)

// retryAfterErr knows when to try again, as a breaker's rejection does.
type retryAfterErr struct{ d time.Duration }

func (e *retryAfterErr) Error() string             { return "rejected until later" }
func (e *retryAfterErr) RetryAfter() time.Duration { return e.d }

func stopBackOff() backoff.BackOff { return &backoff.StopBackOff{} }

// awaitRetry waits for the call on done to end, advancing the clock over
// the delay of the one retry reported on delays, if any; it returns the
// call's error and the retry's delay (-1 for none).
func awaitRetry(c *clock.Fake, delays <-chan time.Duration, done <-chan error) (error, time.Duration) {
	select {
	case d := <-delays:
		if d > 0 {
			c.BlockUntil(1)
			c.Advance(d)
		}
		return <-done, d
	case err := <-done:
		return err, -1
	}
}

// TestLocalRejectionEndsAtOnceByDefault guards issue 7 item 11: an error
// with a RetryAfter method (a breaker's rejection: nothing was sent) ends
// the call at once, with an error that keeps the rejection in its chain;
// no delay is slept and no budget spent, whatever the hint, and whether
// or not the call has a deadline. A Pushback mark (the server's word) is
// still waited for.
func TestLocalRejectionEndsAtOnceByDefault(t *testing.T) {
	c := newFake()
	b := NewBudget(BudgetConfig{Ratio: 0.1, MinPerSecond: -1, clock: c}) // no token at all
	p := New(Config{clock: c, Budget: b, Hedge: HedgeConfig{}})
	defer p.Close()
	hedging := New(Config{clock: c, Budget: b, Hedge: HedgeConfig{Delay: time.Hour}})
	defer hedging.Close()
	withDeadline, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for _, ctx := range []context.Context{context.Background(), withDeadline} {
		for _, pol := range []*Policy{p, hedging} {
			for _, rej := range []error{&retryAfterErr{5 * time.Second}, fmt.Errorf("wrapped: %w", &retryAfterErr{0})} {
				n := 0
				err := pol.Do(ctx, func(context.Context) error { n++; return rej })
				var ex *ExhaustedError
				if !errors.As(err, &ex) || ex.Reason != ReasonRejected || ex.Attempts != 1 || n != 1 ||
					!errors.As(err, new(*retryAfterErr)) || errors.Is(err, ErrBudgetExhausted) {
					t.Errorf("hedging %v, %v: err %v after %d attempts", pol.hedge.enabled, rej, err, n)
				}
			}
		}
	}
	if got := p.giveUps[ReasonRejected].Load() + hedging.giveUps[ReasonRejected].Load(); got != 8 {
		t.Fatalf("%d give-ups counted as rejected, want 8", got)
	}
	// WaitRejected without any bound (no deadline, no MaxDuration) still
	// ends at once: nothing bounds the wait.
	w := New(Config{clock: c, Budget: UnlimitedBudget(), WaitRejected: true})
	defer w.Close()
	n := 0
	err := w.Do(context.Background(), func(context.Context) error { n++; return &retryAfterErr{time.Second} })
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Reason != ReasonRejected || n != 1 {
		t.Fatalf("WaitRejected, no bound: err %v after %d attempts", err, n)
	}
}

// With Config.WaitRejected and a bound, a rejection's RetryAfter is
// waited for, like server pushback.
func TestWaitRejectedHonoursRetryAfter(t *testing.T) {
	c := newFake()
	delays := make(chan time.Duration, 2)
	// The schedule says stop: only pushback makes a retry.
	newP := func(maxPB time.Duration) *Policy {
		return New(Config{MaxAttempts: 2, NewBackOff: stopBackOff, MaxPushback: maxPB, clock: c, WaitRejected: true,
			Budget: UnlimitedBudget(), OnRetry: func(_ context.Context, ev Event) { delays <- ev.Delay }})
	}
	ra := &retryAfterErr{5 * time.Second}
	for _, tc := range []struct {
		name     string
		maxPB    time.Duration
		err      error
		want     time.Duration // -1: not retried
		attempts int
	}{
		{"replaces the schedule", 0, ra, 5 * time.Second, 2},
		{"wrapped", 0, fmt.Errorf("call: %w", ra), 5 * time.Second, 2},
		{"capped", 2 * time.Second, ra, 2 * time.Second, 2},
		{"ignored", -1, ra, -1, 1},
		{"negative is no hint: the schedule decides", 0, &retryAfterErr{-time.Second}, -1, 1},
		{"zero is no hint: the schedule decides", 0, &retryAfterErr{0}, -1, 1},
		{"Pushback mark first", 0, Pushback(ra, 3*time.Second), 3 * time.Second, 2},
	} {
		p := newP(tc.maxPB)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		err, d := awaitRetry(c, delays, run(ctx, p, func(context.Context) error { return tc.err }))
		cancel()
		p.Close()
		var ex *ExhaustedError
		if !errors.As(err, &ex) || ex.Attempts != tc.attempts || !errors.As(err, new(*retryAfterErr)) || d != tc.want {
			t.Errorf("%s: err %v, delay %v", tc.name, err, d)
		}
	}
	// Too late for the time left: give up at once, without spending the
	// budget; a Pushback mark asking not to retry wins over RetryAfter.
	p := New(Config{MaxPushback: 2 * time.Hour, NewBackOff: stopBackOff, clock: c, Budget: UnlimitedBudget(), WaitRejected: true})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for _, tc := range []struct {
		err  error
		want Reason
	}{
		{&retryAfterErr{90 * time.Minute}, ReasonDeadline},
		{Pushback(&retryAfterErr{time.Second}, -1), ReasonPushback},
	} {
		n := 0
		err := p.Do(ctx, func(context.Context) error { n++; return tc.err })
		var ex *ExhaustedError
		if !errors.As(err, &ex) || ex.Reason != tc.want || n != 1 {
			t.Errorf("%v: err %v after %d attempts", tc.err, err, n)
		}
	}
}

// With Config.WaitRejected and a deadline, a transport error with
// RetryAfter (a breaker.Set RoundTripper's rejection, under retry's
// RoundTripper) is retried after that delay.
func TestHTTPWaitRejectedTransportError(t *testing.T) {
	c := newFake()
	delays := make(chan time.Duration, 1)
	p := New(Config{NewBackOff: stopBackOff, clock: c, Budget: UnlimitedBudget(), WaitRejected: true,
		OnRetry: func(_ context.Context, ev Event) { delays <- ev.Delay }})
	defer p.Close()
	var n atomic.Int32
	rt := p.RoundTripper(roundTripFunc(func(*http.Request) (*http.Response, error) {
		if n.Add(1) == 1 {
			return nil, fmt.Errorf("breaker: %w", &retryAfterErr{7 * time.Second})
		}
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://example.invalid/", nil)
	done := make(chan error, 1)
	go func() {
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if err, d := awaitRetry(c, delays, done); err != nil || d != 7*time.Second || n.Load() != 2 {
		t.Fatalf("err %v, delay %v, %d attempts", err, d, n.Load())
	}
}
