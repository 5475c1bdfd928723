package health_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/health"
)

func Example() {
	deps := breaker.NewSet(breaker.SetConfig{})
	defer deps.Close()

	h := health.New(health.Config{Checks: []health.Check{
		// With go-redis: Func: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
		{Name: "redis", Func: func(context.Context) error { return nil }},
		{Name: "search", Optional: true, Func: func(context.Context) error { return errors.New("search: 502") }},
		{Name: "deps", Func: health.BreakerCheck(deps, health.BreakerRule{Critical: []string{"payments"}})},
	}})
	defer h.Close()
	srv := httptest.NewServer(h.Handler(http.NotFoundHandler()))
	defer srv.Close()

	probe := func() {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			fmt.Println(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	probe()                                           // an optional failure is reported, readiness holds
	r := h.Report(context.Background(), health.Ready) // answered from the cache (TTL 5s)
	fmt.Println(r.Status, r.Checks["search"].Status, r.Checks["search"].Error)
	// Output:
	// 200
	// ok fail search: 502
}

func ExampleBreakerCheck() {
	deps := breaker.NewSet(breaker.SetConfig{})
	defer deps.Close()
	check := health.BreakerCheck(deps, health.BreakerRule{
		Keys:     []string{"search", "reviews", "images"},
		Critical: []string{"payments"},
	})
	deps.Get("search").ForceOpen()
	fmt.Println(check(context.Background()))
	deps.Get("reviews").ForceOpen() // 2 of 4 watched: OpenFraction 0.5 reached
	fmt.Println(check(context.Background()))
	deps.Get("payments").ForceOpen()
	fmt.Println(check(context.Background()))
	// Output:
	// <nil>
	// health: 2 of 4 breakers open: search, reviews
	// health: critical breakers open: payments
}

func ExampleHealth_Report() {
	h := health.New(health.Config{Checks: []health.Check{
		{Name: "db", Func: func(context.Context) error { return errors.New("db: connection refused") }},
	}})
	defer h.Close()
	r := h.Report(context.Background(), health.Ready)
	fmt.Println(r.Status, r.Checks["db"].Status, r.Checks["db"].Critical, r.Checks["db"].Error)
	// Output: fail fail true db: connection refused
}
