// Package idempotency makes retried requests safe: the first request with
// an Idempotency-Key runs, its response is stored, and a retry with the
// same key gets that response back instead of running again. It
// implements the server side of the IETF draft "The Idempotency-Key HTTP
// Header Field" (draft-ietf-httpapi-idempotency-key-header-06), safely
// across many instances when the records are kept in Redis.
//
//	keeper := idempotency.New(idempotency.Config{Store: redisstore.New(rdb, redisstore.Config{})})
//	defer keeper.Close()
//	http.Handle("/payments", keeper.Handler(payments))
//
// bulwark's retry adds a key to every POST and PATCH it retries
// (retry's automatic Idempotency-Key), so a client behind retry and a
// server behind this middleware get exactly-once effects even when a
// response is lost after the server did the work.
//
// # The request's life
//
// For a request of Config.Methods (POST and PATCH by default) that carries
// a key:
//
//  1. The key is parsed (an RFC 8941 sf-string as the draft says, or a
//     bare token such as a UUID; see [ParseKey]).
//  2. The body is read (at most MaxRequestBytes) and the request is
//     fingerprinted: SHA-256 of method, path and query, and body.
//  3. The key, scoped to the caller, is claimed in the store: atomically,
//     so of many concurrent requests with one key exactly one runs. The
//     claim is a lease, renewed while the handler runs and expiring if the
//     instance dies, so a crashed request never locks a key for ever.
//  4. The handler runs; its response goes to the client as it is written
//     (streaming works) and is copied for the store.
//  5. The response is stored for Config.Retention (24 h) and replayed,
//     byte for byte with "Idempotent-Replayed: true", to every later
//     request with the same key and payload.
//
// [Keeper.Handler] lists every status code it answers with. Errors are
// RFC 9457 problem details.
//
// # Scope: one caller never gets another's response
//
// A record's key is the pair (scope, Idempotency-Key), hashed. The scope
// is the caller's identity: by default the Authorization header, so two
// callers who pick the same key (by accident, or one guessing the other's)
// each run their own request. Requests without an Authorization header
// share one anonymous scope; if your callers authenticate otherwise (a
// session cookie, mTLS), set Config.Scope to return the user or client
// ID.
//
// # What is not stored
//
// A 5xx answer (unless Config.StoreServerErrors), a panic, a response
// larger than MaxResponseBytes and a hijacked connection release the key,
// so the client's retry runs the request again. A response stored while
// the store fails is not replayed later: the claim then expires after
// Lease, and a retry after that runs again (counted in
// bulwark.idempotency.store.errors).
//
// # Stores
//
// [MemoryStore] serves one instance. The Redis store in package
// idempotency/redisstore serves many: each record is one Redis hash whose
// key carries its own hash tag (so it runs on Redis Cluster), claimed,
// renewed, completed and released by Lua scripts in one round trip each.
// A request costs one round trip before the handler and one after; a
// replay costs one. When the store cannot be reached the Handler answers
// 503 and does not run the handler.
//
// # gRPC
//
// grpcx.UnaryServerIdempotency gives unary gRPC methods the same
// semantics, keyed by the "idempotency-key" metadata entry.
//
// # Telemetry
//
// bulwark.idempotency.requests counts requests that carried a key, by
// bulwark.idempotency.result (executed, replayed, conflict, mismatch,
// invalid, store_error); bulwark.idempotency.store.errors counts store
// operations that failed after a handler ran.
package idempotency
