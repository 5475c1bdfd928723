package lb

import (
	"context"
	"math"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Config configures a [Balancer]. The zero Config is useful once it has
// endpoints (Endpoints or Resolver): P2C with peak-EWMA latency, passive
// outlier ejection with Envoy's defaults, a panic threshold of 50%, no
// locality, no slow start, no active checks, no breakers. [New] copies the
// Config; changing it afterwards has no effect.
type Config struct {
	// Name names the balancer in telemetry (the bulwark.name attribute).
	// Default "".
	Name string

	// Endpoints is the initial, static endpoint list. [Balancer.Update]
	// replaces it; a Resolver, if set, replaces it on every refresh.
	Endpoints []Endpoint
	// Resolver, if set, supplies the endpoints: it is asked at once, in
	// the background (New does not wait; call [Balancer.Refresh] to), and
	// then every ResolveInterval. Until its first answer the balancer has
	// Endpoints. A failed or empty answer keeps the last good set (as
	// gRPC's resolvers do), so a DNS hiccup never empties the balancer.
	Resolver Resolver
	// ResolveInterval is how often Resolver is asked. Default 30 s (the
	// usual DNS TTL floor of service discovery clients).
	ResolveInterval time.Duration
	// ResolveTimeout bounds one Resolve call. Default 5 s.
	ResolveTimeout time.Duration

	// Policy picks an endpoint among the available ones. Default
	// [P2C](P2CConfig{}): power of two choices on peak-EWMA latency
	// times in-flight calls, the policy of Finagle and linkerd, which
	// steers away from a slow or failing endpoint within a few calls.
	Policy Policy

	// Zone is the caller's zone. When it is set and some endpoints carry
	// the same Endpoint.Zone, traffic prefers them (see ZoneSpill).
	// Default "": no locality.
	Zone string
	// ZoneSpill, in (0, 1], is the healthy share of the local zone's
	// endpoints below which traffic starts to spill to other zones:
	// while the share h is at least ZoneSpill every call stays local;
	// below it the local zone keeps h/ZoneSpill of the calls and the rest
	// go to the other zones. So the surviving local endpoints never carry
	// more than 1/ZoneSpill of their normal load (1.25x by default), as
	// Envoy's zone-aware routing keeps each endpoint's load level.
	// Default 0.8.
	ZoneSpill float64

	// PanicThreshold, in (0, 1], is the share of available (not ejected,
	// not failing active checks) endpoints below which the balancer
	// ignores health, and zones, and balances across every endpoint: when
	// most endpoints look down the cause is more often the checks, or a
	// cascade that the survivors would not withstand. Default 0.5,
	// Envoy's healthy_panic_threshold. A negative value disables panic
	// mode: only available endpoints are picked, and Pick fails with
	// ErrNoEndpoints when there are none.
	PanicThreshold float64

	// SlowStart is the window over which an endpoint that joins the set
	// after New, returns from ejection, passes its active checks again or
	// (under grpcx/balancer) gets its connection back ramps up from 10%
	// to its full share of calls (linearly, in ten steps; Envoy's
	// slow_start_window with aggression 1 and min_weight_percent 10). A
	// ramping endpoint that a policy picks accepts the call with the
	// probability of its current share, else the pick is drawn again, so
	// it applies to every policy. Default 0: off, as in Envoy.
	SlowStart time.Duration

	// Outlier configures passive outlier ejection.
	Outlier OutlierConfig
	// Health configures active health checks; they run only when
	// Health.Checker is set.
	Health HealthConfig

	// Breakers, if set, holds one breaker per endpoint, keyed by
	// Endpoint.Addr: Pick skips an endpoint whose breaker rejects the
	// call, and Done reports the outcome to it. Default nil: no breakers.
	// The Set is the caller's; Close does not close it.
	Breakers *breaker.Set

	// Host chooses the Host header [Balancer.RoundTripper] sends.
	// Default HostLogical.
	Host HostPolicy
	// HashKey extracts the hash key of an HTTP request for [RingHash] in
	// [Balancer.RoundTripper] (see [HeaderKey], [CookieKey],
	// [ClientIPKey]). Default nil, or an empty key: the request lands at
	// a random point of the ring.
	HashKey func(*http.Request) string
	// MaxAttempts bounds the endpoints [Balancer.RoundTripper] tries for
	// one request when a connection fails or a breaker rejects and the
	// request is safe to repeat. Default 3; 1 disables the second pick.
	MaxAttempts int

	// Classify judges errors (nil: bulwark's rules). ClassifyHTTP judges
	// HTTP exchanges in RoundTripper (nil: bulwark's HTTP rules: 5xx
	// except 501, 408 and 429 are failures).
	Classify     bulwark.Classifier
	ClassifyHTTP bulwark.HTTPClassifier

	// OnStateChange, if set, is called when an endpoint changes state
	// (ejected, returned, failed or passed its active checks, or, under
	// grpcx/balancer, lost or got its connection). It runs in the
	// goroutine that caused the change (a Done, the balancer's background
	// loop, or grpc-go's connection-state callback, with
	// context.Background()), outside the balancer's lock, so it may call
	// the balancer (except Close from the background loop, which Close
	// waits for: that deadlocks); calls for different endpoints may run
	// concurrently. It must be quick. A panic in it reaches that
	// goroutine.
	OnStateChange func(ctx context.Context, ev StateChangeEvent)

	// MeterProvider receives the balancer's metrics; nil means the
	// global provider.
	MeterProvider metric.MeterProvider
}

// OutlierConfig configures passive outlier ejection, after Envoy's and
// gRPC's outlier detection: an endpoint that fails too often is taken out
// of rotation for an ejection time that grows with each repeated ejection,
// and no more than a set fraction of the endpoints is ejected at once.
type OutlierConfig struct {
	// ConsecutiveFailures ejects an endpoint at once after this many
	// failures in a row (and again after each further run of as many, if
	// MaxEjectedFraction held it back). Default 5 (Envoy's
	// consecutive_5xx). A negative value disables it.
	ConsecutiveFailures int
	// FailureRate, in (0, 1], ejects an endpoint whose failures/calls
	// over the last Interval reach it, judged at the end of each
	// Interval. Default 0.85 (Envoy's and gRPC's failure_percentage
	// threshold). A negative value disables it.
	FailureRate float64
	// MinimumCalls is the number of calls an endpoint must have had in
	// the Interval for FailureRate to judge it. Default 50 (Envoy's
	// failure_percentage_request_volume).
	MinimumCalls int
	// Interval is the period of the ejection sweep: failure rates are
	// judged, and ejections that have served their time end, at each
	// tick. Default 10 s (Envoy's and gRPC's interval).
	Interval time.Duration
	// BaseEjectionTime is the first ejection's length; the n-th
	// ejection in a row lasts n times as long, up to MaxEjectionTime,
	// and each Interval without ejection takes one step back. Default
	// 30 s (Envoy, gRPC).
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps the ejection time. When both are set it must
	// be at least BaseEjectionTime. Default 300 s (Envoy, gRPC), or
	// BaseEjectionTime if that is longer.
	MaxEjectionTime time.Duration
	// MaxEjectedFraction, in (0, 1], caps the share of endpoints ejected
	// at once; one endpoint may always be ejected, as in Envoy. Default
	// 0.1 (Envoy's max_ejection_percent, gRPC's maxEjectionPercent).
	MaxEjectedFraction float64
}

// HealthConfig configures active health checks.
type HealthConfig struct {
	// Checker probes one endpoint (see [HTTPChecker]; grpcx/balancer has
	// the gRPC health-check one). Default nil: no active checks.
	Checker Checker
	// Interval is the time between two rounds of checks. Default 10 s
	// (Kubernetes' periodSeconds).
	Interval time.Duration
	// Timeout bounds one check. Default 1 s (Kubernetes'
	// timeoutSeconds).
	Timeout time.Duration
	// HealthyThreshold is the number of passed checks in a row that make
	// an unhealthy endpoint healthy again. Default 2.
	HealthyThreshold int
	// UnhealthyThreshold is the number of failed checks in a row that
	// make an endpoint unhealthy. Default 3 (Kubernetes'
	// failureThreshold).
	UnhealthyThreshold int
	// Jitter, in [0, 1], delays each round by a random fraction of up to
	// Jitter × Interval, so that many clients do not check in lockstep.
	// Default 0.1. A negative value disables it.
	Jitter float64
}

// HostPolicy chooses the Host header of a request that
// [Balancer.RoundTripper] sends to an endpoint.
type HostPolicy uint8

const (
	// HostLogical keeps the request's own Host (req.Host, or the host of
	// its URL): the logical service name that virtual hosts and routing
	// meshes expect. Note that TLS verifies the certificate against the
	// URL's host, which becomes the endpoint's address: set
	// tls.Config.ServerName on the transport to verify the logical name.
	HostLogical HostPolicy = iota
	// HostEndpoint sends the endpoint's address as Host.
	HostEndpoint
)

// Defaults, see Config, OutlierConfig and HealthConfig.
const (
	DefaultResolveInterval     = 30 * time.Second
	DefaultResolveTimeout      = 5 * time.Second
	DefaultZoneSpill           = 0.8
	DefaultPanicThreshold      = 0.5
	DefaultSlowStartMinShare   = 0.1
	DefaultMaxAttempts         = 3
	DefaultConsecutiveFailures = 5
	DefaultFailureRate         = 0.85
	DefaultMinimumCalls        = 50
	DefaultOutlierInterval     = 10 * time.Second
	DefaultBaseEjectionTime    = 30 * time.Second
	DefaultMaxEjectionTime     = 300 * time.Second
	DefaultMaxEjectedFraction  = 0.1
	DefaultHealthInterval      = 10 * time.Second
	DefaultHealthTimeout       = time.Second
	DefaultHealthyThreshold    = 2
	DefaultUnhealthyThreshold  = 3
	DefaultHealthJitter        = 0.1
	DefaultWeight              = 1
)

// Bounds, see Config and Endpoint.
const (
	// MaxEndpoints bounds the endpoints of one balancer.
	MaxEndpoints = 10000
	// MaxWeight bounds Endpoint.Weight.
	MaxWeight = 1000000
	// MaxAttemptsLimit bounds Config.MaxAttempts.
	MaxAttemptsLimit = 10
	// MaxThreshold bounds the health and outlier counts.
	MaxThreshold = 1000000
	// MaxDuration bounds every duration of the Config.
	MaxDuration = 24 * time.Hour
)

// Validate reports the first bad value of c as a [*bulwark.ConfigError]
// (errors.Is(err, bulwark.ErrInvalidConfig)), or nil.
func (c Config) Validate() error {
	v := validate.New("lb")
	v.Check(len(c.Endpoints) <= MaxEndpoints, "Endpoints", len(c.Endpoints),
		"at most MaxEndpoints (10000) endpoints")
	if err := checkEndpoints(c.Endpoints); err != nil && v.Err() == nil {
		v.Check(false, "Endpoints", err.Error(), "distinct non-empty addresses, weights in [0, 1000000]")
	}
	v.Duration("ResolveInterval", c.ResolveInterval, MaxDuration)
	v.Duration("ResolveTimeout", c.ResolveTimeout, MaxDuration)
	if c.Policy != nil {
		c.Policy.validate(v)
	}
	v.Fraction("ZoneSpill", c.ZoneSpill)
	if !off(c.PanicThreshold) {
		v.Fraction("PanicThreshold", c.PanicThreshold)
	}
	v.Duration("SlowStart", c.SlowStart, MaxDuration)
	v.Check(c.Host <= HostEndpoint, "Host", c.Host, "HostLogical or HostEndpoint")
	v.Size("MaxAttempts", c.MaxAttempts, MaxAttemptsLimit)

	o := c.Outlier
	if o.ConsecutiveFailures >= 0 {
		v.Size("Outlier.ConsecutiveFailures", o.ConsecutiveFailures, MaxThreshold)
	}
	if !off(o.FailureRate) {
		v.Fraction("Outlier.FailureRate", o.FailureRate)
	}
	v.Size("Outlier.MinimumCalls", o.MinimumCalls, MaxThreshold)
	v.Duration("Outlier.Interval", o.Interval, MaxDuration)
	v.Duration("Outlier.BaseEjectionTime", o.BaseEjectionTime, MaxDuration)
	v.Duration("Outlier.MaxEjectionTime", o.MaxEjectionTime, MaxDuration)
	v.Check(o.MaxEjectionTime == 0 || o.BaseEjectionTime == 0 || o.MaxEjectionTime >= o.BaseEjectionTime,
		"Outlier.MaxEjectionTime", o.MaxEjectionTime, "at least Outlier.BaseEjectionTime ("+o.BaseEjectionTime.String()+")")
	v.Fraction("Outlier.MaxEjectedFraction", o.MaxEjectedFraction)

	h := c.Health
	v.Duration("Health.Interval", h.Interval, MaxDuration)
	v.Duration("Health.Timeout", h.Timeout, MaxDuration)
	v.Size("Health.HealthyThreshold", h.HealthyThreshold, MaxThreshold)
	v.Size("Health.UnhealthyThreshold", h.UnhealthyThreshold, MaxThreshold)
	if !off(h.Jitter) {
		v.Float("Health.Jitter", h.Jitter, 0, 1)
	}
	return v.Err()
}

// off reports whether x is a negative value meaning "off": finite, so
// that -Inf fails like every other infinity.
func off(x float64) bool { return x < 0 && !math.IsInf(x, -1) }

// settings is a resolved Config.
type settings struct {
	resolveEvery, resolveTimeout time.Duration
	zoneSpill                    float64
	panicAt                      float64 // < 0: off
	slowStart                    int64
	maxAttempts                  int

	consecutive  int64 // 0: off
	failureRate  float64
	minCalls     int64
	interval     time.Duration
	baseEject    int64
	maxEject     int64
	maxEjectFrac float64

	hInterval, hTimeout  time.Duration
	hHealthy, hUnhealthy int
	hJitter              float64
}

func or[T comparable](x, def T) T {
	var zero T
	if x == zero {
		return def
	}
	return x
}

func resolve(c *Config) settings {
	s := settings{
		resolveEvery:   or(c.ResolveInterval, DefaultResolveInterval),
		resolveTimeout: or(c.ResolveTimeout, DefaultResolveTimeout),
		zoneSpill:      or(c.ZoneSpill, DefaultZoneSpill),
		panicAt:        or(c.PanicThreshold, DefaultPanicThreshold),
		slowStart:      int64(c.SlowStart),
		maxAttempts:    or(c.MaxAttempts, DefaultMaxAttempts),
		consecutive:    int64(or(c.Outlier.ConsecutiveFailures, DefaultConsecutiveFailures)),
		failureRate:    or(c.Outlier.FailureRate, DefaultFailureRate),
		minCalls:       int64(or(c.Outlier.MinimumCalls, DefaultMinimumCalls)),
		interval:       or(c.Outlier.Interval, DefaultOutlierInterval),
		baseEject:      int64(or(c.Outlier.BaseEjectionTime, DefaultBaseEjectionTime)),
		maxEject:       int64(or(c.Outlier.MaxEjectionTime, DefaultMaxEjectionTime)),
		maxEjectFrac:   or(c.Outlier.MaxEjectedFraction, DefaultMaxEjectedFraction),
		hInterval:      or(c.Health.Interval, DefaultHealthInterval),
		hTimeout:       or(c.Health.Timeout, DefaultHealthTimeout),
		hHealthy:       or(c.Health.HealthyThreshold, DefaultHealthyThreshold),
		hUnhealthy:     or(c.Health.UnhealthyThreshold, DefaultUnhealthyThreshold),
		hJitter:        or(c.Health.Jitter, DefaultHealthJitter),
	}
	if s.consecutive < 0 {
		s.consecutive = 0
	}
	if s.hJitter < 0 {
		s.hJitter = 0
	}
	s.maxEject = max(s.maxEject, s.baseEject)
	return s
}
