package retry_test

import (
	"time"

	"github.com/bulwark-go/bulwark/breaker"
)

// A breaker's rejection is the error that retry reads as pushback through
// its RetryAfter method (see Config.MaxPushback); retry does not import
// breaker, so this keeps the two in step.
var _ interface{ RetryAfter() time.Duration } = (*breaker.OpenError)(nil)
