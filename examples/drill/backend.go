package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// backend is one instance of the service under drill: a real HTTP server on
// loopback whose faults the drill switches on and off.
type backend struct {
	name  string
	addr  string // host:port, fixed for the drill's lifetime
	delay atomic.Int64
	hits  atomic.Int64

	mu  sync.Mutex
	srv *http.Server
	ln  net.Listener
}

func startBackend(name string) (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{name: name, addr: ln.Addr().String()}
	b.serve(ln)
	return b, nil
}

func (b *backend) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(b.handle), ReadHeaderTimeout: 5 * time.Second}
	b.mu.Lock()
	b.srv, b.ln = srv, ln
	b.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (b *backend) handle(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	if d := time.Duration(b.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	_, _ = io.Copy(io.Discard, r.Body)
	fmt.Fprintf(w, "hello from %s\n", b.name)
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
