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

func TestRetryAfterErrorIsPushback(t *testing.T) {
	c := newFake()
	delays := make(chan time.Duration, 2)
	// The schedule says stop: only pushback makes a retry.
	newP := func(maxPB time.Duration) *Policy {
		return New(Config{MaxAttempts: 2, NewBackOff: stopBackOff, MaxPushback: maxPB, Clock: c,
			Budget: UnlimitedBudget(), OnRetry: func(_ context.Context, ev RetryEvent) { delays <- ev.Delay }})
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
	p := New(Config{MaxPushback: 2 * time.Hour, NewBackOff: stopBackOff, Clock: c, Budget: UnlimitedBudget()})
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

// A transport error with RetryAfter (a breaker.Set RoundTripper's
// rejection, under retry's RoundTripper) is retried after that delay.
func TestHTTPRetryAfterTransportError(t *testing.T) {
	c := newFake()
	delays := make(chan time.Duration, 1)
	p := New(Config{NewBackOff: stopBackOff, Clock: c, Budget: UnlimitedBudget(),
		OnRetry: func(_ context.Context, ev RetryEvent) { delays <- ev.Delay }})
	defer p.Close()
	var n atomic.Int32
	rt := p.RoundTripper(roundTripFunc(func(*http.Request) (*http.Response, error) {
		if n.Add(1) == 1 {
			return nil, fmt.Errorf("breaker: %w", &retryAfterErr{7 * time.Second})
		}
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	}))
	req, _ := http.NewRequest(http.MethodGet, "http://example.invalid/", nil)
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
