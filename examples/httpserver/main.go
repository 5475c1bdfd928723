// Command httpserver shows bulwark's server stack in front of an
// http.Handler: a circuit breaker that sheds load with 503 Service
// Unavailable and a Retry-After header while the handler keeps failing.
// It serves a handler whose database is down on 127.0.0.1, sends it 25
// requests, prints what the clients saw and exits.
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

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
)

// snippet:start

// newHandler puts bulwark's server stack in front of app, outermost first,
// and returns a function that releases it once the server has stopped.
func newHandler(app http.Handler) (http.Handler, func()) {
	guard := breaker.New(breaker.Config{Name: "checkout"}) // sheds with 503 + Retry-After while open
	h := bulwark.ChainHandler(app,
		guard.Handler, // later: health, degrade (shedding), limit, timeout, session, idempotency
	)
	return h, func() { guard.Close() }
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
		http.Error(w, "database down", http.StatusInternalServerError)
	})
	h, closeHandler := newHandler(app)
	defer closeHandler()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
	go srv.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	counts := map[int]int{}
	retryAfter := ""
	for range 25 {
		resp, err := client.Get("http://" + ln.Addr().String() + "/checkout")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		counts[resp.StatusCode]++
		if resp.StatusCode == http.StatusServiceUnavailable {
			retryAfter = resp.Header.Get("Retry-After")
		}
	}
	// The breaker's defaults: judged once 20 calls are in its window, open
	// at a failure rate of 50% or more, for 5 s on a first trip.
	fmt.Printf("25 requests: %d answered 500 by the handler, then %d shed with 503 (Retry-After: %ss) without running it\n",
		counts[http.StatusInternalServerError], counts[http.StatusServiceUnavailable], retryAfter)
	if counts[http.StatusServiceUnavailable] == 0 || int(ran.Load()) != counts[http.StatusInternalServerError] {
		return fmt.Errorf("the breaker did not shed: %v", counts)
	}
	return nil
}
