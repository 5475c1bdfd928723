// Package redisstore keeps sessions of package session in Redis, through a
// redis.UniversalClient (a single server, Sentinel or Cluster), so that any
// application instance can serve any user.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
//	m := session.New(session.Config{Store: redisstore.New(rdb, redisstore.Config{})})
//
// # Keys
//
// With the default prefix "bulwark:session:", a session whose id (the
// SHA-256 of its token, base64url) is ID lives in
//
//	bulwark:session:{ID}      a hash: "v:<key>" per value, "_a" absolute and
//	                          "_e" idle deadline (Unix ms), "_u" user, "_s" size
//	bulwark:session:{ID}:x    its tombstone once destroyed (10 minutes)
//	bulwark:session:user:{U}  the user's index: a sorted set of ids scored by
//	                          their absolute deadlines (U: the user ID in base64url)
//
// The hash expires at the session's idle deadline (PEXPIRE), which every
// commit moves. Every script touches keys of one hash tag only (a
// session's, or a user's), so the store runs unchanged on Redis Cluster.
//
// # Round trips
//
// Load is one HGETALL; Commit one EVALSHA (plus one on the user's index
// when it binds a user); Take one EVALSHA; DestroyUser one ZRANGE, one
// pipeline of one script per session (each on that session's own slot),
// and one ZREM. The first script call on a server that does not hold the
// script yet costs one more (NOSCRIPT, then EVAL); [Store.LoadScripts]
// loads them ahead, on every master of a Cluster.
//
// # Failures
//
// Every operation runs under context.WithTimeout(ctx, Config.Timeout) and
// returns Redis's error as is (the session.Manager answers with its
// ErrorHandler); a missing session is not an error. The store adds no
// retries of its own: go-redis retries network errors, bounded by the
// client's MaxRetries.
package redisstore
