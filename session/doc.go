// Package session gives HTTP handlers server-side sessions kept in an
// external store, so that stateless instances can serve any user and an
// instance can die without logging anyone out. It fixes four faults
// common to Go session libraries: lost updates when two requests of one
// user overlap, sessions resurrected after logout, live tokens stored in
// plain text, and insecure cookie defaults.
//
//	m := session.New(session.Config{Store: redisstore.New(rdb, redisstore.Config{})})
//	defer m.Close()
//	http.ListenAndServe(addr, m.Handler(mux))
//
//	// in a handler:
//	session.Put(r.Context(), "cart", cart)
//	cart, ok := session.Get[Cart](r.Context(), "cart")
//	session.Renew(r.Context())          // at login: new token, same data
//	session.SetUser(r.Context(), userID) // for DestroyAll
//	session.Destroy(r.Context())        // at logout
//	m.DestroyAll(ctx, userID)           // log out everywhere
//
// # Requests
//
// [Manager.Handler] reads the cookie but calls the store only when the
// handler uses the session: a request that never does costs nothing. A
// read loads the session with one store call (one HGETALL on Redis); the
// request's changes are committed with one more (one script call), right
// before the response's headers are written; a request that only writes
// (Put, Remove, Clear, without a read) commits without loading, in one
// store call in all. Changes are per key: a commit sets and deletes the
// keys the request changed, atomically, over whatever other requests
// committed meanwhile. So two overlapping requests that change different
// keys both keep their changes, and for one key the request that commits
// last wins (last writer wins, per key). Clear removes every key present
// at commit time. Changes made once the handler has returned (from a
// goroutine it left behind) are never committed.
//
// # Logout, renewal, fixation
//
// A commit applies only to a session that still exists in the store, and
// Destroy tombstones the id it deletes: a request that started before a
// Destroy (or a Renew, or DestroyAll) and commits after it can never bring
// the session back. Its changes are dropped; a request that had only
// written without reading starts a fresh session with a new token instead,
// exactly as for an expired token. [Renew] takes the session from the
// store atomically and stores it under a fresh token, keeping its data,
// its user and its absolute deadline. A token the store does not know is
// never adopted: a session is only ever created with a token the server
// made, so an attacker cannot plant one (session fixation).
//
// # Tokens
//
// A token is 256 bits from crypto/rand in unpadded base64url (43
// characters). The store keys sessions by the SHA-256 of the token, so a
// copy of the store's data (a Redis dump, a replica, a backup) holds no
// usable cookie. A cookie that is not a well-formed token is ignored
// without a store call.
//
// # Expiry
//
// A session ends after IdleTimeout without use and, however active, at its
// absolute deadline, Lifetime after its creation. Both are enforced by the
// store (the Redis key's TTL; the memory store's own checks) and checked
// again by the Manager on every load. A request that only reads extends
// the idle deadline with one store write only once TouchAfter (a tenth
// of IdleTimeout by default) has passed since it was last extended, so reads cost one round trip almost always.
//
// # Cookies
//
// By default the cookie is named "__Host-session" and is Secure, HttpOnly,
// SameSite=Lax, host-only and on path /, without Expires, and every
// response that sets or deletes it carries "Cache-Control: no-store"
// (OWASP Session Management Cheat Sheet). [Cookie] changes each of these;
// [Config.Validate] refuses combinations browsers reject.
//
// # Failures
//
// When the store fails (Redis unreachable, too slow for
// redisstore.Config.Timeout, full) while loading or committing before the
// response's headers are written, Config.ErrorHandler answers the request
// instead (default: 503 Service Unavailable, "session: store
// unavailable"): a handler never runs on with an empty session in place of
// the real one, and never sees another user's. Failures are counted in
// the metric bulwark.session.store.errors and passed to
// Config.OnStoreError. After an outage, go-redis's client may fail for up
// to a second more: once PoolSize dials in a row have failed, it probes
// the server once a second before dialling again.
//
// # Stores
//
// [MemoryStore] (bounded by MemoryConfig.MaxSessions, with a cleanup
// goroutine stopped by Close) serves one instance and tests. The Redis
// store, in package session/redisstore so that users of the memory store
// never compile go-redis, keeps a session as a hash under a key tagged by
// its id, with a tombstone key of the same tag, and each user's sessions
// in a sorted set tagged by the user: every script touches keys of one
// tag, so it runs on Redis Cluster. DestroyAll reads the user's index and
// deletes each session with a script on that session's keys. Both stores
// pass one conformance suite.
//
// # Telemetry
//
// Observable counters bulwark.session.loads, bulwark.session.saves and
// bulwark.session.store.errors (attribute bulwark.session.op: load, save,
// renew, destroy, destroy_all), labelled bulwark.name = Config.Name.
//
// # Migrating from alexedwards/scs
//
// scs's SessionManager.LoadAndSave becomes Manager.Handler;
// sm.Put(ctx, k, v), sm.GetString(ctx, k) and friends become Put(ctx, k,
// v) and Get[string](ctx, k); sm.RenewToken becomes Renew; sm.Destroy
// becomes Destroy; IdleTimeout and Lifetime keep their meaning (scs's
// defaults: no idle timeout, 24h). scs saves the whole session as one blob
// and loads it on every request; here nothing is loaded until used and
// only changed keys are written, so scs's last-request-wins overwrites do
// not happen. Cookies are Secure by default: set Cookie.Insecure for local
// development over plain HTTP.
package session
