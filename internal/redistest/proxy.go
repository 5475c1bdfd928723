package redistest

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// proxy is a loopback TCP proxy in front of a controlled Redis. It adds
// latency on demand, and it is how an outage looks from the client: while
// the Redis is down, the proxy's port refuses connections, exactly as a
// dead server's would, and every open connection is cut.
type proxy struct {
	backend string       // address of the Redis behind the proxy
	latency atomic.Int64 // nanoseconds each client-to-Redis chunk is held

	mu    sync.Mutex
	addr  string // fixed after the first start, so clients keep one address
	ln    net.Listener
	conns map[net.Conn]struct{}
	stop  chan struct{} // closed by close; one per start
	wg    sync.WaitGroup
}

// start listens (on a fresh loopback port the first time, on the same one
// after) and forwards every accepted connection to the backend.
func (p *proxy) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	p.addr = ln.Addr().String()
	p.ln = ln
	p.conns = map[net.Conn]struct{}{}
	p.stop = make(chan struct{})
	p.wg.Add(1)
	go p.accept(ln, p.stop)
	return nil
}

// close stops listening, cuts every connection and waits for every
// goroutine of the proxy to end. It is a no-op on a closed proxy.
func (p *proxy) close() {
	p.mu.Lock()
	if p.ln == nil {
		p.mu.Unlock()
		return
	}
	_ = p.ln.Close()
	p.ln = nil
	close(p.stop)
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *proxy) accept(ln net.Listener, stop chan struct{}) {
	defer p.wg.Done()
	for {
		client, err := ln.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Add(1)
		go p.serve(client, stop)
	}
}

// track registers c to be cut by close; it reports false (and closes c)
// when the proxy is already closing.
func (p *proxy) track(c net.Conn, stop chan struct{}) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-stop:
		_ = c.Close()
		return false
	default:
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c) // a no-op on the nil map of a closed proxy
}

func (p *proxy) serve(client net.Conn, stop chan struct{}) {
	defer p.wg.Done()
	if !p.track(client, stop) {
		return
	}
	defer p.untrack(client)
	defer client.Close()
	server, err := net.DialTimeout("tcp", p.backend, 5*time.Second)
	if err != nil {
		return // the client sees its connection closed, as with a dying server
	}
	if !p.track(server, stop) {
		return
	}
	defer p.untrack(server)
	defer server.Close()

	// Either direction ending ends both: closing both connections unblocks
	// the other copier's Read.
	done := make(chan struct{})
	var once sync.Once
	end := func() {
		once.Do(func() {
			close(done)
			_ = client.Close()
			_ = server.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer end()
		p.copy(server, client, true, done)
	}()
	p.copy(client, server, false, done)
	end()
	wg.Wait()
}

// copy forwards src to dst until either fails. With delayed, each chunk
// read is held for the latency in force when it was read: commands reach
// Redis that much later, in order, while replies flow back at once.
func (p *proxy) copy(dst, src net.Conn, delayed bool, done chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(p.latency.Load()); delayed && d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-done:
					t.Stop()
					return
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
