package breaker

import (
	"context"
	"math"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Config configures a [Breaker]. The zero Config is useful: a breaker that
// opens when at least half of the last 100 calls failed (once 20 calls have
// been seen), stays open 5 s, then 10 s, 20 s, ... up to 60 s on repeated
// trips, and lets 10 probes decide in half-open. Each field documents its
// default, where it comes from, and the values it accepts; [Config.Validate]
// checks them and [New] panics on a bad one. New copies the Config;
// changing it afterwards has no effect.
//
// Trip rules: with ConsecutiveFailures set the breaker counts consecutive
// failures (gobreaker's default behaviour); otherwise it judges the
// failure rate, and the slow-call rate if SlowCallDuration is set, over a
// sliding window that is count-based (WindowSize calls) unless
// WindowDuration makes it time-based.
type Config struct {
	// Name names the breaker in errors, telemetry (the bulwark.name
	// attribute) and OnStateChange. Default "".
	Name string

	// ConsecutiveFailures, when positive, selects consecutive mode: the
	// breaker opens after this many failures in a row, and a success
	// resets the run; the window, rate and slow-call fields are then
	// unused. gobreaker's default trips on ConsecutiveFailures > 5, i.e.
	// ConsecutiveFailures: 6 here. Default 0: rate mode. Negative values
	// are an error.
	ConsecutiveFailures int

	// WindowSize is the number of calls in the count-based window, at
	// most [MaxWindowSize]. Default 100, resilience4j's
	// slidingWindowSize. The window keeps the positions of its failures
	// (and slow calls) in a ring of WindowSize 8-byte slots, allocated on
	// the first failure after each state change.
	WindowSize int
	// WindowDuration, when positive, makes the window time-based: the
	// calls of the last WindowDuration (at most [MaxDuration]), counted in
	// WindowBuckets buckets (so the window slides by
	// WindowDuration/WindowBuckets steps). Default 0: count window.
	// Polly's SamplingDuration is 30 s and resilience4j's time window
	// 100 s, if you want a starting point.
	WindowDuration time.Duration
	// WindowBuckets is the number of buckets in a time window, at most
	// [MaxWindowBuckets]. Default 10 (Hystrix's
	// metricsRollingStatisticalWindowBuckets). A time window holds 32
	// bytes per bucket per P (see the package doc, "Memory").
	WindowBuckets int
	// FailureRate, in (0, 1], opens the breaker when failures/calls in the
	// window reach it. Default 0.5, resilience4j's failureRateThreshold
	// (Polly uses 0.1, which trips on background noise in our view). A
	// percentage (50) is an error, not 50%.
	FailureRate float64
	// MinimumCalls is the number of calls the window must hold before any
	// rate is judged (capped at WindowSize). Default 20, Hystrix's
	// requestVolumeThreshold: resilience4j and Polly use 100, which on a
	// low-traffic dependency delays the first trip by minutes.
	MinimumCalls int
	// SlowCallDuration, when positive, counts calls that take at least
	// this long (at most [MaxDuration]) as slow, whatever their outcome,
	// and opens the breaker when slow calls/calls reach SlowCallRate. It
	// costs a second clock reading per call. Default 0: no slow-call
	// detection (resilience4j's default of 60 s at 100% is effectively
	// off too).
	SlowCallDuration time.Duration
	// SlowCallRate, in (0, 1], is the slow-call rate that opens the
	// breaker. Default 1.0, resilience4j's slowCallRateThreshold.
	SlowCallRate float64

	// OpenDuration is how long the breaker stays open after its first
	// trip, at most [MaxDuration] (ForceOpen is the way to open for good).
	// Default 5 s, Polly's BreakDuration: a short first pause recovers
	// quickly from a blip, and growth (below) takes care of a dependency
	// that stays down.
	OpenDuration time.Duration
	// OpenDurationGrowth, in [1, [MaxOpenDurationGrowth]], multiplies the
	// open duration on each repeated trip (a trip from half-open, or from
	// closed before a successful half-open); 1 keeps it fixed. Default 2
	// (as Polly's BreakDurationGenerator examples and resilience4j's
	// exponential IntervalFunction do).
	OpenDurationGrowth float64
	// MaxOpenDuration caps the growing open duration, at most
	// [MaxDuration] and, when set, at least OpenDuration. Default 60 s, the
	// fixed open duration of gobreaker and resilience4j, or OpenDuration
	// if that is longer.
	MaxOpenDuration time.Duration
	// OpenJitter, in [0, 1], shortens each open duration by a random
	// fraction of up to OpenJitter, so that many clients that tripped
	// together do not probe together; the cap is never exceeded. Default
	// 0.1. A negative value disables jitter.
	OpenJitter float64

	// HalfOpenProbes is the number of calls admitted in half-open. They
	// decide: in consecutive mode one failure reopens and HalfOpenProbes
	// successes close (gobreaker's MaxRequests); in rate mode, once all
	// probes have reported, the breaker closes unless their failure (or
	// slow-call) rate reaches the threshold, and reopens as soon as it
	// must. Default [DefaultHalfOpenProbesConsecutive] (1) in consecutive
	// mode (gobreaker's default) and [DefaultHalfOpenProbes] (10) in rate
	// mode (resilience4j's permittedNumberOfCallsInHalfOpenState: a rate
	// judged on one call is a coin toss). Negative values are an error.
	HalfOpenProbes int
	// HalfOpenMaxWait bounds the stay in half-open, at most [MaxDuration].
	// A probe that hangs, or whose result never comes back (an abandoned
	// ticket, a cancelled stream), would otherwise hold its slot forever.
	// Once it has passed and a call finds no free slot, the breaker
	// reopens (with a grown open duration: a hung probe is a bad sign) and
	// late probe results are discarded. Default 30 s (resilience4j's
	// default, 0, waits forever).
	HalfOpenMaxWait time.Duration

	// Classify overrides the classification of Do's and Done's error, and
	// of a transport error in RoundTripper. Default (bulwark's rules, see
	// the package doc, "Outcomes"): nil is a success; a call whose own
	// ctx was cancelled, whatever [context.Cause] says, is neutral, except
	// when the cause is [bulwark.ErrSuperseded] (a hedge won: the attempt
	// was slower than the hedge delay), which is a failure; anything else,
	// context.DeadlineExceeded included, is a failure. In Done, which has
	// no context, Classify is called with context.Background() (never
	// nil, so a classifier may call ctx.Err()) and the default treats an
	// error matching context.Canceled as neutral.
	Classify bulwark.Classifier
	// ClassifyHTTP overrides how RoundTripper judges a round trip and how
	// Handler judges a response (for Handler, resp carries the status code
	// and the headers the handler wrote, and err is nil). Default:
	// bulwark's HTTP rules, 5xx except 501, 408 and 429 are failures, and
	// a transport error is judged by Classify. Use it, say, to keep 429s
	// from an upstream rate limiter from tripping the breaker.
	ClassifyHTTP bulwark.HTTPClassifier

	// OnStateChange, if set, is called after every state change with the
	// context of the call that caused it (Do's ctx, a request's context;
	// context.Background() for Allow, Done, State, ForceOpen, Disable and
	// Reset) and a [StateChangeEvent]. Events are delivered in order,
	// never concurrently with each other, and outside the breaker's lock:
	// the hook may call any method of the breaker (State, Counts, even
	// ForceOpen). It runs in the goroutine whose call caused the change,
	// or, when another goroutine is already delivering events, in that
	// one, so it should be quick. A panic in it reaches the caller whose
	// goroutine ran it; events queued meanwhile by other goroutines are
	// delivered with the next state change.
	OnStateChange func(ctx context.Context, ev StateChangeEvent)

	// MeterProvider receives the breaker's metrics; nil means the global
	// provider.
	MeterProvider metric.MeterProvider

	// clk is the time source; nil means clock.Real. Only the package's
	// own tests set it (CONTRIBUTING.md, "Time").
	clk clock.Clock
}

// Defaults, see [Config]. Each is named after the field it fills.
const (
	DefaultWindowSize         = 100
	DefaultWindowBuckets      = 10
	DefaultFailureRate        = 0.5
	DefaultMinimumCalls       = 20
	DefaultSlowCallRate       = 1.0
	DefaultOpenDuration       = 5 * time.Second
	DefaultOpenDurationGrowth = 2.0
	DefaultMaxOpenDuration    = 60 * time.Second
	DefaultOpenJitter         = 0.1
	// DefaultHalfOpenProbes fills HalfOpenProbes in rate mode.
	DefaultHalfOpenProbes = 10
	// DefaultHalfOpenProbesConsecutive fills HalfOpenProbes in
	// consecutive mode (gobreaker's MaxRequests default).
	DefaultHalfOpenProbesConsecutive = 1
	DefaultHalfOpenMaxWait           = 30 * time.Second
)

// Bounds, see [Config]. Values past them fail [Config.Validate].
const (
	// MaxWindowSize bounds WindowSize: 65,536 calls, a ring of 512 KiB
	// (1 MiB with slow-call detection). A longer memory is a time window's
	// job.
	MaxWindowSize = 1 << 16
	// MaxWindowBuckets bounds WindowBuckets.
	MaxWindowBuckets = 1000
	// MaxDuration bounds every duration of Config (WindowDuration,
	// SlowCallDuration, OpenDuration, MaxOpenDuration, HalfOpenMaxWait):
	// 24 hours. A breaker that should stay open longer is ForceOpen's
	// job.
	MaxDuration = 24 * time.Hour
	// MaxOpenDurationGrowth bounds OpenDurationGrowth.
	MaxOpenDurationGrowth = 100.0
)

// Validate reports the first field of c whose value is not allowed, as a
// [*bulwark.ConfigError] matching [bulwark.ErrInvalidConfig], or nil.
// [New] panics with the same error.
func (c Config) Validate() error {
	v := validate.New(pkg)
	c.validate(v, "")
	return v.Err()
}

func (c *Config) validate(v *validate.V, prefix string) {
	nonNegative := func(field string, n int) {
		v.Check(n >= 0, prefix+field, n, "0 (default) or a positive count")
	}
	nonNegative("ConsecutiveFailures", c.ConsecutiveFailures)
	v.Size(prefix+"WindowSize", c.WindowSize, MaxWindowSize)
	v.Duration(prefix+"WindowDuration", c.WindowDuration, MaxDuration)
	v.Size(prefix+"WindowBuckets", c.WindowBuckets, MaxWindowBuckets)
	v.Fraction(prefix+"FailureRate", c.FailureRate)
	nonNegative("MinimumCalls", c.MinimumCalls)
	v.Duration(prefix+"SlowCallDuration", c.SlowCallDuration, MaxDuration)
	v.Fraction(prefix+"SlowCallRate", c.SlowCallRate)
	v.Duration(prefix+"OpenDuration", c.OpenDuration, MaxDuration)
	v.Float(prefix+"OpenDurationGrowth", c.OpenDurationGrowth, 1, MaxOpenDurationGrowth)
	v.Duration(prefix+"MaxOpenDuration", c.MaxOpenDuration, MaxDuration)
	v.Check(c.MaxOpenDuration == 0 || c.MaxOpenDuration >= c.OpenDuration, prefix+"MaxOpenDuration",
		c.MaxOpenDuration, "0 (default) or at least OpenDuration ("+c.OpenDuration.String()+")")
	j := c.OpenJitter
	v.Check(!math.IsNaN(j) && !math.IsInf(j, 0) && j <= 1, prefix+"OpenJitter", j,
		"0 (default), a value in (0, 1], or a negative value (off)")
	nonNegative("HalfOpenProbes", c.HalfOpenProbes)
	v.Duration(prefix+"HalfOpenMaxWait", c.HalfOpenMaxWait, MaxDuration)
}

// mustValidate panics with the Config's error, if any.
func mustValidate(err error) {
	if err != nil {
		panic(err)
	}
}

// SetConfig configures a [Set]. The zero SetConfig is useful: every field
// has a default; [SetConfig.Validate] checks them and [NewSet] panics on a
// bad one.
type SetConfig struct {
	// Config configures every breaker of the set. Config.Name names the
	// set (the bulwark.name attribute), each member carries its key
	// (StateChangeEvent.Key, OpenError.Name, the bulwark.key attribute),
	// and Config.MeterProvider receives the set's metrics (see
	// AggregateMetrics).
	Config Config
	// MaxKeys bounds the number of breakers the set holds, so that a flood
	// of distinct keys cannot exhaust memory. Default 10000. Negative
	// values are an error.
	MaxKeys int
	// IdleTimeout is how long a breaker may go unused before the set may
	// evict it, at most [MaxDuration]. Eviction is lazy: when a new key is
	// added and IdleTimeout has passed since the last sweep, breakers
	// unused since that sweep are dropped; so an idle breaker lives
	// between one and two IdleTimeouts. Default 10 minutes.
	IdleTimeout time.Duration
	// KeyFunc picks the key of an HTTP request for [Set.RoundTripper] and
	// [Set.Handler]. Default: the request's URL host (host:port), one
	// breaker per host for a client; for a server (where URL.Host is
	// usually empty) set it, e.g. to the route.
	KeyFunc func(*http.Request) string
	// AggregateMetrics, when true, reports the set's metrics as one series
	// for the whole set (attribute bulwark.name only), the sum over its
	// members: calls, slow calls, rejections and transitions of every
	// member (evicted members' counts included, so the counters never go
	// back), and for the state gauge the number of members in each state.
	// Default false: one series per member, with bulwark.key, which is
	// what a set of a few hosts or methods wants (an evicted member's
	// series ends, and a key that comes back starts again from zero, a
	// counter reset to a backend); a set keyed by tenant or user should
	// aggregate, to keep the number of series bounded.
	AggregateMetrics bool
}

// Defaults, see [SetConfig].
const (
	DefaultMaxKeys     = 10000
	DefaultIdleTimeout = 10 * time.Minute
)

// Validate reports the first field of c (or of c.Config, named
// "Config.<Field>") whose value is not allowed, as a
// [*bulwark.ConfigError], or nil. [NewSet] panics with the same error.
func (c SetConfig) Validate() error {
	v := validate.New(pkg)
	c.Config.validate(v, "Config.")
	v.Check(c.MaxKeys >= 0, "MaxKeys", c.MaxKeys, "0 (default) or a positive count")
	v.Duration("IdleTimeout", c.IdleTimeout, MaxDuration)
	return v.Err()
}
