package idempotency

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark/internal/bridge"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/outcome"
)

// Keeper makes requests idempotent: the first request with a key runs and
// its response is stored; a retry with the same key gets the stored
// response instead of running again. Create one with [New]; use
// [Keeper.Handler] for HTTP, [Keeper.Do] for anything else, and the grpcx
// interceptor for gRPC. A Keeper is safe for concurrent use.
type Keeper struct {
	s        settings
	store    Store
	ownStore *MemoryStore // the default store, closed by Close
	clk      clock.Clock
	telem    *telemetryState
	closed   sync.Once
}

// New returns a Keeper configured by cfg. It panics with a
// *bulwark.ConfigError if cfg is invalid (see Config.Validate).
func New(cfg Config) *Keeper {
	return newKeeper(cfg, nil)
}

func newKeeper(cfg Config, clk clock.Clock) *Keeper {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	k := &Keeper{s: resolve(cfg), store: cfg.Store, clk: clock.Or(clk)}
	if k.store == nil {
		k.ownStore = NewMemoryStore(MemoryConfig{clk: clk})
		k.store = k.ownStore
	}
	k.telem = newTelemetry(cfg.Name, cfg.MeterProvider)
	return k
}

// Close unregisters the Keeper's metrics and, if it made its own
// MemoryStore (Config.Store was nil), stops that store's sweeper. A Store
// passed in Config is the caller's to close. The Keeper keeps working
// after Close. Close is safe to call more than once.
func (k *Keeper) Close() error {
	k.closed.Do(func() {
		k.telem.close()
		if k.ownStore != nil {
			k.ownStore.Close()
		}
	})
	return nil
}

// Request identifies one request to [Keeper.Do].
type Request struct {
	// Scope is the caller's identity: requests of different scopes never
	// share records, whatever their keys.
	Scope string
	// Key is the idempotency key the caller chose.
	Key string
	// Fingerprint is a digest of the request's payload; a key reused with
	// a different fingerprint fails with ErrMismatch. Empty turns the
	// check off for this request.
	Fingerprint string
}

// Do runs fn at most once for req's scope and key, until the record
// expires (Config.Retention):
//
//   - The first request claims the key, runs fn, and stores the Record fn
//     returns; Do returns it with replayed false. While fn runs the claim
//     is renewed every Lease/3, so it outlives a long fn but not a dead
//     process.
//   - A later request with the same key and fingerprint gets the stored
//     record, with replayed true, without running fn.
//   - A request whose key is still being processed gets an
//     [*InProgressError] (ErrInProgress), or, with Config.Wait, waits for
//     the first request to finish and gets its record.
//   - A request whose fingerprint differs from the stored one gets
//     ErrMismatch.
//   - If the store cannot be reached to claim the key, Do returns an error
//     matching ErrStoreUnavailable and does not run fn: fn never runs
//     twice because a store was down.
//
// fn's record is not stored, and the key is released so that a retry runs
// fn again, when fn returns an error (Do returns it), returns a nil Record,
// returns a Record with a status of 500 or more (unless
// Config.StoreServerErrors), or panics (the panic goes on). If storing the
// record fails after fn ran, Do still returns it; the claim then expires
// after Lease, and is counted in bulwark.idempotency.store.errors.
//
// ctx and fn must not be nil: Do panics at once if either is.
func (k *Keeper) Do(ctx context.Context, req Request, fn func(context.Context) (*Record, error)) (rec *Record, replayed bool, err error) {
	if ctx == nil {
		panic("idempotency: Keeper.Do called with a nil context")
	}
	if fn == nil {
		panic("idempotency: Keeper.Do called with a nil fn")
	}
	key := StoreKey(req.Scope, req.Key)
	deadline := k.clk.Nanotime() + int64(k.s.wait) // Wait 0: the first look is the last
	poll := 10 * time.Millisecond
	for {
		c, err := k.claim(ctx, key, req.Fingerprint)
		if err != nil {
			k.telem.count(resultStoreError)
			return nil, false, err
		}
		switch c.State {
		case Completed:
			if mismatch(req.Fingerprint, c.Fingerprint) {
				k.telem.count(resultMismatch)
				return nil, false, ErrMismatch
			}
			k.telem.count(resultReplayed)
			return c.Record, true, nil
		case InProgress:
			if mismatch(req.Fingerprint, c.Fingerprint) {
				k.telem.count(resultMismatch)
				return nil, false, ErrMismatch
			}
			left := deadline - k.clk.Nanotime()
			if left <= 0 {
				k.telem.count(resultConflict)
				return nil, false, &InProgressError{Wait: k.retryHint()}
			}
			if err := clock.Sleep(ctx, k.clk, min(poll, time.Duration(left))); err != nil {
				return nil, false, err
			}
			poll = min(2*poll, 250*time.Millisecond)
			continue
		case Claimed:
			k.telem.count(resultExecuted)
			rec, err := k.run(ctx, key, c.Token, req.Fingerprint, fn)
			return rec, false, err
		default:
			k.telem.count(resultStoreError)
			return nil, false, fmt.Errorf("%w: store returned claim state %d", ErrStoreUnavailable, c.State)
		}
	}
}

// retryHint is the Retry-After suggested for a key in progress: a second,
// or the lease if shorter.
func (k *Keeper) retryHint() time.Duration { return min(time.Second, k.s.lease) }

func mismatch(a, b string) bool { return a != "" && b != "" && a != b }

func (k *Keeper) claim(ctx context.Context, key, fp string) (Claim, error) {
	sctx, cancel := context.WithTimeout(ctx, k.s.storeTimeout)
	defer cancel()
	c, err := k.store.Claim(sctx, key, fp, k.s.lease)
	if err != nil {
		if ctx.Err() != nil {
			return Claim{}, context.Cause(ctx) // the caller gave up: not the store's fault
		}
		return Claim{}, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	return c, nil
}

// run runs fn under the claim token holds, renewing it meanwhile, then
// completes or releases the claim.
func (k *Keeper) run(ctx context.Context, key, token, fp string, fn func(context.Context) (*Record, error)) (*Record, error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go k.renew(ctx, key, token, stop, &wg)

	returned := false
	defer outcome.OnAbort(&returned, func() {
		close(stop)
		wg.Wait()
		k.release(ctx, key, token)
	})
	rec, err := fn(ctx)
	returned = true
	close(stop)
	wg.Wait()

	if err != nil || rec == nil || (rec.Status >= 500 && !k.s.store5xx) {
		k.release(ctx, key, token)
		return rec, err
	}
	rec.Fingerprint = fp
	sctx, cancel := k.afterCtx(ctx)
	defer cancel()
	if err := k.store.Complete(sctx, key, token, rec, k.s.retention); err != nil {
		k.telem.storeError()
	}
	return rec, nil
}

// afterCtx is the context of a store operation made after fn ran: it
// outlives the caller's cancellation (the client going away must not leave
// the key claimed) but not StoreTimeout.
func (k *Keeper) afterCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), k.s.storeTimeout)
}

func (k *Keeper) release(ctx context.Context, key, token string) {
	sctx, cancel := k.afterCtx(ctx)
	defer cancel()
	if err := k.store.Release(sctx, key, token); err != nil {
		k.telem.storeError()
	}
}

func (k *Keeper) renew(ctx context.Context, key, token string, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	every := k.s.lease / 3
	t := k.clk.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C():
			sctx, cancel := k.afterCtx(ctx)
			err := k.store.Renew(sctx, key, token, k.s.lease)
			cancel()
			if err != nil {
				k.telem.storeError()
			}
			t.Reset(every)
		}
	}
}

func init() {
	bridge.IdempotencyMaxKeyLength = func(k any) int { return k.(*Keeper).s.maxKey }
}
