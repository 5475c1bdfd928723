package bulwark

import "context"

// Outcome is the verdict on one call, shared by every package: a breaker
// counts it, a retry policy decides on it, a balancer scores an endpoint
// with it. Each Config's Classify field returns one to override the
// default rules (see the package doc).
type Outcome uint8

const (
	// Success means the dependency did its job.
	Success Outcome = iota
	// Failure means the dependency failed or was too slow.
	Failure
	// Neutral means the result says nothing about the dependency (the
	// caller gave up, or the Config said to ignore the error); it counts
	// neither as a success nor as a failure.
	Neutral
)

// String returns "success", "failure" or "neutral".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Neutral:
		return "neutral"
	}
	return "unknown"
}

// Classifier judges the result of a call made with ctx. Configs take one to
// override bulwark's default classification; a nil Classifier means the
// default.
type Classifier func(ctx context.Context, err error) Outcome
