package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	bulwarkoutcome "github.com/bulwark-go/bulwark/internal/outcome"
	"github.com/bulwark-go/bulwark/lb"
	"github.com/bulwark-go/bulwark/retry"
	"github.com/bulwark-go/bulwark/stack"
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

// newBulwarkClient is the same client built with bulwark's client stack
// (package stack), outermost first:
//
//	total timeout -> retry (budget, hedging, Idempotency-Key on POST)
//	-> lb (P2C on latency, outlier ejection, slow start, a breaker per
//	instance) -> 250ms per-attempt timeout -> http.Transport
//
// A hedge's loser is cancelled with the cause bulwark.ErrSuperseded, which
// the balancer and the breaker count as a failure: a slow instance's
// breaker opens, lb passes over it, and requests stop paying the hedge
// delay. A retry picks again, so it lands on another instance.
func newBulwarkClient(addrs []string, cfg config, mp metric.MeterProvider) *client {
	t := transport()
	var changes atomic.Int64
	var eps []lb.Endpoint
	for _, a := range addrs {
		eps = append(eps, lb.Endpoint{Addr: a})
	}
	c := stack.NewClient(stack.ClientConfig{
		Name:          "drill",
		MeterProvider: mp,
		Timeout:       cfg.deadline,
		Retry: &retry.Config{
			MaxAttempts: 3,
			BaseDelay:   5 * time.Millisecond,
			Hedge:       retry.HedgeConfig{Delay: 100 * time.Millisecond, MaxInFlight: 2},
			// Retries and hedges may add up to 20% to the traffic (plus
			// 10 a second), enough to ride out the few calls a breaker
			// needs to trip; never the tripling a naive retry loop
			// would cause.
			Budget: retry.NewBudget(retry.BudgetConfig{Ratio: 0.2}),
			// Each POST gets a key, the same on every attempt, so that
			// the servers' idempotency layer places a retried order once.
			IdempotencyKey: true,
		},
		Balancer: &lb.Config{
			Endpoints: eps,
			Outlier: lb.OutlierConfig{
				ConsecutiveFailures: 5,
				Interval:            time.Second,
				BaseEjectionTime:    2 * time.Second,
			},
			SlowStart: time.Second,
			OnStateChange: func(context.Context, lb.StateChangeEvent) {
				changes.Add(1)
			},
			ClassifyHTTP: sharedOutage,
		},
		Breaker: &breaker.Config{
			// Open on an instance that fails nearly every call (a dead or
			// hung one), not on one that loses some hedges while the
			// machine is busy: with every breaker open, every call fails.
			FailureRate:    0.8,
			WindowSize:     20,
			MinimumCalls:   10,
			OpenDuration:   time.Second,
			HalfOpenProbes: 2,
			OnStateChange:  func(context.Context, breaker.StateChangeEvent) { changes.Add(1) },
			ClassifyHTTP:   sharedOutage,
		},
		AttemptTimeout: attemptTimeout,
		Transport:      t,
	})
	return &client{
		name:    "bulwark",
		breaker: &changes,
		http:    c.Client,
		stop: func() {
			c.Close()
			t.CloseIdleConnections()
		},
	}
}

const attemptTimeout = 250 * time.Millisecond

// sharedOutage is bulwark's HTTP classification, except that a 503 in
// problem details (application/problem+json) is neutral. That is how the
// servers' idempotency layer answers when its store, the Redis every
// instance shares, is down: no instance is to blame, and another one
// would answer the same. Counted as a failure, it would open every
// instance's breaker and eject every instance, and the GETs, which need
// no Redis, would fail with the POSTs.
func sharedOutage(ctx context.Context, resp *http.Response, err error) bulwark.Outcome {
	if err == nil && resp != nil && resp.StatusCode == http.StatusServiceUnavailable &&
		strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		return bulwark.Neutral
	}
	return bulwarkoutcome.HTTP(ctx, resp, err)
}
