package retry_test

import (
	"context"
	"errors"
	"fmt"
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
		return retry.Permanent(errBadRequest)
	})
	fmt.Println(n, err == errBadRequest)
	// Output: 1 true
}

func ExampleNewBudget() {
	// One budget for every policy of a client: together they retry at
	// most 20% of their calls, plus 5 retries a second.
	budget := retry.NewBudget(retry.BudgetConfig{Ratio: 0.2, MinPerSecond: 5})
	reads := retry.New(retry.Config{Name: "reads", Budget: budget})
	writes := retry.New(retry.Config{Name: "writes", Budget: budget})
	defer reads.Close()
	defer writes.Close()
	fmt.Println(reads.Do(context.Background(), func(context.Context) error { return nil }))
	// Output: <nil>
}
