package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark/cache"
	"github.com/bulwark-go/bulwark/cache/redisstore"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// origin is a real loader with a call count; gate, when set, holds every
// call until closed.
type origin struct {
	calls atomic.Int64
	mu    sync.Mutex
	vals  map[string]string
	gate  chan struct{}
}

func newOrigin() *origin { return &origin{vals: map[string]string{}} }

func (o *origin) set(k, v string) { o.mu.Lock(); o.vals[k] = v; o.mu.Unlock() }

func (o *origin) Load(ctx context.Context, k string) (string, error) {
	o.calls.Add(1)
	o.mu.Lock()
	gate := o.gate
	o.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	v, ok := o.vals[k]
	if !ok {
		return "", cache.ErrNotFound
	}
	return v, nil
}

func (o *origin) LoadMany(_ context.Context, keys []string) (map[string]string, error) {
	o.calls.Add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	m := map[string]string{}
	for _, k := range keys {
		if v, ok := o.vals[k]; ok {
			m[k] = v
		}
	}
	return m, nil
}

// counter is a go-redis hook that counts what a client sends: each
// command or pipeline is one round trip. A new connection's handshake
// (HELLO and CLIENT commands) is not the cache's doing and is
// left out.
type counter struct {
	trips atomic.Int64
	mu    sync.Mutex
	names []string
}

func (c *counter) note(name string) {
	c.mu.Lock()
	c.names = append(c.names, name)
	c.mu.Unlock()
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name != "hello" && name != "client" { // a new connection's handshake
			c.trips.Add(1)
			c.note(name)
		}
		return next(ctx, cmd)
	}
}
func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		handshake := true
		for _, cmd := range cmds {
			handshake = handshake && cmd.Name() == "client"
		}
		if !handshake {
			c.trips.Add(1)
			c.note(fmt.Sprint("pipeline", len(cmds)))
		}
		return next(ctx, cmds)
	}
}

type instance struct {
	*cache.Cache[string, string]
	events chan cache.InvalidateEvent
}

func newInstance(t *testing.T, rdb redis.UniversalClient, prefix string, o *origin, cfg cache.Config[string, string]) instance {
	t.Helper()
	events := make(chan cache.InvalidateEvent, 100)
	cfg.Load = o.Load
	cfg.LoadMany = o.LoadMany
	if cfg.Store == nil {
		cfg.Store = redisstore.New(rdb, redisstore.Config{Prefix: prefix})
	}
	cfg.OnInvalidate = func(_ context.Context, ev cache.InvalidateEvent) { events <- ev }
	c := cache.New(cfg)
	t.Cleanup(func() { c.Close() })
	return instance{c, events}
}

func (in instance) get(t *testing.T, k string) string {
	t.Helper()
	v, err := in.Get(context.Background(), k)
	if err != nil {
		t.Fatalf("Get(%q): %v", k, err)
	}
	return v
}

// wait returns the next invalidation event, failing the test after a
// bound (a failure bound, not a wait for an effect: the event is what the
// test waits for).
func (in instance) wait(t *testing.T) cache.InvalidateEvent {
	t.Helper()
	select {
	case ev := <-in.events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no invalidation event within 10s")
		return cache.InvalidateEvent{}
	}
}

func TestSecondTierHitIsOneRoundTrip(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		o := newOrigin()
		o.set("k", "v")
		a := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{})
		a.get(t, "k")

		rdb := h.NewClient(nil)
		var cnt counter
		rdb.AddHook(&cnt)
		// No in-process tier: every Get goes to Redis.
		b := newInstance(t, rdb, h.Prefix, o, cache.Config[string, string]{MaxEntries: -1})
		for range 10 {
			if v := b.get(t, "k"); v != "v" {
				t.Fatalf("Get = %q", v)
			}
		}
		if n := cnt.trips.Load(); n != 10 {
			t.Fatalf("10 second-tier hits made %d round trips %v, want 10", n, cnt.names)
		}
		if o.calls.Load() != 1 {
			t.Fatalf("origin calls = %d, want 1", o.calls.Load())
		}
		if s := b.Stats(); s.HitsL2 != 10 || s.Misses != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestFirstInstanceFillsBothTiers(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		o := newOrigin()
		o.set("k", "v")
		a := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{})
		b := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{})
		a.get(t, "k")
		a.get(t, "k")
		b.get(t, "k")
		b.get(t, "k")
		if o.calls.Load() != 1 {
			t.Fatalf("origin calls = %d, want 1", o.calls.Load())
		}
		sa, sb := a.Stats(), b.Stats()
		if sa.Misses != 1 || sa.HitsL1 != 1 || sb.HitsL2 != 1 || sb.HitsL1 != 1 {
			t.Fatalf("stats a %+v b %+v", sa, sb)
		}
		// Not-found answers are shared too.
		if _, err := a.Get(context.Background(), "ghost"); !errors.Is(err, cache.ErrNotFound) {
			t.Fatal(err)
		}
		if _, err := b.Get(context.Background(), "ghost"); !errors.Is(err, cache.ErrNotFound) {
			t.Fatal(err)
		}
		if o.calls.Load() != 2 {
			t.Fatalf("origin calls = %d, want 2: b reads a's negative entry", o.calls.Load())
		}
	})
}

func TestInvalidationReachesOtherInstances(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		o := newOrigin()
		o.set("k", "v1")
		a := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{})
		b := newInstance(t, h.NewClient(nil), h.Prefix, o, cache.Config[string, string]{})
		c := newInstance(t, h.NewClient(nil), h.Prefix, o, cache.Config[string, string]{})
		for _, in := range []instance{a, b, c} {
			in.get(t, "k")
		}
		if err := a.Set(context.Background(), "k", "v2"); err != nil {
			t.Fatal(err)
		}
		for _, in := range []instance{b, c} {
			if ev := in.wait(t); ev.Gap || len(ev.Keys) != 1 || ev.Keys[0] != "k" {
				t.Fatalf("event %+v, want k", ev)
			}
			if v := in.get(t, "k"); v != "v2" {
				t.Fatalf("after another instance's Set: %q, want v2", v)
			}
		}
		if o.calls.Load() != 1 {
			t.Fatalf("origin calls = %d, want 1", o.calls.Load())
		}
		select {
		case ev := <-a.events:
			t.Fatalf("the publisher got its own invalidation %+v", ev)
		default:
		}

		o.set("k", "v3")
		if err := b.Delete(context.Background(), "k"); err != nil {
			t.Fatal(err)
		}
		for _, in := range []instance{a, c} {
			in.wait(t)
		}
		for _, in := range []instance{a, b, c} {
			if v := in.get(t, "k"); v != "v3" {
				t.Fatalf("after Delete: %q, want v3", v)
			}
		}
		if o.calls.Load() != 2 {
			t.Fatalf("origin calls = %d, want 2", o.calls.Load())
		}
	})
}

// lockWatch is the real Store, reporting each lost lock.
type lockWatch struct {
	*redisstore.Store
	lost chan string
}

func (s lockWatch) TryLock(ctx context.Context, key string, ttl time.Duration) (func(), bool, error) {
	release, ok, err := s.Store.TryLock(ctx, key, ttl)
	if err == nil && !ok {
		s.lost <- key
	}
	return release, ok, err
}

func TestThreeInstancesOneOriginCallWithTheLock(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		o := newOrigin()
		o.set("k", "v")
		o.gate = make(chan struct{})
		lost := make(chan string, 3)
		var ins []instance
		for range 3 {
			st := lockWatch{redisstore.New(h.NewClient(nil), redisstore.Config{Prefix: h.Prefix}), lost}
			ins = append(ins, newInstance(t, nil, h.Prefix, o, cache.Config[string, string]{
				Store: st, LockTTL: 10 * time.Second, LockPoll: 5 * time.Millisecond,
			}))
		}
		var wg sync.WaitGroup
		got := make([]string, 3)
		errs := make([]error, 3)
		for i, in := range ins {
			wg.Go(func() { got[i], errs[i] = in.Get(context.Background(), "k") })
		}
		for range 2 { // two instances find the lock taken and wait
			select {
			case <-lost:
			case <-time.After(10 * time.Second):
				t.Fatal("the losers never tried the lock")
			}
		}
		close(o.gate)
		wg.Wait()
		for i := range 3 {
			if errs[i] != nil || got[i] != "v" {
				t.Fatalf("instance %d: %q, %v", i, got[i], errs[i])
			}
		}
		if n := o.calls.Load(); n != 1 {
			t.Fatalf("origin calls = %d, want 1 across three instances", n)
		}
		var waits int64
		for _, in := range ins {
			waits += in.Stats().LockWaits
		}
		if waits != 2 {
			t.Fatalf("lock waits = %d, want 2", waits)
		}
	})
}

func TestGetManyOneRoundTripAcrossSlots(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		o := newOrigin()
		var keys []string
		slots := map[int]bool{}
		for i := range 20 {
			k := fmt.Sprint("key", i)
			keys = append(keys, k)
			o.set(k, fmt.Sprint("v", i))
			slots[redistest.Slot(h.Prefix+"v:"+k)] = true
		}
		if len(slots) < 2 {
			t.Fatal("the keys share a slot: the test would not show CROSSSLOT handling")
		}
		a := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{})
		m, err := a.GetMany(context.Background(), keys[:10])
		if err != nil || len(m) != 10 {
			t.Fatalf("GetMany = %v, %v", m, err)
		}
		if o.calls.Load() != 1 {
			t.Fatalf("origin calls = %d, want one LoadMany", o.calls.Load())
		}

		rdb := h.NewClient(nil)
		var cnt counter
		rdb.AddHook(&cnt)
		b := newInstance(t, rdb, h.Prefix, o, cache.Config[string, string]{MaxEntries: -1})
		m, err = b.GetMany(context.Background(), keys)
		if err != nil || len(m) != 20 {
			t.Fatalf("GetMany = %v, %v", m, err)
		}
		for i, k := range keys {
			if m[k] != fmt.Sprint("v", i) {
				t.Fatalf("%s = %q", k, m[k])
			}
		}
		// One read of all 20 keys, one LoadMany for the 10 missing, one
		// write of the 10 loaded.
		if n := cnt.trips.Load(); n != 2 {
			t.Fatalf("GetMany made %d round trips %v, want 2 (one read, one write)", n, cnt.names)
		}
		if o.calls.Load() != 2 {
			t.Fatalf("origin calls = %d, want 2", o.calls.Load())
		}
	})
}

func TestRedisDownReadsKeepWorking(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		o := newOrigin()
		o.set("a", "A")
		o.set("b", "B")
		c := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{})
		strict := newInstance(t, h.NewClient(nil), h.Prefix, o, cache.Config[string, string]{FailOnStoreError: true, MaxEntries: -1})
		c.get(t, "a")

		h.Down()
		if v := c.get(t, "a"); v != "A" {
			t.Fatalf("L1 during the outage: %q", v)
		}
		if v := c.get(t, "b"); v != "B" {
			t.Fatalf("origin during the outage: %q", v)
		}
		if v := c.get(t, "b"); v != "B" || o.calls.Load() != 2 {
			t.Fatalf("b not kept in L1: %q, %d calls", v, o.calls.Load())
		}
		if c.Stats().StoreErrors == 0 {
			t.Fatal("store errors not counted")
		}
		if err := c.Set(context.Background(), "x", "X"); !errors.Is(err, cache.ErrStore) {
			t.Fatalf("Set during the outage = %v, want ErrStore", err)
		}
		if _, err := strict.Get(context.Background(), "a"); !errors.Is(err, cache.ErrStore) {
			t.Fatalf("FailOnStoreError Get = %v, want ErrStore", err)
		}

		h.Up()
		// The subscription comes back, and the cache drops its L1: it may
		// have missed invalidations.
		for ev := c.wait(t); !ev.Gap; ev = c.wait(t) {
		}
		calls := o.calls.Load()
		if v := c.get(t, "a"); v != "A" || o.calls.Load() != calls {
			t.Fatalf("after the gap: %q from %d new origin calls, want A from Redis", v, o.calls.Load()-calls)
		}
		if s := c.Stats(); s.Gaps != 1 || s.HitsL2 != 1 {
			t.Fatalf("stats %+v, want one gap and one L2 hit", s)
		}
	})
}

func TestSlowRedisIsSkipped(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		o := newOrigin()
		o.set("a", "A")
		c := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{
			Store: redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix, Timeout: 50 * time.Millisecond}),
		})
		h.SetLatency(time.Second)
		defer h.SetLatency(0)
		if v := c.get(t, "a"); v != "A" {
			t.Fatalf("Get with a slow Redis = %q", v)
		}
		if c.Stats().StoreErrors == 0 {
			t.Fatal("timeouts not counted")
		}
	})
}

func TestFullRedisReadsGoOn(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		o := newOrigin()
		o.set("a", "A")
		o.set("b", "B")
		c := newInstance(t, h.Client, h.Prefix, o, cache.Config[string, string]{MaxEntries: -1})
		c.get(t, "a")
		h.SetFull(true)
		defer h.SetFull(false)
		if v := c.get(t, "a"); v != "A" || o.calls.Load() != 1 {
			t.Fatalf("read from a full Redis: %q, %d calls", v, o.calls.Load())
		}
		if v := c.get(t, "b"); v != "B" {
			t.Fatalf("load with a full Redis: %q", v)
		}
		if err := c.Set(context.Background(), "b", "B2"); !errors.Is(err, cache.ErrStore) || !redis.IsOOMError(errors.Unwrap(err)) {
			t.Fatalf("Set on a full Redis = %v, want ErrStore wrapping OOM", err)
		}
	})
}

func TestKeyTooLong(t *testing.T) {
	h := redistest.New(t)
	s := redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix})
	long := string(make([]byte, redisstore.MaxKeyLen+1))
	if _, err := s.Get(context.Background(), long); !errors.Is(err, redisstore.ErrKeyTooLong) {
		t.Fatalf("Get = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []redisstore.Config{{Timeout: -1}, {Timeout: redisstore.MaxTimeout + 1}, {Prefix: string(make([]byte, 300))}} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v: Validate = nil", cfg)
		}
	}
}
