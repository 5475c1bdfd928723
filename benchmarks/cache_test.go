package benchmarks

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	rediscache "github.com/go-redis/cache/v9"
	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/cache"
	"github.com/bulwark-go/bulwark/cache/redisstore"
)

// The in-process hit: the path of nearly every Get of a warm cache. Each
// cache holds the same 1,024 string keys (capacity 10,000) and is read in
// the same order. "otter" is otter v2 used directly (GetIfPresent, no
// expiry, the floor bulwark builds on); "otter-ttl" adds an expire-after-
// write policy, which is what a user gets from otter for a TTL cache;
// "go-redis-cache" is github.com/go-redis/cache/v9 with only its TinyLFU
// local tier (it keeps bytes and msgpack-decodes each hit).

const cacheKeys = 1024

var cacheKeyNames = func() []string {
	ks := make([]string, cacheKeys)
	for i := range ks {
		ks[i] = fmt.Sprint("user:", i)
	}
	return ks
}()

type cacheCase struct {
	name  string
	setup func(b *testing.B) (get func(k string) string, done func())
}

var cacheCases = []cacheCase{
	{"bulwark", func(b *testing.B) (func(string) string, func()) {
		c := cache.New(cache.Config[string, string]{
			Load: func(_ context.Context, k string) (string, error) { return "value of " + k, nil },
			TTL:  time.Hour,
		})
		ctx := context.Background()
		for _, k := range cacheKeyNames {
			c.Get(ctx, k)
		}
		return func(k string) string {
			v, _ := c.Get(ctx, k)
			return v
		}, func() { c.Close() }
	}},
	{"otter", func(b *testing.B) (func(string) string, func()) {
		c := otter.Must(&otter.Options[string, string]{MaximumSize: cache.DefaultMaxEntries})
		for _, k := range cacheKeyNames {
			c.Set(k, "value of "+k)
		}
		return func(k string) string {
			v, _ := c.GetIfPresent(k)
			return v
		}, func() { c.StopAllGoroutines() }
	}},
	{"otter-ttl", func(b *testing.B) (func(string) string, func()) {
		c := otter.Must(&otter.Options[string, string]{
			MaximumSize:      cache.DefaultMaxEntries,
			ExpiryCalculator: otter.ExpiryWriting[string, string](time.Hour),
		})
		for _, k := range cacheKeyNames {
			c.Set(k, "value of "+k)
		}
		return func(k string) string {
			v, _ := c.GetIfPresent(k)
			return v
		}, func() { c.StopAllGoroutines() }
	}},
	{"go-redis-cache", func(b *testing.B) (func(string) string, func()) {
		c := rediscache.New(&rediscache.Options{LocalCache: rediscache.NewTinyLFU(cache.DefaultMaxEntries, time.Hour)})
		ctx := context.Background()
		for _, k := range cacheKeyNames {
			if err := c.Set(&rediscache.Item{Ctx: ctx, Key: k, Value: "value of " + k}); err != nil {
				b.Fatal(err)
			}
		}
		return func(k string) string {
			var v string
			if err := c.Get(ctx, k, &v); err != nil {
				panic(err)
			}
			return v
		}, func() {}
	}},
}

func BenchmarkCacheL1Hit(b *testing.B) {
	for _, cc := range cacheCases {
		b.Run(cc.name, func(b *testing.B) {
			get, done := cc.setup(b)
			defer done()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if get(cacheKeyNames[i&(cacheKeys-1)]) == "" {
					b.Fatal("miss")
				}
				i++
			}
		})
	}
}

func BenchmarkCacheL1HitParallel(b *testing.B) {
	for _, cc := range cacheCases {
		b.Run(cc.name, func(b *testing.B) {
			get, done := cc.setup(b)
			defer done()
			b.ReportAllocs()
			var seed atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(97))
				for pb.Next() {
					if get(cacheKeyNames[i&(cacheKeys-1)]) == "" {
						panic("miss")
					}
					i++
				}
			})
		})
	}
}

// roundTrips counts what a go-redis client sends: each command or
// pipeline is one round trip (a new connection's handshake excepted).
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name != "hello" && name != "client" {
			r.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() != "client" {
			r.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// BenchmarkCacheL2Hit is a Get served by Redis (no in-process tier): it
// reports round trips per op, which must be exactly 1. Against miniredis,
// or the server at REDIS_ADDR.
func BenchmarkCacheL2Hit(b *testing.B) {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		m := miniredis.RunT(b)
		addr = m.Addr()
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	prefix := fmt.Sprintf("bwbench:%d:", time.Now().UnixNano())
	loads := atomic.Int64{}
	cfg := cache.Config[string, string]{
		Load: func(_ context.Context, k string) (string, error) { loads.Add(1); return "value of " + k, nil },
		TTL:  time.Hour,
	}
	cfg.Store = redisstore.New(rdb, redisstore.Config{Prefix: prefix})
	warm := cache.New(cfg)
	defer warm.Close()
	ctx := context.Background()
	for _, k := range cacheKeyNames {
		warm.Get(ctx, k)
	}
	var rt roundTrips
	rdb.AddHook(&rt)
	cfg.MaxEntries = -1
	c := cache.New(cfg)
	defer c.Close()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Get(ctx, cacheKeyNames[i&(cacheKeys-1)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "trips/op")
	if rt.n.Load() != int64(b.N) {
		b.Fatalf("%d round trips for %d Gets, want exactly one each", rt.n.Load(), b.N)
	}
	if loads.Load() != cacheKeys {
		b.Fatalf("%d origin loads, want %d (the warm-up)", loads.Load(), cacheKeys)
	}
	keys, _ := rdb.Keys(ctx, prefix+"*").Result()
	if len(keys) > 0 {
		rdb.Del(ctx, keys...)
	}
}

// The cost of the per-entry expiry timer (each in-process entry holds a
// time.AfterFunc that marks it 1ms before its TTL ends, so that hits read
// no clock). Each iteration fills a fresh cache with 100,000 entries
// (capacity 200,000: no eviction) and reports, besides ns/op for the whole
// fill: ns/entry for one Set, B/entry of live heap once filled (after a
// GC, with the cache alive) and gc-ms for one full runtime.GC with the
// cache alive. "otter-ttl" is otter with expire-after-write (its timer
// wheel), "otter" is otter alone: the floors.
func BenchmarkCacheManyEntries(b *testing.B) {
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint("user:", i)
	}
	type filled struct {
		set  func(k string)
		done func()
	}
	cases := []struct {
		name string
		mk   func() filled
	}{
		{"bulwark", func() filled {
			c := cache.New(cache.Config[string, string]{
				Load:       func(_ context.Context, k string) (string, error) { return k, nil },
				TTL:        time.Hour,
				MaxEntries: 2 * n,
			})
			ctx := context.Background()
			return filled{func(k string) { c.Set(ctx, k, k) }, func() { c.Close() }}
		}},
		{"otter-ttl", func() filled {
			c := otter.Must(&otter.Options[string, string]{
				MaximumSize:      2 * n,
				ExpiryCalculator: otter.ExpiryWriting[string, string](time.Hour),
			})
			return filled{func(k string) { c.Set(k, k) }, func() { c.StopAllGoroutines() }}
		}},
		{"otter", func() filled {
			c := otter.Must(&otter.Options[string, string]{MaximumSize: 2 * n})
			return filled{func(k string) { c.Set(k, k) }, func() { c.StopAllGoroutines() }}
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var setNs, bytes, gcNs float64
			iters := 0
			for b.Loop() {
				b.StopTimer()
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				f := tc.mk()
				b.StartTimer()
				start := time.Now()
				for _, k := range keys {
					f.set(k)
				}
				setNs += float64(time.Since(start).Nanoseconds()) / n
				b.StopTimer()
				runtime.GC()
				gcStart := time.Now()
				runtime.GC()
				gcNs += float64(time.Since(gcStart).Nanoseconds())
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				bytes += float64(after.HeapAlloc-before.HeapAlloc) / n
				runtime.KeepAlive(f)
				f.done()
				iters++
				b.StartTimer()
			}
			b.ReportMetric(setNs/float64(iters), "ns/entry")
			b.ReportMetric(bytes/float64(iters), "B/entry")
			b.ReportMetric(gcNs/float64(iters)/1e6, "gc-ms")
		})
	}
}
