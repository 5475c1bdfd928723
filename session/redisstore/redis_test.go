package redisstore_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/session"
	"github.com/bulwark-go/bulwark/session/internal/storetest"
	"github.com/bulwark-go/bulwark/session/redisstore"
)

// roundTrips counts what a client sends to Redis: one per command, one per
// pipeline.
type roundTrips struct{ n atomic.Int64 }

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestRoundTrips counts Redis round trips per request on every flavour: none
// for a request that does not touch its session, one for a read, one for a
// write.
func TestRoundTrips(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		rt := &roundTrips{}
		h.Client.AddHook(rt)
		store := redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix})
		if err := store.LoadScripts(context.Background()); err != nil {
			t.Fatal(err)
		}
		m := session.New(session.Config{Store: store})
		defer m.Close()
		_, c := storetest.NewServer(t, m, storetest.App)
		c.Must("/put?k=warm&v=1")
		for _, step := range []struct {
			path string
			want int64
		}{
			{"/noop", 0},
			{"/get?k=warm", 1},
			{"/put?k=a&v=1", 1},
			{"/del?k=a", 1},
			{"/keys", 1},
		} {
			before := rt.n.Load()
			c.Must(step.path)
			if got := rt.n.Load() - before; got != step.want {
				t.Errorf("%s took %d Redis round trips, want %d", step.path, got, step.want)
			}
		}
		fresh := c.Clone()
		fresh.Token = ""
		before := rt.n.Load()
		fresh.Must("/put?k=a&v=1")
		if got := rt.n.Load() - before; got != 1 {
			t.Errorf("creating a session took %d round trips, want 1", got)
		}
		// After a SCRIPT FLUSH (a restart, a failover), commits still
		// work: EVALSHA's NOSCRIPT is answered by EVAL, one round trip
		// more. Only on the test's own miniredis: a flush on a shared
		// server would cost other packages' tests a round trip.
		if h.Flavour != redistest.Miniredis {
			return
		}
		if err := h.Client.ScriptFlush(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		before = rt.n.Load()
		c.Must("/put?k=after-flush&v=1")
		if got := rt.n.Load() - before; got != 2 || c.Must("/get?k=after-flush") != "1" {
			t.Errorf("a commit after SCRIPT FLUSH took %d round trips (want 2) or was lost", got)
		}
	})
}

// TestRedisDown takes Redis down under a live session: requests that use
// the session get the ErrorHandler's 503 and no cookie, requests that do
// not are served, and the session is intact once Redis is back.
func TestRedisDown(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		var events atomic.Int64
		// go-redis stops dialling after PoolSize failed dials in a row and
		// probes once a second until one succeeds, so a client may fail
		// for up to a second after Redis is back. A pool larger than the
		// dials this test fails keeps that probe out of the test (which
		// must not sleep); it is documented in the package doc.
		client := h.NewClient(&redis.UniversalOptions{ContextTimeoutEnabled: true, PoolSize: 1000})
		m := session.New(session.Config{
			Store: redisstore.New(client, redisstore.Config{Prefix: h.Prefix, Timeout: 300 * time.Millisecond}),
			OnStoreError: func(ctx context.Context, ev session.StoreErrorEvent) {
				if !errors.Is(ev.Err, session.ErrStore) {
					t.Errorf("OnStoreError got %v", ev.Err)
				}
				events.Add(1)
			},
		})
		defer m.Close()
		_, c := storetest.NewServer(t, m, storetest.App)
		c.Must("/login?u=rupert")
		c.Must("/put?k=a&v=1")
		token := c.Token

		h.Down()
		for _, path := range []string{"/get?k=a", "/put?k=b&v=2", "/user", "/renew"} {
			code, body := c.Get(path)
			if code != http.StatusServiceUnavailable || !strings.Contains(body, "session: store unavailable") {
				t.Fatalf("%s with Redis down = %d %q, want 503", path, code, body)
			}
			if c.Token != token {
				t.Fatalf("%s with Redis down changed the cookie to %q", path, c.Token)
			}
		}
		anon := c.Clone()
		anon.Token = ""
		if code, _ := anon.Get("/put?k=x&v=1"); code != http.StatusServiceUnavailable || anon.Token != "" {
			t.Fatalf("a new session with Redis down = %d, cookie %q", code, anon.Token)
		}
		if body := c.Must("/noop"); body != "ok" {
			t.Fatalf("a request that does not touch its session failed with Redis down: %q", body)
		}
		if _, err := m.DestroyAll(context.Background(), "rupert"); !errors.Is(err, session.ErrStore) {
			t.Fatalf("DestroyAll with Redis down = %v", err)
		}
		if events.Load() < 5 {
			t.Fatalf("OnStoreError ran %d times", events.Load())
		}

		h.Up()
		if c.Must("/get?k=a") != "1" || c.Must("/get?k=b") != "<none>" || c.Must("/user") != "rupert" {
			t.Fatal("the session is not as it was before the outage")
		}
	})
}

// TestRedisSlow: a Redis slower than the store's Timeout is an outage.
func TestRedisSlow(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		m := session.New(session.Config{Store: redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix, Timeout: 50 * time.Millisecond})})
		defer m.Close()
		_, c := storetest.NewServer(t, m, storetest.App)
		c.Must("/put?k=a&v=1")
		h.SetLatency(500 * time.Millisecond)
		if code, _ := c.Get("/get?k=a"); code != http.StatusServiceUnavailable {
			t.Fatalf("a read past the timeout = %d, want 503", code)
		}
		h.SetLatency(0)
		if c.Must("/get?k=a") != "1" {
			t.Fatal("the session is gone after a slow spell")
		}
	})
}

// TestRedisFull: writes fail with 503, reads keep working.
func TestRedisFull(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		m := session.New(session.Config{Store: newRedis(t, h)})
		defer m.Close()
		_, c := storetest.NewServer(t, m, storetest.App)
		c.Must("/put?k=a&v=1")
		h.SetFull(true)
		if code, _ := c.Get("/put?k=b&v=2"); code != http.StatusServiceUnavailable {
			t.Fatalf("a write to a full Redis = %d, want 503", code)
		}
		if c.Must("/get?k=a") != "1" {
			t.Fatal("reads stopped working on a full Redis")
		}
		h.SetFull(false)
		c.Must("/put?k=b&v=2")
		if c.Must("/keys") != "a,b" {
			t.Fatal("writes did not recover")
		}
	})
}

// TestRedisTTL: the store's TTL ends an idle session server-side, and
// touches move it (miniredis FastForward).
func TestRedisTTL(t *testing.T) {
	h := redistest.NewMiniredis(t)
	mr := h.Miniredis()
	m := session.New(session.Config{Store: newRedis(t, h), IdleTimeout: 10 * time.Minute, TouchAfter: -1})
	defer m.Close()
	_, c := storetest.NewServer(t, m, storetest.App)
	c.Must("/put?k=a&v=1")
	mr.FastForward(9 * time.Minute)
	if c.Must("/get?k=a") != "1" { // touches: TTL back to 10 minutes
		t.Fatal("expired early")
	}
	mr.FastForward(9 * time.Minute)
	if c.Must("/get?k=a") != "1" {
		t.Fatal("the touch did not extend the TTL")
	}
	mr.FastForward(10*time.Minute + time.Second)
	if v := c.Must("/get?k=a"); v != "<none>" {
		t.Fatalf("an idle session outlived its TTL: %q", v)
	}
	for _, k := range mr.Keys() {
		if strings.HasPrefix(k, h.Prefix+"{") && !strings.HasSuffix(k, ":x") {
			t.Fatalf("session key %q left in Redis", k)
		}
	}
}

// TestNoTokenInRedis: nothing in Redis holds the cookie's token.
func TestNoTokenInRedis(t *testing.T) {
	h := redistest.NewMiniredis(t)
	m := session.New(session.Config{Store: newRedis(t, h)})
	defer m.Close()
	_, c := storetest.NewServer(t, m, storetest.App)
	c.Must("/login?u=sybil")
	c.Must("/put?k=a&v=1")
	dump := h.Miniredis().Dump()
	if c.Token == "" || strings.Contains(dump, c.Token) {
		t.Fatalf("the token %q appears in Redis:\n%s", c.Token, dump)
	}
	for _, k := range h.Miniredis().Keys() {
		if strings.Contains(k, c.Token) {
			t.Fatalf("key %q holds the token", k)
		}
	}
}

func TestNewValidates(t *testing.T) {
	h := redistest.NewMiniredis(t)
	for _, cfg := range []redisstore.Config{{Prefix: "a{b}"}, {Timeout: -1}, {Timeout: 2 * redisstore.MaxTimeout}} {
		if cfg.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", cfg)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", cfg)
				}
			}()
			redisstore.New(h.Client, cfg)
		}()
	}
	defer func() {
		if recover() == nil {
			t.Error("New(nil) did not panic")
		}
	}()
	redisstore.New(nil, redisstore.Config{})
}
