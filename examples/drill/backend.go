package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/chaos"
	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/idempotency/redisstore"
	"github.com/bulwark-go/bulwark/stack"
	"github.com/bulwark-go/bulwark/timeout"
)

// backend is one instance of the service under drill: a real HTTP server on
// loopback whose faults the drill switches on and off. It serves
//
//	GET  /hello   a greeting
//	POST /orders  places the order named in the body: a side effect, which
//	              the ledger counts, so that an order placed twice shows
//
// behind bulwark's server stack (package stack): a timeout, and
// idempotency keys whose records are in Redis, shared by the instances. In
// front of it, at the instance's edge, a chaos injector (package chaos)
// injects the drill's faults: added latency, responses dropped after the
// work was done.
type backend struct {
	name  string
	addr  string // host:port, fixed for the drill's lifetime
	hits  atomic.Int64
	chaos *chaos.Injector // the drill's faults, at the instance's edge

	ledger  *ledger
	handler http.Handler // the server stack in front of b.handle
	stack   *stack.Server

	mu  sync.Mutex
	srv *http.Server
	ln  net.Listener
}

func startBackend(name string, rdb redis.UniversalClient, l *ledger, mp metric.MeterProvider) (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{name: name, addr: ln.Addr().String(), ledger: l}
	b.stack = stack.NewServer(stack.ServerConfig{
		Name:          "drill-backend-" + name,
		MeterProvider: mp,
		Timeout:       &timeout.Config{Timeout: 5 * time.Second},
		Idempotency: &idempotency.Config{
			Store: redisstore.New(rdb, redisstore.Config{Prefix: "drill:idem:"}),
			// A hedge that lands here while the first attempt still
			// runs elsewhere waits for it (its response, or its key
			// released when it was cut off) instead of a 409.
			Wait: 2 * time.Second,
			// Fail fast when Redis is unreachable: a 503 at once, rather
			// than a wait past the client's attempt timeout.
			StoreTimeout: 100 * time.Millisecond,
		},
	})
	b.chaos = chaos.New(chaos.Config{Name: "drill-" + name, Enabled: true, MeterProvider: mp})
	b.handler = b.chaos.Handler(b.stack.Handler(http.HandlerFunc(b.handle)))
	b.serve(ln)
	return b, nil
}

func (b *backend) serve(ln net.Listener) {
	srv := &http.Server{Handler: b.handler, ReadHeaderTimeout: 5 * time.Second}
	b.mu.Lock()
	b.srv, b.ln = srv, ln
	b.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (b *backend) handle(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	body, err := io.ReadAll(io.LimitReader(r.Body, 256))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.Method == http.MethodPost && r.URL.Path == "/orders" {
		b.ledger.place(string(body))
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "order %s placed by %s\n", body, b.name)
		return
	}
	fmt.Fprintf(w, "hello from %s\n", b.name)
}

// ledger records every order placed, on any instance: an order placed
// more than once is a duplicate side effect.
type ledger struct {
	mu     sync.Mutex
	placed map[string]int
}

func newLedger() *ledger { return &ledger{placed: map[string]int{}} }

func (l *ledger) place(order string) {
	l.mu.Lock()
	l.placed[order]++
	l.mu.Unlock()
}

// duplicates counts the extra placements of the orders whose names start
// with prefix.
func (l *ledger) duplicates(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for order, times := range l.placed {
		if strings.HasPrefix(order, prefix) && times > 1 {
			n += times - 1
		}
	}
	return n
}

// down stops the instance: its port refuses connections, as a crashed
// process's would.
func (b *backend) down() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
	}
}

// up restarts a stopped instance on the same address.
func (b *backend) up() error {
	b.mu.Lock()
	running := b.srv != nil
	b.mu.Unlock()
	if running {
		return nil
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port can take a moment to be free again
		if ln, err = net.Listen("tcp", b.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("restart %s: %w", b.name, err)
	}
	b.serve(ln)
	return nil
}

func (b *backend) close() {
	b.down()
	if b.ln != nil {
		_ = b.ln.Close()
	}
	b.stack.Close()
	b.chaos.Close()
}

var errNoBackends = errors.New("drill: no backends")

// roundRobin spreads requests over the backends, one per attempt, by
// rewriting the request's host. It stands in for client-side load
// balancing so that a retry lands on another instance.
type roundRobin struct {
	addrs []string
	next  atomic.Uint64
	base  http.RoundTripper
}

func (rr *roundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	if len(rr.addrs) == 0 {
		return nil, errNoBackends
	}
	addr := rr.addrs[(rr.next.Add(1)-1)%uint64(len(rr.addrs))]
	out := req.Clone(req.Context())
	out.URL.Host = addr
	out.Host = addr
	return rr.base.RoundTrip(out)
}
