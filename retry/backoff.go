package retry

import (
	"math/rand/v2"
	"time"
)

// Jitter selects how the default exponential schedule randomises delays.
// Randomness spreads the retries of many clients that failed together, so
// they do not come back in lockstep (see "Exponential Backoff And Jitter",
// AWS Architecture Blog, 2015).
type Jitter uint8

const (
	// FullJitter (the default) waits a uniformly random time in
	// [0, min(MaxDelay, BaseDelay·2ⁿ⁻¹)) before retry n. It spreads load
	// best and finishes soonest on average.
	FullJitter Jitter = iota
	// DecorrelatedJitter waits a uniformly random time in
	// [BaseDelay, 3·previous delay), capped by MaxDelay; each delay grows
	// from the one before rather than from the retry number.
	DecorrelatedJitter
	// EqualJitter waits half of min(MaxDelay, BaseDelay·2ⁿ⁻¹) plus a
	// uniformly random time up to the other half: never very short.
	EqualJitter
	// NoJitter waits exactly min(MaxDelay, BaseDelay·2ⁿ⁻¹). Use it only
	// when a single client retries, or in tests.
	NoJitter
)

// String returns the jitter's name.
func (j Jitter) String() string {
	switch j {
	case FullJitter:
		return "full"
	case DecorrelatedJitter:
		return "decorrelated"
	case EqualJitter:
		return "equal"
	case NoJitter:
		return "none"
	}
	return "unknown"
}

// expCap returns min(maxDelay, base·2^(retry-1)) without overflowing.
func expCap(base, maxDelay time.Duration, retry int) time.Duration {
	d := base
	for i := 1; i < retry; i++ {
		if d >= maxDelay/2 {
			return maxDelay
		}
		d *= 2
	}
	return min(d, maxDelay)
}

// delay computes the wait before retry number retry (1 for the first
// retry), given the previous delay (for decorrelated jitter) and u, a
// uniform random number in [0, 1). Pure, so tests drive it with chosen u.
func delay(j Jitter, base, maxDelay time.Duration, retry int, prev time.Duration, u float64) time.Duration {
	switch j {
	case DecorrelatedJitter:
		if prev < base {
			prev = base
		}
		hi := 3 * prev
		if hi > maxDelay || hi < prev { // cap, and guard overflow
			hi = maxDelay
		}
		if hi <= base {
			return min(base, maxDelay)
		}
		return base + time.Duration(u*float64(hi-base))
	case EqualJitter:
		c := expCap(base, maxDelay, retry)
		return c/2 + time.Duration(u*float64(c-c/2))
	case NoJitter:
		return expCap(base, maxDelay, retry)
	default:
		return time.Duration(u * float64(expCap(base, maxDelay, retry)))
	}
}

// uniform returns a random float in [0, 1) from the runtime's per-thread
// generator: lock-free, allocation-free and safe for concurrent use.
func uniform() float64 { return rand.Float64() }
