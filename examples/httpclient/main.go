// Command httpclient shows bulwark's recommended client stack, built in one
// call by package stack: a total timeout, retries, load balancing over a
// service's instances with a circuit breaker per instance, and a timeout
// per attempt, in front of the transport. It starts three instances of a
// small service on 127.0.0.1, one of them down and one still warming up
// (its first request gets a 503), sends 30 GETs through the stack, prints
// what the caller saw and exits.
//
//	go run ./examples/httpclient
//
// The README's client snippet is the region between the snippet markers
// below; a test at the repository root keeps the two identical.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/lb"
	"github.com/bulwark-go/bulwark/stack"
)

// snippet:start

// newClient returns an http.Client with bulwark's recommended client stack,
// outermost first: a bound on the whole call, retries, load balancing over
// the service's instances with a circuit breaker per instance, a bound on
// each attempt. Every field left zero has a documented default. Close the
// client when you are done with it.
func newClient(instances []lb.Endpoint) *stack.Client {
	return stack.NewClient(stack.ClientConfig{
		Name:           "catalogue",                      // names every layer in telemetry
		Timeout:        5 * time.Second,                  // the whole call, retries included (default 30 s)
		AttemptTimeout: time.Second,                      // each attempt (default 10 s)
		Balancer:       &lb.Config{Endpoints: instances}, // P2C, outlier ejection, a breaker per instance
		// Retry nil: 3 attempts, exponential backoff with full jitter, a retry
		// budget, and an Idempotency-Key on each POST so that it can be retried.
	})
}

// snippet:end

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "httpclient:", err)
		os.Exit(1)
	}
}

func run() error {
	// Three instances: a is healthy, b is down (its port refuses
	// connections), c is warming up and answers its first request 503.
	var served [3]atomic.Int32
	var instances []lb.Endpoint
	for i, name := range []string{"a", "b", "c"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		instances = append(instances, lb.Endpoint{Addr: ln.Addr().String()})
		if name == "b" {
			ln.Close()
			continue
		}
		srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if served[i].Add(1) == 1 && name == "c" {
				http.Error(w, "warming up", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "hello from "+name)
		})}
		go srv.Serve(ln)
		defer srv.Close()
	}

	client := newClient(instances)
	defer client.Close()

	ok := 0
	for range 30 {
		// Any host will do: the balancer sends each attempt to an instance.
		resp, err := client.Get("http://catalogue/items/42")
		if err != nil {
			return err // a transport error, breaker.ErrOpen or a retry.ExhaustedError
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			ok++
		}
	}
	fmt.Printf("30 GETs: %d answered 200 (a served %d, c served %d, b is down), none failed\n",
		ok, served[0].Load(), served[2].Load())
	if ok != 30 {
		return fmt.Errorf("want 30 answered 200, got %d", ok)
	}
	return nil
}
