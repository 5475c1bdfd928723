// Command httpserver shows bulwark's server stack in front of an
// http.Handler, built in one call by package stack: health probes that no
// limit ever rejects, load shedding by criticality, a rate limit answered
// 429 with Retry-After, a per-request timeout, and idempotency keys. It
// serves a handler on 127.0.0.1, sends it 25 requests and a readiness
// probe, prints what the clients saw and exits.
//
//	go run ./examples/httpserver
//
// The README's server snippet is the region between the snippet markers
// below; a test at the repository root keeps the two identical.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/health"
	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/limit"
	"github.com/bulwark-go/bulwark/stack"
	"github.com/bulwark-go/bulwark/timeout"
)

// snippet:start

// newServer returns bulwark's recommended server stack, outermost first:
// probes, shedding, a rate limit, a timeout, idempotency. A nil layer is off;
// a zero Config gives that package's documented defaults. Close it once the
// server has stopped.
func newServer() *stack.Server {
	return stack.NewServer(stack.ServerConfig{
		Name:        "checkout",
		Health:      &health.Config{},                                      // /livez and /readyz, never limited or shed
		Shed:        &degrade.ShedderConfig{},                              // when overloaded, sheddable requests go first (503)
		Rate:        &limit.RateConfig{Every: time.Minute / 10, Burst: 10}, // 429 + Retry-After past the limit
		Timeout:     &timeout.Config{Timeout: 2 * time.Second},             // 504 if nothing is written in time
		Idempotency: &idempotency.Config{},                                 // a retried POST with an Idempotency-Key runs once
	})
}

// snippet:end

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "httpserver:", err)
		os.Exit(1)
	}
}

func run() error {
	var ran atomic.Int32
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		io.WriteString(w, "order placed\n")
	})
	srvStack := newServer()
	defer srvStack.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: srvStack.Handler(app), ReadHeaderTimeout: time.Second}
	go srv.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	get := func(path string) (*http.Response, error) {
		resp, err := client.Get(base + path)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, nil
	}
	counts := map[int]int{}
	retryAfter := ""
	for range 25 {
		resp, err := get("/orders")
		if err != nil {
			return err
		}
		counts[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests {
			retryAfter = resp.Header.Get("Retry-After")
		}
	}
	probe, err := get("/readyz")
	if err != nil {
		return err
	}
	fmt.Printf("25 requests: %d served, %d refused with 429 (Retry-After: %ss) without running the handler; /readyz: %d\n",
		counts[http.StatusOK], counts[http.StatusTooManyRequests], retryAfter, probe.StatusCode)
	if counts[http.StatusOK] != 10 || counts[http.StatusTooManyRequests] != 15 || int(ran.Load()) != 10 || probe.StatusCode != http.StatusOK {
		return fmt.Errorf("the stack did not limit as configured: %v, handler ran %d times, probe %d", counts, ran.Load(), probe.StatusCode)
	}
	return nil
}
