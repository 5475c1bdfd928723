package bridge

import (
	"context"
	"sync/atomic"
)

// Set by package timeout's init; used by grpcx's timeout interceptors. t is
// a *timeout.Timeout.
var (
	// TimeoutDerive returns the context a call made with ctx runs under:
	// ctx itself with a nil cancel when ctx's deadline comes no later than
	// the Timeout's, else a child that ends after the Timeout's limit.
	TimeoutDerive func(t any, ctx context.Context) (context.Context, context.CancelFunc)
	// TimeoutCall is timeout.Call, never with a reused context
	// (Config.ReuseContexts does not apply).
	TimeoutCall func(t any, ctx context.Context, fn func(context.Context) (any, error)) (any, error)
	// TimeoutJudge maps the error of a call made with actx (from
	// TimeoutDerive, with a non-nil cancel) as Timeout.Do does: a
	// *timeout.TimeoutError when the Timeout's time ran out, the caller's
	// error when ctx ended first, err otherwise. It counts the timeout,
	// once per call when seen (shared by the call's errors) is not nil.
	TimeoutJudge func(t any, ctx, actx context.Context, err error, seen *atomic.Bool) error
)
