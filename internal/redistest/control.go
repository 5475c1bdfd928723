package redistest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
	"github.com/redis/go-redis/v9"
)

// adminName is the client name of the harness's own connections (snapshots,
// cleanup); a full miniredis exempts them, as a real server exempts the
// harness's SAVE.
const adminName = "bulwark-redistest-admin"

// oomError is the error a full real Redis answers a write with.
const oomError = "OOM command not allowed when used memory > 'maxmemory'."

// denyOOM lists the commands that Redis 7 flags "denyoom" (the output of
// COMMAND on Redis 7.0): the ones a full Redis with maxmemory-policy
// noeviction refuses. Reads, DEL, EXPIRE and pops still work.
var denyOOM = map[string]bool{}

func init() {
	for _, c := range []string{
		"APPEND", "BITFIELD", "BITOP", "BLMOVE", "BRPOPLPUSH", "COPY", "DECR",
		"DECRBY", "GEOADD", "GEORADIUS", "GEORADIUSBYMEMBER", "GEOSEARCHSTORE",
		"GETSET", "HINCRBY", "HINCRBYFLOAT", "HMSET", "HSET", "HSETNX", "INCR",
		"INCRBY", "INCRBYFLOAT", "LINSERT", "LMOVE", "LPUSH", "LPUSHX", "LSET",
		"MSET", "MSETNX", "PFADD", "PFDEBUG", "PFMERGE", "PSETEX", "RESTORE",
		"RESTORE-ASKING", "RPOPLPUSH", "RPUSH", "RPUSHX", "SADD", "SDIFFSTORE",
		"SET", "SETBIT", "SETEX", "SETNX", "SETRANGE", "SINTERSTORE", "SORT",
		"SUNIONSTORE", "XADD", "XSETID", "ZADD", "ZDIFFSTORE", "ZINCRBY",
		"ZINTERSTORE", "ZRANGESTORE", "ZUNIONSTORE",
	} {
		denyOOM[c] = true
	}
}

// A Snapshot is the data of a controlled Redis at one moment, taken by
// [Harness.Snapshot], to which [Harness.UpFrom] rewinds it.
type Snapshot struct {
	ctl *control
	id  int
}

// control is the state of a Redis that a test may take down, slow or fill.
// Its mutex serialises the controls; clients never wait on it.
type control struct {
	mu    sync.Mutex
	be    backend
	px    *proxy
	up    bool
	full  bool
	snaps int
}

// backend is a Redis the harness can stop and start with its data kept,
// lost or rewound. Its address never changes.
type backend interface {
	addr() string
	stop() error
	// start brings it back with the data it had at stop (snap 0, keep),
	// none (lose), or snapshot snap's.
	start(lose bool, snap int) error
	snapshot(id int) error
	setFull(full bool) error
	close()
}

func (ctl *control) isUp() bool {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	return ctl.up
}

// newControlled wraps be in a proxy and gives t a harness on it; both are
// stopped when t ends.
func newControlled(t testing.TB, f Flavour, be backend, mini *miniredis.Miniredis) *Harness {
	t.Helper()
	px := &proxy{backend: be.addr()}
	if err := px.start(); err != nil {
		be.close()
		t.Fatalf("redistest: starting the proxy: %v", err)
	}
	ctl := &control{be: be, px: px, up: true}
	t.Cleanup(func() {
		ctl.mu.Lock()
		defer ctl.mu.Unlock()
		px.close()
		be.close()
		ctl.up = false
	})
	tgt := &target{
		flavour: f,
		addrs:   []string{px.addr},
		direct:  []string{be.addr()},
		ctl:     ctl,
		mini:    mini,
	}
	return newHarness(t, tgt)
}

// NewMiniredis returns a harness on a miniredis of t's own, behind a
// latency proxy, that the test may take down, slow or fill. Everything is
// stopped when t ends.
func NewMiniredis(t testing.TB) *Harness {
	t.Helper()
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		t.Fatalf("redistest: starting miniredis: %v", err)
	}
	return newControlled(t, Miniredis, &miniBackend{m: m}, m)
}

// NewServer returns a harness on a redis-server process of t's own,
// listening on a free loopback port with its files in a t.TempDir(),
// behind a latency proxy; the test may take it down, slow or fill it. The
// process is killed when t ends. It skips t when redis-server is not on
// PATH.
func NewServer(t testing.TB) *Harness {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skipf("redistest: %v: install Redis (Debian: apt-get install redis-server) to run this test on a real server", errNoBinary)
	}
	be := &serverBackend{bin: bin, dir: t.TempDir()}
	for attempt := 0; ; attempt++ {
		if be.port, err = freePort(); err != nil {
			t.Fatalf("redistest: finding a free port: %v", err)
		}
		be.proc, err = startRedisServer(bin, be.dir, be.port)
		if err == nil {
			break
		}
		if !addrInUse(err) || attempt == 3 { // another process took the port in between
			t.Fatalf("redistest: starting redis-server: %v", err)
		}
	}
	return newControlled(t, Server, be, nil)
}

// control returns the controls of h's Redis, failing the test if it has
// none.
func (h *Harness) control(method string) *control {
	h.t.Helper()
	if h.tgt.ctl == nil {
		h.t.Fatalf("redistest: %s needs a Redis of the test's own (NewMiniredis, NewServer or Controlled); this harness is on a shared %s", method, h.Flavour)
	}
	return h.tgt.ctl
}

// Controllable reports whether the test may take this harness's Redis
// down, slow it or fill it.
func (h *Harness) Controllable() bool { return h.tgt.ctl != nil }

// Down takes the Redis down, as a crash would: its port refuses
// connections and every open connection is cut, so commands fail until Up.
// Its data is saved first, for [Harness.Up] to choose what comes back.
// Down fails the test if the Redis is already down.
func (h *Harness) Down() {
	h.t.Helper()
	ctl := h.control("Down")
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	if !ctl.up {
		h.t.Fatalf("redistest: Down: Redis is already down")
	}
	ctl.px.close()
	ctl.up = false
	if err := ctl.be.stop(); err != nil {
		h.t.Fatalf("redistest: Down: %v", err)
	}
}

// Up brings the Redis back with the data it had when it went down (a
// restart with persistence).
func (h *Harness) Up() {
	h.t.Helper()
	h.bringUp("Up", false, nil)
}

// UpEmpty brings the Redis back with no data at all (a restart without
// persistence, or a failover to an empty replica).
func (h *Harness) UpEmpty() {
	h.t.Helper()
	h.bringUp("UpEmpty", true, nil)
}

// UpFrom brings the Redis back with the data it had when s was taken (a
// restore from an older backup, or a failover to a lagging replica). Keys
// keep the expiry they had in s: a real server drops those whose time has
// passed since; miniredis's TTLs move only with FastForward.
func (h *Harness) UpFrom(s Snapshot) {
	h.t.Helper()
	h.bringUp("UpFrom", false, &s)
}

func (h *Harness) bringUp(method string, lose bool, s *Snapshot) {
	h.t.Helper()
	ctl := h.control(method)
	snap := 0
	if s != nil {
		if s.ctl != ctl || s.id == 0 {
			h.t.Fatalf("redistest: UpFrom: the snapshot was not taken on this Redis")
		}
		snap = s.id
	}
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	if ctl.up {
		h.t.Fatalf("redistest: %s: Redis is up; call Down first", method)
	}
	if err := ctl.be.start(lose, snap); err != nil {
		h.t.Fatalf("redistest: %s: %v", method, err)
	}
	if ctl.full {
		if err := ctl.be.setFull(true); err != nil {
			h.t.Fatalf("redistest: %s: filling Redis again: %v", method, err)
		}
	}
	// Clients reach the Redis only through the proxy, so nothing sees it
	// before its data is in place.
	if err := ctl.px.start(); err != nil {
		h.t.Fatalf("redistest: %s: reopening %s: %v", method, ctl.px.addr, err)
	}
	ctl.up = true
}

// Snapshot records the Redis's data now, for [Harness.UpFrom]. The Redis
// must be up. A miniredis holds at most 15 snapshots per test (they live in
// its databases 1 to 15; the harness's clients use database 0).
func (h *Harness) Snapshot() Snapshot {
	h.t.Helper()
	ctl := h.control("Snapshot")
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	if !ctl.up {
		h.t.Fatalf("redistest: Snapshot: Redis is down")
	}
	id := ctl.snaps + 1
	if err := ctl.be.snapshot(id); err != nil {
		h.t.Fatalf("redistest: Snapshot: %v", err)
	}
	ctl.snaps = id
	return Snapshot{ctl: ctl, id: id}
}

// SetLatency delays every command by d on its way to Redis (replies come
// back at once), on open connections and new ones alike, until it is set
// to 0. Use it to test timeouts: a command whose context deadline is
// shorter than d fails with a deadline error. It survives Down and Up.
func (h *Harness) SetLatency(d time.Duration) {
	h.t.Helper()
	ctl := h.control("SetLatency")
	if d < 0 {
		h.t.Fatalf("redistest: SetLatency(%v): latency must be >= 0", d)
	}
	ctl.px.latency.Store(int64(d))
}

// SetFull makes the Redis full (true) or not (false). A full Redis refuses
// every command that may grow memory (SET, HSET, INCR, ... and scripts
// that call them) with an OOM error ([redis.IsOOMError] reports true);
// reads, DEL and EXPIRE still work. On a real server this is maxmemory 1
// with maxmemory-policy noeviction. A miniredis emulates it by refusing
// the commands Redis 7 flags denyoom, with the same error. Two differences
// remain on miniredis: a script whose redis.call is refused fails with
// miniredis's generic script error ("ERR Error compiling script ... OOM
// command not allowed ..."), which [redis.IsOOMError] does not recognise
// (redis.pcall returns the OOM error itself, as on a real server); and
// inside MULTI, EXEC still runs the other queued commands where Redis
// aborts the transaction. It survives Down and Up.
func (h *Harness) SetFull(full bool) {
	h.t.Helper()
	ctl := h.control("SetFull")
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	if ctl.up {
		if err := ctl.be.setFull(full); err != nil {
			h.t.Fatalf("redistest: SetFull(%v): %v", full, err)
		}
	}
	ctl.full = full
}

// adminClient is a plain client straight to a backend, past the proxy.
func adminClient(addr string, db int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		DB:                    db,
		ClientName:            adminName,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
	})
}

// miniBackend is a controlled miniredis.
type miniBackend struct {
	m *miniredis.Miniredis
}

func (b *miniBackend) addr() string { return b.m.Addr() }

// stop closes miniredis; its data stays in memory.
func (b *miniBackend) stop() error {
	b.m.Close()
	return nil
}

func (b *miniBackend) start(lose bool, snap int) error {
	if lose || snap > 0 {
		b.m.DB(0).FlushDB() // databases 1-15 hold the snapshots
	}
	if err := b.m.Restart(); err != nil {
		return fmt.Errorf("restarting miniredis on %s: %w", b.m.Addr(), err)
	}
	if snap > 0 {
		return b.copyDB(snap, 0)
	}
	return nil
}

func (b *miniBackend) snapshot(id int) error {
	if id > 15 {
		return errors.New("miniredis holds at most 15 snapshots per test")
	}
	b.m.DB(id).FlushDB()
	return b.copyDB(0, id)
}

// copyDB copies every key of database from into database to, with its
// TTL, through COPY.
func (b *miniBackend) copyDB(from, to int) error {
	c := adminClient(b.m.Addr(), from)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	keys := b.m.DB(from).Keys()
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Copy(ctx, k, k, to, true)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (b *miniBackend) setFull(full bool) error {
	var hook server.Hook
	if full {
		hook = func(c *server.Peer, cmd string, args ...string) bool {
			if !denyOOM[cmd] || c.ClientName == adminName {
				return false
			}
			c.WriteError(oomError)
			return true
		}
	}
	// Server is nil while miniredis is closed; control applies the state
	// again on the next start.
	if s := b.m.Server(); s != nil {
		s.SetPreHook(hook)
	}
	return nil
}

func (b *miniBackend) close() { b.m.Close() }

// serverBackend is a redis-server process of the harness's own. Its files
// live in dir: dump.rdb (what it loads when it starts) and snap-N.rdb.
type serverBackend struct {
	bin  string
	dir  string
	port int
	proc *redisProcess // nil while down
}

func (b *serverBackend) addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// save makes the server write its data to dump.rdb.
func (b *serverBackend) save() error {
	c := adminClient(b.addr(), 0)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	return c.Save(ctx).Err()
}

// stop saves, then kills the server.
func (b *serverBackend) stop() error {
	err := b.save()
	b.proc.kill()
	b.proc = nil
	if err != nil {
		return fmt.Errorf("saving before the outage: %w", err)
	}
	return nil
}

func (b *serverBackend) start(lose bool, snap int) error {
	dump := filepath.Join(b.dir, "dump.rdb")
	switch {
	case lose:
		if err := os.Remove(dump); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	case snap > 0:
		if err := copyFile(b.snapPath(snap), dump); err != nil {
			return err
		}
	}
	p, err := startRedisServer(b.bin, b.dir, b.port)
	if err != nil {
		return fmt.Errorf("restarting redis-server on %s: %w", b.addr(), err)
	}
	b.proc = p
	return nil
}

func (b *serverBackend) snapPath(id int) string {
	return filepath.Join(b.dir, fmt.Sprintf("snap-%d.rdb", id))
}

func (b *serverBackend) snapshot(id int) error {
	if err := b.save(); err != nil {
		return err
	}
	return copyFile(filepath.Join(b.dir, "dump.rdb"), b.snapPath(id))
}

func (b *serverBackend) setFull(full bool) error {
	limit := "0" // no limit
	if full {
		limit = "1" // every byte used is over it
	}
	c := adminClient(b.addr(), 0)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	return c.ConfigSet(ctx, "maxmemory", limit).Err()
}

func (b *serverBackend) close() {
	if b.proc != nil {
		b.proc.kill()
		b.proc = nil
	}
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
