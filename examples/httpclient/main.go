// Command httpclient shows bulwark's recommended client stack, built in one
// call by package stack: a total timeout, retries, one circuit breaker per
// host and a timeout per attempt, in front of the transport. It starts a
// small server on 127.0.0.1 that fails its first request with a 503, sends
// one GET through the stack, prints what the caller sees and exits.
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

	"github.com/bulwark-go/bulwark/stack"
)

// snippet:start

// newClient returns an http.Client with bulwark's recommended client stack,
// outermost first: a bound on the whole call, retries, a circuit breaker per
// host, a bound on each attempt. Every field left zero has a documented
// default. Close the client when you are done with it.
func newClient() *stack.Client {
	return stack.NewClient(stack.ClientConfig{
		Name:           "catalogue",     // names every layer in telemetry
		Timeout:        5 * time.Second, // the whole call, retries included (default 30 s)
		AttemptTimeout: time.Second,     // each attempt (default 10 s)
		// Retry nil: 3 attempts, exponential backoff with full jitter, a retry
		// budget, and an Idempotency-Key on each POST so that it can be retried.
		// Breaker nil: one breaker per host; an open one fails fast with
		// breaker.ErrOpen, and 5xx answers still reach you as responses.
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
	// A service that is still warming up: its first request gets a 503.
	var hits atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "hello")
	})}
	go srv.Serve(ln)
	defer srv.Close()

	client := newClient()
	defer client.Close()

	resp, err := client.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		return err // a transport error, breaker.ErrOpen or a retry.ExhaustedError
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	fmt.Printf("%s %q after %d attempts (the first got a 503 and was retried)\n", resp.Status, body, hits.Load())
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("want 200, got %s", resp.Status)
	}
	return nil
}
