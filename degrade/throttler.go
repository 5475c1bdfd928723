package degrade

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/clock"
	"github.com/bulwark-go/bulwark/internal/outcome"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// ThrottlerConfig configures a [Throttler]. The zero ThrottlerConfig is
// useful: K = 2 over a 10 s window.
type ThrottlerConfig struct {
	// Name names the throttler in telemetry (bulwark.name). Default "".
	Name string
	// K is the multiplier of accepts in the formula: the client sends
	// freely while requests < K·accepts, so K−1 is the share of
	// rejected traffic still sent to let the backend show it has
	// recovered. Default 2, the value the Google SRE book recommends
	// (and go-zero's and kratos' default, 1/0.5 and 1/0.5 as they write
	// it); in [1.1, 100].
	K float64
	// Window is the span over which requests and accepts are counted.
	// Default 10 s (go-zero's; the SRE book uses 2 minutes); in
	// [100 ms, 1 h].
	Window time.Duration
	// Buckets is the number of buckets the window slides by. Default 40
	// (go-zero's); at most MaxBuckets.
	Buckets int
	// ClassifyHTTP judges a round trip for RoundTripper: a Failure is a
	// request the backend did not accept. Default: bulwark's HTTP rules
	// (5xx except 501, 408, 429 and transport errors are failures).
	ClassifyHTTP bulwark.HTTPClassifier
	// Classify judges Do's error and Done's. Default: bulwark's rules (a
	// caller's cancellation is neutral and not counted).
	Classify bulwark.Classifier
	// MeterProvider receives the throttler's metrics; nil means the
	// global provider.
	MeterProvider metric.MeterProvider
}

// Defaults, see ThrottlerConfig.
const (
	DefaultK               = 2.0
	DefaultThrottleWindow  = 10 * time.Second
	DefaultThrottleBuckets = 40
)

// Validate reports the first bad value of c as a *bulwark.ConfigError.
func (c ThrottlerConfig) Validate() error {
	v := validate.New("degrade")
	v.Float("ThrottlerConfig.K", c.K, 1.1, 100)
	v.Check(c.Window == 0 || (c.Window >= 100*time.Millisecond && c.Window <= time.Hour), "ThrottlerConfig.Window", c.Window, "0 (default) or a duration in [100ms, 1h]")
	v.Size("ThrottlerConfig.Buckets", c.Buckets, MaxBuckets)
	return v.Err()
}

// Throttler is client-side adaptive throttling as the Google SRE book
// describes it: over a sliding window, it counts requests (every
// request the application asked to send, including the ones it rejected
// locally) and accepts (requests the backend accepted), and rejects each
// new request locally with probability
//
//	max(0, (requests − K·accepts) / (requests + 1))
//
// so that a client backs off a backend that is shedding before the
// backend spends anything on its requests, and sends again as accepts
// come back. Create one with [NewThrottler]; the zero Throttler is not
// usable. It is safe for concurrent use; Allow and Done take no lock and
// allocate nothing.
type Throttler struct {
	cfg      ThrottlerConfig
	k        float64
	clk      clock.Clock
	bucketNs int64
	buckets  []throttleBucket
	rand     func() float64
	rejected atomic.Int64
	tel      registration
}

type throttleBucket struct {
	epoch    atomic.Int64
	requests atomic.Int64
	accepts  atomic.Int64
}

// NewThrottler returns a throttler configured by cfg. It panics with a
// *bulwark.ConfigError if cfg is not valid.
func NewThrottler(cfg ThrottlerConfig) *Throttler {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if cfg.K == 0 {
		cfg.K = DefaultK
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultThrottleWindow
	}
	if cfg.Buckets == 0 {
		cfg.Buckets = DefaultThrottleBuckets
	}
	t := &Throttler{cfg: cfg, k: cfg.K, clk: clock.Real, buckets: make([]throttleBucket, cfg.Buckets), rand: rand.Float64}
	t.bucketNs = max(int64(cfg.Window)/int64(cfg.Buckets), 1)
	for i := range t.buckets {
		t.buckets[i].epoch.Store(-1 << 62) // no epoch: a synctest bubble's Nanotime may be negative
	}
	t.tel.reg = newThrottleTelemetry(t, cfg.MeterProvider)
	return t
}

func (t *Throttler) bucket(now int64) *throttleBucket {
	e := now / t.bucketNs
	n := int64(len(t.buckets))
	b := &t.buckets[(e%n+n)%n]
	if old := b.epoch.Load(); old != e && b.epoch.CompareAndSwap(old, e) {
		b.requests.Store(0)
		b.accepts.Store(0)
	}
	return b
}

// counts returns the requests and accepts of the window ending at now.
func (t *Throttler) counts(now int64) (requests, accepts int64) {
	e := now / t.bucketNs
	lo := e - int64(len(t.buckets)) + 1
	for i := range t.buckets {
		b := &t.buckets[i]
		if ep := b.epoch.Load(); ep >= lo && ep <= e {
			requests += b.requests.Load()
			accepts += b.accepts.Load()
		}
	}
	return requests, accepts
}

// rejectProbability is the SRE formula.
func rejectProbability(requests, accepts int64, k float64) float64 {
	return max(0, (float64(requests)-k*float64(accepts))/float64(requests+1))
}

// Probability returns the probability with which Allow rejects a request
// now, from the window's counts.
func (t *Throttler) Probability() float64 {
	r, a := t.counts(t.clk.Nanotime())
	return rejectProbability(r, a, t.k)
}

// Counts returns the window's requests and accepts.
func (t *Throttler) Counts() (requests, accepts int64) { return t.counts(t.clk.Nanotime()) }

// Allow decides whether to send a request. It returns nil to send it
// (report how it went with Done), or a [*ThrottleError] (ErrThrottled)
// when the request is rejected locally, which counts as a request not
// accepted.
func (t *Throttler) Allow() error {
	now := t.clk.Nanotime()
	r, a := t.counts(now)
	if p := rejectProbability(r, a, t.k); p > 0 && t.rand() < p {
		t.bucket(now).requests.Add(1)
		t.rejected.Add(1)
		return &ThrottleError{Probability: p, Wait: time.Duration(t.bucketNs)}
	}
	return nil
}

// Done records the outcome of a request Allow let through: Success (the
// backend accepted it) counts a request and an accept, Failure (the
// backend rejected or failed it) a request only, Neutral nothing.
func (t *Throttler) Done(o bulwark.Outcome) {
	if o == bulwark.Neutral {
		return
	}
	b := t.bucket(t.clk.Nanotime())
	b.requests.Add(1)
	if o == bulwark.Success {
		b.accepts.Add(1)
	}
}

func (t *Throttler) classify(ctx context.Context, err error) bulwark.Outcome {
	if t.cfg.Classify != nil {
		return t.cfg.Classify(ctx, err)
	}
	return outcome.Error(ctx, err)
}

// Do runs fn unless the throttler rejects the call, and records fn's
// outcome (judged by Config.Classify, or bulwark's rules). A panic in fn
// is recorded as a failure and goes on. Do panics if ctx or fn is nil.
func (t *Throttler) Do(ctx context.Context, fn func(context.Context) error) error {
	if ctx == nil {
		panic("degrade: Throttler.Do called with a nil ctx")
	}
	if fn == nil {
		panic("degrade: Throttler.Do called with a nil fn")
	}
	if err := t.Allow(); err != nil {
		return err
	}
	returned := false
	defer outcome.OnAbort(&returned, func() { t.Done(bulwark.Failure) })
	err := fn(ctx)
	returned = true
	t.Done(t.classify(ctx, err))
	return err
}

// Close unregisters the throttler's metrics; it keeps working. Close is
// safe to call more than once; it returns nil.
func (t *Throttler) Close() error {
	t.tel.close()
	return nil
}

func newThrottleTelemetry(t *Throttler, mp metric.MeterProvider) metric.Registration {
	m := telemetryMeter(mp)
	rej, err := m.Int64ObservableCounter(metricName("throttled_requests"), metric.WithUnit("{request}"),
		metric.WithDescription("Requests rejected locally by the adaptive throttler."))
	if err != nil {
		return nil
	}
	name := nameAttr(t.cfg.Name)
	reg, _ := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(rej, t.rejected.Load(), metric.WithAttributes(name))
		return nil
	}, rej)
	return reg
}
