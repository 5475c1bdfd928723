package redisstore

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/validate"
	"github.com/bulwark-go/bulwark/limit"
)

// Fallback is what a Limiter does when Redis cannot decide.
type Fallback int

// The fallbacks.
const (
	// FallbackLocal decides with a local limiter (a limit.Keyed) whose
	// rate and burst are Config.Rate's divided by Config.Instances: with
	// the instance count right, the fleet keeps about its shared limit.
	// The default.
	FallbackLocal Fallback = iota
	// FallbackOpen admits every call: Redis's failure does not become the
	// service's.
	FallbackOpen
	// FallbackClosed rejects every call (with no known wait): nothing
	// passes that the shared limit has not admitted.
	FallbackClosed
)

// String returns "local", "open" or "closed".
func (f Fallback) String() string {
	switch f {
	case FallbackOpen:
		return "open"
	case FallbackClosed:
		return "closed"
	}
	return "local"
}

// Defaults and bounds of [Config].
const (
	// DefaultPrefix is Config.Prefix's default.
	DefaultPrefix = "bulwark:limit:"
	// DefaultTimeout is Config.Timeout's default.
	DefaultTimeout = 100 * time.Millisecond
	// MaxTimeout bounds Config.Timeout.
	MaxTimeout = 10 * time.Second
	// MaxInstances bounds Config.Instances.
	MaxInstances = 1 << 16
	// MaxKeyLen is the longest key stored as it is; longer keys are
	// stored hashed.
	MaxKeyLen = 200
	// MaxPrefixLen bounds Config.Prefix.
	MaxPrefixLen = 200
)

// Config configures a distributed [Limiter]. The zero value gives every
// client IP 100 calls a second with bursts of 10 across the fleet, under
// the prefix "bulwark:limit:", falling back to the full limit locally when
// Redis fails.
type Config struct {
	// Rate is the limit of each key, shared by every instance (see
	// limit.RateConfig for its defaults). Rate.Name names the limiter in
	// telemetry and in the RateLimit fields. The interval between calls
	// must be at least a microsecond (Rate at most 1e6/s).
	Rate limit.RateConfig
	// Prefix starts every key the limiter writes, verbatim (at most
	// MaxPrefixLen bytes). Default [DefaultPrefix].
	Prefix string
	// Timeout bounds each decision's round trip to Redis, within the
	// caller's own deadline, in [0, MaxTimeout]. It is enforced on the
	// socket only when the client has ContextTimeoutEnabled set;
	// otherwise go-redis's ReadTimeout and WriteTimeout (3 s by default)
	// apply. Default [DefaultTimeout].
	Timeout time.Duration
	// Fallback is what to do when Redis cannot decide. Default
	// FallbackLocal.
	Fallback Fallback
	// Instances is the number of instances sharing the limit, in
	// [0, MaxInstances]: FallbackLocal divides Rate (and Burst, rounding
	// up) by it. Default 1.
	Instances int
	// KeyFunc picks the key of an HTTP request for [Limiter.Handler] and
	// [Limiter.RoundTripper]. Default: for Handler, limit.ClientIP; for
	// RoundTripper, the request's URL host.
	KeyFunc func(*http.Request) string
	// OnStoreError, if set, is called after Redis failed to decide, in
	// the goroutine of the call, before the fallback decides. It may run
	// concurrently with itself.
	OnStoreError func(ctx context.Context, ev StoreErrorEvent)
	// MeterProvider provides the limiter's instruments. Default: the
	// global provider.
	MeterProvider metric.MeterProvider
}

// StoreErrorEvent describes one decision Redis failed to make.
type StoreErrorEvent struct {
	// Key is the limiter key (as given to Decide, before prefixing).
	Key string
	// Err is the Redis error.
	Err error
	// Fallback is what decided instead.
	Fallback Fallback
}

// Validate reports the first bad field of c as a [*bulwark.ConfigError],
// or nil. [New] panics with the same error.
func (c Config) Validate() error {
	if err := c.Rate.Validate(); err != nil {
		return err
	}
	v := validate.New("limit/redisstore")
	v.Check(c.Rate.Rate <= 1e6, "Rate.Rate", c.Rate.Rate, "at most 1e6 calls a second (one a microsecond)")
	v.Check(c.Rate.Every == 0 || c.Rate.Every >= time.Microsecond, "Rate.Every", c.Rate.Every, "0 or at least 1µs")
	v.Check(len(c.Prefix) <= MaxPrefixLen, "Prefix", c.Prefix, "at most 200 bytes")
	v.Duration("Timeout", c.Timeout, MaxTimeout)
	v.Check(c.Fallback >= FallbackLocal && c.Fallback <= FallbackClosed, "Fallback", c.Fallback,
		"FallbackLocal, FallbackOpen or FallbackClosed")
	v.Size("Instances", c.Instances, MaxInstances)
	return v.Err()
}
