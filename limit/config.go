package limit

import (
	"math"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark"

	"github.com/bulwark-go/bulwark/internal/validate"
)

const pkg = "limit"

// Defaults and bounds of [RateConfig].
const (
	// DefaultRate is RateConfig.Rate when neither Rate nor Every is set:
	// 100 calls a second.
	DefaultRate = 100.0
	// MinRate and MaxRate bound RateConfig.Rate, in calls per second:
	// one a day to one a nanosecond.
	MinRate = 1.0 / 86400
	MaxRate = 1e9
	// MaxEvery bounds RateConfig.Every (one call a day).
	MaxEvery = 24 * time.Hour
	// MaxBurst bounds RateConfig.Burst.
	MaxBurst = 1 << 24
	// MaxBurstWindow bounds Burst × interval, the time a full burst
	// takes to earn back (so that the arithmetic on nanoseconds cannot
	// overflow).
	MaxBurstWindow = 7 * 24 * time.Hour
)

// RateConfig configures a [Rate] limiter, and every per-key limiter of a
// [Keyed] set. The zero value admits 100 calls a second with bursts of 10.
type RateConfig struct {
	// Name names the limiter in telemetry (the bulwark.name attribute)
	// and in the RateLimit header fields' policy (default "default").
	Name string
	// Rate is the sustained rate in calls per second, in
	// [MinRate, MaxRate]. Set Rate or Every, not both. Default
	// [DefaultRate] when both are zero.
	//
	// The limiter works on whole nanoseconds: the interval between calls
	// is 1e9/Rate rounded to the nearest nanosecond, so a rate that does
	// not divide 1e9 is approximate by up to 0.5 ns per interval (under
	// 0.1% for rates up to 5e5/s).
	Rate float64
	// Every is the sustained rate as the interval between calls, in
	// (0, MaxEvery]: Every: time.Minute / 30 is 30 calls a minute. It is
	// exact. Set Rate or Every, not both.
	Every time.Duration
	// Burst is how many calls may pass at once after the limiter has been
	// idle, in [1, MaxBurst]; Burst × interval is at most
	// [MaxBurstWindow]. Default: a tenth of a second's worth of calls,
	// rounded up, at least 1 (10 at the default rate; 1 at rates of 10/s
	// and below).
	Burst int
	// MeterProvider provides the limiter's instruments. Default: the
	// global provider.
	MeterProvider metric.MeterProvider
}

// Validate reports the first bad field of c as a [*bulwark.ConfigError],
// or nil. [NewRate] panics with the same error.
func (c RateConfig) Validate() error {
	v := validate.New(pkg)
	v.Check(c.Rate == 0 || (c.Rate >= MinRate && c.Rate <= MaxRate), "Rate", c.Rate,
		"0 (default) or calls per second in [1/86400, 1e9]")
	v.Duration("Every", c.Every, MaxEvery)
	v.Check(c.Rate == 0 || c.Every == 0, "Every", c.Every, "0 when Rate is set (set one of Rate and Every)")
	v.Size("Burst", c.Burst, MaxBurst)
	if v.Err() == nil {
		g := c.gcra()
		v.Check(g.tau <= int64(MaxBurstWindow), "Burst", c.Burst,
			"a burst that the rate earns back within "+MaxBurstWindow.String())
	}
	return v.Err()
}

// Interval returns the interval between calls c sets, defaults applied
// and rounded to the nanosecond as the limiter rounds it.
func (c RateConfig) Interval() time.Duration { return time.Duration(c.interval()) }

// BurstSize returns the burst c sets, defaults applied.
func (c RateConfig) BurstSize() int { return int(c.burst(c.interval())) }

// Policy returns the limit c sets in the terms of the RateLimit-Policy
// header field (see [Policy]).
func (c RateConfig) Policy() Policy { return c.gcra().policy(c.name()) }

// interval returns the configured interval between calls in ns.
func (c RateConfig) interval() int64 {
	switch {
	case c.Every > 0:
		return int64(c.Every)
	case c.Rate > 0:
		return max(1, int64(math.Round(1e9/c.Rate)))
	}
	return int64(math.Round(1e9 / DefaultRate))
}

func (c RateConfig) burst(interval int64) int64 {
	if c.Burst > 0 {
		return int64(c.Burst)
	}
	// a tenth of a second's worth, rounded up
	return max(1, (int64(100*time.Millisecond)+interval-1)/interval)
}

func (c RateConfig) gcra() gcra {
	t := c.interval()
	return gcra{t: t, tau: t * c.burst(t)}
}

func (c RateConfig) name() string {
	if c.Name == "" {
		return "default"
	}
	return c.Name
}

// Defaults and bounds of [KeyedConfig].
const (
	// DefaultMaxKeys is KeyedConfig.MaxKeys' default.
	DefaultMaxKeys = 10000
	// MaxMaxKeys bounds KeyedConfig.MaxKeys.
	MaxMaxKeys = 1 << 24
	// DefaultIdleTimeout is the least KeyedConfig.IdleTimeout defaults to.
	DefaultIdleTimeout = time.Minute
	// MaxIdleTimeout bounds KeyedConfig.IdleTimeout.
	MaxIdleTimeout = 24 * time.Hour
	// MaxKeyLen is the longest key a [Keyed] set keeps as it is; a longer
	// key is kept as its SHA-256 hash, so that a key's memory does not
	// grow with its length.
	MaxKeyLen = 256
)

// KeyedConfig configures a [Keyed] set of rate limiters. The zero value
// gives every client IP 100 calls a second with bursts of 10, for up to
// 10000 clients at a time.
type KeyedConfig struct {
	// Rate configures the limiter of every key. Rate.Name names the set.
	Rate RateConfig
	// MaxKeys bounds the number of keys the set tracks, in
	// [1, MaxMaxKeys], so that a flood of distinct keys cannot exhaust
	// memory. Default [DefaultMaxKeys]. See [Keyed] for what happens when
	// the set is full.
	MaxKeys int
	// IdleTimeout is how long a key may go unused before it may be
	// forgotten, in [0, MaxIdleTimeout]. Default: [DefaultIdleTimeout],
	// or the time the rate takes to earn back a full burst if that is
	// longer, so that by default a forgotten key had nothing left to
	// remember (it was back to a full burst) and eviction never lets a
	// client past its limit.
	IdleTimeout time.Duration
	// KeyFunc picks the key of an HTTP request for [Keyed.Handler] and
	// [Keyed.RoundTripper]. Default: for Handler, [ClientIP] (the host
	// part of the request's RemoteAddr); for RoundTripper, the request's
	// URL host (one limit per server).
	KeyFunc func(*http.Request) string
}

// Validate reports the first bad field of c as a [*bulwark.ConfigError],
// or nil. [NewKeyed] panics with the same error.
func (c KeyedConfig) Validate() error {
	if err := c.Rate.Validate(); err != nil {
		return err
	}
	v := validate.New(pkg)
	v.Size("MaxKeys", c.MaxKeys, MaxMaxKeys)
	v.Duration("IdleTimeout", c.IdleTimeout, MaxIdleTimeout)
	return v.Err()
}

// ClientIP returns the host part of r.RemoteAddr (the peer's IP address,
// without the port), or r.RemoteAddr whole if it has no port. It does not
// trust X-Forwarded-For or Forwarded, which any client can set; behind a
// proxy, use a KeyFunc that reads the header your proxy sets.
func ClientIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// Defaults and bounds of [BulkheadConfig].
const (
	// DefaultMaxConcurrent is BulkheadConfig.MaxConcurrent's default.
	DefaultMaxConcurrent = 100
	// MaxMaxConcurrent bounds BulkheadConfig.MaxConcurrent and the
	// limits of [AdaptiveConfig].
	MaxMaxConcurrent = 1 << 24
	// MaxMaxQueue bounds BulkheadConfig.MaxQueue.
	MaxMaxQueue = 1 << 20
	// DefaultQueueTimeout is BulkheadConfig.QueueTimeout's default.
	DefaultQueueTimeout = time.Second
	// MaxQueueTimeout bounds BulkheadConfig.QueueTimeout.
	MaxQueueTimeout = time.Hour
)

// BulkheadConfig configures a [Bulkhead]. The zero value lets 100 calls
// run at once and rejects the 101st at once.
type BulkheadConfig struct {
	// Name names the bulkhead in telemetry (bulwark.name).
	Name string
	// MaxConcurrent is how many calls may run at once, in
	// [1, MaxMaxConcurrent]. Default [DefaultMaxConcurrent].
	MaxConcurrent int
	// MaxQueue is how many calls may wait for a slot, in
	// [0, MaxMaxQueue]. Default 0: no queue, a call that finds every slot
	// taken is rejected at once.
	MaxQueue int
	// QueueTimeout is how long a queued call waits for a slot before it
	// is rejected, in [0, MaxQueueTimeout]; the call's context may end
	// the wait sooner. Default [DefaultQueueTimeout]. Used only with a
	// queue.
	QueueTimeout time.Duration
	// MeterProvider provides the bulkhead's instruments. Default: the
	// global provider.
	MeterProvider metric.MeterProvider
}

// Validate reports the first bad field of c as a [*bulwark.ConfigError],
// or nil. [NewBulkhead] panics with the same error.
func (c BulkheadConfig) Validate() error {
	v := validate.New(pkg)
	v.Size("MaxConcurrent", c.MaxConcurrent, MaxMaxConcurrent)
	v.Size("MaxQueue", c.MaxQueue, MaxMaxQueue)
	v.Duration("QueueTimeout", c.QueueTimeout, MaxQueueTimeout)
	return v.Err()
}

// Defaults and bounds of [AdaptiveConfig].
const (
	DefaultInitialLimit  = 20
	DefaultMinLimit      = 3
	DefaultMaxLimit      = 1000
	DefaultTolerance     = 1.1
	DefaultWindow        = 100 * time.Millisecond
	DefaultProbeInterval = time.Minute
	DefaultProbeSamples  = 50
	// MaxTolerance bounds AdaptiveConfig.Tolerance.
	MaxTolerance = 10.0
	// MaxWindow bounds AdaptiveConfig.Window.
	MaxWindow = time.Minute
	// MaxProbeInterval bounds AdaptiveConfig.ProbeInterval.
	MaxProbeInterval = 24 * time.Hour
	// MaxProbeSamples bounds AdaptiveConfig.ProbeSamples.
	MaxProbeSamples = 1 << 20
)

// AdaptiveConfig configures an [Adaptive] concurrency limiter. Every
// field's zero value is a working default; the algorithm and what each
// parameter does are in the package doc ("Adaptive concurrency").
type AdaptiveConfig struct {
	// Name names the limiter in telemetry (bulwark.name).
	Name string
	// InitialLimit is the limit the limiter starts from once it has
	// measured the no-load latency. Default 20 (Netflix's
	// concurrency-limits default).
	InitialLimit int
	// MinLimit is the floor of the limit, and the concurrency the
	// limiter holds calls to while it measures the no-load latency.
	// Default 3 (Envoy's adaptive concurrency default).
	MinLimit int
	// MaxLimit is the ceiling of the limit. Default 1000. The three
	// limits are in [1, MaxMaxConcurrent], with
	// MinLimit <= InitialLimit <= MaxLimit.
	MaxLimit int
	// Tolerance is how much above the no-load latency a window's average
	// latency may be before the limit shrinks, as a factor in [1, 10]:
	// 1.1 lets latency rise by 10%. Default 1.1.
	Tolerance float64
	// Window is how often the limit is recomputed from the latencies of
	// the calls that finished in the window, in (0, MaxWindow]. Default
	// 100 ms.
	Window time.Duration
	// ProbeInterval is how often the limiter measures the no-load
	// latency afresh, holding concurrency to MinLimit while it does, in
	// (0, MaxProbeInterval]. Default 1 minute.
	ProbeInterval time.Duration
	// ProbeSamples is how many calls a no-load measurement averages, in
	// [1, MaxProbeSamples]. Default 50.
	ProbeSamples int
	// Classify judges the error of a call run by [Adaptive.Do] or
	// [Call]: only successful calls' latencies teach the limiter (a
	// failure often returns fast). Default: bulwark's rules.
	Classify bulwark.Classifier
	// ClassifyHTTP judges the responses of [Adaptive.Handler] and
	// [Adaptive.RoundTripper]. Default: bulwark's HTTP rules (5xx except
	// 501, 408 and 429 are failures).
	ClassifyHTTP bulwark.HTTPClassifier
	// MeterProvider provides the limiter's instruments. Default: the
	// global provider.
	MeterProvider metric.MeterProvider
}

// Validate reports the first bad field of c as a [*bulwark.ConfigError],
// or nil. [NewAdaptive] panics with the same error.
func (c AdaptiveConfig) Validate() error {
	v := validate.New(pkg)
	v.Size("InitialLimit", c.InitialLimit, MaxMaxConcurrent)
	v.Size("MinLimit", c.MinLimit, MaxMaxConcurrent)
	v.Size("MaxLimit", c.MaxLimit, MaxMaxConcurrent)
	v.Float("Tolerance", c.Tolerance, 1, MaxTolerance)
	v.Duration("Window", c.Window, MaxWindow)
	v.Duration("ProbeInterval", c.ProbeInterval, MaxProbeInterval)
	v.Size("ProbeSamples", c.ProbeSamples, MaxProbeSamples)
	if v.Err() == nil {
		d := c.withDefaults()
		v.Check(d.MinLimit <= d.MaxLimit, "MinLimit", c.MinLimit, "at most MaxLimit")
		v.Check(d.InitialLimit >= d.MinLimit && d.InitialLimit <= d.MaxLimit, "InitialLimit", c.InitialLimit,
			"a value in [MinLimit, MaxLimit]")
	}
	return v.Err()
}

func (c AdaptiveConfig) withDefaults() AdaptiveConfig {
	if c.MinLimit == 0 {
		c.MinLimit = DefaultMinLimit
	}
	if c.MaxLimit == 0 {
		c.MaxLimit = max(DefaultMaxLimit, c.MinLimit)
	}
	if c.InitialLimit == 0 {
		c.InitialLimit = min(max(DefaultInitialLimit, c.MinLimit), c.MaxLimit)
	}
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeSamples == 0 {
		c.ProbeSamples = DefaultProbeSamples
	}
	return c
}
