package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/httpx"
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
// The picker stands in for package lb, which will replace it. A hedge's
// loser is cancelled with the cause bulwark.ErrSuperseded, which the
// breaker below counts as a failure (the per-attempt timeout is a child
// of the loser's context, so it carries the same cause): a slow or hung
// instance's breaker opens, and requests stop paying the hedge delay. When
// every breaker rejects, retry returns the rejection at once (errors.Is
// breaker.ErrOpen) instead of sleeping out the open period.
func newBulwarkClient(addrs []string, cfg config) *client {
	t := transport()
	breakers := breaker.NewSet(breaker.SetConfig{Config: breaker.Config{
		Name:             "drill",
		WindowSize:       20,
		MinimumCalls:     5,
		SlowCallDuration: 200 * time.Millisecond,
		OpenDuration:     time.Second,
		HalfOpenProbes:   2,
	}})
	policy := retry.New(retry.Config{
		Name:        "drill",
		MaxAttempts: 3,
		BaseDelay:   5 * time.Millisecond,
		Hedge:       retry.HedgeConfig{Delay: 100 * time.Millisecond, MaxInFlight: 2},
		// Retries and hedges may add up to 20% to the traffic (plus 10
		// a second), enough to ride out the few calls a breaker needs
		// to trip; never the tripling a naive retry loop would cause.
		Budget: retry.NewBudget(retry.BudgetConfig{Ratio: 0.2}),
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

// healthyFirst is round-robin that skips instances whose breaker is open or
// rejects the call.
type healthyFirst struct {
	addrs    []string
	breakers *breaker.Set
	next     atomic.Uint64
	base     http.RoundTripper
}

func (h *healthyFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	n := uint64(len(h.addrs))
	start := h.next.Add(1) - 1
	var err error
	// Try the instances in turn from this request's place in the
	// rotation, skipping open breakers; a breaker that rejects (open, or
	// half-open with its probes taken) sends the request to the next
	// instance, without touching the network.
	for i := uint64(0); i < n; i++ {
		addr := h.addrs[(start+i)%n]
		if h.breakers.Get(addr).State() == breaker.Open {
			continue
		}
		var resp *http.Response
		resp, err = h.attempt(req, addr)
		if errors.Is(err, breaker.ErrOpen) || errors.Is(err, breaker.ErrHalfOpenFull) {
			continue
		}
		return resp, err
	}
	if err == nil { // every breaker open: let the first one say when to come back
		_, err = h.attempt(req, h.addrs[start%n])
	}
	return nil, err
}

// attempt sends req to addr with a per-attempt timeout (package timeout
// will provide it): an attempt that is too slow fails with
// DeadlineExceeded, which the breaker counts, instead of being abandoned.
func (h *healthyFirst) attempt(req *http.Request, addr string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), attemptTimeout)
	out := req.Clone(ctx)
	out.URL.Host = addr
	out.Host = addr
	resp, err := h.base.RoundTrip(out)
	if err != nil {
		cancel()
		return nil, err
	}
	httpx.CancelOnClose(resp, cancel)
	return resp, nil
}

const attemptTimeout = 250 * time.Millisecond
