package redistest

import "testing"

// Stores runs one conformance suite over every implementation of a store
// interface S: once on the memory store (in a subtest named "memory", when
// memory is not nil), then once per Redis flavour of [Flavours] (subtests
// "miniredis", "server", "cluster") on the Redis store that onRedis builds.
//
// The suite receives newStore, which returns a fresh, empty store for the
// test it is given (the suite's own t or any subtest's): on Redis, each
// call gets a harness of its own (see [Harness.For]), so subtests may run
// in parallel and never see each other's keys. A suite therefore checks
// behaviour through S alone and holds for every store.
//
// Redis-only behaviour (outages, a full or slow Redis) belongs in separate
// tests over [Controlled].
func Stores[S any](
	t *testing.T,
	memory func(t *testing.T) S,
	onRedis func(t *testing.T, h *Harness) S,
	suite func(t *testing.T, newStore func(t *testing.T) S),
) {
	t.Helper()
	if memory != nil {
		t.Run("memory", func(t *testing.T) { suite(t, memory) })
	}
	if onRedis == nil {
		return
	}
	Flavours(t, func(t *testing.T, h *Harness) {
		suite(t, func(st *testing.T) S { return onRedis(st, h.For(st)) })
	})
}
