// Package lb is client-side load balancing: it spreads calls over the
// instances of a service, steers away from slow and failing ones, takes
// outliers out of rotation and brings them back, for net/http clients,
// for any call (Pick/Done, Do, Call) and, through package grpcx/balancer,
// for gRPC clients, with one core.
//
//	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: "10.0.0.1:8080"}, {Addr: "10.0.0.2:8080"}}})
//	defer b.Close()
//	client := &http.Client{Transport: b.RoundTripper(nil)}
//	resp, err := client.Get("http://inventory/items/42") // host rewritten per request
//
// # Three ways to call
//
//   - Pick then Done (or Record): the two-step form for hot paths and
//     adapters. A pick takes no lock and allocates nothing: it reads an
//     immutable snapshot behind an atomic pointer and adds to the chosen
//     endpoint's in-flight count.
//   - Do(ctx, fn) and the generic Call[T]: the balancer picks, runs fn with
//     the endpoint and judges its error with ctx (a cancellation by the
//     caller is neutral; an attempt cancelled with bulwark.ErrSuperseded,
//     a hedge's loser, is a failure).
//   - RoundTripper, which rewrites a clone of each request to the picked
//     endpoint, records status and latency to the last byte, and tries
//     another endpoint when a connection cannot be made and the request is
//     safe to repeat.
//
// # Endpoints
//
// A set comes from Config.Endpoints, from [Balancer.Update] (a registry
// that pushes), or from a [Resolver] asked on an interval: [DNS] (A/AAAA)
// and [SRV] are provided. Every change builds a new snapshot; an endpoint
// that stays in the set keeps its state.
//
// # Policies, and their defaults
//
//   - [P2C] (default): power of two choices on peak-EWMA latency × (in
//     flight + 1), as Finagle and linkerd do. Two choices, because two
//     already cut the worst load exponentially and more make clients herd.
//     Decay 10 s (Finagle's and linkerd's); a failure, a 429/503 or a
//     Retry-After counts as a latency of at least Penalty (1 s) or the
//     asked wait, and the k-th failure in a row as k × Penalty (up to
//     10 × Penalty). It reads the clock twice per call.
//   - [LeastRequest]: power of two choices on calls in flight.
//   - [RoundRobin], [WeightedRoundRobin] (nginx's smooth order, computed
//     once per set and followed with one atomic add), [Random] (weighted).
//   - [RingHash]: consistent hashing keyed by [Balancer.PickKey] or, in the
//     RoundTripper, Config.HashKey ([HeaderKey], [CookieKey],
//     [ClientIPKey]), with bounded load: ring of at least 1024 points
//     (Envoy's minimum), balance factor 1.25 (the bounded-loads paper's and
//     HAProxy's example value).
//
// # Retries and hedges go elsewhere
//
// A retry of a call, or a hedge running beside it, goes to an endpoint
// that none of the call's earlier attempts went to, as long as one is in
// rotation and admits the call (its breaker; a ramping endpoint may still
// decline, as it does any call); only when every such endpoint has been
// tried does the pick fall back to the tried ones, by the policy as usual.
// With zone-aware routing the endpoints considered are those the call
// could be sent to: its zone's while all of the calls stay there, both
// pools while some spill. This is Envoy's previous-hosts retry
// predicate. Each policy chooses among the endpoints left: round robin
// takes the next one in its order, Random draws among them, P2C and
// LeastRequest compare two of them, and RingHash walks the ring on from
// the key's point to the next endpoint, so that every client sends a
// key's retries to the same second endpoint, as it sends its first
// attempts to the same first one.
//
// The attempts of a call share a record of their endpoints through their
// context. Package retry keeps one (up to 16 endpoints) for its retries
// and hedges, over the RoundTripper, Do and Call, and grpcx's retry
// interceptors (unary calls and streams) for gRPC through package
// grpcx/balancer; neither package
// imports the other. The record belongs to one call of retry's: nothing
// carries over to the next call, even one made with the same context. A
// first attempt pays nothing for it: no layer makes a record before it (a
// context lookup finds none). When an attempt without a record fails, the
// balancer hands one back with the result, for a retry layer above to
// adopt: the RoundTripper wraps its error (or, for a failing status, the
// response body answers for it), and Do and Call wrap fn's error; the
// wrapper prints as the error it wraps, errors.Is and errors.As see
// through it, and retry takes it off, so that retry's caller gets the
// error itself. Pick and PickKey know nothing of calls and never avoid
// anything.
//
// # Health
//
// An endpoint is out of rotation while it is ejected or failing its
// active checks:
//
//   - Passive outlier ejection, after Envoy's and gRPC's outlier
//     detection: 5 consecutive failures eject at once; a failure rate of
//     85% over an interval of 10 s (with at least 50 calls) ejects at the
//     interval's end. Ejection lasts 30 s times the number of ejections in
//     a row, up to 300 s (the endpoint returns at the first sweep after
//     that); each interval without ejection takes a step back.
//     At most 10% of the endpoints (and always at least one) are ejected
//     at once.
//   - Active checks, when Config.Health.Checker is set ([HTTPChecker], or
//     the gRPC health protocol in grpcx/balancer): every 10 s plus up to
//     10% jitter, 1 s timeout, 3 failures in a row mark an endpoint
//     unhealthy, 2 passes bring it back. Endpoints start healthy.
//   - Panic threshold: when fewer than 50% of the endpoints are available
//     (Envoy's default), the balancer ignores health and spreads calls over
//     all of them, rather than crush the few left.
//   - Slow start (off by default, as in Envoy): an endpoint that joins or
//     comes back gets 10% of its share, ramping linearly to 100% over
//     Config.SlowStart.
//   - Breakers: with Config.Breakers (a breaker.Set keyed by address), an
//     endpoint whose breaker rejects is skipped, and outcomes reach it.
//
// # Locality
//
// With Config.Zone set, calls stay in the caller's zone while at least
// ZoneSpill (80%) of its endpoints are available; below that, the zone
// keeps h/ZoneSpill of the calls (h its available share) and the rest
// spill to the other zones, so each surviving local endpoint carries at
// most 1/ZoneSpill (1.25×) of its normal load, the aim of Envoy's
// zone-aware routing. The policy runs within each zone.
//
// # Telemetry
//
// Meter "github.com/bulwark-go/bulwark/lb"; every instrument is
// asynchronous, read from the endpoints' own counters at collection time,
// so calls pay nothing for metrics:
//
//	bulwark.lb.calls      counter {call}       bulwark.lb.endpoint, bulwark.outcome = success|failure
//	bulwark.lb.ejections  counter {ejection}   bulwark.lb.endpoint
//	bulwark.lb.in_flight  gauge   {call}       bulwark.lb.endpoint (0 under RoundRobin, WeightedRoundRobin, Random)
//	bulwark.lb.endpoints  gauge   {endpoint}   bulwark.lb.state = healthy|ejected|unhealthy
//
// All carry bulwark.name (Config.Name). Neutral outcomes (a caller's
// cancellation) are not counted. An endpoint's counters start again from
// zero if it leaves the set and comes back. Close unregisters them.
//
// # Time
//
// Every clock reading and timer goes through package time, so the
// balancer follows a testing/synctest bubble's fake time; create and Close
// it inside the bubble.
//
// # Composition
//
// In the recommended client stack lb sits below retry and above the
// per-attempt timeout: retry → lb → timeout → http.Transport. Retry then
// sends a failed request again and lb sends it to an endpoint that the
// request has not been sent to (see above), while lb's ejection and P2C
// have already learnt from the failure.
//
// # Migrating from a hand-made picker or kratos' selectors
//
// A round-robin RoundTripper that rewrites URL.Host becomes
// b.RoundTripper(next); a loop skipping open breakers becomes
// Config.Breakers. kratos' selector.Select + done(ctx, DoneInfo) maps to
// Pick + Done(ticket, err), and its p2c to [P2C].
package lb
