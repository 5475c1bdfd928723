package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/retry"
)

// transport is the http.Transport under both clients: the same pool sizes
// and dial timeout, so the only difference between them is bulwark.
func transport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 500 * time.Millisecond}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
}

// newBareClient is what many services run today: net/http, a timeout, and
// requests spread round-robin over the instances.
func newBareClient(addrs []string, cfg config) *client {
	t := transport()
	return &client{
		name: "bare",
		http: &http.Client{Transport: &roundRobin{addrs: addrs, base: t}, Timeout: cfg.deadline},
		stop: t.CloseIdleConnections,
	}
}

// newBulwarkClient is the same client with bulwark's client stack:
//
//	retry (budget, hedging) -> pick an instance whose breaker admits calls
//	-> breaker per instance -> http.Transport
//
// The picker stands in for package lb, which will replace it.
func newBulwarkClient(addrs []string, cfg config) *client {
	t := transport()
	breakers := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{
		Name:             "drill",
		WindowSize:       20,
		MinimumCalls:     5,
		SlowCallDuration: 300 * time.Millisecond,
		OpenDuration:     time.Second,
	}})
	policy := retry.New(retry.Config{
		Name:        "drill",
		MaxAttempts: 3,
		BaseDelay:   5 * time.Millisecond,
		Hedge:       retry.HedgeConfig{Delay: 100 * time.Millisecond, MaxInFlight: 2},
	})
	picker := &healthyFirst{addrs: addrs, breakers: breakers, base: breakers.RoundTripper(t)}
	return &client{
		name: "bulwark",
		http: &http.Client{Transport: bulwark.ChainTransport(picker, policy.RoundTripper), Timeout: cfg.deadline},
		stop: func() {
			t.CloseIdleConnections()
			policy.Close()
			breakers.Close()
		},
	}
}

// healthyFirst is round-robin that skips instances whose breaker is open.
type healthyFirst struct {
	addrs    []string
	breakers *breaker.Set
	next     atomic.Uint64
	base     http.RoundTripper
}

func (h *healthyFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	n := uint64(len(h.addrs))
	start := h.next.Add(1) - 1
	addr := h.addrs[start%n]
	for i := uint64(0); i < n; i++ {
		a := h.addrs[(start+i)%n]
		if s := h.breakers.Get(a).State(); s == breaker.Closed || s == breaker.HalfOpen {
			addr = a
			break
		}
	}
	// A per-attempt timeout (package timeout will provide it): an attempt
	// that is too slow fails with DeadlineExceeded, which the breaker
	// counts, instead of being abandoned.
	ctx, cancel := context.WithTimeout(req.Context(), attemptTimeout)
	out := req.Clone(ctx)
	out.URL.Host = addr
	out.Host = addr
	resp, err := h.base.RoundTrip(out)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

const attemptTimeout = 250 * time.Millisecond

// cancelOnClose releases an attempt's context once its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
