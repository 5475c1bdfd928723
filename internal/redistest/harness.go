package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Flavour names the kind of Redis a Harness talks to.
type Flavour string

// The flavours. Which ones a run uses is chosen by the environment; see the
// package doc.
const (
	// Miniredis is an embedded, in-process miniredis: the default, needing
	// nothing but Go.
	Miniredis Flavour = "miniredis"
	// Server is a real redis-server: the one REDIS_ADDR names, or (from
	// [NewServer] and [Controlled]) one the harness started for the test.
	Server Flavour = "server"
	// Cluster is a real Redis Cluster whose seed nodes REDIS_CLUSTER_ADDRS
	// names.
	Cluster Flavour = "cluster"
)

// The environment variables that select real Redis flavours.
const (
	EnvAddr         = "REDIS_ADDR"          // host:port of a real redis-server
	EnvClusterAddrs = "REDIS_CLUSTER_ADDRS" // comma-separated seed nodes of a Redis Cluster
)

// opTimeout bounds every command the harness itself sends (PING, cleanup,
// snapshots), so a dead Redis fails a test instead of hanging it.
const opTimeout = 10 * time.Second

// A Harness gives one test a Redis client and a key prefix of its own.
//
// Client and Prefix are set by the constructors and must not be reassigned.
// A Harness belongs to the test that made it (see [Harness.For] for its
// subtests). Its methods fail that test on error (with t.Fatalf), so call
// them from the test's goroutine; Client is safe for concurrent use.
type Harness struct {
	// Client talks to the Redis of this harness. It is closed when the test
	// ends. Its ContextTimeoutEnabled is true, so a command's socket I/O
	// stops at the deadline of the context it runs under (go-redis's
	// default is to ignore context deadlines and use ReadTimeout, 3s).
	Client redis.UniversalClient
	// Prefix is unique to this harness's test and starts every key the
	// test writes. It holds no hash tag ("{...}") and no glob
	// metacharacter, so the hash tags of the keys a package builds after it
	// decide their slots on Cluster (a prefix with a tag would put every key
	// in one slot and hide CROSSSLOT errors).
	Prefix string
	// Flavour is the kind of Redis behind Client.
	Flavour Flavour

	t   testing.TB
	tgt *target
}

// target is one Redis that harnesses talk to.
type target struct {
	flavour Flavour
	addrs   []string // what test clients dial (the proxy, for a controlled target)
	direct  []string // what the harness dials for cleanup and snapshots
	ctl     *control // nil unless the test may take this Redis down
	mini    *miniredis.Miniredis
}

// New returns a harness on the Redis the environment selects:
// REDIS_CLUSTER_ADDRS if set, else REDIS_ADDR if set, else a miniredis
// started for t and closed when t ends. To cover every configured flavour,
// use [Flavours] instead.
func New(t testing.TB) *Harness {
	t.Helper()
	f := Miniredis
	switch {
	case os.Getenv(EnvClusterAddrs) != "":
		f = Cluster
	case os.Getenv(EnvAddr) != "":
		f = Server
	}
	return newHarness(t, targetFor(t, f))
}

// Flavours runs fn once per configured flavour, each in a subtest named
// after it: "miniredis" always, "server" when REDIS_ADDR is set, "cluster"
// when REDIS_CLUSTER_ADDRS is set. Each subtest gets a harness whose Redis
// is shared by every [Harness.For] derived from it; the miniredis is started
// for that subtest alone.
//
// The real flavours are shared: a test cannot take them down. Tests of
// outages use [Controlled].
func Flavours(t *testing.T, fn func(t *testing.T, h *Harness)) {
	t.Helper()
	for _, f := range configured() {
		t.Run(string(f), func(t *testing.T) {
			fn(t, newHarness(t, targetFor(t, f)))
		})
	}
}

// Controlled runs fn once per flavour whose Redis the test may take down,
// slow down or fill, each in a subtest named after it: "miniredis" always
// ([NewMiniredis]), and "server" ([NewServer], a redis-server process of
// the test's own) when REDIS_ADDR is set. A Redis Cluster is never
// controlled: it is shared by the whole run.
func Controlled(t *testing.T, fn func(t *testing.T, h *Harness)) {
	t.Helper()
	t.Run(string(Miniredis), func(t *testing.T) { fn(t, NewMiniredis(t)) })
	if os.Getenv(EnvAddr) != "" {
		t.Run(string(Server), func(t *testing.T) { fn(t, NewServer(t)) })
	}
}

// configured lists the flavours this run covers, miniredis first.
func configured() []Flavour {
	fs := []Flavour{Miniredis}
	if os.Getenv(EnvAddr) != "" {
		fs = append(fs, Server)
	}
	if os.Getenv(EnvClusterAddrs) != "" {
		fs = append(fs, Cluster)
	}
	return fs
}

// targetFor makes the Redis of flavour f available to t: a fresh miniredis,
// or the configured real server or cluster, checked with a PING.
func targetFor(t testing.TB, f Flavour) *target {
	t.Helper()
	var tgt *target
	switch f {
	case Miniredis:
		m := miniredis.NewMiniRedis()
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			t.Fatalf("redistest: starting miniredis: %v", err)
		}
		t.Cleanup(m.Close)
		tgt = &target{flavour: f, addrs: []string{m.Addr()}, mini: m}
	case Server:
		addr := os.Getenv(EnvAddr)
		tgt = &target{flavour: f, addrs: []string{addr}}
	case Cluster:
		var seeds []string
		for _, a := range strings.Split(os.Getenv(EnvClusterAddrs), ",") {
			if a = strings.TrimSpace(a); a != "" {
				seeds = append(seeds, a)
			}
		}
		if len(seeds) == 0 {
			t.Fatalf("redistest: %s=%q names no seed node", EnvClusterAddrs, os.Getenv(EnvClusterAddrs))
		}
		tgt = &target{flavour: f, addrs: seeds}
	default:
		t.Fatalf("redistest: unknown flavour %q", f)
	}
	tgt.direct = tgt.addrs
	if f != Miniredis {
		c := tgt.client(tgt.addrs, nil)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := c.Ping(ctx).Err(); err != nil {
			env := EnvAddr
			if f == Cluster {
				env = EnvClusterAddrs
			}
			t.Fatalf("redistest: %s=%s does not answer PING: %v", env, os.Getenv(env), err)
		}
	}
	return tgt
}

// client returns a client for addrs, in cluster mode on a Cluster target.
// opts may be nil; its Addrs and IsClusterMode are overwritten.
func (tgt *target) client(addrs []string, opts *redis.UniversalOptions) redis.UniversalClient {
	o := redis.UniversalOptions{ContextTimeoutEnabled: true}
	if opts != nil {
		o = *opts
	}
	o.Addrs = addrs
	o.IsClusterMode = tgt.flavour == Cluster
	return redis.NewUniversalClient(&o)
}

// newHarness gives t a client on tgt and a fresh prefix whose keys are
// deleted when t ends.
func newHarness(t testing.TB, tgt *target) *Harness {
	t.Helper()
	h := &Harness{Prefix: newPrefix(t.Name()), Flavour: tgt.flavour, t: t, tgt: tgt}
	h.Client = h.NewClient(nil)
	t.Cleanup(h.cleanKeys) // runs before the client is closed: cleanups run last-in first-out
	return h
}

// For returns a harness for t (typically a subtest of the harness's test)
// on the same Redis, with its own client and prefix; its keys are deleted
// when t ends. A controlled Redis stays controlled: [Harness.Down] through
// either harness takes it down for both.
func (h *Harness) For(t testing.TB) *Harness {
	t.Helper()
	return newHarness(t, h.tgt)
}

// Key returns Prefix + name.
func (h *Harness) Key(name string) string { return h.Prefix + name }

// Addrs returns the addresses a client of this harness's Redis dials: one
// for miniredis and a server (the latency proxy's, for a controlled
// harness), the seed nodes for a Cluster.
func (h *Harness) Addrs() []string { return append([]string(nil), h.tgt.addrs...) }

// NewClient returns another client on this harness's Redis, closed when the
// test ends, built from opts (nil: the options of [Harness.Client]). Its
// Addrs and IsClusterMode are set by the harness. Use it to test a feature
// with client options of its own, such as ContextTimeoutEnabled false.
func (h *Harness) NewClient(opts *redis.UniversalOptions) redis.UniversalClient {
	c := h.tgt.client(h.tgt.addrs, opts)
	h.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Miniredis returns the miniredis behind a [Miniredis]-flavoured harness,
// and nil for the other flavours. Use it only for what the other flavours
// cannot do (FastForward of TTLs), and never to Close or Restart it: use
// [Harness.Down] and [Harness.Up].
func (h *Harness) Miniredis() *miniredis.Miniredis { return h.tgt.mini }

// newPrefix builds "bwt:<test name>:<16 random hex digits>:". The test name
// is kept for whoever reads a leftover key; the random part makes the
// prefix unique across processes sharing one server. Only letters, digits
// and "/_.-" survive from the name, so the prefix holds neither a hash tag
// nor a glob metacharacter (cleanup matches it with SCAN MATCH prefix*).
func newPrefix(name string) string {
	var b strings.Builder
	b.WriteString("bwt:")
	for i, r := range name {
		if i >= 48 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("/_.-", r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:]) // never fails (crypto/rand documents it)
	fmt.Fprintf(&b, ":%s:", hex.EncodeToString(rnd[:]))
	return b.String()
}

// cleanKeys deletes every key under the prefix, on every master of a
// Cluster. A controlled Redis that is down is skipped: it dies with the
// test anyway.
func (h *Harness) cleanKeys() {
	if ctl := h.tgt.ctl; ctl != nil && !ctl.isUp() {
		return
	}
	c := h.tgt.client(h.tgt.direct, nil)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var err error
	if cc, ok := c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return deleteMatching(ctx, node, h.Prefix)
		})
	} else {
		err = deleteMatching(ctx, c, h.Prefix)
	}
	if err != nil {
		h.t.Errorf("redistest: deleting the keys under %q: %v", h.Prefix, err)
	}
}

// deleteMatching deletes the keys starting with prefix that c's node holds,
// one UNLINK per key (keys of different slots cannot share a command).
func deleteMatching(ctx context.Context, c redis.Cmdable, prefix string) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, prefix+"*", 500).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Unlink(ctx, k)
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, cmd := range cmds {
				if err := cmd.Err(); err != nil {
					return err
				}
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
