package main

import (
	"context"
	"fmt"
	"os"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// startRedis connects to the Redis at REDIS_ADDR, or starts an embedded
// one (miniredis) on 127.0.0.1, and says which in where.
func startRedis() (rdb redis.UniversalClient, where string, stop func(), err error) {
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		if err := c.Ping(context.Background()).Err(); err != nil {
			c.Close()
			return nil, "", nil, fmt.Errorf("REDIS_ADDR=%s: %w", addr, err)
		}
		return c, "Redis at " + addr, func() { c.Close() }, nil
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, "", nil, err
	}
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true, PoolSize: 64})
	return c, "an embedded Redis (miniredis) on " + mr.Addr(), func() { c.Close(); mr.Close() }, nil
}
