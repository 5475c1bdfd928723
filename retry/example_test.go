package retry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/bulwark-go/bulwark/retry"
)

var errUnavailable = errors.New("inventory: unavailable")

func ExamplePolicy_Do() {
	p := retry.New(retry.Config{Name: "inventory", BaseDelay: time.Millisecond})
	defer p.Close()
	err := p.Do(context.Background(), func(ctx context.Context) error {
		fmt.Println("attempt", retry.Attempt(ctx))
		if retry.Attempt(ctx) < 2 {
			return errUnavailable
		}
		return nil
	})
	fmt.Println("err:", err)
	// Output:
	// attempt 1
	// attempt 2
	// err: <nil>
}

func ExampleCall() {
	p := retry.New(retry.Config{MaxAttempts: 2, NewBackOff: func() backoff.BackOff { return &backoff.ZeroBackOff{} }})
	defer p.Close()
	_, err := retry.Call(context.Background(), p, func(ctx context.Context) (int, error) {
		return 0, errUnavailable
	})
	var ex *retry.ExhaustedError
	if errors.As(err, &ex) {
		fmt.Println("attempts:", ex.Attempts)
	}
	fmt.Println(errors.Is(err, retry.ErrExhausted), errors.Is(err, errUnavailable))
	// Output:
	// attempts: 2
	// true true
}

func ExamplePermanent() {
	p := retry.New(retry.Config{})
	defer p.Close()
	errBadRequest := errors.New("bad request")
	n := 0
	err := p.Do(context.Background(), func(context.Context) error {
		n++
		return fmt.Errorf("create order: %w", retry.Permanent(errBadRequest))
	})
	// Not retried; errors.Is sees the cause through the mark.
	fmt.Println(n, errors.Is(err, errBadRequest))
	// Output: 1 true
}

func ExampleNewBudget() {
	// One budget for every policy of a client: together they retry at
	// most 10% of their calls (no floor, to show the bound).
	budget := retry.NewBudget(retry.BudgetConfig{Ratio: 0.1, MinPerSecond: -1})
	reads := retry.New(retry.Config{Name: "reads", Budget: budget, BaseDelay: time.Millisecond})
	writes := retry.New(retry.Config{Name: "writes", Budget: budget, BaseDelay: time.Millisecond})
	defer reads.Close()
	defer writes.Close()
	ctx := context.Background()
	for range 20 { // 20 calls succeed: 2 retries earned
		reads.Do(ctx, func(context.Context) error { return nil })
	}
	// The dependency fails hard: the budget, not MaxAttempts, bounds the
	// extra load. Each call still makes its own first attempt.
	for i := range 4 {
		attempts := 0
		err := writes.Do(ctx, func(context.Context) error { attempts++; return errUnavailable })
		fmt.Printf("call %d: %d attempt(s), budget exhausted: %v\n", i+1, attempts, errors.Is(err, retry.ErrBudgetExhausted))
	}
	// Output:
	// call 1: 3 attempt(s), budget exhausted: false
	// call 2: 1 attempt(s), budget exhausted: true
	// call 3: 1 attempt(s), budget exhausted: true
	// call 4: 1 attempt(s), budget exhausted: true
}

// The RoundTripper retries a GET answered 503, and hands the caller the
// response of the attempt that succeeded.
func ExamplePolicy_RoundTripper() {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "item 42")
	}))
	defer srv.Close()

	p := retry.New(retry.Config{Name: "inventory", BaseDelay: time.Millisecond})
	defer p.Close()
	client := &http.Client{Transport: p.RoundTripper(nil)}
	resp, err := client.Get(srv.URL + "/items/42")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body), "after", requests.Load(), "requests")
	// Output: 200 item 42 after 2 requests
}

// A hedged GET: the first attempt hangs, so a second one starts after the
// hedge delay; the first success wins and the hung attempt is cancelled.
func ExampleHedgeConfig() {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			<-r.Context().Done() // hung until the client gives up on it
			return
		}
		io.WriteString(w, "fast answer")
	}))
	defer srv.Close()

	p := retry.New(retry.Config{
		Hedge: retry.HedgeConfig{Delay: 10 * time.Millisecond},
		OnRetry: func(_ context.Context, ev retry.Event) {
			fmt.Println("attempt", ev.Attempt, "hedge:", ev.Hedge)
		},
	})
	defer p.Close()
	resp, err := (&http.Client{Transport: p.RoundTripper(nil)}).Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))
	// Output:
	// attempt 2 hedge: true
	// fast answer
}

// With IdempotencyKey, a POST is retried with a fresh Idempotency-Key,
// the same on every attempt, so an idempotency middleware on the server
// runs it once.
func ExampleConfig_idempotencyKey() {
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		if len(keys) == 1 {
			w.WriteHeader(http.StatusBadGateway) // the response was lost
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()

	p := retry.New(retry.Config{IdempotencyKey: true, BaseDelay: time.Millisecond})
	defer p.Close()
	client := &http.Client{Transport: p.RoundTripper(nil)}
	resp, err := client.Post(srv.URL+"/orders", "application/json", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	fmt.Println(resp.StatusCode, len(keys), "attempts, same key:", keys[0] == keys[1], "UUIDv4:", uuid.MatchString(keys[0]))
	// Output: 201 2 attempts, same key: true UUIDv4: true
}
