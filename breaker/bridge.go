package breaker

import (
	"context"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/bridge"
)

// grpcx reaches the breaker's context-aware paths and its classifier
// through internal/bridge, so that none of them is API.
func init() {
	bridge.BreakerAllow = func(ctx context.Context, b any) (uint64, int64, error) {
		t, err := b.(*Breaker).allowCtx(ctx)
		return t.gen, t.start, err
	}
	bridge.BreakerRecord = func(ctx context.Context, b any, gen uint64, start int64, o bulwark.Outcome) {
		b.(*Breaker).recordCtx(ctx, Ticket{gen: gen, start: start}, o)
	}
	bridge.BreakerClassifier = func(b any) bulwark.Classifier { return b.(*Breaker).classify }
}
