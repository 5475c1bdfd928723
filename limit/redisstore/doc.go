// Package redisstore is the distributed rate limiter of package limit: N
// instances of a service share one limit per key, kept in Redis.
//
//	l := redisstore.New(client, redisstore.Config{
//		Rate:      limit.RateConfig{Rate: 100, Burst: 20}, // per key, for the whole fleet
//		Instances: 4,                                      // the local fallback gets a quarter each
//	})
//	mux.Handle("/api/", l.Handler(api)) // 429 + Retry-After + RateLimit fields, per client IP
//
// # The algorithm
//
// The limiter runs GCRA, the algorithm of limit.Rate (see package limit),
// in one Lua script: one round trip per decision, reading and advancing
// the key's theoretical arrival time atomically. The script is sent with
// EVALSHA, falling back to EVAL when Redis does not have it (after a
// restart or a failover). A local limit.Rate and a distributed Limiter
// with the same RateConfig admit the same calls, up to the unit each
// works in (nanoseconds locally, microseconds in Redis: rates whose
// interval is a whole number of microseconds agree exactly; the
// distributed limiter allows at most one call per microsecond per key).
//
// # Whose clock
//
// The script reads the time with Redis's TIME, not the clients' clocks:
// every instance sees the same "now" for a key, so clock skew between
// application hosts cannot let one of them past the shared limit, and no
// time travels over the network. (A key lives on one Redis master, so one
// clock decides it; after a failover to a replica whose clock differs, a
// key's state is off by the difference for at most one burst window.)
// The consequence for tests: the limiter follows Redis's clock, not a
// testing/synctest bubble's; tests of its timing use miniredis's SetTime.
//
// # Keys
//
// A limit's key is stored as Config.Prefix + "{" + key + "}": the hash tag
// is the limiter key, so the script's one key is cluster-safe and keys
// spread over a Cluster's slots. A key longer than [MaxKeyLen] bytes, or
// holding "{" or "}" (which would move the tag), is stored as
// Config.Prefix + "{" + base64(SHA-256(key)) + "}h" instead (the trailing
// "h" keeps the two forms apart). Keys expire once their state no longer
// matters (when the limit is back to a full burst).
//
// # When Redis fails
//
// A decision that Redis cannot make within Config.Timeout (Redis down,
// slow, full, failing over) follows Config.Fallback: fall back to a local
// limiter holding the limit divided by Config.Instances (the default), fail
// open (admit), or fail closed (reject). Every such failure is counted in
// bulwark.limit.store.errors, with the choice taken as the attribute
// bulwark.limit.fallback, and reported to Config.OnStoreError. A decision
// whose caller's context ended is a rejection, and not counted anywhere.
//
// # Telemetry
//
// The limiter reports in package limit's scope and names, so one dashboard
// covers local and distributed limits: bulwark.limit.decisions (attributes
// bulwark.name, bulwark.limit.kind "distributed", bulwark.limit.decision
// admitted or rejected; decisions made by a fallback included) and
// bulwark.limit.store.errors.
package redisstore
