package benchmarks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/idempotency/redisstore"
)

// cmdCounter counts the commands a go-redis client sends.
type cmdCounter struct{ n atomic.Int64 }

func (c *cmdCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *cmdCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *cmdCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

// benchRun makes every run's Redis keys its own, so a "new" run never
// finds the keys of an earlier one.
// (a real Redis keeps records between processes: hence the start time).
var (
	benchRun    atomic.Int64
	benchPrefix = "bench:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
)

var created = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	w.Write([]byte(`{"id":"ord_1","status":"created"}`))
})

// benchIdem serves POSTs through h in-process: "new" sends a fresh key
// every time (claim, run, store), "replay" the same key (one lookup).
func benchIdem(b *testing.B, h http.Handler, replay bool, cmds *cmdCounter) {
	body := `{"amount":10}`
	var i int
	b.ReportAllocs()
	if cmds != nil {
		cmds.n.Store(0)
	}
	b.ResetTimer()
	for b.Loop() {
		key := "bench-replay"
		if !replay {
			i++
			key = "bench-" + strconv.Itoa(i)
		}
		req := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(body))
		req.Header.Set("Idempotency-Key", key)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	if cmds != nil {
		b.ReportMetric(float64(cmds.n.Load())/float64(b.N), "roundtrips/op")
	}
}

func redisFor(b *testing.B) (redis.UniversalClient, *cmdCounter) {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(mr.Close)
		addr = mr.Addr()
	}
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}})
	b.Cleanup(func() { rdb.Close() })
	c := &cmdCounter{}
	rdb.AddHook(c)
	return rdb, c
}

// BenchmarkIdempotency is the cost the middleware adds to a POST, with the
// memory store and with Redis (miniredis in-process, or the server at
// REDIS_ADDR), beside the bare handler; Redis rows report round trips.
func BenchmarkIdempotency(b *testing.B) {
	b.Run("bare", func(b *testing.B) { benchIdem(b, created, false, nil) })
	for _, replay := range []bool{false, true} {
		name := "new"
		if replay {
			name = "replay"
		}
		b.Run("memory-"+name, func(b *testing.B) {
			k := idempotency.New(idempotency.Config{MaxResponseBytes: 1 << 10})
			defer k.Close()
			benchIdem(b, k.Handler(created), replay, nil)
		})
		b.Run("redis-"+name, func(b *testing.B) {
			rdb, cmds := redisFor(b)
			k := idempotency.New(idempotency.Config{Store: redisstore.New(rdb, redisstore.Config{Prefix: benchPrefix + strconv.FormatInt(benchRun.Add(1), 10) + ":"})})
			defer k.Close()
			// Load the scripts once, outside the count.
			k.Do(context.Background(), idempotency.Request{Key: "warm"}, func(context.Context) (*idempotency.Record, error) {
				return &idempotency.Record{Status: 200}, nil
			})
			benchIdem(b, k.Handler(created), replay, cmds)
		})
	}
}
