package retry

import (
	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/bridge"
)

// grpcx reaches these through internal/bridge instead of accessors
// exported for its sake.
func init() {
	bridge.RetryClassifier = func(p any) bulwark.Classifier { return p.(*Policy).classifier() }
	bridge.RetryHedging = func(p any) bool { return p.(*Policy).hedging() }
}
