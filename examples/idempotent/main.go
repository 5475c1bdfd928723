// Command idempotent shows a POST that is safe to retry: bulwark's client
// stack gives it an Idempotency-Key and retries it when its response is
// lost, and bulwark's server stack, with the idempotency records in Redis,
// replays the stored response instead of charging the card twice, even
// though the retry lands on another instance.
//
//	go run ./examples/idempotent
//
// It starts two instances of a payment service on 127.0.0.1, sharing an
// embedded Redis (miniredis; set REDIS_ADDR to use a real one). Instance A
// does the work of the first request and then loses its response (the
// connection closes before a byte of it is sent), as a crash or a network
// cut after the commit would. The client retries on instance B, which
// answers with A's stored response. The program prints what happened and
// exits, with status 1 if the charge ran more or less than once.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/idempotency/redisstore"
	"github.com/bulwark-go/bulwark/retry"
	"github.com/bulwark-go/bulwark/stack"
	"github.com/bulwark-go/bulwark/timeout"
)

// snippet:start

// newPaymentServer puts bulwark's server stack in front of app: a 10 s
// timeout, then idempotency keys whose records live in Redis, shared by
// every instance, so that a retry that lands on another instance is
// answered with the first one's response.
func newPaymentServer(rdb redis.UniversalClient, app http.Handler) (http.Handler, func()) {
	server := stack.NewServer(stack.ServerConfig{
		Name:        "payments",
		Timeout:     &timeout.Config{}, // 504 past 10 s
		Idempotency: &idempotency.Config{Store: redisstore.New(rdb, redisstore.Config{})},
	})
	return server.Handler(app), func() { server.Close() }
}

// newPaymentClient is bulwark's client stack; its retries give every POST
// an Idempotency-Key (the same on each attempt).
func newPaymentClient(transport http.RoundTripper, onRetry func(context.Context, retry.Event)) *stack.Client {
	return stack.NewClient(stack.ClientConfig{
		Name:      "payments",
		Retry:     &retry.Config{IdempotencyKey: true, BaseDelay: 10 * time.Millisecond, OnRetry: onRetry},
		Transport: transport,
	})
}

// snippet:end

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "idempotent:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	var rdb *redis.Client
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		rdb = redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		fmt.Fprintln(out, "Redis:", addr)
	} else {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return err
		}
		defer mr.Close()
		rdb = redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
		fmt.Fprintln(out, "Redis: embedded miniredis")
	}
	defer rdb.Close()

	// The service: every charge it runs is a side effect we count.
	var charges atomic.Int32
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := charges.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "charge ch_%d: %s", n, body)
	})

	// Two instances; A loses the response of its first request.
	var addrs []string
	var served [2]atomic.Int32
	for i, name := range []string{"A", "B"} {
		h, closeStack := newPaymentServer(rdb, app)
		defer closeStack()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if served[i].Add(1) == 1 && name == "A" {
				h.ServeHTTP(httptest.NewRecorder(), r) // the work is done...
				if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
					conn.Close() // ...and its response is lost
				}
				fmt.Fprintf(out, "  instance A ran the charge (%d so far); its response was lost\n", charges.Load())
				return
			}
			h.ServeHTTP(w, r)
		})}
		go srv.Serve(ln)
		defer srv.Close()
		addrs = append(addrs, ln.Addr().String())
	}

	// The client sends each attempt to the next instance, as a load
	// balancer would.
	rr := &roundRobin{addrs: addrs, base: &http.Transport{}}
	defer rr.base.CloseIdleConnections()
	client := newPaymentClient(rr, func(_ context.Context, ev retry.Event) {
		fmt.Fprintf(out, "  the client retries (attempt %d): %v\n", ev.Attempt, ev.Err)
	})
	defer client.Close()

	fmt.Fprintln(out, "POST /charges 10.00 EUR, through bulwark's client stack:")
	resp, err := client.Post("http://payments/charges", "text/plain", strings.NewReader("10.00 EUR"))
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  instance B answered %s %q, %s: %q\n", resp.Status, body, idempotency.ReplayedHeader, resp.Header.Get(idempotency.ReplayedHeader))
	fmt.Fprintf(out, "charges run: %d, for %d requests served\n", charges.Load(), served[0].Load()+served[1].Load())
	if charges.Load() != 1 || resp.StatusCode != http.StatusCreated || string(body) != "charge ch_1: 10.00 EUR" {
		return fmt.Errorf("want one charge and its response, got %d charges and %s %q", charges.Load(), resp.Status, body)
	}
	return nil
}

// roundRobin sends each request to the next address in turn.
type roundRobin struct {
	addrs []string
	next  atomic.Uint32
	base  *http.Transport
}

func (rr *roundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.Host = rr.addrs[(rr.next.Add(1)-1)%uint32(len(rr.addrs))]
	return rr.base.RoundTrip(out)
}
