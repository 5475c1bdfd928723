package main

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRealRedisServer runs the -real-redis machinery against the real
// redis-server binary: the drill starts its own server, a SHUTDOWN NOSAVE
// really stops it (the port refuses connections), and it comes back on
// the same port. A REDIS_ADDR whose port is taken by a server the drill
// did not start is left alone: the drill runs its own elsewhere, and says
// so.
func TestRealRedisServer(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not on PATH")
	}
	redis.SetLogger(quiet{}) // the dials that fail while it is down
	// A port someone else holds, as a Redis at REDIS_ADDR would.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	srv, note, err := startRedisServer(taken.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.kill()
	if srv.addr == taken.Addr().String() || !strings.Contains(note, "did not start") {
		t.Errorf("REDIS_ADDR's port was taken, yet the drill runs its server at %s (note %q)", srv.addr, note)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.addr, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET on the drill's redis-server: %v", err)
	}
	if err := srv.shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", srv.addr); err == nil {
		t.Errorf("%s still accepts connections after SHUTDOWN NOSAVE", srv.addr)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Error("PING answered while the server is down")
	}
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	if err := waitPing(c, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// No persistence: a restarted server starts empty.
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET after the restart: %v, want redis.Nil (no persistence)", err)
	}
}

// TestRealRedisWithoutBinary: without redis-server on PATH, -real-redis
// fails with a message saying what is missing and what to do.
func TestRealRedisWithoutBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := startRedis("127.0.0.1:6379")
	if !errors.Is(err, errNoRedisServer) || !strings.Contains(err.Error(), "redis-server is not on PATH") {
		t.Errorf("startRedis without redis-server: %v", err)
	}
}
