package bridge

import "github.com/bulwark-go/bulwark"

// Set by package retry in its init; p is a *retry.Policy.
var (
	// RetryClassifier returns the policy's Config.Classify, or nil when
	// it uses each transport's default rules (grpcx then applies gRPC's).
	RetryClassifier func(p any) bulwark.Classifier
	// RetryHedging reports whether the policy hedges, so that grpcx gives
	// each concurrent attempt its own reply, header and trailer.
	RetryHedging func(p any) bool
)
