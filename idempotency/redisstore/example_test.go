package redisstore_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/idempotency/redisstore"
)

// Two instances share one Redis: a retry that lands on the other instance
// gets the first one's response.
func Example() {
	mr := miniredis.NewMiniRedis() // in production: your Redis, Sentinel or Cluster
	if err := mr.Start(); err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{mr.Addr()}})
	defer rdb.Close()

	a := idempotency.New(idempotency.Config{Store: redisstore.New(rdb, redisstore.Config{})})
	b := idempotency.New(idempotency.Config{Store: redisstore.New(rdb, redisstore.Config{})})
	defer a.Close()
	defer b.Close()

	req := idempotency.Request{Key: "order-7"}
	for _, instance := range []*idempotency.Keeper{a, b} {
		rec, replayed, err := instance.Do(context.Background(), req, func(context.Context) (*idempotency.Record, error) {
			return &idempotency.Record{Status: 201, Body: []byte("order created")}, nil
		})
		fmt.Println(string(rec.Body), replayed, err)
	}
	// Output:
	// order created false <nil>
	// order created true <nil>
}
