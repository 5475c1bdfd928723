// Package health serves liveness and readiness probes fed by registered
// checks: a Redis ping, the states of a [breaker.Set], a load balancer's
// endpoint health, or any function. The same checks feed the gRPC health
// service (grpc.health.v1) through grpcx.HealthServer.
//
//	h := health.New(health.Config{Checks: []health.Check{
//		{Name: "redis", Func: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
//		{Name: "deps", Func: health.BreakerCheck(set, health.BreakerRule{Critical: []string{"payments"}})},
//		{Name: "search", Optional: true, Func: pingSearch},
//	}})
//	defer h.Close()
//	srv := &http.Server{Handler: h.Handler(app)} // /livez and /readyz, the rest to app
//
// A Redis check is a one-liner with no dependency of this package on
// go-redis: health.CheckFunc(func(ctx context.Context) error { return rdb.Ping(ctx).Err() }).
//
// # Probes
//
// Readiness ([Health.Readiness], /readyz) runs every check; liveness
// ([Health.Liveness], /livez) runs only the checks marked Liveness. A
// probe answers 200 when every critical check passed and 503 when one did
// not; a check marked Optional is reported in the body but never fails the
// probe. The body is JSON naming each check with its status (ok, fail,
// timeout), error, duration and the time it last ran (see [Health.Group]).
// Checks can also be put in named groups (Check.Groups), served by
// [Health.Group] and mapped to gRPC service names.
//
// # Timeouts and caching
//
// A slow dependency never hangs a probe. Each check has its own Timeout
// (default 1 s): its function's context carries it, and a probe stops
// waiting at it and reports "timeout", even if the function ignores its
// context and never returns. Each result is cached for the check's TTL
// (default 5 s), so probes from many sources (kubelet, a load balancer,
// a dashboard) do not multiply the load on a dependency.
//
// On demand (the default), a probe that finds a check's result older than
// TTL runs it; concurrent probes share that one run (singleflight-style),
// and only one run of a check is ever in progress: while a run that
// outlived its Timeout is still going, probes report "timeout" at once
// instead of starting another. A Background check runs every TTL in a
// goroutine of its own instead, and probes only read its latest result;
// [Health.Close] stops those goroutines. A check that panics fails with
// the panic's message; it does not crash the process.
//
// # Breakers and endpoints
//
// [BreakerCheck] fails when a Critical breaker is open, or when at least
// OpenFraction (default half) of the watched breakers are open ("open":
// Open or ForcedOpen). [EndpointCheck] fails when fewer than a minimum of
// a balancer's endpoints are healthy; a balancer takes part by offering
// the one-method [Endpoints] interface.
//
// # Migrating
//
// From hand-written /healthz handlers: each dependency ping becomes a
// Check with a timeout and a cache, and the 200/503 decision and JSON
// body come for free. From heptiolabs/healthcheck or alexliesenfeld/health:
// the same ideas (liveness vs readiness, per-check timeouts, cached
// results), with breaker and balancer state as first-class checks and one
// set of checks shared with the gRPC health service.
package health
