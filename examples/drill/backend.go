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
	"github.com/bulwark-go/bulwark/health"
	"github.com/bulwark-go/bulwark/idempotency"
	idemstore "github.com/bulwark-go/bulwark/idempotency/redisstore"
	"github.com/bulwark-go/bulwark/session"
	sessionstore "github.com/bulwark-go/bulwark/session/redisstore"
	"github.com/bulwark-go/bulwark/stack"
	"github.com/bulwark-go/bulwark/timeout"
)

// backend is one instance of the service under drill: a real HTTP server on
// loopback whose faults the drill switches on and off. It serves
//
//	GET  /catalog/{item}  an item of the catalogue, cacheable
//	                      (Cache-Control: max-age), so that the gateway's
//	                      HTTP cache serves most of them
//	POST /orders          places the order named in the body: a side effect,
//	                      which the ledger counts, so that an order placed
//	                      twice shows
//	GET  /cart            the caller's cart, from its session
//	POST /cart            adds the item named in the body to the caller's
//	                      cart (its session), and records the addition in
//	                      the ledger as a side effect
//	GET  /recommendations items picked for the caller: personal, never
//	                      cached (Cache-Control: no-store)
//
// behind bulwark's server stack (package stack): health probes (/readyz,
// which the gateway's balancer checks), a timeout, sessions and
// idempotency records, both kept in Redis and shared by the instances, so
// that any instance serves any user and recognises a retry that lands on
// it. In front of it, at the instance's edge, a chaos injector (package
// chaos) injects the drill's faults: added latency, responses dropped
// after the work was done.
type backend struct {
	name  string
	addr  string // host:port, fixed for the drill's lifetime
	hits  atomic.Int64
	chaos *chaos.Injector // the drill's faults, at the instance's edge

	ledger  *ledger
	cores   chan struct{} // the instance's capacity: see work
	handler http.Handler  // the server stack in front of b.handle
	stack   *stack.Server

	mu  sync.Mutex
	srv *http.Server
	ln  net.Listener
}

// Each instance has a fixed capacity: every request it serves holds one of
// its cores for work, so it serves at most cores/work requests a second
// (200 here, 600 for the three) and queues the rest. The work is a sleep,
// not a busy loop: it models a service's own cost (a query, a computation)
// without taking the shared machine's CPU from the drill, so that the
// service's capacity, not the machine's, is what the overload burst
// exceeds, well below what the machine can push through the gateway even
// when it is busy. The drill's ordinary load (up to 16 callers for 24
// cores, 16 with an instance down) stays under it. It also makes the
// steady p99, the latency spike's yardstick, the service's own rather
// than the loopback's few milliseconds of scheduling noise.
const (
	cores = 8
	work  = 40 * time.Millisecond
)

// recsWork is the work of a recommendation (GET /recommendations, only
// in the overload burst): a model scoring items for the caller costs more
// than a lookup or an insert, and is the first thing to go under overload.
const recsWork = 90 * time.Millisecond

// catalogMaxAge is how long a catalogue item may be served from a cache.
const catalogMaxAge = 2 * time.Second

func startBackend(name string, rdb redis.UniversalClient, l *ledger, mp metric.MeterProvider) (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{name: name, addr: ln.Addr().String(), ledger: l, cores: make(chan struct{}, cores)}
	b.stack = stack.NewServer(stack.ServerConfig{
		Name:          "drill-backend-" + name,
		MeterProvider: mp,
		Health:        &health.Config{},
		Timeout:       &timeout.Config{Timeout: 5 * time.Second},
		Session: &session.Config{
			Store: sessionstore.New(rdb, sessionstore.Config{Prefix: "drill:session:", Timeout: redisTimeout}),
			// Plain HTTP on loopback: a Secure cookie would never come
			// back. Never in production.
			Cookie: session.Cookie{Name: sessionCookie, Insecure: true},
			// When Redis is down, a request that needs its session is
			// refused (503), never run with an empty cart; answered in
			// problem details, as the idempotency layer does, so that
			// the gateway knows the outage is shared (see sharedOutage).
			ErrorHandler: storeUnavailable,
		},
		Idempotency: &idempotency.Config{
			Store: idemstore.New(rdb, idemstore.Config{Prefix: "drill:idem:"}),
			// A hedge that lands here while the first attempt still
			// runs elsewhere waits for it (its response, or its key
			// released when it was cut off) instead of a 409.
			Wait: 2 * time.Second,
			// Fail fast when Redis is unreachable: a 503 at once, rather
			// than a wait past the client's attempt timeout.
			StoreTimeout: redisTimeout,
		},
	})
	b.chaos = chaos.New(chaos.Config{Name: "drill-" + name, Enabled: true, MeterProvider: mp})
	b.handler = b.chaos.Handler(b.stack.Handler(http.HandlerFunc(b.handle)))
	b.serve(ln)
	return b, nil
}

// redisTimeout bounds every Redis operation of the stacks: during an
// outage they fail at once rather than past a client's attempt timeout.
const redisTimeout = 100 * time.Millisecond

// storeUnavailable answers a request whose session store failed: 503 in
// problem details (RFC 9457), as the idempotency layer answers its own
// store's failures.
func storeUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintf(w, `{"type":"about:blank","title":"Service Unavailable","status":503,"detail":%q}`+"\n", err.Error())
}

func (b *backend) serve(ln net.Listener) {
	srv := &http.Server{Handler: b.handler, ReadHeaderTimeout: 5 * time.Second, ErrorLog: serverLog}
	b.mu.Lock()
	b.srv, b.ln = srv, ln
	b.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (b *backend) handle(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	select {
	case b.cores <- struct{}{}:
	case <-r.Context().Done():
		http.Error(w, "gave up waiting for a core", http.StatusServiceUnavailable)
		return
	}
	d := work
	if r.URL.Path == "/recommendations" {
		d = recsWork
	}
	time.Sleep(d)
	defer func() { <-b.cores }()
	body, err := io.ReadAll(io.LimitReader(r.Body, 256))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/orders":
		b.ledger.place(string(body))
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "order %s placed by %s\n", body, b.name)
	case r.URL.Path == "/cart" && (r.Method == http.MethodGet || r.Method == http.MethodPost):
		n, _ := session.Get[int](r.Context(), "cart")
		if err := session.Err(r.Context()); err != nil {
			// The store failed loading it: the session layer answers
			// (its ErrorHandler) once this handler returns.
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if r.Method == http.MethodPost {
			n++
			if err := session.Put(r.Context(), "cart", n); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			b.ledger.place(string(body))
			w.WriteHeader(http.StatusCreated)
		}
		fmt.Fprintf(w, "%d items in the cart, served by %s\n", n, b.name)
	case r.Method == http.MethodGet && r.URL.Path == "/recommendations":
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "recommended for you by %s: items 3, 7 and 11\n", b.name)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/catalog/"):
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(catalogMaxAge/time.Second)))
		fmt.Fprintf(w, "item %s, served by %s\n", strings.TrimPrefix(r.URL.Path, "/catalog/"), b.name)
	default:
		http.NotFound(w, r)
	}
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

// sessionCookie names the instances' session cookie.
const sessionCookie = "drill-session"
