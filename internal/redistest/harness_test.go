package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ctx returns a context bounded for one command on a healthy Redis.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// keysUnder lists the keys starting with prefix on every node of c.
func keysUnder(t *testing.T, c redis.UniversalClient, prefix string) []string {
	t.Helper()
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, node redis.Cmdable) error {
		it := node.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			keys = append(keys, it.Val())
			mu.Unlock()
		}
		return it.Err()
	}
	var err error
	if cc, ok := c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx(t), func(ctx context.Context, node *redis.Client) error { return scan(ctx, node) })
	} else {
		err = scan(ctx(t), c)
	}
	if err != nil {
		t.Fatalf("scanning %s*: %v", prefix, err)
	}
	slices.Sort(keys)
	return keys
}

func TestPrefixHasNoHashTagNorGlob(t *testing.T) {
	for _, name := range []string{"TestX", "TestX/{tag}", "Test*?[a]\\b^{}", strings.Repeat("long", 40), "TestÜnicode/ sub"} {
		p := newPrefix(name)
		if strings.ContainsAny(p, "{}*?[]\\^ ") {
			t.Errorf("newPrefix(%q) = %q: holds a hash tag or glob character", name, p)
		}
		if !strings.HasPrefix(p, "bwt:") || !strings.HasSuffix(p, ":") || len(p) > 4+48+1+16+1 {
			t.Errorf("newPrefix(%q) = %q: not bwt:<name>:<random>: within bounds", name, p)
		}
		if q := newPrefix(name); q == p {
			t.Errorf("newPrefix(%q) twice gave %q both times", name, p)
		}
	}
}

// TestPrefixIsolation runs parallel tests on one Redis per flavour: each
// sees only its own keys, and its keys are gone once it ends.
func TestPrefixIsolation(t *testing.T) {
	Flavours(t, func(t *testing.T, h *Harness) {
		const n = 4
		prefixes := make([]string, n)
		t.Run("group", func(t *testing.T) {
			for i := range n {
				t.Run(fmt.Sprint(i), func(t *testing.T) {
					t.Parallel()
					hi := h.For(t)
					prefixes[i] = hi.Prefix
					for _, k := range []string{"a", "b", "{tag}c"} {
						if err := hi.Client.Set(ctx(t), hi.Key(k), i, 0).Err(); err != nil {
							t.Fatal(err)
						}
					}
					got := keysUnder(t, h.Client, "bwt:")
					var mine []string
					for _, k := range got {
						if strings.HasPrefix(k, hi.Prefix) {
							mine = append(mine, k)
						}
					}
					want := []string{hi.Key("a"), hi.Key("b"), hi.Key("{tag}c")}
					slices.Sort(want)
					if !slices.Equal(mine, want) {
						t.Errorf("keys under my prefix = %q, want %q", mine, want)
					}
					for _, k := range want {
						v, err := hi.Client.Get(ctx(t), k).Int()
						if err != nil || v != i {
							t.Errorf("GET %s = %d, %v; want %d (another test wrote it?)", k, v, err, i)
						}
					}
				})
			}
		})
		seen := map[string]bool{}
		for _, p := range prefixes {
			if p == "" || seen[p] {
				t.Fatalf("prefixes not unique: %q", prefixes)
			}
			seen[p] = true
			if left := keysUnder(t, h.Client, p); len(left) > 0 {
				t.Errorf("keys left after their test ended: %q", left)
			}
		}
	})
}

// controlled runs fn on a miniredis and on a redis-server of the test's
// own (skipped without the binary), whatever the environment says.
func controlled(t *testing.T, fn func(t *testing.T, h *Harness)) {
	t.Run("miniredis", func(t *testing.T) { fn(t, NewMiniredis(t)) })
	t.Run("server", func(t *testing.T) { fn(t, NewServer(t)) })
}

func TestOutageKeepLoseRewind(t *testing.T) {
	controlled(t, func(t *testing.T, h *Harness) {
		c := h.Client
		a, b := h.Key("a"), h.Key("b")
		get := func(key string) string {
			t.Helper()
			v, err := c.Get(ctx(t), key).Result()
			if errors.Is(err, redis.Nil) {
				return "<nil>"
			}
			if err != nil {
				t.Fatalf("GET %s: %v", key, err)
			}
			return v
		}
		mustSet := func(key, v string) {
			t.Helper()
			if err := c.Set(ctx(t), key, v, 0).Err(); err != nil {
				t.Fatalf("SET %s: %v", key, err)
			}
		}

		mustSet(a, "1")
		snap := h.Snapshot()
		mustSet(a, "2")
		mustSet(b, "x")

		h.Down()
		if !h.Controllable() {
			t.Fatal("Controllable() = false on a controlled harness")
		}
		once := h.NewClient(&redis.UniversalOptions{MaxRetries: -1}) // no retries with backoff: fail at once
		if err := once.Get(ctx(t), a).Err(); err == nil || errors.Is(err, redis.Nil) {
			t.Fatalf("GET while down: err = %v, want a connection error", err)
		}
		if _, err := net.DialTimeout("tcp", h.Addrs()[0], time.Second); err == nil {
			t.Fatal("dialling a Redis that is down succeeded; want connection refused")
		}
		h.Up()
		if got := get(a) + get(b); got != "2x" {
			t.Fatalf("after Up: a+b = %q, want 2x (data kept)", got)
		}

		h.Down()
		h.UpFrom(snap)
		if got := get(a) + get(b); got != "1<nil>" {
			t.Fatalf("after UpFrom: a+b = %q, want 1<nil> (rewound to the snapshot)", got)
		}
		mustSet(b, "y") // the snapshot is not changed by later writes

		h.Down()
		h.UpEmpty()
		if got := get(a) + get(b); got != "<nil><nil>" {
			t.Fatalf("after UpEmpty: a+b = %q, want nothing (data lost)", got)
		}

		h.Down()
		h.UpFrom(snap) // a snapshot can be used again
		if got := get(a) + get(b); got != "1<nil>" {
			t.Fatalf("after a second UpFrom: a+b = %q, want 1<nil>", got)
		}
	})
}

// TestOutageLeavesOtherTestsAlone takes a test's own Redis down while
// another harness works on; the other never notices.
func TestOutageLeavesOtherTestsAlone(t *testing.T) {
	controlled(t, func(t *testing.T, h *Harness) {
		other := New(t)
		h.Down()
		if err := other.Client.Set(ctx(t), other.Key("k"), "v", 0).Err(); err != nil {
			t.Fatalf("another test's Redis failed during this test's outage: %v", err)
		}
		h.Up()
	})
}

// isDeadline reports whether err says a deadline passed: the context's, or
// the socket deadline go-redis set from it.
func isDeadline(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func TestLatency(t *testing.T) {
	controlled(t, func(t *testing.T, h *Harness) {
		k := h.Key("k")
		if err := h.Client.Set(ctx(t), k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		h.SetLatency(time.Hour) // longer than any test: only the deadline can end the wait

		short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		err := h.Client.Get(short, k).Err()
		if !isDeadline(err) {
			t.Fatalf("GET on a slow Redis under a 50ms deadline: err = %v, want a deadline error", err)
		}

		h.SetLatency(0)
		if v, err := h.Client.Get(ctx(t), k).Result(); err != nil || v != "v" {
			t.Fatalf("GET once latency is off = %q, %v; want v", v, err)
		}
	})
}

// TestLatencyNeedsContextTimeoutEnabled documents go-redis: a client
// without ContextTimeoutEnabled does not stop at the context's deadline
// but at its ReadTimeout.
func TestLatencyNeedsContextTimeoutEnabled(t *testing.T) {
	h := NewMiniredis(t)
	c := h.NewClient(&redis.UniversalOptions{ReadTimeout: 100 * time.Millisecond, MaxRetries: -1})
	if err := c.Ping(ctx(t)).Err(); err != nil { // connect before the latency
		t.Fatal(err)
	}
	h.SetLatency(time.Hour)
	err := c.Ping(ctx(t)).Err()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PING under a 10s context, ReadTimeout 100ms: err = %v, want the read timeout", err)
	}
}

func TestFull(t *testing.T) {
	controlled(t, func(t *testing.T, h *Harness) {
		c := h.Client
		k := h.Key("{t}k")
		if err := c.Set(ctx(t), k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		h.SetFull(true)
		write := redis.NewScript(`return redis.call('SET', KEYS[1], ARGV[1])`)
		pwrite := redis.NewScript(`return redis.pcall('SET', KEYS[1], ARGV[1])`)
		read := redis.NewScript(`return redis.call('GET', KEYS[1])`)
		checkFull := func(when string) {
			t.Helper()
			if err := c.Set(ctx(t), h.Key("{t}new"), "v", 0).Err(); !redis.IsOOMError(err) {
				t.Errorf("%s: SET on a full Redis: err = %v, want OOM", when, err)
			}
			if err := c.Incr(ctx(t), h.Key("{t}n")).Err(); !redis.IsOOMError(err) {
				t.Errorf("%s: INCR on a full Redis: err = %v, want OOM", when, err)
			}
			// miniredis wraps an error raised by redis.call (see SetFull).
			if err := write.Run(ctx(t), c, []string{k}, "w").Err(); err == nil || !strings.Contains(err.Error(), "OOM command not allowed") {
				t.Errorf("%s: a writing script on a full Redis: err = %v, want OOM", when, err)
			}
			if err := pwrite.Run(ctx(t), c, []string{k}, "w").Err(); !redis.IsOOMError(err) {
				t.Errorf("%s: a script returning redis.pcall's error on a full Redis: err = %v, want OOM", when, err)
			}
			if v, err := read.Run(ctx(t), c, []string{k}).Text(); err != nil || v != "v" {
				t.Errorf("%s: a reading script on a full Redis = %q, %v; want v", when, v, err)
			}
			if v, err := c.Get(ctx(t), k).Result(); err != nil || v != "v" {
				t.Errorf("%s: GET on a full Redis = %q, %v; want v", when, v, err)
			}
			if err := c.Expire(ctx(t), k, time.Hour).Err(); err != nil {
				t.Errorf("%s: EXPIRE on a full Redis: %v", when, err)
			}
		}
		checkFull("full")
		snap := h.Snapshot() // the harness's own work is not refused
		h.Down()
		h.UpFrom(snap)
		checkFull("full after a restart")
		if err := c.Del(ctx(t), k).Err(); err != nil {
			t.Errorf("DEL on a full Redis: %v", err)
		}

		h.SetFull(false)
		if err := c.Set(ctx(t), k, "v2", 0).Err(); err != nil {
			t.Fatalf("SET once no longer full: %v", err)
		}
	})
}

func TestNewIsShared(t *testing.T) {
	h := New(t)
	if h.Controllable() {
		t.Fatal("a harness from New is controllable")
	}
	if os.Getenv(EnvAddr) == "" && os.Getenv(EnvClusterAddrs) == "" && h.Flavour != Miniredis {
		t.Fatalf("New without environment gave %s, want miniredis", h.Flavour)
	}
}

func TestStores(t *testing.T) {
	var ran []string
	var mu sync.Mutex
	Stores(t,
		func(t *testing.T) counterStore { return &memCounter{m: map[string]int64{}} },
		func(t *testing.T, h *Harness) counterStore { return &redisCounter{c: h.Client, prefix: h.Prefix} },
		func(t *testing.T, newStore func(t *testing.T) counterStore) {
			mu.Lock()
			ran = append(ran, t.Name())
			mu.Unlock()
			t.Run("starts empty", func(t *testing.T) {
				t.Parallel()
				s := newStore(t)
				if n, err := s.Get(ctx(t), "x"); err != nil || n != 0 {
					t.Fatalf("Get on a new store = %d, %v; want 0", n, err)
				}
			})
			t.Run("adds", func(t *testing.T) {
				t.Parallel()
				s := newStore(t)
				for range 3 {
					if _, err := s.Add(ctx(t), "x", 2); err != nil {
						t.Fatal(err)
					}
				}
				if n, err := s.Get(ctx(t), "x"); err != nil || n != 6 {
					t.Fatalf("Get after 3 Add(2) = %d, %v; want 6", n, err)
				}
			})
		})
	want := []string{"TestStores/memory"}
	for _, f := range configured() {
		want = append(want, "TestStores/"+string(f))
	}
	if !slices.Equal(ran, want) {
		t.Fatalf("the suite ran on %q, want %q", ran, want)
	}
}

// counterStore is a toy store interface for TestStores.
type counterStore interface {
	Add(ctx context.Context, key string, n int64) (int64, error)
	Get(ctx context.Context, key string) (int64, error)
}

type memCounter struct {
	mu sync.Mutex
	m  map[string]int64
}

func (s *memCounter) Add(_ context.Context, key string, n int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] += n
	return s.m[key], nil
}

func (s *memCounter) Get(_ context.Context, key string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key], nil
}

type redisCounter struct {
	c      redis.UniversalClient
	prefix string
}

func (s *redisCounter) Add(ctx context.Context, key string, n int64) (int64, error) {
	return s.c.IncrBy(ctx, s.prefix+key, n).Result()
}

func (s *redisCounter) Get(ctx context.Context, key string) (int64, error) {
	n, err := s.c.Get(ctx, s.prefix+key).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

func TestSlot(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want int
	}{
		{"123456789", 12739}, // CRC16/XMODEM check value 0x31C3, from the Cluster spec
		{"", 0},
		{"{user1000}.following", Slot("user1000")},
		{"foo{}{bar}", Slot("foo{}{bar}")}, // empty first tag: whole key
		{"foo{{bar}}zap", Slot("{bar")},
		{"foo{bar}{zap}", Slot("bar")},
		{"bwt:T:00:{s}a", Slot("s")},
	} {
		if got := Slot(tc.key); got != tc.want {
			t.Errorf("Slot(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

// TestSlotMatchesRedis asks a real Cluster's CLUSTER KEYSLOT when one is
// configured, else a harness-owned server (CLUSTER KEYSLOT works there
// only with cluster mode, so it is skipped then).
func TestSlotMatchesRedis(t *testing.T) {
	if os.Getenv(EnvClusterAddrs) == "" {
		t.Skipf("needs %s (a Redis Cluster) for CLUSTER KEYSLOT", EnvClusterAddrs)
	}
	h := newHarness(t, targetFor(t, Cluster))
	for _, k := range []string{"a", "b", "{x}y", "foo{}{bar}", "foo{{bar}}zap", h.Key("{s}a"), "123456789"} {
		want, err := h.Client.ClusterKeySlot(ctx(t), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := Slot(k); int64(got) != want {
			t.Errorf("Slot(%q) = %d, Redis says %d", k, got, want)
		}
	}
}

func TestCluster(t *testing.T) {
	if os.Getenv(EnvClusterAddrs) == "" {
		t.Skipf("set %s to the seed nodes of a Redis Cluster to run this test", EnvClusterAddrs)
	}
	h := newHarness(t, targetFor(t, Cluster))
	if _, ok := h.Client.(*redis.ClusterClient); !ok {
		t.Fatalf("Client is a %T, want *redis.ClusterClient", h.Client)
	}
	swap := redis.NewScript(`
		redis.call('SET', KEYS[1], ARGV[1])
		redis.call('SET', KEYS[2], ARGV[2])
		return redis.call('GET', KEYS[1]) .. redis.call('GET', KEYS[2])`)

	tagged := []string{h.Key("{pair}a"), h.Key("{pair}b")}
	got, err := swap.Run(ctx(t), h.Client, tagged, "1", "2").Text()
	if err != nil || got != "12" {
		t.Fatalf("two-key script with a shared hash tag = %q, %v; want 12", got, err)
	}

	// Two untagged keys in different slots (the prefix adds no tag).
	a := h.Key("a")
	var b string
	for i := range 100 {
		if b = h.Key(fmt.Sprint("b", i)); Slot(b) != Slot(a) {
			break
		}
	}
	err = swap.Run(ctx(t), h.Client, []string{a, b}, "1", "2").Err()
	if !redis.HasErrorPrefix(err, "CROSSSLOT") {
		t.Fatalf("two-key script over slots %d and %d: err = %v, want CROSSSLOT", Slot(a), Slot(b), err)
	}

	// Keys on several masters are all cleaned up by their test.
	var prefix string
	t.Run("cleanup", func(t *testing.T) {
		hs := h.For(t)
		prefix = hs.Prefix
		for i := range 50 {
			if err := hs.Client.Set(ctx(t), hs.Key(fmt.Sprint(i)), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if left := keysUnder(t, h.Client, prefix); len(left) > 0 {
		t.Errorf("%d keys left on the cluster after their test: %q", len(left), left)
	}
}

// TestServerSkipsWithoutBinary checks the message a machine without Redis
// gets.
func TestServerSkipsWithoutBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var skipped bool
	t.Run("server", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		NewServer(t)
	})
	if !skipped {
		t.Fatal("NewServer without redis-server on PATH did not skip")
	}
}

func TestControlled(t *testing.T) {
	var ran []string
	Controlled(t, func(t *testing.T, h *Harness) {
		if !h.Controllable() {
			t.Errorf("%s: not controllable", h.Flavour)
		}
		ran = append(ran, string(h.Flavour))
	})
	want := []string{"miniredis"}
	if _, err := exec.LookPath("redis-server"); err == nil && os.Getenv(EnvAddr) != "" {
		want = append(want, "server") // without the binary, the subtest skips
	}
	if !slices.Equal(ran, want) {
		t.Fatalf("Controlled ran on %q, want %q", ran, want)
	}
}

// TestLeftDown ends tests with their Redis down, slowed and full: the
// cleanups still stop everything (goleak in TestMain checks it).
func TestLeftDown(t *testing.T) {
	controlled(t, func(t *testing.T, h *Harness) {
		t.Run("down", func(t *testing.T) {
			hs := h.For(t)
			if err := hs.Client.Set(ctx(t), hs.Key("k"), "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			hs.SetLatency(time.Hour)
			hs.SetFull(true)
			hs.Down()
		})
		h.Up() // the subtest's keys were not cleaned while down; they are still there
		h.SetLatency(0)
		if n, err := h.Client.DBSize(ctx(t)).Result(); err != nil || n != 1 {
			t.Fatalf("DBSIZE after the subtest = %d, %v; want its 1 key", n, err)
		}
	})
	t.Run("ends down", func(t *testing.T) {
		h := NewMiniredis(t)
		h.SetLatency(time.Hour)
		h.Down()
	})
}
