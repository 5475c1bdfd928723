package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/cache"
	cachestore "github.com/bulwark-go/bulwark/cache/redisstore"
	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/health"
	"github.com/bulwark-go/bulwark/idempotency"
	idemstore "github.com/bulwark-go/bulwark/idempotency/redisstore"
	"github.com/bulwark-go/bulwark/lb"
	"github.com/bulwark-go/bulwark/limit"
	"github.com/bulwark-go/bulwark/retry"
	"github.com/bulwark-go/bulwark/stack"
	"github.com/bulwark-go/bulwark/timeout"
)

// gateway is the front door of bulwark's run: one HTTP server on loopback
// built from bulwark's recommended server stack (stack.NewServer) in front
// of a reverse proxy whose transport is bulwark's recommended client stack
// (stack.NewClient) to the instances:
//
//	health (/livez, /readyz) -> shedding (degrade, by criticality)
//	-> rate limit (429) -> timeout -> idempotency (Redis)
//	-> reverse proxy over the client stack:
//	   total timeout -> HTTP cache (L1 in process, L2 in Redis)
//	   -> retry (budget, hedging, Idempotency-Key on POST)
//	   -> lb (P2C, active health checks of /readyz, outlier ejection,
//	      slow start, a breaker per instance) -> per-attempt timeout
//	   -> http.Transport
//
// The session layer is not on: sessions live in the instances, which use
// them (the cart), with their store in Redis, so that any instance serves
// any user. The gateway forwards the session cookie as it is: a session
// layer here would load every user's session on every request it touches
// without using it, and would put a second copy of the user's state in a
// second place, one more thing to keep consistent and one more Redis
// dependency on the path of requests (the catalogue) that need none.
type gateway struct {
	addr      string
	srv       *http.Server
	server    *stack.Server
	client    *stack.Client
	transport *http.Transport

	breaker   atomic.Int64    // breaker state changes
	ejections atomic.Int64    // instances taken out of rotation by lb (ejected or failing checks)
	shed      [3]atomic.Int64 // requests shed, by criticality (degrade.Default, Sheddable, Critical)

	// lastCritShed is the shedder's state when it last shed a critical
	// request (a degrade.ShedEvent), for the output: why it did.
	lastCritShed atomic.Pointer[degrade.ShedEvent]
}

// gatewayRate is the gateway's rate limit: far above what the drill sends
// in any phase but the overload burst.
const gatewayRate = 4000

// gatewayMinInFlight is the in-flight count below which the gateway never
// sheds: above the 8 callers of the drill's ordinary phases, so that a
// latency spike on one instance (which the balancer and hedging handle)
// is never taken for overload; far below the overload burst's.
const gatewayMinInFlight = 12

// hedgeDelay is how long the gateway waits for an attempt before it sends
// a second one (a hedge) to another instance.
const hedgeDelay = 100 * time.Millisecond

// gatewayShedWindow is the span of history the shedder's capacity
// estimate looks at: shorter than the time the bare run's burst leaves the
// gateway idle (the burst, then the deadline), so that bulwark's burst is
// judged on what the gateway sees during the burst, not on the ordinary
// phases'.
const gatewayShedWindow = 2 * time.Second

// gatewayHeadroom is the shedder's Headroom, its default: under overload,
// sheddable requests are admitted while all the requests in flight are
// under the capacity estimate, default ones while the default and critical
// ones are under twice it, and critical ones while the critical ones alone
// are under three times it. A larger headroom lets so many default and
// critical requests through on top of the sheddable ones that the
// instances queue past the gateway's per-attempt timeout.
const gatewayHeadroom = 1

// startGateway starts the gateway in front of the instances at addrs.
func startGateway(addrs []string, cfg config, rdb redis.UniversalClient, mp metric.MeterProvider) (*gateway, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &gateway{addr: ln.Addr().String(), transport: transport()}
	var eps []lb.Endpoint
	for _, a := range addrs {
		eps = append(eps, lb.Endpoint{Addr: a})
	}
	g.client = stack.NewClient(stack.ClientConfig{
		Name:          "drill-gateway",
		MeterProvider: mp,
		Timeout:       cfg.deadline,
		Cache: &cache.HTTPConfig{
			Store: cachestore.New(rdb, cachestore.Config{Prefix: "drill:cache:", Timeout: redisTimeout}),
		},
		Retry: &retry.Config{
			MaxAttempts: 3,
			BaseDelay:   5 * time.Millisecond,
			Hedge:       retry.HedgeConfig{Delay: hedgeDelay, MaxInFlight: 2},
			// Retries and hedges may add up to 20% to the traffic (plus
			// 10 a second), enough to ride out the few calls a breaker
			// needs to trip; never the tripling a naive retry loop
			// would cause.
			Budget: retry.NewBudget(retry.BudgetConfig{Ratio: 0.2}),
			// Each POST gets a key (unless its caller sent one), the
			// same on every attempt, so that the instances'
			// idempotency layer runs a retried POST once.
			IdempotencyKey: true,
		},
		Balancer: &lb.Config{
			Endpoints: eps,
			Health: lb.HealthConfig{
				Checker:            lb.HTTPChecker{Path: "/readyz", Client: &http.Client{Transport: g.transport}},
				Interval:           250 * time.Millisecond,
				Timeout:            200 * time.Millisecond,
				UnhealthyThreshold: 2,
			},
			Outlier: lb.OutlierConfig{
				// Five failures in a row. Fewer would eject healthy
				// instances on a busy machine: an attempt that loses to
				// its hedge counts as a failure, and with every
				// instance but one ejected the balancer ignores health
				// (PanicThreshold) and sends to the slow one too.
				ConsecutiveFailures: 5,
				Interval:            time.Second,
				BaseEjectionTime:    2 * time.Second,
			},
			SlowStart: time.Second,
			OnStateChange: func(_ context.Context, ev lb.StateChangeEvent) {
				if ev.To != lb.Healthy {
					g.ejections.Add(1)
				}
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
			OnStateChange:  func(context.Context, breaker.StateChangeEvent) { g.breaker.Add(1) },
			ClassifyHTTP:   sharedOutage,
		},
		AttemptTimeout: attemptTimeout,
		Transport:      g.transport,
	})
	g.server = stack.NewServer(stack.ServerConfig{
		Name:          "drill-gateway",
		MeterProvider: mp,
		Health:        &health.Config{},
		Shed: &degrade.ShedderConfig{
			MinInFlight: gatewayMinInFlight,
			Window:      gatewayShedWindow,
			// The capacity estimate is learned from what the gateway
			// has seen in the window: in bulwark's burst, the burst
			// itself, from nothing (no estimate, nothing shed) as its
			// arrivals ramp up, and it tracks the throughput the
			// instances reach. See gatewayHeadroom for the limits.
			Headroom: gatewayHeadroom,
			OnShed: func(_ context.Context, ev degrade.ShedEvent) {
				if int(ev.Criticality) < len(g.shed) {
					g.shed[ev.Criticality].Add(1)
				}
				if ev.Criticality == degrade.Critical {
					g.lastCritShed.Store(&ev)
				}
			},
		},
		Rate:    &limit.RateConfig{Rate: gatewayRate, Burst: gatewayRate / 10},
		Timeout: &timeout.Config{Timeout: cfg.deadline},
		Idempotency: &idempotency.Config{
			Store:        idemstore.New(rdb, idemstore.Config{Prefix: "drill:gateway-idem:"}),
			Wait:         2 * time.Second,
			StoreTimeout: redisTimeout,
		},
	})
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "service" // lb picks the instance
			pr.Out.Host = ""
		},
		Transport:    g.client.Client.Transport,
		ErrorHandler: proxyError,
	}
	g.srv = &http.Server{Handler: g.server.Handler(proxy), ReadHeaderTimeout: 5 * time.Second, ErrorLog: serverLog}
	go func() { _ = g.srv.Serve(ln) }()
	return g, nil
}

// proxyError answers a request the client stack could not complete: 504
// when time ran out, 503 when no instance could take it (every breaker
// open, none in rotation), 502 otherwise.
func proxyError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadGateway
	switch {
	case errors.Is(err, timeout.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
	case errors.Is(err, breaker.ErrOpen), errors.Is(err, lb.ErrNoEndpoints):
		status = http.StatusServiceUnavailable
	}
	http.Error(w, err.Error(), status)
}

// shedCounts returns the requests shed so far, by criticality.
func (g *gateway) shedCounts() [3]int64 {
	var n [3]int64
	for i := range g.shed {
		n[i] = g.shed[i].Load()
	}
	return n
}

func (g *gateway) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = g.srv.Shutdown(ctx)
	_ = g.srv.Close()
	g.server.Close()
	g.client.Close()
	g.transport.CloseIdleConnections()
}
