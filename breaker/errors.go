package breaker

import (
	"errors"
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
)

// The sentinels a rejection matches with [errors.Is]. The error a
// rejection actually returns is an [*OpenError], which carries when the
// breaker will next let a call through.
var (
	// ErrOpen: the breaker is open (or forced open) and rejects calls
	// without trying them.
	ErrOpen = errors.New("breaker: circuit open")
	// ErrHalfOpenFull: the breaker is half-open and every probe slot is
	// taken; the call was not tried.
	ErrHalfOpenFull = errors.New("breaker: half-open, probe limit reached")
)

// OpenError is the error of a rejected call. errors.Is(err, ErrOpen) or
// errors.Is(err, ErrHalfOpenFull) tells which kind it is; errors.As gives
// the details.
//
// A breaker builds one OpenError per state change and returns that same
// value for every rejection until the next change, so rejections allocate
// nothing. Treat it as read-only.
type OpenError struct {
	// Name is the breaker's Config.Name (the key, in a Set).
	Name string
	// State is the breaker's state when it rejected the call: Open,
	// ForcedOpen or HalfOpen.
	State State
	// Until is when the breaker will next let a call through: the end of
	// the open duration for Open; for HalfOpen the latest moment the
	// current probes can hold their slots (Config.HalfOpenMaxWait), an
	// upper bound only (see RetryAfter); zero for ForcedOpen, which lasts
	// until Reset.
	Until time.Time

	sentinel error
	clk      clock.Clock
}

// Error returns the sentinel's message, e.g. "breaker: circuit open".
func (e *OpenError) Error() string { return e.sentinel.Error() }

// Unwrap returns ErrOpen or ErrHalfOpenFull.
func (e *OpenError) Unwrap() error { return e.sentinel }

// halfOpenRetryAfter is the wait a half-open rejection suggests. Probes
// usually settle within a call's latency, so telling clients to wait the
// whole HalfOpenMaxWait (30 s by default) would keep them away long after
// the breaker has closed.
const halfOpenRetryAfter = time.Second

// RetryAfter returns how long a caller should wait before trying again:
// until Until for Open; for HalfOpen one second, or less if Until is
// sooner; 0 when Until is zero (ForcedOpen) or past. HTTP adapters send it,
// rounded up to whole seconds, as Retry-After, and the grpcx server
// interceptors as grpc-retry-pushback-ms. Package retry, as the layer above
// a breaker, returns the rejection at once by default, and waits RetryAfter
// only with retry.Config.WaitRejected (see retry's "Local rejections").
func (e *OpenError) RetryAfter() time.Duration {
	if e.Until.IsZero() {
		return 0
	}
	d := max(0, e.Until.Sub(e.clk.Now()))
	if e.State == HalfOpen {
		d = min(d, halfOpenRetryAfter)
	}
	return d
}
