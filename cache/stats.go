package cache

import (
	"sync/atomic"

	"github.com/bulwark-go/bulwark/internal/stripe"
)

// Stats are a Cache's counts since New, as [Cache.Stats] returns them.
type Stats struct {
	// HitsL1 and HitsL2 count Gets (and keys of GetMany) served by the
	// in-process tier and by the Store, stale-while-revalidate serves
	// included.
	HitsL1, HitsL2 int64
	// Misses counts Gets (and keys of GetMany) that no tier could serve
	// and that waited for the origin, whatever it answered (a value, not
	// found, an error, or a stale value served instead of the error).
	Misses int64
	// Loads counts origin calls (Load, or one LoadMany per batch);
	// LoadErrors those that failed (not-found answers are not errors).
	Loads, LoadErrors int64
	// StaleWhileRevalidate and StaleIfError count stale values served, by
	// reason.
	StaleWhileRevalidate, StaleIfError int64
	// Evictions counts entries otter evicted from the in-process tier
	// (for size).
	Evictions int64
	// StoreErrors counts failed Store operations (and malformed records,
	// and loaded values the Codec could not encode, which stay in the
	// in-process tier only).
	StoreErrors int64
	// LockWaits counts origin calls avoided or delayed because another
	// instance held the cross-instance lock.
	LockWaits int64
	// Invalidations counts keys dropped on another instance's Set or
	// Delete; Gaps counts broken invalidation subscriptions, each of which
	// emptied the in-process tier.
	Invalidations, Gaps int64
}

type stats struct {
	hitsL1                                     *stripe.Counter
	hitsL2, misses, loads, loadErrors          atomic.Int64
	staleSWR, staleErr, evictions, storeErrors atomic.Int64
	lockWaits, invalidations, gaps             atomic.Int64
}

func (s *stats) init() { s.hitsL1 = stripe.NewCounter() }

// Stats returns the cache's counts. Counts read while Gets run are each
// exact, but not necessarily taken at one instant.
func (c *Cache[K, V]) Stats() Stats {
	s := &c.st
	return Stats{
		HitsL1: s.hitsL1.Sum(), HitsL2: s.hitsL2.Load(), Misses: s.misses.Load(),
		Loads: s.loads.Load(), LoadErrors: s.loadErrors.Load(),
		StaleWhileRevalidate: s.staleSWR.Load(), StaleIfError: s.staleErr.Load(),
		Evictions: s.evictions.Load(), StoreErrors: s.storeErrors.Load(),
		LockWaits: s.lockWaits.Load(), Invalidations: s.invalidations.Load(), Gaps: s.gaps.Load(),
	}
}
