package cache_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/bulwark-go/bulwark/cache"
)

func Example() {
	calls := 0
	prices := cache.New(cache.Config[string, int]{
		Load: func(ctx context.Context, sku string) (int, error) {
			calls++
			if sku == "gone" {
				return 0, cache.ErrNotFound
			}
			return 1999, nil
		},
		TTL:          time.Minute,
		StaleIfError: time.Hour,
	})
	defer prices.Close()

	ctx := context.Background()
	for range 3 {
		p, _ := prices.Get(ctx, "sku-1")
		fmt.Println("sku-1 costs", p)
	}
	_, err := prices.Get(ctx, "gone")
	fmt.Println(errors.Is(err, cache.ErrNotFound))
	_, err = prices.Get(ctx, "gone")
	fmt.Println(errors.Is(err, cache.ErrNotFound))
	fmt.Println("origin calls:", calls)
	s := prices.Stats()
	fmt.Println("hits:", s.HitsL1, "misses:", s.Misses)
	// Output:
	// sku-1 costs 1999
	// sku-1 costs 1999
	// sku-1 costs 1999
	// true
	// true
	// origin calls: 2
	// hits: 3 misses: 2
}

func ExampleCache_GetMany() {
	stock := cache.New(cache.Config[string, int]{
		Load: func(ctx context.Context, sku string) (int, error) { return 0, cache.ErrNotFound },
		LoadMany: func(ctx context.Context, skus []string) (map[string]int, error) {
			fmt.Println("one origin call for", skus)
			m := map[string]int{}
			for _, s := range skus {
				if s != "gone" {
					m[s] = len(s)
				}
			}
			return m, nil
		},
	})
	defer stock.Close()
	ctx := context.Background()
	m, _ := stock.GetMany(ctx, []string{"a", "bb", "gone"})
	fmt.Println(m["a"], m["bb"], len(m))
	m, _ = stock.GetMany(ctx, []string{"a", "bb", "gone"})
	fmt.Println(len(m), "from the cache")
	// Output:
	// one origin call for [a bb gone]
	// 1 2 2
	// 2 from the cache
}

func ExampleHTTP() {
	var full, notModified int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache") // store, but ask me every time
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			notModified++
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full++
		fmt.Fprint(w, "the catalogue")
	}))
	defer srv.Close()

	hc := cache.NewHTTP(cache.HTTPConfig{})
	defer hc.Close()
	client := &http.Client{Transport: hc.RoundTripper(nil)}
	for range 3 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(body))
	}
	fmt.Println("server sent", full, "full response and", notModified, "304s")
	// Output:
	// 200 the catalogue
	// 200 the catalogue
	// 200 the catalogue
	// server sent 1 full response and 2 304s
}
