package bridge

import (
	"context"

	"github.com/bulwark-go/bulwark"
)

// Package breaker's internals for grpcx, set in breaker's init. Every b is
// a *breaker.Breaker; a ticket travels as its two words (gen, start), so
// that nothing is boxed on the call path.
var (
	// BreakerAllow is Breaker.Allow with the call's ctx: span events on
	// ctx's span, and ctx for OnStateChange.
	BreakerAllow func(ctx context.Context, b any) (gen uint64, start int64, err error)
	// BreakerRecord is Breaker.Record with the call's ctx, as
	// BreakerAllow.
	BreakerRecord func(ctx context.Context, b any, gen uint64, start int64, o bulwark.Outcome)
	// BreakerClassifier returns the breaker's Config.Classify, nil if
	// unset.
	BreakerClassifier func(b any) bulwark.Classifier
)
