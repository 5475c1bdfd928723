package stack_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/limit"
	"github.com/bulwark-go/bulwark/stack"
	"github.com/bulwark-go/bulwark/timeout"
)

// A client with the recommended stack, against a service whose first
// answer is a 503: the retry layer tries again and the caller sees the 200.
func ExampleNewClient() {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "hello")
	}))
	defer srv.Close()

	client := stack.NewClient(stack.ClientConfig{Name: "greeter"}) // every default
	defer client.Close()

	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body), "after", hits.Load(), "requests")
	// Output: 200 OK hello after 2 requests
}

// A server stack with a rate limit, a timeout and idempotency keys in front
// of a handler that creates orders: a POST sent twice with the same
// Idempotency-Key creates one order, and the second gets the first's
// response, replayed.
func ExampleNewServer() {
	var orders atomic.Int32
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "order %d", orders.Add(1))
	})
	server := stack.NewServer(stack.ServerConfig{
		Name:        "orders",
		Rate:        &limit.RateConfig{Rate: 100}, // 429 past 100 requests a second
		Timeout:     &timeout.Config{},            // 504 after 10 s
		Idempotency: &idempotency.Config{},        // memory store: one instance
	})
	defer server.Close()
	srv := httptest.NewServer(server.Handler(app))
	defer srv.Close()

	for range 2 {
		req, _ := http.NewRequest("POST", srv.URL+"/orders", strings.NewReader(`{"item":42}`))
		req.Header.Set("Idempotency-Key", "7c1e9a52")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(body), "replayed:", resp.Header.Get(idempotency.ReplayedHeader) == "true")
	}
	fmt.Println("orders created:", orders.Load())
	// Output:
	// 201 order 1 replayed: false
	// 201 order 1 replayed: true
	// orders created: 1
}
