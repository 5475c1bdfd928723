// Command httpclient shows bulwark's client stack in front of an
// http.Client: retries outermost, then one circuit breaker per host, then
// the transport. It starts a small server on 127.0.0.1 that fails its first
// request with a 503, sends one GET through the stack, prints what the
// caller sees and exits.
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

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/retry"
)

// snippet:start

// newClient returns an HTTP client with bulwark's client stack, and a
// function that releases what the stack holds (metric registrations, idle
// connections) once you are done with the client.
func newClient() (*http.Client, func()) {
	policy := retry.New(retry.Config{})          // 3 attempts, exponential backoff + full jitter, retry budget
	hosts := breaker.NewSet(breaker.SetConfig{}) // one circuit breaker per host
	transport := &http.Transport{}               // or nil for http.DefaultTransport
	client := &http.Client{Transport: bulwark.ChainTransport(transport,
		policy.RoundTripper, // outermost: retries only idempotent requests (or ones with an Idempotency-Key)
		hosts.RoundTripper,  // a dead host fails fast with breaker.ErrOpen; 5xx still reach you as responses
	)}
	return client, func() {
		transport.CloseIdleConnections()
		policy.Close()
		hosts.Close()
	}
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

	client, closeClient := newClient()
	defer closeClient()
	client.Timeout = 5 * time.Second // a bound on the whole call, retries included

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
