package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
)

var errUnavailable = errors.New("payments: unavailable")

func Example() {
	b := breaker.New(breaker.Config{
		Name:                "payments",
		ConsecutiveFailures: 3,
		OnStateChange: func(_ context.Context, ev breaker.StateChangeEvent) {
			fmt.Printf("%s: %v -> %v after %d failures\n", ev.Name, ev.From, ev.To, ev.Counts.Failures)
		},
	})
	defer b.Close()

	for i := range 5 {
		err := b.Do(context.Background(), func(context.Context) error { return errUnavailable })
		var oe *breaker.OpenError
		switch {
		case errors.As(err, &oe):
			fmt.Printf("call %d: rejected (%v), retry in at most %v\n", i, err, breaker.DefaultOpenDuration)
		default:
			fmt.Printf("call %d: %v\n", i, err)
		}
	}
	// Output:
	// call 0: payments: unavailable
	// call 1: payments: unavailable
	// payments: closed -> open after 3 failures
	// call 2: payments: unavailable
	// call 3: rejected (breaker: circuit open), retry in at most 5s
	// call 4: rejected (breaker: circuit open), retry in at most 5s
}

func ExampleBreaker_Allow() {
	b := breaker.New(breaker.Config{ConsecutiveFailures: 1})
	defer b.Close()

	t, err := b.Allow()
	if err != nil {
		return // rejected: do not make the call
	}
	b.Done(t, nil) // report how the call went
	fmt.Println(b.State(), b.Counts().Successes)
	// Output: closed 1
}

func ExampleCall() {
	b := breaker.New(breaker.Config{})
	defer b.Close()
	n, err := breaker.Call(context.Background(), b, func(context.Context) (int, error) { return 42, nil })
	fmt.Println(n, err)
	// Output: 42 <nil>
}

func ExampleSet_RoundTripper() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	set := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{ConsecutiveFailures: 2}})
	defer set.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: set.RoundTripper(tr)} // one breaker per host

	for range 3 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			fmt.Println("error:", errors.Is(err, breaker.ErrOpen))
			continue
		}
		resp.Body.Close()
		fmt.Println("status:", resp.StatusCode) // 5xx still reaches the caller
	}
	// Output:
	// status: 503
	// status: 503
	// error: true
}

func ExampleWriteRejection() {
	b := breaker.New(breaker.Config{})
	defer b.Close()
	b.ForceOpen()
	rec := httptest.NewRecorder()
	if err := b.Do(context.Background(), func(context.Context) error { return nil }); err != nil {
		breaker.WriteRejection(rec, err)
	}
	fmt.Println(rec.Code)
	// Output: 503
}

// A bad value fails loudly: Validate names the field and what it accepts,
// and New panics with the same error.
func ExampleConfig_Validate() {
	err := breaker.Config{FailureRate: 50}.Validate() // a percentage, not a fraction
	fmt.Println(err)
	fmt.Println(errors.Is(err, bulwark.ErrInvalidConfig))
	// Output:
	// breaker: Config.FailureRate = 50: want 0 (default) or a value in (0, 1]
	// true
}

// gobreaker's zero Settings, reproduced (see the package doc, "Migrating
// from gobreaker"): six failures in a row open the breaker for a fixed 60 s.
func Example_gobreakerMigration() {
	b := breaker.New(breaker.Config{ConsecutiveFailures: 6, OpenDuration: 60 * time.Second, OpenDurationGrowth: 1, OpenJitter: -1, HalfOpenProbes: 1, HalfOpenMaxWait: breaker.MaxDuration, Classify: func(_ context.Context, err error) bulwark.Outcome {
		if err == nil {
			return bulwark.Success
		}
		return bulwark.Failure
	}})
	defer b.Close()
	for range 6 {
		_ = b.Do(context.Background(), func(context.Context) error { return errUnavailable })
	}
	err := b.Do(context.Background(), func(context.Context) error { return nil })
	var oe *breaker.OpenError
	fmt.Println(errors.As(err, &oe), oe.RetryAfter().Round(time.Second))
	// Output: true 1m0s
}
