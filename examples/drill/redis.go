package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// redisCtl is the drill's Redis: an embedded miniredis on 127.0.0.1 that
// the Redis-outage phase stops and restarts; the one at REDIS_ADDR, left
// running; or, with -real-redis, a redis-server the drill runs itself as
// a child process and really shuts down and restarts.
type redisCtl struct {
	client redis.UniversalClient
	where  string
	mr     *miniredis.Miniredis // the embedded one, or nil
	real   *redisServer         // -real-redis, or nil
}

// stops reports whether the outage phase really stops this Redis.
func (r *redisCtl) stops() bool { return r.mr != nil || r.real != nil }

// startRedis starts the drill's Redis: with realRedis (REDIS_ADDR, under
// -real-redis) a redis-server of its own; else the one at REDIS_ADDR if
// set; else miniredis.
func startRedis(realRedis string) (*redisCtl, error) {
	// go-redis logs every failed dial; during the outage that is noise.
	redis.SetLogger(quiet{})
	if realRedis != "" {
		srv, note, err := startRedisServer(realRedis)
		if err != nil {
			return nil, err
		}
		c := redis.NewClient(&redis.Options{Addr: srv.addr, ContextTimeoutEnabled: true, PoolSize: 64})
		return &redisCtl{client: c, where: "a redis-server run by the drill on " + srv.addr + note, real: srv}, nil
	}
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, PoolSize: 64})
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
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true, PoolSize: 64})
	return &redisCtl{client: c, where: "an embedded Redis (miniredis) on " + mr.Addr(), mr: mr}, nil
}

// down stops the Redis the drill runs; one it did not start is left
// running.
func (r *redisCtl) down() error {
	switch {
	case r.mr != nil:
		r.mr.Close()
	case r.real != nil:
		return r.real.shutdown()
	}
	return nil
}

// up restarts the Redis on the same address (miniredis with its data; a
// redis-server without persistence starts empty) and waits (at most 3 s)
// until the client reaches it again: after many failed dials, go-redis
// probes a server only once a second, and the recovery phase should
// measure the stacks, not that probe.
func (r *redisCtl) up() error {
	switch {
	case r.mr != nil:
		if err := r.mr.Restart(); err != nil {
			return err
		}
	case r.real != nil:
		if err := r.real.start(); err != nil {
			return err
		}
	default:
		return nil
	}
	return waitPing(r.client, 3*time.Second)
}

func (r *redisCtl) stop() {
	r.client.Close()
	if r.mr != nil {
		r.mr.Close()
	}
	if r.real != nil {
		r.real.kill()
	}
}

// waitPing waits, at most limit, until c answers a PING.
func waitPing(c redis.UniversalClient, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		err := c.Ping(ctx).Err()
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

// redisServer is a redis-server the drill runs as a child process, on
// loopback, without persistence.
type redisServer struct {
	bin  string
	addr string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// errNoRedisServer is returned by -real-redis when redis-server is not
// on PATH.
var errNoRedisServer = errors.New("-real-redis: redis-server is not on PATH (install Redis, e.g. apt-get install redis-server, or run the drill without -real-redis: it then uses an embedded miniredis)")

// startRedisServer runs redis-server at addr (REDIS_ADDR) if that is a
// free loopback port, else on a free loopback port; note says which, and
// why.
func startRedisServer(addr string) (*redisServer, string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", errNoRedisServer
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, "", fmt.Errorf("-real-redis: REDIS_ADDR=%q: %w", addr, err)
	}
	note := " (at REDIS_ADDR, whose port was free)"
	ln, err := net.Listen("tcp", addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		if ln != nil {
			ln.Close()
		}
		// REDIS_ADDR is a server the drill did not start (or not on
		// loopback): never stop it; run one of our own instead.
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, "", err
		}
		note = fmt.Sprintf(" (REDIS_ADDR=%s is a Redis the drill did not start, which it never stops: it runs its own on a free loopback port instead)", addr)
	}
	addr = ln.Addr().String()
	ln.Close()
	s := &redisServer{bin: bin, addr: addr}
	if err := s.start(); err != nil {
		return nil, "", err
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	if err := waitPing(c, 5*time.Second); err != nil {
		s.kill()
		return nil, "", fmt.Errorf("-real-redis: redis-server on %s: %w", addr, err)
	}
	return s, note, nil
}

// start runs redis-server on s.addr.
func (s *redisServer) start() error {
	_, port, _ := net.SplitHostPort(s.addr)
	if _, err := strconv.Atoi(port); err != nil {
		return fmt.Errorf("-real-redis: bad port in %q", s.addr)
	}
	cmd := exec.Command(s.bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("-real-redis: %w", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	return nil
}

// shutdown stops the server with SHUTDOWN NOSAVE and waits (at most 5 s)
// for the process to exit.
func (s *redisServer) shutdown() error {
	if s.cmd == nil {
		return nil
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	_ = c.ShutdownNoSave(context.Background()).Err() // the connection closes: an error is expected
	c.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.kill()
		return fmt.Errorf("-real-redis: redis-server on %s did not shut down", s.addr)
	}
	s.cmd = nil
	return nil
}

// kill ends the process, if it runs, and waits for it.
func (s *redisServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// quiet discards go-redis's log lines.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
