// Package degrade makes a service get worse gracefully instead of falling
// over: fallbacks for failed calls, priority load shedding for servers,
// client-side adaptive throttling, and feature switches.
//
// # Fallbacks
//
// A [Fallback] serves something in place of a call that failed (an error,
// a breaker or limiter rejection, a timeout) or that a feature [Switch]
// turned off: the last good value of the call's key (bounded in age by
// Config.MaxAge and in number by MaxKeys), else the call site's fallback
// (a static [Value] or a function of the error), else the error itself.
//
//	f := degrade.New(degrade.Config{MaxAge: 10 * time.Minute})
//	recs, err := degrade.Call(ctx, f, userID, fetchRecommendations, degrade.Value(popularItems))
//
// Over HTTP, [Fallback.RoundTripper] and [Fallback.Handler] serve a
// synthesised response (Config.HTTP) or the last good response to a GET of
// the same URL with the same credentials (Authorization, Cookie: one user's
// response is never served to another; responses that set a cookie or say
// no-store are never kept), marked with the Bulwark-Fallback header naming
// the [Reason]
// (switch, breaker, rejected, timeout, status, error). Rejections are
// recognised without importing their packages: errors.Is(err,
// breaker.ErrOpen) for breakers, and any error with a
// RetryAfter() time.Duration method (package limit's rejections, this
// package's own) as "rejected".
//
// # Priority load shedding
//
// A [Shedder] rejects requests when the server is overloaded, ranked by
// [Criticality]: Sheddable first, Default next, Critical last. A request's
// criticality comes from ShedderConfig.Criticality (a function), else the
// longest matching Route, else the Bulwark-Criticality header (gRPC:
// bulwark-criticality metadata), else Default.
//
// Overload is detected adaptively, in the manner of the BBR-style
// shedders of kratos and go-zero, but with queueing delay (as CoDel uses)
// in place of their CPU-usage gate, which needs no /proc and works the
// same in a container, a test and a synctest bubble:
//
//   - Over a sliding window (Window 5 s in Buckets 50 buckets of 100 ms),
//     the shedder records completions, their latencies and the requests
//     it shed. A request's work is its latency counted up to the
//     baseline (time over it is queueing). With fewer than 2 ×
//     MinInFlight completions in the window it is cold: nothing is shed.
//   - The baseline is the latency the server shows at its best: the
//     means of the buckets in which nothing was shed, lowest first, each
//     weighted by its work, and the mean at which a tenth of their work
//     is reached. Weighted by work, a bucket of a few cheap requests
//     (cache hits in a lull, fast rejections) weighs what they cost and
//     cannot pull the baseline down to their latency, which would make
//     every ordinary request look queued. While the window holds a
//     bucket that queued while the shedder shed, the baseline stays as
//     it is, so that neither the standing queue the higher
//     criticalities' headroom lets form nor a shift of the mix becomes
//     the yardstick. When every bucket of the window queued, the shedder
//     probes: Default loses its headroom until a bucket drains; after a
//     whole window of probing in vain the server has become slower, not
//     overloaded, and the baseline is learned from every bucket.
//   - The capacity estimate is Little's law at the server's best: the
//     most work done in a bucket ÷ the bucket's length, the number of
//     requests in flight at which the server has shown it can work
//     without queueing.
//   - The server is overloaded while requests queue: the mean latency of
//     the last full bucket, or the latency of any single request since,
//     is at least LatencyFactor (2) × the baseline, and at least
//     QueueDelay (5 ms, CoDel's target) over it, so that a fast
//     service's jitter is not taken for a queue. Once it has shed on
//     that evidence, it stays "hot" for CoolOff (1 s) so as not to flap.
//   - While overloaded, a request is rejected when the requests in flight
//     of its criticality or higher (lower tiers' work never counts
//     against a higher tier) are at or over its limit: all of them over
//     capacity × 1 for Sheddable; the Default and Critical ones over
//     capacity × (1 + Headroom) for Default (× 1 while probing); the
//     Critical ones alone over capacity × (1 + 2·Headroom) for Critical
//     (Headroom 1). No limit is under MinInFlight (4).
//   - Critical requests need more evidence: they are shed only while the
//     last two full buckets queued (not on one slow request, nor during
//     the cool-off), when the estimate holds a whole bucket of the
//     server under load rather than what a lighter load showed.
//
// So a Critical request is rejected only when all of these hold: the
// window is warm, the last two full buckets' mean latencies were at
// least max(LatencyFactor × baseline, baseline + QueueDelay), and at
// least max(MinInFlight, capacity × (1 + 2·Headroom)) Critical requests
// are in flight. Whenever one is, every Sheddable and Default request
// arriving then is rejected too: lower tiers are shed entirely first, as
// in the Google SRE book's criticality-based shedding.
//
// In the package's deterministic simulations, critical requests keep
// more than 99% success while sheddable ones are shed: 8 workers, 10 ms
// of work, twice the load they can serve, one request in five critical;
// and the failure drill's gateway (24 backend workers of 40 ms behind a
// cache answering some GETs in 100 µs, 2.3 times the backend's load, 60%
// sheddable, 20% default, 20% critical) after a lull of cache hits, a
// burst of them, an idle spell and low load, or through 20 s of overload.
//
// A shed HTTP request gets 503 Service Unavailable (or 429, per
// ShedderConfig.RejectStatus) with Retry-After from the shedder's state
// (the cool-off it has just renewed); a shed gRPC call gets Unavailable
// with a grpc-retry-pushback-ms trailer (grpcx.UnaryServerShed), which
// bulwark's retry honours.
//
// # Client-side adaptive throttling
//
// A [Throttler] is the Google SRE book's adaptive throttling: over a
// sliding window (10 s) it counts requests and accepts, and rejects a new
// request locally with probability max(0, (requests − K·accepts) /
// (requests + 1)), K = 2. A client thereby backs off a backend that is
// rejecting before the backend has to spend anything on shedding, and
// comes back as accepts do. [Throttler.RoundTripper] and
// grpcx.UnaryClientThrottle count a response as accepted unless it is a
// failure by bulwark's rules.
//
// # Feature switches
//
// [Switches] is a registry of named [Switch] values: On is one atomic
// load, Set flips a switch at run time, and [Switches.AdminHandler] lists
// and flips them over HTTP behind a caller-supplied authorisation check.
// With a [SwitchStore] (degrade/redisstore: a Redis hash plus pub/sub) a
// flip reaches every instance, and an instance that reconnects re-reads
// the stored values. Give a Fallback a Switch to serve its fallback while
// the feature is off.
//
// # Telemetry
//
// Each Shedder, Throttler and Fallback registers observable instruments
// with its Config's MeterProvider (scope github.com/bulwark-go/bulwark/degrade),
// every data point carrying bulwark.name (the Config's Name); Close
// unregisters them:
//
//   - bulwark.degrade.shed_requests ({request}, counter): requests a Shedder
//     rejected, by bulwark.degrade.criticality;
//   - bulwark.degrade.inflight_requests ({request}, up-down counter): the
//     requests a Shedder admitted and that are not done;
//   - bulwark.degrade.capacity ({request}, gauge): a Shedder's estimated
//     in-flight capacity (0 while unknown);
//   - bulwark.degrade.throttled_requests ({request}, counter): requests a
//     Throttler rejected locally;
//   - bulwark.degrade.fallbacks ({fallback}, counter): fallbacks a Fallback
//     served, by bulwark.degrade.reason and bulwark.degrade.source.
//
// Switches have no instruments; degrade/redisstore counts its Redis errors
// as bulwark.degrade.store.errors.
//
// # Migrating
//
// From go-zero's load.AdaptiveShedder or kratos' BBR limiter: the same
// Allow/Done shape ([Shedder.Allow], [Shedder.Done]), with criticality,
// Retry-After and gRPC pushback added, and a latency gate instead of CPU
// usage. From go-zero's or kratos' SRE breaker (googleBreaker, sre.Breaker):
// [Throttler] is the same formula with the same default K, with Allow
// then Done(outcome).
package degrade
