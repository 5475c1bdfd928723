package benchmarks

import "errors"

var errBreakerBench = errors.New("benchmark: dependency failed")
