// Package redisstore is the Redis tier of package cache: a [cache.Store]
// over any [redis.UniversalClient] (single server, Sentinel, Cluster),
// which is also a [cache.Broadcaster] (invalidations over Redis pub/sub)
// and a [cache.Locker] (the cross-instance lock).
//
//	store := redisstore.New(rdb, redisstore.Config{Prefix: "shop:cache:"})
//	c := cache.New(cache.Config[string, Product]{Load: loadProduct, Store: store, LockTTL: time.Second})
//
// # Keys and commands
//
//   - Values: <Prefix>v:<key>, read with GET (one round trip per Get),
//     written with SET PX (the value's TTL plus its stale windows, so Redis
//     forgets it once the cache could no longer serve it).
//   - GetMany: one MGET on a single server or Sentinel. On Cluster, keys
//     of different slots cannot share an MGET (CROSSSLOT), and giving them
//     a common hash tag would put a whole cache on one node; so a pipeline
//     of GETs, which go-redis splits by node and sends to all at once (one
//     round trip per node, in parallel). The Cluster run of the tests
//     proves it over keys of several slots.
//   - Lock: SET <Prefix>l:<key> <random token> NX PX <LockTTL>; released
//     by a one-key Lua script that deletes it only if it still holds the
//     token.
//   - Invalidation: PUBLISH on <Prefix>invalidations, a message carrying
//     the publisher's random id and the keys. Each Store skips its own
//     messages. When go-redis restores a broken subscription, the Store
//     reports a gap, and the cache drops its in-process tier.
//
// No operation touches two keys, so nothing here needs a hash tag: every
// command runs unchanged on Cluster. Keys are bounded by [MaxKeyLen].
//
// # Timeouts and outages
//
// Every operation runs under context.WithTimeout(ctx, Config.Timeout)
// (default [DefaultTimeout]). go-redis applies a context's deadline to
// socket I/O only when the client has ContextTimeoutEnabled: true;
// otherwise each command is bounded by the client's ReadTimeout and
// WriteTimeout. While Redis is down, go-redis spends about 400ms
// redialling before a command fails unless the context ends first, one
// more reason for the bound. The cache counts every failure and goes on
// with its other tier and the origin (see cache.Config.FailOnStoreError).
// The subscription retries with a backoff from 50ms to 1s.
//
// The caller owns the client: a Store never closes it.
package redisstore
