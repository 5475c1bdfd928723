package redisstore_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/idempotency/internal/storetest"
	"github.com/bulwark-go/bulwark/idempotency/redisstore"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestConformance runs the store suite on every configured Redis flavour:
// miniredis always (with its clock fast-forwarded for the expiry checks),
// a real server with REDIS_ADDR, a Cluster with REDIS_CLUSTER_ADDRS.
func TestConformance(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		subject := storetest.Subject{
			New: func(t *testing.T) idempotency.Store {
				return redisstore.New(h.Client, redisstore.Config{Prefix: h.For(t).Prefix})
			},
		}
		if mr := h.Miniredis(); mr != nil {
			subject.Advance = func(t *testing.T, d time.Duration) { mr.FastForward(d) }
		}
		storetest.Run(t, subject)
	})
}

// counter counts the commands a client sends (a pipeline's commands
// count one each; a script run is one EVALSHA, or EVALSHA then EVAL the
// first time).
type counter struct{ n atomic.Int64 }

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// TestRoundTrips: a new key costs one round trip before the handler and
// one after; a replay costs one.
func TestRoundTrips(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		c := &counter{}
		rdb := h.NewClient(nil)
		rdb.AddHook(c)
		k := idempotency.New(idempotency.Config{Store: redisstore.New(rdb, redisstore.Config{Prefix: h.Prefix})})
		defer k.Close()
		run := func(key string) {
			if _, _, err := k.Do(t.Context(), idempotency.Request{Key: key}, func(context.Context) (*idempotency.Record, error) {
				return &idempotency.Record{Status: 200, Body: []byte("ok")}, nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		run("warm-up") // loads the scripts (EVALSHA misses, then EVAL)
		run("warm-up")
		c.n.Store(0)
		run("new")
		if n := c.n.Load(); n != 2 {
			t.Fatalf("a new key cost %d round trips, want 2 (claim, complete)", n)
		}
		c.n.Store(0)
		run("new")
		if n := c.n.Load(); n != 1 {
			t.Fatalf("a replay cost %d round trips, want 1", n)
		}
	})
}

func postKey(url, key, body string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestThreeInstancesRunOnce: 50 concurrent identical requests spread over
// three instances sharing one Redis run the handler exactly once; every
// other request gets 409 or the replay.
func TestThreeInstancesRunOnce(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		var runs atomic.Int64
		gate := make(chan struct{})
		entered := make(chan struct{}, 50)
		app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := runs.Add(1)
			entered <- struct{}{}
			<-gate
			w.WriteHeader(201)
			fmt.Fprintf(w, "order %d", n)
		})
		var urls []string
		for range 3 {
			k := idempotency.New(idempotency.Config{Store: redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix})})
			srv := httptest.NewServer(k.Handler(app))
			t.Cleanup(func() { srv.Close(); k.Close() })
			urls = append(urls, srv.URL)
		}
		var wg sync.WaitGroup
		codes := make(chan int, 50)
		bodies := make(chan string, 50)
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, body, err := postKey(urls[i%3], "order-7", "pay 10")
				if err != nil {
					t.Error(err)
					return
				}
				codes <- code
				if code == 201 {
					bodies <- body
				}
			}()
			if i == 0 {
				<-entered // the first request holds the key while the rest arrive
			}
		}
		close(gate)
		wg.Wait()
		close(codes)
		close(bodies)
		for c := range codes {
			if c != 201 && c != 409 {
				t.Errorf("status %d, want 201 (first or replay) or 409", c)
			}
		}
		for b := range bodies {
			if b != "order 1" {
				t.Errorf("a 201 carried %q, want the one response %q", b, "order 1")
			}
		}
		if runs.Load() != 1 {
			t.Fatalf("handler ran %d times across 3 instances, want 1", runs.Load())
		}
	})
}

// TestRedisDown: with Redis unreachable the Handler answers 503 and never
// runs the handler; once Redis is back, requests run and records replay.
func TestRedisDown(t *testing.T) {
	redistest.Controlled(t, func(t *testing.T, h *redistest.Harness) {
		var runs atomic.Int64
		k := idempotency.New(idempotency.Config{
			Store:        redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix}),
			StoreTimeout: 200 * time.Millisecond,
		})
		srv := httptest.NewServer(k.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs.Add(1)
			io.WriteString(w, "done")
		})))
		defer func() { srv.Close(); k.Close() }()
		if code, _, _ := postKey(srv.URL, "before", "x"); code != 200 {
			t.Fatalf("before the outage: %d", code)
		}
		h.Down()
		code, body, err := postKey(srv.URL, "during", "x")
		if err != nil || code != 503 || !strings.Contains(body, "ErrStoreUnavailable") {
			t.Fatalf("Redis down: %d %q %v; want 503 ErrStoreUnavailable", code, body, err)
		}
		if code, _, _ := postKey(srv.URL, "before", "x"); code != 503 {
			t.Fatalf("a replay with Redis down = %d, want 503 (never run again)", code)
		}
		if runs.Load() != 1 {
			t.Fatalf("handler ran %d times, want 1 (never with Redis down)", runs.Load())
		}
		h.Up()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, _, _ = postKey(srv.URL, "before", "x")
			if code != 503 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond) // go-redis redials in the background
		}
		if code != 200 || runs.Load() != 1 {
			t.Fatalf("after the outage the stored record = %d after %d runs; want the replay", code, runs.Load())
		}
	})
}
