// Package cache is a read-through cache: an in-process tier (otter), an
// optional second tier shared by every instance of a service (Redis,
// through package cache/redisstore), and a loader that fetches what
// neither holds from the origin. It keeps serving when Redis or the origin
// is down, and a cold or expiring key never sends a stampede to the
// origin.
//
//	users := cache.New(cache.Config[string, User]{
//		Load: func(ctx context.Context, id string) (User, error) { return db.User(ctx, id) },
//		TTL:  time.Minute,
//		StaleWhileRevalidate: 10 * time.Second,
//		StaleIfError:         10 * time.Minute,
//		Store: redisstore.New(rdb, redisstore.Config{}), // optional
//	})
//	defer users.Close()
//	u, err := users.Get(ctx, "42")
//
// # Reading
//
// Get looks in the in-process tier, then in the Store, then calls the
// loader, and fills the tiers it passed. Either tier is optional
// (MaxEntries: -1 turns the in-process tier off; a nil Store means one
// tier). GetMany does the same for many keys with one Store round trip
// (MGET, or a pipeline on Redis Cluster) and one loader call (LoadMany).
//
// # Stampedes
//
// Concurrent misses of one key in one process make one origin call: the
// first starts it, the others wait for it. The call runs in a goroutine of
// the cache, detached from the callers' contexts and bounded by
// LoadTimeout, so a caller who gives up (its ctx ends: Get returns
// context.Cause(ctx)) does not cancel it for the others, and the value it
// brings is cached for the next. (golang.org/x/sync/singleflight's DoChan
// does the coalescing but re-raises a loader's panic in a goroutine of its
// own, which kills the process, and takes string keys only; the cache's
// own group is a map under a mutex, touched only on misses, and turns a
// panic into a [*PanicError] for every waiter.)
//
// Across instances, LockTTL turns on a short lock in the Store (SET NX
// PX): the instance that takes it loads, the others poll the Store every
// LockPoll for its value, for up to LockTTL, then load by themselves. N
// instances missing together then make about one origin call.
//
// # Freshness
//
//   - TTL, minus up to Jitter of it at random, so that values loaded
//     together do not expire together.
//   - StaleWhileRevalidate: past its TTL, a value is still served at once
//     for this long, while one background refresh runs (RFC 5861).
//   - StaleIfError: past its TTL, a value is served for this long instead
//     of the origin's error (RFC 5861); each such serve is counted.
//   - EarlyRefresh: probabilistic early refresh (XFetch: Vattani,
//     Chierichetti, Lowenstein, "Optimal Probabilistic Cache Stampede
//     Prevention", VLDB 2015). A hit on a fresh entry starts a background
//     refresh when now - delta*beta*ln(rand()) >= expiry, where delta is
//     how long the value took to load: hot, slow-to-load keys are
//     refreshed before they expire, by one caller, without coordination.
//   - Negative caching: a loader that returns [ErrNotFound] has its answer
//     cached for NegativeTTL; Get returns ErrNotFound meanwhile. Not-found
//     answers are never served stale.
//
// Freshness is judged by the cache with the clock of package time (so a
// test inside a testing/synctest bubble sees it follow the bubble's fake
// time), from metadata stored with each value: when it stops being fresh,
// and how long it took to load. otter only stores and evicts (by size,
// MaxEntries); it is given no expiry of its own, because the cache must
// see entries past their TTL to serve them stale. (otter reads time
// through package time and has a Clock option, so its expiry would follow
// synctest too; stale serving is the reason.) An entry past every
// window stays in memory until it is read again (and replaced) or evicted
// for size. In the Store, values carry the same metadata as wall-clock
// instants, and Redis expires each key once its last window has passed.
//
// A hit reads no clock while its entry is more than a second from
// expiry: the cache keeps one horizon, an instant a second past its last
// clock reading, and one timer (time.AfterFunc) that clears it half a
// second later; an entry fresh past the horizon is fresh, and only the
// others are judged with a clock reading (which sets the horizon again).
// (On a VM with a slow clock source, reading the monotonic clock costs
// more than otter's lookup; see the benchmarks.) An idle cache has no timer
// pending. Inside a synctest bubble timers fire on time, so expiry is
// exact; only a timer more than half a second late (a starved process)
// could let an entry be served past its TTL. One timer per cache rather
// than one per entry keeps an entry at about 156 bytes of heap instead of
// 342 (BenchmarkCacheManyEntries). As with anything that holds timers, a
// Cache used inside a testing/synctest bubble must be created in that
// bubble and not used outside it.
//
// # Invalidation
//
// Set and Delete write both tiers, and, when the Store is a [Broadcaster]
// (cache/redisstore publishes on a Redis channel), every other instance
// drops the key from its in-process tier and reads the Store's copy next
// time. Invalidations arrive asynchronously, about one Redis round trip
// after Set or Delete returns; Config.OnInvalidate reports each one. An
// instance whose subscription broke cannot know what it missed:
// when the subscription comes back, it drops its whole in-process tier
// (counted as a gap). A load that began before a Set, Delete or gap does
// not write its (possibly outdated) value to the tiers.
//
// # When Redis fails
//
// A Store error on a read is counted (bulwark.cache.store.errors) and the
// cache goes on: the in-process tier and the origin keep serving.
// FailOnStoreError makes reads return it instead (matching [ErrStore]). Set
// and Delete always return a Store's error, since other instances may not
// have seen the change.
//
// # HTTP
//
// [HTTP] is a client-side HTTP cache in the same tiers, as a RoundTripper:
// max-age and s-maxage, Expires, no-store, no-cache, private, Vary,
// revalidation with ETag and Last-Modified (a 304 refreshes the stored
// response), and RFC 5861's stale-while-revalidate and stale-if-error
// from the response's Cache-Control. Its doc lists exactly what it stores
// and serves.
//
//	hc := cache.NewHTTP(cache.HTTPConfig{Store: redisstore.New(rdb, redisstore.Config{})})
//	client := &http.Client{Transport: hc.RoundTripper(nil)}
//
// # Telemetry
//
// Observable counters, read from the cache's own counters at collection
// time (an in-process hit costs one uncontended atomic add):
// bulwark.cache.hits (bulwark.cache.tier = l1 | l2), bulwark.cache.misses,
// bulwark.cache.loads, bulwark.cache.load_errors,
// bulwark.cache.stale_serves (bulwark.cache.reason = revalidate | error),
// bulwark.cache.evictions, bulwark.cache.store.errors
// (bulwark.cache.store.choice = skip | fail, after FailOnStoreError); all
// with bulwark.name. [Cache.Stats] returns the same counts.
//
// # Cost
//
// An in-process hit takes no lock and allocates nothing: otter's read, an
// atomic load of the cache's horizon and one counter add (plus a clock
// reading within a second of expiry, or on every hit with EarlyRefresh).
// A Store hit is one Redis round trip (GET). See benchmarks/cache_test.go for figures side by side with
// otter alone and with go-redis/cache.
//
// # Migrating from go-redis/cache
//
// go-redis/cache's Once(&Item{Key, Value, Do}) is Get with Config.Load;
// its LocalCache (TinyLFU) is the in-process tier, which here keeps
// decoded values (go-redis/cache decodes each local hit); its Redis is the
// Store, with Codec in place of Marshal/Unmarshal. What it has no
// counterpart for: stale serving, negative caching, invalidation across
// instances, the cross-instance lock.
package cache
