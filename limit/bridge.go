package limit

import (
	"context"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/bridge"
)

func init() {
	bridge.LimitDecide = func(l any) (bool, time.Duration) {
		d, _ := decide(l.(Limiter))
		return d.Allowed, d.RetryAfter
	}
	bridge.LimitAdmit = func(ctx context.Context, l any, opts any) error {
		o, _ := opts.([]Option)
		return admit(ctx, l.(Limiter), collect(o))
	}
	bridge.LimitClassifier = func(c any) bulwark.Classifier {
		if a, ok := c.(*Adaptive); ok {
			return a.classify
		}
		return nil
	}
}
