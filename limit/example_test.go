package limit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"golang.org/x/time/rate"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/limit"
)

func ExampleRate() {
	r := limit.NewRate(limit.RateConfig{Rate: 1, Burst: 3}) // 1 call a second, bursts of 3
	defer r.Close()
	for i := range 4 {
		fmt.Println(i, r.Allow())
	}
	// Output:
	// 0 true
	// 1 true
	// 2 true
	// 3 false
}

func ExampleRate_Wait() {
	r := limit.NewRate(limit.RateConfig{Every: time.Hour, Burst: 1})
	defer r.Close()
	r.Allow()
	// The next turn is an hour away: a caller with a one-second deadline
	// is told so at once instead of waiting for nothing.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := r.Wait(ctx)
	var re *limit.RejectedError
	fmt.Println(errors.Is(err, limit.ErrRateLimited), errors.As(err, &re) && re.Wait > 59*time.Minute)
	// Output: true true
}

func ExampleRate_Handler() {
	r := limit.NewRate(limit.RateConfig{Name: "api", Every: time.Minute, Burst: 1})
	defer r.Close()
	srv := httptest.NewServer(r.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello")
	})))
	defer srv.Close()
	for range 2 {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("RateLimit-Policy"), resp.Header.Get("RateLimit"))
	}
	// Output:
	// 200 "api";q=1;w=60 "api";r=0;t=60
	// 429 "api";q=1;w=60 "api";r=0;t=60
}

// A *rate.Limiter from golang.org/x/time/rate is a limit.Limiter.
func ExampleHandler_xTimeRate() {
	l := rate.NewLimiter(rate.Every(time.Minute), 1)
	srv := httptest.NewServer(limit.Handler(l, http.NotFoundHandler()))
	defer srv.Close()
	for range 2 {
		resp, _ := srv.Client().Get(srv.URL)
		resp.Body.Close()
		fmt.Printf("%d %q\n", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Output:
	// 404 ""
	// 429 "60"

}

func ExampleKeyed() {
	k := limit.NewKeyed(limit.KeyedConfig{Rate: limit.RateConfig{Every: time.Minute, Burst: 1}})
	defer k.Close()
	fmt.Println(k.Allow("tenant-a"), k.Allow("tenant-a"), k.Allow("tenant-b"))
	// Output: true false true
}

func ExampleBulkhead() {
	b := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1})
	defer b.Close()
	p, _ := b.Acquire(context.Background()) // one call in flight
	err := b.Do(context.Background(), func(context.Context) error { return nil })
	fmt.Println(err, errors.Is(err, limit.ErrConcurrencyLimited))
	p.Release(bulwark.Success)
	fmt.Println(b.Do(context.Background(), func(context.Context) error { return nil }))
	// Output:
	// limit: concurrency limit reached true
	// <nil>
}

func ExampleAdaptive() {
	a := limit.NewAdaptive(limit.AdaptiveConfig{MinLimit: 5, InitialLimit: 50})
	defer a.Close()
	// The limiter first measures the no-load latency at MinLimit, then
	// moves from InitialLimit with the latency it sees.
	fmt.Println(a.Limit())
	// Output: 5
}
