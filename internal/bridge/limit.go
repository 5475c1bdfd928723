package bridge

import (
	"context"
	"time"

	"github.com/bulwark-go/bulwark"
)

// Set by package limit's init, for grpcx's limit interceptors.
var (
	// LimitDecide decides one call through a limit.Limiter l: whether it
	// is admitted, and for a rejection the wait when known.
	LimitDecide func(l any) (allowed bool, wait time.Duration)
	// LimitAdmit admits one client call through a limit.Limiter l under
	// the []limit.Option opts (waiting unless limit.NoWait is among
	// them); it returns nil, a *limit.RejectedError or ctx's cause.
	LimitAdmit func(ctx context.Context, l any, opts any) error
	// LimitClassifier returns the Classify of a limit.ConcurrencyLimiter
	// c (an Adaptive's AdaptiveConfig.Classify), or nil.
	LimitClassifier func(c any) bulwark.Classifier
)
