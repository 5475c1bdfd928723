package redisstore_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bulwark-go/bulwark/cache"
	"github.com/bulwark-go/bulwark/cache/redisstore"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestHTTPCacheSharedThroughRedis(t *testing.T) {
	redistest.Flavours(t, func(t *testing.T, h *redistest.Harness) {
		var answers atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				answers.Add(1)
			}
			w.Header().Set("Cache-Control", "max-age=300")
			io.WriteString(w, "catalogue")
		}))
		defer srv.Close()
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		newClient := func() (*cache.HTTP, *http.Client) {
			hc := cache.NewHTTP(cache.HTTPConfig{Store: redisstore.New(h.NewClient(nil), redisstore.Config{Prefix: h.Prefix})})
			t.Cleanup(func() { hc.Close() })
			return hc, &http.Client{Transport: hc.RoundTripper(tr)}
		}
		a, ca := newClient()
		b, cb := newClient()
		get := func(c *http.Client) string {
			resp, err := c.Get(srv.URL + "/items")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return string(body)
		}
		if get(ca) != "catalogue" || get(cb) != "catalogue" {
			t.Fatal("wrong body")
		}
		if answers.Load() != 1 {
			t.Fatalf("server answered %d GETs, want 1: the second instance reads Redis", answers.Load())
		}
		if a.Stats().Misses != 1 || b.Stats().HitsL2 != 1 {
			t.Fatalf("stats a %+v b %+v", a.Stats(), b.Stats())
		}
		resp, err := cb.Post(srv.URL+"/items", "text/plain", strings.NewReader("new item"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// b's POST deleted the stored GET in Redis; a's L1 copy is dropped
		// by the published invalidation, which a sees asynchronously.
		// Reading through b (no L1 copy, none in Redis) reaches the server.
		get(cb)
		if answers.Load() != 2 {
			t.Fatalf("after the POST: %d GETs answered, want 2", answers.Load())
		}
	})
}
