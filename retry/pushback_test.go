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

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{" 5 ", 5 * time.Second, true},
		{"999999999999999999999", maxRetryAfter, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"Sunday, 01-Mar-26 12:00:30 GMT", 30 * time.Second, true}, // RFC 850
		{"Sun Mar  1 12:01:00 2026", time.Minute, true},            // ANSI C
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},     // past
		{"-5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
		{"12abc", 0, false},
	} {
		if d, ok := parseRetryAfter(tc.in, now); d != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, d, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{"0", "120", "-1", "", "soon", "999999999999999999999",
		"Sun, 01 Mar 2026 12:01:30 GMT", "Sunday, 01-Mar-26 12:00:30 GMT", "Sun Mar  1 12:01:00 2026",
		"Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseRetryAfter(s, now)
		if d < 0 || d > maxRetryAfter || (!ok && d != 0) {
			t.Fatalf("parseRetryAfter(%q) = %v, %v", s, d, ok)
		}
	})
}

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
