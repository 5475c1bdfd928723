// Package stack builds bulwark's recommended HTTP stacks in one call: a
// client ([NewClient]) and a server ([NewServer]) whose layers are chosen,
// ordered and wired together as the library's design recommends, with
// documented defaults, so that most programs never assemble layers by hand.
// It plays the part of .NET's standard resilience handler.
//
// # The client stack
//
// Outermost first:
//
//	total timeout      ClientConfig.Timeout (default 30 s), body included
//	cache              ClientConfig.Cache (default: none), an RFC 9111 HTTP cache
//	retry              ClientConfig.Retry (default: 3 attempts, exponential backoff with
//	                   full jitter, a 10% retry budget, automatic Idempotency-Key)
//	balancer           ClientConfig.Balancer (default: none), package lb: picks an endpoint per attempt
//	breakers           ClientConfig.Breaker (default: breaker's defaults), one per endpoint
//	                   of the balancer, or without one, one per URL host
//	attempt timeout    ClientConfig.AttemptTimeout (default 10 s), sends Request-Timeout-Ms
//	transport          ClientConfig.Transport (default: a clone of http.DefaultTransport)
//
// The layers know each other: an open breaker rejects an attempt without
// touching the network, and retry returns that rejection at once
// (errors.Is(err, breaker.ErrOpen)) rather than sleeping out the open
// period; an attempt that runs out of time is a failure for the breaker and
// is retried while the total timeout allows. POST and PATCH requests get an
// Idempotency-Key header (the same on every attempt), which makes them
// retryable: put an idempotency middleware in front of the server (package
// idempotency, or this package's server stack with
// ServerConfig.Idempotency set) so that a retried POST runs once.
//
// With a Balancer, the breakers are the balancer's: it passes over an
// endpoint whose breaker rejects, before anything is sent, and a retry
// picks again, so it can land on another endpoint. A response the cache
// serves fresh never reaches the layers below it; a stale one with
// stale-if-error stands in for an error they return.
//
// # Cost
//
// Nearly all of the client stack's own cost is its two timeout layers.
// Over an in-memory transport (BenchmarkStackRoundTripper and
// BenchmarkStackLayer in benchmarks/stack_test.go; a 2-vCPU AMD EPYC VM,
// Go 1.26, -cpu 1), a GET through the default stack costs about 0.9 µs
// and 6 allocations more than the bare transport (failsafehttp with the
// same policies: about 2.4 µs and 44 allocations). Each timeout layer
// copies the request to give it a context (the attempt timeout with a
// header of its own, for Request-Timeout-Ms) and wraps the response body:
// about 0.3 µs and 2 allocations for the total timeout, 0.5 µs and 4 for
// the attempt timeout, alone. The attempt timeout watches the total
// timeout's context without arming it, so the total's deadline costs no
// timer of its own. The two together cost about what the least a timeout
// layer can do with net/http's API (context.WithTimeout,
// Request.WithContext, a body that cancels on Close) costs alone. The
// other layers are cheap: with Timeout and AttemptTimeout negative, retry
// and the per-host breakers add about 40 ns and no allocation to a
// request whose first attempt succeeds; a Balancer adds one allocation
// per attempt (its copy of the request) and its pick; a Cache, on a miss,
// about 0.25 µs and two allocations (its key). Over loopback HTTP
// (BenchmarkStackLoopback, interleaved with a bare http.Client), the
// stack without its timeouts takes about 1.01 times the bare client's
// time per request, and the default stack about 1.1 times (a lone
// context.WithTimeout layer: 1.05).
//
// No layer modifies the request it is given (the RoundTripper contract),
// so retry and the balancer send shallow copies (as req.WithContext makes)
// with only what they change of their own: the balancer's attempt has its
// own URL, and retry's its own header when it adds an Idempotency-Key.
//
// # The server stack
//
// Outermost first, every layer off unless its Config is set (a non-nil zero
// Config turns the layer on with that package's defaults):
//
//	health             ServerConfig.Health      /livez and /readyz, never limited or shed
//	load shedding      ServerConfig.Shed        503 + Retry-After when overloaded, lowest criticality first
//	rate limit         ServerConfig.Rate        429 + Retry-After past the rate
//	concurrency limit  ServerConfig.Bulkhead    503 + Retry-After past the cap
//	timeout            ServerConfig.Timeout     504 at the deadline; honours Request-Timeout-Ms
//	session            ServerConfig.Session     a session on every request's context
//	idempotency        ServerConfig.Idempotency a POST with a known Idempotency-Key is replayed
//	handler
//
// # Names and telemetry
//
// ClientConfig.Name and ServerConfig.Name name every layer in telemetry
// (the bulwark.name attribute) whose own Config leaves Name empty, and
// MeterProvider fills every layer's MeterProvider left nil. Each layer
// reports under its own package's scope and instrument names; the stack
// adds none of its own.
//
// # Migration
//
// From failsafe-go's failsafehttp with a retry policy, a circuit breaker and
// timeouts: NewClient with the same settings in Retry, Breaker, Timeout and
// AttemptTimeout; the stack's client is an *http.Client, so call sites do
// not change. From hand-stacked bulwark layers: the order above is the one
// the package docs recommend, so a NewClient with the same Configs builds
// the same stack.
package stack
