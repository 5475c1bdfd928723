package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/bulwark-go/bulwark/internal/clock"
)

// Cache is a read-through cache with an in-process tier (otter) and an
// optional shared second tier (a [Store], such as Redis), in front of a
// loader. Create one with [New]; the zero Cache is not usable. A Cache is
// safe for concurrent use.
type Cache[K comparable, V any] struct {
	load     Loader[K, V]
	loadMany BulkLoader[K, V]
	l1       *otter.Cache[K, *entry[V]]
	store    Store
	locker   Locker
	codec    Codec[V]
	keyStr   func(K) string
	strKeys  bool // K is string and KeyString is the default
	clk      clock.Clock

	loadTimeout, ttl, negTTL, swr, sie, lockTTL, lockPoll time.Duration
	jitter, beta                                          float64
	failOnStore                                           bool

	// epoch moves on every Set, Delete, invalidation and pub/sub gap; a
	// load that started in an earlier epoch does not fill the tiers, so
	// it cannot put back a value that was just invalidated.
	epoch atomic.Uint64

	fmu     sync.Mutex
	flights map[K]*flight[V]
	closed  bool
	wg      sync.WaitGroup
	root    context.Context
	cancel  context.CancelFunc

	hook func(context.Context, InvalidateEvent)

	closeOnce sync.Once
	stopSub   func()

	// horizon is an instant (clock.Nanotime) that the clock has not
	// reached while it is set: an entry fresh past it is fresh, and a hit
	// on it needs no clock reading (see advance). 0: unset.
	horizon atomic.Int64
	ticking atomic.Bool // a horizon timer is pending
	hmu     sync.Mutex  // guards htimer
	htimer  clock.Timer

	st  stats
	tel *telemetryState
}

// entry is what the in-process tier holds. Freshness is judged by the
// cache with its own clock (package time through internal/clock), not by
// otter's expiry, so that stale-while-revalidate, stale-if-error and XFetch
// can look at an entry past its TTL; otter only stores and evicts.
type entry[V any] struct {
	val      V
	negative bool
	fresh    int64 // monotonic ns (clock.Nanotime) when the value stops being fresh
	wall     int64 // the same instant as Unix ns, shared with other instances through the Store
	delta    int64 // how long the load took, in ns (XFetch)

	refreshing atomic.Bool // one background refresh per entry
}

func (e *entry[V]) result() (V, error) {
	if e.negative {
		var zero V
		return zero, ErrNotFound
	}
	return e.val, nil
}

// flight is one detached load of a key that every concurrent caller
// waits for.
type flight[V any] struct {
	done chan struct{}
	res  result[V]
}

type result[V any] struct {
	e         *entry[V] // nil when err is set
	fromStore bool      // e came from the Store, not the origin
	staleSWR  bool      // e is past its TTL but within StaleWhileRevalidate
	stale     *entry[V] // with err: a stale value from the Store, for StaleIfError
	err       error
}

// New returns a Cache for cfg. It panics with a [*bulwark.ConfigError] if
// cfg.Validate fails. If cfg.Store implements [Broadcaster], New subscribes
// to invalidations; [Cache.Close] ends the subscription.
func New[K comparable, V any](cfg Config[K, V]) *Cache[K, V] {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	c := &Cache[K, V]{
		load:        cfg.Load,
		loadMany:    cfg.LoadMany,
		store:       cfg.Store,
		codec:       cfg.Codec,
		keyStr:      cfg.KeyString,
		clk:         clock.Real,
		loadTimeout: or(cfg.LoadTimeout, DefaultLoadTimeout),
		ttl:         or(cfg.TTL, DefaultTTL),
		negTTL:      or(cfg.NegativeTTL, DefaultNegativeTTL),
		swr:         cfg.StaleWhileRevalidate,
		sie:         cfg.StaleIfError,
		lockTTL:     cfg.LockTTL,
		lockPoll:    or(cfg.LockPoll, DefaultLockPoll),
		jitter:      cfg.Jitter,
		beta:        cfg.EarlyRefresh,
		failOnStore: cfg.FailOnStoreError,
		flights:     make(map[K]*flight[V]),
		hook:        cfg.OnInvalidate,
	}
	switch {
	case c.jitter == 0:
		c.jitter = DefaultJitter
	case c.jitter < 0:
		c.jitter = 0
	}
	if c.codec == nil {
		c.codec = JSON[V]{}
	}
	if c.keyStr == nil {
		var zero K
		if _, ok := any(zero).(string); ok {
			c.strKeys = true
			c.keyStr = func(k K) string { return any(k).(string) }
		} else {
			c.keyStr = func(k K) string { return fmt.Sprint(k) }
		}
	}
	if c.lockTTL > 0 {
		c.locker = cfg.Store.(Locker)
	}
	c.horizon.Store(noHorizon)
	c.root, c.cancel = context.WithCancel(context.Background())
	c.st.init()
	if cfg.MaxEntries >= 0 {
		c.l1 = otter.Must(&otter.Options[K, *entry[V]]{
			MaximumSize: or(cfg.MaxEntries, DefaultMaxEntries),
			OnAtomicDeletion: func(e otter.DeletionEvent[K, *entry[V]]) {
				if e.WasEvicted() {
					c.st.evictions.Add(1)
				}
			},
		})
	}
	if b, ok := cfg.Store.(Broadcaster); ok && c.l1 != nil {
		c.stopSub = b.Subscribe(c.onInvalidate, c.onGap)
	}
	c.tel = newTelemetry(c, cfg.Name, cfg.MeterProvider)
	return c
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Get returns the value of key: from the in-process tier if it holds a
// fresh value, else from the Store if it does (filling the in-process
// tier), else from the origin through Config.Load (filling both tiers).
//
// Concurrent misses of one key in one process make one origin call. That
// call runs detached from the callers' contexts, bounded by
// Config.LoadTimeout: each caller waits for it until its own ctx is done
// (then Get returns context.Cause(ctx)), and a caller that gives up does
// not cancel it for the others. The loader sees the values of the first
// caller's ctx, not its cancellation.
//
// When the origin has no value (the loader returned [ErrNotFound]), Get
// returns ErrNotFound, and keeps answering so for Config.NegativeTTL
// without calling the origin. With StaleWhileRevalidate, a value past its
// TTL but within that window is returned at once while one background
// refresh runs; with StaleIfError, a value within that window is returned
// when the origin fails, instead of the error. A failing Store is counted
// and skipped (see Config.FailOnStoreError).
//
// A hit in the in-process tier takes no lock and allocates nothing. Get
// panics if ctx is nil.
func (c *Cache[K, V]) Get(ctx context.Context, key K) (V, error) {
	if ctx == nil {
		panic("cache: Cache.Get called with a nil ctx")
	}
	var stale *entry[V]
	if c.l1 != nil {
		if e, ok := c.l1.GetIfPresent(key); ok {
			if e.fresh > c.horizon.Load() && c.beta == 0 {
				c.st.hitsL1.Add(1)
				return e.result()
			}
			now := c.clk.Nanotime()
			c.advance()
			if now < e.fresh {
				c.st.hitsL1.Add(1)
				if c.beta > 0 && !e.negative && c.xfetch(e, now) {
					c.refresh(ctx, key, e)
				}
				return e.result()
			}
			if !e.negative && now < e.fresh+int64(c.swr) {
				c.st.hitsL1.Add(1)
				c.st.staleSWR.Add(1)
				c.refresh(ctx, key, e)
				return e.val, nil
			}
			stale = e
		}
	}
	return c.miss(ctx, key, stale)
}

// xfetch is the test of Vattani et al.: refresh early when
// now - delta*beta*ln(rand) >= expiry, with rand uniform in (0, 1].
func (c *Cache[K, V]) xfetch(e *entry[V], now int64) bool {
	if e.delta <= 0 {
		return false
	}
	r := 1 - rand.Float64() // (0, 1]
	return float64(now)-float64(e.delta)*c.beta*math.Log(r) >= float64(e.fresh)
}

func (c *Cache[K, V]) miss(ctx context.Context, key K, stale *entry[V]) (V, error) {
	var zero V
	f := c.start(ctx, key, nil)
	select {
	case <-f.done:
	case <-ctx.Done():
		return zero, context.Cause(ctx)
	}
	r := f.res
	if r.err == nil && r.fromStore {
		c.st.hitsL2.Add(1)
		if r.staleSWR {
			c.st.staleSWR.Add(1)
		}
		return r.e.result()
	}
	c.st.misses.Add(1)
	if r.err != nil {
		if s := c.staleIfError(r, stale); s != nil {
			c.st.staleErr.Add(1)
			return s.val, nil
		}
		return zero, r.err
	}
	return r.e.result()
}

// staleIfError picks the value to serve instead of a load error, if any.
func (c *Cache[K, V]) staleIfError(r result[V], l1 *entry[V]) *entry[V] {
	if c.sie <= 0 || errors.Is(r.err, ErrNotFound) || errors.Is(r.err, ErrClosed) || errors.Is(r.err, ErrStore) {
		return nil
	}
	s := l1
	if r.stale != nil && (s == nil || r.stale.wall > s.wall) {
		s = r.stale
	}
	if s == nil || s.negative || c.clk.Nanotime() >= s.fresh+int64(c.sie) {
		return nil
	}
	return s
}

// refresh starts one background refresh of key, whose in-process entry is
// e, unless one is running.
func (c *Cache[K, V]) refresh(ctx context.Context, key K, e *entry[V]) {
	if e.refreshing.CompareAndSwap(false, true) {
		c.start(ctx, key, e)
	}
}

// start joins the load of key in flight or starts one. from is the entry a
// background refresh replaces (nil for a miss): the Store's copy is used
// only if it is newer.
func (c *Cache[K, V]) start(ctx context.Context, key K, from *entry[V]) *flight[V] {
	c.fmu.Lock()
	if f, ok := c.flights[key]; ok {
		c.fmu.Unlock()
		return f
	}
	f := &flight[V]{done: make(chan struct{})}
	if c.closed {
		c.fmu.Unlock()
		f.res.err = ErrClosed
		close(f.done)
		return f
	}
	c.flights[key] = f
	c.wg.Add(1)
	c.fmu.Unlock()
	go c.run(context.WithoutCancel(ctx), key, from, f)
	return f
}

func (c *Cache[K, V]) run(ctx context.Context, key K, from *entry[V], f *flight[V]) {
	defer c.wg.Done()
	defer func() {
		if v := recover(); v != nil {
			c.st.loadErrors.Add(1)
			f.res = result[V]{err: &PanicError{Value: v, Stack: debug.Stack()}}
		}
		if f.res.err != nil && from != nil {
			from.refreshing.Store(false) // let a later hit try again
		}
		c.fmu.Lock()
		delete(c.flights, key)
		c.fmu.Unlock()
		close(f.done)
		if f.res.staleSWR {
			// The Store's copy is stale too: refresh it in a flight of
			// its own, now that this one is gone. (start keeps ctx's
			// values, not its cancellation.)
			c.refresh(ctx, key, f.res.e)
		}
	}()
	lctx, cancel := context.WithTimeout(ctx, c.loadTimeout)
	defer cancel()
	stop := context.AfterFunc(c.root, cancel)
	defer stop()
	f.res = c.fetch(lctx, key, from)
	if f.res.err != nil && c.root.Err() != nil {
		// Close cancelled the load: the waiters' own contexts are live,
		// so they get ErrClosed, not a cancellation that is not theirs.
		f.res = result[V]{err: ErrClosed}
	}
}

// fetch reads the Store, then, if it has nothing newer than from, takes
// the cross-instance lock if configured and loads from the origin.
func (c *Cache[K, V]) fetch(ctx context.Context, key K, from *entry[V]) result[V] {
	epoch := c.epoch.Load()
	var have int64
	if from != nil {
		have = from.wall
	}
	var skey string
	var stale *entry[V]
	if c.store != nil {
		skey = c.keyStr(key)
		e, err := c.readStore(ctx, skey)
		if err != nil {
			if c.failOnStore {
				return result[V]{err: &StoreError{Op: "get", Err: err}}
			}
		} else if e != nil && e.wall > have {
			if r, ok := c.usable(key, e, epoch); ok {
				return r
			}
			stale = e
		}
		// A Store that just failed a read is not asked for a lock too:
		// each failing call can cost up to the Store's timeout.
		if c.locker != nil && err == nil {
			r, ok, release := c.lockOrWait(ctx, key, skey, have, epoch)
			if ok {
				return r
			}
			if release != nil {
				// Held until loadOrigin has written the Store; the lock's
				// own TTL frees it if this process dies first.
				defer release()
			}
		}
	}
	r := c.loadOrigin(ctx, key, skey, epoch)
	if r.err != nil && r.stale == nil {
		r.stale = stale
	}
	return r
}

// usable reports whether e, read from the Store, can be served, and fills
// the in-process tier with it.
func (c *Cache[K, V]) usable(key K, e *entry[V], epoch uint64) (result[V], bool) {
	now := c.clk.Nanotime()
	if now < e.fresh {
		c.fillL1(key, e, epoch)
		return result[V]{e: e, fromStore: true}, true
	}
	if !e.negative && now < e.fresh+int64(c.swr) {
		c.fillL1(key, e, epoch)
		return result[V]{e: e, fromStore: true, staleSWR: true}, true
	}
	return result[V]{}, false
}

// lockOrWait takes the cross-instance lock of key and returns its
// release. If another instance holds it, it polls the Store for that
// instance's value for up to LockTTL; ok reports that r is the answer.
// Otherwise the caller loads by itself.
func (c *Cache[K, V]) lockOrWait(ctx context.Context, key K, skey string, have int64, epoch uint64) (r result[V], ok bool, release func()) {
	release, got, err := c.locker.TryLock(ctx, skey, c.lockTTL)
	if err != nil {
		c.st.storeErrors.Add(1)
		return result[V]{}, false, nil
	}
	if got {
		return result[V]{}, false, release
	}
	c.st.lockWaits.Add(1)
	deadline := c.clk.Nanotime() + int64(c.lockTTL)
	for c.clk.Nanotime() < deadline {
		if clock.Sleep(ctx, c.clk, c.lockPoll) != nil {
			break
		}
		e, err := c.readStore(ctx, skey)
		if err != nil {
			break
		}
		if e != nil && e.wall > have {
			if r, ok := c.usable(key, e, epoch); ok {
				return r, true, nil
			}
		}
	}
	return result[V]{}, false, nil
}

func (c *Cache[K, V]) loadOrigin(ctx context.Context, key K, skey string, epoch uint64) result[V] {
	start := c.clk.Nanotime()
	c.st.loads.Add(1)
	v, err := c.load(ctx, key)
	delta := c.clk.Nanotime() - start
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			if c.negTTL > 0 {
				e := c.newEntry(v, true, delta)
				c.fill(ctx, key, skey, e, epoch)
				return result[V]{e: e}
			}
			c.forget(ctx, key, skey, epoch)
			return result[V]{err: err}
		}
		c.st.loadErrors.Add(1)
		return result[V]{err: err}
	}
	e := c.newEntry(v, false, delta)
	c.fill(ctx, key, skey, e, epoch)
	return result[V]{e: e}
}

// forget drops key from both tiers after the origin said it has no value
// and not-found answers are not cached, so that an older value is not
// served stale (StaleWhileRevalidate, StaleIfError) for a key that is gone.
func (c *Cache[K, V]) forget(ctx context.Context, key K, skey string, epoch uint64) {
	if c.epoch.Load() != epoch {
		return // a Set or Delete since the load began decides
	}
	if c.l1 != nil {
		c.l1.Invalidate(key)
	}
	if c.store != nil {
		if err := c.store.Delete(ctx, []string{skey}); err != nil {
			c.st.storeErrors.Add(1)
		}
	}
}

// newEntry makes an entry fresh for the TTL (or NegativeTTL) less a random
// jitter.
func (c *Cache[K, V]) newEntry(v V, negative bool, delta int64) *entry[V] {
	ttl := c.ttl
	if negative {
		ttl = c.negTTL
	}
	if c.jitter > 0 {
		ttl -= time.Duration(rand.Float64() * c.jitter * float64(ttl))
	}
	e := &entry[V]{negative: negative, delta: delta}
	if !negative {
		e.val = v
	}
	e.fresh = c.clk.Nanotime() + int64(ttl)
	e.wall = c.clk.Now().UnixNano() + int64(ttl)
	return e
}

// fill puts e in both tiers, unless the epoch moved since the load began.
func (c *Cache[K, V]) fill(ctx context.Context, key K, skey string, e *entry[V], epoch uint64) {
	c.fillL1(key, e, epoch)
	if c.store != nil && c.epoch.Load() == epoch {
		if err := c.writeStore(ctx, []StoreEntry{c.storeEntry(skey, e)}); err != nil {
			c.st.storeErrors.Add(1)
		}
	}
}

func (c *Cache[K, V]) fillL1(key K, e *entry[V], epoch uint64) {
	if c.l1 == nil || c.epoch.Load() != epoch {
		return
	}
	c.setL1(key, e)
	if c.epoch.Load() != epoch {
		// An invalidation raced with the Set: drop what may be outdated.
		c.l1.Invalidate(key)
	}
}

// storeEntry encodes e for the Store. The Store keeps it as long as it may
// be served: its TTL plus the longer of the stale windows.
func (c *Cache[K, V]) storeEntry(skey string, e *entry[V]) StoreEntry {
	r := record{negative: e.negative, freshUntil: e.wall, delta: e.delta}
	if !e.negative {
		p, err := c.codec.Marshal(e.val)
		if err != nil {
			return StoreEntry{Key: skey} // Value nil: skipped by writeStore
		}
		r.payload = p
	}
	ttl := time.Duration(e.wall - c.clk.Now().UnixNano())
	if !e.negative {
		ttl += max(c.swr, c.sie)
	}
	ttl = max(ttl, time.Millisecond)
	return StoreEntry{Key: skey, Value: appendRecord(make([]byte, 0, recHeader+len(r.payload)), r), TTL: ttl}
}

func (c *Cache[K, V]) writeStore(ctx context.Context, entries []StoreEntry) error {
	n := 0
	for _, se := range entries {
		if se.Value != nil {
			entries[n] = se
			n++
		} else {
			c.st.storeErrors.Add(1) // the Codec could not encode the value
		}
	}
	if n == 0 {
		return nil
	}
	return c.store.Set(ctx, entries[:n])
}

// readStore returns the entry the Store holds for skey, or nil. A read
// error is counted; a malformed record is counted and read as missing.
func (c *Cache[K, V]) readStore(ctx context.Context, skey string) (*entry[V], error) {
	b, err := c.store.Get(ctx, skey)
	if err != nil {
		c.st.storeErrors.Add(1)
		return nil, err
	}
	if b == nil {
		return nil, nil
	}
	return c.decode(b), nil
}

func (c *Cache[K, V]) decode(b []byte) *entry[V] {
	r, err := parseRecord(b)
	if err != nil {
		c.st.storeErrors.Add(1)
		return nil
	}
	e := &entry[V]{negative: r.negative, wall: r.freshUntil, delta: r.delta}
	if !r.negative {
		v, err := c.codec.Unmarshal(r.payload)
		if err != nil {
			c.st.storeErrors.Add(1)
			return nil
		}
		e.val = v
	}
	e.fresh = c.clk.Nanotime() + (r.freshUntil - c.clk.Now().UnixNano())
	return e
}

// Set stores v as the fresh value of key in both tiers and, through a
// [Broadcaster] Store, drops key from every other instance's in-process
// tier. The in-process tier is updated even if the Store fails; the
// Store's error is returned (matching [ErrStore]), since the other
// instances may not have seen the change. If the Codec cannot encode v,
// Set returns its error and changes neither tier. Set panics if ctx is nil.
func (c *Cache[K, V]) Set(ctx context.Context, key K, v V) error {
	if ctx == nil {
		panic("cache: Cache.Set called with a nil ctx")
	}
	return c.put(ctx, key, c.newEntry(v, false, 0))
}

// put stores e in both tiers and publishes the change.
func (c *Cache[K, V]) put(ctx context.Context, key K, e *entry[V]) error {
	var skey string
	var se StoreEntry
	if c.store != nil {
		// Encode first: a value the Codec refuses changes nothing, rather
		// than sit in this instance's tier beside the Store's older value.
		skey = c.keyStr(key)
		se = c.storeEntry(skey, e)
		if se.Value == nil {
			_, err := c.codec.Marshal(e.val)
			return fmt.Errorf("cache: encoding the value of %q: %w", skey, err)
		}
	}
	c.epoch.Add(1)
	if c.l1 != nil {
		c.setL1(key, e)
	}
	if c.store == nil {
		return nil
	}
	if err := c.store.Set(ctx, []StoreEntry{se}); err != nil {
		c.st.storeErrors.Add(1)
		return &StoreError{Op: "set", Err: err}
	}
	return c.publish(ctx, skey)
}

// Delete removes key from both tiers and, through a [Broadcaster] Store,
// from every other instance's in-process tier. The in-process tier is
// updated even if the Store fails; the Store's error is returned (matching
// [ErrStore]). Delete panics if ctx is nil.
func (c *Cache[K, V]) Delete(ctx context.Context, key K) error {
	if ctx == nil {
		panic("cache: Cache.Delete called with a nil ctx")
	}
	c.epoch.Add(1)
	if c.l1 != nil {
		c.l1.Invalidate(key)
	}
	if c.store == nil {
		return nil
	}
	skey := c.keyStr(key)
	if err := c.store.Delete(ctx, []string{skey}); err != nil {
		c.st.storeErrors.Add(1)
		return &StoreError{Op: "delete", Err: err}
	}
	return c.publish(ctx, skey)
}

func (c *Cache[K, V]) publish(ctx context.Context, skey string) error {
	b, ok := c.store.(Broadcaster)
	if !ok {
		return nil
	}
	if err := b.Publish(ctx, []string{skey}); err != nil {
		c.st.storeErrors.Add(1)
		return &StoreError{Op: "publish", Err: err}
	}
	return nil
}

// onInvalidate drops keys another instance changed.
func (c *Cache[K, V]) onInvalidate(keys []string) {
	c.epoch.Add(1)
	c.st.invalidations.Add(int64(len(keys)))
	defer c.notify(InvalidateEvent{Keys: keys})
	if c.strKeys {
		for _, k := range keys {
			c.l1.Invalidate(any(k).(K))
		}
		return
	}
	// Keys that are not strings cannot be rebuilt from the Store's key:
	// find them by scanning the in-process tier.
	set := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		set[k] = struct{}{}
	}
	for k := range c.l1.Keys() {
		if _, ok := set[c.keyStr(k)]; ok {
			c.l1.Invalidate(k)
		}
	}
}

// onGap drops the whole in-process tier: invalidations may have been
// missed while the subscription was broken.
func (c *Cache[K, V]) onGap() {
	c.epoch.Add(1)
	c.st.gaps.Add(1)
	c.l1.InvalidateAll()
	c.notify(InvalidateEvent{Gap: true})
}

func (c *Cache[K, V]) notify(ev InvalidateEvent) {
	if c.hook != nil {
		c.hook(context.Background(), ev)
	}
}

// Close ends the invalidation subscription, cancels the loads in flight
// (their waiters get [ErrClosed]) and waits for their goroutines, and
// unregisters the instruments. After
// Close, Get still serves what the in-process tier holds; a Get or GetMany
// that needs the Store or the origin returns [ErrClosed]. Set and Delete
// still write both tiers and publish, but the Cache no longer receives
// other instances' invalidations. Close is safe to call more than once
// and from several goroutines; calls after the first return nil.
func (c *Cache[K, V]) Close() error {
	c.closeOnce.Do(func() {
		c.fmu.Lock()
		c.closed = true
		c.fmu.Unlock()
		if c.stopSub != nil {
			c.stopSub()
		}
		c.cancel()
		c.wg.Wait()
		c.hmu.Lock()
		if c.htimer != nil {
			c.htimer.Stop()
		}
		c.horizon.Store(noHorizon) // no timer will clear it now: hits read the clock
		c.hmu.Unlock()
		if c.l1 != nil {
			c.l1.StopAllGoroutines()
		}
		c.tel.close()
	})
	return nil
}

// keepFor returns an entry holding v that is fresh, for the cache, for
// exactly keep: the HTTP layer judges HTTP freshness itself and uses the
// cache's freshness only as its retention.
func (c *Cache[K, V]) keepFor(v V, keep time.Duration) *entry[V] {
	return &entry[V]{val: v, fresh: c.clk.Nanotime() + int64(keep), wall: c.clk.Now().UnixNano() + int64(keep)}
}

// peek returns the value of key from the in-process tier, else from the
// Store (filling the in-process tier), while the cache still keeps it;
// tier is 1 or 2. It never calls the loader.
func (c *Cache[K, V]) peek(ctx context.Context, key K) (v V, tier int, ok bool) {
	now := c.clk.Nanotime()
	if c.l1 != nil {
		if e, found := c.l1.GetIfPresent(key); found && now < e.fresh && !e.negative {
			return e.val, 1, true
		}
	}
	if c.store == nil {
		return v, 0, false
	}
	epoch := c.epoch.Load()
	e, err := c.readStore(ctx, c.keyStr(key))
	if err != nil || e == nil || e.negative || now >= e.fresh {
		return v, 0, false
	}
	c.fillL1(key, e, epoch)
	return e.val, 2, true
}

// horizonSpan is how far ahead of a clock reading the horizon is set.
// Its timer clears it halfway, so hits stop trusting it span/2 before the
// clock could reach it: a timer that fires up to that late (a starved
// process) still never lets an entry be served past its TTL. An entry
// within horizonSpan of its expiry is judged with a clock reading.
const horizonSpan = time.Second

// noHorizon is the unset horizon: no entry is fresh past it.
const noHorizon = math.MaxInt64

// setL1 stores e in the in-process tier.
func (c *Cache[K, V]) setL1(key K, e *entry[V]) { c.l1.Set(key, e) }

// advance sets the horizon, unless it is set: a hit that had to read the
// clock (the horizon was unset, or its entry is near expiry) reads it
// once more, sets the horizon horizonSpan ahead and starts one timer that
// clears it after horizonSpan/2. Hits that follow read no clock for
// entries fresh past the horizon. An idle cache has no timer pending.
// One timer per cache, not one per entry: see BenchmarkCacheManyEntries.
func (c *Cache[K, V]) advance() {
	if c.ticking.Load() || !c.ticking.CompareAndSwap(false, true) {
		return
	}
	c.hmu.Lock()
	defer c.hmu.Unlock()
	if c.root.Err() != nil { // closed: no more timers
		return
	}
	c.horizon.Store(c.clk.Nanotime() + int64(horizonSpan))
	c.htimer = c.clk.AfterFunc(horizonSpan/2, func() {
		c.horizon.Store(noHorizon)
		c.ticking.Store(false)
	})
}
