// Package pipehttp serves HTTP over net.Pipe, for tests that run a real
// net/http server and client inside a testing/synctest bubble: a goroutine
// waiting on a socket is not durably blocked, so the bubble's fake time
// would never advance, while one waiting on a net.Pipe is.
package pipehttp

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
)

// Serve serves h inside the current bubble and returns a transport that
// reaches it whatever the URL's host; the server and the transport's
// connections are closed when t ends.
func Serve(t testing.TB, h http.Handler) *http.Transport {
	lis := &listener{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: h}
	go srv.Serve(lis)
	tr := &http.Transport{DialContext: lis.dial}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	return tr
}

// listener is a net.Listener whose connections are the server ends of
// the pipes dial makes.
type listener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *listener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func (l *listener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
