package benchmarks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/session"
	"github.com/bulwark-go/bulwark/session/redisstore"
)

// Per-request cost of server-side sessions in Redis: bulwark's session
// package against alexedwards/scs with its go-redis store, on the same
// Redis (an in-process miniredis, and the server at REDIS_ADDR when set).
// Each op is one request through the middleware (ServeHTTP with a recorder,
// so no HTTP socket is measured), carrying the cookie of a live session.
// Besides ns/op, each benchmark reports Redis round trips per request
// (commands plus pipelines, counted by a go-redis hook).
//
// Work per request:
//   - untouched: the handler does not use the session;
//   - read: one Get;
//   - write: one Put, nothing read;
//   - readwrite: a Get then a Put of the same key (a counter).
//
// Both managers enforce a 30-minute idle timeout and a 12-hour lifetime
// (scs: IdleTimeout and Lifetime, which make scs re-save the session on
// every request; bulwark extends the idle deadline at most once per
// TouchAfter, 3 minutes by default). "scs-noidle" is scs without an idle
// timeout: less work than asked for, shown for reference.
//
// On miniredis, ns/op and B/op of a request that commits with bulwark are
// dominated by miniredis itself, in the same process: it builds a fresh
// gopher-lua interpreter for every script call (about 240 KiB and 900
// allocations). scs sends plain GET and SET. Compare ns/op on a real
// server (REDIS_ADDR); round trips are the same on both.

type rtCounter struct{ n atomic.Int64 }

func (c *rtCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *rtCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *rtCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

type sessionWork struct {
	name string
	// bulwark and scs handlers for the same work.
	bulwark func(r *http.Request)
	scs     func(sm *scs.SessionManager, r *http.Request)
}

var sessionWorks = []sessionWork{
	{"untouched", func(*http.Request) {}, func(*scs.SessionManager, *http.Request) {}},
	{"read",
		func(r *http.Request) { session.Get[int](r.Context(), "n") },
		func(sm *scs.SessionManager, r *http.Request) { sm.GetInt(r.Context(), "n") }},
	{"write",
		func(r *http.Request) { session.Put(r.Context(), "n", 7) },
		func(sm *scs.SessionManager, r *http.Request) { sm.Put(r.Context(), "n", 7) }},
	{"readwrite",
		func(r *http.Request) {
			n, _ := session.Get[int](r.Context(), "n")
			session.Put(r.Context(), "n", n+1)
		},
		func(sm *scs.SessionManager, r *http.Request) {
			sm.Put(r.Context(), "n", sm.GetInt(r.Context(), "n")+1)
		}},
}

// redisTargets returns the Redis clients to run on: a miniredis, plus
// REDIS_ADDR's server when set.
func redisTargets(b *testing.B) map[string]*redis.Client {
	mr := miniredis.RunT(b)
	out := map[string]*redis.Client{"miniredis": redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})}
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		out["server"] = redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	}
	for _, c := range out {
		b.Cleanup(func() { c.Close() })
	}
	return out
}

// seed runs one request that puts "n" and returns its session cookie.
func seed(b *testing.B, h http.Handler, name string) *http.Cookie {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/seed", nil))
	for _, c := range rec.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	b.Fatalf("no %s cookie after seeding: %v", name, rec.Result().Header)
	return nil
}

func runSession(b *testing.B, rt *rtCounter, h http.Handler, cookie *http.Cookie) {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(cookie)
	// Warm up: scripts loaded, connections open.
	for range 3 {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := rt.n.Load()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	b.ReportMetric(float64(rt.n.Load()-start)/float64(b.N), "roundtrips/op")
}

func BenchmarkSession(b *testing.B) {
	for target, client := range redisTargets(b) {
		rt := &rtCounter{}
		client.AddHook(rt)
		for _, w := range sessionWorks {
			b.Run(target+"/"+w.name+"/bulwark", func(b *testing.B) {
				m := session.New(session.Config{
					Store:       redisstore.New(client, redisstore.Config{Prefix: "bench:bulwark:"}),
					IdleTimeout: 30 * time.Minute, Lifetime: 12 * time.Hour,
				})
				defer m.Close()
				h := m.Handler(http.HandlerFunc(func(w2 http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/seed" {
						session.Put(r.Context(), "n", 1)
						return
					}
					w.bulwark(r)
				}))
				runSession(b, rt, h, seed(b, h, session.DefaultCookieName))
			})
			for _, idle := range []bool{true, false} {
				name := "scs"
				if !idle {
					name = "scs-noidle"
				}
				b.Run(target+"/"+w.name+"/"+name, func(b *testing.B) {
					sm := scs.New()
					sm.Store.(*memstore.MemStore).StopCleanup() // scs.New starts a memory store we replace (see TestMain)
					sm.Store = goredisstore.NewWithPrefix(client, "bench:scs:")
					sm.Lifetime = 12 * time.Hour
					if idle {
						sm.IdleTimeout = 30 * time.Minute
					}
					h := sm.LoadAndSave(http.HandlerFunc(func(w2 http.ResponseWriter, r *http.Request) {
						if r.URL.Path == "/seed" {
							sm.Put(r.Context(), "n", 1)
							return
						}
						w.scs(sm, r)
					}))
					runSession(b, rt, h, seed(b, h, sm.Cookie.Name))
				})
			}
		}
	}
}
