package cache

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
)

// GetMany returns the values of keys, as Get would one by one, with at
// most one Store read (for the keys the in-process tier cannot serve) and
// one origin call (Config.LoadMany, for the keys neither tier can serve;
// without LoadMany, one Load per such key, concurrently), followed by one
// Store write of what it loaded (and, with NegativeTTL off, one delete of
// the outdated values of keys the origin no longer has). Keys that the
// origin does not have are absent from the map (and cached as not found
// for Config.NegativeTTL); duplicates in keys are served once.
//
// The origin call runs detached from ctx, bounded by Config.LoadTimeout,
// like Get's; GetMany returns context.Cause(ctx) with what it has so far
// if ctx ends first. It is not coalesced with concurrent Gets or GetManys
// of the same keys. If the origin fails, keys with a value within
// StaleIfError get it, and GetMany returns the load error with the values
// it could serve. GetMany panics if ctx is nil.
func (c *Cache[K, V]) GetMany(ctx context.Context, keys []K) (map[K]V, error) {
	if ctx == nil {
		panic("cache: Cache.GetMany called with a nil ctx")
	}
	res := make(map[K]V, len(keys))
	seen := make(map[K]struct{}, len(keys))
	var missing []K
	stale := make(map[K]*entry[V])
	now := c.clk.Nanotime()
	for _, k := range keys {
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		if c.l1 != nil {
			if e, ok := c.l1.GetIfPresent(k); ok {
				if now < e.fresh {
					c.st.hitsL1.Add(1)
					if !e.negative {
						res[k] = e.val
					}
					continue
				}
				if !e.negative && now < e.fresh+int64(c.swr) {
					c.st.hitsL1.Add(1)
					c.st.staleSWR.Add(1)
					res[k] = e.val
					c.refresh(ctx, k, e)
					continue
				}
				stale[k] = e
			}
		}
		missing = append(missing, k)
	}
	if len(missing) == 0 {
		return res, nil
	}
	epoch := c.epoch.Load()
	var skeys []string
	var inStore map[K]bool // keys the Store read returned a value for
	if c.store != nil {
		skeys = make([]string, len(missing))
		for i, k := range missing {
			skeys[i] = c.keyStr(k)
		}
		bs, err := c.store.GetMany(ctx, skeys)
		if err != nil {
			c.st.storeErrors.Add(1)
			if c.failOnStore {
				return res, &StoreError{Op: "get", Err: err}
			}
		} else {
			left, leftS := missing[:0], skeys[:0]
			for i, k := range missing {
				var e *entry[V]
				if i < len(bs) && bs[i] != nil {
					e = c.decode(bs[i])
				}
				if e != nil {
					if inStore == nil {
						inStore = map[K]bool{}
					}
					inStore[k] = true
					if r, ok := c.usable(k, e, epoch); ok {
						c.st.hitsL2.Add(1)
						if r.staleSWR {
							c.st.staleSWR.Add(1)
							c.refresh(ctx, k, e)
						}
						if !e.negative {
							res[k] = e.val
						}
						continue
					}
					if s := stale[k]; s == nil || e.wall > s.wall {
						stale[k] = e
					}
				}
				left, leftS = append(left, k), append(leftS, skeys[i])
			}
			missing, skeys = left, leftS
		}
		if len(missing) == 0 {
			return res, nil
		}
	}

	var loaded map[K]V
	var loadErr error
	done := c.detach(ctx, func(ctx context.Context) {
		loaded, loadErr = c.loadBatch(ctx, missing)
		if loadErr != nil {
			return
		}
		var writes []StoreEntry
		var gone []string
		for i, k := range missing {
			v, ok := loaded[k]
			if !ok && c.negTTL <= 0 {
				// As in forget: drop an older value of a key that is gone.
				if c.epoch.Load() == epoch {
					if c.l1 != nil {
						c.l1.Invalidate(k)
					}
					if inStore[k] {
						gone = append(gone, skeys[i])
					}
				}
				continue
			}
			e := c.newEntry(v, !ok, 0)
			c.fillL1(k, e, epoch)
			if c.store != nil {
				writes = append(writes, c.storeEntry(skeys[i], e))
			}
		}
		if len(writes) > 0 && c.epoch.Load() == epoch {
			if err := c.writeStore(ctx, writes); err != nil {
				c.st.storeErrors.Add(1)
			}
		}
		if len(gone) > 0 && c.epoch.Load() == epoch {
			if err := c.store.Delete(ctx, gone); err != nil {
				c.st.storeErrors.Add(1)
			}
		}
	})
	select {
	case err := <-done:
		if err != nil {
			loadErr = err
		}
	case <-ctx.Done():
		return res, context.Cause(ctx)
	}
	c.st.misses.Add(int64(len(missing)))
	if loadErr != nil {
		unserved := false
		for _, k := range missing {
			if s := c.staleIfError(result[V]{err: loadErr}, stale[k]); s != nil {
				c.st.staleErr.Add(1)
				res[k] = s.val
			} else {
				unserved = true
			}
		}
		if unserved {
			return res, loadErr
		}
		return res, nil
	}
	for _, k := range missing {
		if v, ok := loaded[k]; ok {
			res[k] = v
		}
	}
	return res, nil
}

// loadBatch makes the origin call of GetMany.
func (c *Cache[K, V]) loadBatch(ctx context.Context, keys []K) (map[K]V, error) {
	if c.loadMany != nil {
		c.st.loads.Add(1)
		m, err := c.loadMany(ctx, keys)
		if err != nil && !errors.Is(err, ErrNotFound) {
			c.st.loadErrors.Add(1)
			return nil, err
		}
		return m, nil
	}
	m := make(map[K]V, len(keys))
	var mu sync.Mutex
	var wg sync.WaitGroup
	var first error
	for _, k := range keys {
		wg.Go(func() {
			c.st.loads.Add(1)
			v, err := c.load(ctx, k)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				m[k] = v
			case errors.Is(err, ErrNotFound):
			default:
				c.st.loadErrors.Add(1)
				if first == nil {
					first = err
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return m, nil
}

// detach runs fn in a goroutine of the cache, with ctx's values but not
// its cancellation, bounded by LoadTimeout and by Close. The channel gets
// nil when fn returns, or the error that stopped it (ErrClosed, also when
// Close cancelled fn, or a *PanicError).
func (c *Cache[K, V]) detach(ctx context.Context, fn func(ctx context.Context)) <-chan error {
	done := make(chan error, 1)
	c.fmu.Lock()
	if c.closed {
		c.fmu.Unlock()
		done <- ErrClosed
		return done
	}
	c.wg.Add(1)
	c.fmu.Unlock()
	go func() {
		defer c.wg.Done()
		var err error
		defer func() {
			if v := recover(); v != nil {
				c.st.loadErrors.Add(1)
				err = &PanicError{Value: v, Stack: debug.Stack()}
			}
			done <- err
		}()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.loadTimeout)
		defer cancel()
		stop := context.AfterFunc(c.root, cancel)
		defer stop()
		fn(ctx)
		if c.root.Err() != nil {
			err = ErrClosed // Close cancelled fn: its waiter gets ErrClosed, as Get's do
		}
	}()
	return done
}
