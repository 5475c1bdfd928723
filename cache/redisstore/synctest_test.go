package redisstore_test

import (
	"context"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/cache"
	"github.com/bulwark-go/bulwark/cache/redisstore"
)

// A value that is stale in Redis, within StaleWhileRevalidate, is served at
// once by an instance that reads it there, and refreshed in the
// background. Run in a synctest bubble over miniredis through an in-memory
// pipe, so the TTLs pass in fake time.
func TestStaleWhileRevalidateFromRedis(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A miniredis of the bubble's own: one whose server was started
		// outside (the harness's) cannot serve a pipe dialled inside.
		mr := miniredis.NewMiniRedis()
		defer mr.Close()
		rdb := redis.NewClient(&redis.Options{
			// An IP, not the default localhost: go-redis resolves a host
			// name (for its maintenance notifications), and the resolver's
			// process-wide state cannot be touched from inside a bubble.
			Addr:   "127.0.0.1:6379",
			Dialer: func(context.Context, string, string) (net.Conn, error) { return mr.Dial() },
		})
		defer rdb.Close()
		o := newOrigin()
		o.set("k", "v1")
		cfg := cache.Config[string, string]{
			Load: o.Load, TTL: 10 * time.Second, Jitter: -1, StaleWhileRevalidate: time.Minute,
			Store: redisstore.New(rdb, redisstore.Config{}),
		}
		a := cache.New(cfg)
		defer a.Close()
		if v, err := a.Get(context.Background(), "k"); err != nil || v != "v1" {
			t.Fatalf("Get = %q, %v", v, err)
		}
		cfg.MaxEntries = -1
		b := cache.New(cfg)
		defer b.Close()

		time.Sleep(20 * time.Second)
		o.set("k", "v2")
		o.mu.Lock()
		o.gate = make(chan struct{})
		o.mu.Unlock()
		if v, err := b.Get(context.Background(), "k"); err != nil || v != "v1" {
			t.Fatalf("stale in Redis, within the window: Get = %q, %v; want v1 at once", v, err)
		}
		synctest.Wait()
		if n := o.calls.Load(); n != 2 {
			t.Fatalf("origin calls = %d, want 2: one background refresh", n)
		}
		close(o.gate)
		synctest.Wait()
		if v, _ := b.Get(context.Background(), "k"); v != "v2" {
			t.Fatalf("after the refresh: %q, want v2 from Redis", v)
		}
		if n := o.calls.Load(); n != 2 {
			t.Fatalf("origin calls = %d, want 2", n)
		}
		if s := b.Stats(); s.StaleWhileRevalidate != 1 || s.HitsL2 != 2 {
			t.Fatalf("stats %+v", s)
		}
	})
}
