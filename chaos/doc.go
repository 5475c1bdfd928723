// Package chaos injects faults for failure drills: added latency (fixed,
// or drawn from a uniform, normal or Pareto distribution), error responses
// (HTTP status codes, gRPC codes), aborted connections, and responses
// dropped after the server did its work. One [Injector] serves as an
// HTTP client layer ([Injector.RoundTripper]), an HTTP server layer
// ([Injector.Handler]), and gRPC interceptors (grpcx.UnaryClientChaos,
// grpcx.UnaryServerChaos and their stream forms).
//
//	inj := chaos.New(chaos.Config{Faults: []chaos.Fault{{
//		Name:        "slow-orders",
//		PathPrefix:  "/orders",
//		Probability: 0.2,
//		Latency:     chaos.Latency{Dist: chaos.Pareto, Delay: 50 * time.Millisecond},
//	}}})
//	inj.Enable() // off until now
//	srv := &http.Server{Handler: inj.Handler(mux)}
//
// # Safe by default
//
// An injector does nothing until it is enabled (Config.Enabled or
// [Injector.Enable]), and even then hits only traffic that a fault targets:
//
//   - drill traffic: by default a fault hits only requests that carry the
//     drill header (Config.Header, "Bulwark-Chaos" by default; for gRPC,
//     the metadata key "bulwark-chaos"), with any value, or with exactly
//     Fault.Drill if set. Fault.AllTraffic lifts this restriction;
//   - a route: Fault.PathPrefix (the URL path, or a gRPC full method name)
//     and Fault.Methods;
//   - a probability: Fault.Probability of the targeted requests, drawn
//     from a source seeded by Config.Seed, so a drill is repeatable.
//
// A request gets at most one fault: the first of the set, in order, that
// targets it and whose coin lands. Enable, Disable and SetFaults switch
// an injector at run time without a lock on the request path (the fault
// set is an immutable snapshot behind an atomic pointer). A disabled
// injector costs one atomic load per request and allocates nothing.
//
// # What a fault does
//
// A fault first adds its Latency (waiting on the request's context, so a
// caller that gives up is not held), then its Action: None (latency only),
// Error, Abort or Drop. See [Injector.RoundTripper] and [Injector.Handler]
// for what each action looks like on the wire. Drop is the fault that
// idempotency keys exist for: the server did the work, the client saw a
// failure and will retry.
//
// # Telemetry
//
// Every injected fault is counted: the observable counter
// bulwark.chaos.faults ({fault}) with attributes bulwark.name,
// bulwark.chaos.fault (the fault's Name) and bulwark.chaos.action;
// [Injector.Injected] returns the same counts.
//
// # Migrating
//
// Hand-made drill faults (a sleep in a test handler, a server stopped by
// hand) become Fault values that can be switched on at run time, aimed at
// drill traffic only, and counted. Unlike toxiproxy, which sits in the
// network, an Injector lives in the process and speaks HTTP and gRPC, so
// it can inject status codes and drop responses after the handler ran.
package chaos
