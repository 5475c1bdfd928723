package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// redisCtl is the drill's Redis: the one at REDIS_ADDR, or an embedded
// miniredis on 127.0.0.1 that the Redis-outage phase stops and restarts.
type redisCtl struct {
	client redis.UniversalClient
	where  string
	mr     *miniredis.Miniredis // nil for a real Redis
}

func startRedis() (*redisCtl, error) {
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		if err := c.Ping(context.Background()).Err(); err != nil {
			c.Close()
			return nil, fmt.Errorf("REDIS_ADDR=%s: %w", addr, err)
		}
		return &redisCtl{client: c, where: "Redis at " + addr}, nil
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, err
	}
	// go-redis logs every failed dial; during the outage that is noise.
	redis.SetLogger(quiet{})
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true, PoolSize: 64})
	return &redisCtl{client: c, where: "an embedded Redis (miniredis) on " + mr.Addr(), mr: mr}, nil
}

// down stops the embedded Redis; a real one is left running (the drill
// does not stop a server it did not start).
func (r *redisCtl) down() error {
	if r.mr != nil {
		r.mr.Close()
	}
	return nil
}

// up restarts the embedded Redis on the same address, with its data, and
// waits (at most 3 s) until the client reaches it again: after many failed
// dials, go-redis probes a server only once a second, and the recovery
// phase should measure the stacks, not that probe.
func (r *redisCtl) up() error {
	if r.mr == nil {
		return nil
	}
	if err := r.mr.Restart(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for {
		err := r.client.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Redis did not come back: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *redisCtl) stop() {
	r.client.Close()
	if r.mr != nil {
		r.mr.Close()
	}
}

// quiet discards go-redis's log lines.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
