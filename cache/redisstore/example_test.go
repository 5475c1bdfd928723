package redisstore_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/cache"
	"github.com/bulwark-go/bulwark/cache/redisstore"
)

func Example() {
	mr := miniredis.NewMiniRedis() // a real Redis in production
	if err := mr.Start(); err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	loads := 0
	newInstance := func() *cache.Cache[string, string] {
		return cache.New(cache.Config[string, string]{
			Load: func(ctx context.Context, id string) (string, error) {
				loads++
				return "profile of " + id, nil
			},
			Store: redisstore.New(rdb, redisstore.Config{Prefix: "example:"}),
		})
	}
	a, b := newInstance(), newInstance()
	defer a.Close()
	defer b.Close()

	ctx := context.Background()
	v, _ := a.Get(ctx, "42") // origin, then both tiers
	fmt.Println(v)
	v, _ = b.Get(ctx, "42") // another instance: from Redis
	fmt.Println(v)
	fmt.Println("origin calls:", loads, "b's Redis hits:", b.Stats().HitsL2)
	// Output:
	// profile of 42
	// profile of 42
	// origin calls: 1 b's Redis hits: 1
}
