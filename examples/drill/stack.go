package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
	bulwarkoutcome "github.com/bulwark-go/bulwark/internal/outcome"
)

// transport is the http.Transport under every client (the bare one, the
// caller of the gateway, and the gateway's own): the same pool sizes and
// dial timeout, so the only difference between the runs is bulwark.
func transport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 500 * time.Millisecond}).DialContext,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     30 * time.Second,
	}
}

// newBareClient is what many services run today: net/http, a timeout, and
// requests spread round-robin over the instances.
func newBareClient(addrs []string, cfg config) *client {
	t := transport()
	return &client{
		name: "bare",
		base: "http://service",
		http: &http.Client{Transport: &roundRobin{addrs: addrs, base: t}, Timeout: cfg.deadline},
		stop: t.CloseIdleConnections,
	}
}

// newBulwarkCaller is the caller of bulwark's run: net/http, the same
// timeout, and every request sent to the gateway, which holds bulwark's
// stacks. Its POSTs carry an Idempotency-Key, as a caller of an idempotent
// API does, so that the gateway's idempotency layer could replay them
// (the gateway's retry keeps that key on the way to the instances).
func newBulwarkCaller(gw *gateway, cfg config) *client {
	t := transport()
	return &client{
		name: "bulwark",
		base: "http://" + gw.addr,
		keys: true,
		gw:   gw,
		http: &http.Client{Transport: t, Timeout: cfg.deadline},
		stop: t.CloseIdleConnections,
	}
}

const attemptTimeout = 250 * time.Millisecond

// sharedOutage is bulwark's HTTP classification, except that a 503 in
// problem details (application/problem+json) is neutral. That is how the
// servers' idempotency layer (and the instances' session layer, see
// storeUnavailable) answers when its store, the Redis every
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
