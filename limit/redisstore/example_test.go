package redisstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/limit"
	"github.com/bulwark-go/bulwark/limit/redisstore"
)

// Two instances of a service share one limit of 3 calls an hour per
// tenant through one Redis.
func Example() {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		panic(err)
	}
	defer mr.Close()
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()

	cfg := redisstore.Config{Rate: limit.RateConfig{Every: time.Hour, Burst: 3}, Instances: 2}
	a := redisstore.New(client, cfg)
	defer a.Close()
	b := redisstore.New(client, cfg)
	defer b.Close()

	ctx := context.Background()
	fmt.Println(a.Allow(ctx, "tenant-1"), b.Allow(ctx, "tenant-1"), a.Allow(ctx, "tenant-1"))
	d := b.Decide(ctx, "tenant-1")
	fmt.Println(d.Allowed, d.RetryAfter.Round(time.Minute))
	fmt.Println(a.Key("tenant-1"))
	// Output:
	// true true true
	// false 1h0m0s
	// bulwark:limit:{tenant-1}
}
