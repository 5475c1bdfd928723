package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/degrade"
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
// timeout, every request sent to the gateway, which holds bulwark's
// stacks, and client-side adaptive throttling (degrade.Throttler, the SRE
// book's) of the overload burst's default and sheddable requests, one
// throttler for each. Its POSTs carry an Idempotency-Key, as a caller of
// an idempotent API does, so that the gateway's idempotency layer could
// replay them (the gateway's retry keeps that key on the way to the
// instances); the burst's crowd sends none (see one).
//
// Why the throttling: a request the gateway sheds costs it little, but not
// nothing, and a caller refused in microseconds comes back at once: in the
// overload burst the gateway spent its CPU answering thousands of
// rejections a second, and the requests it admitted waited for it. A
// throttler that has seen most of its requests refused refuses most of
// the next ones itself, before they leave the caller. One per
// criticality, so that the sheddable requests' refusals never throttle
// the others; none for the critical requests, which are few and which the
// gateway keeps room for: a throttler counts a request when it is sent and
// its acceptance when it returns, so a cold one facing many concurrent
// requests refuses some before the first acceptance is back. None for the
// ordinary phases' requests (they state no criticality): a throttler
// counts its own refusals as requests, so one that saw the burst refused
// would keep refusing the next phases' few callers until its window had
// forgotten the burst.
func newBulwarkCaller(gw *gateway, cfg config, mp metric.MeterProvider) *client {
	t := transport()
	var th []*degrade.Throttler
	rts := &byCriticality{plain: t}
	rts.crit[degrade.Critical] = t
	for _, c := range []degrade.Criticality{degrade.Default, degrade.Sheddable} {
		x := degrade.NewThrottler(degrade.ThrottlerConfig{
			Name:          "drill-caller-" + c.String(),
			MeterProvider: mp,
			// The drill's phases last seconds: a throttler must forget
			// the burst's refusals by the next phase, or it would
			// refuse the Redis outage's and the recovery's requests
			// for the burst's sake (the default, 10 s, suits a
			// service whose load changes over minutes).
			Window: 2 * time.Second,
			// A 503 in problem details is the instances' shared store
			// being down (see sharedOutage), not an overload: it must
			// not throttle the catalogue, which needs no store.
			ClassifyHTTP: sharedOutage,
		})
		th = append(th, x)
		rts.crit[c] = x.RoundTripper(t)
	}
	return &client{
		name: "bulwark",
		base: "http://" + gw.addr,
		keys: true,
		gw:   gw,
		http: &http.Client{Transport: rts, Timeout: cfg.deadline},
		stop: func() {
			for _, x := range th {
				x.Close()
			}
			t.CloseIdleConnections()
		},
	}
}

// byCriticality sends each request that states its criticality (the
// Bulwark-Criticality header: the overload burst's) through the
// RoundTripper of that criticality, and the others through plain.
type byCriticality struct {
	crit  [3]http.RoundTripper
	plain http.RoundTripper
}

func (b *byCriticality) RoundTrip(req *http.Request) (*http.Response, error) {
	if c, ok := degrade.ParseCriticality(req.Header.Get(criticalityHeader)); ok {
		return b.crit[c].RoundTrip(req)
	}
	return b.plain.RoundTrip(req)
}

const attemptTimeout = 500 * time.Millisecond

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
