// Package redistest is the test harness of every Redis-backed package in
// bulwark: one call gives a test a [redis.UniversalClient] and a key
// prefix of its own, on an embedded miniredis, a real server or a real
// Redis Cluster, and a test that needs it can take its Redis down, slow it
// or fill it. Nobody writes a Redis mock.
//
// # Flavours
//
// The environment chooses the Redis:
//
//   - nothing set: an embedded miniredis, started for the test
//     ([Miniredis]); `go test ./...` needs nothing but Go;
//   - REDIS_ADDR=host:port: that real server too ([Server]);
//   - REDIS_CLUSTER_ADDRS=host:port,host:port,...: that Redis Cluster
//     too ([Cluster]); the harness's client is a [redis.ClusterClient].
//
// [Flavours] runs a test once per flavour (miniredis always, plus each one
// configured), [New] gives the one flavour the environment selects, and
// [Stores] runs a store's conformance suite over the memory store and
// every flavour.
//
// # Isolation
//
// Every harness has a [Harness.Prefix] unique to its test (the test's name
// and 64 random bits, "bwt:TestX/sub:3f9c0d...:"). Tests running in
// parallel on one server, in one process or several, never see each
// other's keys as long as every key they write starts with their prefix;
// a package under test takes the prefix as its configurable key prefix.
// When the test ends, the harness deletes the keys under its prefix, and
// only those (SCAN and UNLINK, on every master of a Cluster).
//
// The prefix never holds a hash tag ("{...}"), nor any glob character. The
// keys a package builds carry their own hash tags, which decide their
// slots on Cluster; a prefix with a tag would put every key of a test in
// one slot and hide the CROSSSLOT errors that a missing tag causes. [Slot]
// computes a key's slot on any flavour, so a suite can assert that the
// keys of one script share a slot even on miniredis.
//
// # Outages, latency, a full Redis
//
// A shared Redis cannot be taken down under the other tests' feet, so the
// controls work on a Redis of the test's own: [NewMiniredis] (a miniredis),
// [NewServer] (a redis-server process started by the harness on a free
// loopback port, files in t.TempDir(); skipped with a message when
// redis-server is not on PATH), or [Controlled], which runs a test over
// both (the server only when REDIS_ADDR is set, so a plain `go test` needs
// only Go). Clients reach a controlled Redis through a small loopback
// proxy of the harness's own, so:
//
//   - [Harness.Down] is a crash: the port refuses connections and open
//     ones are cut; [Harness.Up] brings the Redis back with its data kept,
//     [Harness.UpEmpty] with its data lost, [Harness.UpFrom] rewound to a
//     [Harness.Snapshot] taken earlier;
//   - [Harness.SetLatency] delays every command, identically on both
//     flavours, for timeout tests;
//   - [Harness.SetFull] makes writes fail with Redis's OOM error (maxmemory
//     with noeviction on a real server, the same refusal emulated on
//     miniredis), for tests of a full Redis.
//
// Everything the harness starts (miniredis, processes, proxies, clients)
// is stopped when the test ends, so goleak stays clean. A harness-owned
// redis-server is also killed by the kernel if the test binary dies
// without its cleanups (Linux).
//
// # Writing a Redis-backed package
//
// The conventions these tests prove are written in docs/redis.md: every
// Redis-backed feature takes a [redis.UniversalClient] and lives in a
// subpackage named redisstore of its primitive; multi-key operations are
// Lua scripts ([redis.NewScript]) whose keys share one hash tag; every
// operation runs under a bounded timeout taken from the caller's context;
// what happens when Redis is unreachable is a Config choice, counted in a
// metric, never a panic.
//
// A store's tests then read:
//
//	func TestStore(t *testing.T) {
//		redistest.Stores(t,
//			func(t *testing.T) session.Store { return session.NewMemoryStore(session.MemoryConfig{}) },
//			func(t *testing.T, h *redistest.Harness) session.Store {
//				return redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix})
//			},
//			storeSuite, // func(t *testing.T, newStore func(*testing.T) session.Store)
//		)
//	}
//
//	func TestStoreRedisDown(t *testing.T) {
//		redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
//			s := redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix})
//			// ... write, h.Down(), check the documented fail-open/closed
//			// behaviour, h.Up(), check recovery ...
//		})
//	}
//
// Real sockets do not follow a testing/synctest bubble's fake time: make
// harnesses outside any bubble, and test Redis timeouts with real (short)
// deadlines and [Harness.SetLatency], asserting outcomes, never durations.
// (A miniredis-only test that must run inside a bubble can dial
// [Harness.Miniredis] over an in-memory pipe: see miniredis's Dial.)
package redistest
